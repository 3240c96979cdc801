"""Inductive invariants of the specs: the global spec's are proved; weakened by one conjunct
they are not, and the counterexample to induction is printed as spec states.

The strengthening is searched once per module (about ten seconds) and shared.
"""

from __future__ import annotations

import re

import pytest

from proofs import induction
from proofs.facts import base_facts, holds, reachable
from proofs.induction import Inductive, check_inductive, check_spec, cti_result
from proofs.obligation import Status

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


@pytest.mark.slow
def test_percpu_spec_invariants_are_inductive() -> None:
    # Mined from the percpu coverage scenario and its extra start states; several minutes of
    # Houdini rounds, so not among the default obligations yet.
    ind, cti = induction.strengthen("percpu", TIMEOUT)
    assert cti is None, cti
    base = [f.name for f in ind.facts if f.base]
    assert base == [f.name for f in base_facts(ind.spec)]
    assert all(holds(f, ind.spec.init, ind.spec) for f in ind.facts)
