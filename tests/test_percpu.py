"""The ``percpu`` design (2023 series v1): pre-fetched chunks, placement by address, drains.

Paths are checked by the locks they take (a runtime that logs acquisitions) and by the
ownership map (``snapshot``), never by timing.
"""

from __future__ import annotations

import pytest

from impl.config import VmapConfig
from impl.designs.percpu import PercpuDesign
from impl.errors import InvariantViolation, UnknownAddress
from impl.intervals import addr_to_node_id
from impl.rbtree import VmapArea
from impl.runtime import LockKind
from tests.test_nodes import LockLogRuntime

P = 4096


def make(pages: int = 64, cpus: int = 2, zone_pages: int = 8,
         lazy_max: int = 1000) -> tuple[PercpuDesign, LockLogRuntime]:
    rt = LockLogRuntime()
    cfg = VmapConfig(pages=pages, nr_cpus=cpus, zone_pages=zone_pages, lazy_max=lazy_max)
    return PercpuDesign(rt, cfg), rt


def zone_of(d: PercpuDesign, addr: int) -> int:
    return addr_to_node_id(addr, d.cvz_size, d.config.nr_cpus)


def cache(d: PercpuDesign, z: int) -> tuple[tuple[int, int], ...]:
    return d.snapshot().areas[f"cache:zone{z}"]


# ---------------------------------------------------------------------- pre-fetch
def test_first_allocation_prefetches_a_chunk_and_the_next_one_needs_no_global_lock() -> None:
    d, rt = make()
    start = d.config.start
    rt.take_log()
    a = d.alloc(P)
    assert a == start
    assert cache(d, 0) == ((start + P, start + 8 * P),)
    log = rt.take_log()
    assert log.count("free_vmap_area_lock") == 1  # the chunk, not the request
    b = d.alloc(P)
    assert b == start + P
    log = rt.take_log()
    assert "free_vmap_area_lock" not in log
    assert log[0] == "zone[0].free.lock"
    assert d.fills == 1
    d.check_invariants()


def test_busy_areas_live_in_the_zone_of_their_start_not_of_their_cpu() -> None:
    d, rt = make(cpus=2, zone_pages=8)
    rt.set_cpu(0)
    d.alloc(P)  # CPU 0 takes the chunk [0, 8)
    rt.set_cpu(1)
    a = d.alloc(P)  # CPU 1 takes [8, 16): zone 1
    b = d.alloc(2 * P)
    rt.set_cpu(0)
    c = d.alloc(P)
    snap = d.snapshot()
    for addr in (a, b, c):
        key = f"busy:zone{zone_of(d, addr)}"
        assert any(s == addr for s, _ in snap.areas[key])
    assert zone_of(d, a) == 1 and zone_of(d, c) == 0
    d.check_invariants()


def test_chunks_are_not_zone_aligned_so_areas_cross_zones() -> None:
    d, rt = make(pages=64, cpus=4, zone_pages=4)
    start = d.config.start
    d.alloc(P, P, start, start + P)  # shift the free space by a page
    a = d.alloc(P)  # CPU 0's chunk is [1, 5): pages 1-3 map to zone 0, page 4 to zone 1
    assert cache(d, 0) == ((a + P, a + 4 * P),)
    d.alloc(P)
    d.alloc(P)
    last = d.alloc(P)
    assert zone_of(d, last) == 1
    assert any(s == last for s, _ in d.snapshot().areas["busy:zone1"])
    d.check_invariants()


def test_large_requests_and_other_ranges_use_the_global_tree() -> None:
    d, rt = make(cpus=2, zone_pages=8)
    start = d.config.start
    rt.take_log()
    d.alloc(3 * P)  # 8 // 3 < 3 requests per chunk
    d.alloc(P, 4 * P)  # extra = align: 8 // (1 + 4) < 3
    d.alloc(P, P, start, start + 32 * P)
    assert cache(d, 0) == () and d.fills == 0
    assert "zone[0].free.lock" not in rt.take_log()
    d.check_invariants()


def test_below_the_low_watermark_a_new_chunk_is_prefetched_and_merged() -> None:
    d, _ = make(cpus=2, zone_pages=16)
    d.alloc(P)
    d.alloc(4 * P)
    d.alloc(4 * P)
    a = d.alloc(5 * P)
    assert cache(d, 0) == ((a + 5 * P, a + 7 * P),)
    b = d.alloc(3 * P)  # 2 pages left < 4: pre-fetch; the new chunk merges with the rest
    assert d.fills == 2 and b == a + 5 * P
    assert cache(d, 0) == ((b + 3 * P, b + 18 * P),)
    d.check_invariants()


def test_a_zone_with_enough_left_but_no_fit_falls_back_without_prefetch() -> None:
    d, _ = make(cpus=2, zone_pages=30)
    d.alloc(P)
    x = d.alloc(4 * P)
    d.alloc(P)
    d.free(x)
    d.purge()  # v1: a purge with lazy areas drops every cache
    assert cache(d, 0) == ()
    d.alloc(P)  # new chunk of 30 pages
    d.alloc(9 * P)
    d.alloc(9 * P)
    left = cache(d, 0)
    assert left and left[0][1] - left[0][0] == 11 * P
    d.alloc(10 * P, 8 * P)  # 30 // 18 < 3: global; and the cache stays as it is
    assert cache(d, 0) == left and d.fills == 2
    d.check_invariants()


def test_a_concurrent_prefetch_makes_the_other_thread_use_the_global_tree() -> None:
    d, _ = make(cpus=2, zone_pages=8)
    d.fill_in_progress[0].set(1)  # another thread is pre-fetching for zone 0
    a = d.alloc(P)
    assert cache(d, 0) == () and d.fills == 0
    assert d.fill_in_progress[0].read() != 0  # the loser does not clear the owner's flag
    d.fill_in_progress[0].set(0)
    b = d.alloc(P)
    assert d.fills == 1 and b != a
    assert d.fill_in_progress[0].read() == 0
    d.check_invariants()


def test_one_cpu_disables_the_caches() -> None:
    d, _ = make(cpus=1)
    a = d.alloc(P)
    d.free(a)
    assert d.snapshot().by_kind("cache") == [] and d.fills == 0
    d.check_invariants()


# ---------------------------------------------------------------------- free and purge
def test_free_goes_to_the_lazy_tree_of_the_start_zone_and_merges() -> None:
    d, rt = make(cpus=2, zone_pages=8)
    addrs = [d.alloc(P) for _ in range(3)]
    rt.set_cpu(1)
    for a in addrs:
        d.free(a)
    z = zone_of(d, addrs[0])
    assert d.snapshot().areas[f"lazy:zone{z}"] == ((addrs[0], addrs[2] + P),)
    assert d.vmap_lazy_nr.read() == 3
    d.check_invariants()


def test_purge_returns_lazy_areas_and_chunks_to_the_global_tree() -> None:
    d, rt = make(pages=64, cpus=2, zone_pages=8)
    a = d.alloc(P)
    rt.set_cpu(1)
    b = d.alloc(2 * P)
    d.free(a)
    d.purge()
    snap = d.snapshot()
    assert snap.by_kind("cache") == [] and snap.by_kind("lazy") == []
    assert snap.by_kind("busy") == [(b, b + 2 * P)]
    assert d.vmap_lazy_nr.read() == 0
    d.check_invariants()


def test_purge_with_nothing_lazy_keeps_the_caches_as_v1_does() -> None:
    d, _ = make()
    d.alloc(P)
    held = cache(d, 0)
    d.purge()
    assert cache(d, 0) == held
    d.check_invariants()


def test_allocation_failure_drops_other_cpus_caches_and_succeeds() -> None:
    d, rt = make(pages=16, cpus=2, zone_pages=8)
    rt.set_cpu(0)
    d.alloc(P)
    rt.set_cpu(1)
    d.alloc(P)  # the two chunks take the whole range
    assert d.snapshot().by_kind("free") == []
    rt.set_cpu(0)
    a = d.alloc(7 * P)  # fits only in a dropped chunk
    assert d.retries == 1 and d.snapshot().by_kind("cache") == []
    assert d.find(a + 6 * P) == (a, a + 7 * P)
    d.check_invariants()


def test_drain_runs_one_pass_over_the_threshold() -> None:
    d, _ = make(cpus=2, lazy_max=1)
    a, b = d.alloc(P), d.alloc(P)
    d.free(a)
    assert d.purges == 0
    d.free(b)
    assert d.purges == 1 and d.vmap_lazy_nr.read() == 0
    d.check_invariants()


def test_interior_address_of_an_area_spanning_zones() -> None:
    d, _ = make(pages=64, cpus=4, zone_pages=1)
    a = d.alloc(5 * P)  # too large for a 1-page chunk: global
    for k in range(5):
        assert d.find(a + k * P + 5) == (a, a + 5 * P)
    before = d.snapshot()
    with pytest.raises(UnknownAddress, match="inside the busy area"):
        d.free(a + 3 * P)
    assert d.snapshot() == before
    d.free(a)
    with pytest.raises(UnknownAddress, match="already freed"):
        d.free(a)
    d.check_invariants()


# ---------------------------------------------------------------------- invariants
def test_invariants_catch_a_busy_area_in_the_wrong_zone() -> None:
    d, _ = make(cpus=2, zone_pages=1)
    a = d.alloc(P, P, d.config.start, d.config.end - P)
    z = zone_of(d, a)
    va = d.busy_root[z].find_exact(a)
    assert va is not None
    d.busy_root[z].erase(va)
    d.busy_root[1 - z].insert(va)
    with pytest.raises(InvariantViolation, match="busy placement"):
        d.check_invariants()


def test_invariants_catch_a_cached_block_that_is_also_busy() -> None:
    d, _ = make()
    a = d.alloc(P)
    d.zone_free_root[1].insert(VmapArea(a, a + P))
    with pytest.raises(InvariantViolation, match="single-owner"):
        d.check_invariants()


def test_invariants_catch_uncoalesced_cache_blocks() -> None:
    d, _ = make()
    d.alloc(P)
    root = d.zone_free_root[0]
    va = root.first()
    assert va is not None
    end = va.va_end
    va.va_end -= P
    root.propagate(va)
    root.insert(VmapArea(end - P, end))
    with pytest.raises(InvariantViolation, match="coalesced"):
        d.check_invariants()


def test_lock_names_and_classes_follow_the_series() -> None:
    d, _ = make(cpus=2)
    got = {(lock.name, lock.lock_class, lock.kind) for lock in d.all_locks()}
    spin, mutex = LockKind.SPIN, LockKind.MUTEX
    want = {("free_vmap_area_lock", "free_vmap_area_lock", spin),
            ("vmap_purge_lock", "vmap_purge_lock", mutex)}
    for z in range(2):
        want |= {(f"zone[{z}].free.lock", "cpu_vmap_zone.free.lock", spin),
                 (f"zone[{z}].busy.lock", "cpu_vmap_zone.busy.lock", spin),
                 (f"zone[{z}].lazy.lock", "cpu_vmap_zone.lazy.lock", spin)}
    assert got == want
