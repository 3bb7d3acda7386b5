"""`mailflow analyze` as a library: read the inputs, attribute every record to connectors, find
what an admin must act on, and write the outputs.

The rules are in docs/analysis.md; `analyzer.attribution` and `analyzer.findings` implement them
as pure functions of (records, configuration, options), so the same records can be replayed
against a proposed configuration. This module only wires them to the inputs and outputs:
records stream batch by batch from the readers' worker threads through the attributor into
Hive-partitioned Parquet (`RecordWriter`), duplicates are then removed day by day, and the
findings are computed over that Parquet one day partition at a time.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from analyzer import __version__, _io, _partials, attribution, config, findings, readers
from analyzer.errors import ConfigError, InputError
from analyzer.matching import PrefixTable
from analyzer.ranges import load_table
from analyzer.state import State, digest

__all__ = [
    "SEVERITIES",
    "Analysis",
    "Options",
    "Part",
    "RecordWriter",
    "analyze",
    "attribution_fingerprint",
    "classify_inputs",
    "connector_usage",
    "findings_and_hotspots",
    "link_parts",
    "load_cloud_ranges",
    "load_ip_tables",
    "reusable_parts",
    "severity_at_least",
]

SEVERITIES = findings.SEVERITIES


@dataclass(frozen=True)
class Options:
    """Everything that changes the outcome besides the records and the configuration."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    year: int | None = None
    date_order: str | None = None
    strict: bool = False
    attribution: attribution.Options = field(default_factory=attribution.Options)
    findings: findings.Options = field(default_factory=findings.Options)


@dataclass
class Analysis:
    """What one run produced (the outputs are written by `analyzer.reports.write`)."""

    records_dir: Path  # attributed records, Hive-partitioned by date (in the staging area)
    findings: pl.DataFrame
    hotspots: pl.DataFrame
    connectors: pl.DataFrame
    totals: pl.DataFrame  # per input file: format, encoding, rows read/kept/skipped/ignored, duplicates
    rejects: pl.DataFrame  # rows that could not be read
    config_files: list[str]
    log_files: list[str]
    timings: dict[str, float]
    records: int = 0
    state: State | None = None
    run_key: str | None = None  # to commit to the state once the outputs are published
    cache: _partials.Cache | None = None  # per-day partial aggregates, for the report's too

    def period(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        """The first and last record's timestamps (None, None without records), day by day
        through the cache."""
        bounds = [_partials.collect(day, lambda frame: [frame.select(
            pl.col("timestamp").min().alias("first"), pl.col("timestamp").max().alias("last"))], self.cache)[0]
            for day in _partials.record_days(self.records_dir)]
        if not bounds:
            return None, None
        both = pl.concat(bounds)
        return both["first"].min(), both["last"].max()  # type: ignore[return-value]

    def records_frame(self) -> pl.LazyFrame:
        """The attributed records (lazy)."""
        parts = sorted(self.records_dir.rglob("*.parquet"))
        if not parts:
            return pl.LazyFrame()
        return pl.scan_parquet(parts, hive_partitioning=True)


def classify_inputs(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[Path]]:
    """Split the inputs (files, directories, globs) into (configuration exports, logs) by
    content: connector and accepted-domain exports found among the inputs are configuration."""
    files = readers.expand_paths(list(paths))
    configs, logs = [], []
    for path in files:
        (configs if config.detect_config(path) else logs).append(path)
    return configs, logs


def load_ip_tables(specs: Mapping[str, str | os.PathLike]) -> dict[str, tuple[PrefixTable, list[str]]]:
    """`--ip-table NAME=FILE` tables: NAME -> (compiled table, labels)."""
    tables = {}
    for name, path in specs.items():
        if not name.isidentifier():
            raise ConfigError("invalid --ip-table name", expected="NAME=FILE with NAME a word such as asn",
                              got=repr(name), where=str(path))
        tables[name] = load_table(path)
    return tables


def load_cloud_ranges(paths: Sequence[str | os.PathLike]) -> dict[str, tuple[PrefixTable, list[str]]]:
    """Cloud providers' published ranges (AWS, Azure, Google...): a connector range inside them
    is shared hosting, a `connector_config` finding. Keyed by file name."""
    return {Path(p).name: load_table(p) for p in paths}


def analyze(
    inputs: Sequence[str | os.PathLike],
    staging: Path,
    *,
    connector_files: Sequence[str | os.PathLike] = (),
    domain_files: Sequence[str | os.PathLike] = (),
    ip_tables: Mapping[str, str | os.PathLike] = {},
    cloud_ranges: Sequence[str | os.PathLike] = (),
    options: Options = Options(),
    state: State | None = None,
    window: dt.timedelta | None = None,
    force: bool = False,
    on_file: Callable[[readers.FileReport, int, int], None] | None = None,
    cache: _partials.Cache | None = None,
) -> Analysis | None:
    """Run the analysis; attributed records go to ``staging/records`` (Hive-partitioned).

    With a `state` (scheduled runs), only new or changed inputs are read; every record ever
    ingested goes to the records output, and the findings cover the last `window` before the
    newest record. Returns None when nothing changed since the state's last run (same inputs,
    configuration and options) and `force` is not set: the previous outputs still hold.

    With a `cache` (`analyzer._partials`), the per-day partial aggregates of the findings and
    the connector usage are kept there and read back by any later run over the same records.
    """
    timings: dict[str, float] = {}
    start = time.perf_counter()
    configs, logs = classify_inputs(inputs)
    configs += [Path(p) for p in list(connector_files) + list(domain_files)]
    connectors, domains = config.load_config(configs) if configs else (config.Connectors(), ())
    tables = load_ip_tables(ip_tables)
    clouds = load_cloud_ranges(cloud_ranges)
    timings["configuration"] = time.perf_counter() - start
    if not logs and (state is None or not state.entries):
        raise InputError("no logs to analyze", expected="message traces, tracking logs, Postfix logs or EmailEvents exports",
                         got="only configuration exports" if configs else "no files",
                         where=", ".join(str(p) for p in inputs) or "(no inputs)")

    attributor = attribution.Attributor.build(connectors, domains, ip_tables=tables, options=options.attribution)
    fingerprint = attribution_fingerprint(connectors, domains, ip_tables, options.attribution)
    records_dir = staging / "records"
    if state is None:  # a scheduled run's writer keeps its hashes in the state (below)
        writer = RecordWriter(attributor, records_dir, staging / "keys", since=options.since, until=options.until,
                              fingerprint=fingerprint)

    t = time.perf_counter()
    run_key = None
    reused = (reusable_parts(logs, fingerprint)
              if state is None and options.since is None and options.until is None else None)
    if reused is not None:
        # the records/ of an earlier run with this very attribution: already attributed and
        # de-duplicated, so they are linked into place instead of being read and written again
        reports = link_parts(reused, records_dir)
        writer.rows = sum(r.rows_kept for r in reports)
        if on_file is not None and reports:
            on_file(reports[-1], len(reports), len(reports))
        totals, rejects = readers.totals_frame(reports, {}), pl.DataFrame(schema=readers.REJECTS_SCHEMA)
    elif state is None:
        # read, attribute and write in one pass: each batch goes from the readers' worker
        # threads straight to its date partitions, so memory is bounded by a few batches
        ingest = readers.ingest(logs, year=options.year, strict=options.strict, date_order=options.date_order,
                                spool_dir=staging / "spool", on_file=on_file, sink=writer)
        totals, rejects = ingest.totals(), ingest.rejects().collect()
    else:
        todo, prints = state.plan(logs)
        state.touch(prints)
        settings = repr((sorted(str(p) for p in configs), [digest(p) for p in sorted(configs)],
                         sorted((k, str(v)) for k, v in ip_tables.items()), [str(p) for p in cloud_ranges],
                         options, window))
        if not todo and not force and state.last_run == state.run_key(settings):
            return None
        if todo:
            ingest = readers.ingest(todo, year=options.year, strict=options.strict, date_order=options.date_order,
                                    spool_dir=staging / "spool", on_file=on_file)
            _store(state, ingest, prints)
        run_key = state.run_key(settings)
        totals, rejects = state.totals(), state.rejects()
        timings["read"] = time.perf_counter() - t
        t = time.perf_counter()
        # the last run's attributed records are kept in the state: only new and changed files'
        # records are attributed and de-duplicated (against them), unless that is not exact
        generation = state.new_generation()
        writer = RecordWriter(attributor, records_dir, generation / "keys", since=options.since,
                              until=options.until, fingerprint=fingerprint, keep_keys=True)
        sources = {e.records: e.report.get("path", e.path) for e in state.entries.values()}
        resumed = _resume(state, writer, sources, options)
        done = set(resumed[0]["files"]) if resumed is not None else set()
        fresh = [part for part in state.parts() if part.name not in done]
        # hashed again rather than read: the state's hashes may be another polars version's
        for batch in readers.iter_parquet(fresh, list(readers.SCHEMA)):
            writer(writer.reserve(), batch.with_columns(readers.record_keys(batch)))
    # without a state, "records" covers reading too: batches are attributed as they are read
    dupes = writer.finish()
    day_parts = _io.record_day_parts(records_dir)  # the parts are final from here on
    if state is not None:
        dupes = _save_generation(generation, writer, sources, resumed, dupes)
        # the writer counted this run's records only; the parts kept from earlier runs count too
        # (their footers, remembered for the day identities read next)
        count = sum(_partials.part_stamps(part)[1] for parts in day_parts for part in parts)
    else:
        count = writer.rows
    totals = totals.with_columns(
        pl.col("source_file").replace_strict(dupes, default=0, return_dtype=pl.Int64).alias("duplicates"))
    timings["records"] = time.perf_counter() - t

    t = time.perf_counter()
    days = _partials.days_of(day_parts)
    if days and window is not None:
        days = _in_window(days, [parts[0].parent.name for parts in day_parts], window)
    # day partition by day partition (a slice of a day's parts at a time where a rule holds
    # rows): memory bounded by the day's aggregates, not the period
    aggregator = findings.PolarsAggregator(days, cache=cache) if days else None
    all_findings, spots = findings_and_hotspots(aggregator, connectors, domains, clouds=clouds, tables=tables,
                                                options=options.findings)
    usage = connector_usage(days or None, connectors, cache=cache)
    if cache is not None:
        cache.prune()
    timings["findings"] = time.perf_counter() - t
    return Analysis(records_dir, all_findings, spots, usage, totals, rejects, [str(p) for p in configs],
                    [str(p) for p in logs], timings, count, state, run_key, cache)


def _in_window(days: list[_partials.Day], names: list[str], window: dt.timedelta) -> list[_partials.Day]:
    """The `days` (partitions `names`) limited to the records in `window` before the newest. A
    day wholly inside is kept as it is, so its partials stay cached (`analyzer._partials`);
    the others are filtered, and a filtered day is not what its identity names."""
    starts = []
    for name in names:
        try:
            starts.append(dt.datetime.fromisoformat(name.removeprefix("date=")).replace(tzinfo=dt.timezone.utc))
        except ValueError:  # the partition of records without a timestamp
            starts.append(None)
    dated = [day for day, start in zip(days, starts) if start is not None]
    # a record's partition is its UTC day: the newest record is in the last dated partition
    frames = [dated[-1].frame] if dated else [day.frame for day in days]
    newest = pl.concat(frames).select(pl.col("timestamp").max()).collect().item()
    if newest is None:
        return days
    cutoff = newest - window
    return [day if start is not None and start > cutoff
            else day.filter(pl.col("timestamp") > cutoff)
            for day, start in zip(days, starts)]


def findings_and_hotspots(
    aggregator: findings.Aggregator | None,
    connectors: config.Connectors,
    domains: Sequence[config.AcceptedDomain],
    *,
    clouds: Mapping[str, tuple[PrefixTable, list[str]]],
    tables: Mapping[str, object],
    options: findings.Options,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Every finding (configuration and traffic, sorted) and the hot spots over the records behind
    `aggregator` (any engine's; None when there are no records). One aggregator serves both, so
    the deferral windows are computed once. `tables` are the ``--ip-table`` names: the rules group
    unrouted traffic by their label columns."""
    found = [attribution.config_findings(connectors, domains, cloud_tables=clouds)]
    if tables and not options.ip_tables:
        options = replace(options, ip_tables=tuple(tables))
    if aggregator is None:
        spots = pl.DataFrame(schema=findings.HOTSPOTS_SCHEMA)
    else:
        found.append(findings.traffic_findings_from(aggregator, connectors, options))
        spots = findings.hotspots_from(aggregator, connectors, options)
    return findings.sort_findings(pl.concat([f.cast(findings.FINDINGS_SCHEMA) for f in found])), spots


class RecordWriter:
    """Attributes batches of normalized records and writes them Hive-partitioned by day
    (``records/date=YYYY-MM-DD/part-NNNNNNNN.parquet``, numbered in the order written), ready for
    the findings; thread-safe, so the readers' workers call it directly (`readers.RecordSink`).

    A day's records are gathered from batch to batch and written once `flush_rows` records are
    waiting (the day with the most goes first), so a day is a few large parts, not one small part
    a batch: every later scan of the records (the findings, the report, BI tools) pays per file
    and per row group.

    Duplicates across overlapping exports are removed by `finish`, one day at a time: the
    de-duplication hash covers the timestamp, so a record and its copies always fall on the same
    day, and each part's hashes and batch numbers are kept beside it (12 bytes a record) until
    then. Memory is bounded by `flush_rows` records and a batch while writing, and by one day's
    hashes while de-duplicating.

    With `keep_keys` (scheduled runs), the hashes of the records kept stay under `keys` after
    `finish`, so a later run can add to the same parts (`resume`): it then writes and
    de-duplicates only the days its new records fall on, against the parts already there.
    """

    def __init__(self, attributor: attribution.Attributor, root: Path, keys: Path, *,
                 since: dt.datetime | None = None, until: dt.datetime | None = None,
                 flush_rows: int = 200_000, fingerprint: str = "", keep_keys: bool = False) -> None:
        self.attributor = attributor
        # stamped into every part (`_metadata`), so a later run can reuse the parts
        self.fingerprint = fingerprint
        self.run = uuid.uuid4().hex
        self.root = root
        self.keys = keys
        self.since, self.until = since, until
        self.flush_rows = flush_rows
        self.rows = 0  # records written (before de-duplication, until `finish`)
        self._lock = threading.Lock()
        self._next = 0
        self._parts = 0
        self._waiting: dict[str, list[tuple[int, pl.DataFrame]]] = {}  # day -> (batch number, its rows)
        self._waiting_rows = 0
        self.keep_keys = keep_keys
        self.day_files: dict[str, set[str]] = {}  # day -> the source files of the records written to it
        self.days_with_copies: set[str] = set()  # days `finish` removed copies from

    def resume(self, next_batch: int, next_part: int) -> None:
        """Continue parts already under `root` and `keys`: new batches and parts are numbered
        after theirs, so the records already there come first in input order."""
        self._next, self._parts = next_batch, next_part

    @property
    def next_numbers(self) -> tuple[int, int]:
        """(next batch number, next part number): what a later run `resume`s from."""
        return self._next, self._parts

    def reserve(self) -> int:
        """A batch number after every one handed out (for batches not numbered by a reader)."""
        with self._lock:
            self._next += 1
            return self._next - 1

    def __call__(self, index: int, batch: pl.DataFrame) -> None:
        """Attribute `batch` (normalized columns plus `_key`, and `readers.INPUT` for Parquet
        inputs) and add it as batch `index`."""
        with self._lock:
            self._next = max(self._next, index + 1)
        if self.since is not None:
            batch = batch.filter(pl.col("timestamp") >= self.since)
        if self.until is not None:
            batch = batch.filter(pl.col("timestamp") < self.until)
        if batch.height == 0:
            return
        keys = batch.get_column("_key")
        origin = (batch.get_column(readers.INPUT) if readers.INPUT in batch.columns
                  else pl.repeat(None, batch.height, dtype=pl.String, eager=True).alias(readers.INPUT))
        attributed = self.attributor.attribute(batch.drop("_key", readers.INPUT, strict=False)).with_columns(
            pl.col("timestamp").dt.date().alias("_day"), keys, origin)
        day = attributed.get_column("_day")
        # most batches hold a single day (logs are written in time order): no copy to split them
        days = ({(day[0],): attributed} if day.n_unique() == 1
                else attributed.partition_by("_day", as_dict=True, maintain_order=True))
        ready = []
        with self._lock:
            for (day,), rows in days.items():
                self._waiting.setdefault(_day_name(day), []).append((index, rows.drop("_day")))
                self._waiting_rows += rows.height
                self.day_files.setdefault(_day_name(day), set()).update(
                    rows.get_column("source_file").unique().drop_nulls().to_list())
            self.rows += attributed.height
            while self._waiting_rows >= self.flush_rows:
                ready.append(self._take(max(self._waiting, key=self._day_rows)))
        for part in ready:  # written outside the lock: the other worker keeps adding
            self._write(*part)

    def _metadata(self, day: str, number: int) -> dict[str, str]:
        return {_partials.FINGERPRINT: self.fingerprint, _partials.RUN: self.run, _partials.PART: str(number),
                _partials.DAY: day}

    def _day_rows(self, day: str) -> int:
        return sum(rows.height for _, rows in self._waiting[day])

    def _take(self, day: str) -> tuple[str, int, list[tuple[int, pl.DataFrame]]]:
        chunks = self._waiting.pop(day)
        self._waiting_rows -= sum(rows.height for _, rows in chunks)
        self._parts += 1
        return day, self._parts - 1, chunks

    def _write(self, day: str, number: int, chunks: list[tuple[int, pl.DataFrame]]) -> None:
        chunks.sort(key=lambda chunk: chunk[0])  # batch order: a day reads back in input order
        frame = pl.concat([rows for _, rows in chunks])
        name = f"part-{number:08d}"
        target = self.root / f"date={day}" / f"{name}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        frame.drop("_key", readers.INPUT).write_parquet(target, metadata=self._metadata(day, number), **_PARQUET)
        hashes = self.keys / day / f"{name}.npz"
        hashes.parent.mkdir(parents=True, exist_ok=True)
        batches = np.concatenate([np.full(rows.height, index, dtype=np.int32) for index, rows in chunks])
        # the Parquet inputs of the rows (code into `inputs`, -1: the row's source_file is its
        # input; no codes at all when that holds for every row, as it does for all but Parquet)
        origin = frame.get_column(readers.INPUT)
        inputs = origin.drop_nulls().unique(maintain_order=True)
        codes = (origin.replace_strict(inputs, pl.int_range(inputs.len(), eager=True), default=-1,
                                       return_dtype=pl.Int32).to_numpy() if inputs.len() else np.empty(0, np.int32))
        np.savez(hashes, key=frame.get_column("_key").to_numpy(), batch=batches, input=codes,
                 inputs=np.array(inputs.to_list(), dtype=str))

    def _replace(self, target: Path, hashes: Path, kept: pl.DataFrame, mask: np.ndarray) -> None:
        """Replace a part by its `kept` rows (and its hashes by theirs, `mask`), or remove both
        when none is left. Through new files: a part may be a hard link of an earlier run's."""
        if not kept.height:
            target.unlink()
            hashes.unlink()
            return
        number = int(target.stem.removeprefix("part-"))
        tmp = target.with_suffix(".tmp")
        kept.write_parquet(tmp, metadata=self._metadata(target.parent.name.removeprefix("date="), number),
                           **_PARQUET)
        os.replace(tmp, target)
        if self.keep_keys:
            with np.load(hashes) as part:
                arrays = {k: (part[k] if k == "inputs" or not part[k].size else part[k][mask]) for k in part.files}
            tmp = hashes.with_name(hashes.stem + ".tmp.npz")
            np.savez(tmp, **arrays)
            os.replace(tmp, hashes)

    def drop_files(self, files: set[str], days: Iterable[str]) -> None:
        """Remove the records of the source `files` (changed since an earlier run wrote them)
        from the parts of `days`."""
        for day in days:
            for target in sorted((self.root / f"date={day}").glob("*.parquet")):
                frame = pl.read_parquet(target)
                mask = ~frame.get_column("source_file").is_in(list(files))
                if mask.all():
                    continue
                self._replace(target, self.keys / day / f"{target.stem}.npz", frame.filter(mask), mask.to_numpy())

    def finish(self) -> dict[str, int]:
        """Write what is still waiting, then remove every record's later copies, day by day;
        returns the copies removed per input file (a Parquet input's copies count against it,
        not against the source_file they name). The first occurrence in input order (batch
        number, then row) is kept."""
        while self._waiting:
            self._write(*self._take(next(iter(self._waiting))))
        removed: dict[str, int] = {}
        if not self.keys.exists():
            return removed
        for day in sorted(d for d in self.keys.iterdir() if d.is_dir()):
            if day.name not in self.day_files:  # no new records (parts kept from an earlier run)
                continue
            names = sorted(day.glob("*.npz"))
            loaded = []
            for name in names:
                with np.load(name) as part:
                    loaded.append((part["key"], part["batch"], part["input"], part["inputs"]))
            hashes = np.concatenate([key for key, *_ in loaded])
            # Most days hold no copies at all, which a count of distinct hashes tells at a
            # seventh of the cost of finding the first of each.
            if pl.Series(hashes).n_unique() == len(hashes):
                continue
            batches = np.concatenate([batch for _, batch, *_ in loaded])
            # A batch's rows of a day sit together in one part, in input order: sorting stably
            # by batch number gives the day's records in input order.
            order = np.argsort(batches, kind="stable")
            first = np.empty(len(hashes), dtype=bool)
            first[order] = pl.Series(hashes[order]).is_first_distinct().to_numpy()
            offset = 0
            for name, (key, _, codes, inputs) in zip(names, loaded):
                size = len(key)
                fresh = first[offset:offset + size]
                offset += size
                if fresh.all():
                    continue
                target = self.root / f"date={day.name}" / f"{name.stem}.parquet"
                frame = pl.read_parquet(target)
                mask = pl.Series(fresh)
                if not codes.size:
                    codes = np.full(size, -1, dtype=np.int32)
                gone = ~fresh
                for code, n in zip(*np.unique(codes[gone & (codes >= 0)], return_counts=True)):
                    removed[str(inputs[code])] = removed.get(str(inputs[code]), 0) + int(n)
                copies = frame.filter(pl.Series(gone & (codes < 0)))
                for file, n in copies.group_by("source_file").len().iter_rows():
                    removed[file] = removed.get(file, 0) + n
                self.rows -= int((~fresh).sum())
                self.days_with_copies.add(day.name)
                self._replace(target, name, frame.filter(mask), fresh)
        if not self.keep_keys:
            shutil.rmtree(self.keys, ignore_errors=True)
        return removed


# zstd level 1: most of level 3's size at a lower cost (the records are written once per run)
_PARQUET: dict = {"compression": "zstd", "compression_level": 1, "statistics": True}


def attribution_fingerprint(connectors: config.Connectors, domains: Sequence[config.AcceptedDomain],
                            ip_tables: Mapping[str, str | os.PathLike], options: attribution.Options) -> str:
    """A digest of everything that decides a record's attribution columns: the connectors and
    accepted domains (not where they were read), the ``--ip-table`` files' names and contents,
    the attribution options and this version of the tool."""
    def strip(item: object) -> dict:
        return {k: v for k, v in asdict(item).items() if k != "source"}  # type: ignore[call-overload]

    parts = (__version__, attribution.REVISION,
             [[strip(c) for c in group] for group in (connectors.inbound, connectors.outbound,
                                                     connectors.receive, connectors.send)],
             sorted((strip(d) for d in domains), key=repr),
             sorted((name, digest(Path(path))) for name, path in ip_tables.items()),
             asdict(options))
    return hashlib.sha256(repr(parts).encode()).hexdigest()


@dataclass(frozen=True)
class Part:
    """A records/ part written by `RecordWriter` (see `reusable_parts`)."""

    path: Path
    day: str
    number: int
    rows: int


def reusable_parts(logs: Sequence[Path], fingerprint: str) -> list[Part] | None:
    """The parts behind `logs` when every one is a records/ part of one earlier run whose
    attribution had this `fingerprint`: those records are attributed as this run would and hold
    no duplicates, so they can be reused as they are. None otherwise (any other file, another
    run or attribution, a part given twice, parts of an older version without the metadata)."""
    if not logs:
        return None
    parts, runs, seen = [], set(), set()
    for path in logs:
        found = _partials.part_stamps(path)
        if found is None:
            return None  # the readers say what is wrong with it
        stamp, rows = found
        run, number = stamp.get(_partials.RUN), stamp.get(_partials.PART, "")
        if stamp.get(_partials.FINGERPRINT) != fingerprint or not run or not number.isdigit():
            return None
        try:
            day = dt.date.fromisoformat(stamp.get(_partials.DAY, "")).isoformat()
        except ValueError:
            return None
        if (run, int(number)) in seen:  # the same part twice (a copy of the folder) holds duplicates
            return None
        seen.add((run, int(number)))
        runs.add(run)
        parts.append(Part(path, day, int(number), rows))
    return parts if len(runs) == 1 else None


def link_parts(parts: Sequence[Part], root: Path) -> list[readers.FileReport]:
    """Put `parts` in the records/ folder `root` under their own day and number: hard links
    (instant, no space) where the file system allows, copies otherwise. Returns a report per
    part as the Parquet reader would."""
    for part in parts:
        _link(part.path, root / f"date={part.day}" / f"part-{part.number:08d}.parquet")
    return [readers.FileReport(str(p.path), "parquet", encoding="parquet", rows_read=p.rows, rows_kept=p.rows,
                               notes=[_REUSED]) for p in parts]


_REUSED = "records of an earlier run with the same attribution: reused as they are"


def _link(source: Path, target: Path) -> None:
    """`target` as a hard link of `source` (instant, no space), or a copy where the file system
    refuses links (another device, no permission)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
            raise
        shutil.copyfile(source, target)


def _link_tree(source: Path, target: Path) -> None:
    """Every file under `source` linked (or copied) to the same place under `target`."""
    for path in sorted(source.rglob("*")):
        if path.is_file():
            _link(path, target / path.relative_to(source))


def _resume(state: State, writer: RecordWriter, sources: dict[str, str], options: Options
            ) -> tuple[dict[str, Any], set[str]] | None:
    """Start `writer` from the state's records generation: its parts and hashes linked into
    place, the records of changed files (`sources`: the state's records files -> the source
    file they hold) removed. Returns the generation's meta and the changed files' names, or
    None when every record must be attributed again: no generation, another attribution or
    de-duplication hash, a time filter (now or when the generation was written), or a changed
    file on a day where copies were removed (its records may have stood for copies in other
    files, now gone)."""
    found = state.generation()
    if found is None or options.since is not None or options.until is not None:
        return None
    folder, meta = found
    if meta.get("fingerprint") != writer.fingerprint or meta.get("filtered", True):
        return None
    if meta.get("key") != readers.KEY_FORMAT:  # its hashes cannot be compared with this run's
        return None
    parts = sorted((p.parent.name.removeprefix("date="), p.stem)
                   for p in (folder / "records").glob("*/part-*.parquet"))
    hashes = sorted((p.parent.name, p.stem) for p in (folder / "keys").glob("*/part-*.npz"))
    if len(parts) != meta["parts"] or parts != hashes:
        return None  # parts or hashes missing (removed by hand?): not what meta.json describes
    gone = {source for name, source in meta["files"].items() if name not in sources}
    touched = [day for day, info in meta["days"].items() if gone & set(info["files"])]
    if any(meta["days"][day]["copies"] for day in touched):
        return None
    _link_tree(folder / "records", writer.root)
    _link_tree(folder / "keys", writer.keys)
    # new parts must never take a linked part's name: writing it would change the kept one
    numbers = [int(stem.removeprefix("part-")) for _, stem in parts]
    writer.resume(meta["next_batch"], max([meta["next_part"], *(n + 1 for n in numbers)]))
    writer.drop_files(gone, touched)
    return meta, gone


def _save_generation(folder: Path, writer: RecordWriter, sources: dict[str, str],
                     resumed: tuple[dict[str, Any], set[str]] | None, removed: dict[str, int]) -> dict[str, int]:
    """Keep the run's records (linked) and their hashes as the generation in `folder`, with its
    meta.json; returns the copies removed per source file over every run the records hold."""
    meta, gone = resumed if resumed is not None else ({"days": {}, "duplicates": {}}, set())
    days = {day: {"files": sorted(set(info["files"]) - gone), "copies": info["copies"]}
            for day, info in meta["days"].items()}
    for day, files in writer.day_files.items():
        entry = days.setdefault(day, {"files": [], "copies": False})
        entry["files"] = sorted(set(entry["files"]) | files)
    for day in writer.days_with_copies:
        days[day]["copies"] = True
    duplicates = {source: n for source, n in meta["duplicates"].items() if source not in gone}
    for source, n in removed.items():
        duplicates[source] = duplicates.get(source, 0) + n
    _link_tree(writer.root, folder / "records")
    next_batch, next_part = writer.next_numbers
    doc = {"fingerprint": writer.fingerprint, "key": readers.KEY_FORMAT,
           "filtered": writer.since is not None or writer.until is not None,
           "files": sources, "next_batch": next_batch, "next_part": next_part, "days": days, "duplicates": duplicates,
           "parts": sum(1 for _ in (folder / "records").glob("*/part-*.parquet"))}
    (folder / "meta.json").write_text(json.dumps(doc), encoding="utf-8")
    return duplicates


def _day_name(day: dt.date | None) -> str:
    # Hive's name for a null partition value (rows without a timestamp, from Parquet inputs)
    return day.isoformat() if day is not None else "__HIVE_DEFAULT_PARTITION__"


def _spool_parts(ingest: readers.Ingest) -> list[Path]:
    return sorted(ingest.spool.glob("records-*.parquet"))


def _store(state: State, ingest: readers.Ingest, prints: dict[str, tuple[int, int, str]]) -> None:
    """Move the records and rejects of freshly read files into the state, one file at a time."""
    parquet = [f.path for f in ingest.files if f.format == "parquet"]
    if parquet:
        # their records keep the source_file of the log they came from, so they cannot be kept
        # per input file; refuse rather than lose them
        raise InputError("Parquet inputs with --state", expected="exports and logs (the state keeps their "
                         "records itself)", got=f"{len(parquet)} Parquet file(s)", where=parquet[0],
                         hint="analyze a records/ folder without --state")
    # a batch never spans two files: group the spool's parts by the file they came from, and
    # stream each file's parts into the state without holding the file's records at once
    by_file: dict[str, list[Path]] = {}
    for part in _spool_parts(ingest):
        source = pl.scan_parquet(part).select(pl.col("source_file").first()).collect().item()
        by_file.setdefault(source, []).append(part)
    rejects = ingest.rejects().collect()
    for report in ingest.files:
        path = Path(report.path)
        parts = by_file.get(report.path)
        # without their hashes: a later run makes them again (`analyze`), with its own polars
        records = (pl.scan_parquet(parts).drop(readers.INPUT, "_key") if parts
                   else pl.DataFrame(schema=readers.SCHEMA))
        state.store(path, prints[str(path.resolve())], records,
                    rejects.filter(pl.col("source_file") == report.path), asdict(report))


CONNECTORS_SCHEMA = {
    "connector": pl.String(), "direction": pl.String(), "type": pl.String(), "enabled": pl.Boolean(),
    "messages": pl.Int64(), "bytes": pl.Int64(), "sources": pl.Int64(),
    "first_seen": pl.Datetime("us", "UTC"), "last_seen": pl.Datetime("us", "UTC"),
    "failures": pl.Int64(), "deferrals": pl.Int64(),
}


def connector_usage(records: Path | pl.LazyFrame | Sequence[pl.LazyFrame | _partials.Day] | None,
                    connectors: config.Connectors, *, cache: _partials.Cache | None = None) -> pl.DataFrame:
    """Per configured connector: messages (distinct message keys), bytes (each message once),
    distinct source IPs, first/last seen, failures and deferrals. Connectors without traffic are
    listed with zeros so unused ones show.

    `records` is a records/ folder or its day partitions as LazyFrames (aggregated one day at a
    time, so memory is bounded by a day of records plus a row per (connector, message)), or one
    LazyFrame of any records. Day partitions with an identity go through `cache`.
    """
    rows = [(c.name, "inbound", c.connector_type, c.enabled) for c in connectors.inbound]
    rows += [(c.name, "outbound", c.connector_type, c.enabled) for c in connectors.outbound]
    base = pl.DataFrame(rows, schema=["connector", "direction", "type", "enabled"], orient="row") if rows else \
        pl.DataFrame(schema={k: CONNECTORS_SCHEMA[k] for k in ("connector", "direction", "type", "enabled")})
    if isinstance(records, Path):
        days = _partials.record_days(records)
    elif isinstance(records, pl.LazyFrame):
        days = [_partials.Day(records)]
    else:
        days = [d if isinstance(d, _partials.Day) else _partials.Day(d) for d in records or []]
    if not days:
        stats = pl.DataFrame(schema={k: v for k, v in CONNECTORS_SCHEMA.items() if k not in ("type", "enabled")})
    else:
        stats = _usage(days, cache)
    out = base.join(stats, on=["connector", "direction"], how="left").with_columns(
        [pl.col(c).fill_null(0) for c in ("messages", "bytes", "sources", "failures", "deferrals")])
    return out.select([pl.col(c).cast(t) for c, t in CONNECTORS_SCHEMA.items()]).sort("direction", "connector")


_DIRECTIONS = {"inbound_connector": "inbound", "outbound_connector": "outbound"}


def _usage(days: list[_partials.Day], cache: _partials.Cache | None) -> pl.DataFrame:
    """`connector_usage`'s numbers for both directions: partial aggregates per day (one scan of
    the day for all of them), merged. A message's events may fall on two days, so messages and
    sources are counted from the distinct (connector, message) and (connector, IP) pairs of all
    days, not summed."""
    parts: dict[tuple[str, str], list[pl.DataFrame]] = {}

    def queries(day: pl.LazyFrame) -> dict[tuple[str, str], pl.LazyFrame]:
        queries = {}
        for column in _DIRECTIONS:
            rows = day.filter(pl.col(column).is_not_null())
            # the message key's 64-bit hash stands for it: 8 bytes a message instead of the text
            queries[column, "messages"] = rows.group_by(column, pl.col("message_key").hash(seed=11).alias("_m")) \
                .agg(pl.col("size_bytes").max())
            queries[column, "sources"] = _partials.distinct_pairs(
                rows.drop_nulls("client_ip"), [column], pl.col("client_ip"), "client_ip")
            queries[column, "totals"] = rows.group_by(column).agg(
                pl.col("timestamp").min().alias("first_seen"),
                pl.col("timestamp").max().alias("last_seen"),
                (pl.col("event") == "fail").sum().cast(pl.Int64).alias("failures"),
                (pl.col("event") == "defer").sum().cast(pl.Int64).alias("deferrals"),
            )
        return queries

    names = list(queries(days[0].frame))
    for day in days:
        for name, result in zip(names, _partials.collect(day, lambda frame: list(queries(frame).values()), cache)):
            parts.setdefault(name, []).append(result)
    out = []
    for column, direction in _DIRECTIONS.items():
        per_message = (pl.concat(parts[column, "messages"]).group_by(column, "_m").agg(pl.col("size_bytes").max())
                       .group_by(column).agg(pl.len().cast(pl.Int64).alias("messages"),
                                             pl.col("size_bytes").sum().alias("bytes")))
        per_source = (pl.concat(parts[column, "sources"]).group_by(column)
                      .agg(pl.col("client_ip").n_unique().cast(pl.Int64).alias("sources")))
        merged = pl.concat(parts[column, "totals"]).group_by(column).agg(
            pl.col("first_seen").min(), pl.col("last_seen").max(), pl.col("failures").sum(),
            pl.col("deferrals").sum())
        out.append(merged.join(per_message, on=column, how="left").join(per_source, on=column, how="left")
                   .with_columns(pl.col("sources").fill_null(0))
                   .rename({column: "connector"}).with_columns(pl.lit(direction).alias("direction")))
    return pl.concat(out, how="diagonal")


def severity_at_least(frame: pl.DataFrame, level: str) -> pl.DataFrame:
    """The findings at or above `level`."""
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    return frame.filter(pl.col("severity").replace_strict(rank, return_dtype=pl.Int64) >= rank[level])
