"""The synthetic Contoso tenant in sample_logs/ (see docs/sample_logs.md): the generator rewrites
it byte for byte, every export is read cleanly in its expected format, the configuration exports
load as the tenant was designed, and `mailflow analyze sample_logs` finds exactly the planted
cases and nothing else."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from analyzer import config, readers

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample_logs"
GENERATOR = REPO / "benchmarks" / "tenant.py"
EXPECTED = REPO / "tests" / "data" / "sample_logs_expected.json"

LOG_FORMATS = {
    "logs/defender/EmailEvents_2026-11-16_2026-11-22.csv": "emailevents",
    "logs/eac/EnhancedSummaryReport_2026-11-19.csv": "exo_enhanced_summary",
    "logs/eac/ExtendedReport_2026-11-20.csv": "exo_extended",
    "logs/exchange/EX01/MSGTRK2026111600-1.LOG": "msgtrk",
    "logs/exchange/EX01/MSGTRK2026111900-1.LOG": "msgtrk",
    "logs/exo/MessageTraceDetail_2026-11-16_2026-11-22.csv": "exo_trace_detail",
    "logs/exo/MessageTrace_2026-11-16_2026-11-19.csv": "exo_trace",
    "logs/exo/MessageTrace_2026-11-18_2026-11-22.csv": "exo_trace",
    "logs/postfix/mail.log": "postfix",
    "logs/postfix/mail.log.1.gz": "postfix",
}
ENCODINGS = {
    "logs/eac/EnhancedSummaryReport_2026-11-19.csv": "utf-16-le",
    "logs/eac/ExtendedReport_2026-11-20.csv": "utf-16-le",
    "logs/exo/MessageTrace_2026-11-16_2026-11-19.csv": "cp1252",  # Windows PowerShell 5.1, -Encoding Default
}
CONFIG_KINDS = {
    "config/EX01_Get-ReceiveConnector.xml": "connectors",
    "config/Get-AcceptedDomain.json": "accepted_domains",
    "config/Get-InboundConnector.json": "connectors",
    "config/Get-OutboundConnector.csv": "connectors",
}
# Rows of the second Get-MessageTraceV2 export that the first one holds too (2026-11-18 00:00 to
# 2026-11-19 12:00): the only duplicates in the sample.
TRACE_OVERLAP = 79
FINDING_KINDS = {"greylisting_hotspot", "open_relay", "relay_rejected", "non_accepted_domain", "direct_send",
                 "unrouted_inbound", "partner_bypass", "outbound_bypass", "disabled_connector_traffic",
                 "unused_connector", "attribution_mismatch", "connector_config"}
SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2, "info": 3}


def _generated(root: Path) -> list[str]:
    """What the generator writes under `root`: config/ and logs/."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _rel(path: str) -> str:
    return Path(path).resolve().relative_to(SAMPLE.resolve()).as_posix()


def _generate(out: Path, *args: str) -> Path:
    """Generate into `out`; returns where the planted findings were written (beside `out`)."""
    expected = out.parent / f"{out.name}.expected.json"
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(out), "--expected", str(expected), *args],
                   check=True, capture_output=True, text=True, timeout=300)
    return expected


@pytest.fixture(scope="module")
def ingested() -> readers.Ingest:
    return readers.ingest(SAMPLE / "logs")


def test_generator_rewrites_the_sample_exactly(tmp_path: Path) -> None:
    expected = _generate(tmp_path / "tenant")
    tmp_path = tmp_path / "tenant"
    assert _generated(tmp_path) == _generated(SAMPLE) == sorted([*LOG_FORMATS, *CONFIG_KINDS])
    assert expected.read_bytes() == EXPECTED.read_bytes()
    for rel in _generated(SAMPLE):
        fresh, committed = (tmp_path / rel).read_bytes(), (SAMPLE / rel).read_bytes()
        if rel.endswith(".gz"):
            # deflate output may differ between zlib builds; the gzip header (mtime 0, no file
            # name) and the content may not
            assert fresh[:10] == committed[:10], rel
            assert gzip.decompress(fresh) == gzip.decompress(committed), rel
        else:
            assert fresh == committed, f"{rel} differs: run python benchmarks/tenant.py"


def test_every_log_is_read_cleanly_in_its_format(ingested: readers.Ingest) -> None:
    totals = ingested.totals()
    assert dict(zip(map(_rel, totals["source_file"]), totals["format"], strict=True)) == LOG_FORMATS
    encodings = dict(zip(map(_rel, totals["source_file"]), totals["encoding"], strict=True))
    assert {k: encodings[k] for k in ENCODINGS} == ENCODINGS
    assert {_rel(f.path) for f in ingested.files if f.compressed} == {"logs/postfix/mail.log.1.gz"}
    assert totals["rows_skipped"].sum() == 0
    assert ingested.rejects().collect().height == 0
    assert (totals["rows_read"] > 0).all()
    duplicates = dict(zip(map(_rel, totals["source_file"]), totals["duplicates"], strict=True))
    assert duplicates == {rel: TRACE_OVERLAP if rel.endswith("2026-11-18_2026-11-22.csv") else 0
                          for rel in LOG_FORMATS}
    records = ingested.frame.collect()
    assert records.height == totals["rows_kept"].sum() - TRACE_OVERLAP
    # every date of every format (en-US culture dates, 7-digit ISO, syslog) is in the simulated week
    start, end = dt.datetime(2026, 11, 16, tzinfo=dt.timezone.utc), dt.datetime(2026, 11, 23, tzinfo=dt.timezone.utc)
    assert records["timestamp"].null_count() == 0
    assert start <= records["timestamp"].min() and records["timestamp"].max() < end


def test_trace_overlap_is_the_duplicate_count() -> None:
    """Independently of the reader: rows of the second trace export whose (MessageTraceId,
    RecipientAddress, Received) is in the first (Microsoft's de-duplication key)."""
    def keys(rel: str, encoding: str) -> list[tuple[str, str, str]]:
        text = (SAMPLE / rel).read_bytes().decode(encoding)
        rows = csv.DictReader(io.StringIO(text.split("\r\n", 1)[1], newline=""))  # after the #TYPE line
        return [(r["MessageTraceId"], r["RecipientAddress"], r["Received"]) for r in rows]

    first = set(keys("logs/exo/MessageTrace_2026-11-16_2026-11-19.csv", "cp1252"))
    second = keys("logs/exo/MessageTrace_2026-11-18_2026-11-22.csv", "ascii")
    assert sum(k in first for k in second) == TRACE_OVERLAP


def test_configuration_is_the_designed_tenant() -> None:
    for rel, kind in CONFIG_KINDS.items():
        assert config.detect_config(SAMPLE / rel) == kind, rel
    connectors, domains = config.load_config(sorted((SAMPLE / "config").iterdir()))
    inbound = [(c.name, c.connector_type, c.enabled, c.sender_ip_addresses, c.sender_domains,
                c.tls_sender_certificate_name, c.restrict_domains_to_ip_addresses) for c in connectors.inbound]
    assert inbound == [
        # SenderIPAddresses of the first is one ';'-joined string in the JSON; enums are numbers
        ("On-prem Exchange", "OnPremises", True, ("203.0.113.5", "203.0.113.6", "203.0.113.16/28"), ("*",),
         "mail.contoso.com", False),
        ("Fabrikam partner", "Partner", True, ("198.51.100.32/28",), ("fabrikam.com",), None, True),
        ("Scanners relay", "OnPremises", True, ("203.0.113.200/29",), ("*",), None, False),
        ("Northwind partner", "Partner", True, ("192.0.2.16/29",), ("northwindtraders.com",),
         "mail.northwindtraders.com", False),
        ("Litware (retired)", "Partner", False, ("192.0.2.64/27",), ("litware.com",), None, False),
        ("Branch office Lyon", "OnPremises", True, ("192.0.2.200/30",), ("*",), None, False),
    ]
    outbound = [(c.name, c.connector_type, c.enabled, c.recipient_domains, c.smart_hosts, c.use_mx_record,
                 c.tls_settings) for c in connectors.outbound]
    assert outbound == [
        ("To Fabrikam", "Partner", True, ("fabrikam.com",), ("198.51.100.35", "198.51.100.36"), False,
         "CertificateValidation"),
        ("To on-prem Exchange", "OnPremises", True, ("fabrikam-legacy.com",), ("mail.contoso.com",), False,
         "DomainValidation"),
    ]
    receive = {c.name: c for c in connectors.receive}
    assert list(receive) == ["Default EX01", "Client Proxy EX01", "Default Frontend EX01",
                             "Outbound Proxy Frontend EX01", "Client Frontend EX01", "Application Relay",
                             "Anonymous Relay"]
    assert {c.server for c in connectors.receive} == {"EX01"}
    relay = receive["Anonymous Relay"]
    assert (relay.enabled, relay.remote_ip_ranges, relay.permission_groups, relay.auth_mechanism, relay.bindings) == (
        True, ("0.0.0.0-255.255.255.255",), ("AnonymousUsers", "ExchangeServers"), ("Tls", "ExternalAuthoritative"),
        ("10.20.30.111:25",))
    assert receive["Application Relay"].remote_ip_ranges == ("10.20.40.0/24",)
    frontend = receive["Default Frontend EX01"]
    assert "AnonymousUsers" in frontend.permission_groups and "ExternalAuthoritative" not in frontend.auth_mechanism
    assert [(d.domain_name, d.domain_type, d.match_subdomains, d.default) for d in domains] == [
        ("contoso.com", "Authoritative", False, True),
        ("contoso.co.uk", "Authoritative", False, False),
        ("fabrikam-legacy.com", "InternalRelay", True, False),
        ("contoso.onmicrosoft.com", "Authoritative", False, False),
        ("contoso.mail.onmicrosoft.com", "Authoritative", False, False),
    ]


def test_expected_json_lists_one_planted_case_per_kind() -> None:
    expected = json.loads(EXPECTED.read_text(encoding="utf-8"))
    assert all(set(f) == {"kind", "subject", "severity", "why"} for f in expected)
    assert {f["kind"] for f in expected} == FINDING_KINDS
    assert all(f["severity"] in SEVERITY_ORDER and f["why"] for f in expected)
    # one finding per kind, except the two connector_config ones (a receive connector, a partner)
    kinds = [f["kind"] for f in expected]
    assert len(kinds) == len(FINDING_KINDS) + 1 and kinds.count("connector_config") == 2
    # in the order findings are reported: severity (high first), kind, subject
    order = [(SEVERITY_ORDER[f["severity"]], f["kind"], f["subject"]) for f in expected]
    assert order == sorted(order)


def test_scale_multiplies_background_and_keeps_the_planted_cases(tmp_path: Path,
                                                                  ingested: readers.Ingest) -> None:
    expected = _generate(tmp_path / "tenant", "--scale", "3")
    assert expected.read_bytes() == EXPECTED.read_bytes()
    big = readers.ingest(tmp_path / "tenant" / "logs")
    assert big.totals()["rows_skipped"].sum() == 0
    n, n1 = (x.frame.select(pl.len()).collect().item() for x in (big, ingested))
    assert n > 1.5 * n1


def test_analyze_finds_exactly_the_planted_cases(tmp_path: Path) -> None:
    """The README's run command on the sample tenant: every planted case, nothing else, and the
    run exits 1 with --fail-on high (two planted findings are high)."""
    from click.testing import CliRunner

    from analyzer.cli import main

    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["analyze", str(SAMPLE), "--out", str(out), "--fail-on", "high"])
    assert result.exit_code == 1, result.output
    found = json.loads((out / "findings.json").read_text(encoding="utf-8"))
    expected = json.loads(EXPECTED.read_text(encoding="utf-8"))
    assert [(f["kind"], f["subject"], f["severity"]) for f in found] == [
        (f["kind"], f["subject"], f["severity"]) for f in expected]
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["rows"]["skipped"] == 0 and summary["rows"]["duplicates"] == TRACE_OVERLAP
    assert sorted(_rel(p) for p in summary["configuration_files"]) == sorted(CONFIG_KINDS)


def test_records_of_an_earlier_run_are_an_input(tmp_path: Path) -> None:
    """Parquet with the normalized columns (an earlier run's records/) is read as is: analysing it
    with the same configuration gives the same findings."""
    from click.testing import CliRunner

    from analyzer.cli import main

    first, second = tmp_path / "first", tmp_path / "second"
    assert CliRunner().invoke(main, ["analyze", str(SAMPLE), "--out", str(first)]).exit_code == 0
    result = CliRunner().invoke(main, ["analyze", str(first / "records"), str(SAMPLE / "config"),
                                       "--out", str(second)])
    assert result.exit_code == 0, result.output
    assert (first / "findings.json").read_text() == (second / "findings.json").read_text()
    summary = json.loads((second / "summary.json").read_text())
    assert {f["format"] for f in summary["inputs"]} == {"parquet"}
    assert summary["records"] == json.loads((first / "summary.json").read_text())["records"]
