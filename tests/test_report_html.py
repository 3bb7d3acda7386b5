"""report.html and summary.txt: sections and charts present, log strings escaped, nothing
fetched from the network, small, deterministic; and a real browser renders it."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
import subprocess
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from analyzer import _report
from analyzer.cli import main

REPO = Path(__file__).resolve().parent.parent
SECTIONS = ("overview", "findings", "connectors", "greylisting", "traffic", "unrouted", "open-relay", "configuration")
HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
TRACE_HEADER = '"Received","SenderAddress","RecipientAddress","Subject","Status","FromIP","ToIP","Size","MessageTraceId"\r\n'


@pytest.fixture(scope="module")
def sample_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "report"
    assert CliRunner().invoke(main, ["analyze", str(REPO / "sample_logs"), "--out", str(out)]).exit_code == 0
    return out


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tenant whose most frequent subject, a sender and a connector name are markup."""
    root = tmp_path_factory.mktemp("hostile")
    (root / "inbound.json").write_text(
        '[{"Name": "Relay <b>x</b>\\"><svg onload=alert(3)>", "Enabled": true, "ConnectorType": "OnPremises",'
        ' "SenderIPAddresses": ["198.51.100.10"]}]', encoding="utf-8")
    (root / "domains.json").write_text('[{"DomainName": "contoso.com", "DomainType": "Authoritative"}]')
    subject = HOSTILE.replace('"', '""')
    rows = "".join(f'"2026-11-20T10:{i:02d}:00","ceo@contoso.com","u{i}@contoso.com","{subject}","Delivered",'
                   f'"203.0.113.66","","100","id-{i}"\r\n' for i in range(5))
    (root / "trace.csv").write_text(TRACE_HEADER + rows, encoding="utf-8")
    out = root / "report"
    assert CliRunner().invoke(main, ["analyze", str(root), "--out", str(out)]).exit_code == 0
    return out


def test_every_section_and_chart_is_there(sample_report: Path) -> None:
    html = (sample_report / "report.html").read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f'<section id="{section}">' in html, section
    titles = re.findall(r"<svg [^>]*><title>([^<]*)</title>", html)
    assert titles[:2] == ["Messages per inbound connector", "Deferrals by source range and hour"]
    assert {"Messages by inbound connector", "Messages by direction"} <= set(titles)
    assert "deferrals of 203.0.113.40 per window" in titles  # the planted hot spot's timeline
    assert html.count('<span class="sev sev-high">high</span>') >= 3


class _Tags(HTMLParser):
    """Every start tag and its attributes, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def test_no_network_resource_references(sample_report: Path, hostile_report: Path) -> None:
    for out in (sample_report, hostile_report):
        html = (out / "report.html").read_text(encoding="utf-8")
        assert not re.search(r"(?:https?|ftp)://", html, re.IGNORECASE)
        assert "@import" not in html and "url(" not in html
        tags = _tags(html)
        assert {t for t, _ in tags} & {"script", "link", "img", "iframe", "object", "embed", "image", "use"} == set()
        for tag, attrs in tags:
            assert "src" not in attrs and "srcset" not in attrs, tag
            assert all(not k.startswith("on") for k in attrs), (tag, attrs)
            assert attrs.get("href", "#").startswith("#"), (tag, attrs)


def test_log_strings_are_escaped(hostile_report: Path) -> None:
    html = (hostile_report / "report.html").read_text(encoding="utf-8")
    assert "<script" not in html and "<img" not in html and "onerror=alert" not in html.replace(
        "onerror=alert(2)&gt;", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in html
    assert "Relay &lt;b&gt;x&lt;/b&gt;&#34;&gt;&lt;svg onload=alert(3)&gt;" in html
    assert "<svg onload" not in html


def test_summary_txt_is_plain_and_neutralizes_control_characters(tmp_path: Path, sample_report: Path) -> None:
    text = (sample_report / "summary.txt").read_text(encoding="utf-8")
    assert text.splitlines()[:4] == [
        "mailflow-analyzer report",
        "period: 2026-11-16T00:02:17+00:00 to 2026-11-22T23:46:17+00:00",
        "records: 1,836 (0 rows skipped, 79 duplicates)",
        "findings: 3 high, 7 medium, 1 low, 2 info",
    ]
    out = tmp_path / "copy"
    shutil.copytree(sample_report, out)
    findings = pl.read_parquet(out / "findings.parquet").with_columns(
        pl.lit("evil\x1b[31m\nINJECTED").alias("subject"))
    findings.write_parquet(out / "findings.parquet")
    _report.write(out)
    lines = (out / "summary.txt").read_text(encoding="utf-8").splitlines()
    assert not any(line.startswith("INJECTED") for line in lines)
    assert "evil?[31m?INJECTED" in lines[5]


def test_small_and_deterministic(sample_report: Path, tmp_path: Path) -> None:
    first = (sample_report / "report.html").read_bytes()
    assert len(first) < 2 * 2**20
    result = CliRunner().invoke(main, ["report", str(sample_report)])
    assert result.exit_code == 0, result.output
    assert (sample_report / "report.html").read_bytes() == first
    bad = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert bad.exit_code == 2 and "not a mailflow output folder" in bad.output


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(_chromium() is None, reason="no Chromium installed (CI installs Debian's chromium)")
def test_report_renders_in_a_real_browser(hostile_report: Path, sample_report: Path, tmp_path: Path) -> None:
    """Headless Chromium: the page renders, no console error, every section and chart is in the
    DOM, the injected markup stayed text (no element it would have created), screenshot saved."""
    browser = _chromium()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    artifacts = REPO / "artifacts"
    artifacts.mkdir(exist_ok=True)
    for name, out in (("report", sample_report), ("report-hostile", hostile_report)):
        url = (out / "report.html").as_uri()
        dom = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
        assert dom.returncode == 0, dom.stderr[-2000:]
        console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
        assert console == [], console
        for section in SECTIONS:
            assert f'id="{section}"' in dom.stdout, section
        assert dom.stdout.count("<svg") >= 3
        # the injected markup would have become elements or handlers: the live DOM has neither
        tags = _tags(dom.stdout)
        assert {t for t, _ in tags} & {"script", "img", "iframe"} == set()
        assert all(not k.startswith("on") for _, attrs in tags for k in attrs)
        if name == "report-hostile":
            assert "alert(1)" in dom.stdout  # shown, as text
        shot = artifacts / f"{name}.png"
        shot.unlink(missing_ok=True)
        done = subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1400,2600", url],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and shot.exists() and shot.stat().st_size > 10_000, done.stderr[-2000:]


def test_traffic_buckets_follow_the_summary_period(sample_report: Path) -> None:
    """Hourly buckets up to two weeks, daily beyond, decided on summary.json's period (the same
    records' first and last timestamps) or, without one, on the records themselves."""
    records = sample_report / "records"
    period = json.loads((sample_report / "summary.json").read_text())["period"]
    assert set(_report._traffic_counts(records, None, period)["direction"]["_every"]) == {"1h"}
    assert set(_report._traffic_counts(records)["direction"]["_every"]) == {"1h"}
    long = {"first": "2026-10-01T00:00:00+00:00", "last": period["last"]}
    assert set(_report._traffic_counts(records, None, long)["direction"]["_every"]) == {"1d"}


def test_top_subjects_count_distinct_messages_and_senders_across_days(tmp_path: Path) -> None:
    # "A": three messages (one logged on both days, one twice) from one sender; "B": two messages
    # from two senders; rows without a subject are not a subject. Distinct over the period.
    rows = [("2026-11-20", "A", "m1", "s1"), ("2026-11-20", "A", "m1", "s1"), ("2026-11-20", "A", "m2", "s1"),
            ("2026-11-21", "A", "m1", "s1"), ("2026-11-21", "A", "m3", "s1"),
            ("2026-11-20", "B", "m4", "s2"), ("2026-11-21", "B", "m5", "s3"),
            ("2026-11-21", None, "m6", "s4"), ("2026-11-21", None, "m7", "s5"), ("2026-11-21", None, "m8", "s6")]
    records = tmp_path / "records"
    for day in ("2026-11-20", "2026-11-21"):
        part = records / f"date={day}" / "part-00000000.parquet"
        part.parent.mkdir(parents=True)
        pl.DataFrame([r[1:] for r in rows if r[0] == day], schema=["subject", "message_key", "sender"],
                     orient="row").write_parquet(part)
    assert _report._subjects(records) == [{"subject": "A", "messages": 3, "senders": 1},
                                          {"subject": "B", "messages": 2, "senders": 2}]


def test_sections_list_the_largest_sources_and_count_the_rest(sample_report: Path, tmp_path: Path) -> None:
    """A large tenant has thousands of unrouted sources: a section lists `_MAX_ROWS` of them, by
    severity and then the largest first, and counts the rest, so the report stays small enough
    to mail; findings.json keeps them all."""
    out = tmp_path / "report"
    shutil.copytree(sample_report, out)
    findings = pl.read_parquet(out / "findings.parquet")
    template = findings.filter(pl.col("kind") == "unrouted_inbound").head(1)
    n = _report._MAX_ROWS + 37
    many = pl.concat([template.with_columns(pl.lit(f"192.0.2.{i % 250}-{i}").alias("subject"),
                                            pl.lit(10_000 + i, dtype=template.schema["count"]).alias("count"))
                      for i in range(n)])
    pl.concat([findings, many]).write_parquet(out / "findings.parquet")
    html = _report.render(out)
    section = html[html.index('<section id="unrouted">'):html.index('<section id="open-relay">')]
    shown = re.findall(r'<td class="mono">([^<]*)</td>', section)
    assert len(shown) == _report._MAX_ROWS
    planted = {f"192.0.2.{i % 250}-{i}": 10_000 + i for i in range(n)}
    # the sample's one medium direct-send finding first, then the planted (info) ones from the
    # largest down, all larger than the sample's own unrouted finding
    assert shown[0] not in planted
    assert [planted[s] for s in shown[1:]] == [10_000 + i for i in range(n - 1, n - _report._MAX_ROWS, -1)]
    rest = n + 2 - _report._MAX_ROWS  # the sample's own unrouted and direct-send findings too
    assert f"... and {rest:,} more in findings.json." in section
    assert len(html.encode()) < 2 * 2**20
