"""Generate large, realistic EAC extended-report CSVs for reader and end-to-end benchmarks.

    python benchmarks/generate.py OUT.csv ROWS [--seed N]

Rows look like the real report (27 columns, ~16 events per message, unsorted, subjects with
commas and quotes, some 451 4.7.500 deferrals with the throttled IP) and are built column-wise
with numpy/polars, so 20 million rows take seconds, not minutes.

Senders come from a tenant-like mix, so attribution and the findings have real work against
``sample_logs/config`` (analyze the CSV together with that folder): 40% from the on-premises
servers of the "On-prem Exchange" connector (203.0.113.16/28), 10% from the Fabrikam partner's
198.51.100.32/28, 5% from the scanners' 203.0.113.200/29 and the rest from 20,000 internet
hosts. Messages and times continue from one batch to the next, so every message id is one
message; a 20-million-row file spans about six days (``--per-day`` sets another rate: the issue's
large tenant has 10 million rows a day).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import polars as pl

COLUMNS = [
    "date_time_utc", "client_ip", "client_hostname", "server_ip", "server_hostname", "source_context",
    "connector_id", "source", "event_id", "internal_message_id", "message_id", "network_message_id",
    "recipient_address", "recipient_status", "total_bytes", "recipient_count", "related_recipient_address",
    "reference", "message_subject", "sender_address", "return_path", "message_info", "directionality",
    "tenant_id", "original_client_ip", "original_server_ip", "custom_data",
]
EVENTS = np.array(["RECEIVE", "SEND", "DELIVER", "DEFER", "AGENTINFO", "RESOLVE", "EXPAND", "FAIL"])
EVENT_P = np.array([0.25, 0.2, 0.25, 0.05, 0.15, 0.04, 0.03, 0.03])
SUBJECTS = np.array([
    "Invoice 2024-11", 'Re: "Quarterly" numbers, final', "Scan from printer", "Weekly digest",
    "Password expiry notice", "RE: order #4411, shipping", "Meeting, Tuesday 10:00", "Voicemail",
])
DOMAINS = np.array(["contoso.com", "fabrikam.com", "example.net", "partner.example", "outlook.com"])


INTERNET_HOSTS = 20_000
CONNECTORS = np.array(["On-prem Exchange", "Fabrikam partner", "Scanners relay", ""])
SENDER_DOMAINS = np.array(["contoso.com", "fabrikam.com", "contoso.com"])


def _sources(msg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sender IPv4 address as an integer, sender class 0-3, internet host number) per event, a
    function of the message id only, so every event of a message has the same sender whichever
    batch it falls in."""
    h = (msg.astype(np.uint64) * np.uint64(11400714819323198485)) >> np.uint64(40)
    u = (h % np.uint64(1000)).astype(np.int64)
    host = (h // np.uint64(1000)).astype(np.int64)
    kind = np.select([u < 400, u < 500, u < 550], [0, 1, 2], 3)
    onprem = (203 << 24 | 113 << 8 | 16) + host % 16
    partner = (198 << 24 | 51 << 16 | 100 << 8 | 32) + host % 16
    scanner = (203 << 24 | 113 << 8 | 200) + host % 8
    # internet hosts: 20,000 addresses over many /16s, a few sending most of the mail
    k = (host % INTERNET_HOSTS) ** 2 // INTERNET_HOSTS
    internet = ((20 + k % 180) << 24) | ((k * 7919) % 65_000 + 256)
    return np.choose(kind, [onprem, partner, scanner, internet]), kind, k


PER_DAY = 3_456_000  # rows a day: a message every 0.4 s, about 16 rows each


def frame(rows: int, seed: int = 7, first_message: int = 0, per_day: int = PER_DAY) -> pl.DataFrame:
    """`rows` extended-report rows as a DataFrame of strings; message ids start at `first_message`,
    a message every 16 / `per_day` days."""
    rng = np.random.default_rng(seed)
    messages = max(rows // 16, 1)
    msg = first_message + rng.integers(0, messages, rows)
    base = np.datetime64("2026-11-01T00:00:00", "us")
    # a message every 0.4 s by default (about 3.5 million rows a day), its events within 5 s
    interval = 86_400_000_000 * 16 // per_day
    ts = base + (msg * interval + rng.integers(0, 5_000_000, rows)).astype("timedelta64[us]")
    ev = rng.choice(EVENTS, rows, p=EVENT_P)
    ip, kind, host = _sources(msg)
    # internet senders use outside domains, except 20 hosts that send some mail as contoso.com
    # (direct send, or spoofing)
    domain = np.where(kind < 3, SENDER_DOMAINS[np.minimum(kind, 2)],
                      np.where((host < 20) & (msg % 4 == 0), "contoso.com", DOMAINS[2 + msg % 3]))
    df = pl.DataFrame({
        "msg": msg, "ts": ts, "ev": ev, "ip": ip, "connector": CONNECTORS[kind], "domain": domain,
        # a message has one subject and one sender; its events go to one of 5,000 recipients each
        "sub": (msg * 2654435761) % 2**32 % len(SUBJECTS), "sender": (msg * 40503) % 2**16 % 97,
        "user": rng.integers(0, 5000, rows),
        "size": 2_000 + (msg * 7919) % 20_000_000,
    })
    df = df.with_columns(pl.format("{}.{}.{}.{}", pl.col("ip") // 2**24, pl.col("ip") // 2**16 % 256,
                                   pl.col("ip") // 2**8 % 256, pl.col("ip") % 256).alias("cip"))
    defer = pl.format("451 4.7.500 Server busy. Please try again later from [{}]. (AS761)", pl.col("cip"))
    out = df.select(
        # 7 fractional digits and a Z, as the service writes them
        (pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S%.6f") + "0Z").alias("date_time_utc"),
        pl.col("cip").alias("client_ip"),
        pl.lit("mail.contoso.com").alias("client_hostname"),
        pl.lit("52.101.8.42").alias("server_ip"),
        pl.lit("BN8NAM11FT066.mail.protection.outlook.com").alias("server_hostname"),
        pl.lit("08DCB1;250 2.6.0 queued").alias("source_context"),
        pl.col("connector").alias("connector_id"),
        pl.lit("SMTP").alias("source"),
        pl.col("ev").alias("event_id"),
        pl.col("msg").cast(pl.String).alias("internal_message_id"),
        pl.format("<{}@mail.contoso.com>", pl.col("msg")).alias("message_id"),
        pl.format("{}-0000-4000-8000-000000000000", pl.col("msg").cast(pl.String).str.pad_start(8, "0")).alias("network_message_id"),
        pl.format("user{}@contoso.com", pl.col("user")).alias("recipient_address"),
        pl.when(pl.col("ev") == "DEFER").then(defer).otherwise(pl.lit("250 2.1.5 Recipient OK")).alias("recipient_status"),
        pl.col("size").cast(pl.String).alias("total_bytes"),
        pl.lit("1").alias("recipient_count"),
        pl.lit("").alias("related_recipient_address"),
        pl.lit("").alias("reference"),
        pl.col("sub").replace_strict(dict(enumerate(SUBJECTS.tolist())), return_dtype=pl.String).alias("message_subject"),
        pl.format("sender{}@{}", pl.col("sender"), pl.col("domain")).alias("sender_address"),
        pl.lit("").alias("return_path"),
        pl.lit("").alias("message_info"),
        pl.lit("Incoming").alias("directionality"),
        pl.lit("0d0c5b6e-0000-4000-8000-000000000001").alias("tenant_id"),
        pl.col("cip").alias("original_client_ip"),
        pl.lit("").alias("original_server_ip"),
        pl.format("S:SFA=SUM|SFV=NSPM|CIP={}|H=mail.contoso.com", pl.col("cip")).alias("custom_data"),
    )
    return out


def write(path: Path, rows: int, seed: int = 7, batch: int = 2_000_000, per_day: int = PER_DAY) -> None:
    """Write `rows` rows to `path` in batches (bounded memory)."""
    with open(path, "wb") as fh:
        done = 0
        while done < rows:
            n = min(batch, rows - done)
            frame(n, seed + done, first_message=done // 16, per_day=per_day).write_csv(fh, include_header=done == 0)
            done += n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("rows", type=int)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--per-day", type=int, default=PER_DAY, help="rows a day (default %(default)s)")
    args = parser.parse_args()
    if args.per_day < 16:
        parser.error("--per-day: expected at least 16 (a message is about 16 rows)")
    write(args.out, args.rows, args.seed, per_day=args.per_day)


if __name__ == "__main__":
    main()
