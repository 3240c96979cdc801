"""``lazy_max_pages``: the purge threshold, for every CPU count up to 2^16.

``lazy_max_pages() = fls(num_online_cpus()) * (32 MiB / PAGE_SIZE)``.  The kernel compares
``vmap_lazy_nr`` (an ``atomic_long_t``) with it, with twice it (``cond_resched_lock`` in the
purge), sets the counter to one more than it (``set_iounmap_nonlazy``) and, since 6.9, divides
by it (``nr_purge_helpers``).  So the claim is: for 1..2^16 CPUs and every page size from 4 KiB
to 256 KiB, the value is positive (the division is defined), ``2 * lazy_max_pages() + 1`` fits
a signed long, the threshold is never below 32 MiB of address space, and it grows with the CPU
count.  Both ``impl.intervals.lazy_max_pages`` and the ``VmapConfig.lazy_max_pages`` property the
designs read are run.

Relies on ``impl.intervals`` (through ``proofs.arith``), ``impl.config`` and ``proofs.symbolic``.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

from impl.config import VmapConfig

from .arith import IMPL, Arith
from .obligation import Obligation, ProofResult
from .render import Kind, pages
from .symbolic import Executor, SymInt, implies

MAX_CPUS = 1 << 16
LONG_MAX = (1 << 63) - 1
PAGE_SHIFTS = range(12, 19)  # 4 KiB .. 256 KiB pages


def _page_size(ex: Executor) -> SymInt:
    shift = ex.input("page_shift", Kind.COUNT, lo=PAGE_SHIFTS.start, hi=PAGE_SHIFTS.stop - 1)
    return 1 << shift


def _config_lazy_max(nr_cpus: SymInt | int, page_size: SymInt | int) -> object:
    """What the designs read: ``VmapConfig.lazy_max_pages`` with no override."""
    prop = VmapConfig.lazy_max_pages
    assert isinstance(prop, property) and prop.fget is not None
    return prop.fget(SimpleNamespace(lazy_max=None, nr_cpus=nr_cpus, page_size=page_size))


def check_bounds(a: Arith, timeout: float) -> ProofResult:
    ex = Executor(timeout_s=timeout)
    cpus = ex.input("nr_cpus", Kind.COUNT, lo=1, hi=MAX_CPUS)
    page = _page_size(ex)

    def body() -> object:
        lmp = a.lazy_max_pages(cpus, page)
        return {"positive (nr_purge_helpers divides by it)": lmp > 0,
                "2 * lazy_max_pages() + 1 fits a long": 2 * lmp + 1 <= LONG_MAX,
                "at least 32 MiB": lmp * page >= 32 << 20,
                "VmapConfig.lazy_max_pages agrees": _config_lazy_max(cpus, page) == lmp}

    def describe(v: dict[str, int]) -> list[str]:
        lmp = a.lazy_max_pages(v["nr_cpus"], 1 << v["page_shift"])
        return [f"lazy_max_pages -> {lmp} ({pages(lmp * (1 << v['page_shift']))})"]

    return ex.prove(body, "positive, 2 * lazy_max_pages() + 1 fits a long, at least 32 MiB, "
                    "and the designs read the same value", describe)


def check_monotone(a: Arith, timeout: float) -> ProofResult:
    ex = Executor(timeout_s=timeout)
    c1 = ex.input("nr_cpus", Kind.COUNT, lo=1, hi=MAX_CPUS)
    c2 = ex.input("more_cpus", Kind.COUNT, lo=1, hi=MAX_CPUS)
    page = _page_size(ex)

    def body() -> object:
        return {"more CPUs, no lower threshold":
                implies(c1 <= c2, a.lazy_max_pages(c1, page) <= a.lazy_max_pages(c2, page))}

    def describe(v: dict[str, int]) -> list[str]:
        p = 1 << v["page_shift"]
        return [f"lazy_max_pages({v['nr_cpus']}) = {a.lazy_max_pages(v['nr_cpus'], p)}, "
                f"lazy_max_pages({v['more_cpus']}) = {a.lazy_max_pages(v['more_cpus'], p)}"]

    return ex.prove(body, "more CPUs never lower the threshold", describe)


def obligations(a: Arith = IMPL) -> list[Obligation]:
    def ob(name: str, statement: str, fn: Callable[[Arith, float], ProofResult]) -> Obligation:
        return Obligation(f"lazy.{name}", "lazy", statement, lambda t: fn(a, t))

    return [
        ob("bounds", "lazy_max_pages() is positive and does not overflow for every CPU count "
           "up to 2^16", check_bounds),
        ob("monotone", "lazy_max_pages() is monotone in the CPU count", check_monotone),
    ]
