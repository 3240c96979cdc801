"""Small-model parameters of an allocator instance.

The kernel's allocator manages ``[VMALLOC_START, VMALLOC_END)`` with 4 KiB pages and derives
its purge threshold from the CPU count.  The model checker needs tiny instances (a few pages, a
threshold of one page), the stress runner needs large ones; both are a ``VmapConfig``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .intervals import lazy_max_pages as kernel_lazy_max_pages

PAGE_SIZE = 4096
# x86-64's VMALLOC_START: the model's range sits where the kernel's does, high in the 64-bit
# space, so the unsigned arithmetic is exercised near the top as well.
VMALLOC_START_X86_64 = 0xFFFF_C900_0000_0000


@dataclass(frozen=True)
class VmapConfig:
    """Parameters of one allocator instance.

    ``pages`` is the size of the managed range; ``lazy_max`` (pages) defaults to the kernel's
    ``lazy_max_pages()`` for ``nr_cpus``; ``nr_nodes`` (``nodes`` design) defaults to the
    kernel's ``clamp(num_possible_cpus(), 1, 128)``; ``zone_pages`` is ``vmap_zone_size`` in pages
    (the kernel uses 16).  Design-specific knobs go in ``extra``.
    """

    pages: int = 1 << 20
    page_size: int = PAGE_SIZE
    base: int = VMALLOC_START_X86_64
    nr_cpus: int = 1
    lazy_max: int | None = None
    nr_nodes: int | None = None
    zone_pages: int = 16
    extra: tuple[tuple[str, int], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.pages <= 0:
            raise ValueError(f"pages must be positive, got {self.pages}")
        if self.page_size <= 0 or self.page_size & (self.page_size - 1):
            raise ValueError(f"page_size must be a power of two, got {self.page_size}")
        if self.base % self.page_size:
            raise ValueError(f"base {self.base:#x} is not page aligned")
        # va_end is an unsigned long: an exclusive end of 2^64 would be stored as 0.
        if self.end >= 1 << 64:
            raise ValueError(f"the managed range ends at {self.end:#x}: its exclusive end must "
                             "be below 2^64")
        if self.nr_cpus <= 0:
            raise ValueError(f"nr_cpus must be positive, got {self.nr_cpus}")
        if self.lazy_max is not None and self.lazy_max < 0:
            raise ValueError(f"lazy_max must not be negative, got {self.lazy_max}")
        if self.nr_nodes is not None and not 1 <= self.nr_nodes <= 255:
            raise ValueError(f"nr_nodes must be in 1..255, got {self.nr_nodes}")
        if self.zone_pages <= 0:
            raise ValueError(f"zone_pages must be positive, got {self.zone_pages}")

    @property
    def start(self) -> int:
        """VMALLOC_START of the model."""
        return self.base

    @property
    def end(self) -> int:
        """VMALLOC_END of the model (exclusive)."""
        return self.base + self.pages * self.page_size

    @property
    def lazy_max_pages(self) -> int:
        if self.lazy_max is not None:
            return self.lazy_max
        return kernel_lazy_max_pages(self.nr_cpus, self.page_size)

    @property
    def nr_vmap_nodes(self) -> int:
        if self.nr_nodes is not None:
            return self.nr_nodes
        return max(1, min(self.nr_cpus, 128))

    @property
    def vmap_zone_size(self) -> int:
        return self.zone_pages * self.page_size

    def get(self, key: str, default: int) -> int:
        return dict(self.extra).get(key, default)

    def with_(self, **changes: object) -> VmapConfig:
        return replace(self, **changes)  # type: ignore[arg-type]
