"""Counterexamples: the trace file, per-thread swim lanes, and an emitted regression test.

A trace (the ``trace`` of each model-check finding, and the content of ``--trace-out``) is a
JSON object holding everything needed to re-run the execution: the design (built-in name or
``path/to/file.py:Class``), the scenario, the options that shape an execution, the schedule
string, and the events as they happened (for reading, and to check that a replay reproduces
them).  ``render_lanes`` prints it as one column per thread with the intervals during which
each lock was held; ``emit_test`` writes a standalone pytest file that fails while the bug is
there and passes on a fixed design.

Relies on ``checker.events`` and ``checker.explore`` (the schedule encoding).
"""

from __future__ import annotations

import inspect
import json
import pprint
from pathlib import Path
from typing import TYPE_CHECKING, Any

from impl.designs import builtin_designs
from impl.designs.base import VmapDesign

from .events import ACQUIRE, OP_END, OP_START, RELEASE, Event
from .explore.schedule import encode

if TYPE_CHECKING:
    from .explore.search import Counterexample
    from .scenario import Scenario

TRACE_FORMAT = "vmapcheck-trace"
TRACE_VERSION = 1
LANE_WIDTH = 44


class TraceError(ValueError):
    """A trace file that cannot be used (a usage error)."""


def design_spec(cls: type[VmapDesign]) -> str:
    """How to find the design again: its built-in name, or ``file.py:Class``."""
    if cls.name and builtin_designs().get(cls.name) is cls:
        return cls.name
    try:
        path = inspect.getfile(cls)
    except TypeError:
        return cls.name
    return f"{Path(path).resolve()}:{cls.__qualname__}"


def build_trace(design_cls: type[VmapDesign], scenario: Scenario, cx: Counterexample,
                options: dict[str, Any]) -> dict[str, Any]:
    out = cx.outcome
    names = [out.thread_names[t] for t in out.schedule]
    return {
        "format": TRACE_FORMAT,
        "version": TRACE_VERSION,
        "design": design_spec(design_cls),
        "design_name": design_cls.name,
        "scenario": scenario.to_json(),
        "options": {"track_access": bool(options.get("track_access")),
                    "max_steps": options.get("max_steps")},
        "strategy": cx.strategy,
        "schedule": encode(names),
        "threads": list(out.thread_names),
        "preemptions": cx.preemptions,
        "steps": cx.steps,
        "findings": [{"kind": f.kind, "message": f.message, "detail": f.trace}
                     for f in out.findings],
        "events": [e.to_json() for e in out.events],
    }


def write_trace(path: str | Path, trace: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(trace, indent=1) + "\n")


def load_trace(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except OSError as exc:
        raise TraceError(f"cannot read trace file {p}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise TraceError(f"{p}: not JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != TRACE_FORMAT:
        raise TraceError(f"{p}: not a vmapcheck trace (no \"format\": \"{TRACE_FORMAT}\")")
    if data.get("version") != TRACE_VERSION:
        raise TraceError(f"{p}: trace version {data.get('version')!r} is not supported "
                         f"(expected {TRACE_VERSION})")
    for key in ("design", "scenario", "schedule"):
        if key not in data:
            raise TraceError(f"{p}: field {key!r} is missing")
    if not isinstance(data["schedule"], str) or not isinstance(data["design"], str):
        raise TraceError(f"{p}: fields 'design' and 'schedule' must be strings")
    return data


# ---------------------------------------------------------------------- swim lanes
def event_text(ev: dict[str, Any]) -> str:
    kind = ev["kind"]
    obj = ev["obj"]
    detail = ev.get("detail", "")
    if kind in (ACQUIRE, RELEASE):
        return f"{kind} {obj}"
    if kind == "atomic":
        return f"{obj}.{detail}"
    if kind == "work":
        return f"{detail} {obj}"
    if kind == "access":
        return f"{ev.get('access')} {obj}.{detail}"
    if kind == OP_START:
        return f"begin {obj}"
    if kind == OP_END:
        return f"end {obj}" + (f" {detail}" if detail else "")
    return f"{kind} {obj}"


def hold_intervals(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """(thread, lock, first step, last step or None if still held, where it was taken)."""
    open_: dict[tuple[str, str], dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for ev in events:
        key = (ev["thread"], ev["obj"])
        if ev["kind"] == ACQUIRE:
            loc = ev.get("location", {})
            iv = {"thread": ev["thread"], "lock": ev["obj"], "from": ev["step"], "to": None,
                  "at": f"{Path(loc.get('file', '?')).name}:{loc.get('line', '?')}"}
            open_[key] = iv
            out.append(iv)
        elif ev["kind"] == RELEASE and key in open_:
            open_.pop(key)["to"] = ev["step"]
    return out


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_lanes(trace: dict[str, Any], width: int = LANE_WIDTH) -> str:
    """The counterexample as per-thread swim lanes; ``┃`` marks each lock a thread holds."""
    events: list[dict[str, Any]] = trace.get("events", [])
    active = {ev["thread"] for ev in events}
    threads: list[str] = [t for t in trace.get("threads", []) if t in active]
    for ev in events:
        if ev["thread"] not in threads:
            threads.append(ev["thread"])
    cpus = {ev["thread"]: ev["cpu"] for ev in events}
    col = {t: i for i, t in enumerate(threads)}
    held: dict[str, list[str]] = {t: [] for t in threads}
    rows: list[tuple[str, list[str]]] = []
    for ev in events:
        t = ev["thread"]
        cells = [("┃" * len(held[u])) for u in threads]
        kind = ev["kind"]
        if kind == RELEASE and ev["obj"] in held[t]:
            held[t].remove(ev["obj"])
        bars = "┃" * len(held[t])
        if kind == ACQUIRE:
            held[t].append(ev["obj"])
            text = f"{bars}┏ {event_text(ev)}"
        elif kind == RELEASE:
            text = f"{bars}┗ {event_text(ev)}"
        else:
            text = f"{bars}{' ' if bars else ''}{event_text(ev)}"
        cells[col[t]] = text
        step = "" if kind in (OP_START, OP_END) else str(ev["step"])
        rows.append((step, cells))
    for f in trace.get("findings", []):
        detail = f.get("detail")
        if f.get("kind") == "deadlock" and isinstance(detail, dict):
            for b in detail.get("blocked", []):
                if b["thread"] in col:
                    cells = [("┃" * len(held[u])) for u in threads]
                    cells[col[b["thread"]]] = f"{'┃' * len(held[b['thread']])}⌛ waits for " \
                                              f"{b['waits_for']}"
                    rows.append(("", cells))
    header = ["step"] + [f"{t} (cpu{cpus.get(t, '?')})" for t in threads]
    widths = [max(4, max((len(r[0]) for r in rows), default=0))]
    for i, _ in enumerate(threads):
        w = max([len(header[i + 1])] + [len(_cut(r[1][i], width)) for r in rows])
        widths.append(min(w, width))
    lines = []
    lines.append(" | ".join(h.ljust(widths[k]) for k, h in enumerate(header)).rstrip())
    lines.append("-+-".join("-" * w for w in widths))
    for step, cells in rows:
        parts = [step.rjust(widths[0])] + [_cut(c, width).ljust(widths[i + 1])
                                           for i, c in enumerate(cells)]
        lines.append(" | ".join(parts).rstrip())
    intervals = hold_intervals(events)
    if intervals:
        lines.append("")
        lines.append("lock-hold intervals:")
        for iv in intervals:
            end = f"{iv['to']}" if iv["to"] is not None else " (still held)"
            lines.append(f"  {iv['thread']:<10} {iv['lock']:<28} steps {iv['from']}-{end}"
                         f"  taken at {iv['at']}")
    return "\n".join(lines)


def summary_lines(trace: dict[str, Any]) -> list[str]:
    return [f"counterexample: {trace.get('steps')} steps, {trace.get('preemptions')} "
            f"preemption(s), found by {trace.get('strategy', '?')}",
            f"schedule: {trace.get('schedule')}"]


def events_from_json(items: list[dict[str, Any]]) -> list[Event]:
    """Rebuild events (for observers fed from a trace file)."""
    out = []
    for d in items:
        loc = d.get("location", {})
        out.append(Event(d["seq"], d["step"], d["thread"], -1, d["cpu"], d["kind"], d["obj"],
                         d.get("lock_class"), d.get("lock_kind"),
                         tuple((h[0], h[1]) for h in d.get("held", [])),
                         loc.get("file", ""), loc.get("line", 0), loc.get("function", ""),
                         d.get("op"), d.get("access"), d.get("detail", "")))
    return out


# ---------------------------------------------------------------------- emitted test
_TEST_TEMPLATE = '''"""Regression test for a vmapcheck counterexample (written by `vmapcheck {command}`).

Finding: {finding}

Both tests fail while the design has the bug.  To check a fix, point them at the fixed design:
    VMAPCHECK_DESIGN=path/to/fixed.py:ClassName python -m pytest {filename}
The schedule is then replayed leniently (where the fixed design's steps differ it goes on with
the running thread), and the whole scenario is model-checked.
"""

import os

from checker.model_check import model_check, replay_schedule
from checker.scenario import Scenario

DESIGN = os.environ.get("VMAPCHECK_DESIGN", {design!r})
SCENARIO = Scenario.from_json(
{scenario}
)
SCHEDULE = {schedule!r}
TRACK_ACCESS = {track_access!r}


def test_counterexample_schedule_runs_clean():
    outcome, _ = replay_schedule(DESIGN, SCENARIO, SCHEDULE, strict=False,
                                 track_access=TRACK_ACCESS)
    assert outcome.status == "ok", "\\n".join(f.message for f in outcome.findings)


def test_scenario_model_checks_clean():
    result = model_check(DESIGN, SCENARIO, track_access=TRACK_ACCESS, max_executions=20000,
                         shrink=False)
    assert result.outcome.value != "violation", "\\n".join(f.message for f in result.findings)
'''


def emit_test(trace: dict[str, Any], path: str | Path, command: str = "replay") -> None:
    p = Path(path)
    findings = trace.get("findings") or [{"kind": "?", "message": "?"}]
    first = findings[0]
    message = str(first["message"]).splitlines()[0].replace('"""', "'''")
    text = _TEST_TEMPLATE.format(
        command=command, finding=f"{first['kind']}: {message}", filename=p.name,
        design=trace["design"], scenario=pprint.pformat(trace["scenario"], indent=4, width=96),
        schedule=trace["schedule"],
        track_access=bool(trace.get("options", {}).get("track_access")))
    p.write_text(text)
