"""Single-thread cost of an alloc+free pair at a given number of live areas.

The layout mirrors a long-running system: ``2n`` one-page areas are allocated and every second
one is freed and purged, leaving ``n`` busy areas separated by ``n`` one-page holes, so both the
busy tree and the free tree hold about ``n`` nodes.  Then pairs of ``alloc(size)``/``free`` run
in a loop on the plain runtime; lazily freed areas are drained by the design's own threshold, as
in the kernel.  Each repeat times ``pairs`` pairs; the figure is the median over repeats.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from impl.config import VmapConfig
from impl.designs import VmapDesign
from impl.intervals import lazy_max_pages
from impl.runtimes.plain import PlainRuntime


@dataclass(frozen=True)
class BenchPoint:
    design: str
    live: int
    pairs: int
    repeats: tuple[float, ...]  # µs per pair, one per repeat

    @property
    def median_us(self) -> float:
        return statistics.median(self.repeats)


def build(design_cls: type[VmapDesign], live: int, cpus: int, page_size: int) -> VmapDesign:
    lazy = lazy_max_pages(cpus, page_size)
    cfg = VmapConfig(pages=4 * live + 4 * lazy + 4096, nr_cpus=cpus, page_size=page_size)
    design = design_cls(PlainRuntime(), cfg)
    addrs = [design.alloc(page_size) for _ in range(2 * live)]
    for a in addrs[::2]:
        design.free(a)
    design.purge()
    return design


def measure(design_cls: type[VmapDesign], live: int, pairs: int, repeat: int,
            size_pages: int = 1, cpus: int = 32, page_size: int = 4096) -> BenchPoint:
    design = build(design_cls, live, cpus, page_size)
    size = size_pages * page_size
    alloc, free = design.alloc, design.free
    for _ in range(min(pairs, 2000)):  # warm-up: reach the steady state of lazy/purge cycles
        free(alloc(size))
    results = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(pairs):
            free(alloc(size))
        results.append((time.perf_counter() - t0) / pairs * 1e6)
    design.purge()
    design.check_invariants(at_rest=True)
    return BenchPoint(design_cls.name, live, pairs, tuple(results))
