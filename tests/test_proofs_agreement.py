"""The Z3 encoding of the arithmetic agrees with the implementation on random and edge inputs.

The obligations of ``proofs/`` run ``impl.intervals`` on symbolic values, so their formulas are
whatever the symbolic model (``proofs.symbolic``) makes of the code.  Here each function is
explored once on symbolic inputs; then, for at least 10,000 concrete inputs (zero, page
boundaries, values near 2^64, the largest alignments, and random ones), exactly one path's
condition must hold and its value must equal what the concrete function returns.  The formulas
are evaluated by a small interpreter of Z3 terms written here, independent of the model.

``alloc_outcome`` (the arithmetic the fit obligations prove) is also compared with
``impl.freespace.alloc_from_tree`` on a real one-block tree, remainder included.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import z3
from hypothesis import given
from hypothesis import strategies as st

from impl import intervals as iv
from impl.config import PAGE_SIZE, VmapConfig
from impl.freespace import alloc_from_tree
from impl.rbtree import RBTree, VmapArea
from proofs.arith import IMPL
from proofs.fit import alloc_outcome
from proofs.render import Kind
from proofs.symbolic import Executor, Path, SymBool, SymInt

MASK64 = (1 << 64) - 1

# ---------------------------------------------------------------------------- Z3 interpreter
K = z3


def _u(v: int, w: int) -> int:
    return v & ((1 << w) - 1)


def _s(v: int, w: int) -> int:
    v = _u(v, w)
    return v - (1 << w) if v >> (w - 1) else v


Env = dict[str, int]


def compile_term(e: z3.ExprRef, memo: dict[int, Callable[[Env], Any]] | None = None
                 ) -> Callable[[Env], Any]:
    """A Python closure computing ``e`` from variable values (bit-vectors as unsigned ints)."""
    memo = {} if memo is None else memo
    key = e.get_id()
    if key in memo:
        return memo[key]
    fn = _compile(e, memo)
    memo[key] = fn
    return fn


def _compile(e: z3.ExprRef, memo: dict[int, Callable[[Env], Any]]) -> Callable[[Env], Any]:
    if z3.is_true(e):
        return lambda env: True
    if z3.is_false(e):
        return lambda env: False
    if z3.is_bv_value(e):
        v = e.as_long()
        return lambda env: v
    kind = e.decl().kind()
    if kind == K.Z3_OP_UNINTERPRETED and e.num_args() == 0:
        name = e.decl().name()
        w = e.size()
        return lambda env: _u(env[name], w)
    args = [compile_term(c, memo) for c in e.children()]
    w = e.size() if z3.is_bv(e) else (e.arg(0).size() if e.num_args() and z3.is_bv(e.arg(0))
                                      else 0)
    m = (1 << w) - 1 if w else 0
    a = args[0] if args else None
    b = args[1] if len(args) > 1 else None
    if kind == K.Z3_OP_BADD:
        return lambda env: sum(f(env) for f in args) & m
    if kind == K.Z3_OP_BMUL:
        def mul(env: Env) -> int:
            r = 1
            for f in args:
                r = r * f(env) & m
            return r
        return mul
    if kind == K.Z3_OP_BSUB:
        return lambda env: (a(env) - b(env)) & m
    if kind == K.Z3_OP_BNEG:
        return lambda env: -a(env) & m
    if kind == K.Z3_OP_BAND:
        def band(env: Env) -> int:
            r = m
            for f in args:
                r &= f(env)
            return r
        return band
    if kind == K.Z3_OP_BOR:
        def bor(env: Env) -> int:
            r = 0
            for f in args:
                r |= f(env)
            return r
        return bor
    if kind == K.Z3_OP_BXOR:
        return lambda env: a(env) ^ b(env)
    if kind == K.Z3_OP_BNOT:
        return lambda env: ~a(env) & m
    if kind == K.Z3_OP_BSHL:
        return lambda env: (a(env) << b(env)) & m if b(env) < w else 0
    if kind == K.Z3_OP_BLSHR:
        return lambda env: a(env) >> b(env) if b(env) < w else 0
    if kind == K.Z3_OP_BASHR:
        return lambda env: _u(_s(a(env), w) >> min(b(env), w), w)
    if kind in (K.Z3_OP_BUDIV, K.Z3_OP_BUDIV_I):
        return lambda env: a(env) // b(env) if b(env) else m
    if kind in (K.Z3_OP_BUREM, K.Z3_OP_BUREM_I):
        return lambda env: a(env) % b(env) if b(env) else a(env)
    if kind in (K.Z3_OP_BSDIV, K.Z3_OP_BSDIV_I):
        def sdiv(env: Env) -> int:
            x, y = _s(a(env), w), _s(b(env), w)
            if y == 0:
                return m if x >= 0 else 1
            q = abs(x) // abs(y)
            return _u(q if (x >= 0) == (y >= 0) else -q, w)
        return sdiv
    if kind in (K.Z3_OP_BSMOD, K.Z3_OP_BSMOD_I):
        def smod(env: Env) -> int:
            x, y = _s(a(env), w), _s(b(env), w)
            return _u(x % y, w) if y else a(env)
        return smod
    if kind == K.Z3_OP_EXTRACT:
        hi, lo = e.params()
        return lambda env: (a(env) >> lo) & ((1 << (hi - lo + 1)) - 1)
    if kind == K.Z3_OP_CONCAT:
        widths = [c.size() for c in e.children()]

        def concat(env: Env) -> int:
            r = 0
            for f, cw in zip(args, widths, strict=True):
                r = (r << cw) | f(env)
            return r
        return concat
    if kind == K.Z3_OP_ZERO_EXT:
        return lambda env: a(env)
    if kind == K.Z3_OP_SIGN_EXT:
        aw = e.arg(0).size()
        return lambda env: _u(_s(a(env), aw), w)
    cmp = {K.Z3_OP_SLT: lambda x, y: _s(x, w) < _s(y, w),
           K.Z3_OP_SLEQ: lambda x, y: _s(x, w) <= _s(y, w),
           K.Z3_OP_SGT: lambda x, y: _s(x, w) > _s(y, w),
           K.Z3_OP_SGEQ: lambda x, y: _s(x, w) >= _s(y, w),
           K.Z3_OP_ULT: lambda x, y: x < y, K.Z3_OP_ULEQ: lambda x, y: x <= y,
           K.Z3_OP_UGT: lambda x, y: x > y, K.Z3_OP_UGEQ: lambda x, y: x >= y}
    if kind in cmp:
        op = cmp[kind]
        return lambda env: op(a(env), b(env))
    if kind == K.Z3_OP_EQ:
        return lambda env: a(env) == b(env)
    if kind == K.Z3_OP_DISTINCT:
        return lambda env: len({f(env) for f in args}) == len(args)
    if kind == K.Z3_OP_ITE:
        c = args[2]
        return lambda env: b(env) if a(env) else c(env)
    if kind == K.Z3_OP_AND:
        return lambda env: all(f(env) for f in args)
    if kind == K.Z3_OP_OR:
        return lambda env: any(f(env) for f in args)
    if kind == K.Z3_OP_NOT:
        return lambda env: not a(env)
    if kind == K.Z3_OP_IMPLIES:
        return lambda env: (not a(env)) or b(env)
    if kind == K.Z3_OP_XOR:
        return lambda env: a(env) != b(env)
    raise NotImplementedError(f"interpreter: {e.decl()} ({kind})")


class Encoding:
    """The paths of one symbolic exploration, compiled for fast concrete evaluation."""

    def __init__(self, ex: Executor, paths: list[Path[Any]]) -> None:
        self.ex = ex
        memo: dict[int, Callable[[Env], Any]] = {}
        self.paths = [([compile_term(c, memo) for c in p.condition],
                       _compile_value(p.value, memo, ex.width),
                       [compile_term(s.expr, memo) for s in p.side]) for p in paths]
        self.width = ex.width

    def __call__(self, values: dict[str, int]) -> Any:
        env = {k: _u(v, self.width) for k, v in values.items()}
        hits = [(val, side) for conds, val, side in self.paths if all(c(env) for c in conds)]
        assert len(hits) == 1, f"{len(hits)} paths hold for {values}"
        val, side = hits[0]
        assert all(s(env) for s in side), f"a side condition fails on {values}"
        return val(env)


def _compile_value(v: Any, memo: dict[int, Callable[[Env], Any]], w: int) -> Callable[[Env], Any]:
    if isinstance(v, SymInt):
        f = compile_term(v.expr, memo)
        return lambda env: _s(f(env), w)
    if isinstance(v, SymBool):
        g = compile_term(v.expr, memo)
        return lambda env: bool(g(env))
    if isinstance(v, tuple):
        parts = [_compile_value(x, memo, w) for x in v]
        return lambda env: tuple(p(env) for p in parts)
    if isinstance(v, list):
        parts = [_compile_value(x, memo, w) for x in v]
        return lambda env: [p(env) for p in parts]
    return lambda env: v


def encode(fn: Callable[..., Any], inputs: list[tuple[str, Kind, int, int]]) -> Encoding:
    ex = Executor()
    syms = [ex.input(name, kind, lo, hi) for name, kind, lo, hi in inputs]
    return Encoding(ex, ex.explore(lambda: fn(*syms)))


# ---------------------------------------------------------------------------- inputs
def edge_values() -> list[int]:
    out = {0, 1, 2, 3}
    for k in range(0, 64):
        for d in (-1, 0, 1):
            out.add((1 << k) + d)
    for p in (1, 2, 3, 16, 255, 256, 257):
        out |= {p * PAGE_SIZE - 1, p * PAGE_SIZE, p * PAGE_SIZE + 1}
    for d in (0, 1, 2, PAGE_SIZE - 1, PAGE_SIZE, PAGE_SIZE + 1, 1 << 20):
        out |= {MASK64 - d, (1 << 63) - d, (1 << 63) + d}
    out.add(VmapConfig().start)
    return sorted(v for v in out if 0 <= v <= MASK64)


EDGES = edge_values()
ALIGNS = [1 << k for k in range(64)]


def draw(rng: random.Random, lo: int = 0, hi: int = MASK64) -> int:
    """Mostly edge values, sometimes near an edge, sometimes uniform."""
    r = rng.random()
    if r < 0.5:
        v = rng.choice(EDGES)
    elif r < 0.75:
        v = rng.choice(EDGES) + rng.randint(-3 * PAGE_SIZE, 3 * PAGE_SIZE)
    else:
        v = rng.randint(lo, hi)
    return min(max(v, lo), hi)


def requests(rng: random.Random, n: int) -> Iterator[tuple[int, int, int, int, int, int]]:
    """(va_start, va_end, size, align, vstart, vend) with va_start < va_end, vstart < vend."""
    made = 0
    while made < n:
        a, b = draw(rng), draw(rng)
        c, d = draw(rng), draw(rng)
        if a == b or c == d:
            continue
        va_start, va_end = min(a, b), max(a, b)
        vstart, vend = min(c, d), max(c, d)
        if rng.random() < 0.3:  # requests that fit, near the block
            size = rng.choice([1, PAGE_SIZE, 2 * PAGE_SIZE, max(1, (va_end - va_start) // 2)])
        else:
            size = draw(rng, lo=1)
        align = rng.choice(ALIGNS[:16]) if rng.random() < 0.5 else rng.choice(ALIGNS)
        made += 1
        yield va_start, va_end, size, align, vstart, vend


REQ = [("va_start", Kind.ADDR, 0, MASK64), ("va_end", Kind.ADDR, 0, MASK64),
       ("size", Kind.SIZE, 1, MASK64), ("align", Kind.ALIGN, 1, 1 << 63),
       ("vstart", Kind.ADDR, 0, MASK64), ("vend", Kind.ADDR, 0, MASK64)]
NAMES = [n for n, *_ in REQ]


def _plain(v: Any) -> Any:
    """FitType and nested tuples compare as they are; symbolic leaves are already ints."""
    return v


# ---------------------------------------------------------------------------- tests
def test_interpreter_matches_z3_on_a_sample() -> None:
    x, y = z3.BitVecs("x y", 72)
    e = z3.If(z3.UDiv(x, y + 1) > (x & ~y), (x << 3) - y, z3.URem(x, y + 1))
    f = compile_term(e)
    rng = random.Random(1)
    for _ in range(200):
        vx, vy = rng.getrandbits(72), rng.getrandbits(72)
        want = z3.simplify(z3.substitute(e, (x, z3.BitVecVal(vx, 72)),
                                         (y, z3.BitVecVal(vy, 72))))
        assert f({"x": vx, "y": vy}) == want.as_long()


COUNTS: dict[str, int] = {}


def test_alloc_pipeline_agrees_with_the_encoding_and_with_alloc_from_tree() -> None:
    enc = encode(lambda *r: alloc_outcome(IMPL, *r), REQ)
    rng = random.Random(7)
    n = 0
    for req in requests(rng, 6000):
        concrete = alloc_outcome(IMPL, *req)
        assert enc(dict(zip(NAMES, req, strict=True))) == concrete, req
        tree = RBTree(augmented=True, name="free")
        tree.insert(VmapArea(req[0], req[1]))
        got = alloc_from_tree(tree, req[2], req[3], req[4], req[5], PAGE_SIZE)
        if concrete is None:
            assert got is None, req
            assert tree.ranges() == ((req[0], req[1]),)
        else:
            nva, fit, rest = concrete
            assert got == (nva, fit), req
            assert tree.ranges() == tuple(rest), req
        n += 1
    COUNTS["alloc"] = n
    assert n >= 6000


def test_fit_functions_agree_with_the_encoding() -> None:
    within = encode(iv.is_within_this_va, REQ[:5])
    nva = encode(iv.nva_start_addr, [REQ[0], REQ[2], REQ[3], REQ[4]])
    length = encode(lambda size, align, vstart, vend: iv.search_length(
        size, align, iv.adjust_search_size(size, align, vstart, vend, PAGE_SIZE)),
        [REQ[2], REQ[3], REQ[4], REQ[5]])
    rng = random.Random(11)
    n = 0
    for va_start, va_end, size, align, vstart, vend in requests(rng, 3000):
        v = {"va_start": va_start, "va_end": va_end, "size": size, "align": align,
             "vstart": vstart, "vend": vend}
        assert within(v) == iv.is_within_this_va(va_start, va_end, size, align, vstart)
        assert nva(v) == iv.nva_start_addr(va_start, size, align, vstart)
        want = iv.search_length(size, align,
                                iv.adjust_search_size(size, align, vstart, vend, PAGE_SIZE))
        assert length(v) == want
        n += 1
    COUNTS["fit"] = n
    assert n >= 3000


def test_merge_ranges_agrees_with_the_encoding() -> None:
    rng = random.Random(13)
    n = 0
    for has_prev in (False, True):
        for has_next in (False, True):
            names = [("va.s", Kind.ADDR, 0, MASK64), ("va.e", Kind.ADDR, 0, MASK64)]
            if has_prev:
                names = [("prev.s", Kind.ADDR, 0, MASK64), ("prev.e", Kind.ADDR, 0, MASK64),
                         *names]
            if has_next:
                names += [("next.s", Kind.ADDR, 0, MASK64), ("next.e", Kind.ADDR, 0, MASK64)]

            def call(*xs: Any, hp: bool = has_prev, hn: bool = has_next) -> Any:
                xs_l = list(xs)
                prev = (xs_l.pop(0), xs_l.pop(0)) if hp else None
                va = (xs_l.pop(0), xs_l.pop(0))
                nxt = (xs_l.pop(0), xs_l.pop(0)) if hn else None
                return iv.merge_ranges(prev, va, nxt)
            enc = encode(call, names)
            for _ in range(500):
                pts = sorted(draw(rng) for _ in range(len(names)))
                if rng.random() < 0.5 and len(pts) > 2:  # make neighbours touch
                    i = rng.randrange(1, len(pts) - 1)
                    pts[i] = pts[i - 1] if i % 2 == 0 else pts[i]
                    pts.sort()
                values = dict(zip([nm for nm, *_ in names], pts, strict=True))
                assert enc(values) == call(*pts), values
                n += 1
    COUNTS["merge"] = n
    assert n >= 2000


def test_node_functions_agree_with_the_encoding() -> None:
    to_node = encode(iv.addr_to_node_id, [("addr", Kind.ADDR, 0, MASK64),
                                          ("zone", Kind.SIZE, 1, MASK64),
                                          ("n", Kind.COUNT, 1, 255)])
    vn = encode(lambda node, n, low: iv.decode_vn_id(iv.encode_vn_id(node, n) | low, n),
                [("node", Kind.COUNT, 0, (1 << 32) - 1), ("n", Kind.COUNT, 1, 255),
                 ("low", Kind.FLAGS, 0, 255)])
    pool = encode(lambda p: iv.size_to_va_pool_idx(p * PAGE_SIZE, PAGE_SIZE),
                  [("p", Kind.COUNT, 1, (1 << 52) - 1)])
    rng = random.Random(17)
    n = 0
    for _ in range(1500):
        addr, zone, nodes = draw(rng), draw(rng, lo=1), rng.randint(1, 255)
        assert to_node({"addr": addr, "zone": zone, "n": nodes}) == \
            iv.addr_to_node_id(addr, zone, nodes)
        node, low = rng.choice([rng.randint(0, 300), draw(rng, hi=(1 << 32) - 1)]), \
            rng.randint(0, 255)
        assert vn({"node": node, "n": nodes, "low": low}) == \
            iv.decode_vn_id(iv.encode_vn_id(node, nodes) | low, nodes)
        p = rng.choice([rng.randint(1, 600), draw(rng, lo=1, hi=(1 << 52) - 1)])
        assert pool({"p": p}) == iv.size_to_va_pool_idx(p * PAGE_SIZE, PAGE_SIZE)
        n += 3
    COUNTS["nodes"] = n
    assert n >= 4500


def test_lazy_max_pages_agrees_with_the_encoding() -> None:
    enc = encode(lambda cpus, shift: iv.lazy_max_pages(cpus, 1 << shift),
                 [("cpus", Kind.COUNT, 1, 1 << 16), ("shift", Kind.COUNT, 12, 18)])
    n = 0
    for cpus in [*range(1, 1100), *(1 << k for k in range(17)), *((1 << k) - 1 for k in range(1, 17))]:
        for shift in (12, 14, 16, 18):
            assert enc({"cpus": cpus, "shift": shift}) == iv.lazy_max_pages(cpus, 1 << shift)
            n += 1
    COUNTS["lazy"] = n
    assert n >= 4000


def test_total_agreement_inputs_at_least_ten_thousand() -> None:
    # Runs after the agreement tests in file order; the figure is printed for the report.
    if len(COUNTS) < 5:
        pytest.skip("run with the whole module")
    total = sum(COUNTS.values())
    print(f"agreement inputs: {COUNTS} total {total}")
    assert total >= 10_000


@given(st.integers(0, MASK64), st.integers(0, MASK64), st.integers(1, MASK64),
       st.integers(0, 63), st.integers(0, MASK64), st.integers(0, MASK64))
def test_alloc_pipeline_agrees_hypothesis(a: int, b: int, size: int, k: int, c: int,
                                          d: int) -> None:
    if a == b or c == d:
        return
    req = (min(a, b), max(a, b), size, 1 << k, min(c, d), max(c, d))
    enc = _ALLOC_ENC.get("enc")
    if enc is None:
        enc = _ALLOC_ENC["enc"] = encode(lambda *r: alloc_outcome(IMPL, *r), REQ)
    assert enc(dict(zip(NAMES, req, strict=True))) == alloc_outcome(IMPL, *req)


_ALLOC_ENC: dict[str, Encoding] = {}


def test_floor_division_and_index_splitting_agree_with_python() -> None:
    """Negative operands take Python's floor semantics; a list index on a symbolic value
    becomes one path per possible value."""
    def fn(x: Any, y: Any) -> Any:
        return x // y, x % y, (10, 20, 30)[x % 3]
    ex = Executor(width=24)
    x = ex.input("x", Kind.COUNT, 0, 200)
    y = ex.input("y", Kind.COUNT, 1, 7)
    enc = Encoding(ex, ex.explore(lambda: fn(x - 100, y)))
    n = 0
    for vx in range(0, 201):
        for vy in range(1, 8):
            assert enc({"x": vx, "y": vy}) == fn(vx - 100, vy), (vx, vy)
            n += 1
    assert n == 201 * 7
