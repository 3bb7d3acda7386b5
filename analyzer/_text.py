"""Bytes to UTF-8 text for every input the analyzer reads: gzip by magic number, BOM sniffing,
UTF-16 without BOM by its NUL bytes, UTF-8 with a cp1252 fallback, all in bounded chunks.

Exports come from Windows PowerShell 5.1 (ANSI), PowerShell 7 (UTF-8), ``Out-File`` (UTF-16LE
with BOM), the Exchange admin center (UTF-16LE, sometimes without BOM) and Linux syslog (UTF-8).
The encoding is decided from the content, never from the file name.
"""

from __future__ import annotations

import codecs
import gzip
import itertools
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from analyzer.errors import InputError, location

try:
    from analyzer._scan import utf16le_to_utf8 as _utf16le_to_utf8
except ImportError:  # not built: the codec does it
    _utf16le_to_utf8 = None

__all__ = ["TextSource", "decode_bytes", "open_binary", "read_text", "sniff_encoding"]

CHUNK = 16 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


class _Gzip(gzip.GzipFile):
    """A gzip stream whose damage (truncation, bad CRC, garbage) is an InputError naming the file."""

    def __init__(self, path: str | Path, raw: BinaryIO) -> None:
        super().__init__(fileobj=raw, mode="rb")
        self._path = path
        self._raw = raw

    def read(self, size: int = -1) -> bytes:
        try:
            return super().read(size)
        except (EOFError, OSError, zlib.error) as exc:
            raise InputError("unreadable gzip file", expected="a complete gzip stream",
                             got=f"a damaged or truncated one ({exc})", where=location(self._path),
                             hint="download or copy the file again") from None

    def close(self) -> None:
        super().close()
        self._raw.close()


def open_binary(path: str | Path) -> BinaryIO:
    """Open `path` for reading bytes, transparently decompressing gzip (detected by magic)."""
    raw = open(path, "rb")  # noqa: SIM115 - returned to the caller
    if raw.peek(2)[:2] == _GZIP_MAGIC:
        return _Gzip(path, raw)  # type: ignore[return-value]
    return raw


def sniff_encoding(head: bytes) -> tuple[str, int]:
    """``(encoding, bom_length)`` for the first bytes of a file.

    A BOM decides; else a NUL in every other byte means UTF-16 (the EAC writes UTF-16LE without
    BOM); else UTF-8, which the reader downgrades to cp1252 if the bytes are not valid UTF-8.
    """
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name, len(bom)
    sample = head[:4096]
    if len(sample) >= 2:
        even, odd = sample[0::2], sample[1::2]
        even_nul, odd_nul = even.count(0), odd.count(0)
        if odd_nul > len(odd) * 0.3 and even_nul < len(even) * 0.05:
            return "utf-16-le", 0
        if even_nul > len(even) * 0.3 and odd_nul < len(odd) * 0.05:
            return "utf-16-be", 0
    return "utf-8", 0


def _looks_binary(text: str) -> bool:
    """Control characters other than tab/CR/LF/FF in more than 1% of the first characters."""
    sample = text[:8192]
    if not sample:
        return False
    if "\x00" in sample:
        return True
    bad = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\t\r\n\f")
    return bad > len(sample) * 0.01


class TextSource:
    """One input file as a stream of UTF-8 byte chunks (BOM removed, lines never split inside a
    multi-byte character). `encoding` says what the file was; it is final once iteration ends
    (a file that turns out not to be UTF-8 is re-read as cp1252 from the start)."""

    def __init__(self, path: str | Path, chunk_size: int = CHUNK) -> None:
        self.path = Path(path)
        self.chunk_size = chunk_size
        with open_binary(self.path) as fh:
            head = fh.read(64 << 10)
            self.compressed = isinstance(fh, _Gzip)
        self.switched = False  # UTF-8 at first, cp1252 from a later block on
        self.encoding, self._bom = sniff_encoding(head)
        self._head = head
        body = head[self._bom:]
        if self.encoding == "utf-8":
            try:
                head_text = codecs.getincrementaldecoder("utf-8")("strict").decode(body, False)
            except UnicodeDecodeError:
                self.encoding = "cp1252"
        if self.encoding != "utf-8":
            head_text = body.decode(self.encoding, "replace")
        self.head_text = head_text
        if _looks_binary(head_text):
            raise InputError("unreadable input file", expected="text (CSV, JSON or a log)",
                             got="binary data", where=location(self.path),
                             hint="give the exported .csv/.json/.log file, or a .gz of it")

    def chunks(self) -> Iterator[bytes]:
        """UTF-8 bytes of the whole file, in chunks of about `chunk_size` bytes."""
        with open_binary(self.path) as fh:
            fh.read(self._bom)
            if self.encoding == "utf-8":
                yield from self._utf8(fh)
            elif self.encoding == "utf-16-le" and _utf16le_to_utf8 is not None:
                yield from self._utf16le(self._blocks(fh, "\n".encode("utf-16-le")))
            else:
                yield from self._transcode(self._blocks(fh), codecs.getincrementaldecoder(self.encoding)("replace"))

    def line_chunks(self) -> Iterator[bytes]:
        """UTF-8 chunks of whole lines: each ends with a line break (one is added after an
        unterminated last line), so line-oriented readers never see half a line."""
        tail = b""
        for chunk in self.chunks():
            data = tail + chunk
            cut = data.rfind(b"\n") + 1
            tail = data[cut:]
            if cut:
                yield data[:cut]
        if tail:
            yield tail + b"\n"

    def _utf8(self, fh: BinaryIO) -> Iterator[bytes]:
        # Decoded only to validate: the original bytes are passed on, cut after the last whole
        # character. A file that turns out not to be UTF-8 (PowerShell 5.1 writes ANSI, and the
        # first umlaut may come after many megabytes of ASCII) goes on as cp1252 from the block
        # where it failed: what was already passed on was valid UTF-8, hence the same in cp1252
        # as long as it was ASCII, which is what a valid-UTF-8 prefix of an ANSI file is.
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        pending = b""
        blocks = self._blocks(fh)
        while True:
            block = next(blocks, b"")
            final = not block
            if block and not pending and block.isascii():
                # most exports are plain ASCII: valid UTF-8 with no character cut in two, checked
                # at memory speed instead of being decoded (nothing pending: the decoder is empty)
                yield block
                continue
            try:
                decoder.decode(block, final)
            except UnicodeDecodeError:
                self.encoding = "cp1252"
                self.switched = True
                rest = codecs.getincrementaldecoder("cp1252")("replace")
                yield (rest.decode(pending + block)).encode("utf-8")
                yield from self._transcode(blocks, rest)
                return
            data = pending + block
            cut = len(data) - len(decoder.getstate()[0])
            if cut:
                yield data[:cut]
            pending = data[cut:]
            if final:
                return

    def _blocks(self, fh: BinaryIO, newline: bytes = b"\n") -> Iterator[bytes]:
        """Blocks of about `chunk_size` bytes from `fh`'s position on. From a plain file, a block
        ends just after the last line break of its final 64 KiB when there is one: the CSV
        scanner then rarely has a partial record to carry into the next block, so blocks are
        passed on as read, not copied into one with the carry. `newline` is the line break in
        the file's encoding (two bytes in UTF-16, found at an even offset: a block of whole
        code units, which the transcoder then needs not carry either)."""
        try:
            if isinstance(fh, _Gzip) or not hasattr(os, "pread"):
                raise OSError("no positional reads")
            fd, pos, look = fh.fileno(), fh.tell(), min(64 << 10, self.chunk_size)
            os.pread(fd, 0, pos)  # a pipe or a socket cannot: read it as a stream
        except OSError:
            while block := fh.read(self.chunk_size):
                yield block
            return
        while True:
            size = self.chunk_size
            tail = os.pread(fd, look, pos + size - look)
            if len(tail) == look:  # not the end of the file: cut after the tail's last line break
                cut = tail.rfind(newline)
                while cut > 0 and cut % len(newline):  # inside a character of another line
                    cut = tail.rfind(newline, 0, cut)
                if cut >= 0 and not cut % len(newline):
                    size = size - look + cut + len(newline)
            block = os.pread(fd, size, pos)
            if not block:
                return
            pos += len(block)
            yield block

    def _utf16le(self, blocks: Iterator[bytes]) -> Iterator[bytes]:
        # The compiled transcoder gives what the codec with replacement characters gives, at
        # twice its speed, up to the first surrogate without its pair (not in a real export);
        # from there on, the codec. A character cut at the end of a block waits for the next.
        carry = b""
        for block in blocks:
            data = carry + block if carry else block
            utf8, used, invalid = _utf16le_to_utf8(data)
            if utf8:
                yield utf8
            if invalid:
                yield from self._transcode(itertools.chain([data[used:]], blocks),
                                           codecs.getincrementaldecoder("utf-16-le")("replace"))
                return
            carry = data[used:]
        if carry:  # an odd byte or a lone high surrogate at the very end
            yield carry.decode("utf-16-le", "replace").encode("utf-8", "surrogatepass")

    def _transcode(self, blocks: Iterator[bytes], decoder: codecs.IncrementalDecoder) -> Iterator[bytes]:
        while True:
            block = next(blocks, b"")
            text = decoder.decode(block, not block)
            if text:
                yield text.encode("utf-8", "surrogatepass")
            if not block:
                return


def decode_bytes(data: bytes, where: str | Path = "<bytes>") -> tuple[str, str]:
    """Decode a whole (small) file's bytes: ``(text, encoding)``; same rules as `TextSource`."""
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as exc:
            raise InputError("unreadable gzip file", expected="a complete gzip stream",
                             got=f"a damaged or truncated one ({exc})", where=location(where)) from None
    encoding, bom = sniff_encoding(data[:65536])
    body = data[bom:]
    if encoding == "utf-8":
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            encoding, text = "cp1252", body.decode("cp1252", "replace")
    else:
        text = body.decode(encoding, "replace")
    if _looks_binary(text):
        raise InputError("unreadable input file", expected="text (CSV, JSON or XML)", got="binary data",
                         where=location(where))
    return text, encoding


def read_text(path: str | Path) -> tuple[str, str]:
    """Read and decode a whole small file (configuration exports): ``(text, encoding)``."""
    with open_binary(path) as fh:
        data = fh.read()
    return decode_bytes(data, path)

