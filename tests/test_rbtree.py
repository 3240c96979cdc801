"""The augmented red-black tree: structure after random inserts/erases/resizes, and the
kernel's lowest-match search against a linear scan."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from impl.freespace import merge_or_add_vmap_area
from impl.rbtree import RBTree, VmapArea, lowest_match_linear

P = 4096


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 200)), max_size=200))
def test_random_inserts_and_erases_keep_every_property(ops: list[tuple[bool, int]]) -> None:
    tree = RBTree(augmented=True)
    present: dict[int, VmapArea] = {}
    for insert, slot in ops:
        start = slot * 4 * P
        if insert and start not in present:
            present[start] = tree.insert(VmapArea(start, start + (slot % 3 + 1) * P))
        elif not insert and start in present:
            tree.erase(present.pop(start))
        tree.check()
    assert [n.va_start for n in tree] == sorted(present)


@given(st.sets(st.integers(0, 300), max_size=120), st.integers(1, 6), st.integers(0, 5),
       st.integers(0, 300))
def test_lowest_match_equals_linear_scan(slots: set[int], pages: int, align_shift: int,
                                         vstart_slot: int) -> None:
    tree = RBTree(augmented=True)
    for s in slots:
        # blocks of varying sizes at varying alignments
        start = s * 8 * P + (s % 4) * P
        tree.insert(VmapArea(start, start + (s % 5 + 1) * P))
    size, align, vstart = pages * P, P << align_shift, vstart_slot * 8 * P
    got = tree.find_vmap_lowest_match(size, align, vstart, False)
    assert (got.range if got else None) == lowest_match_linear(list(tree.ranges()), size, align, vstart)


def test_neighbours_predecessor_successor() -> None:
    tree = RBTree()
    nodes = [tree.insert(VmapArea(i * 2 * P, i * 2 * P + P)) for i in range(50)]
    for i, n in enumerate(nodes):
        assert tree.predecessor(n) is (nodes[i - 1] if i else None)
        assert tree.successor(n) is (nodes[i + 1] if i < 49 else None)
    assert tree.neighbours(7 * 2 * P) == (nodes[6], nodes[7])
    assert tree.find_containing(7 * 2 * P + 5) is nodes[7]
    assert tree.find_containing(7 * 2 * P + P) is None


def test_merge_or_add_double_merge_keeps_augmentation() -> None:
    tree = RBTree(augmented=True)
    for i in range(64):
        merge_or_add_vmap_area(tree, i * 2 * P, i * 2 * P + P)
    for i in range(63):  # fill every hole: each insert merges with both neighbours
        merge_or_add_vmap_area(tree, i * 2 * P + P, i * 2 * P + 2 * P)
        tree.check()
    assert tree.ranges() == ((0, 127 * P),)
