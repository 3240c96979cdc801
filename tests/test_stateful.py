"""The allocator against a page-ownership reference, driven by hypothesis.

Random alloc/free/find/purge with random sizes, alignments, ranges and CPUs, plus rejected
requests; every result is compared with the reference and every invariant is checked after
every step.  For ``global`` the reference predicts the kernel's choice of block exactly (up to
the window the padded search allows) and the tree search is compared with a linear scan on every
allocation.  Other designs keep address space in their own caches, so for them the reference
checks what no correct allocator may do.  Zones of 1 to 16 pages make areas span the zones of
``nodes`` and ``percpu`` (every busy area must be found by its last byte), and bursts of one size
from one CPU fill pools and run pre-fetched chunks down.
"""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from impl.config import VmapConfig
from impl.designs import get_design
from impl.errors import AllocationFailed, InvalidRequest, UnknownAddress
from impl.intervals import adjust_search_size, is_within_this_va
from impl.rbtree import lowest_match_linear
from impl.runtimes.plain import PlainRuntime
from tests.reference_model import BUSY, FREE, LAZY, ReferenceModel

PAGE = 4096
PAGES = 48
EXACT_POLICY = {"global"}  # designs whose every choice the reference predicts
DESIGNS = ["global", "percpu", "nodes"]


def make_machine(design_name: str) -> type[RuleBasedStateMachine]:
    class AllocatorMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.live: list[int] = []

        @initialize(lazy_max=st.integers(0, 12), cpus=st.integers(1, 4),
                    zone_pages=st.sampled_from([1, 2, 4, 8, 16]))
        def setup(self, lazy_max: int, cpus: int, zone_pages: int) -> None:
            self.rt = PlainRuntime()
            self.cfg = VmapConfig(pages=PAGES, nr_cpus=cpus, lazy_max=lazy_max,
                                  nr_nodes=min(cpus + 1, 3), zone_pages=zone_pages)
            self.d = get_design(design_name)(self.rt, self.cfg)
            self.ref = ReferenceModel(self.cfg.start, PAGES, PAGE, self.cfg.lazy_max_pages)
            self.exact = design_name in EXACT_POLICY

        # ------------------------------------------------------------ alloc
        @rule(pages=st.integers(1, 5), align_shift=st.integers(0, 4), cpu=st.integers(0, 3),
              rng=st.one_of(st.none(), st.tuples(st.integers(0, PAGES - 1), st.integers(1, PAGES))),
              exact_range=st.booleans())
        def alloc(self, pages: int, align_shift: int, cpu: int,
                  rng: tuple[int, int] | None, exact_range: bool) -> None:
            size = pages * PAGE
            align = PAGE << align_shift if align_shift else PAGE
            vstart, vend = self.cfg.start, self.cfg.end
            if rng is not None:
                lo = rng[0]
                hi = min(PAGES, lo + pages) if exact_range else max(lo + 1, min(PAGES, rng[1]))
                vstart, vend = self.cfg.start + lo * PAGE, self.cfg.start + hi * PAGE
            self.rt.set_cpu(cpu % self.cfg.nr_cpus)
            if self.exact:
                self.compare_lowest_match(size, align, vstart, vend)
                addrs1, may_fail1 = self.ref.candidates(size, align, vstart, vend)
                retries = self.d.retries  # type: ignore[attr-defined]
            try:
                addr = self.d.alloc(size, align, vstart, vend)
            except AllocationFailed as exc:
                assert f"vmap allocation for size {size} failed" in str(exc)
                addr = None
            if self.exact:
                if self.d.retries != retries:  # type: ignore[attr-defined]
                    assert may_fail1, "purged and retried although the first search must succeed"
                    self.ref.purge()
                    addrs2, may_fail2 = self.ref.candidates(size, align, vstart, vend)
                    if addr is None:
                        assert may_fail2, "failed although the purged space has a fit"
                    else:
                        assert addr in addrs2, f"{addr:#x} is not the kernel's choice {addrs2}"
                else:
                    assert addr is not None and addr in addrs1, (
                        f"{addr} is not the kernel's choice {[hex(a) for a in addrs1]}")
            if addr is None:
                self.check_failure_is_legitimate(size, align, vstart, vend)
                return
            assert addr % align == 0 and vstart <= addr and addr + size <= vend
            self.ref.take(addr, size)
            self.live.append(addr)

        def compare_lowest_match(self, size: int, align: int, vstart: int, vend: int) -> None:
            tree = self.d.free_vmap_area_root  # type: ignore[attr-defined]
            ranges = list(tree.ranges())
            got = tree.find_vmap_lowest_match(size, align, vstart, False)
            want = lowest_match_linear(ranges, size, align, vstart)
            assert (got.range if got else None) == want, "tree search differs from linear scan"
            adjust = adjust_search_size(size, align, vstart, vend, PAGE)
            padded = tree.find_vmap_lowest_match(size, align, vstart, adjust)
            if padded is not None:
                assert is_within_this_va(padded.va_start, padded.va_end, size, align, vstart)
                assert want is not None and padded.va_start >= want[0]

        def check_failure_is_legitimate(self, size: int, align: int, vstart: int, vend: int) -> None:
            # After a full purge every page that is not busy is reclaimable: a request that is
            # not padded (so the search is exact) must then fit if any run of non-busy pages fits.
            if adjust_search_size(size, align, vstart, vend, PAGE):
                return
            for s, e in self.ref.runs((FREE, LAZY)):
                if is_within_this_va(s, e, size, align, vstart):
                    nva = max(s, vstart)
                    nva = (nva + align - 1) // align * align
                    assert nva + size > vend, (
                        f"allocation of {size // PAGE} pages failed but [{s:#x}, {e:#x}) is not busy")

        # ------------------------------------------------------------ free
        @precondition(lambda self: self.live)
        @rule(data=st.data(), cpu=st.integers(0, 3))
        def free(self, data: st.DataObject, cpu: int) -> None:
            self.free_addr(data.draw(st.sampled_from(self.live)), cpu)

        def free_addr(self, addr: int, cpu: int) -> None:
            self.rt.set_cpu(cpu % self.cfg.nr_cpus)
            self.d.free(addr)
            self.live.remove(addr)
            self.ref.free(addr)
            if self.exact:
                self.ref.drain_if_needed()

        @rule(pages=st.integers(1, 3), count=st.integers(2, 8), cpu=st.integers(0, 3))
        def burst(self, pages: int, count: int, cpu: int) -> None:
            """Several areas of one size from one CPU, then all freed: fills a node's size
            class past the four entries a partial pool decay needs, and runs a CPU's
            pre-fetched chunk down to its watermark."""
            got = []
            for _ in range(count):
                before = len(self.live)
                self.alloc(pages, 0, cpu, None, False)
                if len(self.live) > before:
                    got.append(self.live[-1])
            for addr in got:
                self.free_addr(addr, cpu)

        @rule(page=st.integers(0, PAGES - 1), offset=st.sampled_from([0, 1, PAGE // 2]))
        def free_bad_address(self, page: int, offset: int) -> None:
            addr = self.cfg.start + page * PAGE + offset
            if addr in self.ref.busy:
                return
            before = self.d.snapshot()
            with pytest.raises(UnknownAddress) as exc:
                self.d.free(addr)
            assert "vfree()" in str(exc.value)
            assert self.d.snapshot() == before

        # ------------------------------------------------------------ bad requests
        @rule(which=st.sampled_from(["size0", "unaligned-size", "align", "empty", "inverted"]))
        def alloc_bad_request(self, which: str) -> None:
            args = {"size0": (0, PAGE, None, None),
                    "unaligned-size": (PAGE + 1, PAGE, None, None),
                    "align": (PAGE, 3 * PAGE, None, None),
                    "empty": (PAGE, PAGE, self.cfg.start + PAGE, self.cfg.start + PAGE),
                    "inverted": (PAGE, PAGE, self.cfg.start + 2 * PAGE, self.cfg.start)}[which]
            before = self.d.snapshot()
            with pytest.raises(InvalidRequest):
                self.d.alloc(*args)
            assert self.d.snapshot() == before

        # ------------------------------------------------------------ find, purge
        @rule(page=st.integers(0, PAGES - 1), offset=st.integers(0, PAGE - 1))
        def find(self, page: int, offset: int) -> None:
            addr = self.cfg.start + page * PAGE + offset
            assert self.d.find(addr) == self.ref.find(addr)

        @rule(cpu=st.integers(0, 3))
        def purge(self, cpu: int) -> None:
            self.rt.set_cpu(cpu % self.cfg.nr_cpus)
            self.d.purge()
            self.ref.purge()

        # ------------------------------------------------------------ invariants
        @invariant()
        def consistent(self) -> None:
            if not hasattr(self, "d"):
                return
            self.d.check_invariants(at_rest=True)
            snap = self.d.snapshot()
            assert snap.by_kind("busy") == sorted(self.ref.busy.items())
            if self.exact:
                assert snap.by_kind("lazy") == self.ref.runs((LAZY,))
                assert snap.by_kind("free") == self.ref.runs((FREE,))
            else:
                assert all(self.ref.owner[self.ref.page_of(s)] == BUSY for s, _ in snap.by_kind("busy"))
            # Small zones make areas span zones: the last byte of an area may map to another
            # node or zone than its start, and must still find it.
            for s, e in snap.by_kind("busy"):
                assert self.d.find(e - 1) == (s, e), f"[{s:#x}, {e:#x}) not found by {e - 1:#x}"

    AllocatorMachine.__name__ = f"AllocatorMachine_{design_name}"
    return AllocatorMachine


@pytest.mark.parametrize("design_name", DESIGNS)
def test_allocator_matches_reference(design_name: str) -> None:
    try:
        get_design(design_name)
    except KeyError:
        pytest.skip(f"design {design_name} is not implemented yet")
    machine = make_machine(design_name)
    machine.TestCase.settings = settings(settings(), stateful_step_count=40)
    machine.TestCase().runTest()
