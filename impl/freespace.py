"""Tree operations every design shares: carving a request out of a free tree and coalescing a
range back into a tree.

``alloc_from_tree`` is ``__alloc_vmap_area`` (lowest match, the ``vend`` restriction, ``va_clip``)
and ``merge_or_add_vmap_area`` is the kernel function of that name (coalesce with the address
neighbours, or link a new node).  The arithmetic comes from ``impl.intervals`` so that what the
proofs prove is what runs here.  Callers hold the lock that protects the tree.
"""

from __future__ import annotations

from .errors import InvariantViolation
from .intervals import (
    FitType,
    adjust_search_size,
    merge_ranges,
    nva_start_addr,
    u64,
    va_clip_ranges,
)
from .rbtree import RBTree, VmapArea


def alloc_from_tree(tree: RBTree, size: int, align: int, vstart: int, vend: int,
                    page_size: int) -> tuple[int, FitType] | None:
    """Carve ``size`` bytes from the lowest fitting free block; None if nothing fits.

    Returns the start and the fit type (NE_FIT consumed the CPU's spare node in the kernel;
    callers that model the spare use it)."""
    va = tree.find_vmap_lowest_match(size, align, vstart,
                                     adjust_search_size(size, align, vstart, vend, page_size))
    if va is None:
        return None
    nva = nva_start_addr(va.va_start, size, align, vstart)
    # The "vend" restriction.
    if u64(nva + size) > vend or u64(nva + size) < nva:
        return None
    fit = va_clip(tree, va, nva, size)
    if fit is FitType.NOTHING_FIT:  # WARN_ON_ONCE in the kernel
        return None
    return nva, fit


def va_clip(tree: RBTree, va: VmapArea, nva: int, size: int) -> FitType:
    """Update the free block ``va`` after ``[nva, nva+size)`` was taken from it."""
    fit, rest = va_clip_ranges(va.va_start, va.va_end, nva, size)
    if fit is FitType.FL_FIT_TYPE:
        tree.erase(va)
    elif fit is FitType.LE_FIT_TYPE:
        va.va_start = rest[0][0]
        tree.propagate(va)
    elif fit is FitType.RE_FIT_TYPE:
        va.va_end = rest[0][1]
        tree.propagate(va)
    elif fit is FitType.NE_FIT_TYPE:
        (left_start, left_end), (right_start, _) = rest
        va.va_start = right_start
        tree.propagate(va)
        tree.insert(VmapArea(left_start, left_end))
    return fit


def merge_or_add_vmap_area(tree: RBTree, start: int, end: int, flags: int = 0) -> VmapArea:
    """Insert ``[start, end)`` into ``tree``, merging with an adjacent next and/or previous
    area.  An overlap is the kernel's "vmalloc bug" warning; here it raises."""
    prev, nxt = tree.neighbours(start)
    if (nxt is not None and nxt.va_start < end) or (prev is not None and prev.va_end > start):
        other = nxt if nxt is not None and nxt.va_start < end else prev
        assert other is not None
        raise InvariantViolation(
            "no-overlap",
            f"vmalloc bug: {start:#x}-{end:#x} overlaps with {other.va_start:#x}-{other.va_end:#x}"
            f" in {tree.name}")
    (new_start, new_end), merged_prev, merged_next = merge_ranges(
        prev.range if prev is not None else None, (start, end),
        nxt.range if nxt is not None else None)
    if merged_next and merged_prev:
        assert prev is not None and nxt is not None
        # Unlink the next node before growing the previous one: growing first and unlinking
        # after could leave a rotated-in node's subtree_max_size stale.
        tree.erase(nxt)
        prev.va_end = new_end
        tree.propagate(prev)
        return prev
    if merged_next:
        assert nxt is not None
        nxt.va_start = new_start
        tree.propagate(nxt)
        return nxt
    if merged_prev:
        assert prev is not None
        prev.va_end = new_end
        tree.propagate(prev)
        return prev
    return tree.insert(VmapArea(start, end, flags))
