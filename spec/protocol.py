"""The vocabulary of a spec: critical sections, single sync operations, branches and labels.

A design's spec writes each operation as a list of these instructions, in the words of
DESIGN.md: "under these locks, move this range from owner X to owner Y".  ``Sec`` is a critical
section (its locks are taken in order, the body runs once all are held, they are released in
reverse order); ``Acquire``/``Release`` hold a lock across several sections (the purge mutex);
``Act`` is one lock-free sync operation (an atomic, ``schedule_work``, a work item starting);
``Branch`` is a local decision that costs no step.  ``spec.compile`` turns the lists into
transition functions.

A step of an actor is one sync operation followed by the code after it up to the next sync
operation, which is where a scheduler can switch threads.  So the body of a section runs in the
step that takes its last lock, and the code after an unlock runs in the unlock's step.

Bodies work on two mutable lists: ``S`` (the whole state; global fields at fixed indices) and
``t`` (the acting actor's locals).  They return ``None`` to fall through or the name of a label
to go to (once the section's locks are released).  A body raises ``SpecAssertion`` when the step
itself shows a violation (an area missing from the tree it must be in, for instance).  With
``choose``, the step branches: one successor per value ``choose`` returns, passed to the body as
a third argument (``None`` once when there is no choice).

Every actor's locals start with the fields below; a design adds its own after them and the
compiler appends one field per slot of the actor's program (an area code, 0 when empty).

Relies on nothing else of the project.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Common locals of every actor.
PC = 0       # position: index of the next step
HELD = 1     # mask of the locks this actor holds
HAND = 2     # pages in this actor's hands (taken out of one structure, not yet in the next)
AUX = 3      # design-specific value of the operation in progress (0 between operations)
N_COMMON = 4

# Global field 0 of every spec: the mask of held locks (who holds them is in the locals).
G_HELD = 0

Body = Callable[..., "str | None"]
Choose = Callable[[list[Any], list[Any]], Sequence[Any]]
Guard = Callable[[tuple[Any, ...], tuple[Any, ...]], bool]
# A lock named statically (its index) or computed from the actor's locals (a per-node lock
# chosen by the area being worked on).  A computed lock must give the same answer while held.
LockRef = int | Callable[[list[Any]], int]


class SpecAssertion(Exception):
    """A step found the state broken; ``invariant`` names the rule."""

    def __init__(self, invariant: str, message: str) -> None:
        super().__init__(f"{invariant}: {message}")
        self.invariant = invariant
        self.message = message


@dataclass(frozen=True)
class Sec:
    """A critical section: take ``locks`` in order, run ``body``, release them in reverse.

    ``touches`` names the global fields the body reads and writes.  A touched field whose
    protecting lock (``Builder.lock(protects=...)``) is not held breaks the lock protocol: the
    section compiles to a step that reports the access (invariant ``lock-protection``), as a
    lockset checker would, whether or not the scenario could also lose an update by it.
    ``jumps`` lists every label the body may return.  ``tag`` names the step that runs the
    body, for ``sometimes`` properties.
    """

    what: str
    locks: tuple[LockRef, ...]
    body: Body | None = None
    touches: tuple[int, ...] = ()
    jumps: tuple[str, ...] = ()
    tag: str | None = None
    choose: Choose | None = None


@dataclass(frozen=True)
class Acquire:
    """Take one lock and keep it (released by a later ``Release``); ``body`` runs once held."""

    lock: LockRef
    what: str = ""
    body: Body | None = None
    touches: tuple[int, ...] = ()
    jumps: tuple[str, ...] = ()
    tag: str | None = None
    choose: Choose | None = None


@dataclass(frozen=True)
class Release:
    """Drop a lock taken by ``Acquire``; ``body`` is the code after the unlock (same step)."""

    lock: LockRef
    body: Body | None = None
    touches: tuple[int, ...] = ()
    jumps: tuple[str, ...] = ()


@dataclass(frozen=True)
class Act:
    """One lock-free sync operation, enabled only while ``guard`` holds (if given)."""

    what: str
    body: Body | None = None
    guard: Guard | None = None
    touches: tuple[int, ...] = ()
    jumps: tuple[str, ...] = ()
    tag: str | None = None
    choose: Choose | None = None


@dataclass(frozen=True)
class Branch:
    """A local decision taken as part of the step before it: ``fn`` returns a label or None."""

    what: str
    fn: Callable[[list[Any], list[Any]], str | None]


@dataclass(frozen=True)
class Label:
    name: str


@dataclass(frozen=True)
class Goto:
    label: str


@dataclass(frozen=True)
class Op:
    """Marks where an operation of the program starts (positions in traces name it)."""

    text: str


Instr = Sec | Acquire | Release | Act | Branch | Label | Goto | Op


@dataclass
class ActorDef:
    """One actor of the spec: a model thread or a worker.  Actors with equal ``signature``
    run identical step tables and are interchangeable (symmetry reduction)."""

    name: str
    instrs: list[Instr]
    signature: object
    slots: dict[str, int] = field(default_factory=dict)
    rest_labels: tuple[str, ...] = ()  # where the actor is at rest besides its end
    kind: str = "thread"  # "thread" (runs a program) or "worker" (deferred work)
    thread: int | None = None  # the scenario's thread number, for threads
