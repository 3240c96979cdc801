"""``vmapcheck replay``: re-run a counterexample deterministically and print every step.

Takes a trace file written by ``model-check --trace-out`` (or a schedule string with
``--schedule`` plus the design and scenario options), runs exactly that schedule on the same
design and scenario under the controlled runtime, prints each event with its thread, CPU,
source line and the locks held, then the swim lanes, and says whether the finding and the
events are the recorded ones.  ``--emit-test`` writes a standalone pytest file from it.

Exit codes: 1 when the replay reaches a violation (the bug reproduces), 0 when it runs clean,
3 when the schedule cannot be followed (the design or scenario changed), 2 for a bad file.
"""

from __future__ import annotations

from typing import Any

import click

from ..designs import resolve_design
from ..explore.schedule import ReplayDivergence, ScheduleError, decode
from ..explore.search import Counterexample
from ..model_check import replay_schedule
from ..output import finish, json_option, stderr_console
from ..result import Finding, Outcome, Result
from ..scenario import Scenario, ScenarioError
from ..trace import (
    TraceError,
    build_trace,
    emit_test,
    event_text,
    load_trace,
    render_lanes,
    summary_lines,
)
from .model_check import build_scenario, scenario_options


def _step_lines(trace: dict[str, Any]) -> list[str]:
    out = []
    for ev in trace["events"]:
        loc = ev.get("location")
        where = f"  {loc['file'].rsplit('/', 1)[-1]}:{loc['line']} ({loc['function']})" \
            if loc else ""
        held = ev.get("held")
        holds = f"  holding {', '.join(h[0] for h in held)}" if held else ""
        if ev["kind"] in ("op-start", "op-end"):
            verb = "begins" if ev["kind"] == "op-start" else "ends"
            detail = f" {ev['detail']}" if ev.get("detail") else ""
            out.append(f"        {ev['thread']} {verb} {ev['obj']}{detail}")
            continue
        out.append(f"{ev['step']:>6}  {ev['thread']:<8} cpu{ev['cpu']}  "
                   f"{event_text(ev):<44}{where}{holds}")
    return out


def _signature(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["thread"], e["kind"], e["obj"], e.get("detail", "")) for e in events]


@click.command("replay")
@click.argument("trace_file", required=False, type=click.Path(dir_okay=False))
@click.option("--schedule", help="Replay this schedule string instead of a trace file "
                                 "(with --design and the scenario options).")
@click.option("--design", default="global", show_default=True,
              help="With --schedule: the design to run it on.")
@scenario_options
@click.option("--track-access", is_flag=True,
              help="With --schedule: the schedule was recorded with --track-access.")
@click.option("--emit-test", "emit_path", type=click.Path(dir_okay=False),
              help="Write a standalone pytest file that reproduces the counterexample.")
@click.option("--quiet", is_flag=True, help="Do not print every step.")
@json_option
def command(trace_file: str | None, schedule: str | None, design: str, threads: int | None,
            ops: int | None, pages: int | None, lazy_max: int | None, cpus: int | None,
            sizes: str | None, scenario_file: str | None, track_access: bool,
            emit_path: str | None, quiet: bool, as_json: bool) -> None:
    """Re-run the counterexample in TRACE_FILE step by step on the same design."""
    if (trace_file is None) == (schedule is None):
        raise click.UsageError("give a trace file, or --schedule with the design and scenario")
    recorded: dict[str, Any] | None = None
    if trace_file is not None:
        try:
            recorded = load_trace(trace_file)
            scenario = Scenario.from_json(recorded["scenario"], f"{trace_file}: scenario")
        except (TraceError, ScenarioError) as exc:
            raise click.BadParameter(str(exc), param_hint="TRACE_FILE") from exc
        design_spec = recorded["design"]
        sched = recorded["schedule"]
        opts = recorded.get("options", {})
        track = bool(opts.get("track_access"))
        max_steps = opts.get("max_steps")
    else:
        assert schedule is not None
        design_spec, sched, track, max_steps = design, schedule, track_access, None
        scenario = build_scenario(scenario_file, {"threads": threads, "ops": ops, "pages": pages,
                                                  "lazy_max": lazy_max, "cpus": cpus,
                                                  "sizes": sizes})
    try:
        decode(sched)
    except ScheduleError as exc:
        raise click.BadParameter(str(exc), param_hint="schedule") from exc
    cls = resolve_design(design_spec)
    result = Result("replay", config={"design": cls.name, "design_spec": design_spec,
                                      "trace_file": trace_file, "schedule": sched,
                                      "scenario": scenario.to_json()})
    try:
        outcome, _ = replay_schedule(cls, scenario, sched, strict=True, track_access=track,
                                     max_steps=max_steps)
    except ReplayDivergence as exc:
        stderr_console.print(f"[yellow]replay diverged:[/yellow] {exc}")
        result.outcome = Outcome.INCOMPLETE
        result.stats = {"diverged": str(exc)}
        finish(result, as_json)
        return
    trace = build_trace(cls, scenario, Counterexample(outcome, "replay"),
                        {"track_access": track, "max_steps": max_steps})
    same_events = recorded is not None and \
        _signature(recorded.get("events", [])) == _signature(trace["events"])
    kinds = [f.kind for f in outcome.findings]
    rec_kinds = [f["kind"] for f in recorded.get("findings", [])] if recorded else []
    result.stats = {"steps": len(outcome.steps), "preemptions": outcome.preemptions,
                    "status": outcome.status, "findings": kinds,
                    "same_findings_as_recorded": (kinds == rec_kinds) if recorded else None,
                    "same_events_as_recorded": same_events if recorded else None}
    result.findings = [Finding(f.kind, f.message, trace) for f in outcome.findings]
    result.outcome = Outcome.VIOLATION if outcome.findings else Outcome.OK
    if not as_json:
        click.echo("\n".join(summary_lines(trace)))
        if not quiet:
            click.echo("\n".join(_step_lines(trace)))
            click.echo("")
            click.echo(render_lanes(trace))
    for f in outcome.findings:
        stderr_console.print(f"[bold red]{f.kind}[/bold red]: {f.message}", highlight=False)
    if recorded is not None:
        verdict = ("reproduces the recorded finding" if kinds and kinds == rec_kinds
                   else "does NOT reproduce the recorded finding")
        stderr_console.print(f"replay {verdict}; events "
                             f"{'identical to' if same_events else 'differ from'} the trace")
    if emit_path:
        emit_test(recorded if recorded is not None else trace, emit_path, command="replay")
        stderr_console.print(f"regression test written to {emit_path}")
    finish(result, as_json)
