"""The spec explorer: exhaustive and not vacuous on correct specs, shortest counterexamples,
symmetry and reduction that change the state count but never the verdict, bounds that end a
search as incomplete, and the framework on small hand-built specs."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from spec.compile import Builder, Spec
from spec.explorer import explore
from spec.global_ import GlobalSpec
from spec.params import SpecParams
from spec.program import Alloc, Find, Free, Op, Purge, ThreadProgram, default_programs
from spec.protocol import HAND, Act, ActorDef, Sec, SpecAssertion
from spec.registry import build_spec, expected_sometimes


def params(threads: int = 2, ops: int = 1, pages: int = 4, lazy_max: int = 1, cpus: int = 2,
           zone_pages: int = 16) -> SpecParams:
    return SpecParams(default_programs(threads, ops, cpus), pages=pages, lazy_max=lazy_max,
                      nr_cpus=cpus, nr_nodes=cpus, zone_pages=zone_pages)


@pytest.mark.parametrize("name,p", [
    ("global", params(2, 2)),
    ("nodes", params(2, 2)),
    ("nodes", params(3, 1, zone_pages=1)),
    ("percpu", params(2, 2, pages=8, zone_pages=4)),
])
def test_correct_specs_are_ok_and_show_what_they_should(name: str, p: SpecParams) -> None:
    res = explore(build_spec(name, p))
    assert res.status == "ok", res.violation
    assert res.stats["complete"]
    expected = expected_sometimes(name, p)
    assert expected, "the configuration should expect some behaviour"
    assert not expected & set(res.missing_sometimes), res.sometimes


def test_symmetry_reduces_states_but_not_the_result() -> None:
    p = params(3, 1)
    on = explore(build_spec("global", p), symmetry=True)
    off = explore(build_spec("global", p), symmetry=False)
    assert on.status == off.status == "ok"
    assert on.stats["distinct_states"] < off.stats["distinct_states"]
    assert on.stats["depth"] == off.stats["depth"]


def test_max_states_and_timeout_make_the_search_incomplete() -> None:
    p = params(3, 2)
    capped = explore(build_spec("global", p), max_states=500)
    assert capped.status == "incomplete" and capped.reason == "max-states"
    assert capped.stats["distinct_states"] > 500 and not capped.stats["complete"]
    timed = explore(build_spec("global", p), timeout=0.0)
    assert timed.status == "incomplete" and timed.reason == "timeout"


# ---------------------------------------------------------------------- generated scenarios
@st.composite
def programs(draw: Any) -> tuple[ThreadProgram, ...]:
    threads = draw(st.integers(2, 3))
    out = []
    for i in range(threads):
        ops: list[Op] = []
        live: list[str] = []
        for k in range(draw(st.integers(1, 3))):
            choice = draw(st.sampled_from(["alloc", "free", "find", "purge"]))
            if choice == "alloc" or not live and choice in ("free", "find"):
                slot = f"s{k}"
                ops.append(Alloc(draw(st.integers(1, 2)), slot))
                live.append(slot)
            elif choice == "free":
                ops.append(Free(live.pop()))
            elif choice == "find":
                ops.append(Find(live[-1]))
            else:
                ops.append(Purge())
        out.append(ThreadProgram(i % 2, tuple(ops)))
    return tuple(out)


SPECS = ["global", "nodes", "percpu", "global-abba", "global-busy-unlocked",
         "nodes-pool-double"]


@settings(max_examples=40)
@given(programs(), st.sampled_from(SPECS), st.integers(0, 2))
def test_symmetry_and_reduction_never_change_the_verdict(
        progs: tuple[ThreadProgram, ...], name: str, lazy_max: int) -> None:
    p = SpecParams(progs, pages=4, lazy_max=lazy_max, nr_cpus=2, nr_nodes=2, zone_pages=2)
    results = {(sym, red): explore(build_spec(name, p), symmetry=sym, reduce=red,
                                   max_states=200_000)
               for sym in (True, False) for red in (True, False)}
    # An exploration that hit its state limit has no verdict to compare (without reduction
    # the same scenario can need many times the states); a scenario that even the fully
    # reduced exploration cannot finish says nothing.
    assume(results[(True, True)].status != "incomplete")
    verdicts = {k: (r.status, r.violation.kind if r.violation else None)
                for k, r in results.items() if r.status != "incomplete"}
    assert len(set(verdicts.values())) == 1, verdicts
    # Breadth first: the same shortest depth with or without symmetry.
    for red in (True, False):
        a, b = results[(True, red)], results[(False, red)]
        if a.violation is not None and b.violation is not None:
            assert a.violation.depth == b.violation.depth


def _bfs_min_violation_depth(spec: Spec, limit: int) -> int | None:
    """An independent breadth-first search without symmetry: the depth of the first state
    that breaks an invariant or where a step asserts."""
    succ = spec.make_successors(reduced=True)
    seen = {spec.init}
    level = [spec.init]
    for depth in range(limit + 1):
        nxt = []
        for s in level:
            if spec.check(s) is not None:
                return depth
            try:
                outs = succ(s)
            except SpecAssertion:
                return depth + 1
            for ns in outs:
                if ns not in seen:
                    seen.add(ns)
                    nxt.append(ns)
        level = nxt
    return None


def test_counterexamples_are_shortest() -> None:
    p = params(2, 1)
    spec = build_spec("global-busy-unlocked", p)
    res = explore(spec)
    assert res.violation is not None
    assert res.violation.depth == _bfs_min_violation_depth(build_spec("global-busy-unlocked", p),
                                                           40)


# ---------------------------------------------------------------------- hand-built specs
def _abba(ordered: bool) -> Spec:
    b = Builder("toy", 2)
    free = b.glob("free", 0b11, owner="mask")
    la, lb = b.lock("A"), b.lock("B")
    first = (la, lb)
    second = (la, lb) if ordered else (lb, la)
    b.actor(ActorDef("T0", [Sec("both", first)], signature=0))
    b.actor(ActorDef("T1", [Sec("both", second)], signature=1))
    del free
    return b.build()


def test_deadlock_found_with_its_wait_for_state() -> None:
    res = explore(_abba(ordered=False))
    assert res.status == "violation" and res.violation is not None
    assert res.violation.kind == "deadlock"
    assert res.violation.depth == 2
    assert "waits for" in res.violation.message


def test_no_deadlock_when_locks_are_ordered() -> None:
    assert explore(_abba(ordered=True)).status == "ok"


def _toy_move(lose: bool, locked: bool) -> Spec:
    b = Builder("toy", 2)
    free = b.glob("free", 0b11, owner="mask")
    busy = b.glob("busy", 0, owner="mask")
    lock = b.lock("L", protects=[free, busy])

    def take(page: int) -> Any:
        def body(S: list[Any], t: list[Any]) -> None:
            S[free] &= ~(1 << page)
            S[busy] |= 0 if lose else 1 << page
        return body

    for i in range(2):
        b.actor(ActorDef(f"T{i}", [Sec("take", (lock,) if locked else (), take(i),
                                       touches=(free,))], signature=i))
    return b.build()


def test_a_missing_lock_breaks_the_lock_protocol_at_the_access() -> None:
    res = explore(_toy_move(lose=False, locked=False))
    assert res.violation is not None and res.violation.invariant == "lock-protection"
    assert res.violation.depth == 1
    assert "without holding it" in res.violation.message
    assert explore(_toy_move(lose=False, locked=True)).status == "ok"


def test_losing_pages_breaks_conservation_at_once() -> None:
    res = explore(_toy_move(lose=True, locked=True))
    assert res.violation is not None and res.violation.invariant == "conservation"
    assert res.violation.depth == 1


def test_a_step_assertion_is_a_violation_with_the_failing_step() -> None:
    b = Builder("toy", 1)
    b.glob("free", 1, owner="mask")

    def boom(S: list[Any], t: list[Any]) -> None:
        if t[HAND] == 0:
            raise SpecAssertion("toy", "boom")
    b.actor(ActorDef("T0", [Act("boom", boom)], signature=0))
    res = explore(b.build())
    assert res.violation is not None and res.violation.invariant == "toy"
    assert res.violation.trace[-1].changes == {"assertion": "boom"}


class _InsertIntoFree(GlobalSpec):
    """Allocation puts the area back into the free space instead of the busy tree: every page
    still has one owner and the counter is right, but the thread's area is not where an
    allocation lives."""

    def alloc(self, op: Alloc, slot: int) -> list[Any]:
        instrs = super().alloc(op, slot)
        FREE = self.FREE

        def to_free(S: list[Any], t: list[Any]) -> None:
            area = t[slot] >> 8
            t[HAND] &= ~area
            S[FREE] |= area
        return [Sec("insert: hand -> free (wrong)", (self.L_FREE,), to_free, touches=(FREE,))
                if isinstance(i, Sec) and i.what.startswith("insert") else i for i in instrs]


def test_an_allocation_outside_the_busy_tree_breaks_placement() -> None:
    res = explore(_InsertIntoFree(params(2, 1)).build())
    assert res.violation is not None and res.violation.invariant == "allocated"
    assert "is in no busy tree" in res.violation.message
