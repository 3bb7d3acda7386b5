"""Streaming CSV: quote-aware record boundaries, line numbers and field counts found over each
chunk, then the well-formed records of a batch cut into String columns in one call.

Polars parses fast but cannot say on which line a record started (quoted subjects span lines)
nor which rows were ragged. A vectorized pass finds both: a newline ends a record when an even
number of quotes precede it; commas outside quotes count the fields. Ragged records become
rejects with their line. The rest are cut into the columns a format needs by the compiled
splitter (`analyzer._scan.fields`), which reads cells as polars does and declines any batch
with odd quoting; those, and every batch when the core is not built, go to
``polars.read_csv`` untouched.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

_QUOTE, _NL, _CR, _HASH = 34, 10, 13, 35


@dataclass
class Records:
    """Complete records of one chunk: byte spans in `data` (without the line break) and the
    1-based line where each starts, and how many fields it has."""

    data: bytes
    starts: np.ndarray
    ends: np.ndarray
    lines: np.ndarray
    fields: np.ndarray


def scan_numpy(data: bytes, first_line: int, separator: int = 44, final: bool = False
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Pure-Python (numpy) twin of ``analyzer._scan.scan``: complete records of `data` as
    ``(starts, ends, lines, fields, consumed, newlines)``; `ends` exclude the line break."""
    arr = np.frombuffer(data, dtype=np.uint8)
    quotes = np.flatnonzero(arr == _QUOTE)
    newlines = np.flatnonzero(arr == _NL)
    # a newline ends a record when the quotes before it pair up
    ends = newlines[(np.searchsorted(quotes, newlines) & 1) == 0]
    starts = np.concatenate(([0], ends + 1)).astype(np.int64)
    if final and len(data) and (not ends.size or ends[-1] + 1 < len(data)):
        ends = np.concatenate((ends, [len(data)]))
    else:
        starts = starts[:-1]
    consumed = len(data) if final else (int(ends[-1]) + 1 if ends.size else 0)
    lines = first_line + np.searchsorted(newlines, starts)
    ends = ends.astype(np.int64)
    if ends.size:
        cr = (arr[np.clip(ends - 1, 0, None)] == _CR) & (ends > starts)
        ends[cr] -= 1
    seps = np.flatnonzero(arr == separator)
    seps = seps[(np.searchsorted(quotes, seps) & 1) == 0]
    fields = np.searchsorted(seps, ends) - np.searchsorted(seps, starts) + 1
    return (starts, ends, lines.astype(np.int64), fields.astype(np.int64), consumed,
            int(np.searchsorted(newlines, consumed)))


try:
    from analyzer._scan import fields as _fields
    from analyzer._scan import scan as _scan
    SCANNER = "compiled"
except ImportError:  # not built: the numpy twin gives the same answers, slower, and polars parses
    _scan, _fields = scan_numpy, None
    SCANNER = "python"


@dataclass
class Scanner:
    """Splits a stream of UTF-8 chunks into complete CSV records, carrying state across chunks."""

    separator: int = 44
    _carry: bytes = b""
    _line: int = 1  # line number of the first byte of _carry

    def feed(self, chunk: bytes, final: bool = False) -> Records:
        data = self._carry + chunk if self._carry else chunk
        starts, ends, lines, fields, consumed, newlines = _scan(data, self._line, self.separator, final)
        self._line += newlines
        self._carry = data[consumed:]
        return Records(data, starts, ends, lines, fields)


def iter_records(chunks: Iterator[bytes], separator: int = 44) -> Iterator[Records]:
    """Complete records of every chunk of a UTF-8 stream."""
    scanner = Scanner(separator)
    pending: bytes | None = None
    for chunk in chunks:
        if pending is not None:
            yield scanner.feed(pending)
        pending = chunk
    yield scanner.feed(pending or b"", final=True)


def split_header(line: bytes, separator: str = ",") -> list[str]:
    """Field names of a header record (quoted or not), stripped."""
    text = line.decode("utf-8", "replace")
    row = next(csv.reader([text], delimiter=separator), [])
    return [name.strip().strip('"').strip() for name in row]


def parse_batch(data: bytes, starts: np.ndarray, ends: np.ndarray, header: list[str],
                keep: list[int] | None = None, separator: str = ",", *,
                cleaning: dict[str, tuple[bool, bool]] | None = None) -> pl.DataFrame:
    """Parse the records data[starts[i]:ends[i]] (all with len(header) fields, line breaks left
    out) into String columns named by `header`; only the columns at the `keep` indices when given.
    A `cleaning` dict receives, for the columns the compiled splitter cut, what
    `_compiled.needs_cleaning` would say of them (``(trim, blank)``): it saw every byte.

    `data` must be valid UTF-8, as `TextSource` passes it on (validated, or transcoded with
    replacement characters): the compiled splitter (`analyzer._scan.fields`) cuts the kept cells
    out in one walk at ASCII delimiters without checking it again. Records it declines (odd
    quoting), and builds without it, go to polars, which reads contiguous records as one slice
    (the join only copies when records were taken out between them).
    """
    keep = list(range(len(header))) if keep is None else keep
    names = [header[i] for i in keep]
    if not len(starts):
        return pl.DataFrame(schema={name: pl.String for name in names})
    if _fields is not None and keep and all(a < b for a, b in zip(keep, keep[1:])):
        columns = _fields(data, starts, ends, np.asarray(keep, dtype=np.int64), len(header), ord(separator))
        if columns is not None:
            if cleaning is not None:
                cleaning.update({name: (edge, empty > 0) for name, (*_, edge, empty) in zip(names, columns)})
            return pl.DataFrame([_string_series(name, len(starts), *column[:4])
                                 for name, column in zip(names, columns)])
    spans = runs(data, starts, ends)
    count = len(starts)

    def exact() -> bytes:
        return data[spans[0][0]:spans[0][1]] if len(spans) == 1 else b"\n".join(data[s:e] for s, e in spans)

    if len(spans) == 1 and spans[0][0] == 0:
        # the usual batch: good records from the first byte on. Polars reads the first `count`
        # records of the chunk itself, so the chunk is not copied (the tail after them is the
        # next batch's partial record).
        body, n_rows = data, count
    else:
        body, n_rows = exact(), None
    try:
        # bytes, not BytesIO: polars parses them in place (twice as fast as through a file object)
        frame = pl.read_csv(body, has_header=False, columns=keep, infer_schema=False,
                            separator=separator, quote_char='"', empty_string_is_null=True,
                            raise_if_empty=False, truncate_ragged_lines=False, n_rows=n_rows)
        frame.columns = names
    except pl.exceptions.PolarsError:
        frame = _parse_python(exact(), len(header), keep, names, separator)
    if frame.height != count:
        frame = _parse_python(exact(), len(header), keep, names, separator)
    return frame


def _string_series(name: str, n: int, views: np.ndarray, values: np.ndarray, validity: np.ndarray | None,
                   nulls: int) -> pl.Series:
    # the splitter's buffers as an Arrow string view array, which polars takes as it is (its
    # String columns are string views too): no parsing, no conversion
    array = pa.Array.from_buffers(pa.string_view(), n, [None if validity is None else pa.py_buffer(validity),
                                                       pa.py_buffer(views), pa.py_buffer(values)], nulls)
    return pl.Series(name, array)


def _parse_python(body: bytes, width: int, keep: list[int], names: list[str], separator: str) -> pl.DataFrame:
    # The slow, forgiving path, only for a batch polars refused (odd quoting): the record
    # boundaries are already known to be right, so the stdlib reader sees the same records.
    rows = list(csv.reader(io.StringIO(body.decode("utf-8", "replace"), newline=""), delimiter=separator))
    cols = list(zip(*rows)) if rows else [()] * width
    return pl.DataFrame({name: [v if v != "" else None for v in cols[i]] for name, i in zip(names, keep)},
                        schema={name: pl.String for name in names})


def runs(data: bytes, starts: np.ndarray, ends: np.ndarray) -> list[tuple[int, int]]:
    """Byte spans of `data` covering the records at `starts`/`ends` (line breaks left out), one
    span per run of records only a line break (LF, or CRLF) apart: a record taken out between
    two (ragged, a comment, a blank line) ends a run."""
    if not len(starts):
        return []
    arr = np.frombuffer(data, dtype=np.uint8)
    gap = starts[1:] - ends[:-1]
    # `ends` stops before a CR of a CRLF, so the next record starts two bytes on
    follows = (gap == 1) | ((gap == 2) & (arr[np.minimum(ends[:-1], len(arr) - 1)] == _CR))
    breaks = np.flatnonzero(~follows)
    first = np.concatenate(([0], breaks + 1))
    last = np.concatenate((breaks, [len(starts) - 1]))
    return [(int(starts[a]), int(ends[b])) for a, b in zip(first, last)]
