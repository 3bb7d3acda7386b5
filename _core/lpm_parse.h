/* Fast path of the address parser: a bare dotted quad, parsed with SSE2 when available.
 *
 * Random IPv4 text has parts of 1, 2 or 3 digits in no predictable order, so a byte-at-a-time
 * parser pays a branch misprediction per part. This one finds the dots and checks every byte with
 * two vector compares, then computes each part without branching on its length. It returns 0 for
 * anything that is not a plain dotted quad; the caller then runs the general parser, which gives
 * the final answer (so this function only has to be right when it returns 1).
 *
 * Precondition: 16 bytes are readable at s (the caller guarantees it or takes the slow path).
 */
#ifndef MAILFLOW_LPM_PARSE_H
#define MAILFLOW_LPM_PARSE_H

#include <stdint.h>
#include <stddef.h>

#if defined(__SSE2__) || defined(_M_X64) || defined(_M_AMD64)
#include <emmintrin.h>
#define LPM_HAVE_SSE2 1
#else
#define LPM_HAVE_SSE2 0
#endif
#if defined(__SSSE3__)
#include <tmmintrin.h>
#define LPM_HAVE_SSSE3 1
#else
#define LPM_HAVE_SSSE3 0
#endif

/* For the SSSE3 IPv4 path: one entry per shape of dotted quad (each of the four parts 1-3 digits
 * long: 81 shapes). shuf gathers each part's digits right-aligned into one 32-bit lane (0x80
 * bytes become zero); lead marks the first digit of every part longer than one digit, which must
 * not be '0'. Filled once by lpm_init_tables(). */
static uint8_t lpm_v4_shuf[81][16];
static uint16_t lpm_v4_lead[81];

static void lpm_init_tables(void)
{
    unsigned id, k, len[4], start, j;
    for (id = 0; id < 81; id++) {
        len[0] = id / 27 + 1; len[1] = id / 9 % 3 + 1; len[2] = id / 3 % 3 + 1; len[3] = id % 3 + 1;
        start = 0;
        lpm_v4_lead[id] = 0;
        for (k = 0; k < 4; k++) {
            for (j = 0; j < 4; j++) {
                /* lane byte j holds the digit (3 - j) places before the part's end, if any */
                unsigned back = 4 - j;
                lpm_v4_shuf[id][4 * k + j] = back <= len[k] ? (uint8_t)(start + len[k] - back) : 0x80;
            }
            if (len[k] >= 2)
                lpm_v4_lead[id] |= (uint16_t)(1u << start);
            start += len[k] + 1;
        }
    }
}

#if defined(__GNUC__) || defined(__clang__)
#define LPM_CTZ(x) ((unsigned)__builtin_ctz(x))
#define LPM_CTZ64(x) ((unsigned)__builtin_ctzll(x))
#else
static inline unsigned LPM_CTZ(unsigned x) { unsigned n = 0; while (!(x & 1u)) { x >>= 1; n++; } return n; }
static inline unsigned LPM_CTZ64(unsigned long long x) { unsigned n = 0; while (!(x & 1u)) { x >>= 1; n++; } return n; }
#endif

static inline int lpm_fast_v4(const uint8_t *s, size_t n, uint32_t *out)
{
#if LPM_HAVE_SSSE3
    /* All four parts at once: gather the digits into 32-bit lanes by shape, weigh them
     * (100, 10, 1) with two multiply-adds, and check every lane <= 255. */
    unsigned lenmask, dm, gm, zm, p1, p2, p3, l1, l2, l3, l4, id;
    __m128i v, d, lanes, vals;
    if (n < 7 || n > 15)
        return 0;
    lenmask = (1u << n) - 1u;
    v = _mm_loadu_si128((const __m128i *)s);
    dm = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('.'))) & lenmask;
    d = _mm_sub_epi8(v, _mm_set1_epi8('0'));
    gm = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(9)), d)) & lenmask;
    if ((gm | dm) != lenmask)
        return 0;
    p1 = LPM_CTZ(dm | 0x10000u); dm &= dm - 1u;
    p2 = LPM_CTZ(dm | 0x10000u); dm &= dm - 1u;
    p3 = LPM_CTZ(dm | 0x10000u); dm &= dm - 1u;
    l1 = p1; l2 = p2 - p1 - 1u; l3 = p3 - p2 - 1u; l4 = (unsigned)n - p3 - 1u;
    if (dm != 0 || p3 >= n || (l1 - 1u) > 2u || (l2 - 1u) > 2u || (l3 - 1u) > 2u || (l4 - 1u) > 2u)
        return 0; /* not exactly three dots, or a part of 0 or 4+ digits */
    id = (l1 - 1u) * 27u + (l2 - 1u) * 9u + (l3 - 1u) * 3u + (l4 - 1u);
    zm = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(d, _mm_setzero_si128()));
    if (zm & lpm_v4_lead[id])
        return 0; /* leading zero */
    lanes = _mm_shuffle_epi8(d, _mm_loadu_si128((const __m128i *)lpm_v4_shuf[id]));
    vals = _mm_madd_epi16(_mm_maddubs_epi16(lanes, _mm_set1_epi32(0x010A6400)), _mm_set1_epi16(1));
    if (_mm_movemask_epi8(_mm_cmpgt_epi32(vals, _mm_set1_epi32(255))))
        return 0;
    vals = _mm_packus_epi16(_mm_packs_epi32(vals, vals), vals);
    {
        uint32_t le = (uint32_t)_mm_cvtsi128_si32(vals);
        *out = (le >> 24) | ((le >> 8) & 0xFF00u) | ((le << 8) & 0xFF0000u) | (le << 24);
    }
    return 1;
#elif LPM_HAVE_SSE2
    uint8_t dig[20];
    unsigned lenmask, dm, gm, p1, p2, p3, e[4], b[4], k;
    uint32_t acc = 0, bad = 0;
    __m128i v, d;
    if (n < 7 || n > 15)
        return 0;
    lenmask = (1u << n) - 1u;
    v = _mm_loadu_si128((const __m128i *)s);
    dm = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('.'))) & lenmask;
    d = _mm_sub_epi8(v, _mm_set1_epi8('0'));
    gm = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(9)), d)) & lenmask;
    if ((gm | dm) != lenmask)
        return 0;
    p1 = LPM_CTZ(dm | 0x10000u); dm &= dm - 1u;
    p2 = LPM_CTZ(dm | 0x10000u); dm &= dm - 1u;
    p3 = LPM_CTZ(dm | 0x10000u); dm &= dm - 1u;
    if (dm != 0 || p3 >= n)
        return 0; /* not exactly three dots */
    /* Digits at dig[4 + i]; the four zero bytes in front let a part read "its" hundreds and
     * tens digit unconditionally, and multiplying by (len >= 2), (len >= 3) drops them. */
    dig[0] = dig[1] = dig[2] = dig[3] = 0;
    _mm_storeu_si128((__m128i *)(dig + 4), d);
    b[0] = 0;      e[0] = p1;
    b[1] = p1 + 1; e[1] = p2;
    b[2] = p2 + 1; e[2] = p3;
    b[3] = p3 + 1; e[3] = (unsigned)n;
    for (k = 0; k < 4; k++) {
        unsigned len = e[k] - b[k];
        unsigned val = dig[4 + e[k] - 1]
                     + 10u * dig[4 + e[k] - 2] * (len >= 2)
                     + 100u * dig[4 + e[k] - 3] * (len >= 3);
        bad |= (len - 1u) > 2u;                         /* 1..3 digits */
        bad |= (len >= 2) & (dig[4 + b[k]] == 0);       /* no leading zero */
        bad |= val > 255u;
        acc = (acc << 8) | (val & 0xFFu);
    }
    if (bad)
        return 0;
    *out = acc;
    return 1;
#else
    (void)s; (void)n; (void)out;
    return 0;
#endif
}


/* The same for IPv6 text made only of hex digits and ':' (2 to 39 bytes): 48 bytes must be
 * readable at s. Hex digits are converted 16 at a time; each part's value is then assembled
 * from the (up to) four nibbles before its closing ':' without branching on its length.
 * The '::' rules follow Python's ipaddress exactly. Anything else (a '.', '%', brackets,
 * whitespace, an invalid address) returns 0 and is left to the general parser. */
static inline int lpm_fast_v6(const uint8_t *s, size_t n, uint64_t *hi, uint64_t *lo)
{
#if LPM_HAVE_SSE2
    uint8_t nib[4 + 48];
    uint32_t vals[9], hx[8];
    int empty[9];
    uint64_t colons = 0, ok = 0, lenmask;
    unsigned nparts = 0, b = 0, e, len, k;
    int chunk, skip = -1, parts_hi, parts_lo;
    if (n < 2 || n > 39)
        return 0;
    lenmask = (1ULL << n) - 1ULL;
    nib[0] = nib[1] = nib[2] = nib[3] = 0;
    for (chunk = 0; chunk < 3; chunk++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(s + 16 * chunk));
        __m128i d = _mm_sub_epi8(v, _mm_set1_epi8('0'));
        __m128i isd = _mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(9)), d);
        __m128i l = _mm_sub_epi8(_mm_or_si128(v, _mm_set1_epi8(0x20)), _mm_set1_epi8('a'));
        __m128i isl = _mm_cmpeq_epi8(_mm_min_epu8(l, _mm_set1_epi8(5)), l);
        __m128i isc = _mm_cmpeq_epi8(v, _mm_set1_epi8(':'));
        __m128i val = _mm_or_si128(_mm_and_si128(isd, d),
                                   _mm_and_si128(isl, _mm_add_epi8(l, _mm_set1_epi8(10))));
        _mm_storeu_si128((__m128i *)(nib + 4 + 16 * chunk), val);
        colons |= (uint64_t)(unsigned)_mm_movemask_epi8(isc) << (16 * chunk);
        ok |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(isd, isl), isc))
              << (16 * chunk);
    }
    if ((ok & lenmask) != lenmask)
        return 0;
    /* A virtual ':' after the text closes the last part. Colons hold nibble value 0, so reading
     * the bytes before a short part picks up zeros or masked-out digits only. */
    colons = (colons & lenmask) | (1ULL << n);
    while (colons) {
        e = LPM_CTZ64(colons);
        colons &= colons - 1ULL;
        len = e - b;
        if (nparts == 9 || len > 4)
            return 0;
        vals[nparts] = ((uint32_t)nib[4 + e - 1] * (len >= 1))
                     | ((uint32_t)nib[4 + e - 2] << 4) * (len >= 2)
                     | ((uint32_t)nib[4 + e - 3] << 8) * (len >= 3)
                     | ((uint32_t)nib[4 + e - 4] << 12) * (len >= 4);
        empty[nparts] = len == 0;
        nparts++;
        b = e + 1;
    }
    if (nparts < 3)
        return 0;
    for (k = 1; k + 1 < nparts; k++) {
        if (empty[k]) {
            if (skip >= 0)
                return 0;
            skip = (int)k;
        }
    }
    for (k = 0; k < 8; k++)
        hx[k] = 0;
    if (skip >= 0) {
        parts_hi = skip;
        parts_lo = (int)nparts - skip - 1;
        if (empty[0] && --parts_hi)
            return 0;
        if (empty[nparts - 1] && --parts_lo)
            return 0;
        if (8 - (parts_hi + parts_lo) < 1)
            return 0;
        for (k = 0; k < (unsigned)parts_hi; k++)
            hx[k] = vals[k];
        for (k = 0; k < (unsigned)parts_lo; k++)
            hx[8 - parts_lo + k] = vals[nparts - parts_lo + k];
    } else {
        if (nparts != 8 || empty[0] || empty[7])
            return 0;
        for (k = 0; k < 8; k++)
            hx[k] = vals[k];
    }
    *hi = ((uint64_t)hx[0] << 48) | ((uint64_t)hx[1] << 32) | ((uint64_t)hx[2] << 16) | hx[3];
    *lo = ((uint64_t)hx[4] << 48) | ((uint64_t)hx[5] << 32) | ((uint64_t)hx[6] << 16) | hx[7];
    return 1;
#else
    (void)s; (void)n; (void)hi; (void)lo;
    return 0;
#endif
}

/* Bytes that must be readable at s for the fast paths above. */
#define LPM_FAST_READ 48

#endif
