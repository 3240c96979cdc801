"""What the ``nodes`` and ``percpu`` designs share: busy and lazy structures split into shards.

Both contention fixes split the 6.1-6.8 busy tree and purge list into shards, each an
``rb_list`` (tree + spinlock): a ``vmap_node`` in Linux 6.9, a ``cpu_vmap_zone`` in the 2023
series.  An address maps to a shard by ``addr_to_node_id = (addr / zone_size) % nr_shards``
(``addr_to_cvz`` in the series), and a busy area lives in the shard of its ``va_start``.  An area
larger than a zone spans several zones, so a lookup by an interior address starts at that
address's shard and scans the others round the ring (``find_vmap_area`` /
``find_unlink_vmap_area``), one busy lock at a time.

What stays global, as in the kernel: the augmented free tree under ``free_vmap_area_lock`` (with
each CPU's spare node ``ne_fit_preload_node``), the ``vmap_purge_lock`` mutex that serialises
purges, the atomic ``vmap_lazy_nr`` and the one ``drain_vmap_work``, which runs a single purge
pass (the series removed the 6.1-6.8 repeat loop).  Allocation falls back to the global free
tree; if that fails, it purges once under the mutex (``reclaim_and_purge_vmap_areas``) and
retries, then fails with the kernel's message.

Areas handed back to the global free tree in one lock hold are joined first when they touch
(``reclaim_list_global``): the same tree afterwards, fewer tree operations.

The kernel peeks at some structures without their lock before locking them (``RB_EMPTY_ROOT``,
``list_empty``).  Those peeks are benign races in C; here the check is made under the lock, so a
lockset analysis sees only the locking the kernel relies on.

Subclasses provide the fast path, the lazy insert and the purge; this module provides the
shards, the global path with its retry, lookup, the bad-free diagnosis, the snapshot and the
invariants.  Relies on ``impl.designs.base`` (interface, areas in hand), ``impl.rbtree``,
``impl.freespace`` and ``impl.intervals``.
"""

from __future__ import annotations

from functools import partial
from typing import ClassVar

from .config import VmapConfig
from .designs.base import Range, Snapshot
from .designs.free_space import GlobalFreeSpace
from .errors import AllocationFailed, InvariantViolation, UnknownAddress
from .freespace import merge_or_add_vmap_area
from .intervals import addr_to_node_id
from .rbtree import RBTree, VmapArea
from .runtime import Atomic, Lock, LockKind, Runtime, Work


class ShardedDesign(GlobalFreeSpace):
    """Base of ``nodes`` and ``percpu``; not a design by itself (no ``name``)."""

    # Lock and structure names: "<shard_prefix>[i].busy.lock" etc., lock class
    # "<shard_class>.busy.lock"; snapshot keys "busy:<snapshot_prefix><i>".
    shard_prefix: ClassVar[str] = "shard"
    shard_class: ClassVar[str] = "shard"
    snapshot_prefix: ClassVar[str] = "shard"

    def __init__(self, runtime: Runtime, config: VmapConfig | None, nr_shards: int,
                 zone_size: int) -> None:
        super().__init__(runtime, config)
        rt = self.rt
        self.nr_shards = nr_shards
        self.zone_size = zone_size
        p, c = self.shard_prefix, self.shard_class
        self._init_free_space()
        self.vmap_purge_lock: Lock = self._new_lock("vmap_purge_lock", kind=LockKind.MUTEX)
        self.busy_lock: list[Lock] = [
            self._new_lock(f"{p}[{i}].busy.lock", f"{c}.busy.lock") for i in range(nr_shards)]
        self.lazy_lock: list[Lock] = [
            self._new_lock(f"{p}[{i}].lazy.lock", f"{c}.lazy.lock") for i in range(nr_shards)]
        self.vmap_lazy_nr: Atomic = rt.atomic("vmap_lazy_nr")
        self.busy_root: list[RBTree] = [
            rt.shared(f"{p}[{i}].busy.root", RBTree(name=f"{p}[{i}].busy.root"))
            for i in range(nr_shards)]
        self.lazy_root: list[RBTree] = [
            rt.shared(f"{p}[{i}].lazy.root", RBTree(name=f"{p}[{i}].lazy.root"))
            for i in range(nr_shards)]
        self.drain_vmap_work: Work = rt.work("drain_vmap_work", self.drain_vmap_area_work)
        self.lazy_max = self.config.lazy_max_pages
        self.purges = 0
        self.retries = 0
        for i in range(nr_shards):
            self._register_check(f"{p}[{i}] busy", [self.busy_lock[i]],
                                 partial(self.check_busy_shard, i))
            self._register_check(f"{p}[{i}] lazy", [self.lazy_lock[i]],
                                 partial(self.check_lazy_shard, i))

    # ------------------------------------------------------------------ address mapping
    def addr_to_shard(self, addr: int) -> int:
        """``addr_to_node_id`` / ``addr_to_cpu``: the shard whose busy tree owns ``addr``."""
        return addr_to_node_id(addr, self.zone_size, self.nr_shards)

    # ------------------------------------------------------------------ global path
    def alloc_global(self, size: int, align: int, vstart: int, vend: int) -> int:
        """The ``retry:`` loop of ``alloc_vmap_area`` on the global free tree.  The area
        returned is in the caller's hands."""
        purged = False
        while True:
            addr = self.alloc_free_space(size, align, vstart, vend)
            if addr is not None:
                return addr
            if purged:
                raise AllocationFailed(
                    f"vmap allocation for size {size} failed: use vmalloc=<size> to increase size")
            self.reclaim_and_purge_vmap_areas()
            purged = True

    def reclaim_and_purge_vmap_areas(self) -> None:
        """Allocation failed: purge everything the design holds back, then the caller retries."""
        with self.vmap_purge_lock:
            self.retries += 1
            self.purge_vmap_area_lazy(full=True)

    def reclaim_list_global(self, vas: list[VmapArea]) -> None:
        """Merge areas in hand back into the global free tree, under one lock hold.

        Touching areas are joined before they reach the tree.  Within one hold of the lock
        this leaves the same tree as merging them one by one (coalescing does not depend on
        the order), at one tree operation per run instead of one per area: the 6.9 lazy trees
        do not merge, so a purge hands back thousands of adjacent one-page areas."""
        if not vas:
            return
        ranges = sorted((va.va_start, va.va_end) for va in vas)
        runs: list[Range] = []
        run_start, run_end = ranges[0]
        for start, end in ranges[1:]:
            if start == run_end:
                run_end = end
            else:
                runs.append((run_start, run_end))
                run_start, run_end = start, end
        runs.append((run_start, run_end))
        root = self.free_vmap_area_root
        drop = self._hand_drop
        with self.free_vmap_area_lock:
            for start, end in runs:
                merge_or_add_vmap_area(root, start, end)
            for r in ranges:
                drop(r)

    def insert_busy(self, va: VmapArea) -> int:
        """Insert an area in hand into the busy tree of the shard of its ``va_start``."""
        i = (va.va_start // self.zone_size) % self.nr_shards
        with self.busy_lock[i]:
            self.busy_root[i].insert(va)
            self._hand_drop((va.va_start, va.va_end))
        return i

    # ------------------------------------------------------------------ lookup
    def _find(self, addr: int) -> Range | None:
        n = self.nr_shards
        i = (addr // self.zone_size) % n
        for _ in range(n):
            with self.busy_lock[i]:
                va = self.busy_root[i].find_containing(addr)
                if va is not None:
                    return (va.va_start, va.va_end)
            i = (i + 1) % n
        return None

    def find_unlink_vmap_area(self, addr: int) -> VmapArea:
        """Scan the busy shards from the address's one; unlink the area that starts at
        ``addr``.  An area found containing ``addr`` elsewhere than at its start stops the scan
        and is reported without being unlinked."""
        n = self.nr_shards
        i = (addr // self.zone_size) % n
        containing: Range | None = None
        for _ in range(n):
            with self.busy_lock[i]:
                root = self.busy_root[i]
                va = root.find_containing(addr)
                if va is not None:
                    if va.va_start == addr:
                        root.erase(va)
                        self._hand_take((va.va_start, va.va_end))
                        return va
                    containing = (va.va_start, va.va_end)
            if containing is not None:
                break
            i = (i + 1) % n
        raise self.bad_free(addr, containing)

    def bad_free(self, addr: int, containing: Range | None) -> UnknownAddress:
        if containing is not None:
            return UnknownAddress(
                f"Trying to vfree() address {addr:#x} inside the busy area "
                f"[{containing[0]:#x}, {containing[1]:#x}): not its start")
        for i in range(self.nr_shards):
            with self.lazy_lock[i]:
                lazy = self.lazy_root[i].find_containing(addr)
            if lazy is not None:
                return UnknownAddress(f"Trying to vfree() already freed address {addr:#x}")
        return UnknownAddress(f"Trying to vfree() nonexistent vm area ({addr:#x})")

    # ------------------------------------------------------------------ free, purge
    def _free(self, addr: int) -> None:
        va = self.find_unlink_vmap_area(addr)
        self.free_vmap_area_noflush(va)

    def free_vmap_area_noflush(self, va: VmapArea) -> None:
        raise NotImplementedError

    def _purge(self) -> None:
        with self.vmap_purge_lock:
            self.purge_vmap_area_lazy(full=False)

    def drain_vmap_area_work(self) -> None:
        """One pass, as the series made it (no repeat while over the threshold)."""
        with self.vmap_purge_lock:
            self.purge_vmap_area_lazy(full=False)

    def purge_vmap_area_lazy(self, full: bool) -> bool:
        """``__purge_vmap_area_lazy``; the caller holds ``vmap_purge_lock``.  ``full`` is set
        on the allocation-failure path: give back everything held back for reuse."""
        raise NotImplementedError

    def detach_lazy(self, i: int) -> list[VmapArea]:
        """Take shard ``i``'s whole lazy tree into the caller's hands (``list_replace_init``)."""
        with self.lazy_lock[i]:
            vas = self.lazy_root[i].detach_all()
            for va in vas:
                self._hand_take((va.va_start, va.va_end))
        return vas

    # ------------------------------------------------------------------ introspection
    def snapshot(self) -> Snapshot:
        sp = self.snapshot_prefix
        areas: dict[str, tuple[Range, ...]] = {"free": self.free_vmap_area_root.ranges()}
        for i in range(self.nr_shards):
            areas[f"busy:{sp}{i}"] = self.busy_root[i].ranges()
        for i in range(self.nr_shards):
            areas[f"lazy:{sp}{i}"] = self.lazy_root[i].ranges()
        areas.update(self.held_back_areas())
        areas.update(self._hand_areas())
        return Snapshot(areas, {"vmap_lazy_nr": self.vmap_lazy_nr.read()})

    def held_back_areas(self) -> dict[str, tuple[Range, ...]]:
        """Free space a shard holds for reuse (pools, caches), by snapshot key."""
        return {}

    def check_busy_shard(self, i: int) -> None:
        """The busy tree is well formed and holds only areas whose start maps to shard ``i``."""
        root = self.busy_root[i]
        label = f"{self.shard_prefix}[{i}].busy"
        root.check(label)
        for start, end in root.ranges():
            home = self.addr_to_shard(start)
            if home != i:
                raise InvariantViolation(
                    "busy placement",
                    f"busy area [{start:#x}, {end:#x}) is in {label} but its start maps to "
                    f"{self.shard_prefix}[{home}]")

    def check_lazy_shard(self, i: int) -> None:
        root = self.lazy_root[i]
        root.check(f"{self.shard_prefix}[{i}].lazy")
        for va in root:
            home = self.lazy_home(va)
            if home != i:
                raise InvariantViolation(
                    "lazy placement",
                    f"lazy area [{va.va_start:#x}, {va.va_end:#x}) is in "
                    f"{self.shard_prefix}[{i}].lazy but belongs to {self.shard_prefix}[{home}]")

    def lazy_home(self, va: VmapArea) -> int:
        """The shard whose lazy tree a freed area goes to."""
        return self.addr_to_shard(va.va_start)

    def check_at_rest(self) -> None:
        lazy_pages = sum(self.pages(r) for i in range(self.nr_shards)
                         for r in self.lazy_root[i].ranges())
        nr = self.vmap_lazy_nr.read()
        if nr != lazy_pages:
            raise InvariantViolation(
                "vmap_lazy_nr",
                f"vmap_lazy_nr is {nr} but the lazy trees hold {lazy_pages} pages")
