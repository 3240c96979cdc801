"""Calibration: fit the cost model to the published ``global`` curve, write ``fitted.json``.

``python -m checker.simulate.fit`` simulates the ``global`` design at the v1 cover letter's job
counts (1..32, fix_size) on the published machine as it was (``topology.THREADRIPPER_3970X``:
64 online CPUs at every job count, CCX topology, near-first hand-off, the resident areas and
the 32 TiB range of ``driver``; the validation runs on the same machine) and adjusts
``FITTED`` (call, node, lock and transfer costs; ``tlb_ns`` is held, see ``costs``).  The
objective (``--objective``) is by default the worst point's |log-ratio| of simulated to
published µs per pair, plus a hundredth of the sum of squares as a tie-break: the acceptance
target is a worst-point target, and the sum of squares alone lets one point drift to balance
the rest; ``lsq`` is the plain sum of squares.  Each point runs in the steady state of the
validation (``cases.STEADY_CYCLES`` drain cycles after the first, 28,672 pairs per cycle on
64 CPUs), about 25 s per evaluation on an idle core; start from the committed fit
(``--start fitted``) with a small ``--step`` to refine it in a few minutes.  The search is
Nelder-Mead in log space (every cost stays positive, steps are relative), written here rather
than a dependency on scipy.  Every evaluation uses the same seed, so the objective is a fixed
function of the costs.

Nothing else is fitted: the ``nodes`` curve, the v3 ratio and the talk's figure are predicted
with these costs by ``checker.simulate.validate``.  The result is committed next to this file
and is the default of ``vmapcheck simulate``.

Relies on ``checker.simulate.driver`` (a simulation), ``cases``, ``costs``, ``published`` and
``topology``.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from impl.designs import get_design

from ..stress.workloads import by_names
from .cases import STEADY_CYCLES, steady_ops
from .costs import FITTED_PATH, PRIOR, CostModel, load_fitted, parse_overrides
from .driver import SimConfig, run_simulation
from .published import V1_GLOBAL, Curve
from .topology import THREADRIPPER_3970X, Topology

# The costs the fit adjusts.  ``tlb_ns`` is held at its prior: fix_size purges once per
# lazy_max_pages / 2 = 28,672 pairs on 64 CPUs, so the flush is a few ns per pair, far below
# what the curve can tell apart; it matters for the mask-7 check only.
FITTED = ("call_ns", "node_ns", "lock_ns", "xfer_ns")
# Drain cycles measured after the first one: the validation's, so that what is fitted is what
# is validated.
FIT_CYCLES = STEADY_CYCLES


@dataclass
class FitResult:
    costs: CostModel
    objective: float
    evaluations: int
    simulated: list[float]
    history: list[tuple[float, dict[str, float]]] = field(default_factory=list)


def simulate_curve(costs: CostModel, curve: Curve, ops: int | None, seed: int,
                   design: str | None = None, topology: Topology = THREADRIPPER_3970X,
                   cycles: int = FIT_CYCLES) -> list[float]:
    """µs per iteration of ``curve``'s design (or ``design``) at each of its job counts, on
    ``topology``; ``ops=None`` runs each point to ``cycles`` drain cycles past the first."""
    cls = get_design(design or curve.design)
    tests = by_names("fix_size")
    out = []
    for n in curve.jobs:
        n_ops = ops if ops is not None else steady_ops(tests, n, topology.nr_cpus,
                                                       cycles=cycles)
        out.append(run_simulation(SimConfig(cls, n, tests, costs, ops=n_ops, seed=seed,
                                            topology=topology)).per_op_us)
    return out


def log_error(simulated: Sequence[float], curve: Curve) -> float:
    """Sum of squared log-ratios (simulated over published)."""
    return sum(math.log(s / p) ** 2 for s, (_, p) in zip(simulated, curve.points, strict=True))


def max_log_error(simulated: Sequence[float], curve: Curve) -> float:
    """The largest |log-ratio|: the acceptance target is a worst-point target."""
    return max(abs(math.log(s / p)) for s, (_, p) in zip(simulated, curve.points, strict=True))


def minimax_error(simulated: Sequence[float], curve: Curve) -> float:
    """The worst |log-ratio|, plus a hundredth of the sum of squares so that the search
    still prefers the better of two points with the same worst error."""
    return max_log_error(simulated, curve) + 0.01 * log_error(simulated, curve)


OBJECTIVES: dict[str, tuple[Callable[[Sequence[float], Curve], float], str]] = {
    "lsq": (log_error, "sum of log(sim/pub)^2"),
    "minimax": (minimax_error, "max |log(sim/pub)| + 0.01 x sum of log(sim/pub)^2"),
}


def nelder_mead(f: Callable[[list[float]], float], x0: list[float], step: float,
                max_evals: int, ftol: float = 1e-4) -> tuple[list[float], float, int]:
    """Minimise ``f`` from ``x0`` (standard reflection 1, expansion 2, contraction 1/2,
    shrink 1/2); stops when the simplex's values agree within ``ftol`` or after
    ``max_evals`` evaluations."""
    n = len(x0)
    evals = 0

    def fx(x: list[float]) -> float:
        nonlocal evals
        evals += 1
        return f(x)

    simplex = [list(x0)] + [[x0[j] + (step if j == i else 0.0) for j in range(n)]
                            for i in range(n)]
    values = [fx(p) for p in simplex]
    while evals < max_evals:
        order = sorted(range(n + 1), key=lambda i: values[i])
        simplex = [simplex[i] for i in order]
        values = [values[i] for i in order]
        if values[-1] - values[0] < ftol:
            break
        worst = simplex[-1]
        centre = [sum(p[j] for p in simplex[:-1]) / n for j in range(n)]
        reflected = [centre[j] + (centre[j] - worst[j]) for j in range(n)]
        fr = fx(reflected)
        if fr < values[0]:
            expanded = [centre[j] + 2.0 * (centre[j] - worst[j]) for j in range(n)]
            fe = fx(expanded)
            simplex[-1], values[-1] = (expanded, fe) if fe < fr else (reflected, fr)
        elif fr < values[-2]:
            simplex[-1], values[-1] = reflected, fr
        else:
            contracted = [centre[j] + 0.5 * (worst[j] - centre[j]) for j in range(n)]
            fc = fx(contracted)
            if fc < values[-1]:
                simplex[-1], values[-1] = contracted, fc
            else:
                for i in range(1, n + 1):
                    simplex[i] = [simplex[0][j] + 0.5 * (simplex[i][j] - simplex[0][j])
                                  for j in range(n)]
                    values[i] = fx(simplex[i])
    best = min(range(n + 1), key=lambda i: values[i])
    return simplex[best], values[best], evals


def fit(curve: Curve = V1_GLOBAL, ops: int | None = None, seed: int = 0,
        max_evals: int = 60, start: CostModel | None = None,
        log: Callable[[str], None] | None = None,
        topology: Topology = THREADRIPPER_3970X, names: Sequence[str] = FITTED,
        step: float = 0.7, objective_name: str = "minimax") -> FitResult:
    """Adjust ``names`` (the others stay at ``start``) to ``curve`` on ``topology``,
    minimising ``OBJECTIVES[objective_name]``."""
    start = start or CostModel(**PRIOR)
    error = OBJECTIVES[objective_name][0]
    history: list[tuple[float, dict[str, float]]] = []

    def costs_at(x: list[float]) -> CostModel:
        return start.replace(**dict(zip(names, (math.exp(v) for v in x), strict=True)))

    def objective(x: list[float]) -> float:
        costs = costs_at(x)
        value = error(simulate_curve(costs, curve, ops, seed, topology=topology), curve)
        history.append((value, costs.to_json()))
        if log is not None:
            log(f"{len(history):4d}  {value:8.4f}  {costs.describe()}")
        return value

    x0 = [math.log(getattr(start, k)) for k in names]
    x, value, evals = nelder_mead(objective, x0, step=step, max_evals=max_evals)
    costs = costs_at(x)
    return FitResult(costs, value, evals,
                     simulate_curve(costs, curve, ops, seed, topology=topology), history)


def fitted_record(res: FitResult, curve: Curve, ops: int | None, seed: int,
                  seconds: float, start: CostModel, topology: Topology = THREADRIPPER_3970X,
                  names: Sequence[str] = FITTED,
                  objective_name: str = "minimax") -> dict[str, Any]:
    return {
        "params": {k: round(v, 3) for k, v in res.costs.to_json().items()},
        "fitted": list(names),
        "held": {k: v for k, v in start.to_json().items() if k not in names},
        "fitted_to": {"curve": curve.name, "source": curve.source, "design": curve.design,
                      "test": "fix_size", "points": [list(p) for p in curve.points]},
        "settings": {"ops_per_cpu": ops if ops is not None
                     else f"steady state: {FIT_CYCLES} drain cycle(s) after the first",
                     "machine": topology.describe(), "online_cpus": topology.nr_cpus,
                     "seed": seed, "objective": OBJECTIVES[objective_name][1],
                     "method": "Nelder-Mead in log space", "start": start.to_json()},
        "objective": res.objective,
        "sum_sq_log_error": log_error(res.simulated, curve),
        "max_abs_log_error": max_log_error(res.simulated, curve),
        "evaluations": res.evaluations,
        "simulated_at_fit": [[n, s] for n, s in zip(curve.jobs, res.simulated, strict=True)],
        "relative_error_at_fit": [[n, s / p - 1.0] for (n, p), s in
                                  zip(curve.points, res.simulated, strict=True)],
        "fit_seconds": round(seconds, 1),
    }


@click.command()
@click.option("--ops", type=click.IntRange(min=50), default=None,
              help="fix_size iterations per CPU in each simulation of the fit.  Default: the "
                   "steady state (cases.STEADY_CYCLES drain cycles after the first, as the "
                   "validation runs).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--max-evals", type=click.IntRange(min=6), default=60, show_default=True,
              help="Objective evaluations (each simulates the six job counts).")
@click.option("--start", "start_from", type=click.Choice(["prior", "fitted"]),
              default="prior", show_default=True,
              help="Start from the prior magnitudes or from the committed fit.")
@click.option("--start-cost", "start_cost", default=None, metavar="NAME=NS[,...]",
              help="Override some starting values (after --start).")
@click.option("--objective", "objective_name", type=click.Choice(sorted(OBJECTIVES)),
              default="minimax", show_default=True,
              help="minimax: the worst point's |log-ratio| (the acceptance target); lsq: the "
                   "sum of squared log-ratios.")
@click.option("--step", type=click.FloatRange(min=0.01, max=2.0), default=0.7,
              show_default=True, help="Initial simplex step in log space (0.7: about 2x).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=FITTED_PATH,
              show_default=True, help="Where to write the fitted costs.")
def main(ops: int | None, seed: int, max_evals: int, start_from: str,
         start_cost: str | None, objective_name: str, step: float, out: Path) -> None:
    """Fit the cost model to the v1 cover letter's global curve and write fitted.json."""
    t0 = time.perf_counter()
    start = CostModel(**PRIOR)
    if start_from == "fitted":  # the committed fit's values for the fitted costs only
        committed = load_fitted()[0]
        start = start.replace(**{k: getattr(committed, k) for k in FITTED})
    if start_cost:
        try:
            start = start.replace(**parse_overrides(start_cost))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--start-cost") from None
    res = fit(V1_GLOBAL, ops, seed, max_evals, start,
              log=lambda line: print(line, file=sys.stderr, flush=True), step=step,
              objective_name=objective_name)
    record = fitted_record(res, V1_GLOBAL, ops, seed, time.perf_counter() - t0, start,
                           objective_name=objective_name)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"fitted: {res.costs.describe()}  objective {res.objective:.4f} "
          f"(sum of squares {record['sum_sq_log_error']:.4f}, worst |log| "
          f"{record['max_abs_log_error']:.4f}) after {res.evaluations} evaluations -> {out}")
    for (n, p), s in zip(V1_GLOBAL.points, res.simulated, strict=True):
        print(f"  {n:3d} jobs: published {p:7.3f} µs  simulated {s:7.3f} µs  "
              f"{(s / p - 1) * 100:+6.1f} %")


if __name__ == "__main__":
    main()
