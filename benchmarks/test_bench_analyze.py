"""`mailflow analyze` end to end on a generated tenant (benchmarks/tenant.py), next to a bare
polars read of the same log files, with the peak memory of each.

Group ``analyze``: the full run uses ``--scale 2000`` (about 1.2 million records); the smoke run
(``--benchmark-disable``) ``--scale 1``. Each competitor runs in a fresh subprocess so its peak
RSS (``ru_maxrss`` of the child) is its own; the numbers go to ``extra_info``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent
ROUNDS = 2

# The bare floor: every log file read by polars as text columns, nothing normalized. Polars
# reads neither UTF-16 nor gzip nor syslog: those are decoded/decompressed in memory first, or
# read as one column of lines, which is the least any reader must do.
FLOOR = textwrap.dedent('''
    import gzip, io, sys
    from pathlib import Path
    import polars as pl
    rows = 0
    for path in sorted(p for p in Path(sys.argv[1]).rglob("*") if p.is_file()):
        data = path.read_bytes()
        if data[:2] == b"\\x1f\\x8b":
            data = gzip.decompress(data)
        if data[:2] in (b"\\xff\\xfe", b"\\xfe\\xff"):
            data = data.decode("utf-16").encode()
        data = data.lstrip(b"\\xef\\xbb\\xbf")
        if path.suffix == ".csv":
            if data.startswith(b"#TYPE"):
                data = data.split(b"\\n", 1)[1]
            rows += pl.read_csv(data, infer_schema=False, encoding="utf8-lossy").height
        else:
            rows += pl.read_csv(data, has_header=False, separator="\\x1f", quote_char=None,
                                infer_schema=False, encoding="utf8-lossy", comment_prefix="#").height
    print(rows)
''')


def _rows(config: pytest.Config) -> int:
    return 1 if config.getoption("benchmark_disable") else 2000


@pytest.fixture(scope="module")
def tenant(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Path:
    out = tmp_path_factory.mktemp("tenant")
    subprocess.run([sys.executable, str(BENCH / "tenant.py"), "--out", str(out), "--scale",
                    str(_rows(pytestconfig))], check=True, capture_output=True, timeout=600)
    return out


_MEASURE = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(p.returncode)")


def _child(args: list[str]) -> tuple[subprocess.CompletedProcess, int]:
    """Run `args` under a fresh wrapper process, whose only child it is: the wrapper's
    RUSAGE_CHILDREN peak is the command's own peak RSS (KiB on Linux). Returns (process, bytes)."""
    proc = subprocess.run([sys.executable, "-c", _MEASURE, *args], capture_output=True, text=True, timeout=900,
                          check=False)
    peak_kib = int(proc.stderr.strip().splitlines()[-1])
    return proc, peak_kib * 1024


@pytest.mark.benchmark(group="analyze")
def test_analyze_tenant(benchmark, tenant: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    peak = []

    def run() -> dict:
        proc, rss = _child([sys.executable, "-m", "analyzer", "analyze", str(tenant), "--out", str(out)])
        assert proc.returncode == 0, proc.stderr
        peak.append(rss)
        return json.loads((out / "summary.json").read_text())

    summary = benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    assert summary["rows"]["skipped"] == 0
    benchmark.extra_info.update(key="analyze", competitor="mailflow analyze (read, attribute, find, write)",
                                lookups=summary["records"], baseline=True, peak_rss_mb=max(peak) / 2**20)


@pytest.mark.benchmark(group="analyze")
def test_bare_polars_read(benchmark, tenant: Path, tmp_path: Path) -> None:
    script = tmp_path / "floor.py"
    script.write_text(FLOOR)
    peak = []

    def run() -> int:
        proc, rss = _child([sys.executable, str(script), str(tenant / "logs")])
        assert proc.returncode == 0, proc.stderr
        peak.append(rss)
        return int(proc.stdout)

    rows = benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    benchmark.extra_info.update(key="polars-read", competitor="bare polars read of the same logs (text columns)",
                                lookups=rows, peak_rss_mb=max(peak) / 2**20)
