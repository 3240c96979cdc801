"""Inductive invariants of a spec: Init => Inv and Inv /\\ step => Inv', checked by Z3.

The explicit-state explorer checks the spec's invariants on the states it reaches from one small
scenario.  Here they are proved inductive instead: for *every* state satisfying the invariant,
whatever its page masks (all 2^pages subsets for each owner, not only those reached), every
step of every actor leads to a state satisfying it again.

The proof is about the spec that runs.  The spec is built from its own tables for a coverage
scenario, and its compiled step functions (``Spec.tables``: one sync operation per step, with
the spec's own bodies, lock checks and ``SpecAssertion``\\ s) run on a symbolic state
(``proofs.symbolic``); the invariant starts with the spec's own checks (the generated
single-owner / conservation / lock-exclusion check and the design's invariants such as
``vmap_lazy_nr``), also run on symbolic states.

Those invariants are not inductive alone (a state where a thread's slot names pages it does not
hold satisfies them, and its next step breaks them), so they are strengthened with facts per
actor position: the locks held there, which of its areas are in its hands or in which
structure, which counters equal which page counts, and that areas of different actors are
disjoint.  Candidate facts come from templates over the spec's own fields, are kept only if
they hold in every reachable state of the scenario, and are then pruned to an inductive set
(Houdini: drop every candidate some step can break, until none breaks).  If a step can break
one of the spec's own invariants (or raise an assertion) from a state satisfying the final set,
the result is a counterexample to induction, printed as spec states: the state before, the
step, and the state after.

Limits.  The spec is built for the coverage scenario's threads and operations and for
``pages`` pages; within that, every page mask is covered.  The ``global`` spec is proved (an
obligation).  The ``percpu`` spec is proved too (``strengthen("percpu")``, test marked slow),
from its own coverage scenario (``percpu_coverage_params``: two zones of three pages over five)
and the extra start states of ``proofs.facts.start_states``; positions no mined state reaches
(lookups of a zone after the one that holds the area) get candidates that Houdini keeps or
drops.  But its Houdini rounds take about four minutes (some 16,000 candidates, over a thousand
queries), far over the proof job's minute, so it is not among the obligations yet.  The
``nodes`` spec keeps lazy areas and pools as lists of area codes whose length varies, which
this encoding does not model (``Layout`` rejects it).

Relies on ``spec`` (registry, params, program, protocol, compile), ``proofs.facts`` (the
candidates and the spec's invariants as facts), ``proofs.symbolic`` and ``proofs.obligation``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import z3

from spec.compile import Spec
from spec.params import SpecParams
from spec.program import Alloc, Find, Free, Purge, ThreadProgram
from spec.protocol import PC, SpecAssertion
from spec.registry import build_spec

from .closure import Closure
from .facts import (
    Fact,
    Layout,
    base_facts,
    candidate_facts,
    holds,
    mine,
    positions,
    prune_redundant,
    reachable,
    start_states,
)
from .flow import analyse
from .obligation import Obligation, ProofResult, Status
from .stepcase import (
    WIDTH,
    Raised,
    State,
    StepCase,
    concrete_state,
    fresh,
    symbolic_state,
)
from .symbolic import Executor, SymBool, SymInt, formula, implies

DEBUG = 0  # 1: phase timings, 2: every dropped fact
QUICK_MS = 150
BLAST = ("simplify", "propagate-values", "solve-eqs", "bit-blast", "sat")


def coverage_params(pages: int = 4) -> SpecParams:
    """Two threads between them allocate, look up, free and purge; together they ask for more
    than the pages, so an allocation can fail, purge and retry, and fail again; the drain
    worker runs when the lazy threshold (one page) is passed.  Every position of every actor is
    reached (candidate facts are mined from the reachable states, so an unreached position
    would have none)."""
    t0 = ThreadProgram(0, (Alloc(2, "a"), Find("a"), Free("a")))
    t1 = ThreadProgram(1, (Alloc(3, "a"), Free("a"), Purge()))
    return SpecParams((t0, t1), pages=pages, lazy_max=1, nr_cpus=2)


def percpu_coverage_params() -> SpecParams:
    """Two zones of three pages over five (zone 1 holds pages 3 and 4, so an area of either
    size can start there); T0 on CPU 0 asks for two pages (the global path), looks them up
    (an area can cross the zones) and frees them; T1 on CPU 1 asks for one page (the per-CPU
    path: the cache, the pre-fetch of a chunk), frees it and purges."""
    t0 = ThreadProgram(0, (Alloc(2, "a"), Find("a"), Free("a")))
    t1 = ThreadProgram(1, (Alloc(1, "a"), Free("a"), Purge()))
    return SpecParams((t0, t1), pages=5, lazy_max=1, nr_cpus=2, extra=(("cvz_pages", 3),))


@dataclass(frozen=True)
class Coverage:
    """Where the candidate facts of a spec are mined: its coverage scenario, and the sizes of
    the page sets moved out of the free space in the extra start states
    (``proofs.facts.start_states``)."""

    params: SpecParams
    moved: tuple[int, ...] = ()


def coverage(name: str) -> Coverage:
    if name.split("-", 1)[0] == "percpu":
        p = percpu_coverage_params()
        return Coverage(p, (p.pages - 2, p.pages - 1))
    return Coverage(coverage_params())


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


def _guarded(ex: Executor, f: Fact, s: State, spec: Spec) -> z3.BoolRef:
    pc = s[spec.actor_index[f.actor]][PC] if f.actor is not None else None
    if isinstance(pc, int) and pc != f.pc:
        return z3.BoolVal(True)
    # Fresh wrappers per run for the spec's own checks: they memoise by value too.
    body = truth(ex, lambda: f.test(fresh(s))) if f.base else formula(_as_bool(f.test(s)))
    if pc is None or isinstance(pc, int):
        return body
    return formula(implies(pc == f.pc, body))


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
        self.goals: dict[tuple[int, int, int], tuple[z3.BoolRef, list[tuple[Fact | None, z3.BoolRef]]]] = {}
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
                        self.goal(case, i)
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

    def goal(self, case: StepCase, i: int
             ) -> tuple[z3.BoolRef, list[tuple[Fact | None, z3.BoolRef]]]:
        key = (case.k, case.p, i)
        got = self.goals.get(key)
        if got is None:
            path = case.paths[i]
            posts: list[tuple[Fact | None, z3.BoolRef]] = []
            if isinstance(path.value, Raised):
                posts.append((None, z3.BoolVal(False)))
            else:
                for s2 in path.value:
                    pairs = self.t.pairs(s2)
                    moved = _moved_fields(case.s, s2, self.spec)
                    chosen = [f for f in self.affected(moved, case.k, s2[case.a][PC])
                              if id(f) not in self.dropped]
                    posts += zip(chosen, self.t.on_all(chosen, pairs), strict=True)
            keep = [c if f is None else z3.Or(c, self.dlit[id(f)]) for f, c in posts]
            lit = z3.Bool(f"goal{case.k}_{case.p}_{i}")
            self.defs[lit.get_id()] = z3.Implies(lit, z3.And(
                *path.condition, z3.Not(z3.And(*(c.expr for c in path.side), *keep))))
            self.solver.add(self.defs[lit.get_id()])
            got = self.goals[key] = (lit, posts)
        return got

    def affected(self, moved: frozenset[tuple[int, int]], k: int, pc2: Any) -> list[Fact]:
        """The facts a step of actor ``k`` to ``pc2`` that changes ``moved`` can change: the
        base facts, ``k``'s facts at ``pc2`` (all of its facts when ``pc2`` is symbolic), and
        facts of others that read a moved field (``_affected``, by index)."""
        hit: set[int] = set(self.index_base)
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

        A path found safe stays safe until a fact is dropped (the facts assumed before the
        step only shrink then), so a round re-checks only the paths checked before the last
        drop: the proof is the set of answers all given against the final set of facts."""
        checked: dict[tuple[int, int, int], int] = {}
        paths = [(k, p, i) for k in range(len(self.spec.actor_names))
                 for p, step in enumerate(self.spec.tables[k]) if step is not None
                 for i in range(len(self.case(k, p).paths))]
        while True:
            todo = [key for key in paths if checked.get(key) != self.epoch]
            if not todo:
                return None
            for key in todo:
                if checked.get(key) == self.epoch:
                    continue
                k, p, i = key
                cti, _ = self._check_path(self.case(k, p), i, houdini)
                if cti is not None:
                    return cti
                checked[key] = self.epoch

    def _check_path(self, case: StepCase, i: int, houdini: bool) -> tuple[Cti | None, bool]:
        goal, posts = self.goal(case, i)
        at = self.at_lit(case.k, case.p)
        dropped_any = False
        while any(f is None or id(f) not in self.dropped for f, _ in posts):
            self.queries += 1
            t0 = time.monotonic()
            r, got = self._query(at, goal)
            self.times[str(r)] = self.times.get(str(r), 0.0) + time.monotonic() - t0
            self.counts[str(r)] = self.counts.get(str(r), 0) + 1
            if r == z3.unsat:
                break
            if got is None:
                raise TimeoutError(f"solver: {r}")
            m = got
            broken = [f for f, c in posts if (f is None or id(f) not in self.dropped)
                      and not z3.is_true(m.eval(c, True))]
            if not broken:
                if DEBUG > 1:
                    path = case.paths[i]
                    print("cond", [m.eval(c, True) for c in path.condition])
                    for f, c in posts:
                        v = m.eval(z3.Or(c, self.dlit[id(f)]) if f is not None else c, True)
                        if not z3.is_true(v):
                            print("keep false:", f.name if f else None, id(f) in self.dropped if f else None, m.eval(c, True), m.eval(self.dlit[id(f)], True) if f else None)
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
                if DEBUG > 1:
                    print(f"drop at {self.spec.actor_names[case.k]}@{case.p} "
                          f"{self.spec.step_text[case.k][case.p]!r}: @{f.pc} {f.name}")
            self.refresh()
            self.epoch += 1
            dropped_any = True
        return None, dropped_any


def _same(x: Any, y: Any) -> bool:
    if isinstance(x, SymInt) and isinstance(y, SymInt):
        return bool(x.expr.get_id() == y.expr.get_id())
    if isinstance(x, tuple) and isinstance(y, tuple):
        return len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y, strict=True))
    return type(x) is type(y) and x == y


def _flat(xs: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for x in xs:
        if isinstance(x, tuple):
            out += _flat(x)
        else:
            out.append(x)
    return out


def _conjunction(lits: Sequence[z3.BoolRef]) -> z3.BoolRef:
    """``And(lits)`` in one call into Z3 (z3py's ``And`` checks every argument in Python,
    which costs more than the solving when thousands of literals are re-asserted)."""
    if not lits:
        return z3.BoolVal(True)
    ctx = lits[0].ctx
    arr = (z3.Ast * len(lits))(*(x.as_ast() for x in lits))
    return z3.BoolRef(z3.Z3_mk_and(ctx.ref(), len(lits), arr), ctx)


def _moved_fields(s: State, s2: State, spec: Spec) -> frozenset[tuple[int, int]]:
    """The fields whose term differs between ``s`` and ``s2``: ``(-1, i)`` or ``(k, j)``."""
    out = {(-1, i) for i in range(spec.G) if not _same(s[i], s2[i])}
    for k, a in enumerate(spec.actor_index):
        out |= {(k, j) for j, (x, y) in enumerate(zip(s[a], s2[a], strict=True))
                if not _same(x, y)}
    return frozenset(out)


def _affected(f: Fact, moved: frozenset[tuple[int, int]], k: int, pc2: Any) -> bool:
    """Can the step have changed ``f``?  Only if it reads a moved field; for the stepping
    actor, only its facts at the position it moves to."""
    if f.base:
        return True
    if f.actor == k:
        return not isinstance(pc2, int) or pc2 == f.pc
    return not f.reads.isdisjoint(moved)


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


# ---------------------------------------------------------------------------- obligations
@dataclass
class Inductive:
    """The outcome of the search for an inductive strengthening."""

    spec: Spec
    facts: list[Fact]
    candidates: int
    mined: int
    states: int
    queries: int
    cases: dict[tuple[int, int], StepCase]


def strengthen(name: str, timeout: float,
               cover: Coverage | None = None) -> tuple[Inductive, Cti | None]:
    """Mine candidate facts for spec ``name`` and prune them to an inductive set."""
    cover = cover or coverage(name)
    spec = build_spec(name, cover.params)
    lay = Layout(spec)
    cases: dict[tuple[int, int], StepCase] = {}

    def case(k: int, p: int) -> StepCase:
        got = cases.get((k, p))
        if got is None:
            step = spec.tables[k][p]
            assert step is not None
            got = cases[(k, p)] = StepCase(spec, k, p, step, timeout)
        return got

    t0 = time.monotonic()
    flow = analyse(spec, case)
    states = reachable(spec, starts=start_states(spec, cover.moved))
    t1 = time.monotonic()
    cands = candidate_facts(spec, lay, states, flow)
    mined = prune_redundant(mine(spec, cands, states), positions(spec, states))
    t2 = time.monotonic()
    facts = [*base_facts(spec), *mined]
    closure = Closure(spec, facts, states)
    prover = Prover(spec, facts, timeout, cases, closure)
    t3 = time.monotonic()
    cti = prover.run(houdini=True)
    if DEBUG:
        print(f"{len(states)} states, {len(cands)} candidates, {len(mined)} mined; "
              f"flow+states {t1 - t0:.1f} s, mining {t2 - t1:.1f} s, goals {t3 - t2:.1f} s, "
              f"houdini {time.monotonic() - t3:.1f} s, {prover.queries} queries, "
              f"{closure.states} states run, {len(prover.live())} facts left; "
              f"{prover.counts} {prover.times}")
    return Inductive(spec, prover.live(), len(cands), len(mined), len(states), prover.queries,
                     cases), cti


def check_inductive(spec: Spec, facts: list[Fact], timeout: float,
                    cases: dict[tuple[int, int], StepCase] | None = None
                    ) -> tuple[Cti | None, int]:
    """Is the conjunction of ``facts`` inductive as it stands (no fact dropped)?  Init => Inv
    on the initial state, then Inv and each step => Inv'."""
    bad_init = [f.name for f in facts if not holds(f, spec.init, spec)]
    if bad_init:
        return Cti("-", "initial state", bad_init[0], spec.describe(spec.init), []), 0
    prover = Prover(spec, facts, timeout, {} if cases is None else cases)
    cti = prover.run(houdini=False)
    return cti, prover.queries


def cti_result(cti: Cti, stats: dict[str, int]) -> ProofResult:
    notes = [f"step: {cti.actor}: {cti.step}", f"before: {cti.before}"]
    if isinstance(cti.after, str):
        notes.append(f"after: {cti.after}")
    else:
        notes += [f"after: {d}" for d in cti.after]
    return ProofResult(Status.COUNTEREXAMPLE,
                       f"counterexample to induction: {cti.actor} breaks {cti.broken!r}",
                       (), tuple(notes), stats)


def check_spec(name: str, timeout: float) -> ProofResult:
    t0 = time.monotonic()
    try:
        ind, cti = strengthen(name, timeout)
    except NotImplementedError as exc:
        return ProofResult.unknown(f"not encoded: {exc}")
    stats = {"reachable_states": ind.states, "candidates": ind.candidates, "mined": ind.mined,
             "inductive": len(ind.facts), "queries": ind.queries}
    if cti is not None:
        return cti_result(cti, stats)
    # Houdini's last round checked every step against the final set and dropped nothing:
    # that round is the proof of Inv and step => Inv'.  Init => Inv holds by construction
    # (every fact held in every reachable state); checked again here, as the obligation says.
    bad_init = [f.name for f in ind.facts if not holds(f, ind.spec.init, ind.spec)]
    if bad_init:  # pragma: no cover - mined facts hold in the initial state
        return ProofResult(Status.COUNTEREXAMPLE, f"the initial state breaks {bad_init[0]!r}",
                           notes=(f"initial state: {ind.spec.describe(ind.spec.init)}",),
                           stats=stats)
    base = [f.name for f in ind.facts if f.base]
    p = ind.spec.pages
    return ProofResult(
        Status.PROVED,
        f"{', '.join(base)}: inductive with {len(ind.facts) - len(base)} position facts, for "
        f"every {p}-page state of the coverage scenario ({time.monotonic() - t0:.1f} s)",
        notes=tuple(f.name for f in ind.facts), stats=stats)


def _checker(name: str) -> Callable[[float], ProofResult]:
    return lambda timeout: check_spec(name, timeout)


def obligations(specs: Sequence[str] = ("global",)) -> list[Obligation]:
    return [Obligation(f"induction.{n}", "induction",
                       f"the {n} spec's invariants are inductive: Init => Inv, Inv and every "
                       "step => Inv'", _checker(n)) for n in specs]
