"""Simulation driver, cases adapter, cost model, fit and validation (bounded sizes)."""

from __future__ import annotations

import json
import math

import pytest

from checker.simulate import cases, driver, fit
from checker.simulate.costs import FITTED_PATH, CostModel, load_fitted, parse_overrides
from checker.simulate.driver import DesignFailure, SimConfig, SimResult, run_simulation
from checker.simulate.fit import (
    OBJECTIVES,
    log_error,
    max_log_error,
    minimax_error,
    nelder_mead,
)
from checker.simulate.published import V1_GLOBAL, V1_PATCHED, V3_MASK7
from checker.simulate.topology import THREADRIPPER_3970X, Topology
from checker.simulate.validate import validate
from checker.stress import workloads
from checker.stress.workloads import by_mask, by_names
from impl.designs import get_design
from impl.designs.global_ import GlobalDesign
from impl.runtime import Runtime

COSTS = CostModel(call_ns=150, node_ns=2, lock_ns=40, xfer_ns=120, tlb_ns=200)
FIX = by_names("fix_size")


def sim(design: str, cpus: int, ops: int = 150, seed: int = 0, **kw: object) -> object:
    return run_simulation(SimConfig(get_design(design), cpus, FIX, COSTS, ops=ops, seed=seed,
                                    **kw))  # type: ignore[arg-type]


def test_same_seed_same_numbers() -> None:
    a = run_simulation(SimConfig(get_design("global"), 4, FIX, COSTS, ops=200, seed=7))
    b = run_simulation(SimConfig(get_design("global"), 4, FIX, COSTS, ops=200, seed=7))
    assert (a.per_op_us, a.p99_us, a.makespan_us) == (b.per_op_us, b.p99_us, b.makespan_us)
    assert [r.to_json() for r in a.locks] == [r.to_json() for r in b.locks]


def test_another_seed_other_numbers() -> None:
    a = run_simulation(SimConfig(get_design("global"), 4, FIX, COSTS, ops=200, seed=1))
    b = run_simulation(SimConfig(get_design("global"), 4, FIX, COSTS, ops=200, seed=2))
    assert a.makespan_us != b.makespan_us


@pytest.mark.parametrize("design", ["global", "nodes", "percpu"])
def test_every_design_runs_and_drains_clean(design: str) -> None:
    r = run_simulation(SimConfig(get_design(design), 4, FIX, COSTS, ops=300))
    assert r.per_op_us > 0 and r.makespan_us > 0
    assert not r.failed
    assert r.lock_classes()


def test_one_cpu_never_waits_and_many_cpus_contend_on_the_global_busy_lock() -> None:
    one = run_simulation(SimConfig(get_design("global"), 1, FIX, COSTS, ops=200))
    assert one.wait_share == 0.0
    many = run_simulation(SimConfig(get_design("global"), 8, FIX, COSTS, ops=200))
    assert many.per_op_us > 3 * one.per_op_us
    top = many.lock_classes()[0]
    assert top.name == "vmap_area_lock" and top.wait_share > 0.3


def test_nodes_contend_less_than_global() -> None:
    g = run_simulation(SimConfig(get_design("global"), 8, FIX, COSTS, ops=300))
    n = run_simulation(SimConfig(get_design("nodes"), 8, FIX, COSTS, ops=300))
    assert n.per_op_us < g.per_op_us


def test_atomics_are_reported_as_lock_rows() -> None:
    r = run_simulation(SimConfig(get_design("nodes"), 4, FIX, COSTS, ops=200))
    assert any(row.lock_class == "vmap_lazy_nr (atomic)" for row in r.locks)


def test_steady_state_is_reached_with_steady_ops() -> None:
    ops = cases.steady_ops(FIX, 2, 2)
    r = run_simulation(SimConfig(get_design("nodes"), 2, FIX, COSTS, ops=ops))
    assert r.steady and r.drain_runs >= cases.STEADY_CYCLES + 1


def test_mask_7_with_scaled_setups() -> None:
    tests, _ = by_mask(7)
    r = run_simulation(SimConfig(get_design("global"), 2, tests, COSTS, ops=20,
                                 setup_scale=256))
    assert set(r.tests) == {"fix_size", "full_fit", "long_busy_list"} and not r.failed


def test_scaled_setups_restores_the_cases() -> None:
    before = (workloads.LONG_BUSY_LIST_LEN, vars(workloads)["lazy_max_pages"](64))
    with cases.scaled_setups(8):
        assert workloads.LONG_BUSY_LIST_LEN == before[0] // 8
        assert vars(workloads)["lazy_max_pages"](64) == before[1] // 8
    assert (workloads.LONG_BUSY_LIST_LEN, vars(workloads)["lazy_max_pages"](64)) == before


class RaisingDesign(GlobalDesign):
    name = "raising"

    def _alloc(self, size: int, align: int, vstart: int, vend: int) -> int:
        if self.rt.cpu_id() == 1:
            raise RuntimeError("broken on purpose")
        return super()._alloc(size, align, vstart, vend)


class LeakingDesign(GlobalDesign):
    """Forgets every tenth free: areas stay busy."""

    name = "leaking"

    def __init__(self, runtime: Runtime, config: object = None) -> None:
        super().__init__(runtime, config)  # type: ignore[arg-type]
        self.frees = 0

    def _free(self, addr: int) -> None:
        self.frees += 1
        if self.frees % 10:
            super()._free(addr)


class AbbaDesign(GlobalDesign):
    """Takes the busy lock inside the free lock on CPU 0, and the other way round elsewhere."""

    name = "abba"

    def _alloc(self, size: int, align: int, vstart: int, vend: int) -> int:
        first, second = ((self.free_vmap_area_lock, self.vmap_area_lock)
                         if self.rt.cpu_id() == 0 else
                         (self.vmap_area_lock, self.free_vmap_area_lock))
        with first:
            with second:
                pass
        return super()._alloc(size, align, vstart, vend)


@pytest.mark.parametrize("cls, match", [(RaisingDesign, "broken on purpose"),
                                        (LeakingDesign, "still busy"),
                                        (AbbaDesign, "blocked forever")])
def test_a_broken_design_is_reported(cls: type[GlobalDesign], match: str) -> None:
    with pytest.raises(DesignFailure) as info:
        run_simulation(SimConfig(cls, 2, FIX, COSTS, ops=100))
    assert match in str(info.value) or match in str(info.value.__cause__)


def test_cost_model_rejects_negative_and_parses_overrides() -> None:
    with pytest.raises(ValueError):
        CostModel(call_ns=-1, node_ns=0, lock_ns=0, xfer_ns=0, tlb_ns=0)
    assert parse_overrides("xfer_ns=120, tlb_ns=0") == {"xfer_ns": 120.0, "tlb_ns": 0.0}
    for bad in ("foo=1", "xfer_ns", "xfer_ns=fast"):
        with pytest.raises(ValueError):
            parse_overrides(bad)
    assert COSTS.replace(xfer_ns=1).xfer_ns == 1


def test_fitted_costs_are_committed_and_loaded() -> None:
    data = json.loads(FITTED_PATH.read_text())
    assert set(data["params"]) == set(CostModel.names())
    costs, record = load_fitted()
    assert costs.to_json() == {k: float(v) for k, v in data["params"].items()}
    assert record["fitted_to"]["points"] == [list(p) for p in V1_GLOBAL.points]


def test_nelder_mead_finds_a_quadratic_minimum() -> None:
    x, fx, evals = nelder_mead(lambda v: (v[0] - 1) ** 2 + (v[1] + 2) ** 2 + 3, [0.0, 0.0],
                               0.5, 400, ftol=1e-12)
    assert fx == pytest.approx(3.0, abs=1e-6)
    assert x[0] == pytest.approx(1.0, abs=1e-3) and x[1] == pytest.approx(-2.0, abs=1e-3)
    assert evals <= 400


def test_log_error_is_zero_on_the_published_curve() -> None:
    assert log_error([p for _, p in V1_GLOBAL.points], V1_GLOBAL) == 0.0
    assert log_error([2 * p for _, p in V1_GLOBAL.points], V1_GLOBAL) == pytest.approx(
        6 * math.log(2) ** 2)


def test_minimax_objective_follows_the_worst_point() -> None:
    pub = [p for _, p in V1_GLOBAL.points]
    assert minimax_error(pub, V1_GLOBAL) == 0.0
    one_off = [pub[0] * 1.2, *pub[1:]]
    spread = [p * (1.1 if i % 2 else 1 / 1.1) for i, p in enumerate(pub)]
    # The sum of squares prefers one bad point to six middling ones; the worst point does not.
    assert log_error(one_off, V1_GLOBAL) < log_error(spread, V1_GLOBAL)
    assert minimax_error(one_off, V1_GLOBAL) > minimax_error(spread, V1_GLOBAL)
    assert max_log_error(one_off, V1_GLOBAL) == pytest.approx(math.log(1.2))
    assert set(OBJECTIVES) == {"lsq", "minimax"}


def test_fit_and_validation_measure_the_same_steady_state() -> None:
    assert fit.FIT_CYCLES == cases.STEADY_CYCLES
    assert cases.steady_ops(FIX, 8, 64) == cases.steady_ops(FIX, 8, 64,
                                                            cycles=fit.FIT_CYCLES)


def test_published_figures() -> None:
    assert V1_GLOBAL.jobs == V1_PATCHED.jobs == (1, 2, 4, 8, 16, 32)
    assert V3_MASK7.ratio == pytest.approx(12.7, abs=0.05)


def test_validation_structure_bounded() -> None:
    val = validate(COSTS, ops=40, v3=False, percpu=False)
    assert len(val.points) == 12
    assert {p.design for p in val.points} == {"global", "nodes"}
    assert any("speedup" in k for k in val.targets)
    assert any(r.name.startswith("speedup") for r in val.ratios)
    assert val.to_json()["points"][0]["relative_error"] == val.points[0].rel_error


# Figures of the model before cache topologies existed (same costs, seed and sizes): the
# default (flat) topology must reproduce them exactly.
PRE_TOPOLOGY = {"global": (2.641061338289963, 792.9175929254184),
                "nodes": (1.6100284927939907, 484.0772969255064),
                "percpu": (0.556426731093276, 170.37599564465788)}


@pytest.mark.parametrize("design", sorted(PRE_TOPOLOGY))
def test_flat_topology_gives_the_numbers_of_the_model_without_topology(design: str) -> None:
    costs = CostModel(call_ns=100, node_ns=2, lock_ns=20, xfer_ns=100, tlb_ns=300)
    for topology in (None, Topology.flat(8)):
        r = run_simulation(SimConfig(get_design(design), 4, FIX, costs, ops=300, seed=3,
                                     online_cpus=8, topology=topology, resident=0))
        assert (r.per_op_us, r.makespan_us) == pytest.approx(PRE_TOPOLOGY[design], rel=1e-12)


def _busy_hold(r: SimResult) -> float:
    row = next(x for x in r.lock_classes() if x.name == "vmap_area_lock")
    return row.hold_ns / row.acquisitions


def test_resident_areas_make_the_busy_tree_deep_at_every_job_count() -> None:
    """Without the machine's own areas the busy tree holds only the jobs' live areas, so a
    critical section misses on fewer lines at 4 jobs than at 8; with them both miss alike."""
    holds = {(n, k): _busy_hold(run_simulation(SimConfig(
                 get_design("global"), n, FIX, COSTS, ops=200, online_cpus=8, resident=k)))
             for n in (4, 8) for k in (0, driver.RESIDENT_AREAS)}
    assert holds[4, 0] < 0.8 * holds[8, 0]
    assert holds[4, driver.RESIDENT_AREAS] == pytest.approx(holds[8, driver.RESIDENT_AREAS],
                                                            rel=0.02)
    assert holds[4, driver.RESIDENT_AREAS] > 1.2 * holds[4, 0]


def test_resident_areas_change_little_when_nothing_is_shared_and_are_freed() -> None:
    """On one CPU every line is local: the residents only add tree levels at ``node_ns``.
    They are the machine's, not the test's: freed before the final check, nothing lost."""
    a = run_simulation(SimConfig(get_design("global"), 1, FIX, COSTS, ops=300, resident=0))
    b = run_simulation(SimConfig(get_design("global"), 1, FIX, COSTS, ops=300))
    assert b.resident == driver.RESIDENT_AREAS and a.resident == 0
    # Insert, lookup and erase each walk ten more levels (1025 areas against one), no misses.
    assert (b.per_op_us - a.per_op_us) * 1e3 == pytest.approx(3 * 10 * COSTS.node_ns, rel=0.05)
    # Beyond a few dozen areas the count no longer matters (the lines a walk misses are capped).
    few = run_simulation(SimConfig(get_design("global"), 8, FIX, COSTS, ops=200,
                                   online_cpus=8, resident=64))
    many = run_simulation(SimConfig(get_design("global"), 8, FIX, COSTS, ops=200,
                                    online_cpus=8))
    assert few.per_op_us == pytest.approx(many.per_op_us, rel=0.05)
    with pytest.raises(ValueError):
        SimConfig(get_design("global"), 1, FIX, COSTS, resident=-1)


def test_shared_cache_domains_make_global_cheaper_at_four_jobs_per_ccx() -> None:
    """On the published machine 32 jobs put four on each CCX: near-first hand-offs keep the
    busy lock inside a CCX and its lines in the shared L3."""
    flat = run_simulation(SimConfig(get_design("global"), 32, FIX, COSTS, ops=60,
                                    online_cpus=64))
    tr = run_simulation(SimConfig(get_design("global"), 32, FIX, COSTS, ops=60,
                                  topology=THREADRIPPER_3970X))
    assert tr.nr_cpus == flat.nr_cpus == 64
    assert tr.per_op_us < 0.8 * flat.per_op_us
    # One job per CCX: nothing is near, the two machines agree closely.
    flat8 = run_simulation(SimConfig(get_design("global"), 8, FIX, COSTS, ops=100,
                                     online_cpus=64))
    tr8 = run_simulation(SimConfig(get_design("global"), 8, FIX, COSTS, ops=100,
                                   topology=THREADRIPPER_3970X))
    assert tr8.per_op_us == pytest.approx(flat8.per_op_us, rel=0.15)


def test_topology_and_online_cpus_must_agree() -> None:
    with pytest.raises(ValueError):
        SimConfig(get_design("global"), 4, FIX, COSTS, online_cpus=8,
                  topology=THREADRIPPER_3970X)


def test_the_kernels_vmalloc_range_keeps_pooled_designs_from_failing_allocations() -> None:
    """A managed range the size of the set-ups makes ``nodes`` fail allocations while its
    pools hold freed space, and each failure purges; the kernel's 32 TiB never runs out.  The
    global design caches nothing, so the range does not matter to it."""
    tests, _ = by_mask(7)
    cfg = SimConfig(get_design("nodes"), 8, tests, COSTS, ops=100, setup_scale=64)
    assert cfg.vmap_config().pages == driver.MIN_PAGES == 1 << 33
    kernel = run_simulation(cfg)
    small = run_simulation(SimConfig(get_design("nodes"), 8, tests, COSTS, ops=100,
                                     setup_scale=64, pages=1 << 16))
    assert small.purges > kernel.purges and small.makespan_us > kernel.makespan_us
    g = [run_simulation(SimConfig(get_design("global"), 8, tests, COSTS, ops=100,
                                  setup_scale=64, pages=p)) for p in (None, 1 << 16)]
    assert g[0].makespan_us == g[1].makespan_us and g[0].purges == g[1].purges
