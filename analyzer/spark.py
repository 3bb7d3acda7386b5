"""`mailflow analyze` on Apache Spark, for more records than one machine holds.

Install with the optional extra ``mailflow-analyzer[spark]`` (PySpark with its Arrow and pandas
dependencies; Java 17 or 21). Same rules, same outputs, same answers as the CLI on the same
records (docs/spark.md says when to use it and how to run it on a cluster):

* `attribute` appends the attribution columns to a Spark DataFrame of normalized records with
  the compiled matcher: `DataFrame.mapInArrow` hands each task's Arrow record batches to
  `analyzer.attribution.Attributor`, which is built once per task from the (picklable)
  configuration, so the per-row work is the same compiled code as the CLI's.
* `SparkAggregator` is the Spark SQL engine of `analyzer.findings`: every filter, group-by,
  window function, median, distinct count, top-k and sample of the rules runs in Spark, and only
  the small aggregated frames are collected to the driver, where `analyzer.findings` applies the
  same shared steps (IP-range checks on distinct values, sentences, severities) as for polars.
* `analyze` reads Parquet records (the ``records/`` folder of ``mailflow analyze``, or any Parquet
  with the normalized columns), attributes them, writes ``records/date=YYYY-MM-DD/*.parquet``
  in the CLI's layout and ``findings.parquet``, ``findings.json``, ``hotspots.parquet`` and
  ``connectors.parquet``.
* ``python -m analyzer.spark RECORDS --out DIR`` (or `main` from a spark-submit launcher) runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import operator
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from typing import Any

import polars as pl
import polars.selectors as cs
import pyarrow as pa

try:
    from pyspark.errors import AnalysisException
    from pyspark.sql import Column, DataFrame, SparkSession, Window
    from pyspark.sql import functions as F
    from pyspark.sql import types as T
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("analyzer.spark needs PySpark: pip install 'mailflow-analyzer[spark]'") from exc

from analyzer import analyses, attribution, config, findings
from analyzer.config import AcceptedDomain, Connectors, OutboundConnector
from analyzer.errors import AnalyzerError, ConfigError, InputError
from analyzer.findings import (
    DEFERRAL_CODES,
    INBOUND_DIRECTIONS,
    LINE_BREAK,
    ONPREM_FORMATS,
    RELAY_DENIED_TEXT,
    RELAY_REJECTION_CODES,
    RELAY_TEXT,
    Context,
)
from analyzer.matching import PrefixTable
from analyzer.readers import SCHEMA

__all__ = ["SparkAggregator", "SparkAnalysis", "analyze", "attribute", "connector_usage", "main", "read_records",
           "spark_type"]

_DAY_US = 86_400_000_000
# A large day is split into files of at most this many rows rather than written as one huge file.
_MAX_RECORDS_PER_FILE = 1_000_000
# Written by `mailflow analyze` but not here (they need the read totals of the CLI's inputs).
_CLI_ONLY_OUTPUTS = ("summary.json", "summary.txt", "report.html", "rejects.csv")
_ATTRIBUTION_DEFAULTS = attribution.Options()
_ANALYSIS_DEFAULTS = analyses.Options()


# --------------------------------------------------------------------------------------------
# Types
# --------------------------------------------------------------------------------------------


def spark_type(dtype: pl.DataType) -> T.DataType:
    """The Spark SQL type of a polars type (the types of the normalized and attributed records
    and of the outputs). Datetimes are microseconds: Spark keeps no finer precision."""
    simple: dict[type[pl.DataType], T.DataType] = {
        pl.String: T.StringType(), pl.Categorical: T.StringType(), pl.Boolean: T.BooleanType(),
        pl.Int8: T.ByteType(), pl.Int16: T.ShortType(), pl.Int32: T.IntegerType(), pl.Int64: T.LongType(),
        pl.Float32: T.FloatType(), pl.Float64: T.DoubleType(), pl.Date: T.DateType(),
    }
    base = dtype.base_type()
    if base in simple:
        return simple[base]
    if isinstance(dtype, pl.Datetime):
        return T.TimestampType() if dtype.time_zone else T.TimestampNTZType()
    if isinstance(dtype, pl.List):
        return T.ArrayType(spark_type(dtype.inner))
    raise TypeError(f"no Spark type for polars {dtype}")


def _arrow_type(dtype: pl.DataType) -> pa.DataType:
    """The Arrow type a task hands back to Spark for a column of polars type `dtype`: Spark's
    StringType travels as Arrow ``string`` (unless spark.sql.execution.arrow.useLargeVarTypes is
    set), while polars exports large or view strings."""
    if dtype.base_type() in (pl.String, pl.Categorical):
        return pa.string()
    return pl.DataFrame(schema={"c": dtype}).to_arrow().schema.field("c").type


# --------------------------------------------------------------------------------------------
# Attribution
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _AttributionSpec:
    """What a task needs to build its `Attributor`: plain picklable data. The compiled
    `PrefixTable` does not pickle, so ``--ip-table`` tables travel as their (prefix, value)
    pairs, which rebuild the very same table."""

    connectors: Connectors
    domains: tuple[AcceptedDomain, ...]
    ip_tables: tuple[tuple[str, tuple[tuple[str, int], ...], tuple[str, ...]], ...]
    options: attribution.Options
    appended: tuple[tuple[str, pa.DataType], ...]  # the attribution columns and their Arrow types

    def build(self) -> attribution.Attributor:
        tables = {name: (PrefixTable.from_pairs(pairs), list(labels)) for name, pairs, labels in self.ip_tables}
        return attribution.Attributor.build(self.connectors, self.domains, ip_tables=tables, options=self.options)


def _attribute_batches(batches: Iterator[pa.RecordBatch], spec: _AttributionSpec) -> Iterator[pa.RecordBatch]:
    """The `mapInArrow` function: one `Attributor` per task, then each Arrow batch (Spark's
    ``spark.sql.execution.arrow.maxRecordsPerBatch`` rows) through it. Built per task, not per
    batch: with an ``--ip-table`` of a full routing table, compiling takes far longer than
    attributing a batch."""
    attributor = spec.build()
    appended = dict(spec.appended)
    for batch in batches:
        if batch.num_rows == 0:
            continue
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        out = attributor.attribute(frame).to_arrow()
        # Input columns go back with the Arrow types Spark sent; attribution columns as declared.
        target = pa.schema([pa.field(name, appended[name]) if name in appended else batch.schema.field(name)
                            for name in out.column_names])
        yield from out.cast(target).to_batches()


def attribute(
    df: DataFrame,
    connectors: Connectors,
    domains: Sequence[AcceptedDomain],
    *,
    ip_tables: Mapping[str, tuple[PrefixTable, list[str]]] | None = None,
    options: attribution.Options = _ATTRIBUTION_DEFAULTS,
) -> DataFrame:
    """`df` (normalized records) with the attribution columns of docs/analysis.md §1 appended,
    then one column per ip table: the same columns and values as `Attributor.attribute`.

    Lazy, like any DataFrame transformation: the attribution runs in the tasks, through
    `DataFrame.mapInArrow`. Attribution columns already in `df` are replaced and moved to the
    end, as `Attributor.attribute` does. Raises `ConfigError` / `InputError` on the driver, before
    any task runs, for a configuration the attributor refuses or records without the columns it
    reads.
    """
    tables = dict(ip_tables or {})
    # Built here once too, so that configuration errors surface on the driver and the output
    # schema is known; the tasks build their own (it does not pickle).
    try:
        attributor = attribution.Attributor.build(connectors, domains, ip_tables=tables, options=options)
    except ValueError as exc:
        if isinstance(exc, AnalyzerError):
            raise
        raise ConfigError("invalid --ip-table", expected="a name that is not a column of the records",
                          got=str(exc)) from None
    missing = [c for c in attribution.REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise InputError("records lack columns attribution needs", expected=", ".join(attribution.REQUIRED_COLUMNS),
                         got="no " + ", ".join(missing), where="records",
                         hint="pass the normalized table of analyzer.readers")
    appended = attributor.output_schema()
    schema = T.StructType(
        [f for f in df.schema.fields if f.name not in appended]
        + [T.StructField(name, spark_type(dtype), True) for name, dtype in appended.items()]
    )
    spec = _AttributionSpec(
        connectors=connectors,
        domains=tuple(domains),
        ip_tables=tuple((name, tuple(table.prefixes()), tuple(labels)) for name, (table, labels) in tables.items()),
        options=options,
        appended=tuple((name, _arrow_type(dtype)) for name, dtype in appended.items()),
    )

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        return _attribute_batches(batches, spec)

    return df.mapInArrow(run, schema)


# --------------------------------------------------------------------------------------------
# Reading records
# --------------------------------------------------------------------------------------------


def _uri(path: str | os.PathLike) -> str:
    """A location Spark resolves the same on every node: URIs as given, local paths absolute
    ``file://`` URIs (a bare path would mean the cluster's default file system)."""
    text = os.fspath(path)
    return text if "://" in text else Path(text).resolve().as_uri()


def read_records(spark: SparkSession, path: str | os.PathLike) -> DataFrame:
    """Normalized records from Parquet: the ``records/`` folder of ``mailflow analyze`` (its
    attribution columns and the ``date`` partition column are dropped: the records are
    attributed afresh) or any Parquet with the columns of `analyzer.readers.SCHEMA`. Only those
    columns are kept, in their order and types (as the CLI reads Parquet inputs)."""
    try:
        df = spark.read.parquet(_uri(path))
    except AnalysisException as exc:
        raise InputError("cannot read Parquet records", expected="a Parquet file or folder (path or URI)",
                         got=str(exc).splitlines()[0][:300], where=os.fspath(path)) from None
    missing = [c for c in SCHEMA if c not in df.columns]
    if missing:
        raise InputError("Parquet without the normalized columns", expected="the columns of the README's "
                         "normalized table", got="no " + ", ".join(missing[:4]) + (" ..." if len(missing) > 4 else ""),
                         where=os.fspath(path),
                         hint="give the records/ folder of an earlier mailflow run, or the output of mailflow read")
    return df.select([F.col(c).cast(spark_type(t)).alias(c) for c, t in SCHEMA.items()])


def _unique(df: DataFrame) -> DataFrame:
    """Each record once, as the CLI's readers de-duplicate (`analyzer.readers`): trace summary
    rows by (source_format, message_key, recipient, timestamp), Microsoft's own rule, every
    other row by all columns but source_file and source_line. Of duplicates the CLI keeps the
    first in input order, which a distributed read does not have: the row with the smallest
    (source_file, source_line) is kept, which is the same row when the overlapping exports were
    read in path order (the CLI reads them so)."""
    order = ["source_file", "source_line"]

    def first(frame: DataFrame, key: list[str]) -> DataFrame:
        rest = order + [c for c in SCHEMA if c not in key and c not in order]
        # min over a struct compares its fields in order: the smallest (source_file, source_line)
        picked = frame.groupBy(*key).agg(F.min(F.struct(*rest)).alias("_first"))
        return picked.select(*key, "_first.*").select(*SCHEMA)

    is_trace = F.coalesce(F.col("source_format") == "exo_trace", F.lit(False))
    trace_key = ["source_format", "message_key", "recipient", "timestamp"]
    content = [c for c in SCHEMA if c not in order]
    return first(df.filter(is_trace), trace_key).unionByName(first(df.filter(~is_trace), content))


def _micros(value: dt.datetime) -> int:
    """Microseconds since the epoch (a naive time is UTC, as on the command line)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return (value - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) // dt.timedelta(microseconds=1)


def _window(df: DataFrame, options: analyses.Options) -> DataFrame:
    """`--since` (inclusive) / `--until` (exclusive), compared in epoch microseconds so that the
    session time zone plays no part."""
    us = F.unix_micros(F.col("timestamp"))
    if options.since is not None:
        df = df.filter(us >= F.lit(_micros(options.since)))
    if options.until is not None:
        df = df.filter(us < F.lit(_micros(options.until)))
    return df


def _floor_div(value: Column, divisor: int) -> Column:
    """Integer floor division, as polars' ``//``, exact for any epoch-microsecond value: the
    dividend minus its non-negative remainder is a multiple of `divisor`, which a double divides
    exactly below 2**53."""
    d = F.lit(divisor)
    return ((value - F.pmod(value, d)) / d).cast("long")


# --------------------------------------------------------------------------------------------
# The Spark SQL engine of analyzer.findings
# --------------------------------------------------------------------------------------------


def _collect(df: DataFrame) -> pl.DataFrame:
    """A small aggregated DataFrame as polars, timestamps in UTC (Spark stamps them with the
    session time zone; the instants are the same)."""
    frame = pl.from_arrow(df.toArrow())
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(cs.datetime().dt.convert_time_zone("UTC"))


def _rows() -> Column:
    return F.count(F.lit(1))


def _any(condition: Column) -> Column:
    """polars' ``.any()``: nulls skipped, False for a group without any True."""
    return F.coalesce(F.bool_or(condition), F.lit(False))


def _n_unique(column: str) -> Column:
    """polars' ``n_unique()``: a null counts as one more distinct value (countDistinct skips it)."""
    return F.countDistinct(column) + F.max(F.col(column).isNull().cast("long"))


def _samples(value: Column) -> Column:
    """The first five distinct non-null values in sort order."""
    return F.slice(F.array_sort(F.collect_set(value)), 1, 5)


def _basics() -> list[Column]:
    """The "basics" of `findings.Aggregator`: records, time span, sample ids, distinct messages."""
    return [
        _rows().alias("count"),
        F.min("timestamp").alias("first_seen"),
        F.max("timestamp").alias("last_seen"),
        _samples(F.coalesce(F.col("message_id"), F.col("message_key"))).alias("sample_message_ids"),
        F.countDistinct("message_key").alias("messages"),
    ]


def _top(rows: DataFrame, keys: Sequence[str], column: str, k: int = 5) -> DataFrame:
    """The "tops" of `findings.Aggregator`: per group, the `k` most frequent non-null values of
    `column` (ties by value) as ``<column>_top`` and the number of distinct values as ``<column>_n``."""
    counted = rows.filter(F.col(column).isNotNull()).groupBy(*keys, column).agg(_rows().alias("_n"))
    # sorting (-count, value) structs puts the most frequent first, ties by value
    ranked = F.array_sort(F.collect_list(F.struct((-F.col("_n")).alias("n"), F.col(column).alias("v"))))
    return counted.groupBy(*keys).agg(
        F.transform(F.slice(ranked, 1, k), lambda item: item["v"]).alias(f"{column}_top"),
        _rows().alias(f"{column}_n"),
    )


def _left_join(left: DataFrame, right: DataFrame, keys: Sequence[str]) -> DataFrame:
    """Left join on `keys` with null keys equal (polars' ``nulls_equal=True``)."""
    renamed = right.select(*[F.col(k).alias(f"_rk_{k}") for k in keys], *[c for c in right.columns if c not in keys])
    condition = reduce(operator.and_, [left[k].eqNullSafe(renamed[f"_rk_{k}"]) for k in keys])
    return left.join(renamed, on=condition, how="left").drop(*[f"_rk_{k}" for k in keys])


def _with_tops(agg: DataFrame, rows: DataFrame, keys: Sequence[str], columns: Sequence[str]) -> DataFrame:
    """`agg` with the `_top` lists of `columns` over `rows` joined on `keys`."""
    for column in columns:
        agg = _left_join(agg, _top(rows, keys, column), keys)
    return agg


def _inbound() -> Column:
    return F.col("direction").isin(*INBOUND_DIRECTIONS) & F.col("client_ip").isNotNull()


def _java_regex(pattern: str) -> str:
    """A polars (Rust) regex for Java: ``(?i)`` there folds Unicode case, in Java only with ``u``."""
    return "(?iu)" + pattern[4:] if pattern.startswith("(?i)") else pattern


def _relay_rejection() -> Column:
    """`findings._relay_rejection` in Spark SQL."""
    enh = F.col("enhanced_code")
    text = F.regexp_replace(F.col("smtp_response"), LINE_BREAK, " ")
    says_relay = F.coalesce(text.rlike(_java_regex(RELAY_TEXT)), F.lit(False))
    false = F.lit(False)
    return (
        F.coalesce(enh.isin(*RELAY_REJECTION_CODES), false)
        | F.coalesce((enh == "5.7.1") & says_relay, false)
        | F.coalesce((enh == "5.4.1") & text.rlike(_java_regex(RELAY_DENIED_TEXT)), false)
        | F.coalesce(enh.isNull() & (F.col("smtp_code") >= 500) & says_relay, false)
    )


def _domain_covered(column: str, patterns: Sequence[str]) -> Column:
    """`findings._domain_covered` in Spark SQL: exact, ``*.x`` (x and its subdomains), ``*``."""
    col = F.col(column)
    patterns = [p.lower() for p in patterns]
    if "*" in patterns:
        return col.isNotNull()
    exact = [p for p in patterns if not p.startswith("*.")]
    parts = [col.isin(*exact)] if exact else []
    for pattern in patterns:
        if pattern.startswith("*."):
            base = pattern[2:]
            parts.append((col == base) | col.endswith("." + base))
    if not parts:
        return F.lit(False)
    return F.coalesce(reduce(operator.or_, parts), F.lit(False))


def _strip(column: Column) -> Column:
    """polars' ``str.strip_chars()``: Unicode White_Space off both ends (Spark's ``trim`` only
    removes spaces)."""
    return F.regexp_replace(column, r"(?U)^\s+|\s+$", "")


class SparkAggregator:
    """`analyzer.findings.Aggregator` over a Spark DataFrame of attributed records: every method
    is Spark SQL over all records; only its small result is collected (via Arrow) to the driver.

    The deferral windows are computed once per set of options and cached in Spark (they feed
    both the hot-spot findings and ``hotspots.parquet``); `close` (or ``with``) releases them.
    """

    def __init__(self, records: DataFrame) -> None:
        self.records = records
        self._windows: dict[findings.Options, tuple[DataFrame, pl.DataFrame]] = {}

    def __enter__(self) -> SparkAggregator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the cached deferral windows."""
        for frame, _ in self._windows.values():
            frame.unpersist()
        self._windows.clear()

    # ---- greylisting

    def _deferral_rows(self, ctx: Context) -> DataFrame:
        return (
            self.records.filter(F.col("enhanced_code").isin(*DEFERRAL_CODES))
            .withColumn("_source", F.coalesce(F.col("throttled_ip"), F.col("client_ip")))
            .filter(F.col("_source").isNotNull())
            .withColumn("_window", _floor_div(F.unix_micros(F.col("timestamp")), ctx.window_us))
        )

    def _window_frames(self, ctx: Context) -> tuple[DataFrame, pl.DataFrame]:
        if ctx.options in self._windows:
            return self._windows[ctx.options]
        opts = ctx.options
        counts = self._deferral_rows(ctx).groupBy("_source", "_window").agg(_rows().alias("deferrals"))
        window = _floor_div(F.unix_micros(F.col("timestamp")), ctx.window_us)
        period = self.records.agg(F.min(window).alias("lo"), F.max(window).alias("hi")).first()
        lo, hi = (period["lo"], period["hi"]) if period is not None else (None, None)
        if lo is None:  # no records: no deferrals either
            frame = counts.withColumn("background", F.lit(None).cast("double")).withColumn(
                "hot", F.lit(None).cast("boolean"))
        else:
            # The median of the source's per-window counts with every empty window of the period
            # as a 0: the full sorted list is [0] * empty + sorted counts, so it is read from the
            # sorted non-empty counts by index, without a row per empty window.
            span = hi - lo + 1
            empty = F.lit(span) - F.size(F.col("_sorted"))

            def at(index: int) -> Column:
                return F.when(F.lit(index) < empty, F.lit(0).cast("long")).otherwise(
                    F.try_element_at(F.col("_sorted"), (F.lit(index) - empty + 1).cast("int")))

            per_source = (
                counts.groupBy("_source").agg(F.array_sort(F.collect_list("deferrals")).alias("_sorted"))
                .select("_source", ((at((span - 1) // 2) + at(span // 2)).cast("double") / 2).alias("background"))
            )
            threshold = F.greatest(F.col("background"), F.lit(1.0)) * F.lit(float(opts.hotspot_burst_factor))
            frame = counts.join(per_source, on="_source", how="left").withColumn(
                "hot", (F.col("deferrals") >= opts.hotspot_min_deferrals) & (F.col("deferrals") >= threshold))
        frame = frame.cache()
        self._windows[ctx.options] = (frame, _collect(frame))
        return self._windows[ctx.options]

    def deferral_windows(self, ctx: Context) -> pl.DataFrame:
        return self._window_frames(ctx)[1]

    def hotspot_runs(self, ctx: Context) -> pl.DataFrame:
        windows, collected = self._window_frames(ctx)
        if not collected.height or not collected["hot"].any():
            return collected.clear()
        hot = windows.filter(F.col("hot"))
        by_source = Window.partitionBy("_source").orderBy("_window")
        previous = F.lag("_window").over(by_source)
        # A run starts where the previous hot window of the source is not the one just before;
        # each window's run is the latest start at or before it.
        starts = F.when(previous.isNull() | (F.col("_window") - previous != 1), F.col("_window"))
        hot = hot.withColumn("_start", F.max(starts).over(
            by_source.rowsBetween(Window.unboundedPreceding, Window.currentRow)))
        keys = ["_source", "_start"]
        runs = hot.groupBy(*keys).agg(
            F.max("background").alias("background"),  # one value per source
            _rows().alias("hot_windows"),
            F.sum("deferrals").alias("count"),
            F.max("deferrals").alias("peak"),
            # the largest count, the earliest window on a tie
            F.min(F.struct((-F.col("deferrals")).alias("d"), F.col("_window").alias("w")))["w"].alias("peak_window"),
        )
        rows = self._deferral_rows(ctx).join(hot.select("_source", "_window", "_start"), on=["_source", "_window"])
        texts = rows.groupBy(*keys).agg(
            F.min("timestamp").alias("first_seen"),
            F.max("timestamp").alias("last_seen"),
            _samples(F.coalesce(F.col("message_id"), F.col("message_key"))).alias("sample_message_ids"),
            F.array_sort(F.collect_set("ms_code")).alias("codes"),
        )
        texts = _with_tops(texts, rows, keys, ["recipient_domain"])
        return _collect(runs.join(texts, on=keys, how="left"))

    # ---- the other rules

    def open_relay(self, ctx: Context) -> pl.DataFrame:
        onprem = self.records.filter(F.col("source_format").isin(*ONPREM_FORMATS) & F.col("message_key").isNotNull())
        keys = ["source_file", "message_key"]
        passed_on = F.col("event").isin("send", "deliver") & (
            (F.col("source_format") != "postfix") | (F.lower(F.col("status")) == "sent"))
        messages = (
            onprem.groupBy(*keys)
            .agg(
                _any(F.col("sender_accepted") == F.lit(False)).alias("_s_no"),
                _any(F.col("sender_accepted") == F.lit(True)).alias("_s_yes"),
                _any(F.col("recipient_accepted") == F.lit(False)).alias("_r_no"),
                _any(F.col("recipient_accepted") == F.lit(True)).alias("_r_yes"),
                _any(F.coalesce(passed_on, F.lit(False))).alias("_passed"),
                F.min("message_id").alias("_mid"),
                F.min("timestamp").alias("_first"),
                F.max("timestamp").alias("_last"),
            )
            .filter(F.col("_s_no") & ~F.col("_s_yes") & F.col("_r_no") & ~F.col("_r_yes") & F.col("_passed"))
        )
        received = (
            onprem.filter((F.col("event") == "receive") & (F.col("ip_class") == "other"))
            .select(*keys, "client_ip")
            .distinct()
        )
        relayed = received.join(messages, on=keys, how="inner")
        agg = relayed.groupBy("client_ip").agg(
            _rows().alias("count"),
            F.min("_first").alias("first_seen"),
            F.max("_last").alias("last_seen"),
            _samples(F.coalesce(F.col("_mid"), F.col("message_key"))).alias("sample_message_ids"),
            F.array_sort(F.collect_set("source_file")).alias("servers"),
        )
        # As the polars engine: the relaying source joins in as client_ip_right and the domain
        # lists group by each record's own client_ip (the receive records carry the source).
        rows = onprem.join(relayed.select(*keys, F.col("client_ip").alias("client_ip_right")), on=keys, how="inner")
        return _collect(_with_tops(agg, rows, ["client_ip"], ["sender_domain", "recipient_domain"]))

    def relay_rejected(self, ctx: Context) -> pl.DataFrame:
        rows = self.records.filter(_relay_rejection()).select(
            "*",
            F.coalesce(F.col("client_ip"), F.lit("unknown")).alias("_source"),
            F.coalesce(F.col("enhanced_code"), F.col("smtp_code").cast("string")).alias("_code"),
        )
        keys = ["_source", "_code"]
        agg = rows.groupBy(*keys).agg(*_basics())
        return _collect(_with_tops(agg, rows, keys, ["sender_domain", "recipient_domain"]))

    def non_accepted_domain(self, ctx: Context, connectors: Sequence[str]) -> pl.DataFrame:
        rows = self.records.filter(
            _inbound()
            & (F.col("inbound_match") == "ip")
            & F.col("inbound_connector").isin(*connectors)
            & (F.col("sender_accepted") == F.lit(False))
        )
        keys = ["inbound_connector", "sender_domain"]
        return _collect(_with_tops(rows.groupBy(*keys).agg(*_basics()), rows, keys, ["client_ip"]))

    def direct_send(self, ctx: Context) -> pl.DataFrame:
        rows = self.records.filter(
            _inbound()
            & F.col("inbound_connector").isNull()
            & F.col("ip_class").isin("other", "private")
            & (F.col("sender_accepted") == F.lit(True))
        )
        agg = rows.groupBy("client_ip").agg(*_basics(), F.min("ip_class").alias("_class"))
        return _collect(_with_tops(agg, rows, ["client_ip"], ["sender_domain", "recipient_domain"]))

    def unrouted_inbound(self, ctx: Context, column: str, tops: Sequence[str]) -> pl.DataFrame:
        rows = self.records.filter(
            _inbound()
            & F.col("inbound_connector").isNull()
            & (F.col("ip_class") == "other")
            & F.coalesce(F.col("sender_accepted") != F.lit(True), F.lit(True))  # "not True": null counts
        )
        agg = (rows.filter(F.col(column).isNotNull()).groupBy(column)
               .agg(*_basics(), _n_unique("client_ip").alias("_ips"))
               .filter(F.col("count") >= ctx.options.unrouted_min_messages))
        return _collect(_with_tops(agg, rows, [column], tops))

    def _inbound_with_domain(self) -> DataFrame:
        return self.records.filter(_inbound() & F.col("sender_domain").isNotNull())

    def inbound_sender_domains(self, ctx: Context) -> pl.Series:
        return _collect(self._inbound_with_domain().select("sender_domain").distinct()).to_series()

    def partner_bypass(self, ctx: Context, mapping: pl.DataFrame) -> pl.DataFrame:
        table = mapping.select("sender_domain", "_connector").to_arrow()
        table = table.cast(pa.schema([pa.field("sender_domain", pa.string()), pa.field("_connector", pa.string())]))
        pairs = self.records.sparkSession.createDataFrame(table)
        rows = self._inbound_with_domain().join(F.broadcast(pairs), on="sender_domain", how="inner")
        keys = ["_connector", "client_ip"]
        return _collect(_with_tops(rows.groupBy(*keys).agg(*_basics()), rows, keys, ["sender_domain"]))

    def outbound_bypass(self, ctx: Context, connectors: Sequence[OutboundConnector]) -> pl.DataFrame:
        belongs = F.coalesce(reduce(operator.or_, [
            (F.col("outbound_connector") == c.name) & _domain_covered("recipient_domain", c.recipient_domains)
            for c in connectors
        ]), F.lit(False))
        rows = self.records.filter(
            (F.col("direction") == "outbound")
            & F.col("event").isin("send", "deliver")
            & F.col("server_ip").isNotNull()
            & belongs
        )
        keys = ["outbound_connector", "server_ip"]
        return _collect(_with_tops(rows.groupBy(*keys).agg(*_basics()), rows, keys, ["recipient_domain"]))

    def disabled_connector_traffic(self, ctx: Context) -> pl.DataFrame:
        rows = self.records.filter(
            F.col("disabled_inbound_connector").isNotNull() & F.col("inbound_connector").isNull())
        keys = ["disabled_inbound_connector"]
        agg = rows.groupBy(*keys).agg(*_basics(), _n_unique("client_ip").alias("_ips"))
        return _collect(_with_tops(agg, rows, keys, ["client_ip"]))

    def unused_connector(self, ctx: Context) -> dict[str, Any]:
        row = self.records.agg(
            F.count_if(F.coalesce(_inbound(), F.lit(False))).alias("inbound_rows"),
            F.count_if(F.coalesce(F.col("direction") == "outbound", F.lit(False))).alias("outbound_rows"),
            F.collect_set("inbound_connector").alias("inbound_used"),
            F.collect_set("outbound_connector").alias("outbound_used"),
        ).first()
        assert row is not None  # a global aggregate has one row
        return row.asDict()

    def attribution_mismatch(self, ctx: Context, outbound_only: Sequence[str]) -> pl.DataFrame:
        logged = _strip(F.col("connector_name"))
        keep = (
            F.col("_logged").isNotNull()
            & (F.col("_logged") != "")
            & ~F.col("_logged").contains("\\")
            & F.coalesce(F.col("_key") != F.lower(_strip(F.col("inbound_connector"))), F.lit(True))
        )
        if outbound_only:
            keep = keep & ~F.col("_key").isin(*outbound_only)
        rows = (
            self.records.filter(_inbound() & ~F.col("source_format").isin(*ONPREM_FORMATS))
            .select("*", logged.alias("_logged"), F.lower(logged).alias("_key"))
            .filter(keep)
        )
        keys = ["_key", "inbound_connector"]
        agg = rows.groupBy(*keys).agg(*_basics(), F.min("_logged").alias("_display"))
        return _collect(_with_tops(agg, rows, keys, ["client_ip"]))


def connector_usage(records: DataFrame | None, connectors: Connectors) -> pl.DataFrame:
    """`analyzer.analyses.connector_usage` with the per-connector aggregation in Spark SQL: per
    configured connector, messages (distinct message keys, a null key counting as one, as
    polars' ``n_unique``), bytes (each message once), distinct source IPs, first/last seen,
    failures and deferrals; connectors without traffic listed with zeros."""
    schema = analyses.CONNECTORS_SCHEMA
    rows = [(c.name, "inbound", c.connector_type, c.enabled) for c in connectors.inbound]
    rows += [(c.name, "outbound", c.connector_type, c.enabled) for c in connectors.outbound]
    head = ("connector", "direction", "type", "enabled")
    base = pl.DataFrame(rows, schema={k: schema[k] for k in head}, orient="row")
    if records is None:
        stats = pl.DataFrame(schema={k: v for k, v in schema.items() if k not in ("type", "enabled")})
    else:
        def per(column: str, direction: str) -> DataFrame:
            used = records.filter(F.col(column).isNotNull())
            sizes = (used.groupBy(column, "message_key").agg(F.max("size_bytes").alias("size_bytes"))
                     .groupBy(column).agg(F.sum("size_bytes").alias("bytes")))
            agg = used.groupBy(column).agg(
                _n_unique("message_key").alias("messages"),
                F.countDistinct("client_ip").alias("sources"),
                F.min("timestamp").alias("first_seen"),
                F.max("timestamp").alias("last_seen"),
                F.count_if(F.col("event") == "fail").alias("failures"),
                F.count_if(F.col("event") == "defer").alias("deferrals"),
            )
            return (agg.join(sizes, on=column, how="left").withColumnRenamed(column, "connector")
                    .withColumn("direction", F.lit(direction)))

        stats = _collect(per("inbound_connector", "inbound").unionByName(per("outbound_connector", "outbound")))
    out = base.join(stats, on=["connector", "direction"], how="left").with_columns(
        [pl.col(c).fill_null(0) for c in ("messages", "bytes", "sources", "failures", "deferrals")])
    return out.select([pl.col(c).cast(t) for c, t in schema.items()]).sort("direction", "connector")


# --------------------------------------------------------------------------------------------
# analyze
# --------------------------------------------------------------------------------------------


@dataclass
class SparkAnalysis:
    """What `analyze` produced and wrote."""

    records_uri: str  # the attributed records, Hive-partitioned by date
    records: int
    findings: pl.DataFrame
    hotspots: pl.DataFrame
    connectors: pl.DataFrame
    config_files: list[str]
    timings: dict[str, float] = field(default_factory=dict)


class _Outputs:
    """The output folder: a local path (files written to a temporary name, then renamed into
    place) or a URI such as ``hdfs://`` or ``s3a://`` (written through `pyarrow.fs`, which names
    S3 ``s3://``)."""

    def __init__(self, out: str | os.PathLike) -> None:
        text = os.fspath(out)
        self.local = None if "://" in text and not text.startswith("file://") else \
            Path(text.removeprefix("file://")).resolve()
        self.uri = self.local.as_uri() if self.local is not None else text.rstrip("/")

    @property
    def records_uri(self) -> str:
        return f"{self.uri}/records"

    def prepare(self) -> None:
        if self.local is not None:
            self.local.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, data: bytes) -> None:
        if self.local is not None:
            tmp = self.local / f".{name}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, self.local / name)
            return
        from pyarrow import fs

        uri = self.uri.replace("s3a://", "s3://", 1)
        filesystem, root = fs.FileSystem.from_uri(uri)
        with filesystem.open_output_stream(f"{root}/{name}") as handle:
            handle.write(data)

    def remove(self, names: Sequence[str]) -> None:
        """Delete `names` where they exist."""
        for name in names:
            if self.local is not None:
                (self.local / name).unlink(missing_ok=True)
                continue
            from pyarrow import fs

            filesystem, root = fs.FileSystem.from_uri(self.uri.replace("s3a://", "s3://", 1))
            if filesystem.get_file_info(f"{root}/{name}").type != fs.FileType.NotFound:
                filesystem.delete_file(f"{root}/{name}")

    def tidy_records(self) -> None:
        """Remove the checksum files Hadoop's local file system writes beside each part, so the
        folder holds the CLI's layout alone (polars refuses folders with other extensions)."""
        if self.local is not None:
            for crc in (self.local / "records").rglob(".*.crc"):
                crc.unlink(missing_ok=True)


def _parquet_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd")
    return buffer.getvalue()


def _findings_json(frame: pl.DataFrame) -> bytes:
    """findings.json exactly as `analyzer.reports` writes it."""
    from analyzer.reports import _json_default

    return json.dumps(frame.to_dicts(), default=_json_default, indent=1, ensure_ascii=False).encode("utf-8")


@contextlib.contextmanager
def _conf(spark: SparkSession, settings: Mapping[str, str]) -> Iterator[None]:
    """Session settings for the duration of one write, restored afterwards."""
    before = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def _same_place(records: str | os.PathLike, out: _Outputs) -> bool:
    """Whether the input lies in the output's records folder (overwriting it would delete the
    input while it is read)."""
    text = os.fspath(records)
    if out.local is not None and "://" not in text:
        target, source = out.local / "records", Path(text).resolve()
        return source == target or target in source.parents
    return _uri(text).rstrip("/").startswith(out.records_uri)


def analyze(
    spark: SparkSession,
    records_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    connector_files: Sequence[str | os.PathLike] = (),
    domain_files: Sequence[str | os.PathLike] = (),
    ip_tables: Mapping[str, str | os.PathLike] = {},
    cloud_ranges: Sequence[str | os.PathLike] = (),
    options: analyses.Options = _ANALYSIS_DEFAULTS,
) -> SparkAnalysis:
    """The CLI's analysis of Parquet records on Spark; returns the results and writes them.

    `records_path` is a Parquet file or folder (local path or URI): the ``records/`` folder of
    ``mailflow analyze``, or any Parquet with the normalized columns. Records are de-duplicated
    as the CLI does, windowed by ``options.since`` / ``options.until``, attributed with the
    configuration files (read on the driver, like the ``--ip-table`` and ``--cloud-ranges``
    files), and written to ``out_dir/records/date=YYYY-MM-DD/`` (replacing what was there);
    the findings, hot spots and connector usage, computed in Spark SQL, are returned and
    written to ``findings.parquet``, ``findings.json``, ``hotspots.parquet`` and
    ``connectors.parquet`` in `out_dir`, as the CLI writes them. The CLI's summary.json,
    summary.txt, report.html and rejects.csv are not written (they describe the CLI's input
    files) and are removed if an earlier run left them there. Raises `InputError` /
    `ConfigError` for bad input.
    """
    timings: dict[str, float] = {}
    start = time.perf_counter()
    configs = [Path(p) for p in [*connector_files, *domain_files]]
    connectors, domains = config.load_config(configs) if configs else (Connectors(), ())
    tables = analyses.load_ip_tables(ip_tables)
    clouds = analyses.load_cloud_ranges(cloud_ranges)
    out = _Outputs(out_dir)
    if _same_place(records_path, out):
        raise InputError("the records to analyze are in the output folder", expected="another --out",
                         got=os.fspath(records_path), where=out.uri,
                         hint="the output's records/ folder is replaced by the run")
    timings["configuration"] = time.perf_counter() - start

    t = time.perf_counter()
    records = _window(_unique(read_records(spark, records_path)), options)
    attributed = attribute(records, connectors, domains, ip_tables=tables, options=options.attribution)
    out.prepare()
    day = F.date_from_unix_date(_floor_div(F.unix_micros(F.col("timestamp")), _DAY_US).cast("int"))
    # Parquet timestamps as the CLI writes them (microseconds, UTC), not Spark's default INT96.
    with _conf(spark, {"spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS"}):
        (attributed.withColumn("date", day)
         .hint("rebalance", "date")  # whole days per task, skewed days split: few, full files
         .write.mode("overwrite")
         .partitionBy("date")
         .option("compression", "zstd")
         .option("maxRecordsPerFile", _MAX_RECORDS_PER_FILE)
         .option("mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")  # no _SUCCESS file
         .parquet(out.records_uri))
    out.tidy_records()
    timings["attribute"] = time.perf_counter() - t

    t = time.perf_counter()
    # The findings read the written records back (as the CLI does): attribution runs once.
    stored = spark.read.schema(T.StructType(attributed.schema.fields + [T.StructField("date", T.DateType())])) \
        .parquet(out.records_uri)
    count = stored.count()
    if count:
        with SparkAggregator(stored) as aggregator:
            all_findings, spots = analyses.findings_and_hotspots(aggregator, connectors, domains, clouds=clouds,
                                                                 tables=tables, options=options.findings)
        usage = connector_usage(stored, connectors)
    else:
        all_findings, spots = analyses.findings_and_hotspots(None, connectors, domains, clouds=clouds,
                                                             tables=tables, options=options.findings)
        usage = connector_usage(None, connectors)
    timings["findings"] = time.perf_counter() - t

    # outputs of an earlier CLI run in the same folder would describe other records
    out.remove(_CLI_ONLY_OUTPUTS)
    out.write("findings.parquet", _parquet_bytes(all_findings))
    out.write("findings.json", _findings_json(all_findings))
    out.write("connectors.parquet", _parquet_bytes(usage))
    out.write("hotspots.parquet", _parquet_bytes(spots))
    return SparkAnalysis(out.records_uri, count, all_findings, spots, usage, [str(p) for p in configs], timings)


# --------------------------------------------------------------------------------------------
# Command line (python -m analyzer.spark, or a spark-submit launcher calling main)
# --------------------------------------------------------------------------------------------


def _timestamp(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO time such as 2026-11-16T08:00, got {text!r}") from None
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


def _ip_table_spec(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=FILE, got {text!r}")
    return name, path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m analyzer.spark",
        description="Attribute Parquet mail-flow records to connectors and compute the findings of "
                    "`mailflow analyze` on Apache Spark (docs/spark.md).")
    parser.add_argument("records", help="Parquet records (path or URI): the records/ folder of `mailflow "
                                        "analyze`, or any Parquet with the normalized columns")
    parser.add_argument("--connectors", action="append", default=[], metavar="FILE",
                        help="Connector export (Get-InboundConnector/Get-OutboundConnector JSON, CSV, CLIXML, "
                             "our TOML); repeat for more")
    parser.add_argument("--accepted-domains", action="append", default=[], metavar="FILE",
                        help="Get-AcceptedDomain export (JSON or CSV)")
    parser.add_argument("--out", default="mailflow-report", help="Output folder (path or URI; default: %(default)s)")
    parser.add_argument("--master", help="Spark master (default: spark-submit's, else local[*])")
    parser.add_argument("--fail-on", choices=findings.SEVERITIES,
                        help="Exit 1 when a finding at or above this severity exists")
    parser.add_argument("--since", type=_timestamp, help="Only records at or after this time (UTC unless it says)")
    parser.add_argument("--until", type=_timestamp, help="Only records before this time")
    parser.add_argument("--ip-table", action="append", default=[], type=_ip_table_spec, metavar="NAME=FILE",
                        help="A range file whose labels become a column NAME")
    parser.add_argument("--cloud-ranges", action="append", default=[], metavar="FILE",
                        help="A cloud provider's published ranges (connector ranges inside are reported)")
    parser.add_argument("--internal", action="append", default=[], metavar="CIDR",
                        help="Internal networks besides the private ranges")
    parser.add_argument("--hotspot-window", type=int, default=60, help="Hot-spot window in minutes (default: 60)")
    parser.add_argument("--hotspot-min", type=int, default=10, help="Deferrals for a hot window (default: 10)")
    parser.add_argument("--hotspot-factor", type=float, default=5.0,
                        help="A hot window has this many times the background (default: 5)")
    parser.add_argument("--unrouted-min", type=int, default=100,
                        help="Records from one source for an unrouted_inbound finding (default: 100)")
    return parser


def _options(args: argparse.Namespace) -> analyses.Options:
    for name in ("hotspot_window", "hotspot_min", "unrouted_min"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1", got=str(getattr(args, name)))
    if args.hotspot_factor < 1:
        raise ConfigError("--hotspot-factor must be at least 1", got=str(args.hotspot_factor))
    return analyses.Options(
        since=args.since, until=args.until,
        attribution=attribution.Options(internal_networks=tuple(args.internal)),
        findings=findings.Options(hotspot_window=dt.timedelta(minutes=args.hotspot_window),
                                  hotspot_min_deferrals=args.hotspot_min, hotspot_burst_factor=args.hotspot_factor,
                                  unrouted_min_messages=args.unrouted_min),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: exit 0 when done, 1 when a finding reaches ``--fail-on``, 2 for bad
    input or configuration (one line on stderr)."""
    args = _parser().parse_args(argv)
    try:
        options = _options(args)
    except ConfigError as exc:
        print(f"mailflow-spark: error: {exc}", file=sys.stderr)
        return 2
    builder = SparkSession.builder.appName("mailflow-analyzer")
    if args.master:
        builder = builder.master(args.master)
    # Started as a plain Python program on a local master (PySpark's default), the workers must
    # run this interpreter, the one with the package. Under spark-submit (which sets the gateway
    # port) or on a cluster, spark.pyspark.python / PYSPARK_PYTHON say which one (docs/spark.md).
    if "PYSPARK_GATEWAY_PORT" not in os.environ and (args.master or "local").startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = builder.getOrCreate()
    try:
        result = analyze(spark, args.records, args.out, connector_files=args.connectors,
                         domain_files=args.accepted_domains, ip_tables=dict(args.ip_table),
                         cloud_ranges=args.cloud_ranges, options=options)
    except (AnalyzerError, OSError) as exc:
        print(f"mailflow-spark: error: {exc}", file=sys.stderr)
        return 2
    finally:
        spark.stop()
    counts = {s: int((result.findings["severity"] == s).sum()) for s in reversed(findings.SEVERITIES)}
    print(f"{result.records:,} records; findings: " + ", ".join(f"{n} {s}" for s, n in counts.items())
          + f"; outputs in {args.out}")
    if args.fail_on is not None and analyses.severity_at_least(result.findings, args.fail_on).height:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
