"""Protocol mutants of the specs, keyed by the name of the implementation mutant they mirror.

A protocol bug (a lock-order inversion, a missing lock, an area given two owners) is a bug of
the lock protocol itself, so it must show at spec level too, with a shortest counterexample:

- ``global-abba``: ``find`` nests ``vmap_area_lock -> purge_vmap_area_lock`` (as vmallocinfo's
  ``show_purge_info`` does) and the lazy insert of ``free`` nests them the other way (a
  "double-check it left the busy tree" under the purge lock): a deadlock.
- ``global-busy-unlocked``: ``free`` unlinks from the busy tree without ``vmap_area_lock``, the
  lock the spec declares for it: the unlocked access is itself the violation
  (``lock-protection``), found whether or not the scenario could also lose an update by it.
- ``nodes-pool-double``: ``purge_vmap_node`` puts an area in its node's pool and also sends it
  back to the global free tree (single owner).

Relies on the design specs (``spec.global_``, ``spec.nodes``).
"""

from __future__ import annotations

from .global_ import GlobalSpec
from .nodes import NodesSpec
from .protocol import Acquire, Instr, Release, Sec


class GlobalAbbaSpec(GlobalSpec):
    name = "global-abba"

    def lookup_section(self, slot: int) -> Sec:
        return Sec("find_vmap_area, then show_purge_info", (self.L_BUSY, self.L_PURGE),
                   self.lookup_body(slot))

    def lazy_insert(self) -> list[Instr]:
        return [
            Acquire(self.L_PURGE, "lazy insert"),
            Acquire(self.L_BUSY, "double-check the area left the busy tree"),
            Release(self.L_BUSY, self.to_lazy_body(), touches=(self.LAZY,)),
            Release(self.L_PURGE),
        ]


class GlobalBusyUnlockedSpec(GlobalSpec):
    name = "global-busy-unlocked"

    def unlink_section(self, slot: int) -> Sec:
        locked = super().unlink_section(slot)
        return Sec(locked.what, (), locked.body, locked.touches)


class NodesPoolDoubleSpec(NodesSpec):
    name = "nodes-pool-double"
    # purge_vmap_node pools an area and also queues it for the global free tree.
    pool_and_global = True


SPEC_MUTANTS: dict[str, type[GlobalSpec] | type[NodesSpec]] = {
    "global-abba": GlobalAbbaSpec,
    "global-busy-unlocked": GlobalBusyUnlockedSpec,
    "nodes-pool-double": NodesPoolDoubleSpec,
}
