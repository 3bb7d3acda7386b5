"""Unit tests of the public PrefixTable API, on both backends, with exact error messages."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

import analyzer.matching as matching
from analyzer.errors import AnalyzerError, PrefixError
from analyzer.matching import EMPTY, NO_MATCH, NOT_AN_IP, PrefixTable

HINT = "hint: write a CIDR (192.0.2.0/24, 2001:db8::/32), a single address or a range a.b.c.d-e.f.g.h"


@pytest.fixture(params=["compiled", "python"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def table(backend: str) -> PrefixTable:
    return PrefixTable.from_pairs(
        [
            ("10.0.0.0/8", 1),
            ("10.1.0.0/16", 2),
            ("10.1.2.3", 3),
            ("2001:db8::/32", 4),
            ("2001:db8:1::/48", 5),
            ("192.0.2.10-192.0.2.20", 6),
            ("::ffff:198.51.100.0/120", 7),
        ],
        backend=backend,
    )


def test_backend_is_compiled_when_built() -> None:
    # .ci/run checks the same from outside the checkout; here it guards local runs too.
    assert matching.BACKEND == "compiled"
    assert PrefixTable().backend == "compiled"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("10.200.0.1", 1),
        ("10.1.200.1", 2),
        ("10.1.2.3", 3),
        ("10.1.2.4", 2),
        ("2001:db8::1", 4),
        ("2001:db8:1::ffff", 5),
        ("2001:DB8:0001:0000:0000:0000:0000:0001", 5),
        ("2001:db9::1", NO_MATCH),
        ("192.0.2.9", NO_MATCH),
        ("192.0.2.10", 6),
        ("192.0.2.20", 6),
        ("192.0.2.21", NO_MATCH),
        ("198.51.100.77", 7),  # an IPv4-mapped prefix is stored as IPv4
        ("::ffff:10.1.2.3", 3),  # IPv4-mapped queries match IPv4 prefixes
        ("::ffff:a01:203", 3),  # ... in hex form too
        ("  10.1.2.3\t", 3),
        ("[10.1.2.3]", 3),
        ("[2001:db8::1]", 4),
        ("2001:db8::1%eth0", 4),
        ("fe80::1%3", NO_MATCH),
        ("8.8.8.8", NO_MATCH),
        ("010.1.2.3", NOT_AN_IP),  # leading zeros are invalid, as in ipaddress
        ("10.1.2", NOT_AN_IP),
        ("10.1.2.3.4", NOT_AN_IP),
        ("256.1.2.3", NOT_AN_IP),
        ("2001:db8::1::2", NOT_AN_IP),
        ("2001:db8::1%", NOT_AN_IP),
        ("[]", NOT_AN_IP),
        ("[10.1.2.3", NOT_AN_IP),
        ("mail.contoso.com", NOT_AN_IP),
        ("", EMPTY),
        ("   ", EMPTY),
        (None, EMPTY),
    ],
)
def test_lookup_one(table: PrefixTable, text: str | None, code: int) -> None:
    assert table.lookup_one(text) == code
    assert table.lookup([text]).tolist() == [code]


def test_last_added_wins_and_len(backend: str) -> None:
    t = PrefixTable(backend=backend)
    t.add("192.0.2.0/24", 1)
    t.add("192.0.2.77/24", 2)  # host bits cleared: the same prefix, replaced
    t.add("2001:db8::/32", 3)
    assert len(t) == 2
    assert t.lookup_one("192.0.2.1") == 2
    assert list(t.prefixes()) == [("192.0.2.0/24", 2), ("2001:db8::/32", 3)]
    t.add("192.0.2.0/24", 5)
    assert t.lookup_one("192.0.2.1") == 5 and len(t) == 2


def test_prefixes_are_canonical_and_sorted(table: PrefixTable) -> None:
    assert list(table.prefixes()) == [
        ("10.0.0.0/8", 1),
        ("10.1.0.0/16", 2),
        ("10.1.2.3/32", 3),
        ("192.0.2.10/31", 6),
        ("192.0.2.12/30", 6),
        ("192.0.2.16/30", 6),
        ("192.0.2.20/32", 6),
        ("198.51.100.0/24", 7),
        ("2001:db8::/32", 4),
        ("2001:db8:1::/48", 5),
    ]
    assert len(table) == 10


def test_default_routes_and_host_routes(backend: str) -> None:
    t = PrefixTable.from_pairs(
        [("0.0.0.0/0", 0), ("::/0", 1), ("203.0.113.9/32", 2), ("2001:db8::9/128", 3)], backend=backend
    )
    assert t.lookup(["1.1.1.1", "203.0.113.9", "203.0.113.8", "::1", "2001:db8::9", "2001:db8::8"]).tolist() == [
        0, 2, 0, 1, 3, 1,
    ]
    # IPv4-mapped queries look in the IPv4 table only, never in ::/0.
    assert t.lookup_one("::ffff:1.1.1.1") == 0


def test_ranges_starting_at_zero_are_minimal(backend: str) -> None:
    # The decomposition's first block size at address 0 is the whole family (2**32, 2**128).
    t = PrefixTable.from_pairs(
        [("::-::1", 0), ("0.0.0.0-0.0.0.3", 1), ("::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 2)], backend=backend
    )
    assert list(t.prefixes()) == [("0.0.0.0/30", 1), ("::/0", 2), ("::/127", 0)]


def test_netmask_and_ranges(backend: str) -> None:
    t = PrefixTable(backend=backend)
    t.add("172.16.0.0/255.240.0.0", 1)
    t.add("2001:db8::1-2001:db8::4", 2)
    assert list(t.prefixes()) == [
        ("172.16.0.0/12", 1),
        ("2001:db8::1/128", 2),
        ("2001:db8::2/127", 2),
        ("2001:db8::4/128", 2),
    ]


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("", f"invalid prefix: expected an IP prefix, got an empty string; {HINT}"),
        ("10.0.0.0/33", "invalid prefix '10.0.0.0/33': expected a prefix length 0-32 or a contiguous "
                        f"netmask after '/', got '33'; {HINT}"),
        ("2001:db8::/129", "invalid prefix '2001:db8::/129': expected a prefix length 0-128 after '/', "
                           f"got '129'; {HINT}"),
        ("10.0.0.0/255.0.255.0", "invalid prefix '10.0.0.0/255.0.255.0': expected a prefix length 0-32 "
                                 f"or a contiguous netmask after '/', got '255.0.255.0'; {HINT}"),
        ("10.0.0.0/", "invalid prefix '10.0.0.0/': expected a prefix length 0-32 or a contiguous netmask "
                      f"after '/', got ''; {HINT}"),
        ("contoso.com", f"invalid prefix 'contoso.com': expected an IPv4 or IPv6 address, got text that is "
                        f"not one; {HINT}"),
        ("10.0.0.300/24", f"invalid prefix '10.0.0.300/24': expected an IPv4 or IPv6 address, got text "
                          f"that is not one; {HINT}"),
        ("10.0.0.9-10.0.0.1", "invalid range '10.0.0.9-10.0.0.1': expected first address <= last address, "
                              "got a range that runs backwards; hint: swap the two addresses"),
        ("10.0.0.1-2001:db8::1", "invalid range '10.0.0.1-2001:db8::1': expected two addresses of the same "
                                 f"family, got an IPv4 and an IPv6 address; {HINT}"),
    ],
)
def test_bad_prefix_messages(backend: str, prefix: str, message: str) -> None:
    t = PrefixTable(backend=backend)
    with pytest.raises(PrefixError) as info:
        t.add(prefix, 1)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError) and isinstance(info.value, AnalyzerError)
    assert len(t) == 0


def test_from_pairs_names_the_pair(backend: str) -> None:
    with pytest.raises(PrefixError) as info:
        PrefixTable.from_pairs([("10.0.0.0/8", 1), ("10.0.0.0/8\nX", 2)], backend=backend)
    # One line, even when the prefix text holds a newline.
    assert str(info.value) == (
        "invalid prefix '10.0.0.0/8\\nX': expected a prefix length 0-32 or a contiguous netmask after "
        f"'/', got '8\\nX' (pair 1); {HINT}"
    )


@pytest.mark.parametrize("value", [-1, 2**31 - 1, 2**40, 1.5, "3", None])
def test_bad_values(backend: str, value: object) -> None:
    with pytest.raises(PrefixError) as info:
        PrefixTable(backend=backend).add("10.0.0.0/8", value)  # type: ignore[arg-type]
    assert str(info.value) == (
        f"invalid prefix value: expected an integer 0..2147483646, got {value!r}; "
        "hint: negative codes are reserved for no match (-1), not an IP (-2), empty (-3)"
    )


def test_largest_value_round_trips(backend: str) -> None:
    t = PrefixTable.from_pairs([("10.0.0.0/8", 2**31 - 2), ("::/0", 0)], backend=backend)
    assert t.lookup(["10.0.0.1", "::1"]).tolist() == [2**31 - 2, 0]


def test_non_str_prefix_is_a_type_error(backend: str) -> None:
    with pytest.raises(TypeError, match="prefix must be str, not int"):
        PrefixTable(backend=backend).add(167772160, 1)  # type: ignore[arg-type]


VALUES = ["10.1.2.3", None, "bogus", "", "2001:db8:1::1", "192.0.2.15", "::ffff:10.9.9.9", "8.8.8.8"]
CODES = [3, EMPTY, NOT_AN_IP, EMPTY, 5, 6, 1, NO_MATCH]


@pytest.mark.parametrize(
    "make",
    [
        lambda: VALUES,
        lambda: tuple(VALUES),
        lambda: np.array(VALUES, dtype=object),
        lambda: pa.array(VALUES, pa.string()),
        lambda: pa.array(VALUES, pa.large_string()),
        lambda: pa.array(VALUES, pa.string_view()),
        lambda: pa.array([v.encode() if v is not None else None for v in VALUES], pa.binary()),
        lambda: pa.array(VALUES, pa.string()).dictionary_encode(),
        lambda: pa.chunked_array([pa.array(VALUES[:3]), pa.array([], pa.string()), pa.array(VALUES[3:])]),
        lambda: pa.chunked_array([pa.array(VALUES[:5], pa.string_view()), pa.array(VALUES[5:], pa.string_view())]),
        lambda: pl.Series(VALUES, dtype=pl.String),
        lambda: pl.Series(VALUES, dtype=pl.Categorical),
        lambda: pl.Series(["pad"] + VALUES)[1:],
        lambda: pl.Series(["pad"] + VALUES, dtype=pl.Categorical)[1:],
        lambda: pl.Series(VALUES, dtype=pl.Enum(sorted({v for v in VALUES if v is not None}))),
    ],
    ids=["list", "tuple", "numpy-object", "string", "large_string", "string_view", "binary", "dictionary",
         "chunked", "chunked-views", "polars-string", "polars-categorical", "polars-sliced",
         "polars-categorical-sliced", "polars-enum"],
)
def test_lookup_input_kinds(table: PrefixTable, make) -> None:  # type: ignore[no-untyped-def]
    out = table.lookup(make())
    assert out.dtype == np.int32
    assert out.tolist() == CODES


def test_polars_categorical_edge_cases(table: PrefixTable) -> None:
    assert table.lookup(pl.Series([None, None], dtype=pl.Categorical)).tolist() == [EMPTY, EMPTY]
    assert table.lookup(pl.Series([], dtype=pl.Categorical)).tolist() == []
    many = pl.Series(["10.1.2.3", "8.8.8.8", None] * 1000, dtype=pl.Categorical)
    assert table.lookup(many).tolist() == [3, NO_MATCH, EMPTY] * 1000


def test_lookup_sliced_arrow(table: PrefixTable) -> None:
    arr = pa.array(["pad", None, *VALUES, "10.1.2.3"])
    assert table.lookup(arr.slice(2, len(VALUES))).tolist() == CODES
    view = pa.array(["pad", "x" * 40, *VALUES], pa.string_view())
    assert table.lookup(view.slice(2)).tolist() == CODES
    dictionary = pa.array(["pad", *VALUES]).dictionary_encode()
    assert table.lookup(dictionary.slice(1)).tolist() == CODES


def test_lookup_uint32(table: PrefixTable) -> None:
    ints = np.array([0x0A010203, 0x0A010204, 0x08080808, 0xC000020A], dtype=np.uint32)
    assert table.lookup(ints).tolist() == [3, 2, NO_MATCH, 6]
    assert table.lookup(ints[::2]).tolist() == [3, NO_MATCH]  # strided views are fine


def test_lookup_rejects_other_inputs(table: PrefixTable) -> None:
    with pytest.raises(TypeError, match="must be uint32, not int64"):
        table.lookup(np.array([1, 2], dtype=np.int64))
    with pytest.raises(TypeError, match="must be String or Categorical, not Int64"):
        table.lookup(pl.Series([1, 2]))
    with pytest.raises(TypeError, match="expected str or None in the list, got int"):
        table.lookup(["10.0.0.1", 5])
    with pytest.raises(TypeError, match="expected a pyarrow array, polars Series"):
        table.lookup({"10.0.0.1": 1})
    with pytest.raises(TypeError, match="expected a string or binary Arrow array, got int64"):
        table.lookup(pa.array([1, 2]))


def test_dictionary_costs_distinct_values(backend: str) -> None:
    """Each distinct dictionary value is matched once; rows are only gathered."""
    t = PrefixTable.from_pairs([("10.0.0.0/8", 1)], backend=backend)
    calls: list[int] = []

    class Counting:
        """Forwards to the real core, counting the rows each text lookup is given."""

        def __init__(self, core: object) -> None:
            self.core = core

        def __getattr__(self, name: str) -> object:
            return getattr(self.core, name)

        def lookup_arrow(self, arr: pa.Array, out: np.ndarray) -> None:
            calls.append(len(arr))
            self.core.lookup_arrow(arr, out)  # type: ignore[attr-defined]

    t._core = Counting(t._core)  # type: ignore[assignment]
    dictionary = pa.array(["10.0.0.1", "8.8.8.8", None])
    column = pa.DictionaryArray.from_arrays(pa.array(np.tile(np.arange(3, dtype=np.int32), 100_000)), dictionary)
    out = t.lookup(column)
    assert calls == [3]
    assert out[:6].tolist() == [1, NO_MATCH, EMPTY, 1, NO_MATCH, EMPTY]
    # Chunks sharing one dictionary (record batches, Parquet row groups) match it once per call.
    calls.clear()
    chunked = pa.chunked_array([column.slice(0, 5), column.slice(5, 7), column.slice(12)])
    assert np.array_equal(t.lookup(chunked), out)
    assert calls == [3]


@pytest.mark.parametrize("index_type", [pa.int8(), pa.uint16(), pa.int32(), pa.uint32(), pa.int64()])
def test_dictionary_index_widths_and_null_indices(backend: str, index_type: pa.DataType) -> None:
    t = PrefixTable.from_pairs([("10.0.0.0/8", 1)], backend=backend)
    column = pa.DictionaryArray.from_arrays(pa.array([1, None, 0, 1], index_type), pa.array(["8.8.8.8", "10.1.1.1"]))
    assert t.lookup(column).tolist() == [1, EMPTY, NO_MATCH, 1]
    assert t.lookup(column.slice(1)).tolist() == [EMPTY, NO_MATCH, 1]


@pytest.mark.parametrize("bad_index", [2, -1])
def test_dictionary_index_outside_dictionary_raises(backend: str, bad_index: int) -> None:
    t = PrefixTable.from_pairs([("10.0.0.0/8", 1)], backend=backend)
    column = pa.DictionaryArray.from_buffers(
        pa.dictionary(pa.int32(), pa.string()), 3, [None, pa.array([0, bad_index, 1], pa.int32()).buffers()[1]],
        dictionary=pa.array(["8.8.8.8", "10.1.1.1"]),
    )
    with pytest.raises(ValueError, match="malformed Arrow dictionary array: index of row 1 is outside its dictionary"):
        t.lookup(column)


def test_threads_give_identical_answers(table: PrefixTable) -> None:
    rng = np.random.default_rng(7)
    ints = rng.integers(0x0A000000, 0x0A020000, 700_000, dtype=np.uint32)
    column = pa.array([f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}" for a in ints.tolist()])
    if table.backend == "python":
        column = column.slice(0, 20_000)
        ints = ints[:20_000]
    one = table.lookup(column, threads=1)
    two = table.lookup(column, threads=2)
    assert np.array_equal(one, two)
    assert np.array_equal(one, table.lookup(ints))
    assert set(np.unique(one).tolist()) <= {1, 2, 3}


def test_table_changes_after_lookup(backend: str) -> None:
    """Adding to a table that was already used recompiles it; earlier results stay as they were."""
    t = PrefixTable.from_pairs([("10.0.0.0/8", 1)], backend=backend)
    before = t.lookup(["10.1.1.1"])
    t.add("10.1.0.0/16", 2)
    assert before.tolist() == [1]
    assert t.lookup(["10.1.1.1"]).tolist() == [2]


def test_empty_table_and_inputs(backend: str) -> None:
    t = PrefixTable(backend=backend)
    assert len(t) == 0 and list(t.prefixes()) == []
    assert t.lookup(["1.2.3.4", "::1", None, "x"]).tolist() == [NO_MATCH, NO_MATCH, EMPTY, NOT_AN_IP]
    assert t.lookup([]).tolist() == []
    assert t.lookup(pa.array([], pa.string())).dtype == np.int32
    assert t.lookup(pa.nulls(3)).tolist() == [EMPTY] * 3
