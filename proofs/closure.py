"""Concrete runs from the states the solver finds, to drop many candidate facts per query.

Houdini keeps the greatest inductive subset ``I`` of the candidates ``C``.  Each of its queries
that comes back satisfiable names a state ``s`` satisfying every candidate still live, so every
subset of them, ``I`` included; and every state reachable from ``s`` satisfies ``I`` too (it is
inductive).  So a candidate false in any state reachable from ``s`` is not in ``I`` and can go
at once, without a query of its own: this is mining (``proofs.facts.mine``) again, from a state
no run of the coverage scenario reaches.  The result of Houdini is unchanged (the same ``I``);
it only takes far fewer queries.

Soundness does not rest on the solver's encoding: ``s`` is used only if its concrete values lie
in the symbolic model's ranges and every live candidate holds on it when run on plain ints.
States the spec's code raises on, or that leave the model's ranges, are not used (a real
counterexample is the solver's to find).  Each run explores at most ``limit`` new states.

Relies on ``proofs.facts`` and ``proofs.stepcase``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence

from spec.compile import Spec
from spec.protocol import PC

from .facts import Fact, State
from .stepcase import in_model


class Closure:
    """The facts a concrete run refutes, with the states already seen left out (they satisfy
    every live fact: they were mined, or reached before from a state that did)."""

    def __init__(self, spec: Spec, facts: Sequence[Fact], known: Iterable[State],
                 limit: int = 400) -> None:
        self.spec, self.limit = spec, limit
        self.by_pos: dict[tuple[int | None, int | None], list[Fact]] = {}
        for f in facts:
            if not f.base:
                self.by_pos.setdefault((f.actor, f.pc), []).append(f)
        self.known: set[State] = set(known)
        self.states = 0

    def _successors(self, s: State) -> list[State]:
        out: list[State] = []
        for k, a in enumerate(self.spec.actor_index):
            step = self.spec.tables[k][s[a][PC]]
            if step is None:
                continue
            got: list[State] = []
            try:
                step(s, a, got)
            except Exception:  # noqa: BLE001 - a step the spec's own checks reject: not used
                continue
            out += got
        return out

    def _false(self, s: State, live: Callable[[Fact], bool]) -> list[Fact]:
        keys: list[tuple[int | None, int | None]] = [(None, None)]
        keys += [(k, s[a][PC]) for k, a in enumerate(self.spec.actor_index)]
        return [f for key in keys for f in self.by_pos.get(key, ())
                if live(f) and not f.test(s)]

    def refute(self, start: State, live: Callable[[Fact], bool],
               base: Collection[Fact]) -> list[Fact]:
        """The live facts false somewhere reachable from ``start``; nothing when ``start``
        itself is outside the model or breaks a live fact (or a base fact)."""
        spec = self.spec
        if not in_model(spec, start) or self._false(start, live):
            return []
        if not all(f.test(start) for f in base):
            return []
        out: dict[int, Fact] = {}
        seen = {start}
        frontier = [start]
        new = 0
        while frontier and new < self.limit:
            nxt: list[State] = []
            for s in frontier:
                for t in self._successors(s):
                    if t in seen or t in self.known or not in_model(spec, t):
                        continue
                    seen.add(t)
                    nxt.append(t)
                    new += 1
                    for f in self._false(t, live):
                        out[id(f)] = f
            frontier = nxt
        self.known |= seen
        self.states += new
        return list(out.values())
