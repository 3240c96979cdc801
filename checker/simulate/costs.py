"""The cost model of virtual time: what each step of the allocator costs on a modelled CPU.

Five parameters (the issue's limit), all in nanoseconds, each a physical quantity of a
cache-coherent multiprocessor; four are fitted, ``tlb_ns`` is held at its prior (the values in
use are those of ``fitted.json``, see ``fit``).  Machine facts that are not parameters (the
cache topology, the near/far transfer ratio, the CPU count) live in ``topology``:

``call_ns``
    Everything one ``vmalloc()`` or ``vfree()`` does outside the vmap-area allocator: page
    allocation and freeing from the per-CPU lists, the slab objects, mapping and unmapping the
    page, the caller's touch of the page.  All per-CPU work, so it never contends; charged once
    per allocator call.
``node_ns``
    One node of a tree walk with the node in the local cache.  A tree call costs
    ``log2(size + 1)`` nodes (the depth of a red-black search path); a size-class pool call one.
``lock_ns``
    One uncontended lock acquisition or atomic read-modify-write on a line this CPU already
    holds (the locked instruction itself).
``xfer_ns``
    Moving one cache line from another CPU's cache in another cache domain: a lock word last
    written elsewhere, an atomic counter last written elsewhere, every node of a tree walk
    when the tree was last written by another CPU (the path a writer touched is dirty in its
    cache), and the hand-off of a contended lock (the releasing store travels to the waiter
    spinning on the word).  Under contention this is what grows: the critical section itself
    slows, because every line it touches was last written by the previous holder.  Between two
    CPUs of one cache domain (a CCX sharing its L3) the same transfer costs
    ``near_ratio * xfer_ns``, where ``near_ratio`` is a fact of the machine's topology
    (``checker.simulate.topology``: 0.25 on Zen 2), not a sixth parameter.
``tlb_ns``
    The cost per CPU of the purge's broadcast TLB flush (``flush_tlb_kernel_range`` sends an IPI
    to every online CPU and waits for all of them), charged to the purging context while it
    holds ``vmap_purge_lock``.  Not fitted: fix_size purges once every 28,672 pairs on 64 CPUs,
    so the flush is a few ns per pair and the curve cannot tell its value; it is held at the
    prior (500 ns per CPU, 32 µs for a 64-CPU flush) and matters for the mask-7 check only.

How these combine into time is the virtual-time runtime's business
(``checker.runtimes.virtual``); this module only holds the numbers and their provenance.

The published machine (``topology.THREADRIPPER_3970X``) is modelled as it was at every job
count: 64 online CPUs (``lazy_max_pages``, the flush fan-out, the node count), eight CCXs of
four cores, jobs spread one per CCX before two share one, and near-first hand-off of a
contended lock (the earliest waiter in the releaser's CCX, if one is already waiting, else the
earliest waiter).  That last rule is an ASSUMPTION, not a kernel fact: qspinlock's MCS queue is
FIFO in enqueue order, and the kernel has no NUMA- or CCX-aware lock (the CNA proposal was not
merged).  It stands for the hardware's arbitration of the contended lock word and tail: a
requester in the domain that owns the line gets it from the shared L3 several times faster
than one behind the IO die, so enqueues, and with them hand-offs, cluster by CCX.  The rule
cannot starve a domain (it only reorders waiters already queued at the release, and a domain
whose waiters are served hands the lock on); it is what lets the model follow the published
curve at all.

What the model can and cannot reproduce.  With FIFO hand-off every shared resource is a server
whose per-operation demand does not shrink as CPUs are added, so latency grows at least
linearly once one saturates; the published ``global`` curve does not (µs per pair divided by
jobs: 0.58, 1.34, 1.51, 1.31, 0.90, 0.66), and a flat or FIFO model misses it by +84 % at 32
jobs.  With CCXs and near-first hand-off the serialized cost per pair falls once jobs share a
CCX (16 and 32 jobs), as published.  From 2 to 8 jobs (one job per CCX) the busy lock is
saturated and its cost per pair is that of a critical section whose lines all come from
another CCX; it is the same at 4 and at 8 jobs only because the busy tree holds the machine's
own resident areas (``driver.RESIDENT_AREAS``): in an empty vmalloc space the tree holds the
jobs' few live areas, its search path is one or two nodes at 4 jobs and four at 8, and the
model jumped 3x from 4 to 8 jobs (published 1.73x).  What it cannot follow is the published
dip of the cost per pair from 4 to 8 jobs (1.51 to 1.31 µs): the simulated cost per pair is
flat there, so latency doubles, and the fit splits the difference (see ``fitted.json``).
Trees in the mask-7 check are 64 times smaller than the kernel's and the model has no DRAM
misses, so that ratio stays below the published 12.7x.
Relies on nothing but the standard library; ``fitted.json`` beside it holds the defaults.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

FITTED_PATH = Path(__file__).with_name("fitted.json")

# Starting point of the fit and fallback when fitted.json is missing: typical magnitudes of a
# 2019-2020 x86 server core (a locked RMW ~20 ns, a cross-core line transfer ~100 ns).
PRIOR = {"call_ns": 250.0, "node_ns": 5.0, "lock_ns": 20.0, "xfer_ns": 100.0, "tlb_ns": 500.0}


@dataclass(frozen=True)
class CostModel:
    """The five costs, in nanoseconds of virtual time."""

    call_ns: float
    node_ns: float
    lock_ns: float
    xfer_ns: float
    tlb_ns: float

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"cost {f.name} must be a non-negative number, got {v!r}")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def to_json(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}

    def replace(self, **changes: float) -> CostModel:
        d = self.to_json()
        unknown = set(changes) - set(d)
        if unknown:
            raise ValueError(f"unknown cost parameter(s): {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(d)}")
        d.update(changes)
        return CostModel(**d)

    def describe(self) -> str:
        return ", ".join(f"{k}={v:.4g}" for k, v in self.to_json().items())


def load_fitted(path: Path = FITTED_PATH) -> tuple[CostModel, dict[str, Any]]:
    """The fitted costs and the record of their fit; the prior if no fit was committed."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return CostModel(**PRIOR), {"source": "prior (no fitted.json)"}
    return CostModel(**{k: float(v) for k, v in data["params"].items()}), data


def default_costs() -> CostModel:
    return load_fitted()[0]


def parse_overrides(spec: str) -> dict[str, float]:
    """``--cost xfer_ns=120,tlb_ns=0`` -> mapping; raises ValueError with a clear message."""
    out: dict[str, float] = {}
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{item!r} is not NAME=VALUE")
        key = key.strip()
        if key not in CostModel.names():
            raise ValueError(f"unknown cost parameter {key!r}; known: "
                             f"{', '.join(CostModel.names())}")
        try:
            out[key] = float(value)
        except ValueError:
            raise ValueError(f"{item!r}: {value!r} is not a number") from None
    return out
