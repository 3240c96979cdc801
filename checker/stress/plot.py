"""Plot a stress run: latency and lock contention against thread count, one line per design.

Three panels share the thread-count axis (log 2): per-op latency p50 (solid) and p99 (dashed) in
µs, total lock wait per op in µs, and the share of acquisitions that were contended.  The raw
figures go to a CSV beside the PNG (same name, ``.csv``) so that they can be re-plotted.  The
Agg backend is used: no display is needed.

Relies on matplotlib and ``checker.stress.runner`` (results).
"""

from __future__ import annotations

import csv
from pathlib import Path

from .runner import RunResult

CSV_COLUMNS = ("design", "threads", "ops", "elapsed_s", "ops_per_s", "p50_us", "p99_us",
               "acquisitions", "contentions", "contention_ratio", "wait_total_ns",
               "wait_per_op_us", "dominant_class", "dominant_share", "invariants")


def csv_rows(runs: list[RunResult]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for r in runs:
        rep = r.lockstat
        dom = rep.dominant if rep is not None else None
        rows.append({
            "design": r.design, "threads": r.threads, "ops": r.ops,
            "elapsed_s": f"{r.elapsed_s:.4f}", "ops_per_s": f"{r.ops_per_s:.1f}",
            "p50_us": f"{r.percentile_us(0.5):.3f}", "p99_us": f"{r.percentile_us(0.99):.3f}",
            "acquisitions": rep.total.acquisitions if rep else "",
            "contentions": rep.total.contentions if rep else "",
            "contention_ratio": f"{rep.total.contention_ratio:.6f}" if rep else "",
            "wait_total_ns": rep.total.wait_total_ns if rep else "",
            "wait_per_op_us": (f"{rep.total.wait_total_ns / r.ops / 1000:.4f}"
                               if rep and r.ops else ""),
            "dominant_class": dom.lock_class if dom else "",
            "dominant_share": f"{rep.share_of_wait(dom.lock_class):.4f}" if rep and dom else "",
            "invariants": r.invariants,
        })
    return rows


def write_csv(runs: list[RunResult], path: Path) -> None:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        w.writeheader()
        w.writerows(csv_rows(runs))


def write_plot(runs: list[RunResult], path: Path, subtitle: str = "") -> Path:
    """Draw ``path`` (PNG) and write the CSV beside it; returns the CSV path."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    csv_path = path.with_suffix(".csv")
    write_csv(runs, csv_path)
    designs = list(dict.fromkeys(r.design for r in runs))
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2))
    ax_lat, ax_wait, ax_con = axes
    for i, d in enumerate(designs):
        pts = sorted((r for r in runs if r.design == d), key=lambda r: r.threads)
        xs = [r.threads for r in pts]
        color = f"C{i}"
        ax_lat.plot(xs, [r.percentile_us(0.5) for r in pts], "o-", color=color,
                    label=f"{d} p50")
        ax_lat.plot(xs, [r.percentile_us(0.99) for r in pts], "s--", color=color,
                    label=f"{d} p99")
        with_stats = [r for r in pts if r.lockstat is not None and r.ops]
        if with_stats:
            wx = [r.threads for r in with_stats]
            ax_wait.plot(wx, [r.lockstat.total.wait_total_ns / r.ops / 1000  # type: ignore[union-attr]
                              for r in with_stats], "o-", color=color, label=d)
            ax_con.plot(wx, [100 * r.lockstat.total.contention_ratio  # type: ignore[union-attr]
                             for r in with_stats], "o-", color=color, label=d)
    ax_lat.set_title("per-op latency (µs): p50 solid, p99 dashed")
    ax_lat.set_ylabel("µs per op")
    ax_lat.set_yscale("log")
    ax_wait.set_title("lock wait per op (µs), all locks")
    ax_wait.set_ylabel("µs waited per op")
    ax_con.set_title("contended acquisitions (%)")
    ax_con.set_ylabel("% of acquisitions that waited")
    all_threads = sorted({r.threads for r in runs})
    for ax in axes:
        ax.set_xlabel("threads")
        ax.set_xscale("log", base=2)
        ax.set_xticks(all_threads)
        ax.set_xticklabels([str(n) for n in all_threads])
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    if subtitle:
        fig.suptitle(subtitle, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return csv_path
