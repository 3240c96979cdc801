"""The facts a page-set query of one step path assumes: the step's frame.

A page-set query slows down with every set term it holds, and the strengthening of a sharded
spec has thousands of facts.  Yet a step of actor ``k`` at position ``p`` can only break the
facts that ``proofs.unbounded`` asks about after it (its posts): the spec's own checks, the
facts about no position, ``k``'s facts at its next position, and the facts of another actor
that read a field the step changed.  Their proofs need, besides the spec's own checks and the
facts about no position:

- ``k``'s facts at ``p`` (what it holds, where its areas are);
- for a fact of another actor ``j`` at its position ``q``, ``j``'s facts at ``q`` (the same
  fact before the step is one of them);
- for a fact about no position that reads ``j``'s locals, ``j``'s facts that read them.

That set is the frame; widened, it also has every fact of another actor that reads a field
the step changes.  A proof from fewer facts is harder, never wrong: a path proved from
its frame is proved from all the facts, so a Houdini that asks frames keeps an inductive set
(it may drop a fact that all the facts would have kept).  A model of a frame that breaks a
post is a counterexample only if it also keeps the facts around it (``Frames.around``: those
at the positions the model puts the actors); those it breaks join the frame and the query is
asked again (``SetProver.refine``).

Relies on ``proofs.facts`` (the ``Fact`` type and its ``reads``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from .facts import Fact


class Frames:
    """The facts indexed by actor position and by the actor locals they read."""

    def __init__(self, facts: Sequence[Fact]) -> None:
        self.facts = facts
        self.always = [f for f in facts if f.base or f.actor is None]
        self.at: dict[tuple[int, int | None], list[Fact]] = {}
        self.reading: dict[tuple[int, int], list[Fact]] = {}
        for f in facts:
            if f.actor is None:
                continue
            self.at.setdefault((f.actor, f.pc), []).append(f)
            for who, j in f.reads:
                if who == f.actor:
                    self.reading.setdefault((who, j), []).append(f)

    def of(self, k: int, p: int, posts: Iterable[Fact | None],
           dropped: Collection[int] = (), moved: Collection[tuple[int, int]] = ()
           ) -> list[Fact]:
        """The frame of a step of actor ``k`` at ``p`` for ``posts``, minus ``dropped`` (ids);
        widened with every fact of another actor that reads a field in ``moved`` (at any of
        its positions), when the narrow frame is not enough."""
        got: dict[int, Fact] = {id(f): f for f in self.always}
        if moved:
            changed = frozenset(moved)
            got.update((id(f), f) for f in self.facts
                       if f.actor is not None and f.actor != k and f.reads & changed)
        got.update((id(f), f) for f in self.at.get((k, p), ()))
        for g in posts:
            if g is None or g.base:
                continue
            if g.actor is not None:
                if g.actor != k:
                    got.update((id(f), f) for f in self.at.get((g.actor, g.pc), ()))
                continue
            for who, j in g.reads:
                if who >= 0 and who != k:
                    got.update((id(f), f) for f in self.reading.get((who, j), ()))
        return [f for f in self.facts if id(f) in got and id(f) not in dropped]

    def around(self, pcs: Sequence[int]) -> list[Fact]:
        """The facts that say anything in a state where actor ``j`` is at ``pcs[j]``: the
        spec's own checks, the facts about no position, and each actor's at its position."""
        out = list(self.always)
        for j, q in enumerate(pcs):
            out += self.at.get((j, q), ())
        return out
