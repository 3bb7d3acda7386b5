"""The outputs of `mailflow analyze`, written atomically: everything is built in a staging
directory inside the output directory (same file system) and then renamed into place, so a run
that dies half-way leaves the previous outputs whole.

Files in the output directory:

* ``records/date=YYYY-MM-DD/part-*.parquet``: the normalized records plus the attribution
  columns (zstd), Hive-partitioned by day;
* ``findings.parquet`` and ``findings.json``: one row per finding;
* ``connectors.parquet``: per connector usage;
* ``hotspots.parquet``: deferrals per source and window;
* ``summary.json``: inputs per file (read, kept, skipped, ignored, duplicates), finding counts by
  kind and severity, the period, timings;
* ``rejects.csv``: rows that could not be read (only when there are some), formulas neutralized;
* ``report.html``: the self-contained report (`analyzer._report`); ``summary.txt``: plain text for
  a cron mail.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import polars as pl

from analyzer import __version__, _io, _partials, _report
from analyzer.analyses import Analysis, SEVERITIES

__all__ = ["render_report", "staging_dir", "summary", "write"]


def render_report(out: Path, cache: _partials.Cache | None = None) -> None:
    """(Re)write report.html and summary.txt from the outputs already in `out`."""
    if not (out / "summary.json").exists():
        from analyzer.errors import InputError

        raise InputError("not a mailflow output folder", expected="the --out folder of `mailflow analyze` "
                         "(with summary.json)", got="no summary.json", where=str(out))
    _report.write(out, cache)


def staging_dir(out: Path) -> Path:
    """A fresh staging directory inside `out` (created)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f".mailflow-staging-{uuid.uuid4().hex[:12]}"
    path.mkdir()
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def summary(analysis: Analysis) -> dict[str, Any]:
    """The content of summary.json."""
    totals = analysis.totals
    frame = analysis.findings
    first, last = analysis.period() if analysis.records else (None, None)
    by_kind = dict(frame.group_by("kind").len().sort("kind").iter_rows())
    by_severity = {s: int(frame.filter(pl.col("severity") == s).height) for s in reversed(SEVERITIES)}
    return {
        "tool": f"mailflow-analyzer {__version__}",
        "period": {
            "first": first,
            "last": last,
        },
        "records": analysis.records,
        "inputs": totals.to_dicts(),
        "configuration_files": analysis.config_files,
        "rows": {
            "read": int(totals["rows_read"].sum()),
            "kept": int(totals["rows_kept"].sum()),
            "skipped": int(totals["rows_skipped"].sum()),
            "ignored": int(totals["rows_ignored"].sum()),
            "duplicates": int(totals["duplicates"].sum()),
        },
        "findings": {"total": frame.height, "by_severity": by_severity, "by_kind": by_kind},
        "timings_s": {k: round(v, 3) for k, v in analysis.timings.items()},
        # day partials of the findings, the usage and the period read back from the cache (hits)
        # or computed (misses): why a run was fast; the report's own come after this is written
        "partials_cache": None if analysis.cache is None else {
            "folder": str(analysis.cache.root), "hits": analysis.cache.hits, "misses": analysis.cache.misses},
    }


def write(analysis: Analysis, out: Path, staging: Path) -> dict[str, Any]:
    """Write every output of `analysis` into `out` atomically; returns the summary. The report's
    per-day partials of the records go through the analysis' cache (`analyzer._partials`)."""
    info = summary(analysis)
    analysis.findings.write_parquet(staging / "findings.parquet", compression="zstd")
    (staging / "findings.json").write_text(
        json.dumps(analysis.findings.to_dicts(), default=_json_default, indent=1, ensure_ascii=False),
        encoding="utf-8")
    analysis.connectors.write_parquet(staging / "connectors.parquet", compression="zstd")
    analysis.hotspots.write_parquet(staging / "hotspots.parquet", compression="zstd")
    rejects = analysis.rejects
    if rejects.height:
        _io.neutralize_formulas(rejects).write_csv(staging / "rejects.csv")
    (staging / "summary.json").write_text(json.dumps(info, default=_json_default, indent=1), encoding="utf-8")
    records = staging / "records"
    records.mkdir(exist_ok=True)
    _report.write(staging, analysis.cache)
    _publish(staging, out)
    if analysis.state is not None and analysis.run_key is not None:
        # only now: a run that died before this point is redone in full by the next one
        analysis.state.commit(analysis.run_key)
    return info


_OUTPUTS = ("findings.parquet", "findings.json", "connectors.parquet", "hotspots.parquet", "rejects.csv",
            "report.html", "summary.txt", "summary.json")


def _publish(staging: Path, out: Path) -> None:
    # Files are replaced one by one with os.replace (atomic each); the records directory is
    # swapped with two renames. summary.json goes last: its presence marks a complete run.
    old = out / f".mailflow-old-{uuid.uuid4().hex[:12]}"
    if (out / "records").exists():
        os.replace(out / "records", old)
    os.replace(staging / "records", out / "records")
    for name in _OUTPUTS:
        if (staging / name).exists():
            os.replace(staging / name, out / name)
        elif name == "rejects.csv":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(out / name)  # a stale file from an earlier run would mislead
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
