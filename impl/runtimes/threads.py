"""The real-threads runtime: ``threading`` locks, a worker thread for deferred work.

Each worker thread is pinned to a CPU id with ``pin_cpu`` (thread-local), as the kernel's
test threads are bound to CPUs.  Atomics use a lock of their own, so correctness never relies
on the GIL and the code runs unchanged on a free-threaded interpreter.  Deferred work runs on one
worker thread; ``quiesce`` waits until it is idle.  ``flush`` called from that worker (a drain
that flushes helper work it queued, as 6.9's purge does) runs the pending item inline, as
another worker of a concurrency-managed workqueue would, instead of waiting for itself.

A work function that raises is recorded in ``work_errors`` (with its traceback) and reported
through ``on_work_error`` at once, so that a stress run can stop instead of waiting for a drain
that will never happen.

Lock statistics (lock_stat) are an optional layer: pass ``lock_factory`` to wrap each lock
(``checker.lockstat.LockStatRegistry`` does).
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ..runtime import Lock, LockKind

T = TypeVar("T")


class ThreadLock:
    """A plain ``threading.Lock`` with the seam's name, class and kind."""

    __slots__ = ("name", "lock_class", "kind", "_lock", "acquire", "release")

    def __init__(self, name: str, lock_class: str, kind: LockKind) -> None:
        self.name = name
        self.lock_class = lock_class
        self.kind = kind
        self._lock = threading.Lock()
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def __repr__(self) -> str:
        return f"<{self.kind.value} {self.name}>"


class ThreadAtomic:
    __slots__ = ("name", "_value", "_lock")

    def __init__(self, name: str, value: int) -> None:
        self.name = name
        self._value = value
        self._lock = threading.Lock()

    def read(self) -> int:
        return self._value

    def set(self, value: int) -> None:
        with self._lock:
            self._value = value

    def add_return(self, delta: int) -> int:
        with self._lock:
            self._value += delta
            return self._value

    def sub_return(self, delta: int) -> int:
        with self._lock:
            self._value -= delta
            return self._value


@dataclass(frozen=True)
class WorkError:
    """A work function raised: which work, the exception and its formatted traceback."""

    work: str
    exc: BaseException
    traceback: str

    def __str__(self) -> str:
        return f"work {self.work} raised {type(self.exc).__name__}: {self.exc}"


class ThreadWork:
    """One work item on the runtime's worker thread; pending until it starts running."""

    def __init__(self, rt: ThreadRuntime, name: str, fn: Callable[[], None]) -> None:
        self.name = name
        self.fn = fn
        self._rt = rt
        self.pending = False
        self.running = False
        self.runs = 0

    def schedule(self) -> bool:
        with self._rt._cv:
            if self.pending:
                return False
            self.pending = True
            self._rt._queue.append(self)
            self._rt._cv.notify_all()
            return True

    def flush(self) -> None:
        """``flush_work``: wait until this work is neither pending nor running."""
        rt = self._rt
        if threading.current_thread() is rt._worker:
            with rt._cv:
                if not self.pending:
                    return  # running now means: it is the caller itself
                rt._queue.remove(self)
                self.pending = False
            rt._run(self)
            return
        with rt._cv:
            rt._cv.wait_for(lambda: not self.pending and not self.running)


class ThreadRuntime:
    def __init__(self, lock_factory: Callable[[str, str, LockKind], Lock] | None = None,
                 on_work_error: Callable[[WorkError], None] | None = None) -> None:
        self._local = threading.local()
        self._lock_factory = lock_factory
        self.on_work_error = on_work_error
        self._cv = threading.Condition()
        self._queue: list[ThreadWork] = []
        self._busy = False
        self._stopped = False
        self.work_errors: list[WorkError] = []
        self.works: list[ThreadWork] = []
        self._worker = threading.Thread(target=self._work_loop, name="kworker", daemon=True)
        self._worker.start()

    # --------------------------------------------------------------- the seam
    def lock(self, name: str, lock_class: str | None = None,
             kind: LockKind = LockKind.SPIN) -> Lock:
        cls = lock_class or name
        if self._lock_factory is not None:
            return self._lock_factory(name, cls, kind)
        return ThreadLock(name, cls, kind)

    def atomic(self, name: str, value: int = 0) -> ThreadAtomic:
        return ThreadAtomic(name, value)

    def work(self, name: str, fn: Callable[[], None]) -> ThreadWork:
        w = ThreadWork(self, name, fn)
        self.works.append(w)
        return w

    def cpu_id(self) -> int:
        return getattr(self._local, "cpu", 0)

    def pin_cpu(self, cpu: int) -> None:
        """Bind the calling thread to ``cpu`` (what ``raw_smp_processor_id`` returns)."""
        self._local.cpu = cpu

    def thread_key(self) -> int:
        return threading.get_ident()

    def shared(self, name: str, obj: T) -> T:
        return obj

    def flush_tlb_kernel_range(self, start: int, end: int) -> None:
        pass

    # --------------------------------------------------------------- worker
    @property
    def worker(self) -> threading.Thread:
        return self._worker

    def _work_loop(self) -> None:
        self.pin_cpu(0)
        while True:
            with self._cv:
                while not self._queue and not self._stopped:
                    self._cv.wait()
                if self._stopped and not self._queue:
                    return
                item = self._queue.pop(0)
                item.pending = False
                self._busy = True
            try:
                self._run(item)
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()

    def _run(self, item: ThreadWork) -> None:
        with self._cv:
            item.running = True
        try:
            item.runs += 1
            item.fn()
        except BaseException as exc:  # noqa: BLE001 - reported, never swallowed silently
            err = WorkError(item.name, exc, "".join(traceback.format_exception(exc)))
            self.work_errors.append(err)
            if self.on_work_error is not None:
                self.on_work_error(err)
        finally:
            with self._cv:
                item.running = False
                self._cv.notify_all()

    def quiesce(self, timeout: float | None = None) -> bool:
        """Wait until no work is queued or running; False on timeout."""
        with self._cv:
            return self._cv.wait_for(lambda: not self._queue and not self._busy, timeout)

    def stop(self, timeout: float = 10.0) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify_all()
        self._worker.join(timeout=timeout)

    def __enter__(self) -> ThreadRuntime:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
