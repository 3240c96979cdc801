"""Fit and clip: carving an allocation out of a free block, for every 64-bit input.

``impl.freespace.alloc_from_tree`` (``__alloc_vmap_area``) goes from a free block to an
allocation in three steps, each a function of ``impl.intervals`` run here on symbolic values:
``is_within_this_va`` (the fit check ``find_vmap_lowest_match`` applies to each candidate), the
``vend`` restriction (``nva + size > vend`` fails) and ``va_clip`` (``va_clip_ranges``: what is
left of the block).  Before descending into a subtree the search compares its
``subtree_max_size`` with a length padded by ``align - 1`` (``adjust_search_size``,
``search_length``).  ``alloc_outcome`` is those steps on a one-block tree; that it agrees with
``alloc_from_tree`` on a real tree is tested (``tests/test_proofs_agreement.py``): bit-blasting
the red-black tree's own code as well made the proof twenty times slower.

Inputs range over every ``unsigned long``: a free block ``va_start < va_end`` (not necessarily
page aligned: the kernel seeds the free space with ``[1, ULONG_MAX)``), a size ``>= 1``, a
power-of-two alignment up to ``2^63`` and a range ``vstart < vend``.

One corner the proofs found: with ``vstart == 0`` and a block near the top of the address space,
``ALIGN`` wraps to 0, which passes the ``nva < vstart`` check, so ``is_within_this_va`` accepts a
block it does not fit and ``va_clip`` then answers NOTHING_FIT (the kernel's WARN_ON_ONCE).
``fit.within`` proves this is the only way to get there and that it loses nothing: no aligned
fit exists anywhere above such a block, so the search stopping there misses no allocation.

Relies on ``impl.intervals`` (through ``proofs.arith``) and ``proofs.symbolic``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import z3

from impl.config import PAGE_SIZE
from impl.intervals import MASK64, FitType, u64

from .arith import IMPL, Arith
from .obligation import Obligation, ProofResult
from .render import Kind, area, pages
from .symbolic import Executor, SymInt, all_, any_, formula, implies

# What each fit type leaves of the block, as va_clip does it: how many free-tree nodes remain
# (FL frees the node, LE/RE shrink it, NE shrinks it and inserts the new node ``lva``).
NODES_LEFT = {FitType.FL_FIT_TYPE: 0, FitType.LE_FIT_TYPE: 1, FitType.RE_FIT_TYPE: 1,
              FitType.NE_FIT_TYPE: 2}


@dataclass(frozen=True)
class Request:
    va_start: SymInt
    va_end: SymInt
    size: SymInt
    align: SymInt
    vstart: SymInt
    vend: SymInt


def _request(ex: Executor) -> Request:
    r = Request(ex.input("va_start"), ex.input("va_end"), ex.input("size", Kind.SIZE, lo=1),
                ex.input("align", Kind.ALIGN, lo=1, hi=1 << 63), ex.input("vstart"), ex.input("vend"))
    ex.assume(r.va_start < r.va_end, r.vstart < r.vend, (r.align & (r.align - 1)) == 0)
    return r


def _aligned(x: SymInt, align: SymInt) -> z3.BoolRef:
    return formula((x & (align - 1)) == 0)


def _replay(a: Arith) -> Callable[[dict[str, int]], list[str]]:
    """What the concrete functions do on a counterexample."""

    def describe(v: dict[str, int]) -> list[str]:
        args = (v["va_start"], v["va_end"], v["size"], v["align"], v["vstart"])
        ok = a.is_within_this_va(*args)
        nva = a.nva_start_addr(v["va_start"], v["size"], v["align"], v["vstart"])
        lines = [f"block {area((v['va_start'], v['va_end']))}, request {pages(v['size'])}",
                 f"is_within_this_va -> {ok}, nva_start_addr = {nva:#x}"]
        if ok:
            lines.append(f"allocation [{nva:#x}, {nva + v['size']:#x})"
                         + ("  (nva + size wraps past 2^64)" if nva + v["size"] > MASK64 else ""))
            fit, rest = a.va_clip_ranges(v["va_start"], v["va_end"], nva, v["size"])
            left = ", ".join(area(r) for r in rest) or "nothing"
            lines.append(f"va_clip -> {fit.name}, leaving {left}")
        return lines

    return describe


def check_within(a: Arith, timeout: float) -> ProofResult:
    ex = Executor(timeout_s=timeout)
    r = _request(ex)
    y = ex.input("y")  # any start address at or above the block

    def body() -> object:
        if not a.is_within_this_va(r.va_start, r.va_end, r.size, r.align, r.vstart):
            return True
        nva = a.nva_start_addr(r.va_start, r.size, r.align, r.vstart)
        end = nva + r.size  # exact
        fits_at_y = all_(y >= r.va_start, _aligned(y, r.align), y + r.size <= MASK64)
        top_hole = all_(r.vstart == 0, z3.Not(fits_at_y))
        return {"aligned": _aligned(nva, r.align), "no wrap past 2^64": end <= MASK64,
                "ends inside the block": end <= r.va_end, "at or above vstart": r.vstart <= nva,
                "starts inside the block (or nothing fits above it)":
                    any_(r.va_start <= nva, top_hole)}

    return ex.prove(body, "an accepted block holds the aligned request without wrap, at or "
                    "above vstart, except at the top with vstart == 0 where nothing fits",
                    _replay(a))


def alloc_outcome(a: Arith, va_start: Any, va_end: Any, size: Any, align: Any, vstart: Any,
                  vend: Any) -> tuple[Any, FitType, tuple[tuple[Any, Any], ...]] | None:
    """``alloc_from_tree`` on a tree holding the one block ``[va_start, va_end)``, in the
    arithmetic alone: the fit check, the ``vend`` restriction, ``va_clip``.  Its agreement with
    ``impl.freespace.alloc_from_tree`` on a real tree is tested on random and edge inputs."""
    if not a.is_within_this_va(va_start, va_end, size, align, vstart):
        return None
    nva = a.nva_start_addr(va_start, size, align, vstart)
    if u64(nva + size) > vend or u64(nva + size) < nva:
        return None
    fit, rest = a.va_clip_ranges(va_start, va_end, nva, size)
    if fit is FitType.NOTHING_FIT:  # WARN_ON_ONCE in the kernel
        return None
    return nva, fit, rest


def check_alloc(a: Arith, timeout: float) -> ProofResult:
    ex = Executor(timeout_s=timeout)
    r = _request(ex)
    x = ex.input("x")  # any address: the partition must hold at every one

    def body() -> object:
        got = alloc_outcome(a, r.va_start, r.va_end, r.size, r.align, r.vstart, r.vend)
        if got is None:
            return True  # no allocation: fit.complete says when that may happen
        nva, fit, rest = got
        end = nva + r.size  # exact: no wrap is part of the claim
        in_block = all_(r.va_start <= x, x < r.va_end)
        in_alloc = all_(nva <= x, x < end)
        in_rest = any_(*(all_(s <= x, x < e) for s, e in rest))
        ordered = all_(*(s < e for s, e in rest),
                       *(rest[i][1] < rest[i + 1][0] for i in range(len(rest) - 1)))
        starts, ends = formula(nva == r.va_start), formula(end == r.va_end)
        geometry = {
            FitType.FL_FIT_TYPE: z3.And(starts, ends),
            FitType.LE_FIT_TYPE: z3.And(starts, z3.Not(ends)),
            FitType.RE_FIT_TYPE: z3.And(z3.Not(starts), ends),
            FitType.NE_FIT_TYPE: z3.And(z3.Not(starts), z3.Not(ends)),
        }[fit]
        return {"aligned": _aligned(nva, r.align), "no wrap past 2^64": end <= MASK64,
                "inside the block": all_(r.va_start <= nva, end <= r.va_end),
                "inside [vstart, vend)": all_(r.vstart <= nva, end <= r.vend),
                "what is left is exactly the block minus the allocation":
                    z3.And(in_block, z3.Not(in_alloc)) == in_rest,
                "what is left is non-empty areas in address order": ordered,
                f"{fit.name} matches where the allocation sits": geometry,
                f"{fit.name} leaves {NODES_LEFT[fit]} node(s)": len(rest) == NODES_LEFT[fit]}

    return ex.prove(body, "an allocation is aligned, inside block and range, without wrap, "
                    "and va_clip leaves exactly the block minus the allocation in the kernel's "
                    "nodes", _replay(a))


def check_complete(a: Arith, timeout: float) -> ProofResult:
    ex = Executor(timeout_s=timeout)
    r = _request(ex)
    y = ex.input("y")  # an address where the request does fit
    ex.assume(y >= r.va_start, y >= r.vstart, _aligned(y, r.align), y + r.size <= r.va_end)

    def body() -> object:
        ok = a.is_within_this_va(r.va_start, r.va_end, r.size, r.align, r.vstart)
        nva = a.nva_start_addr(r.va_start, r.size, r.align, r.vstart)
        return {"the block is accepted": ok, "at the lowest aligned fit": nva <= y}

    return ex.prove(body, "whenever an aligned fit exists in the block, the fit check accepts "
                    "it and picks the lowest one", _replay(a))


def check_padding(a: Arith, timeout: float, page_size: int = PAGE_SIZE) -> ProofResult:
    ex = Executor(timeout_s=timeout)
    r = _request(ex)
    y = ex.input("y")  # where the request fits: aligned, inside the block and the range
    ex.assume(y >= r.va_start, y >= r.vstart, _aligned(y, r.align),
              y + r.size <= r.va_end, y + r.size <= r.vend)

    def body() -> object:
        adjust = a.adjust_search_size(r.size, r.align, r.vstart, r.vend, page_size)
        length = a.search_length(r.size, r.align, adjust)
        exact = r.vstart + r.size == r.vend
        return {"the search length is at most the block's size":
                implies(any_(r.align <= page_size, exact), length <= r.va_end - r.va_start)}

    return ex.prove(body, "the search length never exceeds a block that fits an exact range or "
                    "a request aligned to at most a page", _replay(a))


def obligations(a: Arith = IMPL) -> list[Obligation]:
    def ob(name: str, statement: str, fn: Callable[[Arith, float], ProofResult]) -> Obligation:
        return Obligation(f"fit.{name}", "fit", statement, lambda t: fn(a, t))

    return [
        ob("within", "the fit check accepts only blocks that hold the aligned request without "
           "wrap (at the top with vstart == 0: only where nothing fits anyway)", check_within),
        ob("alloc", "an allocation from a block is aligned, inside block and range, does not "
           "wrap, and va_clip leaves exactly block minus allocation in the kernel's nodes",
           check_alloc),
        ob("complete", "the fit check accepts every block that has an aligned fit, at the "
           "lowest such address", check_complete),
        ob("padding", "the search-size padding never rejects a block that fits an exact range",
           check_padding),
    ]
