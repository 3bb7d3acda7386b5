"""Reader throughput against bare polars on the same file, in the same run.

Groups (see ratios.py): ``reader-extended`` (EAC extended report, UTF-8, ISO timestamps),
``reader-extended-utf16`` (the same rows as the EAC writes them: UTF-16LE without BOM, CRLF) and
``reader-trace`` (Get-MessageTraceV2 ``Export-Csv`` with en-US ``M/d/yyyy h:mm:ss tt`` dates).
Competitors: ``polars.read_csv`` of the file (all columns as text), and ``polars.scan_csv`` +
``sink_parquet`` (the floor for "read it and keep it", which is what `readers.ingest` does).
Polars cannot read UTF-16, so its rows in that group read the UTF-8 twin of the file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from analyzer import readers

sys.path.insert(0, str(Path(__file__).parent))
import generate  # noqa: E402

ROUNDS = 3


def _rows(config: pytest.Config) -> int:
    return 20_000 if config.getoption("benchmark_disable") else 400_000


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> dict[str, Path]:
    rows = _rows(pytestconfig)
    base = tmp_path_factory.mktemp("readers")
    ext = base / "extended.csv"
    generate.write(ext, rows)
    utf16 = base / "extended-utf16.csv"
    utf16.write_bytes(ext.read_bytes().decode("utf-8").replace("\n", "\r\n").encode("utf-16-le"))
    trace = base / "trace.csv"
    _write_trace(trace, rows)
    return {"extended": ext, "utf16": utf16, "trace": trace}


def _write_trace(path: Path, rows: int) -> None:
    rng = np.random.default_rng(3)
    stamps = (np.datetime64("2026-11-01T00:00:00", "s") + rng.integers(0, 9 * 86400, rows).astype("timedelta64[s]")).astype("datetime64[ms]")
    frame = pl.DataFrame({"t": stamps, "i": np.arange(rows)}).select(
        pl.col("t").dt.strftime("%-m/%-d/%Y %-I:%M:%S %p").alias("Received"),
        pl.format("<{}@contoso.com>", pl.col("i")).alias("MessageId"),
        pl.format("user{}@fabrikam.com", pl.col("i") % 997).alias("SenderAddress"),
        pl.format("user{}@contoso.com", pl.col("i") % 5003).alias("RecipientAddress"),
        pl.lit('Re: "Quarterly" numbers, final').alias("Subject"),
        pl.lit("Delivered").alias("Status"),
        pl.lit(None, dtype=pl.String).alias("ToIP"),
        pl.format("203.0.{}.{}", pl.col("i") % 200, pl.col("i") % 250 + 1).alias("FromIP"),
        (pl.col("i") * 37 % 90_000 + 2_000).cast(pl.String).alias("Size"),
        pl.format("{}-0000-4000-8000-000000000000", pl.col("i").cast(pl.String).str.pad_start(8, "0")).alias("MessageTraceId"),
    )
    with open(path, "wb") as fh:
        fh.write(b'#TYPE Deserialized.Microsoft.Exchange.Management.FfoReporting.MessageTrace\r\n')
        frame.write_csv(fh, quote_style="always", line_terminator="\r\n")


def run(benchmark, fn, *, key: str, competitor: str, rows: int, baseline: bool = False):
    benchmark.extra_info.update(key=key, competitor=competitor, lookups=rows, baseline=baseline)
    return benchmark.pedantic(fn, rounds=ROUNDS, iterations=1, warmup_rounds=0)


def _ingest(path: Path, spool: Path) -> int:
    result = readers.ingest(path, spool_dir=spool)
    assert result.files[0].rows_skipped == 0
    return result.files[0].rows_kept


@pytest.mark.benchmark(group="reader-extended")
def test_ingest_extended(benchmark, files, tmp_path, pytestconfig) -> None:
    rows = _rows(pytestconfig)
    assert run(benchmark, lambda: _ingest(files["extended"], tmp_path / "spool"), key="ingest",
               competitor="readers.ingest (normalized, spooled to Parquet)", rows=rows, baseline=True) == rows


@pytest.mark.benchmark(group="reader-extended")
def test_polars_read_csv_extended(benchmark, files, pytestconfig) -> None:
    rows = _rows(pytestconfig)
    frame = run(benchmark, lambda: pl.read_csv(files["extended"], infer_schema=False), key="polars-read",
                competitor="polars.read_csv (text columns, no normalization)", rows=rows)
    assert frame.height == rows


@pytest.mark.benchmark(group="reader-extended")
def test_polars_sink_extended(benchmark, files, tmp_path, pytestconfig) -> None:
    rows = _rows(pytestconfig)
    out = tmp_path / "floor.parquet"
    run(benchmark, lambda: pl.scan_csv(files["extended"], infer_schema=False).sink_parquet(out),
        key="polars-sink", competitor="polars.scan_csv + sink_parquet (the floor)", rows=rows)
    assert pl.scan_parquet(out).select(pl.len()).collect().item() == rows


@pytest.mark.benchmark(group="reader-extended-utf16")
def test_ingest_utf16(benchmark, files, tmp_path, pytestconfig) -> None:
    rows = _rows(pytestconfig)
    assert run(benchmark, lambda: _ingest(files["utf16"], tmp_path / "spool"), key="ingest",
               competitor="readers.ingest, UTF-16LE without BOM, CRLF", rows=rows, baseline=True) == rows


@pytest.mark.benchmark(group="reader-extended-utf16")
def test_polars_sink_utf16_twin(benchmark, files, tmp_path, pytestconfig) -> None:
    rows = _rows(pytestconfig)
    out = tmp_path / "floor.parquet"
    run(benchmark, lambda: pl.scan_csv(files["extended"], infer_schema=False).sink_parquet(out),
        key="polars-sink", competitor="polars.scan_csv + sink_parquet of the UTF-8 twin", rows=rows)


@pytest.mark.benchmark(group="reader-trace")
def test_ingest_trace(benchmark, files, tmp_path, pytestconfig) -> None:
    rows = _rows(pytestconfig)
    assert run(benchmark, lambda: _ingest(files["trace"], tmp_path / "spool"), key="ingest",
               competitor="readers.ingest (en-US dates)", rows=rows, baseline=True) == rows


@pytest.mark.benchmark(group="reader-trace")
def test_polars_sink_trace(benchmark, files, tmp_path, pytestconfig) -> None:
    rows = _rows(pytestconfig)
    out = tmp_path / "floor.parquet"
    run(benchmark, lambda: pl.scan_csv(files["trace"], infer_schema=False, skip_lines=1).sink_parquet(out),
        key="polars-sink", competitor="polars.scan_csv + sink_parquet (the floor)", rows=rows)


# ---------------------------------------------------------------------------------------------
# The other readers: tracking logs, NDJSON traces, Defender EmailEvents CSV, Postfix syslog.


@pytest.fixture(scope="module")
def more_files(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("more")
    ext = pl.read_csv(files["extended"], infer_schema=False)
    msgtrk = base / "MSGTRK2026112601-1.LOG"
    tracking = ext.drop("date_time_utc").insert_column(0, ext["date_time_utc"].alias("date-time"))
    tracking.columns = [c.replace("_", "-") for c in tracking.columns]
    with open(msgtrk, "wb") as fh:
        fh.write(b"\xef\xbb\xbf#Software: Microsoft Exchange Server\r\n#Version: 15.02.1544.004\r\n"
                 b"#Log-type: Message Tracking Log\r\n#Date: 2026-11-26T00:00:00.000Z\r\n")
        fh.write(("#Fields: " + ",".join(tracking.columns) + "\r\n").encode())
        tracking.write_csv(fh, include_header=False, line_terminator="\r\n")
    trace = pl.read_csv(files["trace"], infer_schema=False, skip_lines=1)
    ndjson = base / "trace.ndjson"
    trace.write_ndjson(ndjson)
    events = base / "emailevents.csv"
    trace.select(
        pl.col("Received").alias("Timestamp"), pl.col("MessageTraceId").alias("NetworkMessageId"),
        pl.col("MessageId").alias("InternetMessageId"), pl.col("SenderAddress").alias("SenderFromAddress"),
        pl.col("FromIP").alias("SenderIPv4"), pl.col("RecipientAddress").alias("RecipientEmailAddress"),
        pl.col("Subject"), pl.lit("Inbound").alias("EmailDirection"), pl.lit("Delivered").alias("DeliveryAction"),
        pl.lit("Inbox/folder").alias("DeliveryLocation"), pl.lit("").alias("Connectors"),
    ).with_columns(
        # the CSV export of advanced hunting writes ISO timestamps
        pl.col("Timestamp").str.strptime(pl.Datetime, "%m/%d/%Y %I:%M:%S %p").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    ).write_csv(events)
    postfix = base / "mail.log"
    n = trace.height // 3
    qid = ("A" + pl.col("i").cast(pl.String).str.pad_start(9, "0"))  # short-form hex queue ids
    lines = pl.DataFrame({"i": np.arange(n)}).select(pl.concat_list(
        pl.format("Nov 20 10:{}:{} mx1 postfix/smtpd[2100]: {}: client=app.corp.example[203.0.113.{}]",
                  (pl.col("i") // 60 % 60).cast(pl.String).str.pad_start(2, "0"),
                  (pl.col("i") % 60).cast(pl.String).str.pad_start(2, "0"), qid, pl.col("i") % 250),
        pl.format("Nov 20 10:{}:{} mx1 postfix/qmgr[99]: {}: from=<s{}@corp.example>, size={}, nrcpt=1 (queue active)",
                  (pl.col("i") // 60 % 60).cast(pl.String).str.pad_start(2, "0"),
                  (pl.col("i") % 60).cast(pl.String).str.pad_start(2, "0"), qid, pl.col("i") % 97,
                  1000 + pl.col("i")),
        pl.format("Nov 20 10:{}:{} mx1 postfix/smtp[2211]: {}: to=<u{}@contoso.com>, relay=contoso-com.mail."
                  "protection.outlook.com[52.101.8.42]:25, delay=0.9, dsn=4.7.500, status=deferred (host "
                  "contoso-com.mail.protection.outlook.com[52.101.8.42] said: 451 4.7.500 Server busy. Please try "
                  "again later from [198.51.100.{}]. (AS761) (in reply to RCPT TO command))",
                  (pl.col("i") // 60 % 60).cast(pl.String).str.pad_start(2, "0"),
                  (pl.col("i") % 60).cast(pl.String).str.pad_start(2, "0"), qid, pl.col("i") % 5003,
                  pl.col("i") % 250),
    ).alias("line")).explode("line")
    postfix.write_text("\n".join(lines["line"].to_list()) + "\n")
    return {"msgtrk": msgtrk, "ndjson": ndjson, "emailevents": events, "postfix": postfix}


def _floor_csv(path: Path, out: Path, **kw) -> None:
    pl.scan_csv(path, infer_schema=False, **kw).sink_parquet(out)


@pytest.mark.benchmark(group="reader-msgtrk")
def test_ingest_msgtrk(benchmark, more_files, tmp_path, pytestconfig) -> None:
    rows = _rows(pytestconfig)
    assert run(benchmark, lambda: _ingest(more_files["msgtrk"], tmp_path / "spool"), key="ingest",
               competitor="readers.ingest, tracking log (#Fields, CRLF, BOM)", rows=rows, baseline=True) == rows


@pytest.mark.benchmark(group="reader-msgtrk")
def test_polars_sink_msgtrk(benchmark, more_files, tmp_path, pytestconfig) -> None:
    rows = _rows(pytestconfig)
    run(benchmark, lambda: _floor_csv(more_files["msgtrk"], tmp_path / "f.parquet", skip_lines=4),
        key="polars-sink", competitor="polars.scan_csv + sink_parquet (the floor)", rows=rows)


@pytest.mark.benchmark(group="reader-ndjson")
def test_ingest_ndjson(benchmark, more_files, tmp_path, pytestconfig) -> None:
    rows = _rows(pytestconfig)
    assert run(benchmark, lambda: _ingest(more_files["ndjson"], tmp_path / "spool"), key="ingest",
               competitor="readers.ingest, Get-MessageTrace NDJSON", rows=rows, baseline=True) == rows


@pytest.mark.benchmark(group="reader-ndjson")
def test_polars_sink_ndjson(benchmark, more_files, tmp_path, pytestconfig) -> None:
    rows = _rows(pytestconfig)
    out = tmp_path / "f.parquet"
    run(benchmark, lambda: pl.scan_ndjson(more_files["ndjson"]).sink_parquet(out),
        key="polars-sink", competitor="polars.scan_ndjson + sink_parquet (the floor)", rows=rows)


@pytest.mark.benchmark(group="reader-emailevents")
def test_ingest_emailevents(benchmark, more_files, tmp_path, pytestconfig) -> None:
    rows = _rows(pytestconfig)
    assert run(benchmark, lambda: _ingest(more_files["emailevents"], tmp_path / "spool"), key="ingest",
               competitor="readers.ingest, Defender EmailEvents CSV", rows=rows, baseline=True) == rows


@pytest.mark.benchmark(group="reader-emailevents")
def test_polars_sink_emailevents(benchmark, more_files, tmp_path, pytestconfig) -> None:
    rows = _rows(pytestconfig)
    run(benchmark, lambda: _floor_csv(more_files["emailevents"], tmp_path / "f.parquet"),
        key="polars-sink", competitor="polars.scan_csv + sink_parquet (the floor)", rows=rows)


@pytest.mark.benchmark(group="reader-postfix")
def test_ingest_postfix(benchmark, more_files, tmp_path, pytestconfig) -> None:
    n = _rows(pytestconfig) // 3
    assert run(benchmark, lambda: _ingest(more_files["postfix"], tmp_path / "spool"), key="ingest",
               competitor="readers.ingest, Postfix syslog (3 lines a message)", rows=3 * n,
               baseline=True) == 2 * n  # a receive and a deferral per message


@pytest.mark.benchmark(group="reader-postfix")
def test_polars_sink_postfix_lines(benchmark, more_files, tmp_path, pytestconfig) -> None:
    n = _rows(pytestconfig) // 3
    run(benchmark, lambda: _floor_csv(more_files["postfix"], tmp_path / "f.parquet", has_header=False,
                                      separator="\x1f", quote_char=None),
        key="polars-sink", competitor="polars lines + sink_parquet (the floor: no parsing)", rows=3 * n)
