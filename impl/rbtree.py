"""Red-black tree of vmap areas, optionally augmented with ``subtree_max_size``.

The kernel keeps free space in an augmented rbtree (``free_vmap_area_root``) where every node
caches the largest free block in its subtree, so that ``find_vmap_lowest_match`` can skip whole
subtrees; busy and lazy areas live in plain rbtrees.  This module is both: one class, with the
augmentation maintained on insert, erase, rotation and in-place resizing when ``augmented`` is
set.  Nodes are ``VmapArea`` objects with parent pointers, so predecessor/successor and the
lowest-match climb need no stack.

Maintaining the augmentation follows ``RB_DECLARE_CALLBACKS_MAX``: a rotation recomputes the two
rotated nodes; growing or shrinking a node propagates upwards and stops at the first ancestor
whose value does not change.  Erase propagates from the lowest changed node to the root without
the early stop, because the node moved into the erased one's place carries a copied value that
may be stale above the point where the early stop would end.

Relies on ``impl.intervals`` for the fit test.  Pure data structure: no locks, no runtime.
"""

from __future__ import annotations

from collections.abc import Iterator

from .errors import InvariantViolation
from .intervals import is_within_this_va, search_length

Range = tuple[int, int]


class VmapArea:
    """``struct vmap_area``: a half-open range, tree links, and the augmented value."""

    __slots__ = ("va_start", "va_end", "left", "right", "parent", "red",
                 "subtree_max_size", "flags")

    def __init__(self, va_start: int, va_end: int, flags: int = 0) -> None:
        self.va_start = va_start
        self.va_end = va_end
        self.left: VmapArea | None = None
        self.right: VmapArea | None = None
        self.parent: VmapArea | None = None
        self.red = True
        self.subtree_max_size = va_end - va_start
        self.flags = flags

    @property
    def size(self) -> int:
        return self.va_end - self.va_start

    @property
    def range(self) -> Range:
        return (self.va_start, self.va_end)

    def __repr__(self) -> str:
        return f"VmapArea({self.va_start:#x}, {self.va_end:#x})"


def _sms(n: VmapArea | None) -> int:
    return n.subtree_max_size if n is not None else 0


def _compute_sms(n: VmapArea) -> int:
    m = n.va_end - n.va_start
    left = n.left
    if left is not None and left.subtree_max_size > m:
        m = left.subtree_max_size
    right = n.right
    if right is not None and right.subtree_max_size > m:
        m = right.subtree_max_size
    return m


class RBTree:
    """Areas ordered by ``va_start``; disjointness is the callers' contract (checked by
    ``check``).  ``READS``/``WRITES`` classify methods for lockset race detection."""

    READS = frozenset({"find_containing", "find_exact", "neighbours", "first", "last",
                       "ranges", "find_vmap_lowest_match", "__len__", "__iter__", "check",
                       "successor", "predecessor", "is_empty"})
    WRITES = frozenset({"insert", "erase", "propagate", "clear", "detach_all", "merge_or_add",
                        "insert_area"})

    __slots__ = ("root", "augmented", "count", "name")

    def __init__(self, augmented: bool = False, name: str = "tree") -> None:
        self.root: VmapArea | None = None
        self.augmented = augmented
        self.count = 0
        self.name = name

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return self.count

    def is_empty(self) -> bool:
        return self.root is None

    def __iter__(self) -> Iterator[VmapArea]:
        node = self.first()
        while node is not None:
            yield node
            node = self.successor(node)

    def ranges(self) -> tuple[Range, ...]:
        return tuple((n.va_start, n.va_end) for n in self)

    def first(self) -> VmapArea | None:
        n = self.root
        if n is None:
            return None
        while n.left is not None:
            n = n.left
        return n

    def last(self) -> VmapArea | None:
        n = self.root
        if n is None:
            return None
        while n.right is not None:
            n = n.right
        return n

    @staticmethod
    def successor(n: VmapArea) -> VmapArea | None:
        if n.right is not None:
            n = n.right
            while n.left is not None:
                n = n.left
            return n
        p = n.parent
        while p is not None and n is p.right:
            n, p = p, p.parent
        return p

    @staticmethod
    def predecessor(n: VmapArea) -> VmapArea | None:
        if n.left is not None:
            n = n.left
            while n.right is not None:
                n = n.right
            return n
        p = n.parent
        while p is not None and n is p.left:
            n, p = p, p.parent
        return p

    def find_containing(self, addr: int) -> VmapArea | None:
        """``__find_vmap_area``: the area with ``va_start <= addr < va_end``."""
        n = self.root
        while n is not None:
            if addr < n.va_start:
                n = n.left
            elif addr >= n.va_end:
                n = n.right
            else:
                return n
        return None

    def find_exact(self, start: int) -> VmapArea | None:
        n = self.root
        while n is not None:
            if start < n.va_start:
                n = n.left
            elif start > n.va_start:
                n = n.right
            else:
                return n
        return None

    def neighbours(self, start: int) -> tuple[VmapArea | None, VmapArea | None]:
        """The last area starting before ``start`` and the first starting at or after it."""
        prev = nxt = None
        n = self.root
        while n is not None:
            if n.va_start < start:
                prev = n
                n = n.right
            else:
                nxt = n
                n = n.left
        return prev, nxt

    # ------------------------------------------------------------------ lowest match
    def find_vmap_lowest_match(self, size: int, align: int, vstart: int,
                               adjust_search_size: bool) -> VmapArea | None:
        """The kernel's search: descend towards the lowest block that can hold ``length``,
        testing each candidate with ``is_within_this_va``; on a dead end climb to the first
        parent whose right subtree may still fit, moving ``vstart`` past the parent so that the
        subtree already searched is not entered again."""
        length = search_length(size, align, adjust_search_size)
        node = self.root
        while node is not None:
            left = node.left
            if left is not None and left.subtree_max_size >= length and vstart < node.va_start:
                node = left
                continue
            if is_within_this_va(node.va_start, node.va_end, size, align, vstart):
                return node
            right = node.right
            if right is not None and right.subtree_max_size >= length:
                node = right
                continue
            # Roll back to the first right subtree that may satisfy the request.
            node = node.parent
            while node is not None:
                if is_within_this_va(node.va_start, node.va_end, size, align, vstart):
                    return node
                right = node.right
                if right is not None and right.subtree_max_size >= length \
                        and vstart <= node.va_start:
                    vstart = node.va_start + 1
                    node = right
                    break
                node = node.parent
        return None

    # ------------------------------------------------------------------ rotations
    def _rotate_left(self, x: VmapArea) -> None:
        y = x.right
        assert y is not None
        x.right = y.left
        if y.left is not None:
            y.left.parent = x
        p = x.parent
        y.parent = p
        if p is None:
            self.root = y
        elif x is p.left:
            p.left = y
        else:
            p.right = y
        y.left = x
        x.parent = y
        if self.augmented:
            y.subtree_max_size = x.subtree_max_size
            x.subtree_max_size = _compute_sms(x)

    def _rotate_right(self, x: VmapArea) -> None:
        y = x.left
        assert y is not None
        x.left = y.right
        if y.right is not None:
            y.right.parent = x
        p = x.parent
        y.parent = p
        if p is None:
            self.root = y
        elif x is p.right:
            p.right = y
        else:
            p.left = y
        y.right = x
        x.parent = y
        if self.augmented:
            y.subtree_max_size = x.subtree_max_size
            x.subtree_max_size = _compute_sms(x)

    # ------------------------------------------------------------------ augmentation
    def propagate(self, n: VmapArea | None) -> None:
        """``augment_tree_propagate_from``: after ``n`` grew or shrank in place."""
        if not self.augmented:
            return
        while n is not None:
            m = _compute_sms(n)
            if m == n.subtree_max_size:
                return
            n.subtree_max_size = m
            n = n.parent

    def _propagate_to_root(self, n: VmapArea | None) -> None:
        while n is not None:
            n.subtree_max_size = _compute_sms(n)
            n = n.parent

    # ------------------------------------------------------------------ insert
    def insert(self, node: VmapArea) -> VmapArea:
        """Link ``node`` by ``va_start``.  The caller guarantees it overlaps nothing."""
        parent = None
        n = self.root
        start = node.va_start
        while n is not None:
            parent = n
            n = n.left if start < n.va_start else n.right
        node.parent = parent
        node.left = node.right = None
        node.red = True
        if parent is None:
            self.root = node
        elif start < parent.va_start:
            parent.left = node
        else:
            parent.right = node
        self.count += 1
        if self.augmented:
            size = node.va_end - node.va_start
            node.subtree_max_size = size
            p = parent
            while p is not None and p.subtree_max_size < size:
                p.subtree_max_size = size
                p = p.parent
        self._insert_fixup(node)
        return node

    def insert_area(self, start: int, end: int, flags: int = 0) -> VmapArea:
        return self.insert(VmapArea(start, end, flags))

    def _insert_fixup(self, z: VmapArea) -> None:
        p = z.parent
        while p is not None and p.red:
            g = p.parent
            assert g is not None  # a red node is never the root
            if p is g.left:
                u = g.right
                if u is not None and u.red:
                    p.red = u.red = False
                    g.red = True
                    z = g
                    p = z.parent
                    continue
                if z is p.right:
                    self._rotate_left(p)
                    z, p = p, z
                p.red = False
                g.red = True
                self._rotate_right(g)
            else:
                u = g.left
                if u is not None and u.red:
                    p.red = u.red = False
                    g.red = True
                    z = g
                    p = z.parent
                    continue
                if z is p.left:
                    self._rotate_right(p)
                    z, p = p, z
                p.red = False
                g.red = True
                self._rotate_left(g)
            break
        assert self.root is not None
        self.root.red = False

    # ------------------------------------------------------------------ erase
    def _transplant(self, u: VmapArea, v: VmapArea | None) -> None:
        p = u.parent
        if p is None:
            self.root = v
        elif u is p.left:
            p.left = v
        else:
            p.right = v
        if v is not None:
            v.parent = p

    def erase(self, z: VmapArea) -> None:
        """Unlink ``z`` (``unlink_va``/``unlink_va_augment``)."""
        y_red = z.red
        if z.left is None:
            x = z.right
            x_parent = z.parent
            self._transplant(z, x)
            lowest = x_parent
        elif z.right is None:
            x = z.left
            x_parent = z.parent
            self._transplant(z, x)
            lowest = x_parent
        else:
            y = z.right
            while y.left is not None:
                y = y.left
            y_red = y.red
            x = y.right
            if y.parent is z:
                x_parent = y
                lowest = y
            else:
                x_parent = y.parent
                lowest = x_parent
                self._transplant(y, x)
                y.right = z.right
                y.right.parent = y
            self._transplant(z, y)
            y.left = z.left
            y.left.parent = y
            y.red = z.red
        z.left = z.right = z.parent = None
        self.count -= 1
        if self.augmented:
            self._propagate_to_root(lowest)
        if not y_red:
            self._erase_fixup(x, x_parent)

    def _erase_fixup(self, x: VmapArea | None, parent: VmapArea | None) -> None:
        while x is not self.root and (x is None or not x.red):
            assert parent is not None
            if x is parent.left:
                w = parent.right
                assert w is not None
                if w.red:
                    w.red = False
                    parent.red = True
                    self._rotate_left(parent)
                    w = parent.right
                    assert w is not None
                if (w.left is None or not w.left.red) and (w.right is None or not w.right.red):
                    w.red = True
                    x = parent
                    parent = x.parent
                else:
                    if w.right is None or not w.right.red:
                        assert w.left is not None
                        w.left.red = False
                        w.red = True
                        self._rotate_right(w)
                        w = parent.right
                        assert w is not None
                    w.red = parent.red
                    parent.red = False
                    if w.right is not None:
                        w.right.red = False
                    self._rotate_left(parent)
                    x = self.root
                    parent = None
            else:
                w = parent.left
                assert w is not None
                if w.red:
                    w.red = False
                    parent.red = True
                    self._rotate_right(parent)
                    w = parent.left
                    assert w is not None
                if (w.left is None or not w.left.red) and (w.right is None or not w.right.red):
                    w.red = True
                    x = parent
                    parent = x.parent
                else:
                    if w.left is None or not w.left.red:
                        assert w.right is not None
                        w.right.red = False
                        w.red = True
                        self._rotate_left(w)
                        w = parent.left
                        assert w is not None
                    w.red = parent.red
                    parent.red = False
                    if w.left is not None:
                        w.left.red = False
                    self._rotate_right(parent)
                    x = self.root
                    parent = None
        if x is not None:
            x.red = False

    def clear(self) -> None:
        self.root = None
        self.count = 0

    def detach_all(self) -> list[VmapArea]:
        """Take every area out at once (``list_replace_init`` of the purge list)."""
        nodes = list(self)
        self.clear()
        return nodes

    # ------------------------------------------------------------------ checking
    def check(self, name: str | None = None) -> None:
        """Red-black properties, BST order with disjoint areas, parent links, and (augmented)
        ``subtree_max_size`` recomputed from scratch at every node."""
        label = name or self.name
        root = self.root
        if root is None:
            if self.count:
                raise InvariantViolation(f"{label}: count", f"empty tree counts {self.count}")
            return
        if root.red:
            raise InvariantViolation(f"{label}: red-black", "the root is red")
        if root.parent is not None:
            raise InvariantViolation(f"{label}: links", "the root has a parent")
        seen = 0
        prev_end: int | None = None

        def walk(n: VmapArea | None) -> tuple[int, int]:
            """Returns (black height, true subtree max size)."""
            nonlocal seen, prev_end
            if n is None:
                return 1, 0
            for child in (n.left, n.right):
                if child is not None and child.parent is not n:
                    raise InvariantViolation(f"{label}: links", f"bad parent link below {n}")
            if n.red and ((n.left is not None and n.left.red)
                          or (n.right is not None and n.right.red)):
                raise InvariantViolation(f"{label}: red-black", f"red node {n} has a red child")
            lh, lm = walk(n.left)
            if n.va_start >= n.va_end:
                raise InvariantViolation(f"{label}: well-formed", f"empty area {n}")
            if prev_end is not None and n.va_start < prev_end:
                raise InvariantViolation(f"{label}: order",
                                         f"{n} starts before its predecessor ends ({prev_end:#x})")
            prev_end = n.va_end
            seen += 1
            rh, rm = walk(n.right)
            if lh != rh:
                raise InvariantViolation(f"{label}: red-black",
                                         f"black heights {lh} != {rh} below {n}")
            true_max = max(n.va_end - n.va_start, lm, rm)
            if self.augmented and n.subtree_max_size != true_max:
                raise InvariantViolation(
                    f"{label}: subtree_max_size",
                    f"{n} caches {n.subtree_max_size:#x}, its subtree's largest is {true_max:#x}")
            return lh + (0 if n.red else 1), true_max

        walk(root)
        if seen != self.count:
            raise InvariantViolation(f"{label}: count", f"{seen} nodes but count says {self.count}")


def lowest_match_linear(areas: list[Range], size: int, align: int, vstart: int) -> Range | None:
    """The oracle: the lowest block, scanning in address order, that fits the request."""
    for s, e in areas:
        if is_within_this_va(s, e, size, align, vstart):
            return (s, e)
    return None
