"""Traffic findings: what an admin must act on, computed from attributed records (docs/analysis.md §2).

Every rule of the specification except ``connector_config`` (configuration only, written in
`analyzer.attribution`) is a pure function of (attributed records, connectors, options), split in
two so that the same rules run on more than one engine:

* the *aggregation*: filters and group-bys over every record (millions of rows, or billions on
  Spark), giving a small frame of candidate rows (one per candidate finding, per distinct IP or
  per (source, window)). It is a method of an `Aggregator`: `PolarsAggregator` here runs lazy
  polars queries over a `LazyFrame` (usually scanned from Parquet); `analyzer.spark` runs the
  same aggregations in Spark SQL. The methods' docstrings say which columns each returns.
* the *rule*, ``_<kind>(aggregator, ctx) -> DataFrame``, shared by every engine: what depends on
  the configuration alone (which connectors are eligible), the `PrefixTable` checks on distinct
  values of a small aggregate, and, per finding, the ``detail`` and ``recommendation`` sentences
  and the severity. Python never runs per record.

`traffic_findings` and `hotspots` take a polars `LazyFrame`; `traffic_findings_from` and
`hotspots_from` take any `Aggregator`, so an engine's results are the same rows as polars' by
construction, as long as its aggregations are.

The output is deterministic: lists in sentences are ordered by volume then name, sample message
ids are the first five distinct ids in sort order, findings are sorted by `sort_findings`.

Columns the rules rely on: the normalized table (README) plus what `analyzer.attribution` adds:
``inbound_connector``, ``inbound_match``, ``disabled_inbound_connector``, ``outbound_connector``,
``ip_class``, ``sender_accepted``, ``recipient_accepted`` and one label column per ``--ip-table``
(named in `Options.ip_tables`).

Conventions used by every rule (where the specification leaves them open):

* ``count`` is the number of records (rows) involved, except for ``open_relay`` (messages, as the
  specification says) and ``greylisting_hotspot`` (deferrals in the hot windows, which are rows).
* ``detail`` names rows as "records" and adds the number of distinct messages (``message_key``)
  when that helps an admin size the problem.
* The specification's recommendation texts are used verbatim; the per-code ``relay_rejected``
  phrases (quoted in lower case there) start with a capital letter, being whole sentences here.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np
import polars as pl
import pyarrow as pa

from analyzer._partials import Cache, Day, canonical, collect, distinct_pairs
from analyzer.config import AcceptedDomain, Connectors, InboundConnector, OutboundConnector
from analyzer.errors import PrefixError
from analyzer.matching import NO_MATCH, NOT_AN_IP, PrefixTable

__all__ = [
    "FINDINGS_SCHEMA",
    "HOTSPOTS_SCHEMA",
    "KINDS",
    "SEVERITIES",
    "Aggregator",
    "Context",
    "Options",
    "PolarsAggregator",
    "hotspots",
    "hotspots_from",
    "sort_findings",
    "traffic_findings",
    "traffic_findings_from",
]

UTC_TS = pl.Datetime("us", "UTC")

FINDINGS_SCHEMA: dict[str, pl.DataType] = {
    "kind": pl.String(),
    "severity": pl.String(),
    "subject": pl.String(),
    "first_seen": UTC_TS,
    "last_seen": UTC_TS,
    "count": pl.Int64(),
    "detail": pl.String(),
    "recommendation": pl.String(),
    "sample_message_ids": pl.List(pl.String()),
}

KINDS: tuple[str, ...] = (
    "greylisting_hotspot",
    "open_relay",
    "relay_rejected",
    "non_accepted_domain",
    "direct_send",
    "unrouted_inbound",
    "partner_bypass",
    "outbound_bypass",
    "disabled_connector_traffic",
    "unused_connector",
    "attribution_mismatch",
    "connector_config",
)

SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high")

#: ``hotspots.parquet``: every (source, window) with deferrals.
HOTSPOTS_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "source_range": pl.String(),
    "window_start": UTC_TS,
    "deferrals": pl.Int64(),
    "background": pl.Float64(),
    "hot": pl.Boolean(),
    "covered_by": pl.String(),
}


@dataclass(frozen=True)
class Options:
    """Thresholds of the traffic rules (defaults from docs/analysis.md §2)."""

    hotspot_window: dt.timedelta = dt.timedelta(hours=1)
    hotspot_min_deferrals: int = 10
    hotspot_burst_factor: float = 5.0
    unrouted_min_messages: int = 100
    unused_min_rows: int = 100
    #: names of the ``--ip-table`` label columns present in the records (unrouted_inbound groups by them)
    ip_tables: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def traffic_findings(
    records: pl.LazyFrame | Sequence[pl.LazyFrame],
    connectors: Connectors,
    domains: Sequence[AcceptedDomain],
    options: Options = Options(),
) -> pl.DataFrame:
    """Every traffic finding (all kinds but ``connector_config``), in `FINDINGS_SCHEMA`, sorted.

    `records` is one LazyFrame of attributed records, or several that partition them by UTC day
    (a records/ folder's ``date=`` partitions, `_partials.record_days`): then every rule aggregates a
    day at a time and merges, and memory stays bounded by a day's aggregates (a rule that holds
    rows holds a slice of the day's parts at a time: `_partials.Day.slices`).

    `domains` is accepted for symmetry with the configuration rules: the accepted-domain tests
    themselves were applied by attribution (``sender_accepted``, ``recipient_accepted``), so the
    traffic rules read those columns and never re-derive them.
    """
    del domains  # see the docstring: attribution already applied them
    return traffic_findings_from(PolarsAggregator(records), connectors, options)


def hotspots(records: pl.LazyFrame | Sequence[pl.LazyFrame], connectors: Connectors,
             options: Options = Options()) -> pl.DataFrame:
    """The ``hotspots.parquet`` table: deferrals per (source, window), the source's background,
    whether the window is hot and the inbound connector covering the source; sorted by source
    and window. `records` as in `traffic_findings`."""
    return hotspots_from(PolarsAggregator(records), connectors, options)


def traffic_findings_from(aggregator: Aggregator, connectors: Connectors, options: Options = Options()) -> pl.DataFrame:
    """`traffic_findings` over the records behind any `Aggregator` (another engine's)."""
    ctx = Context.build(connectors, options)
    parts = [rule(aggregator, ctx) for rule in _RULES]
    return sort_findings(pl.concat(parts, how="vertical"))


def hotspots_from(aggregator: Aggregator, connectors: Connectors, options: Options = Options()) -> pl.DataFrame:
    """`hotspots` over the records behind any `Aggregator` (another engine's)."""
    ctx = Context.build(connectors, options)
    windows = aggregator.deferral_windows(ctx)
    if windows.height == 0:
        return pl.DataFrame(schema=HOTSPOTS_SCHEMA)
    return (
        _annotate_sources(windows, ctx)
        .select(
            pl.col("_source").alias("source"),
            pl.col("source_range"),
            _window_start(pl.col("_window"), ctx.window_us).alias("window_start"),
            pl.col("deferrals"),
            pl.col("background"),
            pl.col("hot"),
            pl.col("covered_by"),
        )
        .sort("source", "window_start")
        .cast(HOTSPOTS_SCHEMA)  # type: ignore[arg-type]
    )


def sort_findings(frame: pl.DataFrame) -> pl.DataFrame:
    """Findings by severity (high first), then kind and subject (alphabetically).

    Ties (two bursts of one source, two codes for one source) are broken by first_seen, then
    detail, so the order never depends on how polars happened to group the rows.
    """
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    return (
        frame.with_columns(
            pl.col("severity").replace_strict(rank, default=-1, return_dtype=pl.Int64).alias("_rank")
        )
        .sort(
            ["_rank", "kind", "subject", "first_seen", "detail"],
            descending=[True, False, False, False, False],
            nulls_last=True,
            maintain_order=True,
        )
        .drop("_rank")
    )


# --------------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------------

# The constants below define row sets of the rules; every engine's aggregations use them.

#: "Inbound rows" (spec §2): rows with one of these directions (the exports that do not say
#: their direction count as inbound) and a non-null ``client_ip``.
INBOUND_DIRECTIONS: tuple[str, ...] = ("inbound", "unknown")

#: Every greylisting enhanced code, as the canonical text `analyzer.status` writes: an is_in on
#: 250 strings is a hash lookup per row, cheaper than parsing the code of every row.
DEFERRAL_CODES: tuple[str, ...] = tuple(f"4.7.{d}" for d in (*range(500, 700), *range(850, 900)))

#: Formats of on-premises logs (Exchange Server tracking logs, Postfix): open-relay evidence, and
#: never a logged Exchange Online connector.
ONPREM_FORMATS: tuple[str, ...] = ("msgtrk", "postfix")

_INBOUND = pl.col("direction").is_in(list(INBOUND_DIRECTIONS)) & pl.col("client_ip").is_not_null()
_SAMPLE_ID = pl.coalesce(pl.col("message_id"), pl.col("message_key"))
_DEFERRAL_CODES = list(DEFERRAL_CODES)


def _top(frame: pl.LazyFrame, keys: Sequence[str], column: str, k: int = 5) -> pl.LazyFrame:
    """Per group of `keys`: the `k` most frequent non-null values of `column` (ties by value)
    as ``<column>_top`` and the number of distinct values as ``<column>_n``."""
    return (
        frame.filter(pl.col(column).is_not_null())
        .group_by([*keys, column])
        .agg(pl.len().alias("_n"))
        .group_by(list(keys))
        .agg(
            pl.col(column).sort_by(["_n", column], descending=[True, False]).head(k).alias(f"{column}_top"),
            pl.len().cast(pl.Int64).alias(f"{column}_n"),
        )
    )


def _with_tops(agg: pl.LazyFrame, rows: pl.LazyFrame, keys: Sequence[str], columns: Sequence[str]) -> pl.LazyFrame:
    """`agg` with the `_top` lists of `columns` over `rows` joined on `keys`."""
    for column in columns:
        agg = agg.join(_top(rows, keys, column), on=list(keys), how="left", nulls_equal=True)
    return agg


def _listing(values: Sequence[str] | None, total: int | None) -> str:
    """``a, b, c`` plus `` and N more`` when `total` exceeds what is listed."""
    values = list(values or [])
    shown = ", ".join(str(v) for v in values)
    rest = (total or 0) - len(values)
    return f"{shown} and {rest:,} more" if rest > 0 else shown


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (plural or word + 's')}"


def _records_text(count: int, messages: int) -> str:
    """"12 records (5 messages)": rows and distinct messages. Rows without any message id (a
    Postfix NOQUEUE reject is refused before it gets a queue id) leave the messages out."""
    if messages == 0:
        return _plural(count, "record")
    return f"{_plural(count, 'record')} ({_plural(messages, 'message')})"


def _ts_text(value: dt.datetime) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC"


def _duration_text(delta: dt.timedelta) -> str:
    """"1h", "30 min", "1h30m", "2 days"."""
    seconds = int(delta.total_seconds())
    days, rem = divmod(seconds, 86400)
    if rem == 0 and days:
        return _plural(days, "day")
    hours, rem = divmod(seconds, 3600)
    minutes, secs = divmod(rem, 60)
    if secs:
        return f"{seconds} s"
    if hours and minutes:
        return f"{hours}h{minutes:02d}m"
    return f"{hours}h" if hours else f"{minutes} min"


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema=FINDINGS_SCHEMA)


def _frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Findings rows (dicts with every FINDINGS_SCHEMA key) as a typed frame."""
    if not rows:
        return _empty()
    # column by column: polars reads lists of values much faster than a list of dicts
    columns: dict[str, Any] = {name: [row[name] for row in rows] for name in FINDINGS_SCHEMA}
    columns["sample_message_ids"] = _text_lists(columns["sample_message_ids"])
    return pl.DataFrame(columns, schema=FINDINGS_SCHEMA)


def _text_lists(lists: list[list[str]]) -> pl.Series:
    """Python lists of text as a List(String) column. Polars builds a Series per inner list (a
    rule over ten thousand sources spent 0.15 s there); one Arrow list array from the values and
    their offsets costs a millisecond."""
    offsets = np.zeros(len(lists) + 1, dtype=np.int64)
    np.cumsum([len(values) for values in lists], out=offsets[1:])
    flat = pa.array([value for values in lists for value in values], pa.large_string())
    return pl.Series(pa.LargeListArray.from_arrays(pa.array(offsets), flat)).cast(pl.List(pl.String))


def _finding(kind: str, severity: str, subject: str, row: dict[str, Any], detail: str,
             recommendation: str, count: int | None = None) -> dict[str, Any]:
    """One finding from an aggregate row holding first_seen, last_seen, count, sample_message_ids."""
    return {
        "kind": kind,
        "severity": severity,
        "subject": subject,
        "first_seen": row.get("first_seen"),
        "last_seen": row.get("last_seen"),
        "count": int(row["count"] if count is None else count),
        "detail": detail,
        "recommendation": recommendation,
        "sample_message_ids": list(row.get("sample_message_ids") or []),
    }


def _lookup(table: PrefixTable, values: pl.Series) -> np.ndarray:
    """Codes of `values` (a small, collected column of distinct addresses); an empty table
    still tells addresses (NO_MATCH) from other text (NOT_AN_IP)."""
    return table.lookup(values.cast(pl.String))


def _table(entries: Sequence[str]) -> PrefixTable:
    """A table of `entries` (all mapped to 0); entries the matcher refuses are skipped (the
    configuration loader already reported them, and a lint finding names them)."""
    table = PrefixTable()
    for entry in entries:
        try:
            table.add(entry, 0)
        except PrefixError:
            continue
    return table


def _networks(entries: Sequence[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """`entries` (CIDRs, addresses, ranges, netmasks) as networks, via the matcher's parser."""
    return [ipaddress.ip_network(prefix) for prefix, _ in _table(entries).prefixes()]


def _domain_covered(column: str, patterns: Sequence[str]) -> pl.Expr:
    """`column` is covered by `patterns` as attribution covers domains: exact, ``*.x`` (x and its
    subdomains), ``*`` (everything). Case-insensitive: the records' domains are lower case."""
    col = pl.col(column)
    patterns = [p.lower() for p in patterns]
    if "*" in patterns:
        return col.is_not_null()
    exact = [p for p in patterns if not p.startswith("*.")]
    parts = [col.is_in(exact)] if exact else []
    for pattern in patterns:
        if pattern.startswith("*."):
            base = pattern[2:]
            parts.append((col == base) | col.str.ends_with("." + base))
    if not parts:
        return pl.lit(False)
    return pl.any_horizontal(parts).fill_null(False)


def _window_start(window: pl.Expr, window_us: int) -> pl.Expr:
    return (window * window_us).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


@dataclass(frozen=True)
class Context:
    """What every rule (and every `Aggregator` method) needs from the configuration and the
    options, compiled once per call. Build it with `Context.build`."""

    connectors: Connectors
    options: Options
    window_us: int
    inbound_table: PrefixTable  # enabled inbound connectors' SenderIPAddresses -> index in inbound_names
    inbound_names: tuple[str, ...]

    @classmethod
    def build(cls, connectors: Connectors, options: Options) -> Context:
        """Compile `connectors` (the enabled inbound connectors' ranges) and check `options`."""
        window_us = int(options.hotspot_window / dt.timedelta(microseconds=1))
        if window_us <= 0:
            raise ValueError(f"hotspot_window must be positive, not {options.hotspot_window}")
        enabled = [c for c in connectors.inbound if c.enabled]
        # Same prefix in two connectors: the restricting Partner wins, then configuration order
        # (spec §1). The matcher keeps the *last* value added for a prefix, so add the winners last.
        order = sorted(range(len(enabled)), key=lambda i: (not _restricts(enabled[i]), i))
        table = PrefixTable()
        for i in reversed(order):
            for entry in enabled[i].sender_ip_addresses:
                try:
                    table.add(entry, i)
                except PrefixError:
                    continue
        return cls(connectors, options, window_us, table, tuple(c.name for c in enabled))

    def covering(self, sources: pl.Series) -> tuple[pl.Series, np.ndarray]:
        """(enabled inbound connector covering each address or null, the lookup codes)."""
        codes = _lookup(self.inbound_table, sources)
        names = np.array(self.inbound_names + (None,), dtype=object)
        picked = names[np.where(codes >= 0, codes, len(self.inbound_names))]
        return pl.Series("covered_by", picked.tolist(), dtype=pl.String), codes


def _restricts(connector: InboundConnector) -> bool:
    return connector.connector_type == "Partner" and connector.restrict_domains_to_ip_addresses


class Aggregator(Protocol):
    """The aggregations of the rules over one set of attributed records, on some engine.

    Each method filters and groups every record and returns a small, collected polars frame (any
    row order: the rules sort). "basics" below are the columns every finding carries, per group:
    ``count`` (Int64 rows), ``first_seen`` / ``last_seen`` (min / max ``timestamp``),
    ``sample_message_ids`` (the first five distinct non-null ``coalesce(message_id,
    message_key)`` in sort order) and ``messages`` (distinct non-null ``message_key``, Int64).
    "tops of c" are ``c_top`` (the five most frequent non-null values of ``c`` in the group, by
    count descending then value) and ``c_n`` (distinct non-null values of ``c``, Int64); a group
    without any is null in both. String order is by code point (UTF-8 bytes) everywhere.
    """

    def deferral_windows(self, ctx: Context) -> pl.DataFrame:
        """Greylisting deferrals (``enhanced_code`` in `DEFERRAL_CODES`; source
        ``coalesce(throttled_ip, client_ip)``, rows without one left out) per (source, window):
        ``_source``, ``_window`` (Int64: epoch microseconds floor-divided by ``ctx.window_us``),
        ``deferrals`` (Int64), ``background`` (Float64: the median of the source's per-window
        counts over every window from the first to the last *record*, empty windows counting as
        0) and ``hot`` (``deferrals >= hotspot_min_deferrals`` and ``>= max(background, 1) *
        hotspot_burst_factor``)."""
        ...

    def hotspot_runs(self, ctx: Context) -> pl.DataFrame:
        """Runs of consecutive hot windows of a source (from `deferral_windows`): ``_source``,
        ``_start`` (first window), ``background``, ``hot_windows``, ``count`` (deferrals in the
        run), ``peak`` (the largest window count), ``peak_window`` (its window, the earliest on a
        tie) and, over the run's deferral rows: ``first_seen``, ``last_seen``,
        ``sample_message_ids``, ``codes`` (distinct non-null ``ms_code``, sorted) and the tops of
        ``recipient_domain``."""
        ...

    def open_relay(self, ctx: Context) -> pl.DataFrame:
        """Per ``client_ip``: messages relayed from it (see `_open_relay`) as ``count``,
        ``first_seen`` / ``last_seen`` (over the messages' records), ``sample_message_ids`` (the
        messages' smallest Message-ID, else key), ``servers`` (distinct ``source_file``, sorted)
        and the tops of ``sender_domain`` and ``recipient_domain`` over the messages' records."""
        ...

    def relay_rejected(self, ctx: Context) -> pl.DataFrame:
        """Rows of `_relay_rejection` per (``_source`` = ``coalesce(client_ip, "unknown")``,
        ``_code`` = ``coalesce(enhanced_code, smtp_code as text)``): basics and the tops of
        ``sender_domain`` and ``recipient_domain``."""
        ...

    def non_accepted_domain(self, ctx: Context, connectors: Sequence[str]) -> pl.DataFrame:
        """Inbound rows matched by IP to one of `connectors` with ``sender_accepted`` False, per
        (``inbound_connector``, ``sender_domain``): basics and the tops of ``client_ip``."""
        ...

    def direct_send(self, ctx: Context) -> pl.DataFrame:
        """Inbound rows without inbound connector, ``ip_class`` other or private and
        ``sender_accepted`` True, per ``client_ip``: basics, ``_class`` (the smallest
        ``ip_class``) and the tops of ``sender_domain`` and ``recipient_domain``."""
        ...

    def unrouted_inbound(self, ctx: Context, column: str, tops: Sequence[str]) -> pl.DataFrame:
        """Inbound rows without inbound connector, ``ip_class`` other and ``sender_accepted`` not
        True, per non-null value of `column`, groups of at least ``unrouted_min_messages`` rows:
        basics, ``_ips`` (distinct ``client_ip``, a null counting as one) and the tops of each
        of `tops`."""
        ...

    def inbound_sender_domains(self, ctx: Context) -> pl.Series:
        """The distinct non-null ``sender_domain`` of inbound rows."""
        ...

    def partner_bypass(self, ctx: Context, mapping: pl.DataFrame) -> pl.DataFrame:
        """Inbound rows joined with `mapping` (``sender_domain`` -> ``_connector``, one row per
        pair), per (``_connector``, ``client_ip``): basics and the tops of ``sender_domain``.
        Groups whose ``client_ip`` is inside the connector's ranges may be left out (the rule
        drops them): rows matched to ``_connector`` by IP can be skipped before grouping."""
        ...

    def outbound_bypass(self, ctx: Context, connectors: Sequence[OutboundConnector]) -> pl.DataFrame:
        """Outbound ``send``/``deliver`` rows with a ``server_ip`` whose ``outbound_connector`` is
        one of `connectors` and whose ``recipient_domain`` that connector's RecipientDomains cover
        (as `_domain_covered`), per (``outbound_connector``, ``server_ip``): basics and the tops of
        ``recipient_domain``."""
        ...

    def disabled_connector_traffic(self, ctx: Context) -> pl.DataFrame:
        """Rows with a ``disabled_inbound_connector`` and no ``inbound_connector``, per
        ``disabled_inbound_connector``: basics, ``_ips`` (distinct ``client_ip``, a null counting
        as one) and the tops of ``client_ip``."""
        ...

    def unused_connector(self, ctx: Context) -> dict[str, Any]:
        """``inbound_rows`` and ``outbound_rows`` (counts), ``inbound_used`` and ``outbound_used``
        (the distinct non-null ``inbound_connector`` / ``outbound_connector``, lists)."""
        ...

    def attribution_mismatch(self, ctx: Context, outbound_only: Sequence[str]) -> pl.DataFrame:
        """Inbound rows of Exchange Online formats whose trimmed ``connector_name`` (``_logged``)
        is not empty, has no backslash, whose lower case (``_key``) is not in `outbound_only` and
        differs from the trimmed lower-case ``inbound_connector`` (a null one differs), per
        (``_key``, ``inbound_connector``): basics, ``_display`` (the smallest ``_logged``) and the
        tops of ``client_ip``."""
        ...


# --------------------------------------------------------------------------------------------
# greylisting_hotspot
# --------------------------------------------------------------------------------------------


def _deferral_rows(records: pl.LazyFrame, ctx: Context) -> pl.LazyFrame:
    """Greylisting deferrals with their source and window index (windows aligned to the epoch).

    Rows without any source address (neither ``throttled_ip`` nor ``client_ip``) cannot be
    counted against a source and are left out. All directions count: the deferrals are seen on
    the sending side (on-premises and Postfix logs), as the specification's §3 notes.
    """
    return (
        records.filter(pl.col("enhanced_code").is_in(_DEFERRAL_CODES))
        .with_columns(pl.coalesce(pl.col("throttled_ip"), pl.col("client_ip")).alias("_source"))
        .filter(pl.col("_source").is_not_null())
        .with_columns((pl.col("timestamp").dt.epoch("us") // ctx.window_us).alias("_window"))
    )


def _source_ranges(sources: pl.Series, codes: np.ndarray) -> pl.Series:
    """The /24 (IPv4) or /64 (IPv6) of each address; null for text that is not an address."""
    frame = pl.DataFrame({"s": sources, "ok": codes != NOT_AN_IP})
    v4 = pl.col("s").str.extract(r"^(\d{1,3}\.\d{1,3}\.\d{1,3})\.\d{1,3}$", 1) + ".0/24"
    out = frame.select(pl.when(pl.col("ok")).then(v4).alias("r")).to_series()
    # IPv6 is rare in these logs and compressed forms make text slicing wrong: ipaddress per
    # distinct IPv6 source.
    v6 = frame.filter(pl.col("ok") & pl.col("s").str.contains(":", literal=True)).get_column("s").unique()
    if len(v6):
        mapping = {}
        for text in v6.to_list():
            try:
                mapping[text] = str(ipaddress.ip_network(f"{text}/64", strict=False))
            except ValueError:
                mapping[text] = None
        out = frame.select(
            pl.coalesce(pl.col("s").replace_strict(mapping, default=None, return_dtype=pl.String),
                        pl.Series(out))
        ).to_series()
    return out.rename("source_range")


def _annotate_sources(frame: pl.DataFrame, ctx: Context) -> pl.DataFrame:
    """`frame` with ``covered_by`` (the enabled inbound connector whose ranges hold ``_source``)
    and ``source_range`` (its /24 or /64), worked out once per distinct source."""
    sources = frame.get_column("_source").unique()
    covered, codes = ctx.covering(sources)
    per_source = pl.DataFrame([sources, covered, _source_ranges(sources, codes)])
    return frame.join(per_source, on="_source", how="left")


def _greylisting_hotspot(aggregator: Aggregator, ctx: Context) -> pl.DataFrame:
    """One finding per run of consecutive hot windows of a source (spec §2 greylisting_hotspot).

    Interpretations:

    * ``count`` is the deferrals in the run's hot windows; first/last_seen and the samples come
      from those deferrals only (not from the quiet windows around them).
    * "how many other sources in it are hot": other sources of the same /24 or /64 that have a
      hot window anywhere in the analysed period (not necessarily at the same time: a range
      that greylists now and then is one problem).
    * "covered by an inbound connector": the source address is inside the SenderIPAddresses of
      an enabled inbound connector (longest prefix, as attribution). A certificate-only
      connector cannot be checked offline and does not count as covering.
    * A source that has only ever deferred in one burst has a background of the period's empty
      windows (0), so the burst is hot; one that defers steadily all period long is not.
    * IPv6 sources: Exchange Online connectors take IPv4 SenderIPAddresses only, so instead of
      "Add <ip>/32" the recommendation is to identify the server by its certificate.
    """
    runs = aggregator.hotspot_runs(ctx)
    if runs.height == 0:
        return _empty()
    runs = _annotate_sources(runs, ctx)
    # Other hot sources per range: distinct hot sources of the range, minus this one.
    hot_per_range = (
        runs.filter(pl.col("source_range").is_not_null())
        .group_by("source_range")
        .agg(pl.col("_source").n_unique().cast(pl.Int64).alias("_hot_in_range"))
    )
    table = runs.join(hot_per_range, on="source_range", how="left").sort("_source", "_start")
    hourly = ctx.window_us == 3_600_000_000
    window = dt.timedelta(microseconds=ctx.window_us)
    unit = "h" if hourly else _duration_text(window)
    out = []
    for row in table.iter_rows(named=True):
        source: str = row["_source"]
        peak_start = dt.datetime.fromtimestamp(row["peak_window"] * ctx.window_us / 1e6, dt.timezone.utc)
        where = "the hour" if hourly else f"the {_duration_text(window)} window"
        n_hot = row["hot_windows"]
        if hourly:
            span = _plural(n_hot, "hot hour")
        else:
            span = f"{_plural(n_hot, 'hot window')} ({_duration_text(window * n_hot)})"
        codes = f"codes {', '.join(row['codes'])}" if row["codes"] else "no AS/S code"
        domains = (f"to {_listing(row['recipient_domain_top'], row['recipient_domain_n'])}"
                   if row["recipient_domain_top"] else "no recipient domain logged")
        parts = [
            f"peak {row['peak']:,} deferrals in {where} from {_ts_text(peak_start)} "
            f"(background {row['background']:g}/{unit}), {span}, {codes}, {domains}"
        ]
        if row["source_range"] is not None:
            others = (row["_hot_in_range"] or 1) - 1
            parts.append(f"{row['source_range']} has {_plural(others, 'other hot source')}"
                         if others else f"{row['source_range']} has no other hot source")
        covered = row["covered_by"]
        parts.append(f"in inbound connector '{covered}'" if covered else "not in any inbound connector")
        detail = "; ".join(parts)
        if covered:
            severity = "low"
            recommendation = (f"Source is in connector '{covered}': check that its TLS certificate and "
                              "SenderIPAddresses still match this server")
        else:
            severity = "high" if row["peak"] >= 50 else "medium"
            recommendation = _hotspot_fix(source, ctx.connectors)
        out.append(_finding("greylisting_hotspot", severity, source, row, detail, recommendation))
    return _frame(out)


def _hotspot_fix(source: str, connectors: Connectors) -> str:
    """The recommendation for a source outside every connector (spec: the OnPremises connector
    with a range in the same /16, else the first enabled OnPremises connector, else create one)."""
    onprem = [c for c in connectors.inbound if c.enabled and c.connector_type == "OnPremises"]
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        address = None
    if address is not None and address.version == 6:
        name = f"inbound connector '{onprem[0].name}'" if onprem else "an OnPremises inbound connector"
        return (f"Exchange Online connectors take IPv4 addresses only: identify {source} by its TLS "
                f"certificate in {name} (TlsSenderCertificateName), or send over IPv4 "
                "(Microsoft's fix for 451 4.7.500-699)")
    target = None
    if address is not None:
        block = ipaddress.ip_network(f"{address}/16", strict=False)
        target = next((c for c in onprem
                       if any(n.version == 4 and n.overlaps(block) for n in _networks(c.sender_ip_addresses))),
                      None)
    if target is None and onprem:
        target = onprem[0]
    if target is None:
        return (f"Create an OnPremises inbound connector with SenderIPAddresses {source}/32 "
                "(Microsoft's fix for 451 4.7.500-699)")
    return f"Add {source}/32 to the SenderIPAddresses of inbound connector '{target.name}'"


# --------------------------------------------------------------------------------------------
# open_relay
# --------------------------------------------------------------------------------------------


def _open_relay(aggregator: Aggregator, ctx: Context) -> pl.DataFrame:
    """On-premises servers passing on mail between two foreign domains for an outside source.

    A message is (``source_file``, ``message_key``) of ``msgtrk``/``postfix`` records. It is
    relayed when: a ``receive`` record has a ``client_ip`` of class ``other``; no record of the
    message has an accepted sender (and at least one says not accepted: the null sender of a
    bounce is not evidence); every recipient domain logged for it is not accepted (at least one
    is logged; Postfix ``receive`` records carry no recipient, the delivery records do); and a
    ``send``/``deliver`` record (Postfix: ``status`` "sent") exists. A message received from
    several outside addresses counts for each. Samples: the message's Message-ID (the first in
    sort order when its records disagree), else its key.
    """
    table = aggregator.open_relay(ctx).sort("client_ip")
    out = []
    for row in table.iter_rows(named=True):
        ip = row["client_ip"]
        servers = row["servers"]
        detail = (
            f"{_plural(row['count'], 'message')} received from {ip} (not a connector, private or Microsoft "
            f"address) from {_listing(row['sender_domain_top'], row['sender_domain_n'])} to "
            f"{_listing(row['recipient_domain_top'], row['recipient_domain_n'])}, none of them accepted "
            f"domains, were passed on by {_listing(servers[:5], len(servers))}"
        )
        out.append(_finding("open_relay", "high", ip, row, detail,
                            "Restrict relaying on this server: require authentication or limit the receive "
                            "connector's RemoteIPRanges / Postfix mynetworks"))
    return _frame(out)


# --------------------------------------------------------------------------------------------
# relay_rejected
# --------------------------------------------------------------------------------------------

#: Enhanced codes that are relay refusals whatever the text says.
RELAY_REJECTION_CODES: tuple[str, ...] = ("5.7.64", "5.7.54", "5.7.51", "5.7.68")
#: Relay refusal wording (5.7.1, and replies without an enhanced code); `RELAY_DENIED_TEXT` for 5.4.1.
RELAY_TEXT = r"(?i)unable to relay|relay access denied|relaying denied"
RELAY_DENIED_TEXT = r"(?i)relay access denied"
#: A folded line break of a multi-line response, unfolded to one space before the text tests.
LINE_BREAK = r"(?:\r\n|\r|\n)[ \t]*"
_RELAY_TEXT = RELAY_TEXT
_RELAY_CODES: dict[str, tuple[str, str]] = {
    "5.7.64": ("TenantAttribution: relay through the OnPremises connector refused",
               "The OnPremises connector no longer matches this server (certificate name or source IP "
               "changed): update the connector"),
    "5.7.51": ("TenantInboundAttribution: the partner connector restricts this domain",
               "The partner connector restricts this domain to other IPs/certificate: add the IP or fix "
               "the certificate"),
    "5.7.68": ("Direct Send not allowed",
               "Direct Send is rejected for this tenant: send through a connector or authenticated SMTP"),
}
_RELAY_REFUSED = ("relay refused",
                  "The server refused to relay: if this sender is legitimate, add it to a relay connector, "
                  "else nothing to do")


def _relay_rejection() -> pl.Expr:
    """The `analyzer.status` categories relay_denied, attribution_rejected, direct_send_rejected,
    as a column expression on the parsed codes (the records carry the codes, not the category;
    re-running `classify` on millions of distinct NDR texts would be far slower). The text tests
    run on the response with line breaks unfolded, as `classify` does."""
    enh = pl.col("enhanced_code")
    # the text only where a code leaves the question open: the regexes then skip every
    # delivered or deferred row (nulls cost nothing)
    open_question = ((enh == "5.7.1") | (enh == "5.4.1")
                     | (enh.is_null() & (pl.col("smtp_code") >= 500))).fill_null(False)
    text = pl.when(open_question).then(pl.col("smtp_response")).str.replace_all(LINE_BREAK, " ")
    says_relay = text.str.contains(_RELAY_TEXT).fill_null(False)
    return (
        enh.is_in(list(RELAY_REJECTION_CODES)).fill_null(False)
        | ((enh == "5.7.1") & says_relay).fill_null(False)
        | ((enh == "5.4.1") & text.str.contains(RELAY_DENIED_TEXT)).fill_null(False)
        | (enh.is_null() & (pl.col("smtp_code") >= 500) & says_relay).fill_null(False)
    )


def _relay_rejected(aggregator: Aggregator, ctx: Context) -> pl.DataFrame:
    """Relay refusals per (source, code) (spec §2 relay_rejected).

    Interpretations: subject is the source alone (``client_ip`` or "unknown"), the code is in the
    detail; a refusal with no enhanced code (``554 Relay access denied``) is grouped under its
    basic code and gets the "refused to relay" recommendation, like 5.7.54/5.7.1/5.4.1. All
    directions count (the refusal may be seen by the sending or the receiving side).
    """
    table = aggregator.relay_rejected(ctx).sort("_source", "_code")
    out = []
    for row in table.iter_rows(named=True):
        meaning, recommendation = _RELAY_CODES.get(row["_code"], _RELAY_REFUSED)
        detail = (f"{_records_text(row['count'], row['messages'])} rejected with {row['_code']} ({meaning})"
                  f"{_domains_clause(row)}")
        out.append(_finding("relay_rejected", "medium", row["_source"], row, detail, recommendation))
    return _frame(out)


def _domains_clause(row: dict[str, Any]) -> str:
    """"; from a.com, b.com to c.com" out of the sender/recipient `_top` columns."""
    parts = []
    if row.get("sender_domain_top"):
        parts.append(f"from {_listing(row['sender_domain_top'], row['sender_domain_n'])}")
    if row.get("recipient_domain_top"):
        parts.append(f"to {_listing(row['recipient_domain_top'], row['recipient_domain_n'])}")
    return ", " + " ".join(parts) if parts else ""


# --------------------------------------------------------------------------------------------
# non_accepted_domain
# --------------------------------------------------------------------------------------------


def _non_accepted_domain(aggregator: Aggregator, ctx: Context) -> pl.DataFrame:
    """Mail relayed through an OnPremises connector (matched by IP) with a sender domain that is
    not accepted: Microsoft's Non-accepted domain report, one finding per (connector, domain)."""
    onprem = [c.name for c in ctx.connectors.inbound if c.enabled and c.connector_type == "OnPremises"]
    if not onprem:
        return _empty()
    table = aggregator.non_accepted_domain(ctx, onprem).sort("inbound_connector", "sender_domain")
    out = []
    for row in table.iter_rows(named=True):
        connector, domain = row["inbound_connector"], row["sender_domain"]
        detail = (f"{_records_text(row['count'], row['messages'])} with sender domain {domain}, which is not "
                  f"an accepted domain, came through OnPremises connector '{connector}' from "
                  f"{_listing(row['client_ip_top'], row['client_ip_n'])}")
        recommendation = (f"Add {domain} as an accepted domain, or stop relaying mail from it through "
                          f"'{connector}' (Microsoft rejects it since Nov 2023)")
        out.append(_finding("non_accepted_domain", "medium", f"{connector}: {domain}", row, detail, recommendation))
    return _frame(out)


# --------------------------------------------------------------------------------------------
# direct_send
# --------------------------------------------------------------------------------------------


def _direct_send(aggregator: Aggregator, ctx: Context) -> pl.DataFrame:
    """Mail from your own (accepted) domain arriving outside every connector from a non-Microsoft
    address: a device or app using Direct Send, or spoofing. One finding per client_ip."""
    table = aggregator.direct_send(ctx).sort("client_ip")
    out = []
    for row in table.iter_rows(named=True):
        ip = row["client_ip"]
        what = "a private address" if row["_class"] == "private" else "an address outside every connector"
        detail = (f"{_records_text(row['count'], row['messages'])} from {ip} ({what}) sent as accepted domain "
                  f"{_listing(row['sender_domain_top'], row['sender_domain_n'])}"
                  + (f" to {_listing(row['recipient_domain_top'], row['recipient_domain_n'])}"
                     if row["recipient_domain_top"] else "")
                  + " without any inbound connector")
        recommendation = (f"If {ip} is your device or app, create an OnPremises connector for it; otherwise it "
                          "is spoofing your domain (enable RejectDirectSend)")
        out.append(_finding("direct_send", "medium", ip, row, detail, recommendation))
    return _frame(out)


# --------------------------------------------------------------------------------------------
# unrouted_inbound
# --------------------------------------------------------------------------------------------

_UNROUTED_FIX = "High-volume sender outside every connector: if it is a partner, create a Partner connector for its IPs"


def _unrouted_inbound(aggregator: Aggregator, ctx: Context) -> pl.DataFrame:
    """High-volume foreign senders outside every connector, per client_ip and per ip-table label.

    Interpretations: both the threshold (``unrouted_min_messages``, "rows" in the spec) and the
    low/info boundary (1,000) compare the number of records, so the two numbers mean the same
    thing; the detail also gives distinct messages. Rows whose label is null (the address is in
    no range of the table) form no label group.
    """
    out = []
    groups: list[tuple[str, str | None]] = [("client_ip", None)] + [(t, t) for t in ctx.options.ip_tables]
    for column, table_name in groups:
        tops = ["sender_domain", "client_ip"] if table_name else ["sender_domain"]
        table = aggregator.unrouted_inbound(ctx, column, tops)
        for row in table.sort(column).iter_rows(named=True):
            value = row[column]
            if table_name is None:
                subject = value
                source = f"from {value}"
            else:
                subject = f"{table_name}={value}"
                source = (f"from {_plural(row['_ips'], 'address', 'addresses')} labelled {value} in {table_name} "
                          f"({_listing(row['client_ip_top'], row['client_ip_n'])})")
            detail = (f"{_records_text(row['count'], row['messages'])} {source} matched no inbound connector"
                      + (f", sender domains {_listing(row['sender_domain_top'], row['sender_domain_n'])}"
                         if row["sender_domain_top"] else ""))
            severity = "low" if row["count"] >= 1000 else "info"
            out.append(_finding("unrouted_inbound", severity, subject, row, detail, _UNROUTED_FIX))
    return _frame(out)


# --------------------------------------------------------------------------------------------
# partner_bypass
# --------------------------------------------------------------------------------------------


def _partner_bypass(aggregator: Aggregator, ctx: Context) -> pl.DataFrame:
    """Mail from a partner's domains arriving from outside that Partner connector's IPs.

    Interpretations: a connector's ``*`` entries are dropped and the remaining explicit domains
    checked (a connector with only ``*`` is skipped); a ``client_ip`` that is not an address at
    all cannot be "outside the ranges" and is skipped. When the connector already restricts
    (RestrictDomainsToIPAddresses), the spec's advice to enable it would be wrong: the
    recommendation then says that such mail is rejected and only the IP question remains.
    """
    eligible = [
        c for c in ctx.connectors.inbound
        if c.enabled and c.connector_type == "Partner" and c.sender_ip_addresses
        and any(d != "*" for d in c.sender_domains)
    ]
    if not eligible:
        return _empty()
    # sender domain -> connector pairs, worked out on the distinct domains (one small collect)
    domains = pl.DataFrame([aggregator.inbound_sender_domains(ctx).rename("sender_domain")])
    mapping = pl.concat([
        domains.filter(_domain_covered("sender_domain", [d for d in c.sender_domains if d != "*"]))
        .with_columns(pl.lit(c.name).alias("_connector"))
        for c in eligible
    ])
    if mapping.height == 0:
        return _empty()
    keys = ["_connector", "client_ip"]
    agg = aggregator.partner_bypass(ctx, mapping)
    outside = []
    for connector in eligible:
        part = agg.filter(pl.col("_connector") == connector.name)
        if part.height:
            codes = _lookup(_table(connector.sender_ip_addresses), part.get_column("client_ip"))
            outside.append(part.filter(pl.Series(codes == NO_MATCH)))
    table = pl.concat(outside).sort(keys) if outside else agg.clear()
    if table.height == 0:
        return _empty()
    by_name = {c.name: c for c in eligible}
    out = []
    for row in table.iter_rows(named=True):
        connector = by_name[row["_connector"]]
        ip = row["client_ip"]
        domains_text = _listing(row["sender_domain_top"], row["sender_domain_n"])
        restricted = connector.restrict_domains_to_ip_addresses
        detail = (f"{_records_text(row['count'], row['messages'])} from {domains_text} arrived from {ip}, outside "
                  f"the SenderIPAddresses of Partner connector '{connector.name}' "
                  f"({_listing(connector.sender_ip_addresses[:5], len(connector.sender_ip_addresses))}); "
                  f"RestrictDomainsToIPAddresses is {'on' if restricted else 'off'}")
        if restricted:
            recommendation = (f"Mail from {domains_text} arrived from {ip}, outside the connector's IPs: add the IP "
                              "if it is the partner's (RestrictDomainsToIPAddresses rejects it meanwhile)")
        else:
            recommendation = (f"Mail from {domains_text} arrived from {ip}, outside the connector's IPs: add the IP "
                              "if it is the partner's, or enable RestrictDomainsToIPAddresses")
        out.append(_finding("partner_bypass", "medium" if restricted else "high",
                            f"{connector.name}: {ip}", row, detail, recommendation))
    return _frame(out)


# --------------------------------------------------------------------------------------------
# outbound_bypass
# --------------------------------------------------------------------------------------------


def _ip_smart_hosts(connector: OutboundConnector) -> list[str]:
    """The smart hosts that are IP addresses or CIDRs (host names cannot be resolved offline)."""
    hosts = []
    for host in connector.smart_hosts:
        try:
            ipaddress.ip_network(host.strip("[]"), strict=False)
        except ValueError:
            continue
        hosts.append(host.strip("[]"))
    return hosts


def _outbound_bypass(aggregator: Aggregator, ctx: Context) -> pl.DataFrame:
    """Mail for a Partner outbound connector's domains handed to a server that is not one of its
    smart hosts. One finding per (connector, server_ip).

    Interpretations: a row belongs to the connector when attribution chose it
    (``outbound_connector``) *and* its recipient domain is covered by the connector's
    RecipientDomains: so mail for fabrikam.com sent through a more specific connector is not a
    bypass of a ``*`` connector. A connector with both host names and IPs is checked against its
    IPs, and the detail names the unresolved host names. Rows without a ``server_ip``, or with
    one that is not an address, cannot be checked. The spec gives no recommendation text: ours
    says to add the server if it is the partner's, else to find why the connector was not used.
    """
    eligible = [(c, hosts) for c in ctx.connectors.outbound
                if c.enabled and c.connector_type == "Partner" and c.recipient_domains
                and (hosts := _ip_smart_hosts(c))]
    if not eligible:
        return _empty()
    keys = ["outbound_connector", "server_ip"]
    agg = aggregator.outbound_bypass(ctx, [c for c, _ in eligible])
    outside = []
    for connector, hosts in eligible:
        part = agg.filter(pl.col("outbound_connector") == connector.name)
        if part.height:
            codes = _lookup(_table(hosts), part.get_column("server_ip"))
            outside.append(part.filter(pl.Series(codes == NO_MATCH)))
    table = pl.concat(outside).sort(keys) if outside else agg.clear()
    if table.height == 0:
        return _empty()
    by_name = {c.name: (c, hosts) for c, hosts in eligible}
    out = []
    for row in table.iter_rows(named=True):
        connector, hosts = by_name[row["outbound_connector"]]
        ip = row["server_ip"]
        names = [h for h in connector.smart_hosts if h.strip("[]") not in hosts]
        domains_text = _listing(row["recipient_domain_top"], row["recipient_domain_n"])
        detail = (f"{_records_text(row['count'], row['messages'])} for {domains_text} were handed to {ip}, not to a "
                  f"smart host of outbound connector '{connector.name}' ({', '.join(hosts)})"
                  + (f"; host names not resolved offline: {', '.join(names)}" if names else ""))
        recommendation = (f"If {ip} is the partner's server, add it to the SmartHosts of '{connector.name}'; "
                          f"otherwise find out why mail for {domains_text} did not go through the connector "
                          "(TestMode, a transport rule, MX routing)")
        out.append(_finding("outbound_bypass", "medium", f"{connector.name}: {ip}", row, detail, recommendation))
    return _frame(out)


# --------------------------------------------------------------------------------------------
# disabled_connector_traffic
# --------------------------------------------------------------------------------------------


def _disabled_connector_traffic(aggregator: Aggregator, ctx: Context) -> pl.DataFrame:
    """Mail from the range of a disabled inbound connector that no enabled connector handled.

    All directions count, as the spec says "rows": a hybrid server in the disabled connector's
    range relaying outbound mail is the same problem. The spec gives no recommendation text:
    ours is to re-enable the connector if these servers should use it, else to remove it.
    """
    table = aggregator.disabled_connector_traffic(ctx).sort("disabled_inbound_connector")
    out = []
    for row in table.iter_rows(named=True):
        name = row["disabled_inbound_connector"]
        ips = _listing(row["client_ip_top"], row["client_ip_n"])
        detail = (f"{_records_text(row['count'], row['messages'])} from "
                  f"{_plural(row['_ips'], 'address', 'addresses')} ({ips}) in the range of disabled inbound "
                  f"connector '{name}' matched no enabled connector")
        recommendation = (f"Re-enable '{name}' if {ips} should still send through it; otherwise remove the "
                          "connector and find out why these servers still send")
        out.append(_finding("disabled_connector_traffic", "medium", name, row, detail, recommendation))
    return _frame(out)


# --------------------------------------------------------------------------------------------
# unused_connector
# --------------------------------------------------------------------------------------------


def _unused_connector(aggregator: Aggregator, ctx: Context) -> pl.DataFrame:
    """Enabled connectors no record was attributed to, when the input is large enough to tell.

    Interpretations: "inbound rows" as everywhere (direction inbound/unknown with a client IP);
    "outbound rows" are rows with direction ``outbound``. Attribution to the connector is counted
    over all rows. An outbound connector whose RecipientDomains were not exported (CSV export
    of a multi-valued property) is skipped: attribution could not use it, so "unused" would be
    an artefact. The spec gives no recommendation text: ours is to check whether the connector
    is still needed.
    """
    stats = aggregator.unused_connector(ctx)
    minimum = ctx.options.unused_min_rows
    out = []
    if (stats["inbound_rows"] or 0) >= minimum:
        used = set(stats["inbound_used"] or [])
        for c in ctx.connectors.inbound:
            if c.enabled and c.sender_ip_addresses and c.name not in used:
                detail = (f"No record was attributed to enabled {c.connector_type} inbound connector '{c.name}' "
                          f"(SenderIPAddresses {_listing(c.sender_ip_addresses[:5], len(c.sender_ip_addresses))}) "
                          f"among {_plural(stats['inbound_rows'], 'inbound record')}")
                recommendation = (f"Check whether '{c.name}' is still needed: if its servers no longer send, remove "
                                  "it (a stale range can later match a server it was not meant for)")
                out.append(_finding("unused_connector", "info", c.name, {}, detail, recommendation, count=0))
    if (stats["outbound_rows"] or 0) >= minimum:
        used = set(stats["outbound_used"] or [])
        for c in ctx.connectors.outbound:
            if c.enabled and c.name not in used and "RecipientDomains" not in c.unexported:
                scope = (f"recipient domains {_listing(c.recipient_domains[:5], len(c.recipient_domains))}"
                         if c.recipient_domains else "no recipient domains")
                if c.is_transport_rule_scoped:
                    scope += ", scoped to transport rules"
                detail = (f"No record was attributed to enabled {c.connector_type} outbound connector '{c.name}' "
                          f"({scope}) among {_plural(stats['outbound_rows'], 'outbound record')}")
                recommendation = (f"Check whether '{c.name}' is still needed: if no mail should take this route "
                                  "any more, remove it")
                out.append(_finding("unused_connector", "info", c.name, {}, detail, recommendation, count=0))
    return _frame(out)


# --------------------------------------------------------------------------------------------
# attribution_mismatch
# --------------------------------------------------------------------------------------------

def _attribution_mismatch(aggregator: Aggregator, ctx: Context) -> pl.DataFrame:
    """Inbound rows whose logged connector is not the one their IP points to.

    Interpretations, all to keep out comparisons that are not about the same thing:

    * only Exchange Online sources (``msgtrk``/``postfix`` log Exchange Server receive
      connectors, never an Exchange Online one);
    * logged names of the form ``SERVER\\name`` are Exchange Server receive connectors (Exchange
      Online's internal hops log them too) and are skipped, as are names of configured outbound
      connectors that are not also inbound ones (trace detail rows of outbound mail, whose
      direction is "unknown", log the outbound connector);
    * blank logged names count as null; the pair is keyed case-insensitively and shown with the
      logged spelling that sorts first.

    The spec gives no recommendation text: ours explains what the disagreement usually means.
    """
    inbound_names = {c.name.lower() for c in ctx.connectors.inbound}
    outbound_only = sorted({c.name.lower() for c in ctx.connectors.outbound} - inbound_names)
    table = aggregator.attribution_mismatch(ctx, outbound_only).sort("_key", "inbound_connector", nulls_last=True)
    out = []
    for row in table.iter_rows(named=True):
        logged_name, derived = row["_display"], row["inbound_connector"]
        ips = _listing(row["client_ip_top"], row["client_ip_n"])
        ip_side = f"inbound connector '{derived}'" if derived else "no enabled inbound connector"
        detail = (f"{_records_text(row['count'], row['messages'])} from {ips} were logged as received by "
                  f"connector '{logged_name}' but their IP matches {ip_side}")
        if row["_key"] not in inbound_names:
            recommendation = (f"'{logged_name}' is not in the configuration given: export the current connectors "
                              "(it may have been renamed or added since)")
        elif derived is None:
            recommendation = (f"Exchange Online matched '{logged_name}' by certificate or sender domain: if {ips} "
                              f"are its servers, add them to its SenderIPAddresses")
        else:
            recommendation = (f"Exchange Online chose '{logged_name}' (by certificate or sender domain) where the "
                              f"IP ranges point to '{derived}': check which connector {ips} should use and "
                              "remove them from the other")
        subject = f"{logged_name} != {derived if derived is not None else 'none'}"
        out.append(_finding("attribution_mismatch", "low", subject, row, detail, recommendation))
    return _frame(out)


_RULES: tuple[Callable[[Aggregator, Context], pl.DataFrame], ...] = (
    _greylisting_hotspot,
    _open_relay,
    _relay_rejected,
    _non_accepted_domain,
    _direct_send,
    _unrouted_inbound,
    _partner_bypass,
    _outbound_bypass,
    _disabled_connector_traffic,
    _unused_connector,
    _attribution_mismatch,
)


# --------------------------------------------------------------------------------------------
# The polars engine
# --------------------------------------------------------------------------------------------


def _grouped(
    days: Sequence[Day],
    rows: Callable[[pl.LazyFrame], pl.LazyFrame],
    keys: Sequence[str],
    *,
    tops: Sequence[str] = (),
    distinct: Mapping[str, str] = MappingProxyType({}),
    minimum: Mapping[str, str] = MappingProxyType({}),
    cache: Cache | None = None,
) -> pl.DataFrame:
    """Per group of `keys` of ``rows(day)`` over every day: the basics (see `Aggregator`), the
    tops of `tops`, ``name`` = distinct values of ``column`` (a null counting as one) for each
    ``name: column`` of `distinct`, and the minimum of each column of `minimum` (``name:
    column``).

    Each day is aggregated on its own, a slice of its parts at a time (`_partials.Day.slices`),
    and the partial results merged, so memory is bounded by a slice of records plus a row per
    (group, message) instead of by every row of the period: counts
    and bounds add up; messages, distinct values and sample ids merge as the distinct
    (group, value) pairs of all days (a message's records may span midnight); tops as the per-value
    counts of all days. Message keys are kept as 64-bit hashes (8 bytes a message, not the text).
    A day's partial results go through `cache` (`analyzer._partials`) when there is one.
    """
    keys = list(keys)
    parts: dict[str, list[pl.DataFrame]] = {}

    def queries(day: pl.LazyFrame) -> dict[str, pl.LazyFrame]:
        return queries_of(rows(day))

    def queries_of(frame: pl.LazyFrame) -> dict[str, pl.LazyFrame]:
        return {
            "base": frame.group_by(keys).agg(
                pl.len().cast(pl.Int64).alias("count"),
                pl.col("timestamp").min().alias("first_seen"),
                pl.col("timestamp").max().alias("last_seen"),
                *[pl.col(column).min().alias(name) for name, column in minimum.items()],
            ),
            "messages": distinct_pairs(frame.filter(pl.col("message_key").is_not_null()), keys,
                                       pl.col("message_key").hash(seed=_MESSAGE_SEED), "_m"),
            # the five smallest distinct ids of the day are enough: the period's five smallest are
            # among the days' five smallest
            "samples": frame.select(*keys, _SAMPLE_ID.alias("_id")).drop_nulls("_id")
            .group_by(keys).agg(pl.col("_id").unique().sort().head(5)),
            # values under their own name: a top or distinct column may also be a key
            **{f"top:{c}": frame.filter(pl.col(c).is_not_null()).group_by(*keys, pl.col(c).alias("_v"))
               .agg(pl.len().alias("_n")) for c in tops},
            **{f"distinct:{name}": distinct_pairs(frame, keys, pl.col(column), "_v")
               for name, column in distinct.items()},
        }

    needed = list(dict.fromkeys([*keys, "timestamp", "message_key", "message_id", *tops, *distinct.values(),
                                 *minimum.values()]))

    def compute(records: pl.LazyFrame) -> list[pl.DataFrame]:
        # A slice of the day's rows is selected once and the queries run over it in memory: each
        # would otherwise read and filter it again. Its partial results merge like the days'.
        selected = rows(records).select(needed).collect(engine="streaming").lazy()
        return pl.collect_all(list(queries_of(selected).values()))

    names = list(queries(days[0].frame)) if days else []
    for day in days:
        for name, result in zip(names, collect(day, lambda frame: list(queries(frame).values()), cache, compute)):
            parts.setdefault(name, []).append(result)
    base = pl.concat(parts["base"]).group_by(keys).agg(
        pl.col("count").sum(), pl.col("first_seen").min(), pl.col("last_seen").max(),
        *[pl.col(name).min() for name in minimum])
    messages = (pl.concat(parts["messages"]).group_by(keys)
                .agg(pl.col("_m").n_unique().cast(pl.Int64).alias("messages")))
    samples = (pl.concat(parts["samples"]).explode("_id").unique().group_by(keys)
               .agg(pl.col("_id").sort().head(5).alias("sample_message_ids")))
    out = (base.join(messages, on=keys, how="left", nulls_equal=True)
           .join(samples, on=keys, how="left", nulls_equal=True)
           .with_columns(pl.col("messages").fill_null(0),
                         pl.col("sample_message_ids").fill_null(pl.lit([], dtype=pl.List(pl.String)))))
    for c in tops:
        counts = pl.concat(parts[f"top:{c}"]).group_by([*keys, "_v"]).agg(pl.col("_n").sum())
        top = counts.group_by(keys).agg(
            pl.col("_v").sort_by(["_n", "_v"], descending=[True, False]).head(5).alias(f"{c}_top"),
            pl.len().cast(pl.Int64).alias(f"{c}_n"),
        )
        out = out.join(top, on=keys, how="left", nulls_equal=True)
    for name in distinct:
        n = (pl.concat(parts[f"distinct:{name}"]).group_by(keys)
             .agg(pl.col("_v").n_unique().cast(pl.Int64).alias(name)))
        out = out.join(n, on=keys, how="left", nulls_equal=True)
    return out


_MESSAGE_SEED = 0x6D657373


class PolarsAggregator:
    """`Aggregator` over attributed records given as polars LazyFrames, usually one per day
    partition of a records/ folder: every rule aggregates day by day and merges (`_grouped`),
    so memory is bounded by a day's aggregates (and a slice of its records) whatever the
    period."""

    def __init__(self, records: pl.LazyFrame | Day | Sequence[pl.LazyFrame | Day], cache: Cache | None = None) -> None:
        given = [records] if isinstance(records, (pl.LazyFrame, Day)) else list(records)
        if not given:
            raise ValueError("no records: give a LazyFrame, or at least one day partition")
        # a Day with an identity has its partial results cached in `cache` (`analyzer._partials`)
        self._days = [d if isinstance(d, Day) else Day(d) for d in given]
        self.days = [d.frame for d in self._days]
        self.cache = cache
        self._windows: pl.DataFrame | None = None

    def _each(self, query: Callable[[pl.LazyFrame], pl.LazyFrame]) -> pl.DataFrame:
        """``query`` on every day, concatenated (for results that merge by concatenation)."""
        return pl.concat([collect(day, lambda frame: [query(frame)], self.cache)[0] for day in self._days])

    def _grouped(self, rows: Callable[[pl.LazyFrame], pl.LazyFrame], keys: Sequence[str], **how: Any) -> pl.DataFrame:
        return _grouped(self._days, rows, keys, cache=self.cache, **how)

    # ---- greylisting
    def _deferral_counts(self, ctx: Context) -> tuple[pl.DataFrame, int | None, int | None]:
        counts = self._each(lambda day: _deferral_rows(day, ctx).group_by("_source", "_window")
                            .agg(pl.len().cast(pl.Int64).alias("deferrals")))
        # a window that spans midnight has a count on both days
        counts = counts.group_by("_source", "_window").agg(pl.col("deferrals").sum())
        period = self._each(lambda day: day.select(
            (pl.col("timestamp").dt.epoch("us") // ctx.window_us).min().alias("lo"),
            (pl.col("timestamp").dt.epoch("us") // ctx.window_us).max().alias("hi"),
        ))
        return counts, period["lo"].min(), period["hi"].max()

    def deferral_windows(self, ctx: Context) -> pl.DataFrame:
        # With ``z`` empty windows and the ``k`` non-empty counts sorted, the source's full sorted
        # list of per-window counts is ``[0] * z + counts``; its median is read from the sorted
        # list of non-empty counts by index, so no per-window rows are materialized for the empty
        # windows (a source seen once a month would otherwise cost 720 rows).
        if self._windows is not None:
            return self._windows
        opts = ctx.options
        counts, lo, hi = self._deferral_counts(ctx)
        if counts.height == 0:
            self._windows = counts.with_columns(pl.lit(None, pl.Float64).alias("background"),
                                                pl.lit(None, pl.Boolean).alias("hot"))
            return self._windows
        # The background spans the whole analysed period, not just the source's own deferrals: a
        # source that is throttled in one sudden burst (the common case for a new or changed
        # sender) has a quiet background of empty windows and so stands out.
        span = pl.lit(hi - lo + 1, dtype=pl.Int64)
        empty = span - pl.col("_sorted").list.len()

        def at(index: pl.Expr) -> pl.Expr:
            return pl.when(index < empty).then(0).otherwise(
                pl.col("_sorted").list.get(index - empty, null_on_oob=True))

        per_source = (
            counts.lazy()
            .group_by("_source")
            .agg(pl.col("deferrals").sort().alias("_sorted"))
            .with_columns(((at((span - 1) // 2) + at(span // 2)).cast(pl.Float64) / 2).alias("background"))
            .select("_source", "background")
        )
        threshold = pl.max_horizontal(pl.col("background"), pl.lit(1.0)) * opts.hotspot_burst_factor
        self._windows = (
            counts.lazy()
            .join(per_source, on="_source", how="left")
            .with_columns(
                ((pl.col("deferrals") >= opts.hotspot_min_deferrals) & (pl.col("deferrals") >= threshold))
                .alias("hot")
            )
            .collect()
        )
        return self._windows

    def hotspot_runs(self, ctx: Context) -> pl.DataFrame:
        hot = self.deferral_windows(ctx).filter(pl.col("hot")).sort("_source", "_window")
        if hot.height == 0:
            return hot
        new_run = (
            (pl.col("_source") != pl.col("_source").shift(1)) | (pl.col("_window") - pl.col("_window").shift(1) != 1)
        ).fill_null(True)
        hot = hot.with_columns(new_run.cum_sum().cast(pl.Int64).alias("_run"))
        runs = hot.group_by("_run").agg(
            pl.col("_source").first(),
            pl.col("_window").min().alias("_start"),
            pl.col("background").first(),
            pl.len().cast(pl.Int64).alias("hot_windows"),
            pl.col("deferrals").sum().alias("count"),
            pl.col("deferrals").max().alias("peak"),
            pl.col("_window").sort_by(["deferrals", "_window"], descending=[True, False]).first().alias("peak_window"),
        )
        windows = canonical(hot.select("_source", "_window", "_run")).lazy()

        def rows(day: pl.LazyFrame) -> pl.LazyFrame:
            return _deferral_rows(day, ctx).join(windows, on=["_source", "_window"], how="inner")

        texts = self._grouped(rows, ["_run"], tops=["recipient_domain"]).drop("count", "messages")
        codes = (self._each(lambda day: rows(day).select("_run", "ms_code").drop_nulls().unique()).unique()
                 .group_by("_run").agg(pl.col("ms_code").sort().alias("codes")))
        texts = texts.join(codes, on="_run", how="left").with_columns(
            pl.col("codes").fill_null(pl.lit([], dtype=pl.List(pl.String))))
        return runs.join(texts, on="_run", how="left").drop("_run")

    # ---- open relay: on-premises logs only (a server's messages, joined over their records)
    def open_relay(self, ctx: Context) -> pl.DataFrame:
        # A relayed message's records may fall on two days, and the rule needs all of them at
        # once; it reads only on-premises rows (tracking logs, Postfix), so it runs over the
        # whole period in one query.
        records = pl.concat(self.days, how="diagonal_relaxed") if len(self.days) > 1 else self.days[0]
        onprem = records.filter(
            pl.col("source_format").is_in(list(ONPREM_FORMATS)) & pl.col("message_key").is_not_null()
        )
        keys = ["source_file", "message_key"]
        passed_on = pl.col("event").is_in(["send", "deliver"]) & (
            (pl.col("source_format") != "postfix") | (pl.col("status").str.to_lowercase() == "sent")
        )
        messages = (
            onprem.group_by(keys)
            .agg(
                # `== False` / `== True`, not `~col` / `col`: a null (no domain, as the null sender of a
                # bounce) must be neither, and `.any()` skips nulls.
                (pl.col("sender_accepted") == False).any().alias("_s_no"),
                (pl.col("sender_accepted") == True).any().alias("_s_yes"),
                (pl.col("recipient_accepted") == False).any().alias("_r_no"),
                (pl.col("recipient_accepted") == True).any().alias("_r_yes"),
                passed_on.fill_null(False).any().alias("_passed"),
                pl.col("message_id").drop_nulls().min().alias("_mid"),
                pl.col("timestamp").min().alias("_first"),
                pl.col("timestamp").max().alias("_last"),
            )
            .filter(pl.col("_s_no") & ~pl.col("_s_yes") & pl.col("_r_no") & ~pl.col("_r_yes") & pl.col("_passed"))
        )
        received = (
            onprem.filter((pl.col("event") == "receive") & (pl.col("ip_class") == "other"))
            .select(*keys, "client_ip")
            .unique()
        )
        relayed = received.join(messages, on=keys, how="inner")
        agg = relayed.group_by("client_ip").agg(
            pl.len().cast(pl.Int64).alias("count"),
            pl.col("_first").min().alias("first_seen"),
            pl.col("_last").max().alias("last_seen"),
            pl.coalesce(pl.col("_mid"), pl.col("message_key")).unique().sort().head(5).alias("sample_message_ids"),
            pl.col("source_file").unique().sort().alias("servers"),
        )
        rows = onprem.join(relayed.select(*keys, "client_ip"), on=keys, how="inner")
        return _with_tops(agg, rows, ["client_ip"], ["sender_domain", "recipient_domain"]).collect()

    # ---- the grouped rules
    def relay_rejected(self, ctx: Context) -> pl.DataFrame:
        code = pl.coalesce(pl.col("enhanced_code"), pl.col("smtp_code").cast(pl.String))

        def rows(day: pl.LazyFrame) -> pl.LazyFrame:
            return day.filter(_relay_rejection()).with_columns(
                pl.coalesce(pl.col("client_ip"), pl.lit("unknown")).alias("_source"), code.alias("_code"))

        return self._grouped(rows, ["_source", "_code"], tops=["sender_domain", "recipient_domain"])

    def non_accepted_domain(self, ctx: Context, connectors: Sequence[str]) -> pl.DataFrame:
        def rows(day: pl.LazyFrame) -> pl.LazyFrame:
            return day.filter(
                _INBOUND
                & (pl.col("inbound_match") == "ip")
                & pl.col("inbound_connector").is_in(list(connectors))
                & (pl.col("sender_accepted") == False)  # null (no sender domain) is not evidence
            )

        return self._grouped(rows, ["inbound_connector", "sender_domain"], tops=["client_ip"])

    def direct_send(self, ctx: Context) -> pl.DataFrame:
        def rows(day: pl.LazyFrame) -> pl.LazyFrame:
            return day.filter(
                _INBOUND
                & pl.col("inbound_connector").is_null()
                & pl.col("ip_class").is_in(["other", "private"])
                & (pl.col("sender_accepted") == True)
            )

        return self._grouped(rows, ["client_ip"], tops=["sender_domain", "recipient_domain"],
                        minimum={"_class": "ip_class"})

    def unrouted_inbound(self, ctx: Context, column: str, tops: Sequence[str]) -> pl.DataFrame:
        unrouted = (_INBOUND
                    & pl.col("inbound_connector").is_null()
                    & (pl.col("ip_class") == "other")
                    & (pl.col("sender_accepted") != True).fill_null(True)  # "not True": null counts
                    & pl.col(column).is_not_null())
        # Most foreign senders send a few messages: count first, and aggregate the rest only for
        # the values over the threshold (rows add up over days, so the count is exact).
        counts = self._each(lambda day: day.filter(unrouted).group_by(column).agg(pl.len().alias("_n")))
        counts = counts.group_by(column).agg(pl.col("_n").sum())
        over = counts.filter(pl.col("_n") >= ctx.options.unrouted_min_messages)
        # when the values over the threshold hold most rows, leaving the others out costs more
        # than it saves (the threshold is applied to the result anyway)
        # sorted: the list is part of the day queries' plans, hence of their cache keys
        keep = (canonical(over.select(pl.col(column).sort())).get_column(column).implode()
                if over.get_column("_n").sum() < 0.8 * counts.get_column("_n").sum() else None)

        def rows(day: pl.LazyFrame) -> pl.LazyFrame:
            return day.filter(unrouted if keep is None else unrouted & pl.col(column).is_in(keep))

        if column == "client_ip":  # one address a group: nothing to count
            out = self._grouped(rows, [column], tops=tops)
            out = out.with_columns(pl.lit(1, dtype=pl.Int64).alias("_ips"))
        else:
            out = self._grouped(rows, [column], tops=tops, distinct={"_ips": "client_ip"})
        return out.filter(pl.col("count") >= ctx.options.unrouted_min_messages) if out.width else out

    @staticmethod
    def _inbound_with_domain(day: pl.LazyFrame) -> pl.LazyFrame:
        return day.filter(_INBOUND & pl.col("sender_domain").is_not_null())

    def inbound_sender_domains(self, ctx: Context) -> pl.Series:
        return self._each(lambda day: self._inbound_with_domain(day).select(pl.col("sender_domain").unique())
                          ).to_series().unique()

    def partner_bypass(self, ctx: Context, mapping: pl.DataFrame) -> pl.DataFrame:
        # sorted: part of the day queries' plans, hence of their cache keys (`analyzer._partials`)
        domains = mapping.get_column("sender_domain").unique().sort()
        mapping = canonical(mapping.sort("sender_domain", "_connector"))

        def rows(day: pl.LazyFrame) -> pl.LazyFrame:
            # A record matched to the connector by IP is inside its ranges: leave the partner's
            # regular traffic out before grouping (the rule drops those groups anyway).
            return (self._inbound_with_domain(day).filter(pl.col("sender_domain").is_in(domains.to_list()))
                    .join(mapping.lazy(), on="sender_domain", how="inner")
                    .filter(((pl.col("inbound_match") == "ip") & (pl.col("inbound_connector") == pl.col("_connector")))
                            .fill_null(False).not_()))

        return self._grouped(rows, ["_connector", "client_ip"], tops=["sender_domain"])

    def outbound_bypass(self, ctx: Context, connectors: Sequence[OutboundConnector]) -> pl.DataFrame:
        belongs = pl.any_horizontal([
            (pl.col("outbound_connector") == c.name) & _domain_covered("recipient_domain", c.recipient_domains)
            for c in connectors
        ]).fill_null(False)

        def rows(day: pl.LazyFrame) -> pl.LazyFrame:
            return day.filter(
                (pl.col("direction") == "outbound")
                & pl.col("event").is_in(["send", "deliver"])
                & pl.col("server_ip").is_not_null()
                & belongs
            )

        return self._grouped(rows, ["outbound_connector", "server_ip"], tops=["recipient_domain"])

    def disabled_connector_traffic(self, ctx: Context) -> pl.DataFrame:
        def rows(day: pl.LazyFrame) -> pl.LazyFrame:
            return day.filter(pl.col("disabled_inbound_connector").is_not_null() & pl.col("inbound_connector").is_null())

        return self._grouped(rows, ["disabled_inbound_connector"], tops=["client_ip"],
                        distinct={"_ips": "client_ip"})

    def unused_connector(self, ctx: Context) -> dict[str, Any]:
        counts = self._each(lambda day: day.select(
            _INBOUND.sum().cast(pl.Int64).alias("inbound_rows"),
            (pl.col("direction") == "outbound").sum().cast(pl.Int64).alias("outbound_rows"),
        ))

        def used(column: str) -> list[str]:
            # distinct values as a unique() of the column: an implode in a select is not streamed
            return self._each(lambda day: day.select(column).unique()).to_series().drop_nulls().unique().to_list()

        return {
            "inbound_rows": int(counts["inbound_rows"].sum()),
            "outbound_rows": int(counts["outbound_rows"].sum()),
            "inbound_used": used("inbound_connector"),
            "outbound_used": used("outbound_connector"),
        }

    def attribution_mismatch(self, ctx: Context, outbound_only: Sequence[str]) -> pl.DataFrame:
        # On-premises logs name the Exchange Server receive connector ("EX01\Default Frontend
        # EX01") or nothing: never an Exchange Online inbound connector, so they cannot disagree.
        logged = pl.col("connector_name").str.strip_chars()
        # A name equal to the attributed connector's cannot disagree: the cheap tests first, so
        # only the other records are trimmed and lower-cased (most carry the name they matched).
        candidate = (_INBOUND & ~pl.col("source_format").is_in(list(ONPREM_FORMATS))
                     & pl.col("connector_name").is_not_null()
                     & (pl.col("connector_name") != pl.col("inbound_connector")).fill_null(True))

        def rows(day: pl.LazyFrame) -> pl.LazyFrame:
            return (
                day.filter(candidate)
                .with_columns(logged.alias("_logged"), logged.str.to_lowercase().alias("_key"))
                .filter(
                    pl.col("_logged").is_not_null()
                    & (pl.col("_logged") != "")
                    & ~pl.col("_logged").str.contains("\\", literal=True)
                    & ~pl.col("_key").is_in(list(outbound_only))
                    & (pl.col("_key") != pl.col("inbound_connector").str.strip_chars().str.to_lowercase())
                    .fill_null(True)
                )
            )

        return self._grouped(rows, ["_key", "inbound_connector"], tops=["client_ip"],
                        minimum={"_display": "_logged"})
