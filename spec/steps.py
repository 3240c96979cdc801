"""Step closures: one per position of an actor, specialised at build time.

A step is ``step(s, a, out)``: from state ``s`` it appends the successor states of the actor whose
locals are ``s[a]`` to ``out`` (nothing when the actor is blocked).  The explorer spends nearly
all its time in these, so everything known when the spec is built (the lock bit, whether the
lock is a mutex, the next position, whether a branch must be resolved after the step) is bound
into the closure and the common cases (a static lock, no choice, no branch after) take a path
with no extra calls.

Relies on ``spec.protocol``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .protocol import G_HELD, HELD, PC, Body, Choose, LockRef, SpecAssertion

State = tuple[Any, ...]
Step = Callable[[State, int, list[State]], None]
Resolve = Callable[[int, list[Any], list[Any]], int]


class LockInfo:
    """What a step needs to know about the locks of the spec."""

    def __init__(self, names: Sequence[str], mutex: Sequence[bool]) -> None:
        self.names = list(names)
        self.mutex = list(mutex)
        self.spin_mask = sum(1 << i for i, m in enumerate(mutex) if not m)


def _emitter(nxt: int, jumps: dict[str, int], resolve: Resolve | None
             ) -> Callable[[list[Any], list[Any], str | None, list[State], int], None]:
    def emit(S: list[Any], t: list[Any], r: str | None, out: list[State], a: int) -> None:
        pc = nxt if r is None else jumps[r]
        if resolve is not None:
            pc = resolve(pc, S, t)
        t[PC] = pc
        S[a] = tuple(t)
        out.append(tuple(S))
    return emit


def _runner(body: Body | None, choose: Choose | None,
            emit: Callable[[list[Any], list[Any], str | None, list[State], int], None]
            ) -> Callable[[list[Any], list[Any], list[State], int], None]:
    def run(S: list[Any], t: list[Any], out: list[State], a: int) -> None:
        if body is None:
            emit(S, t, None, out, a)
        elif choose is None:
            emit(S, t, body(S, t), out, a)
        else:
            options = choose(S, t)
            if not options:
                emit(S, t, body(S, t, None), out, a)
            elif len(options) == 1:
                emit(S, t, body(S, t, options[0]), out, a)
            else:
                for c in options:
                    S2, t2 = S.copy(), t.copy()
                    emit(S2, t2, body(S2, t2, c), out, a)
    return run


def make_acquire(ref: LockRef, locks: LockInfo, body: Body | None, choose: Choose | None,
                 nxt: int, jumps: dict[str, int], resolve: Resolve | None) -> Step:
    if isinstance(ref, int) and choose is None and resolve is None:
        bit = 1 << ref
        name = locks.names[ref]
        mutex_spin = locks.spin_mask if locks.mutex[ref] else 0

        def acquire_fast(s: State, a: int, out: list[State]) -> None:
            g = s[G_HELD]
            if g & bit:
                if s[a][HELD] & bit:
                    raise SpecAssertion("lock", f"{name} taken twice by the same thread "
                                                "(self-deadlock)")
                return
            t = list(s[a])
            if t[HELD] & mutex_spin:
                raise SpecAssertion("lock", f"mutex {name} taken while holding a spinlock "
                                            "(sleeping in atomic context)")
            S = list(s)
            S[G_HELD] = g | bit
            t[HELD] |= bit
            if body is None:
                t[PC] = nxt
            else:
                r = body(S, t)
                t[PC] = nxt if r is None else jumps[r]
            S[a] = tuple(t)
            out.append(tuple(S))
        return acquire_fast

    if isinstance(ref, int) and choose is not None and resolve is None and body is not None:
        cbit = 1 << ref
        cname = locks.names[ref]
        cmutex_spin = locks.spin_mask if locks.mutex[ref] else 0

        def acquire_choose(s: State, a: int, out: list[State]) -> None:
            g = s[G_HELD]
            if g & cbit:
                if s[a][HELD] & cbit:
                    raise SpecAssertion("lock", f"{cname} taken twice by the same thread "
                                                "(self-deadlock)")
                return
            t = list(s[a])
            if t[HELD] & cmutex_spin:
                raise SpecAssertion("lock", f"mutex {cname} taken while holding a spinlock "
                                            "(sleeping in atomic context)")
            S = list(s)
            S[G_HELD] = g | cbit
            t[HELD] |= cbit
            options = choose(S, t)
            if len(options) <= 1:
                r = body(S, t, options[0] if options else None)
                t[PC] = nxt if r is None else jumps[r]
                S[a] = tuple(t)
                out.append(tuple(S))
                return
            for c in options:
                S2, t2 = S.copy(), t.copy()
                r = body(S2, t2, c)
                t2[PC] = nxt if r is None else jumps[r]
                S2[a] = tuple(t2)
                out.append(tuple(S2))
        return acquire_choose

    run = _runner(body, choose, _emitter(nxt, jumps, resolve))

    def acquire(s: State, a: int, out: list[State]) -> None:
        t = list(s[a])
        idx = ref if isinstance(ref, int) else ref(t)
        bit = 1 << idx
        if s[G_HELD] & bit:
            if t[HELD] & bit:
                raise SpecAssertion("lock", f"{locks.names[idx]} taken twice by the same "
                                            "thread (self-deadlock)")
            return
        if locks.mutex[idx] and t[HELD] & locks.spin_mask:
            raise SpecAssertion("lock", f"mutex {locks.names[idx]} taken while holding a "
                                        "spinlock (sleeping in atomic context)")
        S = list(s)
        S[G_HELD] = s[G_HELD] | bit
        t[HELD] |= bit
        run(S, t, out, a)
    return acquire


def make_release(ref: LockRef, locks: LockInfo, body: Body | None, nxt: int,
                 jumps: dict[str, int], resolve: Resolve | None) -> Step:
    if isinstance(ref, int) and resolve is None and body is None:
        bit = 1 << ref
        name = locks.names[ref]

        def release_fast(s: State, a: int, out: list[State]) -> None:
            t = list(s[a])
            if not t[HELD] & bit:
                raise SpecAssertion("lock", f"{name} released but not held")
            S = list(s)
            S[G_HELD] = s[G_HELD] & ~bit
            t[HELD] &= ~bit
            t[PC] = nxt
            S[a] = tuple(t)
            out.append(tuple(S))
        return release_fast

    run = _runner(body, None, _emitter(nxt, jumps, resolve))

    def release(s: State, a: int, out: list[State]) -> None:
        t = list(s[a])
        idx = ref if isinstance(ref, int) else ref(t)
        bit = 1 << idx
        if not t[HELD] & bit:
            raise SpecAssertion("lock", f"{locks.names[idx]} released but not held")
        S = list(s)
        S[G_HELD] = s[G_HELD] & ~bit
        t[HELD] &= ~bit
        run(S, t, out, a)
    return release


def make_act(body: Body | None, choose: Choose | None,
             guard: Callable[[State, State], bool] | None,
             nxt: int, jumps: dict[str, int], resolve: Resolve | None) -> Step:
    if choose is None and resolve is None and body is not None:
        def act_fast(s: State, a: int, out: list[State]) -> None:
            if guard is not None and not guard(s, s[a]):
                return
            S = list(s)
            t = list(s[a])
            r = body(S, t)
            t[PC] = nxt if r is None else jumps[r]
            S[a] = tuple(t)
            out.append(tuple(S))
        return act_fast

    run = _runner(body, choose, _emitter(nxt, jumps, resolve))

    def act(s: State, a: int, out: list[State]) -> None:
        if guard is not None and not guard(s, s[a]):
            return
        run(list(s), list(s[a]), out, a)
    return act


def make_unlocked(message: str) -> Step:
    """A section that touches a structure without the lock protecting it: reaching it breaks
    the lock protocol."""
    def unlocked(s: State, a: int, out: list[State]) -> None:
        raise SpecAssertion("lock-protection", message)
    return unlocked


def compose_releases(first: Step, table: list[Step | None], chain: frozenset[int],
                     inline: dict[int, tuple[int, int]]) -> Step:
    """``first`` followed, in the same step, by every plain release it leads to.

    ``chain`` holds the positions of the plain releases (a static lock, no code after the
    unlock); ``inline`` maps those whose next position needs no branch resolved to their lock
    bit and next position, so they are applied to the state directly, the others run their own
    step."""
    def reduced(s: State, a: int, out: list[State]) -> None:
        todo: list[State] = []
        first(s, a, todo)
        while todo:
            m = todo.pop()
            t0 = m[a]
            pc = t0[PC]
            if pc not in chain:
                out.append(m)
            elif pc not in inline:
                rel = table[pc]
                assert rel is not None
                rel(m, a, todo)
            else:
                held = t0[HELD]
                g = m[G_HELD]
                while pc in inline:
                    bit, pc = inline[pc]
                    if not held & bit:
                        raise SpecAssertion("lock", "a lock released but not held")
                    held &= ~bit
                    g &= ~bit
                t = list(t0)
                t[PC] = pc
                t[HELD] = held
                S = list(m)
                S[G_HELD] = g
                S[a] = tuple(t)
                (todo if pc in chain else out).append(tuple(S))
    return reduced
