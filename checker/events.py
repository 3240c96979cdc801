"""The event record: one observable thing a model thread did under the controlled runtime.

Every lock acquire and release, atomic operation, deferred-work action and (when access
tracking is on) shared-structure access is one event; so are the start and the end of each
allocator operation a thread runs.  Events are what observers see (the lock-order graph, the
lockset race detector and the refinement check plug in through them), what counterexamples are
printed from, and what a trace file stores.

Relies on nothing else of ours, so that every analysis can import it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Event kinds.  The first five are scheduling points (transitions); op-start and op-end mark
# where a thread's allocator operation begins and ends and are local to the thread.
ACQUIRE = "acquire"
RELEASE = "release"
ATOMIC = "atomic"
WORK = "work"
ACCESS = "access"
OP_START = "op-start"
OP_END = "op-end"

KINDS = (ACQUIRE, RELEASE, ATOMIC, WORK, ACCESS, OP_START, OP_END)
SCHEDULING_KINDS = frozenset({ACQUIRE, RELEASE, ATOMIC, WORK, ACCESS})


@dataclass(slots=True)
class Event:
    """One event of one execution.

    ``step`` is the index of the scheduling step (transition) the event belongs to: the
    acquire/release/atomic/work/access event that starts the step, and the op-start/op-end
    events of the thread's local code that follows it (the first op-start of each thread
    happens before any step and carries step 0).  ``seq`` numbers all events of the execution.
    ``held`` lists the locks (name, class) the thread held just before the event took effect,
    so for an acquire it does not contain the lock being taken.  ``file``/``line``/``function``
    locate the design code that did it.  ``access`` is "read" or "write" for shared-structure
    accesses (and for atomics: "read" for ``read()``, "write" otherwise).  ``detail`` says more:
    the method called, the atomic's new value, the work action (schedule, start, end, flush),
    or an operation's result.
    """

    seq: int
    step: int
    thread: str
    tid: int
    cpu: int
    kind: str
    obj: str
    lock_class: str | None = None
    lock_kind: str | None = None
    held: tuple[tuple[str, str], ...] = ()
    file: str = ""
    line: int = 0
    function: str = ""
    op: str | None = None
    access: str | None = None
    detail: str = ""

    @property
    def location(self) -> str:
        """``file:line (function)`` with the file name shortened to its last two parts."""
        if not self.file:
            return ""
        parts = self.file.replace("\\", "/").rsplit("/", 2)
        short = "/".join(parts[-2:])
        return f"{short}:{self.line} ({self.function})"

    def describe(self) -> str:
        """A short human-readable form, used in swim lanes and replay output."""
        if self.kind in (ACQUIRE, RELEASE):
            return f"{self.kind} {self.obj}"
        if self.kind == ATOMIC:
            return f"{self.obj}.{self.detail}"
        if self.kind == WORK:
            return f"{self.detail} {self.obj}"
        if self.kind == ACCESS:
            return f"{self.access} {self.obj}.{self.detail}"
        if self.kind == OP_START:
            return f"begin {self.obj}"
        return f"end {self.obj}{(' ' + self.detail) if self.detail else ''}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "seq": self.seq, "step": self.step, "thread": self.thread, "cpu": self.cpu,
            "kind": self.kind, "obj": self.obj,
        }
        if self.lock_class is not None:
            out["lock_class"] = self.lock_class
            out["lock_kind"] = self.lock_kind
        if self.held:
            out["held"] = [list(h) for h in self.held]
        if self.file:
            out["location"] = {"file": self.file, "line": self.line, "function": self.function}
        if self.op is not None:
            out["op"] = self.op
        if self.access is not None:
            out["access"] = self.access
        if self.detail:
            out["detail"] = self.detail
        return out
