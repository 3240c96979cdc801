"""Spec of the ``global`` design (Linux 6.1-6.8): three global spinlocks, a purge mutex, a drain.

State: the free space, the busy set and the purge (lazy) list as page masks (both the free tree
and the purge tree coalesce, so their areas are the maximal runs of the masks), the atomic
``vmap_lazy_nr``, whether ``drain_vmap_work`` is pending, and per actor its position, the locks
it holds and the pages in its hands.  Each thread's local ``counted`` is how many pages in its
hands ``vmap_lazy_nr`` already counts (a free between its atomic add and its insert, a purge
between its detach and its subtractions): with it the counter has an exact invariant.

Operations, as reference section 1.2 and ``impl/designs/global_.py`` take the locks:

- alloc: under ``free_vmap_area_lock`` carve the lowest fit (free -> hand); under
  ``vmap_area_lock`` insert it (hand -> busy); take ``vmap_area_lock`` once more
  (``setup_vmalloc_vm``).  On failure: purge under ``vmap_purge_lock``, retry once, then fail.
- free: under ``vmap_area_lock`` unlink (busy -> hand); ``atomic_long_add_return``; under
  ``purge_vmap_area_lock`` insert (hand -> lazy); ``schedule_work`` if over ``lazy_max``.
- ``__purge_vmap_area_lazy`` (caller holds the mutex): under ``purge_vmap_area_lock`` detach the
  list (lazy -> hand); if not empty, under ``free_vmap_area_lock`` merge each area
  (hand -> free) followed by its ``atomic_long_sub``.
- ``drain_vmap_work``: purge under the mutex, again while ``vmap_lazy_nr > lazy_max``.

Each step is one sync operation plus the code after it, as the controlled runtime schedules
them, so the implementation maps onto this spec step by step (``checker/refinement.py``).

Relies on ``spec.compile``, ``spec.protocol``, ``spec.masks`` and ``spec.program``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .compile import Builder, Spec
from .masks import fit_choices, fmt, high_page, low_page, lowest_run
from .params import SpecParams
from .program import Alloc, Find, Free, Op, Purge
from .protocol import (
    AUX,
    HAND,
    Acquire,
    Act,
    ActorDef,
    Branch,
    Goto,
    Instr,
    Label,
    Release,
    Sec,
    SpecAssertion,
)
from .protocol import Op as OpMark

LOCKS = ("free_vmap_area_lock", "vmap_area_lock", "purge_vmap_area_lock", "vmap_purge_lock")


def op_slots(ops: tuple[Op, ...]) -> list[str]:
    """Every slot name a program mentions, in order of first mention."""
    out: list[str] = []
    for op in ops:
        slot = getattr(op, "slot", None)
        if slot is not None and slot not in out:
            out.append(slot)
    return out


class GlobalSpec:
    """Builds the spec of the global design; mutants override the pieces they change."""

    name = "global"

    def __init__(self, params: SpecParams) -> None:
        self.p = params
        self._labels = 0

    # ------------------------------------------------------------------ layout
    def build(self) -> Spec:
        p = self.p
        b = Builder(self.name, p.pages, {"lazy_max": p.lazy_max})
        self.b = b
        self.FREE = b.glob("free", (1 << p.pages) - 1, owner="mask", coalesced=True)
        self.BUSY = b.glob("busy", 0, owner="mask")
        self.LAZY = b.glob("lazy", 0, owner="mask", coalesced=True)
        self.NR = b.glob("vmap_lazy_nr", 0)
        self.PENDING = b.glob("drain pending", 0)
        self.COUNTED = b.local("counted", 0)
        self.L_FREE = b.lock("free_vmap_area_lock", protects=[self.FREE])
        self.L_BUSY = b.lock("vmap_area_lock", protects=[self.BUSY])
        self.L_PURGE = b.lock("purge_vmap_area_lock", protects=[self.LAZY])
        self.L_MUTEX = b.lock("vmap_purge_lock", mutex=True)
        for i, prog in enumerate(p.programs):
            slots = b.slot_fields(op_slots(prog.ops))
            instrs: list[Instr] = []
            for op in prog.ops:
                instrs += self.op_instrs(op, slots)
            b.actor(ActorDef(f"T{i}", instrs, signature=self.signature(prog), slots=slots,
                             thread=i))
        b.actor(ActorDef("drain_vmap_work", self.worker_instrs(), signature="drain_vmap_work",
                         rest_labels=("idle",), kind="worker"))
        self.add_invariants()
        b.sometimes_step("purge", "a purge returns lazily freed areas to the free space", "purge")
        b.sometimes_step("alloc-after-purge", "an allocation fails, purges and then succeeds",
                         "alloc-after-purge")
        return b.build()

    def signature(self, prog: Any) -> object:
        # The global design never looks at the CPU: threads with equal programs are symmetric.
        return ("thread", prog.ops)

    def label(self, stem: str) -> str:
        self._labels += 1
        return f"{stem}{self._labels}"

    def dispatch(self, count: int, key: Callable[[list[Any]], int], stem: str,
                 make: Callable[[int], list[Instr]], after: str) -> list[Instr]:
        """Branch on an index (a node, a zone) computed from the locals, then the instructions
        for that index, each with static locks."""
        labels = [self.label(f"{stem}{i}-") for i in range(count)]
        out: list[Instr] = [Branch(f"pick {stem}", lambda S, t: labels[key(t)])]
        for i in range(count):
            out += [Label(labels[i]), *make(i), Goto(after)]
        return out

    def op_instrs(self, op: Op, slots: dict[str, int]) -> list[Instr]:
        if isinstance(op, Alloc):
            return [OpMark(str(op)), *self.alloc(op, slots[op.slot])]
        if isinstance(op, Free):
            return [OpMark(str(op)), *self.free(slots[op.slot])]
        if isinstance(op, Find):
            return [OpMark(str(op)), *self.find(slots[op.slot])]
        if isinstance(op, Purge):
            return [OpMark(str(op)), Acquire(self.L_MUTEX, "purge"), *self.purge_lazy(),
                    Release(self.L_MUTEX)]
        raise TypeError(f"unknown op {op!r}")

    # ------------------------------------------------------------------ alloc
    def fit_section(self, op: Alloc, slot: int, fail: str, tag: str | None) -> Sec:
        FREE = self.FREE
        vstart, vend = op.range_pages if op.range_pages is not None else (0, self.p.pages)
        cache: dict[int, tuple[int, ...]] = {}
        npages, align = op.pages, op.align_pages

        def choose(S: list[Any], t: list[Any]) -> tuple[int, ...]:
            free = S[FREE]
            got = cache.get(free)
            if got is None:
                got = cache[free] = fit_choices(free, npages, align, vstart, vend)
            return got

        def fit(S: list[Any], t: list[Any], area: int | None) -> str | None:
            if not area:
                return fail
            S[FREE] &= ~area
            t[HAND] |= area
            t[slot] = area << 8
            return None

        return Sec("fit: free -> hand", (self.L_FREE,), fit, touches=(FREE,), jumps=(fail,),
                   tag=tag, choose=choose)

    def alloc(self, op: Alloc, slot: int) -> list[Instr]:
        BUSY = self.BUSY
        overflow, insert, end = self.label("overflow"), self.label("insert"), self.label("end")

        def to_busy(S: list[Any], t: list[Any]) -> None:
            area = t[slot] >> 8
            t[HAND] &= ~area
            S[BUSY] |= area

        retry = self.fit_section(op, slot, end, "alloc-after-purge")
        return [
            self.fit_section(op, slot, overflow, None),
            Label(insert),
            Sec("insert: hand -> busy", (self.L_BUSY,), to_busy, touches=(BUSY,)),
            Sec("setup_vmalloc_vm", (self.L_BUSY,)),
            Goto(end),
            Label(overflow),
            Acquire(self.L_MUTEX, "reclaim_and_purge_vmap_areas"),
            *self.purge_lazy(),
            Release(self.L_MUTEX),
            Sec("retry " + retry.what, retry.locks, retry.body, retry.touches, retry.jumps,
                retry.tag, retry.choose),
            Goto(insert),
            Label(end),
        ]

    # ------------------------------------------------------------------ free and find
    def unlink_section(self, slot: int) -> Sec:
        BUSY = self.BUSY

        def unlink(S: list[Any], t: list[Any]) -> None:
            area = t[slot] >> 8
            if area & ~S[BUSY]:
                raise SpecAssertion("busy", f"vfree of {fmt(area)}: not in the busy tree")
            S[BUSY] &= ~area
            t[HAND] |= area
            t[slot] = 0
            t[AUX] = area.bit_count()
            return None

        return Sec("unlink: busy -> hand", (self.L_BUSY,), unlink, touches=(BUSY,))

    def free(self, slot: int) -> list[Instr]:
        end = self.label("end")
        return [
            Branch("slot empty", lambda S, t: end if not t[slot] else None),
            self.unlink_section(slot),
            *self.free_noflush(end),
            Label(end),
        ]

    def add_lazy_nr(self) -> Act:
        NR, COUNTED, lazy_max = self.NR, self.COUNTED, self.p.lazy_max

        def add(S: list[Any], t: list[Any]) -> None:
            S[NR] += t[AUX]
            t[COUNTED] = t[AUX]
            t[AUX] = 1 if S[NR] > lazy_max else 0
        return Act("atomic_long_add_return vmap_lazy_nr", add)

    def lazy_insert(self) -> list[Instr]:
        return [Sec("insert: hand -> lazy", (self.L_PURGE,), self.to_lazy_body(),
                    touches=(self.LAZY,))]

    def to_lazy_body(self) -> Callable[[list[Any], list[Any]], None]:
        LAZY, COUNTED = self.LAZY, self.COUNTED

        def to_lazy(S: list[Any], t: list[Any]) -> None:
            S[LAZY] |= t[HAND]
            t[HAND] = 0
            t[COUNTED] = 0
        return to_lazy

    def free_noflush(self, end: str) -> list[Instr]:
        PENDING = self.PENDING

        def schedule(S: list[Any], t: list[Any]) -> None:
            S[PENDING] = 1
            t[AUX] = 0
        return [
            self.add_lazy_nr(),
            *self.lazy_insert(),
            Branch("over lazy_max_pages", lambda S, t: None if t[AUX] else end),
            Act("schedule_work drain_vmap_work", schedule),
        ]

    def find(self, slot: int) -> list[Instr]:
        """``find`` as a thread runs it: look the area up by its first page and, for a larger
        area, once more by its last page (which maps to another node or zone when the area
        crosses one)."""
        end = self.label("end")
        return [
            Branch("slot empty", lambda S, t: end if not t[slot] else None),
            *self.lookup(slot, last=False),
            Branch("one page", lambda S, t: end if (t[slot] >> 8).bit_count() == 1 else None),
            *self.lookup(slot, last=True),
            Label(end),
        ]

    def lookup(self, slot: int, last: bool) -> list[Instr]:
        """``find_vmap_area`` of the area's first (or last) page."""
        return [self.lookup_section(slot)]

    def scan(self, slot: int, last: bool, count: int, shard_of: Callable[[int], int],
             busy: list[int], locks: list[int], shard: str) -> list[Instr]:
        """``find_vmap_area`` on sharded busy trees: from the shard of the page looked up, one
        busy lock at a time round the ring, until the shard that holds the area (the shard of
        its first page)."""
        done = self.label("found")

        def page(t: list[Any]) -> int:
            m: int = t[slot] >> 8
            return high_page(m) if last else low_page(m)

        def chain(first: int) -> list[Instr]:
            out: list[Instr] = []
            for k in range(count):
                i = (first + k) % count
                BUSY = busy[i]

                def look(S: list[Any], t: list[Any], BUSY: int = BUSY, i: int = i,
                         final: bool = k == count - 1) -> str | None:
                    area = t[slot] >> 8
                    if area & S[BUSY] == area:
                        return done
                    if final:
                        raise SpecAssertion("find", f"find_vmap_area misses {fmt(area)}: "
                                                    f"no {shard} holds it")
                    return None
                out.append(Sec(f"find_vmap_area: look up {shard}[{i}] busy", (locks[i],), look,
                               jumps=(done,)))
            return out

        return [*self.dispatch(count, lambda t: shard_of(page(t)), "scan", chain, done),
                Label(done)]

    def lookup_body(self, slot: int) -> Callable[[list[Any], list[Any]], None]:
        BUSY = self.BUSY

        def lookup(S: list[Any], t: list[Any]) -> None:
            area = t[slot] >> 8
            if area & ~S[BUSY]:
                raise SpecAssertion("find", f"find_vmap_area misses the busy area {fmt(area)}")
        return lookup

    def lookup_section(self, slot: int) -> Sec:
        return Sec("find_vmap_area: look up busy", (self.L_BUSY,), self.lookup_body(slot))

    # ------------------------------------------------------------------ purge
    def detach_section(self, skip: str) -> Sec:
        LAZY, COUNTED = self.LAZY, self.COUNTED

        def detach(S: list[Any], t: list[Any]) -> str | None:
            lazy = S[LAZY]
            if not lazy:
                return skip
            S[LAZY] = 0
            t[HAND] |= lazy
            t[COUNTED] = lazy.bit_count()
            return None
        return Sec("detach purge list: lazy -> hand", (self.L_PURGE,), detach,
                   touches=(LAZY,), jumps=(skip,))

    def purge_lazy(self) -> list[Instr]:
        """``__purge_vmap_area_lazy``; the caller holds ``vmap_purge_lock``."""
        FREE, NR, COUNTED = self.FREE, self.NR, self.COUNTED
        skip, loop = self.label("purged"), self.label("merge")

        def merge_first(S: list[Any], t: list[Any]) -> None:
            area = lowest_run(t[HAND])
            t[HAND] &= ~area
            S[FREE] |= area
            t[AUX] = area.bit_count()

        def sub_then_next(S: list[Any], t: list[Any]) -> str | None:
            S[NR] -= t[AUX]
            t[COUNTED] -= t[AUX]
            if t[HAND]:
                merge_first(S, t)
                return loop
            t[AUX] = 0
            return None

        return [
            self.detach_section(skip),
            Acquire(self.L_FREE, "merge first area: hand -> free", merge_first, touches=(FREE,),
                    tag="purge"),
            Label(loop),
            Act("atomic_long_sub vmap_lazy_nr; merge next area", sub_then_next, jumps=(loop,)),
            Release(self.L_FREE),
            Label(skip),
        ]

    def worker_instrs(self) -> list[Instr]:
        NR, PENDING, lazy_max = self.NR, self.PENDING, self.p.lazy_max
        loop = self.label("drain")

        def start(S: list[Any], t: list[Any]) -> None:
            S[PENDING] = 0

        def again(S: list[Any], t: list[Any]) -> str:
            return loop if S[NR] > lazy_max else "idle"

        return [
            OpMark("drain_vmap_area_work"),
            Label("idle"),
            Act("drain_vmap_work starts", start, guard=lambda s, t: bool(s[PENDING])),
            Label(loop),
            Acquire(self.L_MUTEX, "drain"),
            *self.purge_lazy(),
            Release(self.L_MUTEX),
            Act("atomic_long_read vmap_lazy_nr", again, jumps=(loop, "idle")),
        ]

    # ------------------------------------------------------------------ invariants
    def add_invariants(self) -> None:
        NR, LAZY, COUNTED = self.NR, self.LAZY, self.COUNTED

        def make(spec: Spec) -> Callable[[tuple[Any, ...]], str | None]:
            expect = spec.pages_sum([LAZY], [], COUNTED)

            def lazy_nr(s: tuple[Any, ...]) -> str | None:
                if s[NR] != expect(s):
                    lazy = s[LAZY].bit_count()
                    return (f"vmap_lazy_nr is {s[NR]} but the lazy list holds {lazy} pages "
                            f"and {expect(s) - lazy} more are counted in flight")
                return None
            return lazy_nr
        self.b.invariant("vmap_lazy_nr", make)
        self.add_slot_invariant([self.BUSY])

    def add_slot_invariant(self, busy: list[int]) -> None:
        """Placement of allocations: an area a thread got and has not freed yet is in a busy
        tree (or still in the thread's hands, between two critical sections)."""
        def make(spec: Spec) -> Callable[[tuple[Any, ...]], str | None]:
            held = spec.slots_held(busy)

            def allocated(s: tuple[Any, ...]) -> str | None:
                if held(s):
                    return None
                for k, a in enumerate(spec.actor_index):
                    for slot, i in spec.slot_index[k].items():
                        m = s[a][i] >> 8
                        where = s[a][HAND]
                        for f in busy:
                            where |= s[f]
                        if m & ~where:
                            return (f"{spec.actor_names[k]}'s area {slot} = {fmt(m)} is in no "
                                    f"busy tree and not in its hands")
                return "an allocated area left the busy trees"
            return allocated
        self.b.invariant("allocated", make)
