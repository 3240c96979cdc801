"""The test cases of ``lib/test_vmalloc.c``, named, numbered and parameterised as the module's.

Each case is a function of a per-thread ``TestContext`` that returns True when it passed, as the
kernel's ``test_func`` returns 0.  ``vmalloc`` here is what the kernel's is at the level of the
vmap-area allocator: the size is rounded up to whole pages and one guard page is added
(``__get_vm_area_node`` without ``VM_NO_GUARD``), the alignment is the caller's (1 for plain
``vmalloc``), and a failure is a NULL return, not an exception.  Any other exception is a bug of
the design and propagates to the runner.

``run_test_mask`` bit ``1 << i`` selects case ``i`` of the kernel's table; bits of cases that are
not modelled (percpu, kvfree_rcu, vm_map_ram) are reported and skipped.  ``vmallocinfo`` is ours
(a ``/proc/vmallocinfo`` reader looping over the busy areas) and has no mask bit.

Every loop iteration is timed into ``ctx.latencies`` (nanoseconds): those are the per-op figures
of the report.  Loops stop early when ``ctx.stop`` is set (an error elsewhere, or the end of a
``--duration`` run) and still free what they hold, so the allocator drains to empty.

Relies on ``impl.designs`` (the design interface) and ``impl.intervals`` (``lazy_max_pages``).
"""

from __future__ import annotations

import random
import threading
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import ClassVar

from impl.designs import VmapDesign
from impl.errors import AllocationFailed
from impl.intervals import lazy_max_pages

# x86-64 without KASAN: THREAD_ALIGN == THREAD_SIZE == 16 KiB; fix_align asks for twice that.
THREAD_ALIGN = 16 << 10
BITS_PER_LONG = 64
POINTER_SIZE = 8
LONG_BUSY_LIST_LEN = 15000


@dataclass
class TestContext:
    """What one test thread works with.  ``nr_cpus`` is ``num_online_cpus()``."""

    __test__: ClassVar[bool] = False  # not a pytest class, despite the kernel's naming

    design: VmapDesign
    rng: random.Random
    loops: int
    nr_cpus: int
    stop: threading.Event
    nr_pages: int = 1
    reader: Callable[[], tuple[int, int]] | None = None
    latencies: array[int] = field(default_factory=lambda: array("q"))
    calls: int = 0  # allocator calls made, for the stall watchdog

    def __post_init__(self) -> None:
        self.page_size = self.design.page_size
        self._alloc = self.design.alloc
        self._free = self.design.free

    def vmalloc(self, size: int, align: int = 1) -> int | None:
        """``__vmalloc_node(size, align)``: whole pages plus the guard page; None on failure."""
        ps = self.page_size
        real = (size + ps - 1) // ps * ps + ps
        self.calls += 1
        try:
            return self._alloc(real, align)
        except AllocationFailed:
            return None

    def vfree(self, addr: int) -> None:
        self.calls += 1
        self._free(addr)


def fix_size_alloc_test(ctx: TestContext) -> bool:
    lat, stop, size = ctx.latencies, ctx.stop, max(ctx.nr_pages, 1) * ctx.page_size
    vmalloc, vfree = ctx.vmalloc, ctx.vfree
    for _ in range(ctx.loops):
        if stop.is_set():
            break
        t0 = perf_counter_ns()
        ptr = vmalloc(size)
        if ptr is None:
            return False
        vfree(ptr)
        lat.append(perf_counter_ns() - t0)
    return True


def full_fit_alloc_test(ctx: TestContext) -> bool:
    """Fill with 1-page pairs, free every second one: later 1-page requests fit holes exactly."""
    ps = ctx.page_size
    junk_length = lazy_max_pages(ctx.nr_cpus, ps)  # fls(num_online_cpus()) * 32 MiB / PAGE_SIZE
    ptr = ctx.vmalloc(POINTER_SIZE * junk_length)
    if ptr is None:
        return False
    junk_ptr = ctx.vmalloc(POINTER_SIZE * junk_length)
    if junk_ptr is None:
        ctx.vfree(ptr)
        return False
    held: list[int] = []
    junk: list[int] = []
    ok = True
    for _ in range(junk_length):
        for lst in (held, junk):
            p = ctx.vmalloc(ps)
            if p is not None:  # the kernel stores NULL and vfree(NULL) is a no-op
                lst.append(p)
    for p in junk:
        ctx.vfree(p)
    lat, stop, vmalloc, vfree = ctx.latencies, ctx.stop, ctx.vmalloc, ctx.vfree
    for _ in range(ctx.loops):
        if stop.is_set():
            break
        t0 = perf_counter_ns()
        tmp = vmalloc(ps)
        if tmp is None:
            ok = False
            break
        vfree(tmp)
        lat.append(perf_counter_ns() - t0)
    for p in held:
        ctx.vfree(p)
    ctx.vfree(ptr)
    ctx.vfree(junk_ptr)
    return ok


def long_busy_list_alloc_test(ctx: TestContext) -> bool:
    """15000 live 1-page areas make the busy tree long; then 100-page + 1-page pairs."""
    ps = ctx.page_size
    ptr = ctx.vmalloc(POINTER_SIZE * LONG_BUSY_LIST_LEN)
    if ptr is None:
        return False
    held = [p for p in (ctx.vmalloc(ps) for _ in range(LONG_BUSY_LIST_LEN)) if p is not None]
    ok = True
    lat, stop, vmalloc, vfree = ctx.latencies, ctx.stop, ctx.vmalloc, ctx.vfree
    for _ in range(ctx.loops):
        if stop.is_set():
            break
        t0 = perf_counter_ns()
        ptr_1 = vmalloc(100 * ps)
        if ptr_1 is None:
            ok = False
            break
        ptr_2 = vmalloc(ps)
        if ptr_2 is None:
            vfree(ptr_1)
            ok = False
            break
        vfree(ptr_1)
        vfree(ptr_2)
        lat.append(perf_counter_ns() - t0)
    for p in held:
        ctx.vfree(p)
    ctx.vfree(ptr)
    return ok


def random_size_alloc_test(ctx: TestContext) -> bool:
    lat, stop, ps, randint = ctx.latencies, ctx.stop, ctx.page_size, ctx.rng.randint
    vmalloc, vfree = ctx.vmalloc, ctx.vfree
    for _ in range(ctx.loops):
        if stop.is_set():
            break
        t0 = perf_counter_ns()
        p = vmalloc(randint(1, 100) * ps)  # get_random_u32_inclusive(1, 100)
        if p is None:
            return False
        vfree(p)
        lat.append(perf_counter_ns() - t0)
    return True


def fix_align_alloc_test(ctx: TestContext) -> bool:
    lat, stop, size = ctx.latencies, ctx.stop, 5 * ctx.page_size
    vmalloc, vfree = ctx.vmalloc, ctx.vfree
    for _ in range(ctx.loops):
        if stop.is_set():
            break
        t0 = perf_counter_ns()
        ptr = vmalloc(size, THREAD_ALIGN << 1)
        if ptr is None:
            return False
        vfree(ptr)
        lat.append(perf_counter_ns() - t0)
    return True


def random_size_align_alloc_test(ctx: TestContext) -> bool:
    lat, stop, ps, getrandbits = ctx.latencies, ctx.stop, ctx.page_size, ctx.rng.getrandbits
    vmalloc, vfree = ctx.vmalloc, ctx.vfree
    for _ in range(ctx.loops):
        if stop.is_set():
            break
        t0 = perf_counter_ns()
        rnd = getrandbits(8)  # get_random_u8()
        align = 1 << (rnd % 23)  # at most 4 MiB
        size = (rnd % 10 + 1) * ps  # at most 10 pages
        ptr = vmalloc(size, align)
        if ptr is None:
            return False
        vfree(ptr)
        lat.append(perf_counter_ns() - t0)
    return True


def align_shift_alloc_test(ctx: TestContext) -> bool:
    """Alignments 1 << 0 .. 1 << 63: the large ones cannot fit, so this case must fail."""
    lat, ps = ctx.latencies, ctx.page_size
    for i in range(BITS_PER_LONG):
        t0 = perf_counter_ns()
        ptr = ctx.vmalloc(ps, 1 << i)
        if ptr is None:
            return False
        ctx.vfree(ptr)
        lat.append(perf_counter_ns() - t0)
    return True


def vmallocinfo_test(ctx: TestContext) -> bool:
    """``cat /proc/vmallocinfo`` in a loop: walks every busy area under the busy lock(s)."""
    reader = ctx.reader
    if reader is None:
        return False
    lat, stop = ctx.latencies, ctx.stop
    for _ in range(ctx.loops):
        if stop.is_set():
            break
        t0 = perf_counter_ns()
        reader()
        ctx.calls += 1
        lat.append(perf_counter_ns() - t0)
    return True


@dataclass(frozen=True)
class TestCase:
    """One entry of ``test_case_array``; ``index`` is its kernel index (mask bit ``1 << index``),
    or None for cases of our own."""

    __test__: ClassVar[bool] = False

    name: str
    short: str
    index: int | None
    fn: Callable[[TestContext], bool]
    xfail: bool = False

    @property
    def mask_bit(self) -> int | None:
        return None if self.index is None else 1 << self.index


TEST_CASES: tuple[TestCase, ...] = (
    TestCase("fix_size_alloc_test", "fix_size", 0, fix_size_alloc_test),
    TestCase("full_fit_alloc_test", "full_fit", 1, full_fit_alloc_test),
    TestCase("long_busy_list_alloc_test", "long_busy_list", 2, long_busy_list_alloc_test),
    TestCase("random_size_alloc_test", "random_size", 3, random_size_alloc_test),
    TestCase("fix_align_alloc_test", "fix_align", 4, fix_align_alloc_test),
    TestCase("random_size_align_alloc_test", "random_size_align", 5,
             random_size_align_alloc_test),
    TestCase("align_shift_alloc_test", "align_shift", 6, align_shift_alloc_test, xfail=True),
    TestCase("vmallocinfo_read_test", "vmallocinfo", None, vmallocinfo_test),
)

# Kernel cases this model does not have (they exercise other allocators than vmap areas).
UNMODELLED = {7: "pcpu_alloc_test", 8: "kvfree_rcu_1_arg_vmalloc_test",
              9: "kvfree_rcu_2_arg_vmalloc_test", 10: "vm_map_ram_test"}


class SelectionError(ValueError):
    """A test selection that names nothing runnable (a usage error)."""


def by_names(names: str) -> tuple[TestCase, ...]:
    """``--test fix_size,full_fit`` (short or kernel names), in the kernel's table order."""
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    if not wanted:
        raise SelectionError("no test named")
    found: set[TestCase] = set()
    for n in wanted:
        case = next((c for c in TEST_CASES if n in (c.name, c.short)), None)
        if case is None:
            known = ", ".join(c.short for c in TEST_CASES)
            raise SelectionError(f"unknown test {n!r}; known tests: {known}")
        found.add(case)
    return tuple(c for c in TEST_CASES if c in found)


def by_mask(mask: int) -> tuple[tuple[TestCase, ...], list[str]]:
    """``run_test_mask``: the selected modelled cases, and the names of selected kernel cases
    that are not modelled (to report as skipped)."""
    if mask <= 0:
        raise SelectionError(f"run_test_mask must be positive, got {mask}")
    cases = tuple(c for c in TEST_CASES if c.index is not None and mask >> c.index & 1)
    skipped = [name for i, name in sorted(UNMODELLED.items()) if mask >> i & 1]
    if not cases:
        raise SelectionError(f"run_test_mask {mask:#x} selects no modelled test "
                             f"(bits 0..6: fix_size .. align_shift)")
    return cases, skipped


def live_pages_estimate(case: TestCase, nr_cpus: int, page_size: int, nr_pages: int) -> int:
    """Pages one thread of ``case`` may hold at once (guard pages and worst padding included),
    used to size the managed range."""
    guard = 1
    if case.short == "full_fit":
        junk = lazy_max_pages(nr_cpus, page_size)
        meta = 2 * (POINTER_SIZE * junk // page_size + 1 + guard)
        return 2 * junk * (1 + guard) + meta
    if case.short == "long_busy_list":
        return LONG_BUSY_LIST_LEN * (1 + guard) + 120
    if case.short == "random_size_align":
        return (4 << 20) // page_size + 11
    if case.short == "fix_size":
        return max(nr_pages, 1) + guard
    return 128
