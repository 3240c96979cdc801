"""Race analysis for dynamic partial-order reduction over one finished execution.

The happens-before order of an execution is program order plus, for each object, the order of
dependent steps on it: two steps on the same object are dependent unless both only read; all
operations on one lock are dependent (a release is what lets the next acquire in).  It is
computed with vector clocks.

A race is a pair of steps of different threads, ``e`` before ``e'``, that are dependent and
whose order could be swapped: ``e'`` is not ordered after ``e`` through anything else.  For
ordinary objects these are the last conflicting steps of each other thread (the standard
"immediate" races).  Locks are special: the acquire ``e'`` is enabled only by the release
before it, which can never be swapped with it, so the race that matters is with the previous
*acquire* of the lock by another thread, provided ``e'``'s thread did not otherwise
synchronise with it (its own clock before ``e'`` does not cover that acquire).  Work items
have the same shape (a schedule enables the worker's start); a race whose second step was
enabled only by the first is recorded too, but it yields a thread that is not enabled where
the reversal would start, and the explorer ignores such entries.

``initials`` gives, for a race, the threads that can start an execution reversing it (the
source-set construction of Abdulla, Aronis, Jonsson and Sagonas): the first steps, in the
events not ordered after ``e`` followed by ``e'``, that nothing else in that sequence precedes.
The happens-before used here may be larger than the one of the reversed execution (it also
orders through steps that are left out), which can only shrink the set of initials; every
element returned is a true initial and the first step's thread is always one, so the source
set stays valid.

Relies on ``checker.explore.execution.StepRecord`` and the event kinds.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..events import ACQUIRE, RELEASE
from .execution import StepRecord


class Clocks:
    """Vector clocks of an execution's steps and their races."""

    __slots__ = ("clocks", "local", "races", "tids")

    def __init__(self, steps: Sequence[StepRecord], nthreads: int) -> None:
        clocks: list[list[int]] = []
        local: list[int] = []
        races: list[tuple[int, int]] = []
        last_clock: dict[int, list[int]] = {}
        counts = [0] * nthreads
        lock_last: dict[int, int] = {}
        lock_acq: dict[int, int] = {}
        last_write: dict[int, int] = {}
        reads: dict[int, dict[int, int]] = {}
        tids = [s.tid for s in steps]
        zero = [0] * nthreads
        for j, s in enumerate(steps):
            t = s.tid
            pre = last_clock.get(t, zero)
            c = list(pre)
            key = s.key
            if s.kind == ACQUIRE or s.kind == RELEASE:
                if s.kind == ACQUIRE:
                    a = lock_acq.get(key)
                    if a is not None:
                        u = tids[a]
                        if u != t and pre[u] < local[a]:
                            races.append((a, j))
                    lock_acq[key] = j
                prev = lock_last.get(key)
                if prev is not None:
                    _join(c, clocks[prev])
                lock_last[key] = j
            else:
                rd = reads.get(key)
                lw = last_write.get(key)
                if s.write:
                    cands = list(rd.values()) if rd else ([lw] if lw is not None else [])
                else:
                    cands = [lw] if lw is not None else []
                for x in cands:
                    u = tids[x]
                    if u == t or pre[u] >= local[x]:
                        continue
                    lx = local[x]
                    for d in cands:
                        if d != x and clocks[d][u] >= lx:
                            break
                    else:
                        races.append((x, j))
                for x in cands:
                    _join(c, clocks[x])
                if s.write:
                    last_write[key] = j
                    if rd:
                        reads[key] = {}
                else:
                    if rd is None:
                        reads[key] = rd = {}
                    rd[t] = j
            counts[t] += 1
            c[t] = counts[t]
            clocks.append(c)
            local.append(counts[t])
            last_clock[t] = c
        self.clocks = clocks
        self.local = local
        self.races = races
        self.tids = tids

    def happens_before(self, a: int, b: int) -> bool:
        return self.clocks[b][self.tids[a]] >= self.local[a]

    def initials(self, i: int, j: int) -> list[int]:
        """Threads that can begin an execution reversing the race (i, j), from the state
        before step i: the initials of notdep(i).j."""
        ti, li = self.tids[i], self.local[i]
        clocks, tids, local = self.clocks, self.tids, self.local
        first: dict[int, int] = {}
        for k in range(i + 1, j):
            if clocks[k][ti] >= li:
                continue
            u = tids[k]
            if u not in first:
                first[u] = k
        p = tids[j]
        if p not in first:
            first[p] = j
        out = []
        for u, k in first.items():
            ck = clocks[k]
            for w, kw in first.items():
                if w != u and kw < k and ck[w] >= local[kw]:
                    break
            else:
                out.append(u)
        return out


def _join(into: list[int], other: list[int]) -> None:
    for k, v in enumerate(other):
        if v > into[k]:
            into[k] = v
