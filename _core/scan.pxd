# C-level declarations of the CSV record scanner (_core/_scan.pyx -> analyzer._scan).

from libc.stdint cimport uint8_t, int64_t, uint64_t

cdef extern from *:
    """
    #define SCAN_ONES 0x0101010101010101ULL
    #define SCAN_LOW7 0x7F7F7F7F7F7F7F7FULL
    """
    # a byte repeated in all eight bytes of a word is ONES * byte
    const uint64_t ONES "SCAN_ONES"
    const uint64_t LOW7 "SCAN_LOW7"

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
