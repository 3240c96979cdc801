"""Symbolic execution of the allocator's code, so the proofs are about the code that runs.

The ``Executor`` declares symbolic inputs (``proofs.symint``), runs a function on them once per
feasible sequence of branch choices (a path), and proves that a claim the function returns
holds on every path, for every input, with every side condition.  A counterexample comes back
as input values rendered in the allocator's terms (``proofs.render``), preferably page aligned,
with what the concrete code does on them.

The agreement of this model with the concrete functions is tested on random and edge inputs
(``tests/test_proofs_agreement.py``).

Relies on ``z3``, ``proofs.symint``, ``proofs.render`` and ``proofs.obligation``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

import z3

from impl.config import PAGE_SIZE

from .obligation import ProofResult, Status
from .render import Kind, render
from .symint import SymbolicError, SymBool, SymInt, all_, any_, formula, implies

__all__ = ["Executor", "Path", "PathLimit", "SideCondition", "SymBool", "SymInt",
           "SymbolicError", "Var", "all_", "any_", "formula", "implies"]

T = TypeVar("T")
MASK64 = (1 << 64) - 1
DEFAULT_WIDTH = 72
NICE_MS = 2000
# Tactic pipelines tried in turn by ``Executor._solve``.
TACTICS = (
    ("simplify", "propagate-values", "solve-eqs", "bit-blast", "sat"),
    ("simplify", "bit-blast", "sat"),
    ("simplify", "propagate-values", "bit-blast", "sat"),
)

SideKind = Literal["exception", "model"]


class PathLimit(RuntimeError):
    """More paths than an obligation allows: a sign that a loop runs on a symbolic bound."""


@dataclass(frozen=True)
class SideCondition:
    expr: z3.BoolRef
    kind: SideKind
    what: str


@dataclass(frozen=True)
class Path(Generic[T]):
    """One run of the function: the choices made, their conjunction, and what it returned."""

    decisions: tuple[bool, ...]
    condition: tuple[z3.BoolRef, ...]
    value: T
    side: tuple[SideCondition, ...]


@dataclass(frozen=True)
class Answer:
    result: z3.CheckSatResult
    model: z3.ModelRef | None
    reason: str


@dataclass(frozen=True)
class Var:
    name: str
    kind: Kind
    sym: SymInt


class Executor:
    """Runs a function on symbolic inputs once per feasible path and proves claims about it.

    Inputs are declared with ``int`` (each with a kind, for printing counterexamples),
    restrictions with ``assume``; ``prove`` explores the function and checks, path by path,
    that its returned claim and every side condition hold.
    """

    def __init__(self, width: int = DEFAULT_WIDTH, timeout_s: float = 30.0,
                 max_paths: int = 4096, smt_first: bool = False,
                 incremental: bool = False) -> None:
        self.width = width
        self.smt_first = smt_first
        self.incremental = incremental
        self.prune = True  # ask the solver which sides of a branch are feasible
        self._inc: z3.Solver | None = None
        self._lit: dict[int, z3.BoolRef] = {}
        self.max_paths = max_paths
        self.vars: list[Var] = []
        self.nice: list[z3.BoolRef] = []  # preferred, not required, of a counterexample
        self._pre: list[z3.BoolRef] = []
        self.timeout_ms = max(1, int(timeout_s * 1000))
        self._prefix: list[bool] = []
        self._pos = 0
        self._path: list[z3.BoolRef] = []
        self._side: list[SideCondition] = []
        self._pending: list[tuple[bool, ...]] = []
        self.checks = 0

    # ------------------------------------------------------------------ inputs
    def const(self, value: int) -> z3.BitVecRef:
        lo, hi = -(1 << (self.width - 1)), 1 << (self.width - 1)
        if not lo <= value < hi:
            raise SymbolicError(f"constant {value:#x} does not fit the {self.width}-bit model")
        return z3.BitVecVal(value, self.width)

    def fits(self, bounds: tuple[int, int]) -> bool:
        """Are all values in ``bounds`` representable in the model's width?"""
        return -(1 << (self.width - 1)) <= bounds[0] and bounds[1] < 1 << (self.width - 1)

    def input(self, name: str, kind: Kind = Kind.ADDR, lo: int = 0, hi: int = MASK64) -> SymInt:
        """A symbolic input ranging over ``lo..hi`` (default: every ``unsigned long``)."""
        if not 0 <= lo <= hi < 1 << (self.width - 1):
            raise SymbolicError(f"input range {lo:#x}..{hi:#x} does not fit the model")
        x = SymInt(self, z3.BitVec(name, self.width), (lo, hi))
        bounds = [x.expr >= self.const(lo), x.expr <= self.const(hi)]
        self._pre += bounds
        if kind in (Kind.ADDR, Kind.SIZE) and hi >= PAGE_SIZE:
            self.nice.append(x.expr & (PAGE_SIZE - 1) == 0)
        self.vars.append(Var(name, kind, x))
        return x

    def assume(self, *conds: SymBool | z3.BoolRef | bool) -> None:
        for c in conds:
            f = formula(c)
            self._pre.append(f)

    # ------------------------------------------------------------------ paths
    def constrain(self, cond: z3.BoolRef) -> None:
        """Narrow the current path without a choice: what a fresh value chosen by the code is
        known to satisfy (a chosen area lies in the free pages)."""
        self._path.append(cond)

    def side(self, cond: z3.BoolRef, kind: SideKind, what: str) -> None:
        simple = z3.simplify(cond)
        if z3.is_true(simple):
            return
        self._side.append(SideCondition(cond, kind, what))

    def decide(self, cond: z3.BoolRef) -> bool:
        if self._pos < len(self._prefix):
            choice = self._prefix[self._pos]
        else:
            choice = self._branch(cond)
            self._prefix.append(choice)
        self._pos += 1
        self._path.append(cond if choice else z3.Not(cond))
        return choice

    def _branch(self, cond: z3.BoolRef) -> bool:
        simple = z3.simplify(cond)
        if z3.is_true(simple):
            return True
        if z3.is_false(simple):
            return False
        if not self.prune:
            # Straight-line code: take both sides without asking the solver; an infeasible
            # path only adds a disjunct that is false.
            self._pending.append((*self._prefix, False))
            return True
        if not self._feasible(cond):
            return False
        if self._feasible(z3.Not(cond)):
            self._pending.append((*self._prefix, False))
        return True

    def _feasible(self, cond: z3.BoolRef) -> bool:
        # unknown counts as feasible: exploring a path too many is sound, one too few is not.
        if not self.incremental:
            return bool(self._solve([*self._path, cond]).result != z3.unsat)
        # Small formulas (page masks of a spec): one incremental solver, no start-up per query.
        if self._inc is None:
            self._inc = z3.SolverFor("QF_BV")
            self._inc.set("timeout", self.timeout_ms)
            self._inc.add(*self._pre)
        self.checks += 1
        return bool(self._inc.check(*self._lits([*self._path, cond])) != z3.unsat)

    def _lits(self, conds: Sequence[z3.BoolRef]) -> list[z3.BoolRef]:
        """Assumption literals standing for ``conds`` (each defined once in the solver)."""
        assert self._inc is not None
        out = []
        for c in conds:
            key = c.get_id()
            lit = self._lit.get(key)
            if lit is None:
                lit = self._lit[key] = z3.Bool(f"__path{len(self._lit)}")
                self._inc.add(lit == c)
            out.append(lit)
        return out

    def _solve(self, extra: Sequence[z3.BoolRef]) -> Answer:
        """One query, answered by a small portfolio of bit-blasting tactics on fresh solvers.

        On these formulas (adders, masks, comparisons) bit-blasting straight to SAT is about
        twenty times faster than the incremental SMT core, which is why each query starts from
        scratch instead of using push/pop.  Which preprocessing wins varies wildly from query to
        query (0.5 s against 20 s), so the tactics take turns with growing time slices until
        the query's budget is spent.  Z3's default solver takes its turn second: it is slow on
        the adders but fast on division by a symbolic divisor, where bit-blasting stalls."""
        self.checks += 1
        spent, slice_ms, reason = 0, 4000 if self.smt_first else 500, "timeout"
        tactics: list[tuple[str, ...] | None] = (
            [None, *TACTICS] if self.smt_first else [TACTICS[0], None, *TACTICS[1:]])
        while spent < self.timeout_ms and tactics:
            for tactic in list(tactics):
                budget = min(slice_ms, self.timeout_ms - spent)
                if budget <= 0:
                    break
                # None is Z3's default solver: slower here, but it takes every formula.
                solver = z3.Then(*tactic).solver() if tactic is not None else z3.Solver()
                solver.set("timeout", budget)
                solver.add(*self._pre, *extra)
                t0 = time.monotonic()
                r = solver.check()
                spent += max(1, int((time.monotonic() - t0) * 1000))
                if r == z3.sat:
                    return Answer(r, solver.model(), "")
                if r == z3.unsat:
                    return Answer(r, None, "")
                why = solver.reason_unknown()
                if "timeout" not in why and "canceled" not in why:
                    tactics.remove(tactic)  # this pipeline cannot take the formula
                    reason = why if tactic is None else reason
            slice_ms *= 4
        return Answer(z3.unknown, None, f"{reason} after {spent / 1000:.3g} s")

    def _solve_once(self, extra: Sequence[z3.BoolRef], ms: int) -> Answer:
        solver = z3.Then(*TACTICS[0]).solver()
        solver.set("timeout", ms)
        solver.add(*self._pre, *extra)
        r = solver.check()
        return Answer(r, solver.model() if r == z3.sat else None, "")

    def explore_apart(self, fn: Callable[[], T]) -> list[Path[T]]:
        """``explore`` with a feasibility solver of its own, dropped afterwards: many small
        explorations on one executor would otherwise make its solver ever larger."""
        saved = self._inc, self._lit
        self._inc, self._lit = None, {}
        try:
            return self.explore(fn)
        finally:
            self._inc, self._lit = saved

    def explore(self, fn: Callable[[], T]) -> list[Path[T]]:
        """Every feasible path of ``fn`` (which reads the symbolic inputs it closes over)."""
        # Side conditions met while declaring inputs and assumptions hold on every path.
        base = list(self._side)
        self._pending = [()]
        out: list[Path[T]] = []
        while self._pending:
            prefix = self._pending.pop()
            self._prefix, self._pos, self._path, self._side = list(prefix), 0, [], list(base)
            value = fn()
            out.append(Path(tuple(self._prefix), tuple(self._path), value, tuple(self._side)))
            if len(out) > self.max_paths:
                raise PathLimit(f"more than {self.max_paths} paths")
        self._side = base
        return out

    # ------------------------------------------------------------------ proving
    def prove(self, fn: Callable[[], object], detail: str,
              describe: Callable[[dict[str, int]], list[str]] | None = None) -> ProofResult:
        """Prove that ``fn``'s returned claim holds on every path, for every input allowed by
        the declared ranges and assumptions; ``describe`` replays a counterexample concretely.

        The claim is a truth value (symbolic or not) or a dict naming its parts, so that a
        counterexample says which part fails."""
        try:
            paths = self.explore(fn)
        except (SymbolicError, PathLimit) as exc:
            return ProofResult.unknown(f"cannot execute symbolically: {exc}", checks=self.checks)
        reasons: list[str] = []
        for path in paths:
            verdict = self._prove_path(path, describe)
            if verdict is None:
                continue
            if verdict.status is Status.COUNTEREXAMPLE:
                return _with_stats(verdict, paths=len(paths), checks=self.checks)
            reasons.append(verdict.detail)
        if reasons:
            return ProofResult.unknown(reasons[0], paths=len(paths), checks=self.checks)
        return ProofResult.proved(detail, paths=len(paths), checks=self.checks)

    def _prove_path(self, path: Path[object],
                    describe: Callable[[dict[str, int]], list[str]] | None) -> ProofResult | None:
        if path.side:
            bad = z3.Not(z3.And([s.expr for s in path.side]))
            ans = self._solve([*path.condition, bad])
            if ans.model is not None:
                model = ans.model
                broken = [s for s in path.side if z3.is_false(model.eval(s.expr, True))]
                side = broken[0] if broken else path.side[0]
                values = self._values(model)
                if side.kind == "model":
                    return ProofResult.unknown(f"outside the symbolic model: {side.what} at "
                                               + ", ".join(f"{k}={v}" for k, v in
                                                           self._rendered(values)))
                return self._counterexample(f"the code can fail: {side.what}", values, describe)
            if ans.result == z3.unknown:
                return ProofResult.unknown(f"solver: {ans.reason}")
        # Each conjunct on its own: smaller circuits, and bit-blasting time grows much faster
        # than linearly with the size of the formula.
        unknown = ""
        for label, part in _conjuncts(path.value):
            ans = self._solve([*path.condition, z3.Not(part)])
            if ans.result == z3.unsat:
                continue
            if ans.model is None:
                unknown = unknown or ans.reason
                continue
            model = self._nicer(path.condition, part) or ans.model
            return self._counterexample(f"fails: {label}" if label else "claim fails",
                                        self._values(model), describe)
        return ProofResult.unknown(f"solver: {unknown}") if unknown else None

    def _nicer(self, condition: Sequence[z3.BoolRef], part: z3.BoolRef) -> z3.ModelRef | None:
        """A counterexample with page-aligned addresses and sizes, if there is one: easier to
        read than the first model the solver finds."""
        if not self.nice:
            return None
        ans = self._solve_once([*condition, z3.Not(part), *self.nice], NICE_MS)
        return ans.model

    def _values(self, model: z3.ModelRef) -> dict[str, int]:
        out: dict[str, int] = {}
        for v in self.vars:
            val = model.eval(v.sym.expr, model_completion=True)
            assert isinstance(val, z3.BitVecNumRef)
            out[v.name] = val.as_signed_long()
        return out

    def _rendered(self, values: dict[str, int]) -> list[tuple[str, str]]:
        return [(v.name, render(values[v.name], v.kind)) for v in self.vars]

    def _counterexample(self, detail: str, values: dict[str, int],
                        describe: Callable[[dict[str, int]], list[str]] | None) -> ProofResult:
        notes: list[str] = []
        if describe is not None:
            try:
                notes = describe(values)
            except Exception as exc:  # noqa: BLE001 - a replay that raises is itself news
                notes = [f"replaying it raises {type(exc).__name__}: {exc}"]
        return ProofResult(Status.COUNTEREXAMPLE, detail, tuple(self._rendered(values)),
                           tuple(notes))


def _with_stats(r: ProofResult, **stats: int) -> ProofResult:
    return ProofResult(r.status, r.detail, r.model, r.notes, {**r.stats, **stats})


def _conjuncts(value: object) -> list[tuple[str, z3.BoolRef]]:
    """The parts of a claim, each with its name ("" when the claim names none)."""
    if isinstance(value, dict):
        out: list[tuple[str, z3.BoolRef]] = []
        for label, part in value.items():
            out += [(label, f) for _, f in _conjuncts(part)]
        return out
    assert isinstance(value, (SymBool, z3.BoolRef, bool))
    claim = z3.simplify(formula(value))
    parts = claim.children() if z3.is_and(claim) else [claim]
    return [("", p) for p in parts if not z3.is_true(p)]
