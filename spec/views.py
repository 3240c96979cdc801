"""What a compiled spec says about a state: its invariants, and its readable form.

``SpecViews`` is the half of ``spec.compile.Spec`` that looks at states rather than making them:
the ownership and lock invariants common to every spec (generated as one flat expression for the
state layout, since the explorer runs it on every new state), the design's own invariants, the
explanation of a broken one, the owners of every page, and ``describe`` (pages as ranges, lock
holders, each actor's position) for traces.

Relies on ``spec.masks`` and the field layout of ``spec.protocol``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .masks import AREA_SHIFT, fmt, fmt_codes
from .protocol import AUX, G_HELD, HAND, HELD, PC

State = tuple[Any, ...]
Check = Callable[[State], "str | None"]
OWNER_KINDS = ("mask", "codes")


@dataclass(frozen=True)
class FieldDef:
    """A global or local field: ``owner`` is "mask" or "codes" when it owns pages; ``show`` is
    how ``describe`` prints a field that owns nothing ("codes" for area annotations)."""

    name: str
    init: object
    owner: str | None
    show: str | None = None
    coalesced: bool = False


@dataclass(frozen=True)
class LockDef:
    name: str
    lock_class: str
    mutex: bool


class CodesSummary:
    """Memoised (sum of masks, OR of masks, pages) of a tuple of area codes: the few distinct
    tuples a search meets are summarised once."""

    def __init__(self) -> None:
        self.memo: dict[tuple[int, ...], tuple[int, int, int]] = {(): (0, 0, 0)}

    def __call__(self, codes: tuple[int, ...]) -> tuple[int, int, int]:
        got = self.memo.get(codes)
        if got is None:
            total = acc = 0
            for c in codes:
                m = c >> AREA_SHIFT
                total += m
                acc |= m
            got = self.memo[codes] = (total, acc, acc.bit_count())
        return got


class SpecViews:
    """Invariants and presentation; mixed into ``Spec``, which provides the layout."""

    name: str
    pages: int
    all_pages: int
    global_fields: list[FieldDef]
    local_fields: list[FieldDef]
    locks: list[LockDef]
    actor_names: list[str]
    actor_index: list[int]
    pos_text: list[list[str]]
    slot_index: list[dict[str, int]]
    invariant_defs: list[tuple[str, Callable[[Any], Check]]]
    params: dict[str, object]
    codes_summary: CodesSummary
    check: Callable[[State], tuple[str, str] | None]

    # ------------------------------------------------------------------ invariants
    def _make_checks(self) -> None:
        self.codes_summary = CodesSummary()
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
        sums: list[str] = []
        ors: list[str] = []
        lines = ["def fast(s):"]
        n = 0
        for i, f in enumerate(self.global_fields):
            if f.owner == "mask":
                sums.append(f"s[{i}]")
                ors.append(f"s[{i}]")
            elif f.owner == "codes":
                lines.append(f"    a{n}, o{n}, _ = cs(s[{i}])")
                sums.append(f"a{n}")
                ors.append(f"o{n}")
                n += 1
        held: list[str] = []
        for k, a in enumerate(self.actor_index):
            lines.append(f"    t{k} = s[{a}]")
            held.append(f"t{k}[{HELD}]")
            for i, f in enumerate(self.local_fields):
                if f.owner == "mask":
                    sums.append(f"t{k}[{i}]")
                    ors.append(f"t{k}[{i}]")
                elif f.owner == "codes":
                    lines.append(f"    a{n}, o{n}, _ = cs(t{k}[{i}])")
                    sums.append(f"a{n}")
                    ors.append(f"o{n}")
                    n += 1
        lines.append(f"    total = {' + '.join(sums) or '0'}")
        lines.append(f"    acc = {' | '.join(ors) or '0'}")
        lines.append(f"    h = {' + '.join(held) or '0'}")
        lines.append(f"    hh = {' | '.join(held) or '0'}")
        lines.append(f"    return total == acc == {self.all_pages} and h == hh == s[{G_HELD}]")
        env: dict[str, Any] = {"cs": self.codes_summary}
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

    def pages_sum(self, mask_fields: list[int], codes_fields: list[int],
                  local: int | None = None) -> Callable[[State], int]:
        """``f(s)``: pages in the given global mask and codes fields, plus the sum over all
        actors of local ``local`` (generated, for counter invariants)."""
        terms = [f"s[{f}].bit_count()" for f in mask_fields]
        terms += [f"cs(s[{f}])[2]" for f in codes_fields]
        if local is not None:
            terms += [f"s[{a}][{local}]" for a in self.actor_index]
        env: dict[str, Any] = {"cs": self.codes_summary}
        exec(f"def f(s):\n    return {' + '.join(terms) or '0'}", env)  # noqa: S102
        fn: Callable[[State], int] = env["f"]
        return fn

    def slots_held(self, busy_fields: list[int]) -> Callable[[State], bool]:
        """``f(s)``: every area a thread allocated and has not freed (a non-empty slot) is in
        one of ``busy_fields`` or in the thread's hands (generated for the layout)."""
        slot_index: list[dict[str, int]] = getattr(self, "slot_index", [])
        lines = ["def f(s):", f"    b = {' | '.join(f's[{f}]' for f in busy_fields) or '0'}"]
        for k, a in enumerate(self.actor_index):
            idx = sorted(slot_index[k].values()) if k < len(slot_index) else []
            if not idx:
                continue
            lines.append(f"    t = s[{a}]")
            lines.append(f"    h = ~(t[{HAND}] | b)")
            cond = " or ".join(f"(t[{i}] >> {AREA_SHIFT}) & h" for i in idx)
            lines.append(f"    if {cond}:")
            lines.append("        return False")
        lines.append("    return True")
        env: dict[str, Any] = {}
        exec("\n".join(lines), env)  # noqa: S102 - generated from the layout
        fn: Callable[[State], bool] = env["f"]
        return fn

    def owners(self, s: State) -> list[tuple[str, int]]:
        """Every owner of pages in ``s`` with its mask (slow; for messages)."""
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

    def owned_once(self, s: State) -> Any:
        """Single owner, conservation and lock exclusion as one truth value, without branches:
        each owner's pages apart from all before it and together the whole range; each actor's
        locks apart from all before it and together the global held mask.  The rules of the
        generated check (a test compares the two), written so that a symbolic state (a proof
        over page sets) gives one formula instead of a path per rule."""
        ok: Any = True
        acc: Any = 0
        for _, m in self.owners(s):
            ok = ok & ((acc & m) == 0)
            acc = acc | m
        ok = ok & (acc == self.all_pages)
        held: Any = 0
        for a in self.actor_index:
            h = s[a][HELD]
            ok = ok & ((held & h) == 0)
            held = held | h
        return ok & (held == s[G_HELD])

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
                names = [lk.name for i, lk in enumerate(self.locks) if held & h >> i & 1]
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

    @staticmethod
    def _show(f: FieldDef, v: Any) -> Any:
        kind = f.owner or f.show
        if kind == "mask":
            return fmt(v)
        if kind == "codes":
            return fmt_codes(v)
        if kind == "masks":
            return [fmt(m) for m in v]
        return v

    def describe(self, s: State) -> dict[str, Any]:
        """A readable form of a state: owners of pages, lock holders, actor positions."""
        glob: dict[str, Any] = {}
        for i, f in enumerate(self.global_fields):
            if i != G_HELD:
                glob[f.name] = self._show(f, s[i])
        actors: dict[str, Any] = {}
        for k, a in enumerate(self.actor_index):
            t = s[a]
            d: dict[str, Any] = {"at": self.pos_text[k][t[PC]]}
            if t[HAND]:
                d["hand"] = fmt(t[HAND])
            for i, f in enumerate(self.local_fields):
                if i in (PC, HELD, HAND, AUX) or t[i] == f.init:
                    continue
                d[f.name] = self._show(f, t[i])
            slots = {n: fmt(t[i] >> AREA_SHIFT) for n, i in self.slot_index[k].items() if t[i]}
            if slots:
                d["slots"] = slots
            actors[self.actor_names[k]] = d
        return {"globals": glob, "locks": self.lock_holders(s), "actors": actors}

    def summary(self) -> dict[str, Any]:
        return {"spec": self.name, "pages": self.pages, **self.params,
                "actors": list(self.actor_names),
                "locks": [lk.name for lk in self.locks]}
