"""Address arithmetic of the vmap-area allocator, as pure functions on unsigned 64-bit values.

Every function here mirrors a piece of ``mm/vmalloc.c`` with its C semantics: values are
``unsigned long`` on a 64-bit machine, so sums wrap modulo 2**64 and are rejected exactly where
the kernel rejects them (``nva + size < nva`` in ``is_within_this_va``).  The trees and designs
call these functions and ``proofs/`` proves properties of these same functions, so the proofs
are about the code that runs.  Areas are half-open ``[va_start, va_end)`` in bytes.
"""

from __future__ import annotations

import enum

MASK64 = (1 << 64) - 1
MAX_VA_SIZE_PAGES = 256  # per-node pool size classes (6.9+)
BITS_PER_BYTE = 8
MASK32 = (1 << 32) - 1


def u64(x: int) -> int:
    """Wrap to ``unsigned long``."""
    return x & MASK64


def ALIGN(x: int, a: int) -> int:  # noqa: N802 - kernel macro name
    """``ALIGN(x, a)`` for a power-of-two ``a``: round up, wrapping past 2**64 as C does."""
    return (x + a - 1) & ~(a - 1) & MASK64


def is_power_of_2(x: int) -> bool:
    return x > 0 and x & (x - 1) == 0


class FitType(enum.Enum):
    """How a request sits inside a free block (``enum fit_type``)."""

    NOTHING_FIT = 0
    FL_FIT_TYPE = 1  # full fit: the block is consumed
    LE_FIT_TYPE = 2  # left edge fit: the block keeps its right part
    RE_FIT_TYPE = 3  # right edge fit: the block keeps its left part
    NE_FIT_TYPE = 4  # no edge fit: the block splits in two, one new node


def nva_start_addr(va_start: int, size: int, align: int, vstart: int) -> int:
    """The candidate start inside a block: the aligned larger of the block start and vstart."""
    del size
    return ALIGN(va_start, align) if va_start > vstart else ALIGN(vstart, align)


def is_within_this_va(va_start: int, va_end: int, size: int, align: int, vstart: int) -> bool:
    """Does ``size`` bytes aligned to ``align`` fit in the block at or above ``vstart``?"""
    nva = nva_start_addr(va_start, size, align, vstart)
    # Either the size or the alignment can overflow the sum.
    if u64(nva + size) < nva or nva < vstart:
        return False
    return u64(nva + size) <= va_end


def classify_va_fit_type(va_start: int, va_end: int, nva: int, size: int) -> FitType:
    end = u64(nva + size)
    if nva < va_start or end > va_end:
        return FitType.NOTHING_FIT
    if va_start == nva:
        return FitType.FL_FIT_TYPE if va_end == end else FitType.LE_FIT_TYPE
    if va_end == end:
        return FitType.RE_FIT_TYPE
    return FitType.NE_FIT_TYPE


Range = tuple[int, int]


def va_clip_ranges(va_start: int, va_end: int, nva: int, size: int) -> tuple[FitType, tuple[Range, ...]]:
    """What ``va_clip`` leaves of the block ``[va_start, va_end)`` after carving ``[nva, nva+size)``.

    Returns the fit type and the remaining free ranges, in address order: none for FL, the block's
    right part for LE, its left part for RE, both for NE (the left one is the new node ``lva``).
    NOTHING_FIT leaves the block untouched and is an error for the caller.
    """
    fit = classify_va_fit_type(va_start, va_end, nva, size)
    end = u64(nva + size)
    if fit is FitType.FL_FIT_TYPE:
        return fit, ()
    if fit is FitType.LE_FIT_TYPE:
        return fit, ((end, va_end),)
    if fit is FitType.RE_FIT_TYPE:
        return fit, ((va_start, nva),)
    if fit is FitType.NE_FIT_TYPE:
        return fit, ((va_start, nva), (end, va_end))
    return fit, ((va_start, va_end),)


def adjust_search_size(size: int, align: int, vstart: int, vend: int, page_size: int) -> bool:
    """Whether ``find_vmap_lowest_match`` pads the search length by ``align - 1``.

    Not when ``align <= PAGE_SIZE`` (every block start is page aligned anyway), nor when the
    request is exactly the range ``[vstart, vend)`` with a large alignment: padding would make
    such a request fail although the range itself fits.
    """
    if align <= page_size:
        return False
    return u64(vend - vstart) != size


def search_length(size: int, align: int, adjust: bool) -> int:
    return u64(size + align - 1) if adjust else size


def merge_ranges(prev: Range | None, va: Range, next_: Range | None) -> tuple[Range, bool, bool]:
    """Coalescing of ``merge_or_add_vmap_area``: the range that results from inserting ``va``
    between its address-order neighbours, and whether it absorbed ``next_`` and ``prev``.

    Overlap is the caller's error ("vmalloc bug: ... overlaps with ...") and is not handled here.
    """
    start, end = va
    merged_next = next_ is not None and next_[0] == end
    if merged_next:
        assert next_ is not None
        end = next_[1]
    merged_prev = prev is not None and prev[1] == start
    if merged_prev:
        assert prev is not None
        start = prev[0]
    return (start, end), merged_prev, merged_next


def fls(x: int) -> int:
    """Find last set bit, 1-based; ``fls(0) == 0``."""
    return x.bit_length()


def lazy_max_pages(nr_cpus: int, page_size: int = 4096) -> int:
    """``lazy_max_pages() = fls(num_online_cpus()) * (32 MiB / PAGE_SIZE)``."""
    return fls(nr_cpus) * ((32 << 20) // page_size)


def addr_to_node_id(addr: int, zone_size: int, nr_nodes: int) -> int:
    """``(addr / vmap_zone_size) % nr_vmap_nodes``: the node that owns a busy area's start."""
    return (addr // zone_size) % nr_nodes


def node_scan_order(start_id: int, nr_nodes: int) -> list[int]:
    """The nodes ``find_vmap_area`` visits: from ``start_id`` round the ring once."""
    return [(start_id + k) % nr_nodes for k in range(nr_nodes)]


def encode_vn_id(node_id: int, nr_nodes: int) -> int:
    """Node id stored in ``va->flags``: ``(id + 1) << 8``; 0 means "no node"."""
    if node_id < nr_nodes:
        return ((node_id + 1) << BITS_PER_BYTE) & MASK32
    return 0


def decode_vn_id(flags: int, nr_nodes: int) -> int:
    """Inverse of ``encode_vn_id`` in 32-bit unsigned arithmetic; ``nr_nodes`` when not encoded."""
    node_id = ((flags >> BITS_PER_BYTE) - 1) & MASK32
    return node_id if node_id < nr_nodes else nr_nodes


def size_to_va_pool_idx(size: int, page_size: int) -> int | None:
    """Size class of a pooled area: ``(size - 1) / PAGE_SIZE`` if below ``MAX_VA_SIZE_PAGES``."""
    idx = (size - 1) // page_size
    return idx if idx < MAX_VA_SIZE_PAGES else None
