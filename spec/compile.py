"""Compile a protocol table (``spec.protocol``) into a fast transition system (``Spec``).

A state is a flat tuple: the global fields first (field 0 is the mask of held locks), then one
tuple of small ints per actor (its locals; field 0 is its position).  Thread identities appear
nowhere in the globals (who holds a lock is in the holder's locals), so two actors running the
same step table can be swapped by permuting their tuples alone: that is what makes symmetry
reduction automatic (``Spec.canon`` sorts the tuples of each group of identical actors).

Each position of each actor compiles to one closure ``step(s, a, out)`` that appends the
successor states of actor ``a`` (its index in the state) to ``out``; a blocked or finished actor
appends nothing.  Everything that can be decided at build time (lock bits, jump targets,
protection) is bound into the closures.

Relies on ``spec.protocol`` and ``spec.masks``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .masks import AREA_SHIFT, fmt, fmt_codes
from .protocol import (
    AUX,
    G_HELD,
    HAND,
    HELD,
    N_COMMON,
    PC,
    SCRATCH,
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
    make_acquire,
    make_act,
    make_read,
    make_release,
    make_write,
)

Check = Callable[[State], "str | None"]

OWNER_KINDS = ("mask", "codes")


@dataclass(frozen=True)
class FieldDef:
    name: str
    init: object
    owner: str | None  # "mask" or "codes" when the field owns pages, else None


@dataclass(frozen=True)
class LockDef:
    name: str
    lock_class: str
    mutex: bool


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
        self.globals: list[FieldDef] = [FieldDef("locks", 0, None)]
        self.extra_locals: list[FieldDef] = []
        self.locks: list[LockDef] = []
        self.protects: dict[int, int] = {}
        self.actors: list[ActorDef] = []
        self.invariants: list[tuple[str, Callable[[Spec], Check]]] = []
        self.sometimes: list[Sometimes] = []

    # ------------------------------------------------------------------ declarations
    def glob(self, name: str, init: object, owner: str | None = None) -> int:
        assert owner is None or owner in OWNER_KINDS
        self.globals.append(FieldDef(name, init, owner))
        return len(self.globals) - 1

    def local(self, name: str, init: object, owner: str | None = None) -> int:
        assert owner is None or owner in OWNER_KINDS
        self.extra_locals.append(FieldDef(name, init, owner))
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

    kind: str  # acq, rel, act, read, write, branch, goto
    text: str
    pos: str
    lock: LockRef | None = None
    body: Body | None = None
    guard: Any = None
    jumps: dict[str, str] | None = None  # body result -> label
    next_label: str | None = None  # for goto and release chains
    field: int = -1
    tag: str | None = None
    branch: Any = None
    choose: Any = None


def _join(*parts: str) -> str:
    return ", ".join(p for p in parts if p)


class Spec:
    """A compiled spec for one configuration: initial state, steps, invariants, symmetry."""

    def __init__(self, b: Builder) -> None:
        self.name = b.name
        self.pages = b.pages
        self.all_pages = (1 << b.pages) - 1
        self.params = b.params
        self.global_fields = list(b.globals)
        self.G = len(b.globals)
        self.local_fields = [FieldDef("pc", 0, None), FieldDef("held", 0, None),
                             FieldDef("hand", 0, "mask"), FieldDef("scratch", 0, None),
                             FieldDef("aux", 0, None), *b.extra_locals]
        self.locks = list(b.locks)
        self.protects = dict(b.protects)
        self.lock_info = LockInfo([lk.name for lk in self.locks], [lk.mutex for lk in self.locks])
        self.sometimes = list(b.sometimes)
        self.invariant_defs = list(b.invariants)

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
        self.step_text: list[list[str]] = []
        self.pos_text: list[list[str]] = []
        self.rest: list[frozenset[int]] = []
        self.tag_pcs: dict[str, list[dict[int, frozenset[int]]]] = {}
        self.slot_index: list[dict[str, int]] = []
        inits: list[tuple[object, ...]] = []
        for a in actors:
            n_locals = N_COMMON + len(b.extra_locals) + len(a.slots)
            loc: list[Any] = [0] * n_locals
            for i, fd in enumerate(self.local_fields):
                loc[i] = fd.init
            table, texts, pos, rest, tags, init_pc = self._compile_actor(a, loc)
            self.tables.append(table)
            self.step_text.append(texts)
            self.pos_text.append(pos)
            self.rest.append(rest)
            self.slot_index.append(dict(a.slots))
            for tag, pcs in tags.items():
                self.tag_pcs.setdefault(tag, [{} for _ in actors])[len(self.tables) - 1] = pcs
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
                micros.append(_Micro("rel", f"unlock {name}",
                                     _join(op_text, holding([]), f"before unlocking {name}"),
                                     lock=ins.lock))
                if ins.lock in outer:
                    outer.remove(ins.lock)
            elif isinstance(ins, Sec):
                after = new_label()
                bad = unprotected(ins.touches, [*outer, *ins.locks])
                if len(bad) > 1:
                    raise ValueError(f"{ins.what}: more than one unprotected field")
                if bad and ins.choose is not None:
                    raise ValueError(f"{ins.what}: an unprotected section cannot choose")
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
                    micros.append(_Micro("read", f"read {fname} without its lock ({ins.what})",
                                         _join(op_text, holding(taken), f"before {ins.what}"),
                                         field=bad[0]))
                    micros.append(_Micro("write", f"{ins.what}: write {fname} back",
                                         _join(op_text, holding(taken),
                                               f"{ins.what}: read {fname}, not yet written"),
                                         body=ins.body, jumps=chains, field=bad[0], tag=ins.tag))
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

    def _compile_actor(self, a: ActorDef, init_locals: list[Any]) -> tuple[
            list[Step | None], list[str], list[str], frozenset[int],
            dict[str, dict[int, frozenset[int]]], int]:
        micros, labels = self._expand(a)
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
        texts = [m.text for m in micros] + ["done"]
        pos = [m.pos for m in micros] + ["done"]
        tags: dict[str, dict[int, frozenset[int]]] = {}
        for pc, m in enumerate(micros):
            if m.kind in ("goto", "branch"):
                continue
            nxt = chase(pc + 1)
            jumps = {k: target(v) for k, v in (m.jumps or {}).items()}
            table[pc] = self._make_step(m, nxt, jumps, resolve, frozenset(branch_fns))
            if m.tag is not None:
                tags.setdefault(m.tag, {})[pc] = frozenset(jumps.values())
        rest = {done}
        for lbl in a.rest_labels:
            rest.add(target(lbl))
        init_pc = chase(0)
        if resolve is not None:
            # A decision at the very start depends on the initial state only.
            init_pc = resolve(init_pc, list(self._init_globals()), list(init_locals))
        return table, texts, pos, frozenset(rest), tags, init_pc

    def _init_globals(self) -> tuple[object, ...]:
        return tuple(fd.init for fd in self.global_fields)

    def _make_step(self, m: _Micro, nxt: int, jumps: dict[str, int],
                   resolve: Resolve | None, branch_pcs: frozenset[int]) -> Step:
        # Resolve branches only in steps that can land on one.
        if resolve is not None and nxt not in branch_pcs and not (
                set(jumps.values()) & branch_pcs):
            resolve = None
        if m.kind == "acq":
            assert m.lock is not None
            return make_acquire(m.lock, self.lock_info, m.body, m.choose, nxt, jumps, resolve)
        if m.kind == "rel":
            assert m.lock is not None
            return make_release(m.lock, self.lock_info, nxt, resolve)
        if m.kind == "act":
            return make_act(m.body, m.choose, m.guard, nxt, jumps, resolve)
        if m.kind == "read":
            return make_read(m.field, nxt)
        if m.kind == "write":
            assert m.body is not None
            return make_write(m.field, m.body, nxt, jumps, resolve)
        raise ValueError(f"cannot compile {m.kind}")

    # ------------------------------------------------------------------ exploration API
    def successors(self, s: State) -> list[State]:
        out: list[State] = []
        for k, a in enumerate(self.actor_index):
            st = self.tables[k][s[a][PC]]
            if st is not None:
                st(s, a, out)
        return out

    def make_successors(self) -> Callable[[State], list[State]]:
        """A closure over the step tables, faster than the method in a tight loop."""
        pairs = [(a, tbl) for a, tbl in zip(self.actor_index, self.tables, strict=True)]

        def successors(s: State) -> list[State]:
            out: list[State] = []
            for a, tbl in pairs:
                st = tbl[s[a][0]]
                if st is not None:
                    st(s, a, out)
            return out
        return successors

    def labeled_successors(self, s: State) -> list[tuple[int, str, State]]:
        """Successors with the actor (position in ``actor_names``) and the step's text."""
        res: list[tuple[int, str, State]] = []
        for k, a in enumerate(self.actor_index):
            pc = s[a][PC]
            st = self.tables[k][pc]
            if st is None:
                continue
            out: list[State] = []
            st(s, a, out)
            for ns in out:
                res.append((k, self.step_text[k][pc], ns))
        return res

    def actor_step(self, s: State, k: int) -> list[State]:
        """The successors of ``s`` by actor ``k`` alone."""
        st = self.tables[k][s[self.actor_index[k]][PC]]
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

    def event_predicate(self, tag: str) -> Callable[[State, State], bool]:
        """``pred(pre, post)``: some actor ran the step tagged ``tag`` and took its default
        outcome (the body fell through rather than jumping)."""
        per_actor = [(a, pcs) for a, pcs in zip(self.actor_index,
                                                  self.tag_pcs.get(tag, []), strict=False) if pcs]

        def pred(pre: State, post: State) -> bool:
            for a, pcs in per_actor:
                t0 = pre[a]
                jumps = pcs.get(t0[PC])
                if jumps is not None:
                    t1 = post[a]
                    if t1 is not t0 and t1 != t0 and t1[PC] not in jumps:
                        return True
            return False
        return pred

    def at_rest(self, s: State) -> bool:
        return all(s[a][PC] in self.rest[k] for k, a in enumerate(self.actor_index))

    # ------------------------------------------------------------------ invariants
    def _make_checks(self) -> None:
        design = [(name, make(self)) for name, make in self.invariant_defs]
        fast = self._generate_fast_check()

        def check(s: State) -> tuple[str, str] | None:
            if not fast(s):
                return self._explain(s)
            for name, fn in design:
                msg = fn(s)
                if msg is not None:
                    return name, msg
            return None

        self.check = check

    def _generate_fast_check(self) -> Callable[[State], bool]:
        """Single owner, conservation and lock exclusion in one generated expression.

        Pairwise-disjoint masks are exactly those whose sum equals their OR, so one sum and one
        OR over every owner decide both "no page has two owners" and, compared with the whole
        range, "no page is lost"; the held-lock masks are checked the same way.  The code is
        generated for this spec's layout so that the check is one flat expression.
        """
        masks: list[str] = []
        lines = ["def fast(s):"]
        for i, f in enumerate(self.global_fields):
            if f.owner == "mask":
                masks.append(f"s[{i}]")
            elif f.owner == "codes":
                lines.append(f"    c{i} = [c >> {AREA_SHIFT} for c in s[{i}]]")
                masks.append(f"sum(c{i})")
                masks.append(f"_or(c{i})")
        held: list[str] = []
        for k, a in enumerate(self.actor_index):
            lines.append(f"    t{k} = s[{a}]")
            held.append(f"t{k}[{HELD}]")
            for i, f in enumerate(self.local_fields):
                if f.owner == "mask":
                    masks.append(f"t{k}[{i}]")
                elif f.owner == "codes":
                    lines.append(f"    d{k}_{i} = [c >> {AREA_SHIFT} for c in t{k}[{i}]]")
                    masks.append(f"sum(d{k}_{i})")
                    masks.append(f"_or(d{k}_{i})")
        # A codes field contributes its sum to the sum and its OR to the OR.
        sum_terms = [m for m in masks if not m.startswith("_or(")]
        or_terms = [m.replace("sum(", "_or(") if m.startswith("sum(") else m
                    for m in masks if not m.startswith("_or(")]
        lines.append(f"    total = {' + '.join(sum_terms) or '0'}")
        lines.append(f"    acc = {' | '.join(or_terms) or '0'}")
        lines.append(f"    h = {' + '.join(held) or '0'}")
        lines.append(f"    hh = {' | '.join(held) or '0'}")
        lines.append(f"    return total == acc == {self.all_pages} and h == hh == s[{G_HELD}]")
        env: dict[str, Any] = {"_or": _or_all}
        exec("\n".join(lines), env)  # noqa: S102 - code generated from our own layout
        fn: Callable[[State], bool] = env["fast"]
        return fn

    def local_sum(self, field: int) -> Callable[[State], int]:
        """``f(s)``: the sum over all actors of local ``field`` (generated, for invariants)."""
        terms = " + ".join(f"s[{a}][{field}]" for a in self.actor_index) or "0"
        env: dict[str, Any] = {}
        exec(f"def f(s):\n    return {terms}", env)  # noqa: S102 - generated from the layout
        fn: Callable[[State], int] = env["f"]
        return fn

    def owners(self, s: State) -> list[tuple[str, int]]:
        """Every owner of pages in ``s`` with its mask (slow; for messages and refinement)."""
        out: list[tuple[str, int]] = []
        for i, f in enumerate(self.global_fields):
            if f.owner == "mask":
                out.append((f.name, s[i]))
            elif f.owner == "codes":
                for c in s[i]:
                    out.append((f.name, c >> AREA_SHIFT))
        for k, a in enumerate(self.actor_index):
            for i, f in enumerate(self.local_fields):
                if f.owner == "mask":
                    out.append((f"{f.name}:{self.actor_names[k]}", s[a][i]))
                elif f.owner == "codes":
                    for c in s[a][i]:
                        out.append((f"{f.name}:{self.actor_names[k]}", c >> AREA_SHIFT))
        return out

    def _explain(self, s: State) -> tuple[str, str]:
        owners = [(n, m) for n, m in self.owners(s) if m]
        for i, (n1, m1) in enumerate(owners):
            for n2, m2 in owners[i + 1:]:
                if m1 & m2:
                    return ("single-owner",
                            f"pages {fmt(m1 & m2)} are owned by both {n1} and {n2}")
        acc = 0
        for _, m in owners:
            acc |= m
        if acc != self.all_pages:
            return ("conservation",
                    f"pages {fmt(self.all_pages & ~acc)} are owned by nothing (lost)")
        held = 0
        for a in self.actor_index:
            h = s[a][HELD]
            if held & h:
                names = [self.locks[i].name for i in range(len(self.locks)) if held & h >> i & 1]
                return "mutual-exclusion", f"{', '.join(names)} held by two threads at once"
            held |= h
        return "lock-state", "the held-lock mask disagrees with the holders"

    # ------------------------------------------------------------------ presentation
    def lock_holders(self, s: State) -> dict[str, str]:
        out: dict[str, str] = {}
        for k, a in enumerate(self.actor_index):
            h = s[a][HELD]
            for i, lk in enumerate(self.locks):
                if h >> i & 1:
                    out[lk.name] = self.actor_names[k]
        return out

    def describe(self, s: State) -> dict[str, Any]:
        """A readable form of a state: owners of pages, lock holders, actor positions."""
        glob: dict[str, Any] = {}
        for i, f in enumerate(self.global_fields):
            if i == G_HELD:
                continue
            v = s[i]
            if f.owner == "mask":
                glob[f.name] = fmt(v)
            elif f.owner == "codes":
                glob[f.name] = fmt_codes(v)
            else:
                glob[f.name] = v
        actors: dict[str, Any] = {}
        for k, a in enumerate(self.actor_index):
            t = s[a]
            d: dict[str, Any] = {"at": self.pos_text[k][t[PC]]}
            if t[HAND]:
                d["hand"] = fmt(t[HAND])
            for i, f in enumerate(self.local_fields):
                if i in (PC, HELD, HAND, SCRATCH, AUX):
                    continue
                if f.owner == "codes" and t[i]:
                    d[f.name] = fmt_codes(t[i])
                elif f.owner == "mask" and t[i]:
                    d[f.name] = fmt(t[i])
                elif f.owner is None and t[i] != f.init:
                    d[f.name] = t[i]
            slots = {n: fmt(self.slot_mask(t[i])) for n, i in self.slot_index[k].items() if t[i]}
            if slots:
                d["slots"] = slots
            actors[self.actor_names[k]] = d
        return {"globals": glob, "locks": self.lock_holders(s), "actors": actors}

    @staticmethod
    def slot_mask(v: object) -> int:
        """A slot holds an area code (mask and tag); 0 when empty."""
        assert isinstance(v, int)
        return v >> AREA_SHIFT

    def summary(self) -> dict[str, Any]:
        return {"spec": self.name, "pages": self.pages, **self.params,
                "actors": list(self.actor_names),
                "locks": [lk.name for lk in self.locks]}


def _or_all(masks: list[int]) -> int:
    acc = 0
    for m in masks:
        acc |= m
    return acc


__all__ = ["AUX", "Builder", "Sometimes", "Spec", "State"]
