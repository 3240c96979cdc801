"""The test_vmalloc cases in virtual time: the stress runner's own cases behind a thin adapter.

``checker.stress.workloads`` defines each case as a function of a ``TestContext``; those run
unchanged in a greenlet.  Two things differ in virtual time and are adapted here:

- the design the context sees (``CostedCalls``) charges the work each ``vmalloc()``/``vfree()``
  does outside the allocator and opens a loop iteration at the first call after the last one
  closed;
- the latency array (``VirtualLatencies``) closes the iteration in virtual time when the case
  appends its wall-clock figure (which means nothing here).

Set-up sizes: full_fit fills ``lazy_max_pages`` 1-page pairs per thread and long_busy_list
15,000 areas per thread; at 64 CPUs that is 8 million allocations before the first measured
iteration, beyond a simulation's budget.  ``scaled_setups(k)`` divides both by ``k`` for the
duration of a run (the cases read them from their module at call time); the trees they build
are then ``k`` times smaller, about ``log2(k)`` levels shallower, which the report states.

``steady_ops`` sizes a run so that the allocator reaches its steady state: ``STEADY_CYCLES``
drain cycles of ``lazy_max_pages`` freed pages after the first.  The fit and the validation both
use it, so what is fitted is what is validated.

Relies on ``checker.stress.workloads`` (its cases, ``LONG_BUSY_LIST_LEN`` and its
``lazy_max_pages`` name) and ``checker.runtimes.virtual``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from impl.designs import VmapDesign
from impl.intervals import lazy_max_pages

from ..runtimes.virtual import VirtualRuntime
from ..stress import workloads
from ..stress.workloads import TestCase

# Pages one loop iteration hands to the lazy list (guard pages included), on average.
_PAGES_PER_ITERATION = {"full_fit": 2.0, "long_busy_list": 103.0, "random_size": 51.5,
                        "fix_align": 6.0, "random_size_align": 6.5, "align_shift": 2.0}
# The name full_fit calls for its junk length (``fls(num_online_cpus()) * 32 MiB / PAGE_SIZE``).
_LAZY_NAME = "lazy_max_pages"
# Cases the simulation cannot run: the reader walks trees through checker-side iteration,
# which the cost model does not charge, so its figures would mean nothing.
UNSUPPORTED = {"vmallocinfo": "the vmallocinfo reader is not modelled in virtual time"}
# Drain cycles measured after the first one, in the fit and in the validation alike.  Global
# moves by less than 0.5 % between two and four (once the busy tree holds the machine's
# resident areas, ``driver.RESIDENT_AREAS``), but ``nodes`` needs four: its first purge runs
# for milliseconds, and two cycles after it average over a pool-hit phase (16 jobs: 1.0 µs
# with two cycles, 3.5 µs with four or six).
STEADY_CYCLES = 4


def pages_per_iteration(case: TestCase, nr_pages: int = 1) -> float:
    if case.short == "fix_size":
        return float(max(nr_pages, 1) + 1)
    return _PAGES_PER_ITERATION.get(case.short, 2.0)


def steady_ops(tests: tuple[TestCase, ...], cpus: int, nr_cpus: int, nr_pages: int = 1,
               cycles: int = STEADY_CYCLES, minimum: int = 1000) -> int:
    """Loop iterations per case and CPU for ``cycles`` drain cycles after the first drain:
    the drain runs each time ``lazy_max_pages`` pages were freed lazily."""
    per_iter = sum(pages_per_iteration(c, nr_pages) for c in tests) / len(tests)
    per_cycle = lazy_max_pages(nr_cpus, 4096) / per_iter / cpus
    return max(minimum, int((cycles + 1) * per_cycle) + 1)


@contextmanager
def scaled_setups(scale: int) -> Iterator[None]:
    """Divide the set-up sizes of full_fit and long_busy_list by ``scale`` while inside."""
    if scale == 1:
        yield
        return
    if scale < 1:
        raise ValueError(f"set-up scale must be at least 1, got {scale}")
    saved_len = workloads.LONG_BUSY_LIST_LEN
    saved_lazy = vars(workloads)[_LAZY_NAME]

    def scaled_lazy_max_pages(nr_cpus: int, page_size: int = 4096) -> int:
        return max(1, int(saved_lazy(nr_cpus, page_size)) // scale)

    workloads.LONG_BUSY_LIST_LEN = max(1, saved_len // scale)
    setattr(workloads, _LAZY_NAME, scaled_lazy_max_pages)
    try:
        yield
    finally:
        workloads.LONG_BUSY_LIST_LEN = saved_len
        setattr(workloads, _LAZY_NAME, saved_lazy)


class CostedCalls:
    """What a ``TestContext`` sees as its design: the real one, each call charged."""

    def __init__(self, rt: VirtualRuntime, design: VmapDesign) -> None:
        self.page_size = design.page_size
        self.name = design.name
        self._call = rt.call
        self._alloc = design.alloc
        self._free = design.free

    def alloc(self, size: int, align: int | None = None) -> int:
        self._call()
        return self._alloc(size, align)

    def free(self, addr: int) -> None:
        self._call()
        self._free(addr)


class VirtualLatencies:
    """Stands in for a case's latency array: an append closes the loop iteration."""

    def __init__(self, rt: VirtualRuntime) -> None:
        self._done = rt.iteration_done

    def append(self, _wall_ns: int) -> None:
        self._done()
