"""The controlled runtime: scheduling points, events, lock misuse, work threads, teardown."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from checker.designs import load_design_file, resolve_design
from checker.events import ACCESS, ACQUIRE, ATOMIC, OP_END, OP_START, RELEASE, WORK, Event
from checker.explore.execution import ExecutionSettings, run_execution
from checker.runtimes.controlled import ControlledRuntime
from checker.scenario import Scenario, default_scenario
from impl.config import VmapConfig
from impl.runtime import LockKind
from spec.program import Alloc, Free, Purge, ThreadProgram

DESIGNS = Path(__file__).parent / "designs"
ListAllocator = load_design_file(DESIGNS / "abba.py", "AbbaFixedDesign")


class FirstEnabled:
    """Keeps the running thread while it can run, else the lowest enabled one."""

    def __init__(self) -> None:
        self.prev: int | None = None

    def choose(self, rt: ControlledRuntime, enabled: Sequence[int]) -> int | None:
        tid = self.prev if self.prev in enabled else enabled[0]
        self.prev = tid
        return tid


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.starts = 0

    def on_execution_start(self, design: object, scenario: object) -> None:
        self.starts += 1

    def on_event(self, event: Event) -> None:
        self.events.append(event)

    def on_execution_end(self, outcome: object) -> list[object]:
        return []


def scenario(*programs: tuple[int, tuple[object, ...]], pages: int = 4, lazy_max: int = 1,
             cpus: int = 2) -> Scenario:
    return Scenario(tuple(ThreadProgram(cpu, ops) for cpu, ops in programs),  # type: ignore[arg-type]
                    VmapConfig(pages=pages, nr_cpus=cpus, lazy_max=lazy_max), "test")


def run(design: type, sc: Scenario, **kw: object):  # type: ignore[no-untyped-def]
    return run_execution(design, sc, FirstEnabled(), ExecutionSettings(**kw))  # type: ignore[arg-type]


def test_events_name_thread_cpu_location_and_locks_held_before() -> None:
    rec = Recorder()
    out = run(ListAllocator, default_scenario(threads=2, ops=1, pages=4), observers=[rec])
    assert out.status == "ok"
    assert rec.starts == 1
    assert [e.seq for e in rec.events] == list(range(len(rec.events)))
    assert rec.events == out.events
    acquires = [e for e in out.events if e.kind == ACQUIRE]
    assert {e.thread for e in acquires} == {"T0", "T1"}
    assert {e.cpu for e in acquires if e.thread == "T1"} == {1}
    nested = [e for e in acquires if e.obj == "busy_lock" and e.op and "alloc" in e.op]
    assert nested and all(e.held == (("free_lock", "free_lock"),) for e in nested)
    assert all(e.file.endswith("abba.py") and e.line > 0 and e.function for e in acquires)
    assert all(e.lock_kind == "spinlock" for e in acquires)
    releases = [e for e in out.events if e.kind == RELEASE]
    assert all((e.obj, e.lock_class) in e.held for e in releases)  # held before the release
    kinds = [e.kind for e in out.events if e.thread == "T0"]
    assert kinds[0] == OP_START and kinds[-1] == OP_END


def test_steps_are_the_scheduling_points_and_schedule_replays() -> None:
    out = run(ListAllocator, default_scenario(threads=2, ops=1, pages=4))
    points = [e for e in out.events if e.kind in (ACQUIRE, RELEASE)]
    assert len(points) == len(out.steps)
    assert [p.step for p in points] == list(range(len(out.steps)))


class _Misuse(ListAllocator):  # type: ignore[misc, valid-type]
    how = ""

    def _alloc(self, size: int, align: int, vstart: int, vend: int) -> int:
        if self.how == "release":
            self.busy_lock.release()
        if self.how == "twice":
            with self.free_lock:
                self.free_lock.acquire()
        if self.how == "leak":
            self.free_lock.acquire()
            return int(self.carve(size, align, vstart, vend))
        return int(super()._alloc(size, align, vstart, vend))


@pytest.mark.parametrize("how, text", [
    ("release", "released busy_lock which it does not hold"),
    ("twice", "acquired free_lock while already holding it"),
    ("leak", "returned from a0 = alloc(1) holding free_lock"),
])
def test_lock_misuse_is_an_exception_finding(how: str, text: str) -> None:
    cls = type(f"Misuse_{how}", (_Misuse,), {"how": how})
    out = run(cls, scenario((0, (Alloc(1, "a0"),))))
    assert out.status == "violation"
    (f,) = out.findings
    assert f.kind == "exception"
    assert f.message.startswith("lock misuse: ")
    assert text in f.message


def test_mutex_under_spinlock_is_sleeping_in_atomic_context() -> None:
    class MutexInside(ListAllocator):  # type: ignore[misc, valid-type]
        def __init__(self, *a: object, **k: object) -> None:
            super().__init__(*a, **k)
            self.purge_mutex = self._new_lock("purge_mutex", kind=LockKind.MUTEX)

        def _alloc(self, size: int, align: int, vstart: int, vend: int) -> int:
            with self.free_lock:
                with self.purge_mutex:
                    pass
            return int(super()._alloc(size, align, vstart, vend))

    out = run(MutexInside, scenario((0, (Alloc(1, "a0"),))))
    (f,) = out.findings
    assert f.message.startswith("lock misuse: sleeping in atomic context")
    assert "purge_mutex" in f.message and "free_lock" in f.message


def test_correct_design_has_no_misuse_findings() -> None:
    out = run(ListAllocator, default_scenario(threads=2, ops=2, pages=4))
    assert out.status == "ok" and not out.findings


def test_work_runs_as_its_own_thread_on_the_cpu_that_queued_it() -> None:
    glob = resolve_design("global")
    # T1 on cpu1 frees 2 pages: over lazy_max=1, so it queues the drain.
    out = run(glob, scenario((0, (Alloc(1, "a"),)), (1, (Alloc(2, "b"), Free("b")))))
    assert out.status == "ok"
    work = [e for e in out.events if e.thread == "drain_vmap_work"]
    assert work and {e.cpu for e in work} == {1}
    assert [e.detail for e in work if e.kind == WORK] == ["start", "end"]
    queued = [e for e in out.events if e.kind == WORK and e.detail == "schedule"]
    assert [e.thread for e in queued] == ["T1"]
    assert out.drain_ran and "drain_vmap_work" in out.thread_names


def test_atomics_are_scheduling_points_with_their_values() -> None:
    glob = resolve_design("global")
    out = run(glob, scenario((0, (Alloc(1, "a"), Free("a")))))
    adds = [e for e in out.events if e.kind == ATOMIC and e.obj == "vmap_lazy_nr"]
    assert adds and adds[0].detail == "add_return -> 1" and adds[0].access == "write"


def test_shared_cell_accesses_are_visible_without_asking() -> None:
    lost = resolve_design("global-lazy-nonatomic")
    out = run(lost, scenario((0, (Alloc(1, "a"), Free("a")))))
    acc = [e for e in out.events if e.kind == ACCESS and e.obj == "vmap_lazy_nr"]
    assert [(e.access, e.detail) for e in acc][:2] == [("read", "get"), ("write", "put")]


def test_track_access_makes_structure_calls_scheduling_points() -> None:
    glob = resolve_design("global")
    plain = run(glob, scenario((0, (Alloc(1, "a"), Free("a")))))
    tracked = run(glob, scenario((0, (Alloc(1, "a"), Free("a")))), track_access=True)
    assert not [e for e in plain.events if e.kind == ACCESS]
    trees = {e.obj for e in tracked.events if e.kind == ACCESS}
    assert "vmap_area_root" in trees and "free_vmap_area_root" in trees
    assert len(tracked.steps) > len(plain.steps)
    assert tracked.status == "ok"


def test_deadlock_unwinds_every_thread() -> None:
    abba = load_design_file(DESIGNS / "abba.py", "AbbaDesign")

    class Forced:
        """T0 allocates and starts its free; then T1 takes free_lock: ABBA."""

        def __init__(self) -> None:
            self.order = [0, 0, 0, 0, 0, 1]

        def choose(self, rt: ControlledRuntime, enabled: Sequence[int]) -> int | None:
            return self.order.pop(0) if self.order else enabled[0]

    out = run_execution(abba, scenario((0, (Alloc(1, "a"), Free("a"))), (1, (Alloc(1, "b"),))),
                        Forced(), ExecutionSettings())
    (f,) = out.findings
    assert f.kind == "deadlock"
    assert f.trace["cycle"] == ["T0", "T1"] or f.trace["cycle"] == ["T1", "T0"]
    waits = {b["thread"]: b["waits_for"] for b in f.trace["blocked"]}
    assert waits == {"T0": "free_lock", "T1": "busy_lock"}
    assert all(b["holds"][0]["at"].startswith("designs/abba.py:") for b in f.trace["blocked"])


def test_purge_op_and_scheduler_stop() -> None:
    class StopAfter:
        def __init__(self, n: int) -> None:
            self.n = n

        def choose(self, rt: ControlledRuntime, enabled: Sequence[int]) -> int | None:
            self.n -= 1
            return enabled[0] if self.n >= 0 else None

    out = run_execution(resolve_design("global"), scenario((0, (Purge(),))), StopAfter(1),
                        ExecutionSettings())
    assert out.status == "stopped" and len(out.steps) == 1
