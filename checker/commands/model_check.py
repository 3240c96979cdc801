"""``vmapcheck model-check``: search the interleavings of a design for deadlocks and violations.

``--target impl`` runs the controlled-runtime search of the real implementation
(``checker.model_check``); ``--target spec`` explores the design's spec
(``checker.spec_check``); ``--target both`` (the default) does the spec, then the
implementation with every execution checked against the spec (``checker.refinement``).
Prints a summary table, the shortest counterexample as swim lanes and a schedule string, and
can write the trace (``--trace-out``) and a regression test (``--emit-test``).
"""

from __future__ import annotations

from typing import Any

import click
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..designs import resolve_design
from ..explore.search import SearchStats
from ..model_check import STRATEGIES, model_check
from ..output import finish, json_option, progress_enabled, seed_option, stderr_console
from ..result import Outcome, Result
from ..scenario import (
    DEFAULT_CPUS,
    DEFAULT_OPS,
    DEFAULT_SIZES,
    DEFAULT_THREADS,
    Scenario,
    ScenarioError,
    default_scenario,
    load_scenario,
)
from ..trace import emit_test, render_lanes, summary_lines, write_trace

SCENARIO_SHAPE = ("threads", "ops", "pages", "lazy_max", "cpus", "sizes")


def parse_sizes(value: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected page counts such as 1,2",
                                 param_hint="--sizes") from None
    if not sizes or any(s < 1 for s in sizes):
        raise click.BadParameter(f"{value!r}: page counts must be at least 1",
                                 param_hint="--sizes")
    return sizes


def build_scenario(scenario_file: str | None, shape: dict[str, Any]) -> Scenario:
    """The scenario of a command line: a file, or the default one reshaped by options."""
    given = {k: v for k, v in shape.items() if v is not None}
    if scenario_file is not None:
        if given:
            names = ", ".join("--" + k.replace("_", "-") for k in sorted(given))
            raise click.UsageError(f"--scenario gives the threads and the parameters; "
                                   f"do not combine it with {names}")
        try:
            return load_scenario(scenario_file)
        except ScenarioError as exc:
            raise click.BadParameter(str(exc), param_hint="--scenario") from exc
    try:
        return default_scenario(
            threads=given.get("threads", DEFAULT_THREADS), ops=given.get("ops", DEFAULT_OPS),
            pages=given.get("pages"), lazy_max=given.get("lazy_max"),
            cpus=given.get("cpus", DEFAULT_CPUS),
            sizes=parse_sizes(given["sizes"]) if "sizes" in given else DEFAULT_SIZES)
    except ScenarioError as exc:
        raise click.UsageError(str(exc)) from exc


def scenario_options(f: Any) -> Any:
    opts = [
        click.option("--threads", type=click.IntRange(1, 16),
                     help=f"Model threads of the default scenario [default: {DEFAULT_THREADS}]."),
        click.option("--ops", type=click.IntRange(1, 32),
                     help=f"Alloc/free pairs per thread [default: {DEFAULT_OPS}]."),
        click.option("--pages", type=click.IntRange(1, 1 << 20),
                     help="Pages in the managed range [default: threads + ops - 1]."),
        click.option("--lazy-max", "lazy_max", type=click.IntRange(0, 1 << 30),
                     help="lazy_max_pages, the drain threshold [default: threads + ops - 2]."),
        click.option("--cpus", type=click.IntRange(1, 256),
                     help=f"CPUs; thread i runs on cpu i % cpus [default: {DEFAULT_CPUS}]."),
        click.option("--sizes", help="Comma-separated allocation sizes in pages [default: "
                                     f"{','.join(map(str, DEFAULT_SIZES))}]."),
        click.option("--scenario", "scenario_file", type=click.Path(dir_okay=False),
                     help="A TOML scenario: per-thread operation lists and the parameters."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


class _Bar:
    """A rich progress line on stderr, updated from the search statistics."""

    def __init__(self, label: str, total: int | None) -> None:
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                 TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                                 console=stderr_console, transient=True)
        self.task = self.progress.add_task(label, total=total, info="")

    def __enter__(self) -> _Bar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, st: SearchStats) -> None:
        eps = st.executions / st.seconds if st.seconds > 0 else 0.0
        self.progress.update(self.task, completed=st.executions,
                             info=f"{st.executions} executions, {eps:.0f}/s, depth {st.max_depth}")


def _print_stats(result: Result) -> None:
    table = Table(title=f"model-check {result.config.get('design')}: {result.outcome.value}")
    table.add_column("target")
    table.add_column("figure")
    table.add_column("value", justify="right")
    halves = {k: v for k, v in result.stats.items() if k in ("impl", "spec", "refinement")
              and isinstance(v, dict)}
    for target, stats in halves.items():
        for key, value in stats.items():
            if isinstance(value, (dict, list)):
                continue
            table.add_row(target, key.replace("_", " "), str(value))
    stderr_console.print(table)
    for target, stats in halves.items():
        for note in stats.get("notes", []) or []:
            stderr_console.print(f"[dim]{target}: {note}[/dim]")
        if "shrink" in stats:
            s = stats["shrink"]
            stderr_console.print(
                f"[dim]{target}: shortest counterexample search: {s['executions']} executions, "
                f"{s['from']['preemptions']} -> {s['to']['preemptions']} preemptions, "
                f"{s['from']['steps']} -> {s['to']['steps']} steps[/dim]")


def _counterexample(result: Result) -> dict[str, Any] | None:
    for f in result.findings:
        if isinstance(f.trace, dict) and f.trace.get("format") == "vmapcheck-trace":
            return f.trace
    return None


@click.command("model-check")
@click.option("--design", default="global", show_default=True,
              help="A built-in design (see `vmapcheck designs`) or path/to/file.py:ClassName.")
@click.option("--target", type=click.Choice(["impl", "spec", "both"]), default="both",
              show_default=True,
              help="impl: search the implementation; spec: explore the spec; both: the spec, "
                   "then the implementation checked against it.")
@scenario_options
@click.option("--strategy", type=click.Choice(STRATEGIES), default="dfs", show_default=True,
              help="dfs: exhaustive (DPOR); random: random walks; pct: probabilistic "
                   "concurrency testing.")
@click.option("--no-reduction", is_flag=True,
              help="Explore every interleaving (no partial-order reduction), for comparison.")
@click.option("--preemption-bound", type=click.IntRange(0),
              help="Iterative context bounding: all schedules with 0, 1, ... N preemptions.")
@click.option("--pct-depth", type=click.IntRange(1), default=3, show_default=True,
              help="Bug depth d that PCT targets.")
@click.option("--max-executions", type=click.IntRange(1),
              help="Stop after this many executions (the result is then incomplete).")
@click.option("--timeout", type=click.FloatRange(0, min_open=True),
              help="Stop after this many seconds (the result is then incomplete).")
@click.option("--max-steps", type=click.IntRange(10),
              help="Steps after which an execution counts as non-terminating "
                   "[default: 20x the longest seen, at least 2000].")
@click.option("--track-access", is_flag=True,
              help="Make every access to a shared structure a scheduling point.")
@click.option("--state-cache/--no-state-cache", default=None,
              help="Prune executions that reach an already explored state [default: on for "
                   "the exhaustive search without a preemption bound].")
@click.option("--max-states", type=click.IntRange(1),
              help="Spec target: stop after this many distinct states (the result is then "
                   "incomplete).")
@click.option("--symmetry/--no-symmetry", default=True, show_default=True,
              help="Spec target: symmetry reduction over threads running identical programs.")
@click.option("--trace-out", type=click.Path(dir_okay=False),
              help="Write the counterexample's trace (JSON) here.")
@click.option("--emit-test", "emit_path", type=click.Path(dir_okay=False),
              help="Write a standalone pytest file reproducing the counterexample.")
@seed_option
@json_option
def command(design: str, target: str, threads: int | None, ops: int | None,
            pages: int | None, lazy_max: int | None, cpus: int | None, sizes: str | None,
            scenario_file: str | None, strategy: str, no_reduction: bool,
            preemption_bound: int | None, pct_depth: int, max_executions: int | None,
            timeout: float | None, max_steps: int | None, track_access: bool,
            state_cache: bool, max_states: int | None, symmetry: bool, trace_out: str | None,
            emit_path: str | None, seed: int, as_json: bool) -> None:
    """Search the interleavings of DESIGN for deadlocks, invariant violations and crashes."""
    cls = resolve_design(design)
    scenario = build_scenario(scenario_file, {"threads": threads, "ops": ops, "pages": pages,
                                              "lazy_max": lazy_max, "cpus": cpus,
                                              "sizes": sizes})
    if strategy != "dfs" and (no_reduction or preemption_bound is not None):
        raise click.UsageError("--no-reduction and --preemption-bound apply to --strategy dfs")
    impl_args: dict[str, Any] = dict(
        strategy=strategy, reduction=not no_reduction, preemption_bound=preemption_bound,
        max_executions=max_executions, timeout=timeout, seed=seed, pct_depth=pct_depth,
        track_access=track_access, max_steps=max_steps, state_cache=state_cache)
    stderr_console.print(f"model-check {cls.name} ({target}): {scenario.summary()}")
    for line in scenario.describe():
        stderr_console.print(f"  {line}")
    show = progress_enabled() and not as_json
    result = _run(cls, scenario, target, impl_args, timeout, show,
                  {"max_states": max_states, "symmetry": symmetry})
    if not as_json:
        _print_stats(result)
    cx = _counterexample(result)
    for f in result.findings:
        stderr_console.print(f"[bold red]{f.kind}[/bold red]: {f.message}", highlight=False)
        if not as_json and isinstance(f.trace, dict) and f.trace.get("kind") == "spec-path":
            from ..spec_check import spec_path_lines
            click.echo("\n".join(spec_path_lines(f.trace)))
    if cx is not None:
        if not as_json:
            click.echo("\n".join(summary_lines(cx)))
            click.echo(render_lanes(cx))
        if trace_out:
            write_trace(trace_out, cx)
            stderr_console.print(f"trace written to {trace_out}; replay it with "
                                 f"`vmapcheck replay {trace_out}`")
        if emit_path:
            emit_test(cx, emit_path, command="model-check --emit-test")
            stderr_console.print(f"regression test written to {emit_path}")
    elif trace_out or emit_path:
        stderr_console.print("no counterexample: nothing written to "
                             + " or ".join(p for p in (trace_out, emit_path) if p))
    if not as_json:
        colour = {Outcome.OK: "green", Outcome.VIOLATION: "red",
                  Outcome.INCOMPLETE: "yellow"}[result.outcome]
        stderr_console.print(f"result: [bold {colour}]{result.outcome.value}[/bold {colour}]")
    finish(result, as_json)


def _run(cls: Any, scenario: Scenario, target: str, impl_args: dict[str, Any],
         timeout: float | None, show: bool, spec_args: dict[str, Any] | None = None) -> Result:
    if target in ("spec", "both"):
        try:
            from ..refinement import check_both
            from ..spec_check import SpecCheckOptions, run_spec_check
        except ImportError:
            if target == "spec":
                raise click.UsageError("the spec target is not available in this build "
                                       "(checker.spec_check is missing)") from None
            stderr_console.print("note: the spec target is not available; checking the "
                                 "implementation only")
            target = "impl"
        else:
            spec_opts = SpecCheckOptions(timeout=timeout, progress=show, **(spec_args or {}))
            if target == "spec":
                return run_spec_check(cls, scenario, spec_opts)
            return _with_bar(show, impl_args, lambda: check_both(cls, scenario, spec_opts,
                                                                 **impl_args))
    res = _with_bar(show, impl_args, lambda: model_check(cls, scenario, **impl_args))
    res.stats = {"impl": res.stats}
    return res


def _with_bar(show: bool, impl_args: dict[str, Any], run: Any) -> Result:
    if not show:
        out: Result = run()
        return out
    with _Bar("impl", impl_args.get("max_executions")) as bar:
        impl_args["progress"] = bar.update
        out = run()
    return out
