"""Postfix syslog reader: exact records for hand-written realistic logs, rejects, speed."""

from __future__ import annotations

import datetime
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from analyzer.readers._postfix import RECORD_SCHEMA, REJECT_SCHEMA, parse_postfix

DATA = Path(__file__).resolve().parent / "data" / "postfix"
UTC = datetime.timezone.utc
NOV_MTIME = datetime.datetime(2024, 11, 25, 6, 0, tzinfo=UTC)
EXO = "contoso-com.mail.protection.outlook.com"
FAB = "fabrikam-com.mail.protection.outlook.com"


def load(name: str) -> pl.DataFrame:
    """A fixture file as the caller hands it over: one row per physical line, 1-based numbers."""
    text = (DATA / name).read_text(encoding="utf-8").splitlines()
    return pl.DataFrame(
        {"line": text, "source_line": list(range(1, len(text) + 1))},
        schema={"line": pl.String, "source_line": pl.Int64},
    )


def parse(name: str, *, year: int | None = None, mtime: datetime.datetime = NOV_MTIME):
    return parse_postfix(load(name), year=year, mtime=mtime)


def at(*args: int) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=UTC)


def rec(**values: Any) -> dict[str, Any]:
    """An expected record: every column, null unless given."""
    unknown = set(values) - set(RECORD_SCHEMA)
    assert not unknown, unknown
    return {name: values.get(name) for name in RECORD_SCHEMA}


def by_line(records: pl.DataFrame) -> dict[int, dict[str, Any]]:
    return {row["source_line"]: row for row in records.iter_rows(named=True)}


# ---------------------------------------------------------------- mail.log (classic syslog)


@pytest.fixture(scope="module")
def mail() -> tuple[pl.DataFrame, pl.DataFrame]:
    return parse("mail.log")


def test_schemas_are_exact(mail):
    records, rejects = mail
    assert dict(records.schema) == RECORD_SCHEMA
    assert dict(rejects.schema) == REJECT_SCHEMA


def test_formats_example_line_greylisting_with_from_ip(mail):
    # The line from FORMATS.md §1e, enriched from smtpd client=, cleanup message-id=, qmgr from=.
    assert by_line(mail[0])[6] == rec(
        timestamp=at(2024, 11, 20, 10, 15, 2),
        event="defer",
        status="deferred",
        client_ip="203.0.113.25",
        server_ip="52.101.8.42",
        server_host=EXO,
        sender="alerts@corp.example",
        recipient="u@contoso.com",
        message_id="<20241120101458.4F1A22C0@app1.corp.example>",
        message_key="mx1/4F1A22C0",
        size_bytes=4821,
        smtp_response=(
            f"host {EXO}[52.101.8.42] said: 451 4.7.500 Server busy. Please try again later from "
            "[203.0.113.25]. (AS761) (in reply to RCPT TO command)"
        ),
        enhanced_code="4.7.500",
        source_line=6,
        hostname="mx1",
        queue_id="4F1A22C0",
    )


def test_smtpd_client_line_is_a_receive_record(mail):
    # Postfix accepted the message from the app server: the hop before the deliveries, with the
    # sender, size and message-id that qmgr and cleanup log after it.
    assert by_line(mail[0])[2] == rec(
        timestamp=at(2024, 11, 20, 10, 14, 58),
        event="receive",
        status="accepted",
        client_ip="203.0.113.25",
        sender="alerts@corp.example",
        message_id="<20241120101458.4F1A22C0@app1.corp.example>",
        message_key="mx1/4F1A22C0",
        size_bytes=4821,
        source_line=2,
        hostname="mx1",
        queue_id="4F1A22C0",
    )


def test_greylisting_without_from_ip_second_recipient(mail):
    assert by_line(mail[0])[7] == rec(
        timestamp=at(2024, 11, 20, 10, 15, 2),
        event="defer",
        status="deferred",
        client_ip="203.0.113.25",
        server_ip="52.101.8.42",
        server_host=EXO,
        sender="alerts@corp.example",
        recipient="w@contoso.com",
        message_id="<20241120101458.4F1A22C0@app1.corp.example>",
        message_key="mx1/4F1A22C0",
        size_bytes=4821,
        smtp_response=(
            f"host {EXO}[52.101.8.42] said: 451 4.7.500 Server busy. Please try again later. "
            "(AS761) (in reply to RCPT TO command)"
        ),
        enhanced_code="4.7.500",
        source_line=7,
        hostname="mx1",
        queue_id="4F1A22C0",
    )


def test_ip_reputation_deferral_with_ipv6_client(mail):
    assert by_line(mail[0])[11] == rec(
        timestamp=at(2024, 11, 20, 10, 16, 11),
        event="defer",
        status="deferred",
        client_ip="2001:db8:5::25",
        server_ip="52.101.9.10",
        server_host=FAB,
        sender="newsletter@example.org",
        recipient="v@fabrikam.com",
        message_id="<CAF=abc123@mail.example.org>",
        message_key="mx1/5B2C3D41",
        size_bytes=20117,
        smtp_response=(
            f"host {FAB}[52.101.9.10] said: 451 4.7.650 The mail server [203.0.113.25] has been "
            "temporarily rate limited due to IP reputation. For e-mail delivery information, see "
            "https://aka.ms/postmaster (S775) (in reply to MAIL FROM command)"
        ),
        enhanced_code="4.7.650",
        source_line=11,
        hostname="mx1",
        queue_id="5B2C3D41",
    )


def test_bounce_banned_ip_without_enrichment_lines(mail):
    # No client=/from=/message-id= lines for this queue id in the batch: those stay null.
    assert by_line(mail[0])[12] == rec(
        timestamp=at(2024, 11, 20, 10, 17, 30),
        event="fail",
        status="bounced",
        server_ip="52.101.9.10",
        server_host=FAB,
        recipient="blocked@fabrikam.com",
        message_key="mx1/6C3D4E52",
        smtp_response=(
            f"host {FAB}[52.101.9.10] said: 550 5.7.606 Access denied, banned sending IP "
            "[203.0.113.25]. To request removal from this list please visit "
            "https://sender.office.com/ and follow the directions. For more information please go "
            "to  http://go.microsoft.com/fwlink/?LinkID=526655 AS(1430) (in reply to RCPT TO command)"
        ),
        enhanced_code="5.7.606",
        source_line=12,
        hostname="mx1",
        queue_id="6C3D4E52",
    )


def test_sent_to_exchange_online(mail):
    assert by_line(mail[0])[17] == rec(
        timestamp=at(2024, 11, 20, 10, 18, 6),
        event="send",
        status="sent",
        client_ip="198.51.100.20",
        server_ip="52.101.8.42",
        server_host=EXO,
        sender="billing@corp.example",
        recipient="ap@contoso.com",
        message_id="<7f3e2b10-1c2d-4e5f-8a9b-0c1d2e3f4a5b@app2.corp.example>",
        message_key="mx1/8A9B0C1D",
        size_bytes=15342,
        smtp_response=(
            "250 2.6.0 <7f3e2b10-1c2d-4e5f-8a9b-0c1d2e3f4a5b@app2.corp.example> "
            "[InternalId=12884901920, Hostname=AM0PR04MB1234.eurprd04.prod.outlook.com] 16010 bytes "
            "in 0.120, 130.208 KB/sec Queued mail for delivery"
        ),
        enhanced_code="2.6.0",
        source_line=17,
        hostname="mx1",
        queue_id="8A9B0C1D",
    )


def test_local_and_lmtp_deliveries(mail):
    rows = by_line(mail[0])
    common = {
        "status": "sent",
        "event": "deliver",
        "sender": "root@mx1.corp.example",
        "message_id": "<20241120101900.9D0E1F23@mx1.corp.example>",
        "message_key": "mx1/9D0E1F23",
        "size_bytes": 512,
        "enhanced_code": "2.0.0",
        "hostname": "mx1",
        "queue_id": "9D0E1F23",
    }
    # Picked up locally: no smtpd client= line, so no client; relay=local is not an IP.
    assert rows[22] == rec(
        timestamp=at(2024, 11, 20, 10, 19, 0),
        server_host="local",
        recipient="root@mx1.corp.example",
        smtp_response="delivered to mailbox",
        source_line=22,
        **common,
    )
    # LMTP over a unix socket: host kept, the socket path is not a server IP.
    assert rows[23] == rec(
        timestamp=at(2024, 11, 20, 10, 19, 1),
        server_host="mx1.corp.example",
        recipient="jane@corp.example",
        smtp_response="250 2.0.0 <jane@corp.example> 6rJ3Ah3VPWc1DAAAb5lS8g Saved",
        source_line=23,
        **common,
    )


def test_noqueue_relay_reject(mail):
    assert by_line(mail[0])[25] == rec(
        timestamp=at(2024, 11, 20, 10, 19, 41),
        event="fail",
        status="reject",
        client_ip="198.51.100.7",
        sender="spam@spammer.example",
        recipient="x@example.net",
        smtp_response="554 5.7.1 <x@example.net>: Relay access denied",
        enhanced_code="5.7.1",
        source_line=25,
        hostname="mx1",
    )


def test_multi_instance_name_and_ipv6_relay(mail):
    assert by_line(mail[0])[31] == rec(
        timestamp=at(2024, 11, 20, 10, 21, 0),
        event="send",
        status="sent",
        server_ip="2001:db8::25",
        server_host="mx.example.org",
        recipient="ops@example.org",
        message_key="mx1/1A2B3C4D",
        smtp_response="250 2.0.0 Ok: queued as 4XyZ12",
        enhanced_code="2.0.0",
        source_line=31,
        hostname="mx1",
        queue_id="1A2B3C4D",
    )


def test_qmgr_expiry_is_a_message_level_failure(mail):
    assert by_line(mail[0])[34] == rec(
        timestamp=at(2024, 11, 22, 3, 0, 0),
        event="fail",
        status="expired",
        client_ip="2001:db8:5::25",
        sender="newsletter@example.org",
        message_id="<CAF=abc123@mail.example.org>",
        message_key="mx1/5B2C3D41",
        size_bytes=20117,
        smtp_response="returned to sender",
        source_line=34,
        hostname="mx1",
        queue_id="5B2C3D41",
    )


def test_only_outcome_lines_become_records_and_broken_ones_rejects(mail):
    records, rejects = mail
    # smtpd client= lines (2, 8, 14) are receive records; everything else (connect/disconnect,
    # message-id=, qmgr from=/removed, pickup, bounce notice, anvil, kernel, non-syslog text,
    # cleanup header warning) yields nothing.
    assert records["source_line"].to_list() == [2, 6, 7, 8, 11, 12, 14, 17, 22, 23, 25, 31, 34]
    assert rejects.rows() == [
        (
            32,
            "unparseable timestamp 'Foo 99 10:15:02'",
            (
                "Foo 99 10:15:02 mx1 postfix/smtp[2211]: 4F1A22C0: to=<u@contoso.com>, "
                f"relay={EXO}[52.101.8.42]:25, delay=0.9, dsn=2.0.0, status=sent (250 2.6.0 Queued)"
            ),
        ),
        (
            33,
            "missing status= in delivery line",
            (
                "Nov 20 10:21:30 mx1 postfix/smtp[2215]: 2B3C4D5E: to=<cut@contoso.com>, "
                f"relay={EXO}[52.101.8.42]:25, delay=0.4"
            ),
        ),
    ]


def test_year_from_mtime_matches_explicit_year(mail):
    records, rejects = parse("mail.log", year=None, mtime=NOV_MTIME)
    assert records.equals(mail[0])
    assert rejects.equals(mail[1])


def test_months_after_mtime_belong_to_previous_year():
    # A file last written in March 2025 cannot contain November 2025 lines.
    records, _ = parse("mail.log", mtime=datetime.datetime(2025, 3, 1))
    assert records["timestamp"].dt.year().unique().to_list() == [2024]


# ---------------------------------------------------------------- year rollover


def test_december_to_january_rollover_from_mtime():
    records, rejects = parse("rollover.log", mtime=datetime.datetime(2025, 1, 2, 8, 0, tzinfo=UTC))
    assert rejects.is_empty()
    rows = by_line(records)
    assert rows[3] == rec(
        timestamp=at(2024, 12, 31, 23, 59, 59),
        event="send",
        status="sent",
        client_ip="192.0.2.10",
        server_ip="52.101.8.42",
        server_host=EXO,
        sender="a@partner.example",
        recipient="b@contoso.com",
        message_key="edge/3F4A5B6C",
        size_bytes=2048,
        smtp_response="250 2.6.0 Queued mail for delivery",
        enhanced_code="2.6.0",
        source_line=3,
        hostname="edge",
        queue_id="3F4A5B6C",
    )
    # `Jan  1` (two spaces) is this year's; relay=none leaves the server columns null.
    assert rows[4] == rec(
        timestamp=at(2025, 1, 1, 0, 0, 3),
        event="defer",
        status="deferred",
        recipient="c@contoso.com",
        message_key="edge/4A5B6C7D",
        smtp_response=f"connect to {EXO}[52.101.8.42]:25: Connection timed out",
        enhanced_code="4.4.1",
        source_line=4,
        hostname="edge",
        queue_id="4A5B6C7D",
    )


def test_explicit_year_is_taken_literally():
    # The user's --year beats a (possibly copied) file's mtime: no rollover is inferred.
    records, _ = parse("rollover.log", year=2025, mtime=datetime.datetime(2025, 1, 2))
    records = records.filter(pl.col("event") != "receive")
    assert records["timestamp"].to_list() == [at(2025, 12, 31, 23, 59, 59), at(2025, 1, 1, 0, 0, 3)]


# ---------------------------------------------------------------- ISO / RFC 5424 timestamps


def test_iso_and_rfc5424_timestamps_are_converted_to_utc():
    records, rejects = parse("iso.log")
    rows = by_line(records)
    assert rows[3] == rec(
        timestamp=at(2024, 11, 20, 10, 15, 3, 500000),
        event="defer",
        status="deferred",
        client_ip="192.0.2.55",
        server_ip="52.101.8.42",
        server_host=EXO,
        sender="scan@corp.example",
        recipient="p@contoso.com",
        message_key="mx2/C0FFEE12",
        size_bytes=90210,
        smtp_response=(
            f"host {EXO}[52.101.8.42] said: 451 4.7.500 Server busy. Please try again later from "
            "[192.0.2.55]. (AS761) (in reply to RCPT TO command)"
        ),
        enhanced_code="4.7.500",
        source_line=3,
        hostname="mx2",
        queue_id="C0FFEE12",
    )
    assert rows[4]["timestamp"] == at(2024, 11, 20, 10, 20, 0)
    assert rows[4]["event"] == "send"
    # RFC 5424 framing (<PRI>1 ... APP PROCID MSGID SD MSG), postscreen-style [ip]:port client,
    # a null sender, and a 4xx relay refusal (defer_unauth_destination) still recorded as reject.
    assert rows[5] == rec(
        timestamp=at(2024, 11, 20, 10, 30, 0, 250000),
        event="fail",
        status="reject",
        client_ip="198.51.100.99",
        sender="",
        recipient="z@example.net",
        smtp_response="454 4.7.1 <z@example.net>: Relay access denied",
        enhanced_code="4.7.1",
        source_line=5,
        hostname="mx2",
    )
    assert rejects.rows() == [
        (
            6,
            "unparseable timestamp '2024-13-40T10:20:00Z'",
            (
                "2024-13-40T10:20:00Z mx2 postfix/smtp[5201]: C0FFEE12: to=<q@contoso.com>, "
                "relay=none, delay=300, dsn=4.4.1, status=deferred (x)"
            ),
        )
    ]


# ---------------------------------------------------------------- policy actions, content filters


@pytest.fixture(scope="module")
def policy() -> tuple[pl.DataFrame, pl.DataFrame]:
    return parse("policy.log", year=2024)


def test_rejects_after_queue_id_and_by_milter_or_header_checks(policy):
    rows = by_line(policy[0])
    assert rows[2] == rec(
        timestamp=at(2024, 3, 3, 8, 0, 1),
        event="fail",
        status="reject",
        client_ip="10.1.2.3",
        sender="jdoe@corp.example",
        recipient="nobody@corp.example",
        message_key="gw/D1E2F3A4",
        smtp_response=(
            "550 5.1.1 <nobody@corp.example>: Recipient address rejected: User unknown in virtual "
            "mailbox table"
        ),
        enhanced_code="5.1.1",
        source_line=2,
        hostname="gw",
        queue_id="D1E2F3A4",
    )
    assert rows[3] == rec(
        timestamp=at(2024, 3, 3, 8, 0, 2),
        event="fail",
        status="milter-reject",
        client_ip="10.1.2.3",
        sender="jdoe@corp.example",
        recipient="ok@contoso.com",
        message_key="gw/D1E2F3A4",
        smtp_response="5.7.1 Virus found: Eicar-Signature",
        enhanced_code="5.7.1",
        source_line=3,
        hostname="gw",
        queue_id="D1E2F3A4",
    )
    assert rows[4] == rec(
        timestamp=at(2024, 3, 3, 8, 0, 3),
        event="fail",
        status="reject",
        client_ip="198.51.100.44",
        sender="x@spam.example",
        recipient="ceo@corp.example",
        message_key="gw/E2F3A4B5",
        smtp_response="5.7.1 message content rejected",
        enhanced_code="5.7.1",
        source_line=4,
        hostname="gw",
        queue_id="E2F3A4B5",
    )
    # postscreen: `[ip]:port`, comma-separated tail, reply text containing `;`.
    assert rows[5] == rec(
        timestamp=at(2024, 3, 3, 8, 0, 4),
        event="fail",
        status="reject",
        client_ip="198.51.100.45",
        sender="a@bad.example",
        recipient="b@corp.example",
        smtp_response="550 5.7.1 Service unavailable; client [198.51.100.45] blocked using zen.spamhaus.org",
        enhanced_code="5.7.1",
        source_line=5,
        hostname="gw",
    )
    # A CONNECT-stage reject names no sender or recipient.
    assert rows[6] == rec(
        timestamp=at(2024, 3, 3, 8, 0, 5),
        event="fail",
        status="reject",
        client_ip="198.51.100.46",
        smtp_response="554 5.7.1 <unknown[198.51.100.46]>: Client host rejected: Access denied",
        enhanced_code="5.7.1",
        source_line=6,
        hostname="gw",
    )


def test_content_filter_orig_client_alias_expansion_and_pipe(policy):
    rows = by_line(policy[0])
    common = {
        "status": "sent",
        "client_ip": "192.0.2.77",  # orig_client beats the re-injecting localhost
        "sender": "",  # from=<>: the null reverse path, not unknown
        "message_key": "gw/F3A4B5C6",
        "size_bytes": 3300,
        "enhanced_code": "2.0.0",
        "hostname": "gw",
        "queue_id": "F3A4B5C6",
    }
    assert rows[9] == rec(
        timestamp=at(2024, 3, 3, 8, 0, 6),
        event="expand",
        server_host="local",
        recipient="list@gw.corp.example",
        smtp_response="forwarded as 0A1B2C3D",
        source_line=9,
        **common,
    )
    assert rows[10] == rec(
        timestamp=at(2024, 3, 3, 8, 0, 7),
        event="deliver",
        server_host="dovecot",
        recipient="bob@corp.example",
        smtp_response="delivered via dovecot service",
        source_line=10,
        **common,
    )
    # header_checks DISCARD: an outcome, but not a failure; the line's own client wins.
    assert rows[11] == rec(
        timestamp=at(2024, 3, 3, 8, 0, 8),
        event="other",
        status="discard",
        client_ip="127.0.0.1",
        sender="",
        recipient="bob@corp.example",
        message_key="gw/F3A4B5C6",
        size_bytes=3300,
        smtp_response="spam",
        source_line=11,
        hostname="gw",
        queue_id="F3A4B5C6",
    )


def test_recycled_queue_id_takes_latest_earlier_lines_of_same_host(policy):
    rows = by_line(policy[0])
    # Line 12 precedes this queue id's client=/from= lines (an earlier message with the id).
    assert rows[12] == rec(
        timestamp=at(2024, 3, 3, 8, 0, 9),
        event="defer",
        status="deferred",
        recipient="x@gone.example",
        message_key="gw/5C6D7E8F",
        smtp_response=(
            "delivery temporarily suspended: connect to mx.gone.example[203.0.113.9]:25: Connection refused"
        ),
        enhanced_code="4.4.1",
        source_line=12,
        hostname="gw",
        queue_id="5C6D7E8F",
    )
    assert rows[15]["client_ip"] == "10.9.9.9"
    assert rows[15]["sender"] == "recycled@corp.example"
    assert rows[15]["size_bytes"] == 100
    # Same queue id on another host: nothing borrowed across hosts. The syslog-truncated reply
    # lost its outer closing parenthesis: the text is kept as logged, the inner one intact.
    assert rows[16] == rec(
        timestamp=at(2024, 3, 3, 8, 0, 12),
        event="fail",
        status="bounced",
        server_ip="52.101.8.43",
        server_host=EXO,
        recipient="z@contoso.com",
        message_key="other/5C6D7E8F",
        smtp_response=(
            f"host {EXO}[52.101.8.43] said: 550 5.7.64 TenantAttribution; Relay Access Denied "
            "[AM0PR01MB1234.eurprd01.prod.exchangelabs.com] (in reply to RCPT TO command)"
        ),
        enhanced_code="5.7.64",
        source_line=16,
        hostname="other",
        queue_id="5C6D7E8F",
    )


def test_policy_file_records_and_rejects(policy):
    records, rejects = policy
    # client= lines (1, 7, 13) are receive records. Ignored: qmgr from=, header WARN with
    # to=<>, a `warning:` diagnostic.
    assert records["source_line"].to_list() == [1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 15, 16]
    assert rejects.select("source_line", "reason").rows() == [
        (19, "unrecognised postfix line with to=/status="),
        (20, "no syslog header (timestamp host program[pid]:)"),
    ]


# ---------------------------------------------------------------- edge inputs


def test_empty_and_non_postfix_batches():
    empty = pl.DataFrame(schema={"line": pl.String, "source_line": pl.Int64})
    for batch in (
        empty,
        pl.DataFrame(
            {"line": ["Nov 20 10:00:00 h sshd[1]: Accepted key", None], "source_line": [1, 2]}
        ),
    ):
        records, rejects = parse_postfix(batch, year=None, mtime=NOV_MTIME)
        assert records.is_empty() and dict(records.schema) == RECORD_SCHEMA
        assert rejects.is_empty() and dict(rejects.schema) == REJECT_SCHEMA


def test_crlf_line_ends_are_tolerated(mail):
    batch = load("mail.log").with_columns(pl.col("line") + "\r")
    records, rejects = parse_postfix(batch, year=2024, mtime=NOV_MTIME)
    assert records.equals(mail[0])
    assert rejects.select("source_line", "reason").equals(mail[1].select("source_line", "reason"))


def test_accepted_message_without_outcome_is_one_receive_record():
    lines = [
        "Nov 20 10:00:00 mx1 postfix/smtpd[1]: connect from unknown[198.51.100.7]",
        "Nov 20 10:00:00 mx1 postfix/smtpd[1]: 4F1A22C0: client=unknown[198.51.100.7]",
        "Nov 20 10:00:01 mx1 postfix/qmgr[2]: 4F1A22C0: from=<a@b.c>, size=10, nrcpt=1 (queue active)",
        "Nov 20 10:00:02 mx1 postfix/qmgr[2]: 4F1A22C0: removed",
    ]
    batch = pl.DataFrame({"line": lines, "source_line": [1, 2, 3, 4]})
    records, rejects = parse_postfix(batch, year=2024, mtime=NOV_MTIME)
    assert records.rows(named=True) == [rec(
        timestamp=at(2024, 11, 20, 10, 0, 0), event="receive", status="accepted",
        client_ip="198.51.100.7", sender="a@b.c", message_key="mx1/4F1A22C0", size_bytes=10,
        source_line=2, hostname="mx1", queue_id="4F1A22C0")]
    assert rejects.is_empty() and dict(rejects.schema) == REJECT_SCHEMA


# ---------------------------------------------------------------- speed


def _generated_lines(n_messages: int) -> list[str]:
    """Realistic 5-line messages on two hosts plus a NOQUEUE reject: 200k lines at 33,334."""
    out: list[str] = []
    start = datetime.datetime(2024, 11, 1)
    outcomes = (
        (
            "dsn=4.7.500, status=deferred (host {r}[52.101.8.42] said: 451 4.7.500 Server busy. "
            "Please try again later from [203.0.113.{o}]. (AS761) (in reply to RCPT TO command))"
        ),
        (
            "dsn=2.6.0, status=sent (250 2.6.0 <m{i}@corp.example> [InternalId=1, Hostname=AM0PR] "
            "Queued mail for delivery)"
        ),
        (
            "dsn=5.7.606, status=bounced (host {r}[52.101.8.42] said: 550 5.7.606 Access denied, "
            "banned sending IP [203.0.113.{o}]. (in reply to RCPT TO command))"
        ),
    )
    for i in range(n_messages):
        host = "mx1" if i % 2 else "mx2"
        qid = f"{i:08X}"
        o = i % 250
        # Monotonic time, ~3 distinct seconds per message, as in a busy real log.
        t0, t1, t2 = (start + datetime.timedelta(seconds=3 * i + k) for k in range(3))
        ts0, ts1, ts2 = (f"{t:%b} {t.day:2d} {t:%H:%M:%S}" for t in (t0, t1, t2))
        r = EXO
        out += [
            f"{ts0} {host} postfix/smtpd[{i % 9000}]: {qid}: client=app{o}.corp.example[203.0.113.{o}]",
            f"{ts0} {host} postfix/cleanup[{i % 9000}]: {qid}: message-id=<m{i}@corp.example>",
            f"{ts0} {host} postfix/qmgr[99]: {qid}: from=<s{o}@corp.example>, size={1000 + i}, nrcpt=1 (queue active)",
            f"{ts1} {host} postfix/smtp[{i % 9000}]: {qid}: to=<u{i}@contoso.com>, relay={r}[52.101.8.42]:25, "
            f"delay=0.9, delays=0.1/0/0.4/0.4, " + outcomes[i % 3].format(r=r, o=o, i=i),
            f"{ts1} {host} postfix/qmgr[99]: {qid}: removed",
            (
                f"{ts2} {host} postfix/smtpd[7]: NOQUEUE: reject: RCPT from unknown[198.51.100.{o}]: 554 5.7.1 "
                f"<x{i}@example.net>: Relay access denied; from=<a@b.c> to=<x{i}@example.net> proto=ESMTP helo=<h>"
            ),
        ]
    return out


def test_200k_lines_parse_fast():
    text = _generated_lines(33_334)[:200_000]
    batch = pl.DataFrame({"line": text, "source_line": pl.int_range(1, len(text) + 1, eager=True)})
    start = time.perf_counter()
    records, rejects = parse_postfix(batch, year=2024, mtime=NOV_MTIME)
    elapsed = time.perf_counter() - start
    rate = len(text) / elapsed
    print(f"\npostfix: {len(text):,} lines in {elapsed:.3f} s = {rate:,.0f} lines/s")
    assert elapsed < 10, f"{len(text):,} lines took {elapsed:.2f} s ({rate:,.0f} lines/s)"
    assert rejects.is_empty()
    # 33,333 full messages (receive, delivery, NOQUEUE reject) + 1 partial (client=,
    # message-id=: a receive record only).
    assert records.height == 3 * 33_333 + 1
    assert records.filter(pl.col("event") == "receive").height == 33_334
    deliveries = records.filter(pl.col("queue_id").is_not_null() & (pl.col("event") != "receive"))
    assert deliveries["client_ip"].null_count() == 0
    assert deliveries["message_id"].null_count() == 0
    assert deliveries["size_bytes"].null_count() == 0
    assert deliveries["event"].value_counts().sort("event").rows() == [
        ("defer", 11_111),
        ("fail", 11_111),
        ("send", 11_111),
    ]
    sample = by_line(deliveries.filter(pl.col("recipient") == "u4@contoso.com"))
    (row,) = sample.values()
    assert (
        row["client_ip"],
        row["sender"],
        row["size_bytes"],
        row["message_id"],
        row["hostname"],
    ) == (
        "203.0.113.4",
        "s4@corp.example",
        1004,
        "<m4@corp.example>",
        "mx2",
    )


# ---------------------------------------------------------------- batches: a message straddles them


def _ingested(path: Path, batch_bytes: int) -> tuple[pl.DataFrame, Any]:
    from analyzer.readers import ingest

    result = ingest([path], year=2024, batch_bytes=batch_bytes)
    return result.frame.collect().sort("source_line"), result.files[0]


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.log")) + ["sample mail.log", "sample mail.log.1.gz"])
@pytest.mark.parametrize("batch_bytes", [500, 4096])
def test_small_batches_give_the_records_of_one_batch(name, batch_bytes):
    # A message's client=, from= and message-id= lines sit before its outcomes, often far before
    # (a retry hours later) and sometimes in another batch: the earlier batches' lines must come
    # along, and a receive record at a batch's end waits for its from= line in the next one.
    sample = Path(__file__).resolve().parent.parent / "sample_logs" / "logs" / "postfix"
    path = sample / name.removeprefix("sample ") if name.startswith("sample ") else DATA / name
    whole, whole_report = _ingested(path, 64 << 20)
    batched, batched_report = _ingested(path, batch_bytes)
    assert whole.height > 0
    assert batched.to_dicts() == whole.to_dicts()
    counts = ("rows_read", "rows_kept", "rows_skipped", "rows_ignored")
    assert [getattr(batched_report, c) for c in counts] == [getattr(whole_report, c) for c in counts]


def test_receive_record_at_the_end_of_the_log_is_kept_without_its_from_line(tmp_path):
    log = tmp_path / "mail.log"
    lines = [f"Nov 24 10:00:{i % 60:02d} mx1 postfix/smtpd[1]: connect from unknown[198.51.100.{i % 250}]"
             for i in range(200)]
    lines.append("Nov 24 10:05:00 mx1 postfix/smtpd[1]: 4ABCD12345: client=app[203.0.113.9]")
    log.write_text("\n".join(lines) + "\n")
    frame, report = _ingested(log, 1024)  # several batches; the client= line is in the last
    assert frame.select("event", "client_ip", "sender", "message_key", "source_line").rows() == [
        ("receive", "203.0.113.9", None, "mx1/4ABCD12345", 201)]
    assert (report.rows_read, report.rows_kept, report.rows_ignored) == (1, 1, 200)


def test_carried_queue_ids_are_bounded(monkeypatch):
    from analyzer.readers import _postfix

    monkeypatch.setattr(_postfix, "_CARRY_IDS", 3)
    lines = [f"Nov 24 10:00:0{i} mx1 postfix/qmgr[2]: 4ABC{i}: from=<s{i}@a.example>, size=10{i}, nrcpt=1 (queue active)"
             for i in range(6)]
    carry = _postfix.Carry()
    parse_postfix(pl.DataFrame({"line": lines, "source_line": list(range(1, 7))}), year=2024,
                  mtime=NOV_MTIME, carry=carry)
    senders = carry.tables[1]
    # the three most recent queue ids, each once
    assert senders.select("queue_id", "_sender").rows() == [
        ("4ABC3", "s3@a.example"), ("4ABC4", "s4@a.example"), ("4ABC5", "s5@a.example")]
    later = ["Nov 24 10:01:00 mx1 postfix/smtp[3]: 4ABC4: to=<r@b.example>, relay=b[192.0.2.1]:25, delay=1, "
             "delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)"]
    records, _ = parse_postfix(pl.DataFrame({"line": later, "source_line": [7]}), year=2024, mtime=NOV_MTIME,
                               carry=carry)
    assert records.select("sender", "size_bytes").rows() == [("s4@a.example", 104)]
