"""The compiled CSV record scanner against its numpy twin and against the csv module."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.readers import _csv

_scan = pytest.importorskip("analyzer._scan").scan  # built by `pip install .`; CI checks it is


def test_compiled_scanner_is_in_use() -> None:
    assert _csv.SCANNER == "compiled"


# the long pieces put whole 8-byte words without quotes or line breaks (the scanner's fast path)
# inside and outside quotes, with separators anywhere in the word
PIECES = [b"a", b"bc", b",", b'"', b'""', b"\n", b"\r\n", b"\r", b"x,y", b'"q,\nr"', b"\xc3\xa9",
          b"abcdefghijklmnop", b"a,b,c,d,e,f,g,h,i", b",,,,,,,,,", b"\xff\x80\x7f,\x01\x00abcd"]


def _same(a: tuple, b: tuple) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a[:4], b[:4])) and a[4:] == b[4:]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES + [b"a;b\tc;", b"\t\t;;"]), max_size=40), st.booleans(),
       st.integers(1, 10**9), st.sampled_from([44, 59, 9]))
def test_compiled_equals_numpy_twin(pieces: list[bytes], final: bool, first_line: int, separator: int) -> None:
    data = b"".join(pieces)
    assert _same(_scan(data, first_line, separator, final), _csv.scan_numpy(data, first_line, separator, final))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=6), min_size=1,
                         max_size=4), min_size=1, max_size=8),
       st.sampled_from(["\n", "\r\n"]), st.integers(1, 4096))
def test_records_match_the_csv_module(rows: list[list[str]], newline: str, chunk: int) -> None:
    """Whatever the chunking, the scanner finds the records csv.writer wrote, with their lines.
    (No bare CR in the cells: csv.writer leaves a lone "\\r" cell unquoted, which no reader
    can tell from a line break.)"""
    buf = io.StringIO()
    csv.writer(buf, lineterminator=newline, quoting=csv.QUOTE_MINIMAL).writerows(rows)
    data = buf.getvalue().encode("utf-8")
    chunks = [data[i:i + chunk] for i in range(0, len(data), chunk)]
    found, lines, fields = [], [], []
    for recs in _csv.iter_records(iter(chunks)):
        for s, e, line, f in zip(recs.starts, recs.ends, recs.lines, recs.fields):
            found.append(recs.data[s:e].decode("utf-8"))
            lines.append(int(line))
            fields.append(int(f))
    written = buf.getvalue().split(newline)[:-1] if "\n" not in "".join(c for r in rows for c in r) else None
    parsed = list(csv.reader(io.StringIO(buf.getvalue(), newline="")))
    # blank records are csv's rows [""] written as an empty line or '""'
    assert len(found) == len(parsed)
    assert [len(r) for r in parsed] == fields
    expected_lines, line = [], 1
    for text in found:
        expected_lines.append(line)
        line += text.count("\n") + 1
    assert lines == expected_lines
    if written is not None:
        assert found == written


def test_carry_across_chunks_keeps_line_numbers() -> None:
    data = b'h1,h2\n1,"multi\nline"\n2,x\n3,"a ""q"" b"\n'
    for size in range(1, len(data) + 1):
        recs = list(_csv.iter_records(iter([data[i:i + size] for i in range(0, len(data), size)])))
        got = [(int(l), r.data[s:e]) for r in recs for s, e, l in zip(r.starts, r.ends, r.lines)]
        assert got == [(1, b"h1,h2"), (2, b'1,"multi\nline"'), (4, b"2,x"), (5, b'3,"a ""q"" b"')], size


def test_unterminated_last_record_and_unclosed_quote() -> None:
    starts, ends, lines, fields, consumed, newlines = _scan(b'a,b\nc,"d\ne', 1, 44, True)
    assert (starts.tolist(), ends.tolist(), lines.tolist(), fields.tolist()) == ([0, 4], [3, 10], [1, 2], [2, 2])
    assert (consumed, newlines) == (10, 2)
    # not final: the open record waits for more data
    starts, ends, lines, fields, consumed, newlines = _scan(b'a,b\nc,"d\ne', 1, 44, False)
    assert (starts.tolist(), consumed, newlines) == ([0], 4, 1)


def test_read_only_buffer_and_bad_separator() -> None:
    data = memoryview(b"a,b\n").toreadonly()
    assert _scan(data, 1, 44, True)[3].tolist() == [2]
    with pytest.raises(ValueError, match="separator must be one byte, got 300"):
        _scan(b"a", 1, 300, True)
