"""Readers: the real public samples and hand-written exports of every format, read into the
normalized table with exact values; per-file reports, rejects, exact error messages."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from analyzer import readers
from analyzer._text import TextSource
from analyzer.errors import InputError
from analyzer.readers import SCHEMA, Ingest, detect, ingest, read, unique_batches

DATA = Path(__file__).resolve().parent / "data" / "readers"
BAD = DATA / "bad"
UTC = dt.timezone.utc

#: The normalized table, written out here so a change to SCHEMA is a visible test change.
EXPECTED_SCHEMA: dict[str, pl.DataType] = {
    "timestamp": pl.Datetime("us", "UTC"),
    "source_format": pl.String(),
    "direction": pl.String(),
    "event": pl.String(),
    "status": pl.String(),
    "client_ip": pl.String(),
    "server_ip": pl.String(),
    "sender": pl.String(),
    "sender_domain": pl.String(),
    "recipient": pl.String(),
    "recipient_domain": pl.String(),
    "message_id": pl.String(),
    "message_key": pl.String(),
    "subject": pl.String(),
    "size_bytes": pl.Int64(),
    "connector_name": pl.String(),
    "smtp_response": pl.String(),
    "smtp_code": pl.Int16(),
    "enhanced_code": pl.String(),
    "ms_code": pl.String(),
    "throttled_ip": pl.String(),
    "source_file": pl.String(),
    "source_line": pl.Int64(),
}

EXPECTED_FORMATS = ("a message trace (CSV/JSON), message trace details, an EAC enhanced summary or "
                    "extended report, an Exchange tracking log, a Postfix log or a Defender EmailEvents export")
STRICT_HINT = "fix or remove the row, or read without strict mode to skip it into the rejects file"


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def rec(fmt: str, path: Path, line: int, **values: Any) -> dict[str, Any]:
    """An expected record: every column, null unless given."""
    unknown = set(values) - set(EXPECTED_SCHEMA)
    assert not unknown, unknown
    row = {name: None for name in EXPECTED_SCHEMA}
    row.update(values, source_format=fmt, source_file=str(path), source_line=line)
    return row


def check_schema(frame: pl.LazyFrame | pl.DataFrame) -> None:
    schema = frame.collect_schema() if isinstance(frame, pl.LazyFrame) else frame.schema
    assert list(schema.items()) == list(EXPECTED_SCHEMA.items())


def load(paths: Any, **options: Any) -> tuple[pl.DataFrame, Ingest]:
    """Ingest, check the lazy and collected schemas, return the records and the Ingest."""
    result = ingest(paths, **options)
    assert isinstance(result.frame, pl.LazyFrame)
    check_schema(result.frame)
    frame = result.frame.collect()
    check_schema(frame)
    return frame, result


def report(result: Ingest, index: int = 0) -> dict[str, Any]:
    """One file's report without rows_ignored (checked on its own, see the comment-line tests)."""
    f = result.files[index]
    return {"path": f.path, "format": f.format, "encoding": f.encoding, "compressed": f.compressed,
            "rows_read": f.rows_read, "rows_kept": f.rows_kept, "rows_skipped": f.rows_skipped,
            "notes": f.notes}


def expect_report(path: Path, fmt: str, encoding: str, read_: int, kept: int, skipped: int = 0,
                  notes: list[str] | None = None, compressed: bool = False) -> dict[str, Any]:
    return {"path": str(path), "format": fmt, "encoding": encoding, "compressed": compressed,
            "rows_read": read_, "rows_kept": kept, "rows_skipped": skipped, "notes": notes or []}


def rejects(result: Ingest) -> list[dict[str, Any]]:
    return result.rejects().collect().sort("source_file", "source_line").to_dicts()


def error_text(paths: Any, **options: Any) -> str:
    with pytest.raises(InputError) as info:
        ingest(paths, **options)
    return str(info.value)


# =========================================================================== the normalized table


def test_schema_constant_is_the_documented_table():
    assert list(SCHEMA.items()) == list(EXPECTED_SCHEMA.items())


def test_read_returns_a_lazyframe_with_the_schema():
    frame = read(DATA / "trace_v2_en-US.csv")
    assert isinstance(frame, pl.LazyFrame)
    check_schema(frame)
    check_schema(frame.collect())


def test_empty_directory_gives_an_empty_table_and_no_reports(tmp_path):
    empty = tmp_path / "exports"
    empty.mkdir()
    frame, result = load(empty)
    assert frame.height == 0
    assert result.files == []
    assert result.totals().height == 0
    assert result.rejects().collect().height == 0
    check_schema(read(empty))


# =========================================================================== real samples: message trace


def test_real_exo_trace_ndjson_with_6_and_7_fraction_digits(shared_data):
    path = shared_data / "exo_message_trace" / "elastic_exo_message_trace_sample_logs.ndjson.log"
    frame, result = load(path)
    common = {"direction": "inbound", "event": "deliver", "status": "Delivered",
              "sender": "noreply@azure.microsoft.com", "sender_domain": "azure.microsoft.com",
              "recipient": "linus@contoso.com", "recipient_domain": "contoso.com"}
    assert frame.to_dicts() == [
        rec("exo_trace", path, 1, timestamp=at(2022, 10, 21, 17, 25, 36, 969376), client_ip="40.107.23.54",
            message_id="<GVAP278MB037586A65EF1FB2F844B0258DA2D9@GVAP278MB0375.CHEP278.PROD.OUTLOOK.COM>",
            message_key="a5e6dc0f-23df-4b20-d240-08dab38944a1", subject="testmail 2", size_bytes=22761,
            **common),
        rec("exo_trace", path, 2, timestamp=at(2022, 10, 21, 17, 25, 30, 600688), client_ip="40.107.23.81",
            message_id="<GVAP278MB037518E76F4082DFE9B607B3DA2D9@GVAP278MB0375.CHEP278.PROD.OUTLOOK.COM>",
            message_key="a6f62809-5cda-4454-0962-08dab38940d6", subject="testmail 1", size_bytes=22704,
            **common),
    ]
    assert report(result) == expect_report(path, "exo_trace", "utf-8", 2, 2)
    assert result.files[0].rows_ignored == 0


def test_real_exo_trace_without_z_suffix_and_both_ips(shared_data):
    path = shared_data / "exo_message_trace" / "elastic_exo_message_trace_test-log.log"
    frame, result = load(path)
    # "2022-09-05T18:10:13.4907658": UTC without Z, 7 digits truncated to microseconds.
    # ToIP (the destination MX) is only set on outbound mail.
    assert frame.to_dicts() == [
        rec("exo_trace", path, 1, timestamp=at(2022, 9, 5, 18, 10, 13, 490765), direction="outbound",
            event="deliver", status="Delivered", client_ip="81.2.69.144", server_ip="216.160.83.56",
            sender="azure-noreply@microsoft.com", sender_domain="microsoft.com",
            recipient="linus@wildsecurity.onmicrosoft.com", recipient_domain="wildsecurity.onmicrosoft.com",
            message_id="<a210cf91-4f2e-484c-8ada-3b27064ee5e3@az.uksouth.production.microsoft.com>",
            message_key="cf7a249a-5edd-4350-130a-08da8f69e0f6",
            subject="PIM: A privileged directory role was assigned outside of PIM", size_bytes=87891),
    ]
    assert report(result) == expect_report(path, "exo_trace", "utf-8", 1, 1)


def test_real_sekoia_wrapper_with_odata_date(shared_data):
    path = shared_data / "exo_message_trace" / "sekoia_messagetrace.json"
    frame, result = load(path)
    assert frame.to_dicts() == [
        rec("exo_trace", path, 1, timestamp=at(2022, 7, 25, 12, 26, 13, 240000), direction="inbound",
            event="other", status="GettingStatus", client_ip="1.1.1.1",
            sender="azure-noreply@microsoft.com", sender_domain="microsoft.com",
            recipient="foo.bar@example.corp", recipient_domain="example.corp",
            message_id="<3a273efc-cd65-4335-96ec-5f6934f0fb10@az.uksouth.production.microsoft.com>",
            message_key="3b4fc661-180d-4c2f-60c9-08da6e38dd10",
            subject="PIM: MessageTrace API service account has the Privileged Role Administrator role",
            size_bytes=87680),
    ]
    assert report(result) == expect_report(path, "exo_trace", "utf-8", 1, 1)


def test_real_sekoia_wrapper_with_nulls_and_zero_size(shared_data):
    path = shared_data / "exo_message_trace" / "sekoia_messagetrace2.json"
    frame, result = load(path)
    assert frame.to_dicts() == [
        rec("exo_trace", path, 1, timestamp=at(2022, 8, 24, 12, 43, 12, 170000), direction="unknown",
            event="deliver", status="Delivered", sender="support@abc.com", sender_domain="abc.com",
            recipient="user@abc.fr", recipient_domain="abc.fr", message_id="<123456@abc-prod2.mcc-soft.com>",
            message_key="1203cd7a-18d5-4a92-4343-08da85ce34c9", subject=None, size_bytes=0),
    ]
    assert report(result) == expect_report(path, "exo_trace", "utf-8", 1, 1)


def test_real_odata_page_records_keep_their_lines(shared_data):
    path = shared_data / "exo_message_trace" / "sumologic_reportingws_messagetrace_sample.json"
    frame, result = load(path)
    common = {"direction": "inbound", "event": "deliver", "status": "Delivered",
              "sender": "azure-noreply@microsoft.com", "sender_domain": "microsoft.com",
              "recipient_domain": "org.onmicrosoft.com", "subject": "Azure AD Identity Protection Weekly Digest"}
    assert frame.to_dicts() == [
        rec("exo_trace", path, 4, timestamp=at(2022, 11, 29, 5, 35, 8, 265237), client_ip="20.97.34.221",
            recipient="ebenzoni@org.onmicrosoft.com",
            message_id="<233af449-87f6-4902-bcf5-77838a4e7603@az.southcentralus.unknown.microsoft.com>",
            message_key="aa1a3e28-8967-4bfb-06d3-08dad1cb7a0e", size_bytes=145153, **common),
        rec("exo_trace", path, 20, timestamp=at(2022, 11, 29, 5, 35, 7, 745056), client_ip="20.97.34.221",
            recipient="lmilby@org.onmicrosoft.com",
            message_id="<c41de266-153b-487c-a142-618d99505b38@az.southcentralus.unknown.microsoft.com>",
            message_key="0c1d5652-d2eb-496c-a741-08dad1cb79be", size_bytes=144900, **common),
        rec("exo_trace", path, 36, timestamp=at(2022, 11, 29, 5, 35, 7, 282827), client_ip="20.51.6.33",
            recipient="sumo-apps@org.onmicrosoft.com",
            message_id="<072e0c5d-66d0-40ac-a376-52b11344255a@az.northcentralus.unknown.microsoft.com>",
            message_key="4d68a1db-9375-4ae8-1f6f-08dad1cb7978", size_bytes=145123, **common),
    ]
    assert report(result) == expect_report(path, "exo_trace", "utf-8", 3, 3)


def test_real_message_trace_folder_in_one_call(shared_data):
    frame, result = load(shared_data / "exo_message_trace")
    assert frame.height == 8
    assert [Path(f.path).name for f in result.files] == [
        "elastic_exo_message_trace_sample_logs.ndjson.log", "elastic_exo_message_trace_test-log.log",
        "sekoia_messagetrace.json", "sekoia_messagetrace2.json", "sumologic_reportingws_messagetrace_sample.json"]
    assert result.totals()["duplicates"].to_list() == [0, 0, 0, 0, 0]


# =========================================================================== real samples: tracking logs


def test_real_headerless_30_field_tracking_log(shared_data):
    path = shared_data / "exchange_server_msgtrk" / "elastic_exchange_server_test-messagetracking.log"
    frame, result = load(path)
    vzdump = "vzdump backup status ({}): backup successful"
    assert frame.to_dicts() == [
        rec("msgtrk", path, 1, timestamp=at(2024, 1, 25, 15, 16, 9, 843000), direction="inbound", event="other",
            status="HAREDIRECTFAIL", sender="mailer-daemon@host01.my.domain.com",
            sender_domain="host01.my.domain.com", recipient="mailuser@my.domain.com",
            recipient_domain="my.domain.com", message_id="<20240124222112.B4AE1234EF@host01.my.domain.com>",
            message_key="2fd37dca-1234-5bfb-175d-08dc1db88f52", subject="Undelivered Mail Returned to Sender",
            size_bytes=15054),
        rec("msgtrk", path, 2, timestamp=at(2024, 1, 25, 15, 16, 9, 949000), direction="inbound", event="receive",
            status="RECEIVE", client_ip="10.11.12.13", server_ip="10.11.12.14",
            sender="root@host01.my.domain.com", sender_domain="host01.my.domain.com",
            recipient="mailuser@my.domain.com", recipient_domain="my.domain.com",
            message_id="<20240123200014.123F425E28@host01.my.domain.com>",
            message_key="1e6eb197-c6b4-1234-1b69-56dc1db88f50", subject=vzdump.format("host01.my.domain.com"),
            size_bytes=7229, connector_name="exchange-mail\\Default exchange-mail"),
        rec("msgtrk", path, 3, timestamp=at(2024, 1, 25, 15, 16, 14, 415000), direction="inbound", event="receive",
            status="RECEIVE", client_ip="10.11.12.15", server_ip="10.11.12.14",
            sender="root@pve-vhost01.my.domain.com", sender_domain="pve-vhost01.my.domain.com",
            recipient="mailuser@my.domain.com", recipient_domain="my.domain.com",
            message_id="<20240123200018.123C42553@pve-vhost01.my.domain.com>",
            message_key="c95b5dd1-f520-1234-e6dc-56dc1db8914d", subject=vzdump.format("pve-vhost01.my.domain.com"),
            size_bytes=8251, connector_name="exchange-mail\\Default exchange-mail"),
        rec("msgtrk", path, 4, timestamp=at(2024, 1, 7, 0, 0, 7, 463000), direction="outbound", event="send",
            status="SEND", client_ip="192.168.0.1", server_ip="192.168.0.2", sender="support@example.com",
            sender_domain="example.com", recipient="uwe.musterman@example.com", recipient_domain="example.com",
            message_id="20240107001234.567E6224C8@monitor.example.com",
            message_key="0b7099ea-cb95-1234-328e-08dc5f139ac8", subject="ein Titel", size_bytes=38663,
            connector_name="Intra-Organization SMTP Send Connector",
            # "2.1.5Recipient": an enhanced code must end at a non-word character
            smtp_response="250 2.1.5Recipient OK", smtp_code=250),
        rec("msgtrk", path, 5, timestamp=at(2025, 1, 14, 9, 29, 5, 327000), direction="inbound", event="send",
            status="SENDEXTERNAL", client_ip="216.160.83.56", server_ip="175.16.199.1",
            recipient="email@email.com", recipient_domain="email.com",
            message_id="<1736846922.907742.2942@foo.bar.local>", message_key="cb1ce4e7-cbb6-46e8-8a4c-e1f2efbdd202",
            subject="John Doe", size_bytes=136349,
            connector_name="Outbound to Office 365 - cb1ce4e7-cbb6-46e8-8a4c-e1f2efbdd202",
            smtp_response="250 2.1.5 Recipient OK", smtp_code=250, enhanced_code="2.1.5"),
        rec("msgtrk", path, 6, timestamp=at(2025, 1, 14, 9, 28, 39, 334000), direction="unknown", event="other",
            status="NOTIFYMAPI", client_ip="2a02:cf40::1234:5678:9abc", sender="email@email.com",
            sender_domain="email.com"),
    ]
    assert report(result) == expect_report(path, "msgtrk", "utf-8", 6, 6,
                                           notes=["no #Fields line: assumed the 30 fields of Exchange 2013+"])


def test_real_exchange_2010_log_with_26_fields_and_bom(shared_data):
    path = shared_data / "exchange_server_msgtrk" / "beats_MSGTRK_exchange2010_utf8bom.LOG"
    frame, result = load(path)
    assert frame.to_dicts() == [
        rec("msgtrk", path, 6, timestamp=at(2016, 4, 5, 0, 0, 2, 52000), direction="unknown", event="other",
            status="NOTIFYMAPI"),
        rec("msgtrk", path, 7, timestamp=at(2016, 4, 5, 0, 0, 2, 145000), direction="unknown", event="other",
            status="NOTIFYMAPI"),
    ]
    assert report(result) == expect_report(path, "msgtrk", "utf-8", 2, 2)


def test_real_exchange_2013_log_splits_joined_recipients(shared_data):
    path = shared_data / "exchange_server_msgtrk" / "kinesistap_MSGTRK_exchange2013_amazon.LOG"
    frame, result = load(path)
    common = {"direction": "inbound", "event": "other", "sender": "apollo@amazon.com", "sender_domain": "amazon.com",
              "recipient_domain": "amazon.com",
              "message_id": ("<1028007174.22872.1495474412586.JavaMail.apollo@apollo-adaws-onebox-acc-1a-4c722f6e"
                             ".us-east-1.amazon.com>"),
              "message_key": "13fad5b7-39c5-46e7-130e-08d4a138ac67",
              "subject": "Started JlbRelayShortCircuit/us-west-2/PDX1/Prod deployment"}
    redirect = dict(timestamp=at(2017, 5, 22, 17, 33, 35, 695000), status="HAREDIRECT", size_bytes=7312, **common)
    assert frame.to_dicts() == [
        rec("msgtrk", path, 6, timestamp=at(2017, 5, 22, 17, 33, 35, 632000), status="AGENTINFO",
            client_ip="10.25.10.214", recipient="bryanson@amazon.com", size_bytes=7631, **common),
        rec("msgtrk", path, 7, recipient="abannert@amazon.com", **redirect),
        rec("msgtrk", path, 7, recipient="bryanson@amazon.com", **redirect),
        rec("msgtrk", path, 7, recipient="zihoncao@amazon.com", **redirect),
    ]
    assert report(result) == expect_report(path, "msgtrk", "utf-8", 2, 4)


# =========================================================================== real samples: Defender


def test_real_defender_stream_ignores_other_tables(shared_data):
    path = shared_data / "defender_emailevents" / "elastic_m365_defender_test-email.log"
    frame, result = load(path)
    assert frame.to_dicts() == [
        rec("emailevents", path, 2, timestamp=at(2022, 11, 22, 6, 19, 40), direction="internal", event="deliver",
            status="Delivered", client_ip="81.2.69.144", sender="user@testmsftalerts.onmicrosoft.com",
            sender_domain="testmsftalerts.onmicrosoft.com", recipient="user@testmsftalerts.onmicrosoft.com",
            recipient_domain="testmsftalerts.onmicrosoft.com",
            # the sample double-escapes the angle brackets: the value holds a literal backslash-u
            message_id="\\u003codspmicro-Share-aa027ba0-90b4-2000-ba44-ea7a298163ce-f7f97e88-ecd5-492d-b91f-"
                       "d7e29a01d0d4-a5747f2a-025d-46a4-8e3c-c6bf4a2c53b9@8956DAA12345\\u003e",
            message_key="a194a8a6-d97c-4be1-ae31-08dacc512345",
            subject='test shared "Test URL Click Document " with you.'),
    ]
    assert report(result) == expect_report(path, "emailevents", "utf-8", 1, 1)
    assert result.files[0].rows_ignored == 4
    assert result.totals().row(0, named=True)["rows_ignored"] == 4


@pytest.mark.parametrize(("name", "stamp", "sender", "domain"), [
    ("sekoia_test_email_delivered.json", at(2024, 10, 28, 14, 18, 40), "john.doe@company.com", "company.com"),
    ("sekoia_test_email_delivered2.json", at(2024, 10, 28, 14, 18, 38), "john.doe@test.fr", "test.fr"),
])
def test_real_defender_sekoia_records_with_connector(shared_data, name, stamp, sender, domain):
    path = shared_data / "defender_emailevents" / name
    frame, result = load(path)
    assert frame.to_dicts() == [
        rec("emailevents", path, 1, timestamp=stamp, direction="inbound", event="deliver", status="Delivered",
            client_ip="1.1.1.1", sender=sender, sender_domain=domain, recipient="anonymized",
            message_id="ANONYMIZED", message_key="11111111-1111-1111-1111-111111111111", subject="ANONYMIZED",
            connector_name="Relai SMTP interne"),
    ]
    assert report(result) == expect_report(path, "emailevents", "utf-8", 1, 1)


@pytest.mark.parametrize(("folder", "name", "fmt"), [
    ("exo_message_trace", "elastic_exo_message_trace_sample_logs.ndjson.log", "exo_trace"),
    ("exo_message_trace", "elastic_exo_message_trace_test-log.log", "exo_trace"),
    ("exo_message_trace", "sekoia_messagetrace.json", "exo_trace"),
    ("exo_message_trace", "sekoia_messagetrace2.json", "exo_trace"),
    ("exo_message_trace", "sumologic_reportingws_messagetrace_sample.json", "exo_trace"),
    ("exchange_server_msgtrk", "beats_MSGTRK_exchange2010_utf8bom.LOG", "msgtrk"),
    ("exchange_server_msgtrk", "elastic_exchange_server_test-messagetracking.log", "msgtrk"),
    ("exchange_server_msgtrk", "kinesistap_MSGTRK_exchange2013_amazon.LOG", "msgtrk"),
    ("defender_emailevents", "elastic_m365_defender_test-email.log", "emailevents"),
    ("defender_emailevents", "sekoia_test_email_delivered.json", "emailevents"),
    ("defender_emailevents", "sekoia_test_email_delivered2.json", "emailevents"),
])
def test_detect_real_samples(shared_data, folder, name, fmt):
    assert detect(shared_data / folder / name) == fmt


# =========================================================================== hand-written: trace CSV


def _en_us_rows(path: Path, first_subject: str) -> list[dict[str, Any]]:
    f = "exo_trace"
    return [
        rec(f, path, 3, timestamp=at(2025, 3, 7, 14, 5, 9), direction="outbound", event="deliver", status="Delivered",
            server_ip="198.51.100.7", sender="anna.berg@contoso.com", sender_domain="contoso.com",
            recipient="orders@fabrikam.com", recipient_domain="fabrikam.com",
            message_id="<PH0PR11MB4966A1B2C3D4E5F6@PH0PR11MB4966.namprd11.prod.outlook.com>",
            message_key="5c6e3f0a-1b2c-4d5e-8f90-08dd5d1a2b3c", subject=first_subject, size_bytes=24576),
        rec(f, path, 4, timestamp=at(2025, 3, 7, 9, 41, 57), direction="inbound", event="deliver", status="Delivered",
            client_ip="203.0.113.25", sender="scanner@contoso.com", sender_domain="contoso.com",
            recipient="anna.berg@contoso.com", recipient_domain="contoso.com",
            message_id="<20250307094157.4F1A22C0@mx1.contoso.local>",
            message_key="0d4b8e21-7a3c-4f6d-9e12-08dd5d0f7c81", subject="Scan from MFP-2F", size_bytes=183412),
        rec(f, path, 5, timestamp=at(2025, 3, 8, 0, 15, 0), direction="inbound", event="deliver",
            status="FilteredAsSpam", client_ip="2001:db8::25", sender="j.doe@gmail.com", sender_domain="gmail.com",
            recipient="anna.berg@contoso.com", recipient_domain="contoso.com",
            message_id="<CAB7xQ9k2+Lp@mail.gmail.com>", message_key="9a8f7e6d-5c4b-4a39-b281-08dd5e2f0a11",
            subject="Re: Purchase order 4711", size_bytes=5120),
        rec(f, path, 6, timestamp=at(2025, 3, 13, 12, 30, 45), direction="outbound", event="defer", status="Pending",
            server_ip="192.0.2.40", sender="anna.berg@contoso.com", sender_domain="contoso.com",
            recipient="it@northwind.example", recipient_domain="northwind.example",
            message_id="<PH0PR11MB4966F0E1D2C3B4A5@PH0PR11MB4966.namprd11.prod.outlook.com>",
            message_key="e1f2a3b4-c5d6-4e7f-8091-08dd5f3a4b5c", subject="Printer offline", size_bytes=10240),
    ]


def test_trace_v2_windows_powershell_en_us_with_type_line():
    path = DATA / "trace_v2_en-US.csv"
    frame, result = load(path)
    assert frame.to_dicts() == _en_us_rows(path, "Purchase order 4711")
    assert report(result) == expect_report(path, "exo_trace", "utf-8", 4, 4,
                                           notes=["dates read as month/day/year (decided from the data)"])


def test_trace_v2_de_de_cp1252_same_data():
    path = DATA / "trace_v2_de-DE_cp1252.csv"
    frame, result = load(path)
    assert frame.to_dicts() == _en_us_rows(path, "Bestellbestätigung 4711")
    assert report(result) == expect_report(path, "exo_trace", "cp1252", 4, 4,
                                           notes=["dates read as day/month/year (decided from the data)"])


def test_trace_fr_fr_day_above_12_decides_day_first():
    path = DATA / "trace_fr-FR.csv"
    frame, result = load(path)
    assert frame.to_dicts() == [
        rec("exo_trace", path, 2, timestamp=at(2025, 3, 4, 17, 45, 0), direction="outbound", event="deliver",
            status="Delivered", server_ip="198.51.100.8", sender="claire.martin@contoso.fr",
            sender_domain="contoso.fr", recipient="jean.dupont@fabrikam.fr", recipient_domain="fabrikam.fr",
            message_id="<PR1P264MB3512C0FFEE01@PR1P264MB3512.FRAP264.PROD.OUTLOOK.COM>",
            message_key="3e2d1c0b-a9f8-4e7d-96c5-08dd5b0a1b2c", subject="Réunion budget T2", size_bytes=48213),
        rec("exo_trace", path, 3, timestamp=at(2025, 3, 13, 8, 2, 11), direction="inbound", event="deliver",
            status="Delivered", client_ip="54.240.7.14", sender="noreply@notifications.example.com",
            sender_domain="notifications.example.com", recipient="claire.martin@contoso.fr",
            recipient_domain="contoso.fr", message_id="<0102019583a1b2c3-d4e5f6a7@eu-west-1.amazonses.com>",
            message_key="7b6a5948-3726-4150-8f9e-08dd620c1d2e", subject="Votre facture est disponible",
            size_bytes=15876),
    ]
    assert report(result) == expect_report(path, "exo_trace", "utf-8", 2, 2,
                                           notes=["dates read as day/month/year (decided from the data)"])


def test_trace_en_gb_ambiguous_dates_assumed_day_first_and_said_so():
    path = DATA / "trace_en-GB_ambiguous.csv"
    frame, result = load(path)
    assert frame["timestamp"].to_list() == [at(2025, 3, 5, 14, 5, 9), at(2025, 3, 7, 9, 41, 57)]
    assert result.files[0].notes == [
        "dates read as day/month/year (ambiguous: no day above 12; assumed from the 24-hour clock (en-GB/fr-FR))"]


def test_date_order_option_overrides_the_assumption():
    path = DATA / "trace_en-GB_ambiguous.csv"
    frame, result = load(path, date_order="mdy")
    assert frame["timestamp"].to_list() == [at(2025, 5, 3, 14, 5, 9), at(2025, 7, 3, 9, 41, 57)]
    assert result.files[0].notes == ["dates read as month/day/year (date_order option)"]


def test_trace_utf16be_bom_subset_of_columns_in_another_order():
    path = DATA / "trace_utf16be_bom.csv"
    frame, result = load(path)
    assert frame.to_dicts() == [
        rec("exo_trace", path, 2, timestamp=at(2025, 3, 7, 14, 5, 9, 490765), direction="outbound", event="deliver",
            status="Delivered", server_ip="198.51.100.7", sender="anna.berg@contoso.com", sender_domain="contoso.com",
            recipient="orders@fabrikam.com", recipient_domain="fabrikam.com",
            message_id="<PH0PR11MB4966A1B2C3D4E5F6@PH0PR11MB4966.namprd11.prod.outlook.com>",
            message_key="5c6e3f0a-1b2c-4d5e-8f90-08dd5d1a2b3c", subject="Purchase order 4711", size_bytes=24576),
        rec("exo_trace", path, 3, timestamp=at(2025, 3, 7, 15, 30, 0), direction="inbound", event="fail",
            status="Failed", client_ip="203.0.113.25", sender="alerts@fabrikam.com", sender_domain="fabrikam.com",
            recipient="anna.berg@contoso.com", recipient_domain="contoso.com", message_id="<alerts-77@fabrikam.com>",
            message_key="f0e1d2c3-b4a5-4968-8776-08dd5d1b3c4d", subject="Status update", size_bytes=0),
    ]
    assert report(result) == expect_report(path, "exo_trace", "utf-16-be", 2, 2)


def test_gzip_trace_csv():
    path = DATA / "trace_ps7.csv.gz"
    frame, result = load(path)
    assert frame.select("timestamp", "direction", "status", "client_ip", "server_ip", "recipient",
                        "size_bytes", "source_line").rows() == [
        (at(2025, 3, 9, 8, 0, 0, 123456), "outbound", "Delivered", None, "198.51.100.7", "sales@fabrikam.com", 9216, 2),
        (at(2025, 3, 9, 20, 0, 5), "inbound", "FilteredAsSpam", "198.51.100.23", None, "anna.berg@contoso.com",
         77810, 3),
    ]
    assert report(result) == expect_report(path, "exo_trace", "utf-8", 2, 2, compressed=True)
    assert detect(path) == "exo_trace"


def test_comment_lines_are_counted_as_ignored(shared_data):
    # FileReport.rows_ignored: "lines that are not records of this format (... comment lines)"
    result = ingest([DATA / "trace_v2_en-US.csv", DATA / "MSGTRK2025030714-1.LOG",
                     shared_data / "exchange_server_msgtrk" / "beats_MSGTRK_exchange2010_utf8bom.LOG"])
    assert [f.rows_ignored for f in result.files] == [1, 5, 5]


# =========================================================================== hand-written: EAC reports


def test_eac_extended_utf16le_without_bom_multiline_subject():
    path = DATA / "eac_extended_utf16le_nobom.csv"
    frame, result = load(path)
    f = "exo_extended"
    quote = {"sender": "m.jansen@partner.example", "sender_domain": "partner.example",
             "recipient": "anna.berg@contoso.com", "recipient_domain": "contoso.com",
             "message_id": "<AS8PR04MB8819E2A1@AS8PR04MB8819.eurprd04.prod.outlook.com>",
             "message_key": "0d4b8e21-7a3c-4f6d-9e12-08dd5d0f7c81", "size_bytes": 58123, "direction": "inbound"}
    assert frame.to_dicts() == [
        rec(f, path, 2, timestamp=at(2025, 3, 7, 14, 5, 10, 456000), direction="inbound", event="deliver",
            status="DELIVER", client_ip="203.0.113.25", sender="billing@fabrikam.com", sender_domain="fabrikam.com",
            recipient="anna.berg@contoso.com", recipient_domain="contoso.com", message_id="<inv-2025-03@fabrikam.com>",
            message_key="6c1f2e3d-4b5a-4c69-8d7e-08dd5d1a2b3c", subject="Invoice March", size_bytes=35210),
        rec(f, path, 3, timestamp=at(2025, 3, 7, 9, 41, 57, 120000), event="receive", status="RECEIVE",
            client_ip="2a01:111:f403:2c14::700", server_ip="2603:10a6:20b:4c8::16",
            subject='Quote, rev. 2: "final" version,\r\nplease review',
            connector_name="AM6PR02MB1234\\Default AM6PR02MB1234", **quote),
        # the record after the two-line subject starts on line 5; its client is CIP= of custom_data
        rec(f, path, 5, timestamp=at(2025, 3, 7, 9, 41, 57, 350000), event="other", status="AGENTINFO",
            client_ip="98.129.140.74", **quote),
        rec(f, path, 6, timestamp=at(2025, 3, 7, 14, 20, 0), direction="outbound", event="defer", status="DEFER",
            client_ip="10.20.30.5", server_ip="192.0.2.40", sender="anna.berg@contoso.com",
            sender_domain="contoso.com", recipient="it@northwind.example", recipient_domain="northwind.example",
            message_id="<PH0PR11MB4966F0E1D2C3B4A5@PH0PR11MB4966.namprd11.prod.outlook.com>",
            message_key="e1f2a3b4-c5d6-4e7f-8091-08dd5f3a4b5c", subject="Printer offline", size_bytes=10240,
            connector_name="Outbound to Northwind",
            smtp_response="450 4.4.316 Connection refused [Message=Socket error code 10061] "
                          "[LastAttemptedServerName=mx.northwind.example] [LastAttemptedIP=192.0.2.40:25]",
            smtp_code=450, enhanced_code="4.4.316"),
    ]
    assert report(result) == expect_report(path, "exo_extended", "utf-16-le", 4, 4)


def test_eac_enhanced_summary_one_row_per_packed_recipient():
    path = DATA / "eac_enhanced_summary_utf16le_bom.csv"
    frame, result = load(path)
    f = "exo_enhanced_summary"
    invoice = {"timestamp": at(2025, 3, 7, 14, 5, 9, 687000), "direction": "inbound", "client_ip": "203.0.113.25",
               "sender": "billing@fabrikam.com", "sender_domain": "fabrikam.com", "recipient_domain": "contoso.com",
               "message_id": "<inv-2025-03@fabrikam.com>", "message_key": "6c1f2e3d-4b5a-4c69-8d7e-08dd5d1a2b3c",
               "subject": "Invoice March", "size_bytes": 35210, "connector_name": "Partner Inbound - Fabrikam"}
    assert frame.to_dicts() == [
        rec(f, path, 2, event="deliver", status="Receive, Deliver", recipient="anna.berg@contoso.com", **invoice),
        rec(f, path, 2, event="fail", status="Receive, Fail", recipient="bob.li@contoso.com", **invoice),
        rec(f, path, 3, timestamp=at(2025, 3, 7, 9, 41, 57), direction="outbound", event="send",
            status="Receive, Send", client_ip="10.20.30.5", sender="anna.berg@contoso.com",
            sender_domain="contoso.com", recipient="orders@fabrikam.com", recipient_domain="fabrikam.com",
            message_id="<PH0PR11MB4966A1B2C3D4E5F6@PH0PR11MB4966.namprd11.prod.outlook.com>",
            message_key="5c6e3f0a-1b2c-4d5e-8f90-08dd5d1a2b3c", subject="Purchase order 4711", size_bytes=24576,
            connector_name="Outbound to Fabrikam"),
    ]
    assert report(result) == expect_report(path, "exo_enhanced_summary", "utf-16-le", 2, 3)


# =========================================================================== hand-written: details, JSON


def test_trace_detail_defer_event_codes_and_mep_connector():
    path = DATA / "trace_detail.csv"
    frame, result = load(path)
    f = "exo_trace_detail"
    msg = {"direction": "unknown", "sender": "erp@contoso.com", "sender_domain": "contoso.com",
           "recipient": "orders@fabrikam.com", "recipient_domain": "fabrikam.com",
           "message_id": "<20250317091500.7C3D22A1@erp.contoso.local>",
           "message_key": "c4d5e6f7-a8b9-4c0d-9e1f-08dd6531a2b3"}
    assert frame.to_dicts() == [
        rec(f, path, 2, timestamp=at(2025, 3, 17, 9, 15, 2), event="receive", status="Receive",
            client_ip="203.0.113.25", connector_name="Partner Inbound",
            smtp_response="Message received by: AM6PR02MB1234.eurprd02.prod.outlook.com using TLS1.2 with AES256",
            **msg),
        rec(f, path, 3, timestamp=at(2025, 3, 17, 9, 15, 4), event="defer", status="Defer", server_ip="52.101.8.42",
            connector_name="Partner Inbound",
            smtp_response="451 4.7.500 Server busy. Please try again later from [203.0.113.25]. (AS761)",
            smtp_code=451, enhanced_code="4.7.500", ms_code="AS761", throttled_ip="203.0.113.25", **msg),
        rec(f, path, 4, timestamp=at(2025, 3, 17, 9, 20, 33), event="deliver", status="Deliver",
            smtp_response="The message was successfully delivered.", **msg),
    ]
    assert report(result) == expect_report(path, "exo_trace_detail", "utf-8", 3, 3,
                                           notes=["dates read as month/day/year (decided from the data)"])


def _trace_json_rows(path: Path, lines: tuple[int, int]) -> list[dict[str, Any]]:
    return [
        rec("exo_trace", path, lines[0], timestamp=at(2025, 3, 7, 14, 5, 9, 490000), direction="outbound",
            event="deliver", status="Delivered", server_ip="198.51.100.7", sender="anna.berg@contoso.com",
            sender_domain="contoso.com", recipient="orders@fabrikam.com", recipient_domain="fabrikam.com",
            message_id="<PH0PR11MB4966A1B2C3D4E5F6@PH0PR11MB4966.namprd11.prod.outlook.com>",
            message_key="5c6e3f0a-1b2c-4d5e-8f90-08dd5d1a2b3c", subject="Purchase order 4711", size_bytes=24576),
        rec("exo_trace", path, lines[1], timestamp=at(2025, 3, 7, 9, 41, 57), direction="inbound", event="drop",
            status="Quarantined", client_ip="203.0.113.25", sender="scanner@contoso.com",
            sender_domain="contoso.com", recipient="anna.berg@contoso.com", recipient_domain="contoso.com",
            message_id="<20250307094157.4F1A22C0@mx1.contoso.local>",
            message_key="0d4b8e21-7a3c-4f6d-9e12-08dd5d0f7c81", subject="Scan from MFP-2F", size_bytes=183412),
    ]


def test_trace_json_array_from_windows_powershell():
    path = DATA / "trace_ps51_array.json"
    frame, result = load(path)
    assert frame.to_dicts() == _trace_json_rows(path, (2, 18))
    assert report(result) == expect_report(path, "exo_trace", "utf-8", 2, 2)


_SPAM_ROW = {"timestamp": at(2025, 3, 8, 0, 15, 0, 250000), "direction": "inbound", "event": "deliver",
             "status": "FilteredAsSpam", "client_ip": "2001:db8::25", "sender": "j.doe@gmail.com",
             "sender_domain": "gmail.com", "recipient": "anna.berg@contoso.com", "recipient_domain": "contoso.com",
             "message_id": "<CAB7xQ9k2+Lp@mail.gmail.com>", "message_key": "9a8f7e6d-5c4b-4a39-b281-08dd5e2f0a11",
             "subject": "Re: Purchase order 4711", "size_bytes": 5120}


def test_trace_odata_page():
    path = DATA / "trace_odata_page.json"
    frame, result = load(path)
    assert frame.to_dicts() == [
        rec("exo_trace", path, 4, **_SPAM_ROW),
        rec("exo_trace", path, 20, timestamp=at(2025, 3, 13, 12, 30, 45, 123456), direction="outbound",
            event="defer", status="Pending", server_ip="192.0.2.40", sender="anna.berg@contoso.com",
            sender_domain="contoso.com", recipient="it@northwind.example", recipient_domain="northwind.example",
            message_id="<PH0PR11MB4966F0E1D2C3B4A5@PH0PR11MB4966.namprd11.prod.outlook.com>",
            message_key="e1f2a3b4-c5d6-4e7f-8091-08dd5f3a4b5c", subject="Printer offline", size_bytes=10240),
    ]
    assert report(result) == expect_report(path, "exo_trace", "utf-8", 2, 2)


def test_trace_odata_verbose_page_d_results():
    # OData v2 verbose JSON (the form whose records carry "__metadata", as in the sekoia samples):
    # a collection is {"d": {"results": [...], "__next": ...}}
    path = DATA / "trace_odata_verbose.json"
    frame, result = load(path)
    assert frame.to_dicts() == [rec("exo_trace", path, 4, **_SPAM_ROW)]
    assert report(result) == expect_report(path, "exo_trace", "utf-8", 1, 1)


# =========================================================================== hand-written: Defender, tracking log


def test_defender_emailevents_csv_export():
    path = DATA / "emailevents_export.csv"
    frame, result = load(path)
    f = "emailevents"
    assert frame.to_dicts() == [
        rec(f, path, 2, timestamp=at(2025, 3, 7, 14, 5, 9, 687000), direction="inbound", event="deliver",
            status="Delivered", client_ip="203.0.113.25", sender="billing@fabrikam.com", sender_domain="fabrikam.com",
            recipient="anna.berg@contoso.com", recipient_domain="contoso.com", message_id="<inv-2025-03@fabrikam.com>",
            message_key="6c1f2e3d-4b5a-4c69-8d7e-08dd5d1a2b3c", subject="Invoice March, final",
            connector_name="Partner Inbound - Fabrikam"),
        rec(f, path, 3, timestamp=at(2025, 3, 7, 15, 12, 44, 100000), direction="inbound", event="deliver",
            status="Junked", client_ip="198.51.100.23", sender="bounce@mailer.example.net",
            sender_domain="mailer.example.net", recipient="anna.berg@contoso.com", recipient_domain="contoso.com",
            message_id="<0102019583a1@mailer.example.net>", message_key="7d2a3b4c-5d6e-4f7a-8b9c-08dd5d2b3c4d",
            subject="Spring sale"),
        rec(f, path, 4, timestamp=at(2025, 3, 7, 16, 0, 1), direction="outbound", event="deliver",
            status="Delivered", client_ip="2a01:111:f400:fe5a::1", sender="anna.berg@contoso.com",
            sender_domain="contoso.com", recipient="orders@fabrikam.com", recipient_domain="fabrikam.com",
            message_id="<AS8PR04MB8819AB@AS8PR04MB8819.eurprd04.prod.outlook.com>",
            message_key="8e3b4c5d-6e7f-4a8b-9c0d-08dd5d3c4d5e", subject="Purchase order 4712",
            connector_name="Outbound to Fabrikam"),
        rec(f, path, 5, timestamp=at(2025, 3, 7, 16, 45, 30, 500000), direction="inbound", event="drop",
            status="Blocked", client_ip="192.0.2.200", sender="ceo@contoso.com", sender_domain="contoso.com",
            recipient="anna.berg@contoso.com", recipient_domain="contoso.com", message_id="<phish-1@attacker.example>",
            message_key="9f4c5d6e-7f8a-4b9c-8d0e-08dd5d4d5e6f", subject="Urgent wire transfer"),
    ]
    assert report(result) == expect_report(path, "emailevents", "utf-8", 4, 4)


def test_exchange_2013_tracking_log_with_fields_header():
    path = DATA / "MSGTRK2025030714-1.LOG"
    frame, result = load(path)
    f = "msgtrk"
    relay = {"sender": "promo@bulk.example", "sender_domain": "bulk.example", "recipient_domain": "outside.example",
             "message_id": "<4F1A22C0@bulk.example>", "message_key": "0a1b2c3d-4e5f-4a6b-8c7d-08dd5d1a0001",
             "subject": "Cheap meds", "size_bytes": 5321}
    receive = dict(timestamp=at(2025, 3, 7, 14, 0, 1, 117000), direction="inbound", event="receive", status="RECEIVE",
                   client_ip="198.51.100.99", server_ip="10.20.30.11",
                   connector_name="EXCH01\\Default Frontend EXCH01", **relay)
    send = dict(timestamp=at(2025, 3, 7, 14, 0, 2, 540000), direction="outbound", event="send", status="SEND",
                client_ip="10.20.30.11", server_ip="52.101.8.42", connector_name="Outbound to Office 365",
                smtp_response="250 2.1.5 Recipient OK", smtp_code=250, enhanced_code="2.1.5", **relay)
    assert frame.to_dicts() == [
        rec(f, path, 6, recipient="victim1@outside.example", **receive),
        rec(f, path, 6, recipient="victim2@outside.example", **receive),
        rec(f, path, 7, recipient="victim1@outside.example", **send),
        rec(f, path, 7, recipient="victim2@outside.example", **send),
        rec(f, path, 8, timestamp=at(2025, 3, 7, 14, 5, 10, 2000), direction="outbound", event="defer",
            status="DEFER", client_ip="10.20.30.11", server_ip="52.101.8.42", sender="erp@contoso.com",
            sender_domain="contoso.com", recipient="anna.berg@contoso.com", recipient_domain="contoso.com",
            message_id="<20250307140500.AA11BB22@erp.contoso.local>",
            message_key="0a1b2c3d-4e5f-4a6b-8c7d-08dd5d1a0002", subject="Nightly ERP export", size_bytes=8812,
            connector_name="Outbound to Office 365",
            smtp_response="451 4.7.500 Server busy. Please try again later from [198.51.100.77]. (AS761)",
            smtp_code=451, enhanced_code="4.7.500", ms_code="AS761", throttled_ip="198.51.100.77"),
        rec(f, path, 9, timestamp=at(2025, 3, 7, 14, 6, 0), direction="outbound", event="receive",
            status="HARECEIVE", client_ip="fe80::1", server_ip="fe80::2", sender="erp@contoso.com",
            sender_domain="contoso.com", recipient="bob.li@contoso.com", recipient_domain="contoso.com",
            message_id="<20250307140559.CC33DD44@erp.contoso.local>",
            message_key="0a1b2c3d-4e5f-4a6b-8c7d-08dd5d1a0003", subject="Shadow copy", size_bytes=4410,
            connector_name="EXCH01\\Default EXCH01"),
        rec(f, path, 10, timestamp=at(2025, 3, 7, 14, 7, 30, 250000), direction="inbound", event="fail",
            status="FAIL", client_ip="203.0.113.80", sender="sales@partner.example", sender_domain="partner.example",
            recipient="someone@elsewhere.example", recipient_domain="elsewhere.example",
            message_id="<c0ffee@partner.example>", message_key="0a1b2c3d-4e5f-4a6b-8c7d-08dd5d1a0004",
            subject="Re: your offer, revised", size_bytes=2048,
            smtp_response="550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain",
            smtp_code=550, enhanced_code="5.7.54"),
    ]
    assert report(result) == expect_report(path, "msgtrk", "utf-8", 5, 7)


@pytest.mark.parametrize(("name", "fmt"), [
    ("trace_v2_en-US.csv", "exo_trace"),
    ("trace_v2_de-DE_cp1252.csv", "exo_trace"),
    ("trace_fr-FR.csv", "exo_trace"),
    ("trace_utf16be_bom.csv", "exo_trace"),
    ("trace_ps51_array.json", "exo_trace"),
    ("trace_odata_page.json", "exo_trace"),
    ("eac_extended_utf16le_nobom.csv", "exo_extended"),
    ("eac_enhanced_summary_utf16le_bom.csv", "exo_enhanced_summary"),
    ("trace_detail.csv", "exo_trace_detail"),
    ("emailevents_export.csv", "emailevents"),
    ("MSGTRK2025030714-1.LOG", "msgtrk"),
])
def test_detect_hand_written(name, fmt):
    assert detect(DATA / name) == fmt


# =========================================================================== several files


TREE_FILES = ["tree/week10/details/trace_detail_2025-03-04.csv", "tree/week10/trace_2025-03-03.csv",
              "tree/week11/trace_2025-03-10.ndjson"]


def test_directory_is_read_recursively_in_order_skipping_hidden_files():
    frame, result = load(DATA / "tree")
    assert [f.path for f in result.files] == [str(DATA / p) for p in TREE_FILES]
    assert [f.format for f in result.files] == ["exo_trace_detail", "exo_trace", "exo_trace"]
    assert frame.select("source_file", "source_line", "timestamp", "event", "recipient").rows() == [
        (str(DATA / TREE_FILES[0]), 2, at(2025, 3, 4, 10, 0, 2), "fail", "it@northwind.example"),
        (str(DATA / TREE_FILES[1]), 2, at(2025, 3, 3, 8, 15, 0), "deliver", "anna.berg@contoso.com"),
        (str(DATA / TREE_FILES[1]), 3, at(2025, 3, 3, 9, 30, 0), "deliver", "orders@fabrikam.com"),
        (str(DATA / TREE_FILES[2]), 1, at(2025, 3, 10, 7, 0, 0, 500000), "deliver", "bob.li@contoso.com"),
        (str(DATA / TREE_FILES[2]), 2, at(2025, 3, 10, 7, 5, 0), "fail", "it@northwind.example"),
    ]
    detail = frame.row(0, named=True)
    assert (detail["smtp_code"], detail["enhanced_code"], detail["connector_name"]) == (550, "5.7.64", "OnPrem Relay")


def test_recursive_glob_matches_files_in_subfolders():
    frame, result = load(str(DATA / "tree" / "**" / "*.csv"))
    assert [f.path for f in result.files] == [str(DATA / p) for p in TREE_FILES[:2]]
    assert frame.height == 3


def test_glob_matching_folders_reads_them_like_a_directory():
    # "tree/week1*" names the two week folders; the LibreOffice lock file in week10 is hidden
    frame, result = load(str(DATA / "tree" / "week1*"))
    assert [f.path for f in result.files] == [str(DATA / p) for p in TREE_FILES]
    assert frame.height == 5


def test_same_file_named_twice_is_read_once():
    path = DATA / "trace_fr-FR.csv"
    frame, result = load([path, str(path), DATA / "." / "trace_fr-FR.csv"])
    assert len(result.files) == 1
    assert frame.height == 2


def test_overlapping_exports_keep_each_trace_row_once():
    first = DATA / "overlap" / "trace_2025-03-01_2025-03-10.csv"
    second = DATA / "overlap" / "trace_2025-03-08_2025-03-17.csv"
    frame, result = load(DATA / "overlap")
    assert frame.select("source_file", "source_line", "timestamp", "message_key").rows() == [
        (str(first), 2, at(2025, 3, 2, 8, 0, 0), "cccccccc-0000-4000-8000-08dd59000001"),
        (str(first), 3, at(2025, 3, 8, 10, 15, 30), "cccccccc-0000-4000-8000-08dd5e000002"),
        (str(first), 4, at(2025, 3, 9, 16, 45, 0), "cccccccc-0000-4000-8000-08dd5f000003"),
        (str(second), 4, at(2025, 3, 12, 11, 11, 11), "cccccccc-0000-4000-8000-08dd61000004"),
    ]
    totals = result.totals()
    assert totals.columns == ["source_file", "format", "encoding", "rows_read", "rows_kept", "rows_skipped",
                              "rows_ignored", "duplicates", "notes"]
    assert totals.select("source_file", "rows_read", "rows_kept", "rows_skipped", "duplicates").rows() == [
        (str(first), 3, 3, 0, 0),
        (str(second), 3, 3, 0, 2),
    ]
    assert totals["notes"].to_list() == [
        "dates read as month/day/year (ambiguous: no day above 12; assumed from the AM/PM clock (en-US))"] * 2


def test_overlapping_exports_given_in_reverse_order_count_duplicates_on_the_later_one():
    first = DATA / "overlap" / "trace_2025-03-01_2025-03-10.csv"
    second = DATA / "overlap" / "trace_2025-03-08_2025-03-17.csv"
    frame, result = load([second, first])
    assert frame.height == 4
    assert result.totals().select("source_file", "duplicates").rows() == [(str(second), 0), (str(first), 2)]


# =========================================================================== bad input: exact errors


def test_binary_file_is_refused():
    path = BAD / "MessageTrace.xlsx"
    expected = (f"unreadable input file: expected text (CSV, JSON or a log), got binary data ({path}); "
                "hint: give the exported .csv/.json/.log file, or a .gz of it")
    assert error_text(path) == expected
    with pytest.raises(InputError) as info:
        detect(path)
    assert str(info.value) == expected


def test_empty_file_is_refused():
    path = BAD / "empty.csv"
    assert error_text(path) == f"empty input file: expected {EXPECTED_FORMATS}, got no data ({path})"


def test_csv_with_unknown_header_is_refused():
    path = BAD / "mailboxes.csv"
    assert error_text(path) == (
        f"unrecognized input file: expected {EXPECTED_FORMATS}, got a first line starting "
        "'\"DisplayName\",\"PrimarySmtpAddress\",\"RecipientTypeDetails\",\"W' "
        f"({path}, line 1); hint: check that this is the exported file itself; see the README's list of formats")


def test_truncated_json_document_names_the_line():
    path = BAD / "trace_truncated.json"
    assert error_text(path) == (
        "unreadable JSON: expected a complete JSON document, got Expecting property name enclosed in double "
        f"quotes ({path}, line 8); hint: the export may be truncated; export it again")


def test_strict_ragged_row_is_fatal_naming_file_and_line():
    path = BAD / "trace_ragged.csv"
    assert error_text(path, strict=True) == (
        f"malformed row: expected 14 fields, got 15 fields ({path}, line 3); hint: {STRICT_HINT}")


def test_strict_bad_date_is_fatal_naming_file_and_line():
    path = BAD / "trace_bad_values.csv"
    assert error_text(path, strict=True) == (
        "malformed row: expected a date and time (month/day/year in this file), got '2/30/2025 1:00:00 PM' "
        f"({path}, line 3); hint: {STRICT_HINT}")


def test_strict_broken_ndjson_line_is_fatal_naming_file_and_line():
    path = BAD / "trace_stream.ndjson"
    assert error_text(path, strict=True) == (
        "malformed row: expected one JSON object a line, got invalid JSON (Expecting property name enclosed in "
        f"double quotes; column 76) ({path}, line 2); hint: {STRICT_HINT}")


def test_strict_mode_reads_a_clean_file():
    frame, result = load(DATA / "trace_v2_en-US.csv", strict=True)
    assert frame.height == 4
    assert result.files[0].rows_skipped == 0


def test_missing_path_and_empty_glob_are_refused(tmp_path):
    missing = tmp_path / "trace.csv"
    assert error_text(missing) == (
        f"input not found: expected an existing file, directory or glob, got nothing at that path ({missing})")
    pattern = str(tmp_path / "*.csv")
    assert error_text(pattern) == f"no input files: expected files matching the pattern, got none ({pattern})"


def test_invalid_date_order_option_is_refused():
    assert error_text(DATA / "trace_fr-FR.csv", date_order="ymd") == (
        "invalid date_order option: expected 'dmy' or 'mdy', got 'ymd' (date_order)")


def test_error_in_one_file_of_a_folder_names_that_file(tmp_path):
    shutil.copy(DATA / "trace_fr-FR.csv", tmp_path / "a.csv")
    shutil.copy(BAD / "empty.csv", tmp_path / "b.csv")
    assert error_text(tmp_path) == f"empty input file: expected {EXPECTED_FORMATS}, got no data ({tmp_path / 'b.csv'})"


# =========================================================================== bad rows: skipped into the rejects


def test_ragged_rows_are_skipped_counted_and_kept_in_the_rejects():
    path = BAD / "trace_ragged.csv"
    frame, result = load(path)
    assert frame.select("source_line", "message_id").rows() == [(2, "<g1@contoso.com>"), (5, "<g4@fabrikam.com>")]
    assert report(result) == expect_report(
        path, "exo_trace", "utf-8", 5, 2, skipped=3,
        notes=["dates read as month/day/year (ambiguous: no day above 12; assumed from the AM/PM clock (en-US))"])
    lines = path.read_bytes().decode("utf-8").split("\r\n")
    assert rejects(result) == [
        {"source_file": str(path), "source_line": 3, "reason": "expected 14 fields, got 15 fields", "raw": lines[2]},
        {"source_file": str(path), "source_line": 4, "reason": "expected 14 fields, got 4 fields", "raw": lines[3]},
        {"source_file": str(path), "source_line": 6,
         "reason": "expected 14 fields, got 6 fields and an unclosed quote (truncated file?)", "raw": lines[5]},
    ]
    assert lines[5].endswith('"Quarterly rep')
    totals = result.totals().row(0, named=True)
    assert (totals["rows_read"], totals["rows_kept"], totals["rows_skipped"]) == (5, 2, 3)


def test_bad_date_empty_date_and_bad_size_are_rejected():
    path = BAD / "trace_bad_values.csv"
    frame, result = load(path)
    assert frame.select("source_line", "timestamp", "size_bytes").rows() == [
        (2, at(2025, 3, 7, 14, 5, 9), 24576),
        (6, at(2025, 3, 7, 16, 0, 0), 4096),
    ]
    assert report(result) == expect_report(path, "exo_trace", "utf-8", 5, 2, skipped=3,
                                           notes=["dates read as month/day/year (decided from the data)"])
    lines = path.read_bytes().decode("utf-8").split("\r\n")
    assert rejects(result) == [
        {"source_file": str(path), "source_line": 3,
         "reason": "expected a date and time (month/day/year in this file), got '2/30/2025 1:00:00 PM'",
         "raw": lines[2]},
        {"source_file": str(path), "source_line": 4, "reason": "expected a timestamp, got an empty value",
         "raw": lines[3]},
        {"source_file": str(path), "source_line": 5, "reason": "expected a size in bytes, got '24 KB'",
         "raw": lines[4]},
    ]


def test_ndjson_broken_line_and_bad_date_are_rejected_with_their_text():
    path = BAD / "trace_stream.ndjson"
    frame, result = load(path)
    assert frame.select("source_line", "recipient").rows() == [(1, "orders@fabrikam.com"),
                                                               (4, "orders@fabrikam.com")]
    lines = path.read_text(encoding="utf-8").split("\n")
    assert rejects(result) == [
        {"source_file": str(path), "source_line": 2,
         "reason": "expected one JSON object a line, got invalid JSON (Expecting property name enclosed in "
                   "double quotes; column 76)", "raw": lines[1]},
        {"source_file": str(path), "source_line": 3, "reason": "expected a date and time, got 'yesterday'",
         "raw": lines[2]},
    ]


def test_ndjson_report_counts_broken_lines_as_read():
    # FileReport.rows_read: "records found (kept + skipped)"
    result = ingest(BAD / "trace_stream.ndjson")
    f = result.files[0]
    assert (f.rows_read, f.rows_kept, f.rows_skipped) == (4, 2, 2)


def test_rejects_of_several_files_name_their_file():
    ragged, values = BAD / "trace_ragged.csv", BAD / "trace_bad_values.csv"
    result = ingest([ragged, values])
    got = result.rejects().collect()
    assert got.schema == pl.Schema({"source_file": pl.String(), "source_line": pl.Int64(), "reason": pl.String(),
                                    "raw": pl.String()})
    assert got.sort("source_file", "source_line").select("source_file", "source_line").rows() == [
        (str(values), 3), (str(values), 4), (str(values), 5), (str(ragged), 3), (str(ragged), 4), (str(ragged), 6)]
    assert result.totals()["rows_skipped"].to_list() == [3, 3]


# =========================================================================== round trip


def test_parquet_round_trip_is_lossless(tmp_path, shared_data):
    paths = [DATA / "trace_v2_en-US.csv", DATA / "eac_extended_utf16le_nobom.csv", DATA / "trace_detail.csv",
             DATA / "emailevents_export.csv", DATA / "MSGTRK2025030714-1.LOG", DATA / "eac_enhanced_summary_utf16le_bom.csv",
             shared_data / "exchange_server_msgtrk" / "elastic_exchange_server_test-messagetracking.log"]
    frame = read(paths).collect()
    assert frame.height == 4 + 4 + 3 + 4 + 7 + 3 + 6
    target = tmp_path / "records.parquet"
    frame.write_parquet(target)
    back = pl.read_parquet(target)
    check_schema(back)
    assert_frame_equal(back, frame)
    assert_frame_equal(read(paths).collect(), frame)  # reading is deterministic
    assert os.path.getsize(target) > 0


# =========================================================================== more shapes users hand over


def test_cp1252_detected_after_the_first_chunk_reads_every_row_once(tmp_path):
    # Windows PowerShell 5.1 writes ANSI: a large export may be plain ASCII for megabytes before
    # the first umlaut. Small batches put that byte past the first chunk (and past the 64 KiB head).
    header = ('"Organization","MessageId","Received","SenderAddress","RecipientAddress","Subject","Status",'
              '"ToIP","FromIP","Size","MessageTraceId","StartDate","EndDate","Index"')
    rows = [header]
    for i in range(400):
        subject = f"Bestellbestätigung {i}" if i == 399 else f"Order {i}"
        rows.append(f'"contoso.onmicrosoft.com","<m{i}@contoso.com>","07.03.2025 14:{i // 60:02d}:{i % 60:02d}",'
                    f'"anna.berg@contoso.com","orders@fabrikam.com","{subject}","Delivered","198.51.100.7","",'
                    f'"{1000 + i}","00000000-0000-4000-8000-{i:012d}","06.03.2025 00:00:00","14.03.2025 00:00:00",'
                    f'"{i}"')
    path = tmp_path / "trace_de-DE_large.csv"
    path.write_bytes(("\r\n".join(rows) + "\r\n").encode("cp1252"))
    assert path.stat().st_size > 96 * 1024
    frame, result = load(path, batch_bytes=16 * 1024)
    assert frame.height == 400
    assert frame["source_line"].to_list() == list(range(2, 402))
    assert frame["subject"][-1] == "Bestellbestätigung 399"
    assert frame["timestamp"][-1] == at(2025, 3, 7, 14, 6, 39)
    assert result.rejects().collect().height == 0
    assert report(result) == expect_report(path, "exo_trace", "cp1252", 400, 400,
                                           notes=[("dates read as day/month/year (ambiguous: no day above 12; "
                                                  "assumed from the dotted dd.MM.yyyy form (de-DE))")])


@pytest.mark.parametrize("name", ["trace_v2_en-US.csv", "trace_v2_de-DE_cp1252.csv", "eac_extended_utf16le_nobom.csv",
                                  "eac_enhanced_summary_utf16le_bom.csv", "MSGTRK2025030714-1.LOG",
                                  "trace_ps7.csv.gz", "emailevents_export.csv", "trace_utf16be_bom.csv"])
def test_small_batches_give_the_same_records(name):
    whole = read(DATA / name).collect()
    assert_frame_equal(read(DATA / name, batch_bytes=64).collect(), whole)


def test_truncated_gzip_is_refused(tmp_path):
    data = (DATA / "trace_ps7.csv.gz").read_bytes()
    path = tmp_path / "trace_ps7.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    assert error_text(path) == (
        "unreadable gzip file: expected a complete gzip stream, got a damaged or truncated one (Compressed file "
        f"ended before the end-of-stream marker was reached) ({path}); hint: download or copy the file again")


def test_report_with_a_header_and_no_rows_gives_no_records(tmp_path):
    path = tmp_path / "extended_empty.csv"
    path.write_bytes(b"\xff\xfe" + (DATA / "eac_extended_utf16le_nobom.csv").read_bytes().decode("utf-16-le")
                     .split("\r\n")[0].encode("utf-16-le") + "\r\n".encode("utf-16-le"))
    frame, result = load(path)
    assert frame.height == 0
    assert report(result) == expect_report(path, "exo_extended", "utf-16-le", 0, 0)


def test_concatenated_tracking_logs_switch_fields_at_each_header(tmp_path, shared_data):
    logs = shared_data / "exchange_server_msgtrk"
    path = tmp_path / "all.LOG"
    path.write_bytes((logs / "beats_MSGTRK_exchange2010_utf8bom.LOG").read_bytes()
                     + (logs / "kinesistap_MSGTRK_exchange2013_amazon.LOG").read_bytes())
    frame, result = load(path)
    assert frame.select("source_line", "status", "client_ip", "recipient", "message_key", "size_bytes").rows() == [
        (6, "NOTIFYMAPI", None, None, None, None),
        (7, "NOTIFYMAPI", None, None, None, None),
        (13, "AGENTINFO", "10.25.10.214", "bryanson@amazon.com", "13fad5b7-39c5-46e7-130e-08d4a138ac67", 7631),
        (14, "HAREDIRECT", None, "abannert@amazon.com", "13fad5b7-39c5-46e7-130e-08d4a138ac67", 7312),
        (14, "HAREDIRECT", None, "bryanson@amazon.com", "13fad5b7-39c5-46e7-130e-08d4a138ac67", 7312),
        (14, "HAREDIRECT", None, "zihoncao@amazon.com", "13fad5b7-39c5-46e7-130e-08d4a138ac67", 7312),
    ]
    assert (result.files[0].rows_read, result.files[0].rows_kept) == (4, 6)


def test_copied_tracking_log_is_counted_as_duplicates(tmp_path, shared_data):
    original = shared_data / "exchange_server_msgtrk" / "kinesistap_MSGTRK_exchange2013_amazon.LOG"
    copy = tmp_path / "MSGTRK2017052217-1.LOG"
    shutil.copy(original, copy)
    frame, result = load([original, copy])
    assert frame.height == 4
    assert set(frame["source_file"]) == {str(original)}
    assert result.totals().select("source_file", "duplicates").rows() == [(str(original), 0), (str(copy), 4)]


def test_json_written_by_out_file_in_utf16le(tmp_path):
    # Windows PowerShell 5.1: Get-MessageTrace | ConvertTo-Json | Out-File trace.json (UTF-16LE, BOM)
    path = tmp_path / "trace.json"
    path.write_bytes(b"\xff\xfe" + (DATA / "trace_ps51_array.json").read_bytes().decode("utf-8").encode("utf-16-le"))
    frame, result = load(path)
    assert frame.to_dicts() == _trace_json_rows(path, (2, 18))
    assert report(result) == expect_report(path, "exo_trace", "utf-16-le", 2, 2)


def test_json_single_object_when_the_trace_found_one_message(tmp_path):
    # ConvertTo-Json of a single result writes the object itself, not an array
    text = (DATA / "trace_ps51_array.json").read_bytes().decode("utf-8")
    one = "\r\n".join(line[4:] for line in text.split("\r\n")[1:17]).rstrip(",")
    path = tmp_path / "trace_one.json"
    path.write_text(one, encoding="utf-8")
    frame, _ = load(path)
    assert frame.to_dicts() == _trace_json_rows(path, (1, 0))[:1]


def test_en_us_time_with_narrow_no_break_space_before_pm(tmp_path):
    # PowerShell 7.4 on .NET 8 (ICU/CLDR 42+) writes "2:05:09\u202fPM"
    path = tmp_path / "trace_ps74_en-US.csv"
    text = (DATA / "trace_v2_en-US.csv").read_bytes().decode("ascii")
    path.write_bytes(text.replace(" PM", "\u202fPM").replace(" AM", "\u202fAM").encode("utf-8"))
    frame, result = load(path)
    assert frame["timestamp"].to_list() == [at(2025, 3, 7, 14, 5, 9), at(2025, 3, 7, 9, 41, 57),
                                            at(2025, 3, 8, 0, 15, 0), at(2025, 3, 13, 12, 30, 45)]
    assert result.files[0].rows_skipped == 0


def test_iso_offsets_mapped_and_bracketed_addresses(tmp_path):
    path = tmp_path / "trace_iso.csv"
    path.write_text("Received,SenderAddress,RecipientAddress,FromIP,ToIP\n"
                    "2025-03-07T15:05:09.1234567+01:00,a@fabrikam.com,anna.berg@contoso.com,::ffff:203.0.113.9,\n"
                    "2025-03-07 14:05:09,a@fabrikam.com,anna.berg@contoso.com,[2001:DB8::1],\n"
                    "2025-03-07T09:05:09-05:00,anna.berg@contoso.com,a@fabrikam.com,,198.51.100.7\n", encoding="utf-8")
    frame, _ = load(path)
    assert frame.select("timestamp", "client_ip", "server_ip", "direction").rows() == [
        (at(2025, 3, 7, 14, 5, 9, 123456), "203.0.113.9", None, "inbound"),
        (at(2025, 3, 7, 14, 5, 9), "2001:db8::1", None, "inbound"),
        (at(2025, 3, 7, 14, 5, 9), None, "198.51.100.7", "outbound"),
    ]


# ---------------------------------------------------------------- export quirks fixed after review


def test_semicolon_delimited_export_csv(tmp_path: Path) -> None:
    """Export-Csv -UseCulture on a de-DE machine (and Excel) separate fields with ';'."""
    path = tmp_path / "trace_de.csv"
    path.write_text(
        '#TYPE Deserialized.Microsoft.Exchange.Management.FfoReporting.MessageTrace\r\n'
        '"Received";"SenderAddress";"RecipientAddress";"Subject";"Status";"FromIP";"Size";"MessageTraceId"\r\n'
        '"05.03.2025 14:02:11";"a@fabrikam.com";"b@contoso.com";"Angebot; final";"Delivered";"203.0.113.5";"1024";"t1"\r\n',
        encoding="utf-8")
    result = ingest(path)
    rows = result.frame.collect().select("timestamp", "subject", "client_ip", "size_bytes", "source_line").rows()
    assert rows == [(at(2025, 3, 5, 14, 2, 11), "Angebot; final", "203.0.113.5", 1024, 3)]
    assert (result.files[0].rows_read, result.files[0].rows_ignored) == (1, 1)


def test_empty_json_export_is_an_empty_file_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "trace.json"
    path.write_text("[]\r\n", encoding="utf-8")
    result = ingest(path)
    assert (result.files[0].format, result.files[0].rows_read, result.frame.collect().height) == ("empty", 0, 0)
    assert result.files[0].notes == ["an empty export: no records"]


def test_hidden_folders_below_a_directory_are_skipped(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("[core]\n", encoding="utf-8")
    shutil.copy(DATA / "trace_v2_en-US.csv", tmp_path / "trace.csv")
    assert [Path(f.path).name for f in ingest(tmp_path).files] == ["trace.csv"]


def test_unknown_header_after_type_line_names_the_header_line(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_text("#TYPE Something\r\n\"Foo\",\"Bar\"\r\n\"1\",\"2\"\r\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        ingest(path)
    assert str(info.value) == (
        f"unrecognized input file: expected {EXPECTED_FORMATS}, got a first line starting "
        f"'\"Foo\",\"Bar\"' ({path}, line 2); hint: check that this is the exported file itself; "
        "see the README's list of formats")


def test_ndjson_fast_path_equals_line_by_line(monkeypatch: pytest.MonkeyPatch, shared_data: Path, tmp_path: Path) -> None:
    """Chunks of plain NDJSON (and Defender's envelope) are parsed by polars in one call; the
    result must be what the line-by-line path gives, rejects included."""
    from analyzer.readers import _json

    mixed = tmp_path / "mixed.ndjson"
    mixed.write_text(
        '{"Received":"2026-11-20T10:00:00Z","SenderAddress":"a@x.com","RecipientAddress":"b@contoso.com",'
        '"Status":"Delivered","Size":10,"FromIP":"203.0.113.9","Flag":true}\n\n'
        '{"Received":"later","SenderAddress":"a@x.com","RecipientAddress":"c@contoso.com","Status":"Failed"}\r\n',
        encoding="utf-8")
    files = [shared_data / "exo_message_trace" / "elastic_exo_message_trace_sample_logs.ndjson.log",
             shared_data / "defender_emailevents" / "elastic_m365_defender_test-email.log", mixed]
    calls = []
    real = _json.fast_ndjson
    def spy(*args):
        result = real(*args)
        calls.append(result is not None)
        return result

    monkeypatch.setattr(_json, "fast_ndjson", spy)
    for path in files:
        fast = ingest(path)
        got = (fast.frame.collect(), fast.rejects().collect(), fast.files[0])
        with monkeypatch.context() as m:
            m.setattr(_json, "fast_ndjson", lambda *a: None)
            slow = ingest(path)
            want = (slow.frame.collect(), slow.rejects().collect(), slow.files[0])
        assert_frame_equal(got[0], want[0])
        assert_frame_equal(got[1], want[1])
        assert (got[2].rows_read, got[2].rows_skipped, got[2].rows_ignored) == (
            want[2].rows_read, want[2].rows_skipped, want[2].rows_ignored)
    assert calls.count(True) >= 3  # the fast path really ran (the broken line fell back)


def test_batches_remove_the_same_duplicates_as_the_frame() -> None:
    """`Ingest.batches()` (what `mailflow analyze` streams) equals the de-duplicated frame."""
    result = ingest([DATA / "overlap", DATA / "trace_v2_en-US.csv"], batch_bytes=256)
    batches = list(result.batches())
    assert len(batches) > 2  # several spool parts, duplicates across parts
    assert_frame_equal(pl.concat(batches), result.frame.collect())


def test_date_order_decided_by_the_first_culture_batch_whatever_the_workers_finish_first(tmp_path):
    # Workers convert batches while the order is undecided; a batch whose dates need the order
    # comes back to be decided in file order. ISO batches first, then ambiguous en-US dates, then
    # a day above 12: the ambiguous batch decides (assumed month first, from the AM/PM clock) and
    # the later day-first date is rejected, exactly as strict (in line) reading does.
    header = "Received,SenderAddress,RecipientAddress,Subject,Status,ToIP,FromIP,Size,MessageTraceId,MessageId"
    rows = [header]
    for i in range(900):
        if i < 300:
            stamp = f"2025-03-07T14:{i // 60:02d}:{i % 60:02d}"
        elif i < 899:
            stamp = f"3/7/2025 2:{i // 60 % 60:02d}:{i % 60:02d} PM"
        else:
            stamp = "25/3/2025 2:00:00 PM"
        rows.append(f"{stamp},a@contoso.com,b@fabrikam.com,s {i},Delivered,,198.51.100.7,{i},"
                    f"00000000-0000-4000-8000-{i:012d},<m{i}@contoso.com>")
    path = tmp_path / "trace_mixed.csv"
    path.write_text("\n".join(rows) + "\n")
    frame, result = load(path, batch_bytes=2048)
    assert frame.height == 899
    assert frame["timestamp"][0] == at(2025, 3, 7, 14, 0, 0)
    assert frame["timestamp"][300] == at(2025, 3, 7, 14, 5, 0)  # month first
    rejects = result.rejects().collect()
    assert rejects["source_line"].to_list() == [901]
    assert rejects["reason"].to_list() == ["expected a date and time (month/day/year in this file), "
                                           "got '25/3/2025 2:00:00 PM'"]
    assert report(result)["notes"] == ["dates read as month/day/year (ambiguous: no day above 12; assumed from the "
                                       "AM/PM clock (en-US))"]


@pytest.mark.parametrize("chunk", [7, 100, 4096, 1 << 20])
def test_plain_file_blocks_end_after_a_line_break_and_cover_the_file(tmp_path, chunk):
    # blocks of a plain file are cut after a line break (the CSV scanner then carries nothing
    # into the next block); a gzip of the same text gives the same bytes
    lines = [f"{i},{'x' * (i % 37)},\"quoted, {i}\"" for i in range(2000)]
    data = ("\n".join(lines) + "\nlast line without a break").encode()
    plain, packed = tmp_path / "t.csv", tmp_path / "t.csv.gz"
    plain.write_bytes(data)
    packed.write_bytes(gzip.compress(data))
    blocks = list(TextSource(plain, chunk_size=chunk).chunks())
    assert b"".join(blocks) == data
    assert b"".join(TextSource(packed, chunk_size=chunk).chunks()) == data
    lines_longer = chunk < 80  # a block shorter than a line cannot end after a break
    if not lines_longer:
        assert all(b.endswith(b"\n") for b in blocks[:-1])
        assert all(len(b) <= chunk for b in blocks)


def test_copies_in_parquet_inputs_count_against_the_parquet_file(tmp_path):
    # a Parquet record's source_file names the log it was first read from: its copies are the
    # Parquet file's duplicates, in the totals of both the frame and the batches
    frame, _ = load([Path(__file__).resolve().parent.parent / "sample_logs" / "logs" / "exo"])
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    frame.write_parquet(first)
    pl.concat([frame.tail(5), frame.tail(5)]).write_parquet(second)
    result = ingest([first, second])
    assert result.frame.collect().height == frame.height
    assert result.totals().select("source_file", "rows_read", "duplicates").rows() == [
        (str(first), frame.height, 0), (str(second), 10, 10)]
    counted: dict[str, int] = {}
    assert sum(b.height for b in unique_batches(sorted(result.spool.glob("records-*.parquet")), counted)) == frame.height
    assert counted == {str(second): 10}


def test_copies_found_bucket_by_bucket_are_the_copies_found_at_once(tmp_path, monkeypatch):
    """Finding copies holds a bucket of keys at a time (memory bounded whatever the number of
    records): any number of buckets removes and counts the same records, first one kept."""
    sample = Path(__file__).resolve().parent.parent / "sample_logs" / "logs" / "exo"
    trace = sample / "MessageTrace_2026-11-16_2026-11-19.csv"
    shutil.copy(trace, tmp_path / "again.csv")
    inputs = [DATA / "overlap", trace, tmp_path / "again.csv"]
    once = ingest(inputs, batch_bytes=16384)
    want = (once.frame.collect(), once.totals(), pl.concat(list(once.batches())))
    assert once.copies.size > 20 and want[1]["duplicates"].sum() == once.copies.size
    assert want[1]["duplicates"].to_list()[-1] == want[1]["rows_kept"].to_list()[-1]  # the copy is all copies
    monkeypatch.setattr(readers, "_KEYS_AT_ONCE", 7)
    split = ingest(inputs, batch_bytes=16384)
    assert np.array_equal(split.copies, once.copies)
    assert_frame_equal(split.frame.collect(), want[0])
    assert_frame_equal(split.totals(), want[1])
    assert_frame_equal(pl.concat(list(split.batches())), want[2])
    counted: dict[str, int] = {}
    parts = sorted(split.spool.glob("records-*.parquet"))
    assert_frame_equal(pl.concat(list(unique_batches(parts, counted))), want[2])
    assert counted == {r["source_file"]: r["duplicates"] for r in want[1].iter_rows(named=True) if r["duplicates"]}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.lists(st.integers(0, 40), max_size=30), min_size=1, max_size=6),
       at_once=st.integers(1, 50))
def test_copies_of_any_keys_in_any_buckets_are_the_later_repeats(tmp_path_factory, parts, at_once):
    """`_copies_of` against the plain definition: a record is a copy when an earlier record (in
    part order, then row order) had its key, whatever the parts and the bucket size."""
    folder = tmp_path_factory.mktemp("spool")
    paths = []
    for n, keys in enumerate(parts):
        path = folder / f"records-{n:08d}.parquet"
        pl.DataFrame({"_key": keys}, schema={"_key": pl.UInt64}).write_parquet(path)
        paths.append(path)
    seen: set[int] = set()
    expected = []
    for position, key in enumerate(k for keys in parts for k in keys):
        if key in seen:
            expected.append(position)
        seen.add(key)
    original = readers._KEYS_AT_ONCE
    readers._KEYS_AT_ONCE = at_once
    try:
        assert readers._copies_of(paths).tolist() == expected
    finally:
        readers._KEYS_AT_ONCE = original
