"""One execution: a scenario's programs run on a fresh design under one scheduler, checked.

Builds a ``ControlledRuntime`` and the design on it, spawns one model thread per program and
runs them.  After every step it hands the new events to the observers, then looks for a
violation: an exception escaping a model thread (lock misuse included), a broken invariant
(each ``invariant_checks()`` entry whose locks are all free; conservation among them), an
allocation result outside its range or alignment, a ``find`` that misses a live area, or a
step count past the bound (a drain that keeps rescheduling itself).  When no thread is
enabled it reports a deadlock with the wait-for cycle, or, if everything finished, runs the
at-rest invariants.  The first violation ends the execution.

Relies on ``checker.runtimes.controlled``, ``checker.scenario``, ``spec.program`` and the
design interface; the search strategies call ``run_execution`` once per schedule.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import networkx as nx

from impl.designs.base import VmapDesign
from impl.errors import AllocationFailed, InvariantViolation
from impl.runtime import LockKind
from spec.program import Alloc, Find, Free, Purge

from ..events import ACQUIRE, WORK, Event
from ..result import Finding
from ..runtimes.controlled import (
    FLUSH,
    START,
    ControlledLock,
    ControlledRuntime,
    LockMisuseError,
    ModelThread,
    Scheduler,
)
from ..scenario import Scenario
from .fairness import SpinDetector

DEFAULT_MAX_STEPS = 5000


class Observer(Protocol):
    """Plugs an analysis into every explored execution.

    ``on_event`` sees each event after it took effect (and after the step it belongs to ran),
    in order.  ``on_execution_end`` returns the analysis' findings for this execution; they
    count as violations.  An execution may end early (a search cuts it when the rest is known
    to be covered elsewhere); ``outcome.status`` is then "stopped".  An observer may also
    define ``on_search_end() -> list[Finding]``, called once when the whole search ends, for
    findings accumulated across executions.

    State caching prunes an execution that reaches a state explored before, so an observer
    whose verdict depends on what it remembers of the current execution must say what that
    is: ``state_key() -> Hashable`` (folded into the state fingerprint; return None if the
    verdict depends on the events alone).  With any observer lacking ``state_key`` the search
    runs without the cache.
    """

    def on_execution_start(self, design: VmapDesign, scenario: Scenario) -> None: ...

    def on_event(self, event: Event) -> None: ...

    def on_execution_end(self, outcome: ExecutionOutcome) -> list[Finding]: ...


@dataclass(slots=True)
class StepRecord:
    """What one step did, as the search needs it: who, on which object, reading or writing."""

    tid: int
    key: int
    write: bool
    kind: str
    action: str


@dataclass
class ExecutionOutcome:
    """The result of one execution.

    ``status`` is "ok" (every thread finished, at-rest invariants hold), "violation" (see
    ``findings``) or "stopped" (the scheduler cut it: the rest was redundant).
    """

    status: str
    findings: list[Finding]
    events: list[Event]
    steps: list[StepRecord]
    thread_names: list[str]
    preemptions: int = 0
    drain_ran: bool = False
    alloc_purged: bool = False
    alloc_failed: bool = False
    design: VmapDesign | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def schedule(self) -> list[int]:
        return [s.tid for s in self.steps]


class OpCheckFailed(AssertionError):
    """An operation returned something no correct allocator returns."""


@dataclass
class ExecutionSettings:
    track_access: bool = False
    max_steps: int = DEFAULT_MAX_STEPS
    observers: Sequence[Observer] = ()
    check_invariants: bool = True


def count_preemptions(steps: Sequence[StepRecord], enabled_before: Sequence[bool]) -> int:
    """Switches away from a thread that could have continued (``enabled_before[i]``: was the
    thread of step i-1 still enabled when step i was chosen)."""
    n = 0
    for i in range(1, len(steps)):
        if steps[i].tid != steps[i - 1].tid and enabled_before[i]:
            n += 1
    return n


def _thread_body(rt: ControlledRuntime, design: VmapDesign, scenario: Scenario, index: int,
                 flags: dict[str, bool]) -> Any:
    prog = scenario.programs[index]
    cfg = scenario.config
    page = cfg.page_size

    def body() -> None:
        slots: dict[str, tuple[int, int] | None] = {}
        for op in prog.ops:
            text = str(op)
            if isinstance(op, (Free, Find)) and slots.get(op.slot) is None:
                rt.op_event(True, text)
                rt.op_event(False, text, "skipped: the allocation failed")
                continue
            rt.op_event(True, text)
            detail = ""
            if isinstance(op, Alloc):
                size, align = op.pages * page, op.align_pages * page
                if op.range_pages is None:
                    vstart, vend = cfg.start, cfg.end
                else:
                    vstart = cfg.start + op.range_pages[0] * page
                    vend = cfg.start + op.range_pages[1] * page
                try:
                    addr = design.alloc(size, align, vstart, vend)
                except AllocationFailed:
                    slots[op.slot] = None
                    flags["alloc_failed"] = True
                    detail = "-> failed"
                else:
                    if addr % align or addr < vstart or addr + size > vend:
                        raise OpCheckFailed(
                            f"{text} returned {addr:#x}: not a {align:#x}-aligned area of "
                            f"{size:#x} bytes inside [{vstart:#x}, {vend:#x})")
                    slots[op.slot] = (addr, size)
                    detail = f"-> {addr:#x}"
            elif isinstance(op, Free):
                entry = slots[op.slot]
                assert entry is not None
                design.free(entry[0])
                slots[op.slot] = None
            elif isinstance(op, Find):
                entry = slots[op.slot]
                assert entry is not None
                # Look up the start and the last page: an area larger than a zone of a
                # sharded design is found from an interior address that maps elsewhere.
                start, size = entry
                found = None
                for addr in dict.fromkeys((start, start + size - page)):
                    found = design.find(addr)
                    if found != (start, start + size):
                        raise OpCheckFailed(f"{text}: the live area [{start:#x}, "
                                            f"{start + size:#x}) was not found from {addr:#x} "
                                            f"(got {found!r})")
                detail = f"-> [{start:#x}, {start + size:#x})"
            elif isinstance(op, Purge):
                design.purge()
            t = rt.current
            if t is not None and t.held:
                names = ", ".join(h.lock.name for h in t.held)
                raise LockMisuseError(f"{t.name} returned from {text} holding {names}")
            rt.op_event(False, text, detail)

    return body


def _error_finding(t: ModelThread, step: int) -> Finding:
    exc = t.error
    assert exc is not None
    tb = "".join(traceback.format_exception(exc))
    where = f"{t.name} (cpu{t.cpu}) in {t.op or 'its work'} at step {step}"
    if isinstance(exc, LockMisuseError):
        return Finding("exception", f"lock misuse: {exc} [{where}]",
                       {"thread": t.name, "traceback": tb})
    if isinstance(exc, (InvariantViolation, OpCheckFailed)):
        return Finding("invariant", f"{exc} [{where}]", {"thread": t.name, "traceback": tb})
    return Finding("exception", f"{type(exc).__name__}: {exc} [{where}]",
                   {"thread": t.name, "traceback": tb})


def deadlock_finding(rt: ControlledRuntime) -> Finding:
    """The wait-for state when no unfinished thread can run."""
    blocked = []
    graph: nx.DiGraph = nx.DiGraph()
    for t in rt.threads:
        p = t.pending
        if p is None or t.done:
            continue
        if t.work is not None and p.kind == WORK and p.action == START and not t.work.pending:
            continue  # an idle worker is not blocked
        holds = [{"lock": h.lock.name, "at": _loc(h.file, h.line, h.function)} for h in t.held]
        entry: dict[str, Any] = {"thread": t.name, "cpu": t.cpu, "holds": holds,
                                 "at": _loc(p.file, p.line, p.function)}
        if p.kind == ACQUIRE:
            lock: ControlledLock = p.obj
            owner = lock.owner
            entry["waits_for"] = lock.name
            entry["owner"] = owner.name if owner is not None else None
            if owner is not None:
                graph.add_edge(t.name, owner.name)
        elif p.kind == WORK and p.action == FLUSH:
            entry["waits_for"] = f"flush of {p.name}"
            graph.add_edge(t.name, p.obj.worker.name)
        else:
            entry["waits_for"] = p.describe()
        blocked.append(entry)
    by_name = {b["thread"]: b for b in blocked}
    try:
        cycle_names = [u for u, _ in nx.find_cycle(graph)]
    except nx.NetworkXNoCycle:
        cycle_names = []
    shown = [by_name[n] for n in cycle_names if n in by_name] or blocked
    parts = []
    for b in shown:
        held = ", ".join(f"{h['lock']} (taken at {h['at']})" for h in b["holds"]) or "nothing"
        parts.append(f"{b['thread']} holds {held} and waits for {b['waits_for']} at {b['at']}")
    head = "wait-for cycle: " if cycle_names else "every unfinished thread is blocked: "
    return Finding("deadlock", head + "; ".join(parts),
                   {"cycle": [b["thread"] for b in shown] if cycle_names else [],
                    "blocked": blocked})


def _livelock_finding(rt: ControlledRuntime, spins: SpinDetector, t: ModelThread) -> Finding:
    head = "the drain terminates" if t.work is not None else "every thread makes progress"
    return Finding("invariant", f"{head}: {t.name} loops at {spins.where.get(t.tid, '?')} "
                   f"without changing any state while no other thread can run (livelock) "
                   f"[after step {rt.step - 1}]", {"spinning": t.name})


def _loc(file: str, line: int, function: str) -> str:
    if not file:
        return "?"
    short = "/".join(file.replace("\\", "/").rsplit("/", 2)[-2:])
    return f"{short}:{line} ({function})"


def run_execution(design_cls: type[VmapDesign], scenario: Scenario, scheduler: Scheduler,
                  settings: ExecutionSettings) -> ExecutionOutcome:
    rt = ControlledRuntime(track_access=settings.track_access)
    design = design_cls(rt, scenario.config)
    observers = settings.observers
    for o in observers:
        o.on_execution_start(design, scenario)
    flags = {"alloc_failed": False}
    for i, prog in enumerate(scenario.programs):
        rt.spawn(f"T{i}", prog.cpu, _thread_body(rt, design, scenario, i, flags))
    checks = [(c, tuple(c.locks)) for c in design.invariant_checks()] \
        if settings.check_invariants else []
    steps: list[StepRecord] = []
    findings: list[Finding] = []
    seen = 0
    drain_ran = False
    alloc_purged = False
    preemptions = 0
    max_steps = settings.max_steps
    checked_prefix: int = getattr(scheduler, "checked_prefix", 0)
    spins = SpinDetector(rt, design)
    rt.context["design"] = design
    rt.context["spins"] = spins
    rt.context["observers"] = observers
    rt.context["constants"] = frozenset(
        [id(scenario), id(scenario.config)]
        + [id(x) for p in scenario.programs for x in (p, p.ops, *p.ops)])

    def on_step(t: ModelThread) -> str | None:
        nonlocal seen, drain_ran, alloc_purged, preemptions
        op = rt.last_op
        if op is not None and rt.step > len(steps):
            if steps and steps[-1].tid != t.tid and steps[-1].tid in rt.last_enabled:
                preemptions += 1
            steps.append(StepRecord(t.tid, op.key, op.write, op.kind, op.action))
            if op.kind == WORK:
                if op.action == START:
                    drain_ran = True
            elif op.kind == ACQUIRE and op.obj.kind is LockKind.MUTEX and t.op is not None \
                    and "alloc(" in t.op:
                alloc_purged = True
        if observers:
            events = rt.events
            while seen < len(events):
                ev = events[seen]
                seen += 1
                for o in observers:
                    o.on_event(ev)
        if t.error is not None:
            findings.append(_error_finding(t, rt.step))
            return "violation"
        spins.after_step(t)
        if spins.livelock is not None:
            findings.append(_livelock_finding(rt, spins, spins.livelock))
            return "violation"
        for c, locks in (checks if rt.step > checked_prefix else ()):
            for lk in locks:
                if lk.owner is not None:  # type: ignore[attr-defined]
                    break
            else:
                try:
                    c.check()
                except (InvariantViolation, AssertionError) as exc:
                    findings.append(Finding("invariant", f"{exc} [after step {rt.step - 1}, "
                                            f"{t.name}: {op.describe() if op else 'start'}]",
                                            {"check": c.name}))
                    return "violation"
        if rt.step >= max_steps:
            findings.append(Finding(
                "invariant",
                f"the drain terminates: the execution ran {rt.step} steps without finishing "
                f"(bound {max_steps}); the threads still running: "
                + ", ".join(f"{x.name} ({x.pending.describe() if x.pending else '?'})"
                            for x in rt.threads if not x.done and x.pending is not None
                            and (x.work is None or x.work.pending or x.work.running)),
                {"max_steps": max_steps}))
            return "violation"
        return None

    try:
        status = rt.run(scheduler, on_step)
        if status == "blocked":
            findings.append(deadlock_finding(rt))
            status = "violation"

        elif status == "done":
            if settings.check_invariants:
                try:
                    design.check_invariants(at_rest=True)
                except (InvariantViolation, AssertionError) as exc:
                    findings.append(Finding("invariant", f"{exc} [at rest, after the last step]",
                                            {"check": "at-rest"}))
            status = "violation" if findings else "ok"
        if observers:
            events = rt.events
            while seen < len(events):
                for o in observers:
                    o.on_event(events[seen])
                seen += 1
    finally:
        rt.teardown()
    names = [t.name for t in rt.threads]
    outcome = ExecutionOutcome(status, findings, rt.events, steps, names, preemptions,
                               drain_ran=drain_ran, alloc_purged=alloc_purged,
                               alloc_failed=flags["alloc_failed"], design=design)
    for o in observers:
        extra = o.on_execution_end(outcome)
        if extra:
            findings.extend(extra)
            if outcome.status != "violation":
                outcome.status = "violation"
    return outcome
