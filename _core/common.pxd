# C-level helpers shared by the compiled modules (analyzer._lpm and analyzer._scan): a 64-bit
# popcount, the table of an Arrow string view array's data buffers and the bytes of one view.
# Macros and inline functions only, so cimporting this file links nothing at run time.

from cpython.mem cimport PyMem_Malloc
from libc.stdint cimport uint8_t, int32_t, int64_t, uint64_t
from libc.string cimport memcpy

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #  define MF_POPCNT(x) ((unsigned)__builtin_popcountll(x))
    #else
    static inline unsigned MF_POPCNT(unsigned long long x) {
        x = x - ((x >> 1) & 0x5555555555555555ULL);
        x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
        x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
        return (unsigned)((x * 0x0101010101010101ULL) >> 56);
    }
    #endif
    """
    # one instruction with x86-64-v2 (POPCNT); a library call or the SWAR fallback otherwise
    unsigned MF_POPCNT(uint64_t x) nogil


cdef inline int buffer_table(list buffers, const uint8_t ***data, int64_t **sizes) except -1:
    """The start and size of each of an Arrow string view array's data `buffers` (uint8
    memoryviews the caller keeps alive while C reads them) in two new arrays for `view_bytes`.
    The caller frees both with PyMem_Free, also when this raises (they start out NULL)."""
    cdef Py_ssize_t n = len(buffers), i
    cdef const uint8_t[::1] buf
    data[0] = <const uint8_t **>PyMem_Malloc(max(n, 1) * sizeof(uint8_t *))
    sizes[0] = <int64_t *>PyMem_Malloc(max(n, 1) * sizeof(int64_t))
    if data[0] == NULL or sizes[0] == NULL:
        raise MemoryError()
    for i in range(n):
        buf = buffers[i]
        sizes[0][i] = buf.shape[0]
        data[0][i] = &buf[0] if buf.shape[0] else NULL  # never read: no span fits in 0 bytes
    return 0


cdef inline const uint8_t *view_bytes(const uint8_t *view, const uint8_t **buffers, const int64_t *sizes,
                                      Py_ssize_t nbuffers, int32_t *length, int64_t *room) noexcept nogil:
    """The bytes of the 16-byte Arrow string view at `view`, their count in `length` and the
    bytes readable from there to the end of their storage in `room`: inline after the length
    for up to 12 bytes, else at (buffer index, offset) in a data buffer. NULL for a negative
    length or a span outside its buffer (a malformed array)."""
    cdef int32_t index, offset
    memcpy(length, view, 4)
    if length[0] < 0:
        return NULL
    if length[0] <= 12:
        room[0] = 12
        return view + 4
    memcpy(&index, view + 8, 4)
    memcpy(&offset, view + 12, 4)
    if index < 0 or index >= nbuffers or offset < 0 or <int64_t>offset + length[0] > sizes[index]:
        return NULL
    room[0] = sizes[index] - offset
    return buffers[index] + offset
