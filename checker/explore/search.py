"""What every search strategy shares: the budget, the statistics and the counterexamples.

A strategy repeatedly runs executions (``Runner``: a scheduler in, an ``ExecutionOutcome``
out) and decides the next schedule.  ``Search`` keeps the bookkeeping in one place: it counts
executions and scheduling points, enforces ``--max-executions`` and ``--timeout``, remembers
violations, and says whether the search was exhaustive for the bounds it was given.

Counterexamples rank by fewest preemptions, then fewest steps: that is the one printed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..runtimes.controlled import Scheduler
from .execution import ExecutionOutcome

Runner = Callable[[Scheduler], ExecutionOutcome]


@dataclass
class Counterexample:
    outcome: ExecutionOutcome
    strategy: str

    @property
    def schedule(self) -> list[int]:
        return self.outcome.schedule

    @property
    def preemptions(self) -> int:
        return self.outcome.preemptions

    @property
    def steps(self) -> int:
        return len(self.outcome.steps)

    def rank(self) -> tuple[int, int]:
        return (self.preemptions, self.steps)


@dataclass
class SearchStats:
    strategy: str
    executions: int = 0
    scheduling_points: int = 0
    max_depth: int = 0
    pruned: int = 0
    sleep_blocked: int = 0
    bound_cut: int = 0
    exhaustive: bool = False
    stopped_by: str | None = None
    executions_with_drain: int = 0
    executions_with_alloc_purge: int = 0
    executions_with_alloc_failed: int = 0
    cache_hits: int | None = None
    cached_states: int | None = None
    first_violation_execution: int | None = None
    first_violation_seconds: float | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        eps = self.executions / self.seconds if self.seconds > 0 else 0.0
        out: dict[str, Any] = {
            "strategy": self.strategy,
            "executions": self.executions,
            "scheduling_points": self.scheduling_points,
            "pruned_by_reduction": self.pruned,
            "sleep_set_blocked": self.sleep_blocked,
            "cut_by_preemption_bound": self.bound_cut,
            "max_depth": self.max_depth,
            "seconds": round(self.seconds, 3),
            "executions_per_second": round(eps, 1),
            "exhaustive": self.exhaustive,
            "executions_with_drain": self.executions_with_drain,
            "executions_with_alloc_purge": self.executions_with_alloc_purge,
            "executions_with_alloc_failed": self.executions_with_alloc_failed,
        }
        if self.cache_hits is not None:
            out["state_cache_hits"] = self.cache_hits
            out["cached_states"] = self.cached_states
        if self.stopped_by:
            out["stopped_by"] = self.stopped_by
        if self.first_violation_execution is not None:
            out["first_violation_execution"] = self.first_violation_execution
            out["first_violation_seconds"] = round(self.first_violation_seconds or 0.0, 3)
        if self.notes:
            out["notes"] = list(self.notes)
        return out


@dataclass
class Budget:
    max_executions: int | None = None
    timeout: float | None = None
    stop_on_first: bool = True
    progress: Callable[[SearchStats], None] | None = None


class Search:
    """Bookkeeping shared by the strategies for one search."""

    def __init__(self, strategy: str, runner: Runner, budget: Budget,
                 stats: SearchStats | None = None) -> None:
        self.runner = runner
        self.budget = budget
        self.stats = stats if stats is not None else SearchStats(strategy)
        self.violations = 0
        self._best: Counterexample | None = None
        self.strategy = strategy
        self._t0 = time.monotonic() - self.stats.seconds
        self._deadline = self._t0 + budget.timeout if budget.timeout is not None else None
        self._last_progress = 0.0

    def out_of_budget(self) -> bool:
        """True, and ``stopped_by`` set, when no further execution may start."""
        b = self.budget
        if b.max_executions is not None and self.stats.executions >= b.max_executions:
            self.stats.stopped_by = "max-executions"
            return True
        if self._deadline is not None and time.monotonic() >= self._deadline:
            self.stats.stopped_by = "timeout"
            return True
        return False

    def should_stop(self) -> bool:
        return self.violations > 0 and self.budget.stop_on_first

    def run(self, scheduler: Scheduler) -> ExecutionOutcome:
        outcome = self.runner(scheduler)
        st = self.stats
        st.executions += 1
        n = len(outcome.steps)
        st.scheduling_points += n
        if n > st.max_depth:
            st.max_depth = n
        if outcome.drain_ran:
            st.executions_with_drain += 1
        if outcome.alloc_purged:
            st.executions_with_alloc_purge += 1
        if outcome.alloc_failed:
            st.executions_with_alloc_failed += 1
        if outcome.status == "stopped":
            st.sleep_blocked += 1
        if outcome.status == "violation":
            if st.first_violation_execution is None:
                st.first_violation_execution = st.executions
                st.first_violation_seconds = time.monotonic() - self._t0
            self.violations += 1
            cx = Counterexample(outcome, self.strategy)
            if self._best is None or cx.rank() < self._best.rank():
                self._best = cx
        now = time.monotonic()
        st.seconds = now - self._t0
        if self.budget.progress is not None and now - self._last_progress > 0.2:
            self._last_progress = now
            self.budget.progress(st)
        return outcome

    def finish(self, exhaustive: bool) -> SearchStats:
        self.stats.exhaustive = exhaustive
        self.stats.seconds = time.monotonic() - self._t0
        if self.budget.progress is not None:
            self.budget.progress(self.stats)
        return self.stats

    def best(self) -> Counterexample | None:
        return self._best
