# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled CSV record scanner: record boundaries, start lines and field counts of a chunk.

The pure-Python twin (numpy) is analyzer.readers._csv.Scanner; analyzer.readers._csv picks
this one when it is built. One call per chunk; the loop runs without the GIL, eight bytes at a
time between quotes and line breaks.
"""

from libc.stdint cimport uint8_t, int64_t, uint64_t
from libc.string cimport memchr, memcpy

import numpy as np

from scan cimport ScanOut, SCAN_POPCNT, ONES, LOW7


cdef int64_t _count_newlines(const uint8_t *p, int64_t n) noexcept nogil:
    cdef int64_t count = 0
    cdef const uint8_t *end = p + n
    cdef const void *hit
    while p < end:
        hit = memchr(p, 10, end - p)
        if hit == NULL:
            break
        count += 1
        p = <const uint8_t *>hit + 1
    return count


cdef inline uint64_t _bytes_equal(uint64_t word, uint64_t pattern) noexcept nogil:
    # 0x80 in exactly the bytes of `word` equal to `pattern`'s (a byte repeated): the exact form of
    # the has-zero-byte trick, so a borrow never flags a neighbouring byte
    cdef uint64_t x = word ^ pattern
    return ~(((x & LOW7) + LOW7) | x | LOW7)


cdef void _scan(const uint8_t *p, int64_t n, uint8_t sep, bint final, int64_t line0,
                ScanOut *out) noexcept nogil:
    cdef int64_t i = 0, start = 0, line = line0, start_line = line0, fields = 1, k = 0
    cdef bint quoted = False
    cdef uint8_t c
    cdef int64_t end, stop
    cdef uint64_t word, seps
    cdef uint64_t quotes = ONES * 34, newlines = ONES * 10, separators = ONES * sep
    out.consumed = 0
    out.newlines = 0
    while i < n:
        # Eight bytes at a time while they hold neither a quote nor a line break (most of a
        # record): only separators can be there, counted with one popcount when outside quotes.
        while i + 8 <= n:
            memcpy(&word, p + i, 8)
            if _bytes_equal(word, quotes) | _bytes_equal(word, newlines):
                break
            if not quoted:
                seps = _bytes_equal(word, separators)
                if seps:
                    fields += SCAN_POPCNT(seps)
            i += 8
        # then byte by byte through the word that stopped it
        stop = i + 8 if i + 8 <= n else n
        while i < stop:
            c = p[i]
            if c == 34:  # '"' toggles; a doubled quote toggles twice
                quoted = not quoted
            elif c == 10:
                line += 1
                if not quoted:
                    end = i
                    if end > start and p[end - 1] == 13:
                        end -= 1
                    out.starts[k] = start
                    out.ends[k] = end
                    out.lines[k] = start_line
                    out.fields[k] = fields
                    k += 1
                    start = i + 1
                    start_line = line
                    fields = 1
                    out.consumed = i + 1
                    out.newlines = line - line0
            elif c == sep and not quoted:
                fields += 1
            i += 1
    if final and start < n:
        end = n
        if p[end - 1] == 13:
            end -= 1
        out.starts[k] = start
        out.ends[k] = end
        out.lines[k] = start_line
        out.fields[k] = fields
        k += 1
        out.consumed = n
        out.newlines = line - line0
    out.count = k


def scan(const uint8_t[::1] data, int64_t first_line, int separator=44, bint final=False):
    """Complete records of `data`: ``(starts, ends, lines, fields, consumed, newlines)``.

    `ends` exclude the line break; `consumed` bytes (through the last complete record) were used
    and contain `newlines` line breaks; with `final`, an unterminated last record counts too.
    """
    if not 0 <= separator < 256:
        raise ValueError(f"separator must be one byte, got {separator}")
    cdef int64_t n = data.shape[0]
    cdef const uint8_t *p = &data[0] if n else NULL
    cdef int64_t cap
    with nogil:
        cap = (_count_newlines(p, n) if n else 0) + 1
    starts = np.empty(cap, dtype=np.int64)
    ends = np.empty(cap, dtype=np.int64)
    lines = np.empty(cap, dtype=np.int64)
    fields = np.empty(cap, dtype=np.int64)
    cdef int64_t[::1] s = starts, e = ends, l = lines, f = fields
    cdef ScanOut out
    out.starts = &s[0]
    out.ends = &e[0]
    out.lines = &l[0]
    out.fields = &f[0]
    if n:
        with nogil:
            _scan(p, n, <uint8_t>separator, final, first_line, &out)
    else:
        out.count = 0
        out.consumed = 0
        out.newlines = 0
    k = out.count
    return starts[:k], ends[:k], lines[:k], fields[:k], out.consumed, out.newlines
