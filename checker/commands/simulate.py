"""``vmapcheck simulate``: the designs on 1..128 modelled CPUs, in virtual time.

Each design at each CPU count runs the selected test_vmalloc cases under the virtual-time
runtime with the fitted cost model (``checker/simulate/fitted.json``; ``--cost`` overrides a
parameter).  Printed per design: µs per iteration, its ratio to the fewest CPUs, p99, makespan,
lock wait share and the dominant lock; then the wait share per lock class.  ``--machine``
chooses the modelled machine: by default the published one (``Threadripper 3970X``: 64 online
CPUs in 8 CCXs, jobs spread over them, the topology the costs were fitted on), or ``flat`` (as
many CPUs as jobs, each its own cache domain, FIFO hand-off), which also models more than 64.  ``--validate``
instead runs the calibration check: the published figures against the simulated ones.  A design
that raises, deadlocks, breaks an invariant or loses an area under simulation is a finding
(exit 1).

Relies on ``checker.simulate`` and ``checker.designs``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from impl.designs import VmapDesign, builtin_designs

from ..designs import design_names, resolve_design
from ..output import finish, json_option, progress_enabled, seed_option, stderr_console
from ..result import Finding, Outcome, Result
from ..simulate.cases import STEADY_CYCLES, UNSUPPORTED, steady_ops
from ..simulate.costs import CostModel, load_fitted, parse_overrides
from ..simulate.driver import DesignFailure, SimConfig, SimResult, run_simulation
from ..simulate.plot import write_plot
from ..simulate.report import print_costs, print_runs, print_validation, print_wait_shares
from ..simulate.topology import THREADRIPPER_3970X, Topology
from ..simulate.validate import V3_LOOPS, V3_SETUP_SCALE, Validation, validate
from ..simulate.validate import machine as published_or_flat
from ..stress.workloads import SelectionError, TestCase, by_mask, by_names

MAX_CPUS = 128


def _cpu_list(value: str) -> list[int]:
    try:
        out = sorted({int(v) for v in value.split(",") if v.strip()})
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers",
                                 param_hint="--cpus") from None
    if not out or out[0] < 1 or out[-1] > MAX_CPUS:
        raise click.BadParameter(f"{value!r}: each CPU count must be in 1..{MAX_CPUS}",
                                 param_hint="--cpus")
    return out


def _default_designs() -> str:
    names = [n for n, c in builtin_designs().items() if not getattr(c, "mutant_of", None)]
    return ",".join(sorted(names, key=lambda n: (n != "global", n)))


def _select_tests(test: str | None, mask: int | None) -> tuple[TestCase, ...]:
    if test is not None and mask is not None:
        raise click.UsageError("give either --test or --mask, not both")
    try:
        tests = by_mask(mask)[0] if mask is not None else by_names(test or "fix_size")
    except SelectionError as exc:
        raise click.BadParameter(str(exc), param_hint="--test/--mask") from None
    for c in tests:
        if c.short in UNSUPPORTED:
            raise click.BadParameter(f"{c.short}: {UNSUPPORTED[c.short]}",
                                     param_hint="--test/--mask")
    return tests


def _costs(cost_spec: str | None) -> tuple[CostModel, str]:
    costs, record = load_fitted()
    source = "fitted" if "params" in record else str(record.get("source", "prior"))
    if cost_spec:
        try:
            overrides = parse_overrides(cost_spec)
            costs = costs.replace(**overrides)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--cost") from None
        source += " with " + ", ".join(f"{k}={v:g}" for k, v in overrides.items())
    return costs, source


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(),
                    TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                    console=stderr_console, transient=True, disable=not progress_enabled())


@click.command("simulate")
@click.option("--design", "design_spec", default=None, metavar="NAME[,NAME...]",
              help="Designs to simulate (built-in names or path/file.py:Class).  Default: "
                   "every built-in design that is not a mutant.")
@click.option("--cpus", "cpus_spec", default="1,2,4,8,16,32,64", show_default=True,
              metavar="N[,N...]", help=f"Job counts (1..{MAX_CPUS}): one test thread per job, "
                                       "each on a CPU of its own (placed as the load balancer "
                                       "spreads them on the published machine).")
@click.option("--test", "test", default=None, metavar="NAME[,NAME...]",
              help="test_vmalloc cases: fix_size, full_fit, long_busy_list, random_size, "
                   "fix_align, random_size_align, align_shift.  Default: fix_size.")
@click.option("--mask", type=int, default=None,
              help="run_test_mask: bit 1<<i selects kernel test i (7 = fix_size, full_fit, "
                   "long_busy_list).")
@click.option("--ops", type=click.IntRange(min=1), default=None,
              help="Loop iterations per case and CPU (test_loop_count).  Default: enough for "
                   f"{STEADY_CYCLES} drain cycles after the first (the allocator's steady "
                   "state, as in the fit), at least 1000.")
@click.option("--online-cpus", type=click.IntRange(1, MAX_CPUS), default=None,
              help="num_online_cpus() of the modelled machine (lazy_max_pages, nodes).  "
                   "Default: the CPU count of each run.  With --validate, 64 models the "
                   "published machine as it was.")
@click.option("--machine", type=click.Choice(["published", "flat"]), default=None,
              help="The modelled machine of the grid: 'published' (default: the Threadripper "
                   "3970X of the published runs, 64 CPUs, the topology the costs were fitted "
                   "on) or 'flat' (as many CPUs as jobs, one cache domain each, FIFO hand-off; "
                   "needed past 64 CPUs).  --validate always models the published machine.")
@click.option("--setup-scale", type=click.IntRange(min=1), default=1, show_default=True,
              help="Divide the set-up sizes of full_fit and long_busy_list by this.")
@click.option("--sequential", is_flag=True,
              help="sequential_test_order: run the cases in table order on every thread.")
@click.option("--nr-pages", type=click.IntRange(min=1), default=1, show_default=True,
              help="nr_pages of fix_size_alloc_test.")
@click.option("--cost", "cost_spec", default=None, metavar="NAME=NS[,...]",
              help="Override fitted costs: call_ns, node_ns, lock_ns, xfer_ns, tlb_ns.")
@click.option("--validate", "do_validate", is_flag=True,
              help="Calibration check instead of the grid: global (fitted) and nodes/percpu "
                   "(predicted) at 1..32 jobs against the v1 cover letter, the v3 mask-7 "
                   "ratio at 64 threads and the LSFMM figure.")
@click.option("--no-v3", is_flag=True, help="With --validate: skip the 64-thread mask-7 run.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, metavar="FILE.png",
              help="Latency, scaling and lock wait against CPUs, published points overlaid.")
@seed_option
@json_option
def command(design_spec: str | None, cpus_spec: str, test: str | None, mask: int | None,
            ops: int | None, online_cpus: int | None, machine: str | None, setup_scale: int,
            sequential: bool, nr_pages: int, cost_spec: str | None, do_validate: bool, no_v3: bool,
            plot_path: Path | None, seed: int, as_json: bool) -> None:
    """Predict contention at 1..128 CPUs: a discrete-event simulation in virtual time."""
    cpus = _cpu_list(cpus_spec)
    tests = _select_tests(test, mask)
    topology = None if do_validate else _machine(machine, cpus, online_cpus)
    if do_validate and machine is not None:
        raise click.UsageError("--machine applies to the grid; --validate always models the "
                               "published machine (--online-cpus N makes it a flat one)")
    costs, source = _costs(cost_spec)
    designs: list[type[VmapDesign]] = []
    if not do_validate:
        names = design_names(design_spec or _default_designs())
        if not names:
            raise click.BadParameter("no design given", param_hint="--design")
        designs = [resolve_design(n) for n in names]
    if plot_path is not None:
        if plot_path.suffix.lower() != ".png":
            raise click.BadParameter(f"{plot_path} must end in .png", param_hint="--plot")
        if not plot_path.parent.resolve().is_dir():
            raise click.BadParameter(f"directory {plot_path.parent} does not exist",
                                     param_hint="--plot")

    out = (Console(stderr=True, width=None if sys.stderr.isatty() else 200) if as_json
           else Console(width=None if sys.stdout.isatty() else 200))
    print_costs(out, costs, source)
    result = Result("simulate", config=dict(
        designs=[d.name for d in designs], cpus=cpus, tests=[c.name for c in tests],
        ops=ops, online_cpus=online_cpus,
        machine=None if do_validate else (topology.describe() if topology else "flat"),
        setup_scale=setup_scale, sequential=sequential,
        nr_pages=nr_pages, costs=costs.to_json(), cost_source=source, validate=do_validate,
        seed=seed))
    runs: list[SimResult] = []
    val: Validation | None = None
    if do_validate:
        val = _validate(costs, seed, ops, not no_v3, online_cpus)
        runs = val.runs
        print_validation(out, val)
    else:
        if topology is not None:
            out.print(f"machine: {topology.describe()}", highlight=False)
        runs = _run_grid(designs, cpus, tests, costs, seed, ops, online_cpus, topology,
                         setup_scale, sequential, nr_pages, result)
        print_runs(out, runs)
        print_wait_shares(out, runs)
    if plot_path is not None and runs:
        plotted = [r for r in runs if r.cpus <= 32 or not do_validate]
        plotted = [r for r in plotted if r.tests == plotted[0].tests]
        write_plot(plotted, plot_path, f"vmapcheck simulate: {', '.join(plotted[0].tests)}; "
                                       f"{source} costs; seed {seed}")
        out.print(f"plot: {plot_path}", highlight=False)
    result.outcome = Outcome.VIOLATION if result.findings else Outcome.OK
    result.stats = {"costs": costs.to_json(), "runs": [r.to_json() for r in runs],
                    "validation": val.to_json() if val is not None else None,
                    "plot": str(plot_path) if plot_path is not None else None}
    out.print(f"simulate: {len(runs)} run(s), {len(result.findings)} finding(s)")
    finish(result, as_json)


def _machine(machine: str | None, cpus: list[int], online_cpus: int | None) -> Topology | None:
    """The grid's machine: the published one unless ``flat`` is asked for (None)."""
    if machine == "flat":
        return None
    top = THREADRIPPER_3970X
    if machine is None:
        # The validation's rule: the published machine unless --online-cpus names another.
        if published_or_flat(online_cpus) is None:
            return None
    elif online_cpus is not None and online_cpus != top.nr_cpus:
        raise click.BadParameter(f"the published machine has {top.nr_cpus} online CPUs, not "
                                 f"{online_cpus}", param_hint="--online-cpus")
    too_many = [n for n in cpus if n > top.nr_cpus]
    if too_many:
        raise click.BadParameter(
            f"{too_many[0]} CPUs: the published machine ({top.name}) has {top.nr_cpus}; "
            "add --machine flat to model a larger one", param_hint="--cpus")
    return top


def _run_grid(designs: list[type[VmapDesign]], cpus: list[int], tests: tuple[TestCase, ...],
              costs: CostModel, seed: int, ops: int | None, online_cpus: int | None,
              topology: Topology | None, setup_scale: int, sequential: bool, nr_pages: int,
              result: Result) -> list[SimResult]:
    runs: list[SimResult] = []
    combos = [(d, n) for d in designs for n in cpus]
    with _progress() as progress:
        overall = progress.add_task("simulate", total=len(combos))
        for design_cls, n in combos:
            nr_cpus = (topology.nr_cpus if topology is not None
                       else online_cpus if online_cpus is not None else n)
            n_ops = ops if ops is not None else steady_ops(tests, n, nr_cpus, nr_pages)
            cfg = SimConfig(design_cls, n, tests, costs, ops=n_ops, seed=seed,
                            sequential=sequential, nr_pages=nr_pages,
                            online_cpus=None if topology is not None else online_cpus,
                            setup_scale=setup_scale, topology=topology)
            task = progress.add_task(f"{design_cls.name} × {n}",
                                     total=2 * n_ops * n * len(tests))

            def update(calls: int, task: Any = task) -> None:
                progress.update(task, completed=calls)

            try:
                runs.append(run_simulation(cfg, update))
            except DesignFailure as exc:
                result.findings.append(Finding("exception", str(exc), {
                    "design": design_cls.name, "cpus": n, "seed": seed,
                    "cause": f"{type(exc.__cause__).__name__}: {exc.__cause__}"
                    if exc.__cause__ is not None else None}))
            progress.remove_task(task)
            progress.advance(overall)
    return runs


def _validate(costs: CostModel, seed: int, ops: int | None, v3: bool,
              online_cpus: int | None) -> Validation:
    steps = 18 + (2 if v3 else 0)
    with _progress() as progress:
        task = progress.add_task("validate", total=steps)

        def step(what: str) -> None:
            progress.update(task, description=f"validate: {what}", advance=1)

        return validate(costs, seed, ops, v3=v3, v3_loops=V3_LOOPS, v3_scale=V3_SETUP_SCALE,
                        progress=step, online_cpus=online_cpus)
