"""Compile a protocol table (``spec.protocol``) into a fast transition system (``Spec``).

A state is a flat tuple: the global fields first (field 0 is the mask of held locks), then one
tuple of small ints per actor (its locals; field 0 is its position).  Thread identities appear
nowhere in the globals (who holds a lock is in the holder's locals), so two actors running the
same step table can be swapped by permuting their tuples alone: that is what makes symmetry
reduction automatic (``Spec.make_canon`` sorts the tuples of each group of identical
actors).

Each position of each actor compiles to one closure ``step(s, a, out)`` that appends the
successor states of actor ``a`` (its index in the state) to ``out``; a blocked or finished actor
appends nothing.  Everything that can be decided at build time (lock bits, jump targets,
protection) is bound into the closures.

Two step tables are kept per actor.  The full one has a step per sync operation, as the
implementation's scheduler sees them (refinement checks against it).  The reduced one, which the
explorer uses, runs the plain releases that follow a step in that same step: an acquire (with
its body, protected by the lock, so a right mover), an unguarded atomic (a non-mover) or a
release, followed by releases (left movers), is a Lipton block ``R* N? L*`` that can block only
at its first action, and its inner states differ from its end only by the locks still held.
So deadlocks and the invariants over pages are preserved while the states where a thread merely
sits before an unlock disappear.  (A section that touches a structure without its lock is a
violation as soon as it is reached, so it never takes part in a block.)

``sometimes`` properties are detected by their tagged steps, which add their tag to
``Spec.events`` when the body takes its default outcome.

Relies on ``spec.protocol``, ``spec.steps`` and ``spec.views``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .protocol import (
    N_COMMON,
    PC,
    Acquire,
    Act,
    ActorDef,
    Body,
    Branch,
    Goto,
    Label,
    LockRef,
    Op,
    Release,
    Sec,
    SpecAssertion,
)
from .steps import (
    LockInfo,
    Resolve,
    State,
    Step,
    compose_releases,
    make_acquire,
    make_act,
    make_release,
    make_unlocked,
)
from .views import OWNER_KINDS, Check, FieldDef, LockDef, SpecViews


@dataclass(frozen=True)
class Sometimes:
    """A property that must hold on at least one transition of a complete search: the step
    tagged ``tag`` runs and takes its default outcome.  Never seeing it means the spec (or the
    scenario) rules out behaviour it is meant to show."""

    name: str
    description: str
    tag: str


class Builder:
    """Collects fields, locks, actors and rules, then ``build()``s a ``Spec``."""

    def __init__(self, name: str, pages: int, params: dict[str, object] | None = None) -> None:
        self.name = name
        self.pages = pages
        self.params = dict(params or {})
        # Sharded designs: how many zones and the zone of a page (``addr_to_cpu``).
        self.zones: tuple[int, Callable[[int], int]] | None = None
        self.globals: list[FieldDef] = [FieldDef("locks", 0, None)]
        self.extra_locals: list[FieldDef] = []
        self.locks: list[LockDef] = []
        self.protects: dict[int, int] = {}
        self.actors: list[ActorDef] = []
        self.invariants: list[tuple[str, Callable[[Spec], Check]]] = []
        self.sometimes: list[Sometimes] = []

    # ------------------------------------------------------------------ declarations
    def glob(self, name: str, init: object, owner: str | None = None,
             show: str | None = None, coalesced: bool = False) -> int:
        """A global field.  ``coalesced``: the structure it stands for merges neighbours, so
        its areas are exactly the runs of the mask (refinement compares them area by area)."""
        assert owner is None or owner in OWNER_KINDS
        self.globals.append(FieldDef(name, init, owner, show, coalesced))
        return len(self.globals) - 1

    def local(self, name: str, init: object, owner: str | None = None,
              show: str | None = None) -> int:
        assert owner is None or owner in OWNER_KINDS
        self.extra_locals.append(FieldDef(name, init, owner, show))
        return N_COMMON + len(self.extra_locals) - 1

    def lock(self, name: str, lock_class: str | None = None, mutex: bool = False,
             protects: Iterable[int] = ()) -> int:
        self.locks.append(LockDef(name, lock_class or name, mutex))
        idx = len(self.locks) - 1
        for f in protects:
            self.protects[f] = idx
        return idx

    def lock_index(self, name: str) -> int:
        for i, lk in enumerate(self.locks):
            if lk.name == name:
                return i
        raise KeyError(name)

    def slot_fields(self, slots: Sequence[str]) -> dict[str, int]:
        """Local field index of each slot name (call after every ``local``)."""
        base = N_COMMON + len(self.extra_locals)
        out: dict[str, int] = {}
        for s in slots:
            if s not in out:
                out[s] = base + len(out)
        return out

    def actor(self, actor: ActorDef) -> None:
        self.actors.append(actor)

    def invariant(self, name: str, make: Callable[[Spec], Check]) -> None:
        """``make(spec)`` returns ``check(state)``, which returns None or a message saying what
        is broken (the factory sees the built layout, e.g. for ``Spec.local_sum``)."""
        self.invariants.append((name, make))

    def sometimes_step(self, name: str, description: str, tag: str) -> None:
        self.sometimes.append(Sometimes(name, description, tag))

    def build(self) -> Spec:
        return Spec(self)


@dataclass
class _Micro:
    """One position of an actor before closures are made."""

    kind: str  # acq, rel, act, unlocked, branch, goto
    text: str
    pos: str
    lock: LockRef | None = None
    body: Body | None = None
    guard: Any = None
    jumps: dict[str, str] | None = None  # body result -> label
    next_label: str | None = None  # for goto and release chains
    tag: str | None = None
    branch: Any = None
    choose: Any = None
    message: str = ""  # what an "unlocked" step reports


def _join(*parts: str) -> str:
    return ", ".join(p for p in parts if p)


class Spec(SpecViews):
    """A compiled spec for one configuration: initial state, steps, invariants, symmetry."""

    def __init__(self, b: Builder) -> None:
        self.name = b.name
        self.pages = b.pages
        self.all_pages = (1 << b.pages) - 1
        self.params = b.params
        self.zones = b.zones
        self.global_fields = list(b.globals)
        self.G = len(b.globals)
        self.local_fields = [FieldDef("pc", 0, None), FieldDef("held", 0, None),
                             FieldDef("hand", 0, "mask"), FieldDef("aux", 0, None),
                             *b.extra_locals]
        self.locks = list(b.locks)
        self.protects = dict(b.protects)
        self.lock_info = LockInfo([lk.name for lk in self.locks], [lk.mutex for lk in self.locks])
        self.sometimes = list(b.sometimes)
        self.invariant_defs = list(b.invariants)
        self.events: set[str] = set()

        # Actors with equal signatures are made contiguous so that one slice sorts a group.
        order: dict[object, int] = {}
        for a in b.actors:
            order.setdefault(a.signature, len(order))
        actors = sorted(b.actors, key=lambda x: order[x.signature])
        self.actors = actors
        self.actor_names = [a.name for a in actors]
        self.actor_index = [self.G + k for k in range(len(actors))]
        self.groups: list[tuple[int, int]] = []
        k = 0
        while k < len(actors):
            j = k
            while j + 1 < len(actors) and actors[j + 1].signature == actors[k].signature:
                j += 1
            if j > k:
                self.groups.append((self.G + k, self.G + j + 1))
            k = j + 1

        self.tables: list[list[Step | None]] = []
        self.rtables: list[list[Step | None]] = []
        self.step_text: list[list[str]] = []
        self.rstep_text: list[list[str]] = []
        self.pos_text: list[list[str]] = []
        self.rest: list[frozenset[int]] = []
        self.slot_index: list[dict[str, int]] = []
        expanded = [self._expand(a) for a in actors]
        inits: list[tuple[object, ...]] = []
        for a, (micros, labels) in zip(actors, expanded, strict=True):
            n_locals = N_COMMON + len(b.extra_locals) + len(a.slots)
            loc: list[Any] = [0] * n_locals
            for i, fd in enumerate(self.local_fields):
                loc[i] = fd.init
            init_pc = self._compile_actor(a, micros, labels, loc)
            self.slot_index.append(dict(a.slots))
            loc[PC] = init_pc
            inits.append(tuple(loc))
        self.init: State = tuple(fd.init for fd in self.global_fields) + tuple(inits)
        self._make_checks()

    # ------------------------------------------------------------------ compilation
    def _lock_name(self, ref: LockRef) -> str:
        return self.locks[ref].name if isinstance(ref, int) else getattr(ref, "lock_text", "lock")

    def _expand(self, a: ActorDef) -> tuple[list[_Micro], dict[str, int]]:
        micros: list[_Micro] = []
        labels: dict[str, int] = {}
        op_text = "idle"
        outer: list[LockRef] = []  # locks held across sections (Acquire ... Release)
        fresh = 0

        def new_label() -> str:
            nonlocal fresh
            fresh += 1
            return f"__{fresh}"

        def unprotected(touches: tuple[int, ...], during: list[LockRef]) -> list[int]:
            return [f for f in touches if f in self.protects and self.protects[f] not in during]

        def holding(extra: list[LockRef]) -> str:
            names = [self._lock_name(r) for r in outer + extra]
            return f"holds {', '.join(names)}" if names else ""

        for ins in a.instrs:
            if isinstance(ins, Op):
                op_text = ins.text
            elif isinstance(ins, Label):
                labels[ins.name] = len(micros)
            elif isinstance(ins, Goto):
                micros.append(_Micro("goto", "", op_text, next_label=ins.label))
            elif isinstance(ins, Branch):
                micros.append(_Micro("branch", ins.what, op_text, branch=ins.fn))
            elif isinstance(ins, Act):
                if unprotected(ins.touches, outer):
                    raise ValueError(f"{ins.what}: an atomic step touches a locked field")
                micros.append(_Micro("act", ins.what, _join(op_text, holding([]),
                                                            f"before {ins.what}"),
                                     body=ins.body, guard=ins.guard, choose=ins.choose,
                                     jumps={j: j for j in ins.jumps}, tag=ins.tag))
            elif isinstance(ins, Acquire):
                name = self._lock_name(ins.lock)
                if unprotected(ins.touches, [*outer, ins.lock]):
                    raise ValueError(f"{ins.what}: unprotected field under Acquire")
                text = f"lock {name}" + (f"; {ins.what}" if ins.what else "")
                micros.append(_Micro("acq", text, _join(op_text, holding([]), f"waits for {name}"),
                                     lock=ins.lock, body=ins.body, choose=ins.choose,
                                     jumps={j: j for j in ins.jumps}, tag=ins.tag))
                outer.append(ins.lock)
            elif isinstance(ins, Release):
                name = self._lock_name(ins.lock)
                if ins.lock in outer:
                    outer.remove(ins.lock)
                if unprotected(ins.touches, outer):
                    raise ValueError(f"unlock {name}: the code after it touches a locked field")
                micros.append(_Micro("rel", f"unlock {name}",
                                     _join(op_text, holding([ins.lock]),
                                           f"before unlocking {name}"),
                                     lock=ins.lock, body=ins.body,
                                     jumps={j: j for j in ins.jumps}))
            elif isinstance(ins, Sec):
                after = new_label()
                bad = unprotected(ins.touches, [*outer, *ins.locks])
                chains = {j: new_label() for j in ins.jumps} if ins.locks else {
                    j: j for j in ins.jumps}
                taken: list[LockRef] = []
                for n, ref in enumerate(ins.locks):
                    last = n == len(ins.locks) - 1 and not bad
                    name = self._lock_name(ref)
                    text = f"lock {name}" + (f"; {ins.what}" if last else "")
                    micros.append(_Micro("acq", text, _join(op_text, holding(taken),
                                                            f"waits for {name}"),
                                         lock=ref, body=ins.body if last else None,
                                         choose=ins.choose if last else None,
                                         jumps=chains if last else None,
                                         tag=ins.tag if last else None))
                    taken.append(ref)
                if bad:
                    fname = self.global_fields[bad[0]].name
                    lname = self.locks[self.protects[bad[0]]].name
                    micros.append(_Micro("unlocked", f"{ins.what}: touches {fname} without "
                                                     f"{lname}",
                                         _join(op_text, holding(taken), f"before {ins.what}"),
                                         message=f"{ins.what} touches {fname}, which "
                                                    f"{lname} protects, without holding it"))
                elif not ins.locks:
                    micros.append(_Micro("act", ins.what,
                                         _join(op_text, holding([]), f"before {ins.what}"),
                                         body=ins.body, choose=ins.choose, jumps=chains,
                                         tag=ins.tag))
                if ins.locks:
                    # Release chains: the default one falls through, one per possible jump.
                    for target, chain in [(after, None), *[(j, c) for j, c in chains.items()]]:
                        if chain is not None:
                            labels[chain] = len(micros)
                        for n in range(len(ins.locks) - 1, -1, -1):
                            name = self._lock_name(ins.locks[n])
                            micros.append(_Micro("rel", f"unlock {name}",
                                                 _join(op_text, holding(list(ins.locks[:n + 1])),
                                                       f"{ins.what} done"),
                                                 lock=ins.locks[n]))
                        micros.append(_Micro("goto", "", op_text, next_label=target))
                labels[after] = len(micros)
            else:
                raise TypeError(f"unknown instruction {ins!r}")
        return micros, labels

    def _compile_actor(self, a: ActorDef, micros: list[_Micro], labels: dict[str, int],
                       init_locals: list[Any]) -> int:
        """Make both step tables of one actor; returns its initial position."""
        done = len(micros)
        labels.setdefault("__end", done)

        def chase(pc: int) -> int:
            hops = 0
            while pc < done and micros[pc].kind == "goto":
                lbl = micros[pc].next_label
                assert lbl is not None
                pc = labels[lbl]
                hops += 1
                if hops > len(micros):
                    raise ValueError(f"{a.name}: goto loop")
            return pc

        def target(label: str) -> int:
            if label not in labels:
                raise ValueError(f"{a.name}: unknown label {label!r}")
            return chase(labels[label])

        # Branches cost no step: they are resolved into the pc of the step before them.
        all_targets = {lbl: target(lbl) for lbl in labels}
        branch_fns: dict[int, tuple[Any, int]] = {}
        for pc, m in enumerate(micros):
            if m.kind == "branch":
                branch_fns[pc] = (m.branch, chase(pc + 1))

        resolve: Resolve | None = None
        if branch_fns:
            def resolve_fn(pc: int, S: list[Any], t: list[Any]) -> int:
                hops = 0
                while pc in branch_fns:
                    fn, fall = branch_fns[pc]
                    r = fn(S, t)
                    pc = fall if r is None else all_targets[r]
                    hops += 1
                    if hops > 64:
                        raise SpecAssertion("spec", f"{a.name}: branch loop")
                return pc
            resolve = resolve_fn

        table: list[Step | None] = [None] * (done + 1)
        nexts: dict[int, set[int]] = {}
        for pc, m in enumerate(micros):
            if m.kind in ("goto", "branch"):
                continue
            nxt = chase(pc + 1)
            jumps = {k: target(v) for k, v in (m.jumps or {}).items()}
            nexts[pc] = {nxt, *jumps.values()}
            table[pc] = self._make_step(m, nxt, jumps, resolve, frozenset(branch_fns))
        texts = [m.text for m in micros] + ["done"]

        # The reduced table: a step that can block only at its start (an acquire, an
        # unguarded atomic, a release) runs the plain releases that follow it in the same step.
        rtable = list(table)
        rtexts = list(texts)
        chain = frozenset(q for q, m in enumerate(micros)
                          if m.kind == "rel" and isinstance(m.lock, int) and m.body is None)
        inline: dict[int, tuple[int, int]] = {}
        for q in chain:
            lock = micros[q].lock
            assert isinstance(lock, int)
            nq = chase(q + 1)
            if nq not in branch_fns:
                inline[q] = (1 << lock, nq)
        for pc, m in enumerate(micros):
            if not (m.kind in ("acq", "rel") or (m.kind == "act" and m.guard is None)):
                continue
            if nexts[pc] & chain:
                first = table[pc]
                assert first is not None
                rtable[pc] = compose_releases(first, table, chain, inline)
                rtexts[pc] = f"{texts[pc]}; then unlocks"
        self.tables.append(table)
        self.rtables.append(rtable)
        self.step_text.append(texts)
        self.rstep_text.append(rtexts)
        self.pos_text.append([m.pos for m in micros] + ["done"])
        rest = {done}
        for lbl in a.rest_labels:
            rest.add(target(lbl))
        self.rest.append(frozenset(rest))
        init_pc = chase(0)
        if resolve is not None:
            # A decision at the very start depends on the initial state only.
            init_pc = resolve(init_pc, list(self._init_globals()), list(init_locals))
        return init_pc

    def _init_globals(self) -> tuple[object, ...]:
        return tuple(fd.init for fd in self.global_fields)

    def _make_step(self, m: _Micro, nxt: int, jumps: dict[str, int],
                   resolve: Resolve | None, branch_pcs: frozenset[int]) -> Step:
        # Resolve branches only in steps that can land on one.
        if resolve is not None and nxt not in branch_pcs and not (
                set(jumps.values()) & branch_pcs):
            resolve = None
        if m.tag is not None and m.body is not None:
            m = _tagged(m, self.events)
        if m.kind == "acq":
            assert m.lock is not None
            return make_acquire(m.lock, self.lock_info, m.body, m.choose, nxt, jumps, resolve)
        if m.kind == "rel":
            assert m.lock is not None
            return make_release(m.lock, self.lock_info, m.body, nxt, jumps, resolve)
        if m.kind == "act":
            return make_act(m.body, m.choose, m.guard, nxt, jumps, resolve)
        if m.kind == "unlocked":
            return make_unlocked(m.message)
        raise ValueError(f"cannot compile {m.kind}")

    # ------------------------------------------------------------------ exploration API
    def make_successors(self, reduced: bool = True) -> Callable[[State], list[State]]:
        """``successors(s)``: every successor state, from the reduced or the full tables."""
        tables = self.rtables if reduced else self.tables
        pairs = [(a, tbl) for a, tbl in zip(self.actor_index, tables, strict=True)]

        def successors(s: State) -> list[State]:
            out: list[State] = []
            for a, tbl in pairs:
                st = tbl[s[a][0]]
                if st is not None:
                    st(s, a, out)
            return out
        return successors

    def labeled_successors(self, s: State, reduced: bool = True
                           ) -> list[tuple[int, str, State]]:
        """Successors with the actor (position in ``actor_names``) and the step's text."""
        tables = self.rtables if reduced else self.tables
        texts = self.rstep_text if reduced else self.step_text
        res: list[tuple[int, str, State]] = []
        for k, a in enumerate(self.actor_index):
            pc = s[a][PC]
            st = tables[k][pc]
            if st is None:
                continue
            out: list[State] = []
            st(s, a, out)
            for ns in out:
                res.append((k, texts[k][pc], ns))
        return res

    def actor_step(self, s: State, k: int, reduced: bool = False) -> list[State]:
        """The successors of ``s`` by actor ``k`` alone (full tables unless ``reduced``)."""
        tables = self.rtables if reduced else self.tables
        st = tables[k][s[self.actor_index[k]][PC]]
        out: list[State] = []
        if st is not None:
            st(s, self.actor_index[k], out)
        return out

    def make_canon(self) -> Callable[[State], State] | None:
        """The symmetry canonicaliser, or None when no two actors are interchangeable."""
        groups = self.groups
        if not groups:
            return None
        if len(groups) == 1:
            lo, hi = groups[0]

            def canon1(s: State) -> State:
                return s[:lo] + tuple(sorted(s[lo:hi])) + s[hi:]
            return canon1

        def canon(s: State) -> State:
            parts: list[Any] = []
            prev = 0
            for lo, hi in groups:
                parts.extend(s[prev:lo])
                parts.extend(sorted(s[lo:hi]))
                prev = hi
            parts.extend(s[prev:])
            return tuple(parts)
        return canon

    def at_rest(self, s: State) -> bool:
        return all(s[a][PC] in self.rest[k] for k, a in enumerate(self.actor_index))

def _tagged(m: _Micro, events: set[str]) -> _Micro:
    """The micro with a body that records its tag when it takes the default outcome."""
    body = m.body
    tag = m.tag
    assert body is not None and tag is not None

    def tagged(*args: Any) -> str | None:
        r = body(*args)
        if r is None:
            events.add(tag)
        return r
    return _Micro(m.kind, m.text, m.pos, m.lock, tagged, m.guard, m.jumps, m.next_label,
                  m.tag, m.branch, m.choose, m.message)


__all__ = ["Builder", "Sometimes", "Spec", "State"]
