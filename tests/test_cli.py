"""End-to-end tests of the ``mailflow`` command line on the real published range files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from analyzer.cli import main


def test_lookup_real_azure_and_m365_ranges(shared_data: Path) -> None:
    ranges = shared_data / "ip_prefixes"
    result = CliRunner().invoke(main, [
        "lookup", "--json",
        "--ranges", str(ranges / "azure_ServiceTags_Public.json"),
        "--ranges", str(ranges / "natecohen_m365_worldwide_exchange_ip_cidr.txt"),
        "40.107.23.54", "104.47.41.33", "192.0.2.1", "not-an-ip",
    ])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    azure, m365 = "azure_ServiceTags_Public.json", "natecohen_m365_worldwide_exchange_ip_cidr.txt"
    assert [r["address"] for r in rows] == ["40.107.23.54", "104.47.41.33", "192.0.2.1", "not-an-ip"]
    assert rows[0][azure] == "EOPExternalPublishedIPs"
    assert rows[1][azure] is None and rows[1][m365] == "natecohen_m365_worldwide_exchange_ip_cidr"
    assert rows[2][azure] is None and rows[2][m365] is None
    assert rows[3][azure] == "(not an IP address)"


def test_lookup_table_escapes_control_characters(tmp_path: Path) -> None:
    ranges = tmp_path / "r.csv"
    ranges.write_text("prefix,owner\n10.0.0.0/8,corp\n")
    addresses = tmp_path / "ips.txt"
    addresses.write_text("10.1.1.1\n\x1b[31mred\n")
    result = CliRunner().invoke(main, ["lookup", "--ranges", str(ranges), "--input", str(addresses)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "address      r.csv",
        "10.1.1.1     corp",
        "\\x1b[31mred  (not an IP address)",
    ]


def test_bad_range_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    ranges = tmp_path / "bad.txt"
    ranges.write_text("10.0.0.0/8\n10.0.0.0/40\n")
    result = subprocess.run(
        [sys.executable, "-m", "analyzer", "lookup", "--ranges", str(ranges), "10.0.0.1"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "mailflow: error: invalid prefix '10.0.0.0/40': expected a prefix length 0-32 or a contiguous "
        f"netmask after '/', got '40' ({ranges}: entry 2); hint: write a CIDR (192.0.2.0/24, "
        "2001:db8::/32), a single address or a range a.b.c.d-e.f.g.h\n"
    )


def test_missing_addresses_is_a_usage_error(tmp_path: Path) -> None:
    ranges = tmp_path / "r.txt"
    ranges.write_text("10.0.0.0/8\n")
    result = CliRunner().invoke(main, ["lookup", "--ranges", str(ranges)])
    assert result.exit_code == 2
    assert "give addresses as arguments or with --input" in result.output


def test_read_writes_records_and_rejects(tmp_path: Path, shared_data: Path) -> None:
    bad = tmp_path / "trace.csv"
    bad.write_text('"Received","SenderAddress","RecipientAddress","Status"\r\n'
                   '"2026-11-20T10:00:00","a@b.com","c@contoso.com","Delivered"\r\n'
                   '"yesterday","a@b.com","c@contoso.com","Delivered"\r\n'
                   '=cmd|calc,x\r\n', encoding="utf-8")
    out = tmp_path / "o" / "records.parquet"
    result = CliRunner().invoke(main, ["read", str(bad), str(shared_data / "exchange_server_msgtrk"),
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    import polars as pl

    records = pl.read_parquet(out)
    assert records.height == 1 + 2 + 6 + 4  # trace row, 2010 log, headerless log, 2013 log (1 -> 3 recipients)
    rejects = pl.read_csv(out.with_name("rejects.csv"))
    assert rejects.select("source_line", "reason").rows() == [
        (3, "expected a date and time, got 'yesterday'"), (4, "expected 4 fields, got 2 fields")]
    assert rejects["raw"][1] == "'=cmd|calc,x"  # formula neutralized
    assert "2 rows skipped (see " in result.output


def test_read_unrecognized_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\nworld\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "analyzer", "read", str(path)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "mailflow: error: unrecognized input file: expected a message trace (CSV/JSON), message trace "
        "details, an EAC enhanced summary or extended report, an Exchange tracking log, a Postfix log or a "
        f"Defender EmailEvents export, got a first line starting 'hello' ({path}, line 1); hint: check that "
        "this is the exported file itself; see the README's list of formats\n")


def test_read_strict_stops_at_the_first_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    path.write_text('"Received","SenderAddress","RecipientAddress","Status"\r\n"13/13/2026 10:00","a","b","c"\r\n',
                    encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "analyzer", "read", "--strict", str(path)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert result.stderr == (
        f"mailflow: error: malformed row: expected a date and time (day/month/year in this file), got "
        f"'13/13/2026 10:00' ({path}, line 2); "
        "hint: fix or remove the row, or read without strict mode to skip it into the rejects file\n")
