"""``vmapcheck prove`` from the command line: verdict table, JSON, JUnit XML and exit codes.

Every obligation must be Proved on the code as it is (the full run is slow and marked so; the
default run proves a quick subset).  A counterexample exits 1 with a finding, an unknown exits 3,
a bad option or design exits 2 before anything runs.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from checker.cli import main
from proofs.obligation import Obligation, ProofResult
from proofs.runner import arithmetic_obligations

QUICK = ("--only", "fit.within", "--only", "nodes.vn-id", "--only", "nodes.pool-index",
         "--only", "lazy", "--only", "lock-order")


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["vmapcheck", "prove", *args])
    monkeypatch.setenv("CI", "1")
    with pytest.raises(SystemExit) as exc:
        main()
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def test_quick_obligations_are_proved_json(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(monkeypatch, capsys, *QUICK, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["schema_version"] == 1 and data["command"] == "prove"
    assert data["result"] == "ok" and data["findings"] == []
    names = [v["name"] for v in data["stats"]["verdicts"]]
    assert names == ["fit.within", "nodes.vn-id", "nodes.pool-index", "lazy.bounds",
                     "lazy.monotone", "lock-order.global", "lock-order.nodes",
                     "lock-order.percpu"]
    assert all(v["status"] == "proved" and v["seconds"] >= 0 for v in data["stats"]["verdicts"])
    ranking = {v["name"]: v["detail"] for v in data["stats"]["verdicts"]}["lock-order.global"]
    assert ranking.startswith("ranking: vmap_purge_lock < ")


def test_table_and_junit(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                         tmp_path: Path) -> None:
    junit = tmp_path / "out" / "proofs.xml"
    code, out, _ = run(monkeypatch, capsys, "--only", "lazy", "--junit", str(junit))
    assert code == 0
    assert "lazy.bounds" in out and "proved" in out and "2 proved" in out
    root = ET.parse(junit).getroot()
    suite = root.find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "0"
    assert [c.get("name") for c in suite.iter("testcase")] == ["lazy.bounds", "lazy.monotone"]


def test_lock_order_cycle_exits_1_with_the_cycle(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    junit = tmp_path / "proofs.xml"
    code, out, _ = run(monkeypatch, capsys, "--only", "lock-order", "--design", "global-abba",
                       "--json", "--junit", str(junit))
    assert code == 1
    data = json.loads(out)
    assert data["result"] == "violation"
    [finding] = data["findings"]
    assert finding["kind"] == "lock-order"
    assert "vmap_area_lock" in finding["message"] and "purge_vmap_area_lock" in finding["message"]
    assert finding["trace"]["status"] == "counterexample" and len(finding["trace"]["notes"]) == 2
    failure = ET.parse(junit).getroot().find("testsuite/testcase/failure")
    assert failure is not None and failure.get("type") == "counterexample"


def test_unknown_is_not_a_pass(monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    gave_up = Obligation("fit.gave-up", "fit", "a query the solver gives up on",
                         lambda t: ProofResult.unknown("solver: timeout after 0.1 s"))
    monkeypatch.setattr("checker.commands.prove.arithmetic_obligations",
                        lambda: [*arithmetic_obligations(), gave_up])
    code, out, _ = run(monkeypatch, capsys, "--only", "fit.gave-up", "--json")
    assert code == 3
    data = json.loads(out)
    assert data["result"] == "incomplete" and data["stats"]["unknown"] == 1
    assert data["stats"]["verdicts"][0]["detail"] == "solver: timeout after 0.1 s"


def test_an_obligation_that_raises_is_unknown(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    def broken(timeout: float) -> ProofResult:
        raise TypeError("symbolic value used as an index")
    monkeypatch.setattr("checker.commands.prove.arithmetic_obligations",
                        lambda: [Obligation("fit.broken", "fit", "raises", broken)])
    code, out, _ = run(monkeypatch, capsys, "--only", "fit", "--json")
    assert code == 3
    assert "could not check: TypeError" in json.loads(out)["stats"]["verdicts"][0]["detail"]


def test_obligations_checked_in_several_processes_keep_order_and_verdicts() -> None:
    """``--jobs``: each obligation in a worker process; the verdicts are those of one process,
    in the obligations' order, and one that raises is still Unknown."""
    from proofs import lazy, runner

    def broken(timeout: float) -> ProofResult:
        raise TypeError("symbolic value used as an index")
    obligations = [*lazy.obligations(), Obligation("fit.broken", "fit", "raises", broken),
                   Obligation("fit.gave-up", "fit", "gives up",
                              lambda t: ProofResult.unknown("solver: timeout"))]
    heard: list[str] = []
    alone = runner.run(obligations, 10.0, jobs=1)
    apart = runner.run(obligations, 10.0, lambda v: heard.append(v.obligation.name), jobs=2)
    assert [(v.obligation.name, v.result.status, v.result.detail) for v in apart] == \
        [(v.obligation.name, v.result.status, v.result.detail) for v in alone]
    assert [v.result.status.value for v in apart] == ["proved", "proved", "unknown", "unknown"]
    assert "could not check: TypeError" in apart[2].result.detail
    assert sorted(heard) == sorted(o.name for o in obligations)


@pytest.mark.parametrize("args", [("--only", "nope"), ("--timeout", "0"),
                                  ("--design", "no-such-design"), ("--design", ","),
                                  ("--strengthen", "nodes"),
                                  ("--jobs", "0")])
def test_usage_errors_exit_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                             args: tuple[str, ...]) -> None:
    code, out, err = run(monkeypatch, capsys, *args)
    assert code == 2
    assert out == "" and err.strip()


def test_every_obligation_is_listed_for_a_bad_only(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    _, _, err = run(monkeypatch, capsys, "--only", "fit.nothing")
    assert "fit.alloc" in err and "lock-order.global" in err


@pytest.mark.slow
def test_every_obligation_is_proved(monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(monkeypatch, capsys, "--json")
    data = json.loads(out)
    assert code == 0, [v for v in data["stats"]["verdicts"] if v["status"] != "proved"]
    assert data["stats"]["proved"] == data["stats"]["obligations"] >= 14


def test_strengthen_stores_the_facts_it_found(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    """``--strengthen`` writes what the search kept where the obligation reads it (the
    search itself takes minutes: its own test is marked slow)."""
    from proofs import certificate, unbounded
    from proofs.facts import Fact

    facts = [Fact("allocated", None, None, frozenset(), lambda s: True, base=True),
             Fact("T0 at 'x': held == 1", 0, 3, frozenset(), lambda s: True)]
    heard: list[str] = []

    def search(name: str, timeout: float, report: Callable[[str], None]) -> object:
        report("mining candidate facts")  # what the status line shows
        heard.append(name)
        return facts, None, {"mined": 9, "bounded_left": 6, "asked": 4, "kept": 2}
    monkeypatch.setattr(unbounded, "strengthen", search)
    monkeypatch.setattr(certificate, "DIR", tmp_path)
    code, out, _ = run(monkeypatch, capsys, "--strengthen", "global")
    assert code == 0 and "2 facts (of 9 mined, 6 kept on the instance, 4 asked" in out and heard == ["global"]
    cert = certificate.load("global")
    assert cert is not None and cert.model == "page sets"
    assert cert.keys == ((None, None, "allocated"), (0, 3, "T0 at 'x': held == 1"))


def test_strengthen_that_meets_a_broken_invariant_exits_1(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    from proofs import certificate, unbounded

    cti = unbounded.SetCti("T1", "lock vmap_area_lock; insert: hand -> busy", "allocated",
                           {"busy": "-", "T1.pc": "8"})
    monkeypatch.setattr(unbounded, "strengthen", lambda name, timeout, report: (None, cti, {}))
    monkeypatch.setattr(certificate, "DIR", tmp_path)
    code, out, _ = run(monkeypatch, capsys, "--strengthen", "global")
    assert code == 1
    assert "counterexample to induction: T1 breaks 'allocated'" in out and "T1.pc = 8" in out
    assert not list(tmp_path.iterdir())  # nothing stored
