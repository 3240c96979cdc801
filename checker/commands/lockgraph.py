"""``vmapcheck lockgraph``: the lock-order graph of a design, and its cycles.

Explores the scenario's interleavings (the same search as ``model-check``) with the lock-order
observer attached, prints every nesting edge between lock classes with the source line that
first made it, reports cycles (``lock-order`` findings: a possible deadlock even when no explored
schedule deadlocked), undeclared same-class nesting, and a mutex taken under a spinlock; ``--dot``
writes Graphviz with the cycle edges in red.  Exit 1 on any of those findings.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from ..analyses.lockgraph import LockGraphObserver
from ..designs import resolve_design
from ..model_check import model_check
from ..output import finish, json_option, stderr_console, stdout_console
from ..result import Outcome, Result
from ..scenario import Scenario, ScenarioError, load_scenario


def coverage_scenario(threads: int, ops: int, pages: int, lazy_max: int, cpus: int) -> Scenario:
    """Every public path of a design: each thread ``ops`` times allocates, looks the area up and
    frees it, then purges.  Lock nesting is about paths more than interleavings."""
    sizes = (1, 2)
    body: list[str] = []
    for k in range(ops):
        body += [f"a{k} = alloc({min(sizes[k % 2], pages)})", f"find(a{k})", f"free(a{k})"]
    body.append("purge()")
    return Scenario.from_json(
        {"name": f"paths-{threads}x{ops}",
         "description": "alloc, find, free, then purge, per thread",
         "config": {"pages": pages, "lazy_max": lazy_max, "cpus": cpus},
         "threads": [{"cpu": t % cpus, "ops": body} for t in range(threads)]}, "lockgraph")


@click.command("lockgraph")
@click.option("--design", default="global", show_default=True,
              help="A design name or path/to/file.py:ClassName.")
@click.option("--threads", type=click.IntRange(1, 8), default=2, show_default=True)
@click.option("--ops", type=click.IntRange(1, 8), default=1, show_default=True,
              help="Rounds of alloc, find, free per thread (a purge follows).")
@click.option("--pages", type=click.IntRange(1), default=4, show_default=True)
@click.option("--lazy-max", type=click.IntRange(0), default=1, show_default=True)
@click.option("--cpus", type=click.IntRange(1, 64), default=2, show_default=True)
@click.option("--scenario", "scenario_file", type=click.Path(dir_okay=False), default=None,
              help="A TOML scenario instead of the default one.")
@click.option("--preemption-bound", type=click.IntRange(0), default=None)
@click.option("--max-executions", type=click.IntRange(1), default=None)
@click.option("--timeout", type=click.FloatRange(min=0.1), default=60.0, show_default=True)
@click.option("--dot", "dot_file", type=click.Path(dir_okay=False), default=None,
              help="Write the graph as Graphviz DOT, cycle edges in red.")
@json_option
def command(design: str, threads: int, ops: int, pages: int, lazy_max: int, cpus: int,
            scenario_file: str | None, preemption_bound: int | None,
            max_executions: int | None, timeout: float, dot_file: str | None,
            as_json: bool) -> None:
    """Print the lock-order graph of DESIGN and report lock-order cycles."""
    cls = resolve_design(design)
    try:
        scenario = (load_scenario(scenario_file) if scenario_file else
                    coverage_scenario(threads, ops, pages, lazy_max, cpus))
    except ScenarioError as exc:
        raise click.BadParameter(str(exc)) from exc
    observer = LockGraphObserver()
    stderr_console.log(f"lockgraph {cls.name}: exploring {scenario.summary()}")
    searched = model_check(cls, scenario, observers=[observer], timeout=timeout,
                           preemption_bound=preemption_bound, max_executions=max_executions,
                           stop_on_first=False)
    graph = observer.graph
    findings = graph.findings()
    others = [f for f in searched.findings if f.kind != "lock-order"]
    outcome = Outcome.VIOLATION if findings or others else (
        Outcome.INCOMPLETE if searched.outcome is Outcome.INCOMPLETE else Outcome.OK)
    result = Result("lockgraph", config={"design": cls.name, "scenario": scenario.to_json()},
                    outcome=outcome,
                    stats={"executions": searched.stats.get("executions"),
                           "exhaustive": searched.stats.get("exhaustive"),
                           "graph": graph.to_json(), "cycles": len(graph.cycles())},
                    findings=findings + others)
    if dot_file:
        Path(dot_file).write_text(graph.to_dot())
        stderr_console.log(f"wrote {dot_file}")
    if not as_json:
        table = Table(title=f"lock-order graph of {cls.name} "
                            f"({searched.stats.get('executions')} executions)")
        for col in ("held (class)", "then acquired (class)", "first seen at", "thread", "in"):
            table.add_column(col)
        on_cycle = {(e.held, e.acquired) for c in graph.cycles() for e in c}
        for e in graph.edges():
            style = "bold red" if (e.held, e.acquired) in on_cycle else ""
            table.add_row(e.held, e.acquired, e.location, e.thread, e.op or "", style=style)
        stdout_console.print(table)
        lone = sorted(set(graph.graph.nodes) - {n for e in graph.edges() for n in (e.held, e.acquired)})
        if lone:
            stdout_console.print("never nested: " + ", ".join(lone))
        for f in findings + others:
            stdout_console.print(f"[bold red]{f.kind}[/]: {f.message}")
        if not findings and not others:
            stdout_console.print("no lock-order cycle, no same-class nesting, no mutex under a "
                                 "spinlock")
    finish(result, as_json)
