"""The lock-order graph and the lockset detector on hand-made event streams: each must find
what is there and nothing else."""

from __future__ import annotations

from checker.analyses.lockgraph import LockGraphObserver, NestingEdge, from_edges
from checker.analyses.lockset import LocksetObserver
from checker.events import ACCESS, ACQUIRE, Event


def acquire(seq: int, thread: str, lock: str, held: tuple[str, ...], kind: str = "spinlock",
            cls: str | None = None) -> Event:
    return Event(seq, seq, thread, 0, 0, ACQUIRE, lock, cls or lock, kind,
                 tuple((h, h) for h in held), "impl/designs/x.py", 10 + seq, "f", "op")


def access(seq: int, thread: str, obj: str, held: tuple[str, ...], write: bool) -> Event:
    return Event(seq, seq, thread, 0, 0, ACCESS, obj, None, None, tuple((h, h) for h in held),
                 "impl/designs/x.py", 20 + seq, "g", "op", "write" if write else "read", "insert")


def test_opposite_nesting_is_a_cycle_even_in_one_thread() -> None:
    obs = LockGraphObserver()
    for ev in (acquire(1, "T0", "B", ("A",)), acquire(2, "T0", "A", ("B",))):
        obs.on_event(ev)
    found = obs.on_execution_end(None)
    assert [f.kind for f in found] == ["lock-order"]
    assert "A -> B" in found[0].message and "B -> A" in found[0].message
    assert "x.py:11" in found[0].message and "x.py:12" in found[0].message
    assert obs.on_execution_end(None) == []  # reported once


def test_consistent_nesting_is_not_a_cycle() -> None:
    g = from_edges([NestingEdge("A", "B"), NestingEdge("B", "C"), NestingEdge("A", "C")])
    assert g.cycles() == [] and g.findings() == []
    dot = g.to_dot()
    assert '"A" -> "B"' in dot and "red" not in dot


def test_cycle_is_red_in_dot() -> None:
    g = from_edges([NestingEdge("A", "B", "x.py:1"), NestingEdge("B", "A", "x.py:2")])
    assert "color=red" in g.to_dot()


def test_mutex_under_spinlock_is_flagged() -> None:
    g = from_edges([NestingEdge("spin", "mtx", acquired_kind="mutex", held_kind="spinlock")])
    assert any("sleeping in atomic context" in f.message for f in g.findings())
    ok = from_edges([NestingEdge("mtx", "spin", acquired_kind="spinlock", held_kind="mutex")])
    assert ok.findings() == []


def test_same_class_nesting_unless_declared() -> None:
    e = NestingEdge("vmap_node.busy.lock", "vmap_node.busy.lock")
    assert from_edges([e]).findings()
    assert from_edges([e], nested_ok=["vmap_node.busy.lock"]).findings() == []


def test_unprotected_write_after_sharing_is_a_race() -> None:
    obs = LocksetObserver()
    for ev in (access(1, "T0", "tree", ("L",), True), access(2, "T1", "tree", ("L",), True),
               access(3, "T1", "tree", (), True)):
        obs.on_event(ev)
    found = obs.on_execution_end(None)
    assert [f.kind for f in found] == ["race"]
    assert "tree" in found[0].message and "T0" in found[0].message and "T1" in found[0].message


def test_initialisation_before_sharing_and_consistent_locking_are_not_races() -> None:
    obs = LocksetObserver()
    for ev in (access(1, "T0", "tree", (), True),  # initialisation, unlocked, exclusive
               access(2, "T0", "tree", (), True),
               access(3, "T1", "tree", ("L",), True), access(4, "T0", "tree", ("L", "M"), True),
               access(5, "T1", "tree", ("L",), False)):
        obs.on_event(ev)
    assert obs.on_execution_end(None) == []


def test_read_only_sharing_is_not_a_race() -> None:
    obs = LocksetObserver()
    for ev in (access(1, "T0", "t", (), True), access(2, "T1", "t", (), False),
               access(3, "T0", "t", (), False)):
        obs.on_event(ev)
    assert obs.on_execution_end(None) == []
