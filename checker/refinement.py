"""Refinement: every explored execution of the implementation must be a run of its spec.

``RefinementObserver`` plugs into the controlled search (``checker.explore.execution``).  After
each step of the implementation it maps the allocator's state through the abstraction function
onto the spec's observable state and advances a set of candidate spec states by the acting
thread's spec steps: the step must be a spec transition of that thread, or a stutter (no
observable change).  The first step with no matching spec state is a ``refinement`` finding,
naming that step, with the implementation's abstract state and the spec states it could have
been in.

The abstraction function is generic: a spec's global fields are named like the snapshot keys of
``VmapDesign.snapshot()`` (``free``, ``busy:node1``, ``pool:node0:0``, ...) and its counters
(``vmap_lazy_nr``), so areas map to page masks field by field (area by area where the structure
coalesces, so an uncoalesced free tree does not refine); locks held and areas in hand map
per thread (``hand:<tid>`` -> the spec actor of that thread, workers by the name of their
work); the pending drain and other atomics are read from the runtime's objects.  Thread
positions are not read from the implementation: they are the positions of the candidate spec
states, which is why candidates are a set (a stutter and a step that changes nothing observable
are told apart by the steps that follow).

With shared-access tracking on, a thread can be suspended in the middle of a critical section;
the observer then waits for a step after which no thread is, and matches the whole stretch
(each step of it by its own thread).

``check_both`` is ``model-check --target both``: the spec search, then the implementation
search with this observer attached, as one result.

Relies on ``spec`` (registry, compiled specs), ``checker.spec_check`` (which spec a design
has), ``checker.events``, the controlled runtime's thread records and ``checker.model_check``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from impl.designs.base import VmapDesign
from spec.compile import Spec, State
from spec.masks import AREA_SHIFT, fmt, mask_of, runs
from spec.protocol import HAND, HELD, SpecAssertion
from spec.registry import known_specs

from .events import ACCESS, SCHEDULING_KINDS, Event
from .result import Finding, Outcome, Result
from .scenario import Scenario
from .spec_check import run_spec_check, spec_name_for, spec_params

# Spec steps one implementation step may stand for (besides a stutter).  The specs are written
# step for step against the scheduling points, so one suffices; more leaves room for a spec
# that splits what the implementation does in one step (a lost-update mutant's read and write).
MAX_SPEC_STEPS = 3
MAX_CANDIDATES = 4096
HISTORY = 12

Obs = tuple[Any, ...]


class RefinementObserver:
    """Checks each execution of a design against the design's spec (see the module note)."""

    def __init__(self, spec_name: str | None = None,
                 max_spec_steps: int = MAX_SPEC_STEPS) -> None:
        self.spec_name = spec_name
        self.max_spec_steps = max_spec_steps
        self._cache: dict[tuple[str, Scenario], Spec] = {}
        self.executions = 0
        self.steps_checked = 0
        self.findings_total = 0
        # The full record of each refinement finding (a search keeps only the schedule as a
        # finding's trace): the step, both states, what the spec allowed.
        self.details: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ observer protocol
    def on_execution_start(self, design: VmapDesign, scenario: Scenario) -> None:
        name = self.spec_name or spec_name_for(type(design))
        key = (name, scenario)
        spec = self._cache.get(key)
        if spec is None:
            spec = self._cache[key] = known_specs()[name](spec_params(scenario)).build()
        self.spec = spec
        self.design = design
        self.rt: Any = design.rt
        self.base = design.config.start
        self.page = design.config.page_size
        self.actor_by_name = {n: k for k, n in enumerate(spec.actor_names)}
        self.cands: set[State] = {spec.init}
        self.pending: list[tuple[int, Event]] = []
        self.history: list[str] = []
        self.finding: Finding | None = None
        self.step = 0
        self.executions += 1

    def on_event(self, ev: Event) -> None:
        if self.finding is not None or ev.kind not in SCHEDULING_KINDS:
            return
        k = self.actor_by_name.get(ev.thread)
        if k is None:
            self._fail(ev, f"thread {ev.thread} has no actor in spec {self.spec.name}",
                       self.observe())
            return
        self.step += 1
        self.history.append(f"{ev.step}: {ev.thread}: {ev.describe()}")
        del self.history[:-HISTORY]
        self.pending.append((k, ev))
        if self._mid_section():
            return  # someone sits inside a critical section: compare once nobody does
        obs = self.observe()
        self.steps_checked += 1
        cands = self.cands
        for actor, _ in self.pending:
            cands = self._advance(cands, actor)
        matched = {s for s in cands if self.project(s) == obs}
        self.pending = []
        if not matched:
            self._fail(ev, "no spec step of this thread (nor a stutter) leads to the "
                           "implementation's state", obs)
            return
        if len(matched) > MAX_CANDIDATES:
            matched = set(list(matched)[:MAX_CANDIDATES])
        self.cands = matched

    def on_execution_end(self, outcome: object) -> list[Finding]:
        if self.finding is not None:
            self.findings_total += 1
            return [self.finding]
        return []

    def on_search_end(self) -> list[Finding]:
        return []

    def state_key(self) -> Any:
        """What this observer carries from the past of an execution (for the search's state
        cache): the candidate spec states and the steps not yet compared."""
        return (frozenset(self.cands), tuple(k for k, _ in self.pending),
                self.finding is not None)

    # ------------------------------------------------------------------ matching
    def _mid_section(self) -> bool:
        for t in self.rt.threads:
            p = t.pending
            if p is not None and p.kind == ACCESS and t.held:
                return True
        return False

    def _advance(self, cands: Iterable[State], actor: int) -> set[State]:
        out: set[State] = set()
        frontier = list(cands)
        out.update(frontier)
        for _ in range(self.max_spec_steps):
            nxt: list[State] = []
            for s in frontier:
                try:
                    succ = self.spec.actor_step(s, actor)
                except SpecAssertion:
                    continue  # the spec calls this step a violation: it is no transition
                for ns in succ:
                    if ns not in out:
                        out.add(ns)
                        nxt.append(ns)
            frontier = nxt
            if not frontier:
                break
        return out

    # ------------------------------------------------------------------ abstraction
    def _mask(self, ranges: Iterable[tuple[int, int]]) -> int:
        m = 0
        for s, e in ranges:
            p0 = (s - self.base) // self.page
            m |= mask_of(p0, (e - s) // self.page)
        return m

    def _area(self, r: tuple[int, int]) -> tuple[int, int]:
        """A range as (first page, pages)."""
        return (r[0] - self.base) // self.page, (r[1] - r[0]) // self.page

    def _object(self, name: str) -> Any:
        for o in self.rt.objects:
            if getattr(o, "name", None) == name:
                return o
        return None

    def observe(self) -> Obs:
        """The implementation's state, in the spec's observable terms."""
        spec = self.spec
        snap = self.design.snapshot()
        areas = dict(snap.areas)
        out: list[Any] = []
        lock_bit = {lk.name: 1 << i for i, lk in enumerate(spec.locks)}
        held_by: dict[str, int] = {}
        unknown_locks: list[str] = []
        for t in self.rt.threads:
            h = 0
            for hl in t.held:
                bit = lock_bit.get(hl.lock.name)
                if bit is None:
                    unknown_locks.append(hl.lock.name)
                else:
                    h |= bit
            held_by[t.name] = h
        for i, f in enumerate(spec.global_fields):
            if i == 0:
                g = 0
                for h in held_by.values():
                    g |= h
                out.append(g)
            elif f.owner == "mask" and f.coalesced:
                out.append(tuple(sorted(self._area(r) for r in areas.pop(f.name, ()))))
            elif f.owner == "mask":
                out.append(self._mask(areas.pop(f.name, ())))
            elif f.owner == "codes":
                out.append(tuple(sorted(self._mask([r]) for r in areas.pop(f.name, ()))))
            elif f.name in snap.counters:
                out.append(snap.counters[f.name])
            elif f.name == "drain pending":
                w = self._object("drain_vmap_work")
                out.append(1 if w is not None and w.pending else 0)
            else:
                obj = self._object(f.name)
                out.append(getattr(obj, "value", None))
        hands: dict[str, int] = {}
        for key in [k for k in areas if k.startswith("hand:")]:
            tid = int(key.split(":", 1)[1])
            name = self.rt.threads[tid].name if 0 <= tid < len(self.rt.threads) else key
            hands[name] = self._mask(areas.pop(key))
        for k, name in enumerate(spec.actor_names):
            out.append((held_by.get(name, 0), hands.pop(name, 0)))
            del k
        leftovers = {k: v for k, v in areas.items() if v}
        # Owners or locks the spec does not know make the state match nothing.
        out.append((tuple(sorted(leftovers)), tuple(sorted(hands)), tuple(unknown_locks)))
        return tuple(out)

    def project(self, s: State) -> Obs:
        """A spec state's observable part, in the form ``observe`` gives."""
        spec = self.spec
        out: list[Any] = []
        for i, f in enumerate(spec.global_fields):
            v = s[i]
            if f.owner == "codes":
                out.append(tuple(sorted(c >> AREA_SHIFT for c in v)))
            elif f.coalesced:
                out.append(tuple(runs(v)))
            else:
                out.append(v)
        for a in spec.actor_index:
            out.append((s[a][HELD], s[a][HAND]))
        out.append(((), (), ()))
        return tuple(out)

    # ------------------------------------------------------------------ reporting
    def describe_obs(self, obs: Obs) -> dict[str, Any]:
        spec = self.spec
        glob: dict[str, Any] = {}
        for i, f in enumerate(spec.global_fields):
            if i == 0:
                continue
            v = obs[i]
            if f.owner == "mask" and f.coalesced:
                glob[f.name] = " ".join(f"[{p},{p + n})" for p, n in v) or "-"
            elif f.owner == "mask":
                glob[f.name] = fmt(v)
            elif f.owner == "codes":
                glob[f.name] = " ".join(fmt(m) for m in v) or "-"
            else:
                glob[f.name] = v
        locks: dict[str, str] = {}
        actors: dict[str, Any] = {}
        for k, name in enumerate(spec.actor_names):
            held, hand = obs[spec.G + k]
            for i, lk in enumerate(spec.locks):
                if held >> i & 1:
                    locks[lk.name] = name
            if hand:
                actors[name] = {"hand": fmt(hand)}
        out: dict[str, Any] = {"globals": glob, "locks": locks, "actors": actors}
        extra_owners, extra_hands, extra_locks = obs[-1]
        if extra_owners or extra_hands or extra_locks:
            out["not in the spec"] = {"owners": list(extra_owners), "hands": list(extra_hands),
                                      "locks": list(extra_locks)}
        return out

    def _closest(self, obs: Obs, actor: int | None) -> State | None:
        """The spec state (a candidate or one of its successors by ``actor``) whose observable
        part differs from ``obs`` in the fewest fields."""
        pool: set[State] = set(self.cands)
        if actor is not None:
            pool = self._advance(pool, actor)
        best: State | None = None
        best_n = 1 << 30
        for s in pool:
            p = self.project(s)
            n = sum(1 for x, y in zip(p, obs, strict=True) if x != y)
            if n < best_n:
                best, best_n = s, n
        return best

    def _differences(self, obs: Obs, s: State) -> list[str]:
        spec = self.spec
        want = self.describe_obs(self.project(s))
        got = self.describe_obs(obs)
        out = []
        for k in sorted(set(want["globals"]) | set(got["globals"])):
            a, b = got["globals"].get(k), want["globals"].get(k)
            if a != b:
                out.append(f"{k}: implementation {a}, spec {b}")
        if got["locks"] != want["locks"]:
            out.append(f"locks: implementation {got['locks']}, spec {want['locks']}")
        for name in spec.actor_names:
            a = got["actors"].get(name, {}).get("hand", "-")
            b = want["actors"].get(name, {}).get("hand", "-")
            if a != b:
                out.append(f"hand:{name}: implementation {a}, spec {b}")
        if "not in the spec" in got:
            out.append(f"not in the spec: {got['not in the spec']}")
        return out

    def _fail(self, ev: Event, why: str, obs: Obs) -> None:
        spec = self.spec
        k = self.actor_by_name.get(ev.thread)
        allowed: list[str] = []
        # Least advanced first: the spec states that ran ahead by invisible steps come last.
        cands = sorted(self.cands, key=lambda s: s[spec.actor_index[k]][0] if k is not None else 0)
        if k is not None:
            for s in cands[:4]:
                pc = s[spec.actor_index[k]][0]
                allowed.append(f"{spec.actor_names[k]} at '{spec.pos_text[k][pc]}' may: "
                               f"{spec.step_text[k][pc]}")
        closest = self._closest(obs, k)
        diffs = self._differences(obs, closest) if closest is not None else []
        impl_state = self.describe_obs(obs)
        spec_states = [spec.describe(s) for s in cands[:3]]
        msg = (f"refinement: implementation step {ev.step} ({ev.thread}: {ev.describe()}"
               f"{' at ' + ev.location if ev.location else ''}) leaves the spec "
               f"{spec.name}: {why}")
        if allowed:
            msg += f"; the spec allowed: {allowed[0]}"
        if diffs:
            msg += "; closest spec state differs in " + "; ".join(diffs)
        detail = {
            "kind": "refinement", "spec": spec.name, "step": ev.step, "thread": ev.thread,
            "event": ev.to_json(), "impl_state": impl_state, "spec_states": spec_states,
            "closest_spec_state": spec.describe(closest) if closest is not None else None,
            "differences": diffs, "spec_allowed": allowed, "recent_steps": list(self.history)}
        self.details.append(detail)
        self.finding = Finding("refinement", msg, detail)

    def stats(self) -> dict[str, Any]:
        return {"executions": self.executions, "steps_checked": self.steps_checked,
                "refinement_findings": self.findings_total}


def check_both(design_cls: type[VmapDesign], scenario: Scenario, spec_options: Any = None,
               observers: Iterable[Any] = (), **model_check_args: Any) -> Result:
    """``--target both``: explore the spec, then search the implementation with every
    execution checked against the spec; one ``Result`` with both halves' figures.

    ``model_check_args`` go to ``checker.model_check.model_check`` unchanged."""
    from .model_check import model_check  # the implementation search imports this module's peers

    spec_res = run_spec_check(design_cls, scenario, spec_options)
    refine = RefinementObserver()
    impl_res = model_check(design_cls, scenario, observers=[refine, *observers],
                           **model_check_args)
    return combine(spec_res, impl_res, refine)


def combine(spec_res: Result, impl_res: Result, refine: RefinementObserver | None) -> Result:
    """One result from the spec half and the implementation half of ``--target both``."""
    out = Result("model-check", config={**impl_res.config, "target": "both",
                                        "spec": spec_res.config.get("spec"),
                                        "spec_options": {k: spec_res.config.get(k) for k in
                                                         ("symmetry", "max_states", "timeout")}})
    out.stats = {"spec": spec_res.stats.get("spec", spec_res.stats), "impl": impl_res.stats}
    if refine is not None:
        out.stats["refinement"] = refine.stats()
    out.findings = [*spec_res.findings, *impl_res.findings]
    outcomes = {spec_res.outcome, impl_res.outcome}
    if out.findings or Outcome.VIOLATION in outcomes:
        out.outcome = Outcome.VIOLATION
    elif Outcome.INCOMPLETE in outcomes:
        out.outcome = Outcome.INCOMPLETE
    else:
        out.outcome = Outcome.OK
    return out
