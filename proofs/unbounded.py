"""Inductive invariants of a spec over an unbounded address space: page sets instead of masks.

``proofs.induction`` proves a spec's invariants for every state of its coverage instance (a
few pages, every mask).  Here the same spec tables and the same invariant code run on states
whose page masks are sets of pages of the whole 64-bit address space (``proofs.symset``): the
managed range is a set of any size, each owner's pages any subset of it, each thread's area
any set of its size anywhere, each counter any integer.  Init => Inv and Inv /\\ step => Inv'
are checked by Z3 over those states, so they hold for every number of pages and every address.

The invariant is the spec's own checks (``Spec.owned_once``: single owner, conservation, lock
exclusion; and the design's invariants, ``vmap_lazy_nr`` and allocated areas in a busy tree),
strengthened with the candidate facts of ``proofs.facts`` mined from the coverage instance's
reachable states, minus those that name particular pages of the instance (no meaning over the
whole space: ``expressible``).  ``strengthen`` runs Houdini on demand over the page-set steps
(``SetProver.run_demanded``): the spec's own checks are proved of every step, each query
assuming only the step's frame (``proofs.frames``); the facts a proof used (its unsat core)
are proved next, and so on; a fact a step breaks is dropped and the proofs that used it are
asked again.  The facts asked and kept are inductive together; the result is
stored (``proofs.certificate``) and ``check``, the obligation, proves the stored facts
inductive without searching.  A step that breaks a fact from a state satisfying all of them is
a counterexample to induction, printed as the spec state before (counters, sizes of the page
sets, the areas by size and first page) and the step.

The steps are the spec's, with its choices of pages widened (any fit inside the free pages, any
run of a list: ``proofs.symset``), so the proof covers the spec's steps and more.  Facts about
sizes rest on the lemmas of ``proofs.symset``, facts about runs and zones on its run-start
lemmas.  Before the page-set Houdini, ``strengthen`` runs Houdini on the coverage instance's
page masks over the same facts (``_bounded_houdini``): what breaks there breaks over page sets
too, and it costs milliseconds a query instead of seconds.  Facts no proof uses are never
asked over page sets, which is most of them.  The ``percpu`` spec's steps run on
page sets (every path of its coverage scenario) and ``strengthen("percpu")`` runs to its end
(about 35 minutes), but ends in a counterexample to induction with a thread at a position
the coverage instance never reaches (so the facts proposed there were mined from no state);
no strengthening of it is stored and ``PROVED`` has ``global`` only; the
``nodes`` spec keeps lists of area codes of varying length, which ``SetStates`` rejects.

Relies on ``spec`` (compile, protocol), ``proofs.setstate`` (the states, facts on them, their
printing), ``proofs.facts``, ``proofs.frames``, ``proofs.induction`` (mining),
``proofs.certificate`` and ``proofs.stepcase`` (running a step).
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import z3

from spec.compile import Spec
from spec.protocol import PC

from . import certificate, induction
from .closure import Closure
from .facts import Fact
from .facts import base_facts as facts_base
from .frames import Frames
from .houdini import Prover, moved_fields
from .obligation import Obligation, ProofResult, Status
from .setstate import (
    SetStates,
    State,
    base_facts,
    describe,
    expressible,
    formula_of,
    page_sets,
)
from .stepcase import Raised, runner
from .symset import SymSet, walk

log = logging.getLogger("proofs.unbounded")


# ---------------------------------------------------------------------------- the proof
@dataclass
class SetCti:
    """A counterexample to induction over page sets: the state before, the step, what it
    breaks, and the states after (what the step's code computes on the model)."""

    actor: str
    step: str
    broken: str
    before: dict[str, str]
    after: list[dict[str, str]] = field(default_factory=list)


class SetProver:
    """Houdini over the page-set steps: drop every candidate fact some step can break from a
    state satisfying the live facts, until no step breaks any; the spec's own checks are never
    dropped (a step that breaks one is a counterexample to induction).

    A query is one step path from one actor position, with a fresh solver that holds only
    the facts it assumes (the step's frame, ``proofs.frames``), the facts the path can break
    after it and the executor's assumptions about the terms those name (``assumed``); a path
    is asked again only when a fact its proof assumed was dropped."""

    def __init__(self, spec: Spec, facts: list[Fact], timeout: float,
                 reach: Sequence[frozenset[int]] | None = None) -> None:
        self.spec, self.timeout = spec, timeout
        self.S = SetStates(spec, timeout)
        self.ex, self.P = self.S.ex, self.S.P
        self.facts = facts
        self.by_id = {id(f): f for f in facts}
        self.dropped: set[int] = set()
        self.g = self.S.state()
        self.reach = reach
        self.queries = 0
        self.asked = 0  # facts ``run_demanded`` asked about
        self.cores = False  # report a proof's unsat core as the facts it assumed
        self.cases: dict[tuple[int, int], tuple[State, list[Any]]] = {}
        self.report: Callable[[str], None] = lambda what: None  # progress, for a long search
        self.pre = {id(f): formula_of(self.ex, f, self.g, spec) for f in facts}
        self._generic = len(self.ex._pre)  # noqa: SLF001 - assumptions of the generic state
        self._owned: dict[tuple[int, int], list[range]] = {}  # and of each step
        self.posts: dict[tuple[int, int, int], list[tuple[Fact | None, z3.BoolRef]]] = {}
        self.by_field: dict[tuple[int, int], list[Fact]] = {}
        for f in facts:
            for fld in f.reads:
                self.by_field.setdefault(fld, []).append(f)
        self.frames = Frames(facts)
        self._consts_of: list[frozenset[int]] = []  # per executor assumption, by index
        self._mentions: dict[int, list[int]] = {}  # constant -> the assumptions naming it
        # A post asked alone from its frame: a proof takes a fraction of a second, so a post
        # the solver cannot settle in this time is taken as broken (dropping is always sound).
        self.alone_timeout = min(timeout, 3.0)

    def live(self) -> list[Fact]:
        return [f for f in self.facts if id(f) not in self.dropped]

    def case(self, k: int, p: int) -> tuple[State, list[Any]]:
        got = self.cases.get((k, p))
        if got is None:
            spec = self.spec
            s = self.S.state(k, p)
            step = spec.tables[k][p]
            assert step is not None
            run = runner(step, s, spec.actor_index[k])
            with self._own(k, p):
                got = self.cases[(k, p)] = (s, self.ex.explore(run))
        return got

    @contextmanager
    def _own(self, k: int, p: int) -> Iterator[None]:
        """The executor's assumptions made inside belong to step (``k``, ``p``)."""
        start = len(self.ex._pre)  # noqa: SLF001
        try:
            yield
        finally:
            self._owned.setdefault((k, p), []).append(
                range(start, len(self.ex._pre)))  # noqa: SLF001

    def affected(self, k: int, s: State, s2: State) -> list[Fact]:
        """The facts a step of actor ``k`` from ``s`` to ``s2`` can change: the spec's own,
        ``k``'s at its new position, and those reading a field the step changed."""
        spec = self.spec
        hit: dict[int, Fact] = {id(f): f for f in self.facts if f.base}
        pc2 = s2[spec.actor_index[k]][PC]
        for f in self.facts:
            if f.actor == k and (not isinstance(pc2, int) or f.pc == pc2):
                hit[id(f)] = f
        for fld in moved_fields(s, s2, spec):
            for f in self.by_field.get(fld, ()):
                if f.actor != k:
                    hit[id(f)] = f
        return [f for f in self.facts if id(f) in hit]

    def post(self, k: int, p: int, i: int) -> list[tuple[Fact | None, z3.BoolRef]]:
        """Every fact path ``i`` of step (``k``, ``p``) can change, after the step (None: the
        path raises)."""
        key = (k, p, i)
        got = self.posts.get(key)
        if got is None:
            s, paths = self.case(k, p)
            path = paths[i]
            got = []
            if isinstance(path.value, Raised):
                got.append((None, z3.BoolVal(False)))
            else:
                with self._own(k, p):
                    for s2 in path.value:
                        got += [(f, formula_of(self.ex, f, s2, self.spec))
                                for f in self.affected(k, s, s2)]
            self.posts[key] = got
        return got

    def query(self, k: int, p: int, i: int, pre: list[Fact], post: list[Fact] | None,
              timeout: float | None = None, seed: int = 0
              ) -> tuple[z3.CheckSatResult, z3.Solver, list[tuple[Fact | None, z3.BoolRef]]]:
        """Can path ``i`` of step (``k``, ``p``) run from a state satisfying ``pre`` and break
        a fact of ``post`` (None: every live fact)?  A fresh solver per query: it holds only
        this query's set terms (the array theory's work grows with every term it holds).
        ``seed``: the solver's random seed and a shuffle of the assertions (how long a query
        takes can depend on their order many times over: 2 s in one order, no answer in 20 s
        in another)."""
        path = self.case(k, p)[1][i]
        want = ({id(f) for f in post} if post is not None else
                {id(f) for f in self.facts if id(f) not in self.dropped})
        posts = [(f, c) for f, c in self.post(k, p, i) if f is None or id(f) in want]
        pc_k = self.g[self.spec.actor_index[k]][PC]
        goal = z3.Not(z3.And(*(c.expr for c in path.side), *(c for _, c in posts)))
        parts = [pc_k.expr == p, *path.condition,
                 *(self.pre[id(f)] for f in pre if at_step(f, k, p))]
        parts = [*self.assumed([*parts, goal], (k, p)), *parts]
        solver = z3.Solver()
        solver.set("timeout", max(1, int((timeout or self.timeout) * 1000)))
        asserted = [*self.P.lemmas_for([*parts, goal]), *parts]
        if seed:
            solver.set("random_seed", seed)
            random.Random(seed).shuffle(asserted)
        solver.add(*asserted)
        self.queries += 1
        return solver.check(goal), solver, posts

    def assumed(self, formulas: list[z3.BoolRef], step: tuple[int, int] | None = None
                ) -> list[z3.BoolRef]:
        """The executor's assumptions (input ranges, an area holding its first page, a page's
        zone) about the constants ``formulas`` mention, and about the constants those mention.
        The executor keeps them for every case explored so far, thousands of them, most about
        the areas of other steps; asserting fewer assumptions never makes a proof wrong.  A
        constant that many assumptions mention (a zone's pages, a thread's area) brings in
        those that mention it only when the formulas name it themselves.  With ``step``, only
        the assumptions about the generic state and those made while running that step (its
        paths and the facts after them) are taken: the same query could otherwise take under
        two seconds or give no answer in a minute, depending on how many other steps had been
        run before it."""
        pre = self.ex._pre  # noqa: SLF001
        for j in range(len(self._consts_of), len(pre)):
            cs = _constants(pre[j])
            self._consts_of.append(cs)
            for c in cs:
                self._mentions.setdefault(c, []).append(j)
        hub = max(40, len(pre) // 20)
        chosen: set[int] = set()
        wanted = set(_constants(*formulas))
        owned = self._owned.get(step, []) if step is not None else None
        for _ in range(2):
            new = {j for c in wanted for j in self._mentions.get(c, ())} - chosen
            if owned is not None:
                new = {j for j in new if j < self._generic or any(j in r for r in owned)}
            chosen |= new
            wanted = {c for j in new for c in self._consts_of[j]
                      if len(self._mentions.get(c, ())) <= hub}
        return [pre[j] for j in sorted(chosen)]

    def live_posts(self, k: int, p: int, i: int) -> list[Fact | None]:
        """The live facts path ``i`` of step (``k``, ``p``) can break (None: it raises)."""
        seen: dict[int, Fact | None] = {}
        for f, _ in self.post(k, p, i):
            if f is None or id(f) not in self.dropped:
                seen.setdefault(id(f), f)
        return list(seen.values())

    def moved(self, k: int, p: int, i: int) -> frozenset[tuple[int, int]]:
        """The fields path ``i`` of step (``k``, ``p``) can change."""
        s, paths = self.case(k, p)
        value = paths[i].value
        out: frozenset[tuple[int, int]] = frozenset()
        for s2 in value if isinstance(value, list) else ():
            out |= moved_fields(s, s2, self.spec)
        return out

    def prove(self, k: int, p: int, i: int, strict: bool,
              posts: Sequence[Fact | None] | None = None
              ) -> tuple[set[int], list[Fact | None], z3.ModelRef | None]:
        """Path ``i`` of step (``k``, ``p``) against the live facts (or only those of them in
        ``posts``), asked from frames
        (``proofs.frames``): the ids of the facts its proofs assumed, the posts it breaks
        (None: the path raises) and a model that breaks the first of them (with a model, the
        ids are of the facts it was found from).

        All posts are asked at once from their frame; if that is not a proof, in a search the
        posts its model breaks are settled together (``_settle``), and otherwise each half is
        asked from its own frame, down to single posts.  A single post's frame is refined with
        the facts its models break (``refine``).  If the solver cannot tell and the post must
        be settled (one of the spec's own checks, or any post when ``strict``: a check, not a
        search), it is asked case by case over the other actors' positions (``split``).  If
        that cannot tell either, the post is asked from its widened frame, refined, briefly;
        then, when it must be settled, with the whole time limit; otherwise it is reported
        broken (dropping is always sound)."""
        used: set[int] = set()
        broken: list[Fact | None] = []
        todo = [self.live_posts(k, p, i)]
        if posts is not None:
            want = {id(g) for g in posts}
            todo = [[g for g in todo[0] if id(g) in want]]
        while todo:
            group = todo.pop()
            if not group:
                continue
            pre = self.frames.of(k, p, group, self.dropped)
            r, solver, _ = self.query(k, p, i, pre, [f for f in group if f is not None],
                                      self.alone_timeout * (2 if len(group) > 1 else 1))
            if r == z3.unsat:
                used |= self._proof(k, p, i, group, pre)
            elif (r == z3.sat and not strict and len(group) > 1
                  and (hit := self._false_in(solver.model(), k, p, i, group))):
                groups, proved, gone = self._settle(k, p, i, group, hit)
                used |= proved
                broken += gone
                todo += groups
            elif len(group) > 1:
                todo += [group[: len(group) // 2], group[len(group) // 2:]]
            else:
                g = group[0]
                alone = [] if g is None else [g]
                must = strict or g is None or g.base
                more = self._broken_around(solver.model(), pre) if r == z3.sat else []
                if more:  # refined from the frame, with what its model breaks
                    r, solver, pre = self.refine(k, p, i, [*pre, *more], alone,
                                                 self.alone_timeout * 2)
                proof: set[int] | None = None
                if r == z3.unknown and must and self.reach is not None:
                    r, cut, proof = self.split(k, p, i, g, pre)
                    if r == z3.sat:
                        assert cut is not None
                        return proof, [g], cut.model()
                    if r != z3.unsat:
                        proof = None
                if r == z3.unknown:
                    pre = self.frames.of(k, p, group, self.dropped, self.moved(k, p, i))
                    r, solver, pre = self.refine(k, p, i, pre, alone, self.alone_timeout * 2)
                if r == z3.unknown and must:
                    r, solver, pre = self.refine(k, p, i, pre, alone, seeds=3)
                if r == z3.unsat:
                    used |= proof if proof is not None else self._proof(k, p, i, group, pre)
                elif must and r == z3.sat:
                    return {id(f) for f in pre}, [g], solver.model()
                elif must:
                    raise TimeoutError(f"solver: {solver.reason_unknown()}")
                else:
                    assert g is not None
                    log.debug("broken (%s) at %s@%d: %s", r, self.spec.actor_names[k], p,
                              g.name)
                    broken.append(g)
        return used, broken, None

    def _proof(self, k: int, p: int, i: int, group: Sequence[Fact | None], pre: list[Fact]
               ) -> set[int]:
        """The ids of the facts a proof that path ``i`` keeps ``group`` from ``pre`` assumed:
        all of ``pre``, or with ``cores`` an unsat core of it (all of it if the solver
        cannot find one)."""
        if not self.cores:
            return {id(f) for f in pre}
        want = {id(g) for g in group if g is not None}
        posts = [c for f, c in self.post(k, p, i) if f is None or id(f) in want]
        pool = [f for f in pre if at_step(f, k, p)]
        core = self._core(k, p, self.case(k, p)[1][i], posts, pool)
        return {id(f) for f in (pre if core is None else core)}

    def split(self, k: int, p: int, i: int, g: Fact | None, pre: list[Fact],
              over: Sequence[int] | None = None
              ) -> tuple[z3.CheckSatResult, z3.Solver | None, set[int]]:
        """Post ``g`` of path ``i`` asked once per position of another actor (and once for
        every position it never reaches), each case from ``pre`` and that actor's facts there,
        refined (``refine``; when the solver cannot tell, with another seed, then with the
        whole time limit); a case it still cannot tell is split again over the next actor.
        ``over``: the actors to split over, by default the others, the one with the most
        positions first.  One query whose frame holds the facts of every position of an
        actor, each an implication from its position, can take the solver longer than its
        time limit where the cases take a fraction of a second each.  Returns unsat with the ids of
        the facts the cases' proofs assumed, sat with a case's solver and the ids of its facts,
        or unknown."""
        assert self.reach is not None
        reach = self.reach
        if over is None:
            over = sorted((j for j in range(len(self.spec.actor_names)) if j != k),
                          key=lambda j: -len(reach[j]))
        j, rest = over[0], over[1:]
        pc = self.g[self.spec.actor_index[j]][PC].expr
        alone = [] if g is None else [g]
        outside = [f for (a, q), fs in self.frames.at.items() if a == j and q not in reach[j]
                   for f in fs]
        cases = [(pc == q, self.frames.at.get((j, q), [])) for q in sorted(reach[j])]
        cases.append((z3.And([pc != q for q in reach[j]]), outside))
        used: set[int] = set()
        for where, at in cases:
            pin = Fact(f"{self.spec.actor_names[j]} at {where}", None, None, frozenset(),
                       lambda s: True)
            self.pre[id(pin)] = where
            try:
                case = list({id(f): f for f in [*pre, *at, pin]
                             if id(f) not in self.dropped}.values())
                r, solver, case = self.refine(k, p, i, case, alone, self.alone_timeout * 2,
                                              rounds=5, seeds=2)
                if r == z3.unknown:
                    r, solver, case = self.refine(k, p, i, case, alone, rounds=5)
                if r == z3.unsat:
                    used |= self._proof(k, p, i, [g], case) - {id(pin)}
                    continue
                if r == z3.sat:
                    return r, solver, {id(f) for f in case if f is not pin}
                if not rest:
                    return r, solver, set()
                r, cut, more = self.split(k, p, i, g, case, rest)
                if r != z3.unsat:
                    return r, cut, more - {id(pin)}
                used |= more - {id(pin)}
            finally:
                del self.pre[id(pin)]
        return z3.unsat, None, used

    def _settle(self, k: int, p: int, i: int, group: list[Fact | None], hit: list[Fact]
                ) -> tuple[list[list[Fact | None]], set[int], list[Fact | None]]:
        """A search's step when a model of a group's frame breaks the facts ``hit`` of it
        (not the spec's own checks): those facts are asked together from their frame, refined
        (``refine``).  If that proves them, they are settled (the ids of the facts
        assumed); if its model breaks some of them, those are broken (one model drops them
        all, as Houdini does); if the solver cannot tell, each is asked on its own.  Returns
        the groups of posts still to ask, the ids assumed and the posts broken."""
        pre = self.frames.of(k, p, hit, self.dropped)
        r, solver, pre = self.refine(k, p, i, pre, hit, self.alone_timeout * 2)
        ids = {id(g) for g in hit}
        rest: list[Fact | None] = [g for g in group if id(g) not in ids]
        if r == z3.unsat:
            return [rest], self._proof(k, p, i, hit, pre), []
        gone = self._false_in(solver.model(), k, p, i, hit) if r == z3.sat else []
        if not gone:  # unknown, or a model Z3 does not evaluate to false
            alone: list[list[Fact | None]] = [[g] for g in hit]
            return [rest, *alone], set(), []
        for g in gone:
            log.debug("broken (model) at %s@%d: %s", self.spec.actor_names[k], p, g.name)
        ids = {id(g) for g in gone}
        return [[g for g in group if id(g) not in ids]], set(), list(gone)

    def _false_in(self, m: z3.ModelRef, k: int, p: int, i: int, group: Sequence[Fact | None]
                  ) -> list[Fact]:
        """The facts of ``group`` (not the spec's own checks) that path ``i`` breaks in ``m``."""
        want = {id(g) for g in group if g is not None and not g.base}
        bad = {id(f) for f, c in self.post(k, p, i) if f is not None and id(f) in want
               and z3.is_false(m.eval(c, model_completion=True))}
        return [g for g in group if g is not None and id(g) in bad]

    def _broken_around(self, m: z3.ModelRef, pre: list[Fact]) -> list[Fact]:
        """The live facts not in ``pre`` that ``m`` breaks (or Z3 cannot evaluate to true in
        it) at the positions it puts the actors (``Frames.around``)."""
        pcs = [m.eval(self.g[a][PC].expr, model_completion=True) for a in self.spec.actor_index]
        have = {id(f) for f in pre}
        return [f for f in self.frames.around([v.as_long() if z3.is_int_value(v)
                                               or z3.is_bv_value(v) else -1 for v in pcs])
                if id(f) not in have and id(f) not in self.dropped
                and not z3.is_true(m.eval(self.pre[id(f)], model_completion=True))]

    def refine(self, k: int, p: int, i: int, pre: list[Fact], post: list[Fact],
               timeout: float | None = None, rounds: int = 20, seeds: int = 1
               ) -> tuple[z3.CheckSatResult, z3.Solver, list[Fact]]:
        """Ask path ``i`` of step (``k``, ``p``) from ``pre`` (an unknown asked again with up
        to ``seeds`` random seeds); while the model breaks live facts around it
        (``Frames.around``: at the positions the model puts the actors), add them and ask
        again.  Sat then means a state that keeps every live fact that says anything in it;
        after ``rounds`` rounds, every live fact is asked at once."""
        for _ in range(rounds):
            for seed in range(seeds):
                r, solver, _ = self.query(k, p, i, pre, post, timeout, seed)
                if r != z3.unknown:
                    break
            if r != z3.sat:
                return r, solver, pre
            more = self._broken_around(solver.model(), pre)
            if not more:
                return r, solver, pre
            pre = [*pre, *more]
        pre = self.live()
        r, solver, _ = self.query(k, p, i, pre, post, timeout)
        return r, solver, pre

    def paths(self) -> list[tuple[int, int, int]]:
        spec = self.spec
        return [(k, p, i) for k in range(len(spec.actor_names))
                for p, st in enumerate(spec.tables[k])
                if st is not None and (self.reach is None or p in self.reach[k])
                for i in range(len(self.case(k, p)[1]))]

    def _core(self, k: int, p: int, path: Any, posts: list[z3.BoolRef], pool: list[Fact]
              ) -> list[Fact] | None:
        """Facts of ``pool`` enough for ``path`` to keep ``posts``, by an unsat core (not
        minimised: Z3's minimisation of a page-set core takes seconds where the core itself
        takes a fraction of one); None if the solver finds no proof."""
        pc_k = self.g[self.spec.actor_index[k]][PC]
        goal = z3.Not(z3.And(*(c.expr for c in path.side), *posts))
        lits = [z3.Bool(f"use{n}") for n in range(len(pool))]
        parts = [pc_k.expr == p, *path.condition, goal,
                 *(z3.Implies(lit, self.pre[id(f)]) for lit, f in zip(lits, pool, strict=True))]
        parts = [*self.assumed(parts, (k, p)), *parts]
        solver = z3.Solver()
        solver.set("timeout", max(1, int(self.timeout * 1000)))
        solver.add(*self.P.lemmas_for(parts), *parts)
        self.queries += 1
        if solver.check(*lits) != z3.unsat:
            return None
        core = {str(x) for x in solver.unsat_core()}
        return [f for lit, f in zip(lits, pool, strict=True) if str(lit) in core]

    def check_all(self) -> SetCti | None:
        """Is the conjunction of all the facts inductive as it stands (nothing dropped)?"""
        for k, p, i in self.paths():
            used, broken, m = self.prove(k, p, i, strict=True)
            if broken:
                assert m is not None
                return self._cti(k, p, i, m, broken[0], used)
        return None

    def _cti(self, k: int, p: int, i: int, m: z3.ModelRef, broken: Fact | None,
             frame: set[int]) -> SetCti:
        s, paths = self.case(k, p)
        value = paths[i].value
        spec = self.spec
        m, sizes = self._shown(k, p, i, broken, frame) or (m, {})

        def show(state: State) -> dict[str, str]:
            return describe(spec, self.P, m, state, sizes)
        if isinstance(value, Raised):
            return SetCti(spec.actor_names[k], spec.step_text[k][p],
                          f"the step raises {value.exc}", show(s))
        assert broken is not None
        return SetCti(spec.actor_names[k], spec.step_text[k][p], broken.name, show(s),
                      [show(s2) for s2 in value])

    def _shown(self, k: int, p: int, i: int, broken: Fact | None, frame: set[int]
               ) -> tuple[z3.ModelRef, dict[int, int]] | None:
        """The counterexample again, from the facts it was found from (ids in ``frame``),
        with the size of every page set shown read off a constant of its own (a model leaves
        the size of a set it was never asked about arbitrary, and Z3 does not always evaluate
        ``card`` of a term), or None."""
        s, paths = self.case(k, p)
        path = paths[i]
        states = [s, *(path.value if isinstance(path.value, list) else [])]
        shown = {x.arr.get_id(): x.arr for x in [self.P.managed, *page_sets(states)]}
        consts = {n: z3.Int(f"size of shown set {n}") for n in shown}
        post = [c for f, c in self.post(k, p, i) if f is broken]
        pc_k = self.g[self.spec.actor_index[k]][PC]
        parts = [pc_k.expr == p, *path.condition,
                 *(self.pre[id(f)] for f in self.facts if id(f) in frame and at_step(f, k, p)),
                 *(consts[n] == self.P.size(arr) for n, arr in shown.items()),
                 self._conserved(s),
                 z3.Not(z3.And(*post)) if broken is not None else z3.BoolVal(True)]
        parts = [*self.assumed(parts, (k, p)), *parts]
        # The plain SMT core, without the preprocessing that solves variables away: a model
        # that gives an eliminated counter as a term over ``card`` cannot be printed.
        solver = z3.Tactic("smt").solver()
        solver.set("timeout", max(1, int(self.timeout * 1000)))
        solver.add(*self.P.lemmas_for(parts), *parts)
        if solver.check() != z3.sat:
            return None
        m = solver.model()
        sizes = {}
        for n, c in consts.items():
            v = m.eval(c, model_completion=True)
            if isinstance(v, z3.IntNumRef):
                sizes[n] = v.as_long()
        return m, sizes

    def _conserved(self, s: State) -> z3.BoolRef:
        """The managed range's size is the size of the union of the owners' pages in ``s``.
        Implied by the ownership check before the step (the two are equal sets); said as a size
        so that the lemmas of the union's size come in and the sizes shown add up."""
        acc: Any = 0
        for _, m in self.spec.owners(s):
            acc = acc | m
        if not isinstance(acc, SymSet):
            return z3.BoolVal(True)
        return self.P.size(self.P.managed.arr) == self.P.size(acc.arr)

    def run_demanded(self) -> SetCti | None:
        """Houdini on demand: prove only the facts some proof needs.  The spec's own checks
        are asked first, of every path; the facts a proof of them uses (an unsat core of the
        frames it was proved from) are asked next, of every path that can change them, and so
        on.  A fact a path breaks is dropped, and the posts whose proofs used it are asked
        again.  Afterwards ``live`` is the facts asked and kept: every path keeps each of them
        from states satisfying the others, so their conjunction is inductive.  Among thousands
        of candidates only those reachable from the spec's checks through proofs are ever
        asked, so candidates no proof needs cost nothing.
        A broken spec check is a counterexample to induction."""
        self.cores = True
        none = id(None)  # the post "the path does not raise"
        wanted: dict[int, Fact] = {id(f): f for f in self.live() if f.base}
        paths = self.paths()
        pending: dict[tuple[int, int, int], set[int]] = {
            key: {*wanted, none} for key in paths}
        queue = deque(paths)
        users: dict[int, set[tuple[tuple[int, int, int], frozenset[int]]]] = {}
        done = lost = 0

        def ask_again(key: tuple[int, int, int], ids: Iterable[int]) -> None:
            if key not in pending:
                queue.append(key)
            pending.setdefault(key, set()).update(ids)
        while queue:
            key = queue.popleft()
            k, p, i = key
            ask = pending.pop(key, set())
            group = [g for g in self.live_posts(k, p, i) if id(g) in ask]
            if not group:
                continue
            used, broken, m = self.prove(k, p, i, strict=False, posts=group)
            done += 1
            if m is not None:
                return self._cti(k, p, i, m, broken[0], used)
            gone = {id(g) for g in broken}
            for g in broken:
                assert g is not None
                self.dropped.add(id(g))
                lost += 1
                wanted.pop(id(g), None)
                log.debug("drop at %s@%d %r: %s", self.spec.actor_names[k], p,
                          self.spec.step_text[k][p], g.name)
                for again, ids in users.pop(id(g), ()):
                    ask_again(again, ids)
            kept = [g for g in group if id(g) not in gone]
            ids = frozenset(id(g) for g in kept)
            if used & gone:  # a proof assumed a post this path broke: ask again
                ask_again(key, ids)
                continue
            new = []
            for f in (self.by_id[x] for x in used):
                users.setdefault(id(f), set()).add((key, ids))
                if id(f) not in wanted:
                    wanted[id(f)] = f
                    new.append(id(f))
            for again in paths if new else ():
                ask_again(again, new)
            self.asked = len(wanted) + lost
            self.report(f"Houdini on demand: {done} paths asked, {self.asked} facts asked, "
                        f"{lost} dropped")
        self.dropped |= {id(f) for f in self.facts if id(f) not in wanted}
        return None

def _constants(*formulas: z3.ExprRef) -> frozenset[int]:
    """The ids of the uninterpreted constants in ``formulas``."""
    return frozenset(x.get_id() for x in walk(list(formulas), set())
                     if z3.is_const(x) and x.decl().kind() == z3.Z3_OP_UNINTERPRETED)


def at_step(f: Fact, k: int, p: int) -> bool:
    """Can fact ``f`` say anything before a step of actor ``k`` at ``p``?  Not if it is about
    ``k`` at another position: leaving it out of the query changes nothing but its size."""
    return f.actor != k or f.pc == p


def initial_breaks(prover: SetProver, facts: Sequence[Fact]) -> list[Fact]:
    """The facts the initial state (any number of managed pages, all free) can break."""
    out = []
    s0 = prover.S.initial()
    for f in facts:
        c = formula_of(prover.ex, f, s0, prover.spec)
        solver = z3.Solver()
        solver.set("timeout", max(1, int(prover.timeout * 1000)))
        parts = [*prover.ex._pre, z3.Not(c)]  # noqa: SLF001
        solver.add(*prover.P.lemmas_for(parts), *parts)
        r = solver.check()
        if r == z3.sat:
            out.append(f)
        elif r != z3.unsat:
            raise TimeoutError(f"solver on the initial state: {solver.reason_unknown()}")
    return out


# ---------------------------------------------------------------------------- obligations
SPECS = ("global", "percpu")  # the specs whose layout page sets model (masks and counters only)
PROVED = ("global",)  # the specs with a stored strengthening the proof job checks


def strengthen(name: str, timeout: float, report: Callable[[str], None] | None = None
               ) -> tuple[list[Fact] | None, SetCti | None, dict[str, Any]]:
    """Search for an inductive strengthening of spec ``name`` over page sets: mine, Houdini,
    cut down to what the proofs use.  Returns the facts (None with a counterexample to
    induction) and how the search went; ``report`` hears what the search is doing."""
    say = report or (lambda what: None)
    t0 = time.monotonic()
    say("mining candidate facts")
    mined = induction.mine_facts(name, timeout)
    spec = mined.spec
    prover0 = SetStates(spec, timeout)
    keep, gone = expressible(mined.facts, prover0)
    stats: dict[str, Any] = {"candidates": mined.candidates, "mined": len(mined.facts),
                             "page_specific": len(gone)}
    say(f"Houdini over {len(keep)} candidates on the {spec.pages}-page instance")
    keep, cti0 = _bounded_houdini(mined, keep, timeout)
    stats["bounded_left"] = len(keep)
    if cti0 is not None:
        return None, SetCti(cti0.actor, cti0.step, cti0.broken,
                            {"on the bounded instance": str(cti0.before)}), stats
    prover = SetProver(spec, [*base_facts(spec), *keep], timeout, reach=mined.flow.reach)
    prover.report = say
    for f in initial_breaks(prover, prover.facts):
        if f.base:
            return None, SetCti("-", "initial state", f.name, {}), stats
        prover.dropped.add(id(f))
    say(f"Houdini on demand over {len(keep)} candidates")
    cti = prover.run_demanded()
    stats["asked"] = prover.asked
    if cti is not None:
        return None, cti, stats
    facts = prover.live()
    stats.update(kept=len(facts), queries=prover.queries,
                 seconds=round(time.monotonic() - t0, 1))
    return facts, None, stats


def _bounded_houdini(mined: induction.Mined, facts: list[Fact], timeout: float
                     ) -> tuple[list[Fact], Any]:
    """Houdini over ``facts`` on the coverage instance's page masks first: a fact some step
    breaks there is broken over page sets too (a state of the instance is a state over page
    sets, and its steps are among theirs), and a page-mask query takes milliseconds where a
    page-set one that finds a state takes seconds.  Returns the facts left and a counterexample
    to induction of the spec's own checks, if any."""
    spec = mined.spec
    everything = [*facts_base(spec), *facts]
    closure = Closure(spec, everything, mined.states)
    prover = Prover(spec, everything, timeout, mined.cases, closure)
    cti = prover.run(houdini=True)
    return [f for f in prover.live() if not f.base], cti


def check(name: str, timeout: float) -> ProofResult:
    """The stored strengthening of spec ``name``, checked inductive over page sets."""
    t0 = time.monotonic()
    cert = certificate.load(name)
    if cert is None:
        return ProofResult.unknown(f"no stored strengthening of the {name} spec; run "
                                   f"`vmapcheck prove --strengthen {name}`")
    # The stored facts are taken from the candidates as the spec proposes them now; whether
    # they hold in the reachable states (mining) does not matter to the proof, only that
    # Init => Inv and every step keeps them.
    mined = induction.candidates(name, timeout)
    spec = mined.spec
    try:
        facts = cert.select([*base_facts(spec), *mined.facts])
    except certificate.Stale as exc:
        return ProofResult.unknown(str(exc))
    return check_facts(spec, facts, timeout, mined.flow.reach, t0)


def check_facts(spec: Spec, facts: list[Fact], timeout: float,
                reach: Sequence[frozenset[int]] | None, t0: float | None = None) -> ProofResult:
    """Init => Inv and Inv /\\ step => Inv' over page sets for the conjunction of ``facts``."""
    t0 = time.monotonic() if t0 is None else t0
    prover = SetProver(spec, facts, timeout, reach=reach)
    stats = {"facts": len(facts), "paths": len(prover.paths())}
    try:
        bad = initial_breaks(prover, facts)
        if bad:
            return ProofResult(Status.COUNTEREXAMPLE, f"the initial state breaks {bad[0].name!r}",
                               notes=("initial state: every managed page free",), stats=stats)
        cti = prover.check_all()
    except TimeoutError as exc:
        return ProofResult.unknown(str(exc), **stats)
    stats["queries"] = prover.queries
    if cti is not None:
        notes = [f"step: {cti.actor}: {cti.step}",
                 "before: " + ", ".join(f"{k} = {v}" for k, v in cti.before.items())]
        notes += ["after: " + ", ".join(f"{k} = {v}" for k, v in after.items() if
                                        cti.before.get(k) != v) for after in cti.after]
        return ProofResult(Status.COUNTEREXAMPLE,
                           f"counterexample to induction: {cti.actor} breaks {cti.broken!r}",
                           (), tuple(notes), stats)
    base = [f.name for f in facts if f.base]
    return ProofResult(
        Status.PROVED,
        f"{', '.join(base)}: inductive with {len(facts) - len(base)} position facts, over "
        f"page sets of the 64-bit address space (any number of pages, any addresses) "
        f"({time.monotonic() - t0:.1f} s)", notes=tuple(f.name for f in facts), stats=stats)


def obligations(specs: Sequence[str] = PROVED) -> list[Obligation]:
    return [Obligation(f"induction.{n}", "induction",
                       f"the {n} spec's invariants are inductive over every address: Init => "
                       "Inv, Inv and every step => Inv'", _checker(n)) for n in specs]


def _checker(name: str) -> Callable[[float], ProofResult]:
    return lambda timeout: check(name, timeout)
