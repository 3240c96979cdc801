"""The controlled runtime: model threads on greenlets, one scheduling point per visible operation.

Each model thread is a greenlet pinned to a CPU id.  Before every lock acquire or release,
atomic operation, deferred-work action and (when access tracking is on, or for a
``SharedCell``) shared-structure access, the thread records what it is about to do (its
``PendingOp``) and switches back to the main greenlet; a ``Scheduler`` then picks which
enabled thread performs its pending operation next.  A step (transition) is that operation
plus the thread's local code up to its next pending operation, so the state between steps is
one where every thread sits at a scheduling point: that is where invariants are checked.

Deferred work (``Runtime.work``) runs as a model thread of its own, named after the work, that
is enabled only while the work is pending; it is pinned to the CPU that queued it, as the
kernel's ``schedule_work`` queues on the local CPU.

Lock misuse is reported where it happens, as ``LockMisuseError`` raised in the model thread:
releasing a lock not held, re-taking a held lock, taking a mutex or flushing work while holding
a spinlock (the kernel's "sleeping function called from invalid context").

The cost of observation (source locations from ``sys._getframe``, event records) is paid only
here; the plain and threaded runtimes do not have it.  Relies on ``greenlet``, the seam
protocol in ``impl.runtime`` and ``checker.events``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, Protocol, TypeVar

import greenlet

from impl.runtime import LockKind, SharedCell

from ..events import ACCESS, ACQUIRE, ATOMIC, OP_END, OP_START, RELEASE, WORK, Event

T = TypeVar("T")

# Work actions (the ``detail`` of work events and the ``action`` of their pending ops).
SCHEDULE, START, END, FLUSH = "schedule", "start", "end", "flush"


class LockMisuseError(RuntimeError):
    """A lock used against its rules; the message says how."""


class Scheduler(Protocol):
    """Picks the thread that performs its pending operation next.

    ``enabled`` holds the ids of the threads whose pending operation can execute now, in
    increasing order; it is never empty.  Returning ``None`` stops the execution (a search
    strategy does this when the rest of the execution is known to be redundant).
    """

    def choose(self, rt: ControlledRuntime, enabled: Sequence[int]) -> int | None: ...


class PendingOp:
    """What a suspended thread will do when it is next scheduled.

    ``key`` identifies the object touched (stable across re-executions of the same schedule:
    the object's creation index), ``write`` whether the operation may change it; two pending
    operations are independent when their keys differ or neither writes.
    """

    __slots__ = ("kind", "obj", "key", "write", "action", "file", "line", "function")

    def __init__(self, kind: str, obj: Any, key: int, write: bool, action: str,
                 frame: FrameType | None) -> None:
        self.kind, self.obj, self.key, self.write, self.action = kind, obj, key, write, action
        if frame is not None:
            code = frame.f_code
            self.file, self.line, self.function = code.co_filename, frame.f_lineno, code.co_name
        else:
            self.file, self.line, self.function = "", 0, ""

    @property
    def name(self) -> str:
        return str(self.obj.name)

    def describe(self) -> str:
        if self.kind in (ACQUIRE, RELEASE):
            return f"{self.kind} {self.name}"
        if self.kind == WORK:
            return f"{self.action} {self.name}"
        return f"{self.name}.{self.action}"

    def __repr__(self) -> str:
        return f"<{self.describe()}>"


class HeldLock:
    """A lock a thread holds, with where it took it (for deadlock reports)."""

    __slots__ = ("lock", "file", "line", "function", "step")

    def __init__(self, lock: ControlledLock, op: PendingOp, step: int) -> None:
        self.lock = lock
        self.file, self.line, self.function = op.file, op.line, op.function
        self.step = step


class ModelThread:
    """One model thread: a program thread (``T0``...) or a work item's worker."""

    __slots__ = ("tid", "name", "cpu", "glet", "pending", "done", "held", "op", "work",
                 "error", "steps", "op_seq")

    def __init__(self, tid: int, name: str, cpu: int, work: ControlledWork | None = None) -> None:
        self.tid, self.name, self.cpu, self.work = tid, name, cpu, work
        self.glet: greenlet.greenlet | None = None
        self.pending: PendingOp | None = None
        self.done = False
        self.held: list[HeldLock] = []
        self.op: str | None = None
        self.error: BaseException | None = None
        self.steps = 0
        self.op_seq = 0  # operations (or work runs) begun so far

    def held_names(self) -> tuple[tuple[str, str], ...]:
        return tuple((h.lock.name, h.lock.lock_class) for h in self.held)

    def __repr__(self) -> str:
        return f"<{self.name} cpu{self.cpu} pending={self.pending!r} done={self.done}>"


class ControlledLock:
    __slots__ = ("name", "lock_class", "kind", "owner", "key", "_rt")

    def __init__(self, rt: ControlledRuntime, name: str, lock_class: str, kind: LockKind,
                 key: int) -> None:
        self.name, self.lock_class, self.kind, self.key, self._rt = name, lock_class, kind, key, rt
        self.owner: ModelThread | None = None

    def acquire(self) -> None:
        self._rt._acquire(self, sys._getframe(1))

    def release(self) -> None:
        self._rt._release(self, sys._getframe(1))

    def __enter__(self) -> None:
        self._rt._acquire(self, sys._getframe(1))

    def __exit__(self, *exc: object) -> None:
        self._rt._release(self, sys._getframe(1))

    def __repr__(self) -> str:
        return f"<{self.kind.value} {self.name}>"


class ControlledAtomic:
    __slots__ = ("name", "value", "key", "_rt")

    def __init__(self, rt: ControlledRuntime, name: str, value: int, key: int) -> None:
        self.name, self.value, self.key, self._rt = name, value, key, rt

    def read(self) -> int:
        return self._op("read", False, 0, sys._getframe(1))

    def set(self, value: int) -> None:
        self._op("set", True, value, sys._getframe(1))

    def add_return(self, delta: int) -> int:
        return self._op("add_return", True, delta, sys._getframe(1))

    def sub_return(self, delta: int) -> int:
        return self._op("sub_return", True, -delta, sys._getframe(1))

    def _op(self, action: str, write: bool, arg: int, frame: FrameType) -> int:
        op = self._rt._atomic_point(self, action, write, frame)
        if action == "set":
            self.value = arg
        elif write:
            self.value += arg
        if op is not None:
            self._rt._atomic_done(self, op)
        return self.value


class ControlledWork:
    """A ``work_struct`` run by its own model thread (``worker``)."""

    __slots__ = ("name", "fn", "pending", "running", "key", "worker", "runs", "_rt")

    def __init__(self, rt: ControlledRuntime, name: str, fn: Callable[[], None], key: int) -> None:
        self.name, self.fn, self.key, self._rt = name, fn, key, rt
        self.pending = self.running = False
        self.runs = 0
        self.worker = rt._new_worker(self)

    def schedule(self) -> bool:
        return self._rt._work_schedule(self, sys._getframe(1))

    def flush(self) -> None:
        self._rt._work_flush(self, sys._getframe(1))


class SharedProxy:
    """Wraps a shared structure so that each method call (and attribute read or write) is a
    scheduling point, classified as a read or a write by the structure's ``READS``/``WRITES``
    class attributes (an unlisted method counts as a write)."""

    __slots__ = ("_vc_obj", "_vc_name", "_vc_rt", "_vc_key", "_vc_reads", "_vc_writes")

    def __init__(self, rt: ControlledRuntime, name: str, obj: Any, key: int) -> None:
        object.__setattr__(self, "_vc_obj", obj)
        object.__setattr__(self, "_vc_name", name)
        object.__setattr__(self, "_vc_rt", rt)
        object.__setattr__(self, "_vc_key", key)
        object.__setattr__(self, "_vc_reads", frozenset(getattr(obj, "READS", ())))
        object.__setattr__(self, "_vc_writes", frozenset(getattr(obj, "WRITES", ())))

    @property
    def name(self) -> str:
        return str(self._vc_name)

    def _vc_is_write(self, attr: str) -> bool:
        return attr not in self._vc_reads or attr in self._vc_writes

    def __getattr__(self, attr: str) -> Any:
        target = getattr(self._vc_obj, attr)
        rt = self._vc_rt
        if not callable(target):
            rt._access_point(self, attr, False, sys._getframe(1))
            return target
        write = self._vc_is_write(attr)

        def call(*args: Any, **kwargs: Any) -> Any:
            rt._access_point(self, attr, write, sys._getframe(1))
            return target(*args, **kwargs)

        return call

    def __setattr__(self, attr: str, value: Any) -> None:
        self._vc_rt._access_point(self, attr, True, sys._getframe(1))
        setattr(self._vc_obj, attr, value)

    def __len__(self) -> int:
        self._vc_rt._access_point(self, "__len__", False, sys._getframe(1))
        return len(self._vc_obj)

    def __iter__(self) -> Any:
        self._vc_rt._access_point(self, "__iter__", False, sys._getframe(1))
        return iter(self._vc_obj)

    def __contains__(self, item: object) -> bool:
        self._vc_rt._access_point(self, "__contains__", False, sys._getframe(1))
        return item in self._vc_obj

    def __getitem__(self, k: Any) -> Any:
        self._vc_rt._access_point(self, "__getitem__", False, sys._getframe(1))
        return self._vc_obj[k]

    def __setitem__(self, k: Any, v: Any) -> None:
        self._vc_rt._access_point(self, "__setitem__", True, sys._getframe(1))
        self._vc_obj[k] = v

    def __delitem__(self, k: Any) -> None:
        self._vc_rt._access_point(self, "__delitem__", True, sys._getframe(1))
        del self._vc_obj[k]

    def __repr__(self) -> str:
        return f"<shared {self._vc_name}: {self._vc_obj!r}>"


class ControlledRuntime:
    """The ``Runtime`` of one execution under a scheduler.

    Build it, construct the design with it, ``spawn`` the program threads, then ``run`` a
    scheduler.  ``events`` collects everything that happened; ``on_step`` (if given to ``run``)
    is called after every step and may stop the execution by returning a reason.
    """

    def __init__(self, *, track_access: bool = False) -> None:
        self.track_access = track_access
        self.threads: list[ModelThread] = []
        self.current: ModelThread | None = None
        self.events: list[Event] = []
        self.step = 0
        self.dead = False
        self.objects: list[Any] = []  # every lock/atomic/work/shared by creation index (= key)
        self.last_op: PendingOp | None = None  # the operation of the step just run
        self.last_enabled: Sequence[int] = ()  # the threads the scheduler could choose from
        self.last_raw_enabled: Sequence[int] = ()  # ... and those that could run at all
        # Threads that spin (came back to where they were with nothing changed): they yield to
        # every other enabled thread until another thread takes a step.
        self.yielding: set[int] = set()
        # Whatever the layer running the execution wants a scheduler to see (the design...).
        self.context: dict[str, Any] = {}
        # Threads switch back to the greenlet that builds and runs the execution.
        self._main: greenlet.greenlet = greenlet.getcurrent()
        self._running = False
        self._workers: list[ModelThread] = []

    # ------------------------------------------------------------------ the seam
    def lock(self, name: str, lock_class: str | None = None,
             kind: LockKind = LockKind.SPIN) -> ControlledLock:
        lk = ControlledLock(self, name, lock_class or name, kind, len(self.objects))
        self.objects.append(lk)
        return lk

    def atomic(self, name: str, value: int = 0) -> ControlledAtomic:
        a = ControlledAtomic(self, name, value, len(self.objects))
        self.objects.append(a)
        return a

    def work(self, name: str, fn: Callable[[], None]) -> ControlledWork:
        w = ControlledWork(self, name, fn, len(self.objects))
        self.objects.append(w)
        return w

    def cpu_id(self) -> int:
        return self.current.cpu if self.current is not None else 0

    def thread_key(self) -> int:
        return self.current.tid if self.current is not None else -1

    def shared(self, name: str, obj: T) -> T:
        # A SharedCell exists to expose lost updates, so its accesses are always visible.
        if not (self.track_access or isinstance(obj, SharedCell)):
            return obj
        proxy = SharedProxy(self, name, obj, len(self.objects))
        self.objects.append(proxy)
        return proxy  # type: ignore[return-value]

    def flush_tlb_kernel_range(self, start: int, end: int) -> None:
        pass  # no cost and no scheduling point here: only virtual time charges it

    # ------------------------------------------------------------------ threads
    def spawn(self, name: str, cpu: int, body: Callable[[], None]) -> ModelThread:
        """A program thread; it starts running (its local code up to its first scheduling
        point) when ``run`` begins."""
        t = ModelThread(len(self.threads), name, cpu)
        self.threads.append(t)
        t.glet = greenlet.greenlet(self._thread_main(t, body), parent=self._main)
        return t

    def _new_worker(self, work: ControlledWork) -> ModelThread:
        # A worker has no local code before its first scheduling point, so it is never started
        # ahead of time: it simply waits, with "start" pending, until the work is queued.
        t = ModelThread(-1, work.name, 0, work)
        t.glet = greenlet.greenlet(self._thread_main(t, lambda: self._worker_loop(t, work)),
                                   parent=self._main)
        t.pending = PendingOp(WORK, work, work.key, True, START, None)
        if not self._running:  # ids are assigned after the program threads
            self._workers.append(t)
        else:
            t.tid = len(self.threads)
            self.threads.append(t)
        return t

    def _thread_main(self, t: ModelThread, body: Callable[[], None]) -> Callable[[], None]:
        def main() -> None:
            try:
                body()
            except greenlet.GreenletExit:
                pass
            except BaseException as exc:  # noqa: BLE001 - reported as a finding
                t.error = exc
            finally:
                t.done = True
                t.pending = None
        return main

    def _worker_loop(self, t: ModelThread, work: ControlledWork) -> None:
        t.pending = None  # scheduled for the "start" set up by _new_worker
        while True:
            work.pending = False
            work.running = True
            work.runs += 1
            t.op_seq += 1
            t.op = work.name
            self._emit(t, WORK, work.name, detail=START, op=None)
            work.fn()
            self._point(t, PendingOp(WORK, work, work.key, True, END, None))
            work.running = False
            self._emit(t, WORK, work.name, detail=END, op=None)
            t.op = None
            self._point(t, PendingOp(WORK, work, work.key, True, START, None))

    def _start(self, t: ModelThread) -> None:
        assert t.glet is not None
        prev, self.current = self.current, t
        t.glet.switch()
        self.current = prev

    # ------------------------------------------------------------------ the loop
    def enabled(self) -> list[int]:
        out = []
        for t in self.threads:
            p = t.pending
            if p is None:
                continue
            kind = p.kind
            if kind == ACQUIRE:
                if p.obj.owner is not None:
                    continue
            elif kind == WORK:
                w = p.obj
                if p.action == START and not w.pending:
                    continue
                if p.action == FLUSH and (w.pending or w.running):
                    continue
            out.append(t.tid)
        return out

    def run(self, scheduler: Scheduler,
            on_step: Callable[[ModelThread], str | None] | None = None) -> str:
        """Run until every thread is done or blocked, the scheduler stops, or ``on_step``
        returns a reason.  Returns "done", "blocked" (some thread unfinished and none
        enabled), "stopped" (by the scheduler) or ``on_step``'s reason."""
        if greenlet.getcurrent() is not self._main:
            raise RuntimeError("a controlled execution must run in the greenlet that built it")
        self._running = True
        for w in self._workers:
            w.tid = len(self.threads)
            self.threads.append(w)
        self._workers = []
        for t in list(self.threads):
            if t.work is not None:
                continue
            self._start(t)
            if on_step is not None and t.error is not None:
                reason = on_step(t)
                if reason is not None:
                    return reason
        while True:
            enabled = self.enabled()
            if not enabled:
                return "done" if self.quiescent() else "blocked"
            self.last_raw_enabled = enabled
            if self.yielding:
                fair = [tid for tid in enabled if tid not in self.yielding]
                if fair:  # a spinning thread runs only when nothing else can
                    enabled = fair
            self.last_enabled = enabled
            tid = scheduler.choose(self, enabled)
            if tid is None:
                return "stopped"
            t = self.threads[tid]
            self.last_op = t.pending
            self.current = t
            t.steps += 1
            assert t.glet is not None
            t.glet.switch()
            self.current = None
            self.step += 1
            if self.yielding and self.yielding != {tid}:
                self.yielding &= {tid}  # another thread moved: the others may try again
            if on_step is not None:
                reason = on_step(t)
                if reason is not None:
                    return reason

    def quiescent(self) -> bool:
        """Every program thread finished and every worker idle."""
        for t in self.threads:
            if t.work is None:
                if not t.done:
                    return False
            elif t.work.pending or t.work.running:
                return False
        return True

    def teardown(self) -> None:
        """Unwind every suspended thread; runtime operations are no-ops from here on."""
        self.dead = True
        for t in self.threads:
            g = t.glet
            if g is not None and not g.dead and g:
                self.current = t
                try:
                    g.throw(greenlet.GreenletExit)
                except greenlet.GreenletExit:
                    pass
            t.glet = None
        self.current = None

    # ------------------------------------------------------------------ events
    def _emit(self, t: ModelThread, kind: str, obj: str, *, lock: ControlledLock | None = None,
              held: tuple[tuple[str, str], ...] = (), op: PendingOp | None = None,
              access: str | None = None, detail: str = "") -> None:
        ev = Event(len(self.events), self.step, t.name, t.tid, t.cpu, kind, obj,
                   lock.lock_class if lock is not None else None,
                   lock.kind.value if lock is not None else None,
                   held, op.file if op else "", op.line if op else 0,
                   op.function if op else "", t.op, access, detail)
        self.events.append(ev)

    def op_event(self, start: bool, text: str, detail: str = "") -> None:
        """Mark the start or end of an allocator operation of the current thread."""
        t = self.current
        if t is None or self.dead:
            return
        if start:
            t.op = text
            t.op_seq += 1
        self._emit(t, OP_START if start else OP_END, text, held=t.held_names(), detail=detail)
        if not start:
            t.op = None

    # ------------------------------------------------------------------ scheduling points
    def _point(self, t: ModelThread, op: PendingOp) -> None:
        t.pending = op
        self._main.switch()
        if self.dead:
            raise greenlet.GreenletExit
        t.pending = None

    def _acquire(self, lock: ControlledLock, frame: FrameType) -> None:
        t = self.current
        if t is None or self.dead:
            # Checker code between steps (invariants, snapshots) may only take a free lock.
            if lock.owner is not None and not self.dead:
                raise LockMisuseError(f"checker code took {lock.name} held by {lock.owner.name}")
            return
        if lock.owner is t:
            raise LockMisuseError(f"{t.name} acquired {lock.name} while already holding it "
                                  f"(non-recursive lock)")
        if lock.kind is LockKind.MUTEX:
            spins = [h.lock.name for h in t.held if h.lock.kind is LockKind.SPIN]
            if spins:
                raise LockMisuseError(
                    f"sleeping in atomic context: {t.name} took mutex {lock.name} while "
                    f"holding spinlock {', '.join(spins)}")
        op = PendingOp(ACQUIRE, lock, lock.key, True, ACQUIRE, frame)
        self._point(t, op)
        held = t.held_names()
        lock.owner = t
        t.held.append(HeldLock(lock, op, self.step))
        self._emit(t, ACQUIRE, lock.name, lock=lock, held=held, op=op)

    def _release(self, lock: ControlledLock, frame: FrameType) -> None:
        t = self.current
        if t is None or self.dead:
            return  # checker code between steps, or a thread unwinding at teardown
        if lock.owner is not t:
            who = f" (held by {lock.owner.name})" if lock.owner is not None else ""
            raise LockMisuseError(f"{t.name} released {lock.name} which it does not hold{who}")
        op = PendingOp(RELEASE, lock, lock.key, True, RELEASE, frame)
        self._point(t, op)
        held = t.held_names()
        lock.owner = None
        for i in range(len(t.held) - 1, -1, -1):
            if t.held[i].lock is lock:
                del t.held[i]
                break
        self._emit(t, RELEASE, lock.name, lock=lock, held=held, op=op)

    def _atomic_point(self, a: ControlledAtomic, action: str, write: bool,
                      frame: FrameType) -> PendingOp | None:
        t = self.current
        if t is None or self.dead:
            return None
        op = PendingOp(ATOMIC, a, a.key, write, action, frame)
        self._point(t, op)
        return op

    def _atomic_done(self, a: ControlledAtomic, op: PendingOp) -> None:
        # Emitted after the operation so that the event carries the value it produced.
        t = self.current
        if t is None:
            return
        self._emit(t, ATOMIC, a.name, held=t.held_names(), op=op,
                   access="write" if op.write else "read", detail=f"{op.action} -> {a.value}")

    def _work_schedule(self, w: ControlledWork, frame: FrameType) -> bool:
        t = self.current
        if self.dead:
            return False
        if t is None:
            if w.pending:
                return False
            w.pending = True
            return True
        op = PendingOp(WORK, w, w.key, True, SCHEDULE, frame)
        self._point(t, op)
        queued = not w.pending
        if queued:
            w.pending = True
            if not w.running:
                w.worker.cpu = t.cpu
        self._emit(t, WORK, w.name, held=t.held_names(), op=op,
                   detail=SCHEDULE if queued else "schedule (already pending)")
        return queued

    def _work_flush(self, w: ControlledWork, frame: FrameType) -> None:
        t = self.current
        if t is None or self.dead:
            return
        spins = [h.lock.name for h in t.held if h.lock.kind is LockKind.SPIN]
        if spins:
            raise LockMisuseError(f"sleeping in atomic context: {t.name} flushed {w.name} "
                                  f"while holding spinlock {', '.join(spins)}")
        if t is w.worker:
            raise LockMisuseError(f"{w.name} flushes itself")
        op = PendingOp(WORK, w, w.key, True, FLUSH, frame)
        self._point(t, op)
        self._emit(t, WORK, w.name, held=t.held_names(), op=op, detail=FLUSH)

    def _access_point(self, proxy: SharedProxy, attr: str, write: bool, frame: FrameType) -> None:
        t = self.current
        if t is None or self.dead:
            return
        op = PendingOp(ACCESS, proxy, proxy._vc_key, write, attr, frame)
        self._point(t, op)
        self._emit(t, ACCESS, proxy._vc_name, held=t.held_names(), op=op,
                   access="write" if write else "read", detail=attr)
