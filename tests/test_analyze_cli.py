"""End-to-end tests of `mailflow analyze` and `mailflow connectors check`: outputs, exit codes,
one-line errors, atomic replacement of earlier outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
from click.testing import CliRunner

from analyzer.cli import main

CONNECTORS = [
    {"Name": "On-prem relay", "Enabled": True, "ConnectorType": "OnPremises",
     "SenderIPAddresses": ["198.51.100.10"], "SenderDomains": ["smtp:*;1"]},
]
DOMAINS = [{"DomainName": "contoso.com", "DomainType": "Authoritative", "MatchSubDomains": False}]
TRACE_HEADER = '"Received","SenderAddress","RecipientAddress","Subject","Status","FromIP","ToIP","Size","MessageTraceId"\r\n'


def _tenant(tmp_path: Path, rows: list[str]) -> Path:
    root = tmp_path / "exports"
    root.mkdir()
    (root / "inbound.json").write_text(json.dumps(CONNECTORS), encoding="utf-8")
    (root / "domains.json").write_text(json.dumps(DOMAINS), encoding="utf-8")
    (root / "trace.csv").write_text(TRACE_HEADER + "".join(rows), encoding="utf-8")
    return root


def _row(i: int, sender: str, ip: str, hour: int = 10) -> str:
    return (f'"2026-11-20T{hour:02d}:{i % 60:02d}:00","{sender}","user{i}@contoso.com","Hello","Delivered",'
            f'"{ip}","","1000","id-{sender}-{ip}-{i}"\r\n')


def test_analyze_writes_every_output_and_finds_direct_send(tmp_path: Path) -> None:
    rows = [_row(i, "app@contoso.com", "198.51.100.10") for i in range(5)]  # through the connector
    rows += [_row(i, "ceo@contoso.com", "203.0.113.66") for i in range(3)]  # direct send
    rows += [_row(i, "news@example.net", "192.0.2.7") for i in range(4)]  # ordinary internet mail
    root = _tenant(tmp_path, rows)
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["analyze", str(root), "--out", str(out), "--fail-on", "high"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "connectors.parquet", "findings.json", "findings.parquet", "hotspots.parquet", "records", "report.html",
        "summary.json", "summary.txt"]
    records = pl.read_parquet(out / "records", hive_partitioning=True)
    assert records.height == 12
    assert records.filter(pl.col("client_ip") == "198.51.100.10")["inbound_connector"].unique().to_list() == [
        "On-prem relay"]
    assert sorted(p.name for p in (out / "records").iterdir()) == ["date=2026-11-20"]
    found = json.loads((out / "findings.json").read_text())
    assert [(f["kind"], f["severity"], f["subject"], f["count"]) for f in found] == [
        ("direct_send", "medium", "203.0.113.66", 3)]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["records"] == 12 and summary["findings"]["by_severity"]["medium"] == 1
    assert sorted(summary["configuration_files"]) == [str(root / "domains.json"), str(root / "inbound.json")]
    usage = pl.read_parquet(out / "connectors.parquet")
    assert usage.filter(pl.col("connector") == "On-prem relay").select("messages", "sources", "bytes").row(0) == (
        5, 1, 5000)
    # --fail-on medium: the direct_send finding makes the run exit 1
    again = CliRunner().invoke(main, ["analyze", str(root), "--out", str(out), "--fail-on", "medium"])
    assert again.exit_code == 1, again.output


def test_analyze_replaces_earlier_outputs_and_leaves_no_staging(tmp_path: Path) -> None:
    root = _tenant(tmp_path, [_row(i, "app@contoso.com", "198.51.100.10") for i in range(3)])
    out = tmp_path / "report"
    out.mkdir()
    (out / "rejects.csv").write_text("stale\n")
    for _ in range(2):
        result = CliRunner().invoke(main, ["analyze", str(root), "--out", str(out)])
        assert result.exit_code == 0, result.output
    assert not (out / "rejects.csv").exists()  # stale rejects from an earlier run are removed
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    assert pl.read_parquet(out / "records", hive_partitioning=True).height == 3


def test_analyze_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    root = _tenant(tmp_path, [_row(0, "a@contoso.com", "198.51.100.10")])
    (root / "inbound.json").write_text('[{"Name": "x", "Enabled": true, "SenderIPAddresses": ["10.0.0.0/40"]}]')
    result = subprocess.run([sys.executable, "-m", "analyzer", "analyze", str(root), "--out", str(tmp_path / "o")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mailflow: error: ") and "10.0.0.0/40" in lines[0]
    assert str(root / "inbound.json") in lines[0]
    # the failed run left no output directory content behind but its (empty) parent
    assert not [p for p in (tmp_path / "o").iterdir()] if (tmp_path / "o").exists() else True


def test_analyze_only_configuration_is_an_error(tmp_path: Path) -> None:
    root = _tenant(tmp_path, [])
    (root / "trace.csv").unlink()
    result = CliRunner().invoke(main, ["analyze", str(root), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "no logs to analyze: expected message traces, tracking logs, Postfix logs or EmailEvents exports, " \
           "got only configuration exports" in result.output


def test_connectors_check_exit_codes(tmp_path: Path) -> None:
    path = tmp_path / "inbound.json"
    path.write_text(json.dumps([{"Name": "Empty on-prem", "Enabled": True, "ConnectorType": "OnPremises",
                                 "SenderIPAddresses": []}]), encoding="utf-8")
    ok = CliRunner().invoke(main, ["connectors", "check", str(path)])
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("high    Empty on-prem: ")
    failing = CliRunner().invoke(main, ["connectors", "check", "--fail-on", "high", str(path)])
    assert failing.exit_code == 1


def test_ip_table_becomes_a_column_and_groups_unrouted_sources(tmp_path: Path) -> None:
    rows = [_row(i, f"u{i}@example.net", f"192.0.2.{i % 50 + 1}") for i in range(120)]
    root = _tenant(tmp_path, rows)
    table = tmp_path / "asn.csv"
    table.write_text("prefix,asn\n192.0.2.0/24,AS64500\n", encoding="utf-8")
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["analyze", str(root), "--out", str(out), "--ip-table", f"asn={table}"])
    assert result.exit_code == 0, result.output
    records = pl.read_parquet(out / "records", hive_partitioning=True)
    assert records["asn"].unique().to_list() == ["AS64500"]
    found = json.loads((out / "findings.json").read_text())
    # no single address reaches 100 messages, their AS does; the connector saw none of them
    assert [(f["kind"], f["subject"], f["count"]) for f in found] == [
        ("unrouted_inbound", "asn=AS64500", 120), ("unused_connector", "On-prem relay", 0)]
    bad = CliRunner().invoke(main, ["analyze", str(root), "--out", str(out), "--ip-table", "asn"])
    assert bad.exit_code == 2 and "expected NAME=FILE, got 'asn'" in bad.output


def test_connector_inside_cloud_ranges(tmp_path: Path, shared_data: Path) -> None:
    path = tmp_path / "inbound.json"
    path.write_text(json.dumps([{"Name": "App on AWS", "Enabled": True, "ConnectorType": "OnPremises",
                                 "SenderIPAddresses": ["3.5.140.10"]}]), encoding="utf-8")
    aws = shared_data / "ip_prefixes" / "aws_ip-ranges.json"
    plain = CliRunner().invoke(main, ["connectors", "check", "--json", str(path)])
    assert plain.exit_code == 0 and plain.output == ""
    result = CliRunner().invoke(main, ["connectors", "check", "--json", "--cloud-ranges", str(aws), str(path)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [(r["kind"], r["severity"], r["subject"]) for r in rows] == [("connector_config", "medium", "App on AWS")]
    assert "3.5.140.10" in rows[0]["detail"]
