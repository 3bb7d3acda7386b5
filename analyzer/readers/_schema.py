"""The normalized record table every reader produces, and the last step that makes a format's
partial frame into it (IP canonicalization, addresses and domains, SMTP response parsing)."""

from __future__ import annotations

import ipaddress

import polars as pl

from analyzer._columns import dictionary
from analyzer.status import CANONICAL_V4, classify_column

UTC = "UTC"
TIMESTAMP = pl.Datetime("us", UTC)

#: Column names and types of the normalized table, in order (documented in the README).
SCHEMA: dict[str, pl.DataType] = {
    "timestamp": TIMESTAMP,
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

FORMATS = (
    "exo_trace",
    "exo_trace_detail",
    "exo_enhanced_summary",
    "exo_extended",
    "msgtrk",
    "postfix",
    "emailevents",
)
DIRECTIONS = ("inbound", "outbound", "internal", "unknown")
EVENTS = ("receive", "send", "deliver", "defer", "fail", "drop", "expand", "redirect", "resolve",
          "submit", "other")


def canonical_ip(text: str | None) -> str | None:
    """Canonical text of an address as logged: brackets, zone index and whitespace removed, IPv6
    compressed (RFC 5952), IPv4-mapped IPv6 as plain IPv4. Text that is not an address is kept as
    is (trimmed), so nothing is lost; an empty value becomes null."""
    if text is None:
        return None
    s = text.strip()
    if not s:
        return None
    inner = s[1:-1] if s.startswith("[") and s.endswith("]") else s
    inner = inner.partition("%")[0]
    try:
        address = ipaddress.ip_address(inner)
    except ValueError:
        return s
    if address.version == 6 and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def canonical_ip_column(values: pl.Series) -> pl.Series:
    """`canonical_ip` over a column, computed once per distinct non-canonical value."""
    values = values.cast(pl.String)
    distinct = values.drop_nulls().unique()
    # dotted quads without leading zeros are already canonical: most client IPs skip Python
    others = distinct.filter(~distinct.str.contains(CANONICAL_V4))
    if others.len() == 0:
        return values
    mapping = {v: canonical_ip(v) for v in others.to_list()}
    return values.replace(mapping)


def _blank_to_null(expr: pl.Expr) -> pl.Expr:
    # replace, not when/then: the expression (a strip, usually) is evaluated once, not twice
    return expr.replace("", None)


def _address_and_domain(values: pl.Series) -> tuple[pl.Series, pl.Series]:
    """(address trimmed and lower-cased, its domain) of each value, computed once per distinct
    value: a log repeats its senders and recipients, and the domain's regex costs far more than
    Arrow's dictionary encoding and a gather."""
    encoded = dictionary(values)
    distinct = pl.Series(encoded.dictionary)
    # "<a@b.c>" as some logs write it; the null sender "<>" becomes an empty string (it is real
    # information: bounces and DSNs), which is kept rather than turned into null.
    address = distinct.str.strip_chars(" \t\r\n<>").str.to_lowercase()
    domain = address.str.extract(r"@([^@\s]+)$", 1).str.strip_suffix(".")
    index = pl.Series(encoded.indices)
    return address.gather(index), domain.gather(index)


def finalize(frame: pl.DataFrame, source_format: str, source_file: str) -> pl.DataFrame:
    """Turn a format's partial frame into the normalized table.

    `frame` holds any subset of SCHEMA's columns (strings; `timestamp` already a UTC datetime;
    `source_line` mandatory); extra columns are dropped. Missing columns become nulls; client and
    server IPs are canonicalized; addresses are trimmed and lower-cased and their domains derived
    when the format did not give them; `smtp_response` is parsed into the code columns (codes the
    format logged itself, such as Postfix's ``dsn=``, are kept when the text has none).
    """
    out = frame.select([pl.col(name) if name in frame.columns else pl.lit(None, dtype=dtype).alias(name)
                        for name, dtype in SCHEMA.items()])
    for name in ("client_ip", "server_ip"):
        out = out.with_columns(canonical_ip_column(out.get_column(name)).alias(name))
    sender, sender_domain = _address_and_domain(out.get_column("sender"))
    recipient, recipient_domain = _address_and_domain(out.get_column("recipient"))
    out = out.with_columns(
        sender.alias("sender"),
        recipient.alias("recipient"),
        _blank_to_null(pl.col("sender_domain").str.strip_chars().str.to_lowercase()).alias("sender_domain"),
        _blank_to_null(pl.col("recipient_domain").str.strip_chars().str.to_lowercase()).alias("recipient_domain"),
    ).with_columns(
        pl.coalesce("sender_domain", sender_domain).alias("sender_domain"),
        pl.coalesce("recipient_domain", recipient_domain).alias("recipient_domain"),
        pl.coalesce("message_key", "message_id").alias("message_key"),
        pl.col("direction").fill_null("unknown"),
        pl.col("event").fill_null("other"),
        pl.lit(source_format).alias("source_format"),
        pl.lit(source_file).alias("source_file"),
    )
    parsed = classify_column(out.get_column("smtp_response"))
    out = out.with_columns(
        pl.coalesce(parsed.get_column("smtp_code"), pl.col("smtp_code")).cast(pl.Int16).alias("smtp_code"),
        pl.coalesce(parsed.get_column("enhanced_code"), pl.col("enhanced_code")).alias("enhanced_code"),
        pl.coalesce(parsed.get_column("ms_code"), pl.col("ms_code")).alias("ms_code"),
        pl.coalesce(parsed.get_column("throttled_ip"), pl.col("throttled_ip")).alias("throttled_ip"),
    )
    return out.select([pl.col(name).cast(dtype) for name, dtype in SCHEMA.items()])


def empty() -> pl.DataFrame:
    """An empty normalized table."""
    return pl.DataFrame(schema=SCHEMA)
