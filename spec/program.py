"""What a model thread does: a list of allocator operations, pinned to one CPU.

Both the spec explorer and the implementation search run the same programs, so a scenario is
written once.  Sizes are in pages; ``slot`` names the address an ``Alloc`` produced so that a
later ``Free``/``Find`` of the same thread can use it.  Threads run these programs; the drain
worker is not a program (each design schedules it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Alloc:
    pages: int
    slot: str
    align_pages: int = 1
    # None means the design's whole range (VMALLOC_START..VMALLOC_END); otherwise page offsets.
    range_pages: tuple[int, int] | None = None

    def __str__(self) -> str:
        extra = f" align={self.align_pages}" if self.align_pages != 1 else ""
        if self.range_pages is not None:
            extra += f" range={self.range_pages[0]}..{self.range_pages[1]}"
        return f"{self.slot} = alloc({self.pages}{extra})"


@dataclass(frozen=True)
class Free:
    slot: str

    def __str__(self) -> str:
        return f"free({self.slot})"


@dataclass(frozen=True)
class Find:
    slot: str

    def __str__(self) -> str:
        return f"find({self.slot})"


@dataclass(frozen=True)
class Purge:
    def __str__(self) -> str:
        return "purge()"


Op = Alloc | Free | Find | Purge


@dataclass(frozen=True)
class ThreadProgram:
    cpu: int
    ops: tuple[Op, ...]

    def __str__(self) -> str:
        return f"cpu{self.cpu}: " + "; ".join(str(op) for op in self.ops)


def default_programs(threads: int, ops: int, cpus: int,
                     sizes: tuple[int, ...] = (1, 2)) -> tuple[ThreadProgram, ...]:
    """The default scenario: each thread ``ops`` times allocates a size from ``sizes`` (cycling)
    and then frees it.  Threads run identical programs, so symmetry reduction applies where the
    design does not care which CPU a thread is on."""
    programs = []
    for t in range(threads):
        body: list[Op] = []
        for k in range(ops):
            slot = f"a{k}"
            body.append(Alloc(sizes[k % len(sizes)], slot))
            body.append(Free(slot))
        programs.append(ThreadProgram(cpu=t % cpus, ops=tuple(body)))
    return tuple(programs)
