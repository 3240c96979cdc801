"""Node mapping of the 6.9 design (``nodes``): address to node, the lookup scan, ``va->flags``.

- ``nodes.addr-to-node``: ``addr_to_node_id`` is a node for every 64-bit address, every zone
  size and every node count 1..255 (the ``encode_vn_id`` limit; the kernel clamps to 128), and
  the designs' own ``ShardedDesign.addr_to_shard`` computes the same node.
- ``nodes.scan``: ``find_vmap_area`` and ``find_unlink_vmap_area`` (``ShardedDesign._find`` and
  ``find_unlink_vmap_area``, run on stand-in trees that find nothing, the longest scan) and
  ``node_scan_order`` visit every node exactly once, starting at the address's node.  The scan
  depends on the address only through its start node, so it is checked for every node count
  and every start node, exhaustively (the start node of every address is the previous
  obligation).  A symbolic proof of the mod-n ring is slow for bit-blasting solvers at 255
  nodes, while the exhaustive check of the 32,640 cases takes about a second and is exact.
- ``nodes.vn-id``: for every valid node id, ``decode_vn_id(encode_vn_id(id) | low flags)`` is the
  id (whatever ``VMAP_RAM``/``VMAP_BLOCK`` bits share the word), the encoding is not 0 (0 means
  "no node") and fits the 32-bit field; 0 and ids out of range decode as "no node".
- ``nodes.pool-index``: ``size_to_va_pool_idx`` puts an area of ``p`` pages in class ``p - 1``
  when ``p <= MAX_VA_SIZE_PAGES`` and in no class otherwise.

Relies on ``impl.intervals`` (through ``proofs.arith``), ``impl.sharded`` and ``proofs.symbolic``.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from impl.config import PAGE_SIZE
from impl.intervals import MASK32, MAX_VA_SIZE_PAGES
from impl.sharded import ShardedDesign

from .arith import IMPL, Arith
from .obligation import Obligation, ProofResult, Status
from .render import Kind
from .symbolic import Executor, all_, implies

MAX_NODES = 255  # encode_vn_id keeps the id in 8 bits above the flags byte


def check_addr_to_node(a: Arith, timeout: float) -> ProofResult:
    # Division by a symbolic divisor: the SMT core's rewriting beats bit-blasting by far here.
    ex = Executor(timeout_s=timeout, smt_first=True)
    addr = ex.input("addr")
    zone = ex.input("zone_size", Kind.SIZE, lo=1)
    n = ex.input("nr_nodes", Kind.COUNT, lo=1, hi=MAX_NODES)

    def body() -> object:
        node = a.addr_to_node_id(addr, zone, n)
        # The designs' method on a stand-in for the design: it reads two attributes.
        stub: Any = SimpleNamespace(zone_size=zone, nr_shards=n)
        shard = ShardedDesign.addr_to_shard(stub, addr)  # type: ignore[arg-type]
        return {"a node in 0..nr_nodes-1": all_(node >= 0, node < n),
                "the designs' addr_to_shard agrees": shard == node}

    def describe(v: dict[str, int]) -> list[str]:
        stub = SimpleNamespace(zone_size=v["zone_size"], nr_shards=v["nr_nodes"])
        return [f"addr_to_node_id -> {a.addr_to_node_id(v['addr'], v['zone_size'], v['nr_nodes'])}"
                f", addr_to_shard -> {ShardedDesign.addr_to_shard(stub, v['addr'])}"]  # type: ignore[arg-type]

    return ex.prove(body, "every address maps to a node in 0..nr_nodes-1, the same in "
                    "intervals and in the designs", describe)


class _Shards:
    """Stand-in for the per-node busy locks and trees: records the node of each access and
    finds nothing, so the scan runs to its end."""

    __slots__ = ("log",)

    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def __getitem__(self, i: Any) -> _Shards:
        self.log.append(i)
        return self

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None

    def find_containing(self, addr: int) -> None:
        return None


class _NotFound(Exception):
    pass


def _scan_of(method: Callable[..., Any], n: int, zone: int, addr: int) -> list[int]:
    log: list[int] = []
    stub = SimpleNamespace(nr_shards=n, zone_size=zone, busy_lock=_Shards([]),
                           busy_root=_Shards(log), bad_free=lambda *args: _NotFound())
    try:
        method(stub, addr)
    except _NotFound:
        pass
    return log


def check_scan(a: Arith, timeout: float, max_nodes: int = MAX_NODES,
               zone: int = 16 * PAGE_SIZE) -> ProofResult:
    del timeout  # exhaustive: no solver
    scans = {"find_vmap_area": ShardedDesign._find,
             "find_unlink_vmap_area": ShardedDesign.find_unlink_vmap_area}
    cases = 0
    for n in range(1, max_nodes + 1):
        every = list(range(n))
        for start in range(n):
            runs = {name: _scan_of(fn, n, zone, start * zone) for name, fn in scans.items()}
            runs["node_scan_order"] = list(a.node_scan_order(start, n))
            for name, visited in runs.items():
                if not visited or visited[0] != start or sorted(visited) != every:
                    return ProofResult(
                        Status.COUNTEREXAMPLE, f"{name} does not visit every node once",
                        (("nr_nodes", str(n)), ("start node", str(start))),
                        (f"visited {visited}",))
            cases += 1
    return ProofResult.proved(f"every node visited exactly once from the address's node, for "
                              f"all {cases} (node count, start node) pairs", cases=cases)


def check_vn_id(a: Arith, timeout: float) -> ProofResult:
    ex = Executor(timeout_s=timeout)
    n = ex.input("nr_nodes", Kind.COUNT, lo=1, hi=MAX_NODES)
    node = ex.input("node_id", Kind.COUNT, hi=MASK32)
    low = ex.input("low_flags", Kind.FLAGS, hi=(1 << 8) - 1)  # VMAP_RAM, VMAP_BLOCK, ...

    def body() -> object:
        flags = a.encode_vn_id(node, n)
        back = a.decode_vn_id(flags | low, n)
        return {"a valid id encodes as non-zero 32-bit flags":
                    implies(node < n, all_(flags != 0, flags <= MASK32)),
                "a valid id decodes back, whatever the low flags": implies(node < n, back == node),
                "an invalid id encodes as no node": implies(node >= n, flags == 0),
                "flags without an id decode as no node": a.decode_vn_id(low, n) == n}

    def describe(v: dict[str, int]) -> list[str]:
        flags = a.encode_vn_id(v["node_id"], v["nr_nodes"])
        return [f"encode_vn_id -> {flags:#x}, decode_vn_id(flags | low) -> "
                f"{a.decode_vn_id(flags | v['low_flags'], v['nr_nodes'])}"]

    return ex.prove(body, "encode_vn_id/decode_vn_id round-trip every valid node id; 0 means "
                    "no node", describe)


def check_pool_index(a: Arith, timeout: float, page_size: int = PAGE_SIZE) -> ProofResult:
    ex = Executor(timeout_s=timeout)
    npages = ex.input("pages", Kind.COUNT, lo=1, hi=(1 << 64) // page_size - 1)

    def body() -> object:
        idx = a.size_to_va_pool_idx(npages * page_size, page_size)
        if idx is None:
            return {"no class only beyond MAX_VA_SIZE_PAGES": npages > MAX_VA_SIZE_PAGES}
        return {"a class only up to MAX_VA_SIZE_PAGES": npages <= MAX_VA_SIZE_PAGES,
                "a class in 0..MAX_VA_SIZE_PAGES-1": all_(idx >= 0, idx < MAX_VA_SIZE_PAGES),
                "class p-1 for p pages": (idx + 1) * page_size == npages * page_size}

    def describe(v: dict[str, int]) -> list[str]:
        return [f"size_to_va_pool_idx -> {a.size_to_va_pool_idx(v['pages'] * page_size, page_size)}"]

    return ex.prove(body, "an area of p pages has pool class p-1 up to MAX_VA_SIZE_PAGES, none "
                    "beyond", describe)


def obligations(a: Arith = IMPL) -> list[Obligation]:
    def ob(name: str, statement: str, fn: Callable[[Arith, float], ProofResult]) -> Obligation:
        return Obligation(f"nodes.{name}", "nodes", statement, lambda t: fn(a, t))

    return [
        ob("addr-to-node", "addr_to_node_id is in range for every address, zone size and node "
           "count, and the designs compute the same node", check_addr_to_node),
        ob("scan", "the lookup scan visits every node exactly once, from the address's node",
           check_scan),
        ob("vn-id", "the node id encoded in va->flags decodes back for every valid id",
           check_vn_id),
        ob("pool-index", "an area's pool size class matches its size in pages",
           check_pool_index),
    ]
