"""User-design examples for ``--design tests/designs/abba.py:Class``: an ABBA deadlock and its fix.

A small allocator written the way a user would write one: a page-granular free list under
``free_lock`` and a busy map under ``busy_lock``, both spinlocks.  ``AbbaDesign`` allocates with
``busy_lock`` nested inside ``free_lock`` but frees with ``free_lock`` nested inside
``busy_lock``: one thread allocating while another frees can each hold one lock and wait for
the other.  ``AbbaFixedDesign`` nests them the same way on both paths.

Only ``impl`` is imported, as for any user design.
"""

from __future__ import annotations

from impl.config import VmapConfig
from impl.designs.base import Range, Snapshot, VmapDesign, check_sorted_disjoint
from impl.errors import AllocationFailed, InvariantViolation, UnknownAddress
from impl.intervals import ALIGN
from impl.runtime import Runtime


class ListAllocator(VmapDesign):
    """First fit over a sorted free list; freed areas go straight back (no lazy list)."""

    def __init__(self, runtime: Runtime, config: VmapConfig | None = None) -> None:
        super().__init__(runtime, config)
        self.free_lock = self._new_lock("free_lock")
        self.busy_lock = self._new_lock("busy_lock")
        self.free_list: list[Range] = [(self.vmalloc_start, self.vmalloc_end)]
        self.busy: dict[int, int] = {}
        self._register_check("free list", [self.free_lock], self.check_free_list)
        self._register_check("busy map", [self.busy_lock],
                             lambda: check_sorted_disjoint("busy map", sorted(self.busy.items())))

    # the two critical sections every path is made of
    def carve(self, size: int, align: int, vstart: int, vend: int) -> int:
        for i, (s, e) in enumerate(self.free_list):
            nva = ALIGN(max(s, vstart), align)
            if nva + size <= min(e, vend):
                rest = [r for r in ((s, nva), (nva + size, e)) if r[0] < r[1]]
                self.free_list[i:i + 1] = rest
                return nva
        raise AllocationFailed(f"vmap allocation for size {size} failed")

    def give_back(self, area: Range) -> None:
        merged: list[Range] = []
        for r in sorted([*self.free_list, area]):
            if merged and merged[-1][1] == r[0]:
                merged[-1] = (merged[-1][0], r[1])
            else:
                merged.append(r)
        self.free_list = merged

    def _alloc(self, size: int, align: int, vstart: int, vend: int) -> int:
        with self.free_lock:
            with self.busy_lock:
                addr = self.carve(size, align, vstart, vend)
                self.busy[addr] = addr + size
        return addr

    def _free(self, addr: int) -> None:
        with self.busy_lock:
            end = self.busy.pop(addr, None)
            if end is None:
                raise UnknownAddress(f"Trying to vfree() nonexistent vm area ({addr:#x})")
            with self.free_lock:  # the inversion: free_lock inside busy_lock
                self.give_back((addr, end))

    def _find(self, addr: int) -> Range | None:
        with self.busy_lock:
            for s, e in self.busy.items():
                if s <= addr < e:
                    return (s, e)
        return None

    def _purge(self) -> None:
        pass  # nothing is freed lazily

    def snapshot(self) -> Snapshot:
        return Snapshot({"free": tuple(self.free_list), "busy": tuple(sorted(self.busy.items())),
                         **self._hand_areas()})

    def check_free_list(self) -> None:
        check_sorted_disjoint("free list", self.free_list)
        for a, b in zip(self.free_list, self.free_list[1:], strict=False):
            if a[1] == b[0]:
                raise InvariantViolation("free list: coalesced", f"{a} and {b} were not merged")


class AbbaDesign(ListAllocator):
    """alloc: free_lock -> busy_lock; free: busy_lock -> free_lock (ABBA)."""


class AbbaFixedDesign(ListAllocator):
    """The fix: free takes free_lock first too."""

    def _free(self, addr: int) -> None:
        with self.free_lock:
            with self.busy_lock:
                end = self.busy.pop(addr, None)
                if end is None:
                    raise UnknownAddress(f"Trying to vfree() nonexistent vm area ({addr:#x})")
                self.give_back((addr, end))
