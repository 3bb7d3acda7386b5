"""Pure-Python twin of the compiled core (analyzer._lpm): same interface, same answers.

It is the fallback when the extension is not built and the reference the tests hold the compiled
core to, so it is written for obviousness, not speed: addresses are parsed by ``ipaddress`` and
the longest match is found by trying each prefix length present in the table, longest first.
"""

from __future__ import annotations

import ipaddress
import operator
from typing import Any

import numpy as np
import pyarrow as pa

from analyzer.errors import (
    E_ADDRESS,
    E_EMPTY,
    E_LENGTH,
    E_RANGE_FAMILY,
    E_RANGE_ORDER,
    prefix_error,
    value_error,
)

ADDR_EMPTY = -3
ADDR_INVALID = -2
NO_MATCH = -1
MAX_VALUE = 2**31 - 2
_WS = " \t\n\r\v\f"
_BITS = {4: 32, 6: 128}
_MAPPED = 0xFFFF  # ::ffff:0:0/96 >> 32


def parse_address(text: str, map4: bool = True) -> tuple[int, int] | int:
    """Parse one address as found in logs into ``(family, int)``, or ADDR_EMPTY / ADDR_INVALID.

    Tolerated: surrounding ASCII whitespace, one pair of square brackets, a non-empty zone index
    after '%'. With `map4`, IPv4-mapped IPv6 (``::ffff:a.b.c.d``) is returned as IPv4.
    """
    s = text.strip(_WS)
    if not s:
        return ADDR_EMPTY
    if s[0] == "[":
        if len(s) < 2 or s[-1] != "]":
            return ADDR_INVALID
        s = s[1:-1]
    addr, sep, zone = s.partition("%")
    if (sep and (not zone or "%" in zone)) or not addr or not addr.isascii():
        return ADDR_INVALID
    try:
        if ":" in addr:
            value = int(ipaddress.IPv6Address(addr))
            if map4 and value >> 32 == _MAPPED:
                return 4, value & 0xFFFFFFFF
            return 6, value
        return 4, int(ipaddress.IPv4Address(addr))
    except ValueError:
        return ADDR_INVALID


def _parse_length(text: str, family: int) -> int | None:
    if family == 4 and "." in text:
        try:
            mask = int(ipaddress.IPv4Address(text))
        except ValueError:
            return None
        host = mask ^ 0xFFFFFFFF
        if host & (host + 1):
            return None  # not contiguous
        return 32 - host.bit_length()
    if not (text.isascii() and text.isdigit()):
        return None
    length = int(text)
    return length if length <= _BITS[family] else None


def _unmap(family: int, network: int, length: int) -> tuple[int, int, int]:
    """``::ffff:a.b.c.d/n`` (n >= 96) is the IPv4 prefix ``a.b.c.d/(n-96)``: mapped queries are
    looked up as IPv4, so an IPv6 entry there (a CIDR or a range piece) could never match."""
    if family == 6 and network >> 32 == _MAPPED and length >= 96:
        return 4, network & 0xFFFFFFFF, length - 96
    return family, network, length


def parse_prefix(text: str) -> list[tuple[int, int, int]]:
    """Parse a CIDR, address or range into ``[(family, network int, length), ...]``."""
    s = text.strip(_WS)
    if not s:
        raise prefix_error(text, E_EMPTY)
    if "/" in s:
        addr, _, length_text = s.partition("/")
        parsed = parse_address(addr, map4=False)
        if isinstance(parsed, int):
            raise prefix_error(text, E_ADDRESS)
        family, value = parsed
        length = _parse_length(length_text, family)
        if length is None:
            raise prefix_error(text, E_LENGTH, family)
        bits = _BITS[family]
        return [_unmap(family, value >> (bits - length) << (bits - length), length)]
    if "-" not in s:
        parsed = parse_address(s)
        if isinstance(parsed, int):
            raise prefix_error(text, E_ADDRESS)
        family, value = parsed
        return [(family, value, _BITS[family])]
    first_text, _, last_text = s.partition("-")
    first, last = parse_address(first_text), parse_address(last_text)
    if isinstance(first, int) or isinstance(last, int):
        raise prefix_error(text, E_ADDRESS)
    if first[0] != last[0]:
        raise prefix_error(text, E_RANGE_FAMILY)
    if first[1] > last[1]:
        raise prefix_error(text, E_RANGE_ORDER)
    cls = ipaddress.IPv4Address if first[0] == 4 else ipaddress.IPv6Address
    return [
        _unmap(first[0], int(net.network_address), net.prefixlen)
        for net in ipaddress.summarize_address_range(cls(first[1]), cls(last[1]))
    ]


def _check_value(value: Any) -> int:
    try:
        number = operator.index(value)
    except TypeError:
        raise value_error(value) from None
    if not 0 <= number <= MAX_VALUE:
        raise value_error(value)
    return number


class Core:
    """Backend interface shared with analyzer._lpm.Core (see analyzer.matching)."""

    releases_gil = False

    def __init__(self) -> None:
        self._entries: dict[tuple[int, int, int], int] = {}
        self._index: dict[int, list[tuple[int, dict[int, int]]]] | None = None

    def add(self, text: str, value: Any) -> None:
        number = _check_value(value)
        for key in parse_prefix(text):
            self._entries[key] = number  # the last value added for a prefix wins
        self._index = None

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> list[tuple[int, int, int, int]]:
        return sorted((fam, net, length, value) for (fam, net, length), value in self._entries.items())

    def stats(self) -> dict[str, int]:
        return {"prefixes": len(self._entries)}

    def _levels(self, family: int) -> list[tuple[int, dict[int, int]]]:
        if self._index is None:
            index: dict[int, dict[int, dict[int, int]]] = {4: {}, 6: {}}
            for (fam, net, length), value in self._entries.items():
                index[fam].setdefault(length, {})[net] = value
            self._index = {fam: sorted(by_len.items(), reverse=True) for fam, by_len in index.items()}
        return self._index[family]

    def lookup_int(self, family: int, address: int) -> int:
        bits = _BITS[family]
        for length, nets in self._levels(family):
            value = nets.get(address >> (bits - length) << (bits - length))
            if value is not None:
                return value
        return NO_MATCH

    def lookup_text(self, text: str | bytes | None) -> int:
        if text is None:
            return ADDR_EMPTY
        if isinstance(text, bytes):
            # Only ASCII can form an address; latin-1 maps every other byte to a non-ASCII char.
            text = text.decode("latin-1")
        elif not isinstance(text, str):
            raise TypeError(f"expected str, bytes or None, got {type(text).__name__}")
        parsed = parse_address(text)
        if isinstance(parsed, int):
            return parsed
        return self.lookup_int(*parsed)

    def gather(self, indices: pa.Array, codes: np.ndarray, out: np.ndarray) -> None:
        for i, index in enumerate(_validated(indices).to_pylist()):
            if index is None:
                out[i] = ADDR_EMPTY
            elif 0 <= index < len(codes):
                out[i] = codes[index]
            else:
                raise ValueError(
                    f"malformed Arrow dictionary array: index of row {i} is outside its dictionary"
                )

    def first_rows(self, ids: pa.Array, max_id: int) -> tuple[np.ndarray, np.ndarray]:
        first: dict[int, int] = {}
        for row, category in enumerate(_validated(ids).to_pylist()):
            if category is None:
                continue
            if category > max_id:
                raise ValueError(f"category id of row {row} is above the given maximum {max_id}")
            first.setdefault(category, row)
        present = sorted(first)
        return np.array(present, dtype=np.uint32), np.array([first[c] for c in present], dtype=np.int64)

    def lookup_u32(self, values: np.ndarray, out: np.ndarray) -> None:
        for i, address in enumerate(values.tolist()):
            out[i] = self.lookup_int(4, address)

    def lookup_arrow(self, arr: pa.Array, out: np.ndarray) -> None:
        as_bytes = _validated(arr.view(_BINARY_OF[_layout_name(arr.type)]))
        for i, item in enumerate(as_bytes.to_pylist()):
            out[i] = self.lookup_text(item)


def _validated(arr: pa.Array) -> pa.Array:
    """The array itself, once Arrow has checked its buffers: converting a malformed array reads
    outside them. Any Arrow error (ArrowInvalid, ArrowIndexError...) becomes a ValueError."""
    try:
        arr.validate(full=True)
    except pa.ArrowException as exc:
        raise ValueError(f"malformed Arrow array: {exc}") from None
    return arr


def _layout_name(layout: pa.DataType) -> str:
    for name, test in _LAYOUTS:
        if test(layout):
            return name
    raise TypeError(f"expected a string or binary Arrow array, got {layout}")


_LAYOUTS = [
    ("offsets32", lambda t: pa.types.is_string(t) or pa.types.is_binary(t)),
    ("offsets64", lambda t: pa.types.is_large_string(t) or pa.types.is_large_binary(t)),
    ("views", lambda t: pa.types.is_string_view(t) or pa.types.is_binary_view(t)),
]
_BINARY_OF = {"offsets32": pa.binary(), "offsets64": pa.large_binary(), "views": pa.binary_view()}
