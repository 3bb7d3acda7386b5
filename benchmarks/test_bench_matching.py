"""PrefixTable against every competitor, in the same run, on the same data.

One benchmark group per scenario (see README.md). Each test times exactly one competitor with
``benchmark.pedantic`` and records ``extra_info``: ``key`` (stable id used by ratios.py),
``competitor`` (human label), ``lookups`` (queries per call, for lookups/s; per-row competitors
get fewer queries than vectorized ones, so only per-lookup rates are comparable) and
``baseline`` (the row the group's ratios are taken against).

Answers are checked outside the timed call, so a ``--benchmark-disable`` smoke run still proves
that every competitor agrees with PrefixTable on the real tables.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pytest
import pytricia
import radix
from pytest_benchmark.fixture import BenchmarkFixture

from analyzer.matching import PrefixTable

if TYPE_CHECKING:  # conftest is not importable at run time under --import-mode=importlib
    from conftest import Competitors, DictionaryColumn, IntervalSearch, Sizes

# Rounds per benchmark: few, so the suite stays around two minutes on a 2-core machine.
FAST_ROUNDS = 5  # calls of ~10-150 ms
SLOW_ROUNDS = 3  # Python per-row loops and the pure-Python twin, ~0.2-0.5 s per call
CORES = len(os.sched_getaffinity(0))


def run(
    benchmark: BenchmarkFixture,
    fn: Callable[[], Any],
    *,
    key: str,
    competitor: str,
    lookups: int,
    rounds: int = FAST_ROUNDS,
    baseline: bool = False,
) -> Any:
    """Time `fn` (one untimed warm-up round first) and label the result for ratios.py."""
    benchmark.extra_info.update(key=key, competitor=competitor, lookups=lookups, baseline=baseline)
    return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)


def assert_agrees(got: Sequence[int] | np.ndarray, expected: np.ndarray, queries: pa.Array, who: str) -> None:
    """`got` must equal PrefixTable's answers for the first ``len(got)`` queries."""
    got = np.asarray(got, dtype=np.int64)
    expected = expected[: len(got)]
    bad = np.flatnonzero(got != expected)
    if len(bad):
        row = int(bad[0])
        raise AssertionError(
            f"{who}: {len(bad)} of {len(got)} answers differ from PrefixTable; first at row {row}: "
            f"{queries[row].as_py()!r} -> {got[row]}, PrefixTable says {expected[row]}"
        )


def assert_hit_rate(expected: np.ndarray, low: float, high: float) -> None:
    """Guard against a degenerate query set (e.g. everything missing) making agreement trivial."""
    assert (expected >= -1).all(), "every query is a valid address: no -2/-3 codes expected"
    rate = float((expected >= 0).mean())
    assert low <= rate <= high, f"hit rate {rate:.3f} outside the expected [{low}, {high}]"


def pytricia_loop(tree: pytricia.PyTricia, queries: list[str]) -> list[int]:
    """The per-row baseline most Python code would write."""
    get = tree.get
    return [get(ip, -1) for ip in queries]


def radix_loop(tree: radix.Radix, queries: list[str]) -> list[int]:
    search_best = tree.search_best
    out = []
    for ip in queries:
        node = search_best(ip)
        out.append(-1 if node is None else node.data["v"])
    return out


# --------------------------------------------------------------------------------------------
# 1. Full RouteViews IPv4 table, IPv4 text
# --------------------------------------------------------------------------------------------

IPV4 = pytest.mark.benchmark(group="ipv4-routeviews")


@IPV4
def test_ipv4_prefixtable_one_thread(
    benchmark: BenchmarkFixture,
    v4: Competitors,
    v4_queries: pa.Array,
    v4_expected: np.ndarray,
    v4_intervals: IntervalSearch,
) -> None:
    got = run(benchmark, lambda: v4.table.lookup(v4_queries, threads=1), key="prefixtable-1t",
              competitor="PrefixTable compiled, 1 thread", lookups=len(v4_queries), baseline=True)
    np.testing.assert_array_equal(got, v4_expected)
    assert_hit_rate(got, 0.3, 0.95)
    # The interval search shares no code with PrefixTable: agreement on every query is the
    # independent check of the reference answers the other tests compare against.
    assert_agrees(v4_intervals.lookup_text(v4_queries), got, v4_queries, "interval search")


@IPV4
def test_ipv4_prefixtable_default_threads(
    benchmark: BenchmarkFixture,
    v4: Competitors,
    v4_queries: pa.Array,
    v4_expected: np.ndarray,
) -> None:
    got = run(benchmark, lambda: v4.table.lookup(v4_queries), key="prefixtable-mt",
              competitor=f"PrefixTable compiled, default threads ({CORES} cores)", lookups=len(v4_queries))
    assert_agrees(got, v4_expected, v4_queries, "PrefixTable, default threads")


@IPV4
def test_ipv4_interval_search(
    benchmark: BenchmarkFixture,
    v4_intervals: IntervalSearch,
    v4_queries: pa.Array,
    v4_expected: np.ndarray,
) -> None:
    got = run(benchmark, lambda: v4_intervals.lookup_text(v4_queries), key="interval-search",
              competitor="polars str.splitn parse + numpy searchsorted", lookups=len(v4_queries))
    assert_agrees(got, v4_expected, v4_queries, "interval search")


@IPV4
def test_ipv4_pytricia_loop(
    benchmark: BenchmarkFixture,
    v4: Competitors,
    v4_queries: pa.Array,
    v4_expected: np.ndarray,
    sizes: Sizes,
) -> None:
    queries = v4_queries.slice(0, sizes.per_row).to_pylist()
    got = run(benchmark, lambda: pytricia_loop(v4.tricia, queries), key="pytricia",
              competitor="pytricia get() per-row loop", lookups=len(queries), rounds=SLOW_ROUNDS)
    assert_agrees(got, v4_expected, v4_queries, "pytricia")


@IPV4
def test_ipv4_radix_loop(
    benchmark: BenchmarkFixture,
    v4: Competitors,
    v4_queries: pa.Array,
    v4_expected: np.ndarray,
    sizes: Sizes,
) -> None:
    queries = v4_queries.slice(0, sizes.per_row).to_pylist()
    got = run(benchmark, lambda: radix_loop(v4.radix, queries), key="radix",
              competitor="py-radix search_best() per-row loop", lookups=len(queries), rounds=SLOW_ROUNDS)
    assert_agrees(got, v4_expected, v4_queries, "py-radix")


@IPV4
def test_ipv4_python_twin(
    benchmark: BenchmarkFixture,
    v4_twin: PrefixTable,
    v4_queries: pa.Array,
    v4_expected: np.ndarray,
    sizes: Sizes,
) -> None:
    queries = v4_queries.slice(0, sizes.twin)
    got = run(benchmark, lambda: v4_twin.lookup(queries), key="twin",
              competitor="PrefixTable pure-Python twin", lookups=len(queries), rounds=SLOW_ROUNDS)
    assert_agrees(got, v4_expected, v4_queries, "pure-Python twin")


# --------------------------------------------------------------------------------------------
# 2. Full RouteViews IPv4 table, uint32 queries (no parsing on either side)
# --------------------------------------------------------------------------------------------

IPV4_INT = pytest.mark.benchmark(group="ipv4-int")


@IPV4_INT
def test_ipv4_int_prefixtable(
    benchmark: BenchmarkFixture,
    v4: Competitors,
    v4_query_ints: np.ndarray,
    v4_queries: pa.Array,
    v4_expected: np.ndarray,
) -> None:
    got = run(benchmark, lambda: v4.table.lookup(v4_query_ints), key="prefixtable-u32",
              competitor="PrefixTable compiled, uint32", lookups=len(v4_query_ints), baseline=True)
    # Same addresses as the text queries, so the integer path must give the text path's answers.
    assert_agrees(got, v4_expected, v4_queries, "PrefixTable uint32")


@IPV4_INT
def test_ipv4_int_searchsorted(
    benchmark: BenchmarkFixture,
    v4_intervals: IntervalSearch,
    v4_query_ints: np.ndarray,
    v4_queries: pa.Array,
    v4_expected: np.ndarray,
) -> None:
    got = run(benchmark, lambda: v4_intervals.lookup_ints(v4_query_ints), key="interval-search",
              competitor="numpy searchsorted on intervals", lookups=len(v4_query_ints))
    assert_agrees(got, v4_expected, v4_queries, "numpy searchsorted")


# --------------------------------------------------------------------------------------------
# 3. Full RouteViews IPv6 table, IPv6 text
# --------------------------------------------------------------------------------------------

IPV6 = pytest.mark.benchmark(group="ipv6-routeviews")


@IPV6
def test_ipv6_prefixtable_one_thread(
    benchmark: BenchmarkFixture,
    v6: Competitors,
    v6_queries: pa.Array,
    v6_expected: np.ndarray,
    sizes: Sizes,
) -> None:
    got = run(benchmark, lambda: v6.table.lookup(v6_queries, threads=1), key="prefixtable-1t",
              competitor="PrefixTable compiled, 1 thread", lookups=len(v6_queries), baseline=True)
    np.testing.assert_array_equal(got, v6_expected)
    # Nearly all of the half aimed into the table hits; almost none of the uniform half does.
    assert_hit_rate(got, 0.4, 0.6)


@IPV6
def test_ipv6_pytricia_loop(
    benchmark: BenchmarkFixture,
    v6: Competitors,
    v6_queries: pa.Array,
    v6_expected: np.ndarray,
    sizes: Sizes,
) -> None:
    queries = v6_queries.slice(0, sizes.per_row).to_pylist()
    got = run(benchmark, lambda: pytricia_loop(v6.tricia, queries), key="pytricia",
              competitor="pytricia get() per-row loop", lookups=len(queries), rounds=SLOW_ROUNDS)
    assert_agrees(got, v6_expected, v6_queries, "pytricia")


@IPV6
def test_ipv6_radix_loop(
    benchmark: BenchmarkFixture,
    v6: Competitors,
    v6_queries: pa.Array,
    v6_expected: np.ndarray,
    sizes: Sizes,
) -> None:
    queries = v6_queries.slice(0, sizes.per_row).to_pylist()
    got = run(benchmark, lambda: radix_loop(v6.radix, queries), key="radix",
              competitor="py-radix search_best() per-row loop", lookups=len(queries), rounds=SLOW_ROUNDS)
    assert_agrees(got, v6_expected, v6_queries, "py-radix")


# --------------------------------------------------------------------------------------------
# 4. Connector-sized table (1,000 IPv4 + 50 IPv6 prefixes), IPv4 text, ~half hits
# --------------------------------------------------------------------------------------------

CONNECTOR = pytest.mark.benchmark(group="connector-table")


@CONNECTOR
def test_connector_prefixtable_one_thread(
    benchmark: BenchmarkFixture,
    connector: Competitors,
    connector_queries: pa.Array,
    connector_expected: np.ndarray,
) -> None:
    got = run(benchmark, lambda: connector.table.lookup(connector_queries, threads=1), key="prefixtable-1t",
              competitor="PrefixTable compiled, 1 thread", lookups=len(connector_queries), baseline=True)
    np.testing.assert_array_equal(got, connector_expected)
    assert_hit_rate(got, 0.45, 0.55)


@CONNECTOR
def test_connector_pytricia_loop(
    benchmark: BenchmarkFixture,
    connector: Competitors,
    connector_queries: pa.Array,
    connector_expected: np.ndarray,
    sizes: Sizes,
) -> None:
    # pytricia trees hold one family; the queries are all IPv4, so the IPv4 tree answers them all.
    queries = connector_queries.slice(0, sizes.per_row).to_pylist()
    got = run(benchmark, lambda: pytricia_loop(connector.tricia, queries), key="pytricia",
              competitor="pytricia get() per-row loop", lookups=len(queries), rounds=SLOW_ROUNDS)
    assert_agrees(got, connector_expected, connector_queries, "pytricia")


@CONNECTOR
def test_connector_radix_loop(
    benchmark: BenchmarkFixture,
    connector: Competitors,
    connector_queries: pa.Array,
    connector_expected: np.ndarray,
    sizes: Sizes,
) -> None:
    queries = connector_queries.slice(0, sizes.per_row).to_pylist()
    got = run(benchmark, lambda: radix_loop(connector.radix, queries), key="radix",
              competitor="py-radix search_best() per-row loop", lookups=len(queries), rounds=SLOW_ROUNDS)
    assert_agrees(got, connector_expected, connector_queries, "py-radix")


# --------------------------------------------------------------------------------------------
# 5. Low-cardinality column: cost should follow the distinct values, not the rows
# --------------------------------------------------------------------------------------------

DICTIONARY = pytest.mark.benchmark(group="dictionary")


@DICTIONARY
def test_dictionary_decoded_strings(
    benchmark: BenchmarkFixture,
    v4: Competitors,
    dictionary_column: DictionaryColumn,
    dictionary_expected: np.ndarray,
) -> None:
    column = dictionary_column.decoded
    got = run(benchmark, lambda: v4.table.lookup(column, threads=1), key="decoded-1t",
              competitor="PrefixTable, plain string array (decoded), 1 thread", lookups=len(column),
              baseline=True)
    np.testing.assert_array_equal(got, dictionary_expected)
    assert_hit_rate(got, 0.3, 0.95)


@DICTIONARY
def test_dictionary_arrow(
    benchmark: BenchmarkFixture,
    v4: Competitors,
    dictionary_column: DictionaryColumn,
    dictionary_expected: np.ndarray,
) -> None:
    column = dictionary_column.arrow_dict
    got = run(benchmark, lambda: v4.table.lookup(column, threads=1), key="dict-arrow",
              competitor=f"PrefixTable, pyarrow dictionary ({len(column.dictionary):,} distinct)",
              lookups=len(column))
    assert_agrees(got, dictionary_expected, dictionary_column.decoded, "PrefixTable on a dictionary array")


@DICTIONARY
def test_dictionary_polars_categorical(
    benchmark: BenchmarkFixture,
    v4: Competitors,
    dictionary_column: DictionaryColumn,
    dictionary_expected: np.ndarray,
) -> None:
    column = dictionary_column.categorical
    got = run(benchmark, lambda: v4.table.lookup(column, threads=1), key="dict-polars",
              competitor="PrefixTable, polars Categorical", lookups=len(column))
    assert_agrees(got, dictionary_expected, dictionary_column.decoded, "PrefixTable on a polars Categorical")


def test_twin_is_the_python_backend(v4_twin: PrefixTable) -> None:
    """The twin rows above measure the pure-Python core, not the compiled one by accident."""
    assert v4_twin.backend == "python"
