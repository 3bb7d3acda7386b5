"""The compiled UTF-16LE transcoder (`analyzer._scan.utf16le_to_utf8`) and the UTF-16LE stream of
`TextSource` against their reference: Python's codec with replacement characters, then UTF-8."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer import _text

utf16le_to_utf8 = pytest.importorskip("analyzer._scan").utf16le_to_utf8  # CI checks it is built


def _reference(data: bytes) -> bytes:
    return data.decode("utf-16-le", "replace").encode("utf-8", "surrogatepass")


def test_characters_of_every_length() -> None:
    text = "a\u00e9\u20ac\U0001d11e" + "ascii only, more than eight units" + "\u0416"
    data = text.encode("utf-16-le")
    utf8, used, invalid = utf16le_to_utf8(data)
    assert (utf8, used, invalid) == (text.encode("utf-8"), len(data), False)
    assert sys.getrefcount(utf8) == 2  # the transcoder kept no reference of its own


@pytest.mark.parametrize(("data", "expected"), [
    (b"a\x00b", (b"a", 2, False)),  # an odd last byte waits for the next block
    ("a\ud800".encode("utf-16-le", "surrogatepass"), (b"a", 2, False)),  # so does a high surrogate
    ("ab\udc00cd".encode("utf-16-le", "surrogatepass"), (b"ab", 4, True)),  # a low one alone
    ("ab\ud800xy".encode("utf-16-le", "surrogatepass"), (b"ab", 4, True)),  # a high one unpaired
    (b"", (b"", 0, False)),
])
def test_where_it_stops(data: bytes, expected: tuple[bytes, int, bool]) -> None:
    assert utf16le_to_utf8(data) == expected


# text with every kind of code unit, lone surrogates included (as a damaged export may hold);
# no control characters, which make TextSource call the file binary
_UNITS = st.one_of(st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                   st.characters(min_codepoint=0xA0, max_codepoint=0xFFFF, blacklist_categories=("Cc", "Cs")),
                   st.characters(min_codepoint=0x10000), st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"]))


@settings(max_examples=300, deadline=None)
@given(st.lists(_UNITS, max_size=60).map("".join), st.integers(0, 3))
def test_prefix_equals_the_codec(text: str, cut: int) -> None:
    data = text.encode("utf-16-le", "surrogatepass")
    data = data[:len(data) - cut] if cut <= len(data) else data
    utf8, used, invalid = utf16le_to_utf8(data)
    assert utf8 == _reference(data[:used])
    rest = data[used:]
    if invalid:  # stopped at a surrogate: a low one, or a high one whose next unit is no low one
        assert 0xD8 <= rest[1] <= 0xDF and len(rest) >= 4 or 0xDC <= rest[1] <= 0xDF
    else:  # stopped only at the end, or before an odd byte or a high surrogate there
        assert not rest or len(rest) <= 3 and (len(rest) % 2 or 0xD8 <= rest[1] <= 0xDB)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(_UNITS, st.just("\n"), st.just("\r\n")), max_size=200).map("".join),
       st.integers(1, 64))
def test_text_source_gives_the_codecs_utf8(tmp_path_factory: pytest.TempPathFactory, text: str, chunk: int) -> None:
    """Whatever the block size (odd ones cut characters anywhere) and the newline search (which
    must cut at an even offset), the UTF-16LE stream is the codec's text in UTF-8."""
    data = text.encode("utf-16-le", "surrogatepass")
    path = Path(tmp_path_factory.mktemp("u16")) / "in.csv"
    # a BOM makes the encoding certain whatever the text (the sniffer needs mostly ASCII)
    path.write_bytes(b"\xff\xfe" + "h,e\n".encode("utf-16-le") * 8 + data)
    source = _text.TextSource(path, chunk_size=chunk)
    assert source.encoding == "utf-16-le"
    assert b"".join(source.chunks()) == _reference("h,e\n".encode("utf-16-le") * 8 + data)


def test_blocks_cut_after_a_line_break_at_an_even_offset(tmp_path: Path) -> None:
    # "\u0a05\u0100" is the bytes 05 0A 00 01: a UTF-16LE "\n" (0A 00) at an odd offset, which
    # a block must not be cut after
    line = "\u0a05\u0100" * 10 + "\n"
    path = tmp_path / "in.csv"
    path.write_bytes(b"\xff\xfe" + line.encode("utf-16-le") * 40_000)
    source = _text.TextSource(path, chunk_size=1 << 16)
    with open(path, "rb") as fh:
        fh.read(2)
        blocks = list(source._blocks(fh, "\n".encode("utf-16-le")))
    assert all(len(b) % 2 == 0 and b.endswith("\n".encode("utf-16-le")) for b in blocks[:-1])
    assert b"".join(blocks).decode("utf-16-le") == line * 40_000
