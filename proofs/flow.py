"""Where each actor of a spec can be, and which locks it holds there, from its step tables.

Locks are taken and dropped by the steps themselves (a section's locks, ``Acquire``,
``Release``), so the set an actor holds at a position follows from the steps that lead there,
whatever the data.  It is computed here, not guessed: every step has been run on a symbolic
state (``proofs.stepcase.StepCase``); each of its paths gives the position it leads to and the
held-lock mask after it as a term of the mask before.  A forward fixpoint from the actor's
initial position with no lock held, substituting each known mask into those terms, gives every
position the actor can reach by its own steps and every mask it can hold there.

Data-dependent branches are followed on both sides (a path is left out only when its condition
is false for the held mask alone), so both sets over-approximate what any state of the spec can
show: a position outside ``reach`` is one no run reaches, and a single mask at a position is the
mask every run holds there.  When a step's target or lock is not a constant (a lock computed
from the data), the mask there is unknown (``None``), not guessed.

Relies on ``proofs.stepcase`` and ``spec.protocol``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import z3

from spec.compile import Spec
from spec.protocol import HELD, PC

from .stepcase import WIDTH, Raised, StepCase
from .symbolic import SymInt


@dataclass(frozen=True)
class Flow:
    """Per actor, the positions its steps can reach; per position, every lock mask the actor
    can hold there (``None``: not a constant)."""

    reach: tuple[frozenset[int], ...]
    held: dict[tuple[int, int], frozenset[int | None]]

    def held_at(self, k: int, p: int) -> int | None:
        """The one mask actor ``k`` holds at ``p``, if there is exactly one."""
        got = self.held.get((k, p), frozenset())
        if len(got) != 1:
            return None
        return next(iter(got))


def _const(term: object, var: z3.BitVecRef | None, value: int | None) -> int | None:
    if isinstance(term, int):
        return term
    if not isinstance(term, SymInt):
        return None
    e = term.expr
    if var is not None and value is not None:
        e = z3.substitute(e, (var, z3.BitVecVal(value, WIDTH)))
    e = z3.simplify(e)
    if z3.is_bv_value(e):
        assert isinstance(e, z3.BitVecNumRef)
        return int(e.as_signed_long())
    return None


def _possible(conds: tuple[z3.BoolRef, ...], var: z3.BitVecRef | None, value: int | None
              ) -> bool:
    """False only when a condition of the path is false for this held mask alone."""
    if var is None or value is None:
        return True
    sub = (var, z3.BitVecVal(value, WIDTH))
    return not any(z3.is_false(z3.simplify(z3.substitute(c, sub))) for c in conds)


def analyse(spec: Spec, case: Callable[[int, int], StepCase]) -> Flow:
    """The fixpoint over every actor's steps (``case(k, p)``: the step of actor ``k`` at
    ``p``, run symbolically)."""
    reach: list[frozenset[int]] = []
    held: dict[tuple[int, int], set[int | None]] = {}
    for k, a in enumerate(spec.actor_index):
        start = (spec.init[a][PC], spec.init[a][HELD])
        seen: set[tuple[int, int | None]] = {start}
        todo = [start]
        while todo:
            p, h = todo.pop()
            held.setdefault((k, p), set()).add(h)
            if spec.tables[k][p] is None:
                continue
            c = case(k, p)
            pre = c.s[a][HELD]
            var = pre.expr if isinstance(pre, SymInt) else None
            for path in c.paths:
                if isinstance(path.value, Raised) or not _possible(path.condition, var, h):
                    continue
                for s2 in path.value:
                    p2 = _const(s2[a][PC], None, None)
                    if p2 is None:
                        raise ValueError(f"{spec.actor_names[k]}: a step at {p} goes to a "
                                         "position that is not a constant")
                    nxt = (p2, _const(s2[a][HELD], var, h))
                    if nxt not in seen:
                        seen.add(nxt)
                        todo.append(nxt)
        reach.append(frozenset(p for p, _ in seen))
    return Flow(tuple(reach), {key: frozenset(v) for key, v in held.items()})
