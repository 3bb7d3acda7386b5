# C-level declarations of the CSV record scanner (_core/_scan.pyx -> analyzer._scan).

from libc.stdint cimport uint8_t, int32_t, int64_t, uint64_t

cdef extern from *:
    """
    #define SCAN_ONES 0x0101010101010101ULL
    #define SCAN_LOW7 0x7F7F7F7F7F7F7F7FULL
    /* the first separator, quote, CR or LF in [p, end), or end: 16 bytes a step with SSE2 (every
       x86-64 CPU), else a byte at a time */
    #if defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__))
    #include <emmintrin.h>
    #endif
    static inline const unsigned char *scan_plain_end(const unsigned char *p, const unsigned char *end,
                                                      unsigned char sep) {
    #if defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__))
        const __m128i vs = _mm_set1_epi8((char)sep), vq = _mm_set1_epi8(34);
        const __m128i vcr = _mm_set1_epi8(13), vlf = _mm_set1_epi8(10);
        while (end - p >= 16) {
            __m128i x = _mm_loadu_si128((const __m128i *)p);
            __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, vs), _mm_cmpeq_epi8(x, vq)),
                                     _mm_or_si128(_mm_cmpeq_epi8(x, vcr), _mm_cmpeq_epi8(x, vlf)));
            int bits = _mm_movemask_epi8(m);
            if (bits)
                return p + __builtin_ctz((unsigned)bits);
            p += 16;
        }
    #endif
        while (p < end && *p != sep && *p != 34 && *p != 13 && *p != 10)
            p++;
        return p;
    }
    /* how many of the 2-byte units at p from unit i on (of n), eight at a time while all eight
       are ASCII (< 0x80), written to out as bytes: with SSE2; none without */
    static inline long long scan_ascii16(const unsigned char *p, long long i, long long n, unsigned char *out) {
    #if defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__))
        const __m128i high = _mm_set1_epi16((short)0xFF80), zero = _mm_setzero_si128();
        long long start = i;
        while (n - i >= 8) {
            __m128i x = _mm_loadu_si128((const __m128i *)(p + 2 * i));
            if (_mm_movemask_epi8(_mm_cmpeq_epi16(_mm_and_si128(x, high), zero)) != 0xFFFF)
                break;
            _mm_storel_epi64((__m128i *)(out + (i - start)), _mm_packus_epi16(x, x));
            i += 8;
        }
        return i - start;
    #else
        (void)p; (void)i; (void)n; (void)out;
        return 0;
    #endif
    }
    /* from p[i] on, the first quote or LF at most 16 bytes before n (else the last such block's
       end), the separators before it added to *fields unless `quoted`: 16 bytes a step with SSE2,
       none without (the caller's loops go on from where this stops) */
    static inline long long scan_skip(const unsigned char *p, long long i, long long n, unsigned char sep,
                                      int quoted, long long *fields) {
    #if defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__))
        const __m128i vq = _mm_set1_epi8(34), vl = _mm_set1_epi8(10), vs = _mm_set1_epi8((char)sep);
        while (n - i >= 16) {
            __m128i x = _mm_loadu_si128((const __m128i *)(p + i));
            unsigned stops = (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(x, vq), _mm_cmpeq_epi8(x, vl)));
            unsigned seps = quoted ? 0u : (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, vs));
            if (stops) {
                unsigned at = (unsigned)__builtin_ctz(stops);
                *fields += __builtin_popcount(seps & ((1u << at) - 1u));
                return i + at;
            }
            *fields += __builtin_popcount(seps);
            i += 16;
        }
    #else
        (void)p; (void)n; (void)sep; (void)quoted; (void)fields;
    #endif
        return i;
    }
    """
    # a byte repeated in all eight bytes of a word is ONES * byte
    const uint64_t ONES "SCAN_ONES"
    const uint64_t LOW7 "SCAN_LOW7"
    const uint8_t *plain_end "scan_plain_end"(const uint8_t *p, const uint8_t *end, uint8_t sep) nogil
    long long ascii16 "scan_ascii16"(const uint8_t *p, long long i, long long n, uint8_t *out) nogil
    long long skip "scan_skip"(const uint8_t *p, long long i, long long n, uint8_t sep, int quoted,
                               long long *fields) nogil

# What the scanner carries from one chunk to the next: only whether the chunk boundary fell
# inside a quoted field is needed, and chunks are always cut after a record, so it starts at 0.
ctypedef struct ScanOut:
    int64_t *starts     # byte offset where each record begins
    int64_t *ends       # byte offset where it ends, line break (LF or CRLF) excluded
    int64_t *lines      # 1-based line of its first byte
    int64_t *fields     # separators outside quotes + 1
    int64_t count       # complete records found
    int64_t consumed    # bytes up to and including the last complete record's line break
    int64_t newlines    # line breaks in the consumed bytes

# Where the splitter (`fields`) found one cell of a kept column: its bytes in the chunk, and how
# to copy them out.
ctypedef struct Cell:
    int64_t pos         # first byte of the value (after the opening quote of a quoted cell)
    int32_t length      # bytes from `pos` (to the closing quote of a quoted cell)
    uint8_t kind        # CELL_NULL, CELL_PLAIN, CELL_QUOTED or CELL_ESCAPED

cdef enum:
    CELL_NULL = 0       # empty and unquoted: null, as polars' empty_string_is_null reads it
    CELL_PLAIN = 1      # unquoted, copied as is
    CELL_QUOTED = 2     # quoted without doubled quotes inside: copied as is ("" is an empty string)
    CELL_ESCAPED = 3    # quoted with doubled quotes inside: each pair copied as one quote
