"""Which export a table is (from its column names), and how its columns map to the normalized
record table. Column names are compared case-insensitively with punctuation removed, so
``date-time`` (tracking logs), ``date_time_utc`` (EAC reports) and ``DateTime`` all meet."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType

import polars as pl

from analyzer.readers._compiled import needs_cleaning

#: The 30 fields of an Exchange 2013+ tracking log, assumed for files without a #Fields line.
MSGTRK_FIELDS = (
    "date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,connector-id,"
    "source,event-id,internal-message-id,message-id,network-message-id,recipient-address,"
    "recipient-status,total-bytes,recipient-count,related-recipient-address,reference,"
    "message-subject,sender-address,return-path,message-info,directionality,tenant-id,"
    "original-client-ip,original-server-ip,custom-data,transport-traffic-type,log-id,schema-version"
).split(",")

_NON_ALNUM = re.compile(r"[^a-z0-9]")

#: ``(trim, blank)`` per column, as `needs_cleaning` answers, for columns already scanned.
Cleaning = Mapping[str, tuple[bool, bool]]
NOTHING_KNOWN: Cleaning = MappingProxyType({})


def key(name: str) -> str:
    """The comparison form of a column name: ``"Date_Time-UTC"`` -> ``"datetimeutc"``."""
    return _NON_ALNUM.sub("", name.lower())


def detect_columns(names: Iterable[str]) -> str | None:
    """The record format whose columns these are, or None."""
    keys = {key(n) for n in names}
    if {"received", "senderaddress", "recipientaddress"} <= keys:
        return "exo_trace"
    if {"date", "event"} <= keys and keys & {"detail", "action", "messagetraceid"}:
        return "exo_trace_detail"
    if {"origintimestamputc", "recipientstatus"} <= keys:
        return "exo_enhanced_summary"
    if {"datetimeutc", "eventid"} <= keys:
        return "exo_extended"
    if {"datetime", "eventid"} <= keys:
        return "msgtrk"
    if {"timestamp", "networkmessageid"} <= keys and keys & {"senderipv4", "emaildirection",
                                                               "recipientemailaddress"}:
        return "emailevents"
    return None


def looks_like_config(names: Iterable[str]) -> bool:
    """Column/property names of a connector or accepted-domain export."""
    keys = {key(n) for n in names}
    return bool(keys & {"senderipaddresses", "recipientdomains", "smarthosts", "remoteipranges",
                        "addressspaces", "tlssendercertificatename"}) or {"domainname", "domaintype"} <= keys


_EVENTS = {
    "receive": "receive", "hareceive": "receive", "received": "receive",
    "send": "send", "sendexternal": "send", "sent": "send", "transferred": "send",
    "deliver": "deliver", "delivered": "deliver", "junked": "deliver", "filteredasspam": "deliver",
    "replaced": "deliver",
    "defer": "defer", "deferred": "defer", "pending": "defer",
    "fail": "fail", "failed": "fail", "bounce": "fail", "bounced": "fail",
    "drop": "drop", "dropped": "drop", "blocked": "drop", "quarantined": "drop",
    "expand": "expand", "expanded": "expand",
    "redirect": "redirect", "resolve": "resolve", "resolved": "resolve",
    "submit": "submit", "submitted": "submit",
}
_DIRECTIONS = {
    "1": "inbound", "incoming": "inbound", "inbound": "inbound",
    "2": "outbound", "originating": "outbound", "outbound": "outbound",
    "3": "internal", "intraorg": "internal", "internal": "internal",
}


def _vocabulary(frame: pl.DataFrame, col: pl.Expr, table: dict[str, str], default: str) -> pl.Expr:
    # Exports spell a handful of distinct words: map those, not every row.
    words = frame.select(col.unique()).to_series().drop_nulls().to_list()
    mapping = {w: table.get(re.sub(r"[^a-z0-9]", "", w.lower()), default) for w in words}
    return col.replace_strict(mapping, default=pl.lit(default), return_dtype=pl.String)


def event_expr(frame: pl.DataFrame, col: pl.Expr) -> pl.Expr:
    """The export's event/status word mapped onto the fixed event vocabulary."""
    return _vocabulary(frame, col, _EVENTS, "other")


def direction_expr(frame: pl.DataFrame, col: pl.Expr) -> pl.Expr:
    """The export's direction word (or 1/2/3 code) mapped onto the direction vocabulary."""
    return _vocabulary(frame, col, _DIRECTIONS, "unknown")


def _c(frame: pl.DataFrame, *names: str, known: Cleaning = NOTHING_KNOWN) -> pl.Expr:
    """The first of these (comparison-form) columns present and non-empty (trimmed), else null.
    `known`: ``(trim, blank)`` of columns already scanned (see `needs_cleaning`)."""
    present = [n for n in names if n in frame.columns]
    if not present:
        return pl.lit(None, dtype=pl.String)
    cleaned = [_cleaned(frame, n, known) for n in present]
    return cleaned[0] if len(cleaned) == 1 else pl.coalesce(cleaned)


def _cleaned(frame: pl.DataFrame, name: str, known: Cleaning) -> pl.Expr:
    # Trimming copies every value; most columns (addresses, ids, codes) have nothing to trim and
    # no blank, which one compiled pass over the column's bytes tells (or the CSV splitter,
    # which saw every byte of the column as it cut it out: `known`).
    column = frame.get_column(name)
    if column.dtype != pl.String:
        trim, blank = True, True
    else:
        trim, blank = known[name] if name in known else needs_cleaning(column)
    if trim:
        return _blank_to_null(pl.col(name).str.strip_chars())
    return _blank_to_null(pl.col(name)) if blank else pl.col(name)


def _blank_to_null(expr: pl.Expr) -> pl.Expr:
    # replace, not when/then: the expression (a strip, usually) is evaluated once, not twice
    return expr.replace("", None)


def _mep(frame: pl.DataFrame, name: str, known: Cleaning) -> pl.Expr:
    # Get-MessageTraceDetail's Data column: <root><MEP Name="ConnectorId" String="..."/>...
    return _blank_to_null(_c(frame, "data", known=known).str.extract(r'Name="%s"\s+String="([^"]*)"' % name, 1))


def normalize(fmt: str, frame: pl.DataFrame, known: Cleaning = NOTHING_KNOWN) -> pl.DataFrame:
    """Map a raw table (String columns named in comparison form, plus ``source_line``) to the
    normalized columns, with the timestamp and size still as text in ``_ts`` and ``_size``.
    Rows are exploded per recipient where the format packs several into one. `known` gives
    `needs_cleaning`'s answer for columns the CSV splitter already scanned (`parse_batch`)."""
    c = lambda *names: _c(frame, *names, known=known)  # noqa: E731
    if fmt == "exo_trace":
        out = frame.select(
            c("received").alias("_ts"),
            pl.when(c("toip").is_not_null()).then(pl.lit("outbound"))
            .when(c("fromip").is_not_null()).then(pl.lit("inbound")).otherwise(pl.lit("unknown"))
            .alias("direction"),
            event_expr(frame, c("status")).alias("event"),
            c("status").alias("status"),
            c("fromip").alias("client_ip"),
            c("toip").alias("server_ip"),
            c("senderaddress").alias("sender"),
            c("recipientaddress").alias("recipient"),
            c("messageid").alias("message_id"),
            c("messagetraceid").alias("message_key"),
            c("subject").alias("subject"),
            c("size").alias("_size"),
            pl.col("source_line"),
        )
    elif fmt == "exo_trace_detail":
        out = frame.select(
            c("date").alias("_ts"),
            pl.lit("unknown").alias("direction"),
            event_expr(frame, c("event")).alias("event"),
            c("event").alias("status"),
            _mep(frame, "ClientIP", known).alias("client_ip"),
            _mep(frame, "ServerIP", known).alias("server_ip"),
            c("senderaddress").alias("sender"),
            c("recipientaddress").alias("recipient"),
            c("messageid").alias("message_id"),
            c("messagetraceid").alias("message_key"),
            _mep(frame, "ConnectorId", known).alias("connector_name"),
            c("detail").alias("smtp_response"),
            pl.lit(None, dtype=pl.String).alias("_size"),
            pl.col("source_line"),
        )
    elif fmt == "exo_enhanced_summary":
        # "a@x##Receive, Deliver;b@y##Receive, Fail": one row per recipient
        parts = frame.with_columns(
            c("recipientstatus").str.split(";").alias("_rs"),
        ).explode("_rs").with_columns(_blank_to_null(pl.col("_rs").str.strip_chars()))
        # exploded: each column holds the same values, repeated, so what is known still holds
        cc = lambda *names: _c(parts, *names, known=known)  # noqa: E731
        status = pl.col("_rs").str.splitn("##", 2).struct.field("field_1").str.strip_chars()
        last = status.str.split(",").list.last().str.strip_chars()
        out = parts.select(
            cc("origintimestamputc").alias("_ts"),
            direction_expr(parts, cc("directionality")).alias("direction"),
            event_expr(parts, last).alias("event"),
            status.alias("status"),
            cc("originalclientip").alias("client_ip"),
            cc("senderaddress").alias("sender"),
            pl.col("_rs").str.splitn("##", 2).struct.field("field_0").str.strip_chars().alias("recipient"),
            cc("messageid").alias("message_id"),
            cc("networkmessageid").alias("message_key"),
            cc("messagesubject").alias("subject"),
            cc("totalbytes").alias("_size"),
            cc("connectorid").alias("connector_name"),
            pl.col("source_line"),
        )
    elif fmt in ("exo_extended", "msgtrk"):
        out = _tracking(frame, known)
    elif fmt == "emailevents":
        out = frame.select(
            c("timestamp").alias("_ts"),
            direction_expr(frame, c("emaildirection")).alias("direction"),
            event_expr(frame, c("deliveryaction")).alias("event"),
            c("deliveryaction").alias("status"),
            c("senderipv4", "senderipv6").alias("client_ip"),
            c("sendermailfromaddress", "senderfromaddress").alias("sender"),
            c("sendermailfromdomain", "senderfromdomain").alias("sender_domain"),
            c("recipientemailaddress").alias("recipient"),
            c("internetmessageid").alias("message_id"),
            c("networkmessageid").alias("message_key"),
            c("subject").alias("subject"),
            pl.lit(None, dtype=pl.String).alias("_size"),
            c("connectors").alias("connector_name"),
            pl.col("source_line"),
        )
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return out


#: The columns each format's normalization reads (others are not even parsed).
NEEDED = {
    "exo_trace": {"received", "toip", "fromip", "status", "senderaddress", "recipientaddress",
                  "messageid", "messagetraceid", "subject", "size"},
    "exo_trace_detail": {"date", "event", "data", "senderaddress", "recipientaddress", "messageid",
                         "messagetraceid", "detail"},
    "exo_enhanced_summary": {"recipientstatus", "origintimestamputc", "directionality",
                             "originalclientip", "senderaddress", "messageid", "networkmessageid",
                             "messagesubject", "totalbytes", "connectorid"},
    "exo_extended": {"recipientaddress", "recipientstatus", "customdata", "datetimeutc", "datetime",
                     "directionality", "eventid", "originalclientip", "clientip", "serverip",
                     "senderaddress", "messageid", "networkmessageid", "messagesubject",
                     "totalbytes", "connectorid"},
    "emailevents": {"timestamp", "emaildirection", "deliveryaction", "senderipv4", "senderipv6",
                    "sendermailfromaddress", "senderfromaddress", "sendermailfromdomain",
                    "senderfromdomain", "recipientemailaddress", "internetmessageid",
                    "networkmessageid", "subject", "connectors"},
}
NEEDED["msgtrk"] = NEEDED["exo_extended"]


def _tracking(frame: pl.DataFrame, known: Cleaning) -> pl.DataFrame:
    """Exchange message tracking logs and the EAC extended report share their fields.
    ``recipient-address`` may list several recipients with their statuses in the same order."""
    c = lambda *names: _c(frame, *names, known=known)  # noqa: E731
    if not frame.select(c("recipientaddress").str.contains(";", literal=True).any()).item():
        # one recipient a row (the EAC report, most log rows): no explode needed
        base = frame.with_columns(
            c("recipientaddress").alias("_to1"),
            c("recipientstatus").alias("_st1"),
        )
        return _tracking_select(base, known)
    base = frame.with_columns(
        c("recipientaddress").str.split(";").alias("_to"),
        c("recipientstatus").str.split(";").alias("_st"),
        c("recipientstatus").alias("_st_all"),
    ).with_columns(
        pl.int_ranges(0, pl.col("_to").list.len().fill_null(1).clip(1, None)).alias("_i"),
    ).explode("_i").with_columns(
        _blank_to_null(pl.col("_to").list.get(pl.col("_i"), null_on_oob=True).str.strip_chars()).alias("_to1"),
        pl.when(pl.col("_st").list.len() == pl.col("_to").list.len())
        .then(pl.col("_st").list.get(pl.col("_i"), null_on_oob=True))
        .otherwise(pl.col("_st_all")).str.strip_chars().pipe(_blank_to_null).alias("_st1"),
    )
    # exploded: the columns read below hold the same values, repeated
    return _tracking_select(base, known)


def _tracking_select(base: pl.DataFrame, known: Cleaning) -> pl.DataFrame:
    cc = lambda *names: _c(base, *names, known=known)  # noqa: E731
    client = pl.coalesce(cc("originalclientip"), cc("clientip"))
    if base.select((client.is_null() & cc("customdata").is_not_null()).any()).item():
        # the agent's CIP= (connecting IP) when the IP columns are empty; regex only if needed
        client = pl.coalesce(client, cc("customdata").str.extract(r"(?:^|[|;])CIP=([0-9A-Fa-f.:]+)", 1))
    return base.select(
        cc("datetimeutc", "datetime").alias("_ts"),
        direction_expr(base, cc("directionality")).alias("direction"),
        event_expr(base, cc("eventid")).alias("event"),
        cc("eventid").alias("status"),
        client.alias("client_ip"),
        cc("serverip").alias("server_ip"),
        cc("senderaddress").alias("sender"),
        pl.col("_to1").alias("recipient"),
        cc("messageid").alias("message_id"),
        cc("networkmessageid", "messageid").alias("message_key"),
        cc("messagesubject").alias("subject"),
        cc("totalbytes").alias("_size"),
        cc("connectorid").alias("connector_name"),
        pl.col("_st1").alias("smtp_response"),
        pl.col("source_line"),
    )
