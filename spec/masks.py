"""Page masks: the spec's representation of address ranges.

The spec is page-granular: page ``p`` of the managed range is bit ``p`` of a Python int, and a
set of pages (an area, the free space, a lazy list) is the OR of its bits.  The kernel's free
tree always coalesces neighbours (``merge_or_add_vmap_area``), so the free space is exactly the
maximal runs of its mask; the same holds for the pre-6.9 purge list.  Where the kernel keeps
areas whole (6.9 lazy lists and pools) the spec uses *area codes*: ``mask << 8 | tag`` with a
small tag (the node id + 1, or 0), so ``code >> AREA_SHIFT`` recovers the pages.

Relies on nothing but Python ints; everything here is pure and memoisable.  A symbolic set of
pages (``proofs.symset``) answers the functions that pick or name pages itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

AREA_SHIFT = 8


def mask_of(start: int, pages: int) -> int:
    """The pages ``[start, start + pages)``."""
    return ((1 << pages) - 1) << start


def low_page(mask: int) -> int:
    """The lowest page of a non-empty mask (an area's ``va_start`` in pages)."""
    if not isinstance(mask, int) and hasattr(mask, "low_page"):
        return mask.low_page()  # a page set of the proofs
    return (mask & -mask).bit_length() - 1


def high_page(mask: int) -> int:
    """The highest page of a non-empty mask (an area's last page)."""
    if not isinstance(mask, int) and hasattr(mask, "high_page"):
        return mask.high_page()
    return mask.bit_length() - 1


def runs(mask: int) -> Iterator[tuple[int, int]]:
    """Maximal runs of set bits as ``(start, pages)``, lowest first."""
    while mask:
        start = low_page(mask)
        shifted = mask >> start
        length = (~shifted & (shifted + 1)).bit_length() - 1
        yield start, length
        mask &= ~mask_of(start, length)


def lowest_run(mask: int) -> int:
    """The mask of the lowest maximal run of a non-empty mask."""
    if not isinstance(mask, int) and hasattr(mask, "lowest_run"):
        return mask.lowest_run()
    start = low_page(mask)
    shifted = mask >> start
    length = (~shifted & (shifted + 1)).bit_length() - 1
    return mask_of(start, length)


def largest_run(mask: int) -> int:
    """The length in pages of the longest run of a mask (0 when empty)."""
    if not isinstance(mask, int) and hasattr(mask, "largest_run"):
        return mask.largest_run()
    return max((n for _, n in runs(mask)), default=0)


def one_run(mask: int) -> bool:
    """Is the mask a single run (or empty)?  Adding its lowest bit carries through all of it."""
    if not isinstance(mask, int) and hasattr(mask, "one_run"):
        return mask.one_run()
    return mask & (mask + (mask & -mask)) == 0


def carve_from_block(merged: int, chunk: int, pages: int, align: int) -> int:
    """``va_alloc`` after a pre-fetch: the area of ``pages`` pages at the aligned start of the
    run of ``merged`` that holds ``chunk``, or 0 when it does not fit that run."""
    if not isinstance(merged, int) and hasattr(merged, "carve_from_block"):
        return merged.carve_from_block(chunk, pages, align)
    block = next(mask_of(s, k) for s, k in runs(merged) if mask_of(s, k) & chunk)
    area = mask_of(align_up(low_page(block), align), pages)
    return 0 if area & ~block else area


def zone_of(page: int, zone_pages: int, zones: int) -> int:
    """``addr_to_cpu`` in pages: zones of ``zone_pages`` pages dealt round ``zones`` CPUs."""
    if not isinstance(page, int) and hasattr(page, "zone_of"):
        return page.zone_of(zones)  # a page of the proofs: its zone under any zone map
    return (page // zone_pages) % zones


def zone_masks(zone_of: Callable[[int], int], zones: int, pages: int) -> list[int]:
    """The pages of each zone, as masks over ``pages`` pages."""
    return [sum(1 << p for p in range(pages) if zone_of(p) == z) for z in range(zones)]


def starts_outside(mask: int, zone: int, zone_mask: int) -> int:
    """The pages where a run of ``mask`` starts outside ``zone`` (whose pages are
    ``zone_mask``)."""
    if not isinstance(mask, int) and hasattr(mask, "starts_outside"):
        return mask.starts_outside(zone)
    return mask & ~(mask << 1) & ~zone_mask


def fmt(mask: int) -> str:
    """``[0,2) [5,6)``: a mask as the half-open page ranges of its runs."""
    if not isinstance(mask, int) and hasattr(mask, "low_page"):
        return format(mask)
    if not mask:
        return "-"
    return " ".join(f"[{s},{s + n})" for s, n in runs(mask))


def area_code(mask: int, tag: int = 0) -> int:
    return mask << AREA_SHIFT | tag


def code_mask(code: int) -> int:
    return code >> AREA_SHIFT


def code_tag(code: int) -> int:
    return code & ((1 << AREA_SHIFT) - 1)


def fmt_codes(codes: tuple[int, ...], tag_name: str = "vn") -> str:
    if not codes:
        return "-"
    out = []
    for c in codes:
        tag = code_tag(c)
        out.append(fmt(code_mask(c)) + (f"@{tag_name}{tag - 1}" if tag else ""))
    return " ".join(out)


def align_up(p: int, align: int) -> int:
    return (p + align - 1) // align * align


def fit_choices(free: int, pages: int, align: int, vstart: int, vend: int) -> tuple[int, ...]:
    """The outcomes ``__alloc_vmap_area`` may have on the free space ``free``: area masks, and
    0 for a failure (the kernel returns ``vend``).

    With ``align`` of one page (or a request for exactly ``[vstart, vend)``) the kernel's
    ``find_vmap_lowest_match`` returns the lowest block with room and the area starts at
    ``nva = ALIGN(max(va_start, vstart), align)`` inside it: the lowest fit, one outcome.  With a
    larger alignment the search is pruned by the padded length ``pages + align - 1``
    (``adjust_search_size``), so which block it returns depends on the shape of the tree; the
    spec then allows the ``nva`` of every block with room from the lowest up to the first block
    at least the padded length long (the search cannot pass that one), and a failure when no
    such block exists or a candidate ends beyond ``vend``.
    """
    if not isinstance(free, int) and hasattr(free, "fit_choices"):
        return free.fit_choices(pages, align, vstart, vend)
    exact = vend - vstart == pages
    padded = pages + align - 1 if align > 1 and not exact else pages
    out: list[int] = []
    for start, length in runs(free):
        end = start + length
        nva = align_up(max(start, vstart), align)
        if nva + pages <= end:
            if nva + pages > vend:
                # Beyond vend: this and every higher candidate fail.
                out.append(0)
                return tuple(out)
            out.append(mask_of(nva, pages))
            if padded == pages:
                return tuple(out)
        if padded != pages and length >= padded and start >= vstart:
            return tuple(out)
    if padded != pages or not out:
        out.append(0)
    return tuple(out)


def popcount(mask: int) -> int:
    return mask.bit_count()
