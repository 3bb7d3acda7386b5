"""`mailflow analyze` streams: records go from the readers' workers through the attributor
into date partitions (`analyses.RecordWriter`), and duplicates are removed day by day afterwards.
These tests hold the streamed path to the in-memory one (`readers.ingest(...).frame`, which
de-duplicates the whole input at once) on inputs that cross batches, files and days."""

from __future__ import annotations

import datetime as dt
import errno
import os
import shutil
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from analyzer import _partials, analyses, attribution, config, findings, readers

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "data" / "readers"
SAMPLE = ROOT.parent / "sample_logs"
UTC = dt.timezone.utc


def _attributor() -> attribution.Attributor:
    connectors, domains = config.load_config(sorted((SAMPLE / "config").iterdir()))
    return attribution.Attributor.build(connectors, domains)


def _records(root: Path) -> pl.DataFrame:
    parts = sorted(root.rglob("*.parquet"))
    frame = pl.read_parquet(parts, hive_partitioning=True)
    return frame.drop("date").sort("source_file", "source_line", "recipient", nulls_last=True)


def _batch(rows: list[tuple[dt.datetime, str, str, int]]) -> pl.DataFrame:
    """Normalized records (timestamp, message key, source file, line) with `_key` = hash of
    (timestamp, message key): equal keys are copies of one record."""
    frame = pl.DataFrame({name: [None] * len(rows) for name in readers.SCHEMA}, schema=readers.SCHEMA)
    frame = frame.with_columns(
        pl.Series("timestamp", [r[0] for r in rows], dtype=readers.SCHEMA["timestamp"]),
        pl.Series("message_key", [r[1] for r in rows]),
        pl.Series("source_file", [r[2] for r in rows]),
        pl.Series("source_line", [r[3] for r in rows], dtype=pl.Int64),
        pl.lit("exo_trace").alias("source_format"),
        pl.lit("203.0.113.20").alias("client_ip"),
    )
    return frame.with_columns(pl.struct("timestamp", "message_key").hash(seed=1).alias("_key"))


def test_writer_keeps_the_first_copy_in_batch_order_across_batches_and_days(tmp_path: Path) -> None:
    day1 = dt.datetime(2026, 11, 1, 23, 59, 59, tzinfo=UTC)
    day2 = dt.datetime(2026, 11, 2, 0, 0, 1, tzinfo=UTC)
    writer = analyses.RecordWriter(_attributor(), tmp_path / "records", tmp_path / "keys")
    # batches arrive out of order (worker threads); numbers give input order
    writer(2, _batch([(day1, "a", "late.csv", 1), (day2, "c", "late.csv", 2), (day2, "c", "late.csv", 3)]))
    writer(0, _batch([(day1, "a", "early.csv", 1), (day2, "b", "early.csv", 2)]))
    writer(1, _batch([(day2, "b", "middle.csv", 1), (day1, "z", "middle.csv", 2)]))
    assert writer.rows == 7
    removed = writer.finish()
    assert removed == {"late.csv": 2, "middle.csv": 1}
    assert writer.rows == 4
    kept = _records(tmp_path / "records")
    assert kept.select("source_file", "source_line", "message_key").rows() == [
        ("early.csv", 1, "a"), ("early.csv", 2, "b"), ("late.csv", 2, "c"), ("middle.csv", 2, "z")]
    assert sorted(p.name for p in (tmp_path / "records").iterdir()) == ["date=2026-11-01", "date=2026-11-02"]
    assert not (tmp_path / "keys").exists()  # the hashes are scratch, not output
    # attribution ran on the way: the client is inside the "On-prem Exchange" ranges
    assert set(kept["inbound_connector"].to_list()) == {"On-prem Exchange"}


def test_writer_drops_a_part_left_empty_and_applies_the_window(tmp_path: Path) -> None:
    t = dt.datetime(2026, 11, 3, 12, tzinfo=UTC)
    writer = analyses.RecordWriter(_attributor(), tmp_path / "records", tmp_path / "keys",
                                   since=t, until=t + dt.timedelta(hours=1), flush_rows=1)
    writer(0, _batch([(t, "a", "one.csv", 1), (t - dt.timedelta(seconds=1), "old", "one.csv", 2)]))
    writer(1, _batch([(t, "a", "two.csv", 1), (t + dt.timedelta(hours=1), "new", "two.csv", 2)]))
    assert writer.finish() == {"two.csv": 1}
    day = tmp_path / "records" / "date=2026-11-03"
    assert [p.name for p in day.iterdir()] == ["part-00000000.parquet"]
    assert _records(tmp_path / "records")["message_key"].to_list() == ["a"]


@pytest.mark.parametrize("flush_rows", [1, 3, 4, 10**6])
def test_writer_gathers_batches_into_parts_and_still_keeps_the_first_copy(tmp_path: Path, flush_rows: int) -> None:
    """Batches arrive out of order and are gathered into parts whatever the threshold: a part
    may hold several batches, a batch's day one part; the copy kept is the first in batch order,
    also when the later copy was written first, in an earlier part."""
    day1 = dt.datetime(2026, 11, 1, 12, tzinfo=UTC)
    day2 = dt.datetime(2026, 11, 2, 12, tzinfo=UTC)
    writer = analyses.RecordWriter(_attributor(), tmp_path / "records", tmp_path / "keys", flush_rows=flush_rows)
    writer(3, _batch([(day1, "a", "d.csv", 1), (day1, "b", "d.csv", 2), (day2, "x", "d.csv", 3)]))
    writer(1, _batch([(day1, "b", "b.csv", 1), (day2, "x", "b.csv", 2)]))
    writer(2, _batch([(day1, "a", "c.csv", 1), (day1, "c", "c.csv", 2), (day1, "c", "c.csv", 3)]))
    writer(0, _batch([(day2, "y", "a.csv", 1)]))
    removed = writer.finish()
    assert removed == {"d.csv": 3, "c.csv": 1}
    kept = _records(tmp_path / "records")
    assert kept.select("source_file", "source_line").rows() == [
        ("a.csv", 1), ("b.csv", 1), ("b.csv", 2), ("c.csv", 1), ("c.csv", 2)]
    assert writer.rows == kept.height == 5
    parts = sorted((tmp_path / "records").rglob("*.parquet"))
    if flush_rows == 10**6:  # nothing flushed before finish: one part a day
        assert [p.parent.name for p in parts] == ["date=2026-11-01", "date=2026-11-02"]
    # within a part, rows are in batch order
    for part in parts:
        files = pl.read_parquet(part)["source_file"].to_list()
        assert files == sorted(files)


def _stream(inputs: list[Path], staging: Path, **options) -> analyses.Analysis:
    result = analyses.analyze(inputs, staging, connector_files=sorted((SAMPLE / "config").glob("*Connector*")),
                              domain_files=[SAMPLE / "config" / "Get-AcceptedDomain.json"], **options)
    assert result is not None
    return result


@pytest.mark.parametrize("batch_bytes", [4096, 16 << 20])
def test_streamed_records_equal_the_in_memory_read_and_attribution(tmp_path: Path, batch_bytes: int,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Overlapping exports, a gzipped one, a tracking log and the whole sample tenant: the
    streamed records are the de-duplicated frame, attributed, row for row; duplicates are counted
    on the same files."""
    inputs = [DATA / "overlap", DATA / "trace_v2_en-US.csv", DATA / "MSGTRK2025030714-1.LOG",
              DATA / "trace_ps7.csv.gz", SAMPLE / "logs"]
    # tiny batches put copies of a record into different batches (and worker threads)
    real_ingest = readers.ingest
    monkeypatch.setattr(readers, "ingest", lambda *a, **k: real_ingest(*a, **{**k, "batch_bytes": batch_bytes}))
    result = _stream(inputs, tmp_path / "staging")
    expected_ingest = real_ingest(inputs, batch_bytes=batch_bytes)
    expected = _attributor().attribute(expected_ingest.frame.collect())
    got = _records(result.records_dir)
    assert result.records == got.height == expected.height
    assert got.equals(expected.sort("source_file", "source_line", "recipient", nulls_last=True))
    dupes = dict(zip(result.totals["source_file"], result.totals["duplicates"]))
    want = dict(zip(expected_ingest.totals()["source_file"], expected_ingest.totals()["duplicates"]))
    assert dupes == want
    assert sum(want.values()) >= 2  # the overlap really has copies


@pytest.mark.parametrize("reuse", [True, False])
def test_records_folder_as_input_gives_the_same_findings(tmp_path: Path, reuse: bool,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A records/ folder of an earlier run gives the same records and findings as the logs it
    came from, whether its parts are reused as they are or read back in batches and attributed
    again."""
    first = _stream([SAMPLE / "logs"], tmp_path / "one")
    if not reuse:
        monkeypatch.setattr(analyses, "reusable_parts", lambda logs, fingerprint: None)
    second = _stream([first.records_dir], tmp_path / "two")
    columns = [c for c in _records(first.records_dir).columns]
    assert _records(second.records_dir).select(columns).equals(_records(first.records_dir))
    assert second.records == first.records
    assert second.findings.equals(first.findings)
    assert second.hotspots.equals(first.hotspots)
    assert second.connectors.equals(first.connectors)
    assert second.totals["rows_kept"].sum() == first.records
    assert second.totals["duplicates"].sum() == 0
    linked = {p.stat().st_ino for p in first.records_dir.rglob("*.parquet")}
    assert ({p.stat().st_ino for p in second.records_dir.rglob("*.parquet")} == linked) is reuse
    assert ("read" in second.timings) is False


def _part_layout(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.parquet"))


def test_reused_parts_keep_their_day_and_number_and_the_totals_match_a_read(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    first = _stream([SAMPLE / "logs"], tmp_path / "one")
    reused = _stream([first.records_dir], tmp_path / "two")
    assert _part_layout(reused.records_dir) == _part_layout(first.records_dir)
    monkeypatch.setattr(analyses, "reusable_parts", lambda logs, fingerprint: None)
    read = _stream([first.records_dir], tmp_path / "three")
    assert reused.totals.drop("notes").equals(read.totals.drop("notes"))
    assert set(reused.totals["notes"]) == {"records of an earlier run with the same attribution: reused as they are"}
    assert set(read.totals["notes"]) == {""}


def test_parts_are_copied_when_they_cannot_be_linked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _stream([SAMPLE / "logs"], tmp_path / "one")

    def cross_device(src: object, dst: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    second = _stream([first.records_dir], tmp_path / "two")
    assert _records(second.records_dir).equals(_records(first.records_dir))
    inodes = {p.stat().st_ino for p in first.records_dir.rglob("*.parquet")}
    assert not inodes & {p.stat().st_ino for p in second.records_dir.rglob("*.parquet")}


def test_records_are_attributed_again_when_the_attribution_changed(tmp_path: Path) -> None:
    """Other attribution options (here a range declared internal) give other attribution
    columns: the parts are read and attributed again, not reused."""
    first = _stream([SAMPLE / "logs"], tmp_path / "one")
    internal = analyses.Options(attribution=attribution.Options(internal_networks=("0.0.0.0/0", "::/0")))
    second = _stream([first.records_dir], tmp_path / "two", options=internal)
    classes = _records(second.records_dir).filter(pl.col("client_ip").is_not_null() & (pl.col("ip_class") != "connector"))
    assert classes.height > 0 and (classes["ip_class"] == "private").all()
    assert not (_records(first.records_dir).filter(pl.col("client_ip").is_not_null())["ip_class"] == "private").all()


def test_a_copy_of_a_records_folder_is_not_reused_and_its_duplicates_go(tmp_path: Path) -> None:
    first = _stream([SAMPLE / "logs"], tmp_path / "one")
    copy = tmp_path / "copy"
    shutil.copytree(first.records_dir, copy)
    second = _stream([first.records_dir, copy], tmp_path / "two")
    assert second.records == first.records
    assert _records(second.records_dir).equals(_records(first.records_dir))
    # the copies count against the copied parts (their source_file names the logs)
    dupes = dict(zip(second.totals["source_file"], second.totals["duplicates"]))
    rows = {str(p): pl.scan_parquet(p).select(pl.len()).collect().item() for p in copy.rglob("*.parquet")}
    assert {name: n for name, n in dupes.items() if n} == rows
    assert sum(dupes.values()) == first.records
    inodes = {p.stat().st_ino for p in first.records_dir.rglob("*.parquet")}
    assert not inodes & {p.stat().st_ino for p in second.records_dir.rglob("*.parquet")}


def test_parts_of_two_runs_or_foreign_parquet_are_not_reused(tmp_path: Path) -> None:
    first = _stream([SAMPLE / "logs"], tmp_path / "one")
    other = _stream([SAMPLE / "logs"], tmp_path / "other")
    connectors, domains = config.load_config(sorted((SAMPLE / "config").iterdir()))
    fingerprint = analyses.attribution_fingerprint(connectors, domains, {}, attribution.Options())
    parts = sorted(first.records_dir.rglob("*.parquet"))
    assert [p.path for p in analyses.reusable_parts(parts, fingerprint) or []] == parts
    assert analyses.reusable_parts(parts, "0" * 64) is None
    assert analyses.reusable_parts(parts + sorted(other.records_dir.rglob("*.parquet"))[:1], fingerprint) is None
    foreign = tmp_path / "foreign.parquet"
    pl.read_parquet(parts[0]).write_parquet(foreign)
    assert analyses.reusable_parts(parts + [foreign], fingerprint) is None
    assert analyses.reusable_parts(parts + [min((SAMPLE / "logs").iterdir())], fingerprint) is None
    assert analyses.reusable_parts([], fingerprint) is None


def test_the_fingerprint_ignores_where_the_configuration_was_read(tmp_path: Path) -> None:
    moved = tmp_path / "moved"
    shutil.copytree(SAMPLE / "config", moved)
    a = config.load_config(sorted((SAMPLE / "config").iterdir()))
    b = config.load_config(sorted(moved.iterdir()))
    assert a[0].inbound[0].source != b[0].inbound[0].source
    options = attribution.Options()
    assert analyses.attribution_fingerprint(*a, {}, options) == analyses.attribution_fingerprint(*b, {}, options)
    fewer = replace(a[0], inbound=a[0].inbound[1:])
    assert analyses.attribution_fingerprint(fewer, a[1], {}, options) != analyses.attribution_fingerprint(*a, {}, options)
    assert (analyses.attribution_fingerprint(*a, {}, attribution.Options(internal_networks=("10.9.0.0/16",)))
            != analyses.attribution_fingerprint(*a, {}, options))


def test_large_parquet_input_is_read_in_bounded_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One Parquet file with a single big row group still reaches the writer in batches of at
    most PARQUET_BATCH_ROWS rows."""
    first = _stream([SAMPLE / "logs"], tmp_path / "one")
    whole = tmp_path / "all.parquet"
    pl.read_parquet(sorted(first.records_dir.rglob("*.parquet"))).write_parquet(whole, row_group_size=10**7)
    monkeypatch.setattr(readers, "PARQUET_BATCH_ROWS", 1000)
    sizes: list[int] = []
    real = analyses.RecordWriter.__call__

    def spy(self: analyses.RecordWriter, index: int, batch: pl.DataFrame) -> None:
        sizes.append(batch.height)
        real(self, index, batch)

    monkeypatch.setattr(analyses.RecordWriter, "__call__", spy)
    second = _stream([whole], tmp_path / "two")
    assert max(sizes) <= 1000 and len(sizes) > 1
    assert second.records == first.records
    assert second.findings.equals(first.findings)


def test_findings_day_by_day_equal_findings_over_the_whole_period(tmp_path: Path) -> None:
    """The rules merge per-day partial aggregates (messages and sample ids across midnight, tops,
    distinct sources, hot-spot windows); the result must equal one pass over every record."""
    result = _stream([SAMPLE / "logs"], tmp_path / "one")
    connectors, domains = config.load_config(sorted((SAMPLE / "config").iterdir()))
    days = [day.frame for day in _partials.record_days(result.records_dir)]
    assert len(days) >= 7
    whole = pl.scan_parquet(sorted(result.records_dir.rglob("*.parquet")))
    by_day = findings.traffic_findings(days, connectors, domains)
    assert by_day.equals(findings.traffic_findings(whole, connectors, domains))
    assert set(by_day["kind"]) >= {"greylisting_hotspot", "unrouted_inbound", "direct_send", "open_relay"}
    assert findings.hotspots(days, connectors).equals(findings.hotspots(whole, connectors))
    assert (analyses.connector_usage(days, connectors)
            .equals(analyses.connector_usage(whole, connectors)))


def test_findings_merge_exactly_over_any_split_of_the_records(tmp_path: Path) -> None:
    """The merge does not rely on groups staying inside a partition: split the sample's records
    row by row into three interleaved parts (every message then spans all three) and the findings,
    hot spots and connector usage are still those of one pass over everything."""
    result = _stream([SAMPLE / "logs"], tmp_path / "one")
    connectors, domains = config.load_config(sorted((SAMPLE / "config").iterdir()))
    whole = pl.read_parquet(sorted(result.records_dir.rglob("*.parquet"))).with_row_index("_i")
    parts = [whole.filter(pl.col("_i") % 3 == k).drop("_i").lazy() for k in range(3)]
    everything = whole.drop("_i").lazy()
    got = findings.traffic_findings(parts, connectors, domains)
    assert got.height >= 10
    assert got.equals(findings.traffic_findings(everything, connectors, domains))
    assert findings.hotspots(parts, connectors).equals(findings.hotspots(everything, connectors))
    assert analyses.connector_usage(parts, connectors).equals(analyses.connector_usage(everything, connectors))


def test_messages_spanning_parts_are_counted_once(tmp_path: Path) -> None:
    """40 messages of 3 records each from one unrouted source, every message split over three
    parts: the finding counts 120 records of 40 messages, as over the whole frame."""
    result = _stream([SAMPLE / "logs"], tmp_path / "one")
    connectors, domains = config.load_config(sorted((SAMPLE / "config").iterdir()))
    template = (pl.read_parquet(sorted(result.records_dir.rglob("*.parquet")))
                .filter((pl.col("direction") == "inbound") & pl.col("inbound_connector").is_null()
                        & (pl.col("ip_class") == "other") & pl.col("sender_accepted").not_())
                .head(1))
    start = dt.datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    rows = pl.concat([template] * 120).with_columns(
        pl.lit("198.18.7.9").alias("client_ip"),
        (pl.int_range(0, 120) // 3).cast(pl.String).alias("message_key"),
        pl.format("<m{}@example.net>", pl.int_range(0, 120) // 3).alias("message_id"),
        (pl.lit(start) + pl.duration(minutes=pl.int_range(0, 120))).alias("timestamp"),
        pl.int_range(0, 120).alias("source_line"),
    )
    parts = [rows.filter(pl.col("source_line") % 3 == k).lazy() for k in range(3)]
    got = findings.traffic_findings(parts, connectors, domains).filter(pl.col("subject") == "198.18.7.9")
    assert got.equals(findings.traffic_findings(rows.lazy(), connectors, domains)
                      .filter(pl.col("subject") == "198.18.7.9"))
    assert got["count"].to_list() == [120]
    assert "120 records (40 messages)" in got["detail"][0]
    assert got["sample_message_ids"].to_list() == [[f"<m{i}@example.net>" for i in (0, 10, 11, 12, 13)]]  # text order
