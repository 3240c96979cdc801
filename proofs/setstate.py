"""A spec's states over page sets of the whole address space, and facts evaluated on them.

The page-set proof (``proofs.unbounded``) runs a spec's own tables and checks on states whose
page masks are ``proofs.symset`` sets: this module builds those states (every field a variable
named after it, so states built here share their variables), turns a fact into a formula on
one, says which mined facts mean something over the whole address space, and prints a state
from a solver's model in the spec's terms.

Relies on ``spec`` (compile, protocol), ``proofs.facts`` (the ``Fact`` type),
``proofs.houdini`` (``truth``, ``at_position``), ``proofs.stepcase`` (``fresh``),
``proofs.symbolic`` and ``proofs.symset``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import z3

from spec.compile import Spec
from spec.protocol import HELD, PC

from .facts import Fact
from .houdini import at_position, truth
from .render import Kind
from .stepcase import fresh
from .symbolic import Executor, SymbolicError, SymInt
from .symset import MAX_PAGES, Pages, SymCode, SymSet

State = tuple[Any, ...]
WIDTH = 64


# ---------------------------------------------------------------------------- states
class SetStates:
    """Symbolic states of ``spec`` over page sets, their variables named after the fields (so
    every state built here shares them)."""

    def __init__(self, spec: Spec, timeout: float) -> None:
        self.spec = spec
        self.ex = Executor(width=WIDTH, timeout_s=timeout)
        self.ex.prune = False  # branches are decided by the queries, not while exploring
        self.P = Pages(self.ex, spec.all_pages)
        self.n_locks = (1 << len(spec.locks)) - 1

    def _num(self, name: str, hi: int) -> SymInt:
        return self.ex.input(name, Kind.COUNT, 0, hi)

    def _area(self, name: str) -> SymCode:
        lo = self._num(f"{name}.start", MAX_PAGES - 1)
        n = self.P.count(f"{name}.pages", 0)
        return SymCode(self.P.area(name, lo, n), self._num(f"{name}.tag", 255))

    def _field(self, name: str, f: Any) -> Any:
        if isinstance(f.init, tuple) and f.show == "masks":  # one mask per zone
            return tuple(self.P.input(f"{name}[{i}]") for i in range(len(f.init)))
        if f.owner == "codes" or isinstance(f.init, tuple):
            raise NotImplementedError(f"spec {self.spec.name}: field {f.name!r} holds a list of "
                                      "varying length, which page sets do not model yet")
        if f.owner == "mask":
            return self.P.input(name)
        return self.P.count(name)  # a counter: any integer

    def state(self, k_step: int = -1, pc: int = 0) -> State:
        """Every field a variable, except actor ``k_step``'s position (``pc``)."""
        spec = self.spec
        g: list[Any] = [self._num(spec.global_fields[0].name, self.n_locks)]
        g += [self._field(f.name, f) for f in spec.global_fields[1:]]
        actors: list[Any] = []
        for k, a in enumerate(spec.actor_index):
            who = spec.actor_names[k]
            slots = {j: n for n, j in spec.slot_index[k].items()}
            t: list[Any] = []
            for j in range(len(spec.init[a])):
                if j == PC:
                    t.append(pc if k == k_step else
                             self._num(f"{who}.pc", len(spec.tables[k]) - 1))
                elif j in slots:
                    t.append(self._area(f"{who}.slot {slots[j]}"))
                elif j == HELD:
                    t.append(self._num(f"{who}.held", self.n_locks))
                else:
                    t.append(self._field(f"{who}.{spec.local_fields[j].name}",
                                         spec.local_fields[j]))
            actors.append(tuple(t))
        return tuple(g) + tuple(actors)

    def initial(self) -> State:
        """The spec's initial state with its whole range free: the managed pages, any number."""
        spec = self.spec
        g = [self.P.managed if f.owner == "mask" and f.init == spec.all_pages else v
             for f, v in zip(spec.global_fields, spec.init[: spec.G], strict=True)]
        return tuple(g) + spec.init[spec.G:]


# ---------------------------------------------------------------------------- facts
def base_facts(spec: Spec) -> list[Fact]:
    """The spec's own invariants: its ownership rules and its design invariants."""
    everything = frozenset({(-2, 0)})
    out = [Fact("single owner, conservation and lock exclusion", None, None, everything,
                spec.owned_once, base=True)]
    for name, make in spec.invariant_defs:
        out.append(Fact(name, None, None, everything, _passes(make(spec)), base=True))
    return out


def _passes(check: Callable[[State], str | None]) -> Callable[[State], bool]:
    return lambda s: check(s) is None


def formula_of(ex: Executor, f: Fact, s: State, spec: Spec) -> z3.BoolRef:
    """``f`` on ``s`` as one formula (guarded by the actor's position when it is symbolic)."""
    return at_position(f, s, spec, lambda: truth(ex, lambda: _as_truth(f.test(fresh(s)))))


def _as_truth(v: Any) -> Any:
    return v != 0 if isinstance(v, (SymInt, SymSet)) else v


def expressible(facts: Sequence[Fact], states: SetStates) -> tuple[list[Fact], list[Fact]]:
    """The facts that mean something over the whole address space, and those that name pages
    of the bounded instance (a constant mask, an area's lowest page as a bit)."""
    g = states.state()
    keep, gone = [], []
    for f in facts:
        try:
            formula_of(states.ex, f, g, states.spec)
        except (SymbolicError, TypeError, AttributeError):
            gone.append(f)
            continue
        keep.append(f)
    return keep, gone


def page_sets(xs: Sequence[Any]) -> list[SymSet]:
    """Every page set in ``xs`` (states, fields, area codes)."""
    out: list[SymSet] = []
    for x in xs:
        if isinstance(x, SymSet):
            out.append(x)
        elif isinstance(x, SymCode):
            out.append(x.area)
        elif isinstance(x, tuple):
            out += page_sets(x)
    return out


def describe(spec: Spec, P: Pages, m: z3.ModelRef, s: State,
             sizes: dict[int, int] | None = None) -> dict[str, str]:
    """The state ``s`` in model ``m``: the managed range's size, counters as numbers, page sets
    by size (from ``sizes``, by the id of the set's term, where given), areas by size and
    first page, positions with their text."""
    known = sizes or {}

    def size(arr: z3.ArrayRef) -> int | None:
        if arr.get_id() in known:
            return known[arr.get_id()]
        n = m.eval(P.size(arr), True)
        return n.as_long() if isinstance(n, z3.IntNumRef) else None

    def val(x: Any) -> str:
        if isinstance(x, SymInt):
            v = m.eval(x.expr, model_completion=True)
            return str(v.as_long()) if isinstance(v, (z3.BitVecNumRef, z3.IntNumRef)) else str(v)
        if isinstance(x, SymCode):
            a = x.area
            if a.lo is not None:
                lo = m.eval(a.lo.expr, True)
                n = size(a.arr)
                if not isinstance(lo, z3.BitVecNumRef) or n is None:
                    return "some pages"
                rng = f"{_pages(n)} from page {lo.as_long()}" if n else "-"
                return f"{rng} tag {val(x.tag)}"
            return val(a)
        if isinstance(x, SymSet):
            n = size(x.arr)
            if n is None:
                return "-" if z3.is_true(m.eval(x.arr == P.empty.arr, True)) else "some pages"
            return _pages(n) if n else "-"
        if isinstance(x, tuple):
            return "(" + ", ".join(val(y) for y in x) + ")"
        return str(x)

    # The managed range first: the owners' sizes add up to it.
    out = {"managed": val(P.managed)}
    out.update((f.name, val(v)) for f, v in zip(spec.global_fields, s[: spec.G], strict=True))
    for k, a in enumerate(spec.actor_index):
        who = spec.actor_names[k]
        names = {j: f"slot {n}" for n, j in spec.slot_index[k].items()}
        for j, x in enumerate(s[a]):
            name = names.get(j) or spec.local_fields[j].name
            if j == PC:
                pc = x if isinstance(x, int) else int(val(x))
                out[f"{who}.pc"] = f"{pc} {spec.pos_text[k][pc]!r}"
            else:
                out[f"{who}.{name}"] = val(x)
    return out


def _pages(n: int) -> str:
    return f"{n} page" if n == 1 else f"{n} pages"

