"""Inductive invariants of the specs: the global spec's are proved; weakened by one conjunct
they are not, and the counterexample to induction is printed as spec states.

The strengthening is searched once per module (a few seconds) and shared; the percpu one
(minutes) only in the slow tests.
"""

from __future__ import annotations

import re

import pytest

from proofs import induction
from proofs.closure import Closure
from proofs.facts import Fact, base_facts, holds, reachable, start_states
from proofs.flow import analyse
from proofs.induction import Inductive, check_inductive, check_spec, cti_result
from proofs.obligation import Status
from proofs.stepcase import StepCase
from spec.protocol import HAND, HELD, PC
from spec.registry import build_spec

TIMEOUT = 30.0


@pytest.fixture(scope="module")
def strengthened() -> Inductive:
    ind, cti = induction.strengthen("global", TIMEOUT)
    assert cti is None, cti
    return ind


def test_global_spec_invariants_are_inductive(strengthened: Inductive) -> None:
    ind = strengthened
    base = [f.name for f in ind.facts if f.base]
    # The spec's own invariants are all in the inductive set, none dropped.
    assert base == [f.name for f in base_facts(ind.spec)]
    assert "vmap_lazy_nr" in base
    assert len(ind.facts) > len(base)
    # Init => Inv.
    assert all(holds(f, ind.spec.init, ind.spec) for f in ind.facts)
    # Every fact of the set holds in every reachable state (it was mined from them).
    states = reachable(ind.spec)
    assert all(holds(f, s, ind.spec) for s in states[:200] for f in ind.facts)


def test_invariant_weakened_by_one_conjunct_gives_a_counterexample_to_induction(
        strengthened: Inductive) -> None:
    ind = strengthened
    # The locks T0 holds right after unlinking its area: without it, a state where T0 holds
    # more (or other) locks there satisfies the rest, and its unlock step breaks the next
    # position's lock fact.  The templates state that conjunct in several forms (the constant,
    # and sums with page counts that equal it there), all of which go.
    at = "T0 at 'free(a), holds vmap_area_lock, unlink"
    weak = [f for f in ind.facts
            if f.name.startswith(at) and "held" in f.name.rsplit(": ", 1)[-1]]
    assert any(re.search(r": held == \d+$", f.name) for f in weak)
    facts = [f for f in ind.facts if f not in weak]
    cti, queries = check_inductive(ind.spec, facts, TIMEOUT, ind.cases)
    assert cti is not None and queries > 0
    assert cti.actor == "T0" and cti.step.startswith("unlock vmap_area_lock")
    r = cti_result(cti, {})
    assert r.status is Status.COUNTEREXAMPLE
    text = r.text()
    assert "counterexample to induction" in text
    assert "before: {'globals'" in text and "after: {'globals'" in text
    assert "'locks':" in text


@pytest.mark.slow
def test_the_full_set_is_inductive_as_it_stands(strengthened: Inductive) -> None:
    cti, _ = check_inductive(strengthened.spec, strengthened.facts, TIMEOUT,
                             strengthened.cases)
    assert cti is None


def test_specs_with_area_code_lists_are_not_encoded() -> None:
    r = check_spec("nodes", TIMEOUT)
    assert r.status is Status.UNKNOWN
    assert "not encoded" in r.detail and "area codes" in r.detail


def test_only_the_global_spec_is_an_obligation() -> None:
    assert [o.name for o in induction.obligations()] == ["induction.global"]


@pytest.fixture(scope="module")
def percpu_strengthened() -> Inductive:
    # About a minute of Houdini on two cores: with the rest of the proof job, over its minute.
    ind, cti = induction.strengthen("percpu", TIMEOUT)
    assert cti is None, cti
    return ind


@pytest.mark.slow
def test_percpu_spec_invariants_are_inductive(percpu_strengthened: Inductive) -> None:
    ind = percpu_strengthened
    base = [f.name for f in ind.facts if f.base]
    assert base == [f.name for f in base_facts(ind.spec)]
    assert "placement" in base and "vmap_lazy_nr" in base
    assert all(holds(f, ind.spec.init, ind.spec) for f in ind.facts)


@pytest.mark.slow
def test_percpu_invariant_weakened_by_one_conjunct_gives_a_counterexample(
        percpu_strengthened: Inductive) -> None:
    ind = percpu_strengthened
    # The locks T1 holds while it carves its request from the chunk it pre-fetched: without
    # that conjunct, a state where it holds others there satisfies the rest, and the unlock
    # that follows releases a lock it does not hold (or keeps one the next position says
    # it does not).
    at = "T1 at 'a = alloc(1), holds zone[1].free.lock, zone[1] cache: chunk hand -> cache"
    weak = [f for f in ind.facts if f.name.startswith(at) and ": held == " in f.name]
    assert len(weak) == 1
    cti, queries = check_inductive(ind.spec, [f for f in ind.facts if f not in weak], TIMEOUT,
                                   ind.cases)
    assert cti is not None and queries > 0
    assert cti.actor == "T1" and cti.step.startswith("unlock zone[1].free.lock")
    assert cti_result(cti, {}).status is Status.COUNTEREXAMPLE


def test_locks_held_follow_from_the_step_tables() -> None:
    # Computed from the compiled steps, not mined: every position a run of the percpu
    # coverage scenario reaches is in the flow, with the very lock mask the run holds there,
    # and the positions the flow adds are reachable only through data (a lookup that misses
    # the zone it starts in), never through a lock.
    cover = induction.coverage("percpu")
    spec = build_spec("percpu", cover.params)
    cases: dict[tuple[int, int], StepCase] = {}

    def case(k: int, p: int) -> StepCase:
        if (k, p) not in cases:
            step = spec.tables[k][p]
            assert step is not None
            cases[(k, p)] = StepCase(spec, k, p, step, TIMEOUT)
        return cases[(k, p)]

    flow = analyse(spec, case)
    seen: dict[tuple[int, int], set[int]] = {}
    for s in reachable(spec, starts=start_states(spec, cover.moved)):
        for k, a in enumerate(spec.actor_index):
            seen.setdefault((k, s[a][PC]), set()).add(s[a][HELD])
    for (k, p), held in seen.items():
        assert p in flow.reach[k]
        assert held == {flow.held_at(k, p)}
    extra = [(k, p) for k in range(len(spec.actor_names)) for p in flow.reach[k]
             if (k, p) not in seen]
    assert extra and all(flow.held_at(k, p) is not None for k, p in extra)
    # Positions between steps (a goto, a branch) are never reached.
    assert all(spec.tables[k][p] is not None or p == len(spec.tables[k]) - 1
               for k in range(len(spec.actor_names)) for p in flow.reach[k])


def test_runs_from_a_state_refute_the_facts_they_break() -> None:
    # From the initial state every mined fact holds on every run (nothing refuted); a fact
    # that a run from there breaks is refuted, and nothing is taken from a start state that
    # breaks a live fact already.
    ind_spec = build_spec("global", induction.coverage("global").params)
    states = reachable(ind_spec)
    a = ind_spec.actor_index[0]
    never_free = Fact("T0.hand is always empty", None, None, frozenset({(0, HAND)}),
                      lambda s: s[a][HAND] == 0)
    facts = [*base_facts(ind_spec), never_free]
    closure = Closure(ind_spec, facts, [], limit=10_000)
    assert closure.refute(ind_spec.init, lambda f: True, facts[:-1]) == [never_free]
    closure = Closure(ind_spec, facts, states, limit=10_000)
    assert closure.refute(ind_spec.init, lambda f: True, facts[:-1]) == []
    bad = next(s for s in states if s[a][HAND])
    assert Closure(ind_spec, facts, []).refute(bad, lambda f: True, facts[:-1]) == []
