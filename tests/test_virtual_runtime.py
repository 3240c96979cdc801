"""The virtual-time runtime: clocks, FIFO hand-off, blocking, deadlocks, work, costed trees."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checker.runtimes.virtual import SimulationError, VirtualRuntime
from checker.simulate.costed import MAX_DIRTY, CostedTree
from checker.simulate.costs import CostModel
from checker.simulate.topology import THREADRIPPER_3970X, Topology
from impl.config import VmapConfig
from impl.designs.global_ import GlobalDesign
from impl.rbtree import RBTree, VmapArea
from impl.runtime import LockKind

# Hand-off and remote acquisition cost 1 ns; nothing else costs anything.
UNIT = CostModel(call_ns=0.0, node_ns=0.0, lock_ns=0.0, xfer_ns=1.0, tlb_ns=0.0)


def test_fifo_hand_off_in_request_order() -> None:
    rt = VirtualRuntime(UNIT, nr_cpus=3)
    lock = rt.lock("L")
    grants: list[tuple[str, float]] = []

    def body(name: str) -> None:
        with lock:
            grants.append((name, rt.now()))
            rt.charge(10.0)

    for i, start in enumerate((0.0, 1.0, 2.0)):
        rt.spawn(f"T{i}", i, lambda i=i: body(f"T{i}"), start)
    rt.run()
    # T0: remote acquisition (1 ns); T1 asked at 1, T0 released at 11, hand-off 1 -> 12;
    # T2 asked at 2, T1 released at 22 -> 23.
    assert grants == [("T0", 1.0), ("T1", 12.0), ("T2", 23.0)]
    assert lock.acquisitions == 3 and lock.contentions == 2
    assert lock.wait_ns == pytest.approx(11.0 + 21.0)
    assert rt.makespan == pytest.approx(33.0 - 0.0)


def test_uncontended_local_acquire_costs_lock_ns_only() -> None:
    rt = VirtualRuntime(CostModel(call_ns=0, node_ns=0, lock_ns=5, xfer_ns=100, tlb_ns=0), 1)
    lock = rt.lock("L")

    def body() -> None:
        for _ in range(3):
            with lock:
                pass

    rt.spawn("T0", 0, body)
    rt.run()
    # First acquisition pulls the line from nowhere (remote), the next two hit locally.
    assert rt.threads[0].end == pytest.approx(105 + 5 + 5)
    assert lock.contentions == 0


def test_lock_held_across_a_scheduling_point_queues_waiters() -> None:
    rt = VirtualRuntime(UNIT, nr_cpus=3)
    outer, inner = rt.lock("outer", kind=LockKind.MUTEX), rt.lock("inner")
    order: list[str] = []

    def holder() -> None:
        with outer:
            rt.charge(5.0)
            with inner:  # a scheduling point while holding outer
                rt.charge(5.0)
            order.append("holder")

    def waiter(name: str) -> None:
        with outer:
            order.append(name)

    rt.spawn("H", 0, holder, 0.0)
    rt.spawn("W1", 1, lambda: waiter("W1"), 2.0)
    rt.spawn("W2", 2, lambda: waiter("W2"), 3.0)
    rt.run()
    assert order == ["holder", "W1", "W2"]
    assert outer.contentions == 2


def test_abba_deadlock_is_reported() -> None:
    rt = VirtualRuntime(UNIT, nr_cpus=2)
    a, b = rt.lock("A"), rt.lock("B")

    def ab() -> None:
        with a:
            rt.charge(5.0)
            with b:
                pass

    def ba() -> None:
        with b:
            rt.charge(5.0)
            with a:
                pass

    rt.spawn("T0", 0, ab)
    rt.spawn("T1", 1, ba)
    with pytest.raises(SimulationError, match="blocked forever"):
        rt.run()


def test_no_deadlock_when_locks_are_taken_in_one_order() -> None:
    rt = VirtualRuntime(UNIT, nr_cpus=2)
    a, b = rt.lock("A"), rt.lock("B")

    def ab() -> None:
        with a:
            rt.charge(5.0)
            with b:
                pass

    rt.spawn("T0", 0, ab)
    rt.spawn("T1", 1, ab)
    rt.run()
    assert all(t.done for t in rt.threads)


def test_exception_in_a_thread_stops_the_run() -> None:
    rt = VirtualRuntime(UNIT, nr_cpus=2)
    lock = rt.lock("L")

    def bad() -> None:
        with lock:
            raise ValueError("boom")

    def good() -> None:
        with lock:
            rt.charge(1.0)

    rt.spawn("T0", 0, bad)
    rt.spawn("T1", 1, good, 0.5)
    with pytest.raises(SimulationError, match="T0 raised ValueError: boom"):
        rt.run()


def test_work_runs_on_its_own_thread_from_the_scheduling_time() -> None:
    rt = VirtualRuntime(UNIT, nr_cpus=1)
    seen: list[float] = []

    def drain() -> None:
        seen.append(rt.now())

    work = rt.work("drain", drain)

    def body() -> None:
        rt.charge(7.0)
        assert work.schedule()
        assert not work.schedule()  # already pending
        rt.charge(100.0)

    rt.spawn("T0", 0, body)
    rt.run()
    assert seen == [7.0] and work.runs == 1
    assert rt.first_drain_end == pytest.approx(7.0)


def test_atomic_line_serialises_read_modify_writes() -> None:
    rt = VirtualRuntime(CostModel(call_ns=0, node_ns=0, lock_ns=2, xfer_ns=10, tlb_ns=0), 2)
    counter = rt.atomic("nr")

    def body() -> None:
        counter.add_return(1)

    rt.spawn("T0", 0, body, 0.0)
    rt.spawn("T1", 1, body, 0.0)
    rt.run()
    assert counter.value == 2
    # T0 takes the line (12 ns); T1 asked at 0, waits for it, then pays its own transfer.
    assert sorted(t.end for t in rt.threads) == [12.0, 24.0]
    assert counter.contentions == 1


def test_tlb_flush_costs_per_cpu() -> None:
    rt = VirtualRuntime(CostModel(call_ns=0, node_ns=0, lock_ns=0, xfer_ns=0, tlb_ns=3), 8)
    rt.spawn("T0", 0, lambda: rt.flush_tlb_kernel_range(0, 4096))
    rt.run()
    assert rt.threads[0].end == 24.0 and rt.tlb_flushes == 1


@given(st.integers(min_value=0, max_value=200))
def test_costed_tree_charges_depth_and_misses(n: int) -> None:
    costs = CostModel(call_ns=0, node_ns=1, lock_ns=0, xfer_ns=100, tlb_ns=0)
    rt = VirtualRuntime(costs, nr_cpus=2)
    tree = RBTree(name="t")
    for i in range(n):
        tree.insert(VmapArea(2 * i, 2 * i + 1))
    costed = CostedTree(rt, tree)
    clocks: list[float] = []

    def reader() -> None:
        t0 = rt.now()
        costed.find_containing(0)
        clocks.append(rt.now() - t0)
        t0 = rt.now()
        costed.find_containing(0)  # now in this CPU's cache
        clocks.append(rt.now() - t0)

    rt.spawn("R", 1, reader)
    rt.run()
    depth = max(1, n.bit_length())
    assert clocks == [depth + min(depth, MAX_DIRTY) * 100, depth]


def test_design_under_virtual_time_keeps_its_invariants() -> None:
    rt = VirtualRuntime(CostModel(call_ns=50, node_ns=2, lock_ns=10, xfer_ns=80, tlb_ns=100), 4)
    d = GlobalDesign(rt, VmapConfig(pages=4096, nr_cpus=4, lazy_max=64))
    ps = d.page_size

    def body() -> None:
        for _ in range(200):
            rt.call()
            a = d.alloc(2 * ps)
            rt.call()
            d.free(a)
            rt.iteration_done()

    for i in range(4):
        rt.spawn(f"T{i}", i, body, float(i))
    rt.run()
    assert d.purges > 0 and rt.tlb_flushes == d.purges
    d.purge()
    d.check_invariants(at_rest=True)
    assert all(len(t.samples) == 200 for t in rt.threads)
    assert any(lk.contentions for lk in rt.locks)


# ---------------------------------------------------------------- topology and hand-off rule
def _two_domains(near_first: bool) -> Topology:
    """CPUs 0, 1 share a cache domain, CPU 2 is alone in another; near lines cost a quarter."""
    return Topology("test", (0, 0, 1), (0, 1, 2), near_ratio=0.25, near_first=near_first)


def _hand_offs(topology: Topology | None) -> tuple[list[tuple[str, float]], VirtualRuntime]:
    """H (CPU 0) takes the lock at 0 (a first touch: far, 8) and holds it 8..18; F (CPU 2,
    far) asks at 1, N (CPU 1, near to H) at 2."""
    rt = VirtualRuntime(CostModel(call_ns=0, node_ns=0, lock_ns=0, xfer_ns=8, tlb_ns=0), 3,
                        topology=topology)
    lock = rt.lock("L")
    grants: list[tuple[str, float]] = []

    def body(name: str, hold: float) -> None:
        with lock:
            grants.append((name, rt.now()))
            rt.charge(hold)

    rt.spawn("H", 0, lambda: body("H", 10.0), 0.0)
    rt.spawn("F", 2, lambda: body("F", 10.0), 1.0)
    rt.spawn("N", 1, lambda: body("N", 10.0), 2.0)
    rt.run()
    return grants, rt


def test_default_topology_is_flat_and_fifo() -> None:
    grants, rt = _hand_offs(None)
    assert rt.topology == Topology.flat(3)
    # FIFO: F (asked first) at 18 + 8, then N at 36 + 8.
    assert grants == [("H", 8.0), ("F", 26.0), ("N", 44.0)]


def test_a_transfer_inside_a_cache_domain_costs_less() -> None:
    grants, _ = _hand_offs(_two_domains(near_first=False))
    # FIFO keeps the order; H -> F and F -> N cross domains at full price.
    assert grants == [("H", 8.0), ("F", 26.0), ("N", 44.0)]
    # A near hand-off (H on CPU 0 to N on CPU 1) costs 8 * 0.25 = 2.
    rt = VirtualRuntime(CostModel(call_ns=0, node_ns=0, lock_ns=0, xfer_ns=8, tlb_ns=0), 3,
                        topology=_two_domains(near_first=False))
    lock = rt.lock("L")
    got: dict[str, float] = {}

    def body(name: str) -> None:
        with lock:
            got[name] = rt.now()
            rt.charge(10.0)

    rt.spawn("H", 0, lambda: body("H"), 0.0)
    rt.spawn("N", 1, lambda: body("N"), 1.0)
    rt.run()
    assert got == {"H": 8.0, "N": 20.0}  # 18 + 2, against 18 + 8 across domains


def test_near_first_hand_off_prefers_the_releasers_domain() -> None:
    grants, rt = _hand_offs(_two_domains(near_first=True))
    # H releases at 18: N (same domain, asked at 2) goes before F (asked at 1): 18 + 2 = 20;
    # F gets it when N releases at 30, one far transfer later: 38.
    assert grants == [("H", 8.0), ("N", 20.0), ("F", 38.0)]
    lock = rt.locks[0]
    assert lock.acquisitions == 3 and lock.contentions == 2
    assert lock.wait_ns == pytest.approx((20.0 - 2.0) + (38.0 - 1.0))


def test_near_first_never_passes_over_a_waiter_that_has_not_asked_yet() -> None:
    rt = VirtualRuntime(CostModel(call_ns=0, node_ns=0, lock_ns=0, xfer_ns=8, tlb_ns=0), 3,
                        topology=_two_domains(near_first=True))
    lock = rt.lock("L")
    grants: list[str] = []

    def body(name: str) -> None:
        with lock:
            grants.append(name)
            rt.charge(10.0)

    rt.spawn("H", 0, lambda: body("H"), 0.0)
    rt.spawn("F", 2, lambda: body("F"), 1.0)
    rt.spawn("N", 1, lambda: body("N"), 19.0)  # asks after H's release at 18
    rt.run()
    assert grants == ["H", "F", "N"]


def test_threadripper_placement_spreads_over_ccxs_first() -> None:
    top = THREADRIPPER_3970X
    assert top.nr_cpus == 64 and len(set(top.domain)) == 8
    for jobs, per_domain in ((8, 1), (16, 2), (32, 4), (64, 8)):
        cpus = top.place(jobs)
        assert len(set(cpus)) == jobs
        counts = [sum(1 for c in cpus if top.domain[c] == d) for d in range(8)]
        assert counts == [per_domain] * 8
    assert all(c < 32 for c in top.place(32))  # SMT siblings only past one job per core


def test_bad_topologies_are_rejected() -> None:
    with pytest.raises(ValueError):
        Topology("x", (0, 1), (0, 0))
    with pytest.raises(ValueError):
        Topology("x", (0, 1), (0, 1), near_ratio=2.0)
    with pytest.raises(ValueError):
        VirtualRuntime(UNIT, 4, topology=Topology.flat(2))
