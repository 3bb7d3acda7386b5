"""The readers' compiled column helpers against their polars twins: the ISO 8601 timestamp parser
against polars' strptime, the trim-and-blank check against polars' strip_chars."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.readers import _compiled

_scan = pytest.importorskip("analyzer._scan")  # CI checks it is built
iso_timestamps = _scan.iso_timestamps


def test_compiled_parser_is_in_use() -> None:
    assert _compiled._iso_timestamps is iso_timestamps


def _stamp(d: dt.datetime, fraction: str, zone: str, sep: str) -> str:
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}{sep}{d.hour:02d}:{d.minute:02d}:{d.second:02d}{fraction}{zone}"


near_iso = st.builds(
    _stamp,
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59)),
    st.one_of(st.just(""), st.just("."), st.text("0123456789", min_size=1, max_size=11).map(lambda d: "." + d)),
    st.sampled_from(["", "Z", "z", "ZZ", " ", "+01:00"]),
    st.sampled_from(["T", "T", "T", " ", "t"]),
)


def _mutate(text: str, position: int, char: str) -> str:
    i = position % (len(text) + 1)
    return text[:i] + char + text[i + 1:]


texts = st.one_of(
    near_iso,
    # one character changed anywhere: impossible months, days, hours, stray letters, leap days
    st.builds(_mutate, near_iso, st.integers(0, 40), st.sampled_from(list("0123459:-.TZ x/"))),
    st.text(max_size=32),
)


@settings(max_examples=600, deadline=None)
@given(st.lists(st.one_of(st.none(), texts), max_size=30))
def test_fast_path_equals_polars_strptime(values: list[str | None]) -> None:
    series = pl.Series(values, dtype=pl.String)
    # as integers: polars also reads year 0, which Python's datetime cannot hold
    fast, reference = _compiled.iso_timestamps(series), _compiled.iso_polars(series)
    assert fast.cast(pl.Int64).to_list() == reference.cast(pl.Int64).to_list()


@settings(max_examples=300, deadline=None)
@given(near_iso)
def test_compiled_parser_takes_the_plain_form_and_agrees(text: str) -> None:
    arr = pl.Series([text]).to_arrow()
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[: 2]
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)
    micros, ok = iso_timestamps(offsets, data)
    expected = _compiled.iso_polars(pl.Series([text])).cast(pl.Int64)[0]
    if ok[0]:
        assert micros[0] == expected
    plain = ("T" in text and text.rstrip("Z").count(".") <= 1 and len(text.rstrip("Z")) != 20
             and len(text.rstrip("Z")) <= 29 and text.count("Z") <= 1 and " " not in text and "+" not in text
             and "z" not in text and "t" not in text)
    if plain:  # the form every export writes: the compiled parser must take it, not pass it on
        assert ok[0]


def test_leap_days_impossible_dates_and_the_60th_second() -> None:
    values = ["2024-02-29T12:00:00", "2023-02-29T12:00:00", "2100-02-29T00:00:00", "2000-02-29T00:00:00",
              "2026-04-31T00:00:00", "2026-13-01T00:00:00", "2026-12-31T24:00:00", "2026-12-31T23:59:60",
              "2026-11-01T13:07:28.2457980Z", "1969-12-31T23:59:59.9"]
    got = _compiled.iso_timestamps(pl.Series(values)).to_list()
    assert got[0] == dt.datetime(2024, 2, 29, 12)
    assert got[1] is None and got[2] is None
    assert got[3] == dt.datetime(2000, 2, 29)
    assert got[4] is None and got[5] is None and got[6] is None
    assert got[8] == dt.datetime(2026, 11, 1, 13, 7, 28, 245798)  # 100 ns ticks truncated
    assert got[9] == dt.datetime(1969, 12, 31, 23, 59, 59, 900000)
    assert got == _compiled.iso_polars(pl.Series(values)).to_list()


def test_offsets_outside_the_data_are_refused() -> None:
    with pytest.raises(ValueError, match=r"offsets\[1\] = 9 is outside the data \(4 bytes\) or decreasing"):
        iso_timestamps(np.array([0, 9], dtype=np.int64), np.frombuffer(b"2026", dtype=np.uint8))


def test_sliced_and_chunked_columns() -> None:
    values = pl.concat([pl.Series(["2026-01-01T00:00:00", None]), pl.Series(["x", "2026-01-02T00:00:00Z"])],
                       rechunk=False)
    assert _compiled.iso_timestamps(values.slice(1, 3)).to_list() == [None, None, dt.datetime(2026, 1, 2)]


# ---- needs_cleaning

pieces = st.sampled_from(["", " ", "a", "abc", "\t", "\u00a0", "\u3000", "é", "x" * 13, "y" * 40, "\n", "z\r"])
values = st.lists(st.one_of(st.none(), st.lists(pieces, max_size=4).map("".join)), max_size=40)


@settings(max_examples=600, deadline=None)
@given(values, st.integers(0, 5))
def test_needs_cleaning_never_misses_a_value_to_trim_or_a_blank(items: list[str | None], start: int) -> None:
    series = pl.Series(items, dtype=pl.String)
    series = series.slice(min(start, len(items)))  # a slice starts at a view offset
    trim, blank = _compiled.needs_cleaning(series)
    stripped = series.str.strip_chars()
    assert blank == bool((series == "").any())
    if not trim:  # "no" must be right; "yes" may be conservative
        assert stripped.equals(series)
    if all(v is None or (v.isascii() and v == v.strip(" \t\n\r\x0b\x0c")) for v in series.to_list()):
        assert not trim  # plain ASCII values are never sent to be trimmed for nothing


def test_needs_cleaning_reads_long_values_through_their_buffer() -> None:
    long = "m" * 30
    assert _compiled.needs_cleaning(pl.Series([long, long + " "])) == (True, False)
    assert _compiled.needs_cleaning(pl.Series([long, " " + long])) == (True, False)
    assert _compiled.needs_cleaning(pl.Series([long, None, ""])) == (False, True)
    assert _compiled.needs_cleaning(pl.Series([long, None])) == (False, False)


def test_edge_space_refuses_views_outside_their_buffers() -> None:
    view = np.zeros(16, dtype=np.uint8)
    view[:4] = np.frombuffer(np.int32(20).tobytes(), dtype=np.uint8)  # 20 bytes in buffer 0 at 0
    with pytest.raises(ValueError, match=r"view 0 points outside its buffer \(buffer 0, offset 0, length 20\)"):
        _scan.edge_space(view, [b"short"])
    with pytest.raises(ValueError, match="not a whole number of 16-byte views"):
        _scan.edge_space(np.zeros(15, dtype=np.uint8), [])


# ---- culture timestamps: the compiled parser and its fallback against polars' strptime chain

from analyzer.readers._dates import _CULTURE_FORMATS  # noqa: E402


def _culture(a: int, b: int, year: int, hour: int, minute: int, second: int, pads: tuple[bool, bool, bool],
             sep: str, clock: str, ampm: str, seconds: bool) -> str:
    field = lambda v, pad: f"{v:02d}" if pad else str(v)  # noqa: E731
    time = f"{field(hour, pads[2])}:{minute:02d}" + (f":{second:02d}" if seconds else "")
    return f"{field(a, pads[0])}{sep}{field(b, pads[1])}{sep}{year:04d}{clock}{time}{ampm}"


near_culture = st.builds(
    _culture, st.integers(0, 32), st.integers(0, 32), st.integers(0, 9999), st.integers(0, 25),
    st.integers(0, 61), st.integers(0, 61), st.tuples(st.booleans(), st.booleans(), st.booleans()),
    st.sampled_from(["/", "/", ".", "-", ":"]), st.sampled_from([" ", " ", "  ", "T"]),
    st.sampled_from(["", "", " AM", " PM", " am", " pM", "AM", " A", " AMX"]), st.booleans(),
)
culture_texts = st.one_of(
    near_culture,
    st.builds(_mutate, near_culture, st.integers(0, 24), st.sampled_from(list("0123459:/.- APMx"))),
    st.text(max_size=24),
)


@settings(max_examples=800, deadline=None)
@given(st.lists(st.one_of(st.none(), culture_texts), max_size=30), st.sampled_from(["mdy", "dmy"]))
def test_culture_fast_path_equals_polars_strptime(values: list[str | None], order: str) -> None:
    series = pl.Series(values, dtype=pl.String)
    formats = _CULTURE_FORMATS[order]
    fast = _compiled.culture_timestamps(series, formats, order == "dmy")
    assert fast.cast(pl.Int64).to_list() == _compiled.culture_polars(series, formats).cast(pl.Int64).to_list()


@settings(max_examples=300, deadline=None)
@given(near_culture, st.sampled_from(["mdy", "dmy"]))
def test_culture_compiled_parser_agrees_wherever_it_reads(text: str, order: str) -> None:
    arr = pl.Series([text]).to_arrow()
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[:2]
    micros, ok = _scan.culture_timestamps(offsets, np.frombuffer(arr.buffers()[2], dtype=np.uint8), order == "dmy")
    expected = _compiled.culture_polars(pl.Series([text]), _CULTURE_FORMATS[order]).cast(pl.Int64)[0]
    if ok[0]:
        assert micros[0] == expected


def test_the_plain_culture_forms_are_read_compiled() -> None:
    # what Get-MessageTrace exports write (en-US) and the 24-hour European forms: none of them
    # may be left to the slow path
    cases = {"mdy": ["11/8/2026 7:17:05 AM", "1/31/2026 12:00:00 PM", "12/31/2026 12:59:59 am", "2/29/2024 23:00",
                     "02/03/2026 4:05 PM"],
             "dmy": ["08.11.2026 17:05:00", "31/01/2026 00:00:00", "1-2-2026 13:14:15", "29.02.2024 23:59",
                     "8/11/2026 7:17:05 PM"]}
    for order, values in cases.items():
        arr = pl.Series(values).to_arrow()
        offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[: len(values) + 1]
        micros, ok = _scan.culture_timestamps(offsets, np.frombuffer(arr.buffers()[2], dtype=np.uint8),
                                              order == "dmy")
        assert ok.all(), (order, [v for v, good in zip(values, ok) if not good])
        expected = _compiled.culture_polars(pl.Series(values), _CULTURE_FORMATS[order]).cast(pl.Int64).to_list()
        assert micros.tolist() == expected
    got = _compiled.culture_timestamps(pl.Series(["11/8/2026 7:17:05 PM", "13/8/2026 1:00 PM", None]),
                                       _CULTURE_FORMATS["mdy"], False).to_list()
    assert got == [dt.datetime(2026, 11, 8, 19, 17, 5), None, None]
