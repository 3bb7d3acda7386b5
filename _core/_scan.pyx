# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled text scanning for the readers: UTF-16LE text as UTF-8 (`utf16le_to_utf8`), CSV record
boundaries, start lines and field counts of a chunk (`scan`), the cells of chosen columns of
those records as Arrow string columns (`fields`), ISO 8601 timestamps (`iso_timestamps`) and
whether a column needs trimming (`edge_space`).

The pure-Python twins are Python's codec (analyzer._text), analyzer.readers._csv (numpy, and
polars' CSV parser) and analyzer.readers._compiled (polars); those modules pick these when
they are built. One call per chunk or
column; the loops run without the GIL (`scan` and `fields` sixteen bytes at a time with SSE2
between quotes and line breaks, eight or one elsewhere).
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF
from libc.stdint cimport uint8_t, int32_t, uint32_t, int64_t, uint64_t
from libc.string cimport memchr, memcmp, memcpy, memset

import numpy as np

from common cimport MF_POPCNT, buffer_table, view_bytes
from scan cimport (ScanOut, Cell, ONES, LOW7, plain_end, skip, ascii16, CELL_NULL, CELL_PLAIN, CELL_QUOTED,
                  CELL_ESCAPED)


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


cdef inline void _record(ScanOut *out, int64_t k, const uint8_t *p, int64_t start, int64_t end,
                         int64_t line, int64_t fields) noexcept nogil:
    # record k spans p[start:end], a CR before the line break left out
    if end > start and p[end - 1] == 13:
        end -= 1
    out.starts[k] = start
    out.ends[k] = end
    out.lines[k] = line
    out.fields[k] = fields


cdef void _scan(const uint8_t *p, int64_t n, uint8_t sep, bint final, int64_t line0,
                ScanOut *out) noexcept nogil:
    cdef int64_t i = 0, start = 0, line = line0, start_line = line0, fields = 1, k = 0
    cdef bint quoted = False
    cdef uint8_t c
    cdef int64_t stop
    cdef uint64_t word, seps
    cdef uint64_t quotes = ONES * 34, newlines = ONES * 10, separators = ONES * sep
    out.consumed = 0
    out.newlines = 0
    cdef long long counted
    while i < n:
        # Sixteen, then eight bytes at a time while they hold neither a quote nor a line break
        # (most of a record): only separators can be there, counted with a popcount when
        # outside quotes.
        counted = 0
        i = skip(p, i, n, sep, quoted, &counted)
        fields += counted
        while i + 8 <= n:
            memcpy(&word, p + i, 8)
            if _bytes_equal(word, quotes) | _bytes_equal(word, newlines):
                break
            if not quoted:
                seps = _bytes_equal(word, separators)
                if seps:
                    fields += MF_POPCNT(seps)
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
                    _record(out, k, p, start, i, start_line, fields)
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
        _record(out, k, p, start, n, start_line, fields)
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


# ---- the cells of chosen columns ---------------------------------------------------------------

cdef bint _split(const uint8_t *base, const int64_t *starts, const int64_t *ends, Py_ssize_t n,
                 const int32_t *slot, Py_ssize_t width, Py_ssize_t k, uint8_t sep,
                 Cell *cells, int64_t *sizes) noexcept nogil:
    """The cells of the kept columns (`slot[column]` >= 0: their place among the `k` kept) of the
    `n` records base[starts[r]:ends[r]] into cells[r * k + slot], and in `sizes` the bytes each
    kept column's cells of over 12 bytes take (unescaped): those not inline in their view.
    False when a record is not `width` well-formed cells."""
    cdef Py_ssize_t r, f
    cdef const uint8_t *p
    cdef const uint8_t *end
    cdef const uint8_t *q
    cdef const uint8_t *close
    cdef int32_t j
    cdef int64_t doubled
    cdef Cell *cell
    for r in range(n):
        p = base + starts[r]
        end = base + ends[r]
        f = 0
        while True:
            if f >= width:
                return False
            j = slot[f]
            if p < end and p[0] == 34:
                # quoted: to the quote not followed by another; a doubled quote is one quote
                q = p + 1
                doubled = 0
                while True:
                    close = <const uint8_t *>memchr(q, 34, end - q)
                    if close == NULL:
                        return False
                    if close + 1 < end and close[1] == 34:
                        doubled += 1
                        q = close + 2
                        continue
                    break
                if close + 1 < end and close[1] != sep:  # text after the closing quote
                    return False
                if j >= 0:
                    cell = &cells[r * k + j]
                    cell.pos = (p + 1) - base
                    cell.length = <int32_t>(close - p - 1)
                    cell.kind = CELL_ESCAPED if doubled else CELL_QUOTED
                    if cell.length - doubled > 12:
                        sizes[j] += cell.length - doubled
                p = close + 1
            else:
                # an unquoted cell ends at a separator; a quote or a line break in it (which
                # polars and the scanner may read differently) sends the batch to polars
                q = plain_end(p, end, sep)
                if q < end and q[0] != sep:
                    return False
                if j >= 0:
                    cell = &cells[r * k + j]
                    cell.pos = p - base
                    cell.length = <int32_t>(q - p)
                    cell.kind = CELL_PLAIN if q > p else CELL_NULL
                    if q - p > 12:
                        sizes[j] += q - p
                p = q
            f += 1
            if p >= end:
                break
            p += 1  # the separator: another cell follows, empty if the record ends here
        if f != width:
            return False
    return True


cdef inline bint _maybe_space(uint8_t c) noexcept nogil:
    # ASCII whitespace, or any byte of a multi-byte character (which may be Unicode whitespace,
    # such as U+00A0): a conservative "may need trimming"
    return c == 32 or (9 <= c <= 13) or c >= 128


cdef inline void _view(uint8_t *view, const uint8_t *src, int32_t length, int32_t index,
                       int32_t offset) noexcept nogil:
    # an Arrow string view: the length, then up to 12 bytes inline (zero-padded), or the first
    # four bytes and where all of them are (buffer index, offset)
    memset(view, 0, 16)
    memcpy(view, &length, 4)
    if length <= 12:
        memcpy(view + 4, src, length)
    else:
        memcpy(view + 4, src, 4)
        memcpy(view + 8, &index, 4)
        memcpy(view + 12, &offset, 4)


cdef void _columns(const uint8_t *base, const Cell *cells, Py_ssize_t n, Py_ssize_t k,
                   uint8_t **views, uint8_t **data, uint8_t **validity, int64_t *nulls) noexcept nogil:
    # the kept columns as Arrow string view arrays: 16-byte views, one data buffer for the cells
    # of over 12 bytes, a validity bitmap (zeroed by the caller) and their nulls each; and, as
    # `edge_space` would tell from the finished column, whether a value may start or end with
    # whitespace and how many values are empty strings (normalization then need not scan the
    # column again). Record by record: a record's cells are read while its bytes are in the cache.
    cdef Py_ssize_t r, j, i
    cdef int64_t *pos = nulls + k  # the caller's room: k running positions, edges, empties
    cdef int64_t *edges = nulls + 2 * k
    cdef int64_t *empties = nulls + 3 * k
    cdef const Cell *cell
    cdef const uint8_t *src
    cdef uint8_t *dst
    cdef uint8_t *view
    cdef uint8_t small[12]
    cdef int32_t length
    for j in range(k):
        pos[j] = 0
        nulls[j] = 0
        edges[j] = 0
        empties[j] = 0
    for r in range(n):
        for j in range(k):
            cell = &cells[r * k + j]
            view = views[j] + 16 * r
            if cell.kind == CELL_NULL:
                memset(view, 0, 16)
                nulls[j] += 1
                continue
            validity[j][r >> 3] |= 1 << (r & 7)
            src = base + cell.pos
            length = cell.length
            if cell.kind == CELL_ESCAPED:
                # unescaped where it goes: the data buffer, or a scratch copy when it turns out
                # short enough to be inline (sizes counted it so: the same test decides)
                dst = data[j] + pos[j]
                i = 0
                length = 0
                while i < cell.length:
                    dst[length] = src[i]
                    length += 1
                    i += 2 if src[i] == 34 else 1  # the second quote of a pair is not copied
                # never empty: a pair of quotes leaves one
                if not edges[j] and (_maybe_space(dst[0]) or _maybe_space(dst[length - 1])):
                    edges[j] = 1
                if length <= 12:
                    memcpy(small, dst, length)
                    _view(view, small, length, 0, 0)
                else:
                    _view(view, dst, length, 0, <int32_t>pos[j])
                    pos[j] += length
            else:
                if length == 0:
                    empties[j] += 1
                elif not edges[j] and (_maybe_space(src[0]) or _maybe_space(src[length - 1])):
                    edges[j] = 1
                if length <= 12:
                    _view(view, src, length, 0, 0)
                else:
                    memcpy(data[j] + pos[j], src, length)
                    _view(view, src, length, 0, <int32_t>pos[j])
                    pos[j] += length


def fields(const uint8_t[::1] data, const int64_t[::1] starts, const int64_t[::1] ends,
           const int64_t[::1] keep, Py_ssize_t width, int separator=44):
    """The cells of columns `keep` (indices, increasing) of the CSV records data[starts[i]:ends[i]]
    (each without its line break), as one ``(views, values, validity, nulls, edge, empty)`` per
    kept column: the buffers of an Arrow string view array, `values` its one data buffer (the
    cells of over 12 bytes; shorter ones are inline in their view), `validity` a bitmap (None
    when `nulls` is 0). Polars takes these as they are: its String columns are string views.
    ``edge`` and ``empty`` are what `edge_space` would say of the column (whether a value may
    start or end with whitespace; how many values are empty strings), learnt on the way.
    `data` must be valid UTF-8 (cells are cut at ASCII bytes, so each is too): it is not
    checked here.

    Read as polars' ``read_csv(quote_char='"', empty_string_is_null=True)`` reads them: an empty
    unquoted cell is null, ``""`` an empty string, a doubled quote inside quotes one quote. None
    when a record is not `width` such cells (a quote or line break in an unquoted cell, text
    after a closing quote, an unclosed quote, another count), or a record or a column's values
    reach 2 GiB (views address 32 bits): the caller parses those records another way. One walk
    of the records, without the GIL.
    """
    if not 0 <= separator < 256 or separator in (10, 13, 34):
        raise ValueError(f"separator must be one byte other than a quote or a line break, got {separator}")
    cdef Py_ssize_t n = starts.shape[0], k = keep.shape[0], size = data.shape[0], r, j
    if ends.shape[0] != n:
        raise ValueError(f"{n} starts but {ends.shape[0]} ends")
    if width < 1:
        raise ValueError(f"width must be at least 1, got {width}")
    slots = np.full(width, -1, dtype=np.int32)
    cdef int32_t[::1] slot = slots
    for j in range(k):
        if not 0 <= keep[j] < width or (j and keep[j] <= keep[j - 1]):
            raise ValueError(f"keep must be increasing column indices below {width}, got {list(keep)}")
        slot[keep[j]] = <int32_t>j
    for r in range(n):
        if not 0 <= starts[r] <= ends[r] <= size:
            raise ValueError(f"record {r} spans [{starts[r]}, {ends[r]}), outside the {size} bytes of data")
        if ends[r] - starts[r] > 0x7FFFFFFF:  # a cell's length is 32 bits
            return None
    cells_array = np.empty(max(n * k, 1) * sizeof(Cell), dtype=np.uint8)
    sizes_array = np.zeros(max(k, 1), dtype=np.int64)
    cdef uint8_t[::1] cell_bytes = cells_array
    cdef Cell *cells = <Cell *>&cell_bytes[0]
    cdef int64_t[::1] sizes = sizes_array
    cdef const uint8_t *base = &data[0] if size else <const uint8_t *>b""
    cdef const int64_t *s = &starts[0] if n else NULL
    cdef const int64_t *e = &ends[0] if n else NULL
    cdef bint ok
    with nogil:
        ok = _split(base, s, e, n, &slot[0], width, k, <uint8_t>separator, cells, &sizes[0])
    if not ok or (k and sizes_array.max() > 0x7FFFFFFF):
        return None
    out = []
    cdef uint8_t **views = <uint8_t **>PyMem_Malloc(max(k, 1) * sizeof(uint8_t *))
    cdef uint8_t **values = <uint8_t **>PyMem_Malloc(max(k, 1) * sizeof(uint8_t *))
    cdef uint8_t **validity = <uint8_t **>PyMem_Malloc(max(k, 1) * sizeof(uint8_t *))
    counts_array = np.zeros(4 * max(k, 1), dtype=np.int64)  # nulls, positions, edges, empties
    cdef int64_t[::1] counts = counts_array
    cdef uint8_t[::1] w, d, b
    try:
        if views == NULL or values == NULL or validity == NULL:
            raise MemoryError()
        for j in range(k):
            # 12 spare bytes: a short cell with doubled quotes is unescaped past the end of the
            # long ones before it goes inline (and an empty buffer still has an address)
            column = (np.empty(max(16 * n, 1), dtype=np.uint8), np.empty(sizes[j] + 12, dtype=np.uint8),
                      np.zeros(max((n + 7) // 8, 1), dtype=np.uint8))
            w, d, b = column
            views[j], values[j], validity[j] = &w[0], &d[0], &b[0]
            out.append(column)
        with nogil:
            _columns(base, cells, n, k, views, values, validity, &counts[0])
    finally:
        PyMem_Free(views)
        PyMem_Free(values)
        PyMem_Free(validity)
    out = [(w_[:16 * n], d_[:sizes[j]], b_ if counts[j] else None, int(counts[j]), bool(counts[2 * k + j]),
            int(counts[3 * k + j]))
           for j, (w_, d_, b_) in enumerate(out)]
    return out


# ---- UTF-16LE to UTF-8 ---------------------------------------------------------------------------

cdef extern from "Python.h":
    # a bytes object of `size` bytes to fill, and its shrinking in place (reference count 1)
    PyObject *_new_bytes "PyBytes_FromStringAndSize"(const char *data, Py_ssize_t size) except NULL
    char *_bytes_data "PyBytes_AS_STRING"(PyObject *bytes)
    int _resize_bytes "_PyBytes_Resize"(PyObject **bytes, Py_ssize_t size) except -1


cdef Py_ssize_t _utf16le(const uint8_t *p, Py_ssize_t units, uint8_t *out, Py_ssize_t *used,
                         bint *invalid) noexcept nogil:
    # the longest prefix of `units` UTF-16LE code units that is whole characters, as UTF-8 in
    # `out`; `used` units; `invalid` when it stopped at a surrogate without its pair (not at an
    # incomplete one at the end, which the next block completes)
    cdef Py_ssize_t i = 0, o = 0, ascii
    cdef uint32_t u, low, c
    invalid[0] = False
    while i < units:
        ascii = ascii16(p, i, units, out + o)  # most text is ASCII: eight units a step
        i += ascii
        o += ascii
        if i >= units:
            break
        u = p[2 * i] | (<uint32_t>p[2 * i + 1] << 8)
        if u < 0x80:
            out[o] = <uint8_t>u
            o += 1
        elif u < 0x800:
            out[o] = <uint8_t>(0xC0 | (u >> 6))
            out[o + 1] = <uint8_t>(0x80 | (u & 0x3F))
            o += 2
        elif u < 0xD800 or u > 0xDFFF:
            out[o] = <uint8_t>(0xE0 | (u >> 12))
            out[o + 1] = <uint8_t>(0x80 | ((u >> 6) & 0x3F))
            out[o + 2] = <uint8_t>(0x80 | (u & 0x3F))
            o += 3
        elif u <= 0xDBFF:  # a high surrogate: its low one must follow
            if i + 1 >= units:
                break  # at the end: the next block has it
            low = p[2 * i + 2] | (<uint32_t>p[2 * i + 3] << 8)
            if low < 0xDC00 or low > 0xDFFF:
                invalid[0] = True
                break
            c = 0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00)
            out[o] = <uint8_t>(0xF0 | (c >> 18))
            out[o + 1] = <uint8_t>(0x80 | ((c >> 12) & 0x3F))
            out[o + 2] = <uint8_t>(0x80 | ((c >> 6) & 0x3F))
            out[o + 3] = <uint8_t>(0x80 | (c & 0x3F))
            o += 4
            i += 1
        else:  # a low surrogate alone
            invalid[0] = True
            break
        i += 1
    used[0] = i
    return o


def utf16le_to_utf8(const uint8_t[::1] data):
    """UTF-8 bytes of the longest prefix of `data` (UTF-16LE) that is whole characters:
    ``(utf8, used, invalid)``, `used` the bytes it took. It stops before an odd last byte or a
    high surrogate at the end (incomplete: the caller prepends them to the next block), or, with
    `invalid` True, at a surrogate without its pair, which the caller decodes another way (with
    replacement characters). Eight ASCII characters a step with SSE2, without the GIL."""
    cdef Py_ssize_t n = data.shape[0], units = data.shape[0] // 2, size, used = 0
    cdef bint invalid = False
    cdef const uint8_t *p = &data[0] if n else <const uint8_t *>b""
    # at most 3 bytes a unit (a pair of units is 4 bytes); 8 spare for the last ASCII step
    cdef PyObject *out = _new_bytes(NULL, 3 * units + 8)
    cdef uint8_t *o = <uint8_t *>_bytes_data(out)
    with nogil:
        size = _utf16le(p, units, o, &used, &invalid)
    try:
        _resize_bytes(&out, size)
        result = <object>out
    finally:
        Py_DECREF(<object>out) if out != NULL else None
    return result, 2 * used, invalid


# ---- ISO 8601 timestamps ---------------------------------------------------------------------

cdef inline int _digits(const uint8_t *p, int n, int64_t *value) noexcept nogil:
    cdef int i
    cdef int64_t v = 0
    for i in range(n):
        if p[i] < 48 or p[i] > 57:
            return 0
        v = v * 10 + (p[i] - 48)
    value[0] = v
    return 1


cdef inline int64_t _days_from_civil(int64_t y, int64_t m, int64_t d) noexcept nogil:
    # days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm), y >= 1
    y -= m <= 2
    cdef int64_t era = y // 400
    cdef int64_t yoe = y - era * 400
    cdef int64_t doy = (153 * (m - 3 if m > 2 else m + 9) + 2) // 5 + d - 1
    cdef int64_t doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


cdef int _civil(int64_t year, int64_t month, int64_t day, int64_t hour, int64_t minute, int64_t second,
                int64_t frac, int64_t *micros) noexcept nogil:
    # a real date and time of day (no 60th second) as microseconds since the epoch; 0 otherwise
    cdef int64_t month_days
    if year < 1 or month < 1 or month > 12 or day < 1 or hour > 23 or minute > 59 or second > 59:
        return 0
    if month == 2:
        month_days = 29 if (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)) else 28
    elif month == 4 or month == 6 or month == 9 or month == 11:
        month_days = 30
    else:
        month_days = 31
    if day > month_days:
        return 0
    micros[0] = (_days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second) * 1000000 + frac
    return 1


cdef int _iso(const uint8_t *p, int64_t n, int64_t *micros) noexcept nogil:
    """``YYYY-MM-DDTHH:MM:SS[.f{1,9}][Z]`` as microseconds since the epoch (fraction truncated);
    0 for anything else, including impossible dates and a 60th second."""
    cdef int64_t year, month, day, hour, minute, second, frac = 0, k, digits = 0
    if n > 0 and p[n - 1] == 90:  # 'Z'
        n -= 1
    if n < 19 or p[4] != 45 or p[7] != 45 or p[10] != 84 or p[13] != 58 or p[16] != 58:
        return 0
    if not (_digits(p, 4, &year) and _digits(p + 5, 2, &month) and _digits(p + 8, 2, &day)
            and _digits(p + 11, 2, &hour) and _digits(p + 14, 2, &minute) and _digits(p + 17, 2, &second)):
        return 0
    if n > 19:
        if p[19] != 46 or n == 20 or n > 29:  # '.', then 1 to 9 digits
            return 0
        for k in range(20, n):
            if p[k] < 48 or p[k] > 57:
                return 0
            if digits < 6:
                frac = frac * 10 + (p[k] - 48)
                digits += 1
        while digits < 6:
            frac *= 10
            digits += 1
    return _civil(year, month, day, hour, minute, second, frac, micros)


def iso_timestamps(const int64_t[::1] offsets, const uint8_t[::1] data):
    """Parse each string of an Arrow large_string array (its `offsets` and `data` buffers) of the
    form ``YYYY-MM-DDTHH:MM:SS[.f][Z]``: ``(micros, ok)``, microseconds since the epoch (UTC)
    and whether the string had that form and a real date. `ok` is False for any other text,
    which the caller parses the general way."""
    return _timestamps(offsets, data, 0)


cdef object _timestamps(const int64_t[::1] offsets, const uint8_t[::1] data, int form):
    # form 0: ISO 8601 (`_iso`); 1: culture, month first; 2: culture, day first (`_culture`)
    cdef Py_ssize_t n = offsets.shape[0] - 1 if offsets.shape[0] else 0
    micros = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=np.bool_)
    cdef int64_t[::1] out = micros
    cdef uint8_t[::1] good = ok.view(np.uint8)
    cdef Py_ssize_t i
    cdef int64_t lo, hi
    cdef int64_t size = data.shape[0]
    cdef const uint8_t *base = &data[0] if size else NULL
    if n == 0:
        return micros, ok
    for i in range(n + 1):
        if offsets[i] < 0 or offsets[i] > size or (i and offsets[i] < offsets[i - 1]):
            raise ValueError(f"offsets[{i}] = {offsets[i]} is outside the data ({size} bytes) or decreasing")
    with nogil:
        for i in range(n):
            lo = offsets[i]
            hi = offsets[i + 1]
            if hi > lo:
                good[i] = (_iso(base + lo, hi - lo, &out[i]) if form == 0
                           else _culture(base + lo, hi - lo, form == 2, &out[i]))
    return micros, ok


# ---- culture timestamps (M/D/YYYY h:mm:ss AM, DD.MM.YYYY HH:MM...) --------------------------------

cdef inline int _field(const uint8_t *p, int64_t n, int64_t *pos, int lo, int hi, int64_t *value) noexcept nogil:
    # `lo` to `hi` digits at p[pos], and no digit right after them
    cdef int count = 0
    cdef int64_t v = 0
    while pos[0] < n and count < hi and 48 <= p[pos[0]] <= 57:
        v = v * 10 + (p[pos[0]] - 48)
        pos[0] += 1
        count += 1
    if count < lo or (pos[0] < n and 48 <= p[pos[0]] <= 57):
        return 0
    value[0] = v
    return 1


cdef int _culture(const uint8_t *p, int64_t n, bint day_first, int64_t *micros) noexcept nogil:
    """One of the culture forms `readers._dates` tries, as microseconds since the epoch: month
    first, ``M/D/YYYY h:mm[:ss]`` with AM/PM or on a 24-hour clock; day first, ``D/M/YYYY`` or
    ``D.M.YYYY`` with ``HH:MM[:SS]``, ``D-M-YYYY HH:MM:SS``, or ``D/M/YYYY h:mm:ss`` with AM/PM.
    0 for any other text, which polars' strptime then parses, so only the plain shapes are read
    here: 1-2 digit day, month and hour, 2-digit minutes and seconds, a 4-digit year, single
    spaces."""
    cdef int64_t pos = 0, a, b, year, hour, minute, second = 0, day, month
    cdef uint8_t sep, c, m
    cdef bint seconds = 0, ampm = 0, pm = 0
    if not _field(p, n, &pos, 1, 2, &a) or pos >= n:
        return 0
    sep = p[pos]
    if sep != 47 and sep != 46 and sep != 45:  # '/', '.', '-'
        return 0
    pos += 1
    if not _field(p, n, &pos, 1, 2, &b) or pos >= n or p[pos] != sep:
        return 0
    pos += 1
    if not _field(p, n, &pos, 4, 4, &year) or pos >= n or p[pos] != 32:
        return 0
    pos += 1
    if not _field(p, n, &pos, 1, 2, &hour) or pos >= n or p[pos] != 58:
        return 0
    pos += 1
    if not _field(p, n, &pos, 2, 2, &minute):
        return 0
    if pos < n and p[pos] == 58:
        pos += 1
        if not _field(p, n, &pos, 2, 2, &second):
            return 0
        seconds = 1
    if pos < n:
        if n - pos != 3 or p[pos] != 32:
            return 0
        c = p[pos + 1] | 0x20
        m = p[pos + 2] | 0x20
        if m != 109 or (c != 97 and c != 112):  # "am" / "pm", any case
            return 0
        ampm = 1
        pm = c == 112
    if day_first:  # the dmy forms: AM/PM only as D/M/YYYY with seconds, '-' only with seconds
        day, month = a, b
        if (ampm and (sep != 47 or not seconds)) or (sep == 45 and not seconds):
            return 0
    else:
        month, day = a, b
        if sep != 47:
            return 0
    if ampm:
        if hour < 1 or hour > 12:
            return 0
        hour = hour % 12 + (12 if pm else 0)
    return _civil(year, month, day, hour, minute, second, 0, micros)


def culture_timestamps(const int64_t[::1] offsets, const uint8_t[::1] data, bint day_first):
    """`iso_timestamps` for the culture forms of `_culture` (month first, or `day_first`):
    ``(micros, ok)``; `ok` is False for every other text."""
    return _timestamps(offsets, data, 2 if day_first else 1)


# ---- the keys of NDJSON objects ---------------------------------------------------------------

cdef struct _Names:
    const uint8_t **starts
    Py_ssize_t *sizes
    Py_ssize_t count


cdef _Names _names(list names) except *:
    # pointers into the bytes of `names`, which the caller keeps alive
    cdef _Names table
    table.count = len(names)
    table.starts = <const uint8_t **>PyMem_Malloc((table.count + 1) * sizeof(uint8_t *))
    table.sizes = <Py_ssize_t *>PyMem_Malloc((table.count + 1) * sizeof(Py_ssize_t))
    if table.starts == NULL or table.sizes == NULL:
        PyMem_Free(table.starts)
        PyMem_Free(table.sizes)
        raise MemoryError()
    for k in range(table.count):
        table.starts[k] = <const uint8_t *><char *>names[k]
        table.sizes[k] = len(names[k])
    return table


cdef inline bint _named(_Names *table, const uint8_t *name, Py_ssize_t size) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(table.count):
        if table.sizes[k] == size and memcmp(table.starts[k], name, size) == 0:
            return 1
    return 0


def json_keys_within(const uint8_t[::1] data, list known, bytes inner=b"", list inner_known=None):
    """Whether every member name of the top-level objects in `data` (NDJSON: one value a line)
    is one of `known` (bytes, as written), and, when the member `inner` holds an object, every
    name of that object one of `inner_known` (Defender's ``properties``). False as well for a
    name written with an escape, which is not compared. Polars, given a schema inferred from the
    first rows, drops the members it does not name without a word: this tells when that schema
    covers them all. Only meaningful for valid JSON (polars refuses the rest)."""
    cdef Py_ssize_t n = data.shape[0], i = 0, j
    cdef const uint8_t *p = &data[0] if n else NULL
    cdef int depth = 0
    cdef bint in_string = 0, want_name = 0, covered = 1, inner_next = 0, inner_open = 0
    cdef uint8_t c
    outer_names = [bytes(name) for name in known]
    inner_names = [bytes(name) for name in inner_known or []]
    cdef const uint8_t *inner_name = inner
    cdef Py_ssize_t inner_size = len(inner)
    cdef _Names outer = _names(outer_names)
    cdef _Names nested
    try:
        nested = _names(inner_names)
    except MemoryError:
        PyMem_Free(outer.starts)
        PyMem_Free(outer.sizes)
        raise
    try:
        with nogil:
            while i < n:
                c = p[i]
                if in_string:
                    if c == 92:  # a backslash: the next byte is escaped
                        i += 2
                        continue
                    if c == 34:
                        in_string = 0
                elif c == 34:
                    if want_name and (depth == 1 or (depth == 2 and inner_open)):
                        j = i + 1
                        while j < n and p[j] != 34 and p[j] != 92:
                            j += 1
                        if j >= n or p[j] == 92 or not _named(&outer if depth == 1 else &nested, p + i + 1, j - i - 1):
                            covered = 0
                            break
                        if depth == 1:
                            inner_next = (inner_size > 0 and j - i - 1 == inner_size
                                          and memcmp(inner_name, p + i + 1, inner_size) == 0)
                        want_name = 0
                        i = j
                    else:
                        in_string = 1
                elif c == 123 or c == 91:  # '{', '['
                    depth += 1
                    if depth == 2:  # the object of `inner`: open until its depth is left
                        inner_open = c == 123 and inner_next
                    inner_next = 0
                    want_name = c == 123 and (depth == 1 or (depth == 2 and inner_open))
                elif c == 125 or c == 93:  # '}', ']'
                    depth -= 1
                    if depth < 2:
                        inner_open = 0
                elif c == 44 and (depth == 1 or (depth == 2 and inner_open)):  # ',' between members
                    want_name = 1
                    inner_next = 0
                i += 1
    finally:
        PyMem_Free(outer.starts)
        PyMem_Free(outer.sizes)
        PyMem_Free(nested.starts)
        PyMem_Free(nested.sizes)
    return bool(covered)


# ---- whitespace at the ends of strings ---------------------------------------------------------

def edge_space(const uint8_t[::1] views, list buffers):
    """For an Arrow string_view array (its 16-byte `views` and its variadic data `buffers`):
    ``(edge, empty)``, whether any string may start or end with whitespace (False: trimming
    would change none of them) and how many slots are empty (null slots are empty too: the
    caller subtracts them). Strings of up to 12 bytes are inline in their view; longer ones
    keep their first 4 bytes there and point into a buffer."""
    cdef Py_ssize_t n = views.shape[0] // 16
    cdef Py_ssize_t nbuf = len(buffers), i
    cdef int32_t length, index, offset
    cdef int64_t empty = 0, room
    cdef bint edge = False
    cdef const uint8_t *s
    cdef const uint8_t **data = NULL
    cdef int64_t *sizes = NULL
    if views.shape[0] % 16:
        raise ValueError(f"views of {views.shape[0]} bytes: not a whole number of 16-byte views")
    keep = [memoryview(b).cast("B") for b in buffers]  # holds the buffers while C reads them
    try:
        buffer_table(keep, &data, &sizes)
        # validate every view first, with the GIL (errors need it)
        for i in range(n):
            if view_bytes(&views[16 * i], data, sizes, nbuf, &length, &room) == NULL:
                if length < 0:
                    raise ValueError(f"view {i} has a negative length ({length})")
                memcpy(&index, &views[16 * i + 8], 4)
                memcpy(&offset, &views[16 * i + 12], 4)
                raise ValueError(f"view {i} points outside its buffer (buffer {index}, offset {offset}, "
                                 f"length {length})")
        with nogil:
            for i in range(n):
                s = view_bytes(&views[16 * i], data, sizes, nbuf, &length, &room)
                if length == 0:
                    empty += 1
                elif not edge:
                    edge = _maybe_space(s[0]) or _maybe_space(s[length - 1])
    finally:
        PyMem_Free(data)
        PyMem_Free(sizes)
    return edge, empty
