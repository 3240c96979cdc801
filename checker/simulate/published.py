"""Published measurements of the vmap-area allocator's contention (reference section 4).

Each point says where it comes from and on what machine, so a report can put it beside the
simulated figure.  The v1 cover letter's table is the calibration target (``global`` curve)
and the out-of-sample check (patched curve); the v3 cover letter's wall times and the LSFMM
talk's figure are further checks.  Relies on nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

MACHINE = "AMD Ryzen Threadripper 3970X (32 cores, 64 threads)"


@dataclass(frozen=True)
class Curve:
    """µs per vmalloc()/vfree() pair (fix_size, 1 page) against the number of jobs."""

    name: str
    source: str
    design: str  # the design of ours that plays it
    points: tuple[tuple[int, float], ...]

    @property
    def jobs(self) -> tuple[int, ...]:
        return tuple(n for n, _ in self.points)

    def at(self, jobs: int) -> float | None:
        return dict(self.points).get(jobs)


# Series v1 cover letter, 22 May 2023, v6.3 ("Mitigate a vmap lock contention").
V1_GLOBAL = Curve(
    "v1 before", "v1 cover letter (22 May 2023, v6.3), " + MACHINE, "global",
    ((1, 0.576), (2, 2.68), (4, 6.04), (8, 10.46), (16, 14.37), (32, 21.09)))
V1_PATCHED = Curve(
    "v1 after", "v1 cover letter (22 May 2023, v6.3 + series), " + MACHINE, "nodes",
    ((1, 0.556), (2, 1.08), (4, 1.29), (8, 2.16), (16, 3.03), (32, 3.83)))


@dataclass(frozen=True)
class WallRatio:
    """A before/after wall-time ratio of a whole test_vmalloc run."""

    name: str
    source: str
    mask: int
    threads: int
    before_s: float
    after_s: float

    @property
    def ratio(self) -> float:
        return self.before_s / self.after_s


# Series v3 cover letter, 2 Jan 2024: time ./test_vmalloc.sh run_test_mask=7 nr_threads=64.
V3_MASK7 = WallRatio("v3 mask 7", "v3 cover letter (2 Jan 2024, 6.7-rc8), " + MACHINE,
                     7, 64, 10 * 60 + 51.271, 51.301)


@dataclass(frozen=True)
class LatencyRatio:
    """Per-operation latency on one thread against many (a talk's round figures)."""

    name: str
    source: str
    one_us: float
    threads: int
    many_us: float
    verified: bool

    @property
    def ratio(self) -> float:
        return self.many_us / self.one_us


LSFMM_2023 = LatencyRatio(
    "LSFMM 2023", "LSFMM+BPF 2023 talk as reported by LWN (not checked: paywalled)",
    2.0, 32, 50.0, verified=False)
