"""Sets of pages of an unbounded address space: a spec's page mask whose value is a Z3 set.

The spec keeps every set of pages as a Python int (bit ``p`` is page ``p``), built for a handful
of pages.  ``SymSet`` stands for such a mask over the whole 64-bit address space, as ``SymInt``
stands for an int: page numbers are 64-bit bit-vectors, a set is a Z3 array from page to
membership, and the spec's own step bodies and checks run on it unchanged.  ``&``, ``|`` and
``& ~`` are intersection, union and difference; a mask compared with 0 is the empty set, and
compared with the spec's whole range it is the managed pages, themselves a set of any size;
``bit_count()`` is the size.  An area code (``mask << 8 | tag``) is a ``SymCode``.

Sizes.  The size of a set term is ``card(term)``, ``card`` an uninterpreted function to the
integers (sizes and the spec's counters are unbounded integers here, as in Python),
constrained at each term the code builds by facts true of every finite set (ghost counts):
a size lies in ``0 .. 2^52`` (the 4 KiB pages of a 64-bit space) and is 0 exactly when the set
is empty; |A u B| = |A| + |B| - |A n B|; |A \\ B| = |A| - |A n B|; |A n B| is at most either
size and is |A| when A is inside B; an area of ``n`` pages has ``n``.  Each holds when
``card`` is the size, so asserting them is sound; a proof may need a fact they do not give
(it then fails), never the reverse.  The lemmas of a term are kept by the term's id and
collected for a query from the terms it mentions (``Pages.lemmas_for``).

Areas and choices.  An area (a thread's slot) is a set of its number of pages holding its
first page, not constrained to be contiguous: the solver is many times slower on an interval
written as a lambda term, and nothing the invariants say depends on contiguity.  Where the spec
picks pages (``fit_choices``: the lowest fit; ``lowest_run``), a set answers with a fresh
choice: the fitted area is any area of the requested size inside the free pages, or a failure;
the run is any non-empty area inside the set.  Both admit more states and steps than the spec
has (any fit, not only the lowest), so an invariant inductive over them is inductive over the
spec's.

Run structure and zones (what the ``percpu`` spec decides from).  ``run starts`` maps a set to
the pages of it whose predecessor is not in it, an uninterpreted function bound at each term
by lemmas true of every set: starts lie in the set; a run of a union or an intersection starts
where a run of a part does; a run of ``a \\ area`` starts where one of ``a`` does or at the
area's end page.  An area is an interval there: its one run starts at its first page, its last
page is in it, its end page is not, and another area that holds that end page either starts
there or holds the page before (contiguity, at the pages the lemmas name); a query that asks
about run starts gets that lemma of every area it mentions (a set equal to an area shares its
starts by congruence).  A page's zone (``addr_to_cpu``) is an open function of the page into
the spec's zones, so a proof holds for every way of dealing pages to zones; each zone's pages
are a set of their own, tied to the map at every page term whose zone the spec asks (a lambda
over the map would bring quantifiers into every query), and "a run starts outside zone z" is
an emptiness test on ``run starts(m) \\ zone z pages``.  The largest run is some length up to the size, a
carve from the merged block any area of the size inside it or nothing.

Relies on ``z3``, ``proofs.symint`` (sizes and page numbers are ``SymInt``\\ s) and the area-code
layout of ``spec.masks``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import z3

from spec.masks import AREA_SHIFT

from .render import Kind
from .symint import SymbolicError, SymBool, SymInt

if TYPE_CHECKING:
    from .symbolic import Executor

PAGE_BITS = 64
MAX_PAGES = 1 << 52  # 4 KiB pages in a 64-bit address space
TAG_MASK = (1 << AREA_SHIFT) - 1


class Pages:
    """What the sets of one proof share: the executor (for sizes and choices), ``card``, the
    managed range and the lemmas about every size term built so far."""

    def __init__(self, ex: Executor, all_pages: int) -> None:
        if ex.width < PAGE_BITS:
            raise SymbolicError("page sets need an executor at least 64 bits wide")
        self.ex = ex
        self.page = z3.BitVecSort(PAGE_BITS)
        self.card = z3.Function("card", z3.ArraySort(self.page, z3.BoolSort()), z3.IntSort())
        self.all_pages = all_pages
        self._lemmas: dict[int, list[z3.BoolRef]] = {}
        self._lemma_ids: dict[int, set[int]] = {}  # the ids of each term's lemmas
        self._ends_asked: dict[int, int] = {}  # a starts term -> the area whose end it asks
        self._keep: list[z3.ExprRef] = []  # ids stay valid while their terms live
        self._names = itertools.count()
        set_sort = z3.ArraySort(self.page, z3.BoolSort())
        # The zone map (``addr_to_cpu`` in pages) left open: the proof holds for every one.
        # Each zone's pages are a set of their own, tied to the map at every page term the
        # proof names (a lambda over the map would bring quantifiers into every query).
        self.zone = z3.Function("zone", self.page, z3.BitVecSort(ex.width))
        self._zone_sets: dict[int, z3.ArrayRef] = {}
        self._area_starts: dict[int, z3.ArrayRef] = {}  # an area's run starts, by its id
        self.starts = z3.Function("run starts", set_sort, set_sort)
        self.shape: dict[int, tuple[str, z3.ArrayRef, z3.ArrayRef]] = {}
        self._zoned: set[int] = set()
        self.areas: dict[int, tuple[z3.ArrayRef, z3.BitVecRef, z3.BitVecRef, z3.ArithRef]] = {}
        self.empty = SymSet(self, z3.EmptySet(self.page))
        self.managed = self.input("managed")

    # ------------------------------------------------------------------ terms and lemmas
    def size(self, arr: z3.ArrayRef) -> z3.ArithRef:
        """``card(arr)``, with the lemmas every set's size obeys."""
        c = self.card(arr)
        if c.get_id() not in self._lemmas:
            self._lemmas[c.get_id()] = []
            self._keep.append(c)
            self.lemma(c, c >= 0, c <= MAX_PAGES, (c == 0) == (arr == z3.EmptySet(self.page)))
        return c

    def count(self, name: str, lo: int | None = None) -> SymInt:
        """A whole number (a counter, a number of pages) as an unbounded integer."""
        x = SymInt(self.ex, z3.Int(name))
        if lo is not None:
            self.ex.assume(x.expr >= lo)
        return x

    def lemma(self, c: z3.ExprRef, *facts: z3.BoolRef) -> None:
        """Lemmas about term ``c``, each once: an operation on the same sets asked again (in
        every step that takes the union of two fields, say) makes the same lemmas again, and a
        query that names ``c`` would otherwise carry every copy."""
        have = self._lemma_ids.setdefault(c.get_id(), set())
        got = self._lemmas.setdefault(c.get_id(), [])
        for f in facts:
            if f.get_id() not in have:
                have.add(f.get_id())
                got.append(f)

    def lemmas_for(self, formulas: list[z3.BoolRef]) -> list[z3.BoolRef]:
        """Every lemma about a size term the formulas mention, and those its lemmas mention;
        when they ask about run starts, the run starts of every area they mention too."""
        out: list[z3.BoolRef] = []
        seen: set[int] = set()
        todo: list[z3.ExprRef] = list(formulas)
        done_terms: set[int] = set()
        areas: list[int] = []
        mentioned: set[int] = set()  # the areas named
        ends: set[int] = set()  # the areas whose end page a lemma asks about
        asks_starts = False
        while todo:
            for x in walk(todo, seen):
                i = x.get_id()
                if i in self._lemmas and i not in done_terms:
                    done_terms.add(i)
                    out += self._lemmas[i]
                    todo += self._lemmas[i]
                    if i in self._ends_asked:
                        ends.add(self._ends_asked[i])
                if i in self._area_starts:
                    areas.append(i)
                    mentioned.add(i)
                elif not asks_starts and z3.is_app(x) and x.decl().eq(self.starts):
                    asks_starts = True
            if asks_starts:  # the areas' starts terms, and with them their lemmas
                todo += [self._area_starts[i] for i in areas]
                areas = []
        # Contiguity at an area's end page, for the other areas named here only: the areas
        # of every step run so far would make the query depend on which steps ran before.
        for b in ends:
            end = self.areas[b][2]
            for o in mentioned - {b}:
                other, first = self.areas[o][0], self.areas[o][1]
                out.append(z3.Implies(z3.And(z3.Select(other, end), end != first),
                                      z3.Select(other, end - 1)))
        return out

    # ------------------------------------------------------------------ sets
    def input(self, name: str) -> SymSet:
        """A set of pages with no constraint but finiteness (a page mask of the state)."""
        arr = z3.Array(name, self.page, z3.BoolSort())
        self.size(arr)
        return SymSet(self, arr)

    def area(self, name: str, lo: SymInt, n: SymInt | int) -> SymSet:
        """An area of ``n`` pages starting at page ``lo``: a set of that size holding ``lo``.
        Not constrained to be contiguous (the solver is many times slower on an interval as a
        lambda term); nothing the invariants say depends on it, and leaving it out only admits
        more states."""
        nn = n.expr if isinstance(n, SymInt) else z3.IntVal(n)
        arr = z3.Array(name, self.page, z3.BoolSort())
        c = self.size(arr)
        self.lemma(c, c == nn)
        first = _narrow(lo.expr, PAGE_BITS)
        self.ex.assume(z3.Implies(nn != 0, z3.Select(arr, first)))
        # The page after its last: what a run structure needs of an interval (see ``run
        # starts``), never an offset from ``lo`` (no arithmetic between sizes and pages).
        end = z3.BitVec(f"{name}.end", PAGE_BITS)
        self.areas[arr.get_id()] = (arr, first, end, nn)
        # Its run starts come with the area in a query that asks about run starts at all: a
        # set equal to it (a thread's hand is its area) has the same starts by congruence,
        # but only if this lemma is in the query.  Left out of the others, where the starts
        # function over arrays only makes a model harder to find.
        self._area_starts[arr.get_id()] = self.run_starts(arr)
        return SymSet(self, arr, SymPage(self, lo.expr, lo.bounds), end)

    def choose_area(self, inside: SymSet, n: SymInt | int | None, what: str) -> SymSet:
        """A fresh area of ``n`` pages (``None``: some non-zero number) inside ``inside``: the
        path goes on for every such area."""
        ex = self.ex
        k = next(self._names)
        lo = ex.input(f"{what}{k}.start", Kind.COUNT, 0, MAX_PAGES - 1)
        if n is None:
            n = self.count(f"{what}{k}.pages", 1)
        area = self.area(f"{what}{k}", lo, n)
        ex.constrain(z3.IsSubset(area.arr, inside.arr))
        return area

    def arr_of(self, x: object) -> z3.ArrayRef | None:
        if isinstance(x, SymSet):
            if x.P is not self:
                raise SymbolicError("page sets of two proofs mixed")
            return x.arr
        if isinstance(x, int) and not isinstance(x, bool):
            if x == 0:
                return self.empty.arr
            if x == self.all_pages:
                return self.managed.arr
            raise SymbolicError(f"the page mask {x:#x} names particular pages of a bounded "
                                "instance")
        return None

    # ------------------------------------------------------------------ run structure
    def run_starts(self, arr: z3.ArrayRef) -> z3.ArrayRef:
        """``starts(arr)``: the pages of ``arr`` whose predecessor is not in it, with what the
        shape of the term says of it.  Each lemma holds of every set (for an area, of every
        interval), so asserting it is sound: a run of a union or an intersection starts where
        a run of a part does; a run of ``a \\ b`` starts where one of ``a`` does or right
        after a run of ``b``, which for an area is its end; an area's one run starts at its
        first page."""
        st = self.starts(arr)
        key = st.get_id()
        if key in self._lemmas:
            return st
        self._lemmas[key] = []
        self._keep.append(st)
        facts = [z3.IsSubset(st, arr)]
        got = self.shape.get(arr.get_id())
        area = self.areas.get(arr.get_id())
        if got is not None:
            op, a, b = got
            if op in ("or", "and"):
                facts.append(z3.IsSubset(st, z3.SetUnion(self.run_starts(a),
                                                         self.run_starts(b))))
            else:
                after = self.areas.get(b.get_id())
                if after is not None:
                    facts.append(z3.IsSubset(st, z3.SetAdd(self.run_starts(a), after[2])))
                    facts += self._interval_at(b)
                    self._ends_asked[key] = b.get_id()
        elif area is not None:
            first = area[1]
            facts.append(z3.IsSubset(st, z3.SetAdd(z3.EmptySet(self.page), first)))
        self.lemma(st, *facts)
        return st

    def _interval_at(self, b: z3.ArrayRef) -> list[z3.BoolRef]:
        """Area ``b`` is an interval ending before its end page: its last page is in it and
        its end is not.  That another area holding that end either starts there or holds the
        page before it too (contiguity, at the one page the proof asks about) is added by
        ``lemmas_for``, for the areas a query names."""
        _, _, end, n = self.areas[b.get_id()]
        return [z3.Not(z3.Select(b, end)), z3.Implies(n != 0, z3.Select(b, end - 1))]

    def zone_pages(self, zone: int) -> z3.ArrayRef:
        """The pages of ``zone``: a set that agrees with the zone map at every page term
        ``page_zone`` was asked about.  Elsewhere it is left open, which only admits more
        states, so what is proved still holds for every zone map."""
        got = self._zone_sets.get(zone)
        if got is None:
            got = self._zone_sets[zone] = z3.Array(f"zone {zone} pages", self.page,
                                                   z3.BoolSort())
        return got

    def page_zone(self, page: z3.BitVecRef, zones: int) -> SymInt:
        """The zone of ``page`` under the open zone map: some zone of the ``zones``."""
        z = self.zone(page)
        if z.get_id() not in self._zoned:  # its range and its zone's pages, once per term
            self._zoned.add(z.get_id())
            self._keep.append(z)
            self.ex.assume(z3.ULT(z, zones))
            for i in range(zones):
                self.ex.assume((z == i) == z3.Select(self.zone_pages(i), page))
        return SymInt(self.ex, z, (0, zones - 1))

    def meet_size(self, a: z3.ArrayRef, b: z3.ArrayRef) -> z3.ArithRef:
        """``|a n b|``, with its lemmas."""
        both = z3.SetIntersect(a, b)
        c = self.size(both)
        ca, cb = self.size(a), self.size(b)
        self.lemma(c, c <= ca, c <= cb, z3.Implies(z3.IsSubset(a, b), c == ca),
                   z3.Implies(z3.IsSubset(b, a), c == cb))
        return c


def walk(todo: list[z3.ExprRef], seen: set[int]) -> Iterator[z3.ExprRef]:
    """Each term reachable from ``todo`` not in ``seen`` (ids), once; the caller may add
    terms to ``todo`` while walking."""
    while todo:
        x = todo.pop()
        i = x.get_id()
        if i in seen:
            continue
        seen.add(i)
        todo.extend(x.children())
        yield x


def _narrow(x: z3.BitVecRef, bits: int) -> z3.BitVecRef:
    return x if x.size() == bits else z3.Extract(bits - 1, 0, x)


def _widen(x: z3.BitVecRef, bits: int) -> z3.BitVecRef:
    return x if x.size() == bits else z3.ZeroExt(bits - x.size(), x)


class SymPage(SymInt):
    """A page number of a page set (an area's first or last page): it knows its zone."""

    __slots__ = ("P",)

    def __init__(self, P: Pages, expr: z3.BitVecRef, bounds: Any = None) -> None:
        super().__init__(P.ex, expr, bounds)
        self.P = P

    def renewed(self) -> SymPage:
        return SymPage(self.P, self.expr, self.bounds)

    def zone_of(self, zones: int) -> SymInt:
        return self.P.page_zone(_narrow(self.expr, PAGE_BITS), zones)


class SymSet:
    """A page mask as a set of pages (see the module note); ``lo`` is its first page when it
    is an area."""

    __slots__ = ("P", "arr", "lo", "end")

    def __init__(self, P: Pages, arr: z3.ArrayRef, lo: SymInt | None = None,
                 end: z3.BitVecRef | None = None) -> None:
        self.P = P
        self.arr = arr
        self.lo = lo
        self.end = end

    def __hash__(self) -> int:  # by identity, as SymInt (memo keys)
        return id(self)

    def renewed(self) -> SymSet:
        return SymSet(self.P, self.arr, self.lo, self.end)

    def term_key(self) -> int:
        return int(self.arr.get_id())

    def _make(self, arr: z3.ArrayRef) -> SymSet:
        self.P.size(arr)
        return SymSet(self.P, arr)

    # ------------------------------------------------------------------ set algebra
    def __and__(self, other: object) -> Any:
        P = self.P
        if isinstance(other, Compl):
            return other.__rand__(self)
        if isinstance(other, int) and other == -1:  # ~0: every page
            return self
        b = P.arr_of(other)
        if b is None:
            return NotImplemented
        if b.eq(P.empty.arr):
            return P.empty
        P.meet_size(self.arr, b)
        both = z3.SetIntersect(self.arr, b)
        P.shape[both.get_id()] = ("and", self.arr, b)
        return SymSet(P, both)

    __rand__ = __and__

    def __or__(self, other: object) -> Any:
        P = self.P
        b = P.arr_of(other)
        if b is None:
            return NotImplemented
        if b.eq(P.empty.arr):
            return self
        if self.arr.eq(P.empty.arr):
            return SymSet(P, b)
        union = z3.SetUnion(self.arr, b)
        c = P.size(union)
        P.lemma(c, c == P.size(self.arr) + P.size(b) - P.meet_size(self.arr, b))
        P.shape[union.get_id()] = ("or", self.arr, b)
        return SymSet(P, union)

    __ror__ = __or__

    def __invert__(self) -> Compl:
        return Compl(self)

    def minus(self, other: SymSet) -> SymSet:
        P = self.P
        if other.arr.eq(P.empty.arr):
            return self
        diff = z3.SetDifference(self.arr, other.arr)
        c = P.size(diff)
        P.lemma(c, c == P.size(self.arr) - P.meet_size(self.arr, other.arr))
        P.shape[diff.get_id()] = ("minus", self.arr, other.arr)
        return SymSet(P, diff)

    # ------------------------------------------------------------------ tests and sizes
    def size(self) -> SymInt:
        return SymInt(self.P.ex, self.P.size(self.arr))

    def bit_count(self) -> SymInt:
        return self.size()

    def is_empty(self) -> SymBool:
        # Emptiness as an array equality, not as a size of 0: the solver decides set algebra
        # far faster than it links sizes (the lemma of every size term links the two).
        return SymBool(self.P.ex, self.arr == self.P.empty.arr)

    def __eq__(self, other: object) -> Any:
        b = self.P.arr_of(other)
        if b is None:
            return NotImplemented
        if b.eq(self.P.empty.arr):
            return self.is_empty()
        return SymBool(self.P.ex, self.arr == b)

    def __ne__(self, other: object) -> Any:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else ~eq

    def __bool__(self) -> bool:
        return bool(~self.is_empty())

    def __lshift__(self, n: object) -> SymCode:
        if n != AREA_SHIFT:
            raise SymbolicError("a page set shifted other than into an area code")
        return SymCode(self, 0)

    # ------------------------------------------------------------------ the spec's choices
    def fit_choices(self, pages: int, align: int, vstart: int, vend: int) -> tuple[Any, ...]:
        """Some area of ``pages`` pages inside this free space, or a failure (see the module
        note: alignment and the lowest-fit rule are left out, which only adds steps)."""
        return (self.P.choose_area(self, pages, "fit"), 0)

    def lowest_run(self) -> SymSet:
        return self.P.choose_area(self, None, "run")

    def low_page(self) -> SymInt:
        if self.lo is None:
            raise SymbolicError("the first page of a set of pages that is not an area")
        return self.lo

    def high_page(self) -> SymInt:
        if self.end is None:
            raise SymbolicError("the last page of a set of pages that is not an area")
        return SymPage(self.P, _widen(self.end - 1, self.P.ex.width))

    def one_run(self) -> bool:
        """True of an area (the model's areas are intervals: see ``Pages.run_starts``); of
        another set, not modelled."""
        if self.arr.get_id() not in self.P.areas:
            raise SymbolicError("whether a set of pages that is not an area is one run")
        return True

    def largest_run(self) -> SymInt:
        """Some length from 1 to the size (0 when empty): the spec only compares it with a
        watermark, and any answer only adds steps."""
        P = self.P
        r = P.count(f"largest run{next(P._names)}")
        P.ex.constrain(z3.And(r.expr >= 0, r.expr <= P.size(self.arr),
                              (r.expr == 0) == (self.arr == P.empty.arr)))
        return r

    def carve_from_block(self, chunk: object, pages: int, align: int) -> Any:
        """Some area of ``pages`` pages inside these pages, or nothing: both paths go on."""
        P = self.P
        if P.ex.decide(z3.Bool(f"carved{next(P._names)}")):
            return P.choose_area(self, pages, "carve")
        return 0

    def starts_outside(self, zone: int) -> SymSet:
        """The pages where a run starts outside ``zone`` under the open zone map (an
        emptiness test only: no size)."""
        P = self.P
        return SymSet(P, z3.SetDifference(P.run_starts(self.arr), P.zone_pages(zone)))

    def __repr__(self) -> str:
        return "<symbolic pages>"

    def __format__(self, spec: str) -> str:
        return "<symbolic pages>"


class Compl:
    """``~mask``: usable only to take pages out of a set (``m & ~n``)."""

    __slots__ = ("s",)

    def __init__(self, s: SymSet) -> None:
        self.s = s

    def __rand__(self, other: object) -> Any:
        a = self.s.P.arr_of(other)
        if a is None:
            return NotImplemented
        return (other if isinstance(other, SymSet) else SymSet(self.s.P, a)).minus(self.s)

    __and__ = __rand__


class SymCode:
    """An area code ``mask << 8 | tag`` whose mask is a ``SymSet``."""

    __slots__ = ("area", "tag")

    def __init__(self, area: SymSet, tag: SymInt | int) -> None:
        self.area = area
        self.tag = tag

    def __hash__(self) -> int:
        return id(self)

    def term_key(self) -> tuple[int, object]:
        tag = self.tag.term_key() if isinstance(self.tag, SymInt) else ("int", self.tag)
        return self.area.term_key(), tag

    def renewed(self) -> SymCode:
        return SymCode(self.area.renewed(),
                       self.tag.renewed() if isinstance(self.tag, SymInt) else self.tag)

    def __rshift__(self, n: object) -> SymSet:
        if n != AREA_SHIFT:
            raise SymbolicError("an area code shifted other than back to its pages")
        return self.area

    def __or__(self, tag: object) -> SymCode:
        if isinstance(tag, (int, SymInt)) and not isinstance(tag, bool):
            return SymCode(self.area, self.tag | tag)
        return NotImplemented

    def __and__(self, mask: object) -> Any:
        if mask == TAG_MASK:
            return self.tag
        return NotImplemented

    def _zero(self) -> z3.BoolRef:
        ex = self.area.P.ex
        tag = self.tag.expr if isinstance(self.tag, SymInt) else ex.const(self.tag)
        return z3.And(self.area.is_empty().expr, tag == 0)

    def __eq__(self, other: object) -> Any:
        if isinstance(other, int) and other == 0:
            return SymBool(self.area.P.ex, self._zero())
        return NotImplemented

    def __ne__(self, other: object) -> Any:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else ~eq

    def __bool__(self) -> bool:
        return self.area.P.ex.decide(z3.Not(self._zero()))

    def __repr__(self) -> str:
        return "<symbolic area code>"
