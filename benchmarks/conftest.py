"""Session fixtures for the matching benchmarks: prefix tables, competitor structures, query sets.

Everything here is built once per session and never timed. The timed code lives in
``test_bench_matching.py``. Query sets are random addresses from fixed seeds, so every run (and
every competitor within a run) sees the same data.

With ``--benchmark-disable`` (the smoke run) the per-row competitors, the pure-Python twin and the
dictionary scenario get smaller query sets; the tables are always the full real ones, so the
smoke run still checks every competitor against `PrefixTable` on real data.
"""

from __future__ import annotations

import atexit
import functools
import ipaddress
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
import pytricia
import radix

import analyzer.matching
from analyzer.matching import PrefixTable
from analyzer.ranges import label_codes, read_ranges

DATA_ENV = "MAILFLOW_SHARED_DATA"
ROUTEVIEWS_V4 = "ip_prefixes/routeviews-rv2-20160202-1200.pfx2as.gz"
ROUTEVIEWS_V6 = "ip_prefixes/routeviews-rv6-20160202-1200.pfx2as.gz"

SEED = 20160202  # the RouteViews snapshot date; any fixed value would do
U64_MAX = np.iinfo(np.uint64).max


# --------------------------------------------------------------------------------------------
# Where the data is, and how big the run is
# --------------------------------------------------------------------------------------------


def shared_data_dir() -> Path:
    """``shared/data`` beside the checkout, or ``$MAILFLOW_SHARED_DATA``.

    CI runs in a fresh clone elsewhere with ``shared/`` laid beside it, hence the path relative
    to this file rather than to the working directory.
    """
    override = os.environ.get(DATA_ENV)
    path = Path(override) if override else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    missing = [name for name in (ROUTEVIEWS_V4, ROUTEVIEWS_V6) if not (path / name).is_file()]
    if missing:
        # Not a skip: a benchmark run without the real tables would report numbers for nothing.
        raise RuntimeError(
            f"benchmark data not found: {', '.join(missing)} missing under {path}; "
            f"set {DATA_ENV} to the folder holding ip_prefixes/"
        )
    return path


@dataclass(frozen=True)
class Sizes:
    """How many queries each kind of competitor gets in this run."""

    queries: int  # vectorized competitors (PrefixTable, polars/numpy interval search)
    per_row: int  # pytricia / py-radix Python loops: a prefix of the same query set
    twin: int  # the pure-Python PrefixTable backend
    dict_rows: int  # rows of the dictionary-encoded column
    dict_distinct: int  # distinct addresses in it


FULL = Sizes(queries=1_000_000, per_row=200_000, twin=20_000, dict_rows=5_000_000, dict_distinct=2_000)
# The smoke run keeps 1M vectorized queries: above PrefixTable's 512k-row threshold, so the
# multi-threaded path is still exercised and checked; only the slow Python loops shrink.
SMOKE = Sizes(queries=1_000_000, per_row=10_000, twin=2_000, dict_rows=200_000, dict_distinct=2_000)


@pytest.fixture(scope="session")
def smoke(pytestconfig: pytest.Config) -> bool:
    """True under ``--benchmark-disable``: every benchmarked function runs once, untimed."""
    return bool(pytestconfig.getoption("benchmark_disable"))


@pytest.fixture(scope="session")
def sizes(smoke: bool) -> Sizes:
    return SMOKE if smoke else FULL


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return shared_data_dir()


def pytest_configure(config: pytest.Config) -> None:
    # `mailflow analyze` children keep per-day partials in a cache: a throwaway one, so a
    # benchmark neither reads an earlier run's partials nor fills the user's ~/.cache
    if "MAILFLOW_CACHE_DIR" not in os.environ:
        os.environ["MAILFLOW_CACHE_DIR"] = tempfile.mkdtemp(prefix="mailflow-bench-cache-")
        atexit.register(shutil.rmtree, os.environ["MAILFLOW_CACHE_DIR"], True)


def pytest_report_header(config: pytest.Config) -> str:
    return (
        f"mailflow-analyzer matching backend: {analyzer.matching.BACKEND} "
        f"({analyzer.matching.__file__}); usable cores: {len(os.sched_getaffinity(0))}"
    )


# --------------------------------------------------------------------------------------------
# Address text, vectorized (Python-level formatting of millions of addresses takes seconds)
# --------------------------------------------------------------------------------------------


def ipv4_text(addresses: np.ndarray) -> pa.Array:
    """Dotted-quad text of uint32 addresses, as a pyarrow ``string`` array."""
    octets = [
        pl.Series(((addresses >> shift) & 0xFF).astype(np.uint8)).cast(pl.String) for shift in (24, 16, 8, 0)
    ]
    text = pl.select(pl.concat_str([pl.lit(o) for o in octets], separator=".")).to_series()
    return text.to_arrow().cast(pa.string())


@functools.cache
def _hextet_text() -> pl.Series:
    """``"0"`` .. ``"ffff"``: the text of every hextet value, indexed by the value."""
    return pl.Series([f"{i:x}" for i in range(1 << 16)])


def ipv6_text(hi: np.ndarray, lo: np.ndarray) -> pa.Array:
    """Canonical (RFC 5952) text of 128-bit addresses given as two uint64 halves.

    Hextets are formatted through a 65,536-entry lookup table; only the rare addresses with a run
    of two or more zero hextets (which need ``::``) go through `ipaddress`.
    """
    hextets = np.stack(
        [
            ((half >> np.uint64(shift)) & np.uint64(0xFFFF)).astype(np.int64)
            for half in (hi, lo)
            for shift in (48, 32, 16, 0)
        ],
        axis=1,
    )
    columns = [_hextet_text().gather(hextets[:, j]) for j in range(8)]
    text = pl.select(pl.concat_str([pl.lit(c) for c in columns], separator=":")).to_series()
    zero = hextets == 0
    needs_compression = np.flatnonzero((zero[:, :-1] & zero[:, 1:]).any(axis=1))
    if len(needs_compression):
        fixed = [
            ipaddress.IPv6Address((int(hi[i]) << 64) | int(lo[i])).compressed for i in needs_compression
        ]
        text = text.scatter(needs_compression, fixed)
    return text.to_arrow().cast(pa.string())


def random_u64(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` uniform 64-bit values."""
    return rng.integers(0, U64_MAX, n, dtype=np.uint64, endpoint=True)


# --------------------------------------------------------------------------------------------
# Competitor structures
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Competitors:
    """One prefix table as held by each library under test (all built from the same pairs)."""

    table: PrefixTable  # compiled backend
    tricia: pytricia.PyTricia  # one family only (pytricia cannot mix families in one tree)
    radix: radix.Radix  # py-radix holds both families in one tree


def build_competitors(pairs: list[tuple[str, int]], tricia_bits: int) -> Competitors:
    """Build every competitor's table from `pairs`; pytricia gets the `tricia_bits` family only."""
    tricia = pytricia.PyTricia(tricia_bits)
    rtree = radix.Radix()
    for prefix, value in pairs:
        # Later duplicates overwrite earlier ones in all three, as PrefixTable documents.
        if (":" in prefix) == (tricia_bits == 128):
            tricia[prefix] = value
        rtree.add(prefix).data["v"] = value
    return Competitors(PrefixTable.from_pairs(pairs, backend="compiled"), tricia, rtree)


def parse_ipv4(text: pl.Series) -> pl.Series:
    """Dotted quads to UInt32 with polars string ops; null unless exactly 4 octets of 0..255.

    Lazy on purpose: polars then splits each string once and runs the octet casts in parallel;
    the same expressions evaluated eagerly re-split per octet and take about 5x longer.
    """
    octets = [pl.col(f"field_{i}").cast(pl.UInt8, strict=False).cast(pl.UInt32) for i in range(4)]
    address = octets[0] * 16_777_216 + octets[1] * 65_536 + octets[2] * 256 + octets[3]
    return (
        pl.LazyFrame({"ip": text})
        .select(pl.col("ip").str.splitn(".", 5).struct.unnest())  # field_4: text past a 4th dot
        .select(pl.when(pl.col("field_4").is_null()).then(address).alias("address"))
        .collect()
        .to_series()
    )


class IntervalSearch:
    """The "no trie" competitor: nested IPv4 prefixes flattened into sorted disjoint intervals.

    Interval ``i`` is ``[starts[i], starts[i + 1])`` and every address in it has longest-match
    value ``values[i]`` (-1 where no prefix covers it). ``starts[0] == 0``, so
    ``searchsorted(starts, q, "right") - 1`` is always a valid index and a lookup is one
    vectorized binary search plus a gather. Building the intervals is setup, never timed.
    """

    def __init__(self, starts: np.ndarray, values: np.ndarray) -> None:
        self.starts = starts  # uint32, ascending, starts[0] == 0
        self.values = values  # int32

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, int]]) -> IntervalSearch:
        """Flatten IPv4 ``(prefix, value)`` pairs; the last duplicate of a prefix wins."""
        prefixes = pl.DataFrame({"prefix": [p for p, _ in pairs]}).select(
            pl.col("prefix").str.split_exact("/", 1).struct.unnest()
        )
        parsed = parse_ipv4(prefixes["field_0"])
        if parsed.null_count():
            raise ValueError("IntervalSearch takes IPv4 prefixes only")
        network = parsed.to_numpy().astype(np.int64)
        length = prefixes["field_1"].cast(pl.Int64).to_numpy()
        start = network & ~((1 << (32 - length)) - 1)  # clear host bits, as PrefixTable does
        frame = pl.DataFrame({
            "start": start,
            "end": start + (1 << (32 - length)),
            "length": length,
            "value": np.array([v for _, v in pairs], dtype=np.int64),
        })
        frame = frame.unique(subset=["start", "length"], keep="last", maintain_order=True)
        frame = frame.sort(["start", "length"])  # enclosing prefixes before the ones inside them

        # Sweep in address order. `stack` holds the prefixes enclosing the current point,
        # innermost last; prefixes never partially overlap, so it always stays properly nested.
        points: list[int] = [0]
        values: list[int] = [-1]

        def emit(point: int, value: int) -> None:
            if point == points[-1]:
                values[-1] = value  # a zero-width interval: the inner prefix's value replaces it
            else:
                points.append(point)
                values.append(value)

        stack: list[tuple[int, int]] = []  # (end, value)

        def close_until(point: int) -> None:
            # Leaving a prefix hands the addresses after it back to the one enclosing it.
            while stack and stack[-1][0] <= point:
                end, _ = stack.pop()
                emit(end, stack[-1][1] if stack else -1)

        for s, e, v in zip(frame["start"].to_list(), frame["end"].to_list(), frame["value"].to_list()):
            close_until(s)
            stack.append((e, v))
            emit(s, v)
        close_until(1 << 32)

        starts = np.array(points, dtype=np.int64)
        vals = np.array(values, dtype=np.int32)
        inside = starts < (1 << 32)  # a boundary at 2**32 only closes the last interval
        starts, vals = starts[inside], vals[inside]
        keep = np.concatenate(([True], vals[1:] != vals[:-1]))  # merge equal neighbours
        return cls(starts[keep].astype(np.uint32), vals[keep])

    def lookup_ints(self, addresses: np.ndarray) -> np.ndarray:
        """Longest-match values of uint32 addresses (-1: no match)."""
        return self.values[np.searchsorted(self.starts, addresses, side="right") - 1]

    def lookup_text(self, text: pa.Array) -> np.ndarray:
        """Parse dotted quads with polars string ops, then `lookup_ints`; -2 where unparsable.

        Unlike PrefixTable this accepts nothing but bare dotted quads (no IPv6, no whitespace,
        no IPv4-mapped forms): it is the cheapest honest vectorized parse, not a full one.
        """
        parsed = parse_ipv4(pl.from_arrow(text))
        out = self.lookup_ints(parsed.fill_null(0).to_numpy())
        if parsed.null_count():
            out[parsed.is_null().to_numpy()] = -2
        return out


# --------------------------------------------------------------------------------------------
# RouteViews tables
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def v4_pairs(shared_data: Path) -> list[tuple[str, int]]:
    """The 615,842 RouteViews IPv4 prefixes, valued by origin-AS label code."""
    coded, _ = label_codes(read_ranges(shared_data / ROUTEVIEWS_V4))
    return coded


@pytest.fixture(scope="session")
def v6_pairs(shared_data: Path) -> list[tuple[str, int]]:
    """The 28,744 RouteViews IPv6 prefixes, valued by origin-AS label code."""
    coded, _ = label_codes(read_ranges(shared_data / ROUTEVIEWS_V6))
    return coded


@pytest.fixture(scope="session")
def v4(v4_pairs: list[tuple[str, int]]) -> Competitors:
    return build_competitors(v4_pairs, 32)


@pytest.fixture(scope="session")
def v6(v6_pairs: list[tuple[str, int]]) -> Competitors:
    return build_competitors(v6_pairs, 128)


@pytest.fixture(scope="session")
def v4_twin(v4_pairs: list[tuple[str, int]]) -> PrefixTable:
    """The same IPv4 table on the pure-Python backend."""
    return PrefixTable.from_pairs(v4_pairs, backend="python")


@pytest.fixture(scope="session")
def v4_intervals(v4_pairs: list[tuple[str, int]]) -> IntervalSearch:
    return IntervalSearch.from_pairs(v4_pairs)


# --------------------------------------------------------------------------------------------
# Query sets
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def v4_query_ints(sizes: Sizes) -> np.ndarray:
    """Uniform-random IPv4 addresses over the whole 32-bit space."""
    rng = np.random.default_rng([SEED, 4])
    return rng.integers(0, 1 << 32, sizes.queries, dtype=np.uint64).astype(np.uint32)


@pytest.fixture(scope="session")
def v4_queries(v4_query_ints: np.ndarray) -> pa.Array:
    return ipv4_text(v4_query_ints)


@pytest.fixture(scope="session")
def v4_expected(v4: Competitors, v4_queries: pa.Array) -> np.ndarray:
    """PrefixTable's single-threaded answers: every competitor is checked against them."""
    return v4.table.lookup(v4_queries, threads=1)


@pytest.fixture(scope="session")
def v6_queries(v6_pairs: list[tuple[str, int]], sizes: Sizes) -> pa.Array:
    """IPv6 queries, half uniform over all 2**128 addresses, half aimed into the table.

    Uniform addresses almost all fall outside 2000::/3 and end at the top level of any trie,
    which alone would flatter every competitor. So the other half lies inside 2000::/3 with its
    first 48 bits taken from a random table prefix (bits beyond a prefix shorter than /48 are
    random within it) and the remaining 80 bits uniform: these walk down to /48 depth and into
    the longer prefixes below. The two halves are interleaved in random order.
    """
    rng = np.random.default_rng([SEED, 6])
    n_uniform = sizes.queries // 2
    n_deep = sizes.queries - n_uniform

    networks = [ipaddress.IPv6Network(p, strict=False) for p, _ in v6_pairs]
    global_unicast = ipaddress.IPv6Network("2000::/3")
    networks = [n for n in networks if n.subnet_of(global_unicast)]
    top48 = np.array([int(n.network_address) >> 80 for n in networks], dtype=np.uint64)
    free_bits = np.array([max(0, 48 - n.prefixlen) for n in networks], dtype=np.uint64)
    free_mask = (np.uint64(1) << free_bits) - np.uint64(1)

    pick = rng.integers(0, len(networks), n_deep)
    deep_top = top48[pick] | (random_u64(rng, n_deep) & free_mask[pick])
    deep_hi = (deep_top << np.uint64(16)) | (random_u64(rng, n_deep) & np.uint64(0xFFFF))

    hi = np.concatenate([random_u64(rng, n_uniform), deep_hi])
    lo = random_u64(rng, sizes.queries)
    order = rng.permutation(sizes.queries)
    return ipv6_text(hi[order], lo[order])


@pytest.fixture(scope="session")
def v6_expected(v6: Competitors, v6_queries: pa.Array) -> np.ndarray:
    return v6.table.lookup(v6_queries, threads=1)


# --------------------------------------------------------------------------------------------
# Connector-sized table
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def connector_pairs() -> list[tuple[str, int]]:
    """1,000 random IPv4 prefixes /24../32 and 50 IPv6 prefixes /32../64, over 25 connectors."""
    rng = np.random.default_rng([SEED, 1000])
    lengths = rng.integers(24, 33, 1000)
    host_bits = (32 - lengths).astype(np.uint64)
    nets = rng.integers(0, 1 << 32, 1000, dtype=np.uint64) & ~((np.uint64(1) << host_bits) - np.uint64(1))
    pairs = [
        (f"{ipaddress.IPv4Address(n)}/{length}", i % 25)
        for i, (n, length) in enumerate(zip(nets.tolist(), lengths.tolist()))
    ]
    for i, (bits, length) in enumerate(zip(random_u64(rng, 50).tolist(), rng.integers(32, 65, 50).tolist())):
        net = ipaddress.IPv6Network(((0x2001 << 112) | (bits << 48), length), strict=False)  # 2001::/16
        pairs.append((str(net), i % 25))
    return pairs


@pytest.fixture(scope="session")
def connector(connector_pairs: list[tuple[str, int]]) -> Competitors:
    return build_competitors(connector_pairs, 32)


@pytest.fixture(scope="session")
def connector_queries(connector_pairs: list[tuple[str, int]], sizes: Sizes) -> pa.Array:
    """IPv4 text queries: half inside a random table prefix, half uniform (nearly all misses)."""
    rng = np.random.default_rng([SEED, 25])
    v4_nets = [ipaddress.IPv4Network(p) for p, _ in connector_pairs if ":" not in p]
    starts = np.array([int(n.network_address) for n in v4_nets], dtype=np.uint64)
    host_mask = np.array([n.num_addresses - 1 for n in v4_nets], dtype=np.uint64)
    n_hit = sizes.queries // 2
    pick = rng.integers(0, len(v4_nets), n_hit)
    hits = starts[pick] | (rng.integers(0, 1 << 32, n_hit, dtype=np.uint64) & host_mask[pick])
    uniform = rng.integers(0, 1 << 32, sizes.queries - n_hit, dtype=np.uint64)
    addresses = np.concatenate([hits, uniform])[rng.permutation(sizes.queries)].astype(np.uint32)
    return ipv4_text(addresses)


@pytest.fixture(scope="session")
def connector_expected(connector: Competitors, connector_queries: pa.Array) -> np.ndarray:
    return connector.table.lookup(connector_queries, threads=1)


# --------------------------------------------------------------------------------------------
# Dictionary-encoded column
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DictionaryColumn:
    """One low-cardinality column in three encodings."""

    arrow_dict: pa.DictionaryArray  # int32 indices into the distinct addresses
    decoded: pa.Array  # the same rows as a plain string array
    categorical: pl.Series  # the same rows as a polars Categorical


@pytest.fixture(scope="session")
def dictionary_column(sizes: Sizes) -> DictionaryColumn:
    """`dict_rows` rows drawn uniformly from `dict_distinct` random IPv4 addresses."""
    rng = np.random.default_rng([SEED, 2000])
    distinct = ipv4_text(rng.integers(0, 1 << 32, sizes.dict_distinct, dtype=np.uint64).astype(np.uint32))
    indices = pa.array(rng.integers(0, sizes.dict_distinct, sizes.dict_rows).astype(np.int32))
    arrow_dict = pa.DictionaryArray.from_arrays(indices, distinct)
    decoded = distinct.take(indices)
    categorical = pl.from_arrow(arrow_dict)
    assert isinstance(categorical, pl.Series) and categorical.dtype == pl.Categorical
    return DictionaryColumn(arrow_dict, decoded, categorical)


@pytest.fixture(scope="session")
def dictionary_expected(v4: Competitors, dictionary_column: DictionaryColumn) -> np.ndarray:
    return v4.table.lookup(dictionary_column.decoded, threads=1)
