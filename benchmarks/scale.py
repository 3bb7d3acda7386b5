"""How `mailflow analyze` scales: 1, 5 and 20 million generated extended-report records.

    python benchmarks/scale.py [--rows 1000000 5000000 20000000] [--work DIR] [--rounds 1] [--per-day N]

For each size it generates the CSV once (``benchmarks/generate.py``, kept in ``--work``; with
``--per-day``, that many rows a day instead of about 3.5 million: a bigger tenant's day), then
runs, each in a fresh child process whose peak RSS is its own:

* ``floor (CSV)``: bare polars, ``pl.scan_csv(csv).sink_parquet(out)``: read it and keep it;
* ``mailflow analyze csv sample_logs/config``: read, attribute, de-duplicate, find, report;
* ``floor (Parquet)``: ``pl.scan_parquet(records).sink_parquet(out)`` of the run's records/;
* ``mailflow analyze records/ sample_logs/config`` three ways:

  - ``Parquet (other)``: the floor's output, one Parquet file with the normalized columns that
    mailflow did not write: read, attributed, de-duplicated and written like any input;
  - ``Parquet (records/, no cache)``: the records/ folder of the CSV run, ``--no-cache``: its
    parts are reused (same attribution), the findings and the report read the records;
  - ``Parquet (records/)``: the same with the partials cache the CSV run filled (a dedicated
    ``MAILFLOW_CACHE_DIR`` under ``--work``, emptied before each CSV run): the findings and the
    report read the per-day partials back instead of the records.

Competitors alternate within a round, so a noisy neighbour hits both, and each starts with its
input read into the page cache (at 20 million rows the CSV is 9 GB: otherwise whichever runs
first pays for the disk); the table shows each one's best round and the ratio of ours to the
floor measured next to it. Prints a Markdown
table (the README's) and writes the raw numbers to ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "sample_logs" / "config"
CACHE = Path("/tmp/mailflow-scale/cache")  # the partials cache of the runs (set from --work)

FLOOR_CSV = "import sys, polars as pl; pl.scan_csv(sys.argv[1]).sink_parquet(sys.argv[2])"
FLOOR_PARQUET = ("import sys, polars as pl; "
                 "pl.scan_parquet(sys.argv[1] + '/**/*.parquet', hive_partitioning=True).sink_parquet(sys.argv[2])")

_MEASURE = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(p.returncode)")


def warm(path: Path) -> None:
    """Read `path` (a file, or every file under a folder) once, so that whichever case runs
    first does not pay for the disk: every case then starts from the page cache."""
    for file in ([path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())):
        with open(file, "rb") as fh:
            while fh.read(64 << 20):
                pass


def run(args: list[str], source: Path | None = None) -> tuple[float, int]:
    """(wall seconds, peak RSS bytes) of `args` in a fresh child (its own RUSAGE_CHILDREN),
    its input `source` read into the page cache first."""
    if source is not None:
        warm(source)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _MEASURE, *args], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{args[:4]} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return wall, int(proc.stderr.strip().splitlines()[-1]) * 1024


def measure(rows: int, work: Path, rounds: int, per_day: int | None = None) -> dict[str, dict[str, float]]:
    csv = work / (f"extended-{rows}.csv" if per_day is None else f"extended-{rows}-{per_day}-a-day.csv")
    if not csv.exists():
        rate = [] if per_day is None else ["--per-day", str(per_day)]
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "generate.py"), str(csv), str(rows), *rate],
                       check=True)
    out_csv, out_pq = work / "from-csv", work / "from-parquet"
    records, other = work / "records", work / "floor2.parquet"
    analyze = [sys.executable, "-m", "analyzer", "analyze"]
    cases = {
        "floor (CSV)": [sys.executable, "-c", FLOOR_CSV, str(csv), str(work / "floor.parquet")],
        "analyze (CSV)": [*analyze, str(csv), str(CONFIG), "--out", str(out_csv), "--quiet"],
        "floor (Parquet)": [sys.executable, "-c", FLOOR_PARQUET, str(records), str(other)],
        "analyze (Parquet, other)": [*analyze, str(other), str(CONFIG), "--out", str(out_pq), "--quiet"],
        "analyze (Parquet, records/, no cache)": [*analyze, str(records), str(CONFIG), "--out", str(out_pq),
                                                  "--quiet", "--no-cache"],
        "analyze (Parquet, records/)": [*analyze, str(records), str(CONFIG), "--out", str(out_pq), "--quiet"],
    }
    best: dict[str, dict[str, float]] = {}
    for _ in range(rounds):
        for name, args in cases.items():
            if name == "analyze (CSV)":
                shutil.rmtree(CACHE, ignore_errors=True)  # the CSV run fills it, as a first run would
            if name == "floor (Parquet)":  # this round's records/, whose partials the CSV run cached
                shutil.rmtree(records, ignore_errors=True)
                shutil.copytree(out_csv / "records", records)
            wall, peak = run(args, csv if "CSV" in name else other if "other" in name else records)
            seen = best.setdefault(name, {"wall_s": wall, "peak_rss_mb": peak / 2**20})
            seen["wall_s"] = min(seen["wall_s"], wall)
            seen["peak_rss_mb"] = max(seen["peak_rss_mb"], peak / 2**20)
    shutil.rmtree(records, ignore_errors=True)
    for name in best:
        best[name]["rows_per_s"] = rows / best[name]["wall_s"]
    return best


def table(results: dict[int, dict[str, dict[str, float]]]) -> str:
    lines = ["| Records | Input | `mailflow analyze` | Rows/s | Peak RSS | polars floor | Floor peak RSS | Ratio |",
             "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for rows, cases in results.items():
        for kind in ("CSV", "Parquet, other", "Parquet, records/, no cache", "Parquet, records/"):
            ours, floor = cases[f"analyze ({kind})"], cases[f"floor ({kind.split(',')[0]})"]
            lines.append(f"| {rows / 1e6:g}M | {kind} | {ours['wall_s']:.1f} s | {ours['rows_per_s'] / 1e6:.2f}M "
                         f"| {ours['peak_rss_mb']:,.0f} MB | {floor['wall_s']:.1f} s | {floor['peak_rss_mb']:,.0f} MB "
                         f"| {ours['wall_s'] / floor['wall_s']:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000, 20_000_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/mailflow-scale"))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--per-day", type=int, default=None, help="rows a day of the generated CSVs")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    global CACHE
    CACHE = args.work / "cache"
    os.environ["MAILFLOW_CACHE_DIR"] = str(CACHE)  # the children's, not the user's
    results = {rows: measure(rows, args.work, args.rounds, args.per_day) for rows in args.rows}
    if args.json:
        args.json.write_text(json.dumps({str(k): v for k, v in results.items()}, indent=1))
    print(table(results))


if __name__ == "__main__":
    main()
