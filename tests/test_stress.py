"""The stress runner: kernel test cases, summaries, drain and invariants, stopping on errors.

Each checker feature has a run where it must find something (a leak, a lost area, an exception
in a test thread or in the drain worker, a deadlock) and one where it must find nothing (the
built-in designs).  Loop counts are small: these tests assert behaviour, never speed.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest

from checker.stress.report import summary_lines, wait_comparison
from checker.stress.runner import RunResult, StressConfig, python_info, run_combination
from checker.stress.vmallocinfo import NoReader, reader_for
from checker.stress.workloads import (
    TEST_CASES,
    SelectionError,
    TestContext,
    by_mask,
    by_names,
)
from impl.config import VmapConfig
from impl.designs import VmapDesign, builtin_designs
from impl.designs.base import Range, Snapshot
from impl.designs.global_ import GlobalDesign
from impl.runtimes.plain import PlainRuntime

DESIGNS = sorted(n for n, c in builtin_designs().items() if not getattr(c, "mutant_of", None))
SUMMARY = re.compile(r"^Summary: (\w+) passed: (\d+) failed: (\d+) repeat: (\d+) loops: (\d+) "
                     r"avg: (\d+) usec$")


def cfg(tests: str, threads: int = 2, loops: int = 100, **kw: Any) -> StressConfig:
    return StressConfig(tests=by_names(tests), threads=threads, loops=loops, **kw)


# ---------------------------------------------------------------------- selection
def test_mask_selects_kernel_test_indices() -> None:
    cases, skipped = by_mask(7)
    assert [c.name for c in cases] == ["fix_size_alloc_test", "full_fit_alloc_test",
                                       "long_busy_list_alloc_test"]
    assert skipped == []
    cases, skipped = by_mask(0x7FFFFFFF)  # the module's default, INT_MAX
    assert len(cases) == 7 and skipped[0] == "pcpu_alloc_test"
    assert [c.mask_bit for c in cases] == [1, 2, 4, 8, 16, 32, 64]


@pytest.mark.parametrize("mask", [0, -1, 128, 1024])
def test_masks_without_a_modelled_test_are_rejected(mask: int) -> None:
    with pytest.raises(SelectionError):
        by_mask(mask)


def test_names_accept_short_and_kernel_names_in_table_order() -> None:
    cases = by_names("random_size_align, fix_size_alloc_test,vmallocinfo")
    assert [c.short for c in cases] == ["fix_size", "random_size_align", "vmallocinfo"]
    with pytest.raises(SelectionError, match="unknown test 'nope'"):
        by_names("fix_size,nope")


# ---------------------------------------------------------------------- must find nothing
@pytest.mark.parametrize("design", DESIGNS)
def test_fix_size_on_two_threads_drains_to_intact_invariants(design: str) -> None:
    res = run_combination(builtin_designs()[design], cfg("fix_size", threads=2, loops=300))
    assert res.findings == []
    assert res.invariants == "ok"
    assert res.ops == 600
    assert res.lockstat is not None and res.lockstat.total.acquisitions > 0
    lines = summary_lines(res)
    assert len(lines) == 2
    for line in lines:
        m = SUMMARY.match(line)
        assert m is not None, line
        assert m.group(1, 2, 3, 4, 5) == ("fix_size_alloc_test", "1", "0", "1", "300")


@pytest.mark.parametrize("design", DESIGNS)
def test_every_case_runs_on_every_design(design: str) -> None:
    tests = "fix_size,random_size,fix_align,random_size_align,align_shift,vmallocinfo"
    res = run_combination(builtin_designs()[design],
                          cfg(tests, threads=2, loops=40, repeat=2, seed=3))
    assert res.findings == [] and res.invariants == "ok"
    assert res.unexpected_failures == 0
    for st in res.threads_state:
        assert [c.short for c in st.order] != [] and st.cpu == st.index
        for c in st.cases.values():
            assert c.repeat == 2
            if c.test.xfail:  # align_shift cannot place 1 << 63 alignments: counted as failed
                assert (c.passed, c.failed, c.xfailed) == (0, 2, 2)
            else:
                assert (c.passed, c.failed) == (2, 0)


@pytest.mark.parametrize("design", DESIGNS)
def test_long_setup_cases_free_everything_they_hold(design: str) -> None:
    res = run_combination(builtin_designs()[design],
                          cfg("full_fit,long_busy_list", threads=1, loops=50, sequential=True))
    assert res.findings == [] and res.invariants == "ok"
    assert [c.short for c in res.threads_state[0].order] == ["full_fit", "long_busy_list"]


def test_a_timed_run_repeats_cases_until_the_time_is_up() -> None:
    res = run_combination(GlobalDesign, cfg("fix_size,random_size", threads=2, loops=20,
                                            duration=0.3))
    assert res.findings == [] and res.invariants == "ok"
    assert all(c.repeat >= 1 for st in res.threads_state for c in st.cases.values())
    assert res.ops > 0


def test_runs_without_lockstat_have_no_statistics() -> None:
    res = run_combination(GlobalDesign, cfg("fix_size", lockstat=False))
    assert res.lockstat is None and res.invariants == "ok"


def test_lock_order_edges_from_a_stress_run() -> None:
    res = run_combination(GlobalDesign, cfg("vmallocinfo,fix_size", threads=2, loops=30,
                                            record_order=True))
    assert res.lockstat is not None
    pairs = {(h, a) for h, a, _s, _n in res.lockstat.order_edges}
    # s_start: vmap_purge_lock then vmap_area_lock; show_purge_info nests the purge lock.
    assert ("vmap_purge_lock", "vmap_area_lock") in pairs
    assert ("vmap_area_lock", "purge_vmap_area_lock") in pairs


def test_no_lock_order_edges_when_nothing_nests() -> None:
    res = run_combination(GlobalDesign, cfg("fix_size", threads=1, loops=50,
                                            record_order=True))
    assert res.lockstat is not None and res.lockstat.order_edges == ()


def test_wait_comparison_is_relative_to_the_baseline_at_each_thread_count() -> None:
    runs = [run_combination(builtin_designs()[d], cfg("fix_size", threads=1, loops=50))
            for d in DESIGNS]
    comp = wait_comparison(runs, "global")
    assert set(comp) == {"1"} and set(comp["1"]) == set(DESIGNS)
    assert comp["1"]["global"]["wait_ratio"] in (None, 1.0)


def test_python_info_reports_the_gil() -> None:
    info = python_info()
    assert isinstance(info["gil_enabled"], bool)
    assert info["switch_interval_s"] > 0


# ---------------------------------------------------------------------- vmallocinfo
@pytest.mark.parametrize("design", DESIGNS)
def test_vmallocinfo_reader_counts_busy_areas(design: str) -> None:
    d = builtin_designs()[design](PlainRuntime(), VmapConfig(pages=1 << 12, nr_cpus=2))
    sizes = [1, 3, 20]
    addrs = [d.alloc(n * 4096) for n in sizes]
    read = reader_for(d)
    assert read() == (3, sum(sizes) * 4096)
    d.free(addrs[0])
    assert read() == (2, 23 * 4096)


class _DictDesign(VmapDesign):
    """A design with no tree a reader knows: it must say so, or offer vmallocinfo()."""

    name = "dict"

    def __init__(self, rt: Any, config: VmapConfig | None = None) -> None:
        super().__init__(rt, config)
        self.areas: dict[int, Range] = {}
        self.next = self.vmalloc_start

    def _alloc(self, size: int, align: int, vstart: int, vend: int) -> int:
        a = self.next
        self.next += size
        self.areas[a] = (a, a + size)
        return a

    def _free(self, addr: int) -> None:
        del self.areas[addr]

    def _find(self, addr: int) -> Range | None:
        return None

    def _purge(self) -> None:
        pass

    def snapshot(self) -> Snapshot:
        return Snapshot({"busy": tuple(sorted(self.areas.values()))})


def test_a_design_without_busy_structures_has_no_reader_unless_it_offers_one() -> None:
    d = _DictDesign(PlainRuntime())
    with pytest.raises(NoReader, match="vmallocinfo"):
        reader_for(d)
    d.alloc(8192)
    d.vmallocinfo = lambda: list(d.areas.values())  # type: ignore[attr-defined]
    assert reader_for(d)() == (1, 8192)


def test_vmalloc_adds_the_guard_page_and_returns_none_on_failure() -> None:
    d = GlobalDesign(PlainRuntime(), VmapConfig(pages=8))
    ctx = TestContext(d, __import__("random").Random(0), 1, 1, threading.Event())
    a = ctx.vmalloc(100)  # rounds up to one page, plus the guard page
    assert a is not None and d.find(a) == (a, a + 2 * 4096)
    assert ctx.vmalloc(7 * 4096) is None
    ctx.vfree(a)
    assert ctx.calls == 3


# ---------------------------------------------------------------------- must find something
class LeakyGlobal(GlobalDesign):
    """Forgets to free every 7th area: it stays busy although the test freed it."""

    name = "leaky"

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.frees = 0
        self.count_lock = threading.Lock()

    def _free(self, addr: int) -> None:
        with self.count_lock:
            self.frees += 1
            skip = self.frees % 7 == 0
        if not skip:
            super()._free(addr)


class LosingGlobal(GlobalDesign):
    """Drops every 5th lazily freed area instead of queueing it: space is lost."""

    name = "losing"

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.n = 0
        self.count_lock = threading.Lock()

    def free_vmap_area_noflush(self, area: Range) -> None:
        with self.count_lock:
            self.n += 1
            drop = self.n % 5 == 0
        if drop:
            self.add_lazy_nr(self.pages(area))
            with self.purge_vmap_area_lock:
                self._hand_drop(area)
            return
        super().free_vmap_area_noflush(area)


class ThrowingDrain(GlobalDesign):
    """The drain worker raises on its first run."""

    name = "throwing-drain"

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.lazy_max = 4

    def drain_vmap_area_work(self) -> None:
        raise RuntimeError("boom in drain")


class ThrowingAlloc(GlobalDesign):
    """Allocation raises an unexpected error after a while."""

    name = "throwing-alloc"

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.calls = 0

    def _alloc(self, size: int, align: int, vstart: int, vend: int) -> int:
        self.calls += 1
        if self.calls > 50:
            raise ValueError("allocator state corrupted")
        return super()._alloc(size, align, vstart, vend)


class NeverUnlocks(GlobalDesign):
    """free() leaves vmap_area_lock held: the next thread to need it blocks forever."""

    name = "never-unlocks"

    def find_unlink_vmap_area(self, addr: int) -> Range:
        area = super().find_unlink_vmap_area(addr)
        self.vmap_area_lock.acquire()
        return area


def test_a_leak_is_found_after_the_drain() -> None:
    res = run_combination(LeakyGlobal, cfg("fix_size", threads=2, loops=100))
    assert res.invariants == "violated: nothing lost"
    [f] = res.findings
    assert f.kind == "invariant" and "busy area(s) remain" in f.message


def test_lost_space_breaks_conservation() -> None:
    res = run_combination(LosingGlobal, cfg("fix_size", threads=2, loops=100))
    [f] = res.findings
    assert f.kind == "invariant"
    assert res.invariants.startswith("violated")


def test_a_drain_worker_exception_stops_the_run_with_its_traceback() -> None:
    res = run_combination(ThrowingDrain, cfg("fix_size", threads=2, loops=100_000))
    assert res.ops < 2 * 100_000  # stopped early, not run to the end
    kinds = [f.kind for f in res.findings]
    assert "exception" in kinds
    f = res.findings[kinds.index("exception")]
    assert "drain worker" in f.message and "boom in drain" in f.message
    assert "RuntimeError" in f.trace["traceback"]
    assert res.invariants.startswith("not checked")


def test_a_test_thread_exception_stops_every_thread() -> None:
    res = run_combination(ThrowingAlloc, cfg("fix_size", threads=4, loops=100_000))
    assert res.ops < 4 * 100_000
    assert res.findings and res.findings[0].kind == "exception"
    assert "allocator state corrupted" in res.findings[0].message
    assert "fix_size_alloc_test" in res.findings[0].message


def test_a_deadlock_is_reported_with_stacks_instead_of_hanging() -> None:
    res = run_combination(NeverUnlocks, cfg("fix_size", threads=2, loops=1000,
                                            stall_timeout=1.0))
    assert res.stalled
    [f] = res.findings
    assert f.kind == "deadlock" and "no progress" in f.message
    # Both threads wait for the lock the first free() left held (one of them holds it, and
    # waits for it itself: a self-deadlock).
    assert "waits for vmap_area_lock held by vmalloc_test/" in f.message
    stacks = f.trace["stacks"]
    assert any(name.startswith("vmalloc_test/") for name in stacks)
    assert any("global_.py" in line for lines in stacks.values() for line in lines)


def test_a_constructor_error_is_a_finding() -> None:
    class Broken(GlobalDesign):
        name = "broken"

        def __init__(self, *a: Any, **kw: Any) -> None:
            raise ZeroDivisionError("bad config")

    res = run_combination(Broken, cfg("fix_size"))
    assert [f.kind for f in res.findings] == ["exception"]
    assert "bad config" in res.findings[0].message


def test_run_result_percentiles() -> None:
    r = RunResult("x", 1, VmapConfig(), 1, 1, latencies_ns=[1000 * i for i in range(1, 101)])
    assert r.percentile_us(0.5) in (50.0, 51.0)
    assert r.percentile_us(0.99) == 99.0
    assert RunResult("x", 1, VmapConfig(), 1, 1).percentile_us(0.5) == 0.0


def test_table_has_seven_kernel_cases_and_one_of_ours() -> None:
    assert [c.index for c in TEST_CASES] == [0, 1, 2, 3, 4, 5, 6, None]
    assert [c.xfail for c in TEST_CASES].count(True) == 1
