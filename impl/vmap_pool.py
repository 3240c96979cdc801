"""Size-class pools of one ``vmap_node`` (Linux 6.9+): whole freed areas kept for reuse.

``vn->pool[MAX_VA_SIZE_PAGES]`` holds, per size class ``idx = (size - 1) / PAGE_SIZE``, a list
of areas of exactly ``(idx + 1)`` pages that a purge handed back to the node instead of the
global free tree.  An allocation of that size on the node takes the *first* entry if its start
meets the alignment, and otherwise rotates it to the tail and misses (``node_pool_del_va``); a
purge puts areas back at the head (``node_pool_add_va``: ``list_add``) and decays the pools by
detaching a whole list, keeping part of it, and attaching the rest back.

Every method runs under the node's ``pool_lock`` (the caller takes it).  The kernel keeps a
``len`` counter beside each list and updates it with ``WRITE_ONCE`` outside the lock; here the
length is the list's own, so it cannot drift from the list.  Only non-empty classes are stored,
so that a node costs nothing until it pools something (the model checker builds a design per
explored execution).

Relies on ``impl.rbtree.VmapArea`` (the area objects move between trees and pools unchanged)
and ``impl.intervals`` for the size classes.
"""

from __future__ import annotations

from collections import deque

from .errors import InvariantViolation
from .intervals import MAX_VA_SIZE_PAGES, size_to_va_pool_idx
from .rbtree import VmapArea

Range = tuple[int, int]


class VmapPools:
    """The pools of one node.  ``READS``/``WRITES`` classify the methods for lockset race
    detection when the runtime wraps the object."""

    READS = frozenset({"nonempty", "ranges", "check", "total", "__len__"})
    WRITES = frozenset({"add_va", "del_va", "detach", "attach"})

    __slots__ = ("heads", "page_size")

    def __init__(self, page_size: int) -> None:
        self.heads: dict[int, deque[VmapArea]] = {}
        self.page_size = page_size

    def __len__(self) -> int:
        return self.total()

    def total(self) -> int:
        """Areas pooled over all classes (what the 6.9 shrinker's ``count`` reports)."""
        return sum(len(h) for h in self.heads.values())

    # ------------------------------------------------------------------ node_pool_*
    def add_va(self, idx: int, va: VmapArea) -> None:
        """``node_pool_add_va``: ``list_add`` at the head of the class list."""
        head = self.heads.get(idx)
        if head is None:
            self.heads[idx] = head = deque()
        head.appendleft(va)

    def del_va(self, idx: int, size: int, align: int, vstart: int, vend: int) -> VmapArea | None:
        """``node_pool_del_va``: take the first entry if it is aligned and passes the sanity
        check, rotate it to the tail if it is not aligned, else leave the pool as it is."""
        head = self.heads.get(idx)
        if not head:
            return None
        va = head[0]
        if va.va_start & (align - 1):
            head.rotate(-1)  # list_move_tail
            return None
        # The kernel's WARN_ON_ONCE sanity check: a mismatch leaves the entry where it is.
        if va.va_end - va.va_start != size or va.va_start < vstart or va.va_end > vend:
            return None
        head.popleft()
        if not head:
            del self.heads[idx]
        return va

    def nonempty(self) -> list[int]:
        """Classes that hold areas, in ascending order (the order ``decay_va_pool_node`` visits)."""
        return sorted(idx for idx, head in self.heads.items() if head)

    def detach(self, idx: int) -> list[VmapArea]:
        """``list_replace_init`` of a class list onto a local list: the pool is left empty."""
        head = self.heads.pop(idx, None)
        return list(head) if head else []

    def attach(self, idx: int, vas: list[VmapArea]) -> None:
        """Attach a partly decayed list back.  The kernel assumes (and the purge mutex makes
        sure) that nothing populated the class meanwhile; a model run that breaks this keeps
        both parts rather than losing one, and the conservation check reports the rest."""
        head = self.heads.get(idx)
        if head is None:
            self.heads[idx] = deque(vas)
        else:
            head.extend(vas)

    # ------------------------------------------------------------------ introspection
    def ranges(self) -> dict[int, tuple[Range, ...]]:
        """Class -> its areas in address order (pool order is not part of the ownership map)."""
        return {idx: tuple(sorted((va.va_start, va.va_end) for va in head))
                for idx, head in sorted(self.heads.items()) if head}

    def check(self, label: str) -> None:
        """Every entry is a well-formed area of its class's size; no area is pooled twice."""
        seen: set[int] = set()
        for idx, head in self.heads.items():
            if not 0 <= idx < MAX_VA_SIZE_PAGES:
                raise InvariantViolation(f"{label}: size class", f"pool index {idx} out of range")
            want = (idx + 1) * self.page_size
            for va in head:
                size = va.va_end - va.va_start
                if size != want or size_to_va_pool_idx(size, self.page_size) != idx:
                    raise InvariantViolation(
                        f"{label}: size class",
                        f"[{va.va_start:#x}, {va.va_end:#x}) of {size:#x} bytes sits in pool "
                        f"{idx}, whose areas are {want:#x} bytes")
                if id(va) in seen:
                    raise InvariantViolation(
                        f"{label}: single owner",
                        f"[{va.va_start:#x}, {va.va_end:#x}) is pooled twice")
                seen.add(id(va))
