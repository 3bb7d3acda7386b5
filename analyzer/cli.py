"""The ``mailflow`` command line: a thin layer over the library that parses options and prints.

Bad input or configuration ends with a one-line message on stderr and exit code 2.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sys
from pathlib import Path

import click
import pyarrow as pa

from analyzer import __version__
from analyzer.errors import AnalyzerError
from analyzer.matching import BACKEND
from analyzer.ranges import load_table


class _Group(click.Group):
    """Turns AnalyzerError into the one-line message and exit code 2 the tool promises."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except AnalyzerError as exc:
            click.echo(f"mailflow: error: {exc}", err=True)
            ctx.exit(2)
        except OSError as exc:
            click.echo(f"mailflow: error: {exc.strerror or exc}: {exc.filename}", err=True)
            ctx.exit(2)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="mailflow", message=f"%(prog)s %(version)s (matcher: {BACKEND})")
def main() -> None:
    """Offline analysis of Exchange Online mail flow."""


def _printable(text: str) -> str:
    # Addresses come from logs: keep terminal control sequences out of the output.
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


@main.command()
@click.option("--ranges", "range_files", multiple=True, required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A published range file (Azure service tags, AWS/Google JSON, RouteViews pfx2as, "
                   "CSV prefix,label or one prefix a line). Repeat for more; each becomes a column.")
@click.option("--input", "input_file", type=click.File("r", encoding="utf-8", errors="replace"),
              help="Read addresses from this file, one a line ('-' for stdin).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line instead of a table.")
@click.argument("addresses", nargs=-1)
def lookup(range_files: tuple[Path, ...], input_file, as_json: bool, addresses: tuple[str, ...]) -> None:
    """Say which range of each --ranges file every address falls in (longest prefix wins).

    Example: mailflow lookup --ranges azure_ServiceTags_Public.json 40.107.23.54 104.47.41.33
    """
    items = list(addresses)
    if input_file is not None:
        items.extend(line.rstrip("\r\n") for line in input_file)
    if not items:
        raise click.UsageError("give addresses as arguments or with --input")
    column = pa.array(items, type=pa.string())
    columns = []
    for path in range_files:
        table, labels = load_table(path)
        codes = table.lookup(column)
        names = {-1: None, -2: "(not an IP address)", -3: "(empty)"}
        columns.append((path.name, [labels[c] if c >= 0 else names[int(c)] for c in codes.tolist()]))
    if as_json:
        for i, item in enumerate(items):
            click.echo(json.dumps({"address": item, **{name: values[i] for name, values in columns}}))
        return
    header = ["address"] + [name for name, _ in columns]
    rows = [[_printable(item)] + [values[i] or "-" for _, values in columns] for i, item in enumerate(items)]
    widths = [max(len(r[k]) for r in rows + [header]) for k in range(len(header))]
    for row in [header] + rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


@main.command("read")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the normalized records to this Parquet file (atomically).")
@click.option("--rejects", "rejects_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write rows that could not be read to this CSV (file, line, reason, raw text). "
                   "Default: rejects.csv beside --out when there are any.")
@click.option("--strict", is_flag=True, help="Stop at the first malformed row instead of skipping it.")
@click.option("--year", type=int, help="Year for Postfix timestamps that have none "
                                      "(default: from the file's modification time).")
@click.option("--date-order", type=click.Choice(["dmy", "mdy"]),
              help="Day/month order of culture-formatted dates (default: decided per file from the data).")
@click.option("--json", "as_json", is_flag=True, help="Print the per-file totals as JSON lines.")
def read_command(inputs: tuple[str, ...], out: Path | None, rejects_path: Path | None, strict: bool,
                 year: int | None, date_order: str | None, as_json: bool) -> None:
    """Read exports (files, directories, globs; any supported format, detected from the content)
    into the normalized record table and say what was read, skipped and dropped as duplicate.

    Example: mailflow read traces/ msgtrk/*.LOG --out records.parquet
    """
    from analyzer import _io, readers

    result = readers.ingest(list(inputs), year=year, strict=strict, date_order=date_order)
    if out is not None:
        _io.write_parquet(result.frame, out)
    rejects = result.rejects().collect()
    if rejects_path is None and out is not None and rejects.height:
        rejects_path = out.with_name("rejects.csv")
    if rejects_path is not None:
        _io.write_csv(rejects, rejects_path)
    totals = result.totals()
    if as_json:
        for row in totals.iter_rows(named=True):
            click.echo(json.dumps(row))
        return
    header = ["file", "format", "encoding", "read", "kept", "skipped", "ignored", "duplicates"]
    rows = [[_printable(r["source_file"]), r["format"], r["encoding"], *(f"{r[k]:,}" for k in (
        "rows_read", "rows_kept", "rows_skipped", "rows_ignored", "duplicates"))]
        for r in totals.iter_rows(named=True)]
    widths = [max(len(r[k]) for r in rows + [header]) for k in range(len(header))]
    for row in [header] + rows:
        click.echo("  ".join(cell.rjust(w) if k >= 3 else cell.ljust(w)
                             for k, (cell, w) in enumerate(zip(row, widths))).rstrip())
    for r in totals.iter_rows(named=True):
        if r["notes"]:
            click.echo(f"note: {_printable(r['source_file'])}: {_printable(r['notes'])}")
    if rejects.height:
        where = f" (see {rejects_path})" if rejects_path is not None else " (use --rejects FILE to keep them)"
        click.echo(f"{rejects.height:,} rows skipped{where}")


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


def _ip_tables(specs: tuple[str, ...]) -> dict[str, str]:
    tables = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise click.BadParameter(f"expected NAME=FILE, got {spec!r}", param_hint="--ip-table")
        tables[name] = path
    return tables


_SEVERITY_STYLE = {"high": "bold red", "medium": "yellow", "low": "cyan", "info": "dim"}


@main.command("analyze")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--connectors", "connector_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Get-InboundConnector/Get-OutboundConnector export (JSON, CSV, CLIXML) or our TOML. "
                   "Exports among the INPUTs are recognized by content too.")
@click.option("--accepted-domains", "domain_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Get-AcceptedDomain export (JSON or CSV).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("mailflow-report"),
              show_default=True, help="Output directory (written atomically).")
@click.option("--fail-on", type=click.Choice(["info", "low", "medium", "high"]),
              help="Exit 1 when a finding at or above this severity exists.")
@click.option("--since", type=click.DateTime(), help="Only records at or after this time (UTC unless it says).")
@click.option("--until", type=click.DateTime(), help="Only records before this time.")
@click.option("--ip-table", "ip_table_specs", multiple=True, metavar="NAME=FILE",
              help="A range file (see `mailflow lookup`) whose labels become a column NAME (e.g. asn=pfx2as.gz).")
@click.option("--cloud-ranges", "cloud_ranges", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A cloud provider's published ranges (AWS ip-ranges.json, Azure service tags, Google "
                   "cloud.json): connector ranges inside them are reported as shared hosting.")
@click.option("--internal", "internal_networks", multiple=True, metavar="CIDR",
              help="Internal networks besides the private ranges (not open-relay or unrouted sources).")
@click.option("--hotspot-window", type=click.IntRange(1), default=60, show_default=True,
              help="Greylisting hot-spot window, in minutes.")
@click.option("--hotspot-min", type=click.IntRange(1), default=10, show_default=True,
              help="Deferrals in a window needed for a hot spot.")
@click.option("--hotspot-factor", type=click.FloatRange(1), default=5.0, show_default=True,
              help="A hot window has at least this many times the source's background rate.")
@click.option("--unrouted-min", type=click.IntRange(1), default=100, show_default=True,
              help="Messages from one source outside every connector for an unrouted_inbound finding.")
@click.option("--year", type=int, help="Year for Postfix timestamps that have none.")
@click.option("--date-order", type=click.Choice(["dmy", "mdy"]), help="Day/month order of culture-formatted dates.")
@click.option("--strict", is_flag=True, help="Stop at the first malformed row instead of skipping it.")
@click.option("--state", "state_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Scheduled runs: remember ingested files here; read only new or changed inputs, keep every "
                   "record ever ingested, and compute findings over the last --window.")
@click.option("--window", "window_days", type=click.FloatRange(min=0, min_open=True), default=7.0,
              show_default=True, help="With --state: days of records (before the newest) the findings cover.")
@click.option("--no-cache", is_flag=True,
              help="Do not keep or reuse per-day partial aggregates "
                   "(MAILFLOW_CACHE_DIR, default ~/.cache/mailflow/partials).")
@click.option("--quiet", is_flag=True, help="Print nothing but errors (exit codes still tell).")
def analyze_command(inputs, connector_files, domain_files, out_dir: Path, fail_on, since, until, ip_table_specs,
                    cloud_ranges, internal_networks, hotspot_window, hotspot_min, hotspot_factor, unrouted_min, year,
                    date_order, strict, state_dir, window_days, no_cache, quiet) -> None:
    """Attribute mail-flow records to connectors and report greylisting hot spots, open-relay
    risk, unrouted traffic and connector problems.

    Example: mailflow analyze sample_logs --out report
    """
    from analyzer import _partials, analyses, attribution, findings, reports

    options = analyses.Options(
        since=_utc(since), until=_utc(until), year=year, date_order=date_order, strict=strict,
        attribution=attribution.Options(internal_networks=tuple(internal_networks)),
        findings=findings.Options(hotspot_window=dt.timedelta(minutes=hotspot_window),
                                  hotspot_min_deferrals=hotspot_min, hotspot_burst_factor=hotspot_factor,
                                  unrouted_min_messages=unrouted_min),
    )
    from analyzer.state import State

    state = State(state_dir) if state_dir is not None else None
    cache = None if no_cache else _partials.default_cache()
    staging = reports.staging_dir(out_dir)
    try:
        with _progress(quiet) as on_file:
            result = analyses.analyze(list(inputs), staging, connector_files=connector_files,
                                      domain_files=domain_files, ip_tables=_ip_tables(ip_table_specs),
                                      cloud_ranges=cloud_ranges, options=options, state=state,
                                      window=dt.timedelta(days=window_days) if state is not None else None,
                                      on_file=on_file, cache=cache)
        if result is None:
            # nothing changed since the last scheduled run: its outputs stand as they are
            found = _previous_findings(out_dir)
            if not quiet:
                click.echo(f"No new or changed inputs since the last run; outputs in {out_dir} are current.")
        else:
            info = reports.write(result, out_dir, staging)
            found = result.findings
            if not quiet:
                _print_summary(result, info, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if fail_on is not None and analyses.severity_at_least(found, fail_on).height:
        sys.exit(1)


def _previous_findings(out_dir: Path):
    import polars as pl

    from analyzer import findings

    path = out_dir / "findings.parquet"
    return pl.read_parquet(path) if path.exists() else pl.DataFrame(schema=findings.FINDINGS_SCHEMA)


class _progress:
    """A progress bar on stderr (files, rows, throughput) when stderr is a terminal; nothing
    otherwise (cron mail stays clean)."""

    def __init__(self, quiet: bool) -> None:
        self.enabled = not quiet and sys.stderr.isatty()
        self.bar = None

    def __enter__(self):
        if not self.enabled:
            return None
        import time

        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("reading"), BarColumn(), MofNCompleteColumn(), TextColumn("files"),
                            TextColumn("{task.fields[rows]:,} rows, {task.fields[rate]:,.0f} rows/s"),
                            TimeElapsedColumn(), console=Console(stderr=True), transient=True)
        self.bar.start()
        task = self.bar.add_task("read", total=None, rows=0, rate=0.0)
        started, rows = time.perf_counter(), [0]

        def on_file(report, done: int, total: int) -> None:
            rows[0] += report.rows_read
            rate = rows[0] / max(time.perf_counter() - started, 1e-6)
            self.bar.update(task, completed=done, total=total, rows=rows[0], rate=rate)

        return on_file

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


def _print_summary(result, info: dict, out_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False, soft_wrap=False)
    rows = info["rows"]
    period = info["period"]
    console.print(Text(f"{info['records']:,} records from {len(result.log_files)} files "
                       f"({rows['skipped']:,} rows skipped, {rows['duplicates']:,} duplicates); "
                       f"period {period['first'] or '-'} to {period['last'] or '-'}"))
    table = Table(title="Findings", title_justify="left")
    for col in ("severity", "kind", "subject", "count", "recommendation"):
        table.add_column(col, overflow="fold")
    for row in result.findings.head(25).iter_rows(named=True):
        style = _SEVERITY_STYLE.get(row["severity"], "")
        # Text(), not markup: subjects come from logs and must not be interpreted
        table.add_row(Text(row["severity"], style=style), Text(row["kind"]), Text(_printable(row["subject"] or "")),
                      Text(f"{row['count']:,}"), Text(_printable(row["recommendation"] or "")))
    if result.findings.height:
        console.print(table)
        if result.findings.height > 25:
            console.print(Text(f"... and {result.findings.height - 25} more in {out_dir / 'findings.json'}"))
    else:
        console.print(Text("No findings."))
    by = info["findings"]["by_severity"]
    console.print(Text("findings: " + ", ".join(f"{n} {s}" for s, n in by.items()) + f"; outputs in {out_dir}"))


@main.command("report")
@click.argument("out_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def report_command(out_dir: Path) -> None:
    """Re-render report.html and summary.txt from the outputs of an earlier `mailflow analyze`."""
    from analyzer import _partials, reports

    reports.render_report(out_dir, _partials.default_cache())
    click.echo(f"wrote {out_dir / 'report.html'} and {out_dir / 'summary.txt'}")


@main.group("connectors")
def connectors_group() -> None:
    """Work with connector exports."""


@connectors_group.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--fail-on", type=click.Choice(["info", "low", "medium", "high"]),
              help="Exit 1 when a finding at or above this severity exists.")
@click.option("--cloud-ranges", "cloud_ranges", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A cloud provider's published ranges: connector ranges inside them are reported.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
def connectors_check(files: tuple[str, ...], fail_on: str | None, cloud_ranges: tuple[str, ...], as_json: bool) -> None:
    """Lint connector configuration exports on their own (no logs needed)."""
    from analyzer import analyses, attribution, config

    connectors, domains = config.load_config(list(files))
    found = attribution.config_findings(connectors, domains, cloud_tables=analyses.load_cloud_ranges(cloud_ranges))
    if as_json:
        for row in found.iter_rows(named=True):
            click.echo(json.dumps(row, default=str))
    elif found.height == 0:
        click.echo("No configuration findings.")
    else:
        for row in found.iter_rows(named=True):
            click.echo(f"{row['severity']:<6}  {_printable(row['subject'])}: {_printable(row['detail'])}")
            click.echo(f"        -> {_printable(row['recommendation'])}")
    if fail_on is not None and analyses.severity_at_least(found, fail_on).height:
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
