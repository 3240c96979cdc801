"""Schedule strings, and the scheduler that replays one.

A schedule is the sequence of threads that ran each step.  Its string form is run-length
encoded thread names, e.g. ``T0*5 T1*3 drain_vmap_work*4 T0*2``: five steps of T0, then three
of T1, ...  Thread names are stable for a scenario (program threads are ``T0``..``Tn-1``;
a worker is named after its work), so a string replays on the same design and scenario, as
shuttle's failing schedules do.

``ReplayScheduler`` follows a schedule strictly (a thread that is not enabled when its turn
comes is a divergence: the design or scenario changed) or leniently (it then keeps the current
thread, or takes the lowest enabled one, and goes on), which is how an emitted regression test
runs a counterexample's schedule on a fixed design whose steps differ.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..runtimes.controlled import ControlledRuntime

_TOKEN = re.compile(r"^([A-Za-z_][\w.\-\[\]]*?)(?:\*(\d+))?$")


class ScheduleError(ValueError):
    """A schedule string that does not parse."""


class ReplayDivergence(RuntimeError):
    """The recorded thread could not run at its step."""


def encode(names: Sequence[str]) -> str:
    out: list[str] = []
    i = 0
    while i < len(names):
        j = i
        while j < len(names) and names[j] == names[i]:
            j += 1
        n = j - i
        out.append(names[i] if n == 1 else f"{names[i]}*{n}")
        i = j
    return " ".join(out)


def decode(text: str) -> list[str]:
    names: list[str] = []
    for tok in text.split():
        m = _TOKEN.match(tok)
        if not m:
            raise ScheduleError(f"bad schedule token {tok!r}: expected NAME or NAME*COUNT")
        count = int(m[2]) if m[2] else 1
        if count < 1:
            raise ScheduleError(f"bad schedule token {tok!r}: count must be at least 1")
        names.extend([m[1]] * count)
    return names


class ReplayScheduler:
    """Runs the threads a schedule names, in order."""

    def __init__(self, names: Sequence[str], strict: bool = True) -> None:
        self.names = list(names)
        self.strict = strict
        self.pos = 0
        self.diverged_at: int | None = None
        self._prev: int | None = None

    def choose(self, rt: ControlledRuntime, enabled: Sequence[int]) -> int | None:
        i = self.pos
        self.pos += 1
        if i < len(self.names):
            want = self.names[i]
            for tid in enabled:
                if rt.threads[tid].name == want:
                    self._prev = tid
                    return tid
            if self.strict:
                can = ", ".join(rt.threads[t].name for t in enabled)
                raise ReplayDivergence(f"step {i}: {want} cannot run (enabled: {can}); the "
                                       f"design or scenario differs from the recorded one")
            if self.diverged_at is None:
                self.diverged_at = i
        elif self.strict:
            if self.diverged_at is None:
                self.diverged_at = i
        tid = self._prev if self._prev is not None and self._prev in enabled else enabled[0]
        self._prev = tid
        return tid
