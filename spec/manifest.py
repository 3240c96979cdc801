"""Expected state counts of bounded spec configurations: a regression oracle.

``spec/manifest.json`` lists, per spec, a few bounded configurations with the distinct states,
transitions and depth a complete search finds (with the symmetry and reduction settings given).
A change to a spec, the compiler or the explorer that alters any of them shows up in the tests
(``tests/test_spec_manifest.py``); an intended change is recorded by regenerating the file:

    python -m spec.manifest --write

Relies on ``spec.registry`` and ``spec.explorer``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .explorer import explore
from .params import SpecParams
from .program import default_programs
from .registry import build_spec

PATH = Path(__file__).with_name("manifest.json")

# (spec, threads, ops, pages, lazy_max, cpus, symmetry): small enough for every test run,
# except those marked slow, which the slow test run covers.
CONFIGS: list[dict[str, Any]] = [
    {"spec": "global", "threads": 2, "ops": 1, "pages": 4, "lazy_max": 1, "cpus": 2},
    {"spec": "global", "threads": 2, "ops": 2, "pages": 4, "lazy_max": 1, "cpus": 2},
    {"spec": "global", "threads": 3, "ops": 1, "pages": 4, "lazy_max": 1, "cpus": 2},
    {"spec": "global", "threads": 3, "ops": 1, "pages": 4, "lazy_max": 1, "cpus": 2,
     "symmetry": False},
    {"spec": "global", "threads": 3, "ops": 2, "pages": 4, "lazy_max": 1, "cpus": 2,
     "slow": True},
    {"spec": "nodes", "threads": 2, "ops": 1, "pages": 4, "lazy_max": 1, "cpus": 2},
    {"spec": "nodes", "threads": 2, "ops": 2, "pages": 4, "lazy_max": 1, "cpus": 2},
    {"spec": "nodes", "threads": 2, "ops": 2, "pages": 4, "lazy_max": 1, "cpus": 2,
     "zone_pages": 1},
    {"spec": "nodes", "threads": 3, "ops": 1, "pages": 4, "lazy_max": 1, "cpus": 2},
    {"spec": "percpu", "threads": 2, "ops": 1, "pages": 4, "lazy_max": 1, "cpus": 2},
    {"spec": "percpu", "threads": 2, "ops": 1, "pages": 8, "lazy_max": 1, "cpus": 2,
     "zone_pages": 4},
    {"spec": "percpu", "threads": 2, "ops": 2, "pages": 8, "lazy_max": 1, "cpus": 2,
     "zone_pages": 4},
]


def params_of(entry: dict[str, Any]) -> SpecParams:
    cpus = entry.get("cpus", 1)
    return SpecParams(default_programs(entry["threads"], entry["ops"], cpus),
                      pages=entry["pages"], lazy_max=entry["lazy_max"], nr_cpus=cpus,
                      nr_nodes=entry.get("nr_nodes", cpus),
                      zone_pages=entry.get("zone_pages", 16))


def measure(entry: dict[str, Any]) -> dict[str, Any]:
    """Explore one configuration; the figures the manifest keeps for it."""
    spec = build_spec(entry["spec"], params_of(entry))
    res = explore(spec, symmetry=entry.get("symmetry", True))
    if res.status != "ok":
        raise RuntimeError(f"{entry}: {res.status}")
    return {"distinct_states": res.stats["distinct_states"],
            "transitions": res.stats["transitions"], "depth": res.stats["depth"]}


def load() -> list[dict[str, Any]]:
    data = json.loads(PATH.read_text())
    entries: list[dict[str, Any]] = data["entries"]
    return entries


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Check or regenerate spec/manifest.json.")
    ap.add_argument("--write", action="store_true", help="regenerate the file")
    args = ap.parse_args(argv)
    if args.write:
        entries = [{**c, **measure(c)} for c in CONFIGS]
        PATH.write_text(json.dumps({"format": "vmapcheck-spec-manifest", "version": 1,
                                    "entries": entries}, indent=1) + "\n")
        print(f"wrote {len(entries)} entries to {PATH}")
        return 0
    bad = 0
    for e in load():
        got = measure(e)
        want = {k: e[k] for k in got}
        status = "ok" if got == want else f"CHANGED: {got}"
        bad += got != want
        print(f"{e['spec']} {e['threads']}x{e['ops']} pages={e['pages']}: {status}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
