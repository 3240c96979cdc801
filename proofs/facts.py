"""Candidate facts about a spec's states, and the spec's own invariants as facts.

A fact is a test of a state, at one position of one actor or everywhere.  Templates over the
spec's own fields (its page masks, its counters, each thread's slots) give the candidates: the
locks held at a position, which areas are empty, in hand or inside which structure, which
counters count which pages, that areas of different actors are apart; for a sharded spec
(``Spec.zones``), also which zone an area starts in, which structure holds it if it starts in
a zone, and that every run of a thread's set starts in a zone (facts by zone, not by page,
mean something over the whole address space: ``proofs.unbounded``).  Mining keeps the ones
true in every reachable state of a scenario (and so in the initial one), every one of them:
one that a simpler fact implies on the instance ("within the hand" where the list "is empty")
is still needed when the simpler one is broken by a step the instance never takes (the
``percpu`` merge loop over page sets).  The same tests run on concrete states and, in
``proofs.induction``, on symbolic ones.

Limits.  Fields that hold lists of area codes of varying length (the ``nodes`` spec) have no
templates: ``Layout`` rejects them.  With the step tables' flow (``proofs.flow``), positions
no step reaches get no candidates but "never at", and the held locks are the flow's, not
mined; positions the flow reaches but no mined state does get the relational templates, all
vacuously mined, so Houdini and the concrete runs of ``proofs.closure`` settle them.

Relies on ``spec`` (compile, masks, protocol) and ``proofs.flow`` (its result type).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from spec.compile import Spec
from spec.masks import AREA_SHIFT, fmt, low_page, one_run, starts_outside, zone_masks
from spec.protocol import HELD, PC

from .flow import Flow

State = tuple[Any, ...]
TAG_MASK = (1 << AREA_SHIFT) - 1


# ---------------------------------------------------------------------------- facts
@dataclass(frozen=True)
class Fact:
    """A candidate conjunct: ``test(s)`` whenever actor ``actor`` is at ``pc`` (always, for a
    fact with no actor).  ``reads`` are the fields it reads: ``(-1, i)`` a global, ``(k, j)``
    local ``j`` of actor ``k``.  ``base`` marks the spec's own invariants."""

    name: str
    actor: int | None
    pc: int | None
    reads: frozenset[tuple[int, int]]
    test: Callable[[State], Any]
    base: bool = False


@dataclass(frozen=True)
class Term:
    """A page mask named in facts: a global mask, a local mask, or a slot's area."""

    name: str
    field: tuple[int, int]
    get: Callable[[State], Any]


class Layout:
    """Where a spec keeps what: mask fields, counters, slots, per actor."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        fields = [*spec.global_fields, *spec.local_fields]
        if any(f.owner == "codes" or isinstance(f.init, tuple) and f.show != "masks"
               for f in fields):
            raise NotImplementedError(f"spec {spec.name} keeps areas in lists of varying "
                                      "length (area codes)")
        self.gmasks = [i for i, f in enumerate(spec.global_fields) if f.owner == "mask"]
        self.gnums = [i for i, f in enumerate(spec.global_fields)
                      if f.owner is None and isinstance(f.init, int)]
        self.lmasks = [j for j, f in enumerate(spec.local_fields) if f.owner == "mask"]
        self.lnums = [j for j, f in enumerate(spec.local_fields)
                      if f.owner is None and j != PC and isinstance(f.init, int)]
        self.ltuples = [j for j, f in enumerate(spec.local_fields)
                        if isinstance(f.init, tuple) and f.show == "masks"]
        self.slots = [dict(spec.slot_index[k]) for k in range(len(spec.actor_names))]

    def terms(self, k: int) -> list[Term]:
        """Mask terms local to actor ``k``: its mask fields and its slots' areas."""
        a = self.spec.actor_index[k]
        who = self.spec.actor_names[k]
        out = [Term(f"{who}.{self.spec.local_fields[j].name}", (k, j), _local(a, j))
               for j in self.lmasks]
        out += [Term(f"{who}.slot {name}", (k, j), _slot_area(a, j))
                for name, j in self.slots[k].items()]
        # A fixed number of masks in one field (a purge's detached list per zone).
        for j in self.ltuples:
            f = self.spec.local_fields[j]
            assert isinstance(f.init, tuple)
            out += [Term(f"{who}.{f.name}[{n}]", (k, j), _item(a, j, n))
                    for n in range(len(f.init))]
            # All of them at once: what a purge holds detached over every zone.
            out.append(Term(f"{who}.{f.name}[*]", (k, j), _items(a, j, len(f.init))))
        return out

    def global_terms(self) -> list[Term]:
        return [Term(self.spec.global_fields[i].name, (-1, i), _global(i))
                for i in self.gmasks]


def _popcount(x: Any) -> Any:
    return x.bit_count()


Get = Callable[[State], Any]


# Template factories: each returns the test of one fact (closures keep mypy and the loops
# below honest about which values they capture).
def _local(a: int, j: int) -> Get:
    return lambda s: s[a][j]


def _item(a: int, j: int, n: int) -> Get:
    return lambda s: s[a][j][n]


def _items(a: int, j: int, n: int) -> Get:
    def union(s: State) -> Any:
        acc = s[a][j][0]
        for i in range(1, n):
            acc = acc | s[a][j][i]
        return acc
    return union


def _global(i: int) -> Get:
    return lambda s: s[i]


def _slot_area(a: int, j: int) -> Get:
    return lambda s: s[a][j] >> AREA_SHIFT


def _eq_const(x: Get, c: int) -> Get:
    return lambda s: x(s) == c


def _ne_const(x: Get, c: int) -> Get:
    return lambda s: x(s) != c


def _eq(x: Get, y: Get) -> Get:
    return lambda s: x(s) == y(s)


def _eq_pages(x: Get, t: Get) -> Get:
    return lambda s: x(s) == _popcount(t(s))


def _eq_pages_plus(x: Get, t: Get, y: Get) -> Get:
    return lambda s: x(s) == _popcount(t(s)) + y(s)


def _pages_const(t: Get, c: int) -> Get:
    return lambda s: _popcount(t(s)) == c


def _within_unless(t: Get, u: Get, x: int) -> Get:
    return lambda s: (t(s) & ~u(s) == 0) | (t(s) & -t(s) & ~x == 0)


def _within_slots(u: Get, slots: list[tuple[int, int]]) -> Get:
    def test(s: State) -> Any:
        acc = 0
        for a, j in slots:
            acc = acc | s[a][j] >> AREA_SHIFT
        return u(s) & ~acc == 0
    return test


def _within_in_zone(t: Get, u: Get, zone_of: Callable[[Any], Any], z: int) -> Get:
    return lambda s: (t(s) & ~u(s) == 0) | (zone_of(low_page(t(s))) != z)


def _starts_in_zone(t: Get, zone_of: Callable[[Any], Any], z: int) -> Get:
    return lambda s: (t(s) == 0) | (zone_of(low_page(t(s))) == z)


def _runs_in_zone(t: Get, z: int, zone_mask: int) -> Get:
    return lambda s: starts_outside(t(s), z, zone_mask) == 0


def _tag_const(x: Get, c: int) -> Get:
    return lambda s: x(s) & TAG_MASK == c


def _within_const(t: Get, u: int) -> Get:
    return lambda s: t(s) & ~u == 0


def _starts_within(t: Get, low: int) -> Get:
    return lambda s: t(s) & -t(s) & ~low == 0


def _empty(t: Get) -> Get:
    return lambda s: t(s) == 0


def _not_empty(t: Get) -> Get:
    return lambda s: t(s) != 0


def _one_run(t: Get) -> Get:
    return lambda s: one_run(t(s))


def _within(t: Get, u: Get) -> Get:
    return lambda s: t(s) & ~u(s) == 0


def _apart(t: Get, u: Get) -> Get:
    return lambda s: t(s) & u(s) == 0


def _small(x: Get) -> Get:
    return lambda s: x(s) & ~1 == 0


def candidate_facts(spec: Spec, lay: Layout, states: Sequence[State],
                    flow: Flow | None = None) -> list[Fact]:
    """Every template instance; mining keeps those true in all reachable states.  Constants
    are proposed only as seen in ``states`` (the one value a counter has at a position).

    With the ``flow`` of the step tables (``proofs.flow``), positions no step reaches get no
    facts but "never at", and the locks held at a position are the one mask the flow gives
    there (computed from the tables, so true wherever the position is reached, mined or
    not)."""
    out: list[Fact] = []
    n_actors = len(spec.actor_names)
    seen: dict[tuple[int, int, int], set[int]] = {}
    at_pc: set[tuple[int, int]] = set()
    sizes: dict[tuple[int, int, str], set[int]] = {}
    # The pages a local mask ever covers at a position, and where its lowest page lies (the
    # zone or node an area belongs to is that of its start).
    span: dict[tuple[int, int, str], int] = {}
    tags: dict[tuple[int, int, str], set[int]] = {}
    # Where a slot's area starts when it is not inside a structure: "the area is in the busy
    # tree of its zone" is "inside busy:zone1 unless it starts in zone 0".
    outside: dict[tuple[int, int, str, str], int] = {}
    slot_terms = [[t for t in lay.terms(k) if ".slot " in t.name] for k in range(n_actors)]
    starts: dict[tuple[int, int, str], int] = {}
    local_terms = [lay.terms(k) for k in range(n_actors)]
    gterms = lay.global_terms()
    # A sharded spec's zones, each with its pages in this instance, and its zone of a page.
    zones: list[tuple[int, int]] = []
    if spec.zones is not None:
        n_zones, zone_of = spec.zones
        zones = list(enumerate(zone_masks(zone_of, n_zones, spec.pages)))
    for st in states:
        for k, a in enumerate(spec.actor_index):
            pc = st[a][PC]
            at_pc.add((k, pc))
            for j in lay.lnums:
                vals = seen.setdefault((k, pc, j), set())
                if len(vals) < 2:
                    vals.add(st[a][j])
            for name, j in lay.slots[k].items():
                vals = tags.setdefault((k, pc, name), set())
                if len(vals) < 2:
                    vals.add(st[a][j] & TAG_MASK)
            for t in slot_terms[k]:
                m = t.get(st)
                for u in gterms:
                    if m & ~u.get(st):
                        key2 = (k, pc, t.name, u.name)
                        outside[key2] = outside.get(key2, 0) | (m & -m)
            for t in local_terms[k]:
                m = t.get(st)
                vals = sizes.setdefault((k, pc, t.name), set())
                if len(vals) < 2:
                    vals.add(_popcount(m))
                key = (k, pc, t.name)
                span[key] = span.get(key, 0) | m
                starts[key] = starts.get(key, 0) | (m & -m)
    # A position no reachable state is at: the actor is never there.
    for k, a in enumerate(spec.actor_index):
        for p in range(len(spec.tables[k])):
            if (k, p) not in at_pc:
                out.append(Fact(f"{spec.actor_names[k]} never at {p} {spec.pos_text[k][p]!r}", None,
                                None, frozenset({(k, PC)}),
                                _ne_const(_local(a, PC), p)))
    for k in range(n_actors):
        a = spec.actor_index[k]
        who = spec.actor_names[k]
        mine = lay.terms(k)
        every = mine + gterms
        for p in range(len(spec.tables[k])):
            if flow is not None and p not in flow.reach[k]:
                continue
            at = f"{who} at {spec.pos_text[k][p]!r}"

            def add(what: str, reads: set[tuple[int, int]], test: Get, p: int = p,
                    at: str = at, k: int = k) -> None:
                out.append(Fact(f"{at}: {what}", k, p, frozenset(reads | {(k, PC)}), test))

            for j in lay.lnums:
                name = spec.local_fields[j].name
                x = _local(a, j)
                vals = seen.get((k, p, j), set())
                if j == HELD and flow is not None:
                    held = flow.held_at(k, p)
                    vals = {held} if held is not None else set()
                for c in sorted(vals) if len(vals) == 1 else ():
                    add(f"{name} == {c}", {(k, j)}, _eq_const(x, c))
                if j == HELD:
                    continue  # a lock mask: equal to a page count only by coincidence
                for t in mine:
                    add(f"{name} == pages of {t.name}", {(k, j), t.field}, _eq_pages(x, t.get))
                for j2 in lay.lnums:
                    if j2 == HELD:
                        continue
                    y = _local(a, j2)
                    if j2 > j:
                        add(f"{name} == {spec.local_fields[j2].name}", {(k, j), (k, j2)},
                            _eq(x, y))
                    if j2 != j:
                        # A counter of pages in flight: those still in hand plus those of the
                        # area being processed (the purge's merge loop).
                        for t in mine:
                            add(f"{name} == pages of {t.name} + {spec.local_fields[j2].name}",
                                {(k, j), (k, j2), t.field}, _eq_pages_plus(x, t.get, y))
            # The tag bits below a slot's area (a node id, or nothing): a slot whose area is
            # empty but whose tag is not still takes the "slot not empty" branches.
            for name, j in lay.slots[k].items():
                got = tags.get((k, p, name), set())
                if len(got) == 1:
                    c = next(iter(got))
                    add(f"{who}.slot {name} tag == {c}", {(k, j)}, _tag_const(_local(a, j), c))
            for t in mine:
                if ".slot " not in t.name:
                    continue
                for u in gterms:
                    off = outside.get((k, p, t.name, u.name), 0)
                    if off and off != spec.all_pages:
                        add(f"{t.name} within {u.name} unless it starts within pages "
                            f"{fmt(off)}", {t.field, u.field}, _within_unless(t.get, u.get, off))
                # The same by zone, not by page: these mean something at every address.
                for z, _ in zones:
                    add(f"{t.name} starts in zone {z}", {t.field},
                        _starts_in_zone(t.get, zone_of, z))
                    for u in gterms:
                        add(f"{t.name} within {u.name} if it starts in zone {z}",
                            {t.field, u.field}, _within_in_zone(t.get, u.get, zone_of, z))
            # Where a zone's areas went (a purge's detached list of zone z): every run of the
            # set starts in that zone.
            for z, zone_mask in zones:
                for t in mine:
                    if ".slot " not in t.name:
                        add(f"runs of {t.name} start in zone {z}", {t.field},
                            _runs_in_zone(t.get, z, zone_mask))
            for t in every:
                add(f"{t.name} is empty", {t.field}, _empty(t.get))
            for t in mine:
                add(f"{t.name} is not empty", {t.field}, _not_empty(t.get))
                spanned = span.get((k, p, t.name), 0)
                if spanned and spanned != spec.all_pages:
                    add(f"{t.name} within pages {fmt(spanned)}", {t.field},
                        _within_const(t.get, spanned))
                low = starts.get((k, p, t.name), 0)
                if low and low != spec.all_pages and low != spanned:
                    add(f"{t.name} starts within pages {fmt(low)}", {t.field},
                        _starts_within(t.get, low))
                got = sizes.get((k, p, t.name), set())
                if len(got) == 1 and 0 not in got:
                    c = next(iter(got))
                    add(f"{t.name} has {c} pages", {t.field}, _pages_const(t.get, c))
                add(f"{t.name} is one run", {t.field}, _one_run(t.get))
                if ".slot " not in t.name:
                    # Exactly an area (what a thread holds while it moves one): equal sets,
                    # not two inclusions, so that what holds of the area holds of it.
                    for u in mine:
                        if ".slot " in u.name:
                            add(f"{t.name} is {u.name}", {t.field, u.field}, _eq(t.get, u.get))
                for u in every:
                    if u is t:
                        continue
                    add(f"{t.name} within {u.name}", {t.field, u.field}, _within(t.get, u.get))
                    if u in mine:  # apart from an owner follows from single ownership
                        add(f"{t.name} apart from {u.name}", {t.field, u.field},
                            _apart(t.get, u.get))
    # Position-free facts: areas of different actors never overlap; small counters.
    for k1, k2 in itertools.combinations(range(n_actors), 2):
        for t in lay.terms(k1):
            for u in lay.terms(k2):
                out.append(Fact(f"{t.name} apart from {u.name}", None, None,
                                frozenset({t.field, u.field}), _apart(t.get, u.get)))
    # Pages of a structure are pages of some thread's area (a busy tree holds allocated areas
    # only): the converse of the spec's own "allocated areas stay in a busy tree or in hand".
    slot_fields = [(spec.actor_index[k], j) for k in range(n_actors)
                   for j in lay.slots[k].values()]
    if slot_fields:
        reads = frozenset((k, j) for k in range(n_actors) for j in lay.slots[k].values())
        for u in lay.global_terms():
            out.append(Fact(f"{u.name} within the threads' areas", None, None,
                            reads | {u.field}, _within_slots(u.get, slot_fields)))
    for i in lay.gnums:
        name = spec.global_fields[i].name
        out.append(Fact(f"{name} is 0 or 1", None, None, frozenset({(-1, i)}),
                        _small(_global(i))))
    return out


def base_facts(spec: Spec) -> list[Fact]:
    """The spec's own invariants: the ownership rules as ``Spec.owned_once`` states them
    (bitwise, no page counts: the same rules as the explorer's generated check, which a test
    compares on every reachable state) and the design's invariants as the explorer runs them."""
    everything = frozenset({(-2, 0)})  # reads everything: always re-checked
    out = [Fact("single owner, conservation and lock exclusion", None, None, everything,
                spec.owned_once, base=True)]
    for name, make in spec.invariant_defs:
        out.append(Fact(name, None, None, everything, _passes(make(spec)), base=True))
    return out


def _passes(check: Callable[[State], str | None]) -> Get:
    return lambda s: check(s) is None


# ---------------------------------------------------------------------------- mining
def start_states(spec: Spec, moved: Sequence[int] = ()) -> list[State]:
    """The initial state, and for each size in ``moved`` the states that differ from it only
    in having that many free pages in another structure of the globals (a zone's cache, a lazy
    list), with the counters set to agree (``vmap_lazy_nr``): each of them satisfies the spec's
    own invariants, and every actor is at its start.

    Mining from the states reachable from all of them is sound (the mined facts hold in a
    superset of the reachable states; Houdini proves them inductive and ``Init => Inv`` is
    checked), and covers what one initial state cannot: an allocation that fails for want of
    free pages, a purge that finds lazy areas in every zone, a cache that already holds a
    chunk.  Busy trees are left alone: their pages belong to allocated areas.)"""
    out = [spec.init]
    if not moved:
        return out
    base = base_facts(spec)
    g0 = spec.init[: spec.G]
    free = [i for i, f in enumerate(spec.global_fields)
            if f.owner == "mask" and f.init == spec.all_pages]
    if len(free) != 1:
        return out
    # Only structures that merge free neighbours (caches, lazy lists): a page of a busy tree
    # belongs to an allocated area, which some thread's slot names.
    targets = [i for i, f in enumerate(spec.global_fields)
               if f.owner == "mask" and f.coalesced and i != free[0]]
    nums = [i for i, f in enumerate(spec.global_fields)
            if i > 0 and f.owner is None and isinstance(f.init, int)]
    for t in targets:
        for sub in range(1, spec.all_pages + 1):
            if sub.bit_count() not in moved:
                continue
            g = list(g0)
            g[free[0]] &= ~sub
            g[t] |= sub
            got = _agreeing(spec, g, nums, base)
            if got is not None:
                out.append(got)
    return out


def _agreeing(spec: Spec, g: list[Any], nums: list[int], base: Sequence[Fact]) -> State | None:
    """``g`` with the fewest counters changed (each to 1 .. pages) so that the spec's own
    invariants hold, or None."""
    for n in range(len(nums) + 1):
        for which in itertools.combinations(nums, n):
            for vals in itertools.product(range(1, spec.pages + 1), repeat=n):
                gg = list(g)
                for i, v in zip(which, vals, strict=True):
                    gg[i] = v
                s = tuple(gg) + spec.init[spec.G:]
                if all(f.test(s) for f in base):
                    return s
    return None


def reachable(spec: Spec, limit: int = 200_000, starts: Sequence[State] = ()) -> list[State]:
    succ = spec.make_successors(reduced=False)
    seen = {spec.init, *starts}
    frontier = list(seen)
    while frontier:
        nxt = []
        for s in frontier:
            for t in succ(s):
                if t not in seen:
                    seen.add(t)
                    nxt.append(t)
                    if len(seen) > limit:
                        raise RuntimeError(f"more than {limit} reachable states")
        frontier = nxt
    return list(seen)


def holds(f: Fact, s: State, spec: Spec) -> bool:
    if f.actor is not None and s[spec.actor_index[f.actor]][PC] != f.pc:
        return True
    return bool(f.test(s))


def mine(spec: Spec, cands: Sequence[Fact], states: Sequence[State]) -> list[Fact]:
    """The candidates true in every reachable state (and so in the initial one)."""
    by_pos: dict[tuple[int | None, int | None], list[Fact]] = {}
    for f in cands:
        by_pos.setdefault((f.actor, f.pc), []).append(f)
    alive = {id(f) for f in cands}
    for s in states:
        keys: list[tuple[int | None, int | None]] = [(None, None)]
        keys += [(k, s[a][PC]) for k, a in enumerate(spec.actor_index)]
        for key in keys:
            for f in by_pos.get(key, ()):
                if id(f) in alive and not f.test(s):
                    alive.discard(id(f))
    return [f for f in cands if id(f) in alive]
