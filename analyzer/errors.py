"""The one exception hierarchy of mailflow-analyzer.

Every message is a single line that says what was expected, what was found, where, and how to fix
it, so the CLI can print ``str(error)`` as is and exit 2 without a traceback.
"""

from __future__ import annotations

__all__ = ["AnalyzerError", "ConfigError", "InputError", "PrefixError", "location"]


class AnalyzerError(Exception):
    """Base class of every error the analyzer raises for bad input or configuration.

    The message is assembled from its parts: ``"<what>: expected <expected>, got <got> (<where>);
    hint: <hint>"``; parts that are ``None`` are left out.
    """

    def __init__(
        self,
        what: str,
        *,
        expected: str | None = None,
        got: str | None = None,
        where: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.what = what
        self.expected = expected
        self.got = got
        self.where = where
        self.hint = hint
        super().__init__(self._compose())

    def _compose(self) -> str:
        text = self.what
        detail = []
        if self.expected is not None:
            detail.append(f"expected {self.expected}")
        if self.got is not None:
            detail.append(f"got {self.got}")
        if detail:
            text += ": " + ", ".join(detail)
        if self.where is not None:
            text += f" ({self.where})"
        if self.hint is not None:
            text += f"; hint: {self.hint}"
        # Messages must stay on one line even when they quote hostile log text.
        return text.replace("\r", "\\r").replace("\n", "\\n")


class PrefixError(AnalyzerError, ValueError):
    """An IP prefix (CIDR, address or range) that cannot be parsed."""


class InputError(AnalyzerError):
    """An input file (log, trace or report export) that cannot be read as any supported format,
    or a malformed row when the caller asked for the first bad row to be fatal."""


class ConfigError(AnalyzerError):
    """A configuration export (connectors, accepted domains, the TOML config) that cannot be used."""


def location(path: object, line: int | None = None, column: str | None = None) -> str:
    """The ``where`` part of a message: ``file.csv, line 12, column 'Received'``."""
    text = str(path)
    if line is not None:
        text += f", line {line}"
    if column is not None:
        text += f", column {column!r}"
    return text


# Reasons a prefix text is rejected; shared by the compiled core and its pure-Python twin so both
# raise the very same message.
E_EMPTY = 1
E_ADDRESS = 2
E_LENGTH = 3
E_RANGE_FAMILY = 4
E_RANGE_ORDER = 5
E_VALUE = 6

_PREFIX_HINT = "write a CIDR (192.0.2.0/24, 2001:db8::/32), a single address or a range a.b.c.d-e.f.g.h"


def prefix_error(text: object, reason: int, family: int = 0, where: str | None = None) -> PrefixError:
    """Build the `PrefixError` for `text` rejected for `reason` (one of the ``E_*`` codes)."""
    quoted = _quote(text)
    if reason == E_EMPTY:
        return PrefixError("invalid prefix", expected="an IP prefix", got="an empty string",
                           where=where, hint=_PREFIX_HINT)
    if reason == E_ADDRESS:
        return PrefixError(f"invalid prefix {quoted}", expected="an IPv4 or IPv6 address",
                           got="text that is not one", where=where, hint=_PREFIX_HINT)
    if reason == E_LENGTH:
        limit = "0-32 or a contiguous netmask" if family == 4 else "0-128"
        return PrefixError(f"invalid prefix {quoted}",
                           expected=f"a prefix length {limit} after '/'",
                           got=repr(_after_slash(text)), where=where, hint=_PREFIX_HINT)
    if reason == E_RANGE_FAMILY:
        return PrefixError(f"invalid range {quoted}", expected="two addresses of the same family",
                           got="an IPv4 and an IPv6 address", where=where, hint=_PREFIX_HINT)
    if reason == E_RANGE_ORDER:
        return PrefixError(f"invalid range {quoted}", expected="first address <= last address",
                           got="a range that runs backwards", where=where,
                           hint="swap the two addresses")
    raise AssertionError(f"unknown prefix error reason {reason}")


def value_error(value: object, where: str | None = None) -> PrefixError:
    """Build the error for a table value outside 0..2**31-2."""
    return PrefixError("invalid prefix value", expected="an integer 0..2147483646",
                       got=_quote(value), where=where,
                       hint="negative codes are reserved for no match (-1), not an IP (-2), empty (-3)")


def _after_slash(text: object) -> str:
    return str(text).strip(" \t\n\r\v\f").partition("/")[2]


def _quote(text: object, limit: int = 80) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"
