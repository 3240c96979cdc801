"""Every obligation catches its seeded bug: run on a broken function, it reports Counterexample.

Each mutant is the implementation with one realistic mistake (a dropped wrap check, an
off-by-one, an inverted nesting edge).  The obligation runs unchanged on it; a verdict other
than Counterexample means the obligation is too weak to matter.  The counterexample must also
be printed in the allocator's terms.  The correct code's verdicts are in
``tests/test_proofs_cli.py`` and the CI proof job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from impl import intervals as iv
from impl.config import PAGE_SIZE
from impl.intervals import FitType
from proofs import coalesce, fit, lazy, lock_order, nodes
from proofs.arith import IMPL, Arith
from proofs.lock_order import KERNEL_NESTING, OrderEdge, find_ranking, spec_edges
from proofs.obligation import ProofResult, Status

TIMEOUT = 30.0


# ---------------------------------------------------------------------------- mutants
def within_no_wrap_check(va_start: int, va_end: int, size: int, align: int,
                         vstart: int) -> bool:
    """is_within_this_va without "nva + size < nva": a size that wraps past 2^64 fits."""
    nva = iv.nva_start_addr(va_start, size, align, vstart)
    if nva < vstart:
        return False
    return iv.u64(nva + size) <= va_end


def within_strict_end(va_start: int, va_end: int, size: int, align: int, vstart: int) -> bool:
    """is_within_this_va with "<" for "<=": an exact fit at the block's end is refused."""
    nva = iv.nva_start_addr(va_start, size, align, vstart)
    if iv.u64(nva + size) < nva or nva < vstart:
        return False
    return iv.u64(nva + size) < va_end


def clip_ne_short(va_start: int, va_end: int, nva: int,
                  size: int) -> tuple[FitType, tuple[tuple[int, int], ...]]:
    """va_clip whose new left node ``lva`` ends one page early: a page is lost."""
    fit_type, rest = iv.va_clip_ranges(va_start, va_end, nva, size)
    if fit_type is FitType.NE_FIT_TYPE:
        (ls, le), right = rest
        return fit_type, ((ls, le - PAGE_SIZE), right)
    return fit_type, rest


def adjust_always(size: int, align: int, vstart: int, vend: int, page_size: int) -> bool:
    """adjust_search_size without the exact-range exception."""
    return align > page_size


def merge_off_by_one(prev: tuple[int, int] | None, va: tuple[int, int],
                     next_: tuple[int, int] | None) -> tuple[tuple[int, int], bool, bool]:
    """Coalescing that also merges a next neighbour one byte away."""
    start, end = va
    merged_next = next_ is not None and next_[0] <= end + 1
    if merged_next:
        assert next_ is not None
        end = next_[1]
    merged_prev = prev is not None and prev[1] == start
    if merged_prev:
        assert prev is not None
        start = prev[0]
    return (start, end), merged_prev, merged_next


def node_by_mask(addr: int, zone_size: int, nr_nodes: int) -> int:
    """A mask with nr_nodes instead of the modulo (right only for some powers of two)."""
    return (addr // zone_size) & nr_nodes


def scan_one_short(start_id: int, nr_nodes: int) -> list[int]:
    return [(start_id + k) % nr_nodes for k in range(nr_nodes - 1)]


def encode_without_offset(node_id: int, nr_nodes: int) -> int:
    """encode_vn_id without the +1: node 0 encodes as "no node"."""
    return (node_id << 8) & iv.MASK32 if node_id < nr_nodes else 0


def pool_idx_by_pages(size: int, page_size: int) -> int | None:
    idx = size // page_size
    return idx if idx < iv.MAX_VA_SIZE_PAGES else None


def lazy_ilog2(nr_cpus: int, page_size: int = PAGE_SIZE) -> int:
    """ilog2 for fls: one CPU gets a threshold of 0 pages."""
    return (nr_cpus.bit_length() - 1) * ((32 << 20) // page_size)


def lazy_per_cpu(nr_cpus: int, page_size: int = PAGE_SIZE) -> int:
    """The threshold split between the CPUs: shrinks as CPUs are added."""
    return iv.fls(nr_cpus) * ((32 << 20) // page_size) // nr_cpus


def _assert_counterexample(r: ProofResult) -> None:
    assert r.status is Status.COUNTEREXAMPLE, r.text()
    text = r.text()
    assert r.model or r.notes
    assert "counterexample" in text


SEEDED: list[tuple[str, Callable[[Arith, float], ProofResult], Arith]] = [
    ("fit.within", fit.check_within, replace(IMPL, is_within_this_va=within_no_wrap_check)),
    ("fit.alloc", fit.check_alloc, replace(IMPL, va_clip_ranges=clip_ne_short)),
    ("fit.complete", fit.check_complete, replace(IMPL, is_within_this_va=within_strict_end)),
    ("fit.padding", fit.check_padding, replace(IMPL, adjust_search_size=adjust_always)),
    ("coalesce.merge", coalesce.check_coalesce, replace(IMPL, merge_ranges=merge_off_by_one)),
    ("nodes.addr-to-node", nodes.check_addr_to_node, replace(IMPL, addr_to_node_id=node_by_mask)),
    ("nodes.scan", nodes.check_scan, replace(IMPL, node_scan_order=scan_one_short)),
    ("nodes.vn-id", nodes.check_vn_id, replace(IMPL, encode_vn_id=encode_without_offset)),
    ("nodes.pool-index", nodes.check_pool_index, replace(IMPL, size_to_va_pool_idx=pool_idx_by_pages)),
    ("lazy.bounds", lazy.check_bounds, replace(IMPL, lazy_max_pages=lazy_ilog2)),
    ("lazy.monotone", lazy.check_monotone, replace(IMPL, lazy_max_pages=lazy_per_cpu)),
]


@pytest.mark.parametrize(("name", "check", "arith"), SEEDED, ids=[s[0] for s in SEEDED])
def test_obligation_catches_its_seeded_bug(name: str, check: Callable[[Arith, float], ProofResult],
                                           arith: Arith) -> None:
    _assert_counterexample(check(arith, TIMEOUT))


def test_every_arithmetic_obligation_has_a_seeded_bug() -> None:
    from proofs.runner import arithmetic_obligations
    assert {o.name for o in arithmetic_obligations()} == {s[0] for s in SEEDED}


def test_counterexample_is_printed_in_the_allocators_terms() -> None:
    r = fit.check_within(replace(IMPL, is_within_this_va=within_no_wrap_check), TIMEOUT)
    model = dict(r.model)
    assert model["va_start"].startswith("0x") and model["vstart"].startswith("0x")
    assert "page" in model["size"] or "bytes" in model["size"]
    assert any("wraps past 2^64" in n for n in r.notes), r.notes


def test_wrap_counterexample_really_wraps() -> None:
    r = fit.check_within(replace(IMPL, is_within_this_va=within_no_wrap_check), TIMEOUT)
    v = {k: int(val.split()[0], 0) for k, val in r.model if val.startswith("0x")}
    size_text = dict(r.model)["size"]
    size = int(size_text.split()[0], 0) if size_text.startswith("0x") else \
        int(size_text.split()[0]) * PAGE_SIZE
    nva = iv.nva_start_addr(v["va_start"], size, v["align"], v["vstart"])
    assert within_no_wrap_check(v["va_start"], v["va_end"], size, v["align"], v["vstart"])
    assert nva + size > iv.MASK64  # the accepted allocation runs past the top


# ---------------------------------------------------------------------------- lock order
def test_inverted_nesting_edge_is_a_cycle_from_the_unsat_core() -> None:
    inverted = OrderEdge("purge_vmap_area_lock", "vmap_area_lock", "seeded: inverted")
    r = find_ranking([*KERNEL_NESTING, inverted], TIMEOUT)
    assert r.status is Status.COUNTEREXAMPLE
    assert "vmap_area_lock -> purge_vmap_area_lock" in r.detail or \
        "purge_vmap_area_lock -> vmap_area_lock" in r.detail
    assert len(r.notes) == 2 and any("seeded: inverted" in n for n in r.notes)
    assert all("vmap_purge_lock" not in n.split("(")[0] for n in r.notes)  # not in the cycle


def test_kernel_edges_have_a_ranking() -> None:
    r = find_ranking(list(KERNEL_NESTING), TIMEOUT)
    assert r.status is Status.PROVED
    assert r.detail == "ranking: vmap_purge_lock < vmap_area_lock < purge_vmap_area_lock < " \
        "free_vmap_area_lock" or r.detail.startswith("ranking: vmap_purge_lock")
    ranks = dict(r.model)
    for e in KERNEL_NESTING:
        assert int(ranks[e.held]) < int(ranks[e.acquired])


def test_same_class_nesting_is_a_cycle_of_one_edge() -> None:
    r = find_ranking([OrderEdge("vmap_node.busy.lock", "vmap_node.busy.lock", "scan")], TIMEOUT)
    assert r.status is Status.COUNTEREXAMPLE
    assert r.detail.endswith("vmap_node.busy.lock -> vmap_node.busy.lock")


def test_spec_mutant_abba_has_no_ranking() -> None:
    r = find_ranking(spec_edges("global-abba"), TIMEOUT)
    assert r.status is Status.COUNTEREXAMPLE
    assert {"vmap_area_lock", "purge_vmap_area_lock"} <= set(r.detail.split(": ", 1)[1].replace(
        "lock-order cycle ", "").split(" -> "))


@pytest.mark.parametrize("spec", ["global", "nodes", "percpu"])
def test_spec_tables_have_a_ranking(spec: str) -> None:
    edges = spec_edges(spec)
    assert edges and all(e.source.startswith(f"spec {spec}") for e in edges)
    assert lock_order.find_ranking(edges, TIMEOUT).status is Status.PROVED
