"""A single-threaded runtime: locks that only check their own use, work that runs inline.

Used by unit tests, the hypothesis state machine and ``bench``.  Deferred work (the drain) runs
as soon as the caller holds no lock, which is one legal schedule of the kernel's worker, and keeps
single-threaded runs deterministic.  The CPU id is whatever the caller set with ``set_cpu``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ..runtime import LockKind

T = TypeVar("T")


class LockMisuse(RuntimeError):
    """A lock was released without being held, or re-taken while held."""


class PlainLock:
    __slots__ = ("name", "lock_class", "kind", "held", "_rt")

    def __init__(self, rt: PlainRuntime, name: str, lock_class: str, kind: LockKind) -> None:
        self.name = name
        self.lock_class = lock_class
        self.kind = kind
        self.held = False
        self._rt = rt

    def acquire(self) -> None:
        rt = self._rt
        if self.held:
            raise LockMisuse(f"{self.name} acquired while already held (self-deadlock)")
        if self.kind is LockKind.MUTEX and rt.spin_depth:
            raise LockMisuse(f"sleeping in atomic context: mutex {self.name} taken while a "
                             f"spinlock is held")
        self.held = True
        rt.depth += 1
        if self.kind is LockKind.SPIN:
            rt.spin_depth += 1

    def release(self) -> None:
        if not self.held:
            raise LockMisuse(f"{self.name} released while not held")
        self.held = False
        rt = self._rt
        rt.depth -= 1
        if self.kind is LockKind.SPIN:
            rt.spin_depth -= 1
        if rt.depth == 0 and rt.pending:
            rt.run_pending()

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<{self.kind.value} {self.name}>"


class PlainAtomic:
    __slots__ = ("name", "value")

    def __init__(self, name: str, value: int) -> None:
        self.name = name
        self.value = value

    def read(self) -> int:
        return self.value

    def set(self, value: int) -> None:
        self.value = value

    def add_return(self, delta: int) -> int:
        self.value += delta
        return self.value

    def sub_return(self, delta: int) -> int:
        self.value -= delta
        return self.value


class PlainWork:
    __slots__ = ("name", "fn", "pending", "_rt", "runs")

    def __init__(self, rt: PlainRuntime, name: str, fn: Callable[[], None]) -> None:
        self.name = name
        self.fn = fn
        self.pending = False
        self.runs = 0
        self._rt = rt

    def schedule(self) -> bool:
        if self.pending:
            return False
        self.pending = True
        self._rt.pending.append(self)
        if self._rt.depth == 0:
            self._rt.run_pending()
        return True

    def flush(self) -> None:
        if self.pending and self._rt.depth == 0:
            self._rt.run_pending()

    def run(self) -> None:
        self.pending = False
        self.runs += 1
        self.fn()


class PlainRuntime:
    """The runtime of one thread.  ``max_work_runs`` bounds how often deferred work may run
    back to back, so that a drain that never terminates is an error, not a hang."""

    def __init__(self, cpu: int = 0, max_work_runs: int = 10_000) -> None:
        self.cpu = cpu
        self.depth = 0
        self.spin_depth = 0
        self.pending: list[PlainWork] = []
        self.max_work_runs = max_work_runs
        self._running = False

    def lock(self, name: str, lock_class: str | None = None,
             kind: LockKind = LockKind.SPIN) -> PlainLock:
        return PlainLock(self, name, lock_class or name, kind)

    def atomic(self, name: str, value: int = 0) -> PlainAtomic:
        return PlainAtomic(name, value)

    def work(self, name: str, fn: Callable[[], None]) -> PlainWork:
        return PlainWork(self, name, fn)

    def cpu_id(self) -> int:
        return self.cpu

    def set_cpu(self, cpu: int) -> None:
        self.cpu = cpu

    def thread_key(self) -> int:
        return 0

    def shared(self, name: str, obj: T) -> T:
        return obj

    def flush_tlb_kernel_range(self, start: int, end: int) -> None:
        pass

    def run_pending(self) -> None:
        if self._running:  # work scheduled by work runs after it, in the same loop
            return
        self._running = True
        try:
            runs = 0
            while self.pending:
                runs += 1
                if runs > self.max_work_runs:
                    names = ", ".join(sorted({w.name for w in self.pending}))
                    self.pending.clear()
                    raise RuntimeError(f"deferred work {names} rescheduled itself "
                                       f"{self.max_work_runs} times: it does not terminate")
                self.pending.pop(0).run()
        finally:
            self._running = False
