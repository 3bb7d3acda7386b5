"""Read published IP range files into ``(prefix, label)`` pairs for a `PrefixTable`.

Formats are recognized from content (a ``.gz`` file is decompressed first):

* Azure service tags JSON (``values[].properties.addressPrefixes``; label: the tag name),
* AWS ``ip-ranges.json`` (``prefixes[].ip_prefix``, ``ipv6_prefixes[].ipv6_prefix``; label: service),
* Google Cloud ``cloud.json`` (``prefixes[].ipv4Prefix / ipv6Prefix``; label: scope),
* RouteViews ``pfx2as`` (``prefix<TAB>length<TAB>asn``; label: the AS field as written),
* CSV with a ``prefix,<label>`` header (``#`` comment lines allowed),
* a plain list of one prefix per line (label: the file's name without extensions).

Prefix text is passed through unparsed: `PrefixTable` validates it and names the pair that fails.
"""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

from analyzer.errors import AnalyzerError, PrefixError
from analyzer.matching import PrefixTable

__all__ = ["RangeFileError", "label_codes", "load_table", "read_ranges"]


class RangeFileError(AnalyzerError, ValueError):
    """A range file whose format is not recognized or whose content is malformed."""


def _text(path: Path) -> str:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise RangeFileError("unreadable range file", expected="a complete gzip file",
                                 got=f"{type(exc).__name__}: {exc}", where=str(path)) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise RangeFileError("unreadable range file", expected="UTF-8 text",
                             got=f"byte 0x{raw[exc.start]:02x}", where=f"{path}:{line}") from None


def read_ranges(path: str | Path) -> list[tuple[str, str]]:
    """All ``(prefix, label)`` pairs of one range file, in file order (duplicates kept)."""
    path = Path(path)
    text = _text(path)
    if text.lstrip()[:1] in ("{", "["):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RangeFileError("malformed JSON range file", expected="valid JSON",
                                 got=exc.msg, where=f"{path}:{exc.lineno}") from None
        return _read_json(path, doc)
    # Only \n ends a line (str.splitlines would also split on \x0c, \x85, \u2028 and shift
    # the line numbers in messages).
    lines = [line.rstrip("\r") for line in text.split("\n")]
    content = [(n, line) for n, line in enumerate(lines, 1) if line.strip() and not line.startswith("#")]
    if not content:
        return []
    first = content[0][1]
    if "\t" in first:
        return _read_pfx2as(path, content)
    if "," in first:
        return _read_csv(path, content)
    stem = path.name.split(".")[0]
    return [(line.strip(), stem) for _, line in content]


def _read_json(path: Path, doc: object) -> list[tuple[str, str]]:
    if isinstance(doc, dict) and isinstance(doc.get("values"), list):  # Azure service tags
        pairs: list[tuple[str, str]] = []
        for index, tag in enumerate(doc["values"]):
            properties = _object(path, tag, f"values[{index}]").get("properties") or {}
            prefixes = _object(path, properties, f"values[{index}].properties").get("addressPrefixes") or []
            pairs.extend((_prefix(path, p, f"values[{index}]"), str(tag.get("name", ""))) for p in prefixes)
        return pairs
    if isinstance(doc, dict) and isinstance(doc.get("prefixes"), list):
        pairs = []
        entries = [("prefixes", e) for e in doc["prefixes"]]
        entries += [("ipv6_prefixes", e) for e in doc.get("ipv6_prefixes") or []]
        for index, (key, entry) in enumerate(entries):
            entry = _object(path, entry, f"{key} entry {index + 1}")
            prefix = (entry.get("ip_prefix") or entry.get("ipv6_prefix")  # AWS
                      or entry.get("ipv4Prefix") or entry.get("ipv6Prefix"))  # Google
            label = entry.get("service") if "ip_prefix" in entry or "ipv6_prefix" in entry else entry.get("scope")
            if prefix:
                pairs.append((_prefix(path, prefix, f"{key} entry {index + 1}"), str(label or "")))
        return pairs
    raise RangeFileError(
        "unrecognized JSON range file",
        expected="Azure service tags, AWS ip-ranges or Google cloud.json",
        got=f"a JSON {type(doc).__name__}" if not isinstance(doc, dict) else "another JSON object",
        where=str(path),
    )


def _object(path: Path, value: object, where: str) -> dict:
    if not isinstance(value, dict):
        raise RangeFileError("malformed JSON range file", expected="an object",
                             got=f"a JSON {type(value).__name__}", where=f"{path}: {where}")
    return value


def _prefix(path: Path, value: object, where: str) -> str:
    if not isinstance(value, str):
        raise RangeFileError("malformed JSON range file", expected="a prefix string",
                             got=f"a JSON {type(value).__name__}", where=f"{path}: {where}")
    return value


def _read_pfx2as(path: Path, content: list[tuple[int, str]]) -> list[tuple[str, str]]:
    pairs = []
    for number, line in content:
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) != 3:
            raise RangeFileError("malformed pfx2as line", expected="prefix<TAB>length<TAB>asn",
                                 got=f"{len(fields)} fields", where=f"{path}:{number}")
        pairs.append((f"{fields[0]}/{fields[1]}", fields[2].strip()))
    return pairs


def _read_csv(path: Path, content: list[tuple[int, str]]) -> list[tuple[str, str]]:
    header_no, header = content[0]
    columns = [c.strip().lower() for c in header.split(",")]
    if not columns or columns[0] not in ("prefix", "cidr", "network", "ip_prefix"):
        raise RangeFileError("unrecognized CSV range file", expected="a header 'prefix,<label>'",
                             got=repr(header[:60]), where=f"{path}:{header_no}")
    pairs = []
    for number, line in content[1:]:
        fields = line.split(",")
        if len(fields) < 2:
            raise RangeFileError("malformed CSV range line", expected="prefix,label",
                                 got=repr(line[:60]), where=f"{path}:{number}")
        pairs.append((fields[0].strip(), fields[1].strip()))
    return pairs


def label_codes(pairs: list[tuple[str, str]]) -> tuple[list[tuple[str, int]], list[str]]:
    """Number the labels in order of first appearance: ``(prefix, code)`` pairs and the labels."""
    codes: dict[str, int] = {}
    coded = [(prefix, codes.setdefault(label, len(codes))) for prefix, label in pairs]
    return coded, list(codes)


def load_table(path: str | Path) -> tuple[PrefixTable, list[str]]:
    """A `PrefixTable` of one range file (codes index the returned labels; the last entry for a
    prefix listed twice wins). A bad prefix raises `RangeFileError` naming the file and entry."""
    pairs, labels = label_codes(read_ranges(path))
    table = PrefixTable()
    for index, (prefix, code) in enumerate(pairs):
        try:
            table.add(prefix, code)
        except PrefixError as exc:
            raise RangeFileError(exc.what, expected=exc.expected, got=exc.got,
                                 where=f"{path}: entry {index + 1}", hint=exc.hint) from None
    return table, labels
