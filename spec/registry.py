"""Which spec belongs to which design, and which ``sometimes`` properties a scenario must show.

A spec is found by name: the three designs' specs and the protocol mutants (``spec.mutants``,
keyed by the implementation mutant's name).  A ``sometimes`` property that never held over a
complete search is a finding (the spec rules out what it should allow) only when the scenario
could show it; the conditions below are simple sufficient shapes of the programs, so a
scenario too small to show a behaviour is not blamed for it (its properties are still listed
with their outcome).

Relies on the design specs and ``spec.program``.
"""

from __future__ import annotations

from .compile import Spec
from .global_ import GlobalSpec
from .mutants import SPEC_MUTANTS
from .nodes import NodesSpec
from .params import SpecParams
from .percpu import MIN_REQUESTS_PER_CHUNK, PercpuSpec
from .program import Alloc, Free, Purge

SPECS: dict[str, type[GlobalSpec]] = {
    "global": GlobalSpec,
    "nodes": NodesSpec,
    "percpu": PercpuSpec,
}


def known_specs() -> dict[str, type[GlobalSpec]]:
    """Every spec by name, mutants included."""
    return {**SPECS, **SPEC_MUTANTS}


def build_spec(name: str, params: SpecParams) -> Spec:
    specs = known_specs()
    if name not in specs:
        raise KeyError(name)
    return specs[name](params).build()


def base_spec_name(name: str) -> str:
    """The design a (mutant) spec belongs to."""
    return name.split("-", 1)[0]


def _freed_pages(params: SpecParams) -> int:
    total = 0
    for prog in params.programs:
        sizes: dict[str, int] = {}
        for op in prog.ops:
            if isinstance(op, Alloc):
                sizes[op.slot] = op.pages
            elif isinstance(op, Free) and op.slot in sizes:
                total += sizes.pop(op.slot)
    return total


def _can_fail_then_succeed(params: SpecParams) -> bool:
    allocs = [op for prog in params.programs for op in prog.ops if isinstance(op, Alloc)]
    fits = all(op.pages <= params.pages for op in allocs)
    demand = sum(op.pages for op in allocs)
    return fits and demand > params.pages and _freed_pages(params) > 0


def expected_sometimes(name: str, params: SpecParams) -> set[str]:
    """The ``sometimes`` properties this scenario must show in a complete search."""
    out: set[str] = set()
    freed = _freed_pages(params)
    purges = any(isinstance(op, Purge) for prog in params.programs for op in prog.ops)
    fail = _can_fail_then_succeed(params)
    if fail:
        out.add("alloc-after-purge")
    if freed and (freed > params.lazy_max or purges or fail):
        out.add("purge")
    if base_spec_name(name) == "nodes" and params.nr_nodes > 1 and "purge" in out:
        fill = False
        per_node: dict[tuple[int, int], int] = {}
        for prog in params.programs:
            node = prog.cpu % params.nr_nodes
            freed_slots = {op.slot for op in prog.ops if isinstance(op, Free)}
            for op in prog.ops:
                if isinstance(op, Alloc) and op.range_pages is None:
                    per_node[(node, op.pages)] = per_node.get((node, op.pages), 0) + 1
                    fill = fill or op.slot in freed_slots
        if fill:
            out.add("pool-fill")
        if fill and any(k >= 2 for k in per_node.values()):
            out.add("pool-hit")
    if base_spec_name(name) == "percpu" and params.nr_cpus > 1:
        cvz = params.get("cvz_pages", params.zone_pages)
        per_cpu: dict[int, int] = {}
        for prog in params.programs:
            for op in prog.ops:
                extra = op.align_pages if isinstance(op, Alloc) and op.align_pages > 1 else 0
                if isinstance(op, Alloc) and op.range_pages is None \
                        and cvz // (op.pages + extra) >= MIN_REQUESTS_PER_CHUNK:
                    per_cpu[prog.cpu] = per_cpu.get(prog.cpu, 0) + 1
        if per_cpu and cvz <= params.pages:
            out.add("prefetch")
            if any(k >= 2 for k in per_cpu.values()):
                out.add("cache-hit")
    return out
