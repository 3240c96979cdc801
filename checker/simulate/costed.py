"""Shared structures as the virtual-time runtime sees them: every call costs time.

``VirtualRuntime.shared`` wraps the design's red-black trees and size-class pools in these
classes.  They forward every call to the real structure and first charge the calling model
thread for the walk, from the runtime's cost model:

- a tree call walks a search path of ``log2(size + 1)`` nodes (``node_ns`` each);
- when another CPU wrote the tree since this CPU last had its lines, part of the path misses
  in cache (``xfer_ns`` per line): the whole path for an augmented tree (a write propagates
  ``subtree_max_size`` up to the root), at most ``MAX_DIRTY`` lines for a plain one (a write
  dirties the node and the few around it that rebalancing touches);
- a read brings the lines here in shared state, so a write that follows it in the same
  critical section (lookup then erase, neighbours then merge) does not miss again;
- a pool call is one list operation on a list head (one line).

Introspection (iteration, ``check``, ``ranges``) is free: only checker code uses it between
runs.  Relies on ``impl.rbtree`` and ``impl.vmap_pool``; the runtime is only a type here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from impl.rbtree import RBTree, VmapArea
from impl.vmap_pool import VmapPools

if TYPE_CHECKING:
    from ..runtimes.virtual import VirtualRuntime

# Lines a write to a plain (non-augmented) red-black tree leaves dirty in the writer's cache:
# the node, its parent and sibling, as amortised rebalancing touches O(1) nodes.
MAX_DIRTY = 3


class CostedTree:
    """An ``RBTree`` seen through the cost model: each call charges a search path of
    ``log2(size + 1)`` nodes, missing in cache when another CPU wrote the tree last."""

    __slots__ = ("_t", "_rt", "_last_cpu", "_sharers", "name")

    def __init__(self, rt: VirtualRuntime, tree: RBTree) -> None:
        self._t = tree
        self._rt = rt
        self._last_cpu = -1
        self._sharers = 0
        self.name = tree.name

    def _walk(self, write: bool) -> None:
        rt = self._rt
        t = rt.current
        if t is None:
            return
        cpu = t.cpu
        depth = self._t.count.bit_length() or 1
        if self._last_cpu == cpu or self._sharers >> cpu & 1:
            # Lines already here: a read hits, a write after our own read only upgrades them.
            t.clock += depth * rt._node
        else:
            dirty = depth if self._t.augmented or depth < MAX_DIRTY else MAX_DIRTY
            dom = rt._dom
            last = self._last_cpu
            t.clock += depth * rt._node + dirty * (
                rt._xfer if dom[last] != dom[cpu] else rt._near)
            if not write:
                self._sharers |= 1 << cpu
        if write:
            self._last_cpu = cpu
            self._sharers = 0

    # Writes.
    def insert(self, node: VmapArea) -> VmapArea:
        self._walk(True)
        return self._t.insert(node)

    def erase(self, node: VmapArea) -> None:
        self._walk(True)
        self._t.erase(node)

    def propagate(self, node: VmapArea | None) -> None:
        self._walk(True)
        self._t.propagate(node)

    def detach_all(self) -> list[VmapArea]:
        self._walk(True)
        return self._t.detach_all()

    def clear(self) -> None:
        self._walk(True)
        self._t.clear()

    def insert_area(self, start: int, end: int, flags: int = 0) -> VmapArea:
        self._walk(True)
        return self._t.insert_area(start, end, flags)

    # Reads.
    def find_containing(self, addr: int) -> VmapArea | None:
        self._walk(False)
        return self._t.find_containing(addr)

    def find_exact(self, start: int) -> VmapArea | None:
        self._walk(False)
        return self._t.find_exact(start)

    def neighbours(self, start: int) -> tuple[VmapArea | None, VmapArea | None]:
        self._walk(False)
        return self._t.neighbours(start)

    def find_vmap_lowest_match(self, size: int, align: int, vstart: int,
                               adjust_search_size: bool) -> VmapArea | None:
        self._walk(False)
        return self._t.find_vmap_lowest_match(size, align, vstart, adjust_search_size)

    # Introspection (checker code, invariants): free of charge.
    def __len__(self) -> int:
        return self._t.count

    def __iter__(self) -> Iterator[VmapArea]:
        return iter(self._t)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._t, attr)

    def __repr__(self) -> str:
        return f"<costed {self._t.name}>"


class CostedPools:
    """A node's size-class pools: one list operation per call (O(1) list heads)."""

    __slots__ = ("_p", "_rt", "_last_cpu")

    def __init__(self, rt: VirtualRuntime, pools: VmapPools) -> None:
        self._p = pools
        self._rt = rt
        self._last_cpu = -1

    def _touch(self) -> None:
        rt = self._rt
        t = rt.current
        if t is None:
            return
        cpu = t.cpu
        last = self._last_cpu
        if last == cpu:
            t.clock += rt._node
        else:
            dom = rt._dom
            t.clock += rt._node + (rt._xfer if dom[last] != dom[cpu] else rt._near)
            self._last_cpu = cpu

    def add_va(self, idx: int, va: VmapArea) -> None:
        self._touch()
        self._p.add_va(idx, va)

    def del_va(self, idx: int, size: int, align: int, vstart: int, vend: int) -> VmapArea | None:
        self._touch()
        return self._p.del_va(idx, size, align, vstart, vend)

    def detach(self, idx: int) -> list[VmapArea]:
        self._touch()
        return self._p.detach(idx)

    def attach(self, idx: int, vas: list[VmapArea]) -> None:
        self._touch()
        self._p.attach(idx, vas)

    def nonempty(self) -> list[int]:
        self._touch()
        return self._p.nonempty()

    def __len__(self) -> int:
        return len(self._p)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._p, attr)
