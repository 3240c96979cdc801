"""``model_check``: search the interleavings of a design's real code on a scenario.

The Python API behind ``vmapcheck model-check --target impl``, for users who check their own
designs from their own tests::

    from checker import model_check
    from checker.scenario import default_scenario
    result = model_check(MyDesign, default_scenario(threads=2, ops=1))
    assert result.outcome.value == "ok", result.findings

It runs one strategy (exhaustive DFS with DPOR by default; ``reduction=False`` for the
baseline; ``preemption_bound=N`` for iterative context bounding, fewest preemptions first;
``strategy="random"`` or ``"pct"``), then, if it found a violation, looks for a shorter
counterexample (fewest preemptions, then fewest steps) with a bounded search.  The result is
"ok" only when the search was exhaustive for the bounds given; a budget or timeout that cut it
makes it "incomplete".  Each finding's ``trace`` is the counterexample as a trace file holds
it (``checker.trace``), so it can be written out, printed and replayed.

Relies on ``checker.explore`` (strategies), ``checker.trace`` and ``checker.designs``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from impl.designs.base import VmapDesign

from .designs import resolve_design
from .explore.dfs import DfsExplorer
from .explore.execution import ExecutionOutcome, ExecutionSettings, Observer, run_execution
from .explore.randomized import DEFAULT_RUNS, run_pct, run_random
from .explore.schedule import ReplayScheduler, decode
from .explore.search import Budget, Counterexample, Search, SearchStats
from .result import Finding, Outcome, Result
from .runtimes.controlled import Scheduler
from .scenario import Scenario, default_scenario
from .trace import build_trace, design_spec

STRATEGIES = ("dfs", "random", "pct")
MIN_STEP_BOUND = 2000
STEP_BOUND_FACTOR = 20
SHRINK_EXECUTIONS = 3000
SHRINK_EXTRA = 200


@dataclass
class Options:
    """Everything that shapes a search, recorded in the result's config."""

    strategy: str = "dfs"
    reduction: bool = True
    preemption_bound: int | None = None
    max_executions: int | None = None
    timeout: float | None = None
    seed: int = 0
    pct_depth: int = 3
    track_access: bool = False
    max_steps: int | None = None
    stop_on_first: bool = True
    shrink: bool = True
    state_cache: bool = False
    observers: Sequence[Observer] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "reduction": self.reduction,
                "preemption_bound": self.preemption_bound,
                "max_executions": self.max_executions, "timeout": self.timeout,
                "seed": self.seed, "pct_depth": self.pct_depth if self.strategy == "pct" else None,
                "track_access": self.track_access, "max_steps": self.max_steps,
                "state_cache": self.state_cache}


def _runner(design_cls: type[VmapDesign], scenario: Scenario, opts: Options,
            stats: list[SearchStats]) -> Callable[[Scheduler], ExecutionOutcome]:
    settings = ExecutionSettings(track_access=opts.track_access, observers=opts.observers)

    def run(scheduler: Scheduler) -> ExecutionOutcome:
        if opts.max_steps is not None:
            settings.max_steps = opts.max_steps
        else:
            longest = max((s.max_depth for s in stats), default=0)
            settings.max_steps = max(MIN_STEP_BOUND, STEP_BOUND_FACTOR * longest)
        return run_execution(design_cls, scenario, scheduler, settings)

    return run


def _main_search(search: Search, opts: Options, scenario: Scenario) -> bool:
    """Run the chosen strategy; True when it was exhaustive for its bounds."""
    if opts.strategy == "random":
        run_random(search, opts.seed)
        return False
    if opts.strategy == "pct":
        run_pct(search, opts.seed, opts.pct_depth)
        return False
    if opts.preemption_bound is None:
        return DfsExplorer(opts.reduction, state_cache=opts.state_cache).search(search)
    cache: dict[Any, Any] = {}
    for bound in range(opts.preemption_bound + 1):
        if not DfsExplorer(opts.reduction, bound, opts.state_cache, cache).search(search):
            return False
        search.stats.notes.append(f"preemption bound {bound}: exhausted after "
                                  f"{search.stats.executions} executions in total")
    return True


def _shrink(runner: Callable[[Scheduler], ExecutionOutcome], found: Counterexample,
            opts: Options, deadline: float | None) -> tuple[Counterexample, dict[str, Any]]:
    """Look for a counterexample with fewer preemptions, then fewer steps: iterative
    preemption bounding up to the found one's preemptions, each level cut by a budget."""
    best = found
    st = SearchStats("shrink")
    t0 = time.monotonic()
    for bound in range(found.preemptions + 1):
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        cap = SHRINK_EXECUTIONS - st.executions
        if cap <= 0:
            break
        budget = Budget(max_executions=st.executions + cap, timeout=left, stop_on_first=True)
        search = Search("shrink", runner, budget, st)
        DfsExplorer(opts.reduction, bound).search(search, keep_going=SHRINK_EXTRA)
        cx = search.best()
        if cx is not None:
            if cx.rank() < best.rank():
                best = Counterexample(cx.outcome, found.strategy)
            break
    info = {"executions": st.executions, "seconds": round(time.monotonic() - t0, 3),
            "from": {"preemptions": found.preemptions, "steps": found.steps},
            "to": {"preemptions": best.preemptions, "steps": best.steps}}
    return best, info


def model_check(design: type[VmapDesign] | str, scenario: Scenario | None = None, *,
                strategy: str = "dfs", reduction: bool = True,
                preemption_bound: int | None = None, max_executions: int | None = None,
                timeout: float | None = None, seed: int = 0, pct_depth: int = 3,
                observers: Sequence[Observer] = (), track_access: bool = False,
                max_steps: int | None = None, stop_on_first: bool = True, shrink: bool = True,
                state_cache: bool | None = None,
                progress: Callable[[SearchStats], None] | None = None) -> Result:
    """Search the interleavings of ``design`` running ``scenario``; see the module note."""
    design_cls = resolve_design(design) if isinstance(design, str) else design
    if scenario is None:
        scenario = default_scenario()
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if preemption_bound is not None and preemption_bound < 0:
        raise ValueError("preemption_bound must not be negative")
    if pct_depth < 1:
        raise ValueError("pct_depth must be at least 1")
    if strategy in ("random", "pct") and max_executions is None and timeout is None:
        max_executions = DEFAULT_RUNS
    if state_cache is None:
        # The cache pays for its fingerprints in the unbounded search (it cuts executions
        # several-fold there); under a preemption bound it saves too few to be worth it.
        state_cache = strategy == "dfs" and reduction and preemption_bound is None
    blind = [type(o).__name__ for o in observers if not callable(getattr(o, "state_key", None))]
    cache_note = None
    if state_cache and blind:
        state_cache = False
        cache_note = (f"state cache off: observer {', '.join(blind)} does not define "
                      f"state_key(), so a cached state could hide what it would report")
    opts = Options(strategy, reduction, preemption_bound, max_executions, timeout, seed,
                   pct_depth, track_access, max_steps, stop_on_first, shrink, state_cache,
                   tuple(observers))
    label = strategy
    if strategy == "dfs":
        label = "dfs+dpor" if reduction else "dfs (no reduction)"
        if reduction and state_cache:
            label += "+state-cache"
        if preemption_bound is not None:
            label += f", preemption bound {preemption_bound}"
    stats_holder: list[SearchStats] = []
    runner = _runner(design_cls, scenario, opts, stats_holder)
    search = Search(label, runner, Budget(max_executions, timeout, stop_on_first, progress))
    stats_holder.append(search.stats)
    if cache_note:
        search.stats.notes.append(cache_note)
    t_start = time.monotonic()
    exhaustive = _main_search(search, opts, scenario)
    stats = search.finish(exhaustive)
    best = search.best()
    result = Result("model-check", config={
        "target": "impl", "design": design_cls.name, "design_spec": design_spec(design_cls),
        "scenario": scenario.to_json(), **opts.to_json()})
    out = stats.to_json()
    out["violations"] = search.violations
    if best is not None:
        if shrink and (best.preemptions > 0 or best.steps > 1):
            deadline = None if timeout is None else t_start + timeout
            best, info = _shrink(runner, best, opts, deadline)
            out["shrink"] = info
        trace = build_trace(design_cls, scenario, best, opts.to_json())
        for f in best.outcome.findings:
            result.findings.append(Finding(f.kind, f.message, trace))
        result.outcome = Outcome.VIOLATION
    elif stats.exhaustive:
        result.outcome = Outcome.OK
    else:
        result.outcome = Outcome.INCOMPLETE
    for o in observers:
        end = getattr(o, "on_search_end", None)
        if end is not None:
            extra = end()
            if extra:
                result.findings.extend(extra)
                result.outcome = Outcome.VIOLATION
    result.stats = out
    return result


def replay_schedule(design: type[VmapDesign] | str, scenario: Scenario, schedule: str,
                    *, strict: bool = True, track_access: bool = False,
                    max_steps: int | None = None,
                    observers: Sequence[Observer] = ()) -> tuple[ExecutionOutcome, int | None]:
    """Run one schedule string; returns the execution and the step where a lenient replay
    stopped following the schedule (None if it followed it to the end)."""
    design_cls = resolve_design(design) if isinstance(design, str) else design
    scheduler = ReplayScheduler(decode(schedule), strict=strict)
    settings = ExecutionSettings(track_access=track_access, observers=observers,
                                 max_steps=max_steps or MIN_STEP_BOUND)
    outcome = run_execution(design_cls, scenario, scheduler, settings)
    return outcome, scheduler.diverged_at
