"""The ``nodes`` design: Linux 6.9+ as merged ("Mitigate a vmap lock contention", v3).

Structures.  ``nr_vmap_nodes`` nodes (``VmapConfig.nr_vmap_nodes``: the kernel's
``clamp(num_possible_cpus(), 1, 128)``, any value for models); an address maps to node
``addr_to_node_id(addr) = (addr / vmap_zone_size) % nr_vmap_nodes``.  Node ``i`` has

- ``vn[i].busy``: tree under ``vn[i].busy.lock`` (lock class ``vmap_node.busy.lock``); a busy
  area lives in the node of its ``va_start``;
- ``vn[i].lazy``: tree under ``vn[i].lazy.lock`` (class ``vmap_node.lazy.lock``); freed areas are
  inserted, not merged, so each keeps its size and its node id;
- ``vn[i].pool``: 256 size-class lists of whole free areas under ``vn[i].pool_lock`` (class
  ``vmap_node.pool_lock``), see ``impl.vmap_pool``.

Global, as in the kernel: the free tree under ``free_vmap_area_lock``, the ``vmap_purge_lock``
mutex, the atomic ``vmap_lazy_nr`` and ``drain_vmap_work``.  No spinlock is ever nested in
another; the mutex nests over ``vn[i].pool_lock``, ``vn[i].lazy.lock`` and
``free_vmap_area_lock``.

Paths (each bracket is one critical section; "X -> Y" moves the range between owners, "hand" is
the running thread):

- ``alloc(size, align, vstart, vend)`` on CPU ``c``.  (1) Only for the default range
  (``vstart == VMALLOC_START and vend == VMALLOC_END``) with ``nr_vmap_nodes > 1``:
  ``node = c % nr_vmap_nodes`` and, if the size has a class (at most 256 pages),
  [``vn[node].pool_lock``: first entry of the class; aligned -> pool to hand (a hit takes no
  global lock); misaligned -> rotated to the tail, miss].  The area's flags get
  ``encode_vn_id(node)``, hit or miss; otherwise 0.  (2) On a miss: [``free_vmap_area_lock``:
  lowest-match carve, free -> hand].  If that fails: [``vmap_purge_lock``: purge with
  ``full=True``], then (2) once more, then ``AllocationFailed``.  (3)
  [``vn[addr_to_node(va_start)].busy.lock``: hand -> busy].  One busy-lock acquisition: 6.9 also
  dropped the second one of ``setup_vmalloc_vm``.
- ``free(addr)``.  (1) For ``i`` from ``addr_to_node_id(addr)`` round the ring:
  [``vn[i].busy.lock``: lookup; the area starting at ``addr`` -> hand].  An area that contains
  ``addr`` but starts elsewhere stops the scan with an error; so does no area at all (the
  diagnosis then takes each ``vn[i].lazy.lock`` in turn, read only).  (2) atomic
  ``vmap_lazy_nr += pages``.  (3) [``vn[h].lazy.lock``: hand -> lazy], ``h = id_to_node(vn_id)``
  if the flags carry a valid node id, else ``addr_to_node(va_start)``.  (4) If the counter went
  over ``lazy_max_pages``, schedule ``drain_vmap_work``.
- ``find(addr)``: the same scan as free (1), read only.
- purge (caller holds ``vmap_purge_lock``; ``full`` on allocation failure only; the drain and
  ``purge()`` pass ``full=False``, one pass).  For each node ``i`` in order:
  ``decay_va_pool_node``: [``vn[i].pool_lock``: which classes are non-empty], then per class
  [``vn[i].pool_lock``: detach the whole list, pool -> hand], keep all of it (``full``) or
  ``len >> 2`` entries from the head, and, if any are left, [``vn[i].pool_lock``: the rest
  hand -> pool]; then, if any were taken, [``free_vmap_area_lock``: the taken ones hand -> free,
  merged].  Then [``vn[i].lazy.lock``: detach the lazy tree, lazy -> hand].  After all nodes,
  for each node that had lazy areas (``purge_vmap_node``), per area: atomic
  ``vmap_lazy_nr -= pages``; if its node id is valid, not ``full`` (``skip_populate``) and it
  has a size class, [``vn[i].pool_lock``: hand -> pool, at the head]; the others, at the end and
  if there are any, [``free_vmap_area_lock``: hand -> free, merged].  A purge with no lazy area
  anywhere still decays the pools.

Modelling choices:

- The purge helpers (``schedule_work_on`` + ``flush_work``) run inline on the purging thread, as
  the kernel does for the first node when ``vmap_lazy_nr < 2 * lazy_max_pages``; the results are
  the same, only helper concurrency is not modelled.
- Decay keeps 6.9 as merged: ``n_decay = len >> 2`` and ``if (!--n_decay) break`` wraps for
  ``len < 4``, so a pool of fewer than four areas decays whole (a later kernel changed this).
  The kernel first coalesces the decayed areas in a local tree; here they merge straight into
  the free tree under the same single ``free_vmap_area_lock`` hold (same result).
- Unlocked peeks (``list_empty`` of a pool, ``RB_EMPTY_ROOT`` of a lazy tree) are made under the
  lock; pool lengths are the lists' own (``impl.vmap_pool``).
- ``find`` scans forward (``i + 1``) as 6.9 does; a later kernel scans backward.

Snapshot keys: ``free``, ``busy:node<i>``, ``lazy:node<i>``, ``pool:node<i>:<idx>`` (non-empty
classes only; ``idx = pages - 1``), ``hand:<thread>``.  Extra invariants: busy areas in the node
of their start; lazy areas in the node their id (or start) names; pool entries of their class's
size and pooled once; conservation (base) covers pools.

Relies on ``impl.sharded`` (shards, global path, lookup, snapshot) and ``impl.vmap_pool``.
"""

from __future__ import annotations

from functools import partial

from ..config import VmapConfig
from ..intervals import decode_vn_id, encode_vn_id, size_to_va_pool_idx
from ..rbtree import VmapArea
from ..runtime import Lock, Runtime
from ..sharded import ShardedDesign
from ..vmap_pool import VmapPools
from .base import Range


class NodesDesign(ShardedDesign):
    name = "nodes"
    description = ("Linux 6.9+: vmap_node array, per-node busy/lazy trees and size-class pools, "
                   "global free tree")
    shard_prefix = "vn"
    shard_class = "vmap_node"
    snapshot_prefix = "node"

    def __init__(self, runtime: Runtime, config: VmapConfig | None = None) -> None:
        cfg = config if config is not None else VmapConfig()
        n = cfg.nr_vmap_nodes
        super().__init__(runtime, cfg, n, cfg.vmap_zone_size)
        self.nr_vmap_nodes = n
        self.pool_lock: list[Lock] = [
            self._new_lock(f"vn[{i}].pool_lock", "vmap_node.pool_lock") for i in range(n)]
        self.pool: list[VmapPools] = [
            self.rt.shared(f"vn[{i}].pool", VmapPools(self.page_size)) for i in range(n)]
        for i in range(n):
            self._register_check(f"vn[{i}] pools", [self.pool_lock[i]],
                                 partial(self.pool[i].check, f"vn[{i}].pool"))

    # ------------------------------------------------------------------ alloc
    def _alloc(self, size: int, align: int, vstart: int, vend: int) -> int:
        vn_id = 0
        va: VmapArea | None = None
        if vstart == self.vmalloc_start and vend == self.vmalloc_end and self.nr_vmap_nodes > 1:
            node = self.rt.cpu_id() % self.nr_vmap_nodes
            va = self.node_pool_del_va(node, size, align, vstart, vend)
            vn_id = encode_vn_id(node, self.nr_vmap_nodes)
        if va is None:
            addr = self.alloc_global(size, align, vstart, vend)
            va = VmapArea(addr, addr + size, vn_id)
        else:
            va.flags = vn_id
        self.insert_busy(va)
        return va.va_start

    def node_pool_del_va(self, node: int, size: int, align: int, vstart: int,
                         vend: int) -> VmapArea | None:
        idx = size_to_va_pool_idx(size, self.page_size)
        if idx is None:
            return None
        with self.pool_lock[node]:
            va = self.pool[node].del_va(idx, size, align, vstart, vend)
            if va is not None:
                self._hand_take((va.va_start, va.va_end))
        return va

    # ------------------------------------------------------------------ free
    def free_vmap_area_noflush(self, va: VmapArea) -> None:
        nr_lazy = self.vmap_lazy_nr.add_return((va.va_end - va.va_start) // self.page_size)
        n = self.nr_vmap_nodes
        h = decode_vn_id(va.flags, n)  # the hot path of lazy_home()
        if h >= n:
            h = self.addr_to_shard(va.va_start)
        with self.lazy_lock[h]:
            self.lazy_root[h].insert(va)
            self._hand_drop((va.va_start, va.va_end))
        if nr_lazy > self.lazy_max:
            self.drain_vmap_work.schedule()

    def lazy_home(self, va: VmapArea) -> int:
        """``id_to_node(vn_id)`` when the flags carry a valid id, else ``addr_to_node``."""
        vn_id = decode_vn_id(va.flags, self.nr_vmap_nodes)
        if vn_id < self.nr_vmap_nodes:
            return vn_id
        return self.addr_to_shard(va.va_start)

    # ------------------------------------------------------------------ purge
    def purge_vmap_area_lazy(self, full: bool) -> bool:
        purge_lists: list[tuple[int, list[VmapArea]]] = []
        for i in range(self.nr_vmap_nodes):
            self.decay_va_pool_node(i, full)
            vas = self.detach_lazy(i)
            if vas:
                purge_lists.append((i, vas))
        if not purge_lists:
            return False
        self.purges += 1
        self.rt.flush_tlb_kernel_range(min(vas[0].va_start for _, vas in purge_lists),
                                       max(vas[-1].va_end for _, vas in purge_lists))
        for i, vas in purge_lists:  # the helpers' share included: see the module note
            self.purge_vmap_node(i, vas, skip_populate=full)
        return True

    def decay_va_pool_node(self, i: int, full: bool) -> None:
        pools = self.pool[i]
        lock = self.pool_lock[i]
        with lock:
            classes = pools.nonempty()
        decayed: list[VmapArea] = []
        for idx in classes:
            with lock:
                vas = pools.detach(idx)
                for va in vas:
                    self._hand_take((va.va_start, va.va_end))
            n_decay = len(vas) if full else len(vas) >> 2
            if n_decay == 0:  # 6.9 as merged: `if (!--n_decay)` wraps, the list decays whole
                n_decay = len(vas)
            decayed.extend(vas[:n_decay])
            rest = vas[n_decay:]
            if rest:
                with lock:
                    pools.attach(idx, rest)
                    for va in rest:
                        self._hand_drop((va.va_start, va.va_end))
        self.reclaim_list_global(decayed)

    def purge_vmap_node(self, i: int, vas: list[VmapArea], skip_populate: bool) -> None:
        to_global: list[VmapArea] = []
        n = self.nr_vmap_nodes
        page = self.page_size
        for va in vas:
            self.vmap_lazy_nr.sub_return((va.va_end - va.va_start) // page)
            if not skip_populate and decode_vn_id(va.flags, n) < n \
                    and self.node_pool_add_va(i, va):
                continue
            to_global.append(va)
        self.reclaim_list_global(to_global)

    def node_pool_add_va(self, i: int, va: VmapArea) -> bool:
        idx = size_to_va_pool_idx(va.va_end - va.va_start, self.page_size)
        if idx is None:
            return False
        with self.pool_lock[i]:
            self.pool[i].add_va(idx, va)
            self._hand_drop((va.va_start, va.va_end))
        return True

    # ------------------------------------------------------------------ introspection
    def held_back_areas(self) -> dict[str, tuple[Range, ...]]:
        out: dict[str, tuple[Range, ...]] = {}
        for i in range(self.nr_vmap_nodes):
            for idx, ranges in self.pool[i].ranges().items():
                out[f"pool:node{i}:{idx}"] = ranges
        return out
