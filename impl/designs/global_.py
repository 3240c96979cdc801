"""The ``global`` design: Linux 6.1-6.8, three global spinlocks, a purge mutex, a drain worker.

Locks, as ``mm/vmalloc.c`` takes them (reference section 1.2-1.3):

- ``free_vmap_area_lock`` protects the augmented free tree and each CPU's spare node
  (``ne_fit_preload_node``);
- ``vmap_area_lock`` protects the busy tree; ``alloc_vmap_area`` takes it twice, once to insert
  and once more in ``setup_vmalloc_vm``;
- ``purge_vmap_area_lock`` protects the purge (lazy) tree, where freed areas already coalesce;
- ``vmap_purge_lock`` (mutex) serialises purges; it nests over the purge and free locks.

The three spinlocks are never nested on the alloc, free and purge paths.  ``vmap_lazy_nr`` is
an atomic; a free that pushes it over ``lazy_max_pages`` schedules ``drain_vmap_work``, which
purges under the mutex until the counter is back under the threshold.  Allocation failure
purges once under the mutex and retries, then fails with the kernel's message.

Modelling choices: ``cond_resched_lock`` in the purge loop is taken as never needing to
reschedule (the free lock is held across the whole merge loop), and the spare node is refilled
before the free lock is taken, so NE_FIT never falls back to an atomic allocation.
"""

from __future__ import annotations

from ..config import VmapConfig
from ..errors import AllocationFailed, InvariantViolation, UnknownAddress
from ..freespace import merge_or_add_vmap_area
from ..rbtree import RBTree, VmapArea
from ..runtime import LockKind, Runtime
from .base import Range, Snapshot
from .free_space import GlobalFreeSpace


class GlobalDesign(GlobalFreeSpace):
    name = "global"
    description = "Linux 6.1-6.8: global free, busy and purge spinlocks, purge mutex, drain worker"

    def __init__(self, runtime: Runtime, config: VmapConfig | None = None) -> None:
        super().__init__(runtime, config)
        rt = self.rt
        self._init_free_space()
        self.vmap_area_lock = self._new_lock("vmap_area_lock")
        self.purge_vmap_area_lock = self._new_lock("purge_vmap_area_lock")
        self.vmap_purge_lock = self._new_lock("vmap_purge_lock", kind=LockKind.MUTEX)
        self.vmap_lazy_nr = rt.atomic("vmap_lazy_nr")
        self.vmap_area_root = rt.shared("vmap_area_root", RBTree(name="vmap_area_root"))
        self.purge_vmap_area_root = rt.shared(
            "purge_vmap_area_root", RBTree(name="purge_vmap_area_root"))
        self.drain_vmap_work = rt.work("drain_vmap_work", self.drain_vmap_area_work)
        self.lazy_max = self.config.lazy_max_pages
        self.purges = 0
        self.retries = 0
        self._register_check("busy tree", [self.vmap_area_lock],
                             lambda: self.vmap_area_root.check())
        self._register_check("purge tree", [self.purge_vmap_area_lock],
                             lambda: self.purge_vmap_area_root.check())

    # ------------------------------------------------------------------ alloc
    def _alloc(self, size: int, align: int, vstart: int, vend: int) -> int:
        purged = False
        while True:
            addr = self.alloc_free_space(size, align, vstart, vend)
            if addr is not None:
                break
            if purged:
                raise AllocationFailed(
                    f"vmap allocation for size {size} failed: use vmalloc=<size> to increase size")
            # reclaim_and_purge_vmap_areas()
            with self.vmap_purge_lock:
                self.retries += 1
                self._purge_vmap_area_lazy()
            purged = True
        area = (addr, addr + size)
        with self.vmap_area_lock:
            self.insert_busy(area)
            self._hand_drop(area)
        # setup_vmalloc_vm() takes vmap_area_lock a second time to publish va->vm.
        with self.vmap_area_lock:
            pass
        return addr

    def insert_busy(self, area: Range) -> None:
        self.vmap_area_root.insert(VmapArea(*area))

    # ------------------------------------------------------------------ free
    def _free(self, addr: int) -> None:
        area = self.find_unlink_vmap_area(addr)
        self.free_vmap_area_noflush(area)

    def find_unlink_vmap_area(self, addr: int) -> Range:
        with self.vmap_area_lock:
            va = self.vmap_area_root.find_containing(addr)
            if va is not None and va.va_start == addr:
                self.vmap_area_root.erase(va)
                area = va.range
                self._hand_take(area)
                return area
        raise self.bad_free(addr, va.range if va is not None else None)

    def bad_free(self, addr: int, containing: Range | None) -> UnknownAddress:
        if containing is not None:
            return UnknownAddress(
                f"Trying to vfree() address {addr:#x} inside the busy area "
                f"[{containing[0]:#x}, {containing[1]:#x}): not its start")
        with self.purge_vmap_area_lock:
            lazy = self.purge_vmap_area_root.find_containing(addr)
        if lazy is not None:
            return UnknownAddress(f"Trying to vfree() already freed address {addr:#x}")
        return UnknownAddress(f"Trying to vfree() nonexistent vm area ({addr:#x})")

    def free_vmap_area_noflush(self, area: Range) -> None:
        nr_lazy = self.add_lazy_nr(self.pages(area))
        with self.purge_vmap_area_lock:
            merge_or_add_vmap_area(self.purge_vmap_area_root, *area)
            self._hand_drop(area)
        if nr_lazy > self.lazy_max:
            self.drain_vmap_work.schedule()

    def add_lazy_nr(self, pages: int) -> int:
        return self.vmap_lazy_nr.add_return(pages)

    def sub_lazy_nr(self, pages: int) -> int:
        return self.vmap_lazy_nr.sub_return(pages)

    def lazy_nr(self) -> int:
        return self.vmap_lazy_nr.read()

    # ------------------------------------------------------------------ find
    def _find(self, addr: int) -> Range | None:
        with self.vmap_area_lock:
            va = self.vmap_area_root.find_containing(addr)
            return va.range if va is not None else None

    # ------------------------------------------------------------------ purge
    def _purge(self) -> None:
        with self.vmap_purge_lock:
            self._purge_vmap_area_lazy()

    def drain_vmap_area_work(self) -> None:
        while True:
            with self.vmap_purge_lock:
                self._purge_vmap_area_lazy()
            if self.lazy_nr() <= self.lazy_max:
                break

    def _purge_vmap_area_lazy(self) -> bool:
        """Caller holds vmap_purge_lock.  Detach the whole purge list, flush the TLB once, then
        merge every area back into the free tree, accounting each one off ``vmap_lazy_nr``."""
        local = self.take_purge_list()
        if not local:
            return False
        self.purges += 1
        self.rt.flush_tlb_kernel_range(local[0][0], local[-1][1])  # the list is address-sorted
        with self.free_vmap_area_lock:
            for area in local:
                self.merge_free(area)
                self._hand_drop(area)
                self.sub_lazy_nr(self.pages(area))
        return True

    def take_purge_list(self) -> list[Range]:
        """``list_replace_init`` of the purge list under ``purge_vmap_area_lock``."""
        with self.purge_vmap_area_lock:
            return self.detach_purge_list()

    def detach_purge_list(self) -> list[Range]:
        local = [va.range for va in self.purge_vmap_area_root.detach_all()]
        for area in local:
            self._hand_take(area)
        return local

    def merge_free(self, area: Range) -> None:
        """``merge_or_add_vmap_area_augment`` into the free tree (caller holds its lock)."""
        merge_or_add_vmap_area(self.free_vmap_area_root, *area)

    # ------------------------------------------------------------------ introspection
    def snapshot(self) -> Snapshot:
        areas = {
            "free": self.free_vmap_area_root.ranges(),
            "busy": self.vmap_area_root.ranges(),
            "lazy": self.purge_vmap_area_root.ranges(),
            **self._hand_areas(),
        }
        return Snapshot(areas, {"vmap_lazy_nr": self.lazy_nr()})

    def check_at_rest(self) -> None:
        lazy_pages = sum(self.pages(r) for r in self.purge_vmap_area_root.ranges())
        nr = self.lazy_nr()
        if nr != lazy_pages:
            raise InvariantViolation(
                "vmap_lazy_nr", f"vmap_lazy_nr is {nr} but the lazy list holds {lazy_pages} pages")
