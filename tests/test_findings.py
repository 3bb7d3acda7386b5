"""`analyzer.findings`: every traffic rule of docs/analysis.md §2 on hand-built attributed records.

Each kind has a positive case with the exact expected finding rows (texts written out by hand
from the rule, never pasted from the output), a near miss that must give nothing, and the whole
set runs on a clean tenant that must give no finding at all. Records are built by `rec`, which
fills every normalized and attribution column with a harmless default so a test only states
what matters to it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer import findings
from analyzer.config import Connectors, InboundConnector, OutboundConnector
from analyzer.findings import (
    FINDINGS_SCHEMA,
    HOTSPOTS_SCHEMA,
    KINDS,
    SEVERITIES,
    Options,
    hotspots,
    sort_findings,
    traffic_findings,
)
from analyzer.readers._schema import SCHEMA
from analyzer.status import classify

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 20, tzinfo=UTC)

ATTRIBUTION: dict[str, pl.DataType] = {
    "inbound_connector": pl.String(),
    "inbound_match": pl.String(),
    "disabled_inbound_connector": pl.String(),
    "outbound_connector": pl.String(),
    "ip_class": pl.String(),
    "sender_accepted": pl.Boolean(),
    "recipient_accepted": pl.Boolean(),
}
COLUMNS: dict[str, pl.DataType] = {**SCHEMA, **ATTRIBUTION}

# A harmless record: an Exchange Online trace row of mail from our on-premises server, matched by
# IP to the OnPremises connector, sent as our accepted domain to a foreign one.
DEFAULTS: dict[str, Any] = {
    "timestamp": T0,
    "source_format": "exo_trace",
    "direction": "inbound",
    "event": "receive",
    "status": "Delivered",
    "client_ip": "192.0.2.10",
    "server_ip": None,
    "sender": "user@contoso.com",
    "sender_domain": "contoso.com",
    "recipient": "someone@example.org",
    "recipient_domain": "example.org",
    "message_id": None,
    "message_key": None,
    "subject": "hello",
    "size_bytes": 1000,
    "connector_name": None,
    "smtp_response": None,
    "smtp_code": None,
    "enhanced_code": None,
    "ms_code": None,
    "throttled_ip": None,
    "source_file": "trace.csv",
    "source_line": 1,
    "inbound_connector": "OnPrem",
    "inbound_match": "ip",
    "disabled_inbound_connector": None,
    "outbound_connector": None,
    "ip_class": "connector",
    "sender_accepted": True,
    "recipient_accepted": False,
}
assert set(DEFAULTS) == set(COLUMNS)

_counter = iter(range(10**9))


def rec(**values: Any) -> dict[str, Any]:
    """One attributed record: DEFAULTS overridden by `values`. Every record gets a unique
    message key (and id, unless given) so samples are predictable; `response=` fills the SMTP
    columns from `analyzer.status.classify`, as the readers do."""
    unknown = set(values) - set(COLUMNS) - {"response", "extra"}
    assert not unknown, unknown
    row = dict(DEFAULTS)
    n = next(_counter)
    row["message_key"] = f"key-{n:07d}"
    response = values.pop("response", None)
    if response is not None:
        status = classify(response)
        row.update(smtp_response=response, smtp_code=status.smtp_code, enhanced_code=status.enhanced_code,
                   ms_code=status.ms_code, throttled_ip=status.throttled_ip)
    extra = values.pop("extra", {})
    row.update(values)
    row.update(extra)
    return row


def frame(rows: list[dict[str, Any]], extra: dict[str, pl.DataType] | None = None) -> pl.LazyFrame:
    """The records as a LazyFrame with exactly the attributed schema (plus `extra` columns)."""
    schema = {**COLUMNS, **(extra or {})}
    data = {name: [r.get(name) for r in rows] for name in schema}
    return pl.DataFrame(data, schema=schema).lazy()


def at(hours: float = 0, seconds: int = 0, day: int = 0) -> dt.datetime:
    return T0 + dt.timedelta(days=day, hours=hours, seconds=seconds)


def inbound(name: str, type_: str = "OnPremises", ips: tuple[str, ...] = (), domains: tuple[str, ...] = ("*",),
            restrict: bool = False, enabled: bool = True, cert: str | None = None) -> InboundConnector:
    return InboundConnector(
        name=name, enabled=enabled, connector_type=type_, connector_source=None, sender_ip_addresses=ips,
        sender_domains=domains, tls_sender_certificate_name=cert, require_tls=False,
        restrict_domains_to_ip_addresses=restrict, restrict_domains_to_certificate=False,
        trusted_organizations=(), associated_accepted_domains=(), cloud_services_mail_enabled=False,
        treat_messages_as_internal=False, ef_skip_ips=(), ef_skip_last_ip=False, ef_users=(), source="test")


def outbound(name: str, domains: tuple[str, ...], hosts: tuple[str, ...], type_: str = "Partner",
             enabled: bool = True, unexported: tuple[str, ...] = ()) -> OutboundConnector:
    return OutboundConnector(
        name=name, enabled=enabled, connector_type=type_, recipient_domains=domains, smart_hosts=hosts,
        use_mx_record=not hosts, tls_settings=None, tls_domain=None, is_transport_rule_scoped=False,
        route_all_messages_via_on_premises=False, all_accepted_domains=False, test_mode=False, source="test",
        unexported=unexported)


CONNECTORS = Connectors(
    inbound=(
        inbound("OnPrem", ips=("192.0.2.0/25",)),
        inbound("OnPrem2", ips=("203.0.113.0/28",)),
        inbound("Fabrikam", "Partner", ips=("198.51.100.0/25",), domains=("fabrikam.com",)),
        inbound("Tailspin", "Partner", ips=("198.51.100.128/26",), domains=("*.tailspin.com",), restrict=True),
        inbound("Woodgrove", "Partner", domains=("woodgrove.com",), cert="mail.woodgrove.com"),
        inbound("Old", ips=("192.0.2.128/25",), enabled=False),
    ),
    outbound=(
        outbound("To Fabrikam", ("fabrikam.com",), ("198.51.100.25",)),
        outbound("To Northwind", ("northwind.com",), ("mail.northwind.com",)),
    ),
)


def run(rows: list[dict[str, Any]], connectors: Connectors = CONNECTORS, options: Options = Options(),
        extra: dict[str, pl.DataType] | None = None, busy: bool = True) -> pl.DataFrame:
    """`traffic_findings` on `rows`, plus (with `busy`) the clean background traffic of
    `busy_tenant`, which uses every connector: without it any test with 100 rows would also
    (rightly) report the connectors it does not use."""
    if busy and connectors is CONNECTORS:
        rows = rows + busy_tenant()
    out = traffic_findings(frame(rows, extra), connectors, (), options)
    assert out.schema == pl.Schema(FINDINGS_SCHEMA)
    return out


def of_kind(out: pl.DataFrame, kind: str) -> list[dict[str, Any]]:
    return out.filter(pl.col("kind") == kind).to_dicts()


def brief(out: pl.DataFrame) -> list[tuple[str, str, str, int]]:
    return [(r["kind"], r["severity"], r["subject"], r["count"]) for r in out.to_dicts()]


# Enough attributed inbound and outbound traffic for unused_connector to look, using every
# connector of CONNECTORS: the background of the tests that look at one other kind.
def busy_tenant() -> list[dict[str, Any]]:
    rows = []
    for i in range(100):
        rows.append(rec(timestamp=at(seconds=i), message_id=f"busy-in-{i:03d}"))
    for name, ip, domain in (("OnPrem2", "203.0.113.5", "contoso.com"),
                             ("Fabrikam", "198.51.100.20", "fabrikam.com"),
                             ("Tailspin", "198.51.100.130", "mail.tailspin.com")):
        rows.append(rec(client_ip=ip, inbound_connector=name, sender_domain=domain,
                        sender_accepted=domain == "contoso.com", recipient_domain="contoso.com",
                        recipient_accepted=True))
    for i in range(100):
        rows.append(rec(timestamp=at(seconds=i), direction="outbound", event="send", client_ip="40.107.1.1",
                        ip_class="microsoft", inbound_connector=None, inbound_match=None,
                        outbound_connector="To Fabrikam" if i % 2 else "To Northwind",
                        recipient_domain="fabrikam.com" if i % 2 else "northwind.com",
                        server_ip="198.51.100.25" if i % 2 else "192.0.2.250"))
    return rows


# ============================================================================================
# Public surface
# ============================================================================================


def test_constants() -> None:
    assert KINDS == ("greylisting_hotspot", "open_relay", "relay_rejected", "non_accepted_domain", "direct_send",
                     "unrouted_inbound", "partner_bypass", "outbound_bypass", "disabled_connector_traffic",
                     "unused_connector", "attribution_mismatch", "connector_config")
    assert SEVERITIES == ("info", "low", "medium", "high")
    assert FINDINGS_SCHEMA["first_seen"] == pl.Datetime("us", "UTC")
    assert list(HOTSPOTS_SCHEMA) == ["source", "source_range", "window_start", "deferrals", "background", "hot",
                                     "covered_by"]
    assert Options() == Options(dt.timedelta(hours=1), 10, 5.0, 100, 100, ())


def test_empty_records_give_empty_typed_frames() -> None:
    out = run([])
    assert out.height == 0
    spots = hotspots(frame([]), CONNECTORS)
    assert spots.height == 0 and spots.schema == pl.Schema(HOTSPOTS_SCHEMA)


def test_sort_findings_severity_kind_subject() -> None:
    def f(kind: str, severity: str, subject: str, first: dt.datetime | None = None) -> dict[str, Any]:
        return {"kind": kind, "severity": severity, "subject": subject, "first_seen": first, "last_seen": first,
                "count": 1, "detail": "d", "recommendation": "r", "sample_message_ids": []}
    frame_ = pl.DataFrame([
        f("unused_connector", "info", "a"),
        f("direct_send", "medium", "b"),
        f("open_relay", "high", "z"),
        f("direct_send", "medium", "a"),
        f("greylisting_hotspot", "high", "x", at(2)),
        f("greylisting_hotspot", "high", "x", at(1)),
        f("attribution_mismatch", "low", "a"),
        f("connector_config", "medium", "c"),
    ], schema=FINDINGS_SCHEMA, orient="row")
    got = [(r["severity"], r["kind"], r["subject"], r["first_seen"]) for r in sort_findings(frame_).to_dicts()]
    assert got == [
        ("high", "greylisting_hotspot", "x", at(1)),
        ("high", "greylisting_hotspot", "x", at(2)),
        ("high", "open_relay", "z", None),
        ("medium", "connector_config", "c", None),
        ("medium", "direct_send", "a", None),
        ("medium", "direct_send", "b", None),
        ("low", "attribution_mismatch", "a", None),
        ("info", "unused_connector", "a", None),
    ]


# ============================================================================================
# Clean tenant: well-configured connectors, normal traffic -> nothing at all
# ============================================================================================


def clean_tenant() -> list[dict[str, Any]]:
    rows = busy_tenant()
    # Internet mail to us from many senders, each well under the unrouted threshold.
    for i in range(300):
        rows.append(rec(timestamp=at(seconds=i), client_ip=f"185.220.{i % 30}.{i % 7 + 1}", ip_class="other",
                        inbound_connector=None, inbound_match=None, sender_domain=f"sender{i % 40}.example",
                        sender_accepted=False, recipient_domain="contoso.com", recipient_accepted=True,
                        connector_name=None))
    # Partner mail through the right connectors, the logged connector agreeing (in another case).
    for i in range(20):
        rows.append(rec(client_ip="198.51.100.21", inbound_connector="Fabrikam", sender_domain="fabrikam.com",
                        sender_accepted=False, recipient_domain="contoso.com", recipient_accepted=True,
                        source_format="exo_trace_detail", direction="unknown", connector_name="fabrikam "))
    # Deferrals that are not hot: isolated ones, and a steady trickle of 8/h for a day.
    for h in range(24):
        for i in range(8):
            rows.append(rec(timestamp=at(h, i), direction="outbound", event="defer", source_format="postfix",
                            client_ip="192.0.2.10", response="451 4.7.500 Server busy. Please try again later "
                            "from [192.0.2.10]. (AS761)"))
    rows.append(rec(timestamp=at(30), direction="outbound", event="defer", source_format="msgtrk",
                    client_ip="192.0.2.11", response="451 4.7.500 Server busy (AS761)"))
    # On-premises relaying of our own mail (sender accepted) and inbound mail for us: not open relay.
    for i in range(5):
        key = f"EX01/q{i}"
        rows.append(rec(source_format="msgtrk", source_file="EX01.LOG", message_key=key, event="receive",
                        client_ip="185.220.1.1", ip_class="other", sender_domain="contoso.com",
                        sender_accepted=True, recipient_domain="example.org", recipient_accepted=False))
        rows.append(rec(source_format="msgtrk", source_file="EX01.LOG", message_key=key, event="send",
                        client_ip="192.0.2.10", sender_domain="contoso.com", sender_accepted=True,
                        recipient_domain="example.org", recipient_accepted=False))
    return rows


def test_clean_tenant_has_no_findings() -> None:
    out = run(clean_tenant(), busy=False)
    assert out.height == 0, out.to_dicts()
    # ... and its hotspots table still lists every deferral window, none hot.
    spots = hotspots(frame(clean_tenant()), CONNECTORS)
    assert spots.height == 25 and not spots["hot"].any()


# ============================================================================================
# greylisting_hotspot
# ============================================================================================

GREY = "451 4.7.500 Server busy. Please try again later from [{ip}]. (AS761)"


def deferrals(source: str, per_window: dict[int, int], *, via: str | None = "192.0.2.10",
              prefix: str | None = None, domains: tuple[str, ...] = ("contoso.com",),
              response: str = GREY) -> list[dict[str, Any]]:
    """`per_window[h]` deferrals of `source` in hour h (one a second from the hour's start).
    With `via` the source is named in the reply (throttled_ip) and client_ip is our server;
    without, the reply has no address and client_ip is the source."""
    rows = []
    prefix = prefix or f"g{source.rsplit('.', 1)[-1]}"
    for hour, n in per_window.items():
        for i in range(n):
            text = response.format(ip=source) if via else response.replace(" from [{ip}]", "")
            rows.append(rec(timestamp=at(hour, i), direction="outbound", event="defer", source_format="postfix",
                            client_ip=via or source, response=text, recipient_domain=domains[i % len(domains)],
                            message_id=f"{prefix}-{hour:02d}-{i:03d}"))
    return rows


def test_greylisting_hotspot_exact() -> None:
    rows = deferrals("203.0.113.77", {0: 1, 10: 143, 11: 120}, domains=("contoso.com", "contoso.com", "fabrikam.com"))
    # the reply without "from [ip]": the row's own client IP is the source
    rows += deferrals("203.0.113.77", {12: 60}, via=None, domains=("contoso.com", "contoso.com", "fabrikam.com"))
    rows += deferrals("203.0.113.78", {0: 1, 10: 30})
    out = run(rows)
    assert out.to_dicts() == [
        {
            "kind": "greylisting_hotspot", "severity": "high", "subject": "203.0.113.77",
            "first_seen": at(10), "last_seen": at(12, 59), "count": 323,
            "detail": "peak 143 deferrals in the hour from 2026-11-20 10:00 UTC (background 0/h), 3 hot hours, "
                      "codes AS761, to contoso.com, fabrikam.com; 203.0.113.0/24 has 1 other hot source; "
                      "not in any inbound connector",
            # OnPrem2's range is in the same /16; OnPrem (first in order) is not
            "recommendation": "Add 203.0.113.77/32 to the SenderIPAddresses of inbound connector 'OnPrem2'",
            "sample_message_ids": ["g77-10-000", "g77-10-001", "g77-10-002", "g77-10-003", "g77-10-004"],
        },
        {
            "kind": "greylisting_hotspot", "severity": "medium", "subject": "203.0.113.78",
            "first_seen": at(10), "last_seen": at(10, 29), "count": 30,
            "detail": "peak 30 deferrals in the hour from 2026-11-20 10:00 UTC (background 0/h), 1 hot hour, "
                      "codes AS761, to contoso.com; 203.0.113.0/24 has 1 other hot source; "
                      "not in any inbound connector",
            "recommendation": "Add 203.0.113.78/32 to the SenderIPAddresses of inbound connector 'OnPrem2'",
            "sample_message_ids": ["g78-10-000", "g78-10-001", "g78-10-002", "g78-10-003", "g78-10-004"],
        },
    ]


def test_greylisting_covered_source_is_low_and_first_onprem_fallback() -> None:
    # 192.0.2.50 is in OnPrem's range; 100.1.2.3 has no OnPremises connector in its /16.
    rows = deferrals("192.0.2.50", {0: 1, 5: 12}) + deferrals("100.1.2.3", {0: 1, 5: 70})
    got = run(rows).to_dicts()
    assert [(r["subject"], r["severity"], r["count"]) for r in got] == [("100.1.2.3", "high", 70),
                                                                       ("192.0.2.50", "low", 12)]
    assert got[0]["recommendation"] == "Add 100.1.2.3/32 to the SenderIPAddresses of inbound connector 'OnPrem'"
    assert got[1]["recommendation"] == ("Source is in connector 'OnPrem': check that its TLS certificate and "
                                        "SenderIPAddresses still match this server")
    assert got[1]["detail"].endswith("192.0.2.0/24 has no other hot source; in inbound connector 'OnPrem'")


def test_greylisting_without_onprem_connector_recommends_creating_one() -> None:
    got = run(deferrals("100.1.2.3", {0: 1, 5: 20}), connectors=Connectors()).to_dicts()
    assert [(r["severity"], r["recommendation"]) for r in got] == [
        ("medium", "Create an OnPremises inbound connector with SenderIPAddresses 100.1.2.3/32 "
                   "(Microsoft's fix for 451 4.7.500-699)")]


def test_greylisting_ipv6_source_range_and_advice() -> None:
    got = run(deferrals("2001:db8:1:2::25", {0: 1, 5: 15}, prefix="v6")).to_dicts()
    assert len(got) == 1
    assert got[0]["detail"] == ("peak 15 deferrals in the hour from 2026-11-20 05:00 UTC (background 0/h), "
                                "1 hot hour, codes AS761, to contoso.com; 2001:db8:1:2::/64 has no other hot "
                                "source; not in any inbound connector")
    assert got[0]["recommendation"] == (
        "Exchange Online connectors take IPv4 addresses only: identify 2001:db8:1:2::25 by its TLS certificate "
        "in inbound connector 'OnPrem' (TlsSenderCertificateName), or send over IPv4 "
        "(Microsoft's fix for 451 4.7.500-699)")


def test_greylisting_codes_4_7_650_and_850_range_count() -> None:
    rows = deferrals("100.1.2.3", {0: 1, 2: 6}, response="451 4.7.650 The mail server [{ip}] has been "
                     "temporarily rate limited due to IP reputation. (S775)")
    rows += deferrals("100.1.2.3", {2: 6}, prefix="b", response="451 4.7.850 Access denied, please try again "
                      "later from [{ip}]")
    rows += deferrals("100.1.2.3", {2: 50}, prefix="c", response="451 4.7.700 not greylisting from [{ip}]")
    got = run(rows).to_dicts()
    assert [(r["subject"], r["count"]) for r in got] == [("100.1.2.3", 12)]
    assert ", codes S775, to " in got[0]["detail"]


def test_greylisting_near_misses() -> None:
    # 9 deferrals in an hour with a minimum of 10
    nine = deferrals("100.1.2.3", {0: 1, 5: 9})
    assert run(nine).height == 0
    # a steady 5/h background and a burst of only 4x it (20 < 25), though above the minimum
    steady = deferrals("100.1.2.4", {h: 5 for h in range(10)} | {10: 20})
    assert run(steady).height == 0
    # isolated deferrals
    assert run(deferrals("100.1.2.6", {0: 1, 7: 1, 30: 2})).height == 0


def test_greylisting_lone_burst_without_history_is_hot() -> None:
    # the background spans the analysed period (here hours 0..3 of the records), so a source
    # throttled in one sudden burst stands out against its empty windows
    quiet = deferrals("100.1.2.9", {0: 1})  # another source: makes the period 0..3
    lone = deferrals("100.1.2.5", {3: 200})
    assert brief(run(quiet + lone)) == [("greylisting_hotspot", "high", "100.1.2.5", 200)]


def test_greylisting_burst_factor_boundary_and_options() -> None:
    exactly_5x = deferrals("100.1.2.4", {h: 5 for h in range(10)} | {10: 25})
    assert brief(run(exactly_5x)) == [("greylisting_hotspot", "medium", "100.1.2.4", 25)]
    four_x = deferrals("100.1.2.4", {h: 5 for h in range(10)} | {10: 20})
    assert brief(run(four_x, options=Options(hotspot_burst_factor=4.0))) == [
        ("greylisting_hotspot", "medium", "100.1.2.4", 20)]
    nine = deferrals("100.1.2.3", {0: 1, 5: 9})
    assert brief(run(nine, options=Options(hotspot_min_deferrals=9))) == [
        ("greylisting_hotspot", "medium", "100.1.2.3", 9)]


def test_greylisting_two_bursts_give_two_findings() -> None:
    rows = deferrals("100.1.2.3", {0: 1, 1: 15, 2: 12, 3: 1, 20: 1, 30: 40, 40: 1})
    got = run(rows).to_dicts()
    assert [(r["subject"], r["count"], r["first_seen"], r["last_seen"]) for r in got] == [
        ("100.1.2.3", 27, at(1), at(2, 11)),
        ("100.1.2.3", 40, at(30), at(30, 39)),
    ]
    assert "peak 15 deferrals in the hour from 2026-11-20 01:00 UTC (background 0/h), 2 hot hours" in got[0]["detail"]


def test_greylisting_window_option() -> None:
    # 30-minute windows: the hour-10 burst (143 in the first 143 s) is one hot window of 30 min
    rows = deferrals("100.1.2.3", {0: 1, 10: 143})
    got = run(rows, options=Options(hotspot_window=dt.timedelta(minutes=30))).to_dicts()
    assert len(got) == 1
    assert got[0]["detail"].startswith("peak 143 deferrals in the 30 min window from 2026-11-20 10:00 UTC "
                                       "(background 0/30 min), 1 hot window (30 min), codes AS761")


def test_hotspots_table_and_background_with_empty_windows() -> None:
    # A: windows 0..4 with counts 2, -, -, 4, 30: sorted [0, 0, 2, 4, 30], median 2 -> 30 >= 5*2 hot
    # B: the period's windows 0..4 with counts 1, -, -, 3, -: [0, 0, 0, 1, 3], median 0 -> max(0, 1) = 1
    # (the background spans the analysed period, first to last record, not the source's own span)
    rows = deferrals("100.1.2.3", {0: 2, 3: 4, 4: 30}) + deferrals("192.0.2.9", {0: 1, 3: 3})
    spots = hotspots(frame(rows), CONNECTORS)
    assert spots.schema == pl.Schema(HOTSPOTS_SCHEMA)
    assert spots.rows() == [
        ("100.1.2.3", "100.1.2.0/24", at(0), 2, 2.0, False, None),
        ("100.1.2.3", "100.1.2.0/24", at(3), 4, 2.0, False, None),
        ("100.1.2.3", "100.1.2.0/24", at(4), 30, 2.0, True, None),
        ("192.0.2.9", "192.0.2.0/24", at(0), 1, 0.0, False, "OnPrem"),
        ("192.0.2.9", "192.0.2.0/24", at(3), 3, 0.0, False, "OnPrem"),
    ]
    # an even number of windows: the median is the mean of the middle two
    spots = hotspots(frame(deferrals("192.0.2.9", {0: 1, 3: 3})), CONNECTORS)
    assert spots["background"].to_list() == [0.5, 0.5]  # [0, 0, 1, 3] -> (0 + 1) / 2
    # exactly at the factor: 10 = 5 * 2
    spots = hotspots(frame(deferrals("100.1.2.3", {0: 2, 3: 4, 4: 10})), CONNECTORS)
    assert spots["hot"].to_list() == [False, False, True]
    # windows aligned to the epoch, not to the first record: 09:59 and 10:01 are two windows
    rows = [rec(timestamp=at(9, 59 * 60), response=GREY.format(ip="100.1.2.3")),
            rec(timestamp=at(10, 60), response=GREY.format(ip="100.1.2.3"))]
    assert hotspots(frame(rows), CONNECTORS)["window_start"].to_list() == [at(9), at(10)]


def test_hotspot_coverage_prefers_restricting_partner_on_same_prefix() -> None:
    connectors = Connectors(inbound=(inbound("A", ips=("100.1.2.0/24",)),
                                     inbound("B", "Partner", ips=("100.1.2.0/24",), restrict=True),
                                     inbound("C", ips=("100.1.2.3",))))
    rows = deferrals("100.1.2.3", {0: 1}) + deferrals("100.1.2.4", {0: 1}) + deferrals("100.1.9.9", {0: 1})
    assert hotspots(frame(rows), connectors)["covered_by"].to_list() == ["C", "B", None]


# ============================================================================================
# open_relay
# ============================================================================================


def relayed(key: str, source_file: str, fmt: str, *, ip: str = "185.220.101.5", ip_class: str = "other",
            sender: str = "spam.example", recipients: tuple[str, ...] = ("victim.example",),
            rcpt_accepted: bool = False, passed: str | None = "send", status: str = "sent",
            mid: str | None = None, hour: float = 1) -> list[dict[str, Any]]:
    """A message received by an on-premises server from `ip` and (with `passed`) handed on."""
    common = dict(source_format=fmt, source_file=source_file, message_key=key, message_id=mid,
                  sender_domain=sender, sender_accepted=False, direction="unknown",
                  inbound_connector=None, inbound_match=None)
    rows = []
    if fmt == "postfix":  # Postfix: the smtpd receive record carries no recipient
        rows.append(rec(**common, timestamp=at(hour), event="receive", status="accepted", client_ip=ip,
                        ip_class=ip_class, recipient_domain=None, recipient_accepted=None))
    else:
        for r in recipients:
            rows.append(rec(**common, timestamp=at(hour), event="receive", status="RECEIVE", client_ip=ip,
                            ip_class=ip_class, recipient_domain=r, recipient_accepted=rcpt_accepted))
    if passed:
        for r in recipients:
            rows.append(rec(**common, timestamp=at(hour, 5), event=passed, status=status, client_ip="10.0.0.5",
                            ip_class="private", server_ip="203.0.113.250", recipient_domain=r,
                            recipient_accepted=rcpt_accepted))
    return rows


def test_open_relay_exact() -> None:
    rows = relayed("EX01-k1", "logs/EX01/MSGTRK2026112001-1.LOG", "msgtrk", mid="<m1@spam.example>",
                   recipients=("victim.example", "other.example"))
    rows += relayed("mx1/4F3A2", "logs/mx1/mail.log", "postfix", hour=2)
    rows += relayed("EX01-k3", "logs/EX01/MSGTRK2026112001-1.LOG", "msgtrk", mid="<m3@spam.example>",
                    sender="spam2.example", hour=3)
    out = run(rows)
    assert out.to_dicts() == [{
        "kind": "open_relay", "severity": "high", "subject": "185.220.101.5",
        "first_seen": at(1), "last_seen": at(3, 5), "count": 3,
        "detail": "3 messages received from 185.220.101.5 (not a connector, private or Microsoft address) from "
                  "spam.example, spam2.example to victim.example, other.example, none of them accepted domains, "
                  "were passed on by logs/EX01/MSGTRK2026112001-1.LOG, logs/mx1/mail.log",
        "recommendation": "Restrict relaying on this server: require authentication or limit the receive "
                          "connector's RemoteIPRanges / Postfix mynetworks",
        "sample_message_ids": ["<m1@spam.example>", "<m3@spam.example>", "mx1/4F3A2"],
    }]


def test_open_relay_near_misses() -> None:
    cases = {
        "recipient domain accepted": relayed("k1", "a.log", "msgtrk", rcpt_accepted=True),
        "one of two recipients accepted": relayed("k2", "a.log", "msgtrk")
        + [rec(source_format="msgtrk", source_file="a.log", message_key="k2", event="send", direction="unknown",
               client_ip="10.0.0.5", ip_class="private", inbound_connector=None, inbound_match=None,
               sender_domain="spam.example", sender_accepted=False, recipient_domain="contoso.com",
               recipient_accepted=True)],
        "never passed on": relayed("k3", "a.log", "msgtrk", passed=None),
        "postfix deferred, not sent": relayed("k4", "b.log", "postfix", passed="defer", status="deferred"),
        "source is private": relayed("k5", "a.log", "msgtrk", ip_class="private"),
        "source is a connector": relayed("k6", "a.log", "msgtrk", ip_class="connector"),
        "not an on-premises log": relayed("k7", "trace.csv", "exo_extended"),
        "same key, other server": relayed("k8", "a.log", "msgtrk", passed=None)
        + [rec(source_format="msgtrk", source_file="b.log", message_key="k8", event="send", direction="unknown",
               client_ip="10.0.0.5", ip_class="private", inbound_connector=None, inbound_match=None,
               sender_domain="spam.example", sender_accepted=False, recipient_domain="victim.example",
               recipient_accepted=False)],
    }
    for name, rows in cases.items():
        assert run(rows).height == 0, name
    # the null sender of a bounce is not a foreign sender
    bounce = relayed("k9", "a.log", "msgtrk")
    for r in bounce:
        r.update(sender_domain=None, sender_accepted=None)
    assert run(bounce).height == 0


# ============================================================================================
# relay_rejected
# ============================================================================================


def test_relay_rejected_exact() -> None:
    rows = [rec(timestamp=at(1, i), direction="outbound", event="fail", client_ip="192.0.2.10",
                response="550 5.7.64 TenantAttribution; Relay Access Denied [AM6PR.eurprd.prod.outlook.com]",
                sender_domain="contoso.com", recipient_domain="example.org", message_id=f"<r{i}@contoso.com>")
            for i in range(3)]
    rows.append(rec(timestamp=at(2), direction="outbound", event="fail", client_ip="192.0.2.10",
                    response="554 5.7.1 <x@example.net>: Relay access denied", recipient_domain="example.net",
                    message_id="<r9@contoso.com>"))
    rows.append(rec(timestamp=at(3), direction="inbound", event="fail", client_ip=None,
                    response="554 Relay access denied", sender_domain="fabrikam.com", recipient_domain="example.net"))
    rows.append(rec(timestamp=at(4), event="fail", client_ip="198.51.100.140",
                    response="550 5.7.51 TenantInboundAttribution; Rejecting message", sender_domain="x.tailspin.com",
                    recipient_domain="contoso.com", message_id="<t1@tailspin.com>", inbound_connector="Tailspin"))
    rows.append(rec(timestamp=at(5), event="fail", client_ip="185.220.101.5",
                    response="550 5.7.68 TenantInboundAttribution; Direct Send not allowed for this organization",
                    recipient_domain="contoso.com", message_id="<d1@contoso.com>", inbound_connector=None))
    rows.append(rec(timestamp=at(6), event="fail", client_ip="185.220.101.6",
                    response="550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain",
                    recipient_domain="example.net", message_id="<u1@x>", inbound_connector=None))
    rows.append(rec(timestamp=at(7), event="fail", client_ip="185.220.101.6",
                    response="550 5.4.1 Recipient address rejected: Relay Access Denied",
                    recipient_domain="example.net", message_id="<u2@x>", inbound_connector=None))
    got = run(rows).to_dicts()
    # sorted by subject; one source's two codes by first_seen
    assert [(r["subject"], r["severity"], r["count"], r["first_seen"]) for r in got] == [
        ("185.220.101.5", "medium", 1, at(5)),
        ("185.220.101.6", "medium", 1, at(6)),
        ("185.220.101.6", "medium", 1, at(7)),
        ("192.0.2.10", "medium", 3, at(1)),
        ("192.0.2.10", "medium", 1, at(2)),
        ("198.51.100.140", "medium", 1, at(4)),
        ("unknown", "medium", 1, at(3)),
    ]
    by_detail = {r["detail"]: r for r in got}
    first = by_detail["3 records (3 messages) rejected with 5.7.64 (TenantAttribution: relay through the "
                      "OnPremises connector refused), from contoso.com to example.org"]
    assert first == {
        "kind": "relay_rejected", "severity": "medium", "subject": "192.0.2.10",
        "first_seen": at(1), "last_seen": at(1, 2), "count": 3,
        "detail": first["detail"],
        "recommendation": "The OnPremises connector no longer matches this server (certificate name or source IP "
                          "changed): update the connector",
        "sample_message_ids": ["<r0@contoso.com>", "<r1@contoso.com>", "<r2@contoso.com>"],
    }
    recs = {(r["subject"], r["detail"].split(" rejected with ")[1].split(" ")[0]): r["recommendation"] for r in got}
    refused = ("The server refused to relay: if this sender is legitimate, add it to a relay connector, "
               "else nothing to do")
    assert recs == {
        ("192.0.2.10", "5.7.64"): first["recommendation"],
        ("192.0.2.10", "5.7.1"): refused,
        ("unknown", "554"): refused,
        ("198.51.100.140", "5.7.51"): "The partner connector restricts this domain to other IPs/certificate: add "
                                      "the IP or fix the certificate",
        ("185.220.101.5", "5.7.68"): "Direct Send is rejected for this tenant: send through a connector or "
                                     "authenticated SMTP",
        ("185.220.101.6", "5.7.54"): refused,
        ("185.220.101.6", "5.4.1"): refused,
    }


def test_relay_rejected_near_misses() -> None:
    rows = [
        rec(event="fail", response="550 5.7.1 Message rejected as spam by Content Filtering"),
        rec(event="fail", response="550 5.4.1 Recipient address rejected: Access denied"),
        rec(event="fail", response="550 5.7.57 Client was not authenticated to send anonymous mail"),
        rec(event="fail", response="550 5.7.606 Access denied, banned sending IP [192.0.2.10]"),
        rec(event="fail", response="450 4.7.1 Relay access denied, try later"),
    ]
    assert run(rows).height == 0


RELAY_TEXTS = [
    "550 5.7.64 TenantAttribution; Relay Access Denied",
    "550 5.7.51 TenantInboundAttribution; There is a partner connector configured",
    "550 5.7.68 TenantInboundAttribution; Direct Send not allowed",
    "550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain",
    "554 5.7.1 <a@b.c>: Relay access denied",
    "550 5.7.1 Unable to relay",
    "550 5.7.1 relaying denied",
    "550 5.7.1 rejected as spam",
    "550 5.4.1 Relay Access Denied",
    "550 5.4.1 Recipient address rejected: Access denied",
    "554 Relay access denied",
    "554 relaying\r\n  denied",
    "550 5.7.1 Unable\r\n to relay",
    "451 4.7.500 Server busy",
    "450 Relay access denied",
    "250 2.0.0 OK relay access denied",
    None,
]


def test_relay_expression_agrees_with_status_classify() -> None:
    rows = [rec(response=t) if t else rec() for t in RELAY_TEXTS]
    got = frame(rows).select(findings._relay_rejection()).collect().to_series().to_list()
    want = [classify(t).category in ("relay_denied", "attribution_rejected", "direct_send_rejected")
            for t in RELAY_TEXTS]
    assert got == want
    assert sum(want) == 11


# ============================================================================================
# non_accepted_domain
# ============================================================================================


def test_non_accepted_domain_exact() -> None:
    rows = [rec(timestamp=at(1, i), client_ip=ip, sender_domain="oldbrand.com", sender_accepted=False,
                message_id=f"<n{i}@oldbrand.com>") for i, ip in enumerate(["192.0.2.10", "192.0.2.11", "192.0.2.10"])]
    out = run(rows)
    assert out.to_dicts() == [{
        "kind": "non_accepted_domain", "severity": "medium", "subject": "OnPrem: oldbrand.com",
        "first_seen": at(1), "last_seen": at(1, 2), "count": 3,
        "detail": "3 records (3 messages) with sender domain oldbrand.com, which is not an accepted domain, came "
                  "through OnPremises connector 'OnPrem' from 192.0.2.10, 192.0.2.11",
        "recommendation": "Add oldbrand.com as an accepted domain, or stop relaying mail from it through 'OnPrem' "
                          "(Microsoft rejects it since Nov 2023)",
        "sample_message_ids": ["<n0@oldbrand.com>", "<n1@oldbrand.com>", "<n2@oldbrand.com>"],
    }]


def test_non_accepted_domain_near_misses() -> None:
    rows = [
        rec(sender_domain="oldbrand.com", sender_accepted=False, inbound_match="domain"),  # not by IP
        rec(sender_domain="fabrikam.com", sender_accepted=False, client_ip="198.51.100.20",
            inbound_connector="Fabrikam"),  # a Partner connector
        rec(sender_domain="contoso.com", sender_accepted=True),  # accepted
        rec(sender_domain=None, sender_accepted=None),  # null sender
        rec(sender_domain="oldbrand.com", sender_accepted=False, direction="outbound"),  # not inbound
    ]
    assert run(rows).height == 0


# ============================================================================================
# direct_send
# ============================================================================================


def test_direct_send_exact() -> None:
    common = dict(inbound_connector=None, inbound_match=None, sender_domain="contoso.com", sender_accepted=True,
                  recipient_domain="contoso.com", recipient_accepted=True)
    rows = [rec(**common, timestamp=at(2, i), client_ip="185.220.101.7", ip_class="other",
                message_id=f"<ds{i}@contoso.com>") for i in range(7)]
    rows.append(rec(**common, timestamp=at(3), client_ip="10.1.2.3", ip_class="private", message_id="<p@x>"))
    out = run(rows)
    assert out.to_dicts() == [
        {
            "kind": "direct_send", "severity": "medium", "subject": "10.1.2.3",
            "first_seen": at(3), "last_seen": at(3), "count": 1,
            "detail": "1 record (1 message) from 10.1.2.3 (a private address) sent as accepted domain contoso.com "
                      "to contoso.com without any inbound connector",
            "recommendation": "If 10.1.2.3 is your device or app, create an OnPremises connector for it; otherwise "
                              "it is spoofing your domain (enable RejectDirectSend)",
            "sample_message_ids": ["<p@x>"],
        },
        {
            "kind": "direct_send", "severity": "medium", "subject": "185.220.101.7",
            "first_seen": at(2), "last_seen": at(2, 6), "count": 7,
            "detail": "7 records (7 messages) from 185.220.101.7 (an address outside every connector) sent as "
                      "accepted domain contoso.com to contoso.com without any inbound connector",
            "recommendation": "If 185.220.101.7 is your device or app, create an OnPremises connector for it; "
                              "otherwise it is spoofing your domain (enable RejectDirectSend)",
            "sample_message_ids": ["<ds0@contoso.com>", "<ds1@contoso.com>", "<ds2@contoso.com>",
                                   "<ds3@contoso.com>", "<ds4@contoso.com>"],
        },
    ]


def test_direct_send_near_misses() -> None:
    common = dict(inbound_connector=None, inbound_match=None, client_ip="185.220.101.7", ip_class="other")
    rows = [
        rec(**common, sender_domain="example.net", sender_accepted=False),  # sender domain not accepted
        rec(**common | {"ip_class": "microsoft"}, sender_accepted=True),  # from Microsoft
        rec(**common | {"inbound_connector": "OnPrem"}, sender_accepted=True),  # through a connector
        rec(**common | {"client_ip": None}, sender_accepted=True),  # no client IP: not an inbound row
    ]
    assert run(rows).height == 0


# ============================================================================================
# unrouted_inbound
# ============================================================================================


def unrouted(ip: str, n: int, label: str | None = None, sender: str = "bulk.example") -> list[dict[str, Any]]:
    return [rec(timestamp=at(0, i), client_ip=ip, ip_class="other", inbound_connector=None, inbound_match=None,
                sender_domain=sender, sender_accepted=False, recipient_domain="contoso.com", recipient_accepted=True,
                message_id=f"<u{ip}-{i:04d}>", extra={"asn": label}) for i in range(n)]


def test_unrouted_inbound_exact() -> None:
    rows = unrouted("100.2.0.1", 100) + unrouted("100.2.0.2", 1000, sender="news.example")
    out = run(rows)
    assert out.to_dicts() == [
        {
            "kind": "unrouted_inbound", "severity": "low", "subject": "100.2.0.2",
            "first_seen": at(0), "last_seen": at(0, 999), "count": 1000,
            "detail": "1,000 records (1,000 messages) from 100.2.0.2 matched no inbound connector, sender domains "
                      "news.example",
            "recommendation": "High-volume sender outside every connector: if it is a partner, create a Partner "
                              "connector for its IPs",
            "sample_message_ids": [f"<u100.2.0.2-{i:04d}>" for i in range(5)],
        },
        {
            "kind": "unrouted_inbound", "severity": "info", "subject": "100.2.0.1",
            "first_seen": at(0), "last_seen": at(0, 99), "count": 100,
            "detail": "100 records (100 messages) from 100.2.0.1 matched no inbound connector, sender domains "
                      "bulk.example",
            "recommendation": "High-volume sender outside every connector: if it is a partner, create a Partner "
                              "connector for its IPs",
            "sample_message_ids": [f"<u100.2.0.1-{i:04d}>" for i in range(5)],
        },
    ]


def test_unrouted_inbound_near_miss_and_threshold_option() -> None:
    rows = unrouted("100.2.0.1", 99)
    assert run(rows).height == 0
    assert brief(run(rows, options=Options(unrouted_min_messages=99))) == [
        ("unrouted_inbound", "info", "100.2.0.1", 99)]
    # sender_accepted True is direct_send, not unrouted; "private" is not "other"
    accepted = [r | {"sender_accepted": True} for r in unrouted("100.2.0.3", 150)]
    assert {r["kind"] for r in run(accepted).to_dicts()} == {"direct_send"}
    private = [r | {"ip_class": "private"} for r in unrouted("10.2.0.3", 150)]
    assert run(private).height == 0
    # a null sender_accepted ("not True") counts
    nulls = [r | {"sender_accepted": None, "sender_domain": None} for r in unrouted("100.2.0.4", 100)]
    assert brief(run(nulls)) == [("unrouted_inbound", "info", "100.2.0.4", 100)]


def test_unrouted_inbound_long_tail_gives_what_a_lower_threshold_gives_above_the_threshold() -> None:
    """The rule counts rows per value first and aggregates only the values over the threshold when
    they hold a minority of the rows (a long tail of small senders); otherwise everything. Both
    ways give the same rows."""
    rows = unrouted("100.5.0.1", 150) + unrouted("100.5.0.2", 120, sender="news.example")
    for i in range(60):  # 300 rows from 60 small senders: the two over 100 hold under 80%
        rows += unrouted(f"100.6.0.{i}", 5)
    long_tail = run(rows).filter(pl.col("kind") == "unrouted_inbound")
    everything = run(rows, options=Options(unrouted_min_messages=1)).filter(
        (pl.col("kind") == "unrouted_inbound") & (pl.col("count") >= 100))
    assert brief(long_tail) == [("unrouted_inbound", "info", "100.5.0.1", 150),
                                ("unrouted_inbound", "info", "100.5.0.2", 120)]
    assert long_tail.equals(everything)


def test_unrouted_inbound_ip_table_groups() -> None:
    rows = unrouted("100.3.0.1", 60, "AS64500") + unrouted("100.3.0.2", 50, "AS64500")
    rows += unrouted("100.3.0.9", 99, None)  # in no range of the table
    rows += unrouted("100.4.0.1", 40, "AS64511")
    extra = {"asn": pl.String()}
    out = run(rows, options=Options(ip_tables=("asn",)), extra=extra)
    assert out.to_dicts() == [{
        "kind": "unrouted_inbound", "severity": "info", "subject": "asn=AS64500",
        "first_seen": at(0), "last_seen": at(0, 59), "count": 110,
        "detail": "110 records (110 messages) from 2 addresses labelled AS64500 in asn (100.3.0.1, 100.3.0.2) "
                  "matched no inbound connector, sender domains bulk.example",
        "recommendation": "High-volume sender outside every connector: if it is a partner, create a Partner "
                          "connector for its IPs",
        "sample_message_ids": ["<u100.3.0.1-0000>", "<u100.3.0.1-0001>", "<u100.3.0.1-0002>", "<u100.3.0.1-0003>",
                               "<u100.3.0.1-0004>"],
    }]
    # without the option the label column is ignored
    assert run(rows, extra=extra).height == 0


# ============================================================================================
# partner_bypass
# ============================================================================================


def partner_mail(ip: str, sender: str, n: int = 1, connector: str | None = None, tag: str = "p",
                 hour: float = 4) -> list[dict[str, Any]]:
    return [rec(timestamp=at(hour, i), client_ip=ip, ip_class="connector" if connector else "other",
                inbound_connector=connector, inbound_match="ip" if connector else None, sender_domain=sender,
                sender_accepted=False, recipient_domain="contoso.com", recipient_accepted=True,
                message_id=f"<{tag}{i}@{sender}>") for i in range(n)]


def test_partner_bypass_exact() -> None:
    rows = partner_mail("185.220.101.9", "fabrikam.com", 2) + partner_mail("185.220.101.9", "fabrikam.com", 1,
                                                                           tag="q", hour=5)
    rows += partner_mail("185.220.101.10", "eu.mail.tailspin.com", 1)
    out = run(rows)
    assert out.to_dicts() == [
        {
            "kind": "partner_bypass", "severity": "high", "subject": "Fabrikam: 185.220.101.9",
            "first_seen": at(4), "last_seen": at(5), "count": 3,
            "detail": "3 records (3 messages) from fabrikam.com arrived from 185.220.101.9, outside the "
                      "SenderIPAddresses of Partner connector 'Fabrikam' (198.51.100.0/25); "
                      "RestrictDomainsToIPAddresses is off",
            "recommendation": "Mail from fabrikam.com arrived from 185.220.101.9, outside the connector's IPs: add "
                              "the IP if it is the partner's, or enable RestrictDomainsToIPAddresses",
            "sample_message_ids": ["<p0@fabrikam.com>", "<p1@fabrikam.com>", "<q0@fabrikam.com>"],
        },
        {
            "kind": "partner_bypass", "severity": "medium", "subject": "Tailspin: 185.220.101.10",
            "first_seen": at(4), "last_seen": at(4), "count": 1,
            "detail": "1 record (1 message) from eu.mail.tailspin.com arrived from 185.220.101.10, outside the "
                      "SenderIPAddresses of Partner connector 'Tailspin' (198.51.100.128/26); "
                      "RestrictDomainsToIPAddresses is on",
            "recommendation": "Mail from eu.mail.tailspin.com arrived from 185.220.101.10, outside the connector's "
                              "IPs: add the IP if it is the partner's (RestrictDomainsToIPAddresses rejects it "
                              "meanwhile)",
            "sample_message_ids": ["<p0@eu.mail.tailspin.com>"],
        },
    ]


def test_partner_bypass_near_misses() -> None:
    rows = partner_mail("198.51.100.20", "fabrikam.com", 3, connector="Fabrikam")  # inside the range
    rows += partner_mail("198.51.100.130", "tailspin.com", 1, connector="Tailspin")  # *.x covers x, inside
    rows += partner_mail("185.220.101.9", "notfabrikam.com", 1)  # not a partner domain
    rows += partner_mail("185.220.101.9", "fabrikam.com.evil.example", 1)  # not a partner domain either
    rows += partner_mail("185.220.101.9", "woodgrove.com", 1)  # certificate-only connector: not checkable
    assert run(rows).height == 0
    # a connector listing only "*" is not checked; a disabled one neither
    connectors = Connectors(inbound=(inbound("Any", "Partner", ips=("198.51.100.0/25",), domains=("*",)),
                                     inbound("Off", "Partner", ips=("198.51.100.0/25",), domains=("fabrikam.com",),
                                             enabled=False)))
    assert run(partner_mail("185.220.101.9", "fabrikam.com"), connectors=connectors).height == 0


# ============================================================================================
# outbound_bypass
# ============================================================================================


def outbound_mail(server_ip: str, connector: str, domain: str, n: int = 1, event: str = "send") -> list[dict[str, Any]]:
    return [rec(timestamp=at(6, i), direction="outbound", event=event, client_ip="40.107.1.1", ip_class="microsoft",
                inbound_connector=None, inbound_match=None, outbound_connector=connector, recipient_domain=domain,
                server_ip=server_ip, message_id=f"<o{i}@contoso.com>") for i in range(n)]


def test_outbound_bypass_exact() -> None:
    rows = outbound_mail("203.0.113.99", "To Fabrikam", "fabrikam.com", 2)
    out = run(rows)
    assert out.to_dicts() == [{
        "kind": "outbound_bypass", "severity": "medium", "subject": "To Fabrikam: 203.0.113.99",
        "first_seen": at(6), "last_seen": at(6, 1), "count": 2,
        "detail": "2 records (2 messages) for fabrikam.com were handed to 203.0.113.99, not to a smart host of "
                  "outbound connector 'To Fabrikam' (198.51.100.25)",
        "recommendation": "If 203.0.113.99 is the partner's server, add it to the SmartHosts of 'To Fabrikam'; "
                          "otherwise find out why mail for fabrikam.com did not go through the connector "
                          "(TestMode, a transport rule, MX routing)",
        "sample_message_ids": ["<o0@contoso.com>", "<o1@contoso.com>"],
    }]


def test_outbound_bypass_near_misses() -> None:
    rows = outbound_mail("198.51.100.25", "To Fabrikam", "fabrikam.com", 2)  # the smart host itself
    rows += outbound_mail("203.0.113.99", "To Northwind", "northwind.com")  # host-name smart host: skipped
    rows += outbound_mail("203.0.113.99", "To Fabrikam", "fabrikam.com", event="defer")  # not sent
    rows += [r | {"direction": "inbound"} for r in outbound_mail("203.0.113.99", "To Fabrikam", "fabrikam.com")]
    rows += outbound_mail("203.0.113.99", "To Fabrikam", "other.example")  # domain not the connector's
    rows += outbound_mail("203.0.113.99", None, "fabrikam.com")  # attribution chose no connector
    assert run(rows).height == 0
    # smart hosts given as a CIDR cover the whole block
    cidr = Connectors(outbound=(outbound("To Fabrikam", ("*.fabrikam.com",), ("198.51.100.0/28", "mx.fabrikam.com")),))
    assert run(outbound_mail("198.51.100.7", "To Fabrikam", "eu.fabrikam.com"), connectors=cidr).height == 0
    got = run(outbound_mail("198.51.100.70", "To Fabrikam", "eu.fabrikam.com"), connectors=cidr).to_dicts()
    assert [g["detail"] for g in got] == [
        "1 record (1 message) for eu.fabrikam.com were handed to 198.51.100.70, not to a smart host of outbound "
        "connector 'To Fabrikam' (198.51.100.0/28); host names not resolved offline: mx.fabrikam.com"]


# ============================================================================================
# disabled_connector_traffic
# ============================================================================================


def test_disabled_connector_traffic_exact() -> None:
    rows = [rec(timestamp=at(8, i), client_ip=ip, ip_class="other", inbound_connector=None, inbound_match=None,
                disabled_inbound_connector="Old", sender_domain="partner.example", sender_accepted=False,
                message_id=f"<old{i}@contoso.com>")
            for i, ip in enumerate(["192.0.2.130", "192.0.2.131", "192.0.2.130"])]
    out = run(rows)
    assert out.to_dicts() == [{
        "kind": "disabled_connector_traffic", "severity": "medium", "subject": "Old",
        "first_seen": at(8), "last_seen": at(8, 2), "count": 3,
        "detail": "3 records (3 messages) from 2 addresses (192.0.2.130, 192.0.2.131) in the range of disabled "
                  "inbound connector 'Old' matched no enabled connector",
        "recommendation": "Re-enable 'Old' if 192.0.2.130, 192.0.2.131 should still send through it; otherwise "
                          "remove the connector and find out why these servers still send",
        "sample_message_ids": ["<old0@contoso.com>", "<old1@contoso.com>", "<old2@contoso.com>"],
    }]


def test_disabled_connector_traffic_near_miss() -> None:
    # an enabled connector (a wider or equal range elsewhere) handled it
    rows = [rec(client_ip="192.0.2.130", disabled_inbound_connector="Old", inbound_connector="OnPrem")]
    assert run(rows).height == 0


# ============================================================================================
# unused_connector
# ============================================================================================


def test_unused_connector_exact() -> None:
    rows = [rec(timestamp=at(0, i)) for i in range(100)]  # all to OnPrem
    rows += [rec(direction="outbound", event="send", outbound_connector="To Fabrikam", server_ip="198.51.100.25",
                 recipient_domain="fabrikam.com") for _ in range(100)]
    out = run(rows, busy=False)
    common = {"kind": "unused_connector", "severity": "info", "first_seen": None, "last_seen": None, "count": 0,
              "sample_message_ids": []}
    assert out.to_dicts() == [
        common | {
            "subject": "Fabrikam",
            "detail": "No record was attributed to enabled Partner inbound connector 'Fabrikam' (SenderIPAddresses "
                      "198.51.100.0/25) among 100 inbound records",
            "recommendation": "Check whether 'Fabrikam' is still needed: if its servers no longer send, remove it "
                              "(a stale range can later match a server it was not meant for)",
        },
        common | {
            "subject": "OnPrem2",
            "detail": "No record was attributed to enabled OnPremises inbound connector 'OnPrem2' "
                      "(SenderIPAddresses 203.0.113.0/28) among 100 inbound records",
            "recommendation": "Check whether 'OnPrem2' is still needed: if its servers no longer send, remove it "
                              "(a stale range can later match a server it was not meant for)",
        },
        common | {
            "subject": "Tailspin",
            "detail": "No record was attributed to enabled Partner inbound connector 'Tailspin' (SenderIPAddresses "
                      "198.51.100.128/26) among 100 inbound records",
            "recommendation": "Check whether 'Tailspin' is still needed: if its servers no longer send, remove it "
                              "(a stale range can later match a server it was not meant for)",
        },
        common | {
            "subject": "To Northwind",
            "detail": "No record was attributed to enabled Partner outbound connector 'To Northwind' (recipient "
                      "domains northwind.com) among 100 outbound records",
            "recommendation": "Check whether 'To Northwind' is still needed: if no mail should take this route any "
                              "more, remove it",
        },
    ]


def test_unused_connector_needs_enough_rows() -> None:
    rows = [rec(timestamp=at(0, i)) for i in range(99)]
    rows += [rec(direction="outbound", event="send", outbound_connector="To Fabrikam", server_ip="198.51.100.25",
                 recipient_domain="fabrikam.com") for _ in range(99)]
    assert run(rows, busy=False).height == 0
    assert {r["subject"] for r in run(rows, options=Options(unused_min_rows=99), busy=False).to_dicts()} == {
        "Fabrikam", "OnPrem2", "Tailspin", "To Northwind"}
    # a connector whose RecipientDomains were not exported cannot be judged
    connectors = dataclasses.replace(CONNECTORS, outbound=(
        CONNECTORS.outbound[0], outbound("To Northwind", (), (), unexported=("RecipientDomains",))))
    subjects = {r["subject"] for r in run(rows, connectors=connectors, options=Options(unused_min_rows=99),
                                          busy=False).to_dicts()}
    assert "To Northwind" not in subjects


# ============================================================================================
# attribution_mismatch
# ============================================================================================


def test_attribution_mismatch_exact() -> None:
    common = dict(source_format="exo_trace_detail", direction="unknown", sender_domain="example.net",
                  sender_accepted=False)
    rows = [rec(**common, timestamp=at(9, i), client_ip="185.220.101.11", ip_class="other", inbound_connector=None,
                inbound_match=None, connector_name="Fabrikam", message_id=f"<am{i}@example.net>") for i in range(2)]
    rows.append(rec(**common, timestamp=at(9, 5), client_ip="198.51.100.20", inbound_connector="Fabrikam",
                    connector_name=" TAILSPIN ", message_id="<am9@example.net>"))
    rows.append(rec(**common, timestamp=at(9, 6), client_ip="198.51.100.20", inbound_connector="Fabrikam",
                    connector_name="Retired Partner", message_id="<am10@example.net>"))
    out = run(rows)
    assert out.to_dicts() == [
        {
            "kind": "attribution_mismatch", "severity": "low", "subject": "Fabrikam != none",
            "first_seen": at(9), "last_seen": at(9, 1), "count": 2,
            "detail": "2 records (2 messages) from 185.220.101.11 were logged as received by connector 'Fabrikam' "
                      "but their IP matches no enabled inbound connector",
            "recommendation": "Exchange Online matched 'Fabrikam' by certificate or sender domain: if 185.220.101.11 "
                              "are its servers, add them to its SenderIPAddresses",
            "sample_message_ids": ["<am0@example.net>", "<am1@example.net>"],
        },
        {
            "kind": "attribution_mismatch", "severity": "low", "subject": "Retired Partner != Fabrikam",
            "first_seen": at(9, 6), "last_seen": at(9, 6), "count": 1,
            "detail": "1 record (1 message) from 198.51.100.20 were logged as received by connector 'Retired Partner' "
                      "but their IP matches inbound connector 'Fabrikam'",
            "recommendation": "'Retired Partner' is not in the configuration given: export the current connectors "
                              "(it may have been renamed or added since)",
            "sample_message_ids": ["<am10@example.net>"],
        },
        {
            "kind": "attribution_mismatch", "severity": "low", "subject": "TAILSPIN != Fabrikam",
            "first_seen": at(9, 5), "last_seen": at(9, 5), "count": 1,
            "detail": "1 record (1 message) from 198.51.100.20 were logged as received by connector 'TAILSPIN' but "
                      "their IP matches inbound connector 'Fabrikam'",
            "recommendation": "Exchange Online chose 'TAILSPIN' (by certificate or sender domain) where the IP ranges "
                              "point to 'Fabrikam': check which connector 198.51.100.20 should use and remove them "
                              "from the other",
            "sample_message_ids": ["<am9@example.net>"],
        },
    ]


def test_attribution_mismatch_near_misses() -> None:
    rows = [
        rec(connector_name=" onprem "),  # same connector, other case and blanks
        rec(connector_name=None),  # nothing logged
        rec(connector_name="   "),  # blank
        rec(connector_name="EX01\\Default Frontend EX01", source_format="exo_extended"),  # a server's receive connector
        rec(connector_name="Fabrikam", source_format="msgtrk"),  # on-premises log
        rec(connector_name="To Fabrikam", direction="unknown", inbound_connector=None),  # an outbound connector
        rec(connector_name="Fabrikam", direction="outbound", inbound_connector=None),  # not inbound
    ]
    assert run(rows).height == 0


# ============================================================================================
# Scale: a million attributed records
# ============================================================================================


def synthetic(n: int, seed: int = 7) -> pl.DataFrame:
    """`n` attributed records with every kind of traffic mixed in (vectorized, no row loop)."""
    rng = np.random.default_rng(seed)

    def pick(values: list[Any], p: list[float] | None = None, dtype: pl.DataType = pl.String()) -> pl.Series:
        return pl.Series(values, dtype=dtype).gather(rng.choice(len(values), size=n, p=p))

    ips = [f"{a}.{b}.{c}.{d}" for a, b, c, d in rng.integers(1, 224, size=(20_000, 4))]
    ips += ["192.0.2.10", "192.0.2.11", "198.51.100.20", "192.0.2.130", "2001:db8::25"]
    domains = [f"d{i}.example" for i in range(5000)] + ["contoso.com", "fabrikam.com", "mail.tailspin.com"]
    seconds = np.sort(rng.integers(0, 7 * 86400, size=n))
    response = pick([None, "451 4.7.500 Server busy. Please try again later from [{}]. (AS761)",
                     "550 5.7.64 TenantAttribution; Relay Access Denied", "554 5.7.1 Relay access denied",
                     "250 2.6.0 Queued mail for delivery"], p=[0.7, 0.1, 0.02, 0.03, 0.15])
    client = pick(ips)
    ts = pl.Series("timestamp", (seconds * 1_000_000 + int(T0.timestamp() * 1_000_000))).cast(pl.Datetime("us")) \
        .dt.replace_time_zone("UTC")
    keys = pl.Series("message_key", [f"k{i}" for i in range(n)])
    df = pl.DataFrame({
        "timestamp": ts,
        "source_format": pick(["exo_trace", "exo_trace_detail", "msgtrk", "postfix", "emailevents"]),
        "direction": pick(["inbound", "outbound", "unknown", "internal"], p=[0.5, 0.3, 0.15, 0.05]),
        "event": pick(["receive", "send", "deliver", "defer", "fail"]),
        "status": pick(["Delivered", "sent", "deferred", "Failed"]),
        "client_ip": client,
        "server_ip": pick(ips[:2000] + ["198.51.100.25"]),
        "sender": pl.Series([None] * n, dtype=pl.String()),
        "sender_domain": pick(domains),
        "recipient": pl.Series([None] * n, dtype=pl.String()),
        "recipient_domain": pick(domains),
        "message_id": keys.str.replace("k", "<m") + "@x>",
        "message_key": keys.str.slice(0, 6),  # many records per message
        "subject": pl.Series([None] * n, dtype=pl.String()),
        "size_bytes": pl.Series(rng.integers(1000, 100000, size=n)),
        "connector_name": pick([None, None, None, "Fabrikam", "OnPrem", "Legacy"]),
        "smtp_response": response,
        "source_file": pick(["EX01.LOG", "EX02.LOG", "mail.log", "trace.csv"]),
        "source_line": pl.Series(np.arange(n, dtype=np.int64)),
        "inbound_connector": pick([None, None, "OnPrem", "Fabrikam", "Tailspin"]),
        "inbound_match": pick([None, "ip", "domain"]),
        "disabled_inbound_connector": pick([None] * 20 + ["Old"]),
        "outbound_connector": pick([None, "To Fabrikam", "To Northwind"]),
        "ip_class": pick(["connector", "private", "microsoft", "other", None]),
        "sender_accepted": pick([True, False, None], dtype=pl.Boolean()),
        "recipient_accepted": pick([True, False, None], dtype=pl.Boolean()),
        "asn": pick([None, "AS64500", "AS64501", "AS64502"]),
    })
    deferral = df["smtp_response"].str.starts_with("451")
    df = df.with_columns(
        pl.when(deferral).then(pl.col("smtp_response").str.replace("{}", pl.col("client_ip"), literal=True))
        .otherwise(pl.col("smtp_response")).alias("smtp_response"),
        pl.col("smtp_response").str.slice(0, 3).cast(pl.Int16).alias("smtp_code"),
        pl.col("smtp_response").str.extract(r"^\d{3} (\d\.\d\.\d+)", 1).alias("enhanced_code"),
        pl.when(deferral).then(pl.lit("AS761")).alias("ms_code"),
        pl.when(deferral).then(pl.col("client_ip")).alias("throttled_ip"),
    )
    # A burst of 500 deferrals from one source in one hour, over five days of one every 6 hours from it.
    burst = df.head(520).with_columns(
        pl.lit("203.0.113.77").alias("throttled_ip"), pl.lit("4.7.500").alias("enhanced_code"),
        pl.Series([T0 + dt.timedelta(hours=50, seconds=i) for i in range(500)]
                  + [T0 + dt.timedelta(hours=6 * i) for i in range(20)]).alias("timestamp"))
    return pl.concat([df, burst]).select(list(COLUMNS) + ["asn"])


def test_million_rows_under_20_seconds(tmp_path: Path) -> None:
    data = synthetic(1_000_000)
    path = tmp_path / "records.parquet"
    data.write_parquet(path, row_group_size=128 * 1024)
    records = pl.scan_parquet(path)
    start = time.perf_counter()
    out = traffic_findings(records, CONNECTORS, (), Options(ip_tables=("asn",)))
    elapsed = time.perf_counter() - start
    print(f"\ntraffic_findings on {data.height:,} rows: {elapsed:.2f} s, {out.height:,} findings")
    start = time.perf_counter()
    spots = hotspots(records, CONNECTORS)
    print(f"hotspots on {data.height:,} rows: {time.perf_counter() - start:.2f} s, {spots.height:,} windows")
    assert elapsed < 20
    assert out.schema == pl.Schema(FINDINGS_SCHEMA)
    kinds = set(out["kind"])
    assert {"greylisting_hotspot", "relay_rejected", "unrouted_inbound", "disabled_connector_traffic",
            "attribution_mismatch", "direct_send", "partner_bypass", "outbound_bypass"} <= kinds
    assert ("greylisting_hotspot", "203.0.113.77") in set(zip(out["kind"], out["subject"]))
    assert out["sample_message_ids"].list.len().max() <= 5
    # deterministic: the same answer twice
    assert traffic_findings(records, CONNECTORS, (), Options(ip_tables=("asn",))).equals(out)


def test_records_without_message_ids_are_not_called_zero_messages() -> None:
    from analyzer.findings import _records_text

    assert _records_text(23, 0) == "23 records"  # Postfix NOQUEUE rejects have no queue id
    assert _records_text(12, 5) == "12 records (5 messages)"
    assert _records_text(1, 1) == "1 record (1 message)"


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.text(max_size=30), max_size=5), max_size=20))
def test_sample_lists_build_as_polars_builds_them(lists: list[list[str]]) -> None:
    from analyzer.findings import _text_lists

    got = _text_lists(lists)
    assert got.dtype == pl.List(pl.String)
    assert got.to_list() == lists
    assert got.equals(pl.Series(lists, dtype=pl.List(pl.String)))
