"""Errors an allocator user can cause, each with one clear message.

Every error is raised before any state is changed, so a caller that catches it sees the
allocator exactly as it was (tests compare snapshots before and after).
"""

from __future__ import annotations


class VmapError(Exception):
    """Base of every error the allocator raises on purpose."""


class InvalidRequest(VmapError, ValueError):
    """A request the kernel would reject before touching any tree (``-EINVAL`` / BUG_ON)."""


class InvalidSize(InvalidRequest):
    pass


class InvalidAlign(InvalidRequest):
    pass


class InvalidRange(InvalidRequest):
    pass


class UnknownAddress(VmapError, KeyError):
    """``vfree`` of an address that is not the start of a busy area."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "unknown address"


class AllocationFailed(VmapError, MemoryError):
    """No space after purging and retrying: the kernel's "vmap allocation ... failed"."""


class InvariantViolation(VmapError, AssertionError):
    """An internal invariant does not hold; ``invariant`` names which one."""

    def __init__(self, invariant: str, detail: str) -> None:
        super().__init__(f"invariant '{invariant}' broken: {detail}")
        self.invariant = invariant
        self.detail = detail
