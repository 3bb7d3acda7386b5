# C-level declarations of the compiled longest-prefix-match core (_core/_lpm.pyx -> analyzer._lpm).
#
# The table is a poptrie (Asai & Ohara, SIGCOMM 2015): a multibit trie with a direct-indexed top
# level and 6-bit strides below it, each node compressed to two 64-bit bitmaps so that a child or a
# leaf is found with one popcount instead of a 64-wide array.

from libc.stdint cimport uint8_t, uint32_t, uint64_t, int32_t, int64_t

from common cimport MF_POPCNT

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #  define LPM_PREFETCH(p) __builtin_prefetch((const void *)(p))
    #else
    #  define LPM_PREFETCH(p) ((void)(p))
    #endif
    """
    void LPM_PREFETCH(const void *p) nogil

# One node of the trie: 64 slots for the next 6 bits of the key.
ctypedef struct Node:
    uint64_t vector     # bit s set: slot s leads to a child node
    uint64_t leafvec    # bit s set: slot s starts a new run of equal leaf values
    uint32_t base0      # index of this node's first leaf in Trie.leaves
    uint32_t base1      # index of this node's first child in Trie.nodes (children are contiguous)

# One address family. direct[k] for the top direct_bits of the key is either a leaf (value + 1,
# 0 meaning no match) or, with the top bit set, the index of a node.
ctypedef struct Trie:
    unsigned direct_bits
    uint32_t *direct
    Node *nodes
    int32_t *leaves
    size_t n_nodes
    size_t cap_nodes
    size_t n_leaves
    size_t cap_leaves

# What the address parser found (the negative ones are also lookup() codes).
cdef enum:
    ADDR_EMPTY = -3
    ADDR_INVALID = -2
    ADDR_V4 = 4
    ADDR_V6 = 6


cdef extern from "lpm_parse.h":
    # Fast paths of the address parser (SSE2): 1 and the address when s[0:n] is a bare dotted
    # quad / a bare hex-and-colon IPv6 address; 0 means "ask the general parser".
    # LPM_FAST_READ bytes must be readable at s, whatever n is.
    enum: LPM_FAST_READ
    void lpm_init_tables()   # once, before any parse
    int lpm_fast_v4(const uint8_t *s, size_t n, uint32_t *out) nogil
    int lpm_fast_v6(const uint8_t *s, size_t n, uint64_t *hi, uint64_t *lo) nogil
