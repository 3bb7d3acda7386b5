"""Hostile and damaged inputs: the readers answer with an InputError or read what they can,
never another exception, and never drop a row silently."""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer import readers
from analyzer.errors import InputError

TRACE_HEADER = '"Received","SenderAddress","RecipientAddress","Subject","Status","FromIP","Size","MessageTraceId"\r\n'
TRACE_ROW = '"2026-11-20T10:15:02.1234567","a@fabrikam.com","b@contoso.com","Hi, there","Delivered","203.0.113.5","1234","{id}"\r\n'

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _outcome(path: Path) -> str:
    try:
        result = readers.ingest(path)
        result.frame.collect()
        result.rejects().collect()
        return "read"
    except InputError as exc:
        text = str(exc)
        assert "\n" not in text and str(path) in text
        return "error"


@SETTINGS
@given(data=st.binary(max_size=2048))
def test_random_bytes_never_crash(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "input.bin"
    path.write_bytes(data)
    assert _outcome(path) in ("read", "error")


@SETTINGS
@given(text=st.text(max_size=400), encoding=st.sampled_from(["utf-8", "utf-16-le", "utf-16", "cp1252"]))
def test_random_text_after_a_valid_header_never_crashes(tmp_path: Path, text: str, encoding: str) -> None:
    body = TRACE_HEADER + TRACE_ROW.format(id="x1") + text
    path = tmp_path / "trace.csv"
    path.write_bytes(body.encode(encoding, "replace"))
    assert _outcome(path) in ("read", "error")


@SETTINGS
@given(cut=st.integers(min_value=1, max_value=400))
def test_truncated_files_lose_no_row_silently(tmp_path: Path, cut: int) -> None:
    rows = "".join(TRACE_ROW.format(id=f"id{i}") for i in range(5))
    data = (TRACE_HEADER + rows).encode("utf-8")
    path = tmp_path / "trace.csv"
    path.write_bytes(data[: len(TRACE_HEADER) + cut])
    try:
        result = readers.ingest(path)
    except InputError:
        return
    report = result.files[0]
    # every record started in the file is kept or skipped (into the rejects), none vanishes
    # (no line breaks inside these rows: a record began wherever a line has at least one byte)
    started = sum(1 for line in data[len(TRACE_HEADER): len(TRACE_HEADER) + cut].split(b"\r\n") if line)
    assert report.rows_kept + report.rows_skipped == started
    assert result.rejects().collect().height == report.rows_skipped


def test_truncated_gzip_is_an_input_error(tmp_path: Path) -> None:
    data = gzip.compress((TRACE_HEADER + TRACE_ROW.format(id="a") * 2000).encode())
    path = tmp_path / "trace.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="unreadable gzip file: expected a complete gzip stream"):
        readers.ingest(path)


def test_formula_and_markup_subjects_are_kept_verbatim(tmp_path: Path) -> None:
    """Readers keep attacker-controlled text as data; escaping is the outputs' job."""
    path = tmp_path / "trace.csv"
    row = TRACE_ROW.replace("Hi, there", '=HYPERLINK(""http://x"")<script>alert(1)</script>').format(id="z")
    path.write_text(TRACE_HEADER + row, encoding="utf-8")
    subject = readers.read(path).collect()["subject"][0]
    assert subject == '=HYPERLINK("http://x")<script>alert(1)</script>'


def test_rejects_file_neutralizes_formulas(tmp_path: Path) -> None:
    from analyzer import _io

    path = tmp_path / "trace.csv"
    path.write_text(TRACE_HEADER + '=1+1,a,b,c,d,e,f\r\n', encoding="utf-8")
    result = readers.ingest(path)
    rejects = result.rejects().collect()
    assert rejects.height == 1
    out = tmp_path / "rejects.csv"
    _io.write_csv(rejects, out)
    written = pl.read_csv(out)
    assert written["raw"][0].startswith("'=")
