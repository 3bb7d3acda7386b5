"""The compiled cell splitter (`analyzer._scan.fields`) against polars' CSV parser, its reference:
the same records give the same String columns, or the splitter declines and polars parses them."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from analyzer.readers import _csv
from analyzer.readers._compiled import needs_cleaning

_compiled = pytest.importorskip("analyzer._scan")  # built by `pip install .`; CI checks it is
fields, scan = _compiled.fields, _compiled.scan


def _records(data: bytes, separator: int = 44) -> tuple[np.ndarray, np.ndarray]:
    starts, ends, _, _, _, _ = scan(data, 1, separator, True)
    keep = ends > starts  # blank lines are not records (the readers skip them too)
    return starts[keep], ends[keep]


def _polars(data: bytes, starts: np.ndarray, ends: np.ndarray, width: int, keep: list[int],
            separator: str = ",") -> pl.DataFrame:
    # exactly what parse_batch asks polars for, on the records joined by line breaks
    body = b"\n".join(data[s:e] for s, e in zip(starts.tolist(), ends.tolist()))
    frame = pl.read_csv(body, has_header=False, columns=keep, infer_schema=False, separator=separator,
                        quote_char='"', empty_string_is_null=True, raise_if_empty=False,
                        truncate_ragged_lines=False)
    frame.columns = [f"c{i}" for i in keep]
    return frame


def _frame(columns: list[tuple], keep: list[int], n: int) -> pl.DataFrame:
    return pl.DataFrame([_csv._string_series(f"c{i}", n, *column[:4]) for i, column in zip(keep, columns)])


def _assert_cleaning_known(columns: list[tuple], frame: pl.DataFrame) -> None:
    # what the splitter learnt of each column is what a scan of the finished column says
    for column, series in zip(columns, frame.get_columns()):
        edge, empty = column[4:]
        assert (edge, empty > 0) == needs_cleaning(series), series.to_list()
        assert empty == (series == "").sum()
        if not edge:  # nothing to trim: trimming changes no value
            assert series.str.strip_chars().equals(series)


def test_cells_as_polars_reads_them() -> None:
    data = b'a,"b""c",,""\r\nx,"y,\r\nz",1,"2"\n'
    starts, ends = _records(data)
    columns = fields(data, starts, ends, np.arange(4), 4)
    got = _frame(columns, [0, 1, 2, 3], 2)
    assert got.rows() == [("a", 'b"c', None, ""), ("x", "y,\r\nz", "1", "2")]
    assert_frame_equal(got, _polars(data, starts, ends, 4, [0, 1, 2, 3]))
    views, values, validity, nulls, edge, empty = columns[2]
    assert (views.size, nulls, validity.tolist(), edge, empty) == (32, 1, [0b10], False, 0)
    assert [column[4:] for column in columns] == [(False, 0), (False, 0), (False, 0), (False, 1)]
    assert views[:16].tolist() == [0] * 16  # a null's view is all zeros
    assert views[16:].tolist() == [1, 0, 0, 0, ord("1")] + [0] * 11  # inline, zero-padded
    assert [bytes(column[1]) for column in columns] == [b""] * 4  # all inline: no data buffer
    assert columns[0][2] is None  # no nulls: no bitmap


def test_long_cells_go_to_the_data_buffer() -> None:
    data = b'id,"a subject longer than twelve ""bytes"" here",a plain cell of more than twelve bytes\n'
    starts, ends = _records(data)
    columns = fields(data, starts, ends, np.arange(3), 3)
    views, values = columns[2][:2]
    length, index, offset = (int.from_bytes(views[i:i + 4].tobytes(), "little") for i in (0, 8, 12))
    assert (length, index, offset, bytes(values)) == (38, 0, 0, b"a plain cell of more than twelve bytes")
    assert bytes(views[4:8]) == b"a pl"  # the prefix
    assert _frame(columns, [0, 1, 2], 1).rows() == [
        ("id", 'a subject longer than twelve "bytes" here', "a plain cell of more than twelve bytes")]


def test_cells_with_doubled_quotes_follow_each_other_in_their_buffer() -> None:
    # the short one is unescaped past the first, then goes inline: the second follows the first
    cells = ['"first ""quoted"" subject, long"', '"x""y"', '"second ""quoted"" subject, longer"']
    data = "\n".join(f"{i},{cell}" for i, cell in enumerate(cells)).encode() + b"\n"
    starts, ends = _records(data)
    columns = fields(data, starts, ends, np.array([1]), 2)
    assert bytes(columns[0][1]) == b'first "quoted" subject, longsecond "quoted" subject, longer'
    assert _frame(columns, [1], 3).get_column("c1").to_list() == [
        'first "quoted" subject, long', 'x"y', 'second "quoted" subject, longer']


def test_only_the_kept_columns_and_a_trailing_empty_cell() -> None:
    data = b'1,2,3,\n4,"5",6,7\n'
    starts, ends = _records(data)
    got = _frame(fields(data, starts, ends, np.array([1, 3]), 4), [1, 3], 2)
    assert got.rows() == [("2", None), ("5", "7")]


@pytest.mark.parametrize("record", [b'a"b,c', b'"a"b,c', b'"a,b', b"a\rb,c", b"a,b,c", b"a"])
def test_declines_what_polars_may_read_otherwise(record: bytes) -> None:
    # a quote or a line break in an unquoted cell, text after a closing quote, an unclosed
    # quote, another number of cells: None, and the caller hands the batch to polars
    assert fields(record, np.array([0]), np.array([len(record)]), np.array([0]), 2) is None


def test_parse_batch_uses_it_and_falls_back_to_polars() -> None:
    good = b'h1,h2\n1,"a ""q"""\n2,\n'
    starts, ends = _records(good)
    cleaning: dict[str, tuple[bool, bool]] = {}
    frame = _csv.parse_batch(good, starts[1:], ends[1:], ["h1", "h2"], cleaning=cleaning)
    assert frame.rows() == [("1", 'a "q"'), ("2", None)]
    assert cleaning == {"h1": (False, False), "h2": (False, False)}
    odd = b'h1,h2\n1,a"b\n'  # declined by the splitter: polars reads the stray quote as text
    starts, ends = _records(odd)
    learnt: dict[str, tuple[bool, bool]] = {}
    assert _csv.parse_batch(odd, starts[1:], ends[1:], ["h1", "h2"], cleaning=learnt).rows() == [("1", 'a"b')]
    assert learnt == {}  # polars parsed it: normalization scans the columns itself


def test_cleaning_learnt_on_the_way() -> None:
    # leading and trailing spaces, inside quotes too; an empty string (not a null); a non-ASCII
    # last byte (U+00A0 is whitespace) counts; a doubled quote at the edge is a quote, not a space
    data = ' a,"",x\n"b ",c,"\u00a0y"\nd,,"q"""\n'.encode()
    starts, ends = _records(data)
    cleaning: dict[str, tuple[bool, bool]] = {}
    frame = _csv.parse_batch(data, starts, ends, ["h1", "h2", "h3"], cleaning=cleaning)
    assert frame.rows() == [(" a", "", "x"), ("b ", "c", "\u00a0y"), ("d", None, 'q"')]
    assert cleaning == {"h1": (True, False), "h2": (False, True), "h3": (True, False)}
    assert {name: needs_cleaning(frame.get_column(name)) for name in frame.columns} == cleaning


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_polars_reads_only_the_records_given(newline: bytes) -> None:
    # the quotes inside an unquoted cell send the batch to polars; the ragged record, the comment and the blank
    # line between the records given must not come with them
    lines = [b"h1,h2", b'1,a"b"c', b"x,y,z", b"2,c", b"#note", b"3,d", b"", b"4,e", b"5,f"]
    data = newline.join(lines) + newline
    starts, ends, _, fields_, _, _ = scan(data, 1, 44, True)
    good = (fields_ == 2) & (ends > starts)
    good[0] = False  # the header
    good[4] = False  # the comment
    assert _csv.runs(data, starts[good], ends[good]) == [
        (int(starts[1]), int(ends[1])), (int(starts[3]), int(ends[3])), (int(starts[5]), int(ends[5])),
        (int(starts[7]), int(ends[8]))]
    frame = _csv.parse_batch(data, starts[good], ends[good], ["h1", "h2"])
    assert frame.rows() == [("1", 'a"b"c'), ("2", "c"), ("3", "d"), ("4", "e"), ("5", "f")]


def test_bad_arguments() -> None:
    one = np.array([0])
    with pytest.raises(ValueError, match="separator must be one byte other than a quote or a line break, got 34"):
        fields(b"a", one, np.array([1]), one, 1, 34)
    with pytest.raises(ValueError, match=r"keep must be increasing column indices below 2, got \[1, 0\]"):
        fields(b"a,b", one, np.array([3]), np.array([1, 0]), 2)
    with pytest.raises(ValueError, match=r"record 0 spans \[0, 9\), outside the 3 bytes of data"):
        fields(b"a,b", one, np.array([9]), one, 2)
    with pytest.raises(ValueError, match="1 starts but 2 ends"):
        fields(b"a,b", one, np.array([1, 2]), one, 2)
    data = memoryview(b"a,b").toreadonly()  # read-only buffers are accepted
    assert _frame(fields(data, one, np.array([3]), one, 2), [0], 1).rows() == [("a",)]


# cells as an export writes them: plain text, empty, or quoted (with separators, quotes, line
# breaks and non-ASCII inside); and odd ones a hand-edited file may hold
_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters='",;\r\n\t'), max_size=20)
_QUOTED_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


_WELL_FORMED = st.one_of(_TEXT.filter(bool), st.just(""), _QUOTED_TEXT.map(_quoted), _TEXT.map(lambda t: t * 5))
_ODD = st.one_of(_WELL_FORMED, st.sampled_from(['a"b', '"a"b', '"', 'x\ry', '""""', '"a""', ' "a"']))


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 6).flatmap(lambda w: st.tuples(st.just(w), st.lists(st.lists(_WELL_FORMED, min_size=w, max_size=w),
                                                                       min_size=1, max_size=12))),
       st.sampled_from([",", ";", "\t"]), st.sampled_from(["\n", "\r\n"]), st.data())
def test_well_formed_records_equal_polars(shape: tuple[int, list[list[str]]], separator: str, newline: str,
                                          data: st.DataObject) -> None:
    width, rows = shape
    keep = sorted(data.draw(st.sets(st.integers(0, width - 1), min_size=1)))
    text = newline.join(separator.join(row) for row in rows) + newline
    if any(all(c == "" for c in row) for row in rows) and width == 1:
        return  # a record of one empty cell is a blank line, which no reader keeps
    raw = text.encode("utf-8")
    starts, ends = _records(raw, ord(separator))
    columns = fields(raw, starts, ends, np.array(keep), width, ord(separator))
    assert columns is not None  # nothing odd: the splitter does not decline
    got = _frame(columns, keep, len(starts))
    assert_frame_equal(got, _polars(raw, starts, ends, width, keep, separator))
    _assert_cleaning_known(columns, got)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_ODD, min_size=3, max_size=3), min_size=1, max_size=8), st.data())
def test_whatever_it_does_not_decline_equals_polars(rows: list[list[str]], data: st.DataObject) -> None:
    keep = sorted(data.draw(st.sets(st.integers(0, 2), min_size=1)))
    raw = ("\n".join(",".join(row) for row in rows) + "\n").encode("utf-8")
    starts, ends = _records(raw)
    columns = fields(raw, starts, ends, np.array(keep), 3)
    if columns is None:
        return
    got = _frame(columns, keep, len(starts))
    assert_frame_equal(got, _polars(raw, starts, ends, 3, keep))
    _assert_cleaning_known(columns, got)
