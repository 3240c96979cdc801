"""Plot a simulation: latency, scaling and lock wait against CPU count, published points on top.

Three panels share the CPU axis (log 2): µs of virtual time per loop iteration (log scale),
the same as a ratio to the smallest CPU count, and the share of the test threads' time spent
waiting for locks and for the cache lines of atomics.  One line per design; the published points of the v1 cover letter are drawn
as large markers in the colour of the design that plays them (``global`` for "before",
``nodes`` for "after").  The Agg backend is used: no display is needed.

Relies on matplotlib, ``checker.simulate.driver`` (results) and ``published``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .driver import SimResult
from .published import LSFMM_2023, V1_GLOBAL, V1_PATCHED, Curve

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_COLOURS = {"global": "tab:red", "nodes": "tab:blue", "percpu": "tab:green"}
_FALLBACK = ["tab:purple", "tab:orange", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"]


def _colour(design: str, seen: dict[str, str]) -> str:
    if design not in seen:
        seen[design] = _COLOURS.get(design) or _FALLBACK[len(seen) % len(_FALLBACK)]
    return seen[design]


def write_plot(runs: list[SimResult], path: Path, title: str = "",
               published: bool = True) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours: dict[str, str] = {}
    designs = list(dict.fromkeys(r.design for r in runs))
    fig, (ax_lat, ax_ratio, ax_wait) = plt.subplots(1, 3, figsize=(16, 5.2))
    for d in designs:
        rs = sorted((r for r in runs if r.design == d), key=lambda r: r.cpus)
        if not rs:
            continue
        c = _colour(d, colours)
        xs = [r.cpus for r in rs]
        base = rs[0].per_op_us or 1.0
        ax_lat.plot(xs, [r.per_op_us for r in rs], "-o", color=c, label=f"{d} (simulated)")
        ax_lat.plot(xs, [r.p99_us for r in rs], ":", color=c, alpha=0.6,
                    label="p99 (dotted)" if d == designs[0] else None)
        ax_ratio.plot(xs, [r.per_op_us / base for r in rs], "-o", color=c, label=d)
        ax_wait.plot(xs, [100 * r.wait_share for r in rs], "-o", color=c, label=d)
    if published:
        for curve, marker in ((V1_GLOBAL, "s"), (V1_PATCHED, "D")):
            _published(ax_lat, ax_ratio, curve, marker, _colour(curve.design, colours))
        ax_lat.plot([1, LSFMM_2023.threads], [LSFMM_2023.one_us, LSFMM_2023.many_us], "x",
                    color="black", markersize=9, label="LSFMM 2023 talk (unverified)")
    ax_lat.set_title("µs of virtual time per iteration")
    ax_ratio.set_title("ratio to the fewest CPUs")
    ax_wait.set_title("waiting for locks and atomic lines, % of thread time")
    for ax in (ax_lat, ax_ratio, ax_wait):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("CPUs (test threads)")
        ax.grid(True, which="both", alpha=0.3)
        ticks = sorted({r.cpus for r in runs} | (set(V1_GLOBAL.jobs) if published else set()))
        ax.set_xticks(ticks, [str(x) for x in ticks])
    ax_lat.set_yscale("log")
    ax_ratio.set_yscale("log")
    ax_wait.set_ylim(0, 100)
    ax_lat.legend(fontsize=8, loc="upper left")
    ax_ratio.legend(fontsize=8, loc="upper left")
    ax_wait.legend(fontsize=8, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _published(ax_lat: Axes, ax_ratio: Axes, curve: Curve, marker: str, colour: str) -> None:
    xs = list(curve.jobs)
    ys = [p for _, p in curve.points]
    ax_lat.plot(xs, ys, marker, label=f"published: {curve.name} ({curve.design})",
                color=colour, markersize=9, markerfacecolor="none", markeredgewidth=2,
                linestyle="none")
    ax_ratio.plot(xs, [y / ys[0] for y in ys], marker, label=f"published: {curve.name}",
                  color=colour, markersize=9, markerfacecolor="none", markeredgewidth=2,
                  linestyle="none")
