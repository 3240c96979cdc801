"""The mutant catalog run: the checker against every seeded bug and every correct design.

A mutant is killed when the search reports a finding; the catalog also says which kind of
finding the bug must produce, and a kill of another kind is reported as a mismatch (the
catalog's note or the checker is then wrong).  Correct designs are checked with the same
analyses on the default scenario: any finding there is a false alarm.  Every run has the lock
graph and the lockset detector attached and tracks shared accesses, as a reviewer would run it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from impl.designs import VmapDesign, builtin_designs

from .analyses.lockgraph import LockGraphObserver
from .analyses.lockset import LocksetObserver
from .model_check import model_check
from .result import Finding, Outcome, Result
from .scenario import Scenario, default_scenario

CORRECT_BOUNDS: dict[str, Any] = {"threads": 2, "ops": 1}
PER_RUN_TIMEOUT = 60.0


@dataclass
class CatalogRow:
    design: str
    mutant_of: str | None
    expected: str | None
    found: str | None
    executions: int
    seconds: float
    outcome: str
    message: str
    source: str = ""
    bug: str = ""

    @property
    def is_mutant(self) -> bool:
        return self.mutant_of is not None

    @property
    def killed(self) -> bool:
        return self.found is not None

    @property
    def verdict(self) -> str:
        if not self.is_mutant:
            if self.found:
                return "FALSE ALARM"
            return "clean" if self.outcome == "ok" else "incomplete"
        if not self.killed:
            return "SURVIVED"
        return "killed" if self.found == self.expected else "killed (other kind)"

    @property
    def passed(self) -> bool:
        return self.verdict in ("killed", "clean")

    def to_json(self) -> dict[str, Any]:
        return {"design": self.design, "mutant_of": self.mutant_of, "expected": self.expected,
                "found": self.found, "executions": self.executions,
                "seconds": round(self.seconds, 3), "outcome": self.outcome,
                "verdict": self.verdict, "message": self.message, "source": self.source,
                "bug": self.bug}


def catalog_scenario(catalog: dict[str, Any], name: str) -> Scenario:
    """The scenario a catalog entry names (see ``impl.designs.mutants``)."""
    threads = catalog.get("threads", CORRECT_BOUNDS["threads"])
    if isinstance(threads, list):
        data = {"name": name, "config": dict(catalog.get("config", {})),
                "threads": [{"ops": list(ops)} for ops in threads]}
        return Scenario.from_json(data, f"catalog of {name}")
    kwargs: dict[str, Any] = {k: catalog[k] for k in ("ops", "pages", "lazy_max", "cpus")
                              if k in catalog}
    if "sizes" in catalog:
        kwargs["sizes"] = tuple(catalog["sizes"])
    return default_scenario(threads=int(threads), **kwargs)


def check_one(cls: type[VmapDesign], timeout: float = PER_RUN_TIMEOUT) -> CatalogRow:
    """Run the search with every analysis on the design's catalog bounds."""
    mutant_of = getattr(cls, "mutant_of", None)
    catalog = dict(getattr(cls, "catalog", {}) or {}) if mutant_of else dict(CORRECT_BOUNDS)
    scenario = catalog_scenario(catalog, cls.name)
    t0 = time.monotonic()
    result = model_check(cls, scenario, observers=[LockGraphObserver(), LocksetObserver()],
                         track_access=True, timeout=timeout,
                         preemption_bound=catalog.get("preemption_bound"),
                         max_executions=catalog.get("max_executions"))
    seconds = time.monotonic() - t0
    first = result.findings[0] if result.findings else None
    return CatalogRow(
        design=cls.name, mutant_of=mutant_of, expected=getattr(cls, "expected", None),
        found=first.kind if first else None,
        executions=int(result.stats.get("executions", 0)), seconds=seconds,
        outcome=result.outcome.value, message=first.message if first else "",
        source=getattr(cls, "source", ""), bug=getattr(cls, "bug", ""))


def catalog_designs(only: list[str] | None = None) -> list[type[VmapDesign]]:
    designs = builtin_designs()
    names = only or sorted(designs, key=lambda n: (getattr(designs[n], "mutant_of", "") or "", n))
    return [designs[n] for n in names]


def summarize(rows: list[CatalogRow], elapsed: float) -> Result:
    mutants = [r for r in rows if r.is_mutant]
    correct = [r for r in rows if not r.is_mutant]
    killed = [r for r in mutants if r.killed]
    stats = {
        "mutants": len(mutants), "killed": len(killed),
        "kill_rate": round(len(killed) / len(mutants), 4) if mutants else None,
        "mismatched_kind": sum(1 for r in killed if r.found != r.expected),
        "correct_designs": len(correct),
        "false_alarms": sum(1 for r in correct if r.found),
        "incomplete_correct": sum(1 for r in correct if r.outcome == "incomplete"),
        "max_seconds_to_finding": round(max((r.seconds for r in killed), default=0.0), 3),
        "seconds": round(elapsed, 3),
        "rows": [r.to_json() for r in rows],
    }
    findings = []
    for r in rows:
        if not r.passed:
            findings.append(Finding("counterexample" if r.is_mutant else r.found or "invariant",
                                    f"{r.design}: {r.verdict}"
                                    + (f" (expected {r.expected}, found {r.found})" if r.is_mutant
                                       else f": {r.message}")))
    outcome = Outcome.OK if not findings else Outcome.VIOLATION
    if not findings and stats["incomplete_correct"]:
        outcome = Outcome.INCOMPLETE
    return Result("mutants", config={"correct_bounds": CORRECT_BOUNDS,
                                     "per_run_timeout": PER_RUN_TIMEOUT},
                  outcome=outcome, stats=stats, findings=findings)
