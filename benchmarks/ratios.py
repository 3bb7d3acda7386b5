"""Summarize a pytest-benchmark JSON file: one Markdown table per scenario, then the targets.

Usage::

    .venv/bin/pytest benchmarks --benchmark-json=bench.json
    .venv/bin/python benchmarks/ratios.py bench.json [--strict]

Rates are per lookup (``extra_info["lookups"] / median time``), because the per-row competitors
run on fewer queries than the vectorized ones. The ratio column is each competitor's time per
lookup divided by the group's baseline (the compiled PrefixTable on one thread): 30.0x means
30 times slower than PrefixTable, 0.25x four times faster. With ``--strict`` the exit status is
1 when a target fails or is missing, for use in scripts.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Scenario order in the report (groups not listed here follow, alphabetically).
GROUPS = ["ipv4-routeviews", "ipv4-int", "ipv6-routeviews", "connector-table", "dictionary",
          "reader-extended", "reader-extended-utf16", "reader-trace", "reader-msgtrk", "reader-ndjson",
          "reader-emailevents", "reader-postfix", "analyze"]


@dataclass(frozen=True)
class Row:
    group: str
    key: str
    competitor: str
    lookups: int
    median: float  # seconds per call
    rounds: int
    baseline: bool
    peak_rss_mb: float | None = None

    @property
    def rate(self) -> float:
        """Lookups per second."""
        return self.lookups / self.median


@dataclass(frozen=True)
class Target:
    """One of the issue's performance targets, on rows identified by (group, extra_info key)."""

    text: str
    group: str
    key: str
    threshold: float
    versus: str | None = None  # None: `key`'s lookups/s >= threshold; else rate(key)/rate(versus)

    def measure(self, rows: dict[tuple[str, str], Row]) -> tuple[str, bool | None]:
        """``(measured value as text, passed)``; passed is None when a row is missing."""
        row = rows.get((self.group, self.key))
        other = rows.get((self.group, self.versus)) if self.versus else None
        if row is None or (self.versus and other is None):
            return "not in this run", None
        if other is None:
            return f"{fmt_rate(row.rate)}/s", row.rate >= self.threshold
        ratio = row.rate / other.rate
        return f"{ratio:.1f}x", ratio >= self.threshold


TARGETS = [
    Target("IPv4 text, full RouteViews, 1 thread: >= 20 M lookups/s", "ipv4-routeviews", "prefixtable-1t", 20e6),
    Target("IPv4 text, full RouteViews, 1 thread: >= 30x pytricia's per-row loop",
           "ipv4-routeviews", "prefixtable-1t", 30, versus="pytricia"),
    Target("IPv6 text, full RouteViews, 1 thread: >= 10 M lookups/s", "ipv6-routeviews", "prefixtable-1t", 10e6),
    Target("Connector table, IPv4 text, 1 thread: >= 50 M lookups/s", "connector-table", "prefixtable-1t", 50e6),
    Target("Dictionary input ~O(distinct): pyarrow dictionary >= 10x faster than the decoded strings",
           "dictionary", "dict-arrow", 10, versus="decoded-1t"),
    Target("Dictionary input ~O(distinct): polars Categorical >= 10x faster than the decoded strings",
           "dictionary", "dict-polars", 10, versus="decoded-1t"),
    # "within 1.5x of polars": our rate at least 1/1.5 of the floor's (rows/s; "lookups" = rows)
    Target("Reader, EAC extended CSV: within 1.5x of polars scan_csv + sink_parquet",
           "reader-extended", "ingest", 1 / 1.5, versus="polars-sink"),
    Target("Reader, Get-MessageTraceV2 CSV (en-US dates): within 1.5x of polars scan_csv + sink_parquet",
           "reader-trace", "ingest", 1 / 1.5, versus="polars-sink"),
    Target("Reader, Exchange tracking log: within 1.5x of polars scan_csv + sink_parquet",
           "reader-msgtrk", "ingest", 1 / 1.5, versus="polars-sink"),
    Target("Reader, Defender EmailEvents CSV: within 1.5x of polars scan_csv + sink_parquet",
           "reader-emailevents", "ingest", 1 / 1.5, versus="polars-sink"),
]


def fmt_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.1f} {unit}"
    return f"{seconds / 1e-9:.0f} ns"


def fmt_rate(per_second: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if per_second >= scale:
            return f"{per_second / scale:.2f} {unit}"
    return f"{per_second:.0f}"


def load_rows(doc: dict[str, Any]) -> list[Row]:
    """Rows of the benchmarks that ran and carry our extra_info (others are ignored)."""
    rows = []
    for bench in doc.get("benchmarks", []):
        info, stats = bench.get("extra_info") or {}, bench.get("stats")
        if not stats or "lookups" not in info:
            continue
        rows.append(Row(
            group=bench.get("group") or "(no group)",
            key=info.get("key", bench["name"]),
            competitor=info.get("competitor", bench["name"]),
            lookups=int(info["lookups"]),
            median=float(stats["median"]),
            rounds=int(stats["rounds"]),
            baseline=bool(info.get("baseline")),
            peak_rss_mb=info.get("peak_rss_mb"),
        ))
    return rows


def group_table(group: str, rows: list[Row]) -> list[str]:
    """The Markdown table of one scenario, fastest per lookup first."""
    base = next((r for r in rows if r.baseline), None)
    ratio_head = f"time/lookup vs {base.competitor}" if base else "time/lookup vs baseline"
    rss = any(r.peak_rss_mb is not None for r in rows)
    lines = [
        f"### {group}",
        "",
        f"| competitor | queries | median | lookups/s | {ratio_head} |" + (" peak RSS |" if rss else ""),
        "| --- | ---: | ---: | ---: | ---: |" + (" ---: |" if rss else ""),
    ]
    for row in sorted(rows, key=lambda r: -r.rate):
        ratio = f"{base.rate / row.rate:.2f}x" if base else "n/a"
        name = f"**{row.competitor}**" if row.baseline else row.competitor
        extra = (f" {row.peak_rss_mb:,.0f} MB |" if row.peak_rss_mb is not None else " |") if rss else ""
        lines.append(f"| {name} | {row.lookups:,} | {fmt_time(row.median)} | {fmt_rate(row.rate)}/s | {ratio} |"
                     + extra)
    return lines + [""]


def header(doc: dict[str, Any]) -> list[str]:
    machine = doc.get("machine_info") or {}
    cpu = machine.get("cpu") or {}
    commit = doc.get("commit_info") or {}
    dirty = " (dirty)" if commit.get("dirty") else ""
    return [
        "## PrefixTable benchmarks",
        "",
        f"{doc.get('datetime', '?')}; {cpu.get('brand_raw', '?')}, {cpu.get('count', '?')} cores; "
        f"Python {machine.get('python_version', '?')}; commit {str(commit.get('id', '?'))[:10]}{dirty}. "
        "Median of the timed rounds; per-row competitors run on fewer queries, so compare rates.",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path, help="file written by pytest --benchmark-json")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target fails or is missing")
    args = parser.parse_args(argv)

    doc = json.loads(args.json.read_text())
    rows = load_rows(doc)
    if not rows:
        print(f"{args.json}: no benchmark results (was the run made with --benchmark-disable?)", file=sys.stderr)
        return 1

    by_group: dict[str, list[Row]] = {}
    for row in rows:
        by_group.setdefault(row.group, []).append(row)
    order = [g for g in GROUPS if g in by_group] + sorted(set(by_group) - set(GROUPS))

    out = header(doc)
    for group in order:
        out += group_table(group, by_group[group])

    keyed = {(r.group, r.key): r for r in rows}
    out += ["### Targets", "", "| target | measured | result |", "| --- | ---: | --- |"]
    all_pass = True
    for target in TARGETS:
        measured, passed = target.measure(keyed)
        verdict = "MISSING" if passed is None else ("PASS" if passed else "FAIL")
        all_pass &= bool(passed)
        out.append(f"| {target.text} | {measured} | {verdict} |")
    print("\n".join(out))
    return 0 if all_pass or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
