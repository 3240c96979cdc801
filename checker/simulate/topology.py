"""Cache topology of a modelled machine: which CPUs share a last-level cache, where jobs run.

A cache line that moves between two CPUs of one cache domain (a Zen 2 CCX: four cores and
their shared L3) is served inside that domain; between domains it crosses the interconnect
(the IO die) and costs several times more.  The virtual-time runtime charges ``xfer_ns`` for a
transfer between domains and ``near_ratio * xfer_ns`` inside one: the ratio is a fact of the
machine, not a fitted parameter.

``Topology.flat(n)`` is the default: every CPU a domain of its own, so every transfer between
two CPUs costs ``xfer_ns`` (the model as it was before topologies existed).
``THREADRIPPER_3970X`` is the machine of the published measurements.

Job placement: test_vmalloc's kthreads are not bound to CPUs (``nr_threads`` replaced the CPU
mask in 5.13); the scheduler's fork balancing puts each new task in the idlest group, LLC
domains first, then idle cores before SMT siblings.  ``place(jobs)`` reproduces that spread:
job ``i`` goes to domain ``i mod D``, the next idle core there, SMT siblings last.

Relies on nothing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topology:
    """``domain[cpu]`` is the cache domain of each online CPU; ``spread`` lists the CPUs in
    the order the load balancer fills them."""

    name: str
    domain: tuple[int, ...]
    spread: tuple[int, ...]
    near_ratio: float = 1.0
    near_first: bool = False
    source: str = ""

    def __post_init__(self) -> None:
        n = len(self.domain)
        if n < 1:
            raise ValueError("a topology needs at least one CPU")
        if sorted(self.spread) != list(range(n)):
            raise ValueError("spread must list every CPU exactly once")
        if not 0.0 <= self.near_ratio <= 1.0:
            raise ValueError(f"near_ratio must be in [0, 1], got {self.near_ratio}")

    @property
    def nr_cpus(self) -> int:
        return len(self.domain)

    @classmethod
    def flat(cls, nr_cpus: int) -> Topology:
        """One domain per CPU; job ``i`` on CPU ``i``."""
        return cls("flat", tuple(range(nr_cpus)), tuple(range(nr_cpus)))

    def place(self, jobs: int) -> list[int]:
        """The CPU of each of ``jobs`` test threads (wrapping round when jobs > CPUs)."""
        n = self.nr_cpus
        return [self.spread[i % n] for i in range(jobs)]

    def describe(self) -> str:
        domains = len(set(self.domain))
        return (f"{self.name}: {self.nr_cpus} CPUs in {domains} cache domain(s)"
                + (f", transfer inside a domain {self.near_ratio:g} x xfer_ns"
                   if domains < self.nr_cpus else "")
                + (", near-first hand-off" if self.near_first else ", FIFO hand-off"))


def zen2_threadripper(ccx: int = 8, cores_per_ccx: int = 4, smt: int = 2) -> Topology:
    """Linux numbering of a Zen 2 Threadripper: CPUs ``0..C-1`` are the first thread of each
    core, CCX ``k`` holding cores ``4k..4k+3``; CPU ``c + C`` is the SMT sibling of ``c``."""
    cores = ccx * cores_per_ccx
    domain = tuple((c % cores) // cores_per_ccx for c in range(cores * smt))
    # Fork balancing: one task per CCX round-robin, then the next core of each, then siblings.
    spread = tuple(t * cores + k * cores_per_ccx + j
                   for t in range(smt) for j in range(cores_per_ccx) for k in range(ccx))
    return Topology(
        "Threadripper 3970X", domain, spread, near_ratio=ZEN2_NEAR_RATIO,
        near_first=True,
        source="AMD Zen 2: 4 cores per CCX share one L3; 8 CCXs (4 CCDs) behind the IO die")


# A line moved between two cores of one Zen 2 CCX versus between CCXs: published
# core-to-core latency charts of Zen 2 parts (e.g. AnandTech's Ryzen 9 3950X and Threadripper
# 3970X reviews, 2019) show roughly 25-30 ns inside a CCX against 80-110 ns across the IO die.
ZEN2_NEAR_RATIO = 0.25

THREADRIPPER_3970X = zen2_threadripper()
