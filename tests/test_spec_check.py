"""``run_spec_check``: which spec a design gets, the Result it returns (JSON, stats, exit
codes), incomplete searches, vacuous specs, and designs without a spec."""

from __future__ import annotations

import json
from typing import Any

import pytest

from checker.designs import DesignError, resolve_design
from checker.result import ExitCode, Outcome
from checker.scenario import default_scenario
from checker.spec_check import SpecCheckOptions, format_text, run_spec_check, spec_name_for
from impl.designs.global_ import GlobalDesign
from spec import registry
from spec.global_ import GlobalSpec
from spec.protocol import Instr


@pytest.mark.parametrize("design", ["global", "nodes", "percpu"])
def test_correct_design_spec_is_ok(design: str) -> None:
    res = run_spec_check(resolve_design(design), default_scenario())
    assert res.outcome is Outcome.OK and res.exit_code is ExitCode.OK
    data = json.loads(res.dumps())
    assert data["config"]["target"] == "spec" and data["config"]["spec"] == design
    st = data["stats"]["spec"]
    for key in ("distinct_states", "transitions", "depth", "states_per_second", "seconds"):
        assert key in st
    assert st["complete"] is True
    assert any(v["seen_at_depth"] is not None for v in st["sometimes"].values())
    assert format_text(res)[0].startswith(f"spec {design}: ok")


def test_spec_choice_by_name_attribute_and_parent() -> None:
    assert spec_name_for(resolve_design("global-abba")) == "global-abba"
    # A mutant whose bug is not a protocol bug is checked against its design's spec.
    assert spec_name_for(resolve_design("global-merge-skip-next")) == "global"

    class Mine(GlobalDesign):
        name = "mine"
        spec_name = "global"
    assert spec_name_for(Mine) == "global"


def test_design_without_spec_is_a_usage_error() -> None:
    class Orphan(GlobalDesign):
        name = "orphan"
    with pytest.raises(DesignError, match="has no spec"):
        run_spec_check(Orphan, default_scenario())

    class Wrong(GlobalDesign):
        name = "wrong"
        spec_name = "nonesuch"
    with pytest.raises(DesignError, match="spec_name"):
        run_spec_check(Wrong, default_scenario())


def test_bounded_search_is_incomplete_not_ok() -> None:
    res = run_spec_check(resolve_design("global"), default_scenario(threads=3, ops=2),
                         SpecCheckOptions(max_states=1000))
    assert res.outcome is Outcome.INCOMPLETE and res.exit_code is ExitCode.INCOMPLETE
    assert res.stats["spec"]["stopped_by"] == "max-states"


class NeverPurgesSpec(GlobalSpec):
    """A spec that rules out too much: the purge never gives anything back."""

    name = "never-purges"

    def purge_lazy(self) -> list[Instr]:
        return []


def test_vacuous_spec_is_a_finding(monkeypatch: Any) -> None:
    monkeypatch.setitem(registry.SPECS, "never-purges", NeverPurgesSpec)

    class Vacuous(GlobalDesign):
        name = "vacuous"
        spec_name = "never-purges"
    res = run_spec_check(Vacuous, default_scenario())
    assert res.outcome is Outcome.VIOLATION
    assert any("sometimes-property 'purge'" in f.message and "vacuous" in f.message
               for f in res.findings)
