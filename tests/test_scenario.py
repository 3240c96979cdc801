"""Scenarios: the default one, TOML files, clear errors naming the bad field."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checker.scenario import (
    DEFAULT_CPUS,
    DEFAULT_LAZY_MAX,
    DEFAULT_PAGES,
    Scenario,
    ScenarioError,
    default_scenario,
    load_scenario,
    parse_op,
)
from impl.config import VmapConfig
from spec.program import Alloc, Find, Free, Purge, ThreadProgram


def test_default_scenario_shape() -> None:
    sc = default_scenario()
    assert sc.config.pages == DEFAULT_PAGES
    assert sc.config.lazy_max_pages == DEFAULT_LAZY_MAX
    assert sc.config.nr_cpus == DEFAULT_CPUS
    assert [p.cpu for p in sc.programs] == [0, 1]
    # Threads start at different sizes, so even one op each mixes sizes.
    assert [p.ops[0] for p in sc.programs] == [Alloc(1, "a0"), Alloc(2, "a0")]
    assert all(p.ops[1] == Free("a0") for p in sc.programs)
    three = default_scenario(threads=3, ops=2, cpus=2)
    assert (three.config.pages, three.config.lazy_max_pages) == (4, 3)
    assert (default_scenario(2, 2).config.pages, default_scenario(2, 2).config.lazy_max) == (3, 2)
    assert default_scenario(2, 2, pages=9, lazy_max=0).config.pages == 9
    assert [p.cpu for p in three.programs] == [0, 1, 0]
    assert [len(p.ops) for p in three.programs] == [4, 4, 4]


@pytest.mark.parametrize("kwargs, field", [
    ({"threads": 0}, "threads"), ({"ops": 0}, "ops"), ({"pages": 0}, "pages"),
    ({"lazy_max": -1}, "lazy_max"), ({"sizes": (0,)}, "sizes"), ({"sizes": (9,)}, "sizes"),
])
def test_default_scenario_rejects_bad_shapes(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ScenarioError, match=field):
        default_scenario(**kwargs)  # type: ignore[arg-type]


GOOD = """
name = "abba"
description = "one allocates and finds, the other frees"
[config]
pages = 8
lazy_max = 2
cpus = 2
[[threads]]
cpu = 0
ops = ["a = alloc(2 align=2 range=0..8)", "find(a)", "free(a)"]
[[threads]]
cpu = 1
ops = ["b = alloc(1)", "free(b)", "purge()"]
"""


def test_load_scenario(tmp_path: Path) -> None:
    p = tmp_path / "s.toml"
    p.write_text(GOOD)
    sc = load_scenario(p)
    assert sc.name == "abba"
    assert sc.config.pages == 8 and sc.config.lazy_max_pages == 2
    assert sc.programs[0].ops == (Alloc(2, "a", 2, (0, 8)), Find("a"), Free("a"))
    assert sc.programs[1].ops == (Alloc(1, "b"), Free("b"), Purge())
    assert Scenario.from_json(sc.to_json()) == sc


@pytest.mark.parametrize("text, needle", [
    ("[config]\npages = 4\n", "threads: missing"),
    ("[config]\npages = -4\n[[threads]]\nops=['a = alloc(1)']\n", "config.pages"),
    ("[config]\npagez = 4\n[[threads]]\nops=['a = alloc(1)']\n", "unknown field 'pagez'"),
    ("[[threads]]\ncpu = 5\nops=['a = alloc(1)']\n", "threads[0].cpu"),
    ("[[threads]]\nops=[]\n", "threads[0].ops"),
    ("[[threads]]\nops=['a = malloc(1)']\n", "threads[0].ops[0]"),
    ("[[threads]]\nops=['a = alloc(1)', 'free(b)']\n", "threads[0].ops[1]"),
    ("[[threads]]\nops=['a = alloc(1)', 'free(a)', 'free(a)']\n", "already freed"),
    ("[[threads]]\nops=['a = alloc(1 align=3)']\n", "align must be a power of two"),
    ("[config]\npages = 4\n[[threads]]\nops=['a = alloc(1 range=2..9)']\n", "range 2..9"),
    ("[config]\npages = 4\n[[threads]]\nops=['a = alloc(5)']\n", "do not fit"),
    ("[[threads]]\nops=['a = alloc(1 colour=3)']\n", "unknown argument 'colour'"),
    ("[[threads]]\nops = 'a = alloc(1)'\n", "threads[0].ops"),
    ("not toml [", "not valid TOML"),
])
def test_bad_files_name_the_field(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(p)
    assert needle in str(info.value)
    assert str(p) in str(info.value)


def test_missing_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "nope.toml")


@st.composite
def allocs(draw: st.DrawFn) -> Alloc:
    n = draw(st.integers(1, 4))
    rng = None
    if draw(st.booleans()):
        lo = draw(st.integers(0, 8 - n))
        rng = (lo, draw(st.integers(lo + n, 8)))
    return Alloc(n, draw(st.sampled_from(["a", "b", "c"])), draw(st.sampled_from([1, 2, 4])), rng)


ops_strategy = st.one_of(
    allocs(),
    st.builds(Free, st.sampled_from(["a", "b"])),
    st.builds(Find, st.sampled_from(["a", "b"])),
    st.just(Purge()),
)


@given(ops_strategy)
def test_ops_print_as_they_parse(op: object) -> None:
    assert parse_op(str(op), "op", 8) == op


@given(st.lists(st.tuples(st.integers(0, 1), st.integers(1, 3)), min_size=1, max_size=3),
       st.integers(3, 16), st.integers(0, 4))
def test_scenarios_round_trip_through_json(threads: list[tuple[int, int]], pages: int,
                                           lazy: int) -> None:
    programs = tuple(ThreadProgram(cpu, (Alloc(n, "a"), Find("a"), Free("a"), Purge()))
                     for cpu, n in threads)
    sc = Scenario(programs, VmapConfig(pages=pages, nr_cpus=2, lazy_max=lazy), "gen")
    assert Scenario.from_json(sc.to_json()) == sc
