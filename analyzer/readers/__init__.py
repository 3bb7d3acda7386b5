"""Read every supported export into one normalized polars table.

Formats are detected from the content, never the file name: Get-MessageTrace(V2) summaries and
Get-MessageTraceDetail(V2) events (CSV or JSON), the EAC enhanced-summary and extended reports,
Exchange Server message tracking logs, Postfix syslog and Defender ``EmailEvents`` (CSV, JSON or
the streaming API's NDJSON); gzip, UTF-8/UTF-16/cp1252, directories and globs.

Files are read in bounded batches; each batch is normalized and spooled to Parquet, so memory does
not grow with the input. The result is a LazyFrame over the spool with duplicate records (the same
record in two overlapping exports) removed. Rows that cannot be read are counted per file and kept
with their file, line and reason (`Ingest.rejects`); ``strict=True`` makes the first one fatal.
"""

from __future__ import annotations

import atexit
import datetime as dt
import glob
import json
import os
import re
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from analyzer._text import TextSource
from analyzer.errors import InputError, location
from analyzer.readers import _csv, _json
from analyzer.readers._dates import CULTURE_DATE, DateOrder, decide_order, parse_timestamps
from analyzer.readers._formats import (
    MSGTRK_FIELDS,
    NEEDED,
    NOTHING_KNOWN,
    Cleaning,
    detect_columns,
    key,
    looks_like_config,
    normalize,
)
from analyzer.readers._schema import DIRECTIONS, EVENTS, FORMATS, SCHEMA, finalize

__all__ = ["DIRECTIONS", "EVENTS", "FORMATS", "KEY_FORMAT", "SCHEMA", "FileReport", "Ingest", "RecordSink", "detect",
           "ingest", "iter_parquet", "read", "record_keys", "REJECTS_SCHEMA", "TOTALS_SCHEMA", "unique_batches"]

#: Where `ingest(..., sink=)` hands each batch of records: ``sink(number, frame)``.
RecordSink = Callable[[int, pl.DataFrame], None]

REJECTS_SCHEMA = {"source_file": pl.String(), "source_line": pl.Int64(), "reason": pl.String(),
                  "raw": pl.String()}
_EXPECTED_FORMATS = ("a message trace (CSV/JSON), message trace details, an EAC enhanced summary or "
                     "extended report, an Exchange tracking log, a Postfix log or a Defender EmailEvents export")
_FORMAT_HINT = "check that this is the exported file itself; see the README's list of formats"
_RAW_LIMIT = 2000  # characters of a rejected row kept in the rejects file

# What `_key` (the de-duplication hash) covers: the same record in two overlapping exports has
# the same values in these; trace summaries follow Microsoft's own rule (trace id, recipient,
# received time) since a later export may show a newer status for the same row.
_CONTENT = [c for c in SCHEMA if c not in ("source_file", "source_line")]
_TRACE_KEY = ["source_format", "message_key", "recipient", "timestamp"]
# `_key` is polars' row hash of those columns, which polars does not promise to keep from one of
# its versions to the next: hashes kept from an earlier run (a state's records generation) are
# compared with new ones only when made the same way, as this names.
KEY_FORMAT = f"polars {pl.__version__} hash_rows 0x5EED"
# Beside `_key` in spooled or sunk batches: the Parquet input a record was read from (null for
# the other formats, whose source_file is the input). A Parquet record's source_file names the
# log it first came from, so its copies are counted against the Parquet file by this column.
INPUT = "_input"


@dataclass
class FileReport:
    """What happened to one input file."""

    path: str
    format: str
    encoding: str = ""
    compressed: bool = False
    rows_read: int = 0  # records found (kept + skipped)
    rows_kept: int = 0  # records in the table before de-duplication (may exceed rows_read when
    #                     one row lists several recipients)
    rows_skipped: int = 0  # malformed records, kept in the rejects
    rows_ignored: int = 0  # lines that are not records of this format (other Defender tables,
    #                        Postfix lines other than deliveries, comment lines)
    notes: list[str] = field(default_factory=list)


@dataclass
class Ingest:
    """The outcome of reading a set of inputs: the normalized records, per-file reports and the
    rejected rows, kept in the spool directory, which lives until exit."""

    files: list[FileReport]
    spool: Path

    @cached_property
    def copies(self) -> np.ndarray:
        """Positions in the spool (input order) of the records that repeat an earlier one: found
        on first use, a bucket of hashes at a time (`_copies_of`)."""
        return _copies_of(_parts(self.spool))

    @property
    def frame(self) -> pl.LazyFrame:
        """The records, duplicates removed (the first of each kept): lazy over the spool, without
        the `copies`, so it streams in bounded memory whatever the number of records."""
        parts = _parts(self.spool)
        if not parts:
            return pl.LazyFrame(schema=SCHEMA)
        return _without_copies(pl.scan_parquet(parts), self.copies).drop("_key", INPUT)

    def batches(self) -> Iterator[pl.DataFrame]:
        """The records batch by batch (one spool part at a time, in input order), duplicates
        removed as in `frame`: memory stays bounded by a batch plus the copies' positions."""
        return unique_batches(_parts(self.spool), copies=self.copies)

    def rejects(self) -> pl.LazyFrame:
        """Rejected rows: ``source_file, source_line, reason, raw``."""
        parts = sorted(self.spool.glob("rejects-*.parquet"))
        if not parts:
            return pl.LazyFrame(schema=REJECTS_SCHEMA)
        return pl.scan_parquet(parts)

    def totals(self) -> pl.DataFrame:
        """Per file: format, encoding, rows read/kept/skipped/ignored and duplicates dropped."""
        return totals_frame(self.files, self._duplicates())

    def _duplicates(self) -> dict[str, int]:
        parts = _parts(self.spool)
        if not parts or not self.copies.size:
            return {}
        copies = pl.Series(self.copies).implode()
        counts = (pl.scan_parquet(parts).select(pl.coalesce(INPUT, "source_file").alias("source_file"))
                  .with_row_index("_row").filter(pl.col("_row").cast(pl.Int64).is_in(copies))
                  .group_by("source_file").len().collect(engine="streaming"))
        return dict(zip(counts["source_file"].to_list(), counts["len"].to_list()))


TOTALS_SCHEMA = {"source_file": pl.String(), "format": pl.String(), "encoding": pl.String(),
                 "rows_read": pl.Int64(), "rows_kept": pl.Int64(), "rows_skipped": pl.Int64(),
                 "rows_ignored": pl.Int64(), "duplicates": pl.Int64(), "notes": pl.String()}


def totals_frame(files: list[FileReport], duplicates: dict[str, int]) -> pl.DataFrame:
    """The per-file totals table of `files` (see `Ingest.totals`)."""
    return pl.DataFrame(
        {
            "source_file": [f.path for f in files],
            "format": [f.format for f in files],
            "encoding": [f.encoding for f in files],
            "rows_read": [f.rows_read for f in files],
            "rows_kept": [f.rows_kept for f in files],
            "rows_skipped": [f.rows_skipped for f in files],
            "rows_ignored": [f.rows_ignored for f in files],
            "duplicates": [duplicates.get(f.path, 0) for f in files],
            "notes": ["; ".join(f.notes) for f in files],
        },
        schema=TOTALS_SCHEMA,
    )


# Keys looked at together when finding copies: the spool's keys are split into buckets (by the
# key's value, so a record and its copies share one) of about this many, and each bucket is
# de-duplicated on its own. Memory is then bounded (about 60 bytes a key, 0.7 GB for 100 million
# records against 2.1 GB when the keys are read whole first) whatever the number of records;
# each extra bucket costs one more streamed read of the keys (about 1 s per 100 million), so
# the time grows with the square of the records: 11 s at 100 million, an estimated 18 minutes at a
# billion. Spilling the keys to a file per bucket in one pass took twice as long at 100 million
# (22 s, and 1.2 GB), so that is left for when billions go through `read` rather than `analyze`.
_KEYS_AT_ONCE = 10_000_000


def _copies_of(parts: list[Path]) -> np.ndarray:
    """Positions (0-based, in the concatenated rows of the spooled Parquet `parts`) of every
    record whose `_key` an earlier record already had, sorted."""
    if not parts:
        return np.empty(0, dtype=np.int64)
    rows = sum(pq.read_metadata(part).num_rows for part in parts)
    buckets = max(1, -(-rows // _KEYS_AT_ONCE))
    keys = pl.scan_parquet(parts).select("_key").with_row_index("_row")
    found = []
    for bucket in range(buckets):
        subset = keys.filter(pl.col("_key") % buckets == bucket) if buckets > 1 else keys
        # in row order within the bucket: the first of a key there is its first anywhere. The
        # streaming engine filters the keys as it reads them, so only the bucket's are held.
        found.append(subset.filter(~pl.col("_key").is_first_distinct()).select("_row")
                     .collect(engine="streaming").to_series().to_numpy().astype(np.int64))
    return np.sort(np.concatenate(found))


def _without_copies(frame: pl.LazyFrame, copies: np.ndarray) -> pl.LazyFrame:
    """`frame` (the spool's rows in order) without the rows at the positions `copies`."""
    if not copies.size:
        return frame
    positions = pl.Series(copies).implode()
    return frame.with_row_index("_row").filter(~pl.col("_row").cast(pl.Int64).is_in(positions)).drop("_row")


def unique_batches(parts: list[Path], duplicates: dict[str, int] | None = None,
                   copies: np.ndarray | None = None) -> Iterator[pl.DataFrame]:
    """The records of spooled Parquet `parts` (normalized columns plus `_key` and `INPUT`), one
    part at a time, each record's first occurrence only; `_key` and `INPUT` dropped. Duplicates
    dropped are counted per input file into `duplicates` when given. `copies` are the parts'
    `_copies_of`, when already known."""
    if not parts:
        return
    copies = _copies_of(parts) if copies is None else copies
    offset = 0
    for part in parts:
        batch = pl.read_parquet(part)
        lo, hi = np.searchsorted(copies, [offset, offset + batch.height])
        fresh = np.ones(batch.height, dtype=bool)
        fresh[copies[lo:hi] - offset] = False
        offset += batch.height
        if duplicates is not None and not fresh.all():
            dropped = batch.filter(pl.Series(~fresh)).select(pl.coalesce(INPUT, "source_file"))
            for name, n in dropped.to_series().value_counts().iter_rows():
                duplicates[name] = duplicates.get(name, 0) + n
        if fresh.any():
            yield batch.filter(pl.Series(fresh)).drop("_key", INPUT)


def _parts(spool: Path) -> list[Path]:
    return sorted(spool.glob("records-*.parquet"))


def _files_under(root: Path) -> list[Path]:
    """Files below `root`, sorted, skipping hidden files and folders (editor locks, .git)."""
    return sorted(p for p in root.rglob("*")
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts))


def expand_paths(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Files named by `paths`: files as given, directories recursively (sorted), glob patterns."""
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    out: list[Path] = []
    for item in items:
        text = os.fspath(item)
        path = Path(text)
        if path.is_dir():
            out.extend(_files_under(path))
        elif path.exists():
            out.append(path)
        elif glob.has_magic(text):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True))
            files = [m for m in matches if m.is_file()]
            for m in matches:
                if m.is_dir():
                    files.extend(_files_under(m))
            if not files:
                raise InputError("no input files", expected="files matching the pattern", got="none",
                                 where=text)
            out.extend(files)
        else:
            raise InputError("input not found", expected="an existing file, directory or glob",
                             got="nothing at that path", where=text)
    seen: set[Path] = set()
    unique = []
    for p in out:
        resolved = p.resolve()
        if resolved not in seen:
            seen.add(resolved)
            unique.append(p)
    return unique


@dataclass
class _Detected:
    container: str  # "csv", "json", "ndjson", "postfix", "config"
    format: str
    header: list[str] | None = None
    separator: str = ","


def detect(path: str | os.PathLike) -> str:
    """The format name of one input file (one of FORMATS, or ``"config"`` for connector and
    accepted-domain exports); raises InputError when it is none of them."""
    source = TextSource(path)
    return _detect(source).format


def _first_lines(text: str, limit: int = 50) -> list[str]:
    return [line for line in text.splitlines()[:limit]]


def _detect(source: TextSource) -> _Detected:
    head = source.head_text
    stripped = head.lstrip()
    where = location(source.path, 1)
    if not stripped:
        raise InputError("empty input file", expected=_EXPECTED_FORMATS, got="no data",
                         where=location(source.path))
    lines = _first_lines(head)
    if stripped.startswith(("{", "[")):
        if _json.is_ndjson(head):
            container = "ndjson"
            probe = _json.JsonBatch()
            for n, line in enumerate(lines, 1):
                if line.strip():
                    try:
                        _json.unwrap(json.loads(line), probe, n)
                    except ValueError:
                        break
        else:
            container = "json"
            try:
                probe = _json.read_document(source)
            except _json._BadJson as exc:
                raise InputError("unreadable JSON", expected="a complete JSON document",
                                 got=exc.msg, where=location(source.path, exc.line),
                                 hint="the export may be truncated; export it again") from None
        names = {k for record in probe.records[:50] for k in record}
        if not names and not probe.rejects and not probe.ignored:
            return _Detected(container, "empty")  # `[]`: an export of nothing (a quiet day)
        fmt = detect_columns(names)
        if fmt is not None:
            return _Detected(container, fmt)
        if looks_like_config(names):
            return _Detected("config", "config")
        if probe.ignored and not probe.records:
            return _Detected(container, "emailevents")  # Defender stream without EmailEvents rows
        raise InputError("unrecognized JSON input", expected=_EXPECTED_FORMATS,
                         got=f"records with the properties {_show(sorted(names))}" if names else "no records",
                         where=where, hint=_FORMAT_HINT)
    if any(_is_postfix(line) for line in lines):
        return _Detected("postfix", "postfix")
    content = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    first_no, first = content[0]
    if first.startswith("#"):
        fields = next((line for _, line in content if line.startswith("#Fields:")), None)
        if fields is not None:
            header = [f.strip() for f in fields[len("#Fields:"):].split(",")]
            fmt = detect_columns(header)
            if fmt is not None:
                return _Detected("csv", fmt, header)
        if first.startswith("#TYPE") and len(content) > 1:
            first_no, first = content[1]
            where = location(source.path, first_no)
        elif fields is None and first.startswith(("#Software", "#Version", "#Log-type", "#Date")):
            raise InputError("tracking log without a #Fields line", expected="a '#Fields: ...' header line",
                             got="none in the first lines", where=where, hint=_FORMAT_HINT)
    header = _csv.split_header(first.encode("utf-8"))
    fmt = detect_columns(header)
    if fmt is not None:
        return _Detected("csv", fmt, header)
    if looks_like_config(header):
        return _Detected("config", "config")
    # Export-Csv -UseCulture (de-DE and others) and Excel write ';' (or a tab) between fields
    for sep in (";", "\t"):
        other = _csv.split_header(first.encode("utf-8"), sep)
        fmt = detect_columns(other)
        if fmt is not None:
            return _Detected("csv", fmt, other, sep)
        if looks_like_config(other):
            return _Detected("config", "config")
    # Exchange 2013+ tracking logs copied without their header: 30 fields, ISO time first
    row = _csv.split_header(first.encode("utf-8"))
    if len(row) == len(MSGTRK_FIELDS) and _ISO_START.match(first):
        return _Detected("csv", "msgtrk", list(MSGTRK_FIELDS) + ["<headerless>"])
    got = "binary or unknown text" if not header else f"a first line starting {_show([first[:60]])}"
    raise InputError("unrecognized input file", expected=_EXPECTED_FORMATS, got=got, where=where,
                     hint=_FORMAT_HINT)


_ISO_START = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
_POSTFIX = re.compile(r"\bpostfix(?:-[\w.-]+)?/[\w/-]+\[\d+\]:")


def _is_postfix(line: str) -> bool:
    return bool(_POSTFIX.search(line))


def _show(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(repr(i) for i in items[:limit])
    return shown + (", ..." if len(items) > limit else "")


# ---------------------------------------------------------------------------------------------
# reading


@dataclass
class _Options:
    year: int | None
    strict: bool
    date_order: str | None
    batch_bytes: int


class _Spool:
    """Numbered Parquet parts in the spool directory; numbers follow input order, so reading the
    parts back in name order gives the records in file and line order. With a `sink`, record
    batches go to it instead (with their number) and only the rejects are spooled."""

    def __init__(self, directory: Path, sink: RecordSink | None = None) -> None:
        self.dir = directory
        self.sink = sink
        self.n = 0

    def reserve(self) -> int:
        # main thread only: workers write under numbers reserved for them in input order
        self.n += 1
        return self.n - 1

    def write(self, kind: str, frame: pl.DataFrame, index: int | None = None) -> None:
        if frame.height == 0:
            return
        if index is None:
            index = self.reserve()
        if kind == "records" and self.sink is not None:
            self.sink(index, frame)
            return
        if kind == "records" and INPUT not in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.String).alias(INPUT))  # parts share one schema
        target = self.dir / f"{kind}-{index:08d}.parquet"
        tmp = target.with_suffix(".tmp")
        # lz4: the spool is rewritten every run and read once; speed matters more than size
        frame.write_parquet(tmp, compression="lz4", statistics=False)
        os.replace(tmp, target)


def _reject_frame(path: str, rows: list[tuple[int, str, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "source_file": [path] * len(rows),
            "source_line": [r[0] for r in rows],
            "reason": [f"expected {r[1]}, got {r[2]}" for r in rows],
            "raw": [r[3][:_RAW_LIMIT] for r in rows],
        },
        schema=REJECTS_SCHEMA,
    )


def _fail_strict(path: Path, row: tuple[int, str, str, str]) -> None:
    raise InputError("malformed row", expected=row[1], got=row[2], where=location(path, row[0]),
                     hint="fix or remove the row, or read without strict mode to skip it into the rejects file")


_SIZE_OK = r"^\s*\d+\s*$"


_TS_COLUMN = {"exo_trace": "received", "exo_trace_detail": "date",
              "exo_enhanced_summary": "origintimestamputc", "emailevents": "timestamp"}


def _ts_column(fmt: str, columns: list[str]) -> str:
    """The (comparison-form) name of the column that dates a record of this format."""
    return _TS_COLUMN.get(fmt) or ("datetimeutc" if "datetimeutc" in columns else "datetime")


def _decide_dates(fmt: str, raw: pl.DataFrame, order: DateOrder, opts: _Options, report: FileReport) -> None:
    """Settle the file's day/month order from a batch before it is converted (main thread)."""
    if order.how != "undecided" or raw.height == 0:
        return
    name = _ts_column(fmt, raw.columns)
    if name in raw.columns:
        before = order.how
        decide_order(raw.get_column(name), order, opts.date_order)
        if order.order and before != order.how:
            report.notes[:] = [n for n in report.notes if not n.startswith("dates read as")] + [order.describe()]


def _convert(fmt: str, raw: pl.DataFrame, path: Path, order: DateOrder, raw_text: callable,
             spool: _Spool, index: int, cleaning: Cleaning = NOTHING_KNOWN
             ) -> tuple[int, list[tuple[int, str, str, str]]]:
    """Normalize one batch, spool its records as part `index`; return (records kept, rejects).
    Runs on a worker thread: it only touches its own batch (polars releases the GIL).
    `cleaning`: what the parser learnt of the raw columns (`_formats.normalize`)."""
    if raw.height == 0:
        return 0, []
    part = normalize(fmt, raw, cleaning)
    stamps = parse_timestamps(part.get_column("_ts"), order)
    part = part.with_columns(stamps.alias("timestamp"))
    bad_ts = part.get_column("timestamp").is_null()
    size_text = part.get_column("_size")
    bad_size = size_text.is_not_null() & ~size_text.str.contains(_SIZE_OK)
    bad = (bad_ts | bad_size).fill_null(True)
    rows: list[tuple[int, str, str, str]] = []
    if bad.any():
        failed = part.filter(bad).select("source_line", "_ts", "_size")
        for line, ts, size in failed.iter_rows():  # only the malformed rows
            if ts is None:
                rows.append((line, "a timestamp", "an empty value", ""))
            elif size is not None and not size.strip().isdigit():
                rows.append((line, "a size in bytes", repr(size), ""))
            else:
                shown = {"dmy": " (day/month/year in this file)", "mdy": " (month/day/year in this file)"}
                rows.append((line, "a date and time" + shown.get(order.order or "", ""), repr(ts), ""))
        rows = _dedupe_lines(rows)
        texts = raw_text([r[0] for r in rows])
        rows = [(r[0], r[1], r[2], texts.get(r[0], "")) for r in rows]
        part = part.filter(~bad)
    part = part.with_columns(pl.col("_size").str.strip_chars().cast(pl.Int64, strict=False).alias("size_bytes"))
    final = _with_key(finalize(part, fmt, str(path)))
    spool.write("records", final, index)
    return final.height, rows


def _settle(path: Path, kept: int, rows: list[tuple[int, str, str, str]], opts: _Options,
            report: FileReport, spool: _Spool) -> None:
    """Account for one converted batch, in file order (main thread)."""
    if rows:
        if opts.strict:
            _fail_strict(path, rows[0])
        spool.write("rejects", _reject_frame(str(path), rows))
        report.rows_skipped += len(rows)
    report.rows_kept += kept


def _dedupe_lines(rows: list[tuple[int, str, str, str]]) -> list[tuple[int, str, str, str]]:
    # a row exploded per recipient fails once, not once per recipient
    seen: set[int] = set()
    out = []
    for r in rows:
        if r[0] not in seen:
            seen.add(r[0])
            out.append(r)
    return out


def _is_parquet(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == b"PAR1"


def _check_parquet(path: Path) -> FileReport:
    try:
        schema = pl.read_parquet_schema(path)
        rows = pl.scan_parquet(path).select(pl.len()).collect().item()  # from the metadata
    except Exception as exc:  # noqa: BLE001 - any damage is the same answer for the user
        raise InputError("unreadable Parquet file", expected="a complete Parquet file",
                         got=str(exc).splitlines()[0], where=location(path)) from None
    missing = [c for c in SCHEMA if c not in schema]
    if missing:
        raise InputError("Parquet file without the normalized columns", expected="the columns of the README's "
                         "normalized table", got=f"no {_show(missing, 4)}", where=location(path),
                         hint="give the records/ folder of an earlier mailflow run, or convert the table first")
    return FileReport(str(path), "parquet", encoding="parquet", rows_read=rows, rows_kept=rows)


def record_keys(frame: pl.DataFrame) -> pl.Series:
    """`_key`, the de-duplication hash, of every row of the normalized `frame` (any mix of
    formats): a row hash of `_TRACE_KEY` for message trace summaries, of `_CONTENT` otherwise.
    Rows hashed as a whole (`hash_rows`) cost a fifth of hashing them as one struct column."""
    def hashed(columns: list[str]) -> pl.Series:
        return frame.select(columns).hash_rows(seed=0x5EED)

    # a row without a format is not a trace summary (and `all` would skip its null)
    is_trace = (frame.get_column("source_format") == "exo_trace").fill_null(False)
    if is_trace.all():
        return hashed(_TRACE_KEY).alias("_key")
    keys = hashed(_CONTENT)
    if is_trace.any():  # a batch that mixes both kinds (Parquet inputs) needs both hashes
        keys = keys.zip_with(~is_trace, hashed(_TRACE_KEY))
    return keys.alias("_key")


def _key_expr() -> pl.Expr:
    """`record_keys` as an expression over the normalized columns, for a lazy frame."""
    return pl.struct(list(SCHEMA)).map_batches(lambda rows: record_keys(rows.struct.unnest()),
                                                return_dtype=pl.UInt64, is_elementwise=True)


def _read_parquet(paths: list[Path], spool: _Spool) -> list[FileReport]:
    """Parquet with the normalized columns (the `records/` parts of an earlier run, or any table
    written in this schema): taken as is, no Python per row. Into the spool in one streaming
    pass, or to the sink in batches of at most `PARQUET_BATCH_ROWS`, two at a time."""
    reports = [_check_parquet(path) for path in paths]
    if spool.sink is None:
        frame = pl.scan_parquet(paths, hive_partitioning=False, extra_columns="ignore", include_file_paths=INPUT) \
            .select([pl.col(c).cast(t) for c, t in SCHEMA.items()] + [pl.col(INPUT)])
        target = spool.dir / f"records-{spool.reserve():08d}.parquet"
        tmp = target.with_suffix(".tmp")
        frame.with_columns(_key_expr().alias("_key")).sink_parquet(tmp, compression="lz4", statistics=False)
        os.replace(tmp, target)
        return reports
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="mailflow-parquet") as pool:
        pending: deque = deque()
        for part in _parquet_parts(paths, SCHEMA, path_column=INPUT):
            pending.append(pool.submit(_sink_parquet_batch, part, spool, spool.reserve()))
            while len(pending) > 2:
                pending.popleft().result()
        while pending:
            pending.popleft().result()
    return reports


PARQUET_BATCH_ROWS = 250_000


def iter_parquet(paths: Iterable[Path], columns: Iterable[str] = tuple(SCHEMA),
                 batch_rows: int | None = None) -> Iterator[pl.DataFrame]:
    """The `columns` of Parquet files (those each file has) as DataFrames of at most `batch_rows`
    rows (default `PARQUET_BATCH_ROWS`), in file order, so memory is bounded by a batch whatever
    the file sizes (a file may be one huge row group)."""
    yield from (part() for part in _parquet_parts(paths, columns, batch_rows))


def _parquet_parts(paths: Iterable[Path], columns: Iterable[str], batch_rows: int | None = None,
                   path_column: str | None = None) -> Iterator[Callable[[], pl.DataFrame]]:
    """Readers of the Parquet files' `columns` in pieces of at most `batch_rows` rows, to call in
    file order. Consecutive small files (a records/ folder's parts) with the same columns make
    one piece, read by polars on its threads wherever the call runs, so workers read in
    parallel and write few, large parts; a big file is cut into row ranges, each read by polars
    from the row groups that hold it (bounded memory; pyarrow's batch reader took four times as
    long and three times the memory on one 20-million-row file). With `path_column`, each row's
    file path comes along in that column."""
    batch_rows = batch_rows or PARQUET_BATCH_ROWS
    wanted = list(columns)
    group: list[Path] = []
    group_cols: list[str] = []
    group_rows = 0

    extra = [path_column] if path_column else []

    def read(files: list[Path], cols: list[str]) -> Callable[[], pl.DataFrame]:
        return lambda: (pl.scan_parquet(files, hive_partitioning=False, include_file_paths=path_column)
                        .select(cols + extra).collect())

    def rows_of(path: Path, cols: list[str], offset: int) -> Callable[[], pl.DataFrame]:
        return lambda: (pl.scan_parquet(path, hive_partitioning=False, include_file_paths=path_column)
                        .select(cols + extra).slice(offset, batch_rows).collect())

    for path in paths:
        with pq.ParquetFile(path) as handle:
            present = set(handle.schema_arrow.names)
            rows = handle.metadata.num_rows
        cols = [c for c in wanted if c in present]
        if group and (cols != group_cols or group_rows + rows > batch_rows):
            yield read(group, group_cols)
            group, group_rows = [], 0
        if rows <= batch_rows:
            group.append(path)
            group_cols, group_rows = cols, group_rows + rows
            continue
        for offset in range(0, rows, batch_rows):
            yield rows_of(path, cols, offset)
    if group:
        yield read(group, group_cols)


def _sink_parquet_batch(part: Callable[[], pl.DataFrame], spool: _Spool, index: int) -> None:
    frame = part().select([pl.col(c).cast(t) for c, t in SCHEMA.items()] + [pl.col(INPUT)])
    spool.write("records", _with_key(frame), index)


def _with_key(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(record_keys(frame))


def _read_csv(source: TextSource, det: _Detected, opts: _Options, report: FileReport, spool: _Spool) -> None:
    """Stream a CSV-shaped file (trace/EAC exports, tracking logs) batch by batch.

    The main thread reads, scans and parses a batch while up to two workers convert the previous
    ones; results are accounted for in file order. Strict mode converts in line, so the error
    names the first bad row.
    """
    path = source.path
    header = det.header
    headerless = header is not None and header[-1] == "<headerless>"
    if headerless:
        header = header[:-1]
        report.notes.append("no #Fields line: assumed the 30 fields of Exchange 2013+")
    header_pending = not headerless and det.format != "msgtrk"
    order = DateOrder()
    columns: list[str] = [key(h) for h in header] if header else []
    pool = None if opts.strict else ThreadPoolExecutor(max_workers=2, thread_name_prefix="mailflow-read")
    pending: deque = deque()

    def settle(limit: int) -> None:
        while len(pending) > limit:
            future, ragged, args = pending.popleft()
            result = future.result()
            if isinstance(result, _NeedsOrder):
                # the first such batch in file order decides, exactly as if read in line
                _decide_dates(det.format, result.raw, order, opts, report)
                result = _convert(det.format, result.raw, path, replace(order), *args[5:], result.cleaning)
            kept, rows = result
            _settle(path, kept, sorted(ragged + rows), opts, report, spool)

    try:
        for recs in _csv.iter_records(source.chunks(), ord(det.separator)):
            data, starts, ends, lines, nfields = recs.data, recs.starts, recs.ends, recs.lines, recs.fields
            if starts.size == 0:
                continue
            arr = np.frombuffer(data, dtype=np.uint8)
            blank = ends <= starts
            first_byte = arr[np.minimum(starts, len(data) - 1)] if len(data) else np.zeros_like(starts)
            comment = (first_byte == 35) & ~blank  # '#'
            skip = blank | comment
            report.rows_ignored += int(comment.sum())  # #TYPE, #Software... #Fields lines
            # '#Fields' lines switch the column list from there on (logs may restart their header)
            segments: list[tuple[int, int, list[str]]] = []
            seg_start = 0
            for i in np.flatnonzero(comment).tolist():
                text = data[starts[i]:ends[i]].decode("utf-8", "replace")
                if text.startswith("#Fields:"):
                    segments.append((seg_start, i, columns))
                    columns = [key(f.strip()) for f in text[len("#Fields:"):].split(",")]
                    seg_start = i + 1
            segments.append((seg_start, len(starts), columns))
            for lo, hi, cols in segments:
                if lo >= hi:
                    continue
                sel = np.zeros(len(starts), dtype=bool)
                sel[lo:hi] = True
                sel &= ~skip
                if header_pending:
                    idx = np.flatnonzero(sel)
                    if idx.size == 0:
                        continue
                    h = int(idx[0])
                    cols = columns = [key(x) for x in _csv.split_header(data[starts[h]:ends[h]], det.separator)]
                    sel[h] = False
                    header_pending = False
                if len(set(cols)) != len(cols):
                    cols = _unique_names(cols)
                good = sel & (nfields == len(cols))
                ragged_rows = []
                for i in np.flatnonzero(sel & ~good).tolist():  # malformed records only
                    got = int(nfields[i])
                    text = data[starts[i]:ends[i]].decode("utf-8", "replace")
                    reason = (f"{got} fields and an unclosed quote (truncated file?)"
                              if i == len(starts) - 1 and text.count('"') % 2 else f"{got} fields")
                    ragged_rows.append((int(lines[i]), f"{len(cols)} fields", reason, text[:_RAW_LIMIT]))
                report.rows_read += int(sel.sum())
                keep = [i for i, name in enumerate(cols) if name in NEEDED[det.format]]
                parse_args = (data, starts[good], ends[good], cols, keep, lines[good], det.separator)
                raw: pl.DataFrame | None = None
                if pool is None and order.how == "undecided":
                    # strict mode converts in line: settle the date order from the batch first
                    # (with workers, a batch whose dates need the order comes back unconverted
                    # and is settled in file order: see `_parse_convert`)
                    stamp = [i for i, name in enumerate(cols) if name == _ts_column(det.format, cols)]
                    if stamp:
                        _decide_dates(det.format, _parse(*parse_args[:4], stamp, *parse_args[5:])[0], order, opts,
                                      report)

                def raw_text(wanted: list[int], _d=data, _s=starts, _e=ends, _l=lines) -> dict[int, str]:
                    # only for rejected rows: find each by its line (lines are sorted)
                    at = np.searchsorted(_l, wanted)
                    return {w: _d[_s[i]:_e[i]].decode("utf-8", "replace") for w, i in zip(wanted, at.tolist())}

                args = (det.format, raw, parse_args, path, replace(order), raw_text, spool, spool.reserve())
                if pool is None:
                    kept, rows = _parse_convert(*args)
                    _settle(path, kept, sorted(ragged_rows + rows), opts, report, spool)
                else:
                    pending.append((pool.submit(_parse_convert, *args), ragged_rows, args))
                    settle(2)
        settle(0)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    if header_pending:
        raise InputError("CSV file without rows", expected="a header line and rows", got="no header",
                         where=location(path))


def _parse(data: bytes, starts: np.ndarray, ends: np.ndarray, cols: list[str], keep: list[int],
           lines: np.ndarray, separator: str = ",") -> tuple[pl.DataFrame, Cleaning]:
    """The batch's raw columns and ``source_line``, and what the parser learnt of their
    cleaning (`_csv.parse_batch`)."""
    cleaning: dict[str, tuple[bool, bool]] = {}
    raw = _csv.parse_batch(data, starts, ends, cols, keep, separator, cleaning=cleaning)
    return raw.with_columns(pl.Series("source_line", lines)), cleaning


@dataclass
class _NeedsOrder:
    """A batch handed back unconverted: its dates need the file's day/month order, undecided
    when the batch was handed out."""

    raw: pl.DataFrame
    cleaning: Cleaning


def _parse_convert(fmt: str, raw: pl.DataFrame | None, parse_args: tuple, path: Path, order: DateOrder,
                   raw_text: callable, spool: _Spool, index: int
                   ) -> tuple[int, list[tuple[int, str, str, str]]] | _NeedsOrder:
    """Worker: parse the batch's records (unless already parsed) and convert them. While the
    file's date order is undecided, a batch with culture-form dates (the only ones it changes)
    comes back unconverted, for the main thread to decide in file order; ISO and other stamps
    convert the same whatever the order, so most files never wait."""
    cleaning: Cleaning = NOTHING_KNOWN
    if raw is None:
        raw, cleaning = _parse(*parse_args)
    if order.how == "undecided" and raw.height:
        name = _ts_column(fmt, raw.columns)
        if name in raw.columns and raw.get_column(name).str.contains(CULTURE_DATE).any():
            return _NeedsOrder(raw, cleaning)
    return _convert(fmt, raw, path, order, raw_text, spool, index, cleaning)


def _unique_names(columns: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for c in columns:
        n = seen.get(c, 0)
        seen[c] = n + 1
        out.append(c if n == 0 else f"{c}_{n}")
    return out


def _read_json_batches(batches: Iterator[_json.JsonBatch], det: _Detected, source: TextSource,
                       opts: _Options, report: FileReport, spool: _Spool) -> None:
    path = source.path
    order = DateOrder()
    for batch in batches:
        report.rows_ignored += batch.ignored
        if isinstance(batch, _json.FrameBatch):
            if batch.frame.height == 0:
                continue
            report.rows_read += batch.frame.height
            names: dict[str, str] = {}
            for original in batch.frame.columns:
                names.setdefault(key(original), original)  # the first of two spellings wins
            raw = batch.frame.select([pl.col(o).alias(k) for k, o in names.items()]).with_columns(
                pl.Series("source_line", batch.lines, dtype=pl.Int64))
            frame_lines, frame_texts = batch.lines, batch.texts

            def frame_text(wanted: list[int], _t=frame_texts, _l=frame_lines) -> dict[int, str]:
                at = np.searchsorted(_l, wanted)
                return {w: _t[int(i)] for w, i in zip(wanted, at.tolist())}

            _decide_dates(det.format, raw, order, opts, report)
            kept, rows = _convert(det.format, raw, path, replace(order), frame_text, spool, spool.reserve())
            _settle(path, kept, rows, opts, report, spool)
            continue
        if batch.rejects:
            if opts.strict:
                _fail_strict(path, batch.rejects[0])
            spool.write("rejects", _reject_frame(str(path), batch.rejects))
            report.rows_skipped += len(batch.rejects)
        report.rows_read += len(batch.records) + len(batch.rejects)
        if not batch.records:
            continue
        names = {}
        for record in batch.records:
            for k in record:
                if k not in names:
                    names[k] = key(k)
        columns: dict[str, list[str | None]] = {}
        for original, normalized in names.items():
            if normalized in columns:
                continue
            columns[normalized] = [r.get(original) for r in batch.records]
        raw = pl.DataFrame(columns, schema={k: pl.String for k in columns})
        raw = raw.with_columns(pl.Series("source_line", batch.lines, dtype=pl.Int64))
        texts, lines = batch.texts, batch.lines

        def raw_text(wanted: list[int], _t=texts, _l=lines) -> dict[int, str]:
            # the record as written in the file (its line, or its element of the array)
            index = {line: i for i, line in enumerate(_l)}
            return {w: _t[index[w]] for w in wanted if w in index}

        _decide_dates(det.format, raw, order, opts, report)
        kept, rows = _convert(det.format, raw, path, replace(order), raw_text, spool, spool.reserve())
        _settle(path, kept, rows, opts, report, spool)


def _read_postfix(source: TextSource, opts: _Options, report: FileReport, spool: _Spool) -> None:
    from analyzer.readers._postfix import Carry, held_records, parse_postfix

    path = source.path
    mtime = dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.timezone.utc)
    line_base = 1
    carry = Carry()  # a message's lines straddle batches: its client/from lines come along
    for data in source.line_chunks():
        text = data.decode("utf-8")
        lines = pl.Series("line", [text]).str.strip_suffix("\n").str.split("\n").explode()
        lines = lines.str.strip_suffix("\r")
        n = lines.len()
        frame = pl.DataFrame({"line": lines,
                              "source_line": np.arange(line_base, line_base + n, dtype=np.int64)})
        first, line_base = line_base, line_base + n
        records, rejects = parse_postfix(frame, year=opts.year, mtime=mtime, carry=carry)
        nonblank = int(frame.get_column("line").str.strip_chars().str.len_bytes().gt(0).sum())
        if rejects.height:
            rows = [(r[0], "a Postfix delivery line", r[1], r[2])
                    for r in rejects.select("source_line", "reason", "raw").iter_rows()]
            if opts.strict:
                _fail_strict(path, rows[0])
            spool.write("rejects", _reject_frame(str(path), rows))
            report.rows_skipped += len(rows)
        # this batch's lines that gave records, wherever they went: records may include the
        # last batch's held ones, and some of this batch's may be held for the next
        used = sum(part.filter(pl.col("source_line") >= first).get_column("source_line").n_unique()
                   for part in (records, carry.held) if part is not None)
        report.rows_read += used + rejects.height
        report.rows_ignored += max(nonblank - used - rejects.height, 0)
        _spool_postfix(records, path, report, spool)
    _spool_postfix(held_records(carry), path, report, spool)


def _spool_postfix(records: pl.DataFrame, path: Path, report: FileReport, spool: _Spool) -> None:
    if not records.height:
        return
    final = finalize(records, "postfix", str(path))
    # A delivery record is the hop Postfix -> relay: its client is Postfix's own
    # egress, known only when the reply names it ("... from [203.0.113.25]"). The
    # app that handed the message to Postfix is the client of the receive record.
    final = final.with_columns(
        pl.when(pl.col("event").is_in(["receive"]) | (pl.col("status") == "reject"))
        .then(pl.col("client_ip")).otherwise(pl.col("throttled_ip")).alias("client_ip"))
    final = _with_key(final)
    report.rows_kept += final.height
    spool.write("records", final)


_SPOOLS: list[Path] = []


@atexit.register
def _cleanup() -> None:
    for d in _SPOOLS:
        shutil.rmtree(d, ignore_errors=True)


def ingest(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    year: int | None = None,
    strict: bool = False,
    date_order: str | None = None,
    spool_dir: str | os.PathLike | None = None,
    batch_bytes: int = 16 << 20,
    on_file: Callable[[FileReport, int, int], None] | None = None,
    sink: RecordSink | None = None,
) -> Ingest:
    """Read every input file into the normalized record table (see `read`) and report per file.

    Options: `year` for Postfix timestamps without one (default: the file's modification year);
    `strict` makes the first malformed row an InputError instead of a reject; `date_order`
    (``"dmy"``/``"mdy"``) overrides the per-file day/month decision; `spool_dir` keeps the
    normalized Parquet batches (default: a temporary directory removed at exit); `on_file` is
    called after each file with its report, its position and the number of files (progress).

    With a `sink`, the records are not kept: each batch (normalized columns plus the 64-bit
    de-duplication hash `_key` and, from Parquet inputs, the `INPUT` file; duplicates not
    removed) is handed to ``sink(number, frame)`` as
    soon as it is converted, from the reader's worker threads, while the next batches are read.
    Numbers follow input order (file, then line); memory stays bounded by a few batches. The
    returned `Ingest` then only holds the reports and the rejects.
    """
    if date_order not in (None, "dmy", "mdy"):
        raise InputError("invalid date_order option", expected="'dmy' or 'mdy'", got=repr(date_order),
                         where="date_order")
    files = expand_paths(paths)
    if spool_dir is None:
        spool = Path(tempfile.mkdtemp(prefix="mailflow-spool-"))
        _SPOOLS.append(spool)
    else:
        spool = Path(spool_dir)
        spool.mkdir(parents=True, exist_ok=True)
        for old in list(spool.glob("records-*.parquet")) + list(spool.glob("rejects-*.parquet")):
            old.unlink()
    opts = _Options(year, strict, date_order, batch_bytes)
    writer = _Spool(spool, sink)
    reports = []
    parquet = [p for p in files if _is_parquet(p)]
    if parquet:
        # one streaming pass over all of them: a records/ folder is hundreds of small parts
        reports.extend(_read_parquet(parquet, writer))
        if on_file is not None:
            on_file(reports[-1], len(reports), len(files))
    for path in files:
        if path in parquet:
            continue
        source = TextSource(path, chunk_size=batch_bytes)
        det = _detect(source)
        report = FileReport(str(path), det.format, compressed=source.compressed)
        if det.container == "config":
            report.notes.append("connector or accepted-domain export: configuration, not records")
        elif det.format == "empty":
            report.notes.append("an empty export: no records")
        elif det.container == "csv":
            _read_csv(source, det, opts, report, writer)
        elif det.container == "ndjson":
            _read_json_batches(_json.iter_ndjson(source), det, source, opts, report, writer)
        elif det.container == "json":
            _read_json_batches(iter([_json.read_document(source)]), det, source, opts, report, writer)
        elif det.container == "postfix":
            _read_postfix(source, opts, report, writer)
        report.encoding = source.encoding
        reports.append(report)
        if on_file is not None:
            on_file(report, len(reports), len(files))
    return Ingest(reports, spool)


def read(paths: str | os.PathLike | Iterable[str | os.PathLike], **options) -> pl.LazyFrame:
    """Every record of the input files (files, directories, globs) as one LazyFrame with the
    columns of `SCHEMA`, duplicates across overlapping exports removed. Options as `ingest`."""
    return ingest(paths, **options).frame
