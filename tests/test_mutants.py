"""The mutant catalog and the analyses on the real designs.

Every mutant must be found, with the finding kind its note names; every correct design must
come out clean under the same analyses (no false alarm).  The lock-order graph must predict the
ABBA deadlock from a single thread, where no schedule can deadlock.
"""

from __future__ import annotations

import pytest

from checker.analyses.lockgraph import LockGraphObserver
from checker.analyses.lockset import LocksetObserver
from checker.commands.lockgraph import coverage_scenario
from checker.model_check import model_check
from checker.mutants import catalog_scenario, check_one
from impl.designs import builtin_designs

DESIGNS = builtin_designs()
MUTANTS = sorted(n for n, c in DESIGNS.items() if getattr(c, "mutant_of", None))
CORRECT = sorted(n for n, c in DESIGNS.items() if not getattr(c, "mutant_of", None))


def test_catalog_has_the_required_bugs() -> None:
    assert len(MUTANTS) >= 10
    for name in MUTANTS:
        cls = DESIGNS[name]
        assert cls.bug and cls.source and cls.expected, name  # type: ignore[attr-defined]
        catalog_scenario(cls.catalog, name)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", MUTANTS)
def test_every_mutant_is_killed_with_its_expected_kind(name: str) -> None:
    row = check_one(DESIGNS[name])
    assert row.found == row.expected, row.message


@pytest.mark.parametrize("name", CORRECT)
def test_correct_designs_raise_no_alarm(name: str) -> None:
    row = check_one(DESIGNS[name])
    assert row.found is None, row.message
    assert row.outcome == "ok"


def test_lock_graph_predicts_abba_from_one_thread() -> None:
    obs = LockGraphObserver()
    result = model_check("global-abba", coverage_scenario(1, 1, 4, 1, 1), observers=[obs])
    assert not any(f.kind == "deadlock" for f in result.findings)  # one thread cannot deadlock
    cycles = obs.graph.cycles()
    assert len(cycles) == 1
    assert {(e.held, e.acquired) for e in cycles[0]} == {
        ("vmap_area_lock", "purge_vmap_area_lock"), ("purge_vmap_area_lock", "vmap_area_lock")}
    assert all(e.location for e in cycles[0])


@pytest.mark.parametrize("name", CORRECT)
def test_lock_graph_of_correct_designs_has_no_cycle(name: str) -> None:
    obs = LockGraphObserver()
    # Nesting is a property of paths: one thread running every operation twice covers them.
    model_check(name, coverage_scenario(1, 2, 4, 1, 1), observers=[obs], stop_on_first=False)
    assert obs.graph.cycles() == []
    assert obs.graph.findings() == []
    edges = {(e.held, e.acquired) for e in obs.graph.edges()}
    # The kernel's purge nesting (reference section 1.3): the mutex over the free lock.
    assert ("vmap_purge_lock", "free_vmap_area_lock") in edges


def test_lockset_names_the_structure_and_both_accesses() -> None:
    obs = LocksetObserver()
    result = model_check("global-busy-unlocked", catalog_scenario({"threads": 2, "ops": 1}, "x"),
                         observers=[obs], track_access=True)
    races = [f for f in result.findings if f.kind == "race"]
    assert races and "vmap_area_root" in races[0].message
    msg = races[0].message
    assert "T0" in msg and "T1" in msg and "global_mutants.py:" in msg and "holding" in msg


def test_lockset_is_quiet_on_the_correct_global_design() -> None:
    obs = LocksetObserver()
    result = model_check("global", catalog_scenario({"threads": 2, "ops": 1}, "x"),
                         observers=[obs], track_access=True)
    assert result.findings == [] and obs.accesses > 0


@pytest.mark.parametrize(("design", "cycle"), [("global-abba", True), ("global", False)])
def test_lock_graph_from_a_stress_run(design: str, cycle: bool) -> None:
    """The inversion is in the graph even when the two threads deadlock on it at its first
    occurrence (edges are recorded before waiting); a short stall timeout ends such a run."""
    import json

    from click.testing import CliRunner

    from checker.cli import cli

    out = CliRunner().invoke(cli, ["stress", "--design", design, "--threads", "2", "--test",
                                   "fix_size,vmallocinfo", "--loops", "200", "--lock-order",
                                   "--stall-timeout", "3", "--json"])
    result = json.loads(out.stdout[out.stdout.index("{"):])
    found = [f for f in result["findings"] if f["kind"] == "lock-order"]
    assert bool(found) is cycle
    assert out.exit_code == (1 if cycle else 0)
