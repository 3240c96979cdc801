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
from spec.masks import (
    carve_from_block,
    fit_choices,
    high_page,
    largest_run,
    low_page,
    lowest_run,
    mask_of,
    one_run,
    runs,
    starts_outside,
    zone_of,
)
from spec.protocol import PC
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


def _runs_starts(mask: int) -> int:
    return mask & ~(mask << 1)


def test_page_structure_functions_keep_the_specs_meaning() -> None:
    """The ``spec.masks`` functions the page sets answer, on ints: exactly what the percpu
    spec computed inline before (brute force over every 6-page mask)."""
    for m in range(1 << 6):
        runs_ = list(runs(m))
        assert largest_run(m) == max((n for _, n in runs_), default=0)
        assert one_run(m) == (len(runs_) <= 1)
        if m:
            assert high_page(m) == max(p for p in range(6) if m >> p & 1)
        for z, zone_mask in ((0, 0b000111), (1, 0b111000)):
            wrong = starts_outside(m, z, zone_mask)
            assert wrong == sum(1 << s for s, _ in runs_ if not zone_mask >> s & 1)
        for chunk_start, chunk_pages in ((0, 2), (3, 2)):
            chunk = mask_of(chunk_start, chunk_pages)
            if chunk & ~m:
                continue
            block = next(mask_of(s, n) for s, n in runs_ if mask_of(s, n) & chunk)
            for pages, align in ((1, 1), (2, 1), (1, 2), (2, 4)):
                start = low_page(block)
                area = mask_of(-(-start // align) * align, pages)
                want = 0 if area & ~block else area
                assert carve_from_block(m, chunk, pages, align) == want
    assert [zone_of(p, 3, 2) for p in range(8)] == [0, 0, 0, 1, 1, 1, 0, 0]


def test_run_start_lemmas_never_contradict_true_run_starts() -> None:
    """``Pages.run_starts`` on random 6-page masks and areas: the lemmas of a union, an
    intersection and a difference by an area are consistent with the true run starts (sound),
    and they bound the run starts of an area joined to a set by the set's and the area's
    first page (what keeping a zone's runs in the zone needs)."""
    rng = random.Random(11)
    pages = 6
    for n in range(30):
        ex = Executor(width=64)
        P = Pages(ex, (1 << pages) - 1)
        a, b = rng.randrange(1 << pages), rng.randrange(1 << pages)
        lo = rng.randrange(pages)
        size = rng.randrange(1, pages - lo + 1)
        area = mask_of(lo, size)
        A, pa = _concrete(P, f"a{n}", a, pages)
        B, pb = _concrete(P, f"b{n}", b, pages)
        R = P.area(f"r{n}", SymInt(ex, ex.const(lo)), size)
        assert R.end is not None
        pr = [z3.Select(R.arr, p) == bool(area >> p & 1) for p in range(pages)]
        known = [*pa, *pb, *pr, P.size(A.arr) == a.bit_count(), P.size(B.arr) == b.bit_count(),
                 R.end == lo + size]
        for got, want in ((A | B, a | b), (A & B, a & b), (A & ~R, a & ~area), (A | R, a | area),
                          (R, area)):
            st = P.run_starts(got.arr)
            truth = z3.And([z3.Select(st, p) == bool(_runs_starts(want) >> p & 1)
                            for p in range(pages + 1)])
            assert _possible(P, known, truth), (a, b, area, want)
        bound = z3.SetAdd(P.run_starts(A.arr), z3.BitVecVal(lo, 64))
        assert _holds(P, known, z3.IsSubset(P.run_starts((A | R).arr), bound))


def test_a_page_set_answers_the_percpu_specs_decisions() -> None:
    """The largest run is some length up to the size (0 exactly when empty); a carve from the
    merged block is an area of the size inside it, or nothing; an area's zone is a zone of the
    open zone map, and a run that starts outside zone z is caught by ``starts_outside``."""
    ex = Executor(width=64)
    ex.prune = False
    P = Pages(ex, 0xF)
    cache = P.input("cache")

    def run() -> tuple[object, object]:
        return largest_run(cache), carve_from_block(cache, 0, 2, 1)  # type: ignore[arg-type]

    paths = ex.explore(run)
    assert len(paths) == 2  # carved, or not
    outcomes = [p.value[1] for p in paths]
    carved = next(x for x in outcomes if isinstance(x, SymSet))
    assert 0 in outcomes
    cond = next(p for p in paths if p.value[1] is carved).condition
    longest = paths[0].value[0]
    assert isinstance(longest, SymInt)
    assert _holds(P, cond, z3.And(z3.IsSubset(carved.arr, cache.arr),
                                  carved.bit_count().expr == 2))
    assert _holds(P, cond, (longest.expr == 0) == (cache.arr == P.empty.arr))
    assert _holds(P, cond, longest.expr <= cache.bit_count().expr)
    lo = carved.low_page()
    z = zone_of(lo, 3, 2)  # type: ignore[arg-type]
    assert isinstance(z, SymInt) and z.bounds == (0, 1)
    bad = starts_outside(carved, 1, 0)  # type: ignore[arg-type]
    assert _holds(P, [*cond, z.expr == 1], (bad == 0).expr)
    assert _possible(P, [*cond, z.expr == 0], (bad != 0).expr)


def test_a_set_equal_to_an_area_starts_where_the_area_does() -> None:
    """A thread's hand that is its area has one run, starting at the area's first page, so
    its runs start in that page's zone (the area's run-start lemma comes into any query that
    asks about run starts); a hand that is only as large as the area can start anywhere."""
    ex = Executor(width=64)
    ex.prune = False
    P = Pages(ex, 0xF)
    area = P.area("A", ex.input("A.lo", Kind.COUNT, 0, 1 << 40), 2)
    hand = P.input("hand")
    z = zone_of(area.low_page(), 3, 2)  # type: ignore[arg-type]
    in_zone = (starts_outside(hand, 0, 0) == 0).expr  # type: ignore[arg-type]
    assert _holds(P, [hand.arr == area.arr, z.expr == 0], in_zone)
    assert _possible(P, [hand.bit_count().expr == 2, z.expr == 0], z3.Not(in_zone))
    # The zones are sets tied to the zone map: the first page is in zone 0's pages exactly
    # when the map says zone 0, and then not in zone 1's.
    first = area.low_page()
    assert _holds(P, [z.expr == 0], z3.And(z3.Select(P.zone_pages(0), first.expr),
                                            z3.Not(z3.Select(P.zone_pages(1), first.expr))))


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
    # The managed range has a size, and the owners' pages add up to it (conservation).
    sizes = dict(part.split(" = ", 1) for part in before[0][len("before: "):].split(", ")
                 if " = " in part)
    managed = int(sizes["managed"].split()[0])
    owners = [v for k, v in sizes.items() if k in ("free", "busy", "lazy", "purge list")
              or k.endswith(".hand")]
    held = sum(int(v.split()[0]) for v in owners if v != "-")
    assert managed == held, before[0]
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


def test_a_frame_holds_what_the_proof_of_a_steps_facts_needs(stored: tuple) -> None:
    """The frame of a step of T0 at p: the facts about no position, T0's at p, and for a fact
    of T1 at q that the step can break, T1's facts at q; not T1's facts elsewhere."""
    mined, facts, _ = stored
    prover = unbounded.SetProver(mined.spec, facts, TIMEOUT, reach=mined.flow.reach)
    for k, p, i in prover.paths():
        posts = prover.live_posts(k, p, i)
        other = [g for g in posts if g is not None and g.actor not in (None, k)]
        if k == 0 and other:
            break
    else:
        raise AssertionError("no step of T0 can break a fact of another actor")
    frame = {id(f) for f in prover.frames.of(k, p, posts)}
    assert all(id(f) in frame for f in facts if f.base or f.actor is None)
    assert all(id(f) in frame for f in facts if f.actor == k and f.pc == p)
    g = other[0]
    assert all(id(f) in frame for f in facts if f.actor == g.actor and f.pc == g.pc)
    asked = {(h.actor, h.pc) for h in posts if h is not None}
    elsewhere = [f for f in facts if f.actor == g.actor and (f.actor, f.pc) not in asked
                 and not any(who == g.actor for who, _ in
                             (r for h in posts if h is not None and h.actor is None
                              for r in h.reads))]
    assert elsewhere and not any(id(f) in frame for f in elsewhere)
    # A frame without the facts it names drops them too (what Houdini dropped stays out).
    assert not any(id(f) in {id(x) for x in prover.frames.of(k, p, posts, frame)}
                   for f in facts)


def test_a_query_assumes_what_the_executor_knows_of_its_own_terms(stored: tuple) -> None:
    """Of the executor's assumptions about every step explored (thousands), a query gets
    those about the constants it names and about the constants those name: a probe's range
    and the bound it implies come in, an unrelated input's range does not."""
    mined, facts, _ = stored
    prover = unbounded.SetProver(mined.spec, facts, TIMEOUT, reach=mined.flow.reach)
    prover.paths()
    probe = prover.ex.input("probe", Kind.COUNT, 0, 7)
    prover.ex.assume(probe.expr != 3)
    other = prover.ex.input("other", Kind.COUNT, 0, 5)
    got = prover.assumed([probe.expr == 2])
    names = {str(c) for c in got}
    assert any("probe" in n and "7" in n for n in names) and "probe != 3" in names
    assert not any("other" in n for n in names)
    assert len(got) < len(prover.ex._pre) // 2  # noqa: SLF001
    solver = z3.Solver()
    solver.add(*got)
    assert solver.check(z3.Or(z3.UGT(probe.expr, 7), probe.expr == 3)) == z3.unsat
    assert solver.check(other.expr == 100) == z3.sat  # nothing about it was assumed


def test_houdini_on_demand_keeps_an_inductive_set_of_what_the_proofs_use(stored: tuple
                                                                           ) -> None:
    """Houdini on demand over the stored strengthening plus "busy is empty" (true initially,
    broken by the first allocation): it ends without a counterexample, in a subset of the
    stored facts that the check proves inductive on its own."""
    mined, facts, _ = stored
    spec = mined.spec
    busy = next(i for i, f in enumerate(spec.global_fields) if f.name == "busy")
    empty = Fact("busy is empty", None, None, frozenset({(-1, busy)}), lambda s: s[busy] == 0)
    prover = unbounded.SetProver(spec, [empty, *facts], TIMEOUT, reach=mined.flow.reach)
    assert prover.run_demanded() is None
    kept = prover.live()
    assert empty not in kept and set(map(id, kept)) <= set(map(id, facts))
    assert {f.name for f in facts if f.base} <= {f.name for f in kept}
    r = unbounded.check_facts(spec, kept, TIMEOUT, mined.flow.reach)
    assert r.status is Status.PROVED, r.text()


def test_houdini_on_demand_reports_that_the_spec_checks_alone_are_not_inductive(stored: tuple
                                                                            ) -> None:
    """With nothing but the spec's own checks to assume, nothing says what T0 holds at its
    first step, so taking free_vmap_area_lock can be taking it twice: Houdini on demand
    reports that counterexample to induction (a step that raises) and drops nothing."""
    mined, facts, _ = stored
    base = [f for f in facts if f.base]
    prover = unbounded.SetProver(mined.spec, base, TIMEOUT, reach=mined.flow.reach)
    cti = prover.run_demanded()
    assert cti is not None and cti.actor == "T0"
    assert "free_vmap_area_lock taken twice" in cti.broken
    assert len(prover.live()) == len(base)


def test_a_model_that_breaks_a_fact_around_it_is_asked_again(stored: tuple) -> None:
    """Asked from the spec's own checks alone, T0's first step can break what the stored set
    says of its next position (the locks it holds); refining with the facts each model breaks
    at the positions it puts the actors ends in a proof from a few facts, not all of them.
    Without the fact that keeps it, a step that breaks the counting facts stays a model that
    keeps every fact around it: a counterexample."""
    mined, facts, _ = stored
    prover = unbounded.SetProver(mined.spec, facts, TIMEOUT, reach=mined.flow.reach)
    base = [f for f in facts if f.base]
    held = next(f for f in prover.live_posts(0, 0, 2)
                if f is not None and f.name.endswith("fit: free -> hand done': held == 1"))
    assert prover.query(0, 0, 2, base, [held])[0] == z3.sat
    r, _, pre = prover.refine(0, 0, 2, base, [held])
    assert r == z3.unsat
    assert len(base) < len(pre) < 20 and {f.name for f in base} <= {f.name for f in pre}

    gone = next(f for f in facts if f.name.endswith(
        "waits for free_vmap_area_lock': counted == pages of T0.hand"))
    weak = unbounded.SetProver(mined.spec, [f for f in facts if f is not gone], TIMEOUT,
                               reach=mined.flow.reach)
    found = None
    for k, p, i in weak.paths():
        _, broken, _ = weak.prove(k, p, i, strict=True)
        if broken:
            found = k, p, i, broken[0]
            break
    assert found is not None
    k, p, i, bad = found
    assert bad is not None and "counted == pages of T0." in bad.name
    r, solver, pre = weak.refine(k, p, i, weak.frames.of(k, p, [bad]), [bad])
    assert r == z3.sat
    m = solver.model()
    pcs = [m.eval(weak.g[a][PC].expr, model_completion=True).as_long()  # type: ignore[attr-defined]
           for a in mined.spec.actor_index]
    asked = {id(f) for f in pre}
    assert all(id(f) in asked or z3.is_true(m.eval(weak.pre[id(f)], model_completion=True))
               for f in weak.frames.around(pcs))


def test_a_post_asked_case_by_case_over_the_other_threads_positions(stored: tuple) -> None:
    """``split`` asks a post once per position of the other thread: from the stored set, T0's
    first step keeps "held == 1" in every case, and the proof names only stored facts; with
    "counted == pages of T0.hand" left out, the case where T0 waits for the free lock during
    a purge gives a model that breaks a counting fact."""
    mined, facts, _ = stored
    prover = unbounded.SetProver(mined.spec, facts, TIMEOUT, reach=mined.flow.reach)
    held = next(f for f in prover.live_posts(0, 0, 2)
                if f is not None and f.name.endswith("fit: free -> hand done': held == 1"))
    r, _, used = prover.split(0, 0, 2, held, prover.frames.of(0, 0, [held]))
    assert r == z3.unsat and used and used <= {id(f) for f in facts}

    gone = next(f for f in facts if f.name.endswith(
        "waits for free_vmap_area_lock': counted == pages of T0.hand"))
    weak = unbounded.SetProver(mined.spec, [f for f in facts if f is not gone], TIMEOUT,
                               reach=mined.flow.reach)
    found = next((k, p, i, broken[0]) for k, p, i in weak.paths()
                 for broken in [weak.prove(k, p, i, strict=True)[1]] if broken)
    k, p, i, bad = found
    r, solver, used = weak.split(k, p, i, bad, weak.frames.of(k, p, [bad]))
    assert r == z3.sat and solver is not None and used
    assert "counted == pages of T0." in str(bad.name if bad is not None else "")


@pytest.mark.slow
def test_strengthening_is_found_again() -> None:
    """The search (Houdini over page sets, then the facts the proofs use) ends in a set the
    check proves."""
    facts, cti, stats = unbounded.strengthen("global", TIMEOUT)
    assert cti is None and facts is not None
    mined = induction.mine_facts("global", TIMEOUT)
    r = unbounded.check_facts(mined.spec, facts, TIMEOUT, mined.flow.reach)
    assert r.status is Status.PROVED, r.text()
    assert stats["kept"] == len(facts) <= stats["asked"] < stats["bounded_left"]


# ---------------------------------------------------------------------------- percpu
@pytest.fixture(scope="module")
def percpu_mined() -> induction.Mined:
    return induction.mine_facts("percpu", TIMEOUT)


def test_percpu_steps_run_on_page_sets(percpu_mined: induction.Mined) -> None:
    """Every step of the percpu spec (per-zone masks, a purge's detached list per zone, the
    decisions from page structure) runs on states over page sets, and the facts by zone are
    kept where the facts by page of the 6-page instance are not."""
    spec = percpu_mined.spec
    prover = unbounded.SetProver(spec, setstate.base_facts(spec), TIMEOUT,
                                 reach=percpu_mined.flow.reach)
    assert len(prover.paths()) > 400
    keep, gone = setstate.expressible(percpu_mined.facts, prover.S)
    kept = {f.name.rsplit(": ", 1)[-1] for f in keep}
    assert any(n.startswith("T1.slot a starts in zone 1") for n in kept)
    assert any("within busy:zone1 if it starts in zone 1" in n for n in kept)
    assert any(n.startswith("runs of T0.purge lists[0] start in zone 0") for n in kept)
    assert any("unless it starts within pages" in f.name for f in gone)
    assert not any("unless it starts within pages" in f.name for f in keep)


def _placement_after_insert(spec: object, zone: int) -> tuple[Pages, z3.BoolRef,
                                                               list[z3.BoolRef]]:
    """Placement before and after an area is added to zone 0's busy set (every other busy and
    lazy set empty), with the area's first page in ``zone`` under the open zone map."""
    prover = unbounded.SetProver(spec, [], TIMEOUT)  # type: ignore[arg-type]
    S, P = prover.S, prover.P
    placement = next(f for f in setstate.base_facts(spec)  # type: ignore[arg-type]
                     if f.name == "placement")
    names = [f.name for f in spec.global_fields]  # type: ignore[attr-defined]

    def with_busy0(busy0: SymSet) -> tuple[object, ...]:
        t = list(S.state())
        for i, name in enumerate(names):
            if name.startswith(("busy:", "lazy:")):
                t[i] = busy0 if name == "busy:zone0" else P.empty
        return tuple(t)

    before = P.input("busy0")
    area = P.area("A", S.ex.input("A.lo", Kind.COUNT, 0, 1 << 40), 2)
    pre = setstate.formula_of(S.ex, placement, with_busy0(before), spec)  # type: ignore[arg-type]
    post = setstate.formula_of(S.ex, placement, with_busy0(before | area),  # type: ignore[arg-type]
                               spec)
    where = zone_of(area.low_page(), 3, 2)  # type: ignore[arg-type]
    return P, post, [pre, where.expr == zone]


@pytest.mark.parametrize("zone", [0, 1])
def test_placement_over_page_sets_catches_an_area_put_in_the_wrong_zone(
        percpu_mined: induction.Mined, zone: int) -> None:
    """Adding an area that starts in zone 0 to zone 0's busy set keeps placement at every
    address (the run-start lemmas bound the new runs by the old ones and the area's first
    page); adding one that starts in zone 1 can break it."""
    P, post, cond = _placement_after_insert(percpu_mined.spec, zone)
    if zone == 0:
        assert _holds(P, cond, post)
    else:
        assert _possible(P, cond, z3.Not(post))


@pytest.mark.slow
def test_facts_by_zone_make_percpu_inductive_on_its_instance(
        percpu_mined: induction.Mined) -> None:
    """Without the facts that name pages of the instance, the facts that mean something at
    every address (by zone, runs, equal sets) still make the percpu spec's invariants inductive
    on its 6-page instance: the first stage of the page-set search, and a necessary condition
    for it (a step that breaks a fact there breaks it over page sets)."""
    spec = percpu_mined.spec
    keep, _ = setstate.expressible(percpu_mined.facts,
                                   setstate.SetStates(spec, TIMEOUT))
    left, cti = unbounded._bounded_houdini(percpu_mined, keep, TIMEOUT)  # noqa: SLF001
    assert cti is None, cti
    assert len(left) > 1000
