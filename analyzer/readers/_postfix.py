"""Postfix syslog lines to mail-flow records, vectorised with polars (FORMATS.md §1e).

An on-premises Postfix that relays to Microsoft 365 is where greylisting (``451 4.7.5xx``) and
relay refusals are visible (FORMATS.md §3), so this reader turns one batch of syslog lines into:

* ``records``: one row per delivery attempt/outcome per recipient (``postfix/smtp`` and friends
  ``to=<...>, relay=..., status=...``), per smtpd/cleanup/milter rejection (``reject: RCPT from
  host[ip]: 554 ...; from=<..> to=<..>``), per qmgr expiry (``from=<..>, status=expired``) and
  per accepted message (smtpd ``QID: client=host[ip]``: ``event="receive"``, ``status=
  "accepted"``, with that client, and the sender, size and message-id logged after it);
* ``rejects``: lines that look like Postfix delivery lines but cannot be parsed, with a reason.

Postfix writes what we need about one message on several lines keyed by its queue id (smtpd
``client=``, cleanup ``message-id=``, qmgr ``from=<..>, size=``). They are joined onto the
outcome lines with a backward as-of join on the line number per ``(hostname, queue_id)``: short
queue ids are recycled, so the *latest earlier* line for the id is the one describing this
message. Everything is polars expressions over the whole batch; there is no per-line Python.

Choices where the log leaves room:

* ``sender`` is ``""`` for ``from=<>`` (the null reverse path of bounces), null when unknown.
* A reject's ``smtp_response`` is the reply only (``554 5.7.1 <x>: Relay access denied``), cut
  before ``; from=<..> to=<..> proto=..``; its ``enhanced_code`` comes from that reply since a
  reject line has no ``dsn=``. Delivery lines take ``enhanced_code`` from ``dsn=`` only.
* Every ``reject``/``milter-reject`` is ``event="fail"``, also a 4xx one (e.g. ``454 4.7.1
  Relay access denied`` from defer_unauth_destination); ``enhanced_code`` tells them apart.
  ``discard`` actions are ``event="other"``; warn/hold/redirect/filter actions are ignored.
* ``status=sent`` is ``expand`` for local(8) ``forwarded as QID`` (alias expansion), ``deliver``
  for local/virtual/lmtp/pipe or a socket relay, else ``send``. ``client_ip`` prefers smtpd's
  ``orig_client=`` (the real source behind a content filter) over ``client=``.
* With an explicit ``year`` no rollover is inferred: that year is applied to every classic line.
"""

from __future__ import annotations

import datetime
import inspect
from dataclasses import dataclass

import polars as pl

__all__ = ["RECORD_SCHEMA", "REJECT_SCHEMA", "Carry", "held_records", "parse_postfix"]

RECORD_SCHEMA: dict[str, pl.DataType] = {
    "timestamp": pl.Datetime("us", "UTC"),
    "direction": pl.String(),
    "event": pl.String(),
    "status": pl.String(),
    "client_ip": pl.String(),
    "server_ip": pl.String(),
    "server_host": pl.String(),
    "sender": pl.String(),
    "recipient": pl.String(),
    "message_id": pl.String(),
    "message_key": pl.String(),
    "size_bytes": pl.Int64(),
    "smtp_response": pl.String(),
    "enhanced_code": pl.String(),
    "subject": pl.String(),
    "connector_name": pl.String(),
    "source_line": pl.Int64(),
    "hostname": pl.String(),
    "queue_id": pl.String(),
}

REJECT_SCHEMA: dict[str, pl.DataType] = {
    "source_line": pl.Int64(),
    "reason": pl.String(),
    "raw": pl.String(),
}

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}

# A Postfix program tag: `postfix/smtp`, `postfix-out/smtp` (multi-instance),
# `postfix/submission/smtpd` (master.cf syslog_name). The daemon is the last component.
_PROG = r"[\w.-]*postfix[\w.-]*(?:/[\w.-]+)+"

# Speed note: the hot patterns spell digits and name characters as ASCII classes. Rust's
# Unicode-aware `\d`/`\w` make the automaton several times larger, and these patterns run on
# every line (measured: the header match drops from ~0.12 s to ~0.04 s per 200k lines).
_D = "[0-9]"
_PROG_FAST = r"postfix[A-Za-z0-9_.-]*(?:/[A-Za-z0-9_.-]+)+"

# Header patterns capture only the header (`head`); the message is the line minus that prefix.
# A capture group running to the end of the line would make the regex engine's capture phase
# walk every byte of every line.
#
# Fast path, nearly every line: BSD syslog `Nov  2 10:15:02 host prog[pid]: ` or rsyslog
# high-precision `2024-11-20T10:15:02.123456+01:00 host prog[pid]: `.
_HEADER_FAST = (
    r"^(?P<head>(?:<D{1,3}>)?(?P<ts>[A-Z][a-z]{2} [ 0-9]D D{2}:D{2}:D{2}(?:[.,]D{1,9})?"
    r"|D{4}-D{2}-D{2}TD{2}:D{2}:D{2}(?:[.,]D{1,9})?(?:[Zz]|[+-]D{2}:?D{2})?) "
    r"(?P<host>[^ ]+) (?P<prog>" + _PROG_FAST + r")(?:\[D+\])?: )"
).replace("D", _D)
# RFC 5424: `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG` (the MSG may start with a BOM).
_HEADER_5424 = (
    r"^(?P<head><[0-9]{1,3}>1 (?P<ts>\S+) (?P<host>\S+) (?P<prog>" + _PROG + r") \S+ \S+ "
    r"(?:-|(?:\[[^\]]*\])+) ?\x{FEFF}?)"
)
# Slow path for the few lines left: any one-to-three-token timestamp and any program prefix,
# so that a malformed timestamp is *reported* ("unparseable timestamp 'Foo 99 10:15:02'")
# rather than the line being missed.
_HEADER_LOOSE = (
    r"^(?P<head>(?:<[0-9]{1,3}>)?(?P<ts>\S+(?:\s+\S+){0,2}?)\s+(?P<host>\S+)\s+(?P<prog>"
    + _PROG
    + r")"
    r"(?:\[[0-9]+\])?:\s)"
)
_TS_CLASSIC = (
    r"^(?P<mon>[A-Za-z]{3})\s+(?P<day>[0-9]{1,2})\s+(?P<hms>[0-9]{2}:[0-9]{2}:[0-9]{2})"
    r"(?:[.,](?P<frac>[0-9]{1,9}))?$"
)
_TS_ISO = (
    r"^(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})[T ](?P<hms>[0-9]{2}:[0-9]{2}:[0-9]{2})"
    r"(?:[.,](?P<frac>[0-9]{1,9}))?(?P<tz>[Zz]|[+-][0-9]{2}:?[0-9]{2})?$"
)

# Short queue ids are hex; long ones (enable_long_queue_ids) are base-52-ish alphanumerics.
_QID = r"[0-9A-Za-z]{5,}"
_ADDR = r"<(?P<{}>[^>]*)>"

# `QID: to=<a>, orig_to=<b>, relay=h[ip]:25, delay=.., dsn=4.7.500, status=deferred (text)`:
# the prefix is matched here; the line is split at `, status=` (see _deliveries).
_DELIVERY_PREFIX = r"^(?P<qid>" + _QID + r"): to=" + _ADDR.format("to")
_RELAY = r"^(?P<rhost>[^\[\]]*)(?:\[(?P<rbr>[^\]]*)\])?(?::(?P<rport>[0-9]+))?$"

# Policy actions logged by smtpd/postscreen/cleanup/milters before or after a queue file exists.
_ACTION = r"^(?P<qid>NOQUEUE|" + _QID + r"): (?P<action>[a-z][a-z_-]*): "
# smtpd/postscreen/milter form, matched up to the reply text (which _actions splits off):
# `reject: RCPT from host[ip]:port: 554 5.7.1 text; from=<..> to=<..> proto=.. helo=<..>`.
_ACTION_SMTPD = (
    r"^(?P<head>(?:NOQUEUE|" + _QID + r"): [a-z][a-z_-]*: (?P<stage>[A-Z][A-Z-]*) from "
    r"(?P<chost>[^\[ ]*)\[(?P<cip>[^\] ]*)\](?::[0-9]+)?: )"
)
# cleanup header/body checks (rare, so a whole-line pattern is fine):
# `reject: header Subject: x from host[ip]; from=<..> to=<..> proto=.. helo=<..>: 5.7.1 text`.
_ACTION_CLEANUP = (
    r"^" + _QID + r": [a-z][a-z_-]*: (?:header|body|mime-header|nested-header) .*? from "
    r"(?P<chost>[^\s\[;]*)(?:\[(?P<cip>[^\]\s]*)\])?; (?P<tail>from=<.*?)(?:: (?P<text>.*))?$"
)
# Actions that end the message for that recipient. Other actions (warning, info, hold,
# redirect, filter, prepend, replace, reject_warning, ...) describe no outcome: ignored.
_FAIL_ACTIONS = ("reject", "milter-reject")
_DROP_ACTIONS = ("discard", "milter-discard")

# qmgr gives up: `QID: from=<a>, status=expired, returned to sender` (no recipient on the line).
_EXPIRED = (
    r"^(?P<qid>" + _QID + r"): from=" + _ADDR.format("sender") + r", (?:size=[0-9]+, )?"
    r"status=(?P<status>[^\s,]+)(?:, (?P<text>.*))?$"
)

# Enrichment lines.
_CLIENT = r"^(?P<qid>" + _QID + r"): client=[^\[\s,]*\[(?P<ip>[^\]\s]*)\]"
_ORIG_CLIENT = r"\sorig_client=[^\[\s,]*\[([^\]\s]*)\]"
_QMGR_FROM = r"^(?P<qid>" + _QID + r"): from=" + _ADDR.format("sender") + r", size=(?P<size>[0-9]+)"
_MESSAGE_ID = r"^(?P<qid>" + _QID + r"): message-id=(?P<mid>.*)$"

# A line "looks like" a delivery line when it carries a Postfix program tag and a recipient or
# a status; those are the ones that must become a record or a reject, never vanish.
_LOOKS_POSTFIX = r"postfix[A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+(?:\[[0-9]+\])?[: ]"
_DIAGNOSTIC = r"^(?:warning|error|fatal|panic|info|statistics): "

# Transports that put mail into a mailbox (or a local command) rather than onto the network.
_LOCAL_DAEMONS = ("local", "virtual", "lmtp", "pipe")
_LOCAL_RELAYS = ("local", "virtual", "dovecot", "lmtp")

# polars >= 1.? can skip the sortedness check that otherwise warns with `by` groups; we sort
# ourselves, so the check is redundant either way.
_ASOF_KW = (
    {"check_sortedness": False}
    if "check_sortedness" in inspect.signature(pl.DataFrame.join_asof).parameters
    else {}
)


def _empty_records() -> pl.DataFrame:
    return pl.DataFrame(schema=RECORD_SCHEMA)


def _empty_rejects() -> pl.DataFrame:
    return pl.DataFrame(schema=REJECT_SCHEMA)


def _strip_ipv6_tag(expr: pl.Expr) -> pl.Expr:
    """Postfix may write `IPv6:2001:db8::1` in brackets; the analyses want the bare address."""
    return expr.str.replace(r"^(?i)ipv6:", "")


def _as_ip(expr: pl.Expr) -> pl.Expr:
    """The bracket content if it is an IPv4/IPv6 address, else null (it may be a unix socket)."""
    ip = _strip_ipv6_tag(expr)
    return pl.when(
        ip.str.contains(r"^(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f:.]*:[0-9A-Za-z_:.%]*)$")
    ).then(ip)


def _timestamp_expr(ts: pl.Expr, *, year: int | None, mtime: datetime.datetime) -> pl.Expr:
    """UTC Datetime('us') from a syslog timestamp token, null when it is not a valid time.

    Classic BSD timestamps have no year: an explicit `year` wins (the user knows better than a
    copied file's mtime, so no rollover is inferred then); otherwise mtime's year, and a month
    later than mtime's month must be last year's (the log cannot be from the future). Classic
    times carry no zone and are taken as UTC; ISO times are converted by their offset.
    """
    if mtime.tzinfo is not None:
        mtime = mtime.astimezone(datetime.timezone.utc)
    naive_fmt = "%Y-%m-%d %H:%M:%S"

    def frac_us(frac: pl.Expr) -> pl.Expr:
        # Up to 9 digits of fraction: keep microseconds, drop the rest (no rounding up into
        # the next second).
        return frac.str.pad_end(6, "0").str.slice(0, 6).cast(pl.Int64, strict=False).fill_null(0)

    cls = ts.str.extract_groups(_TS_CLASSIC)
    month = (
        cls.struct.field("mon")
        .str.to_lowercase()
        .replace_strict(_MONTHS, default=None, return_dtype=pl.Int32)
    )
    if year is not None:
        yr = pl.lit(year, dtype=pl.Int32)
    else:
        yr = (
            pl.when(month > mtime.month)
            .then(pl.lit(mtime.year - 1, dtype=pl.Int32))
            .otherwise(pl.lit(mtime.year, dtype=pl.Int32))
        )
    classic_text = pl.concat_str(
        yr.cast(pl.String),
        pl.lit("-"),
        month.cast(pl.String).str.zfill(2),
        pl.lit("-"),
        cls.struct.field("day").str.zfill(2),
        pl.lit(" "),
        cls.struct.field("hms"),
    )
    classic = classic_text.str.strptime(pl.Datetime("us"), naive_fmt, strict=False) + pl.duration(
        microseconds=frac_us(cls.struct.field("frac"))
    )

    iso = ts.str.extract_groups(_TS_ISO)
    tz = iso.struct.field("tz")
    off = tz.str.extract_groups(r"^(?P<sign>[+-])(?P<hh>[0-9]{2}):?(?P<mm>[0-9]{2})$")
    off_minutes = (
        off.struct.field("hh").cast(pl.Int64, strict=False) * 60
        + off.struct.field("mm").cast(pl.Int64, strict=False)
    ) * pl.when(off.struct.field("sign") == "-").then(-1).otherwise(1)
    iso_naive = pl.concat_str(
        iso.struct.field("date"), pl.lit(" "), iso.struct.field("hms")
    ).str.strptime(pl.Datetime("us"), naive_fmt, strict=False)
    iso_utc = (
        iso_naive
        + pl.duration(microseconds=frac_us(iso.struct.field("frac")))
        - pl.duration(minutes=off_minutes.fill_null(0))
    )
    return pl.coalesce(classic, iso_utc).dt.replace_time_zone("UTC")


_HEADER_COLUMNS = ("_head", "ts_text", "hostname", "program")


def _match_header(df: pl.DataFrame, pattern: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split `df` into (rows whose header matches `pattern`, with header columns; the others)."""
    g = pl.col("line").str.extract_groups(pattern)
    x = df.with_columns(
        _head=g.struct.field("head"),
        ts_text=g.struct.field("ts"),
        hostname=g.struct.field("host"),
        program=g.struct.field("prog"),
    )
    hit = pl.col("_head").is_not_null()
    return x.filter(hit), x.filter(~hit).drop(_HEADER_COLUMNS)


def _split_header(df: pl.DataFrame, *, year: int | None, mtime: datetime.datetime) -> pl.DataFrame:
    """Add ts_text, hostname, program, daemon, msg, timestamp, looks_delivery to the lines.

    The patterns are tried cheapest first on the rows still unmatched, so the slow loose pattern
    only ever sees the few odd lines. Row order is not kept (callers sort by source_line).
    """
    matched = []
    rest = df
    for pattern in (_HEADER_FAST, _HEADER_5424, _HEADER_LOOSE):
        if rest.height == 0:
            break
        hit, rest = _match_header(rest, pattern)
        matched.append(hit)
    matched.append(rest.with_columns(pl.lit(None, pl.String).alias(c) for c in _HEADER_COLUMNS))
    out = pl.concat(
        [m.select("line", "source_line", *_HEADER_COLUMNS) for m in matched], how="vertical"
    )
    # Syslog timestamps have one-second resolution and repeat across a busy log's lines: parse
    # each distinct one once and join back (a null ts_text matches nothing: null timestamp).
    stamps = (
        out.select(pl.col("ts_text").unique())
        .drop_nulls()
        .with_columns(timestamp=_timestamp_expr(pl.col("ts_text"), year=year, mtime=mtime))
    )
    out = out.join(stamps, on="ts_text", how="left")
    line = pl.col("line")
    return out.with_columns(
        msg=line.str.strip_prefix(pl.col("_head")),
        daemon=pl.col("program").str.extract(r"/([A-Za-z0-9_.-]+)$"),
        looks_delivery=line.str.contains(_LOOKS_POSTFIX)
        & (line.str.contains(" to=<", literal=True) | line.str.contains("status=", literal=True)),
    ).drop("_head")


def _ts_problem() -> pl.Expr:
    """Reject reason for a line whose timestamp did not parse (null when it did)."""
    return pl.when(pl.col("timestamp").is_null()).then(
        pl.concat_str(pl.lit("unparseable timestamp '"), pl.col("ts_text"), pl.lit("'"))
    )


def _deliveries(df: pl.DataFrame) -> pl.DataFrame:
    """Records (plus a `problem` column) from `QID: to=<..>, relay=.., status=..` lines."""
    g = pl.col("msg").str.extract_groups(_DELIVERY_PREFIX)
    # Postfix always writes `, status=` after the fixed fields; splitting there is exact and far
    # cheaper than a lazy regex over the whole line. The fields before it never hold free text.
    split = pl.col("msg").str.splitn(", status=", 2)
    df = df.with_columns(
        queue_id=g.struct.field("qid"),
        recipient=g.struct.field("to"),
        _fields=split.struct.field("field_0"),
        _tail=split.struct.field("field_1"),
    )
    status = pl.col("_tail").str.extract(r"^([^\s,()]+)")
    df = df.with_columns(status=status, _rest=pl.col("_tail").str.strip_prefix(status))
    # ` (text)`: drop the outer parentheses. Syslog truncates long lines, losing the closing
    # one; only strip a final `)` when the parentheses balance, so a truncated reply keeps its
    # inner `(in reply to ... command)` intact.
    inner = pl.col("_rest").str.strip_prefix(" (")
    balanced = pl.col("_rest").str.count_matches("(", literal=True) == pl.col(
        "_rest"
    ).str.count_matches(")", literal=True)
    df = df.with_columns(
        smtp_response=pl.when(pl.col("_rest").str.starts_with(" (")).then(
            pl.when(balanced).then(inner.str.strip_suffix(")")).otherwise(inner)
        )
    )
    relay = pl.col("_fields").str.extract(r"(?:^|[ ,])relay=([^, ]+)")
    r = relay.str.extract_groups(_RELAY)
    df = df.with_columns(
        _rhost=pl.when(relay != "none").then(r.struct.field("rhost")),
        _rbr=r.struct.field("rbr"),
        enhanced_code=pl.col("_fields").str.extract(
            r"(?:^|[ ,])dsn=([0-9]\.[0-9]{1,3}\.[0-9]{1,3})(?:,|$)"
        ),
    )
    # A socket path in the brackets (`private/dovecot-lmtp`, `/var/run/...`) is a local hand-off.
    socket = pl.col("_rbr").str.contains(r"^(?:private/|public/|/)").fill_null(False)
    local = (
        pl.col("daemon").is_in(_LOCAL_DAEMONS).fill_null(False)
        | pl.col("_rhost").is_in(_LOCAL_RELAYS).fill_null(False)
        | socket
    )
    status = pl.col("status").str.to_lowercase()
    event = (
        pl.when(status == "sent")
        .then(
            pl.when(pl.col("daemon") == "discard")
            .then(pl.lit("other"))  # the discard transport drops mail while logging "sent"
            .when(pl.col("smtp_response").str.starts_with("forwarded as "))
            .then(pl.lit("expand"))  # local(8) alias/.forward expansion re-queues the message
            .when(local)
            .then(pl.lit("deliver"))
            .otherwise(pl.lit("send"))
        )
        .when(status.is_in(["deferred", "softbounce"]))
        .then(pl.lit("defer"))
        .when(status.is_in(["bounced", "expired", "undeliverable"]))
        .then(pl.lit("fail"))
        .otherwise(pl.lit("other"))
    )
    problem = pl.coalesce(
        _ts_problem(),
        pl.when(pl.col("status").is_null()).then(pl.lit("missing status= in delivery line")),
    )
    return df.with_columns(
        event=event,
        server_host=pl.col("_rhost"),
        server_ip=_as_ip(pl.col("_rbr")),
        client_ip=pl.lit(None, pl.String),
        sender=pl.lit(None, pl.String),
        problem=problem,
    )


def _actions(df: pl.DataFrame) -> pl.DataFrame:
    """Records (plus `problem`) from reject/discard lines of smtpd, postscreen, cleanup, milters."""
    a = pl.col("msg").str.extract_groups(_ACTION_SMTPD)
    df = df.with_columns(_head=a.struct.field("head"), _cip=a.struct.field("cip"))
    smtpd, other = df.filter(pl.col("_head").is_not_null()), df.filter(pl.col("_head").is_null())

    # Reply text, then `; from=<..> to=<..> proto=.. helo=<..>` (or just `; proto=..` for a
    # CONNECT/HELO-stage reject). Split at the first such marker, like Postfix's own format.
    rest = pl.col("msg").str.strip_prefix(pl.col("_head"))
    by_from = rest.str.splitn("; from=<", 2)
    by_proto = rest.str.splitn("; proto=", 2)
    has_from = by_from.struct.field("field_1").is_not_null()
    smtpd = smtpd.with_columns(
        smtp_response=pl.when(has_from)
        .then(by_from.struct.field("field_0"))
        .otherwise(by_proto.struct.field("field_0")),
        _tail=pl.when(has_from)
        .then(pl.concat_str(pl.lit("from=<"), by_from.struct.field("field_1")))
        .otherwise(pl.concat_str(pl.lit("proto="), by_proto.struct.field("field_1"))),
        _ok=pl.lit(True),
    )
    c = pl.col("msg").str.extract_groups(_ACTION_CLEANUP)
    other = other.with_columns(
        smtp_response=c.struct.field("text"),
        _tail=c.struct.field("tail"),
        _cip=c.struct.field("cip"),
        _ok=c.struct.field("tail").is_not_null(),
    )
    df = pl.concat([smtpd, other], how="vertical")
    qid = pl.col("msg").str.extract(r"^(" + _QID + r"):")
    return df.with_columns(
        queue_id=pl.when(qid != "NOQUEUE").then(qid),
        event=pl.when(pl.col("action").is_in(_FAIL_ACTIONS))
        .then(pl.lit("fail"))
        .otherwise(pl.lit("other")),
        status=pl.col("action"),
        client_ip=_as_ip(pl.col("_cip")),
        server_ip=pl.lit(None, pl.String),
        server_host=pl.lit(None, pl.String),
        sender=pl.col("_tail").str.extract(r"(?:^|\s)from=<([^>]*)>"),
        recipient=pl.col("_tail").str.extract(r"\sto=<([^>]*)>"),
        # No dsn= here: the enhanced code Postfix itself answered is the one in the reply.
        enhanced_code=pl.col("smtp_response").str.extract(
            r"^(?:[0-9]{3}[ -])?([245]\.[0-9]{1,3}\.[0-9]{1,3})(?:\s|$)"
        ),
        problem=pl.coalesce(
            _ts_problem(),
            pl.when(~pl.col("_ok")).then(
                pl.concat_str(pl.lit("unrecognised "), pl.col("action"), pl.lit(" line"))
            ),
        ),
    )


def _expiries(df: pl.DataFrame) -> pl.DataFrame:
    """Records (plus `problem`) from qmgr `QID: from=<a>, status=expired, returned to sender`."""
    g = pl.col("msg").str.extract_groups(_EXPIRED)
    status = g.struct.field("status")
    return df.with_columns(
        queue_id=g.struct.field("qid"),
        sender=g.struct.field("sender"),
        status=status,
        smtp_response=g.struct.field("text"),
        event=pl.when(status.str.to_lowercase().is_in(["expired", "bounced", "undeliverable"]))
        .then(pl.lit("fail"))
        .otherwise(pl.lit("other")),
        recipient=pl.lit(None, pl.String),
        client_ip=pl.lit(None, pl.String),
        server_ip=pl.lit(None, pl.String),
        server_host=pl.lit(None, pl.String),
        enhanced_code=pl.lit(None, pl.String),
        problem=_ts_problem(),
    )


_PART_COLUMNS = [
    "timestamp",
    "event",
    "status",
    "client_ip",
    "server_ip",
    "server_host",
    "sender",
    "recipient",
    "smtp_response",
    "enhanced_code",
    "source_line",
    "hostname",
    "queue_id",
    "problem",
    "line",
]


def _receives(df: pl.DataFrame) -> pl.DataFrame:
    """`receive` records from smtpd `QID: client=host[ip]` lines: Postfix accepted a message from
    that client (the hop open-relay analysis needs; the delivery lines describe the next hop)."""
    g = pl.col("msg").str.extract_groups(_CLIENT)
    return df.with_columns(
        queue_id=g.struct.field("qid"),
        client_ip=_as_ip(pl.coalesce(pl.col("msg").str.extract(_ORIG_CLIENT), g.struct.field("ip"))),
        event=pl.lit("receive"),
        status=pl.lit("accepted"),
        server_ip=pl.lit(None, pl.String),
        server_host=pl.lit(None, pl.String),
        sender=pl.lit(None, pl.String),
        recipient=pl.lit(None, pl.String),
        smtp_response=pl.lit(None, pl.String),
        enhanced_code=pl.lit(None, pl.String),
        problem=_ts_problem(),
    ).filter(pl.col("queue_id").is_not_null())


@dataclass
class Carry:
    """What one batch of a log leaves for the next: a message's lines straddle batches.

    ``tables`` hold, per ``(hostname, queue_id)``, the latest client=, from= and message-id= line
    of the earlier batches (the backward join's candidates for outcomes further on, such as a
    retry hours later); ``held`` are the `receive` records near a batch's end whose from= or
    message-id= line had not come yet."""

    tables: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame] | None = None
    held: pl.DataFrame | None = None


# A carried table keeps the most recent queue ids: a bound on memory, far beyond any real gap
# between a message's lines.
_CARRY_IDS = 1_000_000
# A receive record is held for the next batch only when it lies this close to the batch's end,
# and there takes lines at most this far after it (cleanup and qmgr log within a few lines).
_HOLD_LINES = 10_000


def _enrichment_tables(hdr: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The batch's client=, from= and message-id= lines, keyed by (hostname, queue_id, line)."""
    keyed = hdr.filter(pl.col("msg").str.contains(r"^" + _QID + r": (?:client|from|message-id)="))
    cl = pl.col("msg").str.extract_groups(_CLIENT)
    qf = pl.col("msg").str.extract_groups(_QMGR_FROM)
    mi = pl.col("msg").str.extract_groups(_MESSAGE_ID)
    base = ["hostname", "source_line"]
    # After a content filter the re-injected message's client is localhost; orig_client is the
    # server that really handed it over, which is what attribution and relay analysis need.
    clients = keyed.select(
        *base,
        queue_id=cl.struct.field("qid"),
        _client=_as_ip(pl.coalesce(pl.col("msg").str.extract(_ORIG_CLIENT), cl.struct.field("ip"))),
    ).filter(pl.col("queue_id").is_not_null())
    senders = keyed.select(
        *base,
        queue_id=qf.struct.field("qid"),
        _sender=qf.struct.field("sender"),
        _size=qf.struct.field("size").cast(pl.Int64, strict=False),
    ).filter(pl.col("queue_id").is_not_null())
    mids = keyed.select(
        *base,
        queue_id=mi.struct.field("qid"),
        _mid=pl.when(mi.struct.field("mid").str.strip_chars() != "").then(
            mi.struct.field("mid").str.strip_chars()
        ),
    ).filter(pl.col("queue_id").is_not_null())
    return clients, senders, mids


def _carried(old: pl.DataFrame | None, table: pl.DataFrame) -> pl.DataFrame:
    """`old` updated by a batch's `table` (in line order): the latest line per (hostname,
    queue_id), oldest first, at most `_CARRY_IDS` of the most recent."""
    keys = ["hostname", "queue_id"]
    latest = table.unique(keys, keep="last", maintain_order=True)
    if old is not None:
        latest = pl.concat([old.join(latest.select(keys), on=keys, how="anti", maintain_order="left"), latest])
    return latest.tail(_CARRY_IDS)


def _asof(frame: pl.DataFrame, table: pl.DataFrame, strategy: str, tolerance: int | None = None,
          keep_line: bool = False) -> pl.DataFrame:
    """`frame` (sorted by line) as-of joined to `table` per (hostname, queue_id); with
    `keep_line`, the joined line is kept as ``_enrich_line`` (null: none found)."""
    joined = frame.join_asof(
        table.sort("source_line").rename({"source_line": "_enrich_line"}),
        left_on="source_line",
        right_on="_enrich_line",
        by=["hostname", "queue_id"],
        strategy=strategy,
        tolerance=tolerance,
        **_ASOF_KW,
    )
    return joined if keep_line else joined.drop("_enrich_line")


def _backward(frame: pl.DataFrame, table: pl.DataFrame, earlier: pl.DataFrame | None) -> pl.DataFrame:
    """`frame` joined to its latest earlier line of `table`, or when the batch has none, to
    the earlier batches' (`earlier`: one line per key, all before the batch)."""
    joined = _asof(frame, table, "backward", keep_line=True)
    if earlier is not None and earlier.height:
        values = [c for c in earlier.columns if c not in ("hostname", "queue_id", "source_line")]
        joined = joined.join(earlier.drop("source_line").rename({c: f"{c}_earlier" for c in values}),
                             on=["hostname", "queue_id"], how="left", maintain_order="left")
        # only where the batch has no such line (its value may be null: that line still wins)
        none = pl.col("_enrich_line").is_null()
        joined = joined.with_columns(
            [pl.when(none).then(pl.col(f"{c}_earlier")).otherwise(pl.col(c)).alias(c) for c in values]
        ).drop([f"{c}_earlier" for c in values])
    return joined.drop("_enrich_line")


def _enrich(records: pl.DataFrame, hdr: pl.DataFrame, carry: Carry | None) -> pl.DataFrame:
    """Fill client_ip, sender, size_bytes and message_id from the same message's other lines:
    the latest earlier ones for outcomes (of this batch or, through `carry`, an earlier one),
    the next ones for `receive` records (qmgr and cleanup log after smtpd's client= line).

    With a `carry`, the receive records near the batch's end still missing a from= or
    message-id= line go to ``carry.held`` and come out of the next batch instead."""
    tables = _enrichment_tables(hdr)
    earlier = (None,) * 3 if carry is None or carry.tables is None else carry.tables
    outcomes = records.filter(pl.col("event") != "receive").sort("source_line")
    receives = records.filter(pl.col("event") == "receive").sort("source_line")
    for table, before in zip(tables, earlier):
        outcomes = _backward(outcomes, table, before)
        receives = _asof(receives, table, "forward")
    held = None if carry is None else carry.held
    if held is not None and held.height:
        # a receive record of the last batch: its own line gave the client; the from= and
        # message-id= lines come first in this batch
        _, senders, mids = tables
        late = _asof(_asof(held.drop("_sender", "_size", "_mid").with_columns(
            _old_sender=held["_sender"], _old_size=held["_size"], _old_mid=held["_mid"]),
            senders, "forward", _HOLD_LINES), mids, "forward", _HOLD_LINES)
        late = late.with_columns(_sender=pl.coalesce("_old_sender", "_sender"),
                                 _size=pl.coalesce("_old_size", "_size"),
                                 _mid=pl.coalesce("_old_mid", "_mid")).select(receives.columns)
        receives = pl.concat([late, receives])
    if carry is not None:
        last = hdr.get_column("source_line").max()
        waiting = ((pl.col("_sender").is_null() | pl.col("_mid").is_null())
                   & (pl.col("source_line") > last - _HOLD_LINES))
        carry.held = receives.filter(waiting)
        receives = receives.filter(~waiting)
        carry.tables = tuple(_carried(before, table) for before, table in zip(earlier, tables))
    return _records(pl.concat([outcomes, receives]))


def _records(enriched: pl.DataFrame) -> pl.DataFrame:
    """Joined records in RECORD_SCHEMA, by line."""
    # The line's own values (a reject's client and from=, an expiry's from=) beat the join.
    records = enriched.with_columns(
        client_ip=pl.coalesce("client_ip", "_client"),
        sender=pl.coalesce("sender", "_sender"),
        size_bytes=pl.col("_size"),
        message_id=pl.col("_mid"),
        direction=pl.lit(None, pl.String),
        subject=pl.lit(None, pl.String),
        connector_name=pl.lit(None, pl.String),
        message_key=pl.concat_str("hostname", pl.lit("/"), "queue_id"),
    )
    return records.select([pl.col(c).cast(t) for c, t in RECORD_SCHEMA.items()]).sort("source_line")


def held_records(carry: Carry) -> pl.DataFrame:
    """The receive records `carry` still holds, as they are (the log ended before their from=
    or message-id= line); the carry is emptied."""
    held, carry.held = carry.held, None
    return _empty_records() if held is None else _records(held)


def parse_postfix(
    lines: pl.DataFrame, *, year: int | None, mtime: datetime.datetime, carry: Carry | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Parse one batch of a Postfix syslog file into ``(records, rejects)``.

    A file read batch by batch passes one `carry` to every batch, then takes `held_records`
    after the last: a message's lines may straddle batches. Without a carry the batch is the
    whole log.

    `lines` has ``line`` (String, no newline) and ``source_line`` (Int64, 1-based). `year` is the
    year of classic syslog timestamps when known (CLI option); otherwise it comes from `mtime`
    with a rollover for months after mtime's month. See the module docstring and RECORD_SCHEMA /
    REJECT_SCHEMA for the output; lines that are neither outcomes nor broken delivery lines
    (connect, anvil, pickup, other programs) produce nothing.
    """
    # A log copied through Windows may keep a CR at each line end; the patterns anchor at `$`.
    df = lines.select(
        pl.col("line").cast(pl.String).str.strip_suffix("\r"), pl.col("source_line").cast(pl.Int64)
    ).filter(pl.col("line").is_not_null() & pl.col("line").str.contains("postfix", literal=True))
    if df.height == 0:
        return _empty_records(), _empty_rejects()

    hdr = _split_header(df, year=year, mtime=mtime)
    msg = pl.col("msg")
    action = msg.str.extract(_ACTION, 2)
    kind = (
        pl.when(pl.col("hostname").is_null())
        .then(pl.lit("noheader"))
        .when(msg.str.contains(r"^" + _QID + r": to=<"))
        .then(pl.lit("delivery"))
        .when(action.is_in(_FAIL_ACTIONS + _DROP_ACTIONS))
        .then(pl.lit("action"))
        .when(action.is_not_null() | msg.str.contains(_DIAGNOSTIC))
        .then(pl.lit("ignored"))  # warnings, header_checks WARN/HOLD/REDIRECT...: no outcome
        .when(msg.str.contains(r"^" + _QID + r": from=<[^>]*>, (?:size=[0-9]+, )?status="))
        .then(pl.lit("expired"))
        .otherwise(pl.lit("unknown"))
    )
    hdr = hdr.with_columns(_kind=kind, action=action)

    parts = [
        _deliveries(hdr.filter(pl.col("_kind") == "delivery")),
        _actions(hdr.filter(pl.col("_kind") == "action")),
        _expiries(hdr.filter(pl.col("_kind") == "expired")),
        _receives(hdr.filter((pl.col("_kind") == "unknown")
                             & pl.col("msg").str.contains(r"^" + _QID + r": client="))),
    ]
    parsed = pl.concat([p.select(_PART_COLUMNS) for p in parts], how="vertical")

    broken = hdr.filter(
        pl.col("looks_delivery") & pl.col("_kind").is_in(["noheader", "unknown"])
    ).select(
        "source_line",
        reason=pl.when(pl.col("_kind") == "noheader")
        .then(pl.lit("no syslog header (timestamp host program[pid]:)"))
        .otherwise(
            pl.coalesce(_ts_problem(), pl.lit("unrecognised postfix line with to=/status="))
        ),
        raw=pl.col("line"),
    )
    rejects = pl.concat(
        [
            broken,
            parsed.filter(pl.col("problem").is_not_null()).select(
                "source_line", reason=pl.col("problem"), raw=pl.col("line")
            ),
        ],
        how="vertical",
    ).sort("source_line")

    good = parsed.filter(pl.col("problem").is_null()).drop("problem", "line")
    records = _enrich(good, hdr, carry)
    return records, rejects.select([pl.col(c).cast(t) for c, t in REJECT_SCHEMA.items()])
