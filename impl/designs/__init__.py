"""The locking designs of the allocator, found by name.

Every module under this package (mutants included) is scanned for ``VmapDesign`` subclasses
with a ``name``; adding a design is adding a module, nothing else to edit.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import VmapDesign

_registry: dict[str, type[VmapDesign]] | None = None


def _scan() -> dict[str, type[VmapDesign]]:
    found: dict[str, type[VmapDesign]] = {}
    for info in pkgutil.walk_packages(__path__, prefix=__name__ + "."):
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if (isinstance(obj, type) and issubclass(obj, VmapDesign) and vars(obj).get("name")
                    and obj.__module__ == module.__name__):
                if obj.name in found and found[obj.name] is not obj:
                    raise RuntimeError(f"two designs are named {obj.name!r}")
                found[obj.name] = obj
    return found


def builtin_designs() -> dict[str, type[VmapDesign]]:
    """Name -> class of every design that ships with vmapcheck (correct ones and mutants)."""
    global _registry
    if _registry is None:
        _registry = _scan()
    return dict(_registry)


def get_design(name: str) -> type[VmapDesign]:
    designs = builtin_designs()
    if name not in designs:
        raise KeyError(name)
    return designs[name]


__all__ = ["VmapDesign", "builtin_designs", "get_design"]
