"""Exhaustive depth-first search of schedules, with or without partial-order reduction.

Stateless, by re-execution (loom's model): the search keeps the path of choice points of the
current execution; each new execution replays the path's prefix and extends it.  At a new choice
point the running thread continues if it can (no preemption), else the lowest enabled thread.

Three modes:

* ``reduction=False``: every enabled thread is explored at every point (the baseline).
* ``reduction=True`` without a preemption bound: source-set DPOR with sleep sets.  After each
  execution its races (``dpor.Clocks``) add, at the point before the first step of each race,
  one initial of the reversing sequence unless one is already there.  A thread explored at a
  point sleeps in the later branches of that point until a step dependent with its pending
  operation runs; an execution in which every enabled thread sleeps is cut ("sleep-set
  blocked": everything after it is covered elsewhere).
* ``reduction=True`` with a preemption bound: bounded partial-order reduction (Coons, Musuvathi
  and McKinley, OOPSLA 2013).  Plain DPOR pruned by a bound misses executions within the bound,
  because the bound makes independent steps matter (reordering can change the number of
  preemptions).  BPOR compensates: a race adds its thread (or, when that thread is not enabled
  there, every enabled thread) both at the point before the race and at the point where the
  context containing it began.  Threads whose choice would exceed the bound are not explored;
  what that cuts is counted separately and does not make the search incomplete: the result is
  exhaustive *for the bound*.

  Sleep sets are restricted under a bound (plain sleep sets can hide a bounded execution behind
  an equivalent one with more preemptions): only the thread that was explored as the
  continuation of the running thread (no preemption) sleeps in its siblings' branches.  Why
  that is safe: a pruned execution s.q.u.p.w (p asleep, so independent of q.u) has the
  explored equivalent s.p.q.u.w.  At s the pruned one preempts p's thread (it was enabled and
  running) while the explored one switches after p's step, a preemption at most; where p ran in
  the pruned one, the switches x->p->y become x->y, never more preemptions (x's enabledness is
  not changed by p's independent step).  So the explored execution has no more preemptions and
  lies within the bound.  A thread chosen at a free switch (the running thread was blocked)
  has no preemption to give back at s, and is not put to sleep.

Optional state caching (``state_cache=True``, with reduction): stateful DPOR after
Yang, Chen, Gopalakrishnan and Kirby (SPIN 2008).  Each new choice point is fingerprinted
(``statecache``: the whole program state); when every branch below a state has been explored,
the state is cached with a summary of the steps taken anywhere below it (thread, object,
read/write) and its sleep set.  A later execution that reaches a cached state whose stored
sleep set is contained in its own stops there (the earlier exploration covered at least as
much), and the races between its prefix and the summarised steps are added as backtrack
points the way the persistent-set algorithm of Flanagan and Godefroid does (the thread, or
every enabled thread if it is not enabled there, before the last dependent step it is not
ordered after; under a bound, also before the context that step belongs to, as BPOR does).
Without that last part the cut would lose the reorderings a stateless search would have found
through the cut subtree.  Under a preemption bound the key also holds the thread that ran last
(preemptions are counted against it) and an entry records how many preemptions its
exploration had left: it serves a later visit, at any level of iterative bounding, that has
no more left.

Relies on ``dpor.Clocks`` for races and ``search.Search`` for the budget and statistics.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..events import ACQUIRE, RELEASE
from ..runtimes.controlled import ControlledRuntime
from .dpor import Clocks
from .execution import ExecutionOutcome, StepRecord
from .search import Search
from .statecache import fingerprint

Pending = tuple[int, bool, bool]  # (object key, writes, is a lock acquire)
Transition = tuple[int, int, bool, bool]  # (thread, object key, writes, is a lock acquire)
# (steps below, sleep set, preemptions still allowed) of a completely explored state.
CacheEntry = tuple[frozenset[Transition], frozenset[int], int]
CacheKey = tuple[int, int, int]  # fingerprint, and the thread that ran last (bounded search)


class NondeterminismError(RuntimeError):
    """Replaying a recorded prefix led somewhere else: the design is not deterministic."""


class Node:
    """A choice point: the state before one step of the current path."""

    __slots__ = ("enabled", "pending", "sleep", "backtrack", "done", "chosen", "prev",
                 "preempts", "fp", "summary", "hit")

    def __init__(self, enabled: tuple[int, ...], pending: dict[int, Pending],
                 sleep: frozenset[int], prev: int, preempts: int) -> None:
        self.enabled = enabled
        self.pending = pending
        self.sleep = sleep
        self.backtrack: set[int] = set()
        self.done: set[int] = set()
        self.chosen: int | None = None
        self.prev = prev
        self.preempts = preempts
        self.fp: CacheKey | None = None
        self.summary: set[Transition] = set()
        self.hit = False

    def take(self, tid: int) -> None:
        self.chosen = tid
        self.done.add(tid)
        self.summary.add((tid, *self.pending[tid]))

    def is_preemption(self, tid: int) -> bool:
        return self.prev >= 0 and tid != self.prev and self.prev in self.enabled


def _independent(a: Pending, b: Pending) -> bool:
    return a[0] != b[0] or not (a[1] or b[1])


class PathScheduler:
    """Follows the search path, then extends it with new choice points."""

    def __init__(self, dfs: DfsExplorer) -> None:
        self.dfs = dfs
        self.pos = 0
        # The states after the first ``checked_prefix`` steps were checked by the execution
        # that created this prefix; replaying them again needs no invariant checks.
        self.checked_prefix = max(len(dfs.path) - 1, 0)

    def choose(self, rt: ControlledRuntime, enabled: Sequence[int]) -> int | None:
        dfs = self.dfs
        path = dfs.path
        i = self.pos
        self.pos += 1
        if i < len(path):
            node = path[i]
            if node.chosen is None or tuple(enabled) != node.enabled:
                raise NondeterminismError(
                    f"replaying step {i}: enabled threads {list(enabled)} differ from the "
                    f"recorded {list(node.enabled)}; the design must be deterministic for a "
                    f"given schedule")
            return node.chosen
        threads = rt.threads
        pending = {}
        for tid in enabled:
            p = threads[tid].pending
            assert p is not None
            pending[tid] = (p.key, p.write, p.kind == ACQUIRE)
        if path:
            parent = path[-1]
            chosen = parent.chosen
            assert chosen is not None
            prev = chosen
            preempts = parent.preempts + (1 if parent.is_preemption(chosen) else 0)
            if dfs.sleep_sets:
                cp = parent.pending[chosen]
                if dfs.bound is None:
                    asleep = parent.sleep | parent.done
                elif parent.prev in parent.done:
                    # Under a bound only the thread that continued without a preemption may
                    # sleep in its siblings' branches (see the module note).
                    asleep = parent.sleep | {parent.prev}
                else:
                    asleep = parent.sleep
                sleep = frozenset(q for q in asleep if q != chosen
                                  and _independent(parent.pending[q], cp))
            else:
                sleep = frozenset()
        else:
            prev, preempts, sleep = -1, 0, frozenset()
        node = Node(tuple(enabled), pending, sleep, prev, preempts)
        path.append(node)
        if dfs.cache is not None:
            fp = fingerprint(rt)
            node.fp = (fp[0], fp[1], prev if dfs.bound is not None else -1)
            entry = dfs.cache.get(node.fp)
            if entry is not None and entry[1] <= sleep and entry[2] >= dfs.budget_left(node):
                node.hit = True
                node.summary = set(entry[0])
                dfs.hits += 1
                return None
        choices = [t for t in enabled if t not in sleep and dfs.within_bound(node, t)]
        if not choices:
            return None
        c = prev if prev in choices else choices[0]
        node.take(c)
        if dfs.reduction:
            node.backtrack.add(c)
        else:
            node.backtrack.update(choices)
        return c


class DfsExplorer:
    """One exhaustive search (one preemption bound, or none)."""

    def __init__(self, reduction: bool = True, preemption_bound: int | None = None,
                 state_cache: bool = False,
                 cache: dict[CacheKey, CacheEntry] | None = None) -> None:
        self.reduction = reduction
        self.bound = preemption_bound
        self.sleep_sets = reduction
        self.path: list[Node] = []
        # Iterative bounding passes one cache from level to level: an entry records how many
        # preemptions its exploration still had, so it serves every later level it covers.
        self.cache: dict[CacheKey, CacheEntry] | None = None
        if state_cache and reduction:
            self.cache = cache if cache is not None else {}
        self.hits = 0

    def budget_left(self, node: Node) -> int:
        return 1 << 30 if self.bound is None else self.bound - node.preempts

    def within_bound(self, node: Node, tid: int) -> bool:
        if self.bound is None:
            return True
        return node.preempts + (1 if node.is_preemption(tid) else 0) <= self.bound

    def search(self, search: Search, keep_going: int = 0) -> bool:
        """Run until the tree is exhausted (True) or the budget stops it.  With
        ``stop_on_first``, stop ``keep_going`` executions after the first violation (a
        shrinking search goes on a little to find a shorter one)."""
        first: int | None = None
        while True:
            if search.out_of_budget():
                return False
            outcome = search.run(PathScheduler(self))
            if self.cache is not None:
                search.stats.cache_hits = self.hits
                search.stats.cached_states = len(self.cache)
            if self.reduction:
                self._add_backtracks(outcome)
            if search.violations and search.budget.stop_on_first:
                if first is None:
                    first = search.stats.executions
                if search.stats.executions - first >= keep_going:
                    search.stats.stopped_by = "violation"
                    return False
            if not self._next_branch(search):
                return True

    # ------------------------------------------------------------------ backtracking
    def _next_branch(self, search: Search) -> bool:
        path = self.path
        st = search.stats
        while path:
            node = path[-1]
            if node.chosen is not None:
                for t in sorted(node.backtrack):
                    if t in node.done or t in node.sleep or t not in node.enabled:
                        continue
                    if not self.within_bound(node, t):
                        continue
                    node.take(t)
                    return True
            if not node.hit:
                for t in node.enabled:
                    if t in node.done:
                        continue
                    if not self.within_bound(node, t):
                        st.bound_cut += 1
                    else:
                        st.pruned += 1
            path.pop()
            if self.cache is not None:
                self._complete(node)
        return False

    def _complete(self, node: Node) -> None:
        """Every branch below ``node`` is explored: cache it and pass its summary up."""
        assert self.cache is not None
        if node.fp is not None:
            old = self.cache.get(node.fp)
            left = self.budget_left(node)
            if old is None:
                self.cache[node.fp] = (frozenset(node.summary), node.sleep, left)
            else:
                self.cache[node.fp] = (old[0] | node.summary, old[1] & node.sleep,
                                       max(old[2], left))
        if self.path:
            self.path[-1].summary |= node.summary

    def _add_backtracks(self, outcome: ExecutionOutcome) -> None:
        steps = outcome.steps
        path = self.path
        hit = len(steps) < len(path) and path[len(steps)].hit
        if len(steps) < 2 and not hit:
            return
        clocks = Clocks(steps, len(outcome.thread_names))
        # Context starts: the point where the thread running step i was switched in.
        starts = [0] * len(steps)
        for k in range(1, len(steps)):
            starts[k] = k if steps[k].tid != steps[k - 1].tid else starts[k - 1]
        if hit:
            self._summary_races(steps, clocks, path[len(steps)].summary, starts)
        if self.bound is None:
            for i, j in clocks.races:
                node = path[i]
                initials = clocks.initials(i, j)
                if any(q in node.backtrack for q in initials):
                    continue
                for q in initials:
                    if q in node.enabled and q not in node.sleep:
                        node.backtrack.add(q)
                        break
        else:
            for i, j in clocks.races:
                p = steps[j].tid
                for k in (i, starts[i]):
                    node = path[k]
                    if p in node.enabled:
                        node.backtrack.add(p)
                    else:
                        node.backtrack.update(node.enabled)

    def _summary_races(self, steps: Sequence[StepRecord], clocks: Clocks,
                       summary: set[Transition], starts: list[int]) -> None:
        """Races between the prefix and the steps summarised below a cached state."""
        path = self.path
        n = len(clocks.tids)
        by_key: dict[int, list[int]] = {}
        for i, s in enumerate(steps):
            by_key.setdefault(s.key, []).append(i)
        last: dict[int, list[int]] = {}
        for i, tid in enumerate(clocks.tids):
            last[tid] = clocks.clocks[i]
        zero = [0] * max(n, 1)
        for p, key, write, acquire in summary:
            idxs = by_key.get(key)
            if not idxs:
                continue
            cp = last.get(p, zero)
            for i in reversed(idxs):
                s = steps[i]
                u = clocks.tids[i]
                if u == p:
                    continue
                kind = s.kind
                if kind == ACQUIRE or kind == RELEASE:
                    if not (acquire and kind == ACQUIRE):
                        continue
                elif not (write or s.write):
                    continue
                if u < len(cp) and cp[u] >= clocks.local[i]:
                    continue
                for k in ((i,) if self.bound is None else (i, starts[i])):
                    node = path[k]
                    if p in node.enabled:
                        if p not in node.sleep:
                            node.backtrack.add(p)
                    else:
                        node.backtrack.update(t for t in node.enabled if t not in node.sleep)
                break
