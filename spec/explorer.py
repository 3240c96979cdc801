"""Explicit-state, breadth-first exploration of a compiled spec.

The visited set maps each canonical state to its BFS parent, so the first violation found is at
the smallest depth and its path is a shortest counterexample.  With symmetry on, states are
canonicalised by ``Spec.make_canon`` (actors with identical step tables sorted), which needs no
permutation function from the spec author; the path is then replayed on concrete states so that
the trace keeps each thread's identity.

Checked: every invariant of the spec on every new state, assertions raised by steps, deadlock
(no step enabled while an actor is not at rest), and ``sometimes`` properties over the whole
search (one that never held in a complete search means the spec, or the scenario, rules out
behaviour it was meant to show).  ``max_states`` and ``timeout`` end the search as
"incomplete", with the figures of what was covered.

Relies on ``spec.compile`` only; the checker wraps the result into its own ``Result``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .compile import Spec, State
from .protocol import SpecAssertion


@dataclass
class TraceStep:
    actor: str
    step: str
    changes: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"actor": self.actor, "step": self.step, "changes": self.changes}

    def __str__(self) -> str:
        ch = "; ".join(f"{k}: {v}" for k, v in self.changes.items())
        return f"{self.actor}: {self.step}" + (f"  [{ch}]" if ch else "")


@dataclass
class Violation:
    kind: str  # "deadlock" or "invariant"
    invariant: str
    message: str
    trace: list[TraceStep]
    final: dict[str, Any]

    @property
    def depth(self) -> int:
        return len(self.trace)

    def to_json(self) -> dict[str, Any]:
        return {"invariant": self.invariant, "depth": self.depth,
                "steps": [s.to_json() for s in self.trace], "final_state": self.final}


@dataclass
class ExploreResult:
    status: str  # "ok", "violation" or "incomplete"
    stats: dict[str, Any]
    violation: Violation | None = None
    reason: str | None = None  # why incomplete
    sometimes: dict[str, int | None] = field(default_factory=dict)  # name -> depth first seen
    sometimes_text: dict[str, str] = field(default_factory=dict)

    @property
    def missing_sometimes(self) -> list[str]:
        return [n for n, d in self.sometimes.items() if d is None]


Progress = Callable[[dict[str, Any]], None]


def explore(spec: Spec, *, symmetry: bool = True, reduce: bool = True,
            max_states: int | None = None, timeout: float | None = None,
            progress: Progress | None = None, progress_interval: float = 0.25) -> ExploreResult:
    successors = spec.make_successors(reduced=reduce)
    canon = spec.make_canon() if symmetry else None
    check = spec.check
    rest = [(a, r) for a, r in zip(spec.actor_index, spec.rest, strict=True)]
    events = spec.events
    events.clear()
    tag_names: dict[str, list[str]] = {}
    for sm in spec.sometimes:
        tag_names.setdefault(sm.tag, []).append(sm.name)
    seen_at: dict[str, int | None] = {sm.name: None for sm in spec.sometimes}
    unseen = set(tag_names)

    t0 = time.perf_counter()
    c0 = time.process_time()
    init = canon(spec.init) if canon is not None else spec.init
    parent: dict[State, State | None] = {init: None}
    transitions = 0
    depth = 0
    frontier: list[State] = [init]
    reason: str | None = None
    violation: Violation | None = None
    last_report = t0
    limit = max_states if max_states is not None else -1
    deadline = t0 + timeout if timeout is not None else None
    expanded = 0

    def stats() -> dict[str, Any]:
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - c0
        # CPU time too: on a shared machine the wall-clock rate says more about the load.
        return {"distinct_states": len(parent), "transitions": transitions, "depth": depth,
                "frontier": len(frontier), "seconds": round(elapsed, 3),
                "cpu_seconds": round(cpu, 3),
                "states_per_second": int(len(parent) / elapsed) if elapsed > 0 else 0,
                "states_per_cpu_second": int(len(parent) / cpu) if cpu > 0 else 0,
                "symmetry": symmetry, "reduction": reduce,
                "complete": False}

    bad = check(init)
    if bad is not None:
        violation = _violation(spec, canon, reduce, parent, init, "invariant", *bad, None)

    while frontier and violation is None:
        nxt: list[State] = []
        for s in frontier:
            expanded += 1
            try:
                succ = successors(s)
            except SpecAssertion as exc:
                violation = _violation(spec, canon, reduce, parent, s, "invariant",
                                       exc.invariant, exc.message, exc)
                break
            if not succ:
                if any(s[a][0] not in r for a, r in rest):
                    violation = _deadlock(spec, canon, reduce, parent, s)
                    break
                continue
            transitions += len(succ)
            if events:
                if unseen:
                    for tag in events & unseen:
                        for n in tag_names[tag]:
                            seen_at[n] = depth + 1
                        unseen.discard(tag)
                events.clear()
            for ns in succ:
                if canon is not None:
                    ns = canon(ns)
                if ns in parent:
                    continue
                parent[ns] = s
                bad = check(ns)
                if bad is not None:
                    violation = _violation(spec, canon, reduce, parent, ns, "invariant", *bad,
                                           None)
                    break
                nxt.append(ns)
            if violation is not None:
                break
            if not expanded & 1023:
                now = time.perf_counter()
                if deadline is not None and now > deadline:
                    reason = "timeout"
                    break
                if progress is not None and now - last_report >= progress_interval:
                    last_report = now
                    progress(stats())
            if 0 <= limit < len(parent):
                reason = "max-states"
                break
        if violation is not None or reason is not None:
            break
        if nxt:
            depth += 1
        frontier = nxt

    st = stats()
    st["depth"] = depth
    if violation is not None:
        status = "violation"
    elif reason is not None:
        status = "incomplete"
    else:
        status = "ok"
        st["complete"] = True
        st["frontier"] = 0
    if progress is not None:
        progress(st)
    return ExploreResult(status, st, violation, reason, seen_at,
                         {sm.name: sm.description for sm in spec.sometimes})


# ---------------------------------------------------------------------- counterexamples
def _chain(parent: dict[State, State | None], s: State) -> list[State]:
    out = [s]
    p = parent[s]
    while p is not None:
        out.append(p)
        p = parent[p]
    out.reverse()
    return out


def _replay(spec: Spec, canon: Callable[[State], State] | None, reduce: bool,
            chain: list[State]) -> tuple[list[tuple[int, str, State]], State]:
    """Concrete states along a canonical path, each with the actor and step taken."""
    cur = spec.init
    steps: list[tuple[int, str, State]] = []
    for want in chain[1:]:
        for k, text, ns in spec.labeled_successors(cur, reduced=reduce):
            if (canon(ns) if canon is not None else ns) == want:
                steps.append((k, text, ns))
                cur = ns
                break
        else:  # pragma: no cover - the path came from the same successor function
            raise RuntimeError("counterexample replay lost its way")
    return steps, cur


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in after["globals"].items():
        if before["globals"].get(k) != v:
            out[k] = v
    if before["locks"] != after["locks"]:
        out["locks"] = after["locks"]
    for name, d in after["actors"].items():
        prev = before["actors"].get(name, {})
        for k, v in d.items():
            if k != "at" and prev.get(k) != v:
                out[f"{name}.{k}"] = v
        for k in prev:
            if k not in d:
                out[f"{name}.{k}"] = "-"
    return out


def _trace(spec: Spec, steps: list[tuple[int, str, State]]) -> list[TraceStep]:
    out: list[TraceStep] = []
    before = spec.describe(spec.init)
    for k, text, ns in steps:
        after = spec.describe(ns)
        out.append(TraceStep(spec.actor_names[k], text, _diff(before, after)))
        before = after
    return out


def _violation(spec: Spec, canon: Callable[[State], State] | None, reduce: bool,
               parent: dict[State, State | None], s: State, kind: str, invariant: str,
               message: str, exc: SpecAssertion | None) -> Violation:
    steps, cur = _replay(spec, canon, reduce, _chain(parent, s))
    trace = _trace(spec, steps)
    if exc is not None:
        # The failing step itself: find the actor whose step raises.
        for k in range(len(spec.actor_names)):
            try:
                spec.actor_step(cur, k, reduced=reduce)
            except SpecAssertion as again:
                pc = cur[spec.actor_index[k]][0]
                texts = spec.rstep_text if reduce else spec.step_text
                trace.append(TraceStep(spec.actor_names[k], texts[k][pc],
                                       {"assertion": again.message}))
                break
    return Violation(kind, invariant, message, trace, spec.describe(cur))


def _deadlock(spec: Spec, canon: Callable[[State], State] | None, reduce: bool,
              parent: dict[State, State | None], s: State) -> Violation:
    steps, cur = _replay(spec, canon, reduce, _chain(parent, s))
    holders = spec.lock_holders(cur)
    waiting = []
    for k, a in enumerate(spec.actor_index):
        if cur[a][0] not in spec.rest[k]:
            waiting.append(f"{spec.actor_names[k]} ({spec.pos_text[k][cur[a][0]]})")
    held = ", ".join(f"{lk} by {who}" for lk, who in sorted(holders.items())) or "none"
    msg = f"no thread can move: {'; '.join(waiting)}; locks held: {held}"
    return Violation("deadlock", "deadlock", msg, _trace(spec, steps), spec.describe(cur))
