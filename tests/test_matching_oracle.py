"""Oracle tests: `PrefixTable` against pytricia (and brute force) on the real public prefix tables.

Every table is read with `read_ranges` + `label_codes`, exactly as the CLI does, and the very same
``(prefix, code)`` pairs are inserted, in the same order, into the oracles:

* ``pytricia.PyTricia`` (one tree per address family; ``tree[prefix] = code`` replaces, so it follows
  the same "last added wins" rule as `PrefixTable`),
* for the Azure table also a plain dict ``{normalized prefix: code}`` and a vectorized brute force
  over every distinct prefix.

The queries are drawn with fixed seeds, so a failure is reproducible; the assertion messages count
the mismatches and show the first few.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import pytricia

from analyzer.matching import NO_MATCH, PrefixTable
from analyzer.ranges import label_codes, read_ranges

V4_MAPPED = ipaddress.ip_network("::ffff:0:0/96")


# ---------------------------------------------------------------------------------------------
# helpers


def _net(prefix: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(prefix, strict=False)


def _v4_texts(ints: np.ndarray) -> list[str]:
    return [f"{v >> 24}.{(v >> 16) & 255}.{(v >> 8) & 255}.{v & 255}" for v in ints.tolist()]


def _v6_text(value: int, style: int) -> str:
    """Three spellings the log files use: compressed, fully exploded, upper-case compressed."""
    addr = ipaddress.IPv6Address(value)
    if style == 0:
        return str(addr)
    if style == 1:
        return addr.exploded
    return str(addr).upper()


def _random_inside(rng: random.Random, nets: Sequence[ipaddress._BaseNetwork], count: int) -> list[int]:
    """`count` addresses (as int) with random host bits under randomly chosen prefixes of `nets`."""
    out = []
    for _ in range(count):
        net = nets[rng.randrange(len(nets))]
        host_bits = net.max_prefixlen - net.prefixlen
        out.append(int(net.network_address) | (rng.getrandbits(host_bits) if host_bits else 0))
    return out


def _boundaries(nets: Sequence[ipaddress._BaseNetwork]) -> list[int]:
    """First, last, one-before-first and one-after-last address of each prefix (inside the family)."""
    out = []
    for net in nets:
        first, last = int(net.network_address), int(net.broadcast_address)
        top = (1 << net.max_prefixlen) - 1
        out.extend([first, last])
        if first > 0:
            out.append(first - 1)
        if last < top:
            out.append(last + 1)
    return out


def _assert_same(got: np.ndarray, expected: np.ndarray, queries: Sequence[str], what: str) -> None:
    assert got.dtype == np.int32
    assert got.shape == expected.shape
    bad = np.flatnonzero(got != expected)
    examples = [(queries[i], int(got[i]), int(expected[i])) for i in bad[:10]]
    assert bad.size == 0, (
        f"{what}: {bad.size} of {len(queries)} lookups differ from the oracle; "
        f"first (query, got, expected): {examples}"
    )


def _pytricia_lookup(trees: dict[int, pytricia.PyTricia], queries: Sequence[str]) -> np.ndarray:
    """Oracle answers; every query here is a valid address, IPv4 or IPv6."""
    out = np.empty(len(queries), dtype=np.int32)
    t4, t6 = trees[4], trees[6]
    for i, q in enumerate(queries):
        out[i] = (t6 if ":" in q else t4).get(q, NO_MATCH)
    return out


def _nested_hits(trees: dict[int, pytricia.PyTricia], queries: Sequence[str], expected: np.ndarray) -> int:
    """Queries whose longest match lies inside another (shorter) prefix of the table."""
    n = 0
    for q, e in zip(queries, expected.tolist()):
        if e >= 0:
            tree = trees[6] if ":" in q else trees[4]
            if tree.parent(tree.get_key(q)) is not None:
                n += 1
    return n


def _nesting_levels(tree: pytricia.PyTricia) -> int:
    """The longest chain of prefixes of `tree`, each inside the previous one (1: no nesting)."""
    deepest = 0
    for key in tree.keys():
        levels, parent = 1, tree.parent(key)
        while parent is not None:
            levels, parent = levels + 1, tree.parent(parent)
        deepest = max(deepest, levels)
    return deepest


@dataclass
class Loaded:
    pairs: list[tuple[str, int]]
    labels: list[str]
    table: PrefixTable
    trees: dict[int, pytricia.PyTricia]


def _load(path: Path) -> Loaded:
    pairs, labels = label_codes(read_ranges(path))
    table = PrefixTable.from_pairs(pairs, backend="compiled")
    trees = {4: pytricia.PyTricia(32), 6: pytricia.PyTricia(128)}
    for prefix, code in pairs:  # same order as the table: a repeated prefix is replaced
        trees[6 if ":" in prefix else 4][prefix] = code
    # pytricia knows nothing of IPv4-mapped IPv6; the comparison below is only fair without them.
    assert not any(":" in p and _net(p).subnet_of(V4_MAPPED) for p, _ in pairs if p.startswith("::"))
    return Loaded(pairs, labels, table, trees)


# ---------------------------------------------------------------------------------------------
# RouteViews IPv4: 615,842 prefixes


@pytest.fixture(scope="module")
def rv4(shared_data: Path) -> Loaded:
    return _load(shared_data / "ip_prefixes" / "routeviews-rv2-20160202-1200.pfx2as.gz")


@pytest.fixture(scope="module")
def rv4_queries(rv4: Loaded) -> tuple[np.ndarray, list[str], np.ndarray]:
    ints = np.random.default_rng(20160202).integers(0, 2**32, size=250_000, dtype=np.uint64)
    ints = ints.astype(np.uint32)
    texts = _v4_texts(ints)
    return ints, texts, _pytricia_lookup(rv4.trees, texts)


@pytest.mark.slow
def test_routeviews_v4_table_loaded_completely(rv4: Loaded) -> None:
    assert len(rv4.pairs) == 615_842
    assert len(rv4.table) == 615_842 == len(rv4.trees[4])
    assert len(rv4.trees[6]) == 0


@pytest.mark.slow
def test_routeviews_v4_random_queries_match_pytricia(rv4: Loaded, rv4_queries) -> None:  # type: ignore[no-untyped-def]
    ints, texts, expected = rv4_queries
    got = rv4.table.lookup(pa.array(texts, type=pa.string()))
    _assert_same(got, expected, texts, "RouteViews IPv4, pyarrow strings")
    # The numpy uint32 entry point must give the same answers for the same addresses.
    _assert_same(rv4.table.lookup(ints), expected, texts, "RouteViews IPv4, numpy uint32")

    # Not vacuous: a good share of uniform random IPv4 addresses is routed ...
    hit_share = float((expected >= 0).mean())
    assert hit_share > 0.30, f"only {hit_share:.1%} of the queries matched"
    assert (expected == NO_MATCH).sum() > 10_000  # ... and a good share is not
    # ... many answers are a more-specific prefix inside a covering one (the LPM case) ...
    nested = _nested_hits(rv4.trees, texts, expected)
    assert nested > 10_000, f"only {nested} queries landed on a nested prefix"
    # ... and the answers are spread over many different values, not one.
    assert len(np.unique(expected[expected >= 0])) > 10_000


@pytest.mark.slow
def test_routeviews_v4_parallel_lookup_matches_pytricia(rv4: Loaded, rv4_queries) -> None:  # type: ignore[no-untyped-def]
    # Above half a million rows the compiled backend splits the column over threads.
    _, texts, expected = rv4_queries
    big = texts * 3
    got = rv4.table.lookup(pa.array(big, type=pa.string()), threads=4)
    _assert_same(got, np.tile(expected, 3), big, "RouteViews IPv4, 4 threads")
    chunked = pa.chunked_array([pa.array(texts[:100_000]), pa.array(texts[100_000:])])
    _assert_same(rv4.table.lookup(chunked), expected, texts, "RouteViews IPv4, chunked array")


@pytest.mark.slow
def test_routeviews_v4_prefix_boundaries_match_pytricia(rv4: Loaded) -> None:
    rng = random.Random(4)
    nets = [_net(p) for p, _ in rng.sample(rv4.pairs, 25_000)]
    texts = _v4_texts(np.array(_boundaries(nets), dtype=np.uint64))
    expected = _pytricia_lookup(rv4.trees, texts)
    got = rv4.table.lookup(pa.array(texts))
    _assert_same(got, expected, texts, "RouteViews IPv4, prefix boundaries")
    assert (expected >= 0).mean() > 0.5


@pytest.mark.slow
def test_routeviews_v4_python_twin_matches_compiled(rv4: Loaded, rv4_queries) -> None:  # type: ignore[no-untyped-def]
    _, texts, expected = rv4_queries
    twin = PrefixTable.from_pairs(rv4.pairs, backend="python")
    assert len(twin) == len(rv4.table)
    sample = texts[:5_000]
    compiled = rv4.table.lookup(pa.array(sample))
    _assert_same(twin.lookup(pa.array(sample)), compiled, sample, "RouteViews IPv4, python twin")
    _assert_same(compiled, expected[:5_000], sample, "RouteViews IPv4 sample, compiled")


# ---------------------------------------------------------------------------------------------
# RouteViews IPv6: 28,744 prefixes


@pytest.fixture(scope="module")
def rv6(shared_data: Path) -> Loaded:
    return _load(shared_data / "ip_prefixes" / "routeviews-rv6-20160202-1200.pfx2as.gz")


@pytest.fixture(scope="module")
def rv6_queries(rv6: Loaded) -> tuple[list[str], np.ndarray, int]:
    rng = random.Random(128)
    half = 110_000
    uniform = [rng.getrandbits(128) for _ in range(half)]
    inside = _random_inside(rng, [_net(p) for p, _ in rv6.pairs], half)
    values = uniform + inside
    texts = [_v6_text(v, i % 3) for i, v in enumerate(values)]
    return texts, _pytricia_lookup(rv6.trees, texts), half


@pytest.mark.slow
def test_routeviews_v6_table_loaded_completely(rv6: Loaded) -> None:
    assert len(rv6.pairs) == 28_744
    assert len(rv6.table) == 28_744 == len(rv6.trees[6])
    assert len(rv6.trees[4]) == 0


@pytest.mark.slow
def test_routeviews_v6_queries_match_pytricia(rv6: Loaded, rv6_queries) -> None:  # type: ignore[no-untyped-def]
    texts, expected, half = rv6_queries
    assert len(texts) >= 200_000
    got = rv6.table.lookup(pa.array(texts, type=pa.string()))
    _assert_same(got, expected, texts, "RouteViews IPv6")

    # The addresses drawn under a table prefix all match; most uniform ones do not.
    assert (expected[half:] >= 0).all()
    assert (expected[:half] == NO_MATCH).mean() > 0.5
    nested = _nested_hits(rv6.trees, texts, expected)
    assert nested > 5_000, f"only {nested} queries landed on a nested prefix"
    assert len(np.unique(expected[expected >= 0])) > 1_000


@pytest.mark.slow
def test_routeviews_v6_prefix_boundaries_match_pytricia(rv6: Loaded) -> None:
    nets = [_net(p) for p, _ in rv6.pairs]
    texts = [_v6_text(v, i % 3) for i, v in enumerate(_boundaries(nets))]
    expected = _pytricia_lookup(rv6.trees, texts)
    _assert_same(rv6.table.lookup(pa.array(texts)), expected, texts, "RouteViews IPv6, prefix boundaries")
    assert (expected >= 0).mean() > 0.5


@pytest.mark.slow
def test_routeviews_v6_python_twin_matches_compiled(rv6: Loaded, rv6_queries) -> None:  # type: ignore[no-untyped-def]
    texts, expected, half = rv6_queries
    twin = PrefixTable.from_pairs(rv6.pairs, backend="python")
    sample = texts[half - 2_500 : half + 2_500]  # half uniform, half inside a prefix
    compiled = rv6.table.lookup(pa.array(sample))
    _assert_same(compiled, expected[half - 2_500 : half + 2_500], sample, "RouteViews IPv6, compiled")
    _assert_same(twin.lookup(pa.array(sample)), compiled, sample, "RouteViews IPv6, python twin")
    assert (compiled >= 0).sum() >= 2_500


# ---------------------------------------------------------------------------------------------
# Azure service tags: 90,493 prefixes, 39,606 of them repeated under another tag


@pytest.fixture(scope="module")
def azure_path(shared_data: Path) -> Path:
    return shared_data / "ip_prefixes" / "azure_ServiceTags_Public.json"


@pytest.fixture(scope="module")
def azure(azure_path: Path) -> Loaded:
    return _load(azure_path)


@pytest.fixture(scope="module")
def azure_last_wins(azure: Loaded) -> dict[str, int]:
    """The plain-dict oracle: normalized prefix -> code of its last occurrence in the file."""
    return {str(_net(p)): code for p, code in azure.pairs}


class _BruteForce:
    """Longest match by comparing a query with every distinct prefix (vectorized per family)."""

    def __init__(self, last_wins: dict[str, int]) -> None:
        self.rows: dict[int, tuple[np.ndarray, ...]] = {}
        for family, bits in ((4, 32), (6, 128)):
            nets = [(_net(p), c) for p, c in last_wins.items() if _net(p).version == family]
            net_int = [int(n.network_address) for n, _ in nets]
            mask_int = [int(n.netmask) for n, _ in nets]
            self.rows[family] = (
                np.array([v >> 64 for v in net_int], dtype=np.uint64),
                np.array([v & (2**64 - 1) for v in net_int], dtype=np.uint64),
                np.array([v >> 64 for v in mask_int], dtype=np.uint64),
                np.array([v & (2**64 - 1) for v in mask_int], dtype=np.uint64),
                np.array([n.prefixlen for n, _ in nets], dtype=np.int64),
                np.array([c for _, c in nets], dtype=np.int64),
            )

    def lookup(self, text: str) -> int:
        addr = ipaddress.ip_address(text)
        net_hi, net_lo, mask_hi, mask_lo, length, code = self.rows[addr.version]
        q_hi, q_lo = np.uint64(int(addr) >> 64), np.uint64(int(addr) & (2**64 - 1))
        hit = ((q_hi & mask_hi) == net_hi) & ((q_lo & mask_lo) == net_lo)
        if not hit.any():
            return NO_MATCH
        best = np.flatnonzero(hit)[np.argmax(length[hit])]
        return int(code[best])


@pytest.fixture(scope="module")
def azure_queries(azure: Loaded) -> list[str]:
    rng = random.Random(90493)
    nets4 = [n for n in (_net(p) for p, _ in azure.pairs) if n.version == 4]
    nets6 = [n for n in (_net(p) for p, _ in azure.pairs) if n.version == 6]
    inside4 = _random_inside(rng, nets4, 60_000)
    inside6 = _random_inside(rng, nets6, 40_000)
    uniform4 = [rng.getrandbits(32) for _ in range(30_000)]
    uniform6 = [rng.getrandbits(128) for _ in range(10_000)]
    queries = _v4_texts(np.array(inside4 + uniform4, dtype=np.uint64))
    queries += [_v6_text(v, i % 3) for i, v in enumerate(inside6 + uniform6)]
    random.Random(1).shuffle(queries)
    return queries


def test_azure_table_size_is_distinct_prefixes(azure: Loaded, azure_last_wins: dict[str, int]) -> None:
    assert len(azure.pairs) == 90_493
    assert len(azure.pairs) - len(azure_last_wins) == 39_606  # the duplicates the MANIFEST counts
    assert len(azure.table) == len(azure_last_wins) == 50_887
    assert len(azure.trees[4]) + len(azure.trees[6]) == 50_887


def test_azure_nesting_depth(azure: Loaded) -> None:
    # MANIFEST: nested to depth 3, i.e. chains of three prefixes, each inside the one before.
    assert max(_nesting_levels(tree) for tree in azure.trees.values()) == 3


def test_azure_stored_values_are_last_added(azure: Loaded, azure_last_wins: dict[str, int]) -> None:
    # Every one of the 50,887 distinct prefixes holds the code of its last line in the file.
    assert dict(azure.table.prefixes()) == azure_last_wins


def test_azure_reversed_order_stores_first_occurrence(azure: Loaded) -> None:
    first_wins: dict[str, int] = {}
    for p, code in azure.pairs:
        first_wins.setdefault(str(_net(p)), code)
    reversed_table = PrefixTable.from_pairs(reversed(azure.pairs), backend="compiled")
    assert dict(reversed_table.prefixes()) == first_wins


@pytest.mark.slow
def test_azure_queries_match_pytricia(azure: Loaded, azure_queries: list[str]) -> None:
    expected = _pytricia_lookup(azure.trees, azure_queries)
    got = azure.table.lookup(pa.array(azure_queries, type=pa.string()))
    _assert_same(got, expected, azure_queries, "Azure service tags")
    assert (expected >= 0).mean() > 0.6
    assert sum(":" in q for q, e in zip(azure_queries, expected.tolist()) if e >= 0) > 30_000
    nested = _nested_hits(azure.trees, azure_queries, expected)
    assert nested > 1_000, f"only {nested} queries landed on a nested prefix"


def test_azure_queries_match_brute_force(
    azure: Loaded, azure_last_wins: dict[str, int], azure_queries: list[str]
) -> None:
    brute = _BruteForce(azure_last_wins)
    sample = azure_queries[:400]
    expected = np.array([brute.lookup(q) for q in sample], dtype=np.int32)
    _assert_same(azure.table.lookup(pa.array(sample)), expected, sample, "Azure vs brute force")
    # The two oracles agree with each other too.
    _assert_same(_pytricia_lookup(azure.trees, sample), expected, sample, "pytricia vs brute force")
    assert (expected >= 0).sum() > 200
    assert (expected == NO_MATCH).sum() > 20


def test_azure_python_twin_matches_compiled(azure: Loaded, azure_queries: list[str]) -> None:
    twin = PrefixTable.from_pairs(azure.pairs, backend="python")
    assert dict(twin.prefixes()) == dict(azure.table.prefixes())
    sample = azure_queries[-5_000:]
    compiled = azure.table.lookup(pa.array(sample))
    _assert_same(twin.lookup(pa.array(sample)), compiled, sample, "Azure, python twin")
    assert (compiled >= 0).sum() > 3_000


def _most_specific_address(tree: pytricia.PyTricia, prefix: str) -> str:
    """An address of `prefix` that no longer prefix of the tree covers (its last address works
    for the examples below; checked)."""
    address = str(_net(prefix).broadcast_address)
    assert tree.get_key(address) == prefix
    return address


def test_azure_duplicate_prefix_last_tag_wins(azure: Loaded) -> None:
    labels_of: dict[str, list[str]] = {}
    for p, code in azure.pairs:
        labels_of.setdefault(str(_net(p)), []).append(azure.labels[code])
    # A prefix listed under exactly two different tags, whose own addresses have no longer match.
    tree4 = azure.trees[4]
    prefix = next(
        p for p, tags in labels_of.items()
        if len(tags) == 2 and tags[0] != tags[1] and ":" not in p
        and tree4.get_key(str(_net(p).broadcast_address)) == p
    )
    first_tag, later_tag = labels_of[prefix]
    address = _most_specific_address(tree4, prefix)

    code = azure.table.lookup_one(address)
    assert azure.labels[code] == later_tag, (prefix, labels_of[prefix])

    reversed_table = PrefixTable.from_pairs(reversed(azure.pairs), backend="compiled")
    assert azure.labels[reversed_table.lookup_one(address)] == first_tag


def test_azure_known_duplicate_52_101_68_0(azure: Loaded, azure_path: Path) -> None:
    # The file lists 52.101.68.0/24 under AzureCloud.northeurope and, later, under AzureCloud.
    raw = read_ranges(azure_path)
    tags = [label for p, label in raw if p == "52.101.68.0/24"]
    assert tags == ["AzureCloud.northeurope", "AzureCloud"]
    assert azure.labels[azure.table.lookup_one("52.101.68.0")] == "AzureCloud"
    reversed_table = PrefixTable.from_pairs(reversed(azure.pairs), backend="compiled")
    assert azure.labels[reversed_table.lookup_one("52.101.68.0")] == "AzureCloud.northeurope"


# ---------------------------------------------------------------------------------------------
# Known answers from MANIFEST.md


def _indexed_table(path: Path) -> tuple[PrefixTable, list[str]]:
    """A table whose value is the index of the distinct prefix: lookups say *which* prefix matched."""
    distinct = list(dict.fromkeys(str(_net(p)) for p, _ in read_ranges(path)))
    return PrefixTable.from_pairs((p, i) for i, p in enumerate(distinct)), distinct


def test_known_answer_52_101_68_1(azure: Loaded, azure_path: Path, shared_data: Path) -> None:
    # MANIFEST: the longest Azure match is 52.101.68.0/24 (AzureCloud.northeurope). That prefix is
    # listed twice (AzureCloud.northeurope, then AzureCloud), and the table keeps the last one
    # added, so the tag returned is "AzureCloud"; the MANIFEST's tag is what the first listing
    # says (checked with the reversed build). The matched *prefix* is as the MANIFEST says.
    code = azure.table.lookup_one("52.101.68.1")
    assert azure.labels[code] == "AzureCloud"
    reversed_table = PrefixTable.from_pairs(reversed(azure.pairs), backend="compiled")
    assert azure.labels[reversed_table.lookup_one("52.101.68.1")] == "AzureCloud.northeurope"

    by_prefix, prefixes = _indexed_table(azure_path)
    assert prefixes[by_prefix.lookup_one("52.101.68.1")] == "52.101.68.0/24"
    # ... and it lies inside the Microsoft 365 Exchange range 52.100.0.0/14 (the Exchange list's
    # longest match; the all-Microsoft list has the /14 and, nested in it, the /24 again).
    m365, m365_prefixes = _indexed_table(
        shared_data / "ip_prefixes" / "natecohen_m365_worldwide_exchange_ip_cidr.txt"
    )
    assert m365_prefixes[m365.lookup_one("52.101.68.1")] == "52.100.0.0/14"
    lord_path = shared_data / "ip_prefixes" / "lord-alfred_microsoft_ipv4.txt"
    lord, lord_prefixes = _indexed_table(lord_path)
    assert lord_prefixes[lord.lookup_one("52.101.68.1")] == "52.101.68.0/24"
    assert "52.100.0.0/14" in lord_prefixes
    assert azure.trees[4].parent("52.101.68.0/24") == "52.100.0.0/14"
    assert azure.labels[azure.trees[4]["52.100.0.0/14"]] == "EOPExternalPublishedIPs"


def test_known_answer_104_47_41_33(azure: Loaded, shared_data: Path) -> None:
    assert azure.table.lookup_one("104.47.41.33") == NO_MATCH
    assert azure.trees[4].get("104.47.41.33", NO_MATCH) == NO_MATCH
    m365, m365_prefixes = _indexed_table(
        shared_data / "ip_prefixes" / "natecohen_m365_worldwide_exchange_ip_cidr.txt"
    )
    assert m365_prefixes[m365.lookup_one("104.47.41.33")] == "104.47.0.0/17"
    lord, _ = _indexed_table(shared_data / "ip_prefixes" / "lord-alfred_microsoft_ipv4.txt")
    assert lord.lookup_one("104.47.41.33") >= 0


def test_known_answer_40_107_23_54(azure: Loaded, azure_path: Path) -> None:
    code = azure.table.lookup_one("40.107.23.54")
    assert azure.labels[code] == "EOPExternalPublishedIPs"
    by_prefix, prefixes = _indexed_table(azure_path)
    assert prefixes[by_prefix.lookup_one("40.107.23.54")] == "40.107.0.0/16"
    # Same answer through the column API, next to the other two known answers.
    got = azure.table.lookup(pa.array(["40.107.23.54", "104.47.41.33", "52.101.68.1"]))
    assert [azure.labels[c] if c >= 0 else None for c in got.tolist()] == [
        "EOPExternalPublishedIPs", None, "AzureCloud",
    ]


# ---------------------------------------------------------------------------------------------
# ipverse countries: 243,034 disjoint prefixes, one right answer per address


@pytest.fixture(scope="module")
def ipverse(shared_data: Path) -> Loaded:
    return _load(shared_data / "ip_prefixes" / "ipverse_country_prefixes_v4v6.csv")


@pytest.mark.slow
def test_ipverse_prefixes_are_disjoint(ipverse: Loaded) -> None:
    assert len(ipverse.table) == len(ipverse.pairs) == 243_034
    for tree in ipverse.trees.values():
        nested = [k for k in tree.keys() if tree.parent(k) is not None]
        assert nested == []


@pytest.mark.slow
def test_ipverse_queries_match_pytricia(ipverse: Loaded) -> None:
    rng = random.Random(243034)
    nets6 = [n for n in (_net(p) for p, _ in ipverse.pairs) if n.version == 6]
    uniform4 = [rng.getrandbits(32) for _ in range(60_000)]
    global6 = [(0b001 << 125) | rng.getrandbits(125) for _ in range(20_000)]  # 2000::/3
    inside6 = _random_inside(rng, nets6, 20_000)
    queries = _v4_texts(np.array(uniform4, dtype=np.uint64))
    queries += [_v6_text(v, i % 3) for i, v in enumerate(global6 + inside6)]
    expected = _pytricia_lookup(ipverse.trees, queries)
    got = ipverse.table.lookup(pa.array(queries, type=pa.string()))
    _assert_same(got, expected, queries, "ipverse countries")
    assert (expected[:60_000] >= 0).mean() > 0.5
    assert (expected[80_000:] >= 0).all()
    assert len(np.unique(expected[expected >= 0])) > 150  # many countries answered
