"""``vmapcheck stress`` from the command line: output, JSON contract, plot, exit codes."""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

import pytest

from checker.cli import main

LEAKY = '''
from impl.designs.global_ import GlobalDesign


class Leaky(GlobalDesign):
    name = "leaky"

    def _free(self, addr):
        if addr % (8 * 4096):
            super()._free(addr)
'''


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["vmapcheck", "stress", *args])
    monkeypatch.setenv("CI", "1")
    old = sys.getswitchinterval()
    with pytest.raises(SystemExit) as exc:
        main()
    assert sys.getswitchinterval() == old, "the switch interval must be restored"
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def test_json_run_has_the_contract_shape_and_every_figure(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    png = tmp_path / "stress.png"
    code, out, err = run(monkeypatch, capsys, "--design", "global", "--threads", "1,2",
                         "--loops", "100", "--plot", str(png), "--lock-order", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["schema_version"] == 1 and doc["command"] == "stress"
    assert doc["result"] == "ok" and doc["findings"] == []
    assert doc["config"]["threads"] == [1, 2] and doc["config"]["loops"] == 100
    stats = doc["stats"]
    assert isinstance(stats["python"]["gil_enabled"], bool)
    assert [(r["design"], r["threads"]) for r in stats["runs"]] == [("global", 1), ("global", 2)]
    r2 = stats["runs"][1]
    assert r2["ops"] == 200 and r2["invariants"] == "ok" and r2["ops_per_s"] > 0
    assert set(r2["latency_us"]) == {"p50", "p99", "max", "mean"}
    assert r2["lockstat"]["classes"][0]["acquisitions"] >= 0
    assert {c["class"] for c in r2["lockstat"]["classes"]} == {
        "free_vmap_area_lock", "vmap_area_lock", "purge_vmap_area_lock", "vmap_purge_lock"}
    assert len(r2["summary_lines"]) == 2
    assert stats["wait_comparison"]["baseline"] == "global"
    assert stats["headline"]["threads"] == 2 and stats["headline"]["baseline"] == "global"
    assert png.stat().st_size > 0
    rows = list(csv.DictReader((tmp_path / "stress.csv").open()))
    assert [(r["design"], r["threads"]) for r in rows] == [("global", "1"), ("global", "2")]
    assert "Python" in err  # the interpreter note goes to stderr in JSON mode


def test_text_run_prints_summaries_lock_stat_and_comparison(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(monkeypatch, capsys, "--design", "global,nodes", "--threads", "2",
                       "--mask", "1", "--loops", "50", "--lockstat-overhead")
    assert code == 0
    assert re.search(r"^Summary: fix_size_alloc_test passed: 1 failed: 0 repeat: 1 loops: 50 "
                     r"avg: \d+ usec$", out, re.M)
    assert "lock_stat: global, 2 thread(s)" in out and "lock_stat: nodes, 2 thread(s)" in out
    assert "GIL" in out and "contentions relative to global" in out
    assert re.search(r"at 2 thread\(s\): global waits most on", out)
    assert "nodes: total wait" in out
    assert "lock_stat overhead on global" in out
    assert "stress: ok" in out


def test_align_shift_is_an_expected_failure_not_a_violation(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(monkeypatch, capsys, "--design", "global", "--threads", "1",
                       "--test", "align_shift", "--json")
    assert code == 0
    [r] = json.loads(out)["stats"]["runs"]
    [t] = r["threads_summary"][0]["tests"]
    assert (t["passed"], t["failed"], t["xfailed"]) == (0, 1, 1)


def test_a_leaking_user_design_is_a_violation(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    f = tmp_path / "leaky.py"
    f.write_text(LEAKY)
    code, out, _ = run(monkeypatch, capsys, "--design", f"{f}:Leaky", "--threads", "2",
                       "--loops", "100", "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["result"] == "violation"
    assert doc["findings"][0]["kind"] == "invariant"
    assert "busy area(s) remain" in doc["findings"][0]["message"]


def test_a_deadlocking_mutant_is_reported_not_hung(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from impl.designs import builtin_designs
    if "global-abba" not in builtin_designs():
        pytest.skip("the ABBA mutant is not present")
    # vmallocinfo nests the purge lock inside vmap_area_lock; the mutant's free nests them the
    # other way round.  Short GIL slices make a switch inside the window likely.
    code, out, _ = run(monkeypatch, capsys, "--design", "global-abba", "--threads", "4",
                       "--test", "fix_size,vmallocinfo", "--duration", "5",
                       "--switch-interval", "0.00002", "--stall-timeout", "1", "--json")
    doc = json.loads(out)
    if code == 0:  # the interleaving that deadlocks is likely, not certain
        pytest.skip("the ABBA window was not hit in this run")
    assert code == 1
    [f] = doc["findings"]
    assert f["kind"] == "deadlock"
    assert "waits for purge_vmap_area_lock" in f["message"]
    assert "waits for vmap_area_lock" in f["message"]


@pytest.mark.parametrize("args, message", [
    (["--threads", "0"], "each value must be in 1..4096"),
    (["--threads", "two"], "not a comma-separated list"),
    (["--test", "nope"], "unknown test 'nope'"),
    (["--mask", "1024"], "selects no modelled test"),
    (["--test", "fix_size", "--mask", "1"], "either --test or --mask"),
    (["--loops", "0"], "0"),
    (["--plot", "out.txt"], "must end in .png"),
    (["--plot", "/nonexistent/dir/x.png"], "does not exist"),
    (["--lock-order", "--no-lockstat"], "--lock-order needs"),
    (["--switch-interval", "0"], "switch-interval"),
    (["--design", "nosuch"], "unknown design 'nosuch'"),
])
def test_usage_errors_exit_2_with_one_message(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        args: list[str], message: str) -> None:
    code, out, err = run(monkeypatch, capsys, "--design", "global", "--threads", "1",
                         "--loops", "10", *args)
    assert code == 2
    assert message in err
    assert out == ""
