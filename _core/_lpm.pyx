# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled longest-prefix-match core of analyzer.matching (private; use analyzer.matching).

Text parsing mirrors Python's ``ipaddress`` rules exactly (the pure-Python twin in
analyzer/_lpm_py.py uses ``ipaddress`` itself, and the tests hold both to the same answers).
Every per-row loop runs without the GIL; arguments are validated before it is released, and
every Arrow offset is bounds-checked inside the loop so that a malformed array raises instead
of reading outside its buffers.
"""

from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from cpython.mem cimport PyMem_Free
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy, memchr

from common cimport MF_POPCNT, buffer_table, view_bytes
from lpm cimport (
    ADDR_EMPTY, ADDR_INVALID, ADDR_V4, ADDR_V6, Node, Trie,
    LPM_FAST_READ, LPM_PREFETCH, lpm_fast_v4, lpm_fast_v6, lpm_init_tables,
)

import numpy as np

from analyzer.errors import (
    E_ADDRESS, E_EMPTY, E_LENGTH, E_RANGE_FAMILY, E_RANGE_ORDER, prefix_error, value_error,
)

ctypedef fused offset_t:
    int32_t
    int64_t

cdef uint64_t ONES = ~(<uint64_t>0)
cdef uint32_t NODE_FLAG = 0x80000000u
# Rows parsed before their lookups run, so that the lookups' cache misses overlap.
cdef enum:
    LPM_BLOCK = 32
cdef int32_t MAX_VALUE = 2147483646
# Top-level strides: 18 bits for IPv4 puts /24 routes one node below the direct table
# (18 + 6 = 24). That also holds for small connector tables: a 16-bit direct table that stays in
# L2 measured slower, as /24-/28 ranges then need two node levels. IPv6 tables are sparse at the
# top: 16 bits.
cdef unsigned DIRECT_BITS_V4 = 18
cdef unsigned DIRECT_BITS_V6 = 16

# --------------------------------------------------------------------------------------------
# Address text parsing (mirrors ipaddress.IPv4Address / IPv6Address)
# --------------------------------------------------------------------------------------------

cdef inline bint _is_ws(uint8_t c) noexcept nogil:
    return c == 32 or (9 <= c <= 13)


cdef bint _parse_v4(const uint8_t *s, Py_ssize_t n, uint32_t *out) noexcept nogil:
    """Strict dotted quad: four parts of 1-3 digits, each <= 255, no leading zeros."""
    cdef uint32_t acc = 0, part = 0
    cdef int ndig = 0, ndots = 0
    cdef Py_ssize_t k
    cdef uint8_t c
    for k in range(n):
        c = s[k]
        if c == 46:  # '.'
            if ndig == 0 or ndots == 3:
                return False
            acc = (acc << 8) | part
            ndots += 1
            part = 0
            ndig = 0
        elif 48 <= c <= 57:
            if ndig == 1 and part == 0:
                return False  # leading zero
            part = part * 10 + (c - 48)
            if part > 255:
                return False
            ndig += 1
        else:
            return False
    if ndig == 0 or ndots != 3:
        return False
    out[0] = (acc << 8) | part
    return True


cdef uint8_t HEX[256]


cdef void _init_hex() noexcept:
    cdef int c
    for c in range(256):
        HEX[c] = 0xFF
    for c in range(10):
        HEX[48 + c] = c
    for c in range(6):
        HEX[97 + c] = 10 + c
        HEX[65 + c] = 10 + c


_init_hex()
lpm_init_tables()


cdef bint _parse_v6(const uint8_t *s, Py_ssize_t n, uint64_t *hi, uint64_t *lo) noexcept nogil:
    """RFC 4291 text, accepting exactly what ipaddress.IPv6Address accepts.

    One pass splits the text at ':' and converts each part (hex digits via a table, so random
    digits cost no branch mispredictions); a '.' hands the rest of the text to the IPv4 parser
    as the embedded-IPv4 tail. The '::' rules then follow ipaddress._ip_int_from_string.
    """
    cdef uint32_t vals[10]
    cdef bint empty[10]
    cdef uint32_t hextets[8]
    cdef int nparts = 0, i, skip = -1, parts_hi, parts_lo, skipped, h, ndig = 0
    cdef Py_ssize_t k, part_start = 0
    cdef uint32_t v4, acc = 0
    cdef uint8_t c, x
    cdef bint has_dot = False
    for k in range(n):
        c = s[k]
        if c == 58:  # ':'
            if nparts == 8 or ndig > 4:
                return False  # a tenth part, or a hextet of more than four digits
            vals[nparts] = acc
            empty[nparts] = ndig == 0
            nparts += 1
            acc = 0
            ndig = 0
            part_start = k + 1
        else:
            x = HEX[c]
            if x == 0xFF:
                if c != 46:
                    return False
                has_dot = True  # an embedded IPv4 tail: it must be the last part
                break
            acc = (acc << 4) | x
            ndig += 1
    if has_dot:
        if memchr(s + part_start, 58, n - part_start) != NULL:
            return False
        if nparts + 1 < 3 or not _parse_v4(s + part_start, n - part_start, &v4):
            return False
        vals[nparts] = v4 >> 16
        empty[nparts] = False
        vals[nparts + 1] = v4 & 0xFFFF
        empty[nparts + 1] = False
        nparts += 2
        if nparts > 9:
            return False
    else:
        if ndig > 4:
            return False
        vals[nparts] = acc
        empty[nparts] = ndig == 0
        nparts += 1
        if nparts < 3:
            return False
    for i in range(1, nparts - 1):
        if empty[i]:
            if skip >= 0:
                return False  # at most one '::'
            skip = i
    if skip >= 0:
        parts_hi = skip
        parts_lo = nparts - skip - 1
        if empty[0]:
            parts_hi -= 1
            if parts_hi:
                return False  # a leading ':' must be '::'
        if empty[nparts - 1]:
            parts_lo -= 1
            if parts_lo:
                return False  # a trailing ':' must be '::'
        skipped = 8 - (parts_hi + parts_lo)
        if skipped < 1:
            return False
        for h in range(8):
            hextets[h] = 0
        for h in range(parts_hi):
            hextets[h] = vals[h]
        for h in range(parts_lo):
            hextets[8 - parts_lo + h] = vals[nparts - parts_lo + h]
    else:
        if nparts != 8 or empty[0] or empty[7]:
            return False
        for h in range(8):
            hextets[h] = vals[h]
    hi[0] = ((<uint64_t>hextets[0] << 48) | (<uint64_t>hextets[1] << 32)
             | (<uint64_t>hextets[2] << 16) | hextets[3])
    lo[0] = ((<uint64_t>hextets[4] << 48) | (<uint64_t>hextets[5] << 32)
             | (<uint64_t>hextets[6] << 16) | hextets[7])
    return True


cdef int _parse_address(const uint8_t *s, Py_ssize_t n, uint32_t *v4, uint64_t *hi, uint64_t *lo,
                        bint map4) noexcept nogil:
    """Parse one address as found in logs; returns an ADDR_* code.

    Tolerated around the address: ASCII whitespace, one pair of square brackets, a non-empty zone
    index after '%'. With `map4`, IPv4-mapped IPv6 (::ffff:a.b.c.d) is returned as IPv4.
    """
    cdef Py_ssize_t k
    cdef const uint8_t *zone
    while n > 0 and _is_ws(s[0]):
        s += 1
        n -= 1
    while n > 0 and _is_ws(s[n - 1]):
        n -= 1
    if n == 0:
        return ADDR_EMPTY
    if s[0] == 91:  # '['
        if n < 2 or s[n - 1] != 93:
            return ADDR_INVALID
        s += 1
        n -= 2
    zone = <const uint8_t *> memchr(s, 37, n)
    if zone != NULL:  # '%': a zone index, which must be non-empty and hold no second '%'
        k = zone - s
        if k == n - 1 or memchr(zone + 1, 37, n - k - 1) != NULL:
            return ADDR_INVALID
        n = k
    if n == 0:
        return ADDR_INVALID
    if memchr(s, 58, n) == NULL:
        return ADDR_V4 if _parse_v4(s, n, v4) else ADDR_INVALID
    if not _parse_v6(s, n, hi, lo):
        return ADDR_INVALID
    if map4 and hi[0] == 0 and (lo[0] >> 32) == 0xFFFF:
        v4[0] = <uint32_t>lo[0]
        return ADDR_V4
    return ADDR_V6


# --------------------------------------------------------------------------------------------
# Trie construction
# --------------------------------------------------------------------------------------------

cdef inline unsigned _slot6(uint64_t hi, uint64_t lo, unsigned d) noexcept nogil:
    """Bits d..d+5 of the 128-bit key hi:lo (zero past bit 127)."""
    if d <= 58:
        return <unsigned>((hi >> (58 - d)) & 63)
    if d < 64:
        return <unsigned>(((hi << (d - 58)) | (lo >> (122 - d))) & 63)
    if d <= 122:
        return <unsigned>((lo >> (122 - d)) & 63)
    return <unsigned>((lo << (d - 122)) & 63)


cdef int _reserve_nodes(Trie *t, size_t extra) noexcept nogil:
    cdef size_t need = t.n_nodes + extra, cap
    cdef Node *p
    if need <= t.cap_nodes:
        return 0
    if need >= NODE_FLAG:
        return -1
    cap = t.cap_nodes * 2 if t.cap_nodes else 256
    while cap < need:
        cap *= 2
    p = <Node *> realloc(t.nodes, cap * sizeof(Node))
    if p == NULL:
        return -1
    t.nodes = p
    t.cap_nodes = cap
    return 0


cdef int _reserve_leaves(Trie *t, size_t extra) noexcept nogil:
    cdef size_t need = t.n_leaves + extra, cap
    cdef int32_t *p
    if need <= t.cap_leaves:
        return 0
    cap = t.cap_leaves * 2 if t.cap_leaves else 1024
    while cap < need:
        cap *= 2
    p = <int32_t *> realloc(t.leaves, cap * sizeof(int32_t))
    if p == NULL:
        return -1
    t.leaves = p
    t.cap_leaves = cap
    return 0


cdef int _build_node(Trie *t, size_t node_idx, unsigned d, const uint64_t *hi, const uint64_t *lo,
                     const uint8_t *plen, const int32_t *val, size_t i0, size_t i1,
                     int32_t inherited) noexcept nogil:
    """Fill node `node_idx` for key bits d..d+5 from the prefixes [i0, i1).

    The prefixes are sorted by (address, length), so a prefix always comes before the prefixes
    nested in it: filling slots in that order leaves the longest match in each slot, and the
    prefixes longer than d+6 that share a slot are one contiguous run, which becomes one child.
    """
    cdef int32_t sval[64]
    cdef size_t run_start[64]
    cdef size_t run_end[64]
    cdef unsigned run_slot[64]
    cdef int nruns = 0, r
    cdef unsigned s, k, cnt, end = d + 6
    cdef size_t i = i0, j, base0, base1
    cdef uint64_t vector = 0, leafvec = 0
    cdef bint have_prev = False
    cdef int32_t prev = 0
    for k in range(64):
        sval[k] = inherited
    while i < i1:
        s = _slot6(hi[i], lo[i], d)
        if plen[i] <= end:
            cnt = 1u << (end - plen[i])
            for k in range(s, s + cnt):
                sval[k] = val[i]
            i += 1
        else:
            j = i + 1
            while j < i1 and _slot6(hi[j], lo[j], d) == s:
                j += 1
            run_slot[nruns] = s
            run_start[nruns] = i
            run_end[nruns] = j
            nruns += 1
            vector |= (<uint64_t>1) << s
            i = j
    if _reserve_leaves(t, 64) or _reserve_nodes(t, <size_t>nruns):
        return -1
    base0 = t.n_leaves
    for k in range(64):
        if (vector >> k) & 1:
            continue
        if not have_prev or sval[k] != prev:
            leafvec |= (<uint64_t>1) << k
            t.leaves[t.n_leaves] = sval[k]
            t.n_leaves += 1
            prev = sval[k]
            have_prev = True
    base1 = t.n_nodes
    t.n_nodes += nruns
    t.nodes[node_idx].vector = vector
    t.nodes[node_idx].leafvec = leafvec
    t.nodes[node_idx].base0 = <uint32_t>base0
    t.nodes[node_idx].base1 = <uint32_t>base1
    for r in range(nruns):
        if _build_node(t, base1 + r, end, hi, lo, plen, val, run_start[r], run_end[r],
                       sval[run_slot[r]]):
            return -1
    return 0


cdef int _build_trie(Trie *t, unsigned direct_bits, const uint64_t *hi, const uint64_t *lo,
                     const uint8_t *plen, const int32_t *val, size_t n) noexcept nogil:
    """Build a whole family's trie from its sorted, unique, host-bit-free prefixes."""
    cdef size_t ndirect = (<size_t>1) << direct_bits, s, k, cnt, i, j, idx
    cdef unsigned shift = 64 - direct_bits
    cdef int32_t *dval = <int32_t *> malloc(ndirect * sizeof(int32_t))
    t.direct_bits = direct_bits
    t.direct = <uint32_t *> malloc(ndirect * sizeof(uint32_t))
    if dval == NULL or t.direct == NULL:
        free(dval)
        return -1
    for s in range(ndirect):
        dval[s] = -1
    for i in range(n):
        if plen[i] <= direct_bits:
            s = <size_t>(hi[i] >> shift)
            cnt = (<size_t>1) << (direct_bits - plen[i])
            for k in range(s, s + cnt):
                dval[k] = val[i]
    for s in range(ndirect):
        t.direct[s] = <uint32_t>(dval[s] + 1)
    i = 0
    while i < n:
        if plen[i] <= direct_bits:
            i += 1
            continue
        s = <size_t>(hi[i] >> shift)
        j = i + 1
        while j < n and <size_t>(hi[j] >> shift) == s:
            j += 1
        if _reserve_nodes(t, 1):
            free(dval)
            return -1
        idx = t.n_nodes
        t.n_nodes += 1
        if _build_node(t, idx, direct_bits, hi, lo, plen, val, i, j, dval[s]):
            free(dval)
            return -1
        t.direct[s] = NODE_FLAG | <uint32_t>idx
        i = j
    free(dval)
    return 0


cdef void _free_trie(Trie *t) noexcept nogil:
    free(t.direct)
    free(t.nodes)
    free(t.leaves)
    t.direct = NULL
    t.nodes = NULL
    t.leaves = NULL
    t.n_nodes = t.cap_nodes = t.n_leaves = t.cap_leaves = 0


# --------------------------------------------------------------------------------------------
# Lookup kernels
# --------------------------------------------------------------------------------------------

cdef inline int32_t _lookup4(const Trie *t, uint32_t a) noexcept nogil:
    cdef uint32_t e = t.direct[a >> (32 - t.direct_bits)]
    if not (e & NODE_FLAG):
        return <int32_t>e - 1
    return _walk4(t, &t.nodes[e & ~NODE_FLAG], a)


cdef inline int32_t _walk4(const Trie *t, const Node *nd, uint32_t a) noexcept nogil:
    """Finish an IPv4 lookup from the node below the direct table."""
    cdef unsigned d = t.direct_bits, v
    while True:
        v = (<uint32_t>(a << d)) >> 26
        if (nd.vector >> v) & 1:
            nd = &t.nodes[nd.base1 + MF_POPCNT(nd.vector & (ONES >> (63 - v))) - 1]
            d += 6
        else:
            return t.leaves[nd.base0 + MF_POPCNT(nd.leafvec & (ONES >> (63 - v))) - 1]


cdef inline int32_t _lookup6(const Trie *t, uint64_t hi, uint64_t lo) noexcept nogil:
    cdef uint32_t e = t.direct[hi >> (64 - t.direct_bits)]
    cdef const Node *nd
    cdef unsigned d, v
    if not (e & NODE_FLAG):
        return <int32_t>e - 1
    nd = &t.nodes[e & ~NODE_FLAG]
    d = t.direct_bits
    while True:
        v = _slot6(hi, lo, d)
        if (nd.vector >> v) & 1:
            nd = &t.nodes[nd.base1 + MF_POPCNT(nd.vector & (ONES >> (63 - v))) - 1]
            d += 6
        else:
            return t.leaves[nd.base0 + MF_POPCNT(nd.leafvec & (ONES >> (63 - v))) - 1]


cdef inline int32_t _lookup_text(const Trie *t4, const Trie *t6, const uint8_t *s,
                                 Py_ssize_t n) noexcept nogil:
    cdef uint32_t a = 0
    cdef uint64_t hi = 0, lo = 0
    cdef int r = _parse_address(s, n, &a, &hi, &lo, True)
    if r == ADDR_V4:
        return _lookup4(t4, a)
    if r == ADDR_V6:
        return _lookup6(t6, hi, lo)
    return r


cdef inline int32_t _lookup_row(const Trie *t4, const Trie *t6, const uint8_t *s, Py_ssize_t n,
                                bint readable) noexcept nogil:
    """Code for the text s[0:n]; `readable`: LPM_FAST_READ bytes may be read at s."""
    cdef uint32_t a
    cdef uint64_t hi, lo
    cdef uint8_t local[LPM_FAST_READ]
    cdef const uint8_t *p = s
    if not readable and n <= 39:
        memcpy(local, s, n)
        p = local
        readable = True
    if readable:
        if n <= 15 and lpm_fast_v4(p, <size_t>n, &a):
            return _lookup4(t4, a)
        if lpm_fast_v6(p, <size_t>n, &hi, &lo):
            if hi == 0 and (lo >> 32) == 0xFFFF:
                return _lookup4(t4, <uint32_t>lo)
            return _lookup6(t6, hi, lo)
    return _lookup_text(t4, t6, s, n)


cdef inline bint _is_null(const uint8_t *valid, Py_ssize_t bit) noexcept nogil:
    return valid != NULL and not ((valid[bit >> 3] >> (bit & 7)) & 1)


cdef Py_ssize_t _loop_offsets(const Trie *t4, const Trie *t6, const uint8_t *valid,
                              Py_ssize_t voff, const offset_t *offs, const uint8_t *data,
                              int64_t data_len, Py_ssize_t n, int32_t *out) noexcept nogil:
    """Look up rows of a string/binary array; returns -1, or the first row that is out of bounds.

    Rows go in blocks: first every row is parsed (plain dotted quads by the fast path, with a
    prefetch of their direct-table entry), then looked up, so that the cache misses of a block's
    lookups overlap instead of following one another.
    """
    cdef Py_ssize_t base, i, j, m
    cdef int64_t a, b
    cdef uint32_t keys[LPM_BLOCK]
    cdef uint32_t nodes[LPM_BLOCK]
    cdef uint8_t kind[LPM_BLOCK]
    cdef uint32_t e
    cdef unsigned shift = 32 - t4.direct_bits
    base = 0
    while base < n:
        m = n - base if n - base < LPM_BLOCK else LPM_BLOCK
        for j in range(m):
            i = base + j
            if _is_null(valid, voff + i):
                kind[j] = 0
                continue
            a = offs[i]
            b = offs[i + 1]
            if a < 0 or b < a or b > data_len:
                return i
            if b - a <= 15 and a + LPM_FAST_READ <= data_len and lpm_fast_v4(data + a, <size_t>(b - a), &keys[j]):
                kind[j] = 1
                LPM_PREFETCH(&t4.direct[keys[j] >> shift])
            else:
                kind[j] = 2
        for j in range(m):
            if kind[j] == 1:
                e = t4.direct[keys[j] >> shift]
                if e & NODE_FLAG:
                    nodes[j] = e & ~NODE_FLAG
                    LPM_PREFETCH(&t4.nodes[nodes[j]])
                else:
                    out[base + j] = <int32_t>e - 1
                    kind[j] = 3
        for j in range(m):
            i = base + j
            if kind[j] == 1:
                out[i] = _walk4(t4, &t4.nodes[nodes[j]], keys[j])
            elif kind[j] == 3:
                pass
            elif kind[j] == 0:
                out[i] = ADDR_EMPTY
            else:
                a = offs[i]
                b = offs[i + 1]
                out[i] = _lookup_row(t4, t6, data + a, <Py_ssize_t>(b - a), a + LPM_FAST_READ <= data_len)
        base += m
    return -1


cdef Py_ssize_t _loop_views(const Trie *t4, const Trie *t6, const uint8_t *valid,
                            Py_ssize_t voff, const uint8_t *views, const uint8_t **bufs,
                            const int64_t *buflens, Py_ssize_t nbufs, Py_ssize_t n,
                            int32_t *out) noexcept nogil:
    """Look up rows of a string_view/binary_view array (16-byte views, variadic data buffers)."""
    cdef Py_ssize_t i
    cdef const uint8_t *s
    cdef int32_t ln
    cdef int64_t room
    for i in range(n):
        if _is_null(valid, voff + i):
            out[i] = ADDR_EMPTY
            continue
        s = view_bytes(views + 16 * i, bufs, buflens, nbufs, &ln, &room)
        if s == NULL:
            return i
        # the fast parsers over-read: only where the storage holds LPM_FAST_READ bytes from s
        # (never inline: a view holds 12)
        out[i] = _lookup_row(t4, t6, s, ln, room >= LPM_FAST_READ)
    return -1


cdef void _loop_u32(const Trie *t4, const uint32_t *a, Py_ssize_t n, int32_t *out) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = _lookup4(t4, a[i])


# --------------------------------------------------------------------------------------------
# Python-facing classes
# --------------------------------------------------------------------------------------------

cdef class Snapshot:
    """Immutable compiled tries of both families; lookups hold a reference while they run."""
    cdef Trie t4
    cdef Trie t6

    def __dealloc__(self):
        _free_trie(&self.t4)
        _free_trie(&self.t6)

    def stats(self):
        """Sizes of the compiled structure, for benchmarks and the README."""
        cdef size_t b4 = ((<size_t>1) << self.t4.direct_bits) * 4 + self.t4.n_nodes * sizeof(Node) + self.t4.n_leaves * 4
        cdef size_t b6 = ((<size_t>1) << self.t6.direct_bits) * 4 + self.t6.n_nodes * sizeof(Node) + self.t6.n_leaves * 4
        return {"v4_nodes": self.t4.n_nodes, "v4_leaves": self.t4.n_leaves, "v4_bytes": b4,
                "v6_nodes": self.t6.n_nodes, "v6_leaves": self.t6.n_leaves, "v6_bytes": b6}


cdef uint8_t EMPTY_BYTES[1]


cdef inline uint64_t _mask(int plen) noexcept nogil:
    """A 64-bit word's network mask for a prefix covering `plen` of its bits (clamped 0..64)."""
    if plen <= 0:
        return 0
    if plen >= 64:
        return ONES
    return ~(ONES >> plen)


cdef inline const uint8_t *_ptr(const uint8_t[::1] mv) noexcept:
    return &mv[0] if mv.shape[0] else EMPTY_BYTES


def _u8(buf):
    """A read-only uint8 numpy view of a pyarrow Buffer (None -> empty)."""
    if buf is None:
        return np.empty(0, np.uint8)
    return np.frombuffer(buf, dtype=np.uint8)


cdef int _clean_text(bytes raw, Py_ssize_t *start, Py_ssize_t *stop):
    cdef const uint8_t *s = <const uint8_t *><const char *>raw
    cdef Py_ssize_t a = 0, b = len(raw)
    while a < b and _is_ws(s[a]):
        a += 1
    while b > a and _is_ws(s[b - 1]):
        b -= 1
    start[0] = a
    stop[0] = b
    return 0


cdef class Core:
    """Compiled backend of analyzer.matching.PrefixTable (see analyzer/_lpm_py.py for the twin)."""

    cdef uint8_t *fam
    cdef uint64_t *hi
    cdef uint64_t *lo
    cdef uint8_t *plen
    cdef int32_t *val
    cdef Py_ssize_t n
    cdef Py_ssize_t cap
    cdef bint clean            # entries are sorted, unique, and compiled into snap
    cdef Snapshot snap

    releases_gil = True

    def __cinit__(self):
        self.n = 0
        self.cap = 0
        self.clean = False
        self.snap = None

    def __dealloc__(self):
        free(self.fam)
        free(self.hi)
        free(self.lo)
        free(self.plen)
        free(self.val)

    cdef int _append(self, uint8_t fam, uint64_t hi, uint64_t lo, uint8_t plen,
                     int32_t val) except -1:
        cdef Py_ssize_t cap
        if self.n == self.cap:
            cap = self.cap * 2 if self.cap else 64
            self.fam = <uint8_t *> realloc(self.fam, cap)
            self.hi = <uint64_t *> realloc(self.hi, cap * 8)
            self.lo = <uint64_t *> realloc(self.lo, cap * 8)
            self.plen = <uint8_t *> realloc(self.plen, cap)
            self.val = <int32_t *> realloc(self.val, cap * 4)
            if not (self.fam and self.hi and self.lo and self.plen and self.val):
                raise MemoryError()
            self.cap = cap
        self.fam[self.n] = fam
        self.hi[self.n] = hi
        self.lo[self.n] = lo
        self.plen[self.n] = plen
        self.val[self.n] = val
        self.n += 1
        self.clean = False
        return 0

    def add(self, str text, value):
        """Add one prefix (CIDR, address or range) with `value`; raise PrefixError if bad."""
        cdef long long v
        try:
            v = value.__index__()
        except (AttributeError, TypeError):
            raise value_error(value) from None
        except OverflowError:
            raise value_error(value) from None
        if v < 0 or v > MAX_VALUE:
            raise value_error(value)
        cdef bytes raw = text.encode("utf-8", "surrogatepass")
        cdef const uint8_t *s = <const uint8_t *><const char *>raw
        cdef Py_ssize_t a = 0, b = 0, k, slash = -1, dash = -1
        cdef uint32_t a4 = 0, b4 = 0
        cdef uint64_t ahi = 0, alo = 0, bhi = 0, blo = 0
        cdef int fa, fb, plen = 0
        _clean_text(raw, &a, &b)
        if a == b:
            raise prefix_error(text, E_EMPTY)
        for k in range(a, b):
            if s[k] == 47:  # '/'
                slash = k
                break
        if slash >= 0:
            fa = _parse_address(s + a, slash - a, &a4, &ahi, &alo, False)
            if fa != ADDR_V4 and fa != ADDR_V6:
                raise prefix_error(text, E_ADDRESS)
            plen = _parse_length(s + slash + 1, b - slash - 1, fa)
            if plen < 0:
                raise prefix_error(text, E_LENGTH, fa)
            self._append_masked(fa, a4, ahi, alo, plen, <int32_t>v)
            return
        for k in range(a, b):
            if s[k] == 45:  # '-'
                dash = k
                break
        if dash < 0:
            fa = _parse_address(s + a, b - a, &a4, &ahi, &alo, True)
            if fa != ADDR_V4 and fa != ADDR_V6:
                raise prefix_error(text, E_ADDRESS)
            self._append_masked(fa, a4, ahi, alo, 32 if fa == ADDR_V4 else 128, <int32_t>v)
            return
        fa = _parse_address(s + a, dash - a, &a4, &ahi, &alo, True)
        fb = _parse_address(s + dash + 1, b - dash - 1, &b4, &bhi, &blo, True)
        if (fa != ADDR_V4 and fa != ADDR_V6) or (fb != ADDR_V4 and fb != ADDR_V6):
            raise prefix_error(text, E_ADDRESS)
        if fa != fb:
            raise prefix_error(text, E_RANGE_FAMILY)
        if fa == ADDR_V4:
            first, last, bits = a4, b4, 32
        else:
            first, last, bits = (<object>ahi << 64) | alo, (<object>bhi << 64) | blo, 128
        if first > last:
            raise prefix_error(text, E_RANGE_ORDER)
        for net, length in _range_to_cidrs(first, last, bits):
            if fa == ADDR_V4:
                self._append_masked(fa, net, 0, 0, length, <int32_t>v)
            else:
                self._append_masked(fa, 0, net >> 64, net & 0xFFFFFFFFFFFFFFFF, length, <int32_t>v)

    cdef int _append_masked(self, int fam, uint32_t a4, uint64_t hi, uint64_t lo, int plen,
                            int32_t v) except -1:
        """Append with the host bits cleared (10.1.2.3/8 is stored as 10.0.0.0/8)."""
        if fam == ADDR_V6 and hi == 0 and (lo >> 32) == 0xFFFF and plen >= 96:
            # ::ffff:a.b.c.d/n is the IPv4 prefix a.b.c.d/(n-96): mapped queries are looked up as
            # IPv4, so an IPv6 entry there (a CIDR or a range piece) could never match.
            fam = ADDR_V4
            a4 = <uint32_t>lo
            plen -= 96
        if fam == ADDR_V4:
            return self._append(4, ((<uint64_t>a4) << 32) & _mask(plen), 0, <uint8_t>plen, v)
        return self._append(6, hi & _mask(plen), lo & _mask(plen - 64), <uint8_t>plen, v)

    def __len__(self):
        self._snapshot()
        return self.n

    def _snapshot(self):
        """Sort, de-duplicate (the last added wins) and compile the entries, once per change."""
        if self.clean:
            return self.snap
        cdef Py_ssize_t n = self.n
        fam = np.asarray(<uint8_t[:n]> self.fam).copy() if n else np.empty(0, np.uint8)
        hi = np.asarray(<uint64_t[:n]> self.hi).copy() if n else np.empty(0, np.uint64)
        lo = np.asarray(<uint64_t[:n]> self.lo).copy() if n else np.empty(0, np.uint64)
        plen = np.asarray(<uint8_t[:n]> self.plen).copy() if n else np.empty(0, np.uint8)
        val = np.asarray(<int32_t[:n]> self.val).copy() if n else np.empty(0, np.int32)
        # lexsort is stable: equal prefixes keep their insertion order, so the last is the newest.
        order = np.lexsort((plen, lo, hi, fam))
        fam, hi, lo, plen, val = fam[order], hi[order], lo[order], plen[order], val[order]
        if n > 1:
            same = ((fam[1:] == fam[:-1]) & (hi[1:] == hi[:-1]) & (lo[1:] == lo[:-1])
                    & (plen[1:] == plen[:-1]))
            keep = np.append(~same, True)
            fam, hi, lo, plen, val = fam[keep], hi[keep], lo[keep], plen[keep], val[keep]
        n = len(fam)
        self.n = n
        cdef const uint8_t[::1] fam_mv = np.ascontiguousarray(fam)
        cdef const uint64_t[::1] hi_mv = np.ascontiguousarray(hi)
        cdef const uint64_t[::1] lo_mv = np.ascontiguousarray(lo)
        cdef const uint8_t[::1] plen_mv = np.ascontiguousarray(plen)
        cdef const int32_t[::1] val_mv = np.ascontiguousarray(val)
        cdef Py_ssize_t i
        for i in range(n):
            self.fam[i] = fam_mv[i]
            self.hi[i] = hi_mv[i]
            self.lo[i] = lo_mv[i]
            self.plen[i] = plen_mv[i]
            self.val[i] = val_mv[i]
        cdef Snapshot snap = Snapshot()
        cdef Py_ssize_t n4 = int(np.count_nonzero(fam == 4))
        cdef int rc4, rc6
        rc4 = _build_trie(&snap.t4, DIRECT_BITS_V4, self.hi, self.lo, self.plen, self.val, n4)
        rc6 = _build_trie(&snap.t6, DIRECT_BITS_V6, self.hi + n4, self.lo + n4, self.plen + n4,
                          self.val + n4, n - n4)
        if rc4 or rc6:
            raise MemoryError("not enough memory to compile the prefix table")
        self.snap = snap
        self.clean = True
        return snap

    def stats(self):
        return self._snapshot().stats()

    def items(self):
        """(family, address int, length, value) of every prefix, sorted by family and address."""
        self._snapshot()
        cdef Py_ssize_t i
        out = []
        for i in range(self.n):
            if self.fam[i] == 4:
                out.append((4, <uint32_t>(self.hi[i] >> 32), self.plen[i], self.val[i]))
            else:
                out.append((6, (<object>self.hi[i] << 64) | self.lo[i], self.plen[i], self.val[i]))
        return out

    def lookup_text(self, text):
        """Code for one str/bytes/None value."""
        cdef Snapshot snap = self._snapshot()
        cdef bytes raw
        if text is None:
            return ADDR_EMPTY
        if isinstance(text, str):
            raw = (<str>text).encode("utf-8", "surrogatepass")
        elif isinstance(text, bytes):
            raw = <bytes>text
        else:
            raise TypeError(f"expected str, bytes or None, got {type(text).__name__}")
        return _lookup_text(&snap.t4, &snap.t6, <const uint8_t *><const char *>raw, len(raw))

    def gather(self, indices, const int32_t[::1] codes, int32_t[::1] out):
        """out[i] = codes[indices[i]] for a pyarrow integer array of dictionary indices; null
        indices give EMPTY. An index outside codes raises ValueError."""
        cdef Py_ssize_t n = len(indices), off = indices.offset, bad
        cdef const uint8_t[::1] vmv
        cdef const uint8_t *valid = NULL
        if out.shape[0] != n:
            raise ValueError("output length differs from input length")
        if n == 0:
            return
        buffers = indices.buffers()
        if indices.null_count and buffers[0] is not None:
            vmv = _u8(buffers[0])
            if vmv.shape[0] * 8 < off + n:
                raise ValueError("malformed Arrow array: validity bitmap shorter than the array")
            valid = &vmv[0]
        dtype = np.dtype(indices.type.to_pandas_dtype())
        raw = _offsets(buffers[1], dtype, off + n, "indices")[off:]
        bad = _gather_indices(raw, <Py_ssize_t><size_t>valid, off, codes, out)
        if bad >= 0:
            raise ValueError(f"malformed Arrow dictionary array: index of row {bad} is outside its dictionary")

    def first_rows(self, ids, Py_ssize_t max_id):
        """For a pyarrow uint32 array of category ids (polars' physical Categorical): the distinct
        ids and the row where each first occurs. One pass; no hashing of strings."""
        cdef Py_ssize_t n = len(ids), off = ids.offset, i, bad = -1
        cdef const uint8_t[::1] vmv
        cdef const uint8_t *valid = NULL
        cdef const uint32_t[::1] raw
        cdef int64_t[::1] first
        cdef uint32_t k
        if str(ids.type) != "uint32":
            raise TypeError(f"expected a uint32 Arrow array of category ids, got {ids.type}")
        first_arr = np.full(max_id + 1, -1, dtype=np.int64)
        first = first_arr
        if n:
            buffers = ids.buffers()
            if ids.null_count and buffers[0] is not None:
                vmv = _u8(buffers[0])
                if vmv.shape[0] * 8 < off + n:
                    raise ValueError("malformed Arrow array: validity bitmap shorter than the array")
                valid = &vmv[0]
            raw = _offsets(buffers[1], np.uint32, off + n, "indices")[off:]
            with nogil:
                for i in range(n):
                    if _is_null(valid, off + i):
                        continue
                    k = raw[i]
                    if k > <uint64_t>max_id:
                        bad = i
                        break
                    if first[k] < 0:
                        first[k] = i
            if bad >= 0:
                raise ValueError(f"category id of row {bad} is above the given maximum {max_id}")
        present = np.flatnonzero(first_arr >= 0)
        return present.astype(np.uint32), first_arr[present]

    def lookup_u32(self, const uint32_t[::1] values, int32_t[::1] out):
        """Look up IPv4 addresses given as integers."""
        cdef Snapshot snap = self._snapshot()
        cdef Py_ssize_t n = values.shape[0]
        if out.shape[0] != n:
            raise ValueError("output length differs from input length")
        if n == 0:
            return
        with nogil:
            _loop_u32(&snap.t4, &values[0], n, &out[0])

    def lookup_arrow(self, arr, int32_t[::1] out):
        """Look up a string/binary-like pyarrow Array (not dictionary) into `out`."""
        cdef Snapshot snap = self._snapshot()
        cdef Py_ssize_t n = len(arr), off = arr.offset, bad = -1, nb, i
        cdef const uint8_t[::1] vmv, dmv, views
        cdef const int32_t[::1] o32
        cdef const int64_t[::1] o64
        cdef const uint8_t *valid = NULL
        cdef const uint8_t *dptr
        cdef const uint8_t **bufs
        cdef int64_t *lens
        if out.shape[0] != n:
            raise ValueError("output length differs from input length")
        if n == 0:
            return
        layout = arr.type
        buffers = arr.buffers()
        if arr.null_count and buffers[0] is not None:
            vmv = _u8(buffers[0])
            if vmv.shape[0] * 8 < off + n:
                raise ValueError("malformed Arrow array: validity bitmap shorter than the array")
            valid = &vmv[0]
        kind = _layout_kind(layout)
        if kind == 32 or kind == 64:
            dmv = _u8(buffers[2])
            dptr = _ptr(dmv)
            if kind == 32:
                o32 = _offsets(buffers[1], np.int32, off + n + 1)
                with nogil:
                    bad = _loop_offsets(&snap.t4, &snap.t6, valid, off, &o32[off], dptr,
                                        dmv.shape[0], n, &out[0])
            else:
                o64 = _offsets(buffers[1], np.int64, off + n + 1)
                with nogil:
                    bad = _loop_offsets(&snap.t4, &snap.t6, valid, off, &o64[off], dptr,
                                        dmv.shape[0], n, &out[0])
        elif kind == 16:
            views = _u8(buffers[1])
            if views.shape[0] < (off + n) * 16:
                raise ValueError("malformed Arrow array: view buffer shorter than the array")
            data = [_u8(b) for b in buffers[2:]]  # held while C reads them
            nb = len(data)
            bufs = NULL
            lens = NULL
            try:
                buffer_table(data, &bufs, &lens)
                with nogil:
                    bad = _loop_views(&snap.t4, &snap.t6, valid, off, &views[off * 16], bufs, lens,
                                      nb, n, &out[0])
            finally:
                PyMem_Free(bufs)
                PyMem_Free(lens)
        else:
            raise TypeError(f"expected a string or binary Arrow array, got {layout}")
        if bad >= 0:
            raise ValueError(f"malformed Arrow array: row {bad} points outside its data buffers")


ctypedef fused index_t:
    int8_t
    int16_t
    int32_t
    int64_t
    uint8_t
    uint16_t
    uint32_t
    uint64_t


def _gather_indices(const index_t[::1] idx, Py_ssize_t valid_addr, Py_ssize_t voff,
                    const int32_t[::1] codes, int32_t[::1] out):
    """The loop of Core.gather, specialized per index width; returns -1 or the first bad row."""
    cdef const uint8_t *valid = <const uint8_t *>valid_addr
    cdef Py_ssize_t i, n = idx.shape[0]
    cdef uint64_t ncodes = <uint64_t>codes.shape[0], k
    cdef const int32_t *c = &codes[0] if codes.shape[0] else NULL
    cdef Py_ssize_t bad = -1
    with nogil:
        for i in range(n):
            if _is_null(valid, voff + i):
                out[i] = ADDR_EMPTY
                continue
            k = <uint64_t><int64_t>idx[i]  # a negative index becomes huge and fails the check
            if k >= ncodes:
                bad = i
                break
            out[i] = c[k]
    return bad


def _offsets(buf, dtype, count, what="offsets"):
    try:
        return np.frombuffer(buf, dtype=dtype, count=count)
    except (TypeError, ValueError):
        raise ValueError(f"malformed Arrow array: {what} buffer shorter than the array") from None


def _layout_kind(layout):
    """32/64: offsets of that width; 16: 16-byte views; 0: not a text layout."""
    import pyarrow as pa
    if pa.types.is_string(layout) or pa.types.is_binary(layout):
        return 32
    if pa.types.is_large_string(layout) or pa.types.is_large_binary(layout):
        return 64
    if pa.types.is_string_view(layout) or pa.types.is_binary_view(layout):
        return 16
    return 0


cdef int _parse_length(const uint8_t *s, Py_ssize_t n, int fam) noexcept:
    """Prefix length after '/': decimal digits (leading zeros allowed, as ipaddress does) or,
    for IPv4, a contiguous dotted netmask. Returns -1 when invalid."""
    cdef Py_ssize_t k
    cdef int v = 0
    cdef uint32_t mask
    cdef int limit = 32 if fam == ADDR_V4 else 128
    if n == 0:
        return -1
    if fam == ADDR_V4 and memchr(s, 46, n) != NULL:
        if not _parse_v4(s, n, &mask):
            return -1
        v = 0
        while v < 32 and (mask >> (31 - v)) & 1:
            v += 1
        if v < 32 and (mask << v) != 0:
            return -1
        return v
    for k in range(n):
        if not (48 <= s[k] <= 57):
            return -1
        v = v * 10 + (s[k] - 48)
        if v > limit:
            return -1
    return v


def _range_to_cidrs(first, last, bits):
    """Smallest list of (network, length) CIDR blocks that exactly cover [first, last]."""
    out = []
    while first <= last:
        size = (first & -first) if first else (1 << bits)  # Python ints: bits may be 128
        while size > last - first + 1:
            size >>= 1
        out.append((first, bits - size.bit_length() + 1))
        first += size
    return out
