"""Refinement: every explored execution of a correct design maps onto its spec, and a design
that departs from its spec (a lock the spec does not name, a range moved where the spec does
not move it) is reported as a ``refinement`` finding at the first step where they part."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checker.model_check import model_check
from checker.refinement import RefinementObserver
from checker.result import Outcome
from checker.scenario import Scenario, default_scenario
from impl.config import VmapConfig
from impl.designs.base import Range
from impl.designs.global_ import GlobalDesign
from impl.freespace import merge_or_add_vmap_area
from impl.runtime import Runtime
from spec.program import Alloc, Find, Free, Op, Purge, ThreadProgram


class GlobalStatsLock(GlobalDesign):
    """``find`` also takes a statistics lock that the global spec does not name."""

    name = "test-global-stats-lock"
    spec_name = "global"

    def __init__(self, runtime: Runtime, config: VmapConfig | None = None) -> None:
        super().__init__(runtime, config)
        self.vmap_stats_lock = self._new_lock("vmap_stats_lock")

    def _find(self, addr: int) -> Range | None:
        with self.vmap_stats_lock:
            return super()._find(addr)


class GlobalEagerFree(GlobalDesign):
    """``free`` gives the area straight back to the free tree: the spec moves it to the lazy
    list (and counts it in ``vmap_lazy_nr``) instead."""

    name = "test-global-eager-free"
    spec_name = "global"

    def free_vmap_area_noflush(self, area: Range) -> None:
        with self.free_vmap_area_lock:
            merge_or_add_vmap_area(self.free_vmap_area_root, *area)
            self._hand_drop(area)


def find_scenario() -> Scenario:
    prog = (Alloc(1, "a"), Find("a"), Free("a"))
    return Scenario(tuple(ThreadProgram(i, prog) for i in range(2)),
                    VmapConfig(pages=4, nr_cpus=2, lazy_max=1), "find")


def _check(design: type[GlobalDesign] | str, scenario: Scenario) -> tuple[object, ...]:
    obs = RefinementObserver()
    res = model_check(design, scenario, observers=[obs], timeout=120)
    return res, obs


@pytest.mark.parametrize("design", ["global", "nodes", "percpu"])
def test_correct_designs_refine_their_specs(design: str) -> None:
    res, obs = _check(design, default_scenario())
    assert res.outcome is Outcome.OK, [f.message for f in res.findings]  # type: ignore[attr-defined]
    st = obs.stats()  # type: ignore[attr-defined]
    assert st["executions"] > 1 and st["steps_checked"] > 0
    assert st["refinement_findings"] == 0


def test_global_with_find_refines_its_spec() -> None:
    res, _ = _check("global", find_scenario())
    assert res.outcome is Outcome.OK  # type: ignore[attr-defined]


def test_a_lock_the_spec_does_not_name_is_a_refinement_finding() -> None:
    res, obs = _check(GlobalStatsLock, find_scenario())
    found = [f for f in res.findings if f.kind == "refinement"]  # type: ignore[attr-defined]
    assert found, [f.message for f in res.findings]  # type: ignore[attr-defined]
    assert "vmap_stats_lock" in found[0].message
    trace = obs.details[0]  # type: ignore[attr-defined]
    # The first step where they part is the acquisition of the unknown lock.
    assert trace["event"]["kind"] == "acquire" and trace["event"]["obj"] == "vmap_stats_lock"
    assert trace["impl_state"]["not in the spec"]["locks"] == ["vmap_stats_lock"]
    assert trace["spec_states"] and trace["spec_allowed"]
    assert any("find(a)" in a for a in trace["spec_allowed"])


def test_a_range_moved_where_the_spec_does_not_is_a_refinement_finding() -> None:
    res, obs = _check(GlobalEagerFree, default_scenario())
    found = [f for f in res.findings if f.kind == "refinement"]  # type: ignore[attr-defined]
    assert found, [f.message for f in res.findings]  # type: ignore[attr-defined]
    trace = obs.details[0]  # type: ignore[attr-defined]
    # Both states: the area is back in the implementation's free tree, in the spec's hands.
    assert any(d.startswith("free: implementation") for d in trace["differences"])
    # The spec's free goes on with the atomic add; the implementation took the free lock and
    # put the area back in the free tree.
    assert trace["event"]["kind"] == "acquire"
    assert trace["event"]["obj"] == "free_vmap_area_lock"
    assert "atomic_long_add_return" in trace["spec_allowed"][0]
    assert "leaves the spec global" in found[0].message


def test_check_both_merges_the_spec_and_the_implementation_halves() -> None:
    from checker.designs import resolve_design
    from checker.refinement import check_both

    ok = check_both(resolve_design("global"), default_scenario(), timeout=120)
    assert ok.outcome is Outcome.OK
    assert ok.config["target"] == "both" and ok.config["spec"] == "global"
    assert ok.stats["spec"]["complete"] and ok.stats["refinement"]["refinement_findings"] == 0
    bad = check_both(GlobalEagerFree, default_scenario(), timeout=120)
    assert bad.outcome is Outcome.VIOLATION
    assert [f.kind for f in bad.findings] == ["refinement"]


def test_an_uncoalesced_free_tree_does_not_refine() -> None:
    from checker.designs import resolve_design
    from checker.mutants import catalog_scenario

    cls = resolve_design("global-merge-skip-next")
    res, obs = _check(cls, catalog_scenario(cls.catalog, cls.name))  # type: ignore[attr-defined]
    assert "refinement" in {f.kind for f in res.findings}  # type: ignore[attr-defined]
    diffs = obs.details[0]["differences"]  # type: ignore[attr-defined]
    assert any(d.startswith("free: implementation") for d in diffs)


@st.composite
def _programs(draw: st.DrawFn) -> tuple[ThreadProgram, ...]:
    out = []
    for i in range(2):
        ops: list[Op] = []
        live: list[str] = []
        for k in range(draw(st.integers(1, 3))):
            kind = draw(st.sampled_from(["alloc", "free", "find", "purge"]))
            if kind == "alloc" or (not live and kind in ("free", "find")):
                ops.append(Alloc(draw(st.integers(1, 2)), f"s{k}"))
                live.append(f"s{k}")
            elif kind == "free":
                ops.append(Free(live.pop()))
            elif kind == "find":
                ops.append(Find(live[-1]))
            else:
                ops.append(Purge())
        out.append(ThreadProgram(i, tuple(ops)))
    return tuple(out)


@settings(max_examples=12)
@given(_programs(), st.sampled_from(["global", "nodes", "percpu"]), st.integers(0, 2),
       st.sampled_from([1, 2, 16]))
def test_generated_scenarios_refine(progs: tuple[ThreadProgram, ...], design: str,
                                    lazy_max: int, zone_pages: int) -> None:
    scenario = Scenario(progs, VmapConfig(pages=6, nr_cpus=2, lazy_max=lazy_max,
                                          zone_pages=zone_pages), "generated")
    obs = RefinementObserver()
    res = model_check(design, scenario, observers=[obs], max_executions=40)
    assert not [f.message for f in res.findings if f.kind == "refinement"]
    assert obs.stats()["steps_checked"] > 0
