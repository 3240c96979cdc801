"""The interface every design implements, and what all designs share.

A design is one locking scheme of the vmap-area allocator.  All designs offer the same
operations (``alloc``, ``free``, ``find``, ``purge``) with the same argument checks and errors,
the same introspection (``snapshot``, ``check_invariants``) and declare which lock protects each
invariant, so every command of the checker works on every design, users' own included.

Ownership is explicit: between two critical sections an area can be in a thread's hands (taken
out of one structure, not yet put in the next).  Designs record that with ``_hand_take`` and
``_hand_drop`` so that the snapshot is a complete ownership map at every scheduling point and
conservation can be checked mid-operation, not only at rest.

Relies on: ``impl.runtime`` (the seam) and ``impl.intervals``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from ..config import VmapConfig
from ..errors import InvalidAlign, InvalidRange, InvalidSize, InvariantViolation
from ..intervals import MASK64, is_power_of_2
from ..runtime import Lock, LockKind, Runtime

Range = tuple[int, int]

# Owner kinds of the ownership map; a snapshot key is "kind" or "kind:where".
OWNER_KINDS = ("free", "busy", "lazy", "pool", "cache", "hand")


@dataclass(frozen=True)
class Snapshot:
    """Who owns what: structure name -> its areas in address order, plus counters.

    Keys are ``kind`` or ``kind:where`` with kind one of ``OWNER_KINDS`` (``busy:node1``,
    ``pool:node0:2``, ``hand:7``).  Equal snapshots mean equal allocator states as far as a user
    can observe them; tests compare them before and after a rejected request.
    """

    areas: Mapping[str, tuple[Range, ...]]
    counters: Mapping[str, int] = field(default_factory=dict)

    def by_kind(self, kind: str) -> list[Range]:
        out: list[Range] = []
        for key, ranges in self.areas.items():
            if key.split(":", 1)[0] == kind:
                out.extend(ranges)
        return sorted(out)

    def owner_of(self, addr: int) -> str | None:
        for key, ranges in self.areas.items():
            for s, e in ranges:
                if s <= addr < e:
                    return key
        return None

    def to_json(self) -> dict[str, object]:
        return {"areas": {k: [[hex(s), hex(e)] for s, e in v] for k, v in self.areas.items()},
                "counters": dict(self.counters)}


@dataclass(frozen=True)
class InvariantCheck:
    """An invariant and the locks that must all be free for it to be checkable."""

    name: str
    locks: tuple[Lock, ...]
    check: Callable[[], None]


class VmapDesign(abc.ABC):
    """Base of every design.  Subclasses implement the ``_``-prefixed operations; the public
    ones validate arguments first so that a rejected request changes nothing."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self, runtime: Runtime, config: VmapConfig | None = None) -> None:
        self.rt = runtime
        self.config = config if config is not None else VmapConfig()
        self.page_size = self.config.page_size
        self.vmalloc_start = self.config.start
        self.vmalloc_end = self.config.end
        self._hands: dict[int, set[Range]] = {}
        self._checks: list[InvariantCheck] = []
        self._locks: list[Lock] = []

    def _new_lock(self, name: str, lock_class: str | None = None,
                  kind: LockKind = LockKind.SPIN) -> Lock:
        """Take a lock from the runtime and remember it (for quiescence and lock listings)."""
        lock = self.rt.lock(name, lock_class, kind)
        self._locks.append(lock)
        return lock

    # ----------------------------------------------------------------- public operations
    def alloc(self, size: int, align: int | None = None,
              vstart: int | None = None, vend: int | None = None) -> int:
        """Allocate ``size`` bytes aligned to ``align`` inside ``[vstart, vend)``; return the
        start address.  Raises ``AllocationFailed`` after a purge and retry."""
        align = self.page_size if align is None else align
        vstart = self.vmalloc_start if vstart is None else vstart
        vend = self.vmalloc_end if vend is None else vend
        self.validate_alloc(size, align, vstart, vend)
        return self._alloc(size, align, vstart, vend)

    def free(self, addr: int) -> None:
        """``vfree``: unlink the busy area starting at ``addr`` and free it lazily."""
        self._free(addr)

    def find(self, addr: int) -> Range | None:
        """``find_vmap_area``: the busy area containing ``addr``, or None."""
        return self._find(addr)

    def purge(self) -> None:
        """Purge every lazily freed area back to the free space (``vm_unmap_aliases``-style)."""
        self._purge()

    @abc.abstractmethod
    def _alloc(self, size: int, align: int, vstart: int, vend: int) -> int: ...

    @abc.abstractmethod
    def _free(self, addr: int) -> None: ...

    @abc.abstractmethod
    def _find(self, addr: int) -> Range | None: ...

    @abc.abstractmethod
    def _purge(self) -> None: ...

    @abc.abstractmethod
    def snapshot(self) -> Snapshot:
        """The ownership map.  Consistent only when no lock of the design is held."""

    # ----------------------------------------------------------------- validation
    def validate_alloc(self, size: int, align: int, vstart: int, vend: int) -> None:
        if not isinstance(size, int) or size <= 0:
            raise InvalidSize(f"invalid size {size!r}: must be a positive number of bytes")
        if size > MASK64:
            raise InvalidSize(f"invalid size {size:#x}: larger than the 64-bit address space")
        if size % self.page_size:
            raise InvalidSize(f"invalid size {size:#x}: not a multiple of PAGE_SIZE "
                              f"({self.page_size:#x})")
        if not isinstance(align, int) or not is_power_of_2(align) or align > 1 << 63:
            raise InvalidAlign(f"invalid alignment {align!r}: must be a power of two")
        if not 0 <= vstart <= MASK64 or not 0 <= vend <= 1 << 64:
            raise InvalidRange(f"invalid range [{vstart:#x}, {vend:#x}): outside 64 bits")
        if vstart >= vend:
            kind = "empty" if vstart == vend else "inverted"
            raise InvalidRange(f"invalid range [{vstart:#x}, {vend:#x}): {kind}")

    # ----------------------------------------------------------------- areas in hand
    def _hand_take(self, r: Range) -> None:
        key = self.rt.thread_key()
        held = self._hands.get(key)
        if held is None:
            self._hands[key] = {r}
        else:
            held.add(r)

    def _hand_drop(self, r: Range) -> None:
        key = self.rt.thread_key()
        held = self._hands[key]
        held.remove(r)
        if not held:
            del self._hands[key]

    def _hand_areas(self) -> dict[str, tuple[Range, ...]]:
        return {f"hand:{k}": tuple(sorted(v)) for k, v in list(self._hands.items()) if v}

    # ----------------------------------------------------------------- invariants
    def _register_check(self, name: str, locks: Iterable[Lock],
                        check: Callable[[], None]) -> None:
        self._checks.append(InvariantCheck(name, tuple(locks), check))

    def invariant_checks(self) -> list[InvariantCheck]:
        """Per-structure invariants with the locks that protect them; the model checker runs
        each one whenever all its locks are free.  Conservation is added by the base."""
        return [*self._checks,
                InvariantCheck("conservation", tuple(self.all_locks()), self.check_conservation)]

    def all_locks(self) -> list[Lock]:
        """Every lock the design created through ``_new_lock``."""
        return list(self._locks)

    def check_invariants(self, at_rest: bool = True) -> None:
        """Run every invariant; ``at_rest`` also demands that no area is in anyone's hands and
        that the counters match the structures (no operation in flight)."""
        for c in self.invariant_checks():
            c.check()
        if at_rest:
            if any(self._hands.values()):
                raise InvariantViolation("at-rest", f"areas still in hand: {self._hand_areas()}")
            self.check_at_rest()

    def check_at_rest(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Invariants that hold only with no operation in flight (counters).  Override."""

    def check_conservation(self) -> None:
        """No address has two owners and, with areas in hand counted, every address of the
        managed range has one: nothing is lost, nothing is made up."""
        snap = self.snapshot()
        items: list[tuple[int, int, str]] = []
        for key, ranges in snap.areas.items():
            for s, e in ranges:
                if not s < e:
                    raise InvariantViolation("well-formed", f"{key} holds empty area [{s:#x}, {e:#x})")
                items.append((s, e, key))
        items.sort()
        cursor = self.vmalloc_start
        prev_key = "start of range"
        for s, e, key in items:
            if s < cursor:
                raise InvariantViolation(
                    "single-owner",
                    f"[{s:#x}, {e:#x}) in {key} overlaps an area of {prev_key} ending at {cursor:#x}")
            if s > cursor:
                raise InvariantViolation(
                    "conservation", f"[{cursor:#x}, {s:#x}) is owned by nothing (lost)")
            cursor, prev_key = e, key
        if cursor != self.vmalloc_end:
            raise InvariantViolation(
                "conservation", f"[{cursor:#x}, {self.vmalloc_end:#x}) is owned by nothing (lost)")

    def pages(self, r: Range) -> int:
        return (r[1] - r[0]) // self.page_size


def check_sorted_disjoint(name: str, ranges: Iterable[Range]) -> None:
    prev_end = -1
    for s, e in ranges:
        if s >= e:
            raise InvariantViolation(name, f"empty area [{s:#x}, {e:#x})")
        if s < prev_end:
            raise InvariantViolation(name, f"area [{s:#x}, {e:#x}) overlaps its predecessor")
        prev_end = e
