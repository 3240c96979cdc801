"""model_check: finds what it must, finds nothing on correct designs, and its reductions lose
nothing (every final state plain DFS reaches, DPOR and DPOR with the state cache reach too)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from checker import model_check
from checker.cli import cli
from checker.designs import load_design_file
from checker.events import OP_END
from checker.explore.execution import ExecutionOutcome
from checker.result import Finding, Outcome
from checker.scenario import Scenario, default_scenario
from impl.config import VmapConfig
from spec.program import Alloc, Find, Free, Purge, ThreadProgram

DESIGNS = Path(__file__).parent / "designs"
ABBA = f"{DESIGNS / 'abba.py'}:AbbaDesign"
FIXED = f"{DESIGNS / 'abba.py'}:AbbaFixedDesign"
ListAllocator = load_design_file(DESIGNS / "abba.py", "AbbaFixedDesign")


def sc(*progs: list[Any], pages: int = 2, lazy: int = 1) -> Scenario:
    return Scenario(tuple(ThreadProgram(i % 2, tuple(p)) for i, p in enumerate(progs)),
                    VmapConfig(pages=pages, nr_cpus=2, lazy_max=lazy), "t")


class FinalStates:
    """Every final state of the search: ownership map plus what each operation returned.
    The results seen so far are history the program state may have forgotten (a freed slot's
    address), so they are this observer's ``state_key``: that keeps the state cache exact."""

    def __init__(self) -> None:
        self.finals: set[Any] = set()
        self.results: list[tuple[str, str, str]] = []

    def state_key(self) -> Any:
        return tuple(sorted(self.results))

    def on_execution_start(self, design: object, scenario: object) -> None:
        self.results = []

    def on_event(self, event: Any) -> None:
        if event.kind == OP_END:
            self.results.append((event.thread, event.obj, event.detail))

    def on_execution_end(self, outcome: ExecutionOutcome) -> list[Finding]:
        if outcome.status == "ok":
            assert outcome.design is not None
            snap = outcome.design.snapshot()
            self.finals.add((tuple(sorted(snap.areas.items())), self.state_key()))
        return []


def finals(design: Any, scenario: Scenario, **kw: Any) -> tuple[set[Any], dict[str, Any]]:
    obs = FinalStates()
    res = model_check(design, scenario, observers=[obs], **kw)
    assert res.outcome is Outcome.OK, [f.message for f in res.findings]
    return obs.finals, res.stats


CROSS = {
    "global alloc|alloc": ("global", sc([Alloc(1, "a")], [Alloc(2, "b")])),
    "global free|purge": ("global", sc([Alloc(1, "a"), Free("a")], [Purge()], pages=2, lazy=4)),
    "nodes alloc|alloc": ("nodes", sc([Alloc(1, "a")], [Alloc(2, "b")])),
    "list 2x2": (ListAllocator, default_scenario(2, 2, pages=4)),
    "list 3x1": (ListAllocator, default_scenario(3, 1, pages=3)),
}


@pytest.mark.parametrize("case", sorted(CROSS))
def test_reductions_reach_every_final_state(case: str) -> None:
    design, scenario = CROSS[case]
    full, full_stats = finals(design, scenario, reduction=False, state_cache=False)
    dpor, dpor_stats = finals(design, scenario, state_cache=False)
    cached, _ = finals(design, scenario, state_cache=True)
    assert full and dpor == full and cached == full
    assert dpor_stats["executions"] <= full_stats["executions"]


@pytest.mark.parametrize("bound", [0, 1, 2])
@pytest.mark.parametrize("case", ["global alloc|alloc", "global free|purge", "list 2x2",
                                  "list 3x1"])
def test_bounded_reductions_reach_every_final_state_within_the_bound(case: str,
                                                                      bound: int) -> None:
    design, scenario = CROSS[case]
    full, _ = finals(design, scenario, reduction=False, state_cache=False,
                     preemption_bound=bound)
    bpor, _ = finals(design, scenario, state_cache=False, preemption_bound=bound)
    cached, _ = finals(design, scenario, state_cache=True, preemption_bound=bound)
    assert full and bpor == full and cached == full


@st.composite
def small_programs(draw: st.DrawFn) -> Scenario:
    progs = []
    for t in range(2):
        n = draw(st.sampled_from([1, 2]))
        body: list[Any] = [Alloc(n, "a")]
        body += draw(st.sampled_from([[], [Free("a")], [Find("a")]]))
        if t == 1 and draw(st.booleans()):
            body = [Purge()]
        progs.append(body)
    return sc(*progs, pages=draw(st.sampled_from([2, 3])), lazy=draw(st.sampled_from([0, 1, 4])))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_programs())
def test_dpor_matches_plain_dfs_on_generated_global_scenarios(scenario: Scenario) -> None:
    full_obs = FinalStates()
    full = model_check("global", scenario, observers=[full_obs], reduction=False,
                       max_executions=1500)
    assume(full.outcome is Outcome.OK)
    dpor, _ = finals("global", scenario, state_cache=False)
    cached, _ = finals("global", scenario, state_cache=True)
    assert dpor == full_obs.finals == cached


def test_default_scenario_on_global_is_ok_and_reaches_the_interesting_paths() -> None:
    res = model_check("global", default_scenario(), state_cache=True)
    assert res.outcome is Outcome.OK and res.stats["exhaustive"]
    for key in ("executions_with_drain", "executions_with_alloc_purge",
                "executions_with_alloc_failed"):
        assert res.stats[key] > 0, key
    for key in ("executions", "scheduling_points", "pruned_by_reduction", "max_depth",
                "seconds", "executions_per_second"):
        assert key in res.stats


@pytest.mark.parametrize("design", ["global", "nodes", "percpu"])
def test_correct_designs_are_ok(design: str) -> None:
    res = model_check(design, default_scenario(2, 1))
    assert res.outcome is Outcome.OK, [f.message for f in res.findings]


MUTANTS = [
    ("global-abba", sc([Alloc(1, "a"), Find("a"), Free("a")],
                       [Alloc(1, "a"), Find("a"), Free("a")], pages=4), "deadlock",
     "wait-for cycle"),
    ("global-lazy-nonatomic", default_scenario(2, 1, pages=4), "invariant", "vmap_lazy_nr"),
    ("global-mutex-under-spin", default_scenario(1, 2, pages=2), "exception",
     "lock misuse: sleeping in atomic context"),
    ("global-drain-livelock", sc([Purge()]), "invariant", "the drain terminates"),
    ("global-merge-skip-next", default_scenario(2, 1, pages=4), "invariant", "coalesced"),
]


@pytest.mark.parametrize("cache", [False, True])
@pytest.mark.parametrize("name, scenario, kind, text", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_seeded_bugs_are_found(name: str, scenario: Scenario, kind: str, text: str,
                               cache: bool) -> None:
    res = model_check(name, scenario, state_cache=cache)
    assert res.outcome is Outcome.VIOLATION
    assert res.findings[0].kind == kind
    assert text in res.findings[0].message
    trace = res.findings[0].trace
    assert trace["schedule"] and trace["events"] and trace["design"] == name


def test_user_design_deadlock_reports_the_cycle() -> None:
    res = model_check(ABBA, default_scenario())
    (f,) = res.findings
    assert f.kind == "deadlock"
    assert "T0 holds" in f.message and "T1 holds" in f.message
    assert "abba.py:" in f.message
    assert f.trace["preemptions"] == 1
    assert model_check(FIXED, default_scenario(2, 2, pages=4)).outcome is Outcome.OK


def test_preemption_bound_finds_fewest_preemptions_first() -> None:
    none = model_check(ABBA, default_scenario(), preemption_bound=0)
    assert none.outcome is Outcome.OK and none.stats["exhaustive"]
    one = model_check(ABBA, default_scenario(), preemption_bound=1)
    assert one.outcome is Outcome.VIOLATION
    assert one.findings[0].trace["preemptions"] == 1
    ok = model_check("global", default_scenario(2, 1), preemption_bound=2)
    assert ok.outcome is Outcome.OK and ok.stats["exhaustive"]


@pytest.mark.parametrize("strategy", ["random", "pct"])
def test_randomised_strategies(strategy: str) -> None:
    found = model_check(ABBA, default_scenario(), strategy=strategy, seed=3,
                        max_executions=500)
    assert found.outcome is Outcome.VIOLATION
    clean = model_check("global", default_scenario(), strategy=strategy, max_executions=20)
    assert clean.outcome is Outcome.INCOMPLETE and not clean.stats["exhaustive"]
    if strategy == "pct":
        assert any("probability >=" in n for n in clean.stats["notes"])


def test_budget_makes_the_result_incomplete() -> None:
    res = model_check("global", default_scenario(2, 2), max_executions=3)
    assert res.outcome is Outcome.INCOMPLETE
    assert res.stats["stopped_by"] == "max-executions" and res.stats["executions"] == 3


def test_no_reduction_explores_more() -> None:
    s = sc([Alloc(1, "a")], [Alloc(2, "b")])
    with_r = model_check("global", s)
    without = model_check("global", s, reduction=False)
    assert with_r.outcome is without.outcome is Outcome.OK
    assert without.stats["executions"] >= 10 * with_r.stats["executions"]


class Complains:
    def __init__(self) -> None:
        self.events = 0

    def on_execution_start(self, design: object, scenario: object) -> None:
        pass

    def on_event(self, event: object) -> None:
        self.events += 1

    def on_execution_end(self, outcome: object) -> list[Finding]:
        return []

    def on_search_end(self) -> list[Finding]:
        return [Finding("lock-order", "seen at the end")]


def test_observers_plug_in_and_blind_ones_turn_the_cache_off() -> None:
    obs = Complains()
    res = model_check("global", default_scenario(), observers=[obs], state_cache=True)
    assert obs.events > 0
    assert res.outcome is Outcome.VIOLATION and res.findings[-1].kind == "lock-order"
    assert any("state cache off" in n for n in res.stats["notes"])
    assert "state_cache_hits" not in res.stats


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(cli, ["model-check", "--target", "impl", *args],
                              catch_exceptions=False)


def test_cli_exit_codes_and_json(tmp_path: Path) -> None:
    ok = run_cli("--json")
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)
    assert data["result"] == "ok" and data["stats"]["impl"]["exhaustive"] is True
    bad = run_cli("--design", ABBA, "--json", "--trace-out", str(tmp_path / "t.json"))
    assert bad.exit_code == 1
    assert json.loads(bad.stdout)["findings"][0]["kind"] == "deadlock"
    assert json.loads((tmp_path / "t.json").read_text())["schedule"]
    assert run_cli("--max-executions", "1", "--threads", "2", "--ops", "2").exit_code == 3


def test_cli_usage_errors(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text("[[threads]]\nops = ['a = alloc(0)']\n")
    r = CliRunner().invoke(cli, ["model-check", "--target", "impl", "--scenario", str(f)],
                           standalone_mode=False)
    assert "threads[0].ops[0]" in str(r.exception)
    from checker.cli import main  # exit 2 goes through main's handler
    for argv in (["--scenario", str(f)], ["--scenario", str(f), "--threads", "3"],
                 ["--design", "nope"], ["--sizes", "x"], ["--strategy", "random",
                                                          "--preemption-bound", "1"]):
        with pytest.raises(SystemExit) as exc:
            import sys
            old = sys.argv
            sys.argv = ["vmapcheck", "model-check", "--target", "impl", *argv]
            try:
                main()
            finally:
                sys.argv = old
        assert exc.value.code == 2, argv
