"""State fingerprints for state caching: the whole program state, canonicalised.

A state is everything that decides what can happen next: the design's object graph (trees,
lists, counters, areas in hand: walked in full, not the abstract snapshot, so a buggy design's
stale internal field counts too), every runtime object (lock owner, atomic value, work
pending/running) and each thread's position (for every frame of its greenlet below the
runtime: the code and instruction offset, and the local variables).  Left out on purpose: the
spin detector's memory and which threads currently yield (``fairness``).  They only decide when
a loop iteration that changed nothing may run again, and such an iteration reaches no new
state, so two states that differ only there have the same reachable states.  Objects are numbered in the order the walk first meets them, so two executions
that build equal heaps out of different objects get equal fingerprints, and shared references
(a local variable pointing into a tree) are preserved.  Containers are compared with their
order (a dict's insertion order, a list's order); sets as sets.

Why caching on it is sound: the designs are deterministic Python (the search already relies on
that to replay prefixes), so two states with equal fingerprints have the same futures: the
same schedules are possible and lead to the same events and states.  Nothing outside the walk
influences them: functions, classes and modules are immutable code, referred to by identity.
The fingerprint is a 128-bit hash of the canonical form; a collision between two of a million
states has a probability around 1e-26.

Relies on the controlled runtime's object types.
"""

from __future__ import annotations

import types
from typing import Any

from ..runtimes.controlled import (
    ControlledAtomic,
    ControlledLock,
    ControlledRuntime,
    ControlledWork,
    ModelThread,
    PendingOp,
    SharedProxy,
)
from .fairness import SpinDetector

_RUNTIME_FILE = ControlledRuntime.run.__code__.co_filename
_ATOMS = (type(None), bool, int, float, str, bytes)
_CODE = (types.BuiltinFunctionType, types.ModuleType, type, types.CodeType)


class Canon:
    """Canonical, hashable form of an object graph."""

    def __init__(self, constants: frozenset[int] = frozenset()) -> None:
        self.ids: dict[int, int] = {}
        self.keep: list[Any] = []  # keeps walked objects alive so their ids stay unique
        # Objects that outlive the execution and never change (the scenario and its ops).
        self.constants = constants

    def val(self, x: Any) -> Any:
        t = type(x)
        if t in _ATOMS:
            return x
        if t is tuple:
            return ("t", *[self.val(v) for v in x])
        if isinstance(x, _CODE):
            return ("c", id(x))
        if t is types.FunctionType:
            # A closure made per execution (an invariant-check lambda) is its code and cells.
            cells = x.__closure__ or ()
            return ("f", id(x.__code__),
                    tuple(self.val(c.cell_contents) if _cell_set(c) else None for c in cells))
        oid = id(x)
        if oid in self.constants:
            return ("k", oid)
        n = self.ids.get(oid)
        if n is not None:
            return ("r", n)
        n = self.ids[oid] = len(self.ids)
        self.keep.append(x)
        if t is list:
            return ("l", n, tuple(self.val(v) for v in x))
        if t is dict:
            return ("d", n, tuple((self.val(k), self.val(v)) for k, v in x.items()))
        if t is set or t is frozenset:
            return ("s", n, frozenset(self.val(v) for v in x))
        if t is ControlledLock:
            return ("L", x.key, x.owner.tid if x.owner is not None else -1)
        if t is ControlledAtomic:
            return ("A", x.key, x.value)
        if t is ControlledWork:
            return ("W", x.key, x.pending, x.running, x.worker.tid)
        if t is SharedProxy:
            return ("P", x._vc_key, self.val(x._vc_obj))
        if t is ControlledRuntime or t is SpinDetector or t is ModelThread:
            return ("rt",)
        if t is types.MethodType:
            return ("m", id(x.__func__), self.val(x.__self__))
        if t is PendingOp:
            return ("p", x.key, x.action)
        if isinstance(x, types.FrameType) or isinstance(x, types.GeneratorType):
            return ("g", n)
        fields: list[Any] = []
        d = getattr(x, "__dict__", None)
        if d is not None:
            fields.extend((k, self.val(v)) for k, v in d.items())
        for cls in t.__mro__:
            for slot in cls.__dict__.get("__slots__", ()):
                if hasattr(x, slot):
                    fields.append((slot, self.val(getattr(x, slot))))
        return ("o", id(t), n, tuple(fields))


def _cell_set(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True


def fingerprint(rt: ControlledRuntime) -> tuple[int, int]:
    """The 128-bit fingerprint of the current state of an execution."""
    design = rt.context.get("design")
    canon = Canon(rt.context.get("constants", frozenset()))
    parts: list[Any] = [canon.val(design)]
    parts.append(tuple(canon.val(o) for o in rt.objects))
    for t in rt.threads:
        frames: list[Any] = []
        g = t.glet
        frame = g.gr_frame if g is not None and not t.done else None
        while frame is not None:
            code = frame.f_code
            if code.co_filename != _RUNTIME_FILE:
                frames.append((id(code), frame.f_lasti, canon.val(dict(frame.f_locals))))
            frame = frame.f_back
        p = t.pending
        parts.append((t.done, t.cpu, t.op, tuple(h.lock.key for h in t.held),
                      (p.key, p.action) if p is not None else None, tuple(frames)))
    for o in rt.context.get("observers", ()):
        parts.append(o.state_key())
    key = tuple(parts)
    return hash(key), hash((key, 0x9E3779B97F4A7C15))
