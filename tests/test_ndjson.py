"""NDJSON chunks read by polars with the types of their first rows: the compiled member-name
scan (`_scan.json_keys_within`) against Python's json, and the quick read against the read
that infers the types from every row."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.readers import _json

_scan = pytest.importorskip("analyzer._scan")  # CI checks it is built

names = st.sampled_from(["a", "b", "Size", "ToIP", "é", 'q"uote', "back\\slash", "{x}", "a,b", "c:d"])
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False, allow_infinity=False),
                    st.text(alphabet='ab{}[],:"\\é \t', max_size=6))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(names, inner, max_size=3)), max_leaves=6)
objects = st.dictionaries(names, values, max_size=5)


def _within(data: bytes, known: list[str]) -> bool:
    return _scan.json_keys_within(np.frombuffer(data, dtype=np.uint8), [k.encode() for k in known])


@settings(max_examples=500, deadline=None)
@given(st.lists(objects, max_size=8), st.lists(names, max_size=6), st.booleans())
def test_member_names_against_python_json(rows: list[dict], known: list[str], ascii_only: bool) -> None:
    data = "".join(json.dumps(row, ensure_ascii=ascii_only) + "\n" for row in rows).encode()
    expected = all(set(row) <= set(known) for row in rows)
    # a name written with an escape is never taken for a known one: the answer is then False
    escaped = any(("\\" in json.dumps(name, ensure_ascii=ascii_only)) for row in rows for name in row)
    assert _within(data, known) == (expected and not escaped)


def test_member_names_in_values_and_nested_objects_do_not_count() -> None:
    data = b'{"a": "x\\", \\"b\\": 1", "c": {"z": [1, {"q": 2}]}}\n{"c": null, "a": "{\\"d\\": 1}"}\n'
    assert _within(data, ["a", "c"])
    assert not _within(data + b'{"a": 1, "d": 2}\n', ["a", "c"])
    assert not _within(b'{"\\u0061": 1}\n', ["a"])  # escaped: not compared


def _assert_read_as_with_every_row(data: bytes) -> None:
    # what polars reads with the first rows' types equals what it reads with every row's, or
    # both refuse the chunk
    try:
        full = pl.read_ndjson(data, infer_schema_length=None)
    except pl.exceptions.PolarsError:
        with pytest.raises(pl.exceptions.PolarsError):
            _json._read_ndjson(data)
        return
    assert _json._read_ndjson(data).equals(full)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["a", "b", "c", "Size"]),
                                st.one_of(st.none(), st.booleans(), st.integers(-3, 3),
                                          st.floats(-2, 2, allow_nan=False), st.text(max_size=3)), max_size=4),
                max_size=6), st.integers(0, 3))
def test_the_quick_read_equals_the_read_of_every_row(tail: list[dict], head_kind: int) -> None:
    # a hundred and more rows of one shape, then rows that may add a member or change a type:
    # whatever polars reads with the first rows' types must equal what it reads with every row's
    head = [{"a": "x", "Size": 1}, {"a": "x", "b": True}, {"a": 1.5}, {"c": None, "a": "y"}][head_kind]
    data = "".join(json.dumps(row) + "\n" for row in [head] * 120 + tail).encode()
    _assert_read_as_with_every_row(data)


def test_a_member_first_seen_after_the_first_rows_is_kept() -> None:
    data = b'{"a": "x"}\n' * 150 + b'{"a": "y", "late": "kept"}\n'
    assert pl.read_ndjson(data, infer_schema_length=100).columns == ["a"]  # why the scan is needed
    assert _json._read_ndjson(data).get_column("late").to_list()[-1] == "kept"


@settings(max_examples=400, deadline=None)
@given(st.lists(st.fixed_dictionaries({"category": st.sampled_from(["EmailEvents", "Other"])},
                                      optional={"properties": st.one_of(objects, scalars), "b": values}),
                max_size=8),
       st.lists(names, max_size=6))
def test_the_properties_members_against_python_json(rows: list[dict], inner_known: list[str]) -> None:
    data = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()
    checked = [name for row in rows for name in [*row, *(row["properties"] if isinstance(row.get("properties"), dict)
                                                        else [])]]
    expected = (all(set(row) <= {"category", "properties", "b"} for row in rows)
                and all(set(row["properties"]) <= set(inner_known) for row in rows
                        if isinstance(row.get("properties"), dict))
                and not any("\\" in json.dumps(name, ensure_ascii=False) for name in checked))
    got = _scan.json_keys_within(np.frombuffer(data, dtype=np.uint8), [b"category", b"properties", b"b"],
                                 b"properties", [k.encode() for k in inner_known])
    assert got == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.fixed_dictionaries({"category": st.sampled_from(["AdvancedHunting-EmailEvents", "Other"]),
                                       "properties": st.dictionaries(st.sampled_from(["Subject", "Size", "x"]),
                                                                     st.one_of(st.none(), st.integers(0, 3),
                                                                               st.text(max_size=3),
                                                                               st.dictionaries(names, scalars,
                                                                                               max_size=2)),
                                                                     max_size=3)}), max_size=5))
def test_defender_chunks_read_quickly_equal_the_read_of_every_row(tail: list[dict]) -> None:
    head = {"category": "AdvancedHunting-EmailEvents", "properties": {"Subject": "s", "Size": 1}}
    data = "".join(json.dumps(row) + "\n" for row in [head] * 120 + tail).encode()
    _assert_read_as_with_every_row(data)


def test_a_properties_member_first_seen_late_is_kept() -> None:
    row = b'{"category": "AdvancedHunting-EmailEvents", "properties": {"Subject": "s"}}\n'
    late = b'{"category": "AdvancedHunting-EmailEvents", "properties": {"Subject": "t", "SenderIPv4": "192.0.2.1"}}\n'
    data = row * 150 + late
    frame = _json._read_ndjson(data).unnest("properties")
    assert frame.get_column("SenderIPv4").to_list()[-1] == "192.0.2.1"
