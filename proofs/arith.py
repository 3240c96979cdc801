"""The arithmetic the obligations run: by default the functions of ``impl.intervals`` themselves.

An ``Arith`` names each function an obligation calls.  ``IMPL`` is the allocator's own; a seeded
bug is ``replace(IMPL, is_within_this_va=broken)``, and the obligation that should catch it runs
unchanged on the broken function.

Relies on ``impl.intervals``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from impl import intervals

Fn = Callable[..., Any]


@dataclass(frozen=True)
class Arith:
    nva_start_addr: Fn = intervals.nva_start_addr
    is_within_this_va: Fn = intervals.is_within_this_va
    classify_va_fit_type: Fn = intervals.classify_va_fit_type
    va_clip_ranges: Fn = intervals.va_clip_ranges
    adjust_search_size: Fn = intervals.adjust_search_size
    search_length: Fn = intervals.search_length
    merge_ranges: Fn = intervals.merge_ranges
    lazy_max_pages: Fn = intervals.lazy_max_pages
    addr_to_node_id: Fn = intervals.addr_to_node_id
    node_scan_order: Fn = intervals.node_scan_order
    encode_vn_id: Fn = intervals.encode_vn_id
    decode_vn_id: Fn = intervals.decode_vn_id
    size_to_va_pool_idx: Fn = intervals.size_to_va_pool_idx


IMPL = Arith()
