"""What lock_stat costs: instrumented against plain locks, single-threaded so contention is absent.

Two figures.  The micro one is the cost of an uncontended ``with lock:`` for the runtime's plain
``ThreadLock`` and for the ``StatLock`` (best of several rounds, ns).  The macro one runs the
selected cases on one thread, alternately with and without instrumentation (best of
``rounds`` each), and reports µs per op and their ratio: that is how much the statistics slow
the allocator itself down.

Relies on ``checker.lockstat``, ``checker.stress.runner`` and ``impl.runtimes.threads``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from impl.designs import VmapDesign
from impl.runtime import LockKind
from impl.runtimes.threads import ThreadLock

from ..lockstat import StatLock
from .runner import StressConfig, run_combination


@dataclass(frozen=True)
class Overhead:
    design: str
    plain_us_per_op: float
    lockstat_us_per_op: float

    @property
    def ratio(self) -> float:
        return self.lockstat_us_per_op / self.plain_us_per_op if self.plain_us_per_op else 0.0


def micro_ns(n: int = 100_000, rounds: int = 3) -> dict[str, float]:
    """ns per uncontended acquire+release through ``with``, best of ``rounds``."""
    out: dict[str, float] = {}
    for label, lock in (("ThreadLock", ThreadLock("m", "m", LockKind.SPIN)),
                        ("StatLock", StatLock("m", "m", LockKind.SPIN))):
        best = float("inf")
        for _ in range(rounds):
            t0 = time.perf_counter_ns()
            for _ in range(n):
                with lock:
                    pass
            best = min(best, (time.perf_counter_ns() - t0) / n)
        out[label] = best
    return out


def measure(design_cls: type[VmapDesign], cfg: StressConfig, rounds: int = 3) -> Overhead:
    base = replace(cfg, threads=1, duration=None, record_order=False)
    best = {False: float("inf"), True: float("inf")}
    for _ in range(rounds):
        for stat in (False, True):
            res = run_combination(design_cls, replace(base, lockstat=stat))
            if res.ops:
                best[stat] = min(best[stat], res.elapsed_s * 1e6 / res.ops)
    return Overhead(design_cls.name, best[False], best[True])
