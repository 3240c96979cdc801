"""The lock-order graph, as lockdep builds it: predict deadlocks no explored schedule reached.

Every "acquired B while holding A" adds an edge from A's lock class to B's, with the source line
of the acquire of B.  Locks are grouped into classes (all per-node busy locks are one class), so
an order seen between two instances stands for every pair of instances.  A cycle in the class
graph is a ``lock-order`` finding even when no schedule deadlocked: two threads taking the same
classes in opposite orders can deadlock on some machine.  Nesting two locks of one class is
reported too unless the design declares it (``lockdep_nested``: classes whose instances may
nest, the kernel's ``spin_lock_nested``).  A mutex taken while a spinlock is held is reported
as sleeping in atomic context.

Edges come from controlled-runtime events (``LockGraphObserver``) or from any iterable of
``NestingEdge`` (a stress run records them).  Cycles are found with networkx.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from impl.designs import VmapDesign

from ..events import ACQUIRE, Event
from ..result import Finding


@dataclass(frozen=True)
class NestingEdge:
    """``acquired`` (a lock class) was taken while ``held`` (a lock class) was held."""

    held: str
    acquired: str
    location: str = ""
    thread: str = ""
    op: str | None = None
    held_lock: str = ""
    acquired_lock: str = ""
    acquired_kind: str = "spinlock"
    held_kind: str = "spinlock"


@dataclass
class LockOrderGraph:
    """Lock classes as nodes; an edge keeps the first witness of each nesting."""

    graph: nx.DiGraph = field(default_factory=nx.DiGraph)
    kinds: dict[str, str] = field(default_factory=dict)
    nested_ok: frozenset[str] = frozenset()
    sleeping: dict[tuple[str, str], NestingEdge] = field(default_factory=dict)
    same_class: dict[str, NestingEdge] = field(default_factory=dict)

    def add_lock_class(self, lock_class: str, kind: str) -> None:
        if lock_class not in self.graph:
            self.graph.add_node(lock_class)
        self.kinds.setdefault(lock_class, kind)

    def add(self, edge: NestingEdge) -> bool:
        """Record a nesting; True if it is new (a new edge, or a new misuse)."""
        self.add_lock_class(edge.held, edge.held_kind)
        self.add_lock_class(edge.acquired, edge.acquired_kind)
        new = False
        if edge.acquired_kind == "mutex" and edge.held_kind == "spinlock":
            key = (edge.held, edge.acquired)
            if key not in self.sleeping:
                self.sleeping[key] = edge
                new = True
        if edge.held == edge.acquired:
            if edge.held not in self.nested_ok and edge.held not in self.same_class:
                self.same_class[edge.held] = edge
                return True
            return new
        if not self.graph.has_edge(edge.held, edge.acquired):
            self.graph.add_edge(edge.held, edge.acquired, witness=edge, count=1)
            return True
        self.graph.edges[edge.held, edge.acquired]["count"] += 1
        return new

    def edges(self) -> list[NestingEdge]:
        return [d["witness"] for _, _, d in sorted(self.graph.edges(data=True),
                                                  key=lambda e: (e[0], e[1]))]

    def cycles(self, limit: int = 20) -> list[list[NestingEdge]]:
        """Elementary cycles of the class graph, each as its edges with their witnesses."""
        out: list[list[NestingEdge]] = []
        for nodes in nx.simple_cycles(self.graph):
            if len(out) >= limit:
                break
            ring = nodes + nodes[:1]
            out.append([self.graph.edges[a, b]["witness"] for a, b in zip(ring, ring[1:], strict=False)])
        return out

    def findings(self) -> list[Finding]:
        found = []
        for cycle in self.cycles():
            lines = [f"{e.held} -> {e.acquired} at {e.location or '?'} ({e.thread} in {e.op})"
                     for e in cycle]
            classes = " -> ".join([e.held for e in cycle] + [cycle[0].held])
            found.append(Finding(
                "lock-order",
                f"lock-order cycle {classes}: a deadlock is possible; edges: " + "; ".join(lines),
                {"cycle": [edge_json(e) for e in cycle]}))
        for cls, e in sorted(self.same_class.items()):
            found.append(Finding(
                "lock-order",
                f"lock class {cls} nested in itself ({e.held_lock} held, {e.acquired_lock} "
                f"taken at {e.location or '?'}): undeclared same-class nesting",
                {"nesting": edge_json(e)}))
        for (held, acquired), e in sorted(self.sleeping.items()):
            found.append(Finding(
                "lock-order",
                f"sleeping in atomic context: mutex {acquired} taken while spinlock {held} is "
                f"held at {e.location or '?'} ({e.thread} in {e.op})",
                {"nesting": edge_json(e)}))
        return found

    def to_json(self) -> dict[str, Any]:
        return {"classes": {c: self.kinds.get(c, "?") for c in sorted(self.graph.nodes)},
                "edges": [edge_json(e) for e in self.edges()]}

    def to_dot(self) -> str:
        """Graphviz DOT with every edge labelled by its source line and cycle edges in red."""
        on_cycle = {(e.held, e.acquired) for cycle in self.cycles() for e in cycle}
        lines = ["digraph lock_order {", "  rankdir=LR;", "  node [shape=box, fontname=monospace];"]
        for cls in sorted(self.graph.nodes):
            shape = "ellipse" if self.kinds.get(cls) == "mutex" else "box"
            lines.append(f'  "{cls}" [shape={shape}];')
        for e in self.edges():
            attrs = [f'label="{_dot_escape(e.location)}"', "fontsize=9"]
            if (e.held, e.acquired) in on_cycle:
                attrs += ["color=red", "fontcolor=red", "penwidth=2.5"]
            lines.append(f'  "{e.held}" -> "{e.acquired}" [{", ".join(attrs)}];')
        for (held, acquired), e in sorted(self.sleeping.items()):
            if not self.graph.has_edge(held, acquired):
                lines.append(f'  "{held}" -> "{acquired}" [color=orange, style=dashed, '
                             f'label="{_dot_escape(e.location)}"];')
        lines.append("}")
        return "\n".join(lines) + "\n"


def edge_json(e: NestingEdge) -> dict[str, Any]:
    return {"held": e.held, "acquired": e.acquired, "location": e.location, "thread": e.thread,
            "op": e.op, "held_lock": e.held_lock, "acquired_lock": e.acquired_lock}


def _dot_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def from_edges(edges: Iterable[NestingEdge], nested_ok: Iterable[str] = ()) -> LockOrderGraph:
    g = LockOrderGraph(nested_ok=frozenset(nested_ok))
    for e in edges:
        g.add(e)
    return g


class LockGraphObserver:
    """Builds one lock-order graph over every execution of a search.

    A new cycle or misuse is reported at the end of the execution that created it (so a search
    that stops at the first finding stops there), and once only."""

    def __init__(self) -> None:
        self.graph = LockOrderGraph()
        self._kinds: dict[str, str] = {}
        self._reported: set[str] = set()

    def on_execution_start(self, design: VmapDesign, scenario: object) -> None:
        nested = getattr(design, "lockdep_nested", ())
        if nested:
            self.graph.nested_ok = frozenset(nested)
        for lock in design.all_locks():
            self._kinds[lock.name] = lock.kind.value
            self.graph.add_lock_class(lock.lock_class, lock.kind.value)

    def on_event(self, ev: Event) -> None:
        if ev.kind != ACQUIRE or not ev.held or ev.lock_class is None:
            return
        kind = ev.lock_kind or "spinlock"
        for held_name, held_class in ev.held:
            self.graph.add(NestingEdge(
                held=held_class, acquired=ev.lock_class, location=ev.location, thread=ev.thread,
                op=ev.op, held_lock=held_name, acquired_lock=ev.obj, acquired_kind=kind,
                held_kind=self._kinds.get(held_name, "spinlock")))

    def on_execution_end(self, outcome: object) -> list[Finding]:
        fresh = []
        for f in self.graph.findings():
            cycle = f.trace.get("cycle") if isinstance(f.trace, dict) else None
            key = (repr(sorted((e["held"], e["acquired"]) for e in cycle)) if cycle
                   else f.message)
            if key not in self._reported:
                self._reported.add(key)
                fresh.append(f)
        return fresh


def from_stress_edges(edges: Iterable[tuple[str, str, str, int]],
                      kinds: dict[str, str]) -> LockOrderGraph:
    """The graph of a stress run: ``(held_class, acquired_class, source, count)`` edges as the
    instrumented locks record them, with each class's kind (spinlock or mutex)."""
    return from_edges(
        NestingEdge(held=h, acquired=a, location=src, thread="stress",
                    held_kind=kinds.get(h, "spinlock"), acquired_kind=kinds.get(a, "spinlock"))
        for h, a, src, _count in edges)
