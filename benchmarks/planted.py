"""Two bugs planted in the ``global`` design, for the side-by-side with frontrun.

Each is the real 6.1-6.8 allocator with one method changed:

- ``GlobalLockInversion``: ``find()`` reads the purge tree under ``vmap_area_lock`` (as
  vmallocinfo's ``show_purge_info`` nests ``purge_vmap_area_lock`` inside it), while the lazy
  free path checks the busy tree under ``purge_vmap_area_lock``: ``vmap_area_lock`` ->
  ``purge_vmap_area_lock`` on one path, the reverse on the other.  Two threads that find and
  free can deadlock.
- ``GlobalLazyLostUpdate``: ``vmap_lazy_nr`` is a plain shared integer updated by a read and a
  write instead of ``atomic_long_add_return``; two concurrent frees can lose one update, and
  the counter no longer matches the pages on the lazy list.

Both scenarios keep ``lazy_max`` above what the frees add, so no drain runs: the comparison is
about the bug, not about the worker.  Relies on ``impl`` only.
"""

from __future__ import annotations

from impl.config import VmapConfig
from impl.designs.base import Range
from impl.designs.global_ import GlobalDesign
from impl.freespace import merge_or_add_vmap_area
from impl.runtime import Runtime, SharedCell
from spec.program import Alloc, Find, Free, Op, ThreadProgram


class GlobalLockInversion(GlobalDesign):
    name = "global-lock-inversion (planted)"
    description = "find nests vmap_area_lock -> purge_vmap_area_lock; lazy free nests the reverse"

    def _find(self, addr: int) -> Range | None:
        with self.vmap_area_lock:
            va = self.vmap_area_root.find_containing(addr)
            with self.purge_vmap_area_lock:  # show_purge_info()
                self.purge_vmap_area_root.ranges()
            return va.range if va is not None else None

    def free_vmap_area_noflush(self, area: Range) -> None:
        nr_lazy = self.add_lazy_nr(self.pages(area))
        with self.purge_vmap_area_lock:
            with self.vmap_area_lock:  # "is it really gone from the busy tree?"
                self.vmap_area_root.find_containing(area[0])
            merge_or_add_vmap_area(self.purge_vmap_area_root, *area)
            self._hand_drop(area)
        if nr_lazy > self.lazy_max:
            self.drain_vmap_work.schedule()


class GlobalLazyLostUpdate(GlobalDesign):
    name = "global-lazy-lost-update (planted)"
    description = "vmap_lazy_nr updated by a plain read and write"

    def __init__(self, runtime: Runtime, config: VmapConfig | None = None) -> None:
        super().__init__(runtime, config)
        self.lazy_cell = self.rt.shared("vmap_lazy_nr", SharedCell(0))

    def add_lazy_nr(self, pages: int) -> int:
        value = self.lazy_cell.get() + pages
        self.lazy_cell.put(value)
        return value

    def sub_lazy_nr(self, pages: int) -> int:
        value = self.lazy_cell.get() - pages
        self.lazy_cell.put(value)
        return value

    def lazy_nr(self) -> int:
        return self.lazy_cell.get()


def _programs(body: tuple[Op, ...], threads: int) -> tuple[ThreadProgram, ...]:
    return tuple(ThreadProgram(t % 2, body) for t in range(threads))


# name -> (design, per-thread program, parameters); both tools run exactly these.
BUGS: dict[str, tuple[type[GlobalDesign], tuple[ThreadProgram, ...], VmapConfig]] = {
    "lock-inversion": (GlobalLockInversion,
                       _programs((Alloc(1, "a"), Find("a"), Free("a")), 2),
                       VmapConfig(pages=4, nr_cpus=2, lazy_max=8)),
    "lazy-lost-update": (GlobalLazyLostUpdate,
                         _programs((Alloc(1, "a"), Free("a")), 2),
                         VmapConfig(pages=4, nr_cpus=2, lazy_max=8)),
}
