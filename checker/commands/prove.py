"""``vmapcheck prove``: the Z3 proof obligations, as a table, JSON or JUnit XML (the CI job).

Runs every obligation of ``proofs/`` (or those ``--only`` names: a full name or a theme) and
prints one row per obligation with its verdict and time.  A counterexample exits 1; an unknown
(solver timeout or give-up) is not a pass and exits 3.  ``--jobs`` obligations are checked at
once, each in its own process (default: one per CPU).

Lock order: for each ``--design`` the nesting edges come from the spec's protocol tables (when
the design has a spec; otherwise the kernel's nesting edges of reference section 1.3 stand in as
the declared ones) and from the lock-order graph of the implementation, explored on
``lockgraph``'s coverage scenario with one thread (lock nesting is about paths, not
interleavings), and are handed to ``proofs.lock_order``.

Induction: the ``global`` spec's invariants, proved inductive over page sets of the whole
address space (``proofs.unbounded``) with the strengthening stored in ``proofs/certificates``;
``--strengthen SPEC`` searches for that strengthening again and stores it (minutes).  Why the
other specs are not among the obligations yet: ``proofs.induction`` and ``proofs.unbounded``.

Relies on ``proofs`` (obligations, runner), ``spec.registry``, ``checker.model_check`` and
``checker.analyses.lockgraph``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import click
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from proofs import certificate, lock_order, unbounded
from proofs.lock_order import KERNEL_NESTING, OrderEdge, spec_edges
from proofs.obligation import Obligation, Status
from proofs.runner import Verdict, arithmetic_obligations, junit_xml, run, select
from spec.registry import known_specs

from ..analyses.lockgraph import LockGraphObserver
from ..designs import design_names, resolve_design
from ..output import finish, json_option, progress_enabled, stderr_console, stdout_console
from ..result import Finding, Outcome, Result
from .lockgraph import coverage_scenario

DEFAULT_DESIGNS = "global,nodes,percpu"
STYLE = {Status.PROVED: "green", Status.COUNTEREXAMPLE: "bold red", Status.UNKNOWN: "yellow"}


def design_edges(design: str, timeout: float) -> list[OrderEdge]:
    """Every nesting edge known for ``design``: declared (spec tables, or reference 1.3) and
    observed (the implementation's lock-order graph)."""
    cls = resolve_design(design)
    if cls.name in known_specs():
        edges = spec_edges(cls.name)
    else:
        edges = [OrderEdge(e.held, e.acquired, f"{e.source} (declared: {cls.name} has no spec)")
                 for e in KERNEL_NESTING]
    edges += lockgraph_edges(design, timeout)
    return edges


def lockgraph_edges(design: str, timeout: float) -> list[OrderEdge]:
    from ..model_check import model_check  # the search machinery, only when lock order runs

    cls = resolve_design(design)
    observer = LockGraphObserver()
    model_check(cls, coverage_scenario(threads=1, ops=2, pages=4, lazy_max=1, cpus=2),
                observers=[observer], timeout=timeout, stop_on_first=False)
    graph = observer.graph
    out = [OrderEdge(e.held, e.acquired, f"lockgraph {cls.name}: {e.location} in {e.op}")
           for e in graph.edges()]
    # Two locks of one class nested without a declaration: a cycle of one edge.
    out += [OrderEdge(e.held, e.acquired, f"lockgraph {cls.name}: same class at {e.location}")
            for e in graph.same_class.values()]
    return out


def build_obligations(designs: Sequence[str], timeout: float) -> list[Obligation]:
    obs = arithmetic_obligations()
    for d in designs:
        name = resolve_design(d).name
        obs.append(lock_order.obligation(name, lambda d=d: design_edges(d, timeout)))  # type: ignore[misc]
    return [*obs, *unbounded.obligations()]


def _strengthen(name: str, timeout: float, as_json: bool) -> None:
    """``--strengthen``: search, store, report."""
    t0 = time.monotonic()
    with stderr_console.status(f"strengthening the {name} spec's invariants") as status:
        def report(what: str) -> None:
            status.update(f"strengthening the {name} spec's invariants: {what} "
                          f"({time.monotonic() - t0:.0f} s)")
        facts, cti, stats = unbounded.strengthen(name, timeout, report)
    config = {"strengthen": name, "timeout": timeout}
    if cti is None:
        assert facts is not None
        cert = certificate.Certificate(name, "page sets", tuple(certificate.key(f) for f in facts),
                                       stats)
        where = certificate.save(cert)
        result = Result("prove", config=config, outcome=Outcome.OK,
                        stats={**stats, "certificate": str(where)})
        if not as_json:
            stdout_console.print(
                f"{name}: {stats['kept']} facts (of {stats['mined']} mined, "
                f"{stats['bounded_left']} kept on the instance, {stats['asked']} asked over "
                f"page sets) make the invariants inductive over page sets; stored in {where} "
                f"({time.monotonic() - t0:.0f} s)")
    else:
        detail = f"counterexample to induction: {cti.actor} breaks {cti.broken!r}"
        result = Result("prove", config=config, outcome=Outcome.VIOLATION, stats=stats,
                        findings=[Finding("counterexample", detail,
                                          {"step": cti.step, "before": cti.before})])
        if not as_json:
            stdout_console.print(detail, markup=False)
            stdout_console.print(f"  step: {cti.step}", markup=False)
            for k, v in cti.before.items():
                stdout_console.print(f"  {k} = {v}", markup=False, highlight=False)
    finish(result, as_json)


def _table(verdicts: Sequence[Verdict], total: float) -> Table:
    table = Table(title=f"proof obligations ({len(verdicts)}, {total:.1f} s)")
    table.add_column("obligation")
    table.add_column("result")
    table.add_column("seconds", justify="right")
    table.add_column("what")
    for v in verdicts:
        st = v.result.status
        # A proved lock order shows its ranking; other proofs say what they proved.
        shown = (v.result.detail if st is not Status.PROVED or v.obligation.theme == "lock-order"
                 else v.obligation.statement)
        table.add_row(v.obligation.name, f"[{STYLE[st]}]{st.value}[/]", f"{v.seconds:.2f}",
                      shown)
    return table


@click.command("prove")
@click.option("--only", "only", multiple=True, metavar="NAME",
              help="Run only this obligation (fit.alloc) or theme (fit); repeatable.")
@click.option("--junit", "junit_file", type=click.Path(dir_okay=False), default=None,
              help="Write the verdicts as JUnit XML (the CI proof job).")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Solver time limit per query, in seconds; hitting it is Unknown (exit 3).")
@click.option("--design", "designs", default=DEFAULT_DESIGNS, show_default=True,
              help="Designs whose lock order is proved: names or path/to/file.py:Class, "
                   "comma-separated.")
@click.option("--strengthen", "strengthen", default=None, metavar="SPEC",
              type=click.Choice(unbounded.SPECS),
              help="Search again for the facts that make SPEC's invariants inductive and "
                   "store them for the induction obligation (takes minutes).")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Obligations checked at once, each in its own process "
                   "[default: the number of CPUs].")
@json_option
def command(only: tuple[str, ...], junit_file: str | None, timeout: float, designs: str,
            strengthen: str | None, jobs: int | None, as_json: bool) -> None:
    """Prove the allocator's arithmetic, lock order and spec invariants for all inputs."""
    if strengthen is not None:
        _strengthen(strengthen, timeout, as_json)
        return
    names = design_names(designs)
    if not names:
        raise click.BadParameter("no design given", param_hint="--design")
    for d in names:
        resolve_design(d)  # an unknown design is a usage error before anything runs
    obligations = build_obligations(names, timeout)
    try:
        chosen = select(obligations, only)
    except KeyError as exc:
        known = ", ".join(sorted({o.theme for o in obligations} | {o.name for o in obligations}))
        raise click.BadParameter(f"no obligation or theme {exc.args[0]}; known: {known}",
                                 param_hint="--only") from exc
    if junit_file is not None:
        parent = Path(junit_file).resolve().parent
        if parent.exists() and not parent.is_dir():
            raise click.BadParameter(f"{parent} is not a directory", param_hint="--junit")

    workers = jobs or os.cpu_count() or 1
    t0 = time.monotonic()
    if progress_enabled():
        with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                      console=stderr_console, transient=True) as bar:
            task = bar.add_task("proving", total=len(chosen))

            def step(v: Verdict) -> None:
                bar.update(task, advance=1, description=f"proved {v.obligation.name}")
            verdicts = run(chosen, timeout, step, workers)
    else:
        verdicts = run(chosen, timeout, jobs=workers)
    total = time.monotonic() - t0

    findings = [Finding("lock-order" if v.obligation.theme == "lock-order" else "counterexample",
                        f"{v.obligation.name}: {v.result.detail}", v.to_json())
                for v in verdicts if v.result.status is Status.COUNTEREXAMPLE]
    unknown = [v for v in verdicts if v.result.status is Status.UNKNOWN]
    outcome = (Outcome.VIOLATION if findings else
               Outcome.INCOMPLETE if unknown else Outcome.OK)
    counts = {s.value: sum(1 for v in verdicts if v.result.status is s) for s in Status}
    result = Result("prove", config={"only": list(only), "timeout": timeout, "designs": names,
                                     "jobs": workers},
                    outcome=outcome,
                    stats={**counts, "obligations": len(verdicts), "seconds": round(total, 3),
                           "verdicts": [v.to_json() for v in verdicts]},
                    findings=findings)
    if junit_file is not None:
        path = Path(junit_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(junit_xml(verdicts, total))
        stderr_console.log(f"wrote {path}")
    if not as_json:
        stdout_console.print(_table(verdicts, total))
        for v in verdicts:
            if v.result.status is not Status.PROVED:
                stdout_console.print(f"[{STYLE[v.result.status]}]{v.obligation.name}[/]")
                stdout_console.print(v.result.text(), markup=False, highlight=False)
        stdout_console.print(f"{counts['proved']} proved, {counts['counterexample']} "
                             f"counterexample(s), {counts['unknown']} unknown in {total:.1f} s")
    finish(result, as_json)
