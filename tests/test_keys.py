"""`_key`, the de-duplication hash (`readers.record_keys`): what makes two records the same
record, for every path that computes it (batches read from logs, Parquet inputs, lazily)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer import readers
from analyzer.readers import SCHEMA, record_keys

BASE = {
    "timestamp": dt.datetime(2026, 11, 10, 9, 30, tzinfo=dt.timezone.utc), "source_format": "exo_extended",
    "direction": "inbound", "event": "deliver", "status": "Delivered", "client_ip": "192.0.2.7",
    "server_ip": None, "sender": "a@example.net", "sender_domain": "example.net", "recipient": "u@contoso.com",
    "recipient_domain": "contoso.com", "message_id": "<m1@example.net>", "message_key": "k1", "subject": "s",
    "size_bytes": 100, "connector_name": None, "smtp_response": "250 2.1.5 OK", "smtp_code": 250,
    "enhanced_code": "2.1.5", "ms_code": None, "throttled_ip": None, "source_file": "a.csv", "source_line": 2,
}


def _frame(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame([{**BASE, **row} for row in rows], schema=SCHEMA)


def _keys(*rows: dict) -> list[int]:
    return record_keys(_frame(*rows)).to_list()


def test_where_a_record_was_read_is_not_part_of_it() -> None:
    first, second = _keys({}, {"source_file": "b.csv", "source_line": 900})
    assert first == second


@pytest.mark.parametrize("column, value", [
    ("timestamp", dt.datetime(2026, 11, 10, 9, 30, 0, 1, tzinfo=dt.timezone.utc)), ("status", "Failed"),
    ("recipient", "v@contoso.com"), ("subject", "s "), ("size_bytes", 101), ("smtp_code", 550),
    ("message_key", "k2"), ("client_ip", None), ("server_ip", ""),
])
def test_any_other_column_tells_two_records_apart(column: str, value: object) -> None:
    first, second = _keys({}, {column: value})
    assert first != second


def test_null_and_empty_and_shifted_text_differ() -> None:
    keys = _keys({"subject": None}, {"subject": ""}, {"subject": "ab", "status": "c"},
                 {"subject": "a", "status": "bc"})
    assert len(set(keys)) == 4


def test_trace_summaries_are_one_record_per_trace_recipient_and_time() -> None:
    # a later export shows a newer status for the same row (Microsoft's own rule)
    trace = {"source_format": "exo_trace"}
    same = _keys({**trace, "status": "Pending"}, {**trace, "status": "Delivered", "size_bytes": 5})
    assert same[0] == same[1]
    other = _keys({**trace, "recipient": "v@contoso.com"}, {**trace, "message_key": "k2"})
    assert len({same[0], *other}) == 3


def test_a_mixed_frame_keys_each_row_by_its_own_format() -> None:
    rows = [{"source_format": "exo_trace", "status": "Pending"}, {}, {"source_format": None},
            {"source_format": "exo_trace", "status": "Delivered"}, {"subject": "x"}]
    mixed = _keys(*rows)
    assert mixed == [_keys(row)[0] for row in rows]
    assert mixed[0] == mixed[3]


def test_the_lazy_expression_gives_the_same_keys() -> None:
    frame = _frame({}, {"source_format": "exo_trace"}, {"subject": None}, {"source_format": None})
    lazy = frame.lazy().with_columns(readers._key_expr().alias("_key")).collect(engine="streaming")
    assert lazy.get_column("_key").to_list() == record_keys(frame).to_list()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["exo_trace", "exo_extended", "postfix", None]),
                          st.sampled_from(["Delivered", "Failed", None]),
                          st.sampled_from(["u@contoso.com", "v@contoso.com", ""]),
                          st.sampled_from(["s", "t", None]), st.integers(0, 2),
                          st.sampled_from(["a.csv", "b.csv"])), min_size=1, max_size=30))
def test_equal_keys_exactly_for_the_same_record(rows: list[tuple]) -> None:
    def same(a: tuple, b: tuple) -> bool:
        # what `_key` covers: the trace columns for trace summaries, every column but where the
        # record was read (the file, the line) otherwise
        fmt, status, recipient, subject, second, _ = a
        if fmt != b[0]:
            return False
        if fmt == "exo_trace":
            return (recipient, second) == (b[2], b[4])
        return a[:5] == b[:5]

    frame = _frame(*[{"source_format": fmt, "status": status, "recipient": recipient, "subject": subject,
                      "timestamp": BASE["timestamp"] + dt.timedelta(seconds=second), "source_file": file}
                     for fmt, status, recipient, subject, second, file in rows])
    keys = record_keys(frame).to_list()
    for i, a in enumerate(rows):
        for j, b in enumerate(rows):
            assert (keys[i] == keys[j]) == same(a, b), (a, b)
