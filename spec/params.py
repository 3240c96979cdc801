"""The configuration a spec is built for: the threads' programs and the small-model sizes.

The checker maps a scenario (programs + ``VmapConfig``) onto these; the spec itself never sees
byte addresses, only pages ``0 .. pages-1`` of the managed range.

Relies on ``spec.program``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .program import Alloc, ThreadProgram


@dataclass(frozen=True)
class SpecParams:
    programs: tuple[ThreadProgram, ...]
    pages: int = 8
    lazy_max: int = 1
    nr_cpus: int = 1
    nr_nodes: int = 1
    zone_pages: int = 16
    # Design-specific knobs (percpu chunk size, ...), as in ``VmapConfig.extra``.
    extra: tuple[tuple[str, int], ...] = field(default=())

    def __post_init__(self) -> None:
        if not 1 <= self.pages <= 62:
            raise ValueError(f"the spec models 1..62 pages, got {self.pages}")
        if self.lazy_max < 0:
            raise ValueError("lazy_max must not be negative")
        for prog in self.programs:
            for op in prog.ops:
                if isinstance(op, Alloc):
                    if op.pages <= 0 or op.align_pages <= 0:
                        raise ValueError(f"{op}: size and alignment must be positive")
                    if op.align_pages & (op.align_pages - 1):
                        raise ValueError(f"{op}: alignment must be a power of two")
                    if op.range_pages is not None:
                        lo, hi = op.range_pages
                        if not 0 <= lo < hi <= self.pages:
                            raise ValueError(f"{op}: range outside 0..{self.pages}")

    def get(self, key: str, default: int) -> int:
        return dict(self.extra).get(key, default)

    def summary(self) -> dict[str, object]:
        return {"threads": len(self.programs), "pages": self.pages, "lazy_max": self.lazy_max,
                "nr_cpus": self.nr_cpus, "nr_nodes": self.nr_nodes,
                "zone_pages": self.zone_pages,
                "programs": [str(p) for p in self.programs], **dict(self.extra)}
