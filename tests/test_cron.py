"""Scheduled runs with --state: only new or changed inputs are read, records are never
duplicated, a second identical run changes nothing, an interrupted run leaves the previous
outputs and the next run completes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from analyzer import reports
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
