"""Print simulations and their validation as rich tables.

Per design: µs per iteration at each CPU count, its ratio to the fewest CPUs, p99, makespan
and the lock wait share with the lock class that dominates it; then per design the wait share
of every lock class (atomics' cache lines included); or, with ``--validate``, published against simulated at every point with the
relative error, the ratio checks and the acceptance targets.

Relies on rich and ``checker.simulate`` (results, validation).
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from .costs import CostModel
from .driver import SimResult
from .validate import Validation


def print_costs(out: Console, costs: CostModel, source: str) -> None:
    out.print(f"cost model ({source}): {costs.describe()}", highlight=False)


def print_runs(out: Console, runs: list[SimResult]) -> None:
    designs = list(dict.fromkeys(r.design for r in runs))
    for d in designs:
        rs = sorted((r for r in runs if r.design == d), key=lambda r: r.cpus)
        if not rs:
            continue
        base = rs[0]
        t = Table(title=f"{d}: {', '.join(base.tests)} in virtual time", title_justify="left")
        for col in ("CPUs", "ops/CPU", "µs/iter", f"× {base.cpus} CPU", "p99 µs",
                    "makespan ms", "lock wait", "dominant lock", "purges", "steady", "wall s"):
            t.add_column(col, justify="left" if col == "dominant lock" else "right")
        for r in rs:
            top = r.lock_classes()[0] if r.locks else None
            dom = (f"{top.name} {100 * top.wait_share:.0f}%"
                   if top is not None and top.wait_share >= 0.005 else "-")
            t.add_row(str(r.cpus), str(r.ops), f"{r.per_op_us:.3f}",
                      f"{r.per_op_us / base.per_op_us:.2f}" if base.per_op_us else "-",
                      f"{r.p99_us:.2f}", f"{r.makespan_us / 1e3:.2f}",
                      f"{100 * r.wait_share:.1f}%", dom, str(r.purges),
                      "yes" if r.steady else "no", f"{r.wall_s:.1f}")
        out.print(t)


def print_wait_shares(out: Console, runs: list[SimResult]) -> None:
    """Share of the test threads' time spent waiting, per lock class: one table per design."""
    for d in dict.fromkeys(r.design for r in runs):
        rs = sorted((r for r in runs if r.design == d), key=lambda r: r.cpus)
        classes: list[str] = []
        for r in rs:
            for row in r.lock_classes():
                if row.wait_ns > 0 and row.name not in classes:
                    classes.append(row.name)
        if not classes:
            out.print(f"{d}: no lock was ever contended", highlight=False)
            continue
        t = Table(title=f"{d}: wait per lock class, % of test-thread time",
                  title_justify="left")
        t.add_column("CPUs", justify="right")
        for c in classes:
            t.add_column(c, justify="right")
        for r in rs:
            by = {row.name: row for row in r.lock_classes()}
            t.add_row(str(r.cpus),
                      *[f"{100 * by[c].wait_share:.1f}" if c in by else "-" for c in classes])
        out.print(t)


def print_validation(out: Console, val: Validation) -> None:
    t = Table(title="published vs simulated (µs per vmalloc/vfree pair, fix_size)",
              title_justify="left")
    for col in ("curve", "design", "jobs", "published", "simulated", "rel. error", "fit"):
        t.add_column(col, justify="right" if col in ("jobs", "published", "simulated",
                                                      "rel. error") else "left")
    for p in val.points:
        err = p.rel_error
        colour = "green" if abs(err) <= 0.25 else "yellow" if 0.5 <= 1 + err <= 2 else "red"
        t.add_row(p.curve, p.design, str(p.jobs), f"{p.published_us:.3f}",
                  f"{p.simulated_us:.3f}", f"[{colour}]{err * 100:+.0f}%[/{colour}]",
                  "fitted" if p.in_sample else "predicted")
    out.print(t)
    r = Table(title="ratio checks (predicted, not fitted)", title_justify="left")
    for col in ("check", "what", "published", "simulated", "note"):
        r.add_column(col)
    for row in val.ratios:
        r.add_row(row.name, row.what, f"{row.published:.1f}x", f"{row.simulated:.1f}x",
                  row.note)
    out.print(r)
    for name, (ok, detail) in val.targets.items():
        mark = "[green]met[/green]" if ok else "[red]missed[/red]"
        out.print(f"target {name}: {mark} ({detail})")
