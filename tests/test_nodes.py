"""The ``nodes`` design (Linux 6.9+): lookup across nodes, pools, node ids, decay, invariants.

Paths are checked by the locks they take (a runtime that logs acquisitions) and by the
ownership map (``snapshot``), never by timing.
"""

from __future__ import annotations

import pytest

from impl.config import VmapConfig
from impl.designs.nodes import NodesDesign
from impl.errors import InvariantViolation, UnknownAddress
from impl.intervals import addr_to_node_id, encode_vn_id
from impl.rbtree import VmapArea
from impl.runtime import LockKind
from impl.runtimes.plain import PlainLock, PlainRuntime

P = 4096


class LoggingLock(PlainLock):
    __slots__ = ()

    def acquire(self) -> None:
        rt = self._rt
        assert isinstance(rt, LockLogRuntime)
        rt.log.append(self.name)
        super().acquire()


class LockLogRuntime(PlainRuntime):
    """A plain runtime that records the name of every lock acquired, in order."""

    def __init__(self, cpu: int = 0) -> None:
        super().__init__(cpu)
        self.log: list[str] = []

    def lock(self, name: str, lock_class: str | None = None,
             kind: LockKind = LockKind.SPIN) -> PlainLock:
        return LoggingLock(self, name, lock_class or name, kind)

    def take_log(self) -> list[str]:
        out, self.log = self.log, []
        return out


def make(pages: int = 64, cpus: int = 4, nodes: int | None = None, zone_pages: int = 1,
         lazy_max: int = 1000) -> tuple[NodesDesign, LockLogRuntime]:
    rt = LockLogRuntime()
    cfg = VmapConfig(pages=pages, nr_cpus=cpus, nr_nodes=nodes, zone_pages=zone_pages,
                     lazy_max=lazy_max)
    return NodesDesign(rt, cfg), rt


def node_of(d: NodesDesign, addr: int) -> int:
    return addr_to_node_id(addr, d.config.vmap_zone_size, d.nr_vmap_nodes)


# ---------------------------------------------------------------------- lookup across nodes
def test_area_larger_than_a_zone_is_found_by_an_interior_address_of_another_node() -> None:
    d, rt = make(cpus=4, zone_pages=1)
    a = d.alloc(6 * P)
    home = node_of(d, a)
    assert d.snapshot().areas[f"busy:node{home}"] == ((a, a + 6 * P),)
    others = [a + k * P + 123 for k in range(1, 6) if node_of(d, a + k * P) != home]
    assert others, "the area must span zones of other nodes"
    for addr in others:
        rt.take_log()
        assert d.find(addr) == (a, a + 6 * P)
        # The scan starts at the interior address's node and walks forward to the area's node.
        start = node_of(d, addr)
        want = [f"vn[{(start + k) % 4}].busy.lock" for k in range((home - start) % 4 + 1)]
        assert rt.take_log() == want
    d.check_invariants()


def test_interior_free_is_rejected_wherever_the_interior_maps() -> None:
    d, _ = make(cpus=4, zone_pages=1)
    a = d.alloc(5 * P)
    before = d.snapshot()
    for k in range(1, 5):
        with pytest.raises(UnknownAddress, match="inside the busy area"):
            d.free(a + k * P)
    assert d.snapshot() == before
    d.free(a)
    with pytest.raises(UnknownAddress, match="already freed"):
        d.free(a)
    d.purge()  # the area goes to its node's pool: neither busy nor lazy any more
    with pytest.raises(UnknownAddress, match="nonexistent"):
        d.free(a)
    d.check_invariants()


def test_find_of_an_unmapped_address_visits_every_node_once() -> None:
    d, rt = make(cpus=3, zone_pages=1)
    rt.take_log()
    assert d.find(d.config.start + 7 * P) is None
    assert sorted(rt.take_log()) == [f"vn[{i}].busy.lock" for i in range(3)]


# ---------------------------------------------------------------------- pools
def test_pool_hit_reuses_the_area_without_the_global_lock() -> None:
    d, rt = make(cpus=2, zone_pages=16)
    rt.set_cpu(1)
    a = d.alloc(2 * P)
    d.free(a)
    d.purge()
    assert d.snapshot().areas["pool:node1:1"] == ((a, a + 2 * P),)
    rt.take_log()
    assert d.alloc(2 * P) == a
    log = rt.take_log()
    assert "free_vmap_area_lock" not in log
    assert log == ["vn[1].pool_lock", f"vn[{node_of(d, a)}].busy.lock"]
    d.check_invariants()


def test_pool_is_per_node_and_per_size_class() -> None:
    d, rt = make(cpus=2, zone_pages=16)
    rt.set_cpu(1)
    a = d.alloc(2 * P)
    d.free(a)
    d.purge()
    rt.set_cpu(0)  # node 0's pool is empty: the global tree serves it
    rt.take_log()
    b = d.alloc(2 * P)
    assert b != a and "free_vmap_area_lock" in rt.take_log()
    rt.set_cpu(1)  # another size class misses as well
    c = d.alloc(3 * P)
    assert c not in (a, b) and "free_vmap_area_lock" in rt.take_log()
    assert "pool:node1:1" in d.snapshot().areas
    d.check_invariants()


def test_misaligned_first_entry_rotates_to_the_tail_and_misses() -> None:
    d, rt = make(pages=64, cpus=2, zone_pages=16)
    rt.set_cpu(1)
    addrs = [d.alloc(P) for _ in range(3)]
    for a in addrs:
        d.free(a)
    d.purge()
    head = list(d.pool[1].heads[0])
    first = head[0].va_start
    align = 2 * P if first % (2 * P) else 4 * P
    while first % align == 0:
        align *= 2
    got = d.alloc(P, align)
    assert got not in addrs  # a miss: served by the global tree
    assert [va.va_start for va in d.pool[1].heads[0]] == \
        [va.va_start for va in head[1:]] + [first]
    d.check_invariants()


def test_node_id_is_encoded_in_flags_and_the_free_returns_to_that_node() -> None:
    d, rt = make(pages=64, cpus=3, zone_pages=1)
    rt.set_cpu(2)
    a = next(x for x in (d.alloc(P) for _ in range(6)) if node_of(d, x) != 2)
    home = node_of(d, a)
    va = d.busy_root[home].find_exact(a)
    assert va is not None and va.flags == encode_vn_id(2, 3) == 3 << 8
    rt.set_cpu(0)
    d.free(a)
    snap = d.snapshot()
    assert (a, a + P) in snap.areas["lazy:node2"]
    assert (a, a + P) not in snap.areas[f"lazy:node{home}"]
    d.purge()
    assert (a, a + P) in d.snapshot().areas["pool:node2:0"]
    d.check_invariants()


def test_other_ranges_bypass_the_pools_and_carry_no_node_id() -> None:
    d, rt = make(pages=64, cpus=2, zone_pages=16)
    rt.set_cpu(1)
    a = d.alloc(P)
    d.free(a)
    d.purge()
    pooled = d.snapshot().areas["pool:node1:0"]
    start = d.config.start
    b = d.alloc(P, P, start, start + 32 * P)
    assert d.snapshot().areas["pool:node1:0"] == pooled
    va = d.busy_root[node_of(d, b)].find_exact(b)
    assert va is not None and va.flags == 0
    d.free(b)
    assert (b, b + P) in d.snapshot().areas[f"lazy:node{node_of(d, b)}"]
    d.purge()  # no node id: back to the global free tree, not a pool
    assert not any(b == s for s, _ in d.snapshot().by_kind("pool"))
    d.check_invariants()


def test_one_node_never_pools() -> None:
    d, _ = make(cpus=1)
    assert d.nr_vmap_nodes == 1
    a = d.alloc(P)
    d.free(a)
    d.purge()
    assert d.snapshot().by_kind("pool") == []
    d.check_invariants()


# ---------------------------------------------------------------------- purge
def pooled(d: NodesDesign, node: int, idx: int) -> int:
    return len(d.snapshot().areas.get(f"pool:node{node}:{idx}", ()))


def fill_pool(d: NodesDesign, rt: PlainRuntime, cpu: int, count: int) -> None:
    rt.set_cpu(cpu)
    addrs = [d.alloc(P) for _ in range(count)]
    for a in addrs:
        d.free(a)
    d.purge()


def test_decay_moves_a_quarter_of_a_pool_to_the_free_tree() -> None:
    d, rt = make(pages=128, cpus=2, zone_pages=16)
    fill_pool(d, rt, 1, 8)
    assert pooled(d, 1, 0) == 8
    d.purge()  # nothing lazy, but every purge pass decays the pools
    assert pooled(d, 1, 0) == 6
    d.purge()
    assert pooled(d, 1, 0) == 5
    d.check_invariants()


def test_decay_of_fewer_than_four_areas_empties_the_pool_as_6_9_does() -> None:
    d, rt = make(pages=64, cpus=2, zone_pages=16)
    fill_pool(d, rt, 1, 3)
    assert pooled(d, 1, 0) == 3
    d.purge()
    assert pooled(d, 1, 0) == 0
    d.check_invariants()


def test_drain_runs_when_the_lazy_counter_passes_the_threshold() -> None:
    d, rt = make(pages=64, cpus=2, zone_pages=16, lazy_max=2)
    rt.set_cpu(1)
    addrs = [d.alloc(P) for _ in range(3)]
    for a in addrs[:2]:
        d.free(a)
    assert d.vmap_lazy_nr.read() == 2 and d.purges == 0
    d.free(addrs[2])  # 3 > lazy_max: the drain runs one pass
    assert d.vmap_lazy_nr.read() == 0 and d.purges == 1
    assert pooled(d, 1, 0) == 3
    d.check_invariants()


def test_allocation_failure_decays_every_pool_and_skips_populating() -> None:
    d, rt = make(pages=16, cpus=2, zone_pages=16)
    fill_pool(d, rt, 1, 10)
    rt.set_cpu(0)
    b = d.alloc(P)
    d.free(b)  # lazy, with node id 0
    assert pooled(d, 1, 0) >= 7
    a = d.alloc(12 * P)  # only fits once the pools and the lazy area are back in the free tree
    assert d.retries == 1
    snap = d.snapshot()
    assert snap.by_kind("pool") == [] and snap.by_kind("lazy") == []
    assert snap.by_kind("busy") == [(a, a + 12 * P)]
    d.check_invariants()


# ---------------------------------------------------------------------- invariants
def test_invariants_catch_a_busy_area_in_the_wrong_node() -> None:
    d, _ = make(cpus=3, zone_pages=1)
    a = d.alloc(P)
    home = node_of(d, a)
    va = d.busy_root[home].find_exact(a)
    assert va is not None
    d.busy_root[home].erase(va)
    d.busy_root[(home + 1) % 3].insert(va)
    with pytest.raises(InvariantViolation, match="busy placement"):
        d.check_invariants()


def test_invariants_catch_a_lazy_area_in_the_wrong_node() -> None:
    d, rt = make(cpus=3, zone_pages=1)
    rt.set_cpu(1)
    a = d.alloc(P)
    d.free(a)
    va = d.lazy_root[1].find_exact(a)
    assert va is not None
    d.lazy_root[1].erase(va)
    d.lazy_root[2].insert(va)
    with pytest.raises(InvariantViolation, match="lazy placement"):
        d.check_invariants()


def test_invariants_catch_a_pool_entry_of_the_wrong_size() -> None:
    d, _ = make(cpus=2)
    root = d.free_vmap_area_root
    va = root.first()
    assert va is not None
    start = va.va_start
    root.erase(va)
    root.insert(VmapArea(start + 2 * P, va.va_end))
    d.pool[0].add_va(0, VmapArea(start, start + 2 * P))  # two pages in the one-page class
    with pytest.raises(InvariantViolation, match="size class"):
        d.check_invariants()


def test_invariants_catch_an_area_both_pooled_and_free() -> None:
    d, _ = make(cpus=2)
    start = d.config.start
    d.pool[1].add_va(0, VmapArea(start, start + P))  # still in the free tree as well
    with pytest.raises(InvariantViolation, match="single-owner"):
        d.check_invariants()


def test_lock_names_and_classes_are_the_kernel_ones() -> None:
    d, _ = make(cpus=2)
    got = {(lock.name, lock.lock_class, lock.kind) for lock in d.all_locks()}
    spin, mutex = LockKind.SPIN, LockKind.MUTEX
    want = {("free_vmap_area_lock", "free_vmap_area_lock", spin),
            ("vmap_purge_lock", "vmap_purge_lock", mutex)}
    for i in range(2):
        want |= {(f"vn[{i}].busy.lock", "vmap_node.busy.lock", spin),
                 (f"vn[{i}].lazy.lock", "vmap_node.lazy.lock", spin),
                 (f"vn[{i}].pool_lock", "vmap_node.pool_lock", spin)}
    assert got == want
    assert d.vmap_lazy_nr.name == "vmap_lazy_nr"
    assert d.drain_vmap_work.name == "drain_vmap_work"
