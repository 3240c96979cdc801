"""One step of a spec run on a symbolic state: the spec's own step function, every path of it.

A symbolic state has a Z3 variable for every field of every actor (a page mask ranges over the
spec's pages, a counter over ``0 .. COUNTER_MAX``, a lock mask over the spec's locks), named
after the field (``T0.held``, ``free``), so that states built by different executors share
their variables.  ``StepCase`` runs the compiled step of one actor at one position on such a
state (its position fixed) and keeps every path: its condition, and the successor states as
terms, or the exception the spec's code raised on it.

Relies on ``spec`` (compile, masks, protocol) and ``proofs.symbolic``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spec.compile import Spec
from spec.masks import AREA_SHIFT
from spec.protocol import HELD, PC

from .render import Kind
from .symbolic import Executor, PathLimit, SymbolicError, SymInt

State = tuple[Any, ...]
WIDTH = 16
COUNTER_MAX = (1 << 8) - 1


def global_bounds(spec: Spec) -> list[int | tuple[int, ...]]:
    """The largest value of each global field in the symbolic model (a tuple for a field that
    holds a fixed number of masks); every field starts at 0."""
    locks = (1 << len(spec.locks)) - 1
    out: list[int | tuple[int, ...]] = []
    for i, f in enumerate(spec.global_fields):
        if isinstance(f.init, tuple):  # a fixed number of masks (one per zone)
            out.append((spec.all_pages,) * len(f.init))
        else:
            out.append(spec.all_pages if f.owner == "mask" else locks if i == 0
                       else COUNTER_MAX)
    return out


def local_bounds(spec: Spec, k: int) -> list[int | tuple[int, ...]]:
    """The same for the locals of actor ``k`` (its position: its table's last index)."""
    locks = (1 << len(spec.locks)) - 1
    slots = set(spec.slot_index[k].values())
    out: list[int | tuple[int, ...]] = []
    for j in range(len(spec.init[spec.actor_index[k]])):
        f = spec.local_fields[j] if j < len(spec.local_fields) else None
        if j == PC:
            out.append(len(spec.tables[k]) - 1)
        elif j in slots or f is None:
            out.append((spec.all_pages << AREA_SHIFT) | ((1 << AREA_SHIFT) - 1))
        elif isinstance(f.init, tuple):
            out.append((spec.all_pages,) * len(f.init))
        else:
            out.append(spec.all_pages if f.owner == "mask" else locks if j == HELD
                       else COUNTER_MAX)
    return out


def in_model(spec: Spec, s: State) -> bool:
    """Is the concrete state ``s`` one of the symbolic model's (every field in its range)?"""
    def ok(x: Any, hi: int | tuple[int, ...]) -> bool:
        if isinstance(hi, tuple):
            return (isinstance(x, tuple) and len(x) == len(hi)
                    and all(ok(y, h) for y, h in zip(x, hi, strict=True)))
        return isinstance(x, int) and 0 <= x <= hi
    if not all(ok(x, hi) for x, hi in zip(s[:spec.G], global_bounds(spec), strict=True)):
        return False
    return all(ok(x, hi) for k, a in enumerate(spec.actor_index)
               for x, hi in zip(s[a], local_bounds(spec, k), strict=True))


def symbolic_state(ex: Executor, spec: Spec, k_step: int, pc: int) -> State:
    """A state whose every field is a variable named after it, except actor ``k_step``'s
    position, which is ``pc`` (``k_step`` -1: every position a variable)."""
    def var(name: str, hi: int | tuple[int, ...]) -> Any:
        if isinstance(hi, tuple):
            return tuple(ex.input(f"{name}[{n}]", Kind.COUNT, 0, h) for n, h in enumerate(hi))
        return ex.input(name, Kind.COUNT, 0, hi)
    g = [var(f.name, hi) for f, hi in zip(spec.global_fields, global_bounds(spec), strict=True)]
    actors: list[Any] = []
    for k in range(len(spec.actor_names)):
        who = spec.actor_names[k]
        names = {j: f"slot {n}" for n, j in spec.slot_index[k].items()}
        t: list[Any] = []
        for j, hi in enumerate(local_bounds(spec, k)):
            if j == PC and k == k_step:
                t.append(pc)
                continue
            t.append(var(f"{who}.{names.get(j) or spec.local_fields[j].name}", hi))
        actors.append(tuple(t))
    return tuple(g) + tuple(actors)


def concrete_state(spec: Spec, sym: State, values: dict[str, int]) -> State:
    def val(x: Any) -> Any:
        if isinstance(x, SymInt):
            name = str(x.expr)
            return values[name]
        if isinstance(x, tuple):
            return tuple(val(y) for y in x)
        return x
    n = spec.G
    return tuple(val(x) for x in sym[:n]) + tuple(tuple(val(x) for x in t) for t in sym[n:])


class Raised:
    """What a path of a step returns when the spec's code raised on it."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc


class StepCase:
    """One step (actor ``k`` at position ``p``) explored once on a symbolic state whose
    variables are the generic state's, with ``k``'s position fixed to ``p``."""

    def __init__(self, spec: Spec, k: int, p: int,
                 step: Callable[[State, int, list[State]], None], timeout: float) -> None:
        self.spec, self.k, self.p, self.step = spec, k, p, step
        self.a = spec.actor_index[k]
        self.ex = Executor(width=WIDTH, timeout_s=timeout, incremental=True)
        self.s = symbolic_state(self.ex, spec, k, p)
        self.paths = self.ex.explore(runner(step, self.s, self.a))


def runner(step: Callable[[State, int, list[State]], None], s: State, a: int
           ) -> Callable[[], Any]:
    """What ``Executor.explore`` runs for one step from ``s``: its successors, or ``Raised``."""
    def run() -> Any:
        out: list[State] = []
        try:
            # Fresh wrappers on every run: spec code memoises by value (the fit cache is
            # keyed by the free mask); a memo filled on another path must not answer here.
            step(fresh(s), a, out)
        except (SymbolicError, PathLimit):
            raise
        except Exception as exc:  # noqa: BLE001 - an assertion or a crash of the spec's code
            # On a path the invariant rules out this is harmless; on one it allows, it is
            # a counterexample to induction.
            return Raised(exc)
        return out
    return run


def fresh(s: State) -> State:
    """New wrappers for every symbolic value (``renewed``): spec code memoises by value (by
    identity, for symbolic ones), and a memo filled on one path must not answer on another."""
    def copy(x: Any) -> Any:
        if isinstance(x, int):
            return x
        if isinstance(x, tuple):
            return tuple(copy(y) for y in x)
        renew = getattr(x, "renewed", None)
        return renew() if renew is not None else x
    return tuple(copy(x) for x in s)


