"""JSON exports: arrays, NDJSON, OData pages ``{"value":[...]}``, Defender streaming records
``{"category":"AdvancedHunting-EmailEvents","properties":{...}}``, Event Hub ``{"records":[...]}``
and SIEM wrappers ``{"input":{"message":"<json>"}}``; every record with the line it starts on."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from analyzer._text import TextSource

try:
    from analyzer._scan import json_keys_within as _json_keys_within
except ImportError:  # not built: the types come from every row
    _json_keys_within = None

_DECODER = json.JSONDecoder()
_WS = re.compile(r"\s*")
_LIST_KEYS = ("value", "records", "Records", "results", "d")


@dataclass
class JsonBatch:
    """Records of one batch as flat dicts of text, with their lines; plus what was set aside."""

    records: list[dict[str, str | None]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # each record as written (for the rejects)
    ignored: int = 0
    rejects: list[tuple[int, str, str, str]] = field(default_factory=list)  # line, expected, got, raw


def is_ndjson(head: str) -> bool:
    """True when the first non-empty line is a complete JSON object on its own."""
    for line in head.splitlines():
        if line.strip():
            try:
                value = json.loads(line)
            except ValueError:
                return False
            return isinstance(value, dict)
    return False


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    return json.dumps(value, ensure_ascii=False)


def unwrap(value: Any, batch: JsonBatch, line: int, text: str | None = None) -> None:
    """Append the records held in `value` (any of the known envelopes) to `batch`; `text` is
    how `value` was written in the file (kept for the rejects file)."""
    if isinstance(value, list):
        for item in value:
            unwrap(item, batch, line, None)
        return
    if not isinstance(value, dict):
        batch.rejects.append((line, "a JSON object", f"a JSON {type(value).__name__}", _text(value) or ""))
        return
    if "input" in value and isinstance(value["input"], dict):  # SIEM test cases: only the input
        unwrap(value["input"], batch, line)
        return
    message = value.get("message")
    if isinstance(message, str) and message.lstrip().startswith(("{", "[")) and len(value) <= 4:
        try:
            inner = json.loads(message)
        except ValueError:
            batch.rejects.append((line, "JSON in the 'message' field", "text that is not JSON", message))
            return
        unwrap(inner, batch, line)
        return
    for key in _LIST_KEYS:
        if isinstance(value.get(key), list):
            unwrap(value[key], batch, line)
            return
    d = value.get("d")
    if isinstance(d, dict) and isinstance(d.get("results"), list):  # OData v2 verbose page
        unwrap(d["results"], batch, line)
        return
    category = value.get("category") or value.get("Category")
    properties = value.get("properties") or value.get("Properties")
    if isinstance(category, str) and isinstance(properties, dict):
        if category.lower().endswith("emailevents"):
            unwrap(properties, batch, line)
        else:
            batch.ignored += 1  # another Defender table (attachments, URLs...) in the same stream
        return
    batch.records.append({k: _text(v) for k, v in value.items() if k != "__metadata"})
    batch.lines.append(line)
    batch.texts.append(text if text is not None else json.dumps(value, ensure_ascii=False))


@dataclass
class FrameBatch:
    """An NDJSON chunk parsed by polars in one call: `frame` has String columns named as in the
    file, `lines` the line of each row, `texts` the rows as written; `ignored` other tables."""

    frame: pl.DataFrame
    lines: np.ndarray
    texts: "_LazyTexts"
    ignored: int = 0


_ENVELOPE_KEYS = {"input", "message", "value", "records", "Records", "results", "d", "__metadata"}


def fast_ndjson(data: bytes, first_line: int) -> FrameBatch | None:
    """Parse a chunk of whole NDJSON lines with polars, or None when only the line-by-line path
    can do it right (broken lines, envelopes other than Defender's, nested values, odd blanks)."""
    arr = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(arr == 10)
    starts = np.concatenate(([0], ends[:-1] + 1)) if ends.size else np.empty(0, np.int64)
    lengths = ends - starts
    crlf = (lengths > 0) & (arr[np.maximum(ends - 1, 0)] == 13)
    lengths = lengths - crlf
    nonblank = lengths > 0
    if not nonblank.any():
        return None
    try:
        frame = _read_ndjson(data)
    except Exception:  # noqa: BLE001 - any parse problem: the careful path reports it per line
        return None
    if frame.height != int(nonblank.sum()) or set(frame.columns) & _ENVELOPE_KEYS:
        return None
    lines = (first_line + np.flatnonzero(nonblank)).astype(np.int64)
    keep_starts, keep_ends = starts[nonblank], (starts + lengths)[nonblank]
    ignored = 0
    if "category" in frame.columns and "properties" in frame.columns:
        if frame.get_column("category").null_count() or frame.schema["properties"] != pl.Struct(
                frame.schema["properties"].fields):
            return None
        wanted = frame.get_column("category").str.to_lowercase().str.ends_with("emailevents").to_numpy()
        ignored = int((~wanted).sum())
        frame = frame.filter(pl.Series(wanted)).select(pl.col("properties")).unnest("properties")
        lines, keep_starts, keep_ends = lines[wanted], keep_starts[wanted], keep_ends[wanted]
    columns = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, (pl.List, pl.Array)):
            return None  # lists are joined differently line by line: keep one behaviour
        if isinstance(dtype, pl.Struct):
            columns.append(pl.col(name).struct.json_encode())
        elif dtype == pl.Boolean:
            columns.append(pl.col(name).replace_strict({True: "True", False: "False"}, return_dtype=pl.String))
        else:
            columns.append(pl.col(name).cast(pl.String))
    frame = frame.select(columns)
    return FrameBatch(frame, lines, _LazyTexts(data, keep_starts, keep_ends), ignored)


# Rows whose types name the columns' types: polars' own default.
_SCHEMA_ROWS = 100


def _read_ndjson(data: bytes) -> pl.DataFrame:
    """polars' read of a chunk of NDJSON, every member of every row in its columns.

    Inferring the types from every row costs four times the parse itself; the first rows'
    types do as well when they are flat (a nested object's or list's own members may differ
    later), but for Defender's ``properties`` object of plain values, and name every member of
    every row (and of its ``properties``), which the compiled `json_keys_within` checks: polars
    would drop the others without a word. A later value that the first rows' type cannot hold
    makes polars refuse the read (text takes any, as it does when every row is inferred), and
    every row is then inferred."""
    if _json_keys_within is not None:
        try:
            quick = pl.read_ndjson(data, infer_schema_length=_SCHEMA_ROWS)
        except Exception:  # noqa: BLE001 - a later row of another type: infer from all of them
            quick = None
        if quick is not None:
            nested = {name: dtype for name, dtype in quick.schema.items() if not _plain(dtype)}
            inner = nested.get("properties")
            if (not nested or (len(nested) == 1 and isinstance(inner, pl.Struct)
                               and all(_plain(f.dtype) for f in inner.fields))) and _json_keys_within(
                    np.frombuffer(data, dtype=np.uint8), [k.encode() for k in quick.columns],
                    b"properties" if inner is not None else b"",
                    [f.name.encode() for f in inner.fields] if inner is not None else None):
                return quick
    return pl.read_ndjson(data, infer_schema_length=None)


def _plain(dtype: pl.DataType) -> bool:
    return not isinstance(dtype, (pl.Struct, pl.List, pl.Array, pl.Object))


class _LazyTexts:
    """Row texts decoded on demand (only rejected rows are ever asked for)."""

    def __init__(self, data: bytes, starts: np.ndarray, ends: np.ndarray) -> None:
        self._data, self._starts, self._ends = data, starts, ends

    def __getitem__(self, i: int) -> str:
        return self._data[self._starts[i]:self._ends[i]].decode("utf-8", "replace")

    def __len__(self) -> int:
        return len(self._starts)


def iter_ndjson(source: TextSource, batch_size: int = 50_000) -> Iterator[JsonBatch | FrameBatch]:
    """Batches of an NDJSON file, streamed: each chunk of whole lines goes to polars in one call
    when it is plain records (or Defender's envelope), else line by line with json."""
    line_no = 0
    for data in source.line_chunks():
        fast = fast_ndjson(data, line_no + 1)
        if fast is not None:
            yield fast
        else:
            batch = JsonBatch()
            n = line_no
            for raw in data.decode("utf-8").split("\n")[:-1]:
                n += 1
                _ndjson_line(raw.rstrip("\r"), n, batch)
                if len(batch.records) + len(batch.rejects) >= batch_size:
                    yield batch
                    batch = JsonBatch()
            yield batch
        line_no += data.count(b"\n")


def _ndjson_line(raw: str, line_no: int, batch: JsonBatch) -> None:
    text = raw.strip()
    if not text:
        return
    try:
        value = json.loads(text)
    except ValueError as exc:
        batch.rejects.append((line_no, "one JSON object a line", f"invalid JSON ({exc.msg}; column {exc.colno})", raw))
        return
    unwrap(value, batch, line_no, raw)


def read_document(source: TextSource) -> JsonBatch:
    """A whole JSON document (array, object, OData page). Records of a top-level array or of an
    envelope's list keep their own line numbers; the document is parsed in memory (these exports
    are capped at a few thousand rows per call)."""
    text = b"".join(source.chunks()).decode("utf-8")
    batch = JsonBatch()
    start = _WS.match(text).end()
    try:
        value, end = _DECODER.raw_decode(text, start)
    except json.JSONDecodeError as exc:
        raise _BadJson(exc.lineno, exc.msg) from None
    rest = _WS.match(text, end).end()
    if rest != len(text):
        line = text.count("\n", 0, rest) + 1
        raise _BadJson(line, "extra data after the JSON document")
    lists = _list_positions(text, start, value)
    if lists is None:
        unwrap(value, batch, text.count("\n", 0, start) + 1, text[start:end])
        return batch
    for item, line, item_text in lists:
        unwrap(item, batch, line, item_text)
    return batch


class _BadJson(Exception):
    def __init__(self, line: int, msg: str) -> None:
        super().__init__(msg)
        self.line = line
        self.msg = msg


def _list_positions(text: str, start: int, value: Any) -> list[tuple[Any, int, str]] | None:
    """Elements of the top-level array (or of an OData/Event Hub envelope's list) with the line
    each begins on, by walking the array with raw_decode; None for other shapes."""
    pos = start
    if isinstance(value, dict):
        key = next((k for k in _LIST_KEYS if isinstance(value.get(k), list)), None)
        if key is None and isinstance(value.get("d"), dict) and isinstance(value["d"].get("results"), list):
            key = "results"
        if key is None:
            return None
        match = re.compile(r'"%s"\s*:\s*\[' % re.escape(key)).search(text, start)
        if match is None:
            return None
        pos = match.end() - 1
    elif not isinstance(value, list):
        return None
    out: list[tuple[Any, int, str]] = []
    pos += 1  # past '['
    line, counted = 1, 0
    while True:
        pos = _WS.match(text, pos).end()
        if text[pos] == "]":
            return out
        line += text.count("\n", counted, pos)
        counted = pos
        item, end = _DECODER.raw_decode(text, pos)
        out.append((item, line, text[pos:end]))
        pos = end
        pos = _WS.match(text, pos).end()
        if text[pos] == ",":
            pos += 1
