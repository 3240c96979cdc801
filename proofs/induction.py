"""Inductive invariants of a spec: Init => Inv and Inv /\\ step => Inv', checked by Z3.

The explicit-state explorer checks the spec's invariants on the states it reaches from one small
scenario.  Here they are proved inductive instead: for *every* state satisfying the invariant,
whatever its page masks (all 2^pages subsets for each owner, not only those reached), every
step of every actor leads to a state satisfying it again.

The proof is about the spec that runs.  The spec is built from its own tables for a coverage
scenario, and its compiled step functions (``Spec.tables``: one sync operation per step, with
the spec's own bodies, lock checks and ``SpecAssertion``\\ s) run on a symbolic state
(``proofs.symbolic``); the invariant starts with the spec's own checks (the generated
single-owner / conservation / lock-exclusion check and the design's invariants such as
``vmap_lazy_nr``), also run on symbolic states.

Those invariants are not inductive alone (a state where a thread's slot names pages it does not
hold satisfies them, and its next step breaks them), so they are strengthened with facts per
actor position: the locks held there, which of its areas are in its hands or in which
structure, which counters equal which page counts, and that areas of different actors are
disjoint.  The locks held at each position, and which positions an actor can reach at all,
are computed from the step tables (``proofs.flow``).  The other candidate facts come from
templates over the spec's own fields, are kept only if they hold in every reachable state of
the scenario, and are then pruned to an inductive set (Houdini: drop every candidate some step
can break, until none breaks).  Each state the solver finds for a broken candidate is also run
concretely (``proofs.closure``), and every candidate false on those runs goes at once.  The
spec's own invariants are assumed before every step while the candidates are pruned, and
checked after every step once, against the final set.  If a step can break one of them (or
raise an assertion) from a state satisfying the final set, the result is a counterexample to
induction, printed as spec states: the state before, the step, and the state after.

Limits.  The spec is built for the coverage scenario's threads and operations and for
``pages`` pages; within that, every page mask is covered.  ``proofs.unbounded`` proves the
``global`` spec for every address (the obligation) from the same mined candidates; here the
``global`` spec is proved over its 4 pages by tests, and the ``percpu`` spec
(``strengthen("percpu")``, tests marked slow) from its own coverage scenario
(``percpu_coverage_params``: two zones of three pages over six) and the extra start states of
``proofs.facts.start_states``; positions the flow reaches but no mined state does (a lookup
that misses the zone it starts in, a retry that fails) get template candidates that Houdini and
the concrete runs settle.  It takes about 3 min (some 18,500 mined facts), which with the
rest of the proof job is over its minute, so it is not an obligation on the instance.  The
``nodes`` spec keeps lazy areas and pools as lists of area codes whose length varies, which
this encoding does not model (``Layout`` rejects it).

Relies on ``spec`` (registry, params, program, protocol, compile), ``proofs.facts`` (the
candidates and the spec's invariants as facts), ``proofs.flow``, ``proofs.closure``,
``proofs.stepcase``, ``proofs.symbolic`` and ``proofs.obligation``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from spec.compile import Spec
from spec.params import SpecParams
from spec.program import Alloc, Find, Free, Purge, ThreadProgram
from spec.registry import build_spec

from . import houdini
from .closure import Closure
from .facts import (
    Fact,
    Layout,
    base_facts,
    candidate_facts,
    holds,
    mine,
    reachable,
    start_states,
)
from .flow import Flow, analyse
from .houdini import Cti, Prover
from .obligation import Obligation, ProofResult, Status
from .stepcase import State, StepCase


def coverage_params(pages: int = 4) -> SpecParams:
    """Two threads between them allocate, look up, free and purge; together they ask for more
    than the pages, so an allocation can fail, purge and retry, and fail again; the drain
    worker runs when the lazy threshold (one page) is passed.  Every position of every actor is
    reached (candidate facts are mined from the reachable states, so an unreached position
    would have none)."""
    t0 = ThreadProgram(0, (Alloc(2, "a"), Find("a"), Free("a")))
    t1 = ThreadProgram(1, (Alloc(3, "a"), Free("a"), Purge()))
    return SpecParams((t0, t1), pages=pages, lazy_max=1, nr_cpus=2)


def percpu_coverage_params() -> SpecParams:
    """Two zones of three pages over six; T0 on CPU 0 asks for two pages (the global path),
    looks them up (an area can cross the zones) and frees them; T1 on CPU 1 asks for one page
    (the per-CPU path: the cache, the pre-fetch of a chunk), frees it and purges.

    Each zone can hold two runs, so a purge's detached list of either zone can hold two, and
    the purge's merge loop goes round twice in both zones.  With five pages (zone 1 of two)
    zone 1's loop never does, so no mined fact says what holds when it goes round again, and
    over page sets it can: the page-set proof ends in a counterexample to induction there."""
    t0 = ThreadProgram(0, (Alloc(2, "a"), Find("a"), Free("a")))
    t1 = ThreadProgram(1, (Alloc(1, "a"), Free("a"), Purge()))
    return SpecParams((t0, t1), pages=6, lazy_max=1, nr_cpus=2, extra=(("cvz_pages", 3),))


@dataclass(frozen=True)
class Coverage:
    """Where the candidate facts of a spec are mined: its coverage scenario, and the sizes of
    the page sets moved out of the free space in the extra start states
    (``proofs.facts.start_states``)."""

    params: SpecParams
    moved: tuple[int, ...] = ()


def coverage(name: str) -> Coverage:
    if name.split("-", 1)[0] == "percpu":
        p = percpu_coverage_params()
        return Coverage(p, (p.pages - 2, p.pages - 1))
    return Coverage(coverage_params())


# ---------------------------------------------------------------------------- obligations
@dataclass
class Inductive:
    """The outcome of the search for an inductive strengthening."""

    spec: Spec
    facts: list[Fact]
    candidates: int
    mined: int
    states: int
    queries: int
    cases: dict[tuple[int, int], StepCase]


@dataclass
class Mined:
    """A spec built for its coverage scenario, the flow of its step tables, its reachable
    states, and the candidate facts true in all of them."""

    spec: Spec
    flow: Flow
    states: list[State]
    candidates: int
    facts: list[Fact]
    cases: dict[tuple[int, int], StepCase]


def candidates(name: str, timeout: float, cover: Coverage | None = None) -> Mined:
    """Build spec ``name`` for its coverage scenario and propose its candidate facts (all of
    them, not mined: what a check of stored facts selects from)."""
    cover = cover or coverage(name)
    spec = build_spec(name, cover.params)
    lay = Layout(spec)
    cases: dict[tuple[int, int], StepCase] = {}

    def case(k: int, p: int) -> StepCase:
        got = cases.get((k, p))
        if got is None:
            step = spec.tables[k][p]
            assert step is not None
            got = cases[(k, p)] = StepCase(spec, k, p, step, timeout)
        return got

    flow = analyse(spec, case)
    states = reachable(spec, starts=start_states(spec, cover.moved))
    cands = candidate_facts(spec, lay, states, flow)
    return Mined(spec, flow, states, len(cands), cands, cases)


def mine_facts(name: str, timeout: float, cover: Coverage | None = None) -> Mined:
    """Build spec ``name`` for its coverage scenario and mine candidate facts from it."""
    m = candidates(name, timeout, cover)
    return dataclasses.replace(m, facts=mine(m.spec, m.facts, m.states))


def strengthen(name: str, timeout: float,
               cover: Coverage | None = None) -> tuple[Inductive, Cti | None]:
    """Mine candidate facts for spec ``name`` and prune them to an inductive set."""
    t0 = time.monotonic()
    m = mine_facts(name, timeout, cover)
    spec, states, cases = m.spec, m.states, m.cases
    t1 = time.monotonic()
    facts = [*base_facts(spec), *m.facts]
    closure = Closure(spec, facts, states)
    prover = Prover(spec, facts, timeout, cases, closure)
    t2 = time.monotonic()
    cti = prover.run(houdini=True)
    houdini.log.debug(
        "%d states, %d candidates, %d mined; mining %.1f s, goals %.1f s, houdini %.1f s, "
        "%d queries, %d states run, %d facts left; %s %s", len(states), m.candidates,
        len(m.facts), t1 - t0, t2 - t1, time.monotonic() - t2, prover.queries, closure.states,
        len(prover.live()), prover.counts, prover.times)
    return Inductive(spec, prover.live(), m.candidates, len(m.facts), len(states),
                     prover.queries, cases), cti


def check_inductive(spec: Spec, facts: list[Fact], timeout: float,
                    cases: dict[tuple[int, int], StepCase] | None = None
                    ) -> tuple[Cti | None, int]:
    """Is the conjunction of ``facts`` inductive as it stands (no fact dropped)?  Init => Inv
    on the initial state, then Inv and each step => Inv'."""
    bad_init = [f.name for f in facts if not holds(f, spec.init, spec)]
    if bad_init:
        return Cti("-", "initial state", bad_init[0], spec.describe(spec.init), []), 0
    prover = Prover(spec, facts, timeout, {} if cases is None else cases)
    cti = prover.run(houdini=False)
    return cti, prover.queries


def cti_result(cti: Cti, stats: dict[str, int]) -> ProofResult:
    notes = [f"step: {cti.actor}: {cti.step}", f"before: {cti.before}"]
    if isinstance(cti.after, str):
        notes.append(f"after: {cti.after}")
    else:
        notes += [f"after: {d}" for d in cti.after]
    return ProofResult(Status.COUNTEREXAMPLE,
                       f"counterexample to induction: {cti.actor} breaks {cti.broken!r}",
                       (), tuple(notes), stats)


def check_spec(name: str, timeout: float) -> ProofResult:
    t0 = time.monotonic()
    try:
        ind, cti = strengthen(name, timeout)
    except NotImplementedError as exc:
        return ProofResult.unknown(f"not encoded: {exc}")
    stats = {"reachable_states": ind.states, "candidates": ind.candidates, "mined": ind.mined,
             "inductive": len(ind.facts), "queries": ind.queries}
    if cti is not None:
        return cti_result(cti, stats)
    # Houdini's last round checked every step against the final set and dropped nothing:
    # that round is the proof of Inv and step => Inv'.  Init => Inv holds by construction
    # (every fact held in every reachable state); checked again here, as the obligation says.
    bad_init = [f.name for f in ind.facts if not holds(f, ind.spec.init, ind.spec)]
    if bad_init:  # pragma: no cover - mined facts hold in the initial state
        return ProofResult(Status.COUNTEREXAMPLE, f"the initial state breaks {bad_init[0]!r}",
                           notes=(f"initial state: {ind.spec.describe(ind.spec.init)}",),
                           stats=stats)
    base = [f.name for f in ind.facts if f.base]
    p = ind.spec.pages
    return ProofResult(
        Status.PROVED,
        f"{', '.join(base)}: inductive with {len(ind.facts) - len(base)} position facts, for "
        f"every {p}-page state of the coverage scenario ({time.monotonic() - t0:.1f} s)",
        notes=tuple(f.name for f in ind.facts), stats=stats)


def _checker(name: str) -> Callable[[float], ProofResult]:
    return lambda timeout: check_spec(name, timeout)


def obligations(specs: Sequence[str] = ("global",)) -> list[Obligation]:
    return [Obligation(f"induction.{n}", "induction",
                       f"the {n} spec's invariants are inductive: Init => Inv, Inv and every "
                       "step => Inv'", _checker(n)) for n in specs]
