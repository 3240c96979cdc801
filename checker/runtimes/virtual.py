"""The virtual-time runtime: the allocator on N modelled CPUs, interleaved by a virtual clock.

A discrete-event simulation in the controlled runtime's style: each model thread is a greenlet
pinned to a CPU and owns a clock (ns of virtual time).  The thread with the smallest clock runs;
it keeps running until its next scheduling point (a lock acquire, an atomic, a work action) at
which some other runnable thread is behind it in time, and then switches directly to that one
(a heap keyed by clock; ties in arrival order, so a run is a pure function of its inputs).
Because every acquire is processed at the moment its thread is the earliest, acquires of one
lock are seen in time order and FIFO hand-off (qspinlock's MCS queue) follows directly:

- free lock, last release at or before the request: granted at once, ``lock_ns`` plus
  ``xfer_ns`` if the word was last written by another CPU;
- free lock released *after* the request (the previous holder ran ahead in time and has
  already left its critical section): the requester spun until that release and gets the lock
  one line transfer later (``free_at + xfer_ns``); that is a contended acquisition;
- lock held across a scheduling point (a nested acquire, an atomic): the requester queues and
  sleeps; the release hands the lock to the first waiter at ``max(request, release) + xfer_ns``.

A ``Topology`` (``checker.simulate.topology``) maps each CPU to a cache domain: a transfer
between two CPUs of one domain costs ``near_ratio * xfer_ns`` (the default topology gives
every CPU its own domain, so every transfer costs ``xfer_ns``).  A topology with
``near_first`` replaces FIFO hand-off by an arbitration at the release instant: every
contended requester queues and sleeps, the earliest waiter wakes at the release time and hands
the lock to the earliest waiter of the releaser's domain (else the earliest waiter).  That
path costs two switches per contended acquisition, so it is used only when asked for.

Costs come from a ``CostModel`` (``checker.simulate.costs``): tree and pool calls through the
wrappers that ``shared`` returns (``checker.simulate.costed``) cost a search path, with cache
misses when another CPU wrote the structure last; atomics serialise on their cache line like a
tiny lock; a purge's TLB flush costs ``tlb_ns`` per CPU; ``call`` charges the work outside the
allocator, drawn uniformly in ``[0, 2 * call_ns)`` from the seeded generator so that threads do
not fall into lock-step phases no real CPU keeps.  Deferred work (the drain) is a model thread
of its own, woken at the time it is scheduled, pinned to the CPU that queued it, on a context
of its own (it does not steal time from that CPU's test thread).

The hot path is lean on purpose (no event records, no frames): a 64-CPU run of 10,000
vmalloc/vfree pairs per CPU has to finish in a minute.  Per-lock statistics are lock_stat's:
acquisitions, contentions, wait and hold time.  Relies on ``greenlet``, the seam protocol in
``impl.runtime``, the tree and pool types of ``impl`` and ``checker.simulate.costs``.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable
from typing import TypeVar

import greenlet

from impl.rbtree import RBTree
from impl.runtime import LockKind
from impl.vmap_pool import VmapPools

from ..simulate.costed import CostedPools, CostedTree
from ..simulate.costs import CostModel
from ..simulate.topology import Topology

T = TypeVar("T")


class SimulationError(RuntimeError):
    """The simulated program misbehaved (an exception in a thread, a deadlock)."""


class VThread:
    """A model thread: a test thread (``vmalloc_test/<i>``) or a work item's worker."""

    __slots__ = ("tid", "name", "cpu", "clock", "glet", "done", "start", "end", "parked",
                 "work", "iter_start", "iter_open", "samples", "starts", "ops")

    def __init__(self, tid: int, name: str, cpu: int, start: float) -> None:
        self.tid = tid
        self.name = name
        self.cpu = cpu
        self.clock = start
        self.start = start
        self.end = start
        self.glet: greenlet.greenlet | None = None
        self.done = False
        self.parked = False
        self.work: VWork | None = None
        # Per-iteration latencies of the workload loop (see ``VirtualLatencies``).
        self.iter_start = start
        self.iter_open = False
        self.samples: list[float] = []
        self.starts: list[float] = []
        self.ops = 0

    def __repr__(self) -> str:
        return f"<{self.name} cpu{self.cpu} t={self.clock:.0f}ns>"


class VLock:
    """A spinlock or mutex in virtual time, with lock_stat counters."""

    __slots__ = ("name", "lock_class", "kind", "owner", "free_at", "last_cpu", "waiters", "arbiter",
                 "acquired_at", "acquisitions", "contentions", "wait_ns", "wait_max", "hold_ns",
                 "hold_max", "_rt")

    def __init__(self, rt: VirtualRuntime, name: str, lock_class: str, kind: LockKind) -> None:
        self.name = name
        self.lock_class = lock_class
        self.kind = kind
        self.owner: VThread | None = None
        self.free_at = 0.0
        self.last_cpu = -1
        self.waiters: deque[tuple[float, VThread]] = deque()
        self.arbiter: VThread | None = None
        self.acquired_at = 0.0
        self.acquisitions = 0
        self.contentions = 0
        self.wait_ns = 0.0
        self.wait_max = 0.0
        self.hold_ns = 0.0
        self.hold_max = 0.0
        self._rt = rt

    def acquire(self) -> None:
        rt = self._rt
        t = rt.current
        if t is None:
            return  # checker code between runs (drain, invariants): nothing runs concurrently
        if self.owner is t:
            raise SimulationError(f"{t.name} acquired {self.name} while already holding it")
        heap = rt._heap
        if heap and heap[0][0] < t.clock:
            rt._yield(t)
        now = t.clock
        if rt._near_first:
            if self.owner is not None or self.arbiter is not None or self.free_at > now:
                self._queue(t, now)
                return
        elif self.owner is not None:
            # Held across a scheduling point: queue, sleep, be handed the lock on release.
            self.waiters.append((now, t))
            rt._block(t)
            return
        self.acquisitions += 1
        free_at = self.free_at
        dom = rt._dom
        if free_at > now:
            wait = free_at - now + (rt._xfer if dom[self.last_cpu] != dom[t.cpu] else rt._near)
            self.contentions += 1
            self.wait_ns += wait
            if wait > self.wait_max:
                self.wait_max = wait
            now += wait
        else:
            last = self.last_cpu
            if last != t.cpu:
                now += rt._lock + (rt._xfer if dom[last] != dom[t.cpu] else rt._near)
            else:
                now += rt._lock
        t.clock = now
        self.acquired_at = now
        self.owner = t

    def release(self, *_exc: object) -> None:
        rt = self._rt
        t = rt.current
        if t is None:
            return
        if self.owner is not t:
            raise SimulationError(f"{t.name} released {self.name} which it does not hold")
        now = t.clock
        hold = now - self.acquired_at
        self.hold_ns += hold
        if hold > self.hold_max:
            self.hold_max = hold
        self.last_cpu = t.cpu
        if self.waiters and rt._near_first:
            # The earliest waiter decides at the release time who gets the lock.
            self.owner = None
            self.free_at = now
            req, a = self.waiters[0]
            self.arbiter = a
            a.clock = req if req > now else now
            rt._wake(a)
        elif self.waiters:
            req, w = self.waiters.popleft()
            dom = rt._dom
            self._grant(w, req, (req if req > now else now) + (
                rt._xfer if dom[t.cpu] != dom[w.cpu] else rt._near))
            rt._wake(w)
        else:
            self.owner = None
            self.free_at = now

    def _queue(self, t: VThread, now: float) -> None:
        """Near-first hand-off: wait until granted.  The first waiter of a lock whose holder
        already left (in virtual time, at ``free_at``) arbitrates at that instant; otherwise
        the release names the earliest waiter arbiter.  The arbiter hands the lock on."""
        rt = self._rt
        self.waiters.append((now, t))
        if self.owner is None and self.arbiter is None:
            self.arbiter = t
            t.clock = self.free_at
            heap = rt._heap
            if heap and heap[0][0] < t.clock:
                rt._yield(t)
        else:
            rt._block(t)
        while self.owner is not t:
            # Woken as the arbiter: every request up to now is in.
            w = self._arbitrate(t)
            if w is t:
                return
            rt._wake(w)
            rt._block(t)

    def _arbitrate(self, a: VThread) -> VThread:
        """At ``a``'s clock (the release time), grant the lock to the earliest waiter in the
        releaser's cache domain, or to the earliest waiter when none is there."""
        rt = self._rt
        now = a.clock
        dom = rt._dom
        home = dom[self.last_cpu]
        waiters = self.waiters
        pick = 0
        for i, (req, w) in enumerate(waiters):
            if req > now:
                break
            if dom[w.cpu] == home:
                pick = i
                break
        req, w = waiters[pick]
        del waiters[pick]
        self.arbiter = None
        self._grant(w, req, (req if req > now else now) + (
            rt._xfer if dom[w.cpu] != home else rt._near))
        return w

    def _grant(self, w: VThread, req: float, grant: float) -> None:
        """Hand the lock to waiter ``w`` (asked at ``req``) at ``grant``: a contended
        acquisition."""
        wait = grant - req
        self.acquisitions += 1
        self.contentions += 1
        self.wait_ns += wait
        if wait > self.wait_max:
            self.wait_max = wait
        self.owner = w
        self.acquired_at = grant
        w.clock = grant

    # The with-statement is the hot path: no extra call layer.
    __enter__ = acquire
    __exit__ = release

    def __repr__(self) -> str:
        return f"<{self.kind.value} {self.name}>"


class VAtomic:
    """An ``atomic_long_t``: each read-modify-write owns its cache line for ``lock_ns`` (plus a
    transfer when another CPU wrote it last); concurrent ones queue on the line."""

    __slots__ = ("name", "value", "free_at", "last_cpu", "sharers", "ops", "contentions",
                 "wait_ns", "wait_max", "_rt")

    def __init__(self, rt: VirtualRuntime, name: str, value: int) -> None:
        self.name = name
        self.value = value
        self.free_at = 0.0
        self.last_cpu = -1
        self.sharers = 0
        self.ops = 0
        self.contentions = 0
        self.wait_ns = 0.0
        self.wait_max = 0.0
        self._rt = rt

    def _rmw(self) -> None:
        rt = self._rt
        t = rt.current
        if t is None:
            return
        heap = rt._heap
        if heap and heap[0][0] < t.clock:
            rt._yield(t)
        start = t.clock
        self.ops += 1
        if self.free_at > start:
            wait = self.free_at - start
            self.contentions += 1
            self.wait_ns += wait
            if wait > self.wait_max:
                self.wait_max = wait
            start = self.free_at
        cpu = t.cpu
        last = self.last_cpu
        if last == cpu:
            end = start + rt._lock
        else:
            dom = rt._dom
            end = start + rt._lock + (rt._xfer if dom[last] != dom[cpu] else rt._near)
        self.free_at = end
        self.last_cpu = cpu
        self.sharers = 0
        t.clock = end

    def read(self) -> int:
        rt = self._rt
        t = rt.current
        if t is not None:
            heap = rt._heap
            if heap and heap[0][0] < t.clock:
                rt._yield(t)
            cpu = t.cpu
            bit = 1 << cpu
            last = self.last_cpu
            if last != cpu and not self.sharers & bit:
                dom = rt._dom
                t.clock += rt._xfer if dom[last] != dom[cpu] else rt._near
                self.sharers |= bit
        return self.value

    def set(self, value: int) -> None:
        self._rmw()
        self.value = value

    def add_return(self, delta: int) -> int:
        self._rmw()
        self.value += delta
        return self.value

    def sub_return(self, delta: int) -> int:
        self._rmw()
        self.value -= delta
        return self.value


class VWork:
    """A ``work_struct`` run by its own worker thread; ``schedule`` wakes it at the caller's
    time on the caller's CPU."""

    __slots__ = ("name", "fn", "pending", "running", "runs", "worker", "flushers", "_rt")

    def __init__(self, rt: VirtualRuntime, name: str, fn: Callable[[], None]) -> None:
        self.name = name
        self.fn = fn
        self.pending = False
        self.running = False
        self.runs = 0
        self.flushers: list[VThread] = []
        self._rt = rt
        self.worker = rt._new_worker(self)

    def schedule(self) -> bool:
        rt = self._rt
        t = rt.current
        if self.pending:
            return False
        self.pending = True
        w = self.worker
        if w.parked:
            w.parked = False
            if t is not None:
                w.cpu = t.cpu
                if w.clock < t.clock:
                    w.clock = t.clock
            rt._wake(w)
        return True

    def flush(self) -> None:
        rt = self._rt
        t = rt.current
        if t is None or t is self.worker or not (self.pending or self.running):
            return
        self.flushers.append(t)
        rt._block(t)


class VirtualRuntime:
    """The ``Runtime`` of one simulation.

    Build it with the costs and the number of CPUs, construct the design with it, ``spawn`` one
    thread per CPU, then ``run``.  ``makespan`` is the virtual time at which the last test
    thread finished; ``locks`` hold lock_stat counters.
    """

    def __init__(self, costs: CostModel, nr_cpus: int, seed: int = 0,
                 topology: Topology | None = None) -> None:
        self.costs = costs
        if topology is None:
            topology = Topology.flat(nr_cpus)
        elif topology.nr_cpus != nr_cpus:
            raise ValueError(f"topology {topology.name} has {topology.nr_cpus} CPUs, "
                             f"the machine {nr_cpus}")
        self.topology = topology
        # Cache domain of each CPU; the extra last entry is what index -1 (a line nobody
        # wrote yet) reads: a domain of its own, so the first touch is a far transfer.
        self._dom = [*topology.domain, -1]
        self._near = costs.xfer_ns * topology.near_ratio
        self._near_first = topology.near_first
        # The work outside the allocator varies from call to call (a per-CPU page list that
        # needs a refill, a TLB miss): uniform on [0, 2 * call_ns), seeded.  Without it the
        # threads of a deterministic simulation fall into lock-step phases that real CPUs
        # never keep.
        self._rand = random.Random(seed).random
        self.nr_cpus = nr_cpus
        self._node = costs.node_ns
        self._lock = costs.lock_ns
        self._xfer = costs.xfer_ns
        self._tlb = costs.tlb_ns
        self._call2 = 2.0 * costs.call_ns
        self.current: VThread | None = None
        self.threads: list[VThread] = []
        self.workers: list[VThread] = []
        self.locks: list[VLock] = []
        self.atomics: list[VAtomic] = []
        self.works: list[VWork] = []
        self.tlb_flushes = 0
        self.switches = 0
        self._heap: list[tuple[float, int, VThread]] = []
        self._seq = 0
        self._main = greenlet.getcurrent()
        self._error: tuple[VThread, BaseException] | None = None
        self.progress: Callable[[int], None] | None = None
        self._ops = 0
        self.first_drain_end: float | None = None  # when the allocator reached steady state

    # ------------------------------------------------------------------ the seam
    def lock(self, name: str, lock_class: str | None = None,
             kind: LockKind = LockKind.SPIN) -> VLock:
        lk = VLock(self, name, lock_class or name, kind)
        self.locks.append(lk)
        return lk

    def atomic(self, name: str, value: int = 0) -> VAtomic:
        a = VAtomic(self, name, value)
        self.atomics.append(a)
        return a

    def work(self, name: str, fn: Callable[[], None]) -> VWork:
        w = VWork(self, name, fn)
        self.works.append(w)
        return w

    def cpu_id(self) -> int:
        t = self.current
        return t.cpu if t is not None else 0

    def thread_key(self) -> int:
        t = self.current
        return t.tid if t is not None else -1

    def shared(self, name: str, obj: T) -> T:
        if isinstance(obj, RBTree):
            return CostedTree(self, obj)  # type: ignore[return-value]
        if isinstance(obj, VmapPools):
            return CostedPools(self, obj)  # type: ignore[return-value]
        return obj  # per-CPU data (the spare nodes) and plain cells: no cost

    def flush_tlb_kernel_range(self, start: int, end: int) -> None:
        t = self.current
        self.tlb_flushes += 1
        if t is not None:
            t.clock += self._tlb * self.nr_cpus

    # ------------------------------------------------------------------ workload hooks
    def charge(self, ns: float) -> None:
        """Charge local work to the running thread (no scheduling point)."""
        t = self.current
        if t is not None:
            t.clock += ns

    def call(self) -> None:
        """One allocator call: the per-call cost outside the allocator, and loop bookkeeping
        (the first call after a finished iteration opens the next one)."""
        t = self.current
        if t is None:
            return
        if not t.iter_open:
            t.iter_open = True
            t.iter_start = t.clock
        t.clock += self._call2 * self._rand()
        t.ops += 1
        self._ops += 1
        if self.progress is not None and not self._ops & 1023:
            self.progress(self._ops)

    def iteration_done(self) -> None:
        """The workload loop finished one iteration: record its latency."""
        t = self.current
        if t is None or not t.iter_open:
            return
        t.samples.append(t.clock - t.iter_start)
        t.starts.append(t.iter_start)
        t.iter_open = False

    def now(self) -> float:
        t = self.current
        return t.clock if t is not None else 0.0

    # ------------------------------------------------------------------ threads
    def spawn(self, name: str, cpu: int, body: Callable[[], None], start: float = 0.0) -> VThread:
        t = VThread(len(self.threads), name, cpu, start)
        t.glet = greenlet.greenlet(self._thread_main(t, body), parent=self._main)
        self.threads.append(t)
        self._push(t)
        return t

    def _new_worker(self, work: VWork) -> VThread:
        t = VThread(-1 - len(self.workers), work.name, 0, 0.0)
        t.work = work
        t.parked = True
        t.glet = greenlet.greenlet(self._thread_main(t, lambda: self._worker_loop(t, work)),
                                   parent=self._main)
        self.workers.append(t)
        return t

    def _thread_main(self, t: VThread, body: Callable[[], None]) -> Callable[[], None]:
        def main() -> None:
            try:
                body()
            except greenlet.GreenletExit:
                raise
            except BaseException as exc:  # noqa: BLE001 - reported by run()
                self._error = (t, exc)
                self._main.switch()
            t.done = True
            t.end = t.clock
            self.current = None
        return main

    def _worker_loop(self, t: VThread, work: VWork) -> None:
        while True:
            while work.pending:
                work.pending = False
                work.running = True
                work.runs += 1
                work.fn()
                work.running = False
                if self.first_drain_end is None:
                    self.first_drain_end = t.clock
            for f in work.flushers:
                if f.clock < t.clock:
                    f.clock = t.clock
                self._wake(f)
            work.flushers.clear()
            t.parked = True
            self._block(t)

    # ------------------------------------------------------------------ scheduling
    def _push(self, t: VThread) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t.clock, self._seq, t))

    def _wake(self, t: VThread) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t.clock, self._seq, t))

    def _yield(self, t: VThread) -> None:
        """``t`` is at a scheduling point and another thread is behind it: run that one."""
        self._seq += 1
        nxt = heapq.heappushpop(self._heap, (t.clock, self._seq, t))[2]
        self.switches += 1
        self.current = nxt
        nxt.glet.switch()  # type: ignore[union-attr]  # live threads always have one
        if self._error is not None:
            raise greenlet.GreenletExit

    def _block(self, t: VThread) -> None:
        """``t`` waits (for a lock, a work item, or new work): run the earliest other thread,
        or go back to the main loop when nothing is runnable."""
        if self._heap:
            self._switch_to(heapq.heappop(self._heap)[2])
        else:
            self.current = None
            self._main.switch()
            if self._error is not None:
                raise greenlet.GreenletExit

    def _switch_to(self, nxt: VThread) -> None:
        self.switches += 1
        self.current = nxt
        assert nxt.glet is not None
        nxt.glet.switch()
        if self._error is not None:
            raise greenlet.GreenletExit

    def run(self) -> None:
        """Run every spawned thread to completion.  Raises ``SimulationError`` when a thread
        raised (with its exception as the cause) or when threads are left blocked."""
        if greenlet.getcurrent() is not self._main:
            raise RuntimeError("a simulation must run in the greenlet that built it")
        try:
            while self._heap and self._error is None:
                t = heapq.heappop(self._heap)[2]
                self.current = t
                assert t.glet is not None
                t.glet.switch()
        finally:
            self.current = None
        if self._error is not None:
            t, exc = self._error
            self._teardown()
            raise SimulationError(f"{t.name} raised {type(exc).__name__}: {exc}") from exc
        stuck = [t for t in self.threads if not t.done]
        if stuck:
            held = {lk.name: lk.owner.name for lk in self.locks if lk.owner is not None}
            self._teardown()
            raise SimulationError(f"threads blocked forever: {', '.join(t.name for t in stuck)}"
                                  f"; locks held: {held}")
        self._teardown()

    def _teardown(self) -> None:
        for t in [*self.threads, *self.workers]:
            g = t.glet
            if g is not None and g and not g.dead:
                try:
                    g.throw(greenlet.GreenletExit)
                except greenlet.GreenletExit:
                    pass
            t.glet = None
        self.current = None

    # ------------------------------------------------------------------ results
    @property
    def makespan(self) -> float:
        """Virtual time from the first thread's start to the last thread's end (ns)."""
        if not self.threads:
            return 0.0
        return max(t.end for t in self.threads) - min(t.start for t in self.threads)

    def busy_ns(self) -> float:
        """Sum over test threads of their running time (ns): the denominator of wait shares."""
        return sum(t.end - t.start for t in self.threads)
