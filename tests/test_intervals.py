"""Unit tests of the address arithmetic: each fit type, each coalescing case, the wrap rules."""

from __future__ import annotations

import pytest

from impl.intervals import (
    ALIGN,
    MASK64,
    FitType,
    adjust_search_size,
    classify_va_fit_type,
    decode_vn_id,
    encode_vn_id,
    is_within_this_va,
    lazy_max_pages,
    merge_ranges,
    search_length,
    va_clip_ranges,
)

P = 4096


def test_align_rounds_up_and_wraps_like_c() -> None:
    assert ALIGN(0, P) == 0
    assert ALIGN(1, P) == P
    assert ALIGN(P, P) == P
    assert ALIGN(MASK64 - 10, P) == 0  # wraps past 2**64 as unsigned long does


@pytest.mark.parametrize(("nva", "size", "fit", "rest"), [
    (0x10000, 0x4000, FitType.FL_FIT_TYPE, ()),
    (0x10000, 0x1000, FitType.LE_FIT_TYPE, ((0x11000, 0x14000),)),
    (0x13000, 0x1000, FitType.RE_FIT_TYPE, ((0x10000, 0x13000),)),
    (0x11000, 0x1000, FitType.NE_FIT_TYPE, ((0x10000, 0x11000), (0x12000, 0x14000))),
    (0xF000, 0x1000, FitType.NOTHING_FIT, ((0x10000, 0x14000),)),
    (0x13000, 0x2000, FitType.NOTHING_FIT, ((0x10000, 0x14000),)),
])
def test_each_fit_type(nva: int, size: int, fit: FitType, rest: tuple[tuple[int, int], ...]) -> None:
    assert classify_va_fit_type(0x10000, 0x14000, nva, size) is fit
    assert va_clip_ranges(0x10000, 0x14000, nva, size) == (fit, rest)


def test_is_within_this_va_rejects_wrapping_sum() -> None:
    top = MASK64 + 1 - P
    assert not is_within_this_va(top, MASK64, 2 * P, P, 0)
    # alignment that wraps the candidate start to 0 is rejected by "nva < vstart"
    assert not is_within_this_va(MASK64 - 3 * P, MASK64, P, 1 << 63, MASK64 - 3 * P)
    assert is_within_this_va(0x10000, 0x14000, 0x2000, 0x2000, 0)
    assert not is_within_this_va(0x10000, 0x14000, 0x2000, 0x2000, 0x12001)


def test_search_padding_and_its_exact_range_exception() -> None:
    assert not adjust_search_size(P, P, 0, 1 << 30, P)  # small alignment: no padding
    assert adjust_search_size(P, 4 * P, 0, 1 << 30, P)
    assert not adjust_search_size(4 * P, 4 * P, 0x40000, 0x44000, P)  # exact range
    assert search_length(P, 4 * P, True) == 5 * P - 1
    assert search_length(P, 4 * P, False) == P


@pytest.mark.parametrize(("prev", "nxt", "want", "mp", "mn"), [
    (None, None, (0x2000, 0x3000), False, False),
    ((0x0, 0x2000), None, (0x0, 0x3000), True, False),
    (None, (0x3000, 0x5000), (0x2000, 0x5000), False, True),
    ((0x0, 0x2000), (0x3000, 0x5000), (0x0, 0x5000), True, True),
    ((0x0, 0x1000), (0x4000, 0x5000), (0x2000, 0x3000), False, False),
])
def test_each_coalescing_case(prev: tuple[int, int] | None, nxt: tuple[int, int] | None,
                              want: tuple[int, int], mp: bool, mn: bool) -> None:
    assert merge_ranges(prev, (0x2000, 0x3000), nxt) == (want, mp, mn)


def test_lazy_max_pages_matches_the_kernel_table() -> None:
    assert lazy_max_pages(1) == 8192
    assert lazy_max_pages(32) == 49152
    assert lazy_max_pages(64) == 57344


def test_node_id_encoding_round_trips() -> None:
    for n in (1, 2, 128, 255):
        for i in range(n):
            assert decode_vn_id(encode_vn_id(i, n), n) == i
        assert decode_vn_id(0, n) == n  # "no node"
