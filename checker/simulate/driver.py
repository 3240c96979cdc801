"""Run one simulation: a design on N modelled CPUs running test_vmalloc cases in virtual time.

Thread ``i`` is ``vmalloc_test/<i>``, pinned to CPU ``i``, starting at a seeded offset of less
than one call (kthreads never start in lock-step); each runs its cases in the table order, or
shuffled per thread as the module does without ``sequential_test_order``.  The cases are the
stress runner's (``checker.simulate.cases`` adapts them).

The machine is modelled as the kernel sees one with ``cpus`` CPUs: ``nr_cpus`` = ``cpus`` (so
``lazy_max_pages`` grows with ``fls(cpus)`` and ``nodes`` has ``cpus`` nodes) unless
``online_cpus`` says otherwise (the published runs put N jobs on a 64-thread machine).  At the
end the allocator is drained and every invariant must hold with nothing left busy: a design
that breaks under simulation is reported, not measured.

The vmalloc space is the running kernel's, not an empty one: ``RESIDENT_AREAS`` busy areas
(the kernel stacks of the machine's own tasks, an ASSUMPTION as to their number) are allocated
before the test threads start, at no virtual cost, and freed after they end, and the managed
range is x86_64's 32 TiB.  Without the resident areas the busy tree would hold only the jobs'
own live areas: a search path of one or two nodes at 2-4 jobs and four at 8, so the lines a
critical section misses, and with them the serialised cost per pair, would grow with the job
count (the reason the model once jumped 3x from 4 to 8 jobs).  With them every walk misses the
same capped number of lines whatever the job count, and the count stops mattering past a few
dozen areas.

The per-iteration latency is averaged over the steady state (``steady_samples``): the kernel's
figures average a million iterations per thread, where start-up is negligible.

Relies on ``checker.runtimes.virtual``, ``checker.simulate.cases`` and ``impl``.
"""

from __future__ import annotations

import random
import threading
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from impl.config import VmapConfig
from impl.designs import VmapDesign
from impl.intervals import lazy_max_pages

from ..runtimes.virtual import VirtualRuntime
from ..stress.workloads import TestCase, TestContext, live_pages_estimate
from .cases import CostedCalls, VirtualLatencies, scaled_setups
from .costs import CostModel
from .topology import Topology

# The managed range is the kernel's: x86_64 with 4-level page tables gives vmalloc/ioremap
# 32 TiB (Documentation/arch/x86/x86_64/mm.rst), 2^33 pages, which no test_vmalloc run comes
# near.  A smaller range makes allocations fail under the designs that park freed space in
# caches (``nodes``' pools), and every failure purges under ``vmap_purge_lock``: a cost the
# kernel never pays in these tests.
MIN_PAGES = 1 << 33
# The vmalloc space of a running machine is not empty when test_vmalloc starts: with
# CONFIG_VMAP_STACK (default on x86_64 since 4.9) every task's kernel stack is a vmalloc area
# of THREAD_SIZE (16 KiB, four pages) plus its guard page, and an idle 64-CPU system runs some
# hundreds of per-CPU kthreads (migration, ksoftirqd, cpuhp, kworkers) besides user tasks.
# ASSUMPTION: 1024 such areas (the count is not published; anything from a few dozen on gives
# the same results, see the module note).
RESIDENT_AREAS = 1024
RESIDENT_PAGES = 4 + 1


@dataclass(frozen=True)
class SimConfig:
    """One simulation.  ``ops`` is the loop count of every case (test_loop_count);
    ``setup_scale`` divides the set-up sizes of full_fit and long_busy_list."""

    design: type[VmapDesign]
    cpus: int
    tests: tuple[TestCase, ...]
    costs: CostModel
    ops: int = 1000
    seed: int = 0
    sequential: bool = False
    nr_pages: int = 1
    online_cpus: int | None = None
    setup_scale: int = 1
    pages: int | None = None
    topology: Topology | None = None
    resident: int = RESIDENT_AREAS

    def __post_init__(self) -> None:
        top = self.topology
        if top is not None and self.online_cpus is not None and self.online_cpus != top.nr_cpus:
            raise ValueError(f"online_cpus={self.online_cpus} but topology {top.name} has "
                             f"{top.nr_cpus} CPUs")
        if self.resident < 0:
            raise ValueError(f"resident areas must be at least 0, got {self.resident}")

    @property
    def nr_cpus(self) -> int:
        """``num_online_cpus()`` of the modelled machine."""
        if self.topology is not None:
            return self.topology.nr_cpus
        return self.online_cpus if self.online_cpus is not None else self.cpus

    def placement(self) -> list[int]:
        """The CPU of each test thread: the topology's spread, or thread ``i`` on CPU ``i``."""
        if self.topology is not None:
            return self.topology.place(self.cpus)
        return [i % self.nr_cpus for i in range(self.cpus)]

    def vmap_config(self, page_size: int = 4096) -> VmapConfig:
        pages = self.pages
        if pages is None:
            per_thread = sum(live_pages_estimate(c, self.nr_cpus, page_size, self.nr_pages)
                             for c in self.tests)
            need = 2 * (self.cpus * per_thread + 4 * lazy_max_pages(self.nr_cpus, page_size)
                        + self.resident * RESIDENT_PAGES)
            pages = MIN_PAGES
            while pages < need:
                pages <<= 1
        return VmapConfig(pages=pages, nr_cpus=self.nr_cpus, page_size=page_size)


@dataclass(frozen=True)
class LockRow:
    """lock_stat of one lock (or one lock class, summed) in virtual time.  Atomics appear too,
    class ``<name> (atomic)``: waits for their cache line, no hold time."""

    name: str
    lock_class: str
    acquisitions: int
    contentions: int
    wait_ns: float
    wait_max_ns: float
    hold_ns: float
    hold_max_ns: float
    wait_share: float  # wait time over the test threads' total running time

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "class": self.lock_class, "acquisitions": self.acquisitions,
                "contentions": self.contentions,
                "contention_ratio": self.contentions / self.acquisitions
                if self.acquisitions else 0.0,
                "wait_us": self.wait_ns / 1e3, "wait_max_us": self.wait_max_ns / 1e3,
                "hold_us": self.hold_ns / 1e3, "hold_max_us": self.hold_max_ns / 1e3,
                "wait_share": self.wait_share}


@dataclass
class SimResult:
    """What one simulation measured; times in µs of virtual time."""

    design: str
    cpus: int
    nr_cpus: int
    tests: tuple[str, ...]
    ops: int
    seed: int
    per_op_us: float  # mean steady-state loop iteration (a vmalloc/vfree pair for fix_size)
    p50_us: float
    p99_us: float
    makespan_us: float  # first thread's start to last thread's end
    locks: list[LockRow]
    purges: int
    tlb_flushes: int
    drain_runs: int
    switches: int
    wall_s: float
    lazy_max_pages: int
    steady: bool  # False if no drain happened: the average is over a start-up
    failed: dict[str, int] = field(default_factory=dict)
    resident: int = 0  # areas busy before the run (the machine's own, see RESIDENT_AREAS)

    def lock_classes(self) -> list[LockRow]:
        """Rows summed per lock class (all per-node busy locks are one row), by wait time."""
        by: dict[str, list[LockRow]] = {}
        for r in self.locks:
            by.setdefault(r.lock_class, []).append(r)
        out = [LockRow(cls, cls, sum(r.acquisitions for r in rows),
                       sum(r.contentions for r in rows), sum(r.wait_ns for r in rows),
                       max(r.wait_max_ns for r in rows), sum(r.hold_ns for r in rows),
                       max(r.hold_max_ns for r in rows), sum(r.wait_share for r in rows))
               for cls, rows in by.items()]
        return sorted(out, key=lambda r: (-r.wait_ns, r.name))

    @property
    def wait_share(self) -> float:
        return sum(r.wait_share for r in self.locks)

    def to_json(self) -> dict[str, Any]:
        return {"design": self.design, "cpus": self.cpus, "nr_cpus": self.nr_cpus,
                "tests": list(self.tests), "ops": self.ops, "seed": self.seed,
                "per_op_us": self.per_op_us, "p50_us": self.p50_us, "p99_us": self.p99_us,
                "makespan_us": self.makespan_us, "steady_state": self.steady,
                "lock_wait_share": self.wait_share,
                "lock_classes": [r.to_json() for r in self.lock_classes()],
                "purges": self.purges, "tlb_flushes": self.tlb_flushes,
                "drain_runs": self.drain_runs, "lazy_max_pages": self.lazy_max_pages,
                "failed": self.failed, "resident_areas": self.resident,
                "scheduler_switches": self.switches,
                "wall_seconds": self.wall_s}


class DesignFailure(RuntimeError):
    """The design broke under simulation (exception, deadlock, invariant, lost area)."""


def run_simulation(cfg: SimConfig, progress: Callable[[int], None] | None = None) -> SimResult:
    """Run ``cfg``; ``progress`` is called with the number of allocator calls made so far."""
    with scaled_setups(cfg.setup_scale):
        return _run(cfg, progress)


def _run(cfg: SimConfig, progress: Callable[[int], None] | None) -> SimResult:
    wall0 = time.perf_counter()
    rt = VirtualRuntime(cfg.costs, cfg.nr_cpus, cfg.seed, cfg.topology)
    rt.progress = progress
    vcfg = cfg.vmap_config()
    design = cfg.design(rt, vcfg)
    adapter = cast(VmapDesign, CostedCalls(rt, design))
    # Set-up runs outside any model thread, so it costs no virtual time.
    resident = [design.alloc(RESIDENT_PAGES * vcfg.page_size) for _ in range(cfg.resident)]
    stop = threading.Event()
    master = random.Random(cfg.seed)
    failed: dict[str, int] = {}

    def body(ctx: TestContext, order: list[TestCase]) -> Callable[[], None]:
        def run() -> None:
            for case in order:
                if not case.fn(ctx) and not case.xfail:
                    failed[case.short] = failed.get(case.short, 0) + 1
        return run

    for i, cpu in enumerate(cfg.placement()):
        rng = random.Random(master.getrandbits(64))
        ctx = TestContext(design=adapter, rng=rng, loops=cfg.ops, nr_cpus=cfg.nr_cpus,
                          stop=stop, nr_pages=cfg.nr_pages)
        ctx.latencies = cast("array[int]", VirtualLatencies(rt))
        order = list(cfg.tests)
        if not cfg.sequential:
            rng.shuffle(order)
        start = master.random() * cfg.costs.call_ns
        rt.spawn(f"vmalloc_test/{i}", cpu, body(ctx, order), start)
    try:
        rt.run()
    except Exception as exc:
        raise DesignFailure(f"{design.name} on {cfg.cpus} CPUs: {exc}") from exc
    for addr in resident:
        design.free(addr)
    _drain_and_check(design)

    samples = steady_samples(rt)
    busy = rt.busy_ns() or 1.0
    rows = [LockRow(lk.name, lk.lock_class, lk.acquisitions, lk.contentions, lk.wait_ns,
                    lk.wait_max, lk.hold_ns, lk.hold_max, lk.wait_ns / busy)
            for lk in rt.locks]
    # An atomic's cache line is a lock of its own: read-modify-writes queue for it.
    rows += [LockRow(a.name, f"{a.name} (atomic)", a.ops, a.contentions, a.wait_ns, a.wait_max,
                     0.0, 0.0, a.wait_ns / busy)
             for a in rt.atomics if a.ops]
    return SimResult(
        design=design.name, cpus=cfg.cpus, nr_cpus=cfg.nr_cpus,
        tests=tuple(c.short for c in cfg.tests), ops=cfg.ops, seed=cfg.seed,
        per_op_us=(sum(samples) / len(samples) / 1e3) if samples else 0.0,
        p50_us=_quantile(samples, 0.5) / 1e3, p99_us=_quantile(samples, 0.99) / 1e3,
        makespan_us=rt.makespan / 1e3, locks=rows,
        purges=int(getattr(design, "purges", 0)), tlb_flushes=rt.tlb_flushes,
        drain_runs=sum(w.runs for w in rt.works), switches=rt.switches,
        wall_s=time.perf_counter() - wall0, lazy_max_pages=vcfg.lazy_max_pages,
        steady=rt.first_drain_end is not None, failed=failed, resident=cfg.resident)


def steady_samples(rt: VirtualRuntime) -> list[float]:
    """Iteration latencies of the steady state, sorted: the iterations that began after the
    first drain finished (the ``nodes`` pools fill only then); without a drain, all but each
    thread's first tenth (which also holds any case set-up)."""
    out: list[float] = []
    t0 = rt.first_drain_end
    for t in rt.threads:
        if t0 is not None:
            out.extend(s for s, b in zip(t.samples, t.starts, strict=True) if b >= t0)
        else:
            out.extend(t.samples[len(t.samples) // 10 + (1 if t.samples else 0):])
    if not out:  # too short to reach a steady state: everything, rather than nothing
        out = [s for t in rt.threads for s in t.samples]
    out.sort()
    return out


def _quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[i]


def _drain_and_check(design: VmapDesign) -> None:
    """Purge what is left lazy, then every invariant at rest, and nothing may stay busy: every
    case frees all it allocates."""
    design.purge()
    try:
        design.check_invariants(at_rest=True)
    except Exception as exc:
        raise DesignFailure(f"{design.name}: invariant broken after the run: {exc}") from exc
    busy = design.snapshot().by_kind("busy")
    if busy:
        raise DesignFailure(f"{design.name}: {len(busy)} area(s) still busy after the run "
                            f"(lost), first {busy[0][0]:#x}-{busy[0][1]:#x}")
