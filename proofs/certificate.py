"""Stored inductive strengthenings: the facts that make a spec's invariants inductive.

Finding a strengthening (mining candidate facts, Houdini, then keeping only the facts some
step's proof uses) takes minutes; checking one takes seconds.  So the search runs on demand
(``vmapcheck prove --strengthen SPEC``) and stores the facts it kept in
``proofs/certificates/<spec>.json``, each by its key (actor, position, name); the proof
obligation mines the candidates from the spec as it is now, takes the stored ones and checks
Init => Inv and Inv /\\ step => Inv' for them.  A stored fact the spec no longer proposes (the
spec changed) makes the obligation Unknown and names the command to run; stored facts that
are no longer inductive give a counterexample to induction, as a broken invariant would.
Either way the proof is about the spec that runs, and the file only says where to look.

Relies on ``proofs.facts`` (the ``Fact`` type).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .facts import Fact

DIR = Path(__file__).parent / "certificates"
Key = tuple[int | None, int | None, str]


def key(f: Fact) -> Key:
    return (f.actor, f.pc, f.name)


class Stale(Exception):
    """The stored facts do not match the spec's candidates any more."""


@dataclass(frozen=True)
class Certificate:
    spec: str
    model: str  # what the states range over ("page sets": every address)
    keys: tuple[Key, ...]
    made: dict[str, Any]  # how it was found (counts, seconds), for the record

    def select(self, facts: Sequence[Fact]) -> list[Fact]:
        """The stored facts among ``facts``, in the stored order."""
        by_key = {key(f): f for f in facts}
        missing = [k for k in self.keys if k not in by_key]
        if missing:
            raise Stale(f"{len(missing)} stored fact(s) of the {self.spec} spec are no longer "
                        f"proposed (first: {missing[0][2]!r}); run `vmapcheck prove "
                        f"--strengthen {self.spec}`")
        return [by_key[k] for k in self.keys]


def path(spec: str) -> Path:
    return DIR / f"{spec}.json"


def load(spec: str) -> Certificate | None:
    p = path(spec)
    if not p.exists():
        return None
    data = json.loads(p.read_text())
    keys = tuple((a, pc, name) for a, pc, name in data["facts"])
    return Certificate(data["spec"], data["model"], keys, data.get("made", {}))


def save(cert: Certificate) -> Path:
    p = path(cert.spec)
    p.parent.mkdir(parents=True, exist_ok=True)
    data = {"spec": cert.spec, "model": cert.model, "made": cert.made,
            "facts": [list(k) for k in cert.keys]}
    p.write_text(json.dumps(data, indent=1) + "\n")
    return p
