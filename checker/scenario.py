"""Scenarios: what the model threads run, and the parameters of the allocator they run it on.

A scenario is a tuple of ``spec.program.ThreadProgram`` (per-thread operation lists, each
thread pinned to a CPU) plus a ``VmapConfig``.  ``default_scenario`` builds the one behind
``--threads/--ops/--pages/--lazy-max/--cpus``; ``load_scenario`` reads a TOML file whose
operations are written as the programs print them (``a = alloc(2 align=2 range=0..8)``,
``free(a)``, ``find(a)``, ``purge()``).  Every mistake in a file is reported as a
``ScenarioError`` naming the field, before anything runs.

Relies on ``spec.program`` and ``impl.config``; used by the model checker, the spec explorer
and replay (a trace file embeds its scenario as JSON).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from impl.config import PAGE_SIZE, VmapConfig
from impl.intervals import is_power_of_2
from spec.program import Alloc, Find, Free, Op, Purge, ThreadProgram

# Defaults of the default scenario.  Small enough to search exhaustively, tight enough that
# the interesting paths are reachable at every size: the range (``default_pages``) is too small
# for every thread to hold its largest area while lazily freed areas wait for a purge, so an
# allocation can fail, purge under the mutex and retry (and fail for good); the drain threshold
# (``default_lazy_max``) is below what the threads free, so the drain worker runs.  With two
# threads and one operation each (one allocates 1 page, the other 2): 2 pages, threshold 1.
DEFAULT_THREADS = 2
DEFAULT_OPS = 1
DEFAULT_CPUS = 2
DEFAULT_SIZES: tuple[int, ...] = (1, 2)


def default_pages(threads: int, ops: int) -> int:
    """``threads + ops - 1``: 2 pages for 2x1, 3 for 2x2, 4 for 3x2."""
    return max(threads + ops - 1, max(DEFAULT_SIZES))


def default_lazy_max(threads: int, ops: int) -> int:
    """``threads + ops - 2``: one page below the default range."""
    return max(threads + ops - 2, 0)


DEFAULT_PAGES = default_pages(DEFAULT_THREADS, DEFAULT_OPS)
DEFAULT_LAZY_MAX = default_lazy_max(DEFAULT_THREADS, DEFAULT_OPS)


class ScenarioError(ValueError):
    """A scenario that cannot run; the message names the offending field."""


@dataclass(frozen=True)
class Scenario:
    programs: tuple[ThreadProgram, ...]
    config: VmapConfig = field(default_factory=VmapConfig)
    name: str = "custom"
    description: str = ""

    @property
    def threads(self) -> int:
        return len(self.programs)

    def summary(self) -> str:
        c = self.config
        return (f"{self.name}: {self.threads} threads, {c.pages} pages, "
                f"lazy_max {c.lazy_max_pages}, {c.nr_cpus} cpus")

    def describe(self) -> list[str]:
        return [f"T{i} {p}" for i, p in enumerate(self.programs)]

    def to_json(self) -> dict[str, Any]:
        c = self.config
        cfg: dict[str, Any] = {"pages": c.pages, "page_size": c.page_size, "base": c.base,
                               "cpus": c.nr_cpus, "zone_pages": c.zone_pages}
        if c.lazy_max is not None:
            cfg["lazy_max"] = c.lazy_max
        if c.nr_nodes is not None:
            cfg["nr_nodes"] = c.nr_nodes
        if c.extra:
            cfg["extra"] = dict(c.extra)
        return {"name": self.name, "description": self.description, "config": cfg,
                "threads": [{"cpu": p.cpu, "ops": [str(op) for op in p.ops]}
                            for p in self.programs]}

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str = "scenario") -> Scenario:
        return _build(data, source)


def default_programs(threads: int, ops: int, cpus: int,
                     sizes: tuple[int, ...]) -> tuple[ThreadProgram, ...]:
    """Thread t, for k in 0..ops-1: ``a<k> = alloc(sizes[(t + k) % len(sizes)])``, then
    ``free(a<k>)``; thread t runs on CPU ``t % cpus``.  Starting each thread at a different
    size makes even one operation per thread mix sizes (so a range can run out)."""
    programs = []
    for t in range(threads):
        body: list[Op] = []
        for k in range(ops):
            slot = f"a{k}"
            body.append(Alloc(sizes[(t + k) % len(sizes)], slot))
            body.append(Free(slot))
        programs.append(ThreadProgram(cpu=t % cpus, ops=tuple(body)))
    return tuple(programs)


def default_scenario(threads: int = DEFAULT_THREADS, ops: int = DEFAULT_OPS,
                     pages: int | None = None, lazy_max: int | None = None,
                     cpus: int = DEFAULT_CPUS,
                     sizes: tuple[int, ...] = DEFAULT_SIZES) -> Scenario:
    """Each thread ``ops`` times allocates a size from ``sizes`` and frees it
    (``default_programs``); ``pages`` and ``lazy_max`` default to ``default_pages`` and
    ``default_lazy_max`` of the shape."""
    if pages is None:
        pages = default_pages(threads, ops)
    if lazy_max is None:
        lazy_max = default_lazy_max(threads, ops)
    for label, value in (("threads", threads), ("ops", ops), ("pages", pages), ("cpus", cpus)):
        if value < 1:
            raise ScenarioError(f"{label}: must be at least 1, got {value}")
    if lazy_max < 0:
        raise ScenarioError(f"lazy_max: must not be negative, got {lazy_max}")
    if not sizes or any(s < 1 for s in sizes):
        raise ScenarioError(f"sizes: must be positive page counts, got {sizes}")
    if max(sizes) > pages:
        raise ScenarioError(f"sizes: {max(sizes)} pages do not fit in a range of {pages} pages")
    config = VmapConfig(pages=pages, nr_cpus=cpus, lazy_max=lazy_max)
    name = f"default-{threads}x{ops}"
    return Scenario(default_programs(threads, ops, cpus, tuple(sizes)), config, name,
                    f"{threads} threads, each {ops} times: allocate {'/'.join(map(str, sizes))} "
                    f"pages then free")


def load_scenario(path: str | Path) -> Scenario:
    """Read a TOML scenario; a ``ScenarioError`` names the bad field."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario file {p}: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{p}: not valid TOML: {exc}") from exc
    data.setdefault("name", p.stem)
    return _build(data, str(p))


# ---------------------------------------------------------------------- parsing
_SLOT = r"[A-Za-z_][A-Za-z0-9_]*"
_ALLOC = re.compile(
    rf"^\s*(?P<slot>{_SLOT})\s*=\s*alloc\(\s*(?P<pages>-?\d+)"
    r"(?P<rest>(?:\s*,?\s*\w+\s*=\s*[^,\s)]+)*)\s*\)\s*$")
_KWARG = re.compile(r"(\w+)\s*=\s*([^,\s)]+)")
_FREE = re.compile(rf"^\s*free\(\s*(?P<slot>{_SLOT})\s*\)\s*$")
_FIND = re.compile(rf"^\s*find\(\s*(?P<slot>{_SLOT})\s*\)\s*$")
_PURGE = re.compile(r"^\s*purge\(\s*\)\s*$")

_TOP_KEYS = {"name", "description", "config", "threads"}
_CONFIG_KEYS = {"pages", "page_size", "base", "cpus", "lazy_max", "nr_nodes", "zone_pages",
                "extra"}
_THREAD_KEYS = {"cpu", "ops"}


def parse_op(text: str, where: str, pages: int) -> Op:
    """One operation as the programs print it."""
    if not isinstance(text, str):
        raise ScenarioError(f"{where}: expected a string such as \"a = alloc(1)\", got {text!r}")
    m = _ALLOC.match(text)
    if m:
        n = int(m["pages"])
        if n < 1:
            raise ScenarioError(f"{where}: {text!r}: size must be at least 1 page")
        align, rng = 1, None
        for key, value in _KWARG.findall(m["rest"]):
            if key == "align":
                if not value.isdigit() or not is_power_of_2(int(value)):
                    raise ScenarioError(f"{where}: {text!r}: align must be a power of two "
                                        f"(in pages), got {value}")
                align = int(value)
            elif key == "range":
                parts = value.split("..")
                if len(parts) != 2 or not all(x.isdigit() for x in parts):
                    raise ScenarioError(f"{where}: {text!r}: range must be START..END in "
                                        f"pages, got {value}")
                lo, hi = int(parts[0]), int(parts[1])
                if not lo < hi <= pages:
                    raise ScenarioError(f"{where}: {text!r}: range {lo}..{hi} must satisfy "
                                        f"start < end <= {pages} (config.pages)")
                if hi - lo < n:
                    raise ScenarioError(f"{where}: {text!r}: range {lo}..{hi} is smaller "
                                        f"than {n} pages")
                rng = (lo, hi)
            else:
                raise ScenarioError(f"{where}: {text!r}: unknown argument {key!r} "
                                    f"(known: align, range)")
        if n > pages:
            raise ScenarioError(f"{where}: {text!r}: {n} pages do not fit in config.pages={pages}")
        return Alloc(n, m["slot"], align, rng)
    m = _FREE.match(text)
    if m:
        return Free(m["slot"])
    m = _FIND.match(text)
    if m:
        return Find(m["slot"])
    if _PURGE.match(text):
        return Purge()
    raise ScenarioError(f"{where}: cannot parse {text!r}; write \"a = alloc(PAGES [align=N] "
                        f"[range=LO..HI])\", \"free(a)\", \"find(a)\" or \"purge()\"")


def _int_field(table: dict[str, Any], key: str, where: str, minimum: int | None = None) -> int:
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(f"{where}.{key}: must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ScenarioError(f"{where}.{key}: must be at least {minimum}, got {value}")
    return value


def _unknown(table: dict[str, Any], known: set[str], where: str) -> None:
    extra = sorted(set(table) - known)
    if extra:
        raise ScenarioError(f"{where}: unknown field {extra[0]!r} (known: {', '.join(sorted(known))})")


def _build(data: dict[str, Any], source: str) -> Scenario:
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: expected a table at the top level")
    _unknown(data, _TOP_KEYS, source)
    cfg_t = data.get("config", {})
    if not isinstance(cfg_t, dict):
        raise ScenarioError(f"{source}: config: must be a table")
    _unknown(cfg_t, _CONFIG_KEYS, f"{source}: config")
    kwargs: dict[str, Any] = {}
    w = f"{source}: config"
    if "pages" in cfg_t:
        kwargs["pages"] = _int_field(cfg_t, "pages", w, 1)
    else:
        kwargs["pages"] = DEFAULT_PAGES
    if "page_size" in cfg_t:
        ps = _int_field(cfg_t, "page_size", w, 1)
        if not is_power_of_2(ps):
            raise ScenarioError(f"{w}.page_size: must be a power of two, got {ps}")
        kwargs["page_size"] = ps
    if "base" in cfg_t:
        kwargs["base"] = _int_field(cfg_t, "base", w, 0)
        if kwargs["base"] % kwargs.get("page_size", PAGE_SIZE):
            raise ScenarioError(f"{w}.base: {kwargs['base']:#x} is not page aligned")
    kwargs["nr_cpus"] = _int_field(cfg_t, "cpus", w, 1) if "cpus" in cfg_t else DEFAULT_CPUS
    if "lazy_max" in cfg_t:
        kwargs["lazy_max"] = _int_field(cfg_t, "lazy_max", w, 0)
    if "nr_nodes" in cfg_t:
        n = _int_field(cfg_t, "nr_nodes", w, 1)
        if n > 255:
            raise ScenarioError(f"{w}.nr_nodes: must be in 1..255, got {n}")
        kwargs["nr_nodes"] = n
    if "zone_pages" in cfg_t:
        kwargs["zone_pages"] = _int_field(cfg_t, "zone_pages", w, 1)
    if "extra" in cfg_t:
        extra = cfg_t["extra"]
        if not isinstance(extra, dict):
            raise ScenarioError(f"{w}.extra: must be a table of integers")
        for k in extra:
            _int_field(extra, k, f"{w}.extra")
        kwargs["extra"] = tuple(sorted(extra.items()))
    try:
        config = VmapConfig(**kwargs)
    except ValueError as exc:
        raise ScenarioError(f"{w}: {exc}") from exc

    threads_t = data.get("threads")
    if threads_t is None:
        raise ScenarioError(f"{source}: threads: missing; add [[threads]] tables with cpu and ops")
    if not isinstance(threads_t, list) or not threads_t:
        raise ScenarioError(f"{source}: threads: must be a non-empty array of tables")
    programs = []
    for i, th in enumerate(threads_t):
        where = f"{source}: threads[{i}]"
        if not isinstance(th, dict):
            raise ScenarioError(f"{where}: must be a table with cpu and ops")
        _unknown(th, _THREAD_KEYS, where)
        cpu = _int_field(th, "cpu", where, 0) if "cpu" in th else i % config.nr_cpus
        if cpu >= config.nr_cpus:
            raise ScenarioError(f"{where}.cpu: {cpu} is not below config.cpus={config.nr_cpus}")
        ops_t = th.get("ops")
        if not isinstance(ops_t, list) or not ops_t:
            raise ScenarioError(f"{where}.ops: must be a non-empty array of operations")
        ops: list[Op] = []
        live: dict[str, bool] = {}
        for j, text in enumerate(ops_t):
            op_where = f"{where}.ops[{j}]"
            op = parse_op(text, op_where, config.pages)
            if isinstance(op, Alloc):
                if live.get(op.slot):
                    raise ScenarioError(f"{op_where}: {text!r}: slot {op.slot!r} still holds "
                                        f"an area; free it first or use another name")
                live[op.slot] = True
            elif isinstance(op, (Free, Find)):
                if op.slot not in live:
                    raise ScenarioError(f"{op_where}: {text!r}: slot {op.slot!r} is not "
                                        f"allocated earlier in this thread")
                if not live[op.slot]:
                    raise ScenarioError(f"{op_where}: {text!r}: slot {op.slot!r} is already freed")
                if isinstance(op, Free):
                    live[op.slot] = False
            ops.append(op)
        programs.append(ThreadProgram(cpu, tuple(ops)))
    name = data.get("name", "custom")
    desc = data.get("description", "")
    if not isinstance(name, str) or not isinstance(desc, str):
        raise ScenarioError(f"{source}: name and description must be strings")
    return Scenario(tuple(programs), config, name, desc)
