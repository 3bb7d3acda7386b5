#!/usr/bin/env python3
"""Write the synthetic Contoso tenant of `sample_logs/`: configuration exports, one simulated week
of mail-flow logs in every supported format, and the list of findings planted in them.

    python benchmarks/tenant.py [--out DIR] [--scale N] [--expected FILE]

Without options it rewrites ``sample_logs/config``, ``sample_logs/logs`` and
``tests/data/sample_logs_expected.json`` byte for byte (tests/test_sample_logs.py checks it);
``sample_logs/`` holds nothing but inputs, so ``mailflow analyze sample_logs`` reads it all. ``--scale N``
multiplies the background ("noise") traffic by N and leaves the planted cases as they are, so
``--scale 2000 --out /tmp/big`` writes a tenant of about a million records for benchmarks; the
planted findings (EXPECTED.json) are the same at every scale, because every background source
stays far below the thresholds however large N is (more traffic means more distinct sources).

Deterministic: no clock, no global random state. Randomness is a counter-based hash (splitmix64
of a stream name and the row index), so the output does not depend on numpy's generator
algorithms or on the order in which streams are drawn. Rows are built column-wise with numpy and
polars; only the small planted cases are written out by hand.

The story of the tenant and of each planted case is in docs/sample_logs.md; the rules they
trigger are docs/analysis.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import io
import json
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parent.parent
SAMPLE_LOGS = REPO / "sample_logs"
EXPECTED_FILE = REPO / "tests" / "data" / "sample_logs_expected.json"
SEED = 20261116
UTC = dt.timezone.utc

# ---------------------------------------------------------------------------------------------
# The simulated week and the tenant
# ---------------------------------------------------------------------------------------------

WEEK_START = dt.datetime(2026, 11, 16, tzinfo=UTC)  # Monday
WEEK_END = WEEK_START + dt.timedelta(days=7)
#: The OnPremises connector was renamed at this time; older EmailEvents rows log the old name.
RENAME_AT = dt.datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
OLD_ONPREM_NAME = "Inbound from Contoso on-prem"
#: The two overlapping Get-MessageTraceV2 exports (StartDate, EndDate).
TRACE1 = (WEEK_START, dt.datetime(2026, 11, 19, 12, 0, tzinfo=UTC))
TRACE2 = (dt.datetime(2026, 11, 18, tzinfo=UTC), WEEK_END)

ORG = "contoso.onmicrosoft.com"
TENANT_ID = "8d3e5f21-4c6b-4a7d-9e1f-2a3b4c5d6e7f"
EXO_MX = "contoso-com.mail.protection.outlook.com"
EXO_MX_IPS = ("52.101.8.42", "52.101.9.10", "52.101.68.14", "52.101.194.3")

# Contoso's own public addresses (documentation range 203.0.113.0/24)
EX01_PUBLIC, EX02_PUBLIC = "203.0.113.5", "203.0.113.6"
ONPREM_DMZ = [f"203.0.113.{i}" for i in range(17, 31)]  # 203.0.113.16/28
SCANNER_IPS = [f"203.0.113.{i}" for i in range(201, 207)]  # 203.0.113.200/29
GW1_EGRESS, GW2_EGRESS = "203.0.113.40", "203.0.113.41"  # Postfix gateways, in no connector
EX01_LAN, EX02_LAN = "10.20.30.11", "10.20.30.12"
APP_LAN = [f"10.20.40.{i}" for i in (21, 22, 25, 31)]
# Partners (documentation ranges 198.51.100.0/24 and 192.0.2.0/24)
FABRIKAM_IPS = [f"198.51.100.{i}" for i in range(33, 47)]  # 198.51.100.32/28
FABRIKAM_SMART_HOSTS = ("198.51.100.35", "198.51.100.36")
NORTHWIND_IPS = [f"192.0.2.{i}" for i in range(17, 23)]  # 192.0.2.16/29

# Planted sources that must be classed "other" (not private, not Microsoft): public addresses
# from the GeoIP test blocks (MaxMind's test data, used as such by many log fixtures).
OPEN_RELAY_SRC = "175.16.199.37"
RELAY_PROBE_SRC = "67.43.156.14"
DIRECT_SEND_SRC = "81.2.69.160"
UNROUTED_SRC = "216.160.83.58"
UNROUTED_NEAR_SRC = "216.160.83.61"
PARTNER_BYPASS_SRC = "198.51.100.60"
OUTBOUND_BYPASS_MX = "198.51.100.50"
EU_FABRIKAM_MX = "198.51.100.52"
LITWARE_SRC = "192.0.2.70"
TRICKLE_SRC = "40.107.215.33"
ISOLATED_SRC = "40.107.22.81"

INBOUND_CONNECTORS = [
    # as Get-InboundConnector | ConvertTo-Json writes them in Windows PowerShell 5.1: ConnectorType
    # 1 OnPremises / 2 Partner, ConnectorSource 0 Default / 2 HybridWizard. The first connector's
    # SenderIPAddresses is one ';'-joined string (as some exports flatten lists).
    dict(Name="On-prem Exchange", Enabled=True, ConnectorType=1, ConnectorSource=2,
         SenderIPAddresses=f"{EX01_PUBLIC};{EX02_PUBLIC};203.0.113.16/28",
         SenderDomains=["smtp:*;1"], TlsSenderCertificateName="mail.contoso.com",
         RestrictDomainsToIPAddresses=False, RequireTls=True,
         Comment="Hybrid: EX01/EX02 and the DMZ. Renamed from 'Inbound from Contoso on-prem' on 2026-11-18.",
         created=1_700_000_000_000, changed=1_795_000_000_000),
    dict(Name="Fabrikam partner", Enabled=True, ConnectorType=2, ConnectorSource=0,
         SenderIPAddresses=["198.51.100.32/28"], SenderDomains=["smtp:fabrikam.com;1"],
         TlsSenderCertificateName=None, RestrictDomainsToIPAddresses=True, RequireTls=True,
         Comment="", created=1_710_000_000_000, changed=1_760_000_000_000),
    dict(Name="Scanners relay", Enabled=True, ConnectorType=1, ConnectorSource=0,
         SenderIPAddresses=["203.0.113.200/29"], SenderDomains=["smtp:*;1"],
         TlsSenderCertificateName=None, RestrictDomainsToIPAddresses=False, RequireTls=False,
         Comment="Multifunction printers (scan to mail), HQ", created=1_712_000_000_000,
         changed=1_712_000_000_000),
    dict(Name="Northwind partner", Enabled=True, ConnectorType=2, ConnectorSource=0,
         SenderIPAddresses=["192.0.2.16/29"], SenderDomains=["smtp:northwindtraders.com;1"],
         TlsSenderCertificateName="mail.northwindtraders.com", RestrictDomainsToIPAddresses=False,
         RequireTls=True, Comment="", created=1_720_000_000_000, changed=1_750_000_000_000),
    dict(Name="Litware (retired)", Enabled=False, ConnectorType=2, ConnectorSource=0,
         SenderIPAddresses=["192.0.2.64/27"], SenderDomains=["smtp:litware.com;1"],
         TlsSenderCertificateName=None, RestrictDomainsToIPAddresses=False, RequireTls=False,
         Comment="Contract ended 2026-06", created=1_650_000_000_000, changed=1_780_000_000_000),
    dict(Name="Branch office Lyon", Enabled=True, ConnectorType=1, ConnectorSource=0,
         SenderIPAddresses=["192.0.2.200/30"], SenderDomains=["smtp:*;1"],
         TlsSenderCertificateName=None, RestrictDomainsToIPAddresses=False, RequireTls=False,
         Comment="Lyon office printers", created=1_690_000_000_000, changed=1_690_000_000_000),
]

OUTBOUND_CONNECTORS = [
    dict(Name="To Fabrikam", Enabled=True, ConnectorType="Partner", ConnectorSource="Default",
         Comment="", RecipientDomains="fabrikam.com", SmartHosts=";".join(FABRIKAM_SMART_HOSTS),
         UseMXRecord=False, TlsSettings="CertificateValidation", TlsDomain="",
         WhenChanged="3/2/2026 4:12:09 PM"),
    dict(Name="To on-prem Exchange", Enabled=True, ConnectorType="OnPremises",
         ConnectorSource="HybridWizard", Comment="", RecipientDomains="fabrikam-legacy.com",
         SmartHosts="mail.contoso.com", UseMXRecord=False, TlsSettings="DomainValidation",
         TlsDomain="mail.contoso.com", WhenChanged="11/14/2023 9:30:51 AM"),
]

ACCEPTED_DOMAINS = [
    # name, type, default, match subdomains
    ("contoso.com", "Authoritative", True, False),
    ("contoso.co.uk", "Authoritative", False, False),
    ("fabrikam-legacy.com", "InternalRelay", False, True),
    ("contoso.onmicrosoft.com", "Authoritative", False, False),
    ("contoso.mail.onmicrosoft.com", "Authoritative", False, False),
]

# ---------------------------------------------------------------------------------------------
# Deterministic randomness: splitmix64(stream, index)
# ---------------------------------------------------------------------------------------------

_M64 = (1 << 64) - 1


def _mix(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class Rand:
    """Counter-based random numbers: the value for (stream, i) never depends on other draws."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def bits(self, stream: str, n: int) -> np.ndarray:
        base = (self.seed * 0x9E3779B97F4A7C15 + zlib.crc32(stream.encode()) * 0xD1B54A32D192ED03) & _M64
        idx = np.arange(n, dtype=np.uint64)
        with np.errstate(over="ignore"):
            return _mix(np.uint64(base) + idx * np.uint64(0x9E3779B97F4A7C15))

    def uniform(self, stream: str, n: int) -> np.ndarray:
        return (self.bits(stream, n) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))

    def ints(self, stream: str, n: int, lo: int, hi: int) -> np.ndarray:
        """Integers in [lo, hi)."""
        return (lo + (self.bits(stream, n) % np.uint64(hi - lo)).astype(np.int64)).astype(np.int64)

    def pick(self, stream: str, n: int, values, weights=None) -> np.ndarray:
        values = np.asarray(values)
        if weights is None:
            return values[self.ints(stream, n, 0, len(values))]
        cum = np.cumsum(np.asarray(weights, dtype=np.float64))
        return values[np.searchsorted(cum, self.uniform(stream, n) * cum[-1], side="right")]


_HEX = np.array(list("0123456789abcdef"))
_SHIFTS = np.arange(60, -1, -4, dtype=np.uint64)


def hex16(x: np.ndarray) -> np.ndarray:
    """16 lower-case hex digits of each uint64."""
    digits = _HEX[((x[:, None] >> _SHIFTS) & np.uint64(15)).astype(np.int64)]
    return np.ascontiguousarray(digits).view("<U16").ravel()


def guids(r: Rand, stream: str, n: int, tail: str = "08de") -> pl.Series:
    """GUID-shaped ids ``xxxxxxxx-xxxx-4xxx-8xxx-08dexxxxxxxx`` (the 08de.. tail of EXO ids)."""
    a, b = hex16(r.bits(stream + "/a", n)), hex16(r.bits(stream + "/b", n))
    s = pl.DataFrame({"a": a, "b": b})
    return s.select(pl.format("{}-{}-4{}-8{}-{}{}", pl.col("a").str.slice(0, 8), pl.col("a").str.slice(8, 4),
                              pl.col("a").str.slice(12, 3), pl.col("b").str.slice(0, 3), pl.lit(tail),
                              pl.col("b").str.slice(3, 8))).to_series()


# ---------------------------------------------------------------------------------------------
# Time
# ---------------------------------------------------------------------------------------------

def _us(t: dt.datetime) -> int:
    return int(t.timestamp()) * 1_000_000


# Relative weight of each hour of the day (UTC; Contoso works 07-18), weekends at 30 %.
_HOUR_W = np.array([0.15, 0.1, 0.1, 0.1, 0.12, 0.2, 0.4, 0.8, 1.3, 1.5, 1.5, 1.4,
                    1.1, 1.3, 1.5, 1.4, 1.2, 0.9, 0.6, 0.45, 0.35, 0.3, 0.25, 0.2])


def times(r: Rand, stream: str, n: int, start: dt.datetime, end: dt.datetime) -> np.ndarray:
    """`n` timestamps (int64 microseconds, UTC) in [start, end), weighted by office hours."""
    h0, h1 = _us(start) // 3_600_000_000, _us(end) // 3_600_000_000
    hours = np.arange(h0, h1, dtype=np.int64)
    dow = ((hours // 24) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    w = _HOUR_W[hours % 24] * np.where(dow >= 5, 0.3, 1.0)
    cum = np.cumsum(w)
    slot = hours[np.searchsorted(cum, r.uniform(stream + "/h", n) * cum[-1], side="right")]
    return slot * 3_600_000_000 + (r.uniform(stream + "/s", n) * 3_599_999_999).astype(np.int64)


def ts_series(us: np.ndarray | list[int], name: str = "ts") -> pl.Series:
    return pl.Series(name, np.asarray(us, dtype=np.int64)).cast(pl.Datetime("us"))


def at(day: int, hour: int, minute: int = 0, second: int = 0, micro: int = 0) -> int:
    """Microseconds of 2026-11-<day> hh:mm:ss UTC."""
    return _us(dt.datetime(2026, 11, day, hour, minute, second, tzinfo=UTC)) + micro


# ---------------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------------

FIRST = ["anna", "ben", "carla", "david", "eva", "felix", "grace", "hugo", "ines", "jonas", "karin",
         "lukas", "maria", "nils", "olivia", "paul", "quentin", "rosa", "samir", "tina", "ugo",
         "vera", "william", "xenia", "yusuf", "zoe", "amelie", "bruno", "chloe", "dario"]
LAST = ["berg", "li", "novak", "schmidt", "dubois", "rossi", "jansen", "kowalski", "garcia",
        "nielsen", "martin", "oconnor", "weber", "silva", "fischer", "moreau", "costa", "lindqvist",
        "yilmaz", "patel", "ito", "horvat", "brennan", "keller"]
# External organizations (Microsoft's fictitious company names). Even index: hosted in Exchange
# Online (their mail arrives from EOP addresses); odd index: their own servers.
CORP = ["adatum.com", "adventure-works.com", "alpineskihouse.com", "bellowscollege.com",
        "blueyonderairlines.com", "cohovineyard.com", "cohowinery.com", "consolidatedmessenger.com",
        "fourthcoffee.com", "graphicdesigninstitute.com", "humongousinsurance.com", "lamnahealthcare.com",
        "lucernepublishing.com", "margiestravel.com", "nodpublishers.com", "proseware.com",
        "relecloud.com", "southridgevideo.com", "treyresearch.net", "wideworldimporters.com",
        "wingtiptoys.com", "woodgrovebank.com", "worldwideimporters.com", "firstupconsultants.com"]
FREEMAIL = ["gmail.com", "yahoo.com", "gmx.de", "web.de", "orange.fr", "icloud.com"]
LOCALPARTS = ["info", "sales", "orders", "billing", "support", "noreply", "hr", "news", "service",
              "accounts", "invoice", "contact", "team", "office", "jobs", "events"]
SUBJECTS_IN = ["Invoice 2026-11", "Order confirmation", "Re: Quarterly review", "Meeting request: Tuesday 10:00",
               "Your subscription", "Shipping notice", "RE: Proposal, revised", 'Re: "Project Atlas" kickoff',
               "Newsletter November", "Payment reminder", "Statement of account", "Webinar invitation",
               "Fwd: contract draft", "Delivery delayed", "Price list 2027", "R\u00e9union d'\u00e9quipe",
               "Angebot Nr. 4711 \u2013 M\u00fcller GmbH", "Welcome aboard!", "Support ticket #48213 updated",
               "Your password expires soon"]
SUBJECTS_OUT = ["RE: Invoice 2026-11", "Purchase order 4711", "Quote, rev. 2", "Re: Meeting request",
                "Documents for signature", "Project status", "RE: Shipping notice", "Contract renewal",
                "Follow-up", "Thank you!", "FW: Price list 2027", "Candidate interview, Thursday"]
SUBJECTS_INT = ["Team lunch", "1:1 notes", "IT maintenance Saturday", "Expense report", "Holiday schedule",
                "Budget 2027", "Re: Team lunch", "Townhall slides", "Welcome Tina", "Parking"]
SUBJECTS_APP = ["[ERP] Daily sales report", "[HR portal] Leave request approved", "Backup job succeeded",
                "[Monitoring] Disk usage warning", "Timesheet reminder", "[ERP] Purchase order approval"]
SUBJECTS_SCAN = ["Scanned from MFP-2F", "Scanned from MFP-3F", "Scan to email", "Scanned document"]
EXO_SERVERS = ["AM9PR04MB8451", "DB9PR02MB7312", "PA4PR06MB7064", "AS8PR04MB8819", "VI1PR07MB6235",
               "DU0PR03MB9102"]


def pick_users(r: Rand, stream: str, n: int, domains=("contoso.com",), weights=None) -> pl.Series:
    first = r.pick(stream + "/f", n, FIRST)
    last = r.pick(stream + "/l", n, LAST)
    dom = r.pick(stream + "/d", n, list(domains), weights)
    return pl.DataFrame({"f": first, "l": last, "d": dom}).select(
        pl.format("{}.{}@{}", "f", "l", "d")).to_series()


def ascii_only(s: pl.Expr) -> pl.Expr:
    """What Windows PowerShell 5.1's Export-Csv (ASCII) makes of non-ASCII characters: '?'."""
    return s.str.replace_all(r"[^\x00-\x7F]", "?")


# ---------------------------------------------------------------------------------------------
# Address pools. Every pool maps an index to a distinct address, and background traffic draws
# indexes from a range proportional to its volume: no background source ever gets near the
# 100-message unrouted threshold, whatever the scale.
# ---------------------------------------------------------------------------------------------

# Public /16s used for "the rest of the internet" (none is Microsoft's, private, a documentation
# range, or holds a planted address).
_OTHER_16 = [(62, 12), (62, 214), (77, 87), (77, 240), (78, 46), (80, 69), (80, 156), (82, 165),
             (83, 137), (84, 16), (85, 13), (86, 59), (87, 98), (88, 198), (91, 198), (92, 222),
             (93, 184), (94, 126), (95, 101), (109, 68), (145, 239), (151, 80), (176, 28), (178, 33),
             (185, 70), (188, 114), (193, 30), (194, 25), (195, 66), (212, 27), (213, 186), (217, 160)]


def other_ips(index: np.ndarray) -> pl.Series:
    """Distinct public IPv4 addresses for distinct indexes (< 32 * 65024)."""
    index = np.asarray(index, dtype=np.int64)
    block = index % len(_OTHER_16)
    k = ((index // len(_OTHER_16)) * 40503 + 17) % 65024
    a = np.array([b[0] for b in _OTHER_16])[block]
    b = np.array([b[1] for b in _OTHER_16])[block]
    return pl.DataFrame({"a": a, "b": b, "c": k // 254, "d": 1 + k % 254}).select(
        pl.format("{}.{}.{}.{}", "a", "b", "c", "d")).to_series()


def eop_ips(index: np.ndarray) -> pl.Series:
    """Exchange Online Protection outbound addresses of other tenants: 40.107.x.x, 52.100-103.x.x,
    104.47.0-127.x and (one in eight) 2a01:111:f403::/48."""
    index = np.asarray(index, dtype=np.int64)
    k = (index * 7919 + 3) % 60000
    kind = index % 8
    hex4 = pl.Series(hex16((0x1000 + k % 0xE000).astype(np.uint64))).str.slice(12, 4)
    df = pl.DataFrame({"kind": kind, "k": k, "c": k // 254, "d": 1 + k % 254, "x": hex4})
    return df.select(
        pl.when(pl.col("kind") == 7).then(pl.format("2a01:111:f403:{}::{}", "x", pl.col("d")))
        .when(pl.col("kind") >= 5).then(pl.format("52.{}.{}.{}", 100 + pl.col("k") % 4, pl.col("c") % 256, "d"))
        .when(pl.col("kind") == 4).then(pl.format("104.47.{}.{}", pl.col("c") % 128, "d"))
        .otherwise(pl.format("40.107.{}.{}", pl.col("c") % 256, "d"))
    ).to_series()


# ---------------------------------------------------------------------------------------------
# The message model: one row per (message, recipient), shared by every export
# ---------------------------------------------------------------------------------------------

MSG_SCHEMA = {
    "ts": pl.Datetime("us"), "kind": pl.String, "direction": pl.String, "sender": pl.String,
    "recipient": pl.String, "client_ip": pl.String, "client_host": pl.String, "server_ip": pl.String,
    "connector": pl.String, "subject": pl.String, "size": pl.Int64, "msgid": pl.String,
    "key": pl.String, "status": pl.String, "rcpt_no": pl.Int64, "planted": pl.String,
}


def explode_recipients(r: Rand, stream: str, msgs: pl.DataFrame, rcpt: callable, max_extra: int = 2) -> pl.DataFrame:
    """One row per recipient: 1 recipient (80 %), 2 (14 %) or 3 (6 %); `rcpt(stream, n)` draws them."""
    n = msgs.height
    count = 1 + np.searchsorted([0.80, 0.94], r.uniform(stream + "/nr", n), side="right")
    count = np.minimum(count, 1 + max_extra)
    rows = msgs.with_columns(pl.Series("_n", count)).with_columns(
        pl.int_ranges(0, pl.col("_n")).alias("rcpt_no")).explode("rcpt_no").drop("_n")
    rows = rows.with_columns(rcpt(stream + "/rcpt", rows.height).alias("recipient"))
    # the same recipient twice in one message is not a thing: rename a repeated one ("anna.berg2@")
    return rows.with_columns(
        pl.when(pl.col("recipient").is_first_distinct().over("key")).then(pl.col("recipient"))
        .otherwise(pl.col("recipient").str.replace("@", pl.format("{}@", pl.col("rcpt_no") + 1), literal=True))
        .alias("recipient"),
        pl.col("rcpt_no").cast(pl.Int64))


def finish(df: pl.DataFrame) -> pl.DataFrame:
    for name, dtype in MSG_SCHEMA.items():
        if name not in df.columns:
            df = df.with_columns(pl.lit(None, dtype=dtype).alias(name))
    return df.select([pl.col(c).cast(t) for c, t in MSG_SCHEMA.items()])


def _sizes(r: Rand, stream: str, n: int, lo: int = 3_000, hi: int = 4_000_000) -> np.ndarray:
    u = r.uniform(stream, n)
    return (lo + (u ** 4) * (hi - lo)).astype(np.int64)


def _msgids(r: Rand, stream: str, n: int, host: pl.Series | str) -> pl.Series:
    h = hex16(r.bits(stream, n))
    hosts = host if isinstance(host, pl.Series) else pl.Series([host] * n)
    return pl.DataFrame({"h": h, "host": hosts}).select(
        pl.format("<{}.{}@{}>", pl.col("h").str.slice(0, 10).str.to_uppercase(), pl.col("h").str.slice(10, 6),
                  "host")).to_series()


def _exo_msgids(r: Rand, stream: str, n: int) -> pl.Series:
    srv = r.pick(stream + "/srv", n, EXO_SERVERS)
    h = hex16(r.bits(stream, n))
    return pl.DataFrame({"s": srv, "h": h}).select(
        pl.format("<{}{}@{}.eurprd04.prod.outlook.com>", "s", pl.col("h").str.slice(0, 8).str.to_uppercase(),
                  "s")).to_series()


def _statuses(r: Rand, stream: str, n: int, kind: str) -> np.ndarray:
    if kind == "in":
        return r.pick(stream, n, ["Delivered", "FilteredAsSpam", "Quarantined", "Failed", "Expanded"],
                      [0.86, 0.07, 0.03, 0.02, 0.02])
    if kind == "out":
        return r.pick(stream, n, ["Delivered", "Failed", "Pending"], [0.96, 0.025, 0.015])
    return r.pick(stream, n, ["Delivered", "Expanded"], [0.95, 0.05])


def internet_in(r: Rand, s: str, n: int, start: dt.datetime, end: dt.datetime, pool_offset: int) -> pl.DataFrame:
    """Mail from the internet to Contoso users: half from Exchange Online tenants (EOP addresses,
    class `microsoft`), half from other servers and freemail (class `other`), no connector."""
    ts = times(r, s, n, start, end)
    eop = r.uniform(s + "/eop", n) < 0.45
    # about three messages per source address: the index range grows with n
    ip_idx = pool_offset + r.ints(s + "/ip", n, 0, max(n // 3, 8))
    corp_even = np.array(CORP[0::2])
    corp_odd = np.array(CORP[1::2] + FREEMAIL)
    dom = np.where(eop, corp_even[ip_idx % len(corp_even)], corp_odd[ip_idx % len(corp_odd)])
    local = r.pick(s + "/lp", n, LOCALPARTS + ["first", "first"])
    first = r.pick(s + "/fn", n, FIRST)
    local = np.where(local == "first", first + "." + r.pick(s + "/ln", n, LAST), local)
    ips = pl.DataFrame({"e": eop, "o": other_ips(ip_idx), "m": eop_ips(ip_idx)}).select(
        pl.when("e").then("m").otherwise("o")).to_series()
    hosts = pl.DataFrame({"e": eop, "d": dom, "i": ips}).select(
        pl.when("e").then(pl.lit("mail-eur05am6obe.outbound.protection.outlook.com"))
        .otherwise(pl.format("mail.{}", "d"))).to_series()
    msgs = pl.DataFrame({
        "ts": ts_series(ts), "kind": pl.Series(np.where(eop, "eop", "internet")),
        "direction": "in", "sender": pl.Series(local + "@" + dom), "client_ip": ips, "client_host": hosts,
        "subject": r.pick(s + "/subj", n, SUBJECTS_IN), "size": _sizes(r, s + "/size", n),
        "msgid": _msgids(r, s + "/mid", n, pl.Series(np.char.add("mail.", dom.astype(str)))),
        "key": guids(r, s + "/key", n), "status": _statuses(r, s + "/st", n, "in"),
    })
    return finish(explode_recipients(r, s, msgs, lambda st, k: pick_users(
        r, st, k, ("contoso.com", "contoso.co.uk"), [0.85, 0.15])))


def outbound(r: Rand, s: str, n: int, start: dt.datetime, end: dt.datetime, pool_offset: int,
             domains=None) -> pl.DataFrame:
    """Contoso users to the internet (default outbound path: the recipient's MX)."""
    ts = times(r, s, n, start, end)
    domains = domains or (CORP + FREEMAIL)
    mx_idx = pool_offset + r.ints(s + "/mx", n, 0, max(n // 2, 8))
    dom = np.array(domains)[mx_idx % len(domains)]
    msgs = pl.DataFrame({
        "ts": ts_series(ts), "kind": "outbound", "direction": "out",
        "sender": pick_users(r, s + "/from", n, ("contoso.com", "contoso.co.uk"), [0.85, 0.15]),
        "server_ip": other_ips(mx_idx), "subject": r.pick(s + "/subj", n, SUBJECTS_OUT),
        "size": _sizes(r, s + "/size", n), "msgid": _exo_msgids(r, s + "/mid", n),
        "key": guids(r, s + "/key", n), "status": _statuses(r, s + "/st", n, "out"),
        "_dom": dom,
    })
    rows = explode_recipients(r, s, msgs, lambda st, k: pl.Series(np.char.add(r.pick(st, k, LOCALPARTS), "@")))
    # every recipient of a message is in that message's domain (its MX is server_ip)
    rows = rows.with_columns(pl.format("{}{}", "recipient", "_dom").alias("recipient")).drop("_dom")
    return finish(rows)


def internal(r: Rand, s: str, n: int, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Mailbox to mailbox inside Exchange Online: no FromIP, no ToIP."""
    ts = times(r, s, n, start, end)
    msgs = pl.DataFrame({
        "ts": ts_series(ts), "kind": "internal", "direction": "int",
        "sender": pick_users(r, s + "/from", n, ("contoso.com", "contoso.co.uk"), [0.85, 0.15]),
        "subject": r.pick(s + "/subj", n, SUBJECTS_INT), "size": _sizes(r, s + "/size", n),
        "msgid": _exo_msgids(r, s + "/mid", n), "key": guids(r, s + "/key", n),
        "status": _statuses(r, s + "/st", n, "int"),
    })
    return finish(explode_recipients(r, s, msgs, lambda st, k: pick_users(r, st, k)))


def onprem_in(r: Rand, s: str, n: int, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """On-premises Exchange (and its DMZ relays) to cloud mailboxes, through 'On-prem Exchange'."""
    ts = times(r, s, n, start, end)
    src = r.pick(s + "/ip", n, [EX01_PUBLIC, EX02_PUBLIC] + ONPREM_DMZ[:4], [0.45, 0.35, 0.05, 0.05, 0.05, 0.05])
    app = r.uniform(s + "/app", n) < 0.35
    apps = np.array(["erp@contoso.com", "hr-portal@contoso.com", "backup@contoso.com", "monitoring@contoso.com",
                     "timesheet@contoso.co.uk"])
    user = pick_users(r, s + "/from", n, ("fabrikam-legacy.com", "contoso.com", "hr.fabrikam-legacy.com"),
                      [0.6, 0.3, 0.1]).to_numpy()
    sender = np.where(app, apps[r.ints(s + "/a", n, 0, len(apps))], user)
    subj = np.where(app, r.pick(s + "/sa", n, SUBJECTS_APP), r.pick(s + "/su", n, SUBJECTS_INT))
    host = np.where(np.isin(src, [EX01_PUBLIC]), "EX01.contoso.local", np.where(src == EX02_PUBLIC,
                    "EX02.contoso.local", "dmz-relay.contoso.com"))
    ts_arr = ts
    conn = np.where(ts_arr < _us(RENAME_AT), OLD_ONPREM_NAME, "On-prem Exchange")
    msgs = pl.DataFrame({
        "ts": ts_series(ts), "kind": "onprem", "direction": "in", "sender": sender, "client_ip": src,
        "client_host": host, "connector": conn, "subject": subj, "size": _sizes(r, s + "/size", n),
        "msgid": _msgids(r, s + "/mid", n, "EX01.contoso.local"), "key": guids(r, s + "/key", n),
        "status": _statuses(r, s + "/st", n, "int"),
    })
    return finish(explode_recipients(r, s, msgs, lambda st, k: pick_users(r, st, k)))


def scanners_in(r: Rand, s: str, n: int, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    ts = times(r, s, n, start, end)
    src = r.pick(s + "/ip", n, SCANNER_IPS)
    msgs = pl.DataFrame({
        "ts": ts_series(ts), "kind": "scanner", "direction": "in",
        "sender": r.pick(s + "/from", n, ["scanner@contoso.com", "mfp-2f@contoso.com", "mfp-3f@contoso.com"]),
        "client_ip": src, "client_host": pl.Series(np.char.add("mfp-", np.char.replace(src.astype(str), ".", "-"))),
        "connector": "Scanners relay", "subject": r.pick(s + "/subj", n, SUBJECTS_SCAN),
        "size": _sizes(r, s + "/size", n, 80_000, 6_000_000),
        "msgid": _msgids(r, s + "/mid", n, "mfp.contoso.com"), "key": guids(r, s + "/key", n),
        "status": "Delivered",
    })
    return finish(explode_recipients(r, s, msgs, lambda st, k: pick_users(r, st, k), max_extra=0))


def partner_in(r: Rand, s: str, n: int, start: dt.datetime, end: dt.datetime, partner: str) -> pl.DataFrame:
    """Fabrikam or Northwind mail, from the addresses in their connector."""
    ts = times(r, s, n, start, end)
    if partner == "fabrikam":
        ips, dom, conn, host = FABRIKAM_IPS, "fabrikam.com", "Fabrikam partner", "mx.fabrikam.com"
    else:
        ips, dom, conn, host = NORTHWIND_IPS, "northwindtraders.com", "Northwind partner", "mail.northwindtraders.com"
    msgs = pl.DataFrame({
        "ts": ts_series(ts), "kind": partner, "direction": "in",
        "sender": pick_users(r, s + "/from", n, (dom,)), "client_ip": r.pick(s + "/ip", n, ips),
        "client_host": host, "connector": conn, "subject": r.pick(s + "/subj", n, SUBJECTS_IN),
        "size": _sizes(r, s + "/size", n), "msgid": _msgids(r, s + "/mid", n, host),
        "key": guids(r, s + "/key", n), "status": _statuses(r, s + "/st", n, "int"),
    })
    return finish(explode_recipients(r, s, msgs, lambda st, k: pick_users(r, st, k)))


def fabrikam_out(r: Rand, s: str, n: int, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Contoso to Fabrikam: through 'To Fabrikam' to its smart hosts."""
    ts = times(r, s, n, start, end)
    msgs = pl.DataFrame({
        "ts": ts_series(ts), "kind": "to_fabrikam", "direction": "out",
        "sender": pick_users(r, s + "/from", n), "server_ip": r.pick(s + "/sh", n, list(FABRIKAM_SMART_HOSTS)),
        "connector": "To Fabrikam", "subject": r.pick(s + "/subj", n, SUBJECTS_OUT),
        "size": _sizes(r, s + "/size", n), "msgid": _exo_msgids(r, s + "/mid", n),
        "key": guids(r, s + "/key", n), "status": "Delivered",
    })
    return finish(explode_recipients(r, s, msgs, lambda st, k: pick_users(r, st, k, ("fabrikam.com",))))


def hybrid_out(r: Rand, s: str, n: int, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Cloud users to mailboxes still on premises (fabrikam-legacy.com, InternalRelay): through
    'To on-prem Exchange' to mail.contoso.com."""
    ts = times(r, s, n, start, end)
    msgs = pl.DataFrame({
        "ts": ts_series(ts), "kind": "hybrid", "direction": "out",
        "sender": pick_users(r, s + "/from", n), "server_ip": EX01_PUBLIC, "connector": "To on-prem Exchange",
        "subject": r.pick(s + "/subj", n, SUBJECTS_INT), "size": _sizes(r, s + "/size", n),
        "msgid": _exo_msgids(r, s + "/mid", n), "key": guids(r, s + "/key", n), "status": "Delivered",
    })
    return finish(explode_recipients(r, s, msgs, lambda st, k: pick_users(r, st, k, ("fabrikam-legacy.com",))))


def series_rows(r: Rand, tag: str, n: int, base: dict, ts: np.ndarray, **varying) -> pl.DataFrame:
    """`n` planted rows sharing `base`, with `ts` and per-row columns `varying` (arrays)."""
    data = {"ts": ts_series(ts)}
    for k, v in base.items():
        data[k] = pl.Series([v] * n) if not isinstance(v, (np.ndarray, pl.Series, list)) else v
    data.update({k: v for k, v in varying.items()})
    df = pl.DataFrame(data)
    if "key" not in df.columns:
        df = df.with_columns(guids(r, "planted/" + tag, n).alias("key"))
    if "msgid" not in df.columns:
        host = base.get("client_host") or "mail.example"
        df = df.with_columns(_msgids(r, "planted/mid/" + tag, n, host if isinstance(host, str) else "mail.example")
                             .alias("msgid"))
    if "planted" not in df.columns:
        df = df.with_columns(pl.lit(tag).alias("planted"))
    if "rcpt_no" not in df.columns:
        df = df.with_columns(pl.lit(0).alias("rcpt_no"))
    return finish(df)


# ---------------------------------------------------------------------------------------------
# The planted cases (fixed; they do not scale)
# ---------------------------------------------------------------------------------------------

def _spread(n: int, start: dt.datetime, end: dt.datetime, salt: int = 0) -> np.ndarray:
    """`n` fixed, evenly spread timestamps in [start, end) with a deterministic jitter."""
    a, b = _us(start), _us(end)
    step = (b - a) // n
    jitter = (np.arange(n, dtype=np.int64) * 7_368_787 + salt * 1_000_003) % max(step // 2, 1)
    return a + np.arange(n, dtype=np.int64) * step + jitter


def _d(day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def _users_fixed(r: Rand, tag: str, n: int, domain: str = "contoso.com") -> pl.Series:
    return pick_users(r, "planted/rcpt/" + tag, n, (domain,))


def planted_trace(r: Rand) -> pl.DataFrame:
    """Planted rows of the Get-MessageTraceV2 exports (one row per recipient)."""
    parts = []
    # non_accepted_domain: on-prem apps send as noreply@mail.contoso.com (a host name, not an
    # accepted domain) through the OnPremises connector.
    n = 31
    parts.append(series_rows(r, "non_accepted_domain", n, dict(
        kind="onprem", direction="in", sender="noreply@mail.contoso.com", client_ip=EX01_PUBLIC,
        client_host="EX01.contoso.local", subject="[Intranet] Your weekly digest", status="Delivered", size=18_432),
        _spread(n, _d(16, 6), _d(22, 20), 1), recipient=_users_fixed(r, "nad", n)))
    # direct_send: the Lyon printer, behind a new ISP address, mails scans as contoso.com.
    n = 26
    parts.append(series_rows(r, "direct_send", n, dict(
        kind="direct", direction="in", sender="scan-lyon@contoso.com", client_ip=DIRECT_SEND_SRC,
        client_host="lyon-mfp.contoso.fr", subject="Scanned from MFP-LYON", status="Delivered", size=412_000),
        _spread(n, _d(16, 8), _d(21, 12), 2), recipient=_users_fixed(r, "ds", n)))
    # unrouted_inbound: Tailspin Toys' order system, 140 messages from one address, no connector.
    n = 140
    parts.append(series_rows(r, "unrouted_inbound", n, dict(
        kind="internet", direction="in", sender="orders@tailspintoys.com", client_ip=UNROUTED_SRC,
        client_host="smtp.tailspintoys.com", status="Delivered", size=26_880),
        _spread(n, _d(16, 7), _d(17, 19), 3), recipient=_users_fixed(r, "ur", n),
        subject=pl.Series([f"Order confirmation TT-{40_000 + i}" for i in range(n)])))
    # near miss: a newsletter with 99 rows from one address (threshold 100)
    n = 99
    parts.append(series_rows(r, "near_unrouted", n, dict(
        kind="internet", direction="in", sender="news@lucernepublishing.com", client_ip=UNROUTED_NEAR_SRC,
        client_host="mta.lucernepublishing.com", subject="Lucerne Publishing: new titles this week",
        status="Delivered", size=88_100), _spread(n, _d(20, 6), _d(22, 22), 4), recipient=_users_fixed(r, "nu", n)))
    # disabled_connector_traffic: Litware still sends from the range of its disabled connector.
    n = 12
    parts.append(series_rows(r, "disabled_connector_traffic", n, dict(
        kind="litware", direction="in", client_ip=LITWARE_SRC, client_host="smtp.litware.com",
        subject="Final invoice", status="Delivered", size=52_000),
        _spread(n, _d(16, 9), _d(18, 23), 5), recipient=_users_fixed(r, "lw", n),
        sender=pl.Series([f"{u}@litware.com" for u in ["accounts", "billing", "j.ortiz"] * 4])))
    # outbound_bypass: five messages to fabrikam.com went to Fabrikam's MX, not the smart hosts.
    n = 5
    parts.append(series_rows(r, "outbound_bypass", n, dict(
        kind="to_fabrikam", direction="out", server_ip=OUTBOUND_BYPASS_MX, subject="Purchase order 4711",
        status="Delivered", size=31_000), _spread(n, _d(17, 14), _d(17, 15), 6),
        sender=_users_fixed(r, "obs", n), recipient=_users_fixed(r, "obr", n, "fabrikam.com"),
        msgid=_exo_msgids(r, "planted/obm", n)))
    # near miss: eu.fabrikam.com is not covered by the connector's "fabrikam.com"
    n = 4
    parts.append(series_rows(r, "near_outbound_bypass", n, dict(
        kind="outbound", direction="out", server_ip=EU_FABRIKAM_MX, subject="Re: EU logistics",
        status="Delivered", size=21_000), _spread(n, _d(18, 9), _d(18, 17), 7),
        sender=_users_fixed(r, "nobs", n), recipient=_users_fixed(r, "nobr", n, "eu.fabrikam.com"),
        msgid=_exo_msgids(r, "planted/nobm", n)))
    # the greylisted gateway's mail once it got through (counts toward its 100-row unrouted budget)
    n = 20
    gw_senders = [f"{lp}@{d}" for lp, d in zip(LOCALPARTS[:12] + LOCALPARTS[:8], CORP[1::2] * 2, strict=False)]
    parts.append(series_rows(r, "gateway_delivered", n, dict(
        kind="gateway", direction="in", client_ip=GW1_EGRESS, client_host="mx-gw1.contoso.co.uk",
        subject="Order status", status="Delivered", size=40_960), _spread(n, _d(20, 10, 15), _d(22, 18), 8),
        sender=pl.Series(gw_senders),
        recipient=pl.Series([f"{first}.{last}@{dom}" for first, last, dom in
                             zip(FIRST[:n], LAST[:n], ["contoso.co.uk", "fabrikam-legacy.com"] * 10, strict=True)])))
    # near miss: bounces (null sender) relayed by on-prem: sender_accepted is null, not False
    n = 2
    parts.append(series_rows(r, "near_null_sender", n, dict(
        kind="onprem", direction="in", sender="", client_ip=EX02_PUBLIC, client_host="EX02.contoso.local",
        subject="Undeliverable: Timesheet reminder", status="Delivered", size=9_000),
        _spread(n, _d(17, 11), _d(17, 12), 9), recipient=_users_fixed(r, "ns", n)))
    # the row that is Pending in the first export and Delivered in the second (same trace row)
    parts.append(series_rows(r, "pending_then_delivered", 1, dict(
        kind="outbound", direction="out", sender="anna.berg@contoso.com", recipient="orders@adatum.com",
        server_ip="62.12.0.18", subject="Purchase order 4712", status="Delivered", size=24_576),
        np.array([at(19, 11, 58, 3)]), msgid=_exo_msgids(r, "planted/pend", 1)))
    return pl.concat(parts)


def planted_emailevents(r: Rand) -> pl.DataFrame:
    parts = []
    # attribution_mismatch: before the rename the service logged the connector's old name
    n = 14
    parts.append(series_rows(r, "attribution_mismatch", n, dict(
        kind="onprem", direction="in", connector=OLD_ONPREM_NAME, client_host="EX01.contoso.local",
        subject="[ERP] Daily sales report", status="Delivered", size=14_000),
        _spread(n, _d(16, 7), _d(18, 9), 11), client_ip=pl.Series([EX01_PUBLIC, EX02_PUBLIC] * 7),
        sender=pl.Series(["erp@contoso.com", "hr-portal@contoso.com"] * 7), recipient=_users_fixed(r, "am", n)))
    # partner_bypass: fabrikam.com mail from an address outside the Fabrikam connector
    n = 8
    parts.append(series_rows(r, "partner_bypass", n, dict(
        kind="fabrikam", direction="in", client_ip=PARTNER_BYPASS_SRC, client_host="mx3.fabrikam.com",
        subject="Shipment update", status="Delivered", size=22_500),
        _spread(n, _d(19, 8), _d(21, 17), 12), sender=_users_fixed(r, "pbs", n, "fabrikam.com"),
        recipient=_users_fixed(r, "pbr", n)))
    # near misses: news.fabrikam.com is not covered by SenderDomains "fabrikam.com"; a spoof of
    # the CEO whose envelope sender is elsewhere (the header From is contoso.com)
    n = 6
    parts.append(series_rows(r, "near_partner_bypass", n, dict(
        kind="internet", direction="in", sender="news@news.fabrikam.com", client_ip="193.30.4.17",
        client_host="o1.bulkmail.example", subject="Fabrikam Monthly", status="Delivered", size=95_000),
        _spread(n, _d(16, 15), _d(22, 15), 13), recipient=_users_fixed(r, "npb", n)))
    n = 5
    parts.append(series_rows(r, "near_direct_send", n, dict(
        kind="spoof", direction="in", sender="bounce-7731@mailer.payfast.example", client_ip="94.126.40.9",
        client_host="mailer.payfast.example", subject="Urgent: wire transfer today", status="Blocked", size=6_100),
        _spread(n, _d(18, 13), _d(19, 16), 14), recipient=_users_fixed(r, "nds", n)))
    return pl.concat(parts)


@dataclass
class Hotspot:
    """The planted deferrals, for EXPECTED.json."""

    burst: int
    background: int
    near: int
    trickle: int


def _sender_ip(block: int, third: int, fourth: int) -> str:
    """An address of background block `block` (the planted Postfix senders are ordinary servers)."""
    a, b = _OTHER_16[block]
    return f"{a}.{b}.{third}.{fourth}"


def postfix_planted(r: Rand) -> tuple[list[dict], Hotspot]:
    """Postfix events of the planted cases as dicts: ('msg', ...) message lifecycles and
    ('reject', ...) relay refusals. Written out by `postfix_lines`."""
    events: list[dict] = []
    # Burst: Friday 20 Nov 09:00, the MX of contoso.co.uk moved to mx-gw1; 13 messages are
    # deferred at 0, 5, 15 and 35 minutes (52 deferrals within 09:00-10:00) and sent at +70 min.
    burst = 0
    for j in range(13):
        t0 = at(20, 9, 0, 30) + j * 100_000_000
        sender = f"{LOCALPARTS[j]}@{CORP[1::2][j % 12]}"
        tries = [t0 + 1_200_000, t0 + 300_000_000, t0 + 900_000_000, t0 + 2_100_000_000]
        burst += len(tries)
        events.append(dict(kind="msg", host="mx-gw1", t=t0, client_ip=_sender_ip(j, 250, 10 + j),
                           sender=sender, rcpt=f"{FIRST[j]}.{LAST[j]}@contoso.co.uk", defers=tries,
                           egress=GW1_EGRESS, sent=t0 + 4_200_000_000, tag="burst"))
    # Background: isolated deferrals all week (0-2 an hour), each retried 5 minutes later.
    hours = [(16, 8), (16, 14), (16, 15), (17, 2), (17, 10), (17, 10), (17, 16), (18, 9), (18, 11),
             (18, 20), (19, 7), (19, 13), (19, 13), (21, 10), (21, 19), (22, 8), (22, 12), (22, 21)]
    for j, (d, h) in enumerate(hours):
        t0 = at(d, h, 7 + (j * 13) % 45, (j * 7) % 60)
        events.append(dict(kind="msg", host="mx-gw1", t=t0, client_ip=_sender_ip(j + 13, 251, 20 + j),
                           sender=f"{LOCALPARTS[(j + 3) % 16]}@{CORP[1::2][(j + 5) % 12]}",
                           rcpt=f"{FIRST[(j + 7) % 30]}.{LAST[(j + 2) % 24]}@fabrikam-legacy.com",
                           defers=[t0 + 900_000], egress=GW1_EGRESS, sent=t0 + 301_000_000, tag="background"))
    # Near miss: mx-gw2 comes up on Saturday 14:00 and gets 9 deferrals in that hour.
    near = 0
    for j in range(3):
        t0 = at(21, 14, 5 + [0, 5, 15][j], 11)
        tries = [t0 + 800_000, t0 + 300_000_000, t0 + 900_000_000]
        near += len(tries)
        events.append(dict(kind="msg", host="mx-gw2", t=t0, client_ip=_sender_ip(j + 5, 252, 30 + j),
                           sender=f"{LOCALPARTS[j + 8]}@{CORP[1::2][j]}",
                           rcpt=f"{FIRST[j + 10]}.{LAST[j + 4]}@contoso.co.uk",
                           defers=tries, egress=GW2_EGRESS, sent=t0 + 2_100_000_000, tag="near_hotspot"))
    # relay_rejected: a bot probes mx-gw1 for open relay on Wednesday night.
    victims = ["m.rossi1974@gmail.com", "kwok.lee@yahoo.com", "bestdeals@web.de", "laura.s@orange.fr",
               "t.nguyen@icloud.com", "info@gmx.de"]
    for j in range(23):
        t = at(18, 2, 13, 0) + j * 226_000_000 + (j * 37_000) % 1_000_000
        events.append(dict(kind="reject", host="mx-gw1", t=t,
                           client_ip=RELAY_PROBE_SRC, sender="spameri@tiscali.it", rcpt=victims[j % len(victims)],
                           text="554 5.7.1 <{rcpt}>: Relay access denied", helo="WIN-CLJ1B0GQ6JP",
                           tag="relay_rejected"))
    # near misses: 5.7.1 refusals that are not about relaying, 4.7.1 temporary rejections
    others = [("185.70.9.21", "554 5.7.1 <{rcpt}>: Recipient address rejected: Access denied", "ceo@contoso.co.uk"),
              ("77.87.40.3",
               "450 4.7.1 <{rcpt}>: Recipient address rejected: Greylisted, see https://postgrey.schweikert.ch/",
               "info@fabrikam-legacy.com"),
              ("88.198.7.77", "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in relay recipient table",
               "nobody@fabrikam-legacy.com")]
    for j in range(9):
        ip, text, rcpt = others[j % 3]
        events.append(dict(kind="reject", host="mx-gw1", t=at(16 + j % 6, 3 + j, 41, 9), client_ip=ip,
                           sender=f"x{j}@spam-domain{j}.example", rcpt=rcpt, text=text, helo="localhost",
                           tag="near_relay_rejected"))
    return events, Hotspot(burst=burst, background=len(hours), near=near, trickle=0)


# ---------------------------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------------------------

def _csv(df: pl.DataFrame, quote: str = "always") -> str:
    """CSV with CRLF. "always" is Export-Csv (every field quoted, "" for empty); "necessary"
    leaves empty fields bare, as the tracking logs and the Defender export do."""
    if quote == "necessary":
        df = df.with_columns(pl.when(pl.col(pl.String) != "").then(pl.col(pl.String)))
    return df.write_csv(quote_style=quote, line_terminator="\r\n", null_value="")


def _en_us(col: str) -> pl.Expr:
    return pl.col(col).dt.strftime("%-m/%-d/%Y %-I:%M:%S %p")


def _iso7(col: str) -> pl.Expr:
    """2026-11-19T08:15:02.1234567Z (Exchange Online's 7 fractional digits)."""
    return pl.col(col).dt.strftime("%Y-%m-%dT%H:%M:%S%.6f") + pl.lit("0Z")


def _en_us_dt(t: dt.datetime) -> str:
    hour, ampm = (t.hour % 12) or 12, "AM" if t.hour < 12 else "PM"
    return f"{t.month}/{t.day}/{t.year} {hour}:{t.minute:02d}:{t.second:02d} {ampm}"


def write_trace(rows: pl.DataFrame, window: tuple[dt.datetime, dt.datetime], encoding: str,
                overrides: dict[str, str] | None = None) -> bytes:
    """Get-MessageTraceV2 | Export-Csv (Windows PowerShell 5.1): #TYPE line, every field quoted,
    en-US dates, newest first, CRLF; `encoding` ascii (non-ASCII -> '?') or cp1252."""
    lo, hi = (ts_series([_us(t)])[0] for t in window)
    df = (rows.filter((pl.col("ts") >= lo) & (pl.col("ts") < hi))
          .sort(["ts", "key", "rcpt_no"], descending=[True, False, False]))
    if overrides:
        df = df.with_columns(pl.col("key").replace_strict(overrides, default=pl.col("status"), return_dtype=pl.String)
                             .alias("status"))
    subject = ascii_only(pl.col("subject")) if encoding == "ascii" else pl.col("subject")
    out = df.select(
        pl.lit(ORG).alias("Organization"), pl.col("msgid").alias("MessageId"), _en_us("ts").alias("Received"),
        pl.col("sender").alias("SenderAddress"), pl.col("recipient").alias("RecipientAddress"),
        subject.alias("Subject"), pl.col("status").alias("Status"),
        pl.col("server_ip").fill_null("").alias("ToIP"), pl.col("client_ip").fill_null("").alias("FromIP"),
        pl.col("size").cast(pl.String).alias("Size"), pl.col("key").alias("MessageTraceId"),
        pl.lit(_en_us_dt(window[0])).alias("StartDate"), pl.lit(_en_us_dt(window[1])).alias("EndDate"),
        pl.int_range(0, pl.len()).cast(pl.String).alias("Index"),
    )
    text = "#TYPE Deserialized.Microsoft.Exchange.Management.FfoReporting.MessageTrace\r\n" + _csv(out)
    return text.encode("cp1252", errors="replace") if encoding == "cp1252" else text.encode("ascii", errors="replace")


def _mep(**values: str | pl.Expr | None) -> pl.Expr:
    """The Data column of Get-MessageTraceDetail: <root><MEP Name="X" String="v"/>...</root>."""
    parts = [pl.lit("<root>")]
    for name, value in values.items():
        if value is None:
            continue
        expr = value if isinstance(value, pl.Expr) else pl.lit(value)
        piece = pl.format('<MEP Name="{}" String="{}"/>', pl.lit(name), expr)
        parts.append(pl.when(expr.is_not_null()).then(piece).otherwise(pl.lit("")))
    parts.append(pl.lit("</root>"))
    return pl.concat_str(parts)


def detail_events(r: Rand, trace_rows: pl.DataFrame) -> pl.DataFrame:
    """Get-MessageTraceDetailV2 events of a sample of the traced messages (after the rename,
    so logged connector names are the current ones): Receive, then the outcome."""
    cand = trace_rows.filter(pl.col("planted").is_null() & (pl.col("ts") >= ts_series([_us(RENAME_AT)])[0]))
    pick = pl.Series(r.uniform("detail/pick", cand.height) < 0.12)
    m = cand.filter(pick)
    srv = pl.lit("AM9PR04MB8451.eurprd04.prod.outlook.com")
    inbound = pl.col("direction") == "in"
    recv = m.select(
        "key", "msgid", "sender", "recipient", "rcpt_no",
        (pl.col("ts") - pl.duration(milliseconds=850)).alias("ts"), pl.lit("Receive").alias("event"),
        pl.when(inbound).then(pl.format("Message received by: {} using TLS1.3 with AES256", srv))
        .otherwise(pl.format("Message received by: {}", srv)).alias("detail"),
        pl.when(inbound).then(_mep(ConnectorId=pl.col("connector"), ClientIP=pl.col("client_ip"),
                                   ClientHostName=pl.col("client_host"), ServerHostName=pl.lit("AM9PR04MB8451"),
                                   ReturnPath=pl.col("sender")))
        .otherwise(_mep(ServerHostName=pl.lit("AM9PR04MB8451"), ReturnPath=pl.col("sender"))).alias("data"),
    )
    outcome_event = (pl.when(pl.col("status") == "Failed").then(pl.lit("Fail"))
                     .when(pl.col("status") == "Pending").then(pl.lit("Defer"))
                     .when(pl.col("status") == "Expanded").then(pl.lit("Expand"))
                     .when(pl.col("status") == "Quarantined").then(pl.lit("Quarantine"))
                     .when(pl.col("direction") == "out").then(pl.lit("Send"))
                     .otherwise(pl.lit("Deliver")))
    outcome_detail = (
        pl.when(pl.col("status") == "Failed").then(pl.lit(
            "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"))
        .when(pl.col("status") == "Pending").then(pl.lit(
            "451 4.4.0 Primary target IP address responded with: \"421 4.4.2 Connection dropped due to SocketError.\""))
        .when(pl.col("status") == "Expanded").then(
            pl.lit("The message was expanded to the distribution group members."))
        .when(pl.col("status") == "Quarantined").then(pl.lit("The message was quarantined."))
        .when(pl.col("status") == "FilteredAsSpam").then(pl.lit("The message was delivered to the Junk Email folder."))
        .when(pl.col("direction") == "out").then(pl.format(
            "Message sent to mx.{} at {} using TLS1.2 with AES256", pl.col("recipient").str.extract(r"@(.+)$"),
            pl.col("server_ip")))
        .otherwise(pl.lit("The message was successfully delivered.")))
    done = m.select(
        "key", "msgid", "sender", "recipient", "rcpt_no", "ts", outcome_event.alias("event"),
        outcome_detail.alias("detail"),
        pl.when(pl.col("direction") == "out").then(_mep(ConnectorId=pl.col("connector"), ServerIP=pl.col("server_ip")))
        .otherwise(_mep(ServerHostName=pl.lit("AM9PR04MB8451"))).alias("data"),
    )
    return pl.concat([recv, done])


def detail_planted(r: Rand) -> tuple[pl.DataFrame, int]:
    """Deferrals seen by Contoso's own outbound mail (another tenant throttles an EOP address
    Contoso sends from): a steady trickle all week (3 an hour, 12 an hour on Tuesday 08-16) and
    two isolated 4.7.650. Returns the events and the number of trickle deferrals."""
    rows = []
    text = "451 4.7.500 Server busy. Please try again later from [{}]. (AS761)".format(TRICKLE_SRC)
    stamps = []
    for h in range(7 * 24):
        day, hour = 16 + h // 24, h % 24
        per = 12 if (day == 17 and 8 <= hour < 16) else 3
        stamps += [at(day, hour, 2 + (60 // per) * k, 17) for k in range(per)]
    per_msg = 12  # Exchange Online retries a deferred message for hours
    n_msgs = len(stamps) // per_msg
    keys = guids(r, "planted/trickle", n_msgs).to_list()
    mids = _exo_msgids(r, "planted/trickle/mid", n_msgs).to_list()
    senders = pick_users(r, "planted/trickle/from", n_msgs).to_list()
    rcpts = pick_users(r, "planted/trickle/to", n_msgs, ("humongousinsurance.com",)).to_list()
    for i, ts in enumerate(stamps):
        j = i // per_msg
        rows.append(dict(key=keys[j], msgid=mids[j], sender=senders[j], recipient=rcpts[j], rcpt_no=0, ts=ts,
                         event="Defer", detail=text, data='<root><MEP Name="ServerIP" String="52.101.41.7"/></root>'))
        if i % per_msg == per_msg - 1:
            rows.append(dict(key=keys[j], msgid=mids[j], sender=senders[j], recipient=rcpts[j], rcpt_no=0,
                             ts=ts + 240_000_000, event="Send",
                             detail="Message sent to humongousinsurance-com.mail.protection.outlook.com at 52.101.41.7 "
                                    "using TLS1.3 with AES256",
                             data='<root><MEP Name="ServerIP" String="52.101.41.7"/></root>'))
    k2 = guids(r, "planted/isolated", 2).to_list()
    m2 = _exo_msgids(r, "planted/isolated/mid", 2).to_list()
    for j, t in enumerate([at(19, 10, 12, 40), at(21, 15, 40, 2)]):
        rows.append(dict(key=k2[j], msgid=m2[j], sender="bruno.costa@contoso.com",
                         recipient="orders@wideworldimporters.com", rcpt_no=0, ts=t, event="Defer",
                         detail=f"451 4.7.650 The mail server [{ISOLATED_SRC}] has been temporarily rate limited "
                                "due to IP reputation. (S775)",
                         data='<root><MEP Name="ServerIP" String="52.101.62.20"/></root>'))
    df = pl.DataFrame(rows)
    return df.with_columns(pl.col("ts").cast(pl.Datetime("us"))), len(stamps)


def write_detail(events: pl.DataFrame) -> bytes:
    df = events.sort(["key", "rcpt_no", "ts", "event"])
    out = df.select(
        pl.lit(ORG).alias("Organization"), pl.col("msgid").alias("MessageId"), pl.col("key").alias("MessageTraceId"),
        pl.col("recipient").alias("RecipientAddress"), pl.col("sender").alias("SenderAddress"),
        _en_us("ts").alias("Date"), pl.col("event").alias("Event"), pl.lit("").alias("Action"),
        pl.col("detail").alias("Detail"), pl.col("data").alias("Data"))
    text = "#TYPE Deserialized.Microsoft.Exchange.Management.FfoReporting.MessageTraceDetail\r\n" + _csv(out)
    return text.encode("ascii", errors="replace")


_STATUS_WORDS = {"Delivered": "Deliver", "FilteredAsSpam": "Deliver", "Failed": "Fail", "Expanded": "Expand",
                 "Quarantined": "Quarantine", "Pending": "Defer", "Blocked": "Fail"}


def write_enhanced(rows: pl.DataFrame) -> bytes:
    """EAC enhanced summary report: one row per message, recipients packed into recipient_status
    (``a@x##Receive, Deliver;b@y##Receive, Send``); UTF-16LE with BOM, every field quoted."""
    df = rows.with_columns(
        pl.when((pl.col("direction") == "out") & (pl.col("status") == "Delivered")).then(pl.lit("Send"))
        .otherwise(pl.col("status").replace_strict(_STATUS_WORDS, default="Deliver")).alias("_last"))
    per = df.sort(["ts", "key", "rcpt_no"]).group_by("key", maintain_order=True).agg(
        pl.col("ts").first(), pl.col("sender").first(), pl.col("subject").first(), pl.col("size").first(),
        pl.col("msgid").first(), pl.col("client_ip").first(), pl.col("direction").first(),
        pl.col("connector").first(),
        pl.format("{}##Receive, {}", "recipient", "_last").str.join(";").alias("recipient_status"))
    out = per.select(
        _iso7("ts").alias("origin_timestamp_utc"), pl.col("sender").alias("sender_address"), "recipient_status",
        pl.col("subject").alias("message_subject"), pl.col("size").cast(pl.String).alias("total_bytes"),
        pl.col("msgid").alias("message_id"), pl.col("key").alias("network_message_id"),
        pl.when(pl.col("direction") == "in").then(pl.col("client_ip")).otherwise(pl.lit(""))
        .alias("original_client_ip"),
        pl.when(pl.col("direction") == "in").then(pl.lit("Incoming")).otherwise(pl.lit("Originating"))
        .alias("directionality"),
        pl.col("connector").fill_null("").alias("connector_id"), pl.lit("Normal").alias("delivery_priority"))
    return b"\xff\xfe" + _csv(out).encode("utf-16-le")


EXTENDED_COLUMNS = ["date_time_utc", "client_ip", "client_hostname", "server_ip", "server_hostname",
                    "source_context", "connector_id", "source", "event_id", "internal_message_id", "message_id",
                    "network_message_id", "recipient_address", "recipient_status", "total_bytes", "recipient_count",
                    "related_recipient_address", "reference", "message_subject", "sender_address", "return_path",
                    "message_info", "directionality", "tenant_id", "original_client_ip", "original_server_ip",
                    "custom_data"]


def write_extended(r: Rand, rows: pl.DataFrame) -> bytes:
    """EAC extended report: one row per event (RECEIVE, AGENTINFO, DELIVER or SEND), rows in no
    particular order, UTF-16LE with BOM, quoted header and fields."""
    inbound = pl.col("direction") == "in"
    srv = pl.lit("AM9PR04MB8451")
    base = rows.with_columns(
        pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").alias("_t0"),
        (pl.col("ts") + pl.duration(milliseconds=412)).dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").alias("_t1"),
        (pl.col("ts") + pl.duration(milliseconds=1_730)).dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").alias("_t2"),
        (pl.lit(1_236_950_000_000) + pl.col("size") % 1_000_000).cast(pl.String).alias("_imi"),
        pl.when(inbound).then(pl.lit("Incoming")).otherwise(pl.lit("Originating")).alias("_dir"),
    )
    blank = pl.lit("")

    def frame(event: str, **cols: pl.Expr) -> pl.DataFrame:
        exprs = {c: cols.get(c, blank).alias(c) for c in EXTENDED_COLUMNS}
        return base.select(list(exprs.values()))

    common = dict(message_id=pl.col("msgid"), network_message_id=pl.col("key"),
                  recipient_address=pl.col("recipient"), total_bytes=pl.col("size").cast(pl.String),
                  recipient_count=pl.lit("1"), message_subject=pl.col("subject"), sender_address=pl.col("sender"),
                  return_path=pl.col("sender"), directionality=pl.col("_dir"), tenant_id=pl.lit(TENANT_ID),
                  internal_message_id=pl.col("_imi"), server_hostname=srv)
    receive = frame("RECEIVE", date_time_utc=pl.col("_t0"),
                    client_ip=pl.when(inbound).then(pl.col("client_ip")).otherwise(blank),
                    client_hostname=pl.when(inbound).then(pl.col("client_host")).otherwise(blank),
                    server_ip=pl.lit("2603:10a6:20b:4c8::16"),
                    source_context=pl.format("08DE1A2B3C4D5E6F;{};0", pl.col("_t0")),
                    connector_id=pl.col("connector").fill_null(""),
                    source=pl.when(inbound).then(pl.lit("SMTP")).otherwise(pl.lit("STOREDRIVER")),
                    event_id=pl.lit("RECEIVE"),
                    original_client_ip=pl.when(inbound).then(pl.col("client_ip")).otherwise(blank), **common)
    agent = frame("AGENTINFO", date_time_utc=pl.col("_t1"), source=pl.lit("AGENT"), event_id=pl.lit("AGENTINFO"),
                  custom_data=pl.when(inbound).then(pl.format(
                      "S:SFA=SUM|SFV=NSPM|IPV=NLI|SRV=|SFS=|SCL=1|SCORE=-2|LIST=0|DI=SN|RD={}|H={}|CIP={}|SFP=1501|"
                      "ASF=0|CTRY=|CLTCTRY=|LANG=en|LAT=0|LAT=0|LAT=0;S:DeliveryPriority=Normal",
                      pl.col("client_host"), pl.col("client_host"), pl.col("client_ip")))
                  .otherwise(pl.lit("S:SFA=SUM|SFV=SKI|IPV=|SRV=|SFS=|SCL=-1|SCORE=0|LIST=0|DI=|RD=|H=|CIP=|SFP=1501;"
                                    "S:DeliveryPriority=Normal")),
                  **common)
    final = frame("FINAL", date_time_utc=pl.col("_t2"),
                  server_ip=pl.when(inbound).then(blank).otherwise(pl.col("server_ip")),
                  source=pl.when(inbound).then(pl.lit("STOREDRIVER")).otherwise(pl.lit("SMTP")),
                  event_id=pl.when(inbound).then(pl.lit("DELIVER")).otherwise(pl.lit("SEND")),
                  recipient_status=pl.when(inbound).then(blank).otherwise(pl.lit("250 2.6.0 Queued mail for delivery")),
                  original_client_ip=pl.when(inbound).then(pl.col("client_ip")).otherwise(blank),
                  message_info=pl.format("{};SRV=AM9PR04MB8451.eurprd04.prod.outlook.com:TOTAL-HUB=0.612",
                                         pl.col("_t0")),
                  **common)
    events = pl.concat([receive, agent, final])
    # EAC reports come in no particular order
    order = pl.Series(r.bits("extended/order", events.height))
    events = events.with_columns(order.alias("_o")).sort("_o").drop("_o")
    return b"\xff\xfe" + _csv(events).encode("utf-16-le")


# --- Exchange Server message tracking ---------------------------------------------------------

MSGTRK_FIELDS = ("date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,connector-id,"
                 "source,event-id,internal-message-id,message-id,network-message-id,recipient-address,"
                 "recipient-status,total-bytes,recipient-count,related-recipient-address,reference,"
                 "message-subject,sender-address,return-path,message-info,directionality,tenant-id,"
                 "original-client-ip,original-server-ip,custom-data,transport-traffic-type,log-id,"
                 "schema-version").split(",")
EXCHANGE_VERSION = "15.02.1544.004"
TO_M365 = "Outbound to Office 365 - 6f3c2a1e-9b7d-4e21-8c55-0d4e7a1b2c3f"


def onprem_messages(r: Rand, s: str, n: int, start: dt.datetime, end: dt.datetime, offset: int) -> pl.DataFrame:
    """What EX01 handles: mailbox users and line-of-business apps sending to Exchange Online
    (kind `submit` / `app`), and cloud users writing to mailboxes still on premises (`hybrid`).
    One row per message; recipients joined with ';' as the tracking log writes them."""
    ts = times(r, s, n, start, end)
    kind = r.pick(s + "/kind", n, ["submit", "app", "hybrid"], [0.45, 0.25, 0.30])
    nrc = 1 + np.searchsorted([0.8, 0.95], r.uniform(s + "/nr", n), side="right")
    users = pick_users(r, s + "/from", n, ("fabrikam-legacy.com", "contoso.com"), [0.7, 0.3]).to_numpy()
    cloud = pick_users(r, s + "/cloud", n).to_numpy()
    apps = np.array(["erp@contoso.com", "hr-portal@contoso.com", "backup@contoso.com", "monitoring@contoso.com"])
    sender = np.where(kind == "app", apps[r.ints(s + "/app", n, 0, 4)], np.where(kind == "hybrid", cloud, users))
    rc = []
    for k in range(3):  # up to three recipients, joined
        dom = np.where(kind == "hybrid", "fabrikam-legacy.com", "contoso.com")
        rc.append(np.char.add(np.char.add(np.char.add(r.pick(f"{s}/r{k}f", n, FIRST), "."),
                                          np.char.add(r.pick(f"{s}/r{k}l", n, LAST), "@")), dom))
    rc[1] = np.where(rc[1] == rc[0], np.char.replace(rc[1], "@", "2@"), rc[1])
    rc[2] = np.where((rc[2] == rc[0]) | (rc[2] == rc[1]), np.char.replace(rc[2], "@", "3@"), rc[2])
    recips = np.where(nrc >= 3, np.char.add(np.char.add(np.char.add(np.char.add(rc[0], ";"), rc[1]), ";"), rc[2]),
                      np.where(nrc == 2, np.char.add(np.char.add(rc[0], ";"), rc[1]), rc[0]))
    client = np.where(kind == "app", r.pick(s + "/lan", n, APP_LAN[:2]),
                      np.where(kind == "hybrid", "", EX01_LAN))
    eop_idx = offset + r.ints(s + "/eop", n, 0, max(n // 3, 8))
    eop = eop_ips(eop_idx).to_numpy()
    client = np.where(kind == "hybrid", eop, client)
    return pl.DataFrame({
        "ts": ts_series(ts), "kind": kind, "sender": sender, "recipients": recips, "rcount": nrc,
        "subject": np.where(kind == "app", r.pick(s + "/sa", n, SUBJECTS_APP), r.pick(s + "/si", n, SUBJECTS_INT)),
        "size": _sizes(r, s + "/size", n), "msgid": _msgids(r, s + "/mid", n, "EX01.contoso.local"),
        "key": guids(r, s + "/key", n, "08dd"), "client_ip": client,
        "mx": r.pick(s + "/mx", n, list(EXO_MX_IPS)), "imi": 7_100_000_000_000 + ts // 1_000_000 % 10_000_000,
    })


def onprem_planted(r: Rand) -> pl.DataFrame:
    """open_relay (18 spam messages from the internet relayed by 'Anonymous Relay') and its
    near miss (an app server on the LAN relaying noreply@mail.contoso.com to customers)."""
    n = 18
    spam_from = ["promo@pharma-deals.example", "win@lottery-notice.example", "sales@replica-watch.example"]
    rcpt_pool = ["m.rossi1974@gmail.com", "kwok.lee@yahoo.com", "bestdeals@web.de", "laura.s@orange.fr",
                 "t.nguyen@icloud.com", "info@gmx.de", "pat.o@gmail.com", "sandra.k@web.de"]
    recips = [";".join(rcpt_pool[(j + k) % len(rcpt_pool)] for k in range(1 + j % 3)) for j in range(n)]
    relay = pl.DataFrame({
        "ts": ts_series(_spread(n, _d(19, 1, 12), _d(19, 2, 40), 21)), "kind": "open_relay",
        "sender": [spam_from[j % 3] for j in range(n)], "recipients": recips, "rcount": [1 + j % 3 for j in range(n)],
        "subject": ["Your order is waiting", "Congratulations! Claim now", "Best replicas, 80% off"] * 6,
        "size": [4_321 + 17 * j for j in range(n)], "msgid": _msgids(r, "planted/relay/mid", n, "localhost"),
        "key": guids(r, "planted/relay/key", n, "08dd"), "client_ip": OPEN_RELAY_SRC,
        "mx": other_ips(np.arange(1_900_000, 1_900_000 + n)), "imi": [7_200_000_000_000 + j for j in range(n)],
    })
    m = 6
    near = pl.DataFrame({
        "ts": ts_series(_spread(m, _d(19, 8), _d(19, 17), 22)), "kind": "near_open_relay",
        "sender": "noreply@mail.contoso.com", "recipients": [f"customer{j}@{CORP[2 * j + 1]}" for j in range(m)],
        "rcount": 1, "subject": "Your account statement", "size": 30_117,
        "msgid": _msgids(r, "planted/nor/mid", m, "app01.contoso.local"), "key": guids(r, "planted/nor/key", m, "08dd"),
        "client_ip": APP_LAN[2], "mx": list(EXO_MX_IPS[:2]) * 3, "imi": [7_300_000_000_000 + j for j in range(m)],
    })
    return pl.concat([relay, near], how="vertical_relaxed")


def msgtrk_rows(msgs: pl.DataFrame) -> pl.DataFrame:
    """Tracking-log events (RECEIVE, then SEND or DELIVER) of on-premises messages."""
    k = pl.col("kind")
    tfmt = "%Y-%m-%dT%H:%M:%S%.3fZ"
    recv_conn = (pl.when(k == "app").then(pl.lit("EX01\\Application Relay"))
                 .when(k == "near_open_relay").then(pl.lit("EX01\\Application Relay"))
                 .when(k == "open_relay").then(pl.lit("EX01\\Anonymous Relay"))
                 .when(k == "hybrid").then(pl.lit("EX01\\Default Frontend EX01"))
                 .otherwise(pl.lit("")))
    recv_server = (pl.when(k == "open_relay").then(pl.lit("10.20.30.111")).otherwise(pl.lit(EX01_LAN)))
    recv_source = pl.when(k == "submit").then(pl.lit("STOREDRIVER")).otherwise(pl.lit("SMTP"))
    client_host = (pl.when(k == "open_relay").then(pl.lit("WIN-CLJ1B0GQ6JP"))
                   .when(k == "hybrid").then(pl.lit("mail-eur05am6obe.outbound.protection.outlook.com"))
                   .when(k == "submit").then(pl.lit("EX01"))
                   .otherwise(pl.format("app{}.contoso.local", pl.col("client_ip").str.extract(r"(\d+)$"))))
    common = dict(**{
        "internal-message-id": pl.col("imi").cast(pl.String), "message-id": pl.col("msgid"),
        "network-message-id": pl.col("key"), "recipient-address": pl.col("recipients"),
        "total-bytes": pl.col("size").cast(pl.String), "recipient-count": pl.col("rcount").cast(pl.String),
        "message-subject": pl.col("subject"), "sender-address": pl.col("sender"), "return-path": pl.col("sender"),
        "directionality": pl.lit("Originating"), "transport-traffic-type": pl.lit("Email"),
        "log-id": pl.col("key").str.replace(r"^(.{8})", "a1b2c3d4"), "schema-version": pl.lit(EXCHANGE_VERSION)})
    blank = pl.lit("")

    def frame(**cols: pl.Expr) -> pl.DataFrame:
        merged = {**common, **cols}
        return msgs.select([merged.get(f, blank).alias(f) for f in MSGTRK_FIELDS] + [pl.col("ts").alias("_ts")])

    receive = frame(**{
        "date-time": pl.col("ts").dt.strftime(tfmt), "client-ip": pl.col("client_ip"), "client-hostname": client_host,
        "server-ip": recv_server, "server-hostname": pl.lit("EX01"),
        "source-context": pl.format("08DE2C4B6A1F0E9D;{};0", pl.col("ts").dt.strftime(tfmt)),
        "connector-id": recv_conn, "source": recv_source, "event-id": pl.lit("RECEIVE"),
        "original-client-ip": pl.when(k == "submit").then(blank).otherwise(pl.col("client_ip")),
        "original-server-ip": recv_server,
        "custom-data": pl.lit("S:FirstForestHop=EX01.contoso.local;S:DeliveryPriority=Normal;"
                              "S:AccountForest=contoso.local")})
    later = pl.col("ts") + pl.duration(milliseconds=1_423)
    is_deliver = k == "hybrid"
    statuses = pl.col("recipients").str.replace_all(r"[^;]+", "250 2.1.5 Recipient OK")
    onward = frame(**{
        "date-time": later.dt.strftime(tfmt), "client-ip": pl.when(is_deliver).then(blank).otherwise(pl.lit(EX01_LAN)),
        "client-hostname": pl.when(is_deliver).then(blank).otherwise(pl.lit("EX01")),
        "server-ip": pl.when(is_deliver).then(blank).otherwise(pl.col("mx")),
        "server-hostname": pl.when(is_deliver).then(pl.lit("EX01"))
        .when(k == "open_relay").then(pl.format("mx.{}", pl.col("recipients").str.extract(r"@([^;]+)")))
        .otherwise(pl.lit(EXO_MX)),
        "source-context": pl.when(is_deliver).then(pl.lit("MDB:7a1c9e2f-0b3d-4c5e-8f60-1a2b3c4d5e6f"))
        .when(k == "open_relay").then(pl.format("250 2.0.0 OK  {} x{}si.{} - gsmtp;ClientSubmitTime:",
                                                 pl.col("ts").dt.epoch("s"), pl.col("size"), pl.col("imi") % 1000))
        .otherwise(pl.format("250 2.6.0 {} [InternalId={}, Hostname=AM9PR04MB8451.eurprd04.prod.outlook.com] "
                             "Queued mail for delivery;ClientSubmitTime:", pl.col("msgid"), pl.col("imi"))),
        "connector-id": pl.when(is_deliver).then(blank).when(k == "open_relay").then(pl.lit("Internet"))
        .otherwise(pl.lit(TO_M365)),
        "source": pl.when(is_deliver).then(pl.lit("STOREDRIVER")).otherwise(pl.lit("SMTP")),
        "event-id": pl.when(is_deliver).then(pl.lit("DELIVER")).otherwise(pl.lit("SEND")),
        "recipient-status": pl.when(is_deliver).then(blank).otherwise(statuses),
        "message-info": pl.format("{};SRV=EX01.contoso.local:TOTAL=1.423", pl.col("ts").dt.strftime(tfmt)),
        "custom-data": pl.lit("S:DeliveryPriority=Normal;S:AccountForest=contoso.local")})
    return pl.concat([receive, onward]).sort("_ts", maintain_order=True)


def write_msgtrk(events: pl.DataFrame, first: dt.datetime) -> bytes:
    head = ("#Software: Microsoft Exchange Server\r\n"
            f"#Version: {EXCHANGE_VERSION}\r\n"
            "#Log-type: Message Tracking Log\r\n"
            f"#Date: {first.strftime('%Y-%m-%dT%H:%M:%S')}.117Z\r\n"
            f"#Fields: {','.join(MSGTRK_FIELDS)}\r\n")
    body = _csv(events.drop("_ts"), "necessary").split("\r\n", 1)[1]  # no header row: #Fields is the header
    return b"\xef\xbb\xbf" + (head + body).encode("utf-8")


# --- Postfix -----------------------------------------------------------------------------------

def _qids(index: np.ndarray) -> pl.Series:
    """Distinct 10-digit Postfix queue ids for distinct indexes."""
    v = (np.asarray(index, dtype=np.uint64) * np.uint64(0x9E3779B1) + np.uint64(0x3A5F)) % np.uint64(1 << 40)
    return pl.Series(hex16(v)).str.slice(6, 10).str.to_uppercase()


def postfix_noise(r: Rand, s: str, n: int, offset: int) -> pl.DataFrame:
    """Internet mail accepted by the gateways and relayed to Exchange Online, all delivered at
    the first attempt: mx-gw1 all week (fabrikam-legacy.com, plus contoso.co.uk from Friday
    09:00), mx-gw2 from Saturday 14:00."""
    msgs = internet_in(r, s, n, WEEK_START, WEEK_END, offset)
    msgs = msgs.filter(pl.col("rcpt_no") == 0)
    t = msgs.get_column("ts").cast(pl.Int64).to_numpy()
    gw2 = (t >= at(21, 14)) & (r.uniform(s + "/gw2", msgs.height) < 0.4)
    couk = t >= at(20, 9)
    dom = np.where(couk & (r.uniform(s + "/dom", msgs.height) < 0.7), "contoso.co.uk", "fabrikam-legacy.com")
    user = msgs.get_column("recipient").str.replace(r"@.*$", "@").to_numpy().astype(str)
    return msgs.select("ts", "sender", "client_ip", "client_host", "size", "msgid").with_columns(
        pl.Series("host", np.where(gw2, "mx-gw2", "mx-gw1")), pl.Series("rcpt", np.char.add(user, dom)))


def postfix_lines(noise: pl.DataFrame, planted_events: list[dict], r: Rand) -> pl.DataFrame:
    """Syslog lines (rsyslog high-precision timestamps) with their time, as a frame (t, host, line)."""
    n = noise.height
    t0 = noise.get_column("ts").cast(pl.Int64).to_numpy()
    base = noise.with_columns(
        pl.Series("t0", t0), _qids(np.arange(n)).alias("qid"),
        pl.Series("pid", 20_000 + r.ints("postfix/pid", n, 0, 9_000)),
        pl.Series("spid", 30_000 + r.ints("postfix/spid", n, 0, 9_000)),
        pl.Series("relay", r.pick("postfix/relay", n, list(EXO_MX_IPS[:2]))),
        pl.Series("iid", 12_884_901_000 + r.ints("postfix/iid", n, 0, 90_000_000)),
        pl.col("client_host").str.replace(r"^mail-.*outlook\.com$", "mail-eur05am6obe.outbound.protection.outlook.com"))
    lines = []

    def add(dt_us: pl.Expr, prog: str, pid: pl.Expr, msg: pl.Expr, seq: int) -> None:
        text = pl.format("{} postfix/{}[{}]: {}", pl.col("host"), pl.lit(prog), pid, msg)
        lines.append(base.select(dt_us.alias("t"), pl.col("host"), pl.lit(seq).alias("seq"), text.alias("text")))

    c = pl.format("{}[{}]", "client_host", "client_ip")
    add(pl.col("t0"), "smtpd", pl.col("pid"), pl.format("connect from {}", c), 0)
    add(pl.col("t0") + 120_000, "smtpd", pl.col("pid"), pl.format("{}: client={}", "qid", c), 1)
    add(pl.col("t0") + 210_000, "cleanup", pl.lit(1105), pl.format("{}: message-id={}", "qid", "msgid"), 2)
    add(pl.col("t0") + 350_000, "qmgr", pl.lit(1012), pl.format("{}: from=<{}>, size={}, nrcpt=1 (queue active)",
                                                                 "qid", "sender", "size"), 3)
    add(pl.col("t0") + 610_000, "smtpd", pl.col("pid"), pl.format(
        "disconnect from {} ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5", c), 4)
    add(pl.col("t0") + 1_410_000, "smtp", pl.col("spid"), pl.format(
        "{}: to=<{}>, relay={}[{}]:25, delay=1.4, delays=0.35/0.01/0.42/0.62, dsn=2.6.0, status=sent "
        "(250 2.6.0 {} [InternalId={}, Hostname=AM9PR04MB8451.eurprd04.prod.outlook.com] Queued mail for delivery)",
        "qid", "rcpt", pl.lit(EXO_MX), "relay", "msgid", "iid"), 5)
    add(pl.col("t0") + 1_460_000, "qmgr", pl.lit(1012), pl.format("{}: removed", "qid"), 6)
    frames = [f for f in lines]
    frames.append(_postfix_planted_lines(planted_events, n))
    out = pl.concat(frames).sort(["t", "seq"], maintain_order=True)
    return out.with_columns(
        pl.format("{} {}", pl.col("t").cast(pl.Datetime("us")).dt.strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00"),
                  "text").alias("line"))


def _postfix_planted_lines(events: list[dict], qid_base: int) -> pl.DataFrame:
    rows = []
    qids = _qids(np.arange(qid_base + 10_000_000, qid_base + 10_000_000 + len(events))).to_list()
    for i, e in enumerate(events):
        host, t, ip = e["host"], e["t"], e["client_ip"]
        pid = 4_000 + i
        name = "unknown" if e["kind"] == "reject" else f"mail.{e['sender'].split('@')[1]}"
        c = f"{name}[{ip}]"
        if e["kind"] == "reject":
            text = e["text"].format(rcpt=e["rcpt"])
            rows += [(t, host, 0, f"{host} postfix/smtpd[{pid}]: connect from {c}"),
                     (t + 380_000, host, 1, f"{host} postfix/smtpd[{pid}]: NOQUEUE: reject: RCPT from {c}: {text}; "
                                            f"from=<{e['sender']}> to=<{e['rcpt']}> proto=ESMTP helo=<{e['helo']}>"),
                     (t + 520_000, host, 2, f"{host} postfix/smtpd[{pid}]: disconnect from {c} ehlo=1 mail=1 rcpt=0/1 "
                                            f"quit=1 commands=3/4")]
            continue
        q = qids[i]
        mid = f"<{q.lower()}.{i:04d}@{e['sender'].split('@')[1]}>"
        rows += [(t, host, 0, f"{host} postfix/smtpd[{pid}]: connect from {c}"),
                 (t + 120_000, host, 1, f"{host} postfix/smtpd[{pid}]: {q}: client={c}"),
                 (t + 210_000, host, 2, f"{host} postfix/cleanup[1105]: {q}: message-id={mid}"),
                 (t + 350_000, host, 3, f"{host} postfix/qmgr[1012]: {q}: from=<{e['sender']}>, "
                                        f"size={20_480 + 97 * i}, nrcpt=1 (queue active)"),
                 (t + 610_000, host, 4, f"{host} postfix/smtpd[{pid}]: disconnect from {c} ehlo=1 mail=1 rcpt=1 data=1 "
                                        f"quit=1 commands=5")]
        for d in e["defers"]:
            delay = (d - t) / 1e6
            rows.append((d, host, 5, f"{host} postfix/smtp[{pid + 500}]: {q}: to=<{e['rcpt']}>, "
                                      f"relay={EXO_MX}[52.101.8.42]:25, delay={delay:.1f}, "
                                      f"delays={max(delay - 0.9, 0.1):.1f}/0.01/0.41/0.47, dsn=4.7.500, "
                                      f"status=deferred (host {EXO_MX}[52.101.8.42] said: 451 4.7.500 Server busy. "
                                      f"Please try again later from [{e['egress']}]. (AS761) "
                                      "(in reply to RCPT TO command))"))
        s = e["sent"]
        delay = (s - t) / 1e6
        rows += [(s, host, 5, f"{host} postfix/smtp[{pid + 500}]: {q}: to=<{e['rcpt']}>, "
                              f"relay={EXO_MX}[52.101.8.42]:25, delay={delay:.0f}, "
                              f"delays={delay - 1.1:.0f}/0.02/0.43/0.65, dsn=2.6.0, status=sent (250 2.6.0 {mid} "
                              f"[InternalId={13_000_000_000 + i}, Hostname=AM9PR04MB8451.eurprd04.prod.outlook.com] "
                              f"Queued mail for delivery)"),
                 (s + 50_000, host, 6, f"{host} postfix/qmgr[1012]: {q}: removed")]
    rows.append((at(18, 3, 10, 0), "mx-gw1", 9, "mx-gw1 postfix/anvil[1301]: statistics: max connection rate "
                                                 f"6/60s for (smtp:{RELAY_PROBE_SRC}) at Nov 18 02:20:41"))
    schema = {"t": pl.Int64, "host": pl.String, "seq": pl.Int32, "text": pl.String}
    return pl.DataFrame(rows, schema=schema, orient="row")


# --- Defender EmailEvents ----------------------------------------------------------------------

EMAILEVENTS_COLUMNS = ["Timestamp", "NetworkMessageId", "InternetMessageId", "SenderMailFromAddress",
                       "SenderFromAddress", "SenderDisplayName", "SenderObjectId", "SenderMailFromDomain",
                       "SenderFromDomain", "SenderIPv4", "SenderIPv6", "RecipientEmailAddress", "RecipientObjectId",
                       "Subject", "EmailClusterId", "EmailDirection", "DeliveryAction", "DeliveryLocation",
                       "ThreatTypes", "ThreatNames", "DetectionMethods", "ConfidenceLevel", "EmailAction",
                       "EmailActionPolicy", "EmailActionPolicyGuid", "AuthenticationDetails", "AttachmentCount",
                       "UrlCount", "EmailLanguage", "Connectors", "OrgLevelAction", "OrgLevelPolicy",
                       "UserLevelAction", "UserLevelPolicy", "ReportId", "AdditionalFields"]


def write_emailevents(rows: pl.DataFrame) -> bytes:
    """Advanced hunting `EmailEvents` exported as CSV from the Defender portal: newest first."""
    df = rows.sort(["ts", "key", "rcpt_no"], descending=[True, False, False])
    d = pl.col("direction")
    spoof = pl.col("kind") == "spoof"
    from_hdr = pl.when(spoof).then(pl.lit("ceo@contoso.com")).otherwise(pl.col("sender"))
    action = (pl.when(spoof | (pl.col("status") == "Quarantined")).then(pl.lit("Blocked"))
              .when(pl.col("status") == "FilteredAsSpam").then(pl.lit("Junked"))
              .when(pl.col("status") == "Failed").then(pl.lit("Blocked"))
              .otherwise(pl.lit("Delivered")))
    location = (pl.when(action == "Blocked").then(pl.lit("Quarantine"))
                .when(action == "Junked").then(pl.lit("Junk folder"))
                .when(d == "out").then(pl.lit("On-premises/external"))
                .otherwise(pl.lit("Inbox/folder")))
    ip = pl.when(d == "in").then(pl.col("client_ip")).otherwise(pl.lit("2603:10a6:20b:4c8::16"))
    auth = (pl.when(spoof).then(pl.lit('{"SPF":"fail","DKIM":"none","DMARC":"fail","CompAuth":"fail"}'))
            .when(pl.col("kind").is_in(["onprem", "scanner"]))
            .then(pl.lit('{"SPF":"none","DKIM":"none","DMARC":"none","CompAuth":"pass"}'))
            .otherwise(pl.lit('{"SPF":"pass","DKIM":"pass","DMARC":"pass","CompAuth":"pass"}')))
    cluster = (pl.col("size") * 7919 % 9_000_000_000 + 1_000_000_000).cast(pl.String)
    out = df.select(
        _iso7("ts").alias("Timestamp"), pl.col("key").alias("NetworkMessageId"),
        pl.col("msgid").alias("InternetMessageId"),
        pl.col("sender").alias("SenderMailFromAddress"), from_hdr.alias("SenderFromAddress"),
        pl.when(spoof).then(pl.lit("CEO")).otherwise(pl.col("sender").str.extract(r"^([^@.]+)").str.to_titlecase())
        .alias("SenderDisplayName"),
        pl.when(d == "in").then(pl.lit("")).otherwise(pl.lit("9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"))
        .alias("SenderObjectId"),
        pl.col("sender").str.extract(r"@(.+)$").alias("SenderMailFromDomain"),
        from_hdr.str.extract(r"@(.+)$").alias("SenderFromDomain"),
        pl.when(ip.str.contains(":")).then(pl.lit("")).otherwise(ip).alias("SenderIPv4"),
        pl.when(ip.str.contains(":")).then(ip).otherwise(pl.lit("")).alias("SenderIPv6"),
        pl.col("recipient").alias("RecipientEmailAddress"),
        pl.when(d == "out").then(pl.lit("")).otherwise(pl.lit("5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"))
        .alias("RecipientObjectId"),
        pl.col("subject").alias("Subject"), cluster.alias("EmailClusterId"),
        d.replace_strict({"in": "Inbound", "out": "Outbound", "int": "Intra-org"}).alias("EmailDirection"),
        action.alias("DeliveryAction"), location.alias("DeliveryLocation"),
        pl.when(spoof).then(pl.lit("Phish")).when(action == "Junked").then(pl.lit("Spam")).otherwise(pl.lit(""))
        .alias("ThreatTypes"), pl.lit("").alias("ThreatNames"),
        pl.when(spoof).then(pl.lit('["Spoof DMARC"]')).when(action == "Junked").then(pl.lit('["Spam"]'))
        .otherwise(pl.lit("")).alias("DetectionMethods"),
        pl.when(spoof).then(pl.lit('{"Phish":"High"}')).when(action == "Junked").then(pl.lit('{"Spam":"Normal"}'))
        .otherwise(pl.lit("")).alias("ConfidenceLevel"),
        pl.lit("").alias("EmailAction"), pl.lit("").alias("EmailActionPolicy"),
        pl.lit("").alias("EmailActionPolicyGuid"),
        auth.alias("AuthenticationDetails"), (pl.col("size") % 3).cast(pl.String).alias("AttachmentCount"),
        (pl.col("size") % 7).cast(pl.String).alias("UrlCount"), pl.lit("en").alias("EmailLanguage"),
        pl.col("connector").fill_null("").alias("Connectors"), pl.lit("").alias("OrgLevelAction"),
        pl.lit("").alias("OrgLevelPolicy"), pl.lit("").alias("UserLevelAction"), pl.lit("").alias("UserLevelPolicy"),
        pl.format("{}-{}-1", "key", (pl.col("size") * 104_729 % 10**18).cast(pl.String)).alias("ReportId"),
        pl.lit('{"ContentVersion":1}').alias("AdditionalFields"))
    return _csv(out, "necessary").encode("utf-8")


# ---------------------------------------------------------------------------------------------
# Configuration exports
# ---------------------------------------------------------------------------------------------

def ps51_json(value, indent: int = 0) -> str:
    """ConvertTo-Json as Windows PowerShell 5.1 writes it: 4-space objects, '":  "' after keys,
    array items indented four columns past the opening bracket, empty arrays on three lines."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return "{\r\n\r\n" + pad + "}"
        items = []
        for k, v in value.items():
            prefix = pad + "    " + json.dumps(k) + ":  "
            items.append(prefix + ps51_json(v, len(prefix)))
        return "{\r\n" + ",\r\n".join(items) + "\r\n" + pad + "}"
    if isinstance(value, list):
        inner = " " * (indent + 4)
        if not value:
            return "[\r\n\r\n" + pad + "]"
        return "[\r\n" + ",\r\n".join(inner + ps51_json(v, indent + 4) for v in value) + "\r\n" + pad + "]"
    text = json.dumps(value)
    # PowerShell 5.1 escapes these characters as \\u00XX
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("'", "\\u0027").replace("&", "\\u0026")


def inbound_json() -> bytes:
    """Get-InboundConnector | ConvertTo-Json | Out-File (Windows PowerShell 5.1): UTF-16LE with
    BOM, enums as numbers, dates as \\/Date(ms)\\/; one list exported as a ';'-joined string."""
    objs = []
    for i, c in enumerate(INBOUND_CONNECTORS):
        name = c["Name"]
        objs.append({
            "RunspaceId": "3f1d2c4b-5a69-4e78-9c0d-1e2f3a4b5c6d",
            "Enabled": c["Enabled"], "ConnectorType": c["ConnectorType"], "ConnectorSource": c["ConnectorSource"],
            "Comment": c["Comment"], "SenderIPAddresses": c["SenderIPAddresses"], "SenderDomains": c["SenderDomains"],
            "TrustedOrganizations": [], "AssociatedAcceptedDomains": [], "RequireTls": c["RequireTls"],
            "RestrictDomainsToIPAddresses": c["RestrictDomainsToIPAddresses"], "RestrictDomainsToCertificate": False,
            "CloudServicesMailEnabled": name == "On-prem Exchange", "TreatMessagesAsInternal": False,
            "TlsSenderCertificateName": c["TlsSenderCertificateName"], "EFTestMode": False, "ScanAndDropRecipients": [],
            "EFSkipLastIP": False, "EFSkipIPs": [], "EFSkipMailGateway": [], "EFUsers": [],
            "AdminDisplayName": "", "ExchangeVersion": "0.1 (8.0.535.0)", "Name": name,
            "DistinguishedName": f"CN={name},CN=Transport Settings,CN=Configuration,CN=contoso.onmicrosoft.com,"
                                 "CN=ConfigurationUnits,DC=EURPR04A001,DC=PROD,DC=OUTLOOK,DC=COM",
            "Identity": name, "ObjectClass": ["top", "msExchSMTPInboundConnector"],
            "WhenChanged": f"/Date({c['changed']})/", "WhenCreated": f"/Date({c['created']})/",
            "WhenChangedUTC": f"/Date({c['changed']})/", "WhenCreatedUTC": f"/Date({c['created']})/",
            "ExchangeObjectId": f"6b1f{i:04d}-2c3d-4e5f-8a9b-0c1d2e3f4a5b",
            "OrganizationId": "EURPR04A001.PROD.OUTLOOK.COM/Microsoft Exchange Hosted Organizations/"
                              "contoso.onmicrosoft.com",
            "Id": name, "Guid": f"6b1f{i:04d}-2c3d-4e5f-8a9b-0c1d2e3f4a5b",
            "OriginatingServer": "AM9PR04A001DC003.EURPR04A001.PROD.OUTLOOK.COM",
            "IsValid": True, "ObjectState": 1,
        })
    text = ps51_json(objs).replace("/Date(", "\\/Date(").replace(")/", ")\\/") + "\r\n"
    return b"\xff\xfe" + text.encode("utf-16-le")


def outbound_csv() -> bytes:
    """Get-OutboundConnector | Select-Object ..., @{n='RecipientDomains';e={$_.RecipientDomains -join ';'}},
    @{n='SmartHosts';e={...}} | Export-Csv (Windows PowerShell 5.1, ASCII): ValidationRecipients
    was not joined, so Export-Csv wrote its type name."""
    cols = ["Name", "Enabled", "ConnectorType", "ConnectorSource", "Comment", "RecipientDomains", "SmartHosts",
            "UseMXRecord", "TlsSettings", "TlsDomain", "IsTransportRuleScoped", "RouteAllMessagesViaOnPremises",
            "AllAcceptedDomains", "CloudServicesMailEnabled", "TestMode", "SenderRewritingEnabled",
            "ValidationRecipients", "IsValidated", "WhenChanged"]
    rows = []
    for c in OUTBOUND_CONNECTORS:
        row = {**{k: "" for k in cols}, **{k: v for k, v in c.items() if k in cols}}
        row.update(IsTransportRuleScoped="False", RouteAllMessagesViaOnPremises="False", AllAcceptedDomains="False",
                   CloudServicesMailEnabled=str(c["ConnectorType"] == "OnPremises"), TestMode="False",
                   SenderRewritingEnabled="False", ValidationRecipients="System.Collections.ArrayList",
                   IsValidated="True", Enabled=str(c["Enabled"]), UseMXRecord=str(c["UseMXRecord"]))
        rows.append(row)
    df = pl.DataFrame(rows).select(cols)
    text = ("#TYPE Selected.Deserialized.Microsoft.Exchange.Data.Directory.SystemConfiguration."
            "TenantOutboundConnector\r\n" + _csv(df))
    return text.encode("ascii")


def accepted_domains_json() -> bytes:
    """Get-AcceptedDomain | ConvertTo-Json (PowerShell 7 with the EXO V3 module: enums as names,
    two-space indentation), UTF-8 without BOM."""
    objs = []
    for i, (name, kind, default, sub) in enumerate(ACCEPTED_DOMAINS):
        objs.append({
            "DomainName": name, "CatchAllRecipientID": None, "DomainType": kind, "MatchSubDomains": sub,
            "AddressBookEnabled": kind == "Authoritative", "Default": default, "EmailOnly": False,
            "ExternallyManaged": False, "AuthenticationType": "Managed", "LiveIdInstanceType": "Business",
            "PendingRemoval": False, "PendingCompletion": False, "FederatedOrganizationLink": None,
            "MailFlowPartner": None, "OutboundOnly": False,
            "IsCoexistenceDomain": name.endswith("mail.onmicrosoft.com"),
            "InitialDomain": name == "contoso.onmicrosoft.com", "SendingFromDomainDisabled": False,
            "SmtpDaneStatus": "Disabled", "AdminDisplayName": "", "ExchangeVersion": "0.20 (15.0.0.0)", "Name": name,
            "Identity": name, "ObjectClass": ["top", "msExchAcceptedDomain"],
            "WhenChanged": f"/Date({1_700_000_000_000 + i * 86_400_000})/",
            "WhenCreated": f"/Date({1_600_000_000_000 + i * 86_400_000})/", "Id": name,
            "Guid": f"4bb7{i:04d}-a0ad-46bc-b70c-e3928a29256a", "IsValid": True, "ObjectState": "Unchanged",
        })
    return (json.dumps(objs, indent=2) + "\r\n").replace("\n", "\r\n").replace("\r\r\n", "\r\n").encode("utf-8")


class _Clix:
    """A small Export-Clixml writer (PowerShell serialization 1.1.0.1), enough for connectors."""

    def __init__(self) -> None:
        self.ref = 0
        self.types: dict[tuple[str, ...], int] = {}
        self.type_n = 0

    def _obj_start(self, name: str | None, types: tuple[str, ...], ind: str) -> list[str]:
        n_attr = f' N="{name}"' if name else ""
        out = [f'{ind}<Obj{n_attr} RefId="{self.ref}">']
        self.ref += 1
        if types in self.types:
            out.append(f'{ind}  <TNRef RefId="{self.types[types]}" />')
        else:
            self.types[types] = self.type_n
            out.append(f'{ind}  <TN RefId="{self.type_n}">')
            out += [f"{ind}    <T>{xml_escape(t)}</T>" for t in types]
            out.append(f"{ind}  </TN>")
            self.type_n += 1
        return out

    def enum(self, name: str, type_name: str, text: str, value: int, ind: str) -> list[str]:
        out = self._obj_start(name, (type_name, "System.Enum", "System.ValueType", "System.Object"), ind)
        return out + [f"{ind}  <ToString>{xml_escape(text)}</ToString>", f"{ind}  <I32>{value}</I32>", f"{ind}</Obj>"]

    def text_obj(self, name: str, types: tuple[str, ...], text: str, ind: str, props: list[str] = ()) -> list[str]:
        out = self._obj_start(name, types, ind) + [f"{ind}  <ToString>{xml_escape(text)}</ToString>"]
        if props:
            out += [f"{ind}  <Props>"] + [f"{ind}    {p}" for p in props] + [f"{ind}  </Props>"]
        return out + [f"{ind}</Obj>"]

    def mv(self, name: str, item_type: str, items: list[tuple[str, list[str]]], ind: str) -> list[str]:
        mvp = (f"Microsoft.Exchange.Data.MultiValuedProperty`1[[{item_type}, Microsoft.Exchange.Data, "
               "Version=15.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35]]",
               "Microsoft.Exchange.Data.MultiValuedPropertyBase", "System.Object")
        out = self._obj_start(name, mvp, ind) + [f"{ind}  <LST>"]
        for text, props in items:
            out += self.text_obj(None, (item_type, "System.Object"), text, ind + "    ", props)
        return out + [f"{ind}  </LST>", f"{ind}</Obj>"]


_AUTH = {"Tls": 1, "Integrated": 2, "BasicAuth": 4, "BasicAuthRequireTLS": 8, "ExchangeServer": 16,
         "ExternalAuthoritative": 32}
_PERM = {"AnonymousUsers": 1, "ExchangeUsers": 2, "ExchangeServers": 4, "ExchangeLegacyServers": 8, "Partners": 16}
_ALL = ["::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "0.0.0.0-255.255.255.255"]
RECEIVE_CONNECTORS = [
    # name, role, bindings, remote ranges, auth, permission groups, comment
    ("Default EX01", "HubTransport", ["0.0.0.0:2525", "[::]:2525"], _ALL,
     ["Tls", "Integrated", "BasicAuth", "BasicAuthRequireTLS", "ExchangeServer"],
     ["ExchangeUsers", "ExchangeServers", "ExchangeLegacyServers"], ""),
    ("Client Proxy EX01", "HubTransport", ["0.0.0.0:465", "[::]:465"], _ALL,
     ["Tls", "Integrated", "BasicAuth", "BasicAuthRequireTLS"], ["ExchangeUsers", "ExchangeServers"], ""),
    ("Default Frontend EX01", "FrontendTransport", ["0.0.0.0:25", "[::]:25"], _ALL,
     ["Tls", "Integrated", "BasicAuth", "BasicAuthRequireTLS", "ExchangeServer"],
     ["AnonymousUsers", "ExchangeServers", "ExchangeLegacyServers"], ""),
    ("Outbound Proxy Frontend EX01", "FrontendTransport", ["0.0.0.0:717", "[::]:717"], _ALL,
     ["Tls", "Integrated", "BasicAuth", "BasicAuthRequireTLS", "ExchangeServer"], ["ExchangeServers"], ""),
    ("Client Frontend EX01", "FrontendTransport", ["0.0.0.0:587", "[::]:587"], _ALL,
     ["Tls", "Integrated", "BasicAuth", "BasicAuthRequireTLS"], ["ExchangeUsers"], ""),
    ("Application Relay", "FrontendTransport", ["10.20.30.11:25"], ["10.20.40.0/24"],
     ["Tls", "ExternalAuthoritative"], ["AnonymousUsers", "ExchangeServers"], "LOB applications (app01-app04)"),
    ("Anonymous Relay", "FrontendTransport", ["10.20.30.111:25"], ["0.0.0.0-255.255.255.255"],
     ["Tls", "ExternalAuthoritative"], ["AnonymousUsers", "ExchangeServers"],
     "Temporary, copier migration. TODO restrict RemoteIPRanges"),
]


_T_RECEIVE = ("Microsoft.Exchange.Data.Directory.SystemConfiguration.ReceiveConnector",
              "Microsoft.Exchange.Data.Directory.SystemConfiguration.ADConfigurationObject",
              "Microsoft.Exchange.Data.Directory.ADObject", "Microsoft.Exchange.Data.Directory.ADRawEntry",
              "Microsoft.Exchange.Data.ConfigurableObject", "System.Object")
_T_FQDN = ("Microsoft.Exchange.Data.Fqdn", "Microsoft.Exchange.Data.SmtpDomain", "System.Object")
_T_SIZE = ("Microsoft.Exchange.Data.ByteQuantifiedSize", "System.ValueType", "System.Object")
_T_ADID = ("Microsoft.Exchange.Data.Directory.ADObjectId", "Microsoft.Exchange.Data.ObjectId", "System.Object")
_T_SYSCONF = "Microsoft.Exchange.Data.Directory.SystemConfiguration."


def receive_connectors_clixml() -> bytes:
    """Get-ReceiveConnector -Server EX01 | Export-Clixml: UTF-8 with BOM, CRLF (the shape of the
    CSS-Exchange sample in ../shared/data/connectors, without the binary SerializationData)."""
    c = _Clix()
    out = ['<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">']
    for i, (name, role, bindings, ranges, auth, perms, comment) in enumerate(RECEIVE_CONNECTORS):
        ind = "      "
        fqdn = "mail.contoso.com" if "Frontend" in name or "Relay" in name else "EX01.contoso.local"
        body = c._obj_start(None, _T_RECEIVE, "  ")
        body += [f"    <ToString>EX01\\{xml_escape(name)}</ToString>", "    <Props>"]
        body += c.enum("AuthMechanism", _T_SYSCONF + "AuthMechanisms", ", ".join(auth),
                       sum(_AUTH[a] for a in auth), ind)
        body += [f'{ind}<S N="Banner"></S>', f'{ind}<B N="BinaryMimeEnabled">true</B>']
        body += c.mv("Bindings", "Microsoft.Exchange.Data.IPBinding", [
            (b, [f'<I32 N="Port">{b.rsplit(":", 1)[1]}</I32>',
                 f'<S N="AddressFamily">{"InterNetworkV6" if b.startswith("[") else "InterNetwork"}</S>'])
            for b in bindings], ind)
        body += [f'{ind}<B N="ChunkingEnabled">true</B>', f'{ind}<Nil N="DefaultDomain" />',
                 f'{ind}<B N="DomainSecureEnabled">{"true" if name.startswith("Default Frontend") else "false"}</B>']
        body += c.text_obj("Fqdn", _T_FQDN, fqdn, ind, [f'<S N="Domain">{fqdn}</S>'])
        body += [f'{ind}<Nil N="TlsCertificateName" />', f'{ind}<S N="Comment">{xml_escape(comment)}</S>',
                 f'{ind}<B N="Enabled">true</B>']
        body += c.text_obj("MaxMessageSize", _T_SIZE, "36 MB (37,748,736 bytes)", ind)
        body += [f'{ind}<I32 N="MaxRecipientsPerMessage">{5000 if "Frontend" in name else 200}</I32>']
        body += c.enum("PermissionGroups", "Microsoft.Exchange.Data.PermissionGroups", ", ".join(perms),
                       sum(_PERM[p] for p in perms), ind)
        body += c.mv("RemoteIPRanges", "Microsoft.Exchange.Data.IPRange", [
            (rng, [f'<S N="LowerBound">{rng.split("-")[0] if "-" in rng else rng.split("/")[0]}</S>',
                   f'<S N="RangeFormat">{"LoHi" if "-" in rng else "CIDR"}</S>', f'<S N="Expression">{rng}</S>'])
            for rng in ranges], ind)
        body += [f'{ind}<B N="RequireEHLODomain">false</B>', f'{ind}<B N="RequireTLS">false</B>']
        body += c.text_obj("Server", _T_ADID, "EX01", ind, ['<S N="Rdn">CN=EX01</S>', '<S N="Parent">Servers</S>'])
        body += c.enum("TransportRole", _T_SYSCONF + "ServerRole", role,
                       {"HubTransport": 32, "FrontendTransport": 16384}[role], ind)
        body += [f'{ind}<S N="AdminDisplayName"></S>', f'{ind}<S N="Name">{xml_escape(name)}</S>']
        body += c.text_obj("Identity", _T_ADID, f"EX01\\{name}", ind)
        body += [f'{ind}<G N="Guid">75d6{i:04d}-cd4a-4c5e-9a1b-2c3d4e5f6a7b</G>',
                 f'{ind}<DT N="WhenChanged">2026-{3 + i:02d}-1{i}T09:1{i}:4{i}+01:00</DT>',
                 f'{ind}<DT N="WhenCreated">2024-0{1 + i % 9}-0{1 + i}T10:00:00+01:00</DT>',
                 f'{ind}<S N="OriginatingServer">DC01.contoso.local</S>', f'{ind}<B N="IsValid">true</B>']
        body += ["    </Props>", "  </Obj>"]
        out += body
    out.append("</Objs>")
    return b"\xef\xbb\xbf" + "\r\n".join(out).encode("utf-8")


# ---------------------------------------------------------------------------------------------
# Assembly
# ---------------------------------------------------------------------------------------------

class Pool:
    """Hands out disjoint index ranges of the address pools to the background generators."""

    def __init__(self) -> None:
        self.next = 0

    def take(self, n: int, per: int = 3) -> int:
        start = self.next
        self.next += max(n // per, 8) + 1
        return start


def _expected(hot: Hotspot, trace: pl.DataFrame, ee: pl.DataFrame, relay: pl.DataFrame,
              relay_file: str) -> list[dict]:
    """EXPECTED.json: the planted findings (kind, subject, severity) and why each one fires."""
    def rows(tag: str, frame: pl.DataFrame) -> int:  # after de-duplication of overlapping exports
        return frame.filter(pl.col("planted") == tag).select(pl.struct("key", "recipient").n_unique()).item()

    relay_msgs = relay.filter(pl.col("kind") == "open_relay")
    rdomains = sorted({a.split("@")[1] for x in relay_msgs.get_column("recipients").to_list() for a in x.split(";")})
    sdomains = sorted({a.split("@")[1] for a in relay_msgs.get_column("sender").to_list()})
    smart_hosts = " / ".join(FABRIKAM_SMART_HOSTS)
    found = [
        dict(kind="greylisting_hotspot", subject=GW1_EGRESS, severity="high",
             why=f"Postfix gateway mx-gw1 relays to {EXO_MX} from {GW1_EGRESS}, which is in no inbound "
                 "connector. On 2026-11-20 09:00-10:00 UTC (the MX of contoso.co.uk moved to it) 13 messages were "
                 f"deferred 4 times each: {hot.burst} deferrals '451 4.7.500 ... from [{GW1_EGRESS}]. (AS761)' in "
                 f"one window, against {hot.background} isolated deferrals over the rest of the week (0-2 an hour; "
                 f"the median per hour is 0): {hot.burst} >= 10 and >= 5 x max(0, 1); not covered and peak >= 50, "
                 "so high. One hot window, one finding."),
        dict(kind="open_relay", subject=OPEN_RELAY_SRC, severity="high",
             why=f"EX01's receive connector 'Anonymous Relay' accepts anyone: {relay_msgs.height} messages "
                 f"RECEIVEd from {OPEN_RELAY_SRC} (ip_class other) with senders in {', '.join(sdomains)} and "
                 f"recipients only in non-accepted domains ({', '.join(rdomains[:5])}, ...), each then SENT (same "
                 f"network-message-id, same file {relay_file})."),
        dict(kind="relay_rejected", subject=RELAY_PROBE_SRC, severity="medium",
             why=f"mx-gw1 refused 23 relay attempts from {RELAY_PROBE_SRC} with '554 5.7.1 <...>: Relay access "
                 "denied' (category relay_denied), one (source, 5.7.1) pair."),
        dict(kind="non_accepted_domain", subject="On-prem Exchange: mail.contoso.com", severity="medium",
             why=f"{rows('non_accepted_domain', trace)} trace rows from {EX01_PUBLIC} (in 'On-prem Exchange', "
                 "an OnPremises connector) with sender noreply@mail.contoso.com: mail.contoso.com is a host name, "
                 "not an accepted domain (contoso.com does not match subdomains)."),
        dict(kind="direct_send", subject=DIRECT_SEND_SRC, severity="medium",
             why=f"{rows('direct_send', trace)} trace rows from {DIRECT_SEND_SRC} (no connector, ip_class other) "
                 "with sender scan-lyon@contoso.com (accepted): the Lyon printer, whose connector 'Branch office "
                 "Lyon' still lists its old address."),
        dict(kind="unrouted_inbound", subject=UNROUTED_SRC, severity="info",
             why=f"{rows('unrouted_inbound', trace)} trace rows from {UNROUTED_SRC} (orders@tailspintoys.com, "
                 "no connector, ip_class other, sender not accepted): >= 100, and under 1,000 so info."),
        dict(kind="partner_bypass", subject=f"Fabrikam partner: {PARTNER_BYPASS_SRC}", severity="medium",
             why=f"{rows('partner_bypass', ee)} EmailEvents rows with senders in fabrikam.com from "
                 f"{PARTNER_BYPASS_SRC}, outside the connector's 198.51.100.32/28; the connector restricts "
                 "(RestrictDomainsToIPAddresses), so medium."),
        dict(kind="outbound_bypass", subject=f"To Fabrikam: {OUTBOUND_BYPASS_MX}", severity="medium",
             why=f"{rows('outbound_bypass', trace)} outbound trace rows to fabrikam.com recipients delivered to "
                 f"{OUTBOUND_BYPASS_MX} (ToIP), not to the smart hosts {smart_hosts} of 'To Fabrikam'."),
        dict(kind="disabled_connector_traffic", subject="Litware (retired)", severity="medium",
             why=f"{rows('disabled_connector_traffic', trace)} trace rows from {LITWARE_SRC}, inside the "
                 "disabled connector's 192.0.2.64/27 and in no enabled one."),
        dict(kind="unused_connector", subject="Branch office Lyon", severity="info",
             why="Enabled, SenderIPAddresses 192.0.2.200/30, and no row comes from that range (the Lyon printer "
                 f"now sends from {DIRECT_SEND_SRC}); the records hold far more than 100 inbound rows."),
        dict(kind="attribution_mismatch", subject=f"{OLD_ONPREM_NAME} != On-prem Exchange", severity="low",
             why=f"{rows('attribution_mismatch', ee)} EmailEvents rows from {EX01_PUBLIC}/{EX02_PUBLIC} logged "
                 f"with Connectors '{OLD_ONPREM_NAME}', the connector's name before its rename on "
                 f"{RENAME_AT:%Y-%m-%d %H:%M} UTC; by IP they belong to 'On-prem Exchange'."),
        dict(kind="connector_config", subject="EX01\\Anonymous Relay", severity="high",
             why="Receive connector 'Anonymous Relay' of server EX01 (subject: its Identity SERVER\\Name): "
                 "PermissionGroups AnonymousUsers, RemoteIPRanges 0.0.0.0-255.255.255.255 and AuthMechanism "
                 "ExternalAuthoritative: anonymous relay from anywhere."),
        dict(kind="connector_config", subject="Northwind partner", severity="medium",
             why="Partner connector with both SenderIPAddresses (192.0.2.16/29) and TlsSenderCertificateName "
                 "(mail.northwindtraders.com): use two connectors."),
    ]
    order = {"high": 0, "medium": 1, "low": 2, "info": 3}
    return sorted(found, key=lambda f: (order[f["severity"]], f["kind"], f["subject"]))


def build(scale: int) -> tuple[dict[str, bytes], dict[str, int]]:
    """Every output file (relative path -> bytes) and a few counts for the summary."""
    r = Rand(SEED)
    pool = Pool()
    N = lambda base: base * scale  # noqa: E731
    files: dict[str, bytes] = {}
    stats: dict[str, int] = {}

    # configuration
    files["config/Get-InboundConnector.json"] = inbound_json()
    files["config/Get-OutboundConnector.csv"] = outbound_csv()
    files["config/Get-AcceptedDomain.json"] = accepted_domains_json()
    files["config/EX01_Get-ReceiveConnector.xml"] = receive_connectors_clixml()

    # Get-MessageTraceV2: the whole week, two overlapping exports
    noise = [
        internet_in(r, "trace/in", N(70), WEEK_START, WEEK_END, pool.take(N(70))),
        outbound(r, "trace/out", N(35), WEEK_START, WEEK_END, pool.take(N(35), 2)),
        internal(r, "trace/int", N(25), WEEK_START, WEEK_END),
        onprem_in(r, "trace/onprem", N(22), WEEK_START, WEEK_END),
        scanners_in(r, "trace/scan", N(6), WEEK_START, WEEK_END),
        partner_in(r, "trace/fab", N(6), WEEK_START, WEEK_END, "fabrikam"),
        partner_in(r, "trace/nw", N(3), WEEK_START, WEEK_END, "northwind"),
        fabrikam_out(r, "trace/tofab", N(5), WEEK_START, WEEK_END),
        hybrid_out(r, "trace/hyb", N(6), WEEK_START, WEEK_END),
    ]
    ptrace = planted_trace(r)
    trace = pl.concat(noise + [ptrace])
    pending_key = ptrace.filter(pl.col("planted") == "pending_then_delivered").get_column("key").item()
    files["logs/exo/MessageTrace_2026-11-16_2026-11-19.csv"] = write_trace(trace, TRACE1, "cp1252",
                                                                           {pending_key: "Pending"})
    files["logs/exo/MessageTrace_2026-11-18_2026-11-22.csv"] = write_trace(trace, TRACE2, "ascii")
    lo, hi = (ts_series([_us(t)])[0] for t in (TRACE2[0], TRACE1[1]))
    stats["trace duplicates"] = trace.filter((pl.col("ts") >= lo) & (pl.col("ts") < hi)).height

    # Get-MessageTraceDetailV2 of some traced messages, and the planted deferral near misses
    trickle_events, trickle = detail_planted(r)
    detail = pl.concat([detail_events(r, trace).select("key", "msgid", "sender", "recipient", "rcpt_no", "ts", "event",
                                                       "detail", "data"),
                        trickle_events.select("key", "msgid", "sender", "recipient", "rcpt_no", "ts", "event",
                                                 "detail", "data")])
    files["logs/exo/MessageTraceDetail_2026-11-16_2026-11-22.csv"] = write_detail(detail)

    # EAC enhanced summary (Thursday) and extended report (Friday)
    d19, d20, d21 = _d(19), _d(20), _d(21)
    enh = pl.concat([
        internet_in(r, "enh/in", N(25), d19, d20, pool.take(N(25))),
        outbound(r, "enh/out", N(12), d19, d20, pool.take(N(12), 2)),
        internal(r, "enh/int", N(8), d19, d20),
        onprem_in(r, "enh/onprem", N(6), d19, d20),
        partner_in(r, "enh/fab", N(2), d19, d20, "fabrikam"),
    ])
    files["logs/eac/EnhancedSummaryReport_2026-11-19.csv"] = write_enhanced(enh)
    special = pl.concat([
        series_rows(r, "subject_quotes", 1, dict(
            kind="fabrikam", direction="in", sender="k.jansen@fabrikam.com", recipient="anna.berg@contoso.com",
            client_ip=FABRIKAM_IPS[3], client_host="mx.fabrikam.com", connector="Fabrikam partner",
            subject='Budget 2027, "final" numbers,\nplease review', status="Delivered", size=58_123),
            np.array([at(20, 10, 4, 7, 250_000)])),
        series_rows(r, "subject_script", 1, dict(
            kind="internet", direction="in", sender="promo@deals.example", recipient="ben.li@contoso.com",
            client_ip="193.30.77.12", client_host="smtp.deals.example", subject="<script>alert(1)</script>",
            status="Delivered", size=7_200), np.array([at(20, 13, 37, 51, 4_000)])),
        series_rows(r, "near_attribution_mismatch", 1, dict(
            kind="onprem", direction="in", sender="erp@contoso.com", recipient="carla.novak@contoso.com",
            client_ip=EX02_PUBLIC, client_host="EX02.contoso.local", connector="on-prem exchange",
            subject="[ERP] Purchase order approval", status="Delivered", size=12_800),
            np.array([at(20, 15, 0, 12, 900_000)])),
    ])
    ext = pl.concat([
        internet_in(r, "ext/in", N(10), d20, d21, pool.take(N(10))),
        outbound(r, "ext/out", N(6), d20, d21, pool.take(N(6), 2)),
        onprem_in(r, "ext/onprem", N(4), d20, d21),
        scanners_in(r, "ext/scan", N(1), d20, d21),
        special,
    ])
    files["logs/eac/ExtendedReport_2026-11-20.csv"] = write_extended(r, ext)

    # Exchange Server EX01 message tracking: two log files
    relay = onprem_planted(r)
    a = onprem_messages(r, "msgtrk/a", N(10), WEEK_START, _d(19), pool.take(N(10)))
    b = onprem_messages(r, "msgtrk/b", N(12), _d(19), WEEK_END, pool.take(N(12)))
    relay_file = "logs/exchange/EX01/MSGTRK2026111900-1.LOG"
    files["logs/exchange/EX01/MSGTRK2026111600-1.LOG"] = write_msgtrk(msgtrk_rows(a), WEEK_START)
    files[relay_file] = write_msgtrk(msgtrk_rows(pl.concat([b, relay], how="vertical_relaxed")), _d(19))

    # Postfix gateways: rotated log (gzip) and current log
    pf_events, hot = postfix_planted(r)
    hot.trickle = trickle
    pf = postfix_lines(postfix_noise(r, "postfix", N(25), pool.take(N(25))), pf_events, r)
    cut = _us(_d(20))
    old = "\n".join(pf.filter(pl.col("t") < cut).get_column("line").to_list()) + "\n"
    new = "\n".join(pf.filter(pl.col("t") >= cut).get_column("line").to_list()) + "\n"
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(old.encode("utf-8"))
    files["logs/postfix/mail.log.1.gz"] = buf.getvalue()
    files["logs/postfix/mail.log"] = new.encode("utf-8")

    # Defender EmailEvents (the week; on-prem rows only after the rename, except the planted ones)
    pee = planted_emailevents(r)
    ee = pl.concat([
        internet_in(r, "ee/in", N(35), WEEK_START, WEEK_END, pool.take(N(35))),
        outbound(r, "ee/out", N(12), WEEK_START, WEEK_END, pool.take(N(12), 2)),
        internal(r, "ee/int", N(10), WEEK_START, WEEK_END),
        onprem_in(r, "ee/onprem", N(5), RENAME_AT, WEEK_END),
        scanners_in(r, "ee/scan", N(2), WEEK_START, WEEK_END),
        partner_in(r, "ee/fab", N(2), WEEK_START, WEEK_END, "fabrikam"),
        partner_in(r, "ee/nw", N(1), WEEK_START, WEEK_END, "northwind"),
        pee,
    ])
    files["logs/defender/EmailEvents_2026-11-16_2026-11-22.csv"] = write_emailevents(ee)

    expected = _expected(hot, trace, ee, relay, relay_file.split("/")[-1])
    files["EXPECTED.json"] = (json.dumps(expected, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    stats["postfix lines"] = pf.height
    return files, stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=SAMPLE_LOGS,
                        help="directory to write config/ and logs/ into (default: sample_logs/)")
    parser.add_argument("--scale", type=int, default=1, help="multiply the background traffic by N (default 1)")
    parser.add_argument("--expected", type=Path,
                        help="where to write the planted findings (default: tests/data/sample_logs_expected.json "
                             "when writing sample_logs/, else not written)")
    args = parser.parse_args(argv)
    if args.scale < 1 or args.scale > 20_000:
        parser.error("--scale must be between 1 and 20000")
    expected_path = args.expected
    if expected_path is None and args.out.resolve() == SAMPLE_LOGS.resolve():
        expected_path = EXPECTED_FILE
    start = time.perf_counter()
    files, stats = build(args.scale)
    expected = files.pop("EXPECTED.json")
    if expected_path is not None:
        expected_path.parent.mkdir(parents=True, exist_ok=True)
        expected_path.write_bytes(expected)
    total = 0
    for rel, data in files.items():
        path = args.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        total += len(data)
    elapsed = time.perf_counter() - start
    for rel, data in sorted(files.items()):
        print(f"{len(data):>12,}  {rel}")
    print(f"{total:>12,}  bytes in {len(files)} files, {elapsed:.1f} s "
          f"(scale {args.scale}; {stats['trace duplicates']:,} trace rows in both exports)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
