"""Spin detection: the fairness assumption that keeps busy-wait loops from looking like livelocks.

A thread that comes back to the same scheduling point (same pending operation at the same
source line, same call stack and local variables) with the shared state unchanged and no
other thread having moved since, made a step that changed nothing: a stutter.  Running it
again before anyone else reaches only states already reached, so the thread is marked as
yielding: it runs again only when no other thread can, or after another thread took a step
(``ControlledRuntime.yielding``).  This is the fairness a real machine gives a spinning CPU;
without it every execution where the drain worker re-purges an empty list while the freeing
thread (which already counted its pages in ``vmap_lazy_nr``) waits would be explored to the
step bound, and reported as a drain that does not terminate.

If no other thread could run at any step of such an iteration (all blocked or finished), the
iteration repeats forever: that is a real livelock, and the execution reports it (the kernel's
B4, a drain spinning forever).  A yielding thread still runs when nothing else can (it may hold
the lock the others wait for).

A thread is compared with itself from its second arrival at a point on: first its innermost
frame (cheap, and enough to tell a loop that moved on), then, when that matches, everything; a
spin costs three loop iterations before the thread yields.  The comparison covers the design's snapshot,
every lock owner, atomic value and work state, and the thread's own frames (code position and
local variables, compared by value for plain data and by identity for objects).

Relies on the controlled runtime's thread and object records.
"""

from __future__ import annotations

from typing import Any

from impl.designs.base import VmapDesign

from ..runtimes.controlled import (
    ControlledAtomic,
    ControlledLock,
    ControlledRuntime,
    ControlledWork,
    ModelThread,
)

_RUNTIME_FILE = ControlledRuntime.run.__code__.co_filename


def freeze(x: Any, depth: int = 0) -> Any:
    """A hashable value of ``x``: plain data by value, other objects by identity."""
    if x is None or isinstance(x, (bool, int, float, str, bytes)):
        return x
    if depth > 4:
        return ("id", id(x))
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, tuple(freeze(v, depth + 1) for v in x))
    if isinstance(x, dict):
        return ("dict", frozenset((freeze(k, depth + 1), freeze(v, depth + 1))
                                  for k, v in x.items()))
    if isinstance(x, (set, frozenset)):
        return ("set", frozenset(freeze(v, depth + 1) for v in x))
    return ("id", id(x))


def state_fingerprint(rt: ControlledRuntime, design: VmapDesign) -> Any:
    try:
        snap = design.snapshot()
        areas = frozenset((k, tuple(v)) for k, v in snap.areas.items())
        counters = frozenset(snap.counters.items())
    except Exception:  # noqa: BLE001 - a state the snapshot cannot read never compares equal
        return object()
    objs: list[Any] = []
    for o in rt.objects:
        if isinstance(o, ControlledLock):
            objs.append(o.owner.tid if o.owner is not None else -1)
        elif isinstance(o, ControlledAtomic):
            objs.append(o.value)
        elif isinstance(o, ControlledWork):
            objs.append((o.pending, o.running))
    return (areas, counters, tuple(objs))


def frames_fingerprint(t: ModelThread, innermost_only: bool = False) -> Any:
    g = t.glet
    frame = g.gr_frame if g is not None else None
    out = []
    while frame is not None:
        code = frame.f_code
        if code.co_filename != _RUNTIME_FILE:
            out.append((code, frame.f_lineno, freeze(dict(frame.f_locals))))
            if innermost_only:
                break
        frame = frame.f_back
    return tuple(out)


class _Run:
    """A run of consecutive steps of one thread, with no other thread moving meanwhile."""

    __slots__ = ("start", "contended", "visits")

    def __init__(self, start: int) -> None:
        self.start = start  # steps of the other threads when the run began
        self.contended = 0  # steps of the run at which another thread could have run
        # point -> (innermost frame, full fingerprint or None, contended)
        self.visits: dict[Any, tuple[Any, Any, int]] = {}


class SpinDetector:
    """Marks threads that spin as yielding, and finds livelocks; one per execution."""

    def __init__(self, rt: ControlledRuntime, design: VmapDesign) -> None:
        self.rt = rt
        self.design = design
        self._runs: dict[int, _Run] = {}
        self.where: dict[int, str] = {}
        self.livelock: ModelThread | None = None
        self._last: int | None = None

    def memory(self) -> Any:
        """What the detector remembers: the current run of the thread that moved last."""
        if self._last is None or self._last not in self._runs:
            return None
        run = self._runs[self._last]
        return (self._last, run.contended,
                frozenset((pt, hash(v[1]) if v[1] is not None else None, v[2])
                          for pt, v in run.visits.items()))

    def after_step(self, t: ModelThread) -> None:
        rt = self.rt
        self._last = t.tid
        others = rt.step - t.steps
        run = self._runs.get(t.tid)
        if run is None or run.start != others:
            run = self._runs[t.tid] = _Run(others)
        for tid in rt.last_raw_enabled:
            if tid != t.tid:
                run.contended += 1
                break
        p = t.pending
        if p is None or t.done:
            return
        # Coming back to a line in a later operation is not a loop; only a revisit within
        # the same operation (a retry, the drain's repeat) needs the expensive comparison.
        point = (p.key, p.action, p.line, p.file, t.op_seq)
        prev = run.visits.get(point)
        if prev is None:
            run.visits[point] = (None, None, run.contended)
            return
        inner = frames_fingerprint(t, innermost_only=True)
        if prev[0] != inner:
            # The loop variables moved on (or the first revisit): cheap to tell, no comparison.
            run.visits[point] = (inner, None, run.contended)
            return
        fp = (frames_fingerprint(t), state_fingerprint(rt, self.design))
        if prev[1] is not None and prev[1] == fp:
            self.where[t.tid] = f"{p.describe()} at {p.file.rsplit('/', 1)[-1]}:{p.line}"
            if run.contended > prev[2]:
                rt.yielding.add(t.tid)
            else:
                # Nobody else could run at any point of an iteration that changed nothing:
                # the same iteration repeats forever.
                self.livelock = t
        run.visits[point] = (inner, fp, run.contended)
