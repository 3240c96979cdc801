"""Resolve ``--design`` values: a built-in name or ``path/to/file.py:ClassName``.

A user design file is loaded as a module of its own; it may import ``impl`` (the base class,
the trees, the arithmetic) like the built-in designs do.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from impl.designs import VmapDesign, builtin_designs


class DesignError(ValueError):
    """A ``--design`` value that names nothing loadable (a usage error, exit 2)."""


def resolve_design(spec: str) -> type[VmapDesign]:
    if ".py:" in spec:
        path_s, cls_name = spec.rsplit(":", 1)
        return load_design_file(Path(path_s), cls_name)
    designs = builtin_designs()
    if spec in designs:
        return designs[spec]
    known = ", ".join(sorted(designs))
    raise DesignError(f"unknown design {spec!r}; known designs: {known}; "
                      f"or give path/to/file.py:ClassName")


def load_design_file(path: Path, cls_name: str) -> type[VmapDesign]:
    if not path.is_file():
        raise DesignError(f"design file {path} does not exist")
    mod_name = f"vmapcheck_user_design_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise DesignError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's file: report, do not crash
        del sys.modules[mod_name]
        raise DesignError(f"loading {path} failed: {type(exc).__name__}: {exc}") from exc
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise DesignError(f"{path} has no class {cls_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, VmapDesign)):
        raise DesignError(f"{path}:{cls_name} is not a subclass of impl.designs.VmapDesign")
    if not cls.name:
        cls.name = f"{path.stem}:{cls_name}"
    return cls


def design_names(value: str) -> list[str]:
    """Split a comma-separated ``--design`` list (user files may contain no commas)."""
    return [v.strip() for v in value.split(",") if v.strip()]
