"""Spec of the ``nodes`` design (Linux 6.9+): per-node busy, lazy and pool structures.

State: the global free space (a mask; the free tree coalesces), per node ``i`` its busy set (a
mask), its lazy tree (area codes in address order: 6.9 inserts without merging, each area keeps
its size and node id) and, with more than one node, one pool per size class the programs use
(area codes in list order, head first: the order decides which entry an allocation takes), the
atomic ``vmap_lazy_nr`` and whether ``drain_vmap_work`` is pending.  An area code carries the
node id the allocation encoded in ``va->flags`` (``encode_vn_id``: the tag is ``id + 1``, 0 for
"no node").  Actor locals add ``counted`` (pages in hand already counted by ``vmap_lazy_nr``),
``plist`` (the detached lazy areas a purge holds, in processing order), ``rest`` (a decayed
pool's remainder between detach and attach) and ``classes`` (the non-empty classes a decay
visits).

Operations follow ``impl/designs/nodes.py`` (reference section 3) lock for lock:

- alloc on CPU ``c``: default range and several nodes: under ``vn[c % n].pool_lock`` take the
  class's first entry if aligned (pool -> hand), else rotate it (miss).  Miss: the global path
  (``free_vmap_area_lock``: lowest fit, free -> hand; on failure purge with ``full`` under the
  mutex and retry once).  Then under ``vn[node(va_start)].busy.lock``: hand -> busy.
- free: under ``vn[node(addr)].busy.lock`` unlink (busy -> hand); atomic add; under
  ``vn[home].lazy.lock`` (the encoded node, else the node of the start) hand -> lazy;
  ``schedule_work`` if over ``lazy_max``.
- purge (mutex held), per node: decay the pools (``pool_lock`` to list the non-empty classes,
  then per class detach, keep ``len >> 2`` or all (6.9 as merged: fewer than four decay whole),
  attach the rest; the kept ones go to the free space under ``free_vmap_area_lock``), then detach
  the lazy tree.  Then per node, per area: ``atomic_long_sub``; to the node's pool head under
  ``pool_lock`` if it has a valid node id and the purge is not ``full``, else, once the node is
  done, to the free space under ``free_vmap_area_lock``.
- ``drain_vmap_work``: one purge pass (no repeat loop since 6.9).

Relies on ``spec.global_`` (the shared skeleton: fit, failure path, free, find), ``spec.compile``
and ``spec.masks``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .compile import Builder, Spec
from .global_ import GlobalSpec, op_slots
from .masks import AREA_SHIFT, fit_choices, fmt, low_page
from .program import Alloc, ThreadProgram
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

MAX_VA_SIZE_PAGES = 256


def _codes_mask(codes: tuple[int, ...]) -> int:
    m = 0
    for c in codes:
        m |= c >> AREA_SHIFT
    return m


class NodesSpec(GlobalSpec):
    name = "nodes"
    # A mutant sets this: purge_vmap_node pools an area and also sends it to the free tree.
    pool_and_global = False

    def __init__(self, params: Any) -> None:
        super().__init__(params)
        self.n = max(1, params.nr_nodes)
        self.zone = max(1, params.zone_pages)

    # ------------------------------------------------------------------ layout
    def node_of(self, page: int) -> int:
        """``addr_to_node_id`` in pages."""
        node: int = (page // self.zone) % self.n
        return node

    def build(self) -> Spec:
        p = self.p
        n = self.n
        b = Builder(self.name, p.pages, {"lazy_max": p.lazy_max, "nr_nodes": n,
                                         "zone_pages": self.zone})
        self.b = b
        self.FREE = b.glob("free", (1 << p.pages) - 1, owner="mask", coalesced=True)
        self.BUSYN = [b.glob(f"busy:node{i}", 0, owner="mask") for i in range(n)]
        self.LAZYN = [b.glob(f"lazy:node{i}", (), owner="codes") for i in range(n)]
        self.classes = sorted({op.pages for prog in p.programs for op in prog.ops
                               if isinstance(op, Alloc) and op.pages <= MAX_VA_SIZE_PAGES}
                              ) if n > 1 else []
        self.POOL = [{c: b.glob(f"pool:node{i}:{c - 1}", (), owner="codes")
                      for c in self.classes} for i in range(n)]
        self.NR = b.glob("vmap_lazy_nr", 0)
        self.PENDING = b.glob("drain pending", 0)
        self.COUNTED = b.local("counted", 0)
        self.PLIST = b.local("plist", (), show="codes")
        self.REST = b.local("rest", (), show="codes")
        self.CLASSES = b.local("classes", ())
        self.L_FREE = b.lock("free_vmap_area_lock", protects=[self.FREE])
        self.L_MUTEX = b.lock("vmap_purge_lock", mutex=True)
        self.L_BUSYN = [b.lock(f"vn[{i}].busy.lock", "vmap_node.busy.lock",
                               protects=[self.BUSYN[i]]) for i in range(n)]
        self.L_LAZYN = [b.lock(f"vn[{i}].lazy.lock", "vmap_node.lazy.lock",
                               protects=[self.LAZYN[i]]) for i in range(n)]
        self.L_POOLN = [b.lock(f"vn[{i}].pool_lock", "vmap_node.pool_lock",
                               protects=list(self.POOL[i].values())) for i in range(n)]
        for i, prog in enumerate(p.programs):
            slots = b.slot_fields(op_slots(prog.ops))
            self.cpu = prog.cpu
            instrs: list[Instr] = []
            for op in prog.ops:
                instrs += self.op_instrs(op, slots)
            b.actor(ActorDef(f"T{i}", instrs, signature=self.signature(prog), slots=slots,
                             thread=i))
        b.actor(ActorDef("drain_vmap_work", self.worker_instrs(), signature="drain_vmap_work",
                         rest_labels=("idle",), kind="worker"))
        self.add_invariants()
        b.sometimes_step("purge", "a purge takes lazily freed areas off the lazy trees",
                         "purge")
        b.sometimes_step("alloc-after-purge", "an allocation fails, purges and then succeeds",
                         "alloc-after-purge")
        if n > 1:
            b.sometimes_step("pool-hit", "an allocation is served from a node's pool",
                             "pool-hit")
            b.sometimes_step("pool-fill", "a purge puts a freed area in its node's pool",
                             "pool-fill")
        return b.build()

    def signature(self, prog: ThreadProgram) -> object:
        # The CPU matters only through the node it picks for the pool and the node id.
        return ("thread", prog.ops, prog.cpu % self.n if self.n > 1 else 0)

    def home_of(self, code: int) -> int:
        """``lazy_home``: the encoded node id if valid, else the node of the start."""
        tag = code & 0xFF
        if 0 < tag <= self.n:
            return tag - 1
        return self.node_of(low_page(code >> AREA_SHIFT))

    def by_node(self, key: Callable[[list[Any]], int], stem: str,
                make: Callable[[int], list[Instr]], after: str) -> list[Instr]:
        return self.dispatch(self.n, key, stem, make, after)

    # ------------------------------------------------------------------ alloc
    def alloc(self, op: Alloc, slot: int) -> list[Instr]:
        p = self.p
        default = op.range_pages is None or op.range_pages == (0, p.pages)
        use_nodes = default and self.n > 1
        node = self.cpu % self.n
        tag = node + 1 if use_nodes else 0
        miss, insert, overflow, end = (self.label("miss"), self.label("insert"),
                                       self.label("overflow"), self.label("end"))
        out: list[Instr] = []
        if use_nodes and op.pages in self.classes:
            out += [self.pool_del_section(op, slot, node, miss), Goto(insert)]
        out += [
            Label(miss),
            self.tagged_fit(op, slot, overflow, None, tag),
            Label(insert),
            *self.by_node(lambda t: self.node_of(low_page(t[slot] >> AREA_SHIFT)), "insert",
                          lambda i: [self.busy_insert(i, slot)], end),
            Label(overflow),
            Acquire(self.L_MUTEX, "reclaim_and_purge_vmap_areas"),
            *self.purge_nodes(full=True),
            Release(self.L_MUTEX),
            self.tagged_fit(op, slot, end, "alloc-after-purge", tag, retry=True),
            Goto(insert),
            Label(end),
        ]
        return out

    def tagged_fit(self, op: Alloc, slot: int, fail: str, tag_name: str | None, vn: int,
                   retry: bool = False) -> Sec:
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
            t[slot] = area << AREA_SHIFT | vn
            return None

        return Sec(("retry " if retry else "") + "fit: free -> hand", (self.L_FREE,), fit,
                   touches=(FREE,), jumps=(fail,), tag=tag_name, choose=choose)

    def pool_del_section(self, op: Alloc, slot: int, node: int, miss: str) -> Sec:
        POOL = self.POOL[node][op.pages]
        align = op.align_pages
        tag = node + 1

        def pool_del(S: list[Any], t: list[Any]) -> str | None:
            codes = S[POOL]
            if not codes:
                return miss
            first = codes[0]
            area = first >> AREA_SHIFT
            if low_page(area) % align:
                S[POOL] = codes[1:] + codes[:1]  # list_move_tail: the pool misses
                return miss
            S[POOL] = codes[1:]
            t[HAND] |= area
            t[slot] = area << AREA_SHIFT | tag
            return None

        return Sec("node_pool_del_va: pool -> hand", (self.L_POOLN[node],), pool_del,
                   touches=(POOL,), jumps=(miss,), tag="pool-hit")

    def busy_insert(self, i: int, slot: int) -> Sec:
        BUSY = self.BUSYN[i]

        def to_busy(S: list[Any], t: list[Any]) -> None:
            area = t[slot] >> AREA_SHIFT
            t[HAND] &= ~area
            S[BUSY] |= area
        return Sec("insert: hand -> busy", (self.L_BUSYN[i],), to_busy, touches=(BUSY,))

    # ------------------------------------------------------------------ free and find
    def free(self, slot: int) -> list[Instr]:
        end, add, sched = self.label("end"), self.label("add"), self.label("sched")
        PENDING = self.PENDING

        def schedule(S: list[Any], t: list[Any]) -> None:
            S[PENDING] = 1
            t[AUX] = 0

        def start_node(t: list[Any]) -> int:
            return self.node_of(low_page(t[slot] >> AREA_SHIFT))
        return [
            Branch("slot empty", lambda S, t: end if not t[slot] else None),
            *self.by_node(start_node, "unlink", lambda i: [self.unlink_node(i, slot)], add),
            Label(add),
            self.add_lazy_nr(),
            *self.by_node(lambda t: self.home_of(t[slot]), "lazy",
                          lambda i: [self.lazy_insert_node(i, slot)], sched),
            Label(sched),
            Branch("over lazy_max_pages", lambda S, t: None if t[AUX] else end),
            Act("schedule_work drain_vmap_work", schedule),
            Label(end),
        ]

    def unlink_node(self, i: int, slot: int) -> Sec:
        BUSY = self.BUSYN[i]

        def unlink(S: list[Any], t: list[Any]) -> None:
            area = t[slot] >> AREA_SHIFT
            if area & ~S[BUSY]:
                raise SpecAssertion("busy", f"vfree of {fmt(area)}: not in vn[{i}]'s busy tree")
            S[BUSY] &= ~area
            t[HAND] |= area
            t[AUX] = area.bit_count()
        return Sec("unlink: busy -> hand", (self.L_BUSYN[i],), unlink, touches=(BUSY,))

    def lazy_insert_node(self, i: int, slot: int) -> Sec:
        LAZY, COUNTED = self.LAZYN[i], self.COUNTED

        def to_lazy(S: list[Any], t: list[Any]) -> None:
            code = t[slot]
            t[HAND] &= ~(code >> AREA_SHIFT)
            S[LAZY] = tuple(sorted((*S[LAZY], code)))
            t[slot] = 0
            t[COUNTED] = 0
        return Sec("insert: hand -> lazy", (self.L_LAZYN[i],), to_lazy, touches=(LAZY,))

    def lookup(self, slot: int, last: bool) -> list[Instr]:
        return self.scan(slot, last, self.n, self.node_of, self.BUSYN, self.L_BUSYN, "vn")

    # ------------------------------------------------------------------ purge
    def purge_lazy(self) -> list[Instr]:
        return self.purge_nodes(full=False)

    def purge_nodes(self, full: bool) -> list[Instr]:
        """``__purge_vmap_area_lazy``; the caller holds ``vmap_purge_lock``."""
        done = self.label("purged")
        out: list[Instr] = []
        for i in range(self.n):
            out += self.decay_node(i, full)
            out.append(self.detach_lazy(i))
        out.append(Branch("nothing detached", lambda S, t: done if not t[self.PLIST] else None))
        for i in range(self.n):
            out += self.purge_vmap_node(i, full)
        out.append(Label(done))
        return out

    def detach_lazy(self, i: int) -> Sec:
        LAZY, PLIST, COUNTED = self.LAZYN[i], self.PLIST, self.COUNTED

        def detach(S: list[Any], t: list[Any]) -> None:
            codes = S[LAZY]
            if codes:
                S[LAZY] = ()
                m = _codes_mask(codes)
                t[HAND] |= m
                t[PLIST] = t[PLIST] + codes
                t[COUNTED] += m.bit_count()
        return Sec(f"detach vn[{i}] lazy: lazy -> hand", (self.L_LAZYN[i],), detach,
                   touches=(LAZY,))

    def decay_node(self, i: int, full: bool) -> list[Instr]:
        CLASSES, REST, PLIST, FREE = self.CLASSES, self.REST, self.PLIST, self.FREE
        pools = self.POOL[i]
        lock = self.L_POOLN[i]
        order = list(self.classes)

        def list_classes(S: list[Any], t: list[Any]) -> None:
            t[CLASSES] = tuple(c for c in order if S[pools[c]])

        out: list[Instr] = [Sec(f"decay vn[{i}]: non-empty classes", (lock,), list_classes)]
        for c in order:
            skip, attach = self.label("decayed"), self.label("attach")
            POOL = pools[c]

            def detach(S: list[Any], t: list[Any], POOL: int = POOL, skip: str = skip
                       ) -> str | None:
                codes = S[POOL]
                S[POOL] = ()
                t[HAND] |= _codes_mask(codes)
                keep = len(codes) if full else len(codes) >> 2
                if keep == 0:  # 6.9 as merged: `if (!--n_decay)` wraps, the list decays whole
                    keep = len(codes)
                rest = codes[keep:]
                t[REST] = rest
                return None if rest else skip

            def attach_back(S: list[Any], t: list[Any], POOL: int = POOL) -> None:
                rest = t[REST]
                S[POOL] = S[POOL] + rest
                t[HAND] &= ~_codes_mask(rest)
                t[REST] = ()

            def visit(S: list[Any], t: list[Any], c: int = c, skip: str = skip) -> str | None:
                return None if c in t[CLASSES] else skip

            out += [
                Branch("class non-empty", visit),
                Sec(f"decay vn[{i}] class {c - 1}: pool -> hand", (lock,), detach,
                    touches=(POOL,), jumps=(skip,)),
                Label(attach),
                Sec(f"decay vn[{i}] class {c - 1}: attach the rest, hand -> pool", (lock,),
                    attach_back, touches=(POOL,)),
                Label(skip),
            ]
        reclaimed = self.label("reclaimed")

        def nothing(S: list[Any], t: list[Any]) -> str | None:
            t[CLASSES] = ()
            return reclaimed if not t[HAND] & ~_codes_mask(t[PLIST]) else None

        def reclaim(S: list[Any], t: list[Any]) -> None:
            m = t[HAND] & ~_codes_mask(t[PLIST])
            t[HAND] &= ~m
            S[FREE] |= m
        out += [
            Branch("anything decayed", nothing),
            Sec("reclaim_list_global: decayed hand -> free", (self.L_FREE,), reclaim,
                touches=(FREE,)),
            Label(reclaimed),
        ]
        return out

    def purge_vmap_node(self, i: int, full: bool) -> list[Instr]:
        NR, COUNTED, PLIST, FREE = self.NR, self.COUNTED, self.PLIST, self.FREE
        pools = self.POOL[i]
        home_of = self.home_of
        skip, loop, to_pool, reclaim_l = (self.label("node-done"), self.label("sub"),
                                          self.label("pool"), self.label("reclaim"))
        n = self.n
        pool_and_global = self.pool_and_global

        def mine(t: list[Any]) -> bool:
            pl = t[PLIST]
            return bool(pl) and home_of(pl[0]) == i

        def sub(S: list[Any], t: list[Any]) -> str | None:
            code = t[PLIST][0]
            pages = (code >> AREA_SHIFT).bit_count()
            S[NR] -= pages
            t[COUNTED] -= pages
            tag = code & 0xFF
            if not full and 0 < tag <= n and pages in pools:
                return None  # node_pool_add_va
            t[PLIST] = t[PLIST][1:]  # stays in hand, for the global free tree
            return loop if mine(t) else reclaim_l

        def pool_add(S: list[Any], t: list[Any]) -> str | None:
            code = t[PLIST][0]
            POOL = pools[(code >> AREA_SHIFT).bit_count()]
            S[POOL] = (code, *S[POOL])
            t[PLIST] = t[PLIST][1:]
            if not pool_and_global:
                t[HAND] &= ~(code >> AREA_SHIFT)
            return loop if mine(t) else None

        def reclaim(S: list[Any], t: list[Any]) -> None:
            m = t[HAND] & ~_codes_mask(t[PLIST])
            t[HAND] &= ~m
            S[FREE] |= m

        out: list[Instr] = [
            Branch(f"vn[{i}] has a purge list", lambda S, t: None if mine(t) else skip),
            Label(loop),
            Act("atomic_long_sub vmap_lazy_nr", sub, jumps=(loop, reclaim_l), tag="purge"),
            Label(to_pool),
        ]
        if pools:
            out.append(Sec(f"node_pool_add_va: hand -> vn[{i}] pool head", (self.L_POOLN[i],),
                           pool_add, touches=tuple(pools.values()), jumps=(loop,),
                           tag="pool-fill"))
        out += [
            Label(reclaim_l),
            Branch("anything for the free tree",
                   lambda S, t: None if t[HAND] & ~_codes_mask(t[PLIST]) else skip),
            Sec("reclaim_list_global: hand -> free", (self.L_FREE,), reclaim, touches=(FREE,)),
            Label(skip),
        ]
        return out

    def worker_instrs(self) -> list[Instr]:
        PENDING = self.PENDING

        def start(S: list[Any], t: list[Any]) -> None:
            S[PENDING] = 0
        return [
            OpMark("drain_vmap_area_work"),
            Label("idle"),
            Act("drain_vmap_work starts", start, guard=lambda s, t: bool(s[PENDING])),
            Acquire(self.L_MUTEX, "drain"),
            *self.purge_nodes(full=False),
            Release(self.L_MUTEX),
            Goto("idle"),
        ]

    # ------------------------------------------------------------------ invariants
    def add_invariants(self) -> None:
        NR, COUNTED, LAZYN = self.NR, self.COUNTED, list(self.LAZYN)
        home_of = self.home_of
        pool_fields = [(i, c, f) for i in range(self.n) for c, f in self.POOL[i].items()]
        check_fields = LAZYN + [f for _, _, f in pool_fields]

        def make_nr(spec: Spec) -> Callable[[tuple[Any, ...]], str | None]:
            expect = spec.pages_sum([], LAZYN, COUNTED)

            def lazy_nr(s: tuple[Any, ...]) -> str | None:
                if s[NR] != expect(s):
                    lazy = sum((c >> AREA_SHIFT).bit_count() for f in LAZYN for c in s[f])
                    return (f"vmap_lazy_nr is {s[NR]} but the lazy trees hold {lazy} pages and "
                            f"{expect(s) - lazy} more are counted in flight")
                return None
            return lazy_nr

        def make_placement(spec: Spec) -> Callable[[tuple[Any, ...]], str | None]:
            def placement(s: tuple[Any, ...]) -> str | None:
                for f in check_fields:
                    if s[f]:
                        break
                else:
                    return None
                for i, f in enumerate(LAZYN):
                    for code in s[f]:
                        if home_of(code) != i:
                            return (f"lazy area {fmt(code >> AREA_SHIFT)} sits in vn[{i}] but "
                                    f"belongs to vn[{home_of(code)}]")
                for i, c, f in pool_fields:
                    for code in s[f]:
                        m = code >> AREA_SHIFT
                        if m.bit_count() != c or (code & 0xFF) != i + 1:
                            return (f"pool area {fmt(m)} in vn[{i}] class {c - 1} is not a "
                                    f"{c}-page area of that node")
                return None
            return placement

        self.b.invariant("vmap_lazy_nr", make_nr)
        self.b.invariant("placement", make_placement)
        self.add_slot_invariant(list(self.BUSYN))
