"""``vmapcheck mutants``: run the checker on the whole mutant catalog and the correct designs.

Prints design, expected kind, found kind, executions and seconds to the first finding, the kill
rate and the false alarms; exits 1 if a mutant survives (or is found for another reason than
its note says) or a correct design is flagged.
"""

from __future__ import annotations

import time

import click
from rich.table import Table

from ..designs import design_names
from ..mutants import catalog_designs, check_one, summarize
from ..output import finish, json_option, stderr_console, stdout_console


@click.command("mutants")
@click.option("--only", default=None, help="Comma-separated designs to run (default: all).")
@click.option("--timeout", type=click.FloatRange(min=1), default=60.0, show_default=True,
              help="Seconds allowed per design.")
@json_option
def command(only: str | None, timeout: float, as_json: bool) -> None:
    """Check every seeded-bug mutant and every correct design; print the kill table."""
    from impl.designs import builtin_designs

    names = design_names(only) if only else None
    if names:
        unknown = [n for n in names if n not in builtin_designs()]
        if unknown:
            raise click.BadParameter(f"unknown design(s): {', '.join(unknown)}", param_hint="--only")
    t0 = time.monotonic()
    rows = []
    for cls in catalog_designs(names):
        stderr_console.log(f"checking {cls.name} ...")
        rows.append(check_one(cls, timeout))
    result = summarize(rows, time.monotonic() - t0)
    if not as_json:
        table = Table(title="mutant catalog")
        for col in ("design", "mutant of", "expected", "found", "executions", "seconds", "verdict"):
            table.add_column(col, justify="right" if col in ("executions", "seconds") else "left")
        for r in rows:
            style = "" if r.passed else "bold red"
            table.add_row(r.design, r.mutant_of or "-", r.expected or "-", r.found or "-",
                          str(r.executions), f"{r.seconds:.2f}", r.verdict, style=style)
        stdout_console.print(table)
        s = result.stats
        rate = f"{100 * s['kill_rate']:.0f}%" if s["kill_rate"] is not None else "n/a"
        stdout_console.print(
            f"kill rate {rate} ({s['killed']}/{s['mutants']}), {s['mismatched_kind']} found as "
            f"another kind, {s['false_alarms']} false alarms on {s['correct_designs']} correct "
            f"designs; slowest finding {s['max_seconds_to_finding']:.2f} s; total {s['seconds']:.1f} s")
    finish(result, as_json)
