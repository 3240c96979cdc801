"""What a stress run prints and serialises: kernel-style summaries, lock_stat tables, comparisons.

``summary_lines`` are the module's ``Summary: <name> passed: P failed: F repeat: R loops: L avg: T
usec`` lines, per thread and per selected case in table order.  The lock_stat table follows
``/proc/lock_stat``'s columns (times in µs) with two of ours: the contention ratio and the share
of the run's total wait.  ``wait_comparison`` puts each design's total lock wait beside the
baseline design's at the same thread count, measured in the same process.  ``interpreter_note``
says what the interpreter allows, since under a GIL only one thread runs Python at a time.

Relies on ``checker.stress.runner`` (results), ``checker.lockstat`` and rich.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from ..lockstat import LockStatistics, LockStatReport
from .runner import RunResult
from .workloads import TEST_CASES


def _us(ns: float) -> str:
    return f"{ns / 1000:.2f}"


def summary_lines(run: RunResult) -> list[str]:
    lines = []
    order = [c.name for c in TEST_CASES]
    for st in run.threads_state:
        for name in sorted(st.cases, key=order.index):
            c = st.cases[name]
            lines.append(f"Summary: {name} passed: {c.passed} failed: {c.failed} "
                         f"repeat: {c.repeat} loops: {run.loops} avg: {c.time_us} usec")
    return lines


def run_json(run: RunResult, with_lines: bool = True) -> dict[str, Any]:
    cfg = run.config
    out: dict[str, Any] = {
        "design": run.design, "threads": run.threads, "nr_cpus": cfg.nr_cpus,
        "pages": cfg.pages, "lazy_max_pages": cfg.lazy_max_pages,
        "nr_vmap_nodes": cfg.nr_vmap_nodes, "loops": run.loops, "repeat": run.repeat,
        "elapsed_s": run.elapsed_s, "ops": run.ops, "ops_per_s": run.ops_per_s,
        "latency_us": {
            "p50": run.percentile_us(0.50), "p99": run.percentile_us(0.99),
            "max": run.latencies_ns[-1] / 1000 if run.latencies_ns else 0.0,
            "mean": (sum(run.latencies_ns) / len(run.latencies_ns) / 1000
                     if run.latencies_ns else 0.0)},
        "blocked_share": run.blocked_share,
        "drain_runs": run.drain_runs, "invariants": run.invariants, "stalled": run.stalled,
        "unexpected_failures": run.unexpected_failures,
        "threads_summary": [
            {"thread": st.index, "cpu": st.cpu,
             "tests": [{"name": c.test.name, "passed": c.passed, "failed": c.failed,
                        "xfailed": c.xfailed, "repeat": c.repeat, "loops": run.loops,
                        "avg_usec": c.time_us} for c in st.cases.values()]}
            for st in run.threads_state],
        "lockstat": run.lockstat.to_json() if run.lockstat is not None else None,
        "findings": [f.to_json() for f in run.findings],
    }
    if with_lines:
        out["summary_lines"] = summary_lines(run)
    return out


# Below this many contentions of the baseline a ratio is noise (one preemption more or less).
MIN_BASELINE_CONTENTIONS = 10


def _ratio(x: int, base: int | None) -> float | None:
    return x / base if base else None


def wait_comparison(runs: list[RunResult], baseline: str) -> dict[str, dict[str, Any]]:
    """Per thread count: each design's total lock wait (all of it, and the part behind locks
    held by test threads rather than the drain worker), contentions, and their ratios to the
    baseline's (None where the baseline was not run or had too few contentions to compare)."""
    out: dict[str, dict[str, Any]] = {}
    for n in sorted({r.threads for r in runs}):
        at_n = {r.design: r for r in runs if r.threads == n and r.lockstat is not None}
        base = at_n.get(baseline)
        row: dict[str, Any] = {}
        for name, r in at_n.items():
            assert r.lockstat is not None
            total = r.lockstat.total
            base_total = base.lockstat.total if base is not None and base.lockstat else None
            if base_total is not None and base_total.contentions < MIN_BASELINE_CONTENTIONS:
                base_total = None
            row[name] = {
                "wait_total_ns": total.wait_total_ns,
                "thread_wait_total_ns": total.thread_wait_total_ns,
                "worker_wait_total_ns": total.worker_wait_total_ns,
                "contentions": total.contentions,
                "wait_per_op_us": total.wait_total_ns / r.ops / 1000 if r.ops else 0.0,
                "wait_ratio": _ratio(total.wait_total_ns,
                                     base_total.wait_total_ns if base_total else None),
                "thread_wait_ratio": _ratio(total.thread_wait_total_ns,
                                            base_total.thread_wait_total_ns if base_total
                                            else None),
                "contention_ratio_vs_baseline": _ratio(
                    total.contentions, base_total.contentions if base_total else None),
            }
        out[str(n)] = row
    return out


def headline(runs: list[RunResult], comp: dict[str, dict[str, Any]],
             baseline: str) -> dict[str, Any] | None:
    """At the largest thread count: where the baseline waits most, and each design's total
    wait and contentions relative to it."""
    with_stats = [r for r in runs if r.lockstat is not None]
    if not with_stats:
        return None
    n = max(r.threads for r in with_stats)
    base = next((r for r in with_stats if r.threads == n and r.design == baseline), None)
    dom = base.lockstat.dominant if base is not None and base.lockstat is not None else None
    return {
        "threads": n, "baseline": baseline,
        "dominant_class": dom.lock_class if dom else None,
        "dominant_share": (base.lockstat.share_of_wait(dom.lock_class)
                           if base is not None and base.lockstat is not None and dom else None),
        "relative": {d: {"wait": c["wait_ratio"], "thread_held_wait": c["thread_wait_ratio"],
                         "contentions": c["contention_ratio_vs_baseline"]}
                     for d, c in comp.get(str(n), {}).items() if d != baseline},
    }


def headline_text(h: dict[str, Any]) -> str:
    def x(v: float | None) -> str:
        return "-" if v is None else f"x{v:.3f}"

    parts = [f"at {h['threads']} thread(s): {h['baseline']} waits most on "
             + (f"{h['dominant_class']} ({h['dominant_share']:.0%} of its lock wait)"
                if h["dominant_class"] else "no lock (no wait)")]
    for d, rel in sorted(h["relative"].items()):
        parts.append(f"{d}: total wait {x(rel['wait'])}, thread-held wait "
                     f"{x(rel['thread_held_wait'])}, contentions {x(rel['contentions'])} of "
                     f"{h['baseline']}'s")
    return "; ".join(parts)


def interpreter_note(info: dict[str, Any]) -> str:
    head = (f"Python {info['version']} ({info['implementation']}"
            f"{', free-threaded build' if info['free_threaded_build'] else ''}), "
            f"GIL {'enabled' if info['gil_enabled'] else 'disabled'}, "
            f"switch interval {info['switch_interval_s'] * 1e6:g} µs.")
    if not info["gil_enabled"]:
        return head + (" Threads run Python in parallel: lock waits are contention between "
                       "concurrently running threads, as lock_stat measures it in the kernel.")
    return head + (
        " With the GIL only one thread runs Python at a time, so threads contend for a lock "
        "only when its holder lost the GIL inside the critical section (preemption that a "
        "kernel spinlock forbids), and the waiter then waits until the holder gets the GIL "
        "back.  Most alloc/free time is inside some critical section, so at 4+ threads most "
        "threads end up blocked behind a preempted holder in every design ('blocked' near "
        "(threads-1)/threads): total wait measures this, not the design.  Contention counts, "
        "which locks they hit and the contention points show where threads collide; for "
        "contention as hardware sees it use a free-threaded build (python3.13t) or 'simulate'.")


class Printer:
    """Text output of a stress run on a rich console."""

    def __init__(self, console: Console, per_lock: bool = False) -> None:
        self.console = console
        self.per_lock = per_lock

    def run_header(self, run: RunResult) -> None:
        cfg = run.config
        self.console.print(
            f"[bold]{run.design}[/bold] at {run.threads} thread(s): nr_cpus={cfg.nr_cpus} "
            f"lazy_max_pages={cfg.lazy_max_pages} pages={cfg.pages}; {run.ops} ops in "
            f"{run.elapsed_s:.2f} s = {run.ops_per_s:,.0f} ops/s, p50 "
            f"{run.percentile_us(0.5):.1f} µs, p99 {run.percentile_us(0.99):.1f} µs; "
            f"drain runs {run.drain_runs}; invariants {run.invariants}")

    def summaries(self, run: RunResult) -> None:
        for line in summary_lines(run):
            self.console.print(line, markup=False, highlight=False)

    def lockstat(self, run: RunResult) -> None:
        rep = run.lockstat
        if rep is None:
            return
        title = f"lock_stat: {run.design}, {run.threads} thread(s)"
        self.console.print(lockstat_table(rep, title, per_lock=self.per_lock))

    def findings(self, run: RunResult) -> None:
        for f in run.findings:
            self.console.print(f"[red]{f.kind}[/red]: {f.message}", highlight=False)

    def overview(self, runs: list[RunResult]) -> None:
        t = Table(title="stress overview (per design and thread count)")
        for col in ("design", "threads", "ops/s", "p50 µs", "p99 µs", "lock wait ms",
                    "thread-held ms", "blocked", "wait/op µs", "contentions", "con ratio",
                    "most wait on", "invariants"):
            t.add_column(col, justify="left" if col in ("design", "most wait on", "invariants")
                         else "right")
        for r in runs:
            rep = r.lockstat
            dom = rep.dominant if rep is not None else None
            t.add_row(
                r.design, str(r.threads), f"{r.ops_per_s:,.0f}", f"{r.percentile_us(0.5):.1f}",
                f"{r.percentile_us(0.99):.1f}",
                f"{rep.total.wait_total_ns / 1e6:.1f}" if rep else "-",
                f"{rep.total.thread_wait_total_ns / 1e6:.1f}" if rep else "-",
                f"{r.blocked_share:.0%}" if r.blocked_share is not None else "-",
                f"{rep.total.wait_total_ns / r.ops / 1000:.2f}" if rep and r.ops else "-",
                f"{rep.total.contentions}" if rep else "-",
                f"{rep.total.contention_ratio:.2%}" if rep else "-",
                (f"{dom.lock_class} ({rep.share_of_wait(dom.lock_class):.0%})"
                 if rep and dom else "-"),
                r.invariants)
        self.console.print(t)

    def comparison(self, comp: dict[str, dict[str, Any]], baseline: str) -> None:
        t = Table(title=f"lock wait and contentions relative to {baseline} (same run)")
        for col in ("threads", "design", "wait ms", f"x {baseline}", "thread-held ms",
                    f"x {baseline} ", "contentions", f"x {baseline}  "):
            t.add_column(col, justify="left" if col == "design" else "right")

        def x(v: float | None) -> str:
            return "-" if v is None else f"{v:.3f}"

        for n, row in comp.items():
            for d in sorted(row, key=lambda d: (d != baseline, d)):
                c = row[d]
                t.add_row(n, d, f"{c['wait_total_ns'] / 1e6:.1f}", x(c["wait_ratio"]),
                          f"{c['thread_wait_total_ns'] / 1e6:.1f}", x(c["thread_wait_ratio"]),
                          str(c["contentions"]), x(c["contention_ratio_vs_baseline"]))
        self.console.print(t)


def lockstat_table(rep: LockStatReport, title: str, per_lock: bool = False) -> Table:
    t = Table(title=title)
    for col in ("class", "n", "contentions", "acquisitions", "ratio", "wait-min", "wait-max",
                "wait-total", "wait-avg", "hold-min", "hold-max", "hold-total", "hold-avg",
                "wait share", "behind worker", "top contention point"):
        t.add_column(col, justify="left" if col in ("class", "top contention point") else "right")
    rows: list[LockStatistics] = list(rep.locks if per_lock else rep.classes)
    total = rep.total.wait_total_ns
    for s in rows:
        point = s.contention_points[0] if s.contention_points else None
        t.add_row(
            s.name if per_lock else s.lock_class, str(s.instances), str(s.contentions),
            str(s.acquisitions), f"{s.contention_ratio:.2%}",
            _us(s.wait_min_ns), _us(s.wait_max_ns), _us(s.wait_total_ns), _us(s.wait_mean_ns),
            _us(s.hold_min_ns), _us(s.hold_max_ns), _us(s.hold_total_ns), _us(s.hold_mean_ns),
            f"{s.wait_total_ns / total:.0%}" if total else "-",
            f"{s.worker_wait_total_ns / s.wait_total_ns:.0%}" if s.wait_total_ns else "-",
            f"{point[0]} ({point[1]})" if point else "")
    return t
