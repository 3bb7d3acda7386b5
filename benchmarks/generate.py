"""Generate large, realistic EAC extended-report CSVs for reader and end-to-end benchmarks.

    python benchmarks/generate.py OUT.csv ROWS [--seed N]

Rows look like the real report (27 columns, ~16 events per message, unsorted, subjects with
commas and quotes, some 451 4.7.500 deferrals with the throttled IP) and are built column-wise
with numpy/polars, so 20 million rows take seconds, not minutes.
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


def frame(rows: int, seed: int = 7) -> pl.DataFrame:
    """`rows` extended-report rows as a DataFrame of strings."""
    rng = np.random.default_rng(seed)
    messages = max(rows // 16, 1)
    msg = rng.integers(0, messages, rows)
    base = np.datetime64("2026-11-01T00:00:00", "us")
    ts = base + (msg * 600_000 + rng.integers(0, 5_000_000, rows)).astype("timedelta64[us]")
    ev = rng.choice(EVENTS, rows, p=EVENT_P)
    src_net = rng.integers(0, 4096, rows)
    df = pl.DataFrame({
        "msg": msg, "ts": ts, "ev": ev, "net": src_net,
        "host": rng.integers(1, 255, rows), "sub": rng.integers(0, len(SUBJECTS), rows),
        "dom": rng.integers(0, len(DOMAINS), rows), "user": rng.integers(0, 5000, rows),
        "size": rng.integers(2_000, 20_000_000, rows),
    })
    df = df.with_columns(pl.format("{}.{}.{}.{}", (198 + pl.col("net") % 3), (51 + (pl.col("net") // 3) % 50),
                                   pl.col("net") % 256, pl.col("host")).alias("cip"))
    defer = pl.format("451 4.7.500 Server busy. Please try again later from [{}]. (AS761)", pl.col("cip"))
    out = df.select(
        # 7 fractional digits and a Z, as the service writes them
        (pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S%.6f") + "0Z").alias("date_time_utc"),
        pl.col("cip").alias("client_ip"),
        pl.lit("mail.contoso.com").alias("client_hostname"),
        pl.lit("52.101.8.42").alias("server_ip"),
        pl.lit("BN8NAM11FT066.mail.protection.outlook.com").alias("server_hostname"),
        pl.lit("08DCB1;250 2.6.0 queued").alias("source_context"),
        pl.when(pl.col("net") % 5 == 0).then(pl.lit("")).otherwise(pl.lit("Inbound from Contoso")).alias("connector_id"),
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
        pl.format("sender{}@{}", pl.col("user") % 97, pl.col("dom").replace_strict(dict(enumerate(DOMAINS.tolist())), return_dtype=pl.String)).alias("sender_address"),
        pl.lit("").alias("return_path"),
        pl.lit("").alias("message_info"),
        pl.lit("Incoming").alias("directionality"),
        pl.lit("0d0c5b6e-0000-4000-8000-000000000001").alias("tenant_id"),
        pl.col("cip").alias("original_client_ip"),
        pl.lit("").alias("original_server_ip"),
        pl.format("S:SFA=SUM|SFV=NSPM|CIP={}|H=mail.contoso.com", pl.col("cip")).alias("custom_data"),
    )
    return out


def write(path: Path, rows: int, seed: int = 7, batch: int = 2_000_000) -> None:
    """Write `rows` rows to `path` in batches (bounded memory)."""
    with open(path, "wb") as fh:
        done = 0
        while done < rows:
            n = min(batch, rows - done)
            frame(n, seed + done).write_csv(fh, include_header=done == 0)
            done += n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("rows", type=int)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    write(args.out, args.rows, args.seed)


if __name__ == "__main__":
    main()
