"""Houdini on a spec's step paths: one incremental solver, every fact and every path in it once.

Each fact is one formula over a generic symbolic state (``Templates``); a fact after a step is
that formula with the step's terms substituted.  ``Prover`` holds every fact once, guarded by a
literal that says it is still live, and every path of every step once per kind of goal: "a
state satisfying the live facts, from which the path runs and breaks a live candidate" (the
pruning rounds) and "... breaks one of the spec's own invariants, leaves the model or raises"
(asked once per path, against the final set).  A candidate a query breaks is dropped with
everything that concrete runs from the model's state break (``proofs.closure``); a path found
safe is asked again only if facts were dropped since.

A query tries the incremental solver for a moment, then a fresh solver that bit-blasts the
same formulas straight to SAT, then the incremental solver again for the rest of its budget:
most queries take the first milliseconds, the few hard ones (page counts after a step that
moves pages) are several times faster on the second.

Relies on ``spec`` (compile, protocol), ``proofs.facts``, ``proofs.closure``,
``proofs.stepcase`` and ``proofs.symbolic``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import z3

from spec.compile import Spec
from spec.protocol import PC, SpecAssertion

from .closure import Closure
from .facts import Fact
from .stepcase import WIDTH, Raised, State, StepCase, concrete_state, fresh, symbolic_state
from .symbolic import Executor, SymBool, SymInt, formula, implies

# Phase timings and every dropped fact at DEBUG level (``logging``), for tuning the strengthening.
log = logging.getLogger("proofs.houdini")
QUICK_MS = 150
BLAST = ("simplify", "propagate-values", "solve-eqs", "bit-blast", "sat")


class ModelLimit(Exception):
    """A step left the symbolic model (a value too wide for it, say): not a verdict."""


def truth(ex: Executor, fn: Callable[[], Any]) -> z3.BoolRef:
    """The formula for "``fn()`` is true", from every path of ``fn`` (which may branch)."""
    paths = ex.explore_apart(fn)
    return z3.Or([z3.And(*p.condition, formula(_as_bool(p.value)), *(c.expr for c in p.side))
                  for p in paths])


def _as_bool(v: Any) -> SymBool | z3.BoolRef | bool:
    if isinstance(v, (SymBool, z3.BoolRef, bool)):
        return v
    if isinstance(v, SymInt):
        return v != 0
    return bool(v)


def at_position(f: Fact, s: State, spec: Spec, body: Callable[[], z3.BoolRef]) -> z3.BoolRef:
    """Fact ``f`` on state ``s``: ``body()`` where its actor is at its position (true
    elsewhere; an implication when the position is symbolic)."""
    pc = s[spec.actor_index[f.actor]][PC] if f.actor is not None else None
    if isinstance(pc, int) and pc != f.pc:
        return z3.BoolVal(True)
    got = body()
    if pc is None or isinstance(pc, int):
        return got
    return formula(implies(pc == f.pc, got))


def _guarded(ex: Executor, f: Fact, s: State, spec: Spec) -> z3.BoolRef:
    # Fresh wrappers per run for the spec's own checks: they memoise by value too.
    return at_position(f, s, spec, lambda: truth(ex, lambda: f.test(fresh(s))) if f.base
                       else formula(_as_bool(f.test(s))))


# ---------------------------------------------------------------------------- induction
@dataclass
class Cti:
    """A counterexample to induction: a state satisfying the invariant, a step, what broke."""

    actor: str
    step: str
    broken: str
    before: dict[str, Any]
    after: list[dict[str, Any]] | str


class Templates:
    """Every fact as one formula over a generic symbolic state (every field a variable, every
    actor's position too), made once.  A fact after a step is its formula with the new terms
    substituted for the variables: one call into Z3 instead of re-running the fact's Python on
    symbolic values."""

    def __init__(self, spec: Spec, timeout: float) -> None:
        self.spec = spec
        self.ex = Executor(width=WIDTH, timeout_s=timeout, incremental=True)
        self.g = symbolic_state(self.ex, spec, -1, 0)
        self.formulas: dict[int, z3.BoolRef] = {}

    def of(self, f: Fact) -> z3.BoolRef:
        got = self.formulas.get(id(f))
        if got is None:
            got = self.formulas[id(f)] = _guarded(self.ex, f, self.g, self.spec)
        return got

    def pc_var(self, k: int) -> z3.BitVecRef:
        v = self.g[self.spec.actor_index[k]][PC]
        assert isinstance(v, SymInt)
        return v.expr

    def pairs(self, s: State) -> list[tuple[z3.BitVecRef, z3.BitVecRef]]:
        """The substitution that turns the generic state into ``s``."""
        out: list[tuple[z3.BitVecRef, z3.BitVecRef]] = []
        n = self.spec.G
        flat_g = _flat([*self.g[:n], *(x for t in self.g[n:] for x in t)])
        flat_s = _flat([*s[:n], *(x for t in s[n:] for x in t)])
        for var, val in zip(flat_g, flat_s, strict=True):
            assert isinstance(var, SymInt)
            term = val.expr if isinstance(val, SymInt) else z3.BitVecVal(val, WIDTH)
            if not term.eq(var.expr):
                out.append((var.expr, term))
        return out

    def on(self, f: Fact, pairs: list[tuple[z3.BitVecRef, z3.BitVecRef]]) -> z3.BoolRef:
        return self.on_all([f], pairs)[0]

    def on_all(self, facts: Sequence[Fact], pairs: list[tuple[z3.BitVecRef, z3.BitVecRef]]
               ) -> list[z3.BoolRef]:
        """``on`` for many facts, the substitution built once (z3py's ``substitute`` checks
        its arguments in Python, which costs more than substituting)."""
        forms = [self.of(f) for f in facts]
        if not pairs:
            return forms
        ctx = forms[0].ctx if forms else None
        if ctx is None:
            return []
        n = len(pairs)
        src = (z3.Ast * n)(*(a.as_ast() for a, _ in pairs))
        dst = (z3.Ast * n)(*(b.as_ast() for _, b in pairs))
        return [z3.BoolRef(z3.Z3_substitute(ctx.ref(), g.as_ast(), n, src, dst), ctx)
                for g in forms]


class Prover:
    """One solver holding every fact once, as ``Not(dropped_f) => f`` on the generic state, and
    every step path once, as ``goal => (path runs and some fact not dropped fails after it)``.
    The live facts are unit clauses ``Not(dropped_f)`` in one pushed scope, redone when
    Houdini drops facts; a query assumes the stepping actor's position and one goal."""

    def __init__(self, spec: Spec, facts: list[Fact], timeout: float,
                 cases: dict[tuple[int, int], StepCase], closure: Closure | None = None
                 ) -> None:
        self.spec, self.timeout, self.cases, self.closure = spec, timeout, cases, closure
        self.base = [f for f in facts if f.base]
        self.t = Templates(spec, timeout)
        self.base_vars = {id(f): _variables(self.t.of(f)) for f in self.base}
        self.solver = z3.SolverFor("QF_BV")
        self.solver.set("timeout", max(1, int(timeout * 1000)))
        self.solver.add(*self.t.ex._pre)  # noqa: SLF001 - the generic state's input ranges
        self.facts = list(facts)
        self._index()
        self.dropped: set[int] = set()
        self.dlit: dict[int, z3.BoolRef] = {}
        self.nlit: dict[int, z3.BoolRef] = {}
        # What a query's fresh solver needs besides the goal (see ``_query``).
        self.axioms: list[z3.BoolRef] = list(self.t.ex._pre)  # noqa: SLF001
        self.defs: dict[object, z3.BoolRef] = {}
        self.live_now = z3.BoolVal(True)
        for n, f in enumerate(self.facts):
            lit = self.dlit[id(f)] = z3.Bool(f"dropped{n}")
            self.nlit[id(f)] = z3.Not(lit)
            self.axioms.append(z3.Implies(self.nlit[id(f)], self.t.of(f)))
        self.solver.add(_conjunction(self.axioms))
        self.at: dict[tuple[int, int], z3.BoolRef] = {}
        self.goals: dict[tuple[int, int, int, bool], tuple[z3.BoolRef, list[tuple[Fact | None, z3.BoolRef]]]] = {}
        self.queries = 0
        self.epoch = 0  # how many times facts were dropped
        self.times: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        # Every goal goes in below the scope of the live facts, so make them all first.
        for k in range(len(spec.actor_names)):
            for p, step in enumerate(spec.tables[k]):
                if step is not None:
                    case = self.case(k, p)
                    self.at_lit(k, p)
                    for i in range(len(case.paths)):
                        self.goal(case, i, False)
                        self.goal(case, i, True)
        self.scoped = False
        self.refresh()

    def refresh(self) -> None:
        """Which facts are live, as unit clauses in a fresh scope (a dropped fact's literal must
        be set, not left free: the goal would otherwise pick it to break the fact)."""
        if self.scoped:
            self.solver.pop()
        self.solver.push()
        self.scoped = True
        self.live_now = _conjunction([self.dlit[id(f)] if id(f) in self.dropped
                                      else self.nlit[id(f)] for f in self.facts])
        self.solver.add(self.live_now)

    def case(self, k: int, p: int) -> StepCase:
        got = self.cases.get((k, p))
        if got is None:
            step = self.spec.tables[k][p]
            assert step is not None
            got = self.cases[(k, p)] = StepCase(self.spec, k, p, step, self.timeout)
        return got

    def at_lit(self, k: int, p: int) -> z3.BoolRef:
        lit = self.at.get((k, p))
        if lit is None:
            lit = self.at[(k, p)] = z3.Bool(f"at{k}_{p}")
            self.defs[lit.get_id()] = z3.Implies(lit, self.t.pc_var(k) == p)
            self.solver.add(self.defs[lit.get_id()])
        return lit

    def goal(self, case: StepCase, i: int, base: bool
             ) -> tuple[z3.BoolRef, list[tuple[Fact | None, z3.BoolRef]]]:
        """The goal of path ``i`` of ``case``: a state satisfying the live facts from which
        the path runs and breaks a candidate fact after it (``base`` False), or breaks one of
        the spec's own invariants, leaves the model or raises (``base`` True)."""
        key = (case.k, case.p, i, base)
        got = self.goals.get(key)
        if got is None:
            path = case.paths[i]
            posts: list[tuple[Fact | None, z3.BoolRef]] = []
            if isinstance(path.value, Raised):
                if base:
                    posts.append((None, z3.BoolVal(False)))
            else:
                for s2 in path.value:
                    pairs = self.t.pairs(s2)
                    if base:
                        # The spec's checks are long formulas: only those that read a field
                        # the step changes.
                        names = {str(v) for v, _ in pairs}
                        chosen = [f for f in self.base if self.base_vars[id(f)] & names]
                    else:
                        moved = moved_fields(case.s, s2, self.spec)
                        chosen = [f for f in self.affected(moved, case.k, s2[case.a][PC])
                                  if id(f) not in self.dropped]
                    posts += zip(chosen, self.t.on_all(chosen, pairs), strict=True)
            keep = [c if f is None else z3.Or(c, self.dlit[id(f)]) for f, c in posts]
            sides = [c.expr for c in path.side]
            lit = z3.Bool(f"goal{case.k}_{case.p}_{i}_{int(base)}")
            if base:
                body = z3.And(*path.condition, z3.Not(z3.And(*sides, *keep)))
            else:  # a candidate broken on a path that stays in the model
                body = z3.And(*path.condition, *sides, z3.Not(z3.And(*keep)))
            self.defs[lit.get_id()] = z3.Implies(lit, body)
            self.solver.add(self.defs[lit.get_id()])
            got = self.goals[key] = (lit, posts)
        return got

    def affected(self, moved: frozenset[tuple[int, int]], k: int, pc2: Any) -> list[Fact]:
        """The candidate facts a step of actor ``k`` to ``pc2`` that changes ``moved`` can
        change: ``k``'s facts at ``pc2`` (all of its facts when ``pc2`` is symbolic), and
        facts of others that read a moved field (by index)."""
        hit: set[int] = set()
        if isinstance(pc2, int):
            hit.update(self.index_pos.get((k, pc2), ()))
        else:
            hit.update(self.index_actor.get(k, ()))
        for fld in moved:
            hit.update(n for n in self.index_field.get(fld, ()) if self.facts[n].actor != k)
        return [self.facts[n] for n in sorted(hit)]

    def _index(self) -> None:
        self.index_base: list[int] = []
        self.index_pos: dict[tuple[int, int | None], list[int]] = {}
        self.index_actor: dict[int, list[int]] = {}
        self.index_field: dict[tuple[int, int], list[int]] = {}
        for n, f in enumerate(self.facts):
            if f.base:
                self.index_base.append(n)
                continue
            if f.actor is not None:
                self.index_pos.setdefault((f.actor, f.pc), []).append(n)
                self.index_actor.setdefault(f.actor, []).append(n)
            for fld in f.reads:
                self.index_field.setdefault(fld, []).append(n)

    def _query(self, at: z3.BoolRef, goal: z3.BoolRef
               ) -> tuple[z3.CheckSatResult | str, z3.ModelRef | None]:
        """One query, in turns: the incremental solver for a short while (most queries take
        it milliseconds), then a fresh solver that bit-blasts the same formulas straight to
        SAT (several times faster on the few hard ones, where the incremental core stalls),
        then the incremental solver for the rest of the budget."""
        budget = max(1, int(self.timeout * 1000))
        self.solver.set("timeout", min(budget, QUICK_MS))
        r = self.solver.check(at, goal)
        if r != z3.unknown:
            return r, self.solver.model() if r == z3.sat else None
        fresh = z3.Then(*BLAST).solver()
        fresh.set("timeout", budget)
        fresh.add(_conjunction([*self.axioms, self.live_now, self.defs[at.get_id()],
                                self.defs[goal.get_id()], at, goal]))
        r = fresh.check()
        if r != z3.unknown:
            return r, fresh.model() if r == z3.sat else None
        self.solver.set("timeout", budget)
        r = self.solver.check(at, goal)
        if r != z3.unknown:
            return r, self.solver.model() if r == z3.sat else None
        return f"{self.solver.reason_unknown()}", None

    def _live_test(self) -> Callable[[Fact], bool]:
        dropped = self.dropped
        return lambda f: id(f) not in dropped

    def _start(self, case: StepCase, m: z3.ModelRef) -> State:
        """The state before the step, in the model ``m``, as plain ints."""
        values = {}
        for v in case.ex.vars:
            val = m.eval(v.sym.expr, model_completion=True)
            assert isinstance(val, z3.BitVecNumRef)
            values[str(v.sym.expr)] = val.as_signed_long()
        return concrete_state(self.spec, case.s, values)

    def drop(self, f: Fact) -> None:
        self.dropped.add(id(f))

    def live(self) -> list[Fact]:
        return [f for f in self.facts if id(f) not in self.dropped]

    def run(self, houdini: bool) -> Cti | None:
        """Check every step; with ``houdini`` drop what a step breaks until nothing breaks.

        First the candidate facts, assuming the spec's own invariants before each step:
        a path found safe stays safe until a fact is dropped (the facts assumed before the
        step only shrink then), so a round re-checks only the paths checked before the last
        drop.  Then, once, the spec's own invariants (and that no path raises) against the
        final set: they are never dropped, so whether one breaks does not depend on when it
        is checked, and these are the costly queries (counts of pages, ownership of every
        page), asked once per path instead of once per round."""
        checked: dict[tuple[int, int, int], int] = {}
        paths = [(k, p, i) for k in range(len(self.spec.actor_names))
                 for p, step in enumerate(self.spec.tables[k]) if step is not None
                 for i in range(len(self.case(k, p).paths))]
        while True:
            todo = [key for key in paths if checked.get(key) != self.epoch]
            if not todo:
                break
            for key in todo:
                if checked.get(key) == self.epoch:
                    continue
                k, p, i = key
                cti, _ = self._check_path(self.case(k, p), i, houdini, False)
                if cti is not None:
                    return cti
                checked[key] = self.epoch
        for k, p, i in paths:
            cti, dropped = self._check_path(self.case(k, p), i, houdini, True)
            assert not dropped
            if cti is not None:
                return cti
        return None

    def _check_path(self, case: StepCase, i: int, houdini: bool, base: bool
                    ) -> tuple[Cti | None, bool]:
        goal, posts = self.goal(case, i, base)
        at = self.at_lit(case.k, case.p)
        dropped_any = False
        while any(f is None or id(f) not in self.dropped for f, _ in posts):
            self.queries += 1
            t0 = time.monotonic()
            r, got = self._query(at, goal)
            self.times[f"{r}{int(base)}"] = self.times.get(f"{r}{int(base)}", 0.0) + time.monotonic() - t0
            self.counts[f"{r}{int(base)}"] = self.counts.get(f"{r}{int(base)}", 0) + 1
            if r == z3.unsat:
                break
            if got is None:
                raise TimeoutError(f"solver: {r}")
            m = got
            broken = [f for f, c in posts if (f is None or id(f) not in self.dropped)
                      and not z3.is_true(m.eval(c, True))]
            if not broken:
                sides = [c for c in case.paths[i].side if not z3.is_true(m.eval(c.expr, True))]
                raise ModelLimit(sides[0].what if sides else "no broken fact in the model")
            hard = [f for f in broken if f is None or f.base or not houdini]
            if hard:
                return _cti(case, m, hard[0] if hard else None, case.paths[i].value), dropped_any
            if self.closure is not None:
                # Everything a concrete run from the model's state refutes goes too.
                live = self._live_test()
                seen = {id(f) for f in broken}
                broken += [f for f in self.closure.refute(self._start(case, m), live, self.base)
                           if id(f) not in seen]
            for f in broken:
                assert f is not None
                self.drop(f)
                log.debug("drop at %s@%d %r: @%s %s", self.spec.actor_names[case.k], case.p,
                          self.spec.step_text[case.k][case.p], f.pc, f.name)
            self.refresh()
            self.epoch += 1
            dropped_any = True
        return None, dropped_any


def _same(x: Any, y: Any) -> bool:
    """The same value: equal plain values, or symbolic values of one term (``term_key``)."""
    if isinstance(x, tuple) and isinstance(y, tuple):
        return len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y, strict=True))
    if type(x) is not type(y):
        return False
    key = getattr(x, "term_key", None)
    return bool(key() == y.term_key()) if key is not None else bool(x == y)


def _flat(xs: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for x in xs:
        if isinstance(x, tuple):
            out += _flat(x)
        else:
            out.append(x)
    return out


def _variables(e: z3.ExprRef) -> set[str]:
    """The names of the constants (state variables) ``e`` mentions."""
    seen: set[int] = set()
    out: set[str] = set()
    todo = [e]
    while todo:
        x = todo.pop()
        if x.get_id() in seen:
            continue
        seen.add(x.get_id())
        if z3.is_const(x) and x.decl().kind() == z3.Z3_OP_UNINTERPRETED:
            out.add(str(x))
        todo.extend(x.children())
    return out


def _conjunction(lits: Sequence[z3.BoolRef]) -> z3.BoolRef:
    """``And(lits)`` in one call into Z3 (z3py's ``And`` checks every argument in Python,
    which costs more than the solving when thousands of literals are re-asserted)."""
    if not lits:
        return z3.BoolVal(True)
    ctx = lits[0].ctx
    arr = (z3.Ast * len(lits))(*(x.as_ast() for x in lits))
    return z3.BoolRef(z3.Z3_mk_and(ctx.ref(), len(lits), arr), ctx)


def moved_fields(s: State, s2: State, spec: Spec) -> frozenset[tuple[int, int]]:
    """The fields whose term differs between ``s`` and ``s2``: ``(-1, i)`` or ``(k, j)``."""
    out = {(-1, i) for i in range(spec.G) if not _same(s[i], s2[i])}
    for k, a in enumerate(spec.actor_index):
        out |= {(k, j) for j, (x, y) in enumerate(zip(s[a], s2[a], strict=True))
                if not _same(x, y)}
    return frozenset(out)


def _cti(case: StepCase, m: z3.ModelRef, broken: Fact | None, value: Any) -> Cti:
    spec, ex = case.spec, case.ex
    values = {}
    for v in ex.vars:
        val = m.eval(v.sym.expr, model_completion=True)
        assert isinstance(val, z3.BitVecNumRef)
        values[str(v.sym.expr)] = val.as_signed_long()
    before = concrete_state(spec, case.s, values)
    out: list[State] = []
    after: list[dict[str, Any]] | str
    try:
        case.step(before, case.a, out)
        after = [spec.describe(t) for t in out]
    except SpecAssertion as exc:
        after = f"the step raises: {exc}"
    what = broken.name if broken is not None else (
        f"the step raises {value.exc}" if isinstance(value, Raised) else "an invariant")
    return Cti(spec.actor_names[case.k], spec.step_text[case.k][case.p], what,
               spec.describe(before), after)

