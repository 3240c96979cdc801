"""vmapcheck model-check versus frontrun on two bugs planted in the ``global`` allocator.

    .venv/bin/pip install frontrun==0.7.0     # or: pip install -e '.[compare]'
    .venv/bin/python benchmarks/compare_frontrun.py [--timeout 300] [--json]

For each planted bug (``planted.py``: a lock-order inversion, a lost update of
``vmap_lazy_nr``) both tools search the same two-thread program on the same allocator code and
stop at their first counterexample; the table gives, for each, the interleavings (executions)
explored and the seconds it took, measured in this one run.

vmapcheck runs in this process: DPOR with sleep sets and the state cache, lock and atomic
operations as scheduling points, the drain worker as a thread of its own.  frontrun runs under
its own ``frontrun`` command wrapper (``frontrun_side.py``), with its defaults (DPOR over Python
bytecode, preemption bound 2) and ``threading`` locks it intercepts.  Each tool gets the same
time budget; "not found" means the budget ran out first.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from planted import BUGS  # noqa: E402

from checker.model_check import model_check  # noqa: E402
from checker.scenario import Scenario  # noqa: E402


def run_vmapcheck(bug: str, timeout: float) -> dict[str, Any]:
    design, programs, config = BUGS[bug]
    scenario = Scenario(programs, config, bug)
    res = model_check(design, scenario, timeout=timeout, shrink=False, state_cache=True)
    st = res.stats
    found = bool(res.findings)
    return {"tool": "vmapcheck", "bug": bug, "found": found,
            "interleavings": st["first_violation_execution"] if found else st["executions"],
            "seconds": st["first_violation_seconds"] if found else st["seconds"],
            "summary": f"{res.findings[0].kind}: {res.findings[0].message}" if found else
            f"{res.outcome.value} after {st['executions']} executions"}


def run_frontrun(bug: str, timeout: float, bound: int) -> dict[str, Any]:
    exe = shutil.which("frontrun", path=str(Path(sys.executable).parent)) or \
        shutil.which("frontrun")
    if exe is None:
        return {"tool": "frontrun", "bug": bug, "found": None, "interleavings": None,
                "seconds": None, "summary": "frontrun is not installed (pip install "
                                           "frontrun==0.7.0)"}
    cmd = [exe, "python", str(HERE / "frontrun_side.py"), bug, "--timeout", str(timeout),
           "--preemption-bound", str(bound)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 120)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"tool": "frontrun", "bug": bug, "found": None, "interleavings": None,
                "seconds": None, "summary": f"failed: {proc.stderr.strip()[-300:]}"}
    out: dict[str, Any] = json.loads(lines[-1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=float, default=300.0,
                    help="seconds each tool may search for each bug (default 300)")
    ap.add_argument("--bugs", default=",".join(sorted(BUGS)),
                    help=f"comma-separated subset of {', '.join(sorted(BUGS))}")
    ap.add_argument("--frontrun-bound", type=int, default=2,
                    help="frontrun's preemption bound (its default, 2); -1 for none")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    ap.add_argument("--json-out", help="also write the rows as JSON to this file")
    args = ap.parse_args()
    rows = []
    for bug in [b.strip() for b in args.bugs.split(",") if b.strip()]:
        if bug not in BUGS:
            ap.error(f"unknown bug {bug!r}")
        rows.append(run_vmapcheck(bug, args.timeout))
        rows.append(run_frontrun(bug, args.timeout, args.frontrun_bound))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=1) + "\n")
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    from rich.console import Console
    from rich.table import Table
    table = Table(title=f"first counterexample, budget {args.timeout:g} s per tool and bug")
    for col in ("bug", "tool", "found", "interleavings", "seconds"):
        table.add_column(col, no_wrap=True)
    table.add_column("what", overflow="ellipsis", no_wrap=True, max_width=70)
    for r in rows:
        found = {True: "yes", False: "no (budget spent)", None: "-"}[r["found"]]
        table.add_row(r["bug"], r["tool"], found, str(r["interleavings"]), str(r["seconds"]),
                      str(r["summary"]))
    Console(width=max(Console().width, 140)).print(table)


if __name__ == "__main__":
    main()
