"""The ``mailflow`` command line: a thin layer over the library that parses options and prints.

Bad input or configuration ends with a one-line message on stderr and exit code 2.
"""

from __future__ import annotations

import json
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
