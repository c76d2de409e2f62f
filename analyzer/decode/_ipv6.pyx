# cython: language_level=3
"""The IPv6 extension-header walk of the decoder (``_headers.pxd``), for the defragmenter."""
from libc.stdint cimport uint8_t

from analyzer.decode._headers cimport V6Walk, W_FRAGMENT, ipv6_walk


def fragment_header(const uint8_t[::1] ip):
    """(offset of the fragment header, offset of the next-header byte that names it) of an
    IPv6 packet that is a fragment, or None (not a fragment, or headers cut or malformed)."""
    cdef V6Walk w
    if ip.shape[0] < 40 or ipv6_walk(&ip[0], ip.shape[0], &w) != W_FRAGMENT:
        return None
    return w.off, w.nh_pos
