"""Run one stress combination (a design at a thread count) on real threads, as test_vmalloc does.

Threads ``vmalloc_test/<i>`` are created first, each pinned to CPU ``i % nr_cpus``, and wait at a
gate (a barrier, the module's ``prepare_for_test_rwsem``) so that they all start together.  Each
runs the selected cases in the kernel's table order or shuffled per thread, every case
``repeat`` times, and keeps the kernel's per-case counters (passed, failed, average time per
repeat).  With ``duration`` the threads cycle through their cases until the time is up.

The main thread watches: it updates progress, ends a timed run, and stops the run when a thread
or the drain worker raises (everything stops at the next loop iteration; the exception is the
report) or when nothing has progressed for ``stall_timeout`` seconds (a deadlock or livelock;
the report shows where every thread is blocked).  At the end the allocator is drained (wait for
the worker, purge, wait again) and every invariant must hold at rest, with no busy area left:
each case frees all it allocated, so anything still busy was lost.

Relies on ``impl.runtimes.threads`` (the runtime), ``checker.lockstat`` (the instrumented locks),
``checker.stress.workloads`` and ``checker.stress.vmallocinfo``.
"""

from __future__ import annotations

import random
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from impl.config import VmapConfig
from impl.designs import VmapDesign
from impl.errors import InvariantViolation
from impl.intervals import lazy_max_pages
from impl.runtimes.threads import ThreadRuntime, WorkError

from ..lockstat import LockStatRegistry, LockStatReport, StatLock
from ..result import Finding
from .vmallocinfo import NoReader, reader_for
from .workloads import TestCase, TestContext, live_pages_estimate

GATE_TIMEOUT = 60.0
DRAIN_TIMEOUT = 120.0
MIN_PAGES = 1 << 22


@dataclass(frozen=True)
class StressConfig:
    """Parameters of one combination.  ``pages`` None sizes the range from the cases."""

    tests: tuple[TestCase, ...]
    threads: int
    loops: int = 1000
    repeat: int = 1
    sequential: bool = False
    seed: int = 0
    nr_pages: int = 1
    duration: float | None = None
    lockstat: bool = True
    record_order: bool = False
    pages: int | None = None
    stall_timeout: float = 60.0

    @property
    def nr_cpus(self) -> int:
        return self.threads

    def vmap_config(self, page_size: int = 4096) -> VmapConfig:
        """The allocator instance: ``nr_cpus`` = thread count (so ``lazy_max_pages`` and the
        node count are the kernel's defaults for it), and room for every thread's live areas
        plus a few drain thresholds of lazy areas, at least ``MIN_PAGES``."""
        pages = self.pages
        if pages is None:
            per_thread = sum(live_pages_estimate(c, self.nr_cpus, page_size, self.nr_pages)
                             for c in self.tests)
            need = 2 * (self.threads * per_thread + 4 * lazy_max_pages(self.nr_cpus, page_size))
            pages = MIN_PAGES
            while pages < need:
                pages <<= 1
        return VmapConfig(pages=pages, nr_cpus=self.nr_cpus, page_size=page_size)


@dataclass
class CaseSummary:
    """The kernel's ``struct test_case_data`` of one thread and case."""

    test: TestCase
    passed: int = 0
    failed: int = 0
    repeat: int = 0
    time_us: int = 0  # average per repeat, as the module prints it

    @property
    def xfailed(self) -> int:
        return self.failed if self.test.xfail else 0

    @property
    def unexpected_failures(self) -> int:
        return 0 if self.test.xfail else self.failed


@dataclass
class ThreadState:
    index: int
    cpu: int
    ctx: TestContext
    order: list[TestCase]
    cases: dict[str, CaseSummary] = field(default_factory=dict)
    start_ns: int = 0
    stop_ns: int = 0
    current: str = ""


@dataclass
class RunResult:
    """Everything measured for one design at one thread count."""

    design: str
    threads: int
    config: VmapConfig
    loops: int
    repeat: int
    elapsed_s: float = 0.0
    ops: int = 0
    latencies_ns: list[int] = field(default_factory=list)  # sorted
    threads_state: list[ThreadState] = field(default_factory=list)
    lockstat: LockStatReport | None = None
    findings: list[Finding] = field(default_factory=list)
    drain_runs: int = 0
    invariants: str = "not checked"
    stalled: bool = False

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def percentile_us(self, q: float) -> float:
        lat = self.latencies_ns
        if not lat:
            return 0.0
        k = min(len(lat) - 1, max(0, int(round(q * (len(lat) - 1)))))
        return lat[k] / 1000.0

    @property
    def blocked_share(self) -> float | None:
        """Lock wait over all thread time: the share of the threads' time spent blocked on
        locks (the analogue of the kernel's spin slow-path share in a profile)."""
        if self.lockstat is None or self.elapsed_s <= 0:
            return None
        return self.lockstat.total.wait_total_ns / (self.threads * self.elapsed_s * 1e9)

    @property
    def unexpected_failures(self) -> int:
        return sum(c.unexpected_failures for t in self.threads_state for c in t.cases.values())


_PLUMBING = ("lockstat.py", "threading.py", "runner.py", "threads.py")


def _blocked_on(frame: FrameType | None) -> Any:
    """The instrumented lock a thread is blocked in, if any (found in its innermost frames)."""
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, StatLock):
            return candidate
        frame = frame.f_back
    return None


def blocked_report(threads: list[threading.Thread], depth: int = 6) -> dict[str, Any]:
    """Where each thread is (innermost frames last, runtime plumbing left out) and, with
    lock_stat on, which lock it waits for and which thread holds that lock."""
    frames = sys._current_frames()
    names = {t.ident: t.name for t in threading.enumerate()}
    stacks: dict[str, list[str]] = {}
    waits: dict[str, str] = {}
    for t in threads:
        frame = frames.get(t.ident or -1)
        if frame is None:
            continue
        summary = [fs for fs in traceback.extract_stack(frame)
                   if not fs.filename.endswith(_PLUMBING)][-depth:]
        stacks[t.name] = [f"{fs.name} ({fs.filename.rsplit('/', 1)[-1]}:{fs.lineno}): "
                          f"{fs.line}" for fs in summary]
        lock = _blocked_on(frame)
        if lock is not None:
            holder = names.get(lock._holder, f"thread {lock._holder}")
            waits[t.name] = f"waits for {lock.name} held by {holder}"
    return {"waits": waits, "stacks": stacks}


class _Run:
    """State shared by the threads of one combination and the watching main thread."""

    def __init__(self, design_cls: type[VmapDesign], cfg: StressConfig) -> None:
        self.cfg = cfg
        self.stop = threading.Event()
        self.errors: list[Finding] = []
        self._errors_lock = threading.Lock()
        self.registry = LockStatRegistry(cfg.record_order) if cfg.lockstat else None
        self.rt = ThreadRuntime(lock_factory=self.registry, on_work_error=self._work_error)
        if self.registry is not None:
            self.registry.worker_ident = self.rt.worker.ident
        self.result = RunResult(design_cls.name, cfg.threads, cfg.vmap_config(), cfg.loops,
                                cfg.repeat)
        try:
            self.design = design_cls(self.rt, self.result.config)
            self.reader = None
            if any(c.short == "vmallocinfo" for c in cfg.tests):
                self.reader = reader_for(self.design)
        except BaseException:
            self.rt.stop(timeout=1.0)
            raise
        self.gate = threading.Barrier(cfg.threads + 1)
        self.states = [self._state(i) for i in range(cfg.threads)]

    def _state(self, i: int) -> ThreadState:
        cfg = self.cfg
        rng = random.Random(cfg.seed * 1_000_003 + i)
        order = list(cfg.tests)
        if not cfg.sequential:
            rng.shuffle(order)
        ctx = TestContext(self.design, rng, cfg.loops, cfg.nr_cpus, self.stop,
                          nr_pages=cfg.nr_pages, reader=self.reader)
        return ThreadState(i, i % cfg.nr_cpus, ctx, order,
                           {c.name: CaseSummary(c) for c in cfg.tests})

    def _record(self, finding: Finding) -> None:
        with self._errors_lock:
            self.errors.append(finding)
        self.stop.set()

    def _work_error(self, err: WorkError) -> None:
        self._record(Finding("exception", f"drain worker: {err}", {"traceback": err.traceback}))

    # ------------------------------------------------------------------ test threads
    def thread_main(self, st: ThreadState) -> None:
        cfg = self.cfg
        self.rt.pin_cpu(st.cpu)
        try:
            self.gate.wait(GATE_TIMEOUT)
        except threading.BrokenBarrierError:
            return
        st.start_ns = time.perf_counter_ns()
        try:
            rounds = 0
            while True:
                for case in st.order:
                    self._run_case(st, case)
                    if self.stop.is_set():
                        break
                rounds += 1
                if cfg.duration is None or self.stop.is_set():
                    break
        except BaseException as exc:  # noqa: BLE001 - any escape is a design bug: report it
            self._record(Finding(
                "exception",
                f"vmalloc_test/{st.index} (cpu {st.cpu}) in {st.current}: "
                f"{type(exc).__name__}: {exc}",
                {"thread": st.index, "test": st.current,
                 "traceback": "".join(traceback.format_exception(exc))}))
        finally:
            st.stop_ns = time.perf_counter_ns()

    def _run_case(self, st: ThreadState, case: TestCase) -> None:
        summary = st.cases[case.name]
        st.current = case.name
        repeat = self.cfg.repeat if self.cfg.duration is None else 1
        t0 = time.perf_counter_ns()
        done = 0
        for _ in range(repeat):
            if case.fn(st.ctx):
                summary.passed += 1
            else:
                summary.failed += 1
            done += 1
            if self.stop.is_set():
                break
        total_us = (time.perf_counter_ns() - t0) // 1000
        # Average per repeat over every call, also when a timed run calls the case again.
        prev = summary.repeat
        summary.repeat += done
        summary.time_us = (summary.time_us * prev + total_us) // max(summary.repeat, 1)

    # ------------------------------------------------------------------ main thread
    def progress(self) -> int:
        """Allocator calls so far (setup phases included) plus drain runs: the stall clock."""
        return sum(st.ctx.calls for st in self.states) + sum(w.runs for w in self.rt.works)

    def execute(self, on_progress: Callable[[int, float], None] | None) -> RunResult:
        cfg, res = self.cfg, self.result
        threads = [threading.Thread(target=self.thread_main, args=(st,),
                                    name=f"vmalloc_test/{st.index}", daemon=True)
                   for st in self.states]
        for t in threads:
            t.start()
        self.gate.wait(GATE_TIMEOUT)
        t_start = time.perf_counter()
        last_calls, last_change = -1, t_start
        while any(t.is_alive() for t in threads):
            self.stop.wait(0.05)
            now = time.perf_counter()
            calls = self.progress()
            if on_progress is not None:
                on_progress(sum(len(st.ctx.latencies) for st in self.states), now - t_start)
            if cfg.duration is not None and now - t_start >= cfg.duration:
                self.stop.set()
            if calls != last_calls:
                last_calls, last_change = calls, now
            elif now - last_change > cfg.stall_timeout:
                self._stalled(threads)
                break
        started = [st for st in self.states if st.start_ns]
        if res.stalled or not started:
            res.elapsed_s = time.perf_counter() - t_start
        else:
            res.elapsed_s = (max(st.stop_ns for st in started)
                             - min(st.start_ns for st in started)) / 1e9
        res.threads_state = self.states
        merged: list[int] = []
        for st in self.states:
            merged.extend(st.ctx.latencies)
        merged.sort()
        res.latencies_ns = merged
        res.ops = len(merged)
        if self.registry is not None:
            res.lockstat = self.registry.statistics()
        res.findings.extend(self.errors)
        if not res.stalled:
            self._drain_and_check()
        res.drain_runs = sum(w.runs for w in self.rt.works)
        self.rt.stop(timeout=1.0 if res.stalled else 10.0)
        return res

    def _stalled(self, threads: list[threading.Thread]) -> None:
        res = self.result
        res.stalled = True
        self.stop.set()
        stuck = [t for t in threads if t.is_alive()] + [self.rt.worker]
        report = blocked_report(stuck)
        waits = "; ".join(f"{k} {v}" for k, v in report["waits"].items())
        res.findings.append(Finding(
            "deadlock",
            f"no progress for {self.cfg.stall_timeout:g} s: {sum(t.is_alive() for t in threads)} "
            f"test thread(s) blocked, the run was stopped"
            + (f": {waits}" if waits else " (stacks in the trace)"), report))
        res.invariants = "not checked: the run stalled"

    def _drain_and_check(self) -> None:
        res, rt, design = self.result, self.rt, self.design
        if self.errors:
            res.invariants = "not checked: the run stopped on an exception"
            return
        try:
            if not rt.quiesce(DRAIN_TIMEOUT):
                raise TimeoutError(f"the drain worker is still busy after {DRAIN_TIMEOUT:g} s")
            design.purge()
            if not rt.quiesce(DRAIN_TIMEOUT):
                raise TimeoutError(f"the drain worker is still busy after {DRAIN_TIMEOUT:g} s")
        except BaseException as exc:  # noqa: BLE001
            res.findings.append(Finding(
                "exception", f"draining the allocator: {type(exc).__name__}: {exc}",
                {"traceback": "".join(traceback.format_exception(exc))}))
            res.invariants = "not checked: the drain failed"
            return
        if rt.work_errors:
            res.findings.extend(f for f in self.errors if f not in res.findings)
            res.invariants = "not checked: the drain worker raised"
            return
        try:
            design.check_invariants(at_rest=True)
            busy = design.snapshot().by_kind("busy")
            if busy:
                s, e = busy[0]
                raise InvariantViolation(
                    "nothing lost", f"{len(busy)} busy area(s) remain after every test freed all "
                                    f"it allocated, first [{s:#x}, {e:#x})")
        except InvariantViolation as exc:
            res.findings.append(Finding("invariant", str(exc), {"invariant": exc.invariant}))
            res.invariants = f"violated: {exc.invariant}"
            return
        res.invariants = "ok"


def run_combination(design_cls: type[VmapDesign], cfg: StressConfig,
                    on_progress: Callable[[int, float], None] | None = None) -> RunResult:
    """Run ``cfg`` on a fresh instance of ``design_cls``.  A design that cannot be built or
    read is reported as a finding of the result, never raised."""
    try:
        run = _Run(design_cls, cfg)
    except NoReader:
        raise
    except Exception as exc:  # noqa: BLE001 - a user's design may fail in its constructor
        res = RunResult(design_cls.name, cfg.threads, cfg.vmap_config(), cfg.loops, cfg.repeat)
        res.findings.append(Finding(
            "exception", f"building design {design_cls.name!r}: {type(exc).__name__}: {exc}",
            {"traceback": "".join(traceback.format_exception(exc))}))
        return res
    return run.execute(on_progress)


def python_info() -> dict[str, Any]:
    """What the interpreter allows: version, build, GIL state, switch interval."""
    import sysconfig
    gil_check = getattr(sys, "_is_gil_enabled", None)
    return {
        "version": sys.version.split()[0],
        "implementation": sys.implementation.name,
        "free_threaded_build": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        "gil_enabled": bool(gil_check()) if callable(gil_check) else True,
        "switch_interval_s": sys.getswitchinterval(),
    }
