"""Seeded bugs in the ``global`` design (Linux 6.1-6.8).

Each class overrides the one method that carries its bug; everything else is the correct design.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...config import VmapConfig
from ...freespace import alloc_from_tree, merge_or_add_vmap_area
from ...intervals import FitType
from ...rbtree import RBTree, VmapArea
from ...runtime import Runtime, SharedCell
from ..base import Range
from ..global_ import GlobalDesign


class GlobalMutant(GlobalDesign):
    mutant_of: ClassVar[str] = "global"
    bug: ClassVar[str] = ""
    source: ClassVar[str] = ""
    expected: ClassVar[str] = ""
    catalog: ClassVar[dict[str, Any]] = {}


class GlobalAbba(GlobalMutant):
    name = "global-abba"
    description = "find() nests vmap_area_lock -> purge_vmap_area_lock, free nests them the other way"
    bug = ("a vmallocinfo-style reader (find) takes purge_vmap_area_lock inside vmap_area_lock, "
           "as show_purge_info does, while the lazy free path takes vmap_area_lock inside "
           "purge_vmap_area_lock: an ABBA inversion")
    source = "classic ABBA; the vmallocinfo nesting of reference section 1.3"
    expected = "lock-order"
    catalog = {"threads": [["a = alloc(1)", "find(a)", "free(a)"]] * 2,
               "config": {"pages": 4, "lazy_max": 1, "cpus": 2}}

    def _find(self, addr: int) -> Range | None:
        with self.vmap_area_lock:
            va = self.vmap_area_root.find_containing(addr)
            with self.purge_vmap_area_lock:  # show_purge_info()
                self.purge_vmap_area_root.ranges()
            return va.range if va is not None else None

    def free_vmap_area_noflush(self, area: Range) -> None:
        nr_lazy = self.add_lazy_nr(self.pages(area))
        with self.purge_vmap_area_lock:
            with self.vmap_area_lock:  # "double-check it is gone from the busy tree"
                self.vmap_area_root.find_containing(area[0])
            merge_or_add_vmap_area(self.purge_vmap_area_root, *area)
            self._hand_drop(area)
        if nr_lazy > self.lazy_max:
            self.drain_vmap_work.schedule()


class GlobalBusyUnlocked(GlobalMutant):
    name = "global-busy-unlocked"
    description = "vfree unlinks the area from the busy tree without vmap_area_lock"
    bug = "find_unlink_vmap_area looks up and erases the busy area without taking vmap_area_lock"
    source = "classic missing lock (the busy tree is shared with every allocation)"
    expected = "race"
    catalog = {"threads": 2, "ops": 1}

    def find_unlink_vmap_area(self, addr: int) -> Range:
        va = self.vmap_area_root.find_containing(addr)
        if va is not None and va.va_start == addr:
            self.vmap_area_root.erase(va)
            area = va.range
            self._hand_take(area)
            return area
        raise self.bad_free(addr, va.range if va is not None else None)


class GlobalLazyNonAtomic(GlobalMutant):
    name = "global-lazy-nonatomic"
    description = "vmap_lazy_nr updated by a plain read-modify-write: lost updates"
    bug = "the lazy page counter is a plain shared integer read and written in two steps"
    source = "classic lost update (vmap_lazy_nr must be an atomic_long_t)"
    expected = "race"
    catalog = {"threads": 2, "ops": 1}

    def __init__(self, runtime: Runtime, config: VmapConfig | None = None) -> None:
        super().__init__(runtime, config)
        self.lazy_cell = self.rt.shared("vmap_lazy_nr", SharedCell(0))

    def add_lazy_nr(self, pages: int) -> int:
        value = self.lazy_cell.get() + pages
        self.lazy_cell.put(value)
        return value

    def sub_lazy_nr(self, pages: int) -> int:
        value = self.lazy_cell.get() - pages
        self.lazy_cell.put(value)
        return value

    def lazy_nr(self) -> int:
        return self.lazy_cell.get()


def _merge_skipping_next(tree: RBTree, start: int, end: int) -> VmapArea:
    """merge_or_add_vmap_area that forgets to look at the next neighbour."""
    prev, _ = tree.neighbours(start)
    if prev is not None and prev.va_end == start:
        prev.va_end = end
        tree.propagate(prev)
        return prev
    return tree.insert(VmapArea(start, end))


class GlobalMergeSkipNext(GlobalMutant):
    name = "global-merge-skip-next"
    description = "coalescing into the free tree skips the next neighbour"
    bug = "the purge merges a freed area with its previous free neighbour only, never the next"
    source = "classic coalescing mistake (cf. B10, the double merge of __merge_or_add_vmap_area)"
    expected = "invariant"
    catalog = {"threads": 2, "ops": 1}

    def merge_free(self, area: Range) -> None:
        _merge_skipping_next(self.free_vmap_area_root, *area)


class GlobalMutexUnderSpin(GlobalMutant):
    name = "global-mutex-under-spin"
    description = "allocation failure purges while still holding free_vmap_area_lock"
    bug = ("on a failed search the allocator calls the purge (vmap_purge_lock, a mutex) before "
           "dropping free_vmap_area_lock: sleeping in atomic context")
    source = "B5/B6: 'sleeping function called from invalid context' in __purge_vmap_area_lazy"
    expected = "exception"
    catalog = {"threads": 1, "ops": 2, "pages": 2}

    def alloc_free_space(self, size: int, align: int, vstart: int, vend: int) -> int | None:
        cpu = self.rt.cpu_id()
        with self.free_vmap_area_lock:
            spare = self.ne_fit_preload_node
            spare[cpu] = True
            got = alloc_from_tree(self.free_vmap_area_root, size, align, vstart, vend,
                                  self.page_size)
            if got is None:
                with self.vmap_purge_lock:  # the bug: a mutex under a spinlock
                    pass
                return None
            addr, fit = got
            if fit is FitType.NE_FIT_TYPE:
                spare[cpu] = False
            self._hand_take((addr, addr + size))
        return addr


class GlobalPurgeUnlocked(GlobalMutant):
    name = "global-purge-unlocked"
    description = "the purge detaches the lazy list without purge_vmap_area_lock"
    bug = "__purge_vmap_area_lazy takes the whole purge list without purge_vmap_area_lock"
    source = "classic missing lock on list_replace_init of the purge list"
    expected = "race"
    catalog = {"threads": 2, "ops": 1}

    def take_purge_list(self) -> list[Range]:
        return self.detach_purge_list()  # the bug: no purge_vmap_area_lock


class GlobalDrainLivelock(GlobalMutant):
    name = "global-drain-livelock"
    description = "set_iounmap_nonlazy forces vmap_lazy_nr over the threshold: the drain spins"
    bug = ("purge() sets vmap_lazy_nr to lazy_max_pages()+1 with no lazy areas behind it and "
           "schedules the drain; the drain loops while the counter exceeds the threshold, and "
           "purging nothing never lowers it")
    source = "B4: c12cd77cb028 'fix spinning drain_vmap_work after reading from /proc/vmcore'"
    expected = "invariant"
    catalog = {"threads": [["purge()"]], "config": {"pages": 4, "lazy_max": 1, "cpus": 1}}

    def _purge(self) -> None:
        self.vmap_lazy_nr.set(self.lazy_max + 1)  # set_iounmap_nonlazy()
        self.drain_vmap_work.schedule()


class GlobalClipNoPropagate(GlobalMutant):
    name = "global-clip-no-propagate"
    description = "va_clip shrinks a free block without propagating subtree_max_size"
    bug = ("after an edge fit the free block shrinks in place but augment_tree_propagate_from "
           "is not called: ancestors keep a stale subtree_max_size")
    source = "classic augmented-tree mistake (cf. B10, stale subtree_max_size)"
    expected = "invariant"
    # Two holes and a tail block, so that the tail is a child when an edge fit shrinks it.
    catalog = {"threads": [["a = alloc(1)", "b = alloc(1)", "c = alloc(1)", "d = alloc(1)",
                            "e = alloc(1)", "free(b)", "free(d)", "purge()", "f = alloc(2)"]],
               "config": {"pages": 8, "lazy_max": 8, "cpus": 1}}

    def _make_free_tree(self) -> RBTree:
        return _StaleTree()


class _StaleTree(RBTree):
    """A free tree whose in-place resize does not propagate (used by GlobalClipNoPropagate)."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(augmented=True, name="free_vmap_area_root")

    def propagate(self, n: VmapArea | None) -> None:
        if n is not None:
            # Only the resized node itself: its ancestors keep their old value.
            n.subtree_max_size = max(n.va_end - n.va_start,
                                     n.left.subtree_max_size if n.left else 0,
                                     n.right.subtree_max_size if n.right else 0)
