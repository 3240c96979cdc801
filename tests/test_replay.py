"""Counterexamples replay exactly; schedule strings round-trip; emitted tests fail on the bug and
pass on the fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from checker.cli import cli, main
from checker.explore.schedule import ScheduleError, decode, encode
from checker.model_check import model_check
from checker.scenario import default_scenario
from checker.trace import load_trace, render_lanes

DESIGNS = Path(__file__).parent / "designs"
ABBA = f"{DESIGNS / 'abba.py'}:AbbaDesign"
FIXED = f"{DESIGNS / 'abba.py'}:AbbaFixedDesign"


def exit_code(*argv: str) -> int:
    old = sys.argv
    sys.argv = ["vmapcheck", *argv]
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        sys.argv = old
    return 0


@pytest.fixture(scope="module")
def abba_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("trace") / "abba.json"
    r = CliRunner().invoke(cli, ["model-check", "--target", "impl", "--design", ABBA,
                                 "--trace-out", str(path)], catch_exceptions=False)
    assert r.exit_code == 1
    return path


def test_trace_file_holds_what_replays_it(abba_trace: Path) -> None:
    t = load_trace(abba_trace)
    assert t["design"].endswith("abba.py:AbbaDesign")
    assert t["findings"][0]["kind"] == "deadlock"
    assert t["scenario"]["threads"][0]["ops"] == ["a0 = alloc(1)", "free(a0)"]
    assert decode(t["schedule"])
    lanes = render_lanes(t)
    assert "T0 (cpu0)" in lanes and "⌛ waits for" in lanes and "lock-hold intervals" in lanes


def test_replay_reproduces_the_deadlock_event_for_event(abba_trace: Path) -> None:
    r = CliRunner().invoke(cli, ["replay", str(abba_trace), "--json"], catch_exceptions=False)
    assert r.exit_code == 1
    data = json.loads(r.stdout)
    assert data["stats"]["same_events_as_recorded"] is True
    assert data["stats"]["same_findings_as_recorded"] is True
    assert data["findings"][0]["kind"] == "deadlock"
    text = CliRunner().invoke(cli, ["replay", str(abba_trace)], catch_exceptions=False)
    assert "acquire busy_lock" in text.stdout and "abba.py:" in text.stdout


def test_replay_a_schedule_string() -> None:
    res = model_check(ABBA, default_scenario())
    sched = res.findings[0].trace["schedule"]
    r = CliRunner().invoke(cli, ["replay", "--schedule", sched, "--design", ABBA, "--json"],
                           catch_exceptions=False)
    assert r.exit_code == 1 and json.loads(r.stdout)["findings"][0]["kind"] == "deadlock"
    fixed = CliRunner().invoke(cli, ["replay", "--schedule", sched, "--design", FIXED,
                                     "--json"], catch_exceptions=False)
    assert fixed.exit_code == 3  # the fixed design cannot follow the deadlocking schedule


def test_replay_on_a_changed_scenario_diverges(abba_trace: Path, tmp_path: Path) -> None:
    t = json.loads(abba_trace.read_text())
    t["scenario"]["threads"][1]["ops"] = ["b = alloc(1)"]
    t["schedule"] = "T1*8"
    p = tmp_path / "changed.json"
    p.write_text(json.dumps(t))
    assert exit_code("replay", str(p)) == 3


@pytest.mark.parametrize("content, needle", [
    ("not json", "not JSON"),
    ('{"format": "other"}', "not a vmapcheck trace"),
    ('{"format": "vmapcheck-trace", "version": 1, "design": "global", "scenario": {}}',
     "'schedule' is missing"),
])
def test_bad_trace_files_are_usage_errors(tmp_path: Path, content: str, needle: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "bad.json"
    p.write_text(content)
    assert exit_code("replay", str(p)) == 2
    assert needle in capsys.readouterr().err


def test_emitted_test_fails_on_the_bug_and_passes_on_the_fix(abba_trace: Path,
                                                            tmp_path: Path) -> None:
    test_file = tmp_path / "test_abba_regression.py"
    assert exit_code("replay", str(abba_trace), "--quiet", "--emit-test", str(test_file)) == 1
    text = test_file.read_text()
    assert "def test_counterexample_schedule_runs_clean" in text
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)]
    buggy = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert buggy.returncode == 1, buggy.stdout
    assert "2 failed" in buggy.stdout
    fixed = subprocess.run(cmd, cwd=tmp_path, env={**env, "VMAPCHECK_DESIGN": FIXED},
                           capture_output=True, text=True)
    assert fixed.returncode == 0, fixed.stdout
    assert "2 passed" in fixed.stdout


names = st.lists(st.sampled_from(["T0", "T1", "T2", "drain_vmap_work"]), max_size=40)


@given(names)
def test_schedule_strings_round_trip(seq: list[str]) -> None:
    assert decode(encode(seq)) == seq


@pytest.mark.parametrize("bad", ["T0*0", "T0*x", "*3", "T0 **"])
def test_bad_schedule_strings(bad: str) -> None:
    with pytest.raises(ScheduleError):
        decode(bad)


def test_counterexample_is_the_shortest_found(tmp_path: Path) -> None:
    res = model_check("global-lazy-nonatomic", default_scenario(2, 1, pages=4))
    info: dict[str, Any] = res.stats["shrink"]
    assert info["to"]["preemptions"] <= info["from"]["preemptions"]
    assert res.findings[0].trace["preemptions"] == info["to"]["preemptions"]
