"""lock_stat for the real-threads runtime: instrumented locks and their frozen statistics.

``LockStatRegistry`` is a ``lock_factory`` for ``impl.runtimes.threads.ThreadRuntime``: every
lock a design takes from the runtime becomes a ``StatLock`` that records what ``/proc/lock_stat``
reports (Documentation/locking/lockstat.rst): acquisitions, contentions (acquires whose first
try failed and that had to wait), wait time and hold time (total, min, max), and the functions
the waiters were in ("contention points").  Each contention is also attributed to the thread
that held the lock when the waiter found it taken: the drain worker (``worker_ident``) or
another thread, so that queueing behind a purge is told apart from threads colliding on the
allocation path.  ``statistics()`` returns frozen objects per lock and aggregated per lock
class (all per-node busy locks are one class, as lockdep groups them), in the manner of trio's
``ParkingLot.statistics()``.

Cost and correctness: the fast path is a non-blocking acquire, two ``perf_counter_ns`` calls
and one ``get_ident``; frames are looked at only on contention.  Every counter of a lock is
updated while that lock is held (acquire side after obtaining it, hold side before releasing
it), so the figures are exact without relying on the GIL, on a free-threaded interpreter as
well.  Only the holder attribution reads a field without the lock (a stale read attributes one
wait to the previous holder).  Reading the figures while threads still run gives a slightly
stale but self-consistent view.

Lock order: with ``record_order=True`` each thread keeps a stack of the locks it holds and every
acquire records "acquired B while holding A" (before it waits for B, as lockdep does) as ``(held_class, acquired_class, source)`` (source:
the function that acquired B), for the lock-order graph.  Edges are kept per thread and merged on
read, so recording adds no shared state to the hot path.

Relies on ``impl.runtime`` (the Lock protocol's names) only.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from threading import get_ident
from time import perf_counter_ns
from types import FrameType
from typing import Any

from impl.runtime import LockKind

# Indirection so that tests can observe the contended path deterministically.
_now = perf_counter_ns

_NO_MIN = 1 << 62


def _source(depth: int) -> str:
    """Qualified name of the function ``depth`` frames above the caller, or "?"."""
    try:
        frame: FrameType | None = sys._getframe(depth + 1)
    except ValueError:
        return "?"
    if frame is None:
        return "?"
    code = frame.f_code
    return getattr(code, "co_qualname", code.co_name)


class StatLock:
    """A non-recursive lock that records lock_stat figures.  Satisfies ``impl.runtime.Lock``."""

    __slots__ = ("name", "lock_class", "kind", "_lock", "_t_acq", "_holder", "worker_ident",
                 "acquisitions", "contentions", "wait_total", "wait_max", "wait_min",
                 "hold_total", "hold_max", "hold_min", "contention_points",
                 "worker_contentions", "worker_wait_total")

    def __init__(self, name: str, lock_class: str, kind: LockKind,
                 worker_ident: int | None = None) -> None:
        self.name = name
        self.lock_class = lock_class
        self.kind = kind
        self.worker_ident = worker_ident
        self._lock = threading.Lock()
        self._t_acq = 0
        self._holder = 0
        self.worker_contentions = 0
        self.worker_wait_total = 0
        self.acquisitions = 0
        self.contentions = 0
        self.wait_total = 0
        self.wait_max = 0
        self.wait_min = _NO_MIN
        self.hold_total = 0
        self.hold_max = 0
        self.hold_min = _NO_MIN
        self.contention_points: Counter[str] = Counter()

    def _contended(self, depth: int) -> None:
        """Slow path: the first try failed; wait, then account the wait (under the lock)."""
        holder = self._holder  # who held it when we found it taken (a benign, racy read)
        t0 = _now()
        self._lock.acquire()
        t1 = _now()
        self._holder = get_ident()
        waited = t1 - t0
        self.contentions += 1
        if holder == self.worker_ident:
            self.worker_contentions += 1
            self.worker_wait_total += waited
        self.wait_total += waited
        if waited > self.wait_max:
            self.wait_max = waited
        if waited < self.wait_min:
            self.wait_min = waited
        self.contention_points[_source(depth + 1)] += 1
        self._t_acq = t1
        self.acquisitions += 1

    def acquire(self) -> None:
        if self._lock.acquire(False):
            self._t_acq = _now()
            self._holder = get_ident()
            self.acquisitions += 1
        else:
            self._contended(1)

    def release(self) -> None:
        held = _now() - self._t_acq
        self.hold_total += held
        if held > self.hold_max:
            self.hold_max = held
        if held < self.hold_min:
            self.hold_min = held
        self._lock.release()

    # ``with`` is the hot path; written out rather than delegating to save a call each way.
    def __enter__(self) -> None:
        if self._lock.acquire(False):
            self._t_acq = _now()
            self._holder = get_ident()
            self.acquisitions += 1
        else:
            self._contended(1)

    def __exit__(self, *exc: object) -> None:
        held = _now() - self._t_acq
        self.hold_total += held
        if held > self.hold_max:
            self.hold_max = held
        if held < self.hold_min:
            self.hold_min = held
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def statistics(self) -> LockStatistics:
        return LockStatistics(
            name=self.name, lock_class=self.lock_class, kind=self.kind.value, instances=1,
            acquisitions=self.acquisitions, contentions=self.contentions,
            wait_total_ns=self.wait_total, wait_max_ns=self.wait_max,
            wait_min_ns=self.wait_min if self.contentions else 0,
            hold_total_ns=self.hold_total, hold_max_ns=self.hold_max,
            hold_min_ns=self.hold_min if self.acquisitions else 0,
            contention_points=tuple(self.contention_points.most_common()),
            worker_contentions=self.worker_contentions,
            worker_wait_total_ns=self.worker_wait_total)

    def __repr__(self) -> str:
        return f"<{self.kind.value} {self.name} (lock_stat)>"


class _HeldStack(threading.local):
    """Per-thread: the locks held, and the order edges this thread observed."""

    def __init__(self) -> None:
        self.held: list[StatLock] = []
        self.edges: Counter[tuple[str, str, str]] | None = None


class OrderedStatLock(StatLock):
    """A ``StatLock`` that also records lock-order edges through its registry."""

    __slots__ = ("_registry",)

    def __init__(self, name: str, lock_class: str, kind: LockKind,
                 registry: LockStatRegistry) -> None:
        super().__init__(name, lock_class, kind, registry.worker_ident)
        self._registry = registry

    def _note_wanted(self, depth: int) -> None:
        # Before trying the lock, as lockdep validates before it spins: an inversion that
        # deadlocks at its first occurrence is still recorded.
        local = self._registry._held
        if local.held:
            edges = local.edges
            if edges is None:
                edges = local.edges = self._registry._new_edge_counter()
            src = _source(depth + 1)
            for h in local.held:
                edges[(h.lock_class, self.lock_class, src)] += 1

    def _note_released(self) -> None:
        held = self._registry._held.held
        # Releases need not be LIFO; remove the last occurrence of this very lock.
        for i in range(len(held) - 1, -1, -1):
            if held[i] is self:
                del held[i]
                break

    # The fast paths are repeated rather than inherited so that the contention point and the
    # edge source are the caller's frame at the same depth as in ``StatLock``.
    def acquire(self) -> None:
        self._note_wanted(1)
        if self._lock.acquire(False):
            self._t_acq = _now()
            self._holder = get_ident()
            self.acquisitions += 1
        else:
            self._contended(1)
        self._registry._held.held.append(self)

    def release(self) -> None:
        self._note_released()
        StatLock.release(self)

    def __enter__(self) -> None:
        self._note_wanted(1)
        if self._lock.acquire(False):
            self._t_acq = _now()
            self._holder = get_ident()
            self.acquisitions += 1
        else:
            self._contended(1)
        self._registry._held.held.append(self)

    def __exit__(self, *exc: object) -> None:
        self._note_released()
        StatLock.release(self)


@dataclass(frozen=True)
class LockStatistics:
    """lock_stat figures of one lock, or of a lock class (``instances`` > 1 when aggregated).

    Times are nanoseconds.  ``contention_points`` pairs a function name with how many times a
    waiter was there, most frequent first.  ``worker_*`` is the part of the contentions and of
    the wait where the lock was held by the drain worker; the rest is held by other threads.
    """

    name: str
    lock_class: str
    kind: str
    instances: int
    acquisitions: int
    contentions: int
    wait_total_ns: int
    wait_max_ns: int
    wait_min_ns: int
    hold_total_ns: int
    hold_max_ns: int
    hold_min_ns: int
    contention_points: tuple[tuple[str, int], ...] = ()
    worker_contentions: int = 0
    worker_wait_total_ns: int = 0

    @property
    def thread_wait_total_ns(self) -> int:
        """Wait behind locks held by threads other than the drain worker."""
        return self.wait_total_ns - self.worker_wait_total_ns

    @property
    def contention_ratio(self) -> float:
        return self.contentions / self.acquisitions if self.acquisitions else 0.0

    @property
    def wait_mean_ns(self) -> float:
        return self.wait_total_ns / self.contentions if self.contentions else 0.0

    @property
    def hold_mean_ns(self) -> float:
        return self.hold_total_ns / self.acquisitions if self.acquisitions else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "class": self.lock_class, "kind": self.kind,
            "instances": self.instances, "acquisitions": self.acquisitions,
            "contentions": self.contentions, "contention_ratio": self.contention_ratio,
            "wait_total_ns": self.wait_total_ns, "wait_max_ns": self.wait_max_ns,
            "wait_min_ns": self.wait_min_ns, "wait_mean_ns": self.wait_mean_ns,
            "hold_total_ns": self.hold_total_ns, "hold_max_ns": self.hold_max_ns,
            "hold_min_ns": self.hold_min_ns, "hold_mean_ns": self.hold_mean_ns,
            "contention_points": [list(p) for p in self.contention_points],
            "worker_contentions": self.worker_contentions,
            "worker_wait_total_ns": self.worker_wait_total_ns,
            "thread_wait_total_ns": self.thread_wait_total_ns,
        }


def aggregate(name: str, stats: Iterable[LockStatistics]) -> LockStatistics:
    """Sum lock_stat figures (a class over its instances, or a design over all its locks)."""
    items = list(stats)
    if not items:
        return LockStatistics(name, name, "", 0, 0, 0, 0, 0, 0, 0, 0, 0)
    points: Counter[str] = Counter()
    for s in items:
        points.update(dict(s.contention_points))
    contended = [s.wait_min_ns for s in items if s.contentions]
    acquired = [s.hold_min_ns for s in items if s.acquisitions]
    kinds = {s.kind for s in items}
    classes = {s.lock_class for s in items}
    return LockStatistics(
        name=name, lock_class=classes.pop() if len(classes) == 1 else name,
        kind=kinds.pop() if len(kinds) == 1 else "mixed",
        instances=sum(s.instances for s in items),
        acquisitions=sum(s.acquisitions for s in items),
        contentions=sum(s.contentions for s in items),
        wait_total_ns=sum(s.wait_total_ns for s in items),
        wait_max_ns=max(s.wait_max_ns for s in items),
        wait_min_ns=min(contended) if contended else 0,
        hold_total_ns=sum(s.hold_total_ns for s in items),
        hold_max_ns=max(s.hold_max_ns for s in items),
        hold_min_ns=min(acquired) if acquired else 0,
        contention_points=tuple(points.most_common()),
        worker_contentions=sum(s.worker_contentions for s in items),
        worker_wait_total_ns=sum(s.worker_wait_total_ns for s in items))


@dataclass(frozen=True)
class LockStatReport:
    """All locks of one run: per lock, per class (sorted by total wait, largest first), the
    total over every lock, and the lock-order edges if they were recorded."""

    locks: tuple[LockStatistics, ...]
    classes: tuple[LockStatistics, ...]
    total: LockStatistics
    order_edges: tuple[tuple[str, str, str, int], ...] = field(default=())

    @property
    def dominant(self) -> LockStatistics | None:
        """The class with the largest total wait time (None if nothing ever waited)."""
        if not self.classes or self.classes[0].wait_total_ns == 0:
            return None
        return self.classes[0]

    def share_of_wait(self, lock_class: str) -> float:
        total = self.total.wait_total_ns
        for c in self.classes:
            if c.lock_class == lock_class:
                return c.wait_total_ns / total if total else 0.0
        return 0.0

    def to_json(self) -> dict[str, Any]:
        dom = self.dominant
        return {
            "total": self.total.to_json(),
            "dominant_class": dom.lock_class if dom is not None else None,
            "classes": [c.to_json() for c in self.classes],
            "locks": [lk.to_json() for lk in self.locks],
            "order_edges": [{"held": h, "acquired": a, "source": s, "count": n}
                            for h, a, s, n in self.order_edges],
        }


def build_report(locks: Iterable[LockStatistics],
                 edges: Mapping[tuple[str, str, str], int] | None = None) -> LockStatReport:
    per_lock = sorted(locks, key=lambda s: (-s.wait_total_ns, s.name))
    by_class: dict[str, list[LockStatistics]] = {}
    for s in per_lock:
        by_class.setdefault(s.lock_class, []).append(s)
    classes = sorted((aggregate(cls, members) for cls, members in by_class.items()),
                     key=lambda s: (-s.wait_total_ns, -s.acquisitions, s.lock_class))
    edge_rows = tuple(sorted((h, a, s, n) for (h, a, s), n in (edges or {}).items()))
    return LockStatReport(tuple(per_lock), tuple(classes), aggregate("all locks", per_lock),
                          edge_rows)


class LockStatRegistry:
    """The ``lock_factory`` of a ``ThreadRuntime``: hands out instrumented locks and keeps them
    so that their statistics can be read.  ``record_order`` selects the held-stack variant."""

    def __init__(self, record_order: bool = False, worker_ident: int | None = None) -> None:
        self.record_order = record_order
        # The drain worker's thread id, for attributing waits; set before locks are made.
        self.worker_ident = worker_ident
        self._locks: list[StatLock] = []
        self._guard = threading.Lock()
        self._held = _HeldStack()
        self._edge_counters: list[Counter[tuple[str, str, str]]] = []

    def __call__(self, name: str, lock_class: str, kind: LockKind) -> StatLock:
        lock: StatLock
        if self.record_order:
            lock = OrderedStatLock(name, lock_class, kind, self)
        else:
            lock = StatLock(name, lock_class, kind, self.worker_ident)
        with self._guard:
            self._locks.append(lock)
        return lock

    def _new_edge_counter(self) -> Counter[tuple[str, str, str]]:
        counter: Counter[tuple[str, str, str]] = Counter()
        with self._guard:
            self._edge_counters.append(counter)
        return counter

    @property
    def locks(self) -> list[StatLock]:
        with self._guard:
            return list(self._locks)

    def order_edges(self) -> dict[tuple[str, str, str], int]:
        """Merged "acquired B while holding A" edges: (held, acquired, source) -> count."""
        merged: Counter[tuple[str, str, str]] = Counter()
        with self._guard:
            counters = list(self._edge_counters)
        for c in counters:
            merged.update(dict(c))
        return dict(merged)

    def held_by_current_thread(self) -> list[str]:
        """Names of the locks the calling thread holds (only with ``record_order``)."""
        return [lk.name for lk in self._held.held]

    def statistics(self) -> LockStatReport:
        return build_report((lk.statistics() for lk in self.locks),
                            self.order_edges() if self.record_order else None)
