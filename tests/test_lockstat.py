"""lock_stat: counting, contention detection, aggregation per class, lock-order edges.

Contention is made deterministic by observing the instrumented lock's clock: the waiting
thread's first clock read can only come from the contended path while the holder keeps the lock.
"""

from __future__ import annotations

import dataclasses
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checker import lockstat
from checker.lockstat import LockStatRegistry, StatLock, aggregate, build_report
from impl.config import VmapConfig
from impl.designs.global_ import GlobalDesign
from impl.runtime import LockKind
from impl.runtimes.threads import ThreadRuntime


def test_uncontended_acquisitions_are_counted_without_contention() -> None:
    lock = StatLock("a", "a", LockKind.SPIN)
    for _ in range(50):
        with lock:
            pass
    lock.acquire()
    lock.release()
    s = lock.statistics()
    assert (s.acquisitions, s.contentions, s.wait_total_ns) == (51, 0, 0)
    assert s.contention_ratio == 0.0
    assert s.hold_min_ns <= s.hold_mean_ns <= s.hold_max_ns
    assert not lock.locked()


def _contend_once(monkeypatch: pytest.MonkeyPatch, lock: StatLock) -> threading.Thread:
    """Hold ``lock`` while another thread runs ``waiter_site``; return once it has waited."""
    real_now = lockstat._now
    waiter_started_waiting = threading.Event()
    waiter: list[threading.Thread] = []

    def now() -> int:
        if waiter and threading.current_thread() is waiter[0]:
            waiter_started_waiting.set()
        return real_now()

    monkeypatch.setattr(lockstat, "_now", now)

    def waiter_site() -> None:
        with lock:
            pass

    lock.acquire()
    t = threading.Thread(target=waiter_site)
    waiter.append(t)
    t.start()
    assert waiter_started_waiting.wait(30), "the waiter never reached the lock"
    lock.release()
    t.join(30)
    return t


def test_a_waiting_thread_is_counted_as_a_contention_with_its_site(
        monkeypatch: pytest.MonkeyPatch) -> None:
    lock = StatLock("vmap_area_lock", "vmap_area_lock", LockKind.SPIN)
    _contend_once(monkeypatch, lock)
    s = lock.statistics()
    assert s.acquisitions == 2
    assert s.contentions == 1
    assert s.contention_ratio == 0.5
    assert s.wait_total_ns == s.wait_max_ns == s.wait_min_ns >= 0
    assert [name for name, _ in s.contention_points] == [
        "_contend_once.<locals>.waiter_site"]


def test_threads_on_different_locks_never_contend() -> None:
    reg = LockStatRegistry()
    locks = [reg(f"vn[{i}].busy.lock", "vmap_node.busy.lock", LockKind.SPIN) for i in range(4)]
    barrier = threading.Barrier(4)

    def body(lock: StatLock) -> None:
        barrier.wait()
        for _ in range(2000):
            with lock:
                pass

    threads = [threading.Thread(target=body, args=(lk,)) for lk in locks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rep = reg.statistics()
    assert rep.total.contentions == 0
    assert rep.dominant is None
    [cls] = rep.classes
    assert (cls.lock_class, cls.instances, cls.acquisitions) == ("vmap_node.busy.lock", 4, 8000)


def test_statistics_are_frozen() -> None:
    s = StatLock("a", "a", LockKind.SPIN).statistics()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.acquisitions = 3  # type: ignore[misc]


def test_aggregate_sums_counts_and_keeps_extremes() -> None:
    a = lockstat.LockStatistics("x[0]", "x", "spinlock", 1, 10, 2, 100, 70, 30, 50, 20, 1,
                                (("f", 2),))
    b = lockstat.LockStatistics("x[1]", "x", "spinlock", 1, 5, 1, 40, 40, 40, 25, 9, 2,
                                (("f", 1), ("g", 1)))
    idle = lockstat.LockStatistics("x[2]", "x", "spinlock", 1, 0, 0, 0, 0, 0, 0, 0, 0)
    c = aggregate("x", [a, b, idle])
    assert (c.instances, c.acquisitions, c.contentions) == (3, 15, 3)
    assert (c.wait_total_ns, c.wait_max_ns, c.wait_min_ns) == (140, 70, 30)
    assert (c.hold_total_ns, c.hold_max_ns, c.hold_min_ns) == (75, 20, 1)
    assert c.contention_points == (("f", 3), ("g", 1))
    assert c.lock_class == "x"


def test_the_global_design_takes_vmap_area_lock_three_times_per_alloc_free_pair() -> None:
    """alloc inserts and publishes va->vm (two acquisitions), free unlinks (one)."""
    reg = LockStatRegistry()
    with ThreadRuntime(lock_factory=reg) as rt:
        d = GlobalDesign(rt, VmapConfig(pages=1 << 12))
        d.free(d.alloc(4096))
    by_class = {c.lock_class: c for c in reg.statistics().classes}
    assert by_class["vmap_area_lock"].acquisitions == 3
    assert by_class["free_vmap_area_lock"].acquisitions == 1
    assert by_class["purge_vmap_area_lock"].acquisitions == 1
    assert by_class["vmap_purge_lock"].kind == "mutex"


# ---------------------------------------------------------------------- lock order
def test_nested_acquisition_records_an_edge_with_its_source() -> None:
    reg = LockStatRegistry(record_order=True)
    outer = reg("vmap_purge_lock", "vmap_purge_lock", LockKind.MUTEX)
    inner = reg("free_vmap_area_lock", "free_vmap_area_lock", LockKind.SPIN)

    def purge() -> None:
        with outer:
            assert reg.held_by_current_thread() == ["vmap_purge_lock"]
            with inner:
                pass

    purge()
    purge()
    assert reg.order_edges() == {
        ("vmap_purge_lock", "free_vmap_area_lock",
         "test_nested_acquisition_records_an_edge_with_its_source.<locals>.purge"): 2}
    assert reg.held_by_current_thread() == []


def test_an_edge_is_recorded_before_waiting_for_the_lock() -> None:
    """As lockdep validates before spinning: a thread blocked on B while holding A has already
    recorded A -> B, so an inversion that deadlocks at its first occurrence is in the graph."""
    import threading
    import time

    reg = LockStatRegistry(record_order=True)
    a = reg("vmap_area_lock", "vmap_area_lock", LockKind.SPIN)
    b = reg("purge_vmap_area_lock", "purge_vmap_area_lock", LockKind.SPIN)
    b.acquire()  # another holder keeps B

    def nest() -> None:
        with a, b:
            pass

    t = threading.Thread(target=nest)
    t.start()
    deadline = time.monotonic() + 5
    while not reg.order_edges() and time.monotonic() < deadline:
        time.sleep(0.01)
    edges = {(h, w) for h, w, _ in reg.order_edges()}
    assert t.is_alive() and edges == {("vmap_area_lock", "purge_vmap_area_lock")}
    b.release()
    t.join(5)
    assert not t.is_alive()


def test_sequential_acquisitions_record_no_edge() -> None:
    reg = LockStatRegistry(record_order=True)
    a = reg("a", "a", LockKind.SPIN)
    b = reg("b", "b", LockKind.SPIN)
    for _ in range(3):
        with a:
            pass
        b.acquire()
        b.release()
    assert reg.order_edges() == {}
    assert reg.statistics().order_edges == ()


def test_edges_are_not_recorded_without_the_flag() -> None:
    reg = LockStatRegistry()
    a, b = reg("a", "a", LockKind.SPIN), reg("b", "b", LockKind.SPIN)
    with a, b:
        pass
    assert reg.order_edges() == {}


# A program: a list of (lock index, acquire?) steps that a single thread can run, generated
# so that it only acquires locks it does not hold and releases locks it holds, in any order.
@st.composite
def lock_programs(draw: st.DrawFn) -> tuple[list[str], list[tuple[int, bool]]]:
    classes = draw(st.lists(st.sampled_from(["A", "B", "C"]), min_size=1, max_size=5))
    held: list[int] = []
    steps: list[tuple[int, bool]] = []
    for _ in range(draw(st.integers(0, 30))):
        free = [i for i in range(len(classes)) if i not in held]
        if held and (not free or draw(st.booleans())):
            i = draw(st.sampled_from(held))
            held.remove(i)
            steps.append((i, False))
        else:
            i = draw(st.sampled_from(free))
            held.append(i)
            steps.append((i, True))
    steps.extend((i, False) for i in reversed(held))
    return classes, steps


@given(lock_programs())
def test_counts_classes_and_edges_match_a_model(program: tuple[list[str], list[tuple[int, bool]]]
                                                ) -> None:
    classes, steps = program
    reg = LockStatRegistry(record_order=True)
    locks = [reg(f"l{i}", cls, LockKind.SPIN) for i, cls in enumerate(classes)]
    expected_acq = [0] * len(locks)
    expected_edges: dict[tuple[str, str], int] = {}
    held: list[int] = []
    for i, acquire in steps:
        if acquire:
            for h in held:
                key = (classes[h], classes[i])
                expected_edges[key] = expected_edges.get(key, 0) + 1
            locks[i].acquire()
            held.append(i)
            expected_acq[i] += 1
        else:
            locks[i].release()
            held.remove(i)
    rep = reg.statistics()
    assert [lk.acquisitions for lk in locks] == expected_acq
    assert rep.total.acquisitions == sum(expected_acq)
    assert rep.total.contentions == 0
    for c in rep.classes:
        members = [lk for lk in locks if lk.lock_class == c.lock_class]
        assert c.instances == len(members)
        assert c.acquisitions == sum(lk.acquisitions for lk in members)
    got: dict[tuple[str, str], int] = {}
    for held_cls, acq_cls, _src, n in rep.order_edges:
        got[(held_cls, acq_cls)] = got.get((held_cls, acq_cls), 0) + n
    assert got == expected_edges
    assert not any(lk.locked() for lk in locks)


def test_report_orders_classes_by_wait_and_names_the_dominant_one() -> None:
    quiet = lockstat.LockStatistics("q", "q", "spinlock", 1, 10, 0, 0, 0, 0, 5, 1, 0)
    hot = lockstat.LockStatistics("h", "h", "spinlock", 1, 10, 5, 900, 500, 10, 5, 1, 0)
    warm = lockstat.LockStatistics("w", "w", "spinlock", 1, 10, 1, 100, 100, 100, 5, 1, 0)
    rep = build_report([quiet, warm, hot])
    assert [c.lock_class for c in rep.classes] == ["h", "w", "q"]
    assert rep.dominant is not None and rep.dominant.lock_class == "h"
    assert rep.share_of_wait("h") == pytest.approx(0.9)
    assert rep.to_json()["dominant_class"] == "h"
