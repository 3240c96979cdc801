"""``vmapcheck stress``: the kernel's test_vmalloc cases on real threads, with lock_stat.

Every design at every thread count runs in this one process (thread counts outermost, so the
designs compared at one count run back to back under the same machine load).  Each combination
prints the module's per-thread summaries, the lock_stat table and its ops/s and latency; the end
shows an overview, each design's total lock wait relative to the baseline design, and optionally
the lock_stat overhead and a plot.  A run that ends with an invariant broken, an area lost, an
exception or a stall exits 1.

Relies on ``checker.stress`` and ``checker.designs``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from impl.designs import VmapDesign, builtin_designs

from ..analyses.lockgraph import from_stress_edges
from ..designs import design_names, resolve_design
from ..output import finish, json_option, progress_enabled, seed_option, stderr_console
from ..result import Finding, Outcome, Result
from ..stress import overhead as overhead_mod
from ..stress.plot import write_plot
from ..stress.report import (
    Printer,
    headline,
    headline_text,
    interpreter_note,
    run_json,
    wait_comparison,
)
from ..stress.runner import RunResult, StressConfig, python_info, run_combination
from ..stress.vmallocinfo import NoReader
from ..stress.workloads import SelectionError, TestCase, by_mask, by_names

# 100 µs, about ten alloc/free pairs: under the GIL contention is preemption of lock holders,
# and a short slice spreads preemptions over all critical sections in proportion to their
# length, so the per-lock figures show where threads collide.  With the interpreter's 5 ms,
# a run is a few long convoys on whichever lock a preemption happened to hit.
DEFAULT_SWITCH_INTERVAL = 1e-4


def _int_list(value: str, what: str) -> list[int]:
    try:
        out = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers",
                                 param_hint=what) from None
    if not out or any(n < 1 or n > 4096 for n in out):
        raise click.BadParameter(f"{value!r}: each value must be in 1..4096", param_hint=what)
    return sorted(set(out))


def _default_designs() -> str:
    return ",".join(n for n, c in sorted(builtin_designs().items(),
                                         key=lambda kv: (kv[0] != "global", kv[0]))
                    if not getattr(c, "mutant_of", None))


def _select_tests(test: str | None, mask: int | None) -> tuple[tuple[TestCase, ...], list[str]]:
    if test is not None and mask is not None:
        raise click.UsageError("give either --test or --mask, not both")
    try:
        if mask is not None:
            return by_mask(mask)
        return by_names(test or "fix_size"), []
    except SelectionError as exc:
        raise click.BadParameter(str(exc), param_hint="--test/--mask") from None


def _expected_ops(cfg: StressConfig) -> int:
    per = sum(64 if c.short == "align_shift" else cfg.loops for c in cfg.tests)
    return max(1, per * cfg.repeat * cfg.threads)


@click.command("stress")
@click.option("--design", "design_spec", default=None, metavar="NAME[,NAME...]",
              help="Designs to compare (built-in names or path/file.py:Class).  "
                   "Default: every built-in design that is not a mutant.")
@click.option("--threads", "threads_spec", default="1,2,4,8", show_default=True,
              metavar="N[,N...]", help="Thread counts; nr_cpus of each run = its thread count.")
@click.option("--test", "test", default=None, metavar="NAME[,NAME...]",
              help="Test cases: fix_size, full_fit, long_busy_list, random_size, fix_align, "
                   "random_size_align, align_shift (expected to fail), vmallocinfo.  "
                   "Default: fix_size.")
@click.option("--mask", type=int, default=None,
              help="run_test_mask: bit 1<<i selects kernel test i (1 = fix_size ... 64 = "
                   "align_shift).")
@click.option("--loops", type=click.IntRange(min=1), default=5000, show_default=True,
              help="test_loop_count: loop iterations per test case and thread.")
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True,
              help="test_repeat_count: runs of each case per thread.")
@click.option("--sequential", is_flag=True,
              help="sequential_test_order: every thread runs the cases in table order "
                   "(default: each thread shuffles them).")
@click.option("--nr-pages", type=click.IntRange(min=1), default=1, show_default=True,
              help="nr_pages of fix_size_alloc_test.")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="SECONDS", help="Run each combination for this long (cases repeat "
                                      "until the time is up) instead of a fixed repeat count.")
@click.option("--switch-interval", type=click.FloatRange(min=0, min_open=True),
              default=DEFAULT_SWITCH_INTERVAL, show_default=True, metavar="SECONDS",
              help="sys.setswitchinterval for the run (GIL builds; restored after).  Threads "
                   "contend only when a lock holder loses the GIL inside its critical section; "
                   "100 µs (about ten alloc/free pairs) spreads those preemptions over all "
                   "critical sections, where the interpreter's 5 ms gives a few long convoys "
                   "on one lock.")
@click.option("--no-lockstat", is_flag=True,
              help="Plain locks, no statistics (to measure lock_stat's own cost).")
@click.option("--lockstat-overhead", is_flag=True,
              help="Also measure lock_stat's cost: single-thread µs/op with and without it.")
@click.option("--lock-order", is_flag=True,
              help="Record 'acquired B while holding A' edges (for the lock-order graph).")
@click.option("--per-lock", is_flag=True, help="lock_stat rows per lock, not per lock class.")
@click.option("--summaries/--no-summaries", default=True, show_default=True,
              help="Print the per-thread 'Summary:' lines.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, metavar="FILE.png",
              help="Draw latency and contention against thread count; CSV written beside it.")
@click.option("--baseline", default="global", show_default=True,
              help="Design the others' total lock wait is compared with.")
@click.option("--pages", type=click.IntRange(min=1), default=None,
              help="Size of the managed range in pages (default: from the cases, >= 1<<22).")
@click.option("--stall-timeout", type=click.FloatRange(min=0, min_open=True), default=60.0,
              show_default=True, metavar="SECONDS",
              help="Stop and report where threads are blocked after this long without progress.")
@seed_option
@json_option
def command(design_spec: str | None, threads_spec: str, test: str | None, mask: int | None,
            loops: int, repeat: int, sequential: bool, nr_pages: int, duration: float | None,
            switch_interval: float, no_lockstat: bool, lockstat_overhead: bool,
            lock_order: bool, per_lock: bool, summaries: bool, plot_path: Path | None,
            baseline: str, pages: int | None, stall_timeout: float, seed: int,
            as_json: bool) -> None:
    """Measure lock contention of the designs under real threads (lib/test_vmalloc.c cases)."""
    threads = _int_list(threads_spec, "--threads")
    tests, skipped = _select_tests(test, mask)
    names = design_names(design_spec or _default_designs())
    if not names:
        raise click.BadParameter("no design given", param_hint="--design")
    designs: list[type[VmapDesign]] = [resolve_design(n) for n in names]
    if plot_path is not None:
        if plot_path.suffix.lower() != ".png":
            raise click.BadParameter(f"{plot_path} must end in .png", param_hint="--plot")
        if not plot_path.parent.resolve().is_dir():
            raise click.BadParameter(f"directory {plot_path.parent} does not exist",
                                     param_hint="--plot")
    if lock_order and no_lockstat:
        raise click.UsageError("--lock-order needs the instrumented locks; drop --no-lockstat")

    # Wide tables: 200 columns when the stream is a file or a pipe, the terminal's otherwise.
    stream_tty = sys.stderr.isatty() if as_json else sys.stdout.isatty()
    out = Console(stderr=as_json, width=None if stream_tty else 200)
    printer = Printer(out, per_lock=per_lock)
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(switch_interval)
    try:
        info = python_info()
        out.print(interpreter_note(info), highlight=False)
        if skipped:
            out.print(f"not modelled, skipped: {', '.join(skipped)}", highlight=False)
        runs = _run_all(designs, threads, tests, printer, summaries and not as_json,
                        dict(loops=loops, repeat=repeat, sequential=sequential, seed=seed,
                             nr_pages=nr_pages, duration=duration, lockstat=not no_lockstat,
                             record_order=lock_order, pages=pages,
                             stall_timeout=stall_timeout))
        overheads = None
        if lockstat_overhead and runs and not any(r.findings for r in runs):
            overheads = _overhead(designs, tests, loops, seed, nr_pages, pages, out)
    finally:
        sys.setswitchinterval(old_interval)

    comp = wait_comparison(runs, baseline)
    printer.overview(runs)
    head = headline(runs, comp, baseline)
    if not no_lockstat:
        printer.comparison(comp, baseline)
        if head is not None:
            out.print(headline_text(head), highlight=False)
    csv_path = None
    if plot_path is not None and runs:
        subtitle = (f"{', '.join(c.short for c in tests)}; loops {loops}; Python "
                    f"{info['version']}, GIL {'on' if info['gil_enabled'] else 'off'}, switch "
                    f"interval {switch_interval * 1e6:g} µs")
        csv_path = write_plot(runs, plot_path, subtitle)
        out.print(f"plot: {plot_path}  data: {csv_path}", highlight=False)

    result = _result(runs, comp, head, info, overheads, csv_path, plot_path, skipped, dict(
        designs=[d.name for d in designs], threads=threads, tests=[c.name for c in tests],
        loops=loops, repeat=repeat, sequential=sequential, nr_pages=nr_pages,
        duration=duration, switch_interval=switch_interval, lockstat=not no_lockstat,
        lock_order=lock_order, baseline=baseline, pages=pages, seed=seed))
    verdict = {"ok": "[green]ok[/green]", "violation": "[red]violation[/red]",
               "incomplete": "[yellow]incomplete[/yellow]"}[result.outcome.value]
    out.print(f"stress: {verdict} ({len(runs)} run(s), {len(result.findings)} finding(s))")
    finish(result, as_json)


def _run_all(designs: list[type[VmapDesign]], threads: list[int],
             tests: tuple[TestCase, ...], printer: Printer, summaries: bool,
             params: dict[str, Any]) -> list[RunResult]:
    runs: list[RunResult] = []
    combos = [(n, d) for n in threads for d in designs]
    progress = Progress(TextColumn("{task.description}"), BarColumn(),
                        TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                        console=stderr_console, transient=True, redirect_stdout=True,
                        disable=not progress_enabled())
    with progress:
        overall = progress.add_task("stress", total=len(combos))
        for n, design_cls in combos:
            cfg = StressConfig(tests=tests, threads=n, **params)
            by_time = cfg.duration is not None
            task = progress.add_task(f"{design_cls.name} × {n}",
                                     total=cfg.duration if by_time else _expected_ops(cfg))

            def update(ops: int, elapsed: float, task: Any = task, by_time: bool = by_time
                       ) -> None:
                progress.update(task, completed=elapsed if by_time else ops)

            try:
                run = run_combination(design_cls, cfg, update)
            except NoReader as exc:
                raise click.BadParameter(str(exc), param_hint="--test") from None
            progress.remove_task(task)
            progress.advance(overall)
            runs.append(run)
            printer.run_header(run)
            if summaries:
                printer.summaries(run)
            printer.lockstat(run)
            printer.findings(run)
            if run.stalled or any(f.kind == "exception" for f in run.findings):
                break  # the run stopped: report, do not go on with a broken process state
    return runs


def _overhead(designs: list[type[VmapDesign]], tests: tuple[TestCase, ...], loops: int,
              seed: int, nr_pages: int, pages: int | None, out: Console) -> dict[str, Any]:
    micro = overhead_mod.micro_ns()
    cfg = StressConfig(tests=tests, threads=1, loops=loops, seed=seed, nr_pages=nr_pages,
                       pages=pages, sequential=True)
    per = [overhead_mod.measure(d, cfg) for d in designs]
    out.print(f"lock_stat overhead: uncontended with-block {micro['ThreadLock']:.0f} ns plain, "
              f"{micro['StatLock']:.0f} ns instrumented (+{micro['StatLock'] - micro['ThreadLock']:.0f}"
              f" ns)", highlight=False)
    for o in per:
        out.print(f"lock_stat overhead on {o.design}, 1 thread: {o.plain_us_per_op:.2f} µs/op "
                  f"plain, {o.lockstat_us_per_op:.2f} µs/op instrumented = x{o.ratio:.3f}",
                  highlight=False)
    return {"micro_ns": micro,
            "per_design": [{"design": o.design, "plain_us_per_op": o.plain_us_per_op,
                            "lockstat_us_per_op": o.lockstat_us_per_op, "ratio": o.ratio}
                           for o in per]}


def _result(runs: list[RunResult], comp: dict[str, Any], head: dict[str, Any] | None,
            info: dict[str, Any],
            overheads: dict[str, Any] | None, csv_path: Path | None, plot_path: Path | None,
            skipped: list[str], config: dict[str, Any]) -> Result:
    result = Result("stress", config=config)
    for r in runs:
        if r.lockstat is not None and r.lockstat.order_edges:
            kinds = {c.lock_class: c.kind for c in r.lockstat.classes}
            graph = from_stress_edges(r.lockstat.order_edges, kinds)
            for f in graph.findings():
                result.findings.append(Finding(f.kind, f"{r.design} × {r.threads}: {f.message}",
                                               f.trace))
        for f in r.findings:
            trace = dict(f.trace) if isinstance(f.trace, dict) else {"detail": f.trace}
            trace.update(design=r.design, threads=r.threads)
            result.findings.append(Finding(f.kind, f"{r.design} × {r.threads}: {f.message}",
                                           trace))
        failed = {c.test.name: 0 for st in r.threads_state for c in st.cases.values()}
        for st in r.threads_state:
            for c in st.cases.values():
                failed[c.test.name] += c.unexpected_failures
        bad = {k: v for k, v in failed.items() if v}
        if bad and not r.findings:
            result.findings.append(Finding(
                "invariant", f"{r.design} × {r.threads}: test cases failed (an allocation "
                             f"returned NULL with free space left): "
                             + ", ".join(f"{k} {v}x" for k, v in bad.items()),
                {"design": r.design, "threads": r.threads, "failed": bad}))
    result.outcome = Outcome.VIOLATION if result.findings else Outcome.OK
    result.stats = {
        "python": info,
        "runs": [run_json(r) for r in runs],
        "wait_comparison": {"baseline": config["baseline"], "by_threads": comp},
        "headline": head,
        "lockstat_overhead": overheads,
        "plot": str(plot_path) if plot_path is not None else None,
        "csv": str(csv_path) if csv_path is not None else None,
        "skipped_tests": skipped,
    }
    return result
