"""The manifest of expected state counts is a regression oracle: every bounded configuration it
lists must explore to exactly the distinct states, transitions and depth recorded."""

from __future__ import annotations

from typing import Any

import pytest

from spec.manifest import CONFIGS, load, measure

ENTRIES = load()


def _id(e: dict[str, Any]) -> str:
    extra = "".join(f"-{k}{e[k]}" for k in ("zone_pages", "symmetry") if k in e)
    return f"{e['spec']}-{e['threads']}x{e['ops']}-p{e['pages']}{extra}"


def _marks(e: dict[str, Any]) -> list[Any]:
    return [pytest.mark.slow] if e.get("slow") else []


def test_manifest_covers_every_spec_and_the_listed_configs() -> None:
    assert {e["spec"] for e in ENTRIES} == {"global", "nodes", "percpu"}
    strip = ("distinct_states", "transitions", "depth")
    assert [{k: v for k, v in e.items() if k not in strip} for e in ENTRIES] == CONFIGS


@pytest.mark.parametrize("entry", [pytest.param(e, id=_id(e), marks=_marks(e))
                                   for e in ENTRIES])
def test_state_counts_match_the_manifest(entry: dict[str, Any]) -> None:
    got = measure(entry)
    assert got == {k: entry[k] for k in got}, (
        "the spec's state space changed; if intended, run `python -m spec.manifest --write`")
