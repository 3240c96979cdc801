"""The inductive-invariant proof over page sets of the whole address space (proofs.unbounded).

The stored strengthening of the ``global`` spec is proved inductive for every number of pages
and every address; with one of its conjuncts left out it is not, and the proof says so with a
counterexample to induction printed as a spec state; a stored set the spec no longer proposes
is Unknown, never a pass.  The page-set model itself (proofs.symset) is checked against Python
ints on random masks, and the ownership check it runs (``Spec.owned_once``) against the
explorer's generated check on every reachable state.
"""

from __future__ import annotations

import random

import pytest
import z3

from proofs import certificate, induction, setstate, unbounded
from proofs.facts import Fact
from proofs.obligation import Status
from proofs.render import Kind
from proofs.symbolic import Executor, SymInt
from proofs.symset import Pages, SymSet
from spec.masks import fit_choices, lowest_run
from spec.registry import build_spec

TIMEOUT = 60.0


# ---------------------------------------------------------------------------- the model
def _concrete(P: Pages, name: str, mask: int, pages: int) -> tuple[SymSet, list[z3.BoolRef]]:
    """A page set pinned to ``mask`` on pages ``0 .. pages-1`` (its size, given with it, says
    there are no others)."""
    s = P.input(name)
    return s, [z3.Select(s.arr, p) == bool(mask >> p & 1) for p in range(pages)]


def _holds(P: Pages, facts: list[z3.BoolRef], claim: z3.BoolRef) -> bool:
    solver = z3.Solver()
    solver.set("timeout", 10_000)
    parts = [*P.ex._pre, *facts, z3.Not(claim)]  # noqa: SLF001
    solver.add(*P.lemmas_for(parts), *parts)
    return solver.check() == z3.unsat


def _possible(P: Pages, facts: list[z3.BoolRef], claim: z3.BoolRef) -> bool:
    solver = z3.Solver()
    solver.set("timeout", 10_000)
    parts = [*P.ex._pre, *facts, claim]  # noqa: SLF001
    solver.add(*P.lemmas_for(parts), *parts)
    return solver.check() == z3.sat


def test_set_algebra_and_sizes_agree_with_int_masks() -> None:
    """On random masks of 6 pages: ``&``, ``|`` and ``& ~`` give exactly the sets the ints
    give; the size lemmas never contradict the true sizes (sound), and they determine the size
    of a union of disjoint sets and of a difference by a subset (what moving pages from one
    owner to another needs)."""
    rng = random.Random(7)
    pages = 6
    determined = 0
    for n in range(40):
        ex = Executor(width=64)
        P = Pages(ex, (1 << pages) - 1)
        a, b = rng.randrange(1 << pages), rng.randrange(1 << pages)
        if n % 3 == 0:
            b &= ~a  # disjoint
        elif n % 3 == 1:
            b &= a  # inside a
        A, pa = _concrete(P, f"a{n}", a, pages)
        B, pb = _concrete(P, f"b{n}", b, pages)
        known = [*pa, *pb, P.size(A.arr) == a.bit_count(), P.size(B.arr) == b.bit_count()]
        for got, want in ((A & B, a & b), (A | B, a | b), (A & ~B, a & ~b)):
            assert isinstance(got, SymSet)
            member = z3.And([z3.Select(got.arr, p) == bool(want >> p & 1) for p in range(pages)])
            assert _holds(P, known, member), (a, b, want)
            empty = (got == 0).expr
            assert _holds(P, known, z3.Not(empty)) if want else _possible(P, known, empty)
            size = got.bit_count().expr
            assert _possible(P, known, size == want.bit_count()), (a, b, want)
            if _holds(P, known, size == want.bit_count()):
                determined += 1
        # What the invariants of a proof say about whole sets (apart, inside), the pins on six
        # pages cannot: given as such.
        if n % 3 == 0:
            apart = z3.SetIntersect(A.arr, B.arr) == P.empty.arr
            assert _holds(P, [*known, apart], (A | B).bit_count().expr == (a | b).bit_count())
        if n % 3 == 1:
            inside = z3.IsSubset(B.arr, A.arr)
            assert _holds(P, [*known, inside], (A & ~B).bit_count().expr == (a & ~b).bit_count())
    assert determined >= 20


def test_choices_stay_inside_the_set_they_pick_from() -> None:
    """``fit_choices`` and ``lowest_run`` on a page set: a fit of n pages inside the free set
    (or a failure), a non-empty run inside the set: every outcome the spec's ints allow, and
    more."""
    ex = Executor(width=64)
    P = Pages(ex, 0xF)
    free = P.input("free")
    area, fail = fit_choices(free, 2, 1, 0, 4)  # type: ignore[arg-type]
    assert fail == 0 and isinstance(area, SymSet)
    run = lowest_run(free)  # type: ignore[arg-type]
    assert isinstance(run, SymSet)
    path = ex._path  # noqa: SLF001 - the constraints the choices put on the path
    assert _holds(P, path, z3.IsSubset(area.arr, free.arr))
    assert _holds(P, path, area.bit_count().expr == 2)
    assert _holds(P, path, z3.And(z3.IsSubset(run.arr, free.arr), run.bit_count().expr >= 1))


def test_a_page_set_stands_only_for_masks_of_every_size() -> None:
    """A constant mask other than none or all names pages of one bounded instance."""
    ex = Executor(width=64)
    P = Pages(ex, 0xF)
    with pytest.raises(Exception, match="particular pages"):
        _ = P.input("x") & 0b0110
    x = P.input("y")
    assert (x & 0) is P.empty
    assert isinstance(SymInt(ex, z3.Int("n")) + 1, SymInt)
    assert ex.input("z", Kind.COUNT, 0, 3).bounds == (0, 3)


@pytest.mark.parametrize("name", ["global", "percpu", "nodes"])
def test_owned_once_is_the_explorers_ownership_check(name: str) -> None:
    """``Spec.owned_once`` (bitwise, what the proofs run) and the explorer's generated check
    (sums of masks) agree on every reachable state of the scenario and on states with a page
    moved to a second owner."""
    spec = build_spec(name, induction.coverage_params())
    fast = spec._generate_fast_check()  # noqa: SLF001
    succ = spec.make_successors(reduced=False)
    seen = {spec.init}
    frontier = [spec.init]
    while frontier and len(seen) < 3000:
        s = frontier.pop()
        for t in succ(s):
            if t not in seen:
                seen.add(t)
                frontier.insert(0, t)
    masks = [i for i, f in enumerate(spec.global_fields) if f.owner == "mask"
             and not isinstance(f.init, tuple)]
    checked = broken = 0
    for s in seen:
        assert bool(spec.owned_once(s)) == fast(s)
        checked += 1
        for i in masks[:2]:
            t = list(s)
            t[i] = t[i] | 1  # page 0 given to one more owner (or already there)
            t2 = tuple(t)
            assert bool(spec.owned_once(t2)) == fast(t2)
            broken += not fast(t2)
    assert checked > 100 and broken > 0


# ---------------------------------------------------------------------------- the proof
@pytest.fixture(scope="module")
def stored() -> tuple[object, list[object], object]:
    mined = induction.mine_facts("global", TIMEOUT)
    cert = certificate.load("global")
    assert cert is not None, "the global spec's strengthening is stored"
    facts = cert.select([*setstate.base_facts(mined.spec), *mined.facts])
    return mined, facts, cert


def test_global_spec_is_inductive_over_every_address() -> None:
    r = unbounded.check("global", TIMEOUT)
    assert r.status is Status.PROVED, r.text()
    assert "page sets of the 64-bit address space" in r.detail
    assert r.stats["paths"] > 100 and r.stats["facts"] > 3


def test_one_conjunct_left_out_gives_a_counterexample_to_induction(stored: tuple) -> None:
    """The stored set without "counted == pages of T0.hand" where T0 waits for the free lock
    during a purge: the merge that follows can break the counting facts, and the
    counterexample is printed as a spec state over page sets."""
    mined, facts, _ = stored
    gone = [f for f in facts if f.name.endswith("waits for free_vmap_area_lock': counted == "
                                                "pages of T0.hand")]
    assert len(gone) == 1
    r = unbounded.check_facts(mined.spec, [f for f in facts if f is not gone[0]], TIMEOUT,
                              mined.flow.reach)
    assert r.status is Status.COUNTEREXAMPLE, r.text()
    assert r.detail.startswith("counterexample to induction: T0 breaks")
    before = [n for n in r.notes if n.startswith("before: ")]
    assert before and "free = " in before[0] and "T0.pc = " in before[0]
    after = [n for n in r.notes if n.startswith("after: ")]
    assert after and "T0.pc = " in after[0]  # the step moved T0 on


def test_a_fact_the_initial_state_breaks_is_a_counterexample(stored: tuple) -> None:
    """Init => Inv is checked on the initial state of every size: all managed pages free."""
    mined, facts, _ = stored
    spec = mined.spec
    free = next(i for i, f in enumerate(spec.global_fields) if f.name == "free")
    no_free = Fact("free is empty", None, None, frozenset({(-1, free)}),
                   lambda s: s[free] == 0)
    r = unbounded.check_facts(spec, [*facts[:3], no_free], TIMEOUT, mined.flow.reach)
    assert r.status is Status.COUNTEREXAMPLE
    assert r.detail == "the initial state breaks 'free is empty'"


def test_a_stale_strengthening_is_unknown_and_names_the_command(stored: tuple) -> None:
    mined, _, cert = stored
    bad = certificate.Certificate("global", cert.model,
                                  (*cert.keys, (0, 0, "a fact the spec never proposed")), {})
    with pytest.raises(certificate.Stale, match="--strengthen global"):
        bad.select([*setstate.base_facts(mined.spec), *mined.facts])


def test_facts_naming_pages_of_the_instance_are_left_out(stored: tuple) -> None:
    mined, _, _ = stored
    states = setstate.SetStates(mined.spec, TIMEOUT)
    keep, gone = setstate.expressible(mined.facts, states)
    assert gone and all(" within pages " in f.name or " starts within " in f.name
                        or " is one run" in f.name or " unless it starts " in f.name
                        or " is 0 or 1" in f.name for f in gone)
    assert len(keep) > len(gone)


@pytest.mark.slow
def test_strengthening_is_found_again() -> None:
    """The search (Houdini over page sets, then the facts the proofs use) ends in a set the
    check proves."""
    facts, cti, stats = unbounded.strengthen("global", TIMEOUT)
    assert cti is None and facts is not None
    mined = induction.mine_facts("global", TIMEOUT)
    r = unbounded.check_facts(mined.spec, facts, TIMEOUT, mined.flow.reach)
    assert r.status is Status.PROVED, r.text()
    assert stats["kept"] == len(facts) < stats["houdini_left"]
