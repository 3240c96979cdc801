"""The ``percpu`` design: the LSFMM 2023 proposal as posted (series v1, May 2023, on v6.4-rc).

What the talk proposed and the series built: each CPU pre-fetches a chunk of address space from
the global free tree into its own ``cpu_vmap_zone`` and carves allocations from it; busy and
lazily freed areas are kept per zone, the zone chosen by address; a purge drains the lazy areas
and the chunks back to the global free space.

Structures.  One zone per possible CPU (``nr_cpus``); ``cvz_size`` is the zone size and the
chunk size (``VmapConfig.extra`` ``cvz_pages``, default ``zone_pages``; the series used
``fls(nr_cpus) * 100`` pages capped at 4 MiB).  An address maps to zone
``addr_to_cpu(addr) = (addr / cvz_size) % nr_cpus`` (``addr_to_cvz``).  Zone ``z`` has, as the
series' ``fbl[FREE/BUSY/LAZY]``, three rb_lists, each with its own spinlock:

- ``zone[z].free``: the chunks CPU ``z`` pre-fetched, an augmented free tree under
  ``zone[z].free.lock`` (class ``cpu_vmap_zone.free.lock``).  It is keyed by the *CPU* that
  fetched it: its addresses may map to any zone.  Snapshot key ``cache:zone<z>``.
- ``zone[z].busy``: under ``zone[z].busy.lock`` (class ``cpu_vmap_zone.busy.lock``); a busy area
  lives in the zone of its ``va_start``, whichever CPU allocated it.
- ``zone[z].lazy``: under ``zone[z].lazy.lock`` (class ``cpu_vmap_zone.lazy.lock``); freed areas
  are merged (``merge_or_add_vmap_area``) into the zone of their ``va_start``.
- ``zone[z].fill_in_progress``: an atomic; only one thread pre-fetches for a zone at a time.

(An earlier plan named one ``zone[z].lock`` for both the chunk and the busy tree; the series has
a lock per structure, and this design follows the series.)  Global: the free tree under
``free_vmap_area_lock``, the ``vmap_purge_lock`` mutex, atomic ``vmap_lazy_nr``,
``drain_vmap_work``.  No spinlock is nested in another; the mutex nests over every other lock
except the busy locks.

Paths (each bracket is one critical section; "X -> Y" moves the range between owners, "hand" is
the running thread):

- ``alloc(size, align, vstart, vend)`` on CPU ``c`` (``this_cpu_zone_alloc``).  Only for the
  default range, with more than one CPU (the series disables the caches on one CPU), and when
  ``cvz_size / (size + extra) >= 3`` (``extra = align`` if ``align > PAGE_SIZE``, else 0):
  (1) [``zone[c].free.lock``: lowest-match carve, cache -> hand; on a miss note the largest
  block left].  (2) On a miss with less than 4 pages left, the pre-fetch: atomic
  ``fill_in_progress`` test-and-set (a thread that finds it set gives up the fast path);
  [``free_vmap_area_lock``: carve a ``cvz_size`` chunk, lowest match, free -> hand];
  [``zone[c].free.lock``: chunk hand -> cache, merged with an adjacent chunk; carve the request
  from the merged block, cache -> hand]; ``fill_in_progress = 0``.  (3) If the fast path gave
  nothing: [``free_vmap_area_lock``: lowest-match carve, free -> hand]; on failure
  [``vmap_purge_lock``: purge with ``full=True``] and one retry, then ``AllocationFailed``.
  (4) [``zone[addr_to_cpu(va_start)].busy.lock``: hand -> busy], then the same lock once more
  for ``setup_vmalloc_vm`` (as in 6.4).
- ``free(addr)``.  (1) For ``z`` from ``addr_to_cpu(addr)`` round the ring:
  [``zone[z].busy.lock``: the area starting at ``addr`` busy -> hand] (errors as ``global``).
  (2) atomic ``vmap_lazy_nr += pages``.  (3) [``zone[addr_to_cpu(va_start)].lazy.lock``: hand ->
  lazy, merged].  (4) Over ``lazy_max_pages``: schedule ``drain_vmap_work``.
- ``find(addr)``: the scan of free (1), read only.
- purge (caller holds ``vmap_purge_lock``; the drain and ``purge()`` pass ``full=False``, one
  pass).  For each zone: [``zone[z].lazy.lock``: detach, lazy -> hand].  If any zone had lazy
  areas, or ``full``: for each zone in order, if it had lazy areas, [``free_vmap_area_lock``:
  they go hand -> free, merged, ``vmap_lazy_nr -= pages`` per area] (``purge_cpu_vmap_zone``);
  then ``drop_cpu_vmap_cache``: [``zone[z].free.lock``: detach the cache, cache -> hand] and,
  if it held anything, [``free_vmap_area_lock``: hand -> free, merged].  Lazy areas never
  return to a chunk: chunks and freed areas meet again, merged, in the global free tree.

Modelling choices where the series left a gap or a known flaw:

- ``find_vmap_area``/``find_unlink_vmap_area`` in v1 looked only at ``addr_to_cvz(addr)``, which
  misses an area that starts in another zone (chunks are not zone aligned, so areas cross zone
  boundaries).  This design scans all zones from the address's zone, as v2 and 6.9 do.
- v1 drops the caches only when some zone had lazy areas; then an allocation can fail while
  other CPUs' chunks hold the space.  Here the allocation-failure purge (``full``) always drops
  them, so a failure means the space is really busy.
- ``fill_in_progress`` uses the seam's atomics: ``add_return(1) != 1`` is ``atomic_xchg(.., 1)``
  returning 1 (the value only matters as zero or non-zero); the owner clears it with ``set(0)``.
- The series' unlocked ``RB_EMPTY_ROOT`` peeks are made under the lock; carving in a chunk does
  not use the CPU's spare node (the series used it without ``free_vmap_area_lock``).

Snapshot keys: ``free``, ``cache:zone<z>``, ``busy:zone<z>``, ``lazy:zone<z>``, ``hand:<thread>``.
Extra invariants: busy and lazy areas in the zone of their start; caches well-formed augmented
trees with no adjacent blocks; conservation (base) covers the caches.

Relies on ``impl.sharded`` (zones' busy/lazy trees, global path, lookup, snapshot) and
``impl.freespace``.
"""

from __future__ import annotations

from functools import partial

from ..config import VmapConfig
from ..freespace import alloc_from_tree, merge_or_add_vmap_area, va_clip
from ..intervals import FitType, nva_start_addr
from ..rbtree import RBTree, VmapArea
from ..runtime import Atomic, Lock, Runtime
from ..sharded import ShardedDesign
from .base import Range
from .free_space import check_coalesced

# "A low watermark is 3 pages": a zone whose largest block is smaller pre-fetches a new chunk.
LOW_WATERMARK_PAGES = 4
# "Any allocation bigger than/equal to one third of a zone falls back to the global heap."
MIN_REQUESTS_PER_CHUNK = 3


class PercpuDesign(ShardedDesign):
    name = "percpu"
    description = ("LSFMM 2023 proposal (series v1): per-CPU pre-fetched chunks, per-zone "
                   "free/busy/lazy locks, global free tree")
    shard_prefix = "zone"
    shard_class = "cpu_vmap_zone"
    snapshot_prefix = "zone"

    def __init__(self, runtime: Runtime, config: VmapConfig | None = None) -> None:
        cfg = config if config is not None else VmapConfig()
        n = cfg.nr_cpus
        cvz_size = cfg.get("cvz_pages", cfg.zone_pages) * cfg.page_size
        super().__init__(runtime, cfg, n, cvz_size)
        self.cvz_size = cvz_size
        # Single-CPU systems: cvz_size = ULONG_MAX, every area maps to zone 0, no pre-fetch.
        self.caching = n > 1
        rt = self.rt
        self.zone_free_lock: list[Lock] = [
            self._new_lock(f"zone[{z}].free.lock", "cpu_vmap_zone.free.lock") for z in range(n)]
        self.zone_free_root: list[RBTree] = [
            rt.shared(f"zone[{z}].free.root",
                      RBTree(augmented=True, name=f"zone[{z}].free.root")) for z in range(n)]
        self.fill_in_progress: list[Atomic] = [
            rt.atomic(f"zone[{z}].fill_in_progress") for z in range(n)]
        self.fills = 0
        for z in range(n):
            self._register_check(f"zone[{z}] cache", [self.zone_free_lock[z]],
                                 partial(self.check_cache, z))

    # ------------------------------------------------------------------ alloc
    def _alloc(self, size: int, align: int, vstart: int, vend: int) -> int:
        addr: int | None = None
        if self.caching and vstart == self.vmalloc_start and vend == self.vmalloc_end:
            addr = self.this_cpu_zone_alloc(size, align)
        if addr is None:
            addr = self.alloc_global(size, align, vstart, vend)
        z = self.insert_busy(VmapArea(addr, addr + size))
        # setup_vmalloc_vm() takes the busy lock a second time to publish va->vm.
        with self.busy_lock[z]:
            pass
        return addr

    def this_cpu_zone_alloc(self, size: int, align: int) -> int | None:
        page = self.page_size
        extra = align if align > page else 0
        if self.cvz_size // (size + extra) < MIN_REQUESTS_PER_CHUNK:
            return None
        z = self.rt.cpu_id() % self.nr_shards
        start, end = self.vmalloc_start, self.vmalloc_end
        with self.zone_free_lock[z]:
            root = self.zone_free_root[z]
            got = alloc_from_tree(root, size, align, start, end, page)
            if got is not None:
                addr = got[0]
                self._hand_take((addr, addr + size))
                return addr
            top = root.root
            left = top.subtree_max_size if top is not None else 0
        if left < LOW_WATERMARK_PAGES * page:
            return self.this_cpu_zone_alloc_fill(z, size, align)
        return None

    def this_cpu_zone_alloc_fill(self, z: int, size: int, align: int) -> int | None:
        fip = self.fill_in_progress[z]
        if fip.add_return(1) != 1:  # atomic_xchg(&z->fill_in_progress, 1) returned 1
            return None
        try:
            start, end = self.vmalloc_start, self.vmalloc_end
            cvz = self.cvz_size
            with self.free_vmap_area_lock:
                # The series asks for align 1; every free block is page aligned, so PAGE_SIZE
                # is the same request.
                got = alloc_from_tree(self.free_vmap_area_root, cvz, self.page_size, start, end,
                                      self.page_size)
                if got is None:
                    return None
                chunk = (got[0], got[0] + cvz)
                self._hand_take(chunk)
            with self.zone_free_lock[z]:
                root = self.zone_free_root[z]
                va = merge_or_add_vmap_area(root, *chunk)
                self._hand_drop(chunk)
                self.fills += 1
                addr = self.va_alloc(root, va, size, align)
                if addr is not None:
                    self._hand_take((addr, addr + size))
            return addr
        finally:
            fip.set(0)

    def va_alloc(self, root: RBTree, va: VmapArea, size: int, align: int) -> int | None:
        """Carve the request from the given block (not the lowest match of the tree)."""
        nva = nva_start_addr(va.va_start, size, align, self.vmalloc_start)
        if nva + size > self.vmalloc_end:
            return None
        if va_clip(root, va, nva, size) is FitType.NOTHING_FIT:  # WARN_ON_ONCE
            return None
        return nva

    # ------------------------------------------------------------------ free
    def free_vmap_area_noflush(self, va: VmapArea) -> None:
        nr_lazy = self.vmap_lazy_nr.add_return((va.va_end - va.va_start) // self.page_size)
        z = self.addr_to_shard(va.va_start)
        with self.lazy_lock[z]:
            merge_or_add_vmap_area(self.lazy_root[z], va.va_start, va.va_end)
            self._hand_drop((va.va_start, va.va_end))
        if nr_lazy > self.lazy_max:
            self.drain_vmap_work.schedule()

    # ------------------------------------------------------------------ purge
    def purge_vmap_area_lazy(self, full: bool) -> bool:
        purge_lists = [self.detach_lazy(z) for z in range(self.nr_shards)]
        need_purge = any(purge_lists)
        if not (need_purge or full):
            return False
        if need_purge:
            self.purges += 1
            self.rt.flush_tlb_kernel_range(min(vas[0].va_start for vas in purge_lists if vas),
                                           max(vas[-1].va_end for vas in purge_lists if vas))
        for z in range(self.nr_shards):
            self.purge_cpu_vmap_zone(purge_lists[z])
            self.drop_cpu_vmap_cache(z)
        return need_purge

    def purge_cpu_vmap_zone(self, vas: list[VmapArea]) -> None:
        if not vas:
            return
        root = self.free_vmap_area_root
        page = self.page_size
        with self.free_vmap_area_lock:
            for va in vas:
                merge_or_add_vmap_area(root, va.va_start, va.va_end)
                self._hand_drop((va.va_start, va.va_end))
                self.vmap_lazy_nr.sub_return((va.va_end - va.va_start) // page)

    def drop_cpu_vmap_cache(self, z: int) -> None:
        with self.zone_free_lock[z]:
            vas = self.zone_free_root[z].detach_all()
            for va in vas:
                self._hand_take((va.va_start, va.va_end))
        self.reclaim_list_global(vas)

    # ------------------------------------------------------------------ introspection
    def held_back_areas(self) -> dict[str, tuple[Range, ...]]:
        return {f"cache:zone{z}": self.zone_free_root[z].ranges() for z in range(self.nr_shards)}

    def check_cache(self, z: int) -> None:
        root = self.zone_free_root[z]
        root.check(f"zone[{z}].free")
        check_coalesced(root, f"zone[{z}].free")

    def check_lazy_shard(self, i: int) -> None:
        super().check_lazy_shard(i)
        check_coalesced(self.lazy_root[i], f"zone[{i}].lazy")
