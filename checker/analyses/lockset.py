"""Lockset race detection (Eraser): unprotected shared accesses without the racy schedule.

For every shared structure the design declares through ``Runtime.shared`` the controlled
runtime reports each access (read or write) with the locks the thread holds.  Each structure
goes through Eraser's states: *virgin*, *exclusive* to the first thread that touches it (so
initialisation before sharing is not a race), *shared* once another thread reads it, and
*shared-modified* once it is written by more than one thread or written while shared.  From the
first access by a second thread on, the candidate lockset is the intersection of the locks held
at every access; a shared-modified structure whose candidate set becomes empty is a ``race``
finding naming the structure and two accesses by different threads, with operation, source line
and locks held.

Atomic counters are not structures here: their operations are indivisible by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from impl.designs import VmapDesign

from ..events import ACCESS, Event
from ..result import Finding

VIRGIN, EXCLUSIVE, SHARED, SHARED_MODIFIED = "virgin", "exclusive", "shared", "shared-modified"


@dataclass
class Access:
    thread: str
    op: str | None
    location: str
    locks: frozenset[str]
    write: bool
    method: str

    def describe(self) -> str:
        held = ", ".join(sorted(self.locks)) or "no lock"
        kind = "write" if self.write else "read"
        return (f"{self.thread} {kind} ({self.method}) in {self.op or '?'} at "
                f"{self.location or '?'} holding {held}")

    def to_json(self) -> dict[str, Any]:
        return {"thread": self.thread, "op": self.op, "location": self.location,
                "locks": sorted(self.locks), "write": self.write, "method": self.method}


@dataclass
class _Var:
    state: str = VIRGIN
    owner: str = ""
    candidates: frozenset[str] | None = None
    last: dict[str, Access] | None = None


class LocksetObserver:
    """Eraser over each execution; reports each racy structure once per search."""

    def __init__(self) -> None:
        self._vars: dict[str, _Var] = {}
        self._found: list[Finding] = []
        self._reported: set[str] = set()
        self.accesses = 0

    def on_execution_start(self, design: VmapDesign, scenario: object) -> None:
        self._vars = {}
        self._found = []

    def on_event(self, ev: Event) -> None:
        if ev.kind != ACCESS:
            return
        self.accesses += 1
        acc = Access(ev.thread, ev.op, ev.location, frozenset(n for n, _ in ev.held),
                     ev.access == "write", ev.detail)
        var = self._vars.setdefault(ev.obj, _Var())
        if var.last is None:
            var.last = {}
        previous = var.last
        if var.state == VIRGIN:
            var.state, var.owner = EXCLUSIVE, ev.thread
        elif var.state == EXCLUSIVE:
            if ev.thread != var.owner:
                var.state = SHARED_MODIFIED if acc.write else SHARED
                var.candidates = acc.locks
        else:
            assert var.candidates is not None
            var.candidates = var.candidates & acc.locks
            if acc.write:
                var.state = SHARED_MODIFIED
        if var.state == SHARED_MODIFIED and var.candidates is not None and not var.candidates:
            self._report(ev.obj, acc, previous)
        previous[ev.thread] = acc

    def _report(self, obj: str, acc: Access, previous: dict[str, Access]) -> None:
        if obj in self._reported:
            return
        # The other access: the latest by another thread, preferring one that shares no lock.
        others = [a for t, a in previous.items() if t != acc.thread]
        if not others:
            return
        other = next((a for a in others if not (a.locks & acc.locks)), others[-1])
        self._reported.add(obj)
        self._found.append(Finding(
            "race",
            f"data race on {obj}: no lock protects every access; "
            f"{other.describe()}; then {acc.describe()}",
            {"structure": obj, "accesses": [other.to_json(), acc.to_json()]}))

    def on_execution_end(self, outcome: object) -> list[Finding]:
        found, self._found = self._found, []
        return found
