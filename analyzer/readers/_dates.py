"""Timestamps as the exports write them, parsed column-wise into UTC datetimes.

ISO 8601 (with 0-7+ fractional digits, with or without ``Z`` or an offset; no zone means UTC),
OData ``/Date(ms)/``, and the culture-formatted strings ``Export-Csv`` writes:
``M/d/yyyy h:mm:ss tt`` (en-US), ``dd.MM.yyyy HH:mm:ss`` (de-DE), ``dd/MM/yyyy HH:mm:ss`` (fr-FR,
en-GB). The day/month order of slashed dates is decided once per file from the data
(a first number above 12 means day first, a second one above 12 means month first); when nothing
decides it, an AM/PM clock means en-US (month first) and a 24-hour clock day first, and the
file's report says the order was assumed.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from analyzer.readers._compiled import culture_timestamps, iso_timestamps

TIMESTAMP = pl.Datetime("us", "UTC")

_ISO = (r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9})\d*)?)?)?"
        r"\s*(Z|z|UTC|[+-]\d{2}:?\d{2})?$")
_CULTURE = (r"^(\d{1,2})([./-])(\d{1,2})[./-](\d{4})(?:,?\s+(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9})\d*)?)?"
            r"\s*([AaPp]\.?[Mm]\.?)?)?\s*(Z|UTC)?$")
_ODATA = r"^/Date\((-?\d+)([+-]\d{4})?\)/$"


#: The start of a culture-form date ("25/12/2026", "12.25.2026"): the only form whose reading
#: depends on the day/month order.
CULTURE_DATE = r"^\s*\d{1,2}[./-]"


@dataclass
class DateOrder:
    """The per-file decision for culture-formatted dates: ``"dmy"`` or ``"mdy"``, and how it was
    made (``"data"`` when a value decided it, ``"assumed"`` otherwise, ``"option"`` if given)."""

    order: str | None = None
    how: str = "undecided"
    pattern: str | None = None

    def describe(self) -> str:
        if self.order is None:
            return ""
        shown = {"dmy": "day/month/year", "mdy": "month/day/year"}[self.order]
        if self.how == "data":
            return f"dates read as {shown} (decided from the data)"
        if self.how == "option":
            return f"dates read as {shown} (date_order option)"
        return f"dates read as {shown} (ambiguous: no day above 12; assumed from the {self.pattern})"


def _fraction_us(col: pl.Expr) -> pl.Expr:
    # "4907658" (100 ns ticks) -> 490765 us: pad/truncate to 6 digits
    return pl.when(col.is_null()).then(0).otherwise(col.str.pad_end(6, "0").str.slice(0, 6).cast(pl.Int64))


def _offset_minutes(col: pl.Expr) -> pl.Expr:
    digits = col.str.replace(":", "", literal=True)
    sign = pl.when(digits.str.starts_with("-")).then(-1).otherwise(1)
    hours = digits.str.slice(1, 2).cast(pl.Int64, strict=False)
    minutes = digits.str.slice(3, 2).cast(pl.Int64, strict=False)
    return pl.when(col.is_null() | col.is_in(["Z", "z", "UTC"])).then(0).otherwise(sign * (hours * 60 + minutes))


def decide_order(values: pl.Series, state: DateOrder, forced: str | None = None) -> DateOrder:
    """Update the per-file day/month decision with a batch of raw timestamp texts."""
    if forced is not None:
        state.order, state.how = forced, "option"
        return state
    if state.how != "undecided":
        # decided once per file, on its first batch with such dates: a later batch that
        # contradicts it fails to parse and its rows are rejected, visibly, rather than the
        # file being read half one way and half the other
        return state
    if not values.head(10_000).str.contains(CULTURE_DATE).any():
        return state  # ISO or /Date()/ stamps: there is no day/month order to decide
    parts = values.drop_nulls().str.strip_chars().str.extract_groups(_CULTURE).struct.unnest()
    parts = parts.filter(pl.col("1").is_not_null())
    if parts.height == 0:
        return state
    first = parts.get_column("1").cast(pl.Int64)
    second = parts.get_column("3").cast(pl.Int64)
    if (first > 12).any():
        state.order, state.how = "dmy", "data"
    elif (second > 12).any():
        state.order, state.how = "mdy", "data"
    else:
        ampm = parts.get_column("9").is_not_null().any()
        dotted = (parts.get_column("2") == ".").any()
        if dotted:
            state.order, state.pattern = "dmy", "dotted dd.MM.yyyy form (de-DE)"
        elif ampm:
            state.order, state.pattern = "mdy", "AM/PM clock (en-US)"
        else:
            state.order, state.pattern = "dmy", "24-hour clock (en-GB/fr-FR)"
        state.how = "assumed"
    return state


def parse_timestamps(values: pl.Series, order: DateOrder) -> pl.Series:
    """Parse timestamp texts, already trimmed (as `normalize` leaves every column), into
    Datetime(us, UTC); unparseable values give null."""
    text = values.cast(pl.String)
    # Most exports write one form throughout: parse that directly (ISO, or the file's culture
    # form), and send only what it leaves (offsets, /Date()/, garbage) through the general path.
    culture = _CULTURE_FORMATS.get(order.order or "", ())
    if culture and not text.head(1000).str.contains(r"^\d{4}-").any():
        fast = pl.repeat(None, text.len(), dtype=pl.Datetime("us"), eager=True).alias("timestamp")
    else:
        fast = iso_timestamps(text)
    missing = fast.is_null() & text.is_not_null()
    if culture and missing.any():  # the file's culture form, on what is still unparsed
        idx = missing.arg_true()
        fast = fast.scatter(idx, culture_timestamps(text.gather(idx), culture, order.order == "dmy"))
        missing = fast.is_null() & text.is_not_null()
    if not missing.any():
        return fast.dt.replace_time_zone(UTC_NAME).alias("timestamp")
    slow = _parse_general(text.filter(missing), order)
    return fast.dt.replace_time_zone(UTC_NAME).scatter(missing.arg_true(), slow).alias("timestamp")


_CULTURE_FORMATS = {
    "mdy": ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %I:%M %p", "%m/%d/%Y %H:%M"),
    "dmy": ("%d/%m/%Y %H:%M:%S", "%d.%m.%Y %H:%M:%S", "%d/%m/%Y %I:%M:%S %p", "%d-%m-%Y %H:%M:%S",
            "%d/%m/%Y %H:%M", "%d.%m.%Y %H:%M"),
}


def _parse_general(text: pl.Series, order: DateOrder) -> pl.Series:
    frame = pl.DataFrame({"t": text})
    iso = pl.col("t").str.extract_groups(_ISO)
    cul = pl.col("t").str.extract_groups(_CULTURE)
    odata = pl.col("t").str.extract_groups(_ODATA)
    frame = frame.with_columns(iso.alias("iso"), cul.alias("cul"), odata.alias("od"))

    def g(struct: str, field: str) -> pl.Expr:
        return pl.col(struct).struct.field(field)

    def build(year: pl.Expr, month: pl.Expr, day: pl.Expr, hour: pl.Expr, minute: pl.Expr,
              second: pl.Expr, frac: pl.Expr) -> pl.Expr:
        ints = [e.cast(pl.Int64, strict=False) for e in (year, month, day)]
        hms = [e.cast(pl.Int64, strict=False).fill_null(0) for e in (hour, minute, second)]
        valid = (ints[1].is_between(1, 12) & ints[2].is_between(1, 31) & hms[0].is_between(0, 23)
                 & hms[1].is_between(0, 59) & hms[2].is_between(0, 60))
        # pl.datetime raises on impossible dates (Feb 30): build from a formatted string instead,
        # which a non-strict strptime turns into null.
        stamp = pl.format("{}-{}-{} {}:{}:{}", *[e.cast(pl.String).str.pad_start(2, "0") for e in ints],
                          *[e.clip(0, 59).cast(pl.String).str.pad_start(2, "0") for e in hms])
        parsed = stamp.str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", strict=False)
        return pl.when(valid).then(parsed + pl.duration(microseconds=_fraction_us(frac)))

    iso_dt = build(g("iso", "1"), g("iso", "2"), g("iso", "3"), g("iso", "4"), g("iso", "5"),
                   g("iso", "6"), g("iso", "7"))
    iso_dt = iso_dt - pl.duration(minutes=_offset_minutes(g("iso", "8")))
    a, b = g("cul", "1"), g("cul", "3")
    day, month = (a, b) if order.order != "mdy" else (b, a)
    hour = g("cul", "5").cast(pl.Int64, strict=False)
    ampm = g("cul", "9").str.to_lowercase().str.slice(0, 1)
    hour24 = (pl.when(ampm == "p").then(pl.when(hour == 12).then(12).otherwise(hour + 12))
              .when(ampm == "a").then(pl.when(hour == 12).then(0).otherwise(hour))
              .otherwise(hour))
    bad_ampm = ampm.is_not_null() & ~hour.is_between(1, 12)
    cul_dt = pl.when(~bad_ampm).then(
        build(g("cul", "4"), month, day, hour24.cast(pl.String), g("cul", "6"), g("cul", "7"), g("cul", "8")))
    od_dt = pl.from_epoch(g("od", "1").cast(pl.Int64, strict=False), time_unit="ms").cast(pl.Datetime("us"))
    result = frame.select(
        pl.when(g("iso", "1").is_not_null()).then(iso_dt)
        .when(g("cul", "1").is_not_null()).then(cul_dt)
        .when(g("od", "1").is_not_null()).then(od_dt)
        .dt.replace_time_zone(UTC_NAME).cast(TIMESTAMP).alias("timestamp")
    )
    return result.get_column("timestamp")


UTC_NAME = "UTC"
