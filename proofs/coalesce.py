"""Coalescing: freeing a range into the free space keeps it disjoint, non-adjacent and exact.

``merge_or_add_vmap_area`` inserts a freed range between its address-order neighbours ``prev``
and ``next`` and merges it with each one it touches (``merge_ranges`` in ``impl.intervals``).
The free space is a sorted list whose consecutive ranges are separated by a gap (disjoint and
non-adjacent), and that property is local: it holds for the whole list exactly when it holds for
each pair of neighbours.  An insertion changes only ``prev``, ``next`` and the freed range, so the
pairs it can break are those around them; the obligation checks a window of up to five ranges,
``pprev, prev, va, next, nnext`` (the outer ones and the neighbours each present or absent),
which therefore covers free lists of every length.

Claimed, for all 64-bit ranges: the ranges after the insertion are non-empty, in order and
separated by a gap, and an address is in one of them exactly when it was in the freed range or
in one of the free ranges before (nothing lost, nothing made up).

Relies on ``impl.intervals`` (through ``proofs.arith``) and ``proofs.symbolic``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import z3

from impl.intervals import MASK64

from .arith import IMPL, Arith
from .obligation import Obligation, ProofResult, Status
from .render import area
from .symbolic import Executor, SymInt, all_, any_

Range = tuple[SymInt, SymInt]


def _inside(x: SymInt, r: Range) -> z3.BoolRef:
    return all_(r[0] <= x, x < r[1])


def check_merge(a: Arith, timeout: float, shape: tuple[bool, bool, bool, bool]) -> ProofResult:
    """One shape of the window: which of pprev, prev, next, nnext exist."""
    has_pp, has_prev, has_next, has_nn = shape
    ex = Executor(timeout_s=timeout)

    def rng(name: str) -> Range:
        r = (ex.input(f"{name}.va_start"), ex.input(f"{name}.va_end"))
        ex.assume(r[0] < r[1], r[1] <= MASK64)
        return r

    pp = rng("pprev") if has_pp else None
    prev = rng("prev") if has_prev else None
    va = rng("va")
    nxt = rng("next") if has_next else None
    nn = rng("nnext") if has_nn else None
    x = ex.input("x")
    # The free list before: sorted with gaps; the freed range lies between prev and next.
    before = [r for r in (pp, prev, nxt, nn) if r is not None]
    ex.assume(*(before[i][1] < before[i + 1][0] for i in range(len(before) - 1)))
    if prev is not None:
        ex.assume(prev[1] <= va[0])
    if nxt is not None:
        ex.assume(va[1] <= nxt[0])

    def body() -> object:
        merged, merged_prev, merged_next = a.merge_ranges(prev, va, nxt)
        after: list[Range] = [r for r in (pp,) if r is not None]
        if prev is not None and not merged_prev:
            after.append(prev)
        after.append(merged)
        if nxt is not None and not merged_next:
            after.append(nxt)
        if nn is not None:
            after.append(nn)
        was = any_(*(_inside(x, r) for r in [*before, va]))
        now = any_(*(_inside(x, r) for r in after))
        return {"every range non-empty": all_(*(r[0] < r[1] for r in after)),
                "sorted, with a gap between neighbours":
                    all_(*(after[i][1] < after[i + 1][0] for i in range(len(after) - 1))),
                "exactly the union of the free ranges and the freed one": was == now}

    def describe(v: dict[str, int]) -> list[str]:
        def get(name: str, present: bool) -> tuple[int, int] | None:
            return (v[f"{name}.va_start"], v[f"{name}.va_end"]) if present else None
        cprev, cnext = get("prev", has_prev), get("next", has_next)
        cva = (v["va.va_start"], v["va.va_end"])
        merged, mp, mn = a.merge_ranges(cprev, cva, cnext)
        return [f"prev {area(cprev) if cprev else 'none'}, va {area(cva)}, "
                f"next {area(cnext) if cnext else 'none'}",
                f"merge_ranges -> {area(merged)}, merged prev: {mp}, merged next: {mn}"]

    return ex.prove(body, "", describe)


SHAPES = [(pp and p, p, n, nn and n)
          for p, n, pp, nn in itertools.product((False, True), repeat=4)
          if (p or not pp) and (n or not nn)]


def check_coalesce(a: Arith, timeout: float) -> ProofResult:
    paths = checks = 0
    for shape in sorted(set(SHAPES)):
        r = check_merge(a, timeout, shape)
        paths += r.stats.get("paths", 0)
        checks += r.stats.get("checks", 0)
        if r.status is not Status.PROVED:
            names = ("pprev", "prev", "next", "nnext")
            present = ", ".join(n for n, h in zip(names, shape, strict=True) if h) or "none"
            return ProofResult(r.status, f"{r.detail} (neighbours present: {present})",
                               r.model, r.notes, {**r.stats, "paths": paths, "checks": checks})
    return ProofResult.proved("merging a freed range keeps the free list sorted, separated and "
                              "exactly the union, for every neighbourhood shape",
                              paths=paths, checks=checks, shapes=len(set(SHAPES)))


def obligations(a: Arith = IMPL) -> list[Obligation]:
    fn: Callable[[float], ProofResult] = lambda t: check_coalesce(a, t)  # noqa: E731
    return [Obligation("coalesce.merge", "coalesce",
                       "inserting a freed range into disjoint, non-adjacent free ranges yields "
                       "disjoint, non-adjacent ranges covering the union", fn)]
