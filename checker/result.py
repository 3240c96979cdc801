"""The result every subcommand produces, its JSON form and the exit codes.

The shape is the command-line contract of DESIGN.md: ``schema_version`` 1, ``command``,
``config``, ``result`` (ok | violation | incomplete), ``stats`` and ``findings`` with a
``kind`` from a fixed set.  Exit codes are never renumbered.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1

FINDING_KINDS = frozenset(
    {"deadlock", "invariant", "race", "refinement", "lock-order", "exception", "counterexample"}
)


class ExitCode(enum.IntEnum):
    OK = 0
    VIOLATION = 1
    USAGE = 2
    INCOMPLETE = 3
    INTERNAL = 4


class Outcome(enum.Enum):
    OK = "ok"
    VIOLATION = "violation"
    INCOMPLETE = "incomplete"

    @property
    def exit_code(self) -> ExitCode:
        return {Outcome.OK: ExitCode.OK, Outcome.VIOLATION: ExitCode.VIOLATION,
                Outcome.INCOMPLETE: ExitCode.INCOMPLETE}[self]


@dataclass
class Finding:
    """One thing a check found.  ``trace`` is whatever replays it (a schedule, swim lanes,
    a spec path, a model), JSON-serialisable."""

    kind: str
    message: str
    trace: Any = None

    def __post_init__(self) -> None:
        if self.kind not in FINDING_KINDS:
            raise ValueError(f"unknown finding kind {self.kind!r}")

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "trace": self.trace}


@dataclass
class Result:
    command: str
    config: dict[str, Any] = field(default_factory=dict)
    outcome: Outcome = Outcome.OK
    stats: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        if self.findings and self.outcome is Outcome.OK:
            return ExitCode.VIOLATION
        return self.outcome.exit_code

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "command": self.command,
            "config": self.config,
            "result": self.outcome.value,
            "stats": self.stats,
            "findings": [f.to_json() for f in self.findings],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, default=_json_default)


def _json_default(obj: object) -> Any:
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)
