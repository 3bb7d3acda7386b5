"""Scheduled runs with --state: only new or changed inputs are read, records are never
duplicated, a second identical run changes nothing, an interrupted run leaves the previous
outputs and the next run completes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from analyzer import readers, reports
from analyzer.cli import main

HEADER = '"Received","SenderAddress","RecipientAddress","Subject","Status","FromIP","ToIP","Size","MessageTraceId"\r\n'
CONNECTORS = [{"Name": "On-prem relay", "Enabled": True, "ConnectorType": "OnPremises",
               "SenderIPAddresses": ["198.51.100.10"]}]
DOMAINS = [{"DomainName": "contoso.com", "DomainType": "Authoritative"}]


def _trace(path: Path, day: int, n: int, tag: str) -> None:
    rows = "".join(f'"2026-11-{day:02d}T10:{i % 60:02d}:00","a@example.net","u{i}@contoso.com","s","Delivered",'
                   f'"192.0.2.{i % 200 + 1}","","100","{tag}-{i}"\r\n' for i in range(n))
    path.write_text(HEADER + rows, encoding="utf-8")


@pytest.fixture()
def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    inputs = tmp_path / "exports"
    inputs.mkdir()
    (inputs / "inbound.json").write_text(json.dumps(CONNECTORS), encoding="utf-8")
    (inputs / "domains.json").write_text(json.dumps(DOMAINS), encoding="utf-8")
    _trace(inputs / "day1.csv", 10, 5, "d1")
    return inputs, tmp_path / "state", tmp_path / "report"


def _run(inputs: Path, state: Path, out: Path, *extra: str):
    return CliRunner().invoke(main, ["analyze", str(inputs), "--state", str(state), "--out", str(out), *extra])


def _records(out: Path) -> pl.DataFrame:
    return pl.read_parquet(out / "records", hive_partitioning=True)


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def test_new_file_is_appended_and_same_run_twice_changes_nothing(setup) -> None:
    inputs, state, out = setup
    assert _run(inputs, state, out).exit_code == 0
    assert _records(out).height == 5
    _trace(inputs / "day2.csv", 11, 3, "d2")
    first = _run(inputs, state, out)
    assert first.exit_code == 0, first.output
    assert _records(out).height == 8
    read_files = {Path(f["source_file"]).name: f["rows_read"] for f in _summary(out)["inputs"]}
    assert read_files == {"day1.csv": 5, "day2.csv": 3}
    stamp = (out / "summary.json").stat().st_mtime_ns
    again = _run(inputs, state, out)
    assert again.exit_code == 0
    assert "No new or changed inputs since the last run" in again.output
    assert (out / "summary.json").stat().st_mtime_ns == stamp  # outputs untouched


def test_changed_file_replaces_its_records(setup) -> None:
    inputs, state, out = setup
    assert _run(inputs, state, out).exit_code == 0
    _trace(inputs / "day1.csv", 10, 7, "d1")  # re-exported with two more rows
    assert _run(inputs, state, out).exit_code == 0
    records = _records(out)
    assert records.height == 7 and records["message_key"].n_unique() == 7


def test_touched_but_unchanged_file_is_not_reread(setup) -> None:
    inputs, state, out = setup
    assert _run(inputs, state, out).exit_code == 0
    os.utime(inputs / "day1.csv", ns=(1, 1))  # a copy that changed the mtime only
    again = _run(inputs, state, out)
    assert "No new or changed inputs" in again.output


def test_rotated_away_log_keeps_its_records(setup) -> None:
    inputs, state, out = setup
    assert _run(inputs, state, out).exit_code == 0
    (inputs / "day1.csv").unlink()
    _trace(inputs / "day2.csv", 11, 2, "d2")
    assert _run(inputs, state, out).exit_code == 0
    assert _records(out).height == 7


def test_window_limits_findings_not_records(setup) -> None:
    inputs, state, out = setup
    rows = "".join(f'"2026-11-01T10:{i:02d}:00","ceo@contoso.com","u@contoso.com","s","Delivered",'
                   f'"203.0.113.66","","100","old-{i}"\r\n' for i in range(3))
    (inputs / "old.csv").write_text(HEADER + rows, encoding="utf-8")  # direct send, 9 days earlier
    assert _run(inputs, state, out, "--window", "30").exit_code == 0
    kinds = [f["kind"] for f in json.loads((out / "findings.json").read_text())]
    assert "direct_send" in kinds
    assert _run(inputs, state, out, "--window", "7").exit_code == 0  # option changed: a new run
    kinds = [f["kind"] for f in json.loads((out / "findings.json").read_text())]
    assert "direct_send" not in kinds
    assert _records(out).height == 8


def test_interrupted_run_leaves_previous_outputs_and_next_run_completes(setup, monkeypatch) -> None:
    inputs, state, out = setup
    assert _run(inputs, state, out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    _trace(inputs / "day2.csv", 11, 3, "d2")

    def crash(*args, **kwargs):
        raise RuntimeError("killed")  # dies half-way, after reading and attributing

    monkeypatch.setattr(reports, "_publish", crash)
    with pytest.raises(RuntimeError, match="killed"):
        CliRunner().invoke(main, ["analyze", str(inputs), "--state", str(state), "--out", str(out)],
                           catch_exceptions=False)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert _records(out).height == 5
    assert not [p for p in out.iterdir() if p.name.startswith(".mailflow")]
    monkeypatch.undo()
    done = _run(inputs, state, out)
    assert done.exit_code == 0, done.output
    assert _records(out).height == 8


def test_quiet_prints_nothing_and_exit_code_still_tells(setup) -> None:
    inputs, state, out = setup
    rows = "".join(f'"2026-11-10T11:{i:02d}:00","ceo@contoso.com","u@contoso.com","s","Delivered",'
                   f'"203.0.113.66","","100","ds-{i}"\r\n' for i in range(3))
    (inputs / "spoof.csv").write_text(HEADER + rows, encoding="utf-8")
    result = _run(inputs, state, out, "--quiet", "--fail-on", "medium")
    assert (result.exit_code, result.output) == (1, "")
    again = _run(inputs, state, out, "--quiet", "--fail-on", "medium")  # unchanged: same verdict
    assert (again.exit_code, again.output) == (1, "")


def test_damaged_state_is_a_clear_error(setup) -> None:
    inputs, state, out = setup
    state.mkdir()
    (state / "manifest.json").write_text("{not json")
    result = _run(inputs, state, out)
    assert result.exit_code == 2
    assert "unreadable state directory: expected a manifest.json of version 1" in result.output
    shutil.rmtree(state)


def test_parquet_inputs_are_refused_with_state(setup, tmp_path: Path) -> None:
    inputs, state, out = setup
    assert CliRunner().invoke(main, ["analyze", str(inputs), "--out", str(tmp_path / "plain")]).exit_code == 0
    result = _run(tmp_path / "plain" / "records", state, out)
    assert result.exit_code == 2
    assert "Parquet inputs with --state: expected exports and logs" in result.output


# ---------------------------------------------------------------- incremental: records kept in the state


@pytest.fixture()
def attributed(monkeypatch) -> list[int]:
    """Rows attributed, run by run (each call of `_counted_run` starts a new count)."""
    from analyzer import attribution

    counts: list[int] = []
    original = attribution.Attributor.attribute

    def counting(self, records):
        counts[-1] += records.height
        return original(self, records)

    monkeypatch.setattr(attribution.Attributor, "attribute", counting)
    return counts


def _counted_run(counts: list[int], inputs: Path, state: Path, out: Path, *extra: str) -> int:
    counts.append(0)
    result = _run(inputs, state, out, *extra)
    assert result.exit_code == 0, result.output
    return counts[-1]


def _outputs(out: Path) -> tuple[list, dict, list]:
    records = _records(out).drop("date").sort("source_file", "source_line").rows()
    totals = {Path(f["source_file"]).name: (f["rows_read"], f["rows_kept"], f["duplicates"])
              for f in _summary(out)["inputs"]}
    found = [(f["kind"], f["subject"], f["count"]) for f in json.loads((out / "findings.json").read_text())]
    return records, totals, found


def _copies(path: Path, source: Path, rows: int) -> None:
    """An overlapping export: the first `rows` records of `source` again."""
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:rows + 1]), encoding="utf-8")


def test_later_runs_attribute_only_new_and_changed_files_and_equal_a_full_run(setup, attributed, tmp_path) -> None:
    inputs, state, out = setup
    assert _counted_run(attributed, inputs, state, out) == 5
    _trace(inputs / "day2.csv", 11, 3, "d2")
    assert _counted_run(attributed, inputs, state, out) == 3  # day1's records are kept as they are
    _copies(inputs / "overlap.csv", inputs / "day2.csv", 2)  # two copies of day2 records
    assert _counted_run(attributed, inputs, state, out) == 2
    _trace(inputs / "day3.csv", 12, 4, "d3")
    _trace(inputs / "day1.csv", 10, 6, "d1")  # grew by one row
    assert _counted_run(attributed, inputs, state, out) == 4 + 6
    incremental = _outputs(out)
    assert incremental[1]["overlap.csv"] == (2, 2, 2)
    assert len(incremental[0]) == 6 + 3 + 4
    # the same inputs in one run from an empty state
    fresh_out = tmp_path / "fresh"
    assert _counted_run(attributed, inputs, tmp_path / "fresh-state", fresh_out) == 6 + 3 + 2 + 4
    assert _outputs(fresh_out) == incremental


def test_a_changed_file_whose_records_stood_for_copies_is_attributed_with_everything_again(
        setup, attributed, tmp_path) -> None:
    inputs, state, out = setup
    _copies(inputs / "copy.csv", inputs / "day1.csv", 3)  # copy.csv's three records are day1's
    _trace(inputs / "day2.csv", 11, 3, "d2")
    assert _counted_run(attributed, inputs, state, out) == 5 + 3 + 3
    # day1.csv changes: its old records stood for copy.csv's, removed as copies on that day
    _trace(inputs / "day1.csv", 10, 2, "d1")
    assert _counted_run(attributed, inputs, state, out) == 2 + 3 + 3
    fresh_out = tmp_path / "fresh"
    _counted_run(attributed, inputs, tmp_path / "fresh-state", fresh_out)
    assert _outputs(fresh_out) == _outputs(out)
    assert len(_outputs(out)[0]) == 3 + 3  # d1-0..2 (once) and day2's three


def test_other_attribution_attributes_everything_again(setup, attributed) -> None:
    inputs, state, out = setup
    _trace(inputs / "day2.csv", 11, 3, "d2")
    assert _counted_run(attributed, inputs, state, out) == 8
    assert _counted_run(attributed, inputs, state, out, "--internal", "192.0.2.0/24") == 8
    assert (_records(out)["ip_class"] == "private").all()


def test_unchanged_days_are_read_back_from_the_partials_cache(setup) -> None:
    inputs, state, out = setup
    assert _run(inputs, state, out).exit_code == 0
    assert _summary(out)["partials_cache"]["hits"] == 0
    _trace(inputs / "day2.csv", 11, 3, "d2")  # a new day; day 10 is unchanged and in the window
    assert _run(inputs, state, out).exit_code == 0
    assert _summary(out)["partials_cache"]["hits"] > 0
    assert len(list((state / "records").iterdir())) == 1  # the earlier generation is gone


def test_days_wholly_inside_the_window_keep_their_identity() -> None:
    import datetime as dt

    from analyzer import _partials, analyses

    def day(*stamps: dt.datetime) -> _partials.Day:
        frame = pl.LazyFrame({"timestamp": list(stamps)}, schema={"timestamp": pl.Datetime("us", "UTC")})
        return _partials.Day(frame, identity=f"id-{len(stamps)}-{stamps[0].day}")

    at = lambda d, h: dt.datetime(2026, 11, d, h, tzinfo=dt.timezone.utc)  # noqa: E731
    days = [day(at(8, 1), at(8, 23)), day(at(9, 5), at(9, 20)), day(at(10, 1), at(10, 12))]
    kept = analyses._in_window(days, ["date=2026-11-08", "date=2026-11-09", "date=2026-11-10"],
                               dt.timedelta(days=1, hours=6))  # from 2026-11-09 06:00 on
    assert [d.identity for d in kept] == [None, None, "id-2-10"]
    assert [d.frame.collect().height for d in kept] == [0, 1, 2]


def test_records_kept_from_a_run_with_since_are_not_taken_for_all(setup, attributed) -> None:
    inputs, state, out = setup
    _trace(inputs / "day2.csv", 11, 3, "d2")
    assert _counted_run(attributed, inputs, state, out, "--since", "2026-11-11") == 3
    assert _records(out).height == 3
    assert _counted_run(attributed, inputs, state, out) == 8  # day1's records were never kept
    assert _records(out).height == 8


def test_new_parts_never_overwrite_kept_ones(setup) -> None:
    # a meta.json that undercounts its parts (damaged, or hand-edited) must not make a new part
    # take a kept part's name: the kept part is a hard link of the last run's output
    inputs, state, out = setup
    assert _run(inputs, state, out).exit_code == 0
    (meta_path,) = (state / "records").glob("*/meta.json")
    meta = json.loads(meta_path.read_text())
    meta["next_part"] = 0
    meta_path.write_text(json.dumps(meta))
    _trace(inputs / "day2.csv", 10, 3, "d2")  # the same day as day1.csv's records
    assert _run(inputs, state, out).exit_code == 0
    assert _records(out).height == 8


@pytest.mark.parametrize("damage", ["{not json", "[]", '{"fingerprint": "x"}'])
def test_a_damaged_generation_costs_a_full_run_not_the_records(setup, attributed, damage) -> None:
    inputs, state, out = setup
    assert _counted_run(attributed, inputs, state, out) == 5
    (meta_path,) = (state / "records").glob("*/meta.json")
    meta_path.write_text(damage)
    _trace(inputs / "day2.csv", 11, 3, "d2")
    assert _counted_run(attributed, inputs, state, out) == 8
    assert _records(out).height == 8


def test_hashes_another_polars_version_made_are_never_compared(setup, attributed) -> None:
    # polars does not promise its row hashes from one version to the next: a generation stamped
    # with another key format is attributed again, its records hashed again, so their copies in
    # a new export are still found
    inputs, state, out = setup
    assert _counted_run(attributed, inputs, state, out) == 5
    (meta_path,) = (state / "records").glob("*/meta.json")
    meta = json.loads(meta_path.read_text())
    assert meta["key"] == readers.KEY_FORMAT
    meta["key"] = "polars 0.0.0 hash_rows 0x5EED"
    meta_path.write_text(json.dumps(meta))
    # every hash kept, as that other version would have made them
    (keys,) = (state / "records").glob("*/keys/*/part-*.npz")
    with np.load(keys) as part:
        arrays = {name: part[name] for name in part.files}
    arrays["key"] = arrays["key"] ^ np.uint64(0xFFFF)
    np.savez(keys, **arrays)
    # the files' records are kept without hashes: those are made again when they are read
    stored = list((state / "files").glob("*.parquet"))
    assert stored and all("_key" not in pl.read_parquet_schema(f) for f in stored)
    _copies(inputs / "again.csv", inputs / "day1.csv", 3)
    assert _counted_run(attributed, inputs, state, out) == 8  # the five kept ones too
    assert _records(out).height == 5
    assert sum(duplicates for _, _, duplicates in _outputs(out)[1].values()) == 3


@pytest.mark.parametrize("remove", ["records", "keys"])
def test_a_generation_missing_files_costs_a_full_run_not_the_records(setup, attributed, remove) -> None:
    inputs, state, out = setup
    assert _counted_run(attributed, inputs, state, out) == 5
    (part,) = (state / "records").glob(f"*/{remove}/*/part-*")
    part.unlink()
    _trace(inputs / "day2.csv", 11, 3, "d2")
    assert _counted_run(attributed, inputs, state, out) == 8
    assert _records(out).height == 8
