"""Runtimes that live on the checker side of the seam (``impl.runtime.Runtime``).

``controlled``: model threads on greenlets, every lock/atomic/work operation a scheduling point
whose next thread a ``Scheduler`` picks.  Used by ``model-check`` and ``replay``, and meant to be
reused by the virtual-time runtime of ``simulate`` (a scheduler that picks the thread with the
smallest virtual clock).
"""

from .controlled import (
    ControlledRuntime,
    LockMisuseError,
    ModelThread,
    PendingOp,
    Scheduler,
)

__all__ = ["ControlledRuntime", "LockMisuseError", "ModelThread", "PendingOp", "Scheduler"]
