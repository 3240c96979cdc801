"""Protocol mutants are found at spec level, on the implementation catalog's own scenarios, with
shortest counterexamples; the correct specs pass the same scenarios."""

from __future__ import annotations

import pytest

from checker.designs import resolve_design
from checker.mutants import catalog_scenario
from checker.result import Outcome
from checker.spec_check import run_spec_check, spec_name_for
from spec.mutants import SPEC_MUTANTS
from spec.registry import base_spec_name

EXPECTED = {
    "global-abba": ("deadlock", "deadlock"),
    "global-busy-unlocked": ("invariant", "lock-protection"),
    "nodes-pool-double": ("invariant", "single-owner"),
}


def test_every_spec_mutant_names_an_implementation_mutant() -> None:
    for name in SPEC_MUTANTS:
        cls = resolve_design(name)
        assert getattr(cls, "mutant_of", None) == base_spec_name(name)
        assert spec_name_for(cls) == name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_protocol_mutant_found_at_spec_level(name: str) -> None:
    cls = resolve_design(name)
    scenario = catalog_scenario(cls.catalog, name)  # type: ignore[attr-defined]
    res = run_spec_check(cls, scenario)
    kind, invariant = EXPECTED[name]
    assert res.outcome is Outcome.VIOLATION
    assert len(res.findings) == 1
    f = res.findings[0]
    assert f.kind == kind
    trace = f.trace
    assert trace["kind"] == "spec-path" and trace["spec"] == name
    assert trace["depth"] == len(trace["steps"]) > 0
    if invariant is not None:
        assert trace["invariant"] == invariant
    # The same search without symmetry finds a counterexample of the same (shortest) length.
    flat = run_spec_check(cls, scenario, type("O", (), {"symmetry": False})())
    assert flat.findings[0].trace["depth"] == trace["depth"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parent_spec_passes_the_mutant_scenario(name: str) -> None:
    cls = resolve_design(name)
    scenario = catalog_scenario(cls.catalog, name)  # type: ignore[attr-defined]
    parent = resolve_design(base_spec_name(name))
    res = run_spec_check(parent, scenario)
    assert res.outcome is Outcome.OK, [f.message for f in res.findings]


def test_busy_unlocked_is_caught_at_its_unlocked_access() -> None:
    cls = resolve_design("global-busy-unlocked")
    res = run_spec_check(cls, catalog_scenario(cls.catalog, cls.name))  # type: ignore[attr-defined]
    f = res.findings[0]
    last = f.trace["steps"][-1]
    assert "without vmap_area_lock" in last["step"]
    assert "vmap_area_lock" in f.message and "busy" in f.message
