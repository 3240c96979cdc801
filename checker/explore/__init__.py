"""Search strategies over the schedules of the controlled runtime.

``execution`` runs and checks one schedule; ``dfs`` searches exhaustively (no reduction, DPOR
with sleep sets, or bounded POR under a preemption bound); ``randomized`` samples (random walks,
PCT); ``schedule`` encodes and replays schedule strings; ``dpor`` computes races;
``search`` holds the shared budget and statistics.
"""

from .execution import ExecutionOutcome, ExecutionSettings, Observer, run_execution
from .schedule import ReplayDivergence, ReplayScheduler, ScheduleError, decode, encode
from .search import Budget, Counterexample, Search, SearchStats

__all__ = [
    "Budget", "Counterexample", "ExecutionOutcome", "ExecutionSettings", "Observer",
    "ReplayDivergence", "ReplayScheduler", "ScheduleError", "Search", "SearchStats", "decode",
    "encode", "run_execution",
]
