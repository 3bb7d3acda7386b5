"""`classify` / `classify_column` on every real response line and bounce message in
``ndr_smtp_responses/``, on every category boundary and on the wrapper forms seen in real logs.

Expected values are written out by hand from reading each line (never pasted from the output).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import analyzer.status as status_mod
from analyzer.status import CATEGORIES, Status, classify, classify_column

NONE = Status(None, None, None, None, "none")


def S(smtp: int | None, enh: str | None, category: str, ms: str | None = None, ip: str | None = None) -> Status:
    """Short constructor so the expected tables stay readable."""
    return Status(smtp_code=smtp, enhanced_code=enh, ms_code=ms, throttled_ip=ip, category=category)


def test_categories_exact() -> None:
    assert CATEGORIES == (
        "greylisting", "relay_denied", "attribution_rejected", "direct_send_rejected", "banned_ip",
        "tenant_blocked", "auth_required", "connector_delivery_failure", "expired", "temporary",
        "permanent", "success", "none",
    )


# --------------------------------------------------------------------------------------------
# exo_smtp_response_lines.tsv: one expected Status per data line, in file order, with the start
# of the line as a guard that the table and the file stay aligned.
# --------------------------------------------------------------------------------------------
BANNED_606 = S(550, "5.7.606", "banned_ip", ms="AS16012609")
TSV_EXPECTED: list[tuple[str, Status]] = [
    ("SMTP; 550 5.7.606 Access denied, banned sending IP", BANNED_606),
    ("smtp;550 5.1.1 RESOLVER.ADR.RecipNotFound", S(550, "5.1.1", "permanent")),
    ("smtp;550 5.7.54 SMTP; Unable to relay", S(550, "5.7.54", "relay_denied")),
    ("smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound", S(550, "5.1.10", "permanent")),
    ("SMTP; 550 5.7.606 Access denied, banned sending IP", BANNED_606),
    # DMARC reject: not one of the connector/relay codes; the stamps' dates are not codes.
    ("SMTP; 550 5.7.509 Access denied, sending domain [EXAMPLE.JP]", S(550, "5.7.509", "permanent")),
    # 4.7.650 names the throttled server as "The mail server [ip]" rather than "from [ip]".
    ("smtp; 451 4.7.650 The mail server [192.0.2.25]",
     S(451, "4.7.650", "greylisting", ms="S3113", ip="192.0.2.25")),
    # The outer LED= reply decides; the nested [Message=451 5.7.3 ...] is the remote server's answer.
    ("LED=450 4.4.317 Cannot connect to remote server", S(450, "4.4.317", "connector_delivery_failure")),
    # {IP=52.101.194.15} is the destination, not a throttled source; LRT=1/29/2025 is not a code.
    ("{[{LED=550 5.7.51 TenantInboundAttribution;", S(550, "5.7.51", "attribution_rejected")),
    ("550 5.7.68 TenantInboundAttribution; Direct Send", S(550, "5.7.68", "direct_send_rejected")),
    # Class 5: 5.7.520 is not in the greylisting range (that is 4.7.5xx) -> permanent.
    ("Remote Server returned '550 5.7.520 Access denied", S(550, "5.7.520", "permanent", ms="AS7550")),
    # AS(XXXXXXX) was redacted by the author: no digits, no ms_code.
    ("550 5.1.8 Access denied, bad outbound sender AS(XXXXXXX)", S(550, "5.1.8", "permanent")),
    ("postfix/smtp[25122]: B60EA42D4: host hotmail-com",
     S(451, "4.7.500", "greylisting", ms="AS843", ip="174.136.107.245")),
    ("postfix/smtp[25122]: B60EA42D4: to=<MASKED@hotmail.com>",
     S(451, "4.7.500", "greylisting", ms="AS843", ip="174.136.107.245")),
    ("451 4.7.500 Server busy. Please try again later from [2.56.250.16]. (S77714)",
     S(451, "4.7.500", "greylisting", ms="S77714", ip="2.56.250.16")),
    ("451 4.7.500 Server busy. Please try again later from [192.0.2.2]. (AS761)",
     S(451, "4.7.500", "greylisting", ms="AS761", ip="192.0.2.2")),
    # 4.7.700 is just past the greylisting range; tenant_blocked is class 5 only -> temporary.
    ("451 4.7.700 PFA agent busy, please try again.", S(451, "4.7.700", "temporary")),
    ("550 5.7.515 Access denied, sending domain NYAAAAN.EXAMPLE.JP", S(550, "5.7.515", "permanent")),
]


def _tsv_rows(shared_data: Path) -> list[dict[str, str]]:
    # Split on tabs rather than using csv: the note column starts with a quote in one row.
    lines = (shared_data / "ndr_smtp_responses" / "exo_smtp_response_lines.tsv").read_text("utf-8").splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:] if line]


def test_tsv_has_every_line_covered(shared_data: Path) -> None:
    assert len(_tsv_rows(shared_data)) == len(TSV_EXPECTED) == 18


@pytest.mark.parametrize(("index", "start", "expected"), [(i, s, e) for i, (s, e) in enumerate(TSV_EXPECTED)],
                         ids=[f"line{i + 2}" for i in range(len(TSV_EXPECTED))])
def test_real_response_line(shared_data: Path, index: int, start: str, expected: Status) -> None:
    line = _tsv_rows(shared_data)[index]["response_line"]
    assert line.startswith(start)
    assert classify(line) == expected


def test_real_lines_as_column(shared_data: Path) -> None:
    lines = [row["response_line"] for row in _tsv_rows(shared_data)]
    frame = classify_column(pl.Series("Detail", lines))
    assert frame.rows() == [dataclasses.astuple(expected) for _, expected in TSV_EXPECTED]


# --------------------------------------------------------------------------------------------
# Bounce messages (.eml): what a mail admin reads — the Diagnostic-Code and Status fields of the
# message/delivery-status part, headers unfolded — plus the reply lines quoted in the human part.
# --------------------------------------------------------------------------------------------
_NDR = "ndr_smtp_responses"
_FIELD = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(?P<value>.*)$")


def _delivery_status(raw: str) -> dict[str, str] | None:
    """Fields of the message/delivery-status part, folded lines joined with one space (as the TSV
    does); None when the bounce has no such part (qmail). Works for LF and CRLF files alike."""
    lines = raw.splitlines()  # also strips the CR of CRLF files
    starts = [i for i, line in enumerate(lines) if line.lower().startswith("content-type: message/delivery-status")]
    if not starts:
        return None
    fields: dict[str, str] = {}
    last: str | None = None
    for line in lines[starts[0] + 1:]:
        if line.startswith("--"):  # MIME boundary: end of the part
            break
        if line[:1] in (" ", "\t") and last is not None:  # folded continuation
            fields[last] += " " + line.strip()
            continue
        match = _FIELD.match(line)
        if match:
            last = match.group("name").lower()
            fields[last] = match.group("value").rstrip()
        elif not line.strip():
            last = None
    return fields


def _raw_field(raw: str, name: str) -> str:
    """The field's value exactly as stored: folded, with the file's own line endings."""
    match = re.search(rf"^{name}[ \t]*:[ \t]*([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)", raw, re.MULTILINE | re.IGNORECASE)
    assert match, name
    return match.group(1)


def _read(shared_data: Path, name: str) -> str:
    # newline="" keeps CRLF, so the folded raw values really contain CRLF for classify to unfold.
    with open(shared_data / _NDR / name, encoding="ascii", newline="") as handle:
        return handle.read()


GREY_650 = S(451, "4.7.650", "greylisting", ms="S3113", ip="192.0.2.25")

# file: (Diagnostic-Code expected, Status-field expected, crlf?)
EML_DSN: dict[str, tuple[Status, Status, bool]] = {
    "sisimai_dos_rhost-exchangeonline-01.eml": (BANNED_606, S(None, "5.7.606", "banned_ip"), True),
    "sisimai_lhost-exchange2007-01.eml": (S(550, "5.1.1", "permanent"), S(None, "5.1.1", "permanent"), False),
    # Mimecast writes "Status : 5.0.0" (blank before the colon), a generic code that disagrees with
    # the diagnostic's 5.7.54; each field is classified on its own.
    "sisimai_lhost-mimecast-02.eml": (S(550, "5.7.54", "relay_denied"), S(None, "5.0.0", "permanent"), True),
    "sisimai_lhost-office365-13.eml": (S(550, "5.1.10", "permanent"), S(None, "5.1.10", "permanent"), False),
    "sisimai_rhost-microsoft-01.eml": (BANNED_606, S(None, "5.7.606", "banned_ip"), False),
    "sisimai_rhost-microsoft-04.eml": (S(550, "5.7.509", "permanent"), S(None, "5.7.509", "permanent"), True),
    # Folded over five lines in the file; the Status field alone carries no IP and no AS code.
    "sisimai_rhost-microsoft-05.eml": (GREY_650, S(None, "4.7.650", "greylisting"), True),
}


def test_every_eml_file_is_covered(shared_data: Path) -> None:
    names = {p.name for p in (shared_data / _NDR).glob("*.eml")}
    assert names == set(EML_DSN) | {"sisimai_rhost-microsoft-06.eml"}


@pytest.mark.parametrize("name", sorted(EML_DSN))
def test_eml_delivery_status(shared_data: Path, name: str) -> None:
    diag_expected, status_expected, crlf = EML_DSN[name]
    raw = _read(shared_data, name)
    assert ("\r\n" in raw) is crlf
    fields = _delivery_status(raw)
    assert fields is not None
    diagnostic = fields["diagnostic-code"]
    assert "\n" not in diagnostic and "\r" not in diagnostic
    assert classify(diagnostic) == diag_expected
    assert classify(fields["status"]) == status_expected
    # The same value unfolded by classify itself, from the raw folded (CRLF) text.
    assert classify(_raw_field(raw, "Diagnostic-Code")) == diag_expected


def test_eml_diagnostic_codes_match_tsv(shared_data: Path) -> None:
    """The TSV's Diagnostic-Code lines are these files' fields unfolded with single spaces."""
    by_source = {Path(row["source_path"]).name: row["response_line"] for row in _tsv_rows(shared_data)
                 if row["source_repo"] == "sisimai/set-of-emails" and "Diagnostic-Code" in row["note"]}
    for name in EML_DSN:
        source = name.removeprefix("sisimai_").removeprefix("dos_")
        fields = _delivery_status(_read(shared_data, name))
        assert fields is not None
        assert fields["diagnostic-code"] == by_source[source]


def test_eml_folded_diagnostic_is_really_folded(shared_data: Path) -> None:
    raw_value = _raw_field(_read(shared_data, "sisimai_rhost-microsoft-05.eml"), "Diagnostic-Code")
    assert raw_value.count("\r\n    ") == 4
    assert classify(raw_value) == GREY_650
    # A bare-LF copy of the same text unfolds the same way.
    assert classify(raw_value.replace("\r\n", "\n")) == GREY_650


def _quoted_reply(raw: str, marker: str) -> str:
    """The first line containing `marker` plus its indented continuation lines, line ends kept."""
    lines = raw.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if marker in line:
            end = i + 1
            while end < len(lines) and lines[end][:1] in (" ", "\t") and lines[end].strip():
                end += 1
            return "".join(lines[i:end])
    raise AssertionError(f"{marker!r} not found")


# Reply text quoted in the human-readable parts and transcripts of the same bounces.
EML_QUOTED: list[tuple[str, str, Status]] = [
    # sendmail "(reason: ...)" with the middle elided by sendmail itself ("plea...tions.")
    ("sisimai_dos_rhost-exchangeonline-01.eml", "(reason: 550", BANNED_606),
    ("sisimai_dos_rhost-exchangeonline-01.eml", "<<< 550 5.7.606", BANNED_606),
    ("sisimai_dos_rhost-exchangeonline-01.eml", "<<< 503", S(503, "5.5.2", "permanent")),
    ("sisimai_rhost-microsoft-01.eml", "550 5.1.1 <kijitora", S(550, "5.1.1", "permanent")),
    ("sisimai_lhost-exchange2007-01.eml", "#550 5.1.1", S(550, "5.1.1", "permanent")),
    # Mimecast: the enhanced code alone, then the Exchange text.
    ("sisimai_lhost-mimecast-02.eml", "-- 5.7.54", S(None, "5.7.54", "relay_denied")),
    ("sisimai_lhost-office365-13.eml", "Status code: 550", S(550, "5.1.10", "permanent")),
    ("sisimai_rhost-microsoft-04.eml", "(reason: 550", S(550, "5.7.509", "permanent")),
    ("sisimai_rhost-microsoft-04.eml", "554 5.0.0", S(554, "5.0.0", "permanent")),
    # Postfix: "host ...[52.101.68.1] said: 451 4.7.650 The" folded over six indented lines.
    ("sisimai_rhost-microsoft-05.eml", "said: 451", GREY_650),
    # qmail: no delivery-status part, only "Remote host said:" after "198.51.100.25 failed ...".
    ("sisimai_rhost-microsoft-06.eml", "Remote host said:", S(550, "5.7.515", "permanent")),
    ("sisimai_rhost-microsoft-06.eml", "198.51.100.25 failed", NONE),
]


@pytest.mark.parametrize(("name", "marker", "expected"), EML_QUOTED,
                         ids=[f"{n.removeprefix('sisimai_')}:{m}" for n, m, _ in EML_QUOTED])
def test_eml_quoted_reply(shared_data: Path, name: str, marker: str, expected: Status) -> None:
    assert classify(_quoted_reply(_read(shared_data, name), marker)) == expected


def test_qmail_bounce_has_no_delivery_status(shared_data: Path) -> None:
    assert _delivery_status(_read(shared_data, "sisimai_rhost-microsoft-06.eml")) is None


# --------------------------------------------------------------------------------------------
# Category boundaries: "<basic> <enhanced> text", first matching rule wins.
# --------------------------------------------------------------------------------------------
BOUNDARIES: list[tuple[str, str]] = [
    ("451 4.7.499", "temporary"), ("451 4.7.500", "greylisting"), ("451 4.7.650", "greylisting"),
    ("451 4.7.699", "greylisting"), ("451 4.7.700", "temporary"), ("451 4.7.849", "temporary"),
    ("451 4.7.850", "greylisting"), ("451 4.7.899", "greylisting"), ("451 4.7.900", "temporary"),
    ("451 4.6.500", "temporary"), ("550 5.7.500", "permanent"), ("550 5.7.650", "permanent"),
    ("550 5.7.605", "permanent"), ("550 5.7.606", "banned_ip"), ("550 5.7.620", "banned_ip"),
    ("550 5.7.649", "banned_ip"), ("550 5.7.650", "permanent"), ("451 4.7.606", "greylisting"),
    ("550 5.7.699", "permanent"), ("550 5.7.700", "tenant_blocked"), ("550 5.7.705", "tenant_blocked"),
    ("550 5.7.708", "tenant_blocked"), ("550 5.7.749", "tenant_blocked"),
    ("550 5.7.750", "tenant_blocked"), ("550 5.7.751", "permanent"), ("450 4.7.750", "temporary"),
    ("550 5.7.64", "relay_denied"), ("550 5.7.54", "relay_denied"), ("450 4.7.64", "temporary"),
    ("550 5.7.640", "banned_ip"), ("550 5.7.540", "permanent"), ("550 5.7.1", "permanent"),
    ("550 5.7.51", "attribution_rejected"), ("550 5.7.510", "permanent"), ("550 5.7.5", "permanent"),
    ("550 5.7.68", "direct_send_rejected"), ("550 5.7.680", "permanent"),
    ("550 5.7.57", "auth_required"), ("550 5.7.570", "permanent"), ("450 4.7.57", "temporary"),
    ("450 4.4.312", "connector_delivery_failure"), ("450 4.4.315", "connector_delivery_failure"),
    ("450 4.4.316", "connector_delivery_failure"), ("450 4.4.317", "connector_delivery_failure"),
    ("450 4.4.318", "connector_delivery_failure"), ("450 4.7.320", "connector_delivery_failure"),
    ("550 5.4.312", "connector_delivery_failure"), ("550 5.4.316", "connector_delivery_failure"),
    ("550 5.4.318", "connector_delivery_failure"), ("550 5.7.320", "connector_delivery_failure"),
    ("450 4.4.311", "temporary"), ("450 4.4.313", "temporary"), ("450 4.4.314", "temporary"),
    ("450 4.4.319", "temporary"), ("450 4.4.320", "temporary"), ("450 4.7.321", "temporary"),
    ("550 5.7.316", "permanent"),
    ("450 4.4.7", "expired"), ("550 5.4.7", "expired"), ("550 5.4.300", "expired"),
    ("450 4.4.300", "temporary"), ("550 5.4.301", "permanent"), ("450 4.4.70", "temporary"),
    ("550 5.4.70", "permanent"), ("450 4.4.1", "temporary"),
    ("250 2.0.0", "success"), ("250 2.6.0", "success"), ("250", "success"), ("2.1.5", "success"),
    ("421", "temporary"), ("554", "permanent"), ("4.0.0", "temporary"), ("5.0.0", "permanent"),
    # Basic and enhanced disagree: the enhanced code decides.
    ("550 4.7.500", "greylisting"), ("451 5.7.606", "banned_ip"), ("250 5.0.0", "permanent"),
    ("550 2.0.0", "success"), ("550 4.4.7", "expired"), ("450 5.7.1", "permanent"),
]


@pytest.mark.parametrize(("codes", "category"), BOUNDARIES, ids=[c for c, _ in BOUNDARIES])
def test_category_boundary(codes: str, category: str) -> None:
    status = classify(f"{codes} Something happened")
    assert status.category == category
    parts = codes.split()
    basic = int(parts[0]) if len(parts[0]) == 3 else None
    enhanced = parts[-1] if "." in parts[-1] else None
    assert (status.smtp_code, status.enhanced_code) == (basic, enhanced)


RELAY_TEXTS: list[tuple[str, Status]] = [
    ("550 5.7.1 Unable to relay", S(550, "5.7.1", "relay_denied")),
    ("550 5.7.1 <u@example.org>: Relay access denied", S(550, "5.7.1", "relay_denied")),
    ("550 5.7.1 RELAYING DENIED", S(550, "5.7.1", "relay_denied")),
    ("550 5.7.1 Client was not authenticated", S(550, "5.7.1", "permanent")),
    ("5.7.1 Unable to relay", S(None, "5.7.1", "relay_denied")),
    ("dsn=5.7.1", S(None, "5.7.1", "permanent")),
    ("554 5.4.1 Relay Access Denied", S(554, "5.4.1", "relay_denied")),
    ("550 5.4.1 Recipient address rejected: Access denied", S(550, "5.4.1", "permanent")),
    ("550 5.4.1 Unable to relay", S(550, "5.4.1", "permanent")),  # 5.4.1 needs "relay access denied"
    ("554 Relay access denied", S(554, None, "relay_denied")),
    ("550 Relaying denied", S(550, None, "relay_denied")),
    ("454 4.7.1 Relay access denied", S(454, "4.7.1", "temporary")),  # a 4xx is never relay_denied
    ("454 Relay access denied", S(454, None, "temporary")),
    ("550 5.7.64 TenantAttribution; Relay Access Denied", S(550, "5.7.64", "relay_denied")),
    ("550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain", S(550, "5.7.54", "relay_denied")),
]


@pytest.mark.parametrize(("text", "expected"), RELAY_TEXTS, ids=[t for t, _ in RELAY_TEXTS])
def test_relay_rules(text: str, expected: Status) -> None:
    assert classify(text) == expected


# --------------------------------------------------------------------------------------------
# Prefixes, wrappers, folding, stamps, multi-line replies, MS codes, throttled IPs.
# --------------------------------------------------------------------------------------------
BUSY = "451 4.7.500 Server busy. Please try again later from [203.0.113.25]. (AS761)"
GREY_BUSY = S(451, "4.7.500", "greylisting", ms="AS761", ip="203.0.113.25")

FORMS: list[tuple[str, Status]] = [
    (BUSY, GREY_BUSY),
    ("smtp;" + BUSY, GREY_BUSY),
    ("SMTP;" + BUSY, GREY_BUSY),
    ("smtp; " + BUSY, GREY_BUSY),
    ("X-Postfix; " + BUSY, GREY_BUSY),
    ("'" + BUSY + "'", GREY_BUSY),
    ("Diagnostic-Code: smtp; " + BUSY, GREY_BUSY),
    (BUSY + " [BN8NAM11FT066.eop-nam11.prod.protection.outlook.com 2023-01-01T00:00:00.000Z 08DAB1234567ABCD]",
     GREY_BUSY),
    ("Nov 20 10:15:02 mx1 postfix/smtp[2211]: 4F1A22C0: to=<u@contoso.com>, "
     "relay=contoso-com.mail.protection.outlook.com[52.101.8.42]:25, delay=0.9, dsn=4.7.500, "
     "status=deferred (host contoso-com.mail.protection.outlook.com[52.101.8.42] said: " + BUSY
     + " (in reply to RCPT TO command))", GREY_BUSY),
    ("host mx.example.com[192.0.2.7] said:451 4.7.500 busy from [203.0.113.25]",
     S(451, "4.7.500", "greylisting", ip="203.0.113.25")),
    ("host mx.example.com[192.0.2.7] refused to talk to me: 554 5.7.1 Service unavailable",
     S(554, "5.7.1", "permanent")),
    # Multi-line reply, continuation form, CRLF between lines.
    ("451-4.7.500 Server busy. Please try again later\r\n451-4.7.500 from [203.0.113.25].\r\n451 4.7.500 (AS761)",
     GREY_BUSY),
    ("250-2.0.0 first\n250 2.0.0 OK", S(250, "2.0.0", "success")),
    # Folded header text: CRLF or LF followed by blanks.
    (("smtp; 451 4.7.650 The mail server [192.0.2.25] has been\r\n    temporarily rate limited due to IP\r\n\t"
      "reputation. (S775)"), S(451, "4.7.650", "greylisting", ms="S775", ip="192.0.2.25")),
    ("smtp; 451\n 4.7.650 The mail server\n [192.0.2.25] has been rate limited (S775)",
     S(451, "4.7.650", "greylisting", ms="S775", ip="192.0.2.25")),
    # Exchange wrappers.
    (("LED=450 4.4.316 Connection refused [Message=Socket error code 10061] "
      "[LastAttemptedServerName=mail.contoso.com] [LastAttemptedServerIP=192.0.2.10:25]"),
     S(450, "4.4.316", "connector_delivery_failure")),
    (("{[{LED=450 4.4.318 Connection was closed abruptly};{MSG=};{FQDN=mail.contoso.com};"
      "{IP=192.0.2.10};{LRT=1/29/2025 7:07:29 PM}]}"), S(450, "4.4.318", "connector_delivery_failure")),
    ("LED=450 4.7.320 Certificate validation failed [Message=451 5.7.3 STARTTLS is required]",
     S(450, "4.7.320", "connector_delivery_failure")),
    ("Remote Server returned '550 4.4.7 QUEUE.Expired; message expired'", S(550, "4.4.7", "expired")),
    ("Remote Server at mail.contoso.com (192.0.2.10) returned '550 5.4.300 Message expired'",
     S(550, "5.4.300", "expired")),
    ("#550 5.4.316 Message expired, connection refused(Socket error code 10061) ##",
     S(550, "5.4.316", "connector_delivery_failure")),
    ("<<< 530 5.7.57 Client not authenticated to send mail", S(530, "5.7.57", "auth_required")),
    ("Status: 5.7.606", S(None, "5.7.606", "banned_ip")),
    ("Status code: 550 5.7.708 Access denied, traffic not accepted from this IP",
     S(550, "5.7.708", "tenant_blocked")),
    ("451 4.7.850 Access denied, please try again later. (S843)",
     S(451, "4.7.850", "greylisting", ms="S843")),
    ("5.7.064 leading zero", S(None, "5.7.64", "relay_denied")),
]


@pytest.mark.parametrize(("text", "expected"), FORMS, ids=range(len(FORMS)))
def test_input_forms(text: str, expected: Status) -> None:
    assert classify(text) == expected


MS_CODES: list[tuple[str, str | None]] = [
    ("550 5.7.520 Access denied, external forwarding not allowed. AS(7550)", "AS7550"),
    ("550 5.7.1 Client host blocked using Spamhaus. AS(1450)", "AS1450"),
    ("550 5.7.520 ... (AS(7550))", "AS7550"),
    ("451 4.7.650 rate limited due to IP reputation (S775)", "S775"),
    ("451 4.7.650 rate limited due to IP reputation (S3113)", "S3113"),
    ("550 5.7.1 part of their network is on our block list (S3150)", "S3150"),
    ("550 5.1.8 Access denied, bad outbound sender AS(XXXXXXX)", None),  # redacted
    ("451 4.7.650 rate limited [S3113]", None),  # bracket form does not occur; stamps are bracketed
    ("550 5.7.1 WAS(123) not a code", None),
    ("550 5.7.1 (S12) too short for an S code", None),
]


@pytest.mark.parametrize(("text", "ms_code"), MS_CODES, ids=range(len(MS_CODES)))
def test_ms_code(text: str, ms_code: str | None) -> None:
    assert classify(text).ms_code == ms_code


THROTTLED: list[tuple[str, str | None]] = [
    ("451 4.7.500 Server busy. Please try again later from [2001:0DB8:0000:0000:0000:0000:0000:0025]. (AS761)",
     "2001:db8::25"),
    ("451 4.7.500 Server busy. Please try again later from [IPv6:2001:db8:0:0::25]. (AS761)", "2001:db8::25"),
    ("451 4.7.500 Server busy. Please try again later from [2001:db8::25]. (AS761)", "2001:db8::25"),
    ("451 4.7.500 Server busy. Please try again later from [198.51.100.7]. (AS761)", "198.51.100.7"),
    ("451 4.7.500 Server busy. Please try again later from [999.1.2.3]. (AS761)", None),  # invalid
    ("451 4.7.500 Server busy. Please try again later from [2001:db8:::1]. (AS761)", None),  # invalid
    ("451 4.7.500 Server busy. Please try again later from [mx.contoso.com]. (AS761)", None),
    ("451 4.7.500 Server busy. Please try again later. (AS761)", None),  # emitter omitted it
    # Only throttling replies carry a throttled IP.
    ("451 4.7.1 Try again later from [203.0.113.5]", None),
    ("550 5.7.606 Access denied, banned sending IP [198.51.100.222].", None),
    ("550 5.7.1 Message rejected from [203.0.113.5]", None),
]


@pytest.mark.parametrize(("text", "ip"), THROTTLED, ids=range(len(THROTTLED)))
def test_throttled_ip(text: str, ip: str | None) -> None:
    assert classify(text).throttled_ip == ip


NOT_CODES: list[tuple[str, Status]] = [
    (None, NONE), ("", NONE), ("   \r\n\t", NONE),
    ("Connection timed out", NONE),
    ("Server busy. Please try again later", NONE),
    ("203.0.113.25 failed after I sent the message.", NONE),
    ("250.1.2.3 connection closed", NONE),
    ("Connection from 5.7.64.10 refused", NONE),  # an IPv4 address, not 5.7.64
    ("Connection from [2.5.1.3] refused", NONE),
    ("2024-05-09T23:34:45.000Z", NONE),
    ("LRT=1/29/2025 7:07:29 PM", NONE),
    ("Deferred since 4.5.2024 08:00", NONE),  # d.M.yyyy date
    ("Microsoft SMTP Server id 8.2.234.1; Thu, 22 Feb 2011 23:34:45 +0900", NONE),
    ("delays=0.06/0/0.61/0.09, delay=400", NONE),
    ("[BN8NAM11FT066.eop-nam11.prod.protection.outlook.com 2023-01-01T00:00:00.000Z 08DAB1234567ABCD]", NONE),
    ("450x 4.4.7-ish", NONE),
    ("354 Start mail input", NONE),  # intermediate reply, not a status
    # An IP or a date before the reply is not the code; the reply's codes are still found.
    ("192.0.2.25 said: 550 5.7.606 Access denied, banned sending IP [192.0.2.25]",
     S(550, "5.7.606", "banned_ip")),
    ("2024-04-29 23:34:45 deferred: 4.4.7 message expired", S(None, "4.4.7", "expired")),
]


@pytest.mark.parametrize(("text", "expected"), NOT_CODES, ids=range(len(NOT_CODES)))
def test_not_mistaken_for_codes(text: str | None, expected: Status) -> None:
    assert classify(text) == expected


def test_status_is_frozen() -> None:
    status = classify(BUSY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        status.category = "none"  # type: ignore[misc]
    assert not hasattr(status, "__dict__")  # slots


# --------------------------------------------------------------------------------------------
# classify_column
# --------------------------------------------------------------------------------------------
COLUMN_SCHEMA = {"smtp_code": pl.Int16, "enhanced_code": pl.String, "ms_code": pl.String,
                 "throttled_ip": pl.String, "category": pl.String}


def _expected_rows(values: list[str | None]) -> list[tuple[object, ...]]:
    return [dataclasses.astuple(classify(v)) for v in values]


def test_classify_column_matches_classify() -> None:
    values = [BUSY, None, "554 Relay access denied", BUSY, "", None, "no code here",
              "smtp;550 5.7.606 banned (AS16012609)", "554 Relay access denied", BUSY, "250 2.0.0 OK"]
    frame = classify_column(pl.Series("Detail", values))
    assert dict(frame.schema) == COLUMN_SCHEMA
    assert frame.rows() == _expected_rows(values)
    assert frame["category"].null_count() == 0
    assert frame.row(1) == (None, None, None, None, "none")


def test_classify_column_edge_series() -> None:
    empty = classify_column(pl.Series("x", [], dtype=pl.String))
    assert empty.height == 0 and dict(empty.schema) == COLUMN_SCHEMA
    all_null = classify_column(pl.Series("x", [None, None]))  # dtype Null
    assert all_null.rows() == [(None, None, None, None, "none")] * 2
    categorical = pl.Series("x", [BUSY, None, BUSY], dtype=pl.Categorical)
    assert classify_column(categorical).rows() == _expected_rows([BUSY, None, BUSY])


def test_classify_column_once_per_distinct_value(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str | None] = []
    real = status_mod.classify

    def counting(text: str | None) -> Status:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(status_mod, "classify", counting)
    distinct = [BUSY, "554 Relay access denied", "550 5.7.64 TenantAttribution; Relay Access Denied"]
    values = [distinct[i % 3] if i % 7 else None for i in range(100_000)]
    frame = status_mod.classify_column(pl.Series("Detail", values))
    assert len(calls) == 3 and None not in calls  # each distinct reply once, nulls never
    assert frame.height == 100_000
    nulls = sum(v is None for v in values)
    busy = values.count(BUSY)
    assert sorted(frame["category"].value_counts().rows()) == sorted(
        [("greylisting", busy), ("none", nulls), ("relay_denied", 100_000 - nulls - busy)])
    monkeypatch.undo()
    assert frame.rows()[:8] == _expected_rows(values[:8])


def test_classify_column_deferrals_differing_only_by_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """Thousands of sources throttled with the same reply cost one classify call, and each row
    still gets its own canonical address (or none when the brackets hold no address)."""
    calls: list[str | None] = []
    real = status_mod.classify
    monkeypatch.setattr(status_mod, "classify", lambda text: calls.append(text) or real(text))
    reply = "451 4.7.500 Server busy. Please try again later from [{}]. (AS761)"
    addresses = [f"198.51.{i // 256}.{i % 256}" for i in range(5_000)] + ["2001:DB8:0::1", "1.2.3", "192.0.2.1"]
    values = [reply.format(a) for a in addresses]
    frame = status_mod.classify_column(pl.Series(values))
    assert len(calls) <= 2  # the template, plus the one row whose brackets hold no address
    monkeypatch.undo()
    assert frame.rows() == _expected_rows(values)
    assert frame["throttled_ip"].to_list()[-3:] == ["2001:db8::1", None, "192.0.2.1"]


# --------------------------------------------------------------------------------------------
# Properties: never raises, always a known category, column == per-element.
# --------------------------------------------------------------------------------------------
FRAGMENTS = ["451", "550", "250", " ", "-", "4.7.500", "5.7.1", "5.7.606", "2.0.0", "4.4.7", "from [",
             "203.0.113.25", "2001:db8::1", "]", ")", "(AS", "AS(", "(S", "761", "said:", "smtp;", "LED=",
             "{[{", "\r\n", "\n\t", "Relay access denied", "'", "#", "<<<", "Status: ", "mail server [",
             ".", ":", "999.1.2.3", "IPv6:", "Message=", "returned '"]
texts = st.one_of(st.none(), st.text(), st.lists(st.sampled_from(FRAGMENTS), max_size=25).map("".join))


@settings(max_examples=400)
@given(texts)
def test_classify_never_raises(text: str | None) -> None:
    status = classify(text)
    assert status.category in CATEGORIES
    assert status.smtp_code is None or 200 <= status.smtp_code <= 559
    assert (status.category == "none") == (status.smtp_code is None and status.enhanced_code is None)
    assert status.throttled_ip is None or status.category == "greylisting"


@settings(max_examples=100)
@given(st.lists(texts, max_size=20))
def test_classify_column_property(values: list[str | None]) -> None:
    frame = classify_column(pl.Series("v", values, dtype=pl.String))
    assert frame.rows() == _expected_rows(values)


def test_a_column_without_replies_gives_what_the_general_path_gives_its_nulls() -> None:
    # EmailEvents and JSON traces log no reply at all: that column skips the distinct-value work
    nulls = pl.Series([None, None, None], dtype=pl.String)
    with_one = pl.Series([None, None, None, "451 4.7.500 Server busy"], dtype=pl.String)
    assert classify_column(nulls).equals(classify_column(with_one).head(3))
    assert classify_column(nulls.head(0)).equals(classify_column(with_one).head(0))
