"""Values printed in the allocator's own terms: addresses in hex, sizes in pages.

A counterexample is read by someone holding ``mm/vmalloc.c``; ``0xffffc90000003000`` and
"3 pages" mean something to them, 18446683600570023936 does not.

Relies on ``impl.config`` for PAGE_SIZE.
"""

from __future__ import annotations

import enum

from impl.config import PAGE_SIZE


class Kind(enum.Enum):
    """How an input of an obligation is printed."""

    ADDR = "addr"      # a virtual address: hex
    SIZE = "size"      # a length in bytes: pages (and hex when not a page multiple)
    ALIGN = "align"    # a power-of-two alignment: hex and pages or a power of two
    COUNT = "count"    # a CPU or node count, an index: decimal
    FLAGS = "flags"    # va->flags: hex


def pages(n: int, page_size: int = PAGE_SIZE) -> str:
    if n % page_size == 0:
        p = n // page_size
        return f"{p} page" + ("" if p == 1 else "s")
    return f"{n:#x} bytes ({n / page_size:.3g} pages)"


def render(value: int, kind: Kind, page_size: int = PAGE_SIZE) -> str:
    if kind is Kind.ADDR:
        return f"{value:#x}"
    if kind is Kind.SIZE:
        return pages(value, page_size)
    if kind is Kind.ALIGN:
        if value > 0 and value & (value - 1) == 0:
            shift = value.bit_length() - 1
            extra = pages(value, page_size) if value % page_size == 0 else f"2^{shift}"
            return f"{value:#x} ({extra})"
        return f"{value:#x} (not a power of two)"
    if kind is Kind.FLAGS:
        return f"{value:#x}"
    return str(value)


def area(r: tuple[int, int], page_size: int = PAGE_SIZE) -> str:
    """``[start, end)`` in hex with its length in pages."""
    s, e = r
    length = e - s
    size = pages(length, page_size) if length >= 0 else f"negative length {length:#x}"
    return f"[{s:#x}, {e:#x}) {size}"
