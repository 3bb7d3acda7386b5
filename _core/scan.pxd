# C-level declarations of the CSV record scanner (_core/_scan.pyx -> analyzer._scan).

from libc.stdint cimport uint8_t, int64_t

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
