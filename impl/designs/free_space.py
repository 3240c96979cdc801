"""The global free space every design keeps: the augmented free tree, its lock, the spare nodes.

Linux 6.1-6.8 and 6.9+ alike keep free address space in one augmented tree under
``free_vmap_area_lock``, with each CPU's spare node (``ne_fit_preload_node``) installed and used
under that lock; the contention fixes only put caches in front of it.  ``GlobalFreeSpace`` is
that part, shared by ``global`` and the sharded designs: set-up (``vmap_init_free_space``), the
carve under the lock (``preload_this_cpu_lock`` + ``__alloc_vmap_area``) and the free tree's
invariants (red-black, ``subtree_max_size``, coalesced).

Relies on ``impl.designs.base``, ``impl.freespace`` and ``impl.rbtree``.
"""

from __future__ import annotations

from ..errors import InvariantViolation
from ..freespace import alloc_from_tree
from ..intervals import FitType
from ..rbtree import RBTree, VmapArea
from ..runtime import Lock
from .base import VmapDesign


def check_coalesced(tree: RBTree, label: str) -> None:
    """No two areas of ``tree`` touch: ``merge_or_add_vmap_area`` would have merged them."""
    prev: tuple[int, int] | None = None
    for start, end in tree.ranges():
        if prev is not None and prev[1] == start:
            raise InvariantViolation(
                f"{label}: coalesced",
                f"adjacent areas [{prev[0]:#x}, {prev[1]:#x}) and [{start:#x}, {end:#x}) were "
                f"not merged")
        prev = (start, end)


class GlobalFreeSpace(VmapDesign):
    """Mixin of the global free tree; not a design by itself (no ``name``)."""

    free_vmap_area_lock: Lock
    free_vmap_area_root: RBTree

    def _init_free_space(self) -> None:
        """Create the lock, the tree and the spares, and seed the whole range as free.  Runs
        before any thread exists, so the seeding needs no lock."""
        self.free_vmap_area_lock = self._new_lock("free_vmap_area_lock")
        self.free_vmap_area_root = self.rt.shared("free_vmap_area_root", self._make_free_tree())
        self.ne_fit_preload_node = self.rt.shared(
            "ne_fit_preload_node", [False] * self.config.nr_cpus)
        self.free_vmap_area_root.insert(VmapArea(self.vmalloc_start, self.vmalloc_end))
        self._register_check("free tree", [self.free_vmap_area_lock], self.check_free_tree)

    def _make_free_tree(self) -> RBTree:
        return RBTree(augmented=True, name="free_vmap_area_root")

    def alloc_free_space(self, size: int, align: int, vstart: int, vend: int) -> int | None:
        """``preload_this_cpu_lock`` + ``__alloc_vmap_area`` under ``free_vmap_area_lock``; the
        area carved is in the caller's hands.  None when nothing fits."""
        cpu = self.rt.cpu_id() % self.config.nr_cpus
        with self.free_vmap_area_lock:
            spare = self.ne_fit_preload_node
            spare[cpu] = True  # refilled before the lock; installed under it
            got = alloc_from_tree(self.free_vmap_area_root, size, align, vstart, vend,
                                  self.page_size)
            if got is None:
                return None
            addr, fit = got
            if fit is FitType.NE_FIT_TYPE:
                spare[cpu] = False  # NE_FIT consumed the spare for the new left node
            self._hand_take((addr, addr + size))
        return addr

    def check_free_tree(self) -> None:
        self.free_vmap_area_root.check()
        check_coalesced(self.free_vmap_area_root, "free tree")
