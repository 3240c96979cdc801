"""The runtime seam: everything concurrent that a design uses comes from here.

A design (``impl/designs/``) receives a ``Runtime`` in its constructor and takes from it every
lock, every atomic counter, the id of the CPU it runs on, its deferred work (the drain worker)
and, for shared structures, an optional wrapper through which accesses can be observed.  Design
code is ordinary Python (``with self.busy_lock:``), never imports ``threading`` and knows nothing
of the checker, so the same allocator code runs under real threads (``stress``), under the
controlled scheduler (``model-check``) and under virtual time (``simulate``).

This module holds only the protocol (what a design may rely on) and the small value types that
go with it.  The runtimes themselves live in ``impl/runtimes/`` (plain, threads) and in
``checker/runtimes/`` (controlled, virtual time).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Protocol, TypeVar, runtime_checkable

T = TypeVar("T")


class LockKind(enum.Enum):
    """Spinlocks may not be held across sleeping; a mutex may sleep.  Taking a mutex while a
    spinlock is held is the kernel's "sleeping function called from invalid context"."""

    SPIN = "spinlock"
    MUTEX = "mutex"


@runtime_checkable
class Lock(Protocol):
    """A named, non-recursive lock.  ``lock_class`` groups instances as lockdep does: all
    per-node busy locks share one class."""

    name: str
    lock_class: str
    kind: LockKind

    def acquire(self) -> object:
        """Block until held.  Any return value is ignored (``threading.Lock`` returns True)."""
        ...

    def release(self) -> None: ...

    def __enter__(self) -> None: ...

    def __exit__(self, *exc: object) -> None: ...


@runtime_checkable
class Atomic(Protocol):
    """An ``atomic_long_t``: every method is one indivisible step."""

    name: str

    def read(self) -> int: ...

    def set(self, value: int) -> None: ...

    def add_return(self, delta: int) -> int: ...

    def sub_return(self, delta: int) -> int: ...


@runtime_checkable
class Work(Protocol):
    """A ``work_struct``: ``schedule()`` queues the function to run later in a worker context;
    scheduling an already pending work does nothing and returns False, as ``schedule_work``."""

    name: str

    def schedule(self) -> bool: ...

    def flush(self) -> None: ...


class Runtime(Protocol):
    """What a design may take from its environment."""

    def lock(self, name: str, lock_class: str | None = None,
             kind: LockKind = LockKind.SPIN) -> Lock:
        """A new lock.  ``lock_class`` defaults to ``name``."""
        ...

    def atomic(self, name: str, value: int = 0) -> Atomic:
        """A new atomic counter."""
        ...

    def work(self, name: str, fn: Callable[[], None]) -> Work:
        """Deferred work that runs ``fn`` in its own context when scheduled."""
        ...

    def cpu_id(self) -> int:
        """``raw_smp_processor_id()``: the CPU the calling thread runs on."""
        ...

    def thread_key(self) -> int:
        """An identity of the calling thread, stable for its lifetime (for areas in hand)."""
        ...

    def shared(self, name: str, obj: T) -> T:
        """Declare a shared structure.  Returns ``obj`` itself, or a wrapper that records every
        method call as a read or a write (classified by the structure's ``READS``/``WRITES``
        class attributes) so that lockset race detection can see it."""
        ...

    def flush_tlb_kernel_range(self, start: int, end: int) -> None:
        """Invalidate the kernel TLB entries of ``[start, end)`` on every CPU: a broadcast IPI.
        Costs time in virtual time, does nothing elsewhere."""
        ...


class SharedCell:
    """A plain (non-atomic) shared integer.  Correct designs use ``Atomic``; a cell declared
    with ``Runtime.shared`` makes each read and each write separately visible, which is what a
    lost update needs."""

    READS = frozenset({"get"})
    WRITES = frozenset({"put"})
    __slots__ = ("value",)

    def __init__(self, value: int = 0) -> None:
        self.value = value

    def get(self) -> int:
        return self.value

    def put(self, value: int) -> None:
        self.value = value
