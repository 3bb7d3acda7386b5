"""report.html and summary.txt, rendered from the outputs of `mailflow analyze` in a folder.

The report is one self-contained file: inline CSS, charts as inline SVG drawn here, no script,
no font, image or stylesheet from anywhere, so it opens from disk, from a mail attachment and
offline. Every string from logs or configuration goes through jinja2's autoescaping (and
markupsafe inside the SVG), so a subject ``<script>alert(1)</script>`` is text. Records are only
ever aggregated by polars (per hour, per connector), so the file stays small for any run size.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import jinja2
import polars as pl

from analyzer import _io, _partials, _svg
from analyzer._partials import canonical, distinct_pairs

__all__ = ["render", "render_text", "write"]

SEVERITY_ORDER = ("high", "medium", "low", "info")
_MAX_ROWS = 200  # findings listed in full; the rest are counted (findings.json has them all)

_TEMPLATE = r"""{%- macro kind_table(section) -%}
{% if section.rows %}<table><tr><th>severity</th><th>kind</th><th>subject</th><th class="num">count</th><th>detail and recommendation</th></tr>
{% for f in section.rows %}<tr><td><span class="sev sev-{{ f.severity }}">{{ f.severity }}</span></td><td>{{ f.kind }}</td><td class="mono">{{ f.subject }}</td>
<td class="num">{{ "{:,}".format(f["count"]) }}</td><td>{{ f.detail }}<br><b>&rarr;</b> {{ f.recommendation }}</td></tr>{% endfor %}</table>
{% if section.more %}<p class="muted">... and {{ "{:,}".format(section.more) }} more in findings.json.</p>{% endif %}
{% else %}<p>None found.</p>{% endif %}
{%- endmacro %}
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Mail flow report {{ period }}</title>
<style>
:root { --fg:#0f172a; --muted:#475569; --line:#e2e8f0; --bg:#f8fafc; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       background: var(--bg); margin: 0; line-height: 1.45; }
header { background: #0f172a; color: #f8fafc; padding: 18px 32px; }
header h1 { margin: 0; font-size: 22px; }
header p { margin: 4px 0 0; color: #cbd5e1; }
nav { padding: 8px 32px; background: #1e293b; }
nav a { color: #cbd5e1; margin-right: 16px; text-decoration: none; font-size: 14px; }
main { padding: 8px 32px 48px; max-width: 1400px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px; margin: 18px 0; }
h2 { font-size: 18px; margin: 0 0 10px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #f1f5f9; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.sev { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; }
.sev-high { background: #fee2e2; color: #991b1b; } .sev-medium { background: #fef3c7; color: #92400e; }
.sev-low { background: #e0f2fe; color: #075985; } .sev-info { background: #f1f5f9; color: #334155; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin: 8px 0 12px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; min-width: 120px; }
.card b { display: block; font-size: 22px; }
.muted { color: var(--muted); font-size: 13px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
.ids { max-width: 260px; word-break: break-all; }
</style>
</head>
<body>
<header>
<h1>Mail flow report</h1>
<p>{{ period }} &middot; {{ "{:,}".format(records) }} records &middot; {{ tool }}</p>
</header>
<nav>
<a href="#overview">Overview</a><a href="#findings">Findings</a><a href="#connectors">Connectors</a>
<a href="#greylisting">Greylisting</a><a href="#traffic">Traffic</a><a href="#unrouted">Unrouted &amp; direct send</a>
<a href="#open-relay">Open relay</a><a href="#configuration">Configuration</a>
</nav>
<main>
<section id="overview">
<h2>Overview</h2>
<div class="cards">
{% for sev in severities %}<div class="card"><span class="sev sev-{{ sev }}">{{ sev }}</span><b>{{ by_severity.get(sev, 0) }}</b>findings</div>{% endfor %}
<div class="card"><span class="muted">records</span><b>{{ "{:,}".format(records) }}</b>after de-duplication</div>
<div class="card"><span class="muted">rows skipped</span><b>{{ "{:,}".format(rows.skipped) }}</b>see rejects.csv</div>
<div class="card"><span class="muted">duplicates</span><b>{{ "{:,}".format(rows.duplicates) }}</b>overlapping exports</div>
</div>
<table>
<tr><th>input file</th><th>format</th><th>encoding</th><th class="num">read</th><th class="num">kept</th><th class="num">skipped</th><th class="num">duplicates</th><th>notes</th></tr>
{% for f in inputs %}<tr><td class="mono">{{ f.source_file }}</td><td>{{ f.format }}</td><td>{{ f.encoding }}</td>
<td class="num">{{ "{:,}".format(f.rows_read) }}</td><td class="num">{{ "{:,}".format(f.rows_kept) }}</td>
<td class="num">{{ "{:,}".format(f.rows_skipped) }}</td><td class="num">{{ "{:,}".format(f.duplicates) }}</td><td class="muted">{{ f.notes }}</td></tr>
{% endfor %}</table>
{% if config_files %}<p class="muted">Configuration: {% for c in config_files %}<code>{{ c }}</code>{% if not loop.last %}, {% endif %}{% endfor %}</p>{% endif %}
</section>

<section id="findings">
<h2>Findings</h2>
{% if findings %}
<table>
<tr><th>severity</th><th>kind</th><th>subject</th><th class="num">count</th><th>first / last seen (UTC)</th><th>detail and recommendation</th><th>sample message ids</th></tr>
{% for f in findings %}<tr><td><span class="sev sev-{{ f.severity }}">{{ f.severity }}</span></td><td>{{ f.kind }}</td>
<td class="mono">{{ f.subject }}</td><td class="num">{{ "{:,}".format(f["count"]) }}</td>
<td class="muted">{{ f.first_seen or "" }}<br>{{ f.last_seen or "" }}</td>
<td>{{ f.detail }}<br><b>&rarr;</b> {{ f.recommendation }}</td>
<td class="mono ids">{% for m in f.sample_message_ids or [] %}{{ m }}<br>{% endfor %}</td></tr>
{% endfor %}</table>
{% if more_findings %}<p class="muted">... and {{ more_findings }} more in findings.json.</p>{% endif %}
{% else %}<p>No findings.</p>{% endif %}
</section>

<section id="connectors">
<h2>Connector usage</h2>
{{ connector_chart }}
<table>
<tr><th>connector</th><th>direction</th><th>type</th><th>enabled</th><th class="num">messages</th><th class="num">MB</th><th class="num">sources</th><th class="num">failures</th><th class="num">deferrals</th><th>first / last seen</th></tr>
{% for c in connectors %}<tr><td>{{ c.connector }}{% if c.enabled and c.messages == 0 %} <span class="sev sev-info">unused</span>{% endif %}</td>
<td>{{ c.direction }}</td><td>{{ c.type }}</td><td>{{ "yes" if c.enabled else "no" }}</td>
<td class="num">{{ "{:,}".format(c.messages) }}</td><td class="num">{{ "{:,.1f}".format(c.bytes / 1048576) }}</td>
<td class="num">{{ "{:,}".format(c.sources) }}</td><td class="num">{{ "{:,}".format(c.failures) }}</td>
<td class="num">{{ "{:,}".format(c.deferrals) }}</td><td class="muted">{{ c.first_seen or "" }}<br>{{ c.last_seen or "" }}</td></tr>
{% endfor %}</table>
</section>

<section id="greylisting">
<h2>Greylisting (451 4.7.500-699, 4.7.850-899)</h2>
{% if heat %}{{ heat }}{% else %}<p>No greylisting deferrals in this period.</p>{% endif %}
{% if hot %}<h3>Hot spots</h3>
<table><tr><th>source</th><th class="num">deferrals</th><th>timeline (per window)</th><th>detail and recommendation</th></tr>
{% for h in hot %}<tr><td class="mono">{{ h.subject }}</td><td class="num">{{ "{:,}".format(h["count"]) }}</td><td>{{ h.spark }}</td>
<td>{{ h.detail }}<br><b>&rarr;</b> {{ h.recommendation }}</td></tr>{% endfor %}</table>{% endif %}
</section>

<section id="traffic">
<h2>Traffic over time</h2>
{{ traffic_connector }}
{{ traffic_direction }}
{% if subjects %}<h3>Most frequent subjects</h3>
<table><tr><th>subject</th><th class="num">messages</th><th class="num">senders</th></tr>
{% for s in subjects %}<tr><td>{{ s.subject }}</td><td class="num">{{ "{:,}".format(s.messages) }}</td><td class="num">{{ "{:,}".format(s.senders) }}</td></tr>{% endfor %}
</table>{% endif %}
</section>

<section id="unrouted">
<h2>Unrouted and direct-send sources</h2>
{{ kind_table(unrouted) }}
</section>

<section id="open-relay">
<h2>Open relay</h2>
{{ kind_table(open_relay) }}
</section>

<section id="configuration">
<h2>Configuration findings</h2>
{{ kind_table(configuration) }}
</section>
</main>
</body>
</html>

"""

_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=False)


def _shown_times(frame: pl.DataFrame) -> pl.DataFrame:
    # every datetime column as the report shows it (in polars: a report may list many findings)
    return frame.with_columns(pl.col(pl.Datetime).dt.strftime("%Y-%m-%d %H:%M"))


def _records(out_dir: Path) -> Path | None:
    root = out_dir / "records"
    return root if any(root.rglob("*.parquet")) else None


def _traffic_counts(records: Path | None, cache: _partials.Cache | None = None,
                    period: dict | None = None) -> dict[str, pl.DataFrame]:
    """Distinct messages per time bucket and inbound connector, and per bucket and direction
    (``_t``, ``_g``, ``n``); hourly buckets, daily beyond two weeks of `period` (summary.json's,
    which covers the same records; read from them when it is missing). Day partials go through
    `cache`."""
    if records is None:
        return {}
    if period and period.get("first") and period.get("last"):
        span = dt.datetime.fromisoformat(period["last"]) - dt.datetime.fromisoformat(period["first"])
    else:
        span = (pl.scan_parquet(sorted(records.rglob("*.parquet")))
                .select((pl.col("timestamp").max() - pl.col("timestamp").min()).alias("s")).collect().item())
    every = "1d" if span is not None and span > dt.timedelta(days=14) else "1h"
    unit = 86_400_000_000 if every == "1d" else 3_600_000_000  # UTC buckets, in microseconds
    message = pl.col("message_key").hash(seed=7)  # 8 bytes a row instead of the text
    parts: dict[str, list[pl.DataFrame]] = {"inbound_connector": [], "direction": []}
    # one day partition at a time (an hour or a UTC day never spans two), so memory is bounded
    # by a day of records, not the period; both charts share the day's scan. Buckets are
    # grouped as integers and become times once counted.
    def queries(day: pl.LazyFrame) -> list[pl.LazyFrame]:
        return [day.group_by((pl.col("timestamp").dt.epoch("us") // unit).alias("_t"), pl.col(by).alias("_g"))
                .agg(message.n_unique().alias("n")) for by in parts]

    for day in _partials.record_days(records):
        for by, result in zip(parts, _partials.collect(day, queries, cache)):
            parts[by].append(result)
    return {by: pl.concat(frames).with_columns(
        (pl.col("_t") * unit).cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias("_t"),
        pl.col("_g").fill_null("(none)").cast(pl.String), pl.lit(every).alias("_every"))
        for by, frames in parts.items()}


def _traffic(counts: pl.DataFrame | None, title: str) -> _svg.Markup:
    if counts is None or counts.height == 0:
        return _svg.Markup("<p>No records.</p>")
    every = counts["_every"][0]
    lo, hi = counts["_t"].min(), counts["_t"].max()
    times = pl.datetime_range(lo, hi, every, eager=True).to_list()
    index = {t: i for i, t in enumerate(times)}
    top = counts.group_by("_g").agg(pl.col("n").sum()).sort("n", descending=True)["_g"].to_list()
    keep = top[:8]
    series: dict[str, list[float]] = {g: [0.0] * len(times) for g in keep}
    if len(top) > 8:
        series["(others)"] = [0.0] * len(times)
    for t, g, n in counts.select("_t", "_g", "n").iter_rows():
        series[g if g in series else "(others)"][index[t]] += n
    unit = "messages per " + ("day" if every == "1d" else "hour")
    return _svg.stacked_area(title, times, series, unit)


def _greylisting(out_dir: Path, findings: list[dict]) -> tuple[_svg.Markup | None, list[dict]]:
    path = out_dir / "hotspots.parquet"
    spots = pl.read_parquet(path) if path.exists() else pl.DataFrame()
    if spots.height == 0:
        return None, []
    by_hour = (spots.with_columns(pl.col("window_start").dt.truncate("1h").alias("_h"))
               .group_by("source_range", "_h").agg(pl.col("deferrals").sum()))
    ranges = (by_hour.group_by("source_range").agg(pl.col("deferrals").sum())
              .sort(["deferrals", "source_range"], descending=[True, False])["source_range"].head(25).to_list())
    lo, hi = by_hour["_h"].min(), by_hour["_h"].max()
    hours = pl.datetime_range(lo, hi, "1h", eager=True).to_list()
    index = {h: i for i, h in enumerate(hours)}
    shown = by_hour.filter(pl.col("source_range").is_in(ranges, nulls_equal=True))  # the shown ranges only
    cells = {(r, index[h]): float(d) for r, h, d in shown.iter_rows()}
    heat = _svg.heat_map("Deferrals by source range and hour", ranges, hours, cells, "deferrals")
    hot = []
    for f in findings:
        if f["kind"] != "greylisting_hotspot":
            continue
        timeline = spots.filter(pl.col("source") == f["subject"]).sort("window_start")
        values = timeline["deferrals"].to_list()
        hot.append({**f, "spark": _svg.spark(values, title=f"deferrals of {f['subject']} per window")})
    return heat, hot[:20]


def _subjects(records: Path | None, top: int = 10, cache: _partials.Cache | None = None) -> list[dict]:
    """The most frequent subjects (a flood, a loop, a campaign stands out); untrusted text. Day
    partials go through `cache`."""
    if records is None:
        return []
    # distinct (subject, message) and (subject, sender) pairs day by day (hashed: 8 bytes a
    # value), a slice of a day at a time, then across days: memory bounded by a slice of records
    # plus about a pair a message
    # The subject itself is hashed too (its text can be long): its text is looked up at the
    # end for the few that make the table.
    subject = pl.col("subject").hash(seed=5).alias("_s")
    pairs: dict[str, list[pl.DataFrame]] = {"messages": [], "senders": []}
    days = _partials.record_days(records)

    def queries(day: pl.LazyFrame) -> list[pl.LazyFrame]:
        rows = day.filter(pl.col("subject").is_not_null())
        return [distinct_pairs(rows, [subject], pl.col(column).hash(seed=7), "_v")
                for column in ("message_key", "sender")]

    def compute(records: pl.LazyFrame) -> list[pl.DataFrame]:
        # the same pairs from one read of a slice of the day, the subject hashed once
        rows = records.filter(pl.col("subject").is_not_null()).select(
            subject, pl.col("message_key").hash(seed=7).alias("_m"), pl.col("sender").hash(seed=7).alias("_v"),
        ).collect(engine="streaming").lazy()
        return pl.collect_all([distinct_pairs(rows, ["_s"], pl.col("_m"), "_v"),
                               distinct_pairs(rows, ["_s"], pl.col("_v"), "_v")])

    for day in days:
        for name, result in zip(pairs, _partials.collect(day, queries, cache, compute)):
            pairs[name].append(result)
    messages, senders = (pl.concat(frames).group_by("_s").agg(pl.col("_v").n_unique().alias(name))
                         for name, frames in pairs.items())
    counts = messages.join(senders, on="_s")
    # enough candidates that ties on the count are broken by the text, as if sorted by it
    if counts.height > top:
        cut = counts.get_column("messages").sort(descending=True)[top - 1]
        counts = counts.filter(pl.col("messages") >= cut)
    wanted = canonical(counts.select(pl.col("_s").sort())).get_column("_s").implode()
    texts = pl.concat([_partials.collect(day, lambda frame: [
        frame.filter(pl.col("subject").is_not_null() & subject.is_in(wanted)).group_by(subject)
        .agg(pl.col("subject").min())], cache)[0] for day in days]).group_by("_s").agg(pl.col("subject").min())
    return (counts.join(texts, on="_s").drop("_s").select("subject", "messages", "senders")
            .sort(["messages", "subject"], descending=[True, False]).head(top).to_dicts())


def _section(rows: list[dict], kinds: tuple[str, ...]) -> dict[str, Any]:
    """The findings of `kinds` a report section lists: by severity, then the largest first (a
    capped list of sources should show the heaviest), at most `_MAX_ROWS` of them; ``more`` counts
    the rest, which findings.json holds. A large tenant has thousands of unrouted sources: listed
    in full, they made a 5-million-record report 4.9 MB, too large to mail."""
    rank = {s: i for i, s in enumerate(SEVERITY_ORDER)}
    chosen = sorted((r for r in rows if r["kind"] in kinds),
                    key=lambda r: (rank.get(r["severity"], len(rank)), -(r["count"] or 0), r["subject"] or "", r["kind"]))
    return {"rows": chosen[:_MAX_ROWS], "more": max(len(chosen) - _MAX_ROWS, 0)}


def render(out_dir: str | os.PathLike, cache: _partials.Cache | None = None) -> str:
    """report.html for the outputs in `out_dir` (per-day partials of the records through `cache`)."""
    out = Path(out_dir)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    findings = pl.read_parquet(out / "findings.parquet")
    all_rows = _shown_times(findings).to_dicts()
    rows = all_rows[:_MAX_ROWS]
    connectors = pl.read_parquet(out / "connectors.parquet")
    records = _records(out)
    traffic = _traffic_counts(records, cache, summary.get("period"))
    conn_rows = _shown_times(connectors).to_dicts()
    inbound = connectors.filter(pl.col("direction") == "inbound").sort("messages", descending=True)
    connector_chart = _svg.bar_chart("Messages per inbound connector", inbound["connector"].to_list(),
                                     inbound["messages"].to_list(), "messages") if inbound.height else ""
    heat, hot = _greylisting(out, rows)
    period = summary.get("period") or {}
    first, last = (period.get("first") or "")[:16].replace("T", " "), (period.get("last") or "")[:16].replace("T", " ")
    html = _ENV.from_string(_TEMPLATE).render(
        period=f"{first} to {last} UTC" if first else "no records",
        records=summary.get("records", 0),
        tool=summary.get("tool", ""),
        severities=SEVERITY_ORDER,
        by_severity=summary["findings"]["by_severity"],
        rows=summary["rows"],
        inputs=summary["inputs"],
        config_files=summary.get("configuration_files", []),
        findings=rows,
        more_findings=max(findings.height - _MAX_ROWS, 0),
        connectors=conn_rows,
        connector_chart=connector_chart,
        heat=heat,
        hot=hot,
        traffic_connector=_traffic(traffic.get("inbound_connector"), "Messages by inbound connector"),
        traffic_direction=_traffic(traffic.get("direction"), "Messages by direction"),
        subjects=_subjects(records, cache=cache),
        unrouted=_section(all_rows, ("unrouted_inbound", "direct_send")),
        open_relay=_section(all_rows, ("open_relay", "relay_rejected")),
        configuration=_section(all_rows, ("connector_config",)),
    )
    return html


def _plain(text: Any) -> str:
    # log text in a mail body: no terminal escapes, no line breaks smuggled into a line
    return "".join(ch if ch.isprintable() else "?" for ch in str(text if text is not None else ""))


def render_text(out_dir: str | os.PathLike, limit: int = 50) -> str:
    """summary.txt: a plain-text summary fit for a cron mail body."""
    out = Path(out_dir)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    findings = pl.read_parquet(out / "findings.parquet")
    period = summary.get("period") or {}
    rows = summary["rows"]
    by = summary["findings"]["by_severity"]
    lines = [
        "mailflow-analyzer report",
        f"period: {period.get('first') or '-'} to {period.get('last') or '-'}",
        f"records: {summary.get('records', 0):,} ({rows['skipped']:,} rows skipped, {rows['duplicates']:,} duplicates)",
        "findings: " + ", ".join(f"{by.get(s, 0)} {s}" for s in SEVERITY_ORDER),
        "",
    ]
    for f in findings.head(limit).iter_rows(named=True):
        lines.append(f"[{f['severity']}] {f['kind']}: {_plain(f['subject'])} ({f['count']:,})")
        lines.append(f"    -> {_plain(f['recommendation'])}")
    if findings.height > limit:
        lines.append(f"... and {findings.height - limit} more (findings.json)")
    return "\n".join(lines) + "\n"


def _atomic_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    _io.readable(Path(tmp))
    os.replace(tmp, path)


def write(out_dir: str | os.PathLike, cache: _partials.Cache | None = None) -> None:
    """Write report.html and summary.txt into `out_dir`, each atomically."""
    out = Path(out_dir)
    _atomic_text(out / "report.html", render(out, cache))
    _atomic_text(out / "summary.txt", render_text(out))
