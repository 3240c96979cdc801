"""Seeded bugs in the ``nodes`` design (Linux 6.9+).

Each class overrides the one method that carries its bug; everything else is the correct design.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...intervals import decode_vn_id, size_to_va_pool_idx
from ...rbtree import VmapArea
from ..base import Range
from ..nodes import NodesDesign

# Small zones and two nodes, so that areas of two pages span two zones of different nodes.
_SPANNING = {"pages": 8, "lazy_max": 1, "cpus": 2, "nr_nodes": 2, "zone_pages": 1}


class NodesMutant(NodesDesign):
    mutant_of: ClassVar[str] = "nodes"
    bug: ClassVar[str] = ""
    source: ClassVar[str] = ""
    expected: ClassVar[str] = ""
    catalog: ClassVar[dict[str, Any]] = {}


class NodesBusyEndNode(NodesMutant):
    name = "nodes-busy-end-node"
    description = "a busy area is inserted in the node of its end address, not of its start"
    bug = ("insert_vmap_area picks addr_to_node(va_end) instead of addr_to_node(va_start): "
           "the area lives where no lookup of its start looks first")
    source = "classic off-by-one in the address-to-node mapping (reference section 3.4, step 7)"
    expected = "invariant"
    catalog = {"threads": [["a = alloc(1)", "free(a)"]] * 2, "config": _SPANNING}

    def insert_busy(self, va: VmapArea) -> int:
        i = self.addr_to_shard(va.va_end)
        with self.busy_lock[i]:
            self.busy_root[i].insert(va)
            self._hand_drop((va.va_start, va.va_end))
        return i


class NodesLookupOwnNode(NodesMutant):
    name = "nodes-lookup-own-node"
    description = "find_vmap_area looks only in the node its address maps to"
    bug = ("the lookup does not scan the other nodes: an interior address of an area larger "
           "than a zone maps to another node, and the area is not found")
    source = "the corner case Rezki kept the all-node scan for (reference section 3.5)"
    expected = "invariant"
    catalog = {"threads": [["a = alloc(2)", "find(a)", "free(a)"]], "config": _SPANNING}

    def _find(self, addr: int) -> Range | None:
        i = self.addr_to_shard(addr)
        with self.busy_lock[i]:
            va = self.busy_root[i].find_containing(addr)
            return (va.va_start, va.va_end) if va is not None else None


class NodesPoolDouble(NodesMutant):
    name = "nodes-pool-double"
    description = "a purged area is put back both in its node's pool and in the global free tree"
    bug = ("purge_vmap_node adds a lazily freed area to its node's pool and then also hands it "
           "to reclaim_list_global: two owners of one range")
    source = "classic double ownership (reference section 3.6, purge_vmap_node)"
    expected = "invariant"
    catalog = {"threads": [["a = alloc(1)", "free(a)"]] * 2,
               "config": {"pages": 4, "lazy_max": 0, "cpus": 2, "nr_nodes": 2}}

    def purge_vmap_node(self, i: int, vas: list[VmapArea], skip_populate: bool) -> None:
        to_global: list[VmapArea] = []
        n = self.nr_vmap_nodes
        for va in vas:
            self.vmap_lazy_nr.sub_return((va.va_end - va.va_start) // self.page_size)
            idx = size_to_va_pool_idx(va.va_end - va.va_start, self.page_size)
            if not skip_populate and decode_vn_id(va.flags, n) < n and idx is not None:
                with self.pool_lock[i]:
                    self.pool[i].add_va(idx, VmapArea(va.va_start, va.va_end, va.flags))
            to_global.append(va)  # the bug: also given back to the global free tree
        self.reclaim_list_global(to_global)
