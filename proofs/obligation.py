"""What a proof obligation is and what checking one yields.

A result is one of three things, never a bare boolean: Proved; Counterexample, with a concrete
model printed in the allocator's terms (addresses in hex, sizes in pages) and, where it helps,
what the code does on it; or Unknown, with the solver's reason.  Unknown is not a pass.

Relies on nothing else of the project.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class Status(enum.Enum):
    PROVED = "proved"
    COUNTEREXAMPLE = "counterexample"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ProofResult:
    """The verdict on one obligation.

    ``detail`` is one line (what was proved, what broke, or why the solver gave up);
    ``model`` names each input with its value already rendered; ``notes`` are further lines
    (what the code computes on the model, a lock cycle, a spec state).
    """

    status: Status
    detail: str
    model: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = ()
    stats: dict[str, int] = field(default_factory=dict)

    @staticmethod
    def proved(detail: str, **stats: int) -> ProofResult:
        return ProofResult(Status.PROVED, detail, stats=dict(stats))

    @staticmethod
    def unknown(reason: str, **stats: int) -> ProofResult:
        return ProofResult(Status.UNKNOWN, reason, stats=dict(stats))

    @property
    def ok(self) -> bool:
        return self.status is Status.PROVED

    def text(self) -> str:
        """The verdict as lines of text, the way a reviewer reads a counterexample."""
        lines = [f"{self.status.value}: {self.detail}"]
        width = max((len(k) for k, _ in self.model), default=0)
        lines += [f"  {k.ljust(width)} = {v}" for k, v in self.model]
        lines += [f"  {n}" for n in self.notes]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status.value, "detail": self.detail,
                "model": dict(self.model), "notes": list(self.notes), "stats": dict(self.stats)}


@dataclass(frozen=True)
class Obligation:
    """A named claim and the procedure that checks it.

    ``check`` receives the per-query solver timeout in seconds.  ``theme`` is the module it
    comes from (``fit``, ``nodes``...), ``statement`` says in one sentence what is claimed.
    """

    name: str
    theme: str
    statement: str
    check: Callable[[float], ProofResult]
