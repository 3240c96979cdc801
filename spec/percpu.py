"""Spec of the ``percpu`` design (the LSFMM 2023 proposal, series v1): per-CPU pre-fetched chunks.

Following the module note of ``impl/designs/percpu.py``: one zone per CPU, each with three
structures under their own spinlocks, ``zone[z].free.lock`` (the chunks CPU ``z`` pre-fetched,
keyed by CPU), ``zone[z].busy.lock`` and ``zone[z].lazy.lock`` (busy and lazily freed areas of
the zone of their start, ``addr_to_cpu = (addr / cvz_size) % nr_cpus``), the atomic
``zone[z].fill_in_progress``, and the global free tree under ``free_vmap_area_lock``, the
``vmap_purge_lock`` mutex, ``vmap_lazy_nr`` and ``drain_vmap_work``.

State: the free space, each zone's cache (chunks; the tree coalesces), busy and lazy (merged)
sets as page masks, the fill flags, the counter, the pending drain; actor locals add
``counted`` (pages in hand already counted by ``vmap_lazy_nr``) and ``purge lists`` (one mask
per zone: the lazy areas a purge detached and has not merged back yet).

Operations, lock for lock as the implementation takes them:

- alloc on CPU ``c`` (default range, several CPUs, ``cvz / (size + extra) >= 3``): under
  ``zone[c].free.lock`` the lowest fit in the cache (cache -> hand); on a miss with a largest
  block under 4 pages, the pre-fetch: atomic ``fill_in_progress`` test-and-set (set already:
  give up), ``free_vmap_area_lock``: carve a chunk (free -> hand), ``zone[c].free.lock``: chunk
  hand -> cache (merged) and carve the request from the merged block (cache -> hand), then
  ``fill_in_progress = 0``.  Otherwise, or when that gave nothing, the global path (lowest fit;
  on failure purge with ``full`` under the mutex and retry once).  Then
  ``zone[addr_to_cpu(va_start)].busy.lock``: hand -> busy, and that lock once more
  (``setup_vmalloc_vm``).
- free: ``zone[z].busy.lock`` unlink; atomic add; ``zone[z].lazy.lock`` hand -> lazy (merged);
  ``schedule_work`` over ``lazy_max``.
- purge (mutex held): detach every zone's lazy set; if any (or ``full``), per zone: under
  ``free_vmap_area_lock`` merge its lazy areas back, each followed by its ``atomic_long_sub``,
  then drop the zone's cache (``zone[z].free.lock``: cache -> hand; ``free_vmap_area_lock``:
  hand -> free).

Relies on ``spec.global_`` (skeleton, fit, failure path), ``spec.compile`` and ``spec.masks``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .compile import Builder, Spec
from .global_ import GlobalSpec, op_slots
from .masks import (
    AREA_SHIFT,
    carve_from_block,
    fit_choices,
    fmt,
    largest_run,
    low_page,
    lowest_run,
    starts_outside,
    zone_masks,
    zone_of,
)
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

LOW_WATERMARK_PAGES = 4
MIN_REQUESTS_PER_CHUNK = 3


class PercpuSpec(GlobalSpec):
    name = "percpu"

    def __init__(self, params: Any) -> None:
        super().__init__(params)
        self.n = max(1, params.nr_cpus)
        self.cvz = max(1, params.get("cvz_pages", params.zone_pages))
        self.caching = self.n > 1

    def zone_of(self, page: int) -> int:
        """``addr_to_cpu`` in pages."""
        return zone_of(page, self.cvz, self.n)

    # ------------------------------------------------------------------ layout
    def build(self) -> Spec:
        p = self.p
        n = self.n
        b = Builder(self.name, p.pages, {"lazy_max": p.lazy_max, "nr_cpus": n,
                                         "cvz_pages": self.cvz})
        self.b = b
        b.zones = (n, self.zone_of)
        self.FREE = b.glob("free", (1 << p.pages) - 1, owner="mask", coalesced=True)
        self.CACHE = [b.glob(f"cache:zone{z}", 0, owner="mask", coalesced=True)
                      for z in range(n)]
        self.BUSYZ = [b.glob(f"busy:zone{z}", 0, owner="mask") for z in range(n)]
        self.LAZYZ = [b.glob(f"lazy:zone{z}", 0, owner="mask", coalesced=True)
                      for z in range(n)]
        self.FIP = [b.glob(f"zone[{z}].fill_in_progress", 0) for z in range(n)]
        self.NR = b.glob("vmap_lazy_nr", 0)
        self.PENDING = b.glob("drain pending", 0)
        self.COUNTED = b.local("counted", 0)
        self.PLISTS = b.local("purge lists", (0,) * n, show="masks")
        self.L_FREE = b.lock("free_vmap_area_lock", protects=[self.FREE])
        self.L_MUTEX = b.lock("vmap_purge_lock", mutex=True)
        self.L_BUSYZ = [b.lock(f"zone[{z}].busy.lock", "cpu_vmap_zone.busy.lock",
                               protects=[self.BUSYZ[z]]) for z in range(n)]
        self.L_LAZYZ = [b.lock(f"zone[{z}].lazy.lock", "cpu_vmap_zone.lazy.lock",
                               protects=[self.LAZYZ[z]]) for z in range(n)]
        self.L_CACHE = [b.lock(f"zone[{z}].free.lock", "cpu_vmap_zone.free.lock",
                               protects=[self.CACHE[z]]) for z in range(n)]
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
        b.sometimes_step("purge", "a purge returns lazily freed areas to the free space", "purge")
        b.sometimes_step("alloc-after-purge", "an allocation fails, purges and then succeeds",
                         "alloc-after-purge")
        if self.caching:
            b.sometimes_step("prefetch", "a CPU pre-fetches a chunk into its zone", "prefetch")
            b.sometimes_step("cache-hit", "an allocation is carved from a chunk already cached",
                             "cache-hit")
        return b.build()

    def signature(self, prog: ThreadProgram) -> object:
        return ("thread", prog.ops, prog.cpu % self.n)

    # ------------------------------------------------------------------ alloc
    def alloc(self, op: Alloc, slot: int) -> list[Instr]:
        p = self.p
        default = op.range_pages is None or op.range_pages == (0, p.pages)
        extra = op.align_pages if op.align_pages > 1 else 0
        fast = (self.caching and default
                and self.cvz // (op.pages + extra) >= MIN_REQUESTS_PER_CHUNK)
        z = self.cpu % self.n
        glob, insert, overflow, end = (self.label("global"), self.label("insert"),
                                       self.label("overflow"), self.label("end"))
        out: list[Instr] = []
        if fast:
            out += self.zone_alloc(op, slot, z, glob, insert)
        out += [
            Label(glob),
            self.fit_section(op, slot, overflow, None),
            Label(insert),
            *self.dispatch(self.n, lambda t: self.zone_of(low_page(t[slot] >> AREA_SHIFT)),
                           "insert", lambda z: self.busy_insert_zone(z, slot), end),
            Label(overflow),
            Acquire(self.L_MUTEX, "reclaim_and_purge_vmap_areas"),
            *self.purge_zones(full=True),
            Release(self.L_MUTEX),
            self.fit_section(op, slot, end, "alloc-after-purge"),
            Goto(insert),
            Label(end),
        ]
        return out

    def busy_insert_zone(self, z: int, slot: int) -> list[Instr]:
        BUSY = self.BUSYZ[z]

        def to_busy(S: list[Any], t: list[Any]) -> None:
            area = t[slot] >> AREA_SHIFT
            t[HAND] &= ~area
            S[BUSY] |= area
        return [Sec("insert: hand -> busy", (self.L_BUSYZ[z],), to_busy, touches=(BUSY,)),
                Sec("setup_vmalloc_vm", (self.L_BUSYZ[z],))]

    def zone_alloc(self, op: Alloc, slot: int, z: int, glob: str, insert: str) -> list[Instr]:
        """``this_cpu_zone_alloc``: the cache, then the pre-fetch."""
        CACHE, FREE, FIP = self.CACHE[z], self.FREE, self.FIP[z]
        npages, align, cvz, total = op.pages, op.align_pages, self.cvz, self.p.pages
        fill, done_fill, no_fill = (self.label("fill"), self.label("filled"),
                                    self.label("nofill"))
        cache_fits: dict[int, tuple[int, ...]] = {}
        chunk_fits: dict[int, tuple[int, ...]] = {}

        def choose_cache(S: list[Any], t: list[Any]) -> tuple[int, ...]:
            c = S[CACHE]
            got = cache_fits.get(c)
            if got is None:
                got = cache_fits[c] = fit_choices(c, npages, align, 0, total)
            return got

        def from_cache(S: list[Any], t: list[Any], area: int | None) -> str | None:
            if area:
                S[CACHE] &= ~area
                t[HAND] |= area
                t[slot] = area << AREA_SHIFT
                return None
            return fill if largest_run(S[CACHE]) < LOW_WATERMARK_PAGES else glob

        def xchg(S: list[Any], t: list[Any]) -> str | None:
            S[FIP] += 1
            return None if S[FIP] == 1 else glob

        def choose_chunk(S: list[Any], t: list[Any]) -> tuple[int, ...]:
            f = S[FREE]
            got = chunk_fits.get(f)
            if got is None:
                got = chunk_fits[f] = fit_choices(f, cvz, 1, 0, total)
            return got

        def carve_chunk(S: list[Any], t: list[Any], chunk: int | None) -> str | None:
            if not chunk:
                return no_fill
            S[FREE] &= ~chunk
            t[HAND] |= chunk
            return None

        def to_cache(S: list[Any], t: list[Any]) -> None:
            chunk = t[HAND]
            t[HAND] = 0
            merged = S[CACHE] | chunk
            S[CACHE] = merged
            area = carve_from_block(merged, chunk, npages, align)
            if not area:
                return
            S[CACHE] &= ~area
            t[HAND] |= area
            t[slot] = area << AREA_SHIFT

        def clear(S: list[Any], t: list[Any]) -> None:
            S[FIP] = 0

        return [
            Sec(f"zone[{z}] cache: lowest fit, cache -> hand", (self.L_CACHE[z],), from_cache,
                touches=(CACHE,), jumps=(fill, glob), choose=choose_cache, tag="cache-hit"),
            Goto(insert),
            Label(fill),
            Act(f"atomic_xchg zone[{z}].fill_in_progress", xchg, jumps=(glob,)),
            Sec("pre-fetch a chunk: free -> hand", (self.L_FREE,), carve_chunk, touches=(FREE,),
                jumps=(no_fill,), choose=choose_chunk),
            Sec(f"zone[{z}] cache: chunk hand -> cache, carve the request", (self.L_CACHE[z],),
                to_cache, touches=(CACHE,), tag="prefetch"),
            Label(no_fill),
            Act(f"zone[{z}].fill_in_progress = 0", clear),
            Branch("carved?", lambda S, t: done_fill if t[slot] else glob),
            Label(done_fill),
            Goto(insert),
        ]

    # ------------------------------------------------------------------ free and find
    def free(self, slot: int) -> list[Instr]:
        end, add, sched = self.label("end"), self.label("add"), self.label("sched")
        PENDING = self.PENDING

        def schedule(S: list[Any], t: list[Any]) -> None:
            S[PENDING] = 1
            t[AUX] = 0

        def zone(t: list[Any]) -> int:
            return self.zone_of(low_page(t[slot] >> AREA_SHIFT))

        return [
            Branch("slot empty", lambda S, t: end if not t[slot] else None),
            *self.dispatch(self.n, zone, "unlink", lambda z: [self.unlink_zone(z, slot)], add),
            Label(add),
            self.add_lazy_nr(),
            *self.dispatch(self.n, zone, "lazy", lambda z: [self.lazy_insert_zone(z, slot)],
                           sched),
            Label(sched),
            Branch("over lazy_max_pages", lambda S, t: None if t[AUX] else end),
            Act("schedule_work drain_vmap_work", schedule),
            Label(end),
        ]

    def unlink_zone(self, z: int, slot: int) -> Sec:
        BUSY = self.BUSYZ[z]

        def unlink(S: list[Any], t: list[Any]) -> None:
            area = t[slot] >> AREA_SHIFT
            if area & ~S[BUSY]:
                raise SpecAssertion("busy", f"vfree of {fmt(area)}: not in zone[{z}]'s busy tree")
            S[BUSY] &= ~area
            t[HAND] |= area
            t[AUX] = area.bit_count()
        return Sec("unlink: busy -> hand", (self.L_BUSYZ[z],), unlink, touches=(BUSY,))

    def lazy_insert_zone(self, z: int, slot: int) -> Sec:
        LAZY, COUNTED = self.LAZYZ[z], self.COUNTED

        def to_lazy(S: list[Any], t: list[Any]) -> None:
            S[LAZY] |= t[HAND]
            t[HAND] = 0
            t[slot] = 0
            t[COUNTED] = 0
        return Sec("insert: hand -> lazy", (self.L_LAZYZ[z],), to_lazy, touches=(LAZY,))

    def lookup(self, slot: int, last: bool) -> list[Instr]:
        return self.scan(slot, last, self.n, self.zone_of, self.BUSYZ, self.L_BUSYZ, "zone")

    # ------------------------------------------------------------------ purge
    def purge_lazy(self) -> list[Instr]:
        return self.purge_zones(full=False)

    def purge_zones(self, full: bool) -> list[Instr]:
        """``__purge_vmap_area_lazy``; the caller holds ``vmap_purge_lock``."""
        PLISTS = self.PLISTS
        done = self.label("purged")
        out: list[Instr] = [self.detach_lazy(z) for z in range(self.n)]
        if not full:
            out.append(Branch("nothing detached",
                              lambda S, t: None if any(t[PLISTS]) else done))
        for z in range(self.n):
            out += self.purge_zone(z)
            out += self.drop_cache(z)
        out.append(Label(done))
        return out

    def detach_lazy(self, z: int) -> Sec:
        LAZY, PLISTS, COUNTED = self.LAZYZ[z], self.PLISTS, self.COUNTED

        def detach(S: list[Any], t: list[Any]) -> None:
            m = S[LAZY]
            if m:
                S[LAZY] = 0
                t[HAND] |= m
                lists = list(t[PLISTS])
                lists[z] = m
                t[PLISTS] = tuple(lists)
                t[COUNTED] += m.bit_count()
        return Sec(f"detach zone[{z}] lazy: lazy -> hand", (self.L_LAZYZ[z],), detach,
                   touches=(LAZY,))

    def purge_zone(self, z: int) -> list[Instr]:
        """``purge_cpu_vmap_zone``: merge each detached area back, each with its sub."""
        FREE, NR, COUNTED, PLISTS = self.FREE, self.NR, self.COUNTED, self.PLISTS
        skip, loop = self.label("zone-purged"), self.label("merge")

        def merge_first(S: list[Any], t: list[Any]) -> None:
            lists = list(t[PLISTS])
            area = lowest_run(lists[z])
            lists[z] &= ~area
            t[PLISTS] = tuple(lists)
            t[HAND] &= ~area
            S[FREE] |= area
            t[AUX] = area.bit_count()

        def sub_then_next(S: list[Any], t: list[Any]) -> str | None:
            S[NR] -= t[AUX]
            t[COUNTED] -= t[AUX]
            if t[PLISTS][z]:
                merge_first(S, t)
                return loop
            t[AUX] = 0
            return None

        return [
            Branch(f"zone[{z}] purge list empty", lambda S, t: None if t[PLISTS][z] else skip),
            Acquire(self.L_FREE, "merge first area: hand -> free", merge_first, touches=(FREE,),
                    tag="purge"),
            Label(loop),
            Act("atomic_long_sub vmap_lazy_nr; merge next area", sub_then_next, jumps=(loop,)),
            Release(self.L_FREE),
            Label(skip),
        ]

    def drop_cache(self, z: int) -> list[Instr]:
        CACHE, FREE, PLISTS = self.CACHE[z], self.FREE, self.PLISTS
        skip = self.label("dropped")

        def detach(S: list[Any], t: list[Any]) -> str | None:
            c = S[CACHE]
            if not c:
                return skip
            S[CACHE] = 0
            t[HAND] |= c
            return None

        def reclaim(S: list[Any], t: list[Any]) -> None:
            pending = 0
            for m in t[PLISTS]:
                pending |= m
            chunks = t[HAND] & ~pending
            S[FREE] |= chunks
            t[HAND] &= ~chunks
        return [
            Sec(f"drop zone[{z}] cache: cache -> hand", (self.L_CACHE[z],), detach,
                touches=(CACHE,), jumps=(skip,)),
            Sec("reclaim_list_global: hand -> free", (self.L_FREE,), reclaim, touches=(FREE,)),
            Label(skip),
        ]

    def worker_instrs(self) -> list[Instr]:
        PENDING = self.PENDING

        def start(S: list[Any], t: list[Any]) -> None:
            S[PENDING] = 0
        return [
            OpMark("drain_vmap_area_work"),
            Label("idle"),
            Act("drain_vmap_work starts", start, guard=lambda s, t: bool(s[PENDING])),
            Acquire(self.L_MUTEX, "drain"),
            *self.purge_zones(full=False),
            Release(self.L_MUTEX),
            Goto("idle"),
        ]

    # ------------------------------------------------------------------ invariants
    def add_invariants(self) -> None:
        NR, COUNTED, LAZYZ = self.NR, self.COUNTED, list(self.LAZYZ)
        BUSYZ = list(self.BUSYZ)
        zone_of = self.zone_of
        cvz = self.cvz

        def make_nr(spec: Spec) -> Callable[[tuple[Any, ...]], str | None]:
            expect = spec.pages_sum(LAZYZ, [], COUNTED)

            def lazy_nr(s: tuple[Any, ...]) -> str | None:
                if s[NR] != expect(s):
                    lazy = sum(s[f].bit_count() for f in LAZYZ)
                    return (f"vmap_lazy_nr is {s[NR]} but the lazy sets hold {lazy} pages and "
                            f"{expect(s) - lazy} more are counted in flight")
                return None
            return lazy_nr

        # An area lives in the zone of its start, so every run of a zone's busy or lazy set
        # starts in that zone (a run may extend into later zones).  Bit arithmetic rather than
        # a walk over the runs: the same test, and one that the proofs run on symbolic masks
        # (and on page sets, under any zone map) without a branch per run.
        zone_pages = zone_masks(zone_of, self.n, self.p.pages)

        def make_placement(spec: Spec) -> Callable[[tuple[Any, ...]], str | None]:
            fields = [("busy", z, f) for z, f in enumerate(BUSYZ)] + \
                     [("lazy", z, f) for z, f in enumerate(LAZYZ)]

            def placement(s: tuple[Any, ...]) -> str | None:
                for kind, z, f in fields:
                    wrong = starts_outside(s[f], z, zone_pages[z])
                    if wrong:
                        return (f"{kind} pages of zone[{z}]: an area starts outside the zone, "
                                f"at pages {fmt(wrong)} (zones of {cvz} pages)")
                return None
            return placement

        self.b.invariant("vmap_lazy_nr", make_nr)
        self.b.invariant("placement", make_placement)
        self.add_slot_invariant(list(self.BUSYZ))
