"""Randomised strategies: uniform random walks and PCT.

``random``: at every scheduling point, a uniformly random enabled thread.

``pct``: probabilistic concurrency testing (Burckhardt, Kothari, Musuvathi and Nagarakatte,
ASPLOS 2010).  Each thread gets a random distinct priority of at least ``d``; ``d - 1`` change
points are drawn among the first ``k`` steps; the highest-priority enabled thread always runs,
and at the i-th change point the running thread drops to priority ``d - i``, below every
initial one.  For a bug of depth ``d`` (``d`` ordering constraints must hold), one run finds it
with probability at least ``1 / (n k^(d-1))`` for ``n`` threads and ``k`` steps; the bound and
what it gives over the runs made are printed with the result.  ``k`` is the longest execution
seen so far (a first run with no change points measures it).

Neither is ever exhaustive: without a violation the result is "incomplete".  Both draw every
choice from one ``random.Random(seed)``, so a seed reproduces the whole search.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ..runtimes.controlled import ControlledRuntime
from .search import Search

DEFAULT_RUNS = 1000


class RandomScheduler:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def choose(self, rt: ControlledRuntime, enabled: Sequence[int]) -> int | None:
        return enabled[self.rng.randrange(len(enabled))] if len(enabled) > 1 else enabled[0]


class PctScheduler:
    def __init__(self, rng: random.Random, depth: int, k: int) -> None:
        self.rng = rng
        self.depth = depth
        self.prio: dict[int, float] = {}
        self.step = 0
        points = rng.sample(range(1, max(k, depth) + 1), depth - 1) if depth > 1 else []
        self.change = {p: depth - 1 - i for i, p in enumerate(sorted(points))}
        self._last: int | None = None

    def _priority(self, tid: int) -> float:
        p = self.prio.get(tid)
        if p is None:
            # Fresh threads get a random priority above every change-point priority.
            p = self.depth + self.rng.random() * 1000.0
            self.prio[tid] = p
        return p

    def choose(self, rt: ControlledRuntime, enabled: Sequence[int]) -> int | None:
        if not self.prio:
            n = len(rt.threads)
            order = list(range(n))
            self.rng.shuffle(order)
            for rank, tid in enumerate(order):
                self.prio[tid] = self.depth + rank
        low = self.change.get(self.step)
        if low is not None and self._last is not None:
            self.prio[self._last] = low
        self.step += 1
        best = max(enabled, key=self._priority)
        self._last = best
        return best


def run_random(search: Search, seed: int) -> None:
    rng = random.Random(seed)
    while not search.out_of_budget():
        search.run(RandomScheduler(rng))
        if search.should_stop():
            search.stats.stopped_by = "violation"
            return


def run_pct(search: Search, seed: int, depth: int) -> None:
    rng = random.Random(seed)
    if search.out_of_budget():
        return
    first = search.run(PctScheduler(rng, 1, 1))  # measures k
    n = len(first.thread_names)
    while not search.should_stop() and not search.out_of_budget():
        search.run(PctScheduler(rng, depth, max(search.stats.max_depth, 1)))
    if search.should_stop():
        search.stats.stopped_by = "violation"
    k = max(search.stats.max_depth, 1)
    p = 1.0 / (n * k ** (depth - 1))
    runs = search.stats.executions
    total = 1.0 - (1.0 - p) ** runs
    search.stats.notes.append(
        f"PCT depth d={depth}, n={n} threads, k={k} steps: each run finds a bug of depth "
        f"<= {depth} with probability >= 1/(n*k^(d-1)) = {p:.3g}; over {runs} runs >= {total:.3g}")
