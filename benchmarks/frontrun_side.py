"""The frontrun half of ``compare_frontrun.py``: explore one planted bug with ``frontrun.explore``.

Run under frontrun's own wrapper (it preloads its I/O interception and activates its patches)::

    frontrun python benchmarks/frontrun_side.py lock-inversion

The design runs on ``FrontrunRuntime``: ``threading`` locks (frontrun replaces them with its
cooperative ones while it explores, and sees every acquire and release), atomics guarded by a
lock of their own, and deferred work run inline by the thread that queues it (no thread
frontrun does not control; the benchmark scenarios never queue the drain anyway).  Each frontrun worker runs one thread's program,
pinned to its CPU id; the invariant is the design's own at-rest check (conservation, tree
shapes, ``vmap_lazy_nr`` against the lazy list).  Prints one JSON line: verdict, interleavings
explored, seconds to the first counterexample.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

from planted import BUGS  # noqa: E402

from impl.designs.base import VmapDesign  # noqa: E402
from impl.errors import AllocationFailed, VmapError  # noqa: E402
from impl.runtime import LockKind  # noqa: E402
from spec.program import Alloc, Find, Free, Purge, ThreadProgram  # noqa: E402

T = TypeVar("T")


class FrontrunLock:
    """As thin as the project's ``ThreadLock``: any bookkeeping here would be shared-memory
    traffic that frontrun has to interleave."""

    def __init__(self, name: str, lock_class: str, kind: LockKind) -> None:
        self.name, self.lock_class, self.kind = name, lock_class, kind
        self._lock = threading.Lock()
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


class FrontrunAtomic:
    def __init__(self, name: str, value: int) -> None:
        self.name = name
        self._value = value
        self._lock = threading.Lock()

    def read(self) -> int:
        with self._lock:
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


class FrontrunWork:
    """Runs the work at once in the thread that queues it (``global`` queues its drain with
    no lock held)."""

    def __init__(self, name: str, fn: Callable[[], None]) -> None:
        self.name, self.fn = name, fn

    def schedule(self) -> bool:
        self.fn()
        return True

    def flush(self) -> None:
        pass


class FrontrunRuntime:
    def __init__(self) -> None:
        self._local = threading.local()

    def lock(self, name: str, lock_class: str | None = None,
             kind: LockKind = LockKind.SPIN) -> FrontrunLock:
        return FrontrunLock(name, lock_class or name, kind)

    def atomic(self, name: str, value: int = 0) -> FrontrunAtomic:
        return FrontrunAtomic(name, value)

    def work(self, name: str, fn: Callable[[], None]) -> FrontrunWork:
        return FrontrunWork(name, fn)

    def pin(self, cpu: int) -> None:
        self._local.cpu = cpu

    def cpu_id(self) -> int:
        return int(getattr(self._local, "cpu", 0))

    def thread_key(self) -> int:
        return threading.get_ident()

    def shared(self, name: str, obj: T) -> T:
        return obj


class State:
    def __init__(self, design: VmapDesign, rt: FrontrunRuntime) -> None:
        self.design, self.rt = design, rt


def make_worker(prog: ThreadProgram) -> Callable[[State], None]:
    def worker(state: State) -> None:
        d, page = state.design, state.design.page_size
        state.rt.pin(prog.cpu)
        slots: dict[str, int | None] = {}
        for op in prog.ops:
            if isinstance(op, Alloc):
                try:
                    slots[op.slot] = d.alloc(op.pages * page, op.align_pages * page)
                except AllocationFailed:
                    slots[op.slot] = None
            elif isinstance(op, Free) and slots.get(op.slot) is not None:
                d.free(slots[op.slot])  # type: ignore[arg-type]
                slots[op.slot] = None
            elif isinstance(op, Find) and slots.get(op.slot) is not None:
                d.find(slots[op.slot])  # type: ignore[arg-type]
            elif isinstance(op, Purge):
                d.purge()
    return worker


def invariant(state: State) -> bool:
    try:
        state.design.check_invariants(at_rest=True)
    except (VmapError, AssertionError):
        return False
    return True


def main() -> None:
    import frontrun  # imported here: only this half needs it

    ap = argparse.ArgumentParser()
    ap.add_argument("bug", choices=sorted(BUGS))
    ap.add_argument("--preemption-bound", type=int, default=2,
                    help="frontrun's own default is 2; -1 means unbounded")
    ap.add_argument("--timeout", type=float, default=600.0)
    args = ap.parse_args()
    design_cls, programs, config = BUGS[args.bug]

    def setup() -> State:
        rt = FrontrunRuntime()
        return State(design_cls(rt, config), rt)  # type: ignore[arg-type]

    bound = None if args.preemption_bound < 0 else args.preemption_bound
    t0 = time.perf_counter()
    result: Any = frontrun.explore(
        setup=setup, workers=[make_worker(p) for p in programs], invariant=invariant,
        preemption_bound=bound, stop_on_first=True, reproduce_on_failure=0,
        total_timeout=args.timeout)
    seconds = time.perf_counter() - t0
    explanation = (result.explanation or "").strip().splitlines()
    print(json.dumps({
        "tool": "frontrun", "bug": args.bug, "found": result.property_holds is False,
        "verdict": result.property_holds, "interleavings": result.num_explored,
        "seconds": round(seconds, 3), "preemption_bound": bound,
        "summary": explanation[0] if explanation else "",
    }))


if __name__ == "__main__":
    main()
