"""Seeded bugs in the ``percpu`` design (the LSFMM 2023 proposal).

Each class overrides the one method that carries its bug; everything else is the correct design.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...freespace import merge_or_add_vmap_area
from ...rbtree import VmapArea
from ..base import Range
from ..percpu import PercpuDesign


class PercpuMutant(PercpuDesign):
    mutant_of: ClassVar[str] = "percpu"
    bug: ClassVar[str] = ""
    source: ClassVar[str] = ""
    expected: ClassVar[str] = ""
    catalog: ClassVar[dict[str, Any]] = {}


class PercpuLazyUnlocked(PercpuMutant):
    name = "percpu-lazy-unlocked"
    description = "a freed area is merged into its zone's lazy tree without the zone's lazy lock"
    bug = ("free_vmap_area_noflush inserts into zone[z].lazy without zone[z].lazy.lock, while "
           "the drain detaches the same tree under that lock")
    source = "classic missing lock on a per-zone structure shared with the drain worker"
    expected = "race"
    catalog = {"threads": 2, "ops": 1}

    def free_vmap_area_noflush(self, va: VmapArea) -> None:
        nr_lazy = self.vmap_lazy_nr.add_return((va.va_end - va.va_start) // self.page_size)
        z = self.addr_to_shard(va.va_start)
        merge_or_add_vmap_area(self.lazy_root[z], va.va_start, va.va_end)
        self._hand_drop((va.va_start, va.va_end))
        if nr_lazy > self.lazy_max:
            self.drain_vmap_work.schedule()


class PercpuBusyThisCpu(PercpuMutant):
    name = "percpu-busy-this-cpu"
    description = "a busy area is kept in the allocating CPU's zone instead of its address's zone"
    bug = ("insert_vmap_area uses this CPU's zone; free maps the address to its zone and looks "
           "there first: the placement rule that makes per-zone lookup work is broken")
    source = "classic per-CPU cache mistake: ownership by CPU where lookup is by address"
    expected = "invariant"
    catalog = {"threads": 2, "ops": 1, "cpus": 2}

    def insert_busy(self, va: VmapArea) -> int:
        i = self.rt.cpu_id() % self.nr_shards
        with self.busy_lock[i]:
            self.busy_root[i].insert(va)
            self._hand_drop((va.va_start, va.va_end))
        return i


class PercpuLookupOwnZone(PercpuMutant):
    name = "percpu-lookup-own-zone"
    description = "find_vmap_area looks only in the zone its address maps to (series v1)"
    bug = ("the lookup does not scan the other zones: an area that starts in one zone and "
           "crosses into the next is not found from its interior")
    source = ("the v1 series' addr_to_cvz lookup, later replaced by the all-node scan of 6.9 "
              "(reference section 3.5)")
    expected = "invariant"
    catalog = {"threads": [["a = alloc(2)", "find(a)", "free(a)"]],
               "config": {"pages": 8, "lazy_max": 1, "cpus": 2, "zone_pages": 1}}

    def _find(self, addr: int) -> Range | None:
        z = self.addr_to_shard(addr)
        with self.busy_lock[z]:
            va = self.busy_root[z].find_containing(addr)
            return (va.va_start, va.va_end) if va is not None else None
