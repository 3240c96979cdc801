"""A trivially correct reference for the allocator: an ownership map of pages.

Every page of the managed range is FREE, BUSY or LAZY.  The reference predicts, for the
``global`` design, exactly which block the kernel's lowest-match search may choose (a window,
since with alignment padding the search may stop at a lower block than the first one that is
large enough), and for every design what a correct allocator may never do: hand out a page that
is busy, misalign, leave the range, lose or invent an area.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from impl.intervals import adjust_search_size, is_within_this_va, nva_start_addr, search_length

FREE, BUSY, LAZY = "free", "busy", "lazy"


@dataclass
class ReferenceModel:
    start: int
    pages: int
    page_size: int
    lazy_max: int
    owner: list[str] = field(default_factory=list)
    busy: dict[int, int] = field(default_factory=dict)  # start -> end

    def __post_init__(self) -> None:
        self.owner = [FREE] * self.pages

    # ---------------------------------------------------------------- pages
    def page_of(self, addr: int) -> int:
        return (addr - self.start) // self.page_size

    def addr_of(self, page: int) -> int:
        return self.start + page * self.page_size

    def runs(self, kinds: tuple[str, ...]) -> list[tuple[int, int]]:
        """Maximal runs of pages whose owner is in ``kinds``, as address ranges."""
        out = []
        i = 0
        while i < self.pages:
            if self.owner[i] in kinds:
                j = i
                while j < self.pages and self.owner[j] in kinds:
                    j += 1
                out.append((self.addr_of(i), self.addr_of(j)))
                i = j
            else:
                i += 1
        return out

    def lazy_pages(self) -> int:
        return self.owner.count(LAZY)

    # ---------------------------------------------------------------- operations
    def take(self, addr: int, size: int) -> None:
        for p in range(self.page_of(addr), self.page_of(addr + size)):
            assert self.owner[p] != BUSY, f"page {p} handed out twice"
            self.owner[p] = BUSY
        self.busy[addr] = addr + size

    def free(self, addr: int) -> None:
        end = self.busy.pop(addr)
        for p in range(self.page_of(addr), self.page_of(end)):
            self.owner[p] = LAZY

    def purge(self) -> None:
        self.owner = [FREE if o == LAZY else o for o in self.owner]

    def drain_if_needed(self) -> None:
        if self.lazy_pages() > self.lazy_max:
            self.purge()

    def find(self, addr: int) -> tuple[int, int] | None:
        for s, e in self.busy.items():
            if s <= addr < e:
                return (s, e)
        return None

    # ---------------------------------------------------------------- kernel policy
    def candidates(self, size: int, align: int, vstart: int, vend: int) -> tuple[
            list[int], bool]:
        """Addresses the kernel's search may return from the current free space, and whether
        it may also fail.  The search returns a fitting block no lower than the lowest fitting
        one and no higher than the lowest fitting one that is at least the padded length."""
        adjust = adjust_search_size(size, align, vstart, vend, self.page_size)
        length = search_length(size, align, adjust)
        fits = [(s, e) for s, e in self.runs((FREE,)) if is_within_this_va(s, e, size, align, vstart)]
        big = next((b for b in fits if b[1] - b[0] >= length), None)
        window = [b for b in fits if big is None or b[0] <= big[0]]
        addrs = []
        may_fail = big is None
        for s, _e in window:
            nva = nva_start_addr(s, size, align, vstart)
            if nva + size <= vend:
                addrs.append(nva)
            else:
                may_fail = True  # the "vend" restriction rejects what the search found
        if not window:
            may_fail = True
        return addrs, may_fail
