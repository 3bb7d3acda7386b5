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

#if defined(__GNUC__) || defined(__clang__)
#define LPM_CTZ(x) ((unsigned)__builtin_ctz(x))
#else
static inline unsigned LPM_CTZ(unsigned x) { unsigned n = 0; while (!(x & 1u)) { x >>= 1; n++; } return n; }
#endif

static inline int lpm_fast_v4(const uint8_t *s, size_t n, uint32_t *out)
{
#if LPM_HAVE_SSE2
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

#endif
