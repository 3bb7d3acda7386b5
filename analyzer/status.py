"""Parse the SMTP response text found in mail logs into codes and one analysis category.

The same reply reaches us in many shapes: a bare ``451 4.7.500 Server busy ... (AS761)``, a
Diagnostic-Code value (``smtp;550 ...``, ``SMTP; 550 ...``, ``X-Postfix; ...``), an Exchange
wrapper (``LED=450 4.4.317 ... [Message=...]``, ``{[{LED=550 5.7.51 ...}];{MSG=}...]}``,
``Remote Server returned '550 ...'``, ``#550 5.1.1 ... ##``), folded header text (CRLF/LF plus
whitespace), multi-line replies (``451-4.7.500 ...``), Postfix/qmail/sendmail text
(``... said: 451 ...``, ``reason: 550 ...``, ``<<< 550 ...``), a lone enhanced code
(``Status: 5.7.606``, ``dsn=5.7.1``, ``5.7.1 Unable to relay``) or a lone basic code
(``554 Relay access denied``). Microsoft appends server stamps
(``[BN8...outlook.com 2023-01-01T00:00:00.000Z 08DAB...]``) that hold dates and hex ids.

Extraction (each field independently, first occurrence wins)
-----------------------------------------------------------
* Line breaks are unfolded first: every CRLF, CR or LF, with the blanks after it, becomes one
  space (header folding and multi-line replies alike).
* ``smtp_code``: a 3-digit ``[245][0-5]x`` reply code, only where a reply starts: at the start of
  the text after wrapper punctuation and prefixes (``smtp;``, ``X-...;``, ``LED=``, ``#``,
  ``<<<``, quotes, ``Status:``, ``Remote Server returned``, ...), or right after an introducer
  (``said:``, ``talk to me:``, ``returned '``, ``reason:``, ``Status code:``, ``Message=``,
  ``LED=``, ``<<<``). It must end at a blank, ``-`` (continuation line) or the end, never at
  ``.``/``:``/``/`` or a word character, so IP addresses (``203.0.113.25``), times and dates
  (``2024-05-09``, ``1/29/2025``) are never read as codes. 1xx/3xx replies are not final
  statuses and are ignored.
* ``enhanced_code``: ``[245].\\d{1,3}.\\d{1,3}`` as a token of its own (not preceded by a word
  character, ``.``, ``-`` or ``/``; not followed by a word character, ``-``, ``/`` or ``.digit``,
  which rules out IPv4 addresses, version numbers and ``d.M.yyyy`` dates). The one right after
  the basic code is preferred (``550 5.7.1``, ``451-4.7.500``); otherwise the first such token
  anywhere (``dsn=4.7.500``, ``Status: 5.0.0``). Written canonically (``5.7.064`` -> ``5.7.64``).
* ``ms_code``: Microsoft's diagnostic id: ``(AS761)``, ``(AS16012609)``, ``(S3113)``,
  ``(S77714)`` (an S id has 3-6 digits), or ``AS(7550)`` (-> ``AS7550``). Redacted forms
  (``AS(XXXXXXX)``) give None.
  Bracketed ``[...]`` forms are not accepted: they do not occur in real replies, and server
  stamps are bracketed.
* ``throttled_ip``: only for ``greylisting`` replies: the address of ``from [ip]`` (Microsoft's
  ``Server busy ... from [203.0.113.25]``) or of ``The mail server [ip] has been temporarily
  rate limited`` (4.7.650), IPv4 or IPv6 (``IPv6:`` tag allowed), validated and canonicalized by
  `ipaddress` (IPv6 compressed); an invalid address is ignored.

Category (first rule that matches wins; the class comes from the enhanced code when there is
one, because basic and enhanced codes sometimes disagree and the enhanced code is the precise one)
-----------------------------------------------------------------------------------------------
1. ``greylisting``: 4.7.500-4.7.699 or 4.7.850-4.7.899 (includes 4.7.650, rate limited due to
   IP reputation): Microsoft 365 throttling a new or changed source.
2. ``relay_denied``: 5.7.64, 5.7.54; 5.7.1 whose text says "unable to relay", "relay access
   denied" or "relaying denied"; 5.4.1 with "relay access denied"; a 5xx without enhanced code
   whose text says one of those three phrases (all case-insensitive).
3. ``attribution_rejected``: 5.7.51.
4. ``direct_send_rejected``: 5.7.68.
5. ``banned_ip``: 5.7.606-5.7.649.
6. ``tenant_blocked``: 5.7.700-5.7.750.
7. ``auth_required``: 5.7.57.
8. ``connector_delivery_failure``: x.4.312, x.4.315, x.4.316, x.4.317, x.4.318, x.7.320 with
   class 4 or 5 (an NDR reports the final failure with class 5).
9. ``expired``: 4.4.7, 5.4.7, 5.4.300.
10. ``temporary`` (any other class 4), ``permanent`` (class 5), ``success`` (class 2);
    ``none`` when there is no code at all (also for None and "").

`classify_column` classifies each distinct text of a polars Series once and maps the results back
with a join: real logs repeat the same few replies millions of times.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import polars as pl

from analyzer._columns import dictionary

__all__ = ["CATEGORIES", "Status", "classify", "classify_column"]

CATEGORIES: tuple[str, ...] = (
    "greylisting",
    "relay_denied",
    "attribution_rejected",
    "direct_send_rejected",
    "banned_ip",
    "tenant_blocked",
    "auth_required",
    "connector_delivery_failure",
    "expired",
    "temporary",
    "permanent",
    "success",
    "none",
)


#: A dotted quad in canonical form (no leading zeros, each octet 0-255).
CANONICAL_V4 = r"^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$"


@dataclass(frozen=True, slots=True)
class Status:
    """Codes found in one SMTP response text and the category the analyses use."""

    smtp_code: int | None
    enhanced_code: str | None
    ms_code: str | None
    throttled_ip: str | None
    category: str


NO_STATUS = Status(None, None, None, None, "none")

# Header folding and multi-line replies: a line break and the blanks after it become one space.
# (Blanks before the break are left alone: matching them too would make long blank runs quadratic.)
_BREAKS = re.compile(r"(?:\r\n|\r|\n)[ \t]*")

# A basic reply code that ends where a code ends: never inside an IP (.), a time (:), a date (/ or
# more digits) or a word. "-" is allowed: it is the continuation form "451-4.7.500".
_CODE = r"(?P<basic>[245][0-5][0-9])(?![\w.:/])"

# The start of the text, past the wrappers and prefixes emitters put before the reply. Every
# alternative starts with a different kind of character (punctuation vs. a distinct word), so the
# starred group cannot backtrack exponentially on text that does not match.
_AT_START = re.compile(
    r"""\A(?:
        [\s{}\[\]()<>'"\#*;:=-]                          # {[{ <<< # quotes blanks separators
      | (?:smtp|x-[a-z0-9-]+)[ \t]*;                     # Diagnostic-Code type: smtp; X-Postfix;
      | diagnostic-code | recipient-status | status(?:[ \t]+code)?
      | remote[ \t]+server[ \t]+returned | reason | led | msg | message
    )*""" + _CODE,
    re.IGNORECASE | re.VERBOSE,
)

# Where a reply starts inside log text: after "said:" (Postfix, qmail), "refused to talk to me:"
# (Postfix), "returned '" (Exchange NDR), "reason:" (sendmail), "Status code:" (EXO NDR body),
# "Message=" / "LED=" (Exchange wrappers), "<<<" (sendmail transcript).
_AFTER_INTRO = re.compile(
    r"""(?:\bsaid|\btalk[ \t]+to[ \t]+me|\breturned|\breason|\bstatus[ \t]+code|\bmessage=|\bled=|<<<)
        [\s:='"(]*""" + _CODE,
    re.IGNORECASE | re.VERBOSE,
)

_ENH = r"(?P<cls>[245])\.(?P<subj>[0-9]{1,3})\.(?P<detail>[0-9]{1,3})(?![\w/-]|\.[0-9])"
# Right after the basic code: "550 5.7.1", and "451-4.7.500" in continuation lines.
_ENH_AFTER_BASIC = re.compile(r"[ \t-]+" + _ENH)
# Anywhere, as its own token: not part of an IP address, a version number or a hyphenated id.
_ENH_ANYWHERE = re.compile(r"(?<![\w./-])" + _ENH)

# Microsoft diagnostic ids: "(AS761)", "(S3113)", and the "AS(7550)" spelling.
# An "S" id has 3 to 6 digits, so a footnote like "(S1)" is not taken for one.
_MS_CODE = re.compile(
    r"\((?:AS(?P<as1>[0-9]{1,10})|S(?P<s>[0-9]{3,6}))\)|(?<![A-Za-z0-9])AS\((?P<as2>[0-9]{1,10})\)"
)

# The throttled source in greylisting replies: "from [203.0.113.25]" and, in 4.7.650 replies,
# "The mail server [192.0.2.25] has been temporarily rate limited".
_THROTTLED_IP = re.compile(
    r"(?:\bfrom|\bmail[ \t]+server)[ \t]*\[(?:IPv6:)?(?P<ip>[0-9A-Fa-f:.]{2,45})\]",
    re.IGNORECASE,
)

_RELAY_TEXT = re.compile(r"unable to relay|relay access denied|relaying denied", re.IGNORECASE)
_RELAY_ACCESS_DENIED = re.compile(r"relay access denied", re.IGNORECASE)

# (subject, detail) of outbound-connector delivery failures; class 4 while retrying, 5 in the NDR.
_CONNECTOR_FAILURES = frozenset({(4, 312), (4, 315), (4, 316), (4, 317), (4, 318), (7, 320)})
_EXPIRED = frozenset({(4, 4, 7), (5, 4, 7), (5, 4, 300)})


def _category(basic: int | None, enh: tuple[int, int, int] | None, text: str) -> str:
    """Apply the category rules of the module docstring, in order."""
    if enh is not None:
        cls, subj, detail = enh
        if cls == 4 and subj == 7 and (500 <= detail <= 699 or 850 <= detail <= 899):
            return "greylisting"
        if cls == 5:
            if subj == 7 and detail in (64, 54):
                return "relay_denied"
            if subj == 7 and detail == 1 and _RELAY_TEXT.search(text):
                return "relay_denied"
            if subj == 4 and detail == 1 and _RELAY_ACCESS_DENIED.search(text):
                return "relay_denied"
            if subj == 7:
                if detail == 51:
                    return "attribution_rejected"
                if detail == 68:
                    return "direct_send_rejected"
                if 606 <= detail <= 649:
                    return "banned_ip"
                if 700 <= detail <= 750:
                    return "tenant_blocked"
                if detail == 57:
                    return "auth_required"
        if cls in (4, 5) and (subj, detail) in _CONNECTOR_FAILURES:
            return "connector_delivery_failure"
        if enh in _EXPIRED:
            return "expired"
    elif basic is not None and basic >= 500 and _RELAY_TEXT.search(text):
        return "relay_denied"
    # The enhanced code decides the class when both are present (they can disagree).
    cls = enh[0] if enh is not None else (basic // 100 if basic is not None else None)
    if cls == 4:
        return "temporary"
    if cls == 5:
        return "permanent"
    if cls == 2:
        return "success"
    return "none"


def classify(text: str | None) -> Status:
    """Codes and category of one SMTP response text (any of the forms in the module docstring).

    Never raises: text without a recognizable code gives ``category="none"`` and None codes.
    """
    if not text:
        return NO_STATUS
    text = _BREAKS.sub(" ", text)

    basic_match = _AT_START.match(text) or _AFTER_INTRO.search(text)
    basic = int(basic_match.group("basic")) if basic_match else None

    enh_match = _ENH_AFTER_BASIC.match(text, basic_match.end()) if basic_match else None
    if enh_match is None:
        enh_match = _ENH_ANYWHERE.search(text)
    enh = (
        (int(enh_match.group("cls")), int(enh_match.group("subj")), int(enh_match.group("detail")))
        if enh_match
        else None
    )

    ms_match = _MS_CODE.search(text)
    ms_code = None
    if ms_match:
        digits = ms_match.group("as1") or ms_match.group("as2")
        ms_code = f"AS{digits}" if digits else f"S{ms_match.group('s')}"

    category = _category(basic, enh, text)

    throttled_ip = None
    if category == "greylisting":
        for ip_match in _THROTTLED_IP.finditer(text):
            try:
                throttled_ip = str(ipaddress.ip_address(ip_match.group("ip")))
            except ValueError:
                continue  # "from [mx.example.com]" or garbage: not an address, keep looking
            break

    return Status(
        smtp_code=basic,
        enhanced_code=f"{enh[0]}.{enh[1]}.{enh[2]}" if enh else None,
        ms_code=ms_code,
        throttled_ip=throttled_ip,
        category=category,
    )


_SCHEMA: dict[str, pl.DataType] = {
    "smtp_code": pl.Int16(),
    "enhanced_code": pl.String(),
    "ms_code": pl.String(),
    "throttled_ip": pl.String(),
    "category": pl.String(),
}
_KEY = "__status_text"


# The throttled address, as classify() finds it, for column-wise templating (see classify_column).
_IP_IN_REPLY = r"(?i)((?:\bfrom|\bmail[ \t]+server)[ \t]*\[(?:IPv6:)?)([0-9A-Fa-f:.]{2,45})(\])"
_PLACEHOLDER = "192.0.2.1"


def classify_column(values: pl.Series) -> pl.DataFrame:
    """`classify` every element of `values`: one row per element, in order.

    Columns: ``smtp_code`` (Int16), ``enhanced_code``, ``ms_code``, ``throttled_ip``,
    ``category`` (String). Each distinct reply is classified once and the results are joined back,
    so the Python work grows with the number of distinct replies, not with the number of rows.
    Throttling replies differ only by the address they name ("... from [203.0.113.25]"), so the
    address is swapped for a placeholder before classifying and put back afterwards: a million
    deferrals from ten thousand sources cost a handful of classify calls.
    Nulls give ``category="none"`` and nulls elsewhere.
    """
    if values.null_count() == values.len():  # formats without replies (EmailEvents): nothing to read
        return pl.DataFrame({name: pl.repeat(None, values.len(), dtype=dtype, eager=True)
                             for name, dtype in _SCHEMA.items()}).with_columns(pl.lit("none").alias("category"))
    # the distinct replies and, per row, the index of its own: a gather puts the results back
    # in row order (cheaper than joining on the text)
    encoded = dictionary(values)
    frame = pl.Series(_KEY, encoded.dictionary, dtype=pl.String).to_frame().with_columns(
        pl.col(_KEY).str.extract(_IP_IN_REPLY, 2).alias("_ip"),
        pl.col(_KEY).str.replace(_IP_IN_REPLY, "${1}" + _PLACEHOLDER + "${3}").alias("_template"),
    )
    templates = frame.get_column("_template").unique()
    # Looked up through the module global so a test can count calls by monkeypatching it.
    results = [classify(text) for text in templates.to_list()]
    table = pl.DataFrame(
        {
            "_template": templates,
            "smtp_code": [r.smtp_code for r in results],
            "enhanced_code": [r.enhanced_code for r in results],
            "ms_code": [r.ms_code for r in results],
            "throttled_ip": [r.throttled_ip for r in results],
            "category": [r.category for r in results],
        },
        schema={"_template": pl.String(), **_SCHEMA},
    )
    distinct = frame.join(table, on="_template", how="left", maintain_order="left")
    placeholder = (pl.col("throttled_ip") == _PLACEHOLDER) & pl.col("_ip").is_not_null()
    canonical = {}
    named = distinct.filter(placeholder).get_column("_ip").unique()
    # dotted quads without leading zeros are canonical already: Python sees only the others
    for ip in named.filter(~named.str.contains(CANONICAL_V4)).to_list():
        try:
            canonical[ip] = str(ipaddress.ip_address(ip))
        except ValueError:
            canonical[ip] = None
    distinct = distinct.with_columns(
        pl.when(placeholder).then(pl.col("_ip").replace(canonical))
        .otherwise(pl.col("throttled_ip")).alias("throttled_ip")
    )
    # The address was not one after all ("from [1.2.3]"): classify() would have looked further
    # along the text, so ask it, for these rare texts only.
    odd = distinct.select(placeholder & pl.col("throttled_ip").is_null()).to_series()
    if odd.any():
        redo = {t: classify(t).throttled_ip for t in distinct.filter(odd).get_column(_KEY).to_list()}
        distinct = distinct.with_columns(
            pl.when(odd).then(pl.col(_KEY).replace_strict(redo, default=None, return_dtype=pl.String))
            .otherwise(pl.col("throttled_ip")).alias("throttled_ip")
        )
    index = pl.Series("_i", encoded.indices, dtype=pl.UInt32)  # null for a null reply
    return distinct.select(
        pl.col("smtp_code").gather(index),
        pl.col("enhanced_code").gather(index),
        pl.col("ms_code").gather(index),
        pl.col("throttled_ip").gather(index),
        pl.col("category").gather(index).fill_null("none"),
    )
