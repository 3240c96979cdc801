"""Run proof obligations: selection, timing, verdicts, and the JUnit XML of the CI proof job.

``arithmetic_obligations`` are the themes that need nothing from outside (fit, coalesce, nodes,
lazy); lock-order and induction obligations are built by the caller, which knows where their
edges and specs come from, and appended.  ``run`` checks the obligations, one per worker process
when asked for several (forked: obligations hold closures), and never lets one crash the job: an
obligation that raises is Unknown (not a pass) with the error as reason.

Relies on the theme modules and ``proofs.obligation``.
"""

from __future__ import annotations

import multiprocessing
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from . import coalesce, fit, lazy, nodes
from .arith import IMPL, Arith
from .obligation import Obligation, ProofResult, Status


def arithmetic_obligations(a: Arith = IMPL) -> list[Obligation]:
    return [*fit.obligations(a), *coalesce.obligations(a), *nodes.obligations(a),
            *lazy.obligations(a)]


def select(obligations: Sequence[Obligation], only: Iterable[str]) -> list[Obligation]:
    """The obligations named by ``only``: full names (``fit.alloc``) or themes (``fit``).
    Raises ``KeyError`` with the unknown names."""
    wanted = list(only)
    if not wanted:
        return list(obligations)
    unknown = [w for w in wanted
               if not any(o.name == w or o.theme == w or o.name.startswith(w + ".")
                          for o in obligations)]
    if unknown:
        raise KeyError(", ".join(unknown))
    return [o for o in obligations
            if any(o.name == w or o.theme == w or o.name.startswith(w + ".") for w in wanted)]


@dataclass(frozen=True)
class Verdict:
    obligation: Obligation
    result: ProofResult
    seconds: float

    def to_json(self) -> dict[str, object]:
        return {"name": self.obligation.name, "theme": self.obligation.theme,
                "statement": self.obligation.statement, "seconds": round(self.seconds, 3),
                **self.result.to_json()}


def check_one(ob: Obligation, timeout: float) -> Verdict:
    t0 = time.monotonic()
    try:
        result = ob.check(timeout)
    except Exception as exc:  # noqa: BLE001 - one broken obligation must not hide the others
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        result = ProofResult.unknown(f"could not check: {type(exc).__name__}: {exc} "
                                     f"({tb.filename.rsplit('/', 1)[-1]}:{tb.lineno})")
    return Verdict(ob, result, time.monotonic() - t0)


def run(obligations: Sequence[Obligation], timeout: float,
        on_done: Callable[[Verdict], None] | None = None, jobs: int = 1) -> list[Verdict]:
    """Check every obligation, in ``jobs`` processes at once (each obligation builds its own
    solvers, so they share nothing); the verdicts come back in the obligations' order."""
    done = on_done or (lambda v: None)
    if jobs <= 1 or len(obligations) <= 1:
        out = []
        for ob in obligations:
            out.append(check_one(ob, timeout))
            done(out[-1])
        return out
    global _SHARED  # noqa: PLW0603 - what the forked workers read (obligations hold closures)
    _SHARED = (list(obligations), timeout)
    # The induction proofs take most of the time: started first, they overlap the rest.
    order = sorted(range(len(obligations)), key=lambda i: obligations[i].theme != "induction")
    got: dict[int, Verdict] = {}
    ctx = multiprocessing.get_context("fork")
    try:
        with ctx.Pool(min(jobs, len(obligations))) as pool:
            for i, result, seconds in pool.imap_unordered(_check_at, order):
                got[i] = Verdict(obligations[i], result, seconds)
                done(got[i])
    finally:
        _SHARED = None
    return [got[i] for i in range(len(obligations))]


_SHARED: tuple[list[Obligation], float] | None = None


def _check_at(i: int) -> tuple[int, ProofResult, float]:
    assert _SHARED is not None
    obligations, timeout = _SHARED
    v = check_one(obligations[i], timeout)
    return i, v.result, v.seconds


def junit_xml(verdicts: Sequence[Verdict], seconds: float) -> str:
    """One test case per obligation; a counterexample or an unknown is a failure."""
    failures = sum(1 for v in verdicts if v.result.status is not Status.PROVED)
    suite = ET.Element("testsuite", name="vmapcheck.prove", tests=str(len(verdicts)),
                       failures=str(failures), errors="0", skipped="0", time=f"{seconds:.3f}")
    for v in verdicts:
        case = ET.SubElement(suite, "testcase", classname=f"proofs.{v.obligation.theme}",
                             name=v.obligation.name, time=f"{v.seconds:.3f}")
        if v.result.status is not Status.PROVED:
            fail = ET.SubElement(case, "failure", type=v.result.status.value,
                                 message=v.result.detail)
            fail.text = v.result.text()
        out = ET.SubElement(case, "system-out")
        out.text = f"{v.obligation.statement}\n{v.result.text()}"
    suites = ET.Element("testsuites", tests=str(len(verdicts)), failures=str(failures),
                        time=f"{seconds:.3f}")
    suites.append(suite)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
