"""A ``/proc/vmallocinfo`` reader for each design: walk the busy areas under the busy lock(s).

The kernel's seq_file iterator holds the locks across the walk (``s_start`` .. ``s_stop``):
up to 6.8 ``vmap_purge_lock`` then ``vmap_area_lock`` for the whole list, and on the last entry
``show_purge_info`` takes ``purge_vmap_area_lock`` nested inside; from 6.9 each node's
``busy.lock`` in turn, then each node's ``lazy.lock`` for the purge info.  A reader contends
with every allocation for as long as it walks, which is why it is part of a stress run.

The readers are written here against each design's public attributes, so the designs need no
extra method; a design (a user's one) may instead provide ``vmallocinfo()`` returning the busy
``(start, end)`` ranges, taking its own locks, and that is used first.  Each reader returns the
number of busy areas and their total size in bytes.

Relies on the attribute names of ``impl.designs.global_`` and of ``impl.sharded`` (``busy_lock[i]``,
``busy_root[i]``, ``lazy_lock[i]``, ``lazy_root[i]``: the per-node or per-zone structures of the
``nodes`` and ``percpu`` designs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from impl.designs import VmapDesign

Reader = Callable[[], tuple[int, int]]


class NoReader(LookupError):
    """The design offers nothing a reader can walk safely."""


def _walk(tree: Iterable[Any]) -> tuple[int, int]:
    n = total = 0
    for va in tree:
        n += 1
        total += va.va_end - va.va_start
    return n, total


def _global_reader(d: Any) -> Reader:
    """6.1-6.8: one busy list under ``vmap_area_lock``, inside ``vmap_purge_lock``."""

    def read() -> tuple[int, int]:
        with d.vmap_purge_lock, d.vmap_area_lock:
            n, total = _walk(d.vmap_area_root)
            # show_purge_info(): nested inside vmap_area_lock, as s_show does on the last entry.
            with d.purge_vmap_area_lock:
                _walk(d.purge_vmap_area_root)
        return n, total

    return read


def _per_structure_reader(busy: list[tuple[Any, Any]], lazy: list[tuple[Any, Any]]) -> Reader:
    """6.9 style: each node's (lock, tree) in turn, one lock at a time; no ``vmap_purge_lock``."""

    def read() -> tuple[int, int]:
        n = total = 0
        for lock, tree in busy:
            with lock:
                k, t = _walk(tree)
            n += k
            total += t
        for lock, tree in lazy:
            with lock:
                _walk(tree)
        return n, total

    return read


def _shard_pairs(d: Any, lock_attr: str, root_attr: str) -> list[tuple[Any, Any]] | None:
    """``(lock, root)`` per shard from parallel lists ``d.<lock_attr>`` / ``d.<root_attr>``."""
    locks, roots = getattr(d, lock_attr, None), getattr(d, root_attr, None)
    if not isinstance(locks, list) or not isinstance(roots, list) or len(locks) != len(roots):
        return None
    if not locks or not all(hasattr(r, "__iter__") for r in roots):
        return None
    return list(zip(locks, roots, strict=True))


def reader_for(design: VmapDesign) -> Reader:
    """The vmallocinfo walk for ``design``; ``NoReader`` if there is no safe way to walk it."""
    own = getattr(design, "vmallocinfo", None)
    if callable(own):
        def read_own() -> tuple[int, int]:
            n = total = 0
            for start, end in own():
                n += 1
                total += end - start
            return n, total
        return read_own
    d: Any = design
    if all(hasattr(d, a) for a in ("vmap_purge_lock", "vmap_area_lock", "vmap_area_root",
                                   "purge_vmap_area_lock", "purge_vmap_area_root")):
        return _global_reader(d)
    busy = _shard_pairs(d, "busy_lock", "busy_root")
    if busy is not None:
        return _per_structure_reader(busy, _shard_pairs(d, "lazy_lock", "lazy_root") or [])
    raise NoReader(f"design {design.name!r} has no busy structure a vmallocinfo reader knows "
                   f"how to walk; give it a vmallocinfo() method returning the busy ranges "
                   f"(taking its own locks)")
