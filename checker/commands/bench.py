"""``vmapcheck bench``: single-thread alloc+free cost against the number of live areas.

The kernel does a vmalloc+vfree pair in about 0.58 µs on one CPU; a log-n structure should
grow slowly from 10^3 to 10^5 live areas.  Prints the median µs per pair over repeats and the
growth ratio, and, with several designs, each design's ratio to the first.
"""

from __future__ import annotations

import platform

import click
from rich.table import Table

from ..bench import BenchPoint, measure
from ..designs import design_names, resolve_design
from ..output import finish, json_option, stderr_console, stdout_console
from ..result import Result


def _ints(value: str) -> list[int]:
    try:
        out = [int(float(v)) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise click.BadParameter(f"expected comma-separated numbers, got {value!r}") from exc
    if not out or any(v <= 0 for v in out):
        raise click.BadParameter("every value must be a positive number")
    return out


@click.command("bench")
@click.option("--design", "designs", default="global", show_default=True,
              help="Design(s), comma-separated; the first is the baseline for ratios.")
@click.option("--live", default="1000,10000,100000", show_default=True,
              help="Live-area counts to measure at, comma-separated.")
@click.option("--pairs", type=click.IntRange(1), default=20000, show_default=True,
              help="alloc+free pairs per repeat.")
@click.option("--repeat", type=click.IntRange(1), default=5, show_default=True,
              help="Repeats per point; the median is reported.")
@click.option("--size-pages", type=click.IntRange(1, 1 << 20), default=1, show_default=True)
@click.option("--cpus", type=click.IntRange(1, 1024), default=32, show_default=True,
              help="CPUs of the modelled machine (one thread runs; sets lazy_max and nodes).")
@json_option
def command(designs: str, live: str, pairs: int, repeat: int, size_pages: int, cpus: int,
            as_json: bool) -> None:
    """Single-thread cost of an alloc+free pair at 10^3, 10^4 and 10^5 live areas."""
    classes = [resolve_design(n) for n in design_names(designs)]
    lives = _ints(live)
    points: list[BenchPoint] = []
    for cls in classes:
        for n in lives:
            stderr_console.log(f"bench {cls.name}: {n} live areas ...")
            points.append(measure(cls, n, pairs, repeat, size_pages, cpus))
    base = classes[0].name
    base_at = {p.live: p.median_us for p in points if p.design == base}
    rows = []
    for p in points:
        rows.append({"design": p.design, "live": p.live, "median_us": round(p.median_us, 3),
                     "min_us": round(min(p.repeats), 3), "max_us": round(max(p.repeats), 3),
                     "ratio_to_" + base: round(p.median_us / base_at[p.live], 3)})
    growth = {}
    for cls in classes:
        mine = [p for p in points if p.design == cls.name]
        growth[cls.name] = round(mine[-1].median_us / mine[0].median_us, 3)
    result = Result("bench", config={"designs": [c.name for c in classes], "live": lives,
                                     "pairs": pairs, "repeat": repeat, "size_pages": size_pages,
                                     "cpus": cpus, "python": platform.python_version()},
                    stats={"points": rows, "growth": growth,
                           "growth_span": f"{lives[0]}..{lives[-1]}"})
    if not as_json:
        table = Table(title=f"alloc+free pair, single thread (median of {repeat} x {pairs} pairs)")
        for col in ("design", "live areas", "µs/pair", "min", "max", f"ratio to {base}"):
            table.add_column(col, justify="right")
        for r in rows:
            table.add_row(str(r["design"]), f"{r['live']:,}", f"{r['median_us']:.2f}",
                          f"{r['min_us']:.2f}", f"{r['max_us']:.2f}",
                          f"{r['ratio_to_' + base]:.2f}")
        stdout_console.print(table)
        for name, g in growth.items():
            stdout_console.print(f"{name}: growth {lives[0]:,} -> {lives[-1]:,} live areas: {g:.2f}x")
    finish(result, as_json)
