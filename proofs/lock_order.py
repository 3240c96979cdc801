"""Lock order: a ranking of lock classes consistent with every nesting edge, found by Z3.

An edge ``A -> B`` says some path takes a lock of class ``B`` while holding one of class ``A``.
No deadlock between classes is possible when there is a rank per class with ``rank(A) <
rank(B)`` for every edge: every thread then takes locks in increasing rank.  Z3 looks for one
(integer ranks, one tracked constraint per edge).  When none exists the edges contain a cycle;
the unsat core (minimised) names the edges that cannot all hold, and they are printed in cycle
order with where each one came from.  An edge from a class to itself (two locks of one class
nested, undeclared) is a cycle of one edge, as lockdep would have it.

Edges are given by the caller (``checker/commands/prove.py`` gathers them from the spec's
tables and from the implementation's lock-order graph).  ``spec_edges`` reads them from a
spec's protocol tables: sections take their locks in order while holding every lock an
``Acquire`` took before them, as ``spec.compile`` lays them out.  ``KERNEL_NESTING`` are the
nesting edges of the 6.1-6.8 kernel (reference section 1.3), a design's declared edges when its
spec has no tables.

Relies on ``z3``, ``networkx`` and ``spec`` (protocol tables).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import networkx as nx
import z3

from spec.params import SpecParams
from spec.program import Alloc, Find, Free, Purge, ThreadProgram
from spec.protocol import Acquire, Op, Release, Sec
from spec.registry import known_specs

from .obligation import Obligation, ProofResult, Status


@dataclass(frozen=True)
class OrderEdge:
    """A lock of class ``acquired`` taken while one of class ``held`` is held."""

    held: str
    acquired: str
    source: str

    def __str__(self) -> str:
        return f"{self.held} -> {self.acquired}  ({self.source})"


def find_ranking(edges: Sequence[OrderEdge], timeout: float) -> ProofResult:
    """Proved with a ranking, or Counterexample with the cycle the unsat core names."""
    classes = sorted({c for e in edges for c in (e.held, e.acquired)})
    rank = {c: z3.Int(f"rank[{c}]") for c in classes}
    solver = z3.Solver()
    solver.set("timeout", max(1, int(timeout * 1000)))
    solver.set("core.minimize", True)
    # Distinct ranks: a total order (every DAG has a topological one), printed as a < b < c.
    for c in classes:
        solver.add(rank[c] >= 0, rank[c] < max(1, len(classes)))
    if len(classes) > 1:
        solver.add(z3.Distinct(*rank.values()))
    tracks: dict[str, OrderEdge] = {}
    for i, e in enumerate(edges):
        p = z3.Bool(f"edge{i}")
        tracks[str(p)] = e
        solver.assert_and_track(rank[e.held] < rank[e.acquired], p)
    r = solver.check()
    stats = {"edges": len(edges), "classes": len(classes)}
    if r == z3.sat:
        m = solver.model()
        ranks = {c: m.eval(rank[c], model_completion=True).as_long() for c in classes}
        order = sorted(classes, key=lambda c: (ranks[c], c))
        return ProofResult(Status.PROVED,
                           "ranking: " + " < ".join(order) if order else "no nesting at all",
                           tuple((c, str(ranks[c])) for c in order),
                           tuple(str(e) for e in _dedup(edges)), stats)
    if r == z3.unknown:
        return ProofResult.unknown(f"solver: {solver.reason_unknown()}", **stats)
    core = [tracks[str(p)] for p in solver.unsat_core()]
    cycle = _as_cycle(core)
    names = [e.held for e in cycle] + [cycle[0].held]
    return ProofResult(Status.COUNTEREXAMPLE,
                       "no ranking exists: lock-order cycle " + " -> ".join(names),
                       (), tuple(str(e) for e in cycle), {**stats, "core": len(core)})


def _as_cycle(core: list[OrderEdge]) -> list[OrderEdge]:
    """The core's edges in cycle order (a minimal core of ``<`` constraints is one cycle)."""
    g = nx.MultiDiGraph()
    for e in core:
        g.add_edge(e.held, e.acquired, edge=e)
    try:
        found = nx.find_cycle(g)
    except nx.NetworkXNoCycle:  # pragma: no cover - an unsat core of "<" always has a cycle
        return core
    return [g.edges[u, v, k]["edge"] for u, v, k in found]


def _dedup(edges: Iterable[OrderEdge]) -> list[OrderEdge]:
    seen: set[tuple[str, str]] = set()
    out: list[OrderEdge] = []
    for e in edges:
        if (e.held, e.acquired) not in seen:
            seen.add((e.held, e.acquired))
            out.append(e)
    return out


# Reference section 1.3 (Linux 6.1-6.8), restricted to the classes the designs model.
KERNEL_NESTING = (
    OrderEdge("vmap_purge_lock", "purge_vmap_area_lock", "reference 1.3: __purge_vmap_area_lazy"),
    OrderEdge("vmap_purge_lock", "free_vmap_area_lock", "reference 1.3: __purge_vmap_area_lazy"),
    OrderEdge("vmap_purge_lock", "vmap_area_lock", "reference 1.3: vmallocinfo s_start"),
    OrderEdge("vmap_area_lock", "purge_vmap_area_lock", "reference 1.3: vmallocinfo "
              "show_purge_info"),
)


def coverage_programs(pages: int) -> tuple[ThreadProgram, ...]:
    """Programs that reach every operation of a spec: allocate (default range and an explicit
    one), look up, free, purge, on two CPUs."""
    ops = (Alloc(1, "a"), Find("a"), Free("a"), Alloc(1, "b", range_pages=(0, pages)),
           Free("b"), Purge())
    return (ThreadProgram(0, ops), ThreadProgram(1, ops))


def spec_edges(name: str, params: SpecParams | None = None) -> list[OrderEdge]:
    """The nesting edges of a spec's protocol tables (by lock class), with where each is."""
    specs = known_specs()
    if name not in specs:
        raise KeyError(name)
    if params is None:
        params = SpecParams(coverage_programs(8), pages=8, nr_cpus=2, nr_nodes=2, zone_pages=2)
    builder_owner = specs[name](params)
    builder_owner.build()
    b = builder_owner.b
    classes = [lk.lock_class for lk in b.locks]
    names = [lk.name for lk in b.locks]
    out: list[OrderEdge] = []

    def nest(held: Sequence[int], lock: object, where: str) -> None:
        if not isinstance(lock, int):
            return  # a lock computed at run time: its class is not in the table
        for h in held:
            out.append(OrderEdge(classes[h], classes[lock],
                                 f"spec {name}: {where}: {names[lock]} taken holding {names[h]}"))

    for actor in b.actors:
        op = "idle"
        outer: list[int] = []
        for ins in actor.instrs:
            if isinstance(ins, Op):
                op = ins.text
            elif isinstance(ins, Acquire):
                nest(outer, ins.lock, f"{actor.name} {op}, {ins.what or 'acquire'}")
                if isinstance(ins.lock, int):
                    outer.append(ins.lock)
            elif isinstance(ins, Release):
                if isinstance(ins.lock, int) and ins.lock in outer:
                    outer.remove(ins.lock)
            elif isinstance(ins, Sec):
                taken: list[int] = []
                for ref in ins.locks:
                    nest([*outer, *taken], ref, f"{actor.name} {op}, {ins.what}")
                    if isinstance(ref, int):
                        taken.append(ref)
    return out


def obligation(design: str, gather: Callable[[], Sequence[OrderEdge]]) -> Obligation:
    """``lock-order.DESIGN``: ``gather`` collects the design's edges when the check runs."""
    def check(timeout: float) -> ProofResult:
        return find_ranking(list(gather()), timeout)
    return Obligation(f"lock-order.{design}", "lock-order",
                      f"a ranking of {design}'s lock classes consistent with every nesting edge "
                      "(spec tables and lock-order graph)", check)
