"""``vmapcheck model-check --target spec|both`` from the command line: JSON shape, exit codes,
the spec path in text output, bounds, and a design with no spec."""

from __future__ import annotations

import json
import sys

import pytest

from checker.cli import main


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["vmapcheck", "model-check", *args])
    monkeypatch.setenv("CI", "1")
    with pytest.raises(SystemExit) as exc:
        main()
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


@pytest.mark.parametrize("design", ["global", "nodes", "percpu"])
def test_spec_target_json(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                          design: str) -> None:
    code, out, _ = run(monkeypatch, capsys, "--target", "spec", "--design", design, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["schema_version"] == 1 and data["command"] == "model-check"
    assert data["result"] == "ok" and data["findings"] == []
    assert data["config"]["target"] == "spec" and data["config"]["symmetry"] is True
    spec = data["stats"]["spec"]
    assert spec["complete"] and spec["distinct_states"] > 0 and spec["depth"] > 0


def test_symmetry_off_explores_more_states(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    counts = []
    for flag in ("--symmetry", "--no-symmetry"):
        code, out, _ = run(monkeypatch, capsys, "--target", "spec", "--threads", "3", "--json",
                           flag)
        assert code == 0
        counts.append(json.loads(out)["stats"]["spec"]["distinct_states"])
    assert counts[0] < counts[1]


def test_max_states_is_incomplete(monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(monkeypatch, capsys, "--target", "spec", "--threads", "3", "--ops", "2",
                       "--max-states", "100", "--json")
    assert code == 3
    data = json.loads(out)
    assert data["result"] == "incomplete"
    assert data["stats"]["spec"]["stopped_by"] == "max-states"


def test_protocol_mutant_prints_its_spec_path(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(monkeypatch, capsys, "--target", "spec", "--design",
                         "global-busy-unlocked")
    assert code == 1
    assert "lock-protection" in err
    assert "shortest path through spec global-busy-unlocked" in out
    assert "without vmap_area_lock" in out


def test_both_targets_report_refinement(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(monkeypatch, capsys, "--design", "global", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["config"]["target"] == "both"
    assert data["stats"]["refinement"]["refinement_findings"] == 0
    assert data["stats"]["refinement"]["steps_checked"] > 0


def test_design_without_spec_is_a_usage_error(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str],
                                              tmp_path: object) -> None:
    from pathlib import Path
    path = Path(str(tmp_path)) / "mine.py"
    path.write_text("from impl.designs.global_ import GlobalDesign\n\n"
                    "class Mine(GlobalDesign):\n    name = 'mine'\n")
    code, _, err = run(monkeypatch, capsys, "--target", "spec", "--design", f"{path}:Mine")
    assert code == 2
    assert "has no spec" in err
