"""``run_spec_check``: explore a design's spec on a scenario; the ``--target spec`` half of
``vmapcheck model-check``.

The design class names its spec: a ``spec_name`` class attribute, else its ``name`` when a spec
(or a spec-level protocol mutant) of that name exists, else the spec of the design it mutates
(``mutant_of``).  The result's stats are ``{"spec": {...}}``, keyed by target as
``--target both`` reports its halves.  The scenario's programs and ``VmapConfig`` become the spec's parameters
(pages, ``lazy_max_pages``, CPUs, nodes, zone size).  The explorer (``spec.explorer``) runs
breadth-first, so each finding's trace is a shortest path through the spec; a ``sometimes``
property the scenario should show but that never held in a complete search is a finding too
(a vacuous spec).

Relies on ``spec`` (registry, explorer), ``checker.scenario`` and ``checker.result``; progress
goes to stderr through rich when ``checker.output.progress_enabled()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from impl.designs.base import VmapDesign
from spec.explorer import ExploreResult, explore
from spec.params import SpecParams
from spec.registry import expected_sometimes, known_specs

from .designs import DesignError
from .output import progress_enabled, stderr_console
from .result import Finding, Outcome, Result
from .scenario import Scenario


@dataclass
class SpecCheckOptions:
    """What shapes a spec search.  ``progress`` None means: a bar when stderr is a terminal."""

    symmetry: bool = True
    max_states: int | None = None
    timeout: float | None = None
    progress: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {"symmetry": self.symmetry, "max_states": self.max_states,
                "timeout": self.timeout}


def spec_name_for(design_cls: type[VmapDesign]) -> str:
    """The spec of a design class; ``DesignError`` when it has none."""
    specs = known_specs()
    explicit = getattr(design_cls, "spec_name", None)
    if explicit is not None:
        if explicit not in specs:
            raise DesignError(f"{design_cls.__name__}.spec_name is {explicit!r}; known specs: "
                              f"{', '.join(sorted(specs))}")
        return str(explicit)
    if design_cls.name in specs:
        return design_cls.name
    parent = getattr(design_cls, "mutant_of", None)
    if parent in specs:
        return str(parent)
    raise DesignError(f"design {design_cls.name!r} has no spec; give the class a spec_name "
                      f"attribute naming one of: {', '.join(sorted(specs))}")


def spec_params(scenario: Scenario) -> SpecParams:
    c = scenario.config
    try:
        return SpecParams(programs=scenario.programs, pages=c.pages, lazy_max=c.lazy_max_pages,
                          nr_cpus=c.nr_cpus, nr_nodes=c.nr_vmap_nodes, zone_pages=c.zone_pages,
                          extra=c.extra)
    except ValueError as exc:
        raise DesignError(f"the scenario does not fit the spec: {exc}") from exc


def _options(options: Any) -> SpecCheckOptions:
    if isinstance(options, SpecCheckOptions):
        return options
    if options is None:
        return SpecCheckOptions()
    return SpecCheckOptions(symmetry=getattr(options, "symmetry", True),
                            max_states=getattr(options, "max_states", None),
                            timeout=getattr(options, "timeout", None),
                            progress=getattr(options, "progress", None))


def run_spec_check(design_cls: type[VmapDesign], scenario: Scenario,
                   options: Any = None) -> Result:
    """Explore the spec of ``design_cls`` on ``scenario``; see the module note."""
    opts = _options(options)
    name = spec_name_for(design_cls)
    params = spec_params(scenario)
    spec = known_specs()[name](params).build()
    show = progress_enabled() if opts.progress is None else opts.progress
    if show:
        with _Bar(f"spec {name}") as bar:
            res = explore(spec, symmetry=opts.symmetry, max_states=opts.max_states,
                          timeout=opts.timeout, progress=bar.update)
    else:
        res = explore(spec, symmetry=opts.symmetry, max_states=opts.max_states,
                      timeout=opts.timeout)
    return to_result(design_cls, scenario, name, res, opts, params)


def to_result(design_cls: type[VmapDesign], scenario: Scenario, name: str, res: ExploreResult,
              opts: SpecCheckOptions, params: SpecParams) -> Result:
    expected = expected_sometimes(name, params)
    result = Result("model-check", config={
        "target": "spec", "design": design_cls.name, "spec": name,
        "scenario": scenario.to_json(), **opts.to_json()})
    stats = dict(res.stats)
    stats["sometimes"] = {
        n: {"seen_at_depth": d, "expected": n in expected, "description": res.sometimes_text[n]}
        for n, d in res.sometimes.items()}
    if res.reason is not None:
        stats["stopped_by"] = res.reason
    # Keyed by target, as ``--target both`` reports its halves ({"spec", "impl", ...}).
    result.stats = {"spec": stats}
    if res.violation is not None:
        v = res.violation
        trace = {"kind": "spec-path", "spec": name, **v.to_json()}
        if v.kind == "deadlock":
            msg = f"spec {name}: deadlock after {v.depth} steps: {v.message}"
        else:
            msg = f"spec {name}: invariant '{v.invariant}' broken after {v.depth} steps: " \
                  f"{v.message}"
        result.findings.append(Finding(v.kind, msg, trace))
        result.outcome = Outcome.VIOLATION
    elif res.status == "incomplete":
        result.outcome = Outcome.INCOMPLETE
    else:
        for n in res.missing_sometimes:
            if n in expected:
                result.findings.append(Finding(
                    "invariant",
                    f"spec {name}: sometimes-property '{n}' ({res.sometimes_text[n]}) never "
                    f"held in a complete search of {stats['distinct_states']} states: the spec "
                    f"rules out behaviour this scenario should show (vacuous)",
                    {"kind": "sometimes", "spec": name, "property": n}))
        result.outcome = Outcome.VIOLATION if result.findings else Outcome.OK
    return result


def format_text(result: Result) -> list[str]:
    """Human-readable lines for a spec result (the command prints them)."""
    st = result.stats.get("spec", result.stats)
    lines = [f"spec {result.config.get('spec')}: {result.outcome.value}: "
             f"{st.get('distinct_states')} distinct states, {st.get('transitions')} transitions,"
             f" depth {st.get('depth')}, {st.get('states_per_second')} states/s "
             f"({st.get('states_per_cpu_second')} per CPU second; {st.get('seconds')} s, "
             f"symmetry {'on' if st.get('symmetry') else 'off'}, "
             f"reduction {'on' if st.get('reduction') else 'off'})"]
    if st.get("stopped_by"):
        lines.append(f"  stopped by {st['stopped_by']}: not a pass")
    for n, info in st.get("sometimes", {}).items():
        seen = info["seen_at_depth"]
        mark = f"seen at depth {seen}" if seen is not None else "never seen"
        lines.append(f"  sometimes {n}: {mark}" + ("" if info["expected"] else " (not expected)"))
    for f in result.findings:
        lines.append(f"  {f.kind}: {f.message}")
        if isinstance(f.trace, dict):
            lines += spec_path_lines(f.trace)
    return lines


def spec_path_lines(trace: dict[str, Any]) -> list[str]:
    """A spec counterexample (a finding's ``spec-path`` trace), one numbered step per line
    with what it changed, then the final state's lock holders and actor positions."""
    if trace.get("kind") != "spec-path":
        return []
    lines = [f"  shortest path through spec {trace.get('spec')} ({trace.get('depth')} steps):"]
    for i, step in enumerate(trace.get("steps", []), 1):
        ch = "; ".join(f"{k}: {v}" for k, v in step.get("changes", {}).items())
        lines.append(f"    {i:3d}. {step['actor']}: {step['step']}" + (f"  [{ch}]" if ch else ""))
    final = trace.get("final_state") or {}
    if final.get("locks"):
        held = ", ".join(f"{lk} by {who}" for lk, who in final["locks"].items())
        lines.append(f"  locks held at the end: {held}")
    for name, d in (final.get("actors") or {}).items():
        lines.append(f"  {name}: {d.get('at')}")
    return lines


class _Bar:
    """A rich spinner with the explorer's figures, on stderr."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                 TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                                 console=stderr_console, transient=True)
        self.task = self.progress.add_task(label, info="")

    def __enter__(self) -> _Bar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, st: dict[str, Any]) -> None:
        self.progress.update(self.task, info=(
            f"{st['distinct_states']:,} states  depth {st['depth']}  "
            f"frontier {st['frontier']:,}  {st['states_per_second']:,}/s"))

