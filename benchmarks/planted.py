"""The two bugs planted in the ``global`` design for the side-by-side with frontrun.

Both are entries of the mutant catalog (``impl/designs/mutants/global_mutants.py``), so the
comparison runs exactly the code that ``vmapcheck mutants`` kills:

- ``global-abba``: ``find()`` reads the purge tree under ``vmap_area_lock`` (as vmallocinfo's
  ``show_purge_info`` nests ``purge_vmap_area_lock`` inside it), while the lazy free path checks
  the busy tree under ``purge_vmap_area_lock``.  Two threads that find and free can deadlock.
- ``global-lazy-nonatomic``: ``vmap_lazy_nr`` is a plain shared integer updated by a read and a
  write instead of ``atomic_long_add_return``; two concurrent frees can lose one update.

Both scenarios keep ``lazy_max`` above what the frees add, so no drain runs: the comparison is
about the bug, not about the worker.  Relies on ``impl`` and ``spec.program`` only.
"""

from __future__ import annotations

from impl.config import VmapConfig
from impl.designs.global_ import GlobalDesign
from impl.designs.mutants.global_mutants import GlobalAbba, GlobalLazyNonAtomic
from spec.program import Alloc, Find, Free, Op, ThreadProgram


def _programs(body: tuple[Op, ...], threads: int) -> tuple[ThreadProgram, ...]:
    return tuple(ThreadProgram(t % 2, body) for t in range(threads))


# name -> (design, per-thread program, parameters); both tools run exactly these.
BUGS: dict[str, tuple[type[GlobalDesign], tuple[ThreadProgram, ...], VmapConfig]] = {
    "lock-inversion": (GlobalAbba,
                       _programs((Alloc(1, "a"), Find("a"), Free("a")), 2),
                       VmapConfig(pages=4, nr_cpus=2, lazy_max=8)),
    "lazy-lost-update": (GlobalLazyNonAtomic,
                         _programs((Alloc(1, "a"), Free("a")), 2),
                         VmapConfig(pages=4, nr_cpus=2, lazy_max=8)),
}
