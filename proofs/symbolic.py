"""Symbolic execution of the allocator's arithmetic, so the proofs are about the code that runs.

``SymInt`` stands for a Python ``int`` whose value is a Z3 bit-vector.  The functions of
``impl.intervals`` are ordinary Python: they add, mask with ``MASK64``, compare and branch.  Given
``SymInt`` arguments they build, unchanged, the formulas of what they compute; an ``if`` on a
symbolic condition calls ``__bool__``, where the ``Executor`` picks a side.  The executor re-runs
the function once per feasible sequence of such choices (a path), so every branch of the real
code is covered and each path comes with its condition.

Faithfulness.  A ``SymInt`` models Python's unbounded integers, not C's: values are two's
complement bit-vectors of ``width`` bits (default 72) with *signed* comparisons, and the
wrap-around of ``unsigned long`` comes only from the code's own ``& MASK64``.  So a missing mask
in the implementation shows up as a difference, as it would at run time.  Where the finite width
could differ from Python (an overflow of the 72 bits), or Python would raise (division by zero),
the operation records a side condition; an obligation holds only if every side condition of
every path holds too.  A width overflow is the model's limit and makes the result Unknown; a
possible exception is a Counterexample.

The agreement of this model with the concrete functions is tested on random and edge inputs
(``tests/test_proofs_agreement.py``).

Relies on ``z3`` and ``proofs.render`` / ``proofs.obligation``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

import z3

from impl.config import PAGE_SIZE

from .obligation import ProofResult, Status
from .render import Kind, render

T = TypeVar("T")
MASK64 = (1 << 64) - 1
DEFAULT_WIDTH = 72
MAX_SPLIT = 64  # a symbolic index becomes one path per value up to this many values
NICE_MS = 2000
# Tactic pipelines tried in turn by ``Executor._solve``.
TACTICS = (
    ("simplify", "propagate-values", "solve-eqs", "bit-blast", "sat"),
    ("simplify", "bit-blast", "sat"),
    ("simplify", "propagate-values", "bit-blast", "sat"),
)

SideKind = Literal["exception", "model"]


class SymbolicError(TypeError):
    """The code did something the symbolic model does not cover (e.g. ``range(sym)``)."""


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


class SymBool:
    """A symbolic truth value.  ``bool()`` of it (an ``if``, ``and``, ``or``) is a choice point."""

    __slots__ = ("ex", "expr")

    def __init__(self, ex: Executor, expr: z3.BoolRef) -> None:
        self.ex = ex
        self.expr = expr

    def __bool__(self) -> bool:
        return self.ex.decide(self.expr)

    def __invert__(self) -> SymBool:
        return SymBool(self.ex, z3.Not(self.expr))

    def __repr__(self) -> str:
        return "<symbolic bool>"




Bounds = tuple[int, int] | None


class SymInt:
    """A Python ``int`` as a ``width``-bit two's complement Z3 term (see the module note).

    ``bounds`` is an interval the value is known to lie in (inclusive, exact), derived from the
    inputs' ranges by interval arithmetic, or None.  Bounds are used only to leave out work that
    cannot matter: a width side condition that cannot fail, or a division circuit where one
    comparison does (``(i + 1) % n`` with ``i < n`` is ``i + 1 - n`` or ``i + 1``), so they never
    change what a formula means.
    """

    __slots__ = ("ex", "expr", "bounds")

    # Hashed by identity, so that code may use a value as a memo key (the spec caches fits
    # by free mask): a symbolic value is only ever found again as the same object.
    def __hash__(self) -> int:
        return id(self)

    def __init__(self, ex: Executor, expr: z3.BitVecRef, bounds: Bounds = None) -> None:
        self.ex = ex
        self.expr = expr
        self.bounds = bounds

    # ------------------------------------------------------------------ helpers
    def _operand(self, other: object) -> tuple[z3.BitVecRef, Bounds] | None:
        if isinstance(other, SymInt):
            if other.ex is not self.ex:
                raise SymbolicError("values of two executors mixed")
            return other.expr, other.bounds
        if isinstance(other, int):
            return self.ex.const(other), (other, other)
        return None

    def _binop(self, other: object, op: Callable[[z3.BitVecRef, z3.BitVecRef], z3.BitVecRef],
               interval: Callable[[tuple[int, int], tuple[int, int]], Bounds] | None,
               checks: Callable[[z3.BitVecRef, z3.BitVecRef], Iterable[z3.BoolRef]] | None,
               what: str, reflected: bool = False) -> SymInt:
        o = self._operand(other)
        if o is None:
            return NotImplemented  # type: ignore[no-any-return]
        (a, ab), (b, bb) = ((o, (self.expr, self.bounds)) if reflected
                            else ((self.expr, self.bounds), o))
        bounds = interval(ab, bb) if interval is not None and ab and bb else None
        if bounds is not None and not self.ex.fits(bounds):
            bounds = None
        if checks is not None and bounds is None:
            for c in checks(a, b):
                self.ex.side(c, "model", f"{what} exceeds the {self.ex.width}-bit model of int")
        return SymInt(self.ex, op(a, b), bounds)

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, other: object) -> SymInt:
        return self._binop(other, lambda a, b: a + b, _iadd, _add_ok, "+")

    def __radd__(self, other: object) -> SymInt:
        return self._binop(other, lambda a, b: a + b, _iadd, _add_ok, "+", reflected=True)

    def __sub__(self, other: object) -> SymInt:
        return self._binop(other, lambda a, b: a - b, _isub, _sub_ok, "-")

    def __rsub__(self, other: object) -> SymInt:
        return self._binop(other, lambda a, b: a - b, _isub, _sub_ok, "-", reflected=True)

    def __mul__(self, other: object) -> SymInt:
        return self._binop(other, lambda a, b: a * b, _imul, _mul_ok, "*")

    def __rmul__(self, other: object) -> SymInt:
        return self._binop(other, lambda a, b: a * b, _imul, _mul_ok, "*", reflected=True)

    def __neg__(self) -> SymInt:
        b = self.bounds
        nb = (-b[1], -b[0]) if b is not None else None
        if nb is None or not self.ex.fits(nb):
            self.ex.side(self.expr != self.ex.const(-(1 << (self.ex.width - 1))), "model",
                         f"unary - exceeds the {self.ex.width}-bit model of int")
            nb = None
        return SymInt(self.ex, -self.expr, nb)

    def __invert__(self) -> SymInt:
        # ~x == -x - 1 never leaves the signed range.
        b = self.bounds
        return SymInt(self.ex, ~self.expr, (-b[1] - 1, -b[0] - 1) if b is not None else None)

    # Bitwise operators on two's complement agree with Python's infinite-precision ones as
    # long as both operands are in range, which the side conditions of their producers ensure.
    def __and__(self, other: object) -> SymInt:
        return self._binop(other, lambda a, b: a & b, _iand, None, "&")

    def __rand__(self, other: object) -> SymInt:
        return self._binop(other, lambda a, b: a & b, _iand, None, "&", reflected=True)

    def __or__(self, other: object) -> SymInt:
        return self._binop(other, lambda a, b: a | b, _ior, None, "|")

    def __ror__(self, other: object) -> SymInt:
        return self._binop(other, lambda a, b: a | b, _ior, None, "|", reflected=True)

    def __xor__(self, other: object) -> SymInt:
        return self._binop(other, lambda a, b: a ^ b, _ior, None, "^")

    def __rxor__(self, other: object) -> SymInt:
        return self._binop(other, lambda a, b: a ^ b, _ior, None, "^", reflected=True)

    def __lshift__(self, other: object) -> SymInt:
        return self._shift(other, False, left=True)

    def __rlshift__(self, other: object) -> SymInt:
        return self._shift(other, True, left=True)

    def __rshift__(self, other: object) -> SymInt:
        return self._shift(other, False, left=False)

    def __rrshift__(self, other: object) -> SymInt:
        return self._shift(other, True, left=False)

    def _shift(self, other: object, reflected: bool, left: bool) -> SymInt:
        o = self._operand(other)
        if o is None:
            return NotImplemented  # type: ignore[no-any-return]
        (a, ab), (b, bb) = ((o, (self.expr, self.bounds)) if reflected
                            else ((self.expr, self.bounds), o))
        w = self.ex.width
        if bb is None or bb[0] < 0:
            self.ex.side(b >= 0, "exception", "negative shift count (ValueError)")
        bounds: Bounds = None
        if ab is not None and bb is not None and bb[0] >= 0:
            if left:
                cand = [ab[0] << bb[0], ab[0] << bb[1], ab[1] << bb[0], ab[1] << bb[1]] \
                    if bb[1] < 4 * w else None
                bounds = (min(cand), max(cand)) if cand else None
            else:
                cand = [ab[0] >> bb[0], ab[0] >> bb[1], ab[1] >> bb[0], ab[1] >> bb[1]]
                bounds = (min(cand), max(cand))
        if bounds is not None and not self.ex.fits(bounds):
            bounds = None
        if left:
            if bounds is None:
                self.ex.side(z3.And(z3.ULT(b, w), ((a << b) >> b) == a), "model",
                             f"<< exceeds the {w}-bit model of int")
            return SymInt(self.ex, a << b, bounds)
        # Python's >> is arithmetic, and so is z3's >> on bit-vectors.
        return SymInt(self.ex, a >> b, bounds)

    def _divmod(self, other: object, reflected: bool, want_mod: bool) -> SymInt:
        o = self._operand(other)
        if o is None:
            return NotImplemented  # type: ignore[no-any-return]
        (a, ab), (b, bb) = ((o, (self.expr, self.bounds)) if reflected
                            else ((self.expr, self.bounds), o))
        if bb is None or bb[0] <= 0 <= bb[1]:
            self.ex.side(b != 0, "exception", "division by zero (ZeroDivisionError)")
        if ab is not None and bb is not None and ab[0] >= 0 and bb[0] > 0:
            # Non-negative operands (addresses, sizes, pages): unsigned division, and no
            # division circuit at all where the bounds allow.
            c, hi = bb[0], ab[1]
            if want_mod:
                bounds: Bounds = (0, min(hi, bb[1] - 1))
            else:
                bounds = (ab[0] // bb[1], hi // c)
            if bb[0] == bb[1]:
                if hi < c:
                    return SymInt(self.ex, a if want_mod else self.ex.const(0), bounds)
                if hi < 2 * c:
                    big = z3.UGE(a, b)
                    return SymInt(self.ex, z3.If(big, a - b, a) if want_mod
                                  else z3.If(big, self.ex.const(1), self.ex.const(0)), bounds)
                if c & (c - 1) == 0:
                    k = c.bit_length() - 1
                    return SymInt(self.ex, a & (c - 1) if want_mod else z3.LShR(a, k), bounds)
            return SymInt(self.ex, z3.URem(a, b) if want_mod else z3.UDiv(a, b), bounds)
        # Python's floor semantics in general: the remainder takes the divisor's sign (z3's
        # bvsmod), and the quotient is the exact division of what is left.
        mod = a % b  # bvsmod
        if want_mod:
            pos = bb is not None and bb[0] > 0
            return SymInt(self.ex, mod, (0, bb[1] - 1) if pos and bb is not None else None)
        return SymInt(self.ex, (a - mod) / b)

    def __floordiv__(self, other: object) -> SymInt:
        return self._divmod(other, False, False)

    def __rfloordiv__(self, other: object) -> SymInt:
        return self._divmod(other, True, False)

    def __mod__(self, other: object) -> SymInt:
        return self._divmod(other, False, True)

    def __rmod__(self, other: object) -> SymInt:
        return self._divmod(other, True, True)

    def bit_length(self) -> SymInt:
        """``int.bit_length`` for non-negative values (``fls``)."""
        x, b = self.expr, self.bounds
        if b is None or b[0] < 0:
            self.ex.side(x >= 0, "model", "bit_length of a negative value is not modelled")
        top = b[1].bit_length() if b is not None and b[0] >= 0 else self.ex.width - 1
        result: z3.BitVecRef = self.ex.const(0)
        for i in range(top):  # higher bits are known to be zero
            result = z3.If(z3.Extract(i, i, x) == 1, self.ex.const(i + 1), result)
        bounds = (b[0].bit_length(), top) if b is not None and b[0] >= 0 else (0, top)
        return SymInt(self.ex, result, bounds)

    def bit_count(self) -> SymInt:
        """``int.bit_count`` (population count) of a non-negative value."""
        x, b = self.expr, self.bounds
        if b is None or b[0] < 0:
            self.ex.side(x >= 0, "model", "bit_count of a negative value is not modelled")
        top = b[1].bit_length() if b is not None and b[0] >= 0 else self.ex.width - 1
        w = self.ex.width
        total: z3.BitVecRef = self.ex.const(0)
        for i in range(top):
            total = total + z3.ZeroExt(w - 1, z3.Extract(i, i, x))
        return SymInt(self.ex, total, (0, top))

    # ------------------------------------------------------------------ comparisons
    def _cmp(self, other: object, op: Callable[[z3.BitVecRef, z3.BitVecRef], z3.BoolRef],
             decided: Callable[[tuple[int, int], tuple[int, int]], bool | None]) -> SymBool:
        o = self._operand(other)
        if o is None:
            return NotImplemented  # type: ignore[no-any-return]
        b, bb = o
        if self.bounds is not None and bb is not None:
            known = decided(self.bounds, bb)
            if known is not None:
                return SymBool(self.ex, z3.BoolVal(known))
        return SymBool(self.ex, op(self.expr, b))

    def __lt__(self, other: object) -> SymBool:
        return self._cmp(other, lambda a, b: a < b, _dlt)

    def __le__(self, other: object) -> SymBool:
        return self._cmp(other, lambda a, b: a <= b, lambda x, y: _dlt(x, (y[0] + 1, y[1] + 1)))

    def __gt__(self, other: object) -> SymBool:
        return self._cmp(other, lambda a, b: a > b, lambda x, y: _dlt(y, x))

    def __ge__(self, other: object) -> SymBool:
        return self._cmp(other, lambda a, b: a >= b, lambda x, y: _dlt(y, (x[0] + 1, x[1] + 1)))

    def __eq__(self, other: object) -> SymBool:  # type: ignore[override]
        return self._cmp(other, lambda a, b: a == b, _deq)

    def __ne__(self, other: object) -> SymBool:  # type: ignore[override]
        return self._cmp(other, lambda a, b: a != b,
                         lambda x, y: None if _deq(x, y) is None else not _deq(x, y))

    def __bool__(self) -> bool:
        return self.ex.decide(self.expr != 0)

    def __index__(self) -> int:
        """A concrete int where Python needs one (a list index): one path per possible value,
        when the bounds allow few."""
        b = self.bounds
        if b is None or b[1] - b[0] > MAX_SPLIT:
            raise SymbolicError("a symbolic value was used where Python needs a concrete int")
        for v in range(b[0], b[1]):
            if self.ex.decide(self.expr == self.ex.const(v)):
                return v
        return b[1]

    # Messages the code formats (an error naming an area) must not print whole formulas:
    # that is slow, and what they would say is in the counterexample anyway.
    def __repr__(self) -> str:
        return "<symbolic int>"

    def __format__(self, spec: str) -> str:
        return "<symbolic int>"


# Interval arithmetic on exact bounds (lo, hi).
def _iadd(a: tuple[int, int], b: tuple[int, int]) -> Bounds:
    return a[0] + b[0], a[1] + b[1]


def _isub(a: tuple[int, int], b: tuple[int, int]) -> Bounds:
    return a[0] - b[1], a[1] - b[0]


def _imul(a: tuple[int, int], b: tuple[int, int]) -> Bounds:
    c = [a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1]]
    return min(c), max(c)


def _iand(a: tuple[int, int], b: tuple[int, int]) -> Bounds:
    if a[0] >= 0 and b[0] >= 0:
        return 0, min(a[1], b[1])
    if a[0] >= 0:
        return 0, a[1]
    if b[0] >= 0:
        return 0, b[1]
    return None


def _ior(a: tuple[int, int], b: tuple[int, int]) -> Bounds:
    if a[0] >= 0 and b[0] >= 0:
        return 0, (1 << max(a[1], b[1]).bit_length()) - 1
    return None


def _dlt(a: tuple[int, int], b: tuple[int, int]) -> bool | None:
    """Is every value of ``a`` below every value of ``b`` (True), none (False), or unknown."""
    if a[1] < b[0]:
        return True
    if a[0] >= b[1]:
        return False
    return None


def _deq(a: tuple[int, int], b: tuple[int, int]) -> bool | None:
    if a[1] < b[0] or b[1] < a[0]:
        return False
    if a[0] == a[1] == b[0] == b[1]:
        return True
    return None


def _add_ok(a: z3.BitVecRef, b: z3.BitVecRef) -> list[z3.BoolRef]:
    return [z3.BVAddNoOverflow(a, b, True), z3.BVAddNoUnderflow(a, b)]


def _sub_ok(a: z3.BitVecRef, b: z3.BitVecRef) -> list[z3.BoolRef]:
    return [z3.BVSubNoOverflow(a, b), z3.BVSubNoUnderflow(a, b, True)]


def _mul_ok(a: z3.BitVecRef, b: z3.BitVecRef) -> list[z3.BoolRef]:
    return [z3.BVMulNoOverflow(a, b, True), z3.BVMulNoUnderflow(a, b)]




def formula(c: SymBool | z3.BoolRef | bool) -> z3.BoolRef:
    """The Z3 formula of a claim built from symbolic and concrete parts."""
    if isinstance(c, SymBool):
        return c.expr
    if isinstance(c, bool):
        return z3.BoolVal(c)
    return c


def all_(*cs: SymBool | z3.BoolRef | bool) -> z3.BoolRef:
    """Conjunction without branching (Python's ``and`` would fork the path)."""
    return z3.And([formula(c) for c in cs])


def any_(*cs: SymBool | z3.BoolRef | bool) -> z3.BoolRef:
    return z3.Or([formula(c) for c in cs])


def implies(a: SymBool | z3.BoolRef | bool, b: SymBool | z3.BoolRef | bool) -> z3.BoolRef:
    return z3.Implies(formula(a), formula(b))


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
