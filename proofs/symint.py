"""Symbolic values: a Python ``int`` or ``bool`` whose value is a Z3 term.

``SymInt`` stands for a Python ``int`` as a bit-vector.  Code written for ints (the functions of
``impl.intervals``, the spec's step bodies) runs on it unchanged and builds the formulas of what
it computes; ``bool()`` of a symbolic condition (an ``if``) asks the ``Executor``
(``proofs.symbolic``) which side to take.

Faithfulness.  A ``SymInt`` models Python's unbounded integers, not C's: values are two's
complement bit-vectors of the executor's width with *signed* comparisons and Python's floor
division, and the wrap-around of ``unsigned long`` comes only from the code's own ``& MASK64``.
So a missing mask in the implementation shows up as a difference, as it would at run time.
Where the finite width could differ from Python (an overflow), or Python would raise (division
by zero, a negative shift), the operation records a side condition with the executor; an
obligation holds only if every side condition of every path holds too.

A ``SymInt`` may also hold an integer-sorted term, an unbounded integer as Python's are (the
counters and page counts of ``proofs.symset``); its ``+``, ``-`` and comparisons are exact and
need no side conditions, and the bit operations are not defined on it.

Each value may carry exact bounds derived by interval arithmetic from the inputs' ranges.  They
only leave out work that cannot matter (a side condition that cannot fail, a division circuit
where one comparison does), and let a small value serve as a list index (one path per value).

Relies on ``z3``; the executor comes in at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import z3

if TYPE_CHECKING:
    from .symbolic import Executor

MAX_SPLIT = 64  # a symbolic index becomes one path per value up to this many values


class SymbolicError(TypeError):
    """The code did something the symbolic model does not cover (e.g. ``range(sym)``)."""


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

    # ``|`` and ``&`` on truth values (Python's on bools) join without a choice point.
    def __or__(self, other: object) -> SymBool:
        if isinstance(other, (SymBool, bool)):
            return SymBool(self.ex, z3.Or(self.expr, formula(other)))
        return NotImplemented

    __ror__ = __or__

    def __and__(self, other: object) -> SymBool:
        if isinstance(other, (SymBool, bool)):
            return SymBool(self.ex, z3.And(self.expr, formula(other)))
        return NotImplemented

    __rand__ = __and__

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

    def term_key(self) -> int:
        """Equal for two values of one term (``proofs.houdini``: did a step change a field?)."""
        return int(self.expr.get_id())

    def renewed(self) -> SymInt:
        """The same value under a new identity (see ``proofs.stepcase.fresh``)."""
        return SymInt(self.ex, self.expr, self.bounds)

    # ------------------------------------------------------------------ helpers
    def _operand(self, other: object) -> tuple[z3.BitVecRef, Bounds] | None:
        if isinstance(other, SymInt):
            if other.ex is not self.ex:
                raise SymbolicError("values of two executors mixed")
            return other.expr, other.bounds
        if isinstance(other, int):
            if self.expr.sort() == z3.IntSort():
                return z3.IntVal(other), (other, other)
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
        if checks is not None and bounds is None and a.sort() != z3.IntSort():
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
