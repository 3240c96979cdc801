"""``vmapcheck simulate`` from the command line: JSON contract, determinism, plot, exit codes."""

from __future__ import annotations

import json
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
    monkeypatch.setattr(sys, "argv", ["vmapcheck", "simulate", *args])
    monkeypatch.setenv("CI", "1")
    with pytest.raises(SystemExit) as exc:
        main()
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def test_json_has_the_contract_shape(monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(monkeypatch, capsys, "--design", "global,nodes", "--cpus", "1,4",
                         "--ops", "80", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["schema_version"] == 1 and doc["command"] == "simulate"
    assert doc["result"] == "ok" and doc["findings"] == []
    assert doc["config"]["cpus"] == [1, 4] and doc["config"]["ops"] == 80
    runs = doc["stats"]["runs"]
    assert [(r["design"], r["cpus"]) for r in runs] == [
        ("global", 1), ("global", 4), ("nodes", 1), ("nodes", 4)]
    assert all(r["per_op_us"] > 0 for r in runs)
    assert set(doc["stats"]["costs"]) == {"call_ns", "node_ns", "lock_ns", "xfer_ns", "tlb_ns"}
    assert runs[1]["lock_classes"][0]["class"] == "vmap_area_lock"
    assert "µs/iter" in err  # tables go to stderr with --json


def test_same_seed_same_json(monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    def figures(seed: str) -> list[tuple[float, float]]:
        code, out, err = run(monkeypatch, capsys, "--design", "global", "--cpus", "2,3",
                             "--ops", "60", "--seed", seed, "--json")
        assert code == 0, err
        return [(r["per_op_us"], r["makespan_us"]) for r in json.loads(out)["stats"]["runs"]]

    assert figures("5") == figures("5")
    assert figures("5") != figures("6")


def test_plot_is_written(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                         tmp_path: Path) -> None:
    png = tmp_path / "sim.png"
    code, out, err = run(monkeypatch, capsys, "--design", "global", "--cpus", "1,2",
                         "--ops", "50", "--plot", str(png))
    assert code == 0, err
    assert png.stat().st_size > 10_000
    assert "global: fix_size in virtual time" in out


def test_a_design_that_loses_areas_is_a_finding(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    f = tmp_path / "leaky.py"
    f.write_text(LEAKY)
    code, out, err = run(monkeypatch, capsys, "--design", f"{f}:Leaky", "--cpus", "2",
                         "--ops", "50", "--json")
    assert code == 1, err
    doc = json.loads(out)
    assert doc["result"] == "violation"
    assert doc["findings"][0]["kind"] == "exception"
    assert "still busy" in doc["findings"][0]["message"]


@pytest.mark.parametrize("args, hint", [
    (["--cpus", "0,2"], "--cpus"),
    (["--cpus", "1,x"], "--cpus"),
    (["--cpus", "256"], "--cpus"),
    (["--test", "nope"], "unknown test"),
    (["--test", "vmallocinfo"], "not modelled"),
    (["--test", "fix_size", "--mask", "1"], "either --test or --mask"),
    (["--cost", "warp_ns=3"], "unknown cost parameter"),
    (["--cost", "xfer_ns=-1"], "non-negative"),
    (["--plot", "out.svg"], ".png"),
    (["--design", "nosuch"], "unknown design"),
    (["--cpus", "128"], "--machine flat"),
    (["--machine", "published", "--online-cpus", "32"], "64 online CPUs"),
    (["--validate", "--machine", "flat"], "--machine applies to the grid"),
])
def test_usage_errors_exit_2(monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str],
                             args: list[str], hint: str) -> None:
    code, out, err = run(monkeypatch, capsys, *args, "--ops", "10")
    assert code == 2
    assert hint in err
    assert out == ""


def test_the_grid_runs_the_published_machine_unless_flat_is_asked_for(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    runs = {}
    for machine in ("published", "flat"):
        code, out, _ = run(monkeypatch, capsys, "--design", "global", "--cpus", "16",
                           "--ops", "300", "--machine", machine, "--json")
        assert code == 0
        doc = json.loads(out)
        runs[machine] = doc
    assert "Threadripper 3970X" in runs["published"]["config"]["machine"]
    assert runs["flat"]["config"]["machine"] == "flat"
    published = runs["published"]["stats"]["runs"][0]
    flat = runs["flat"]["stats"]["runs"][0]
    assert published["nr_cpus"] == 64 and flat["nr_cpus"] == 16
    # Sixteen jobs share eight CCXs: part of every hand-off stays inside one, so the same costs
    # give a cheaper iteration than on a machine where every transfer crosses the interconnect.
    assert published["per_op_us"] < flat["per_op_us"]


def test_a_flat_machine_models_more_cpus_than_the_published_one(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(monkeypatch, capsys, "--design", "global", "--cpus", "96",
                       "--ops", "20", "--machine", "flat", "--json")
    assert code == 0
    assert json.loads(out)["stats"]["runs"][0]["nr_cpus"] == 96
