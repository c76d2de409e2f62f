# cython: language_level=3
"""Spill records: frames routed to shards by their IP address pair, and read back.

A spill file holds the frames of one input file that belong to one shard, in
frame order.  Each record is a 32-byte little-endian header (captured length,
length on the wire, time in ns, frame number, link type) followed by the
captured bytes, padded to 8 bytes.  The frame is kept whole, with its link
header, so the engine decodes it exactly as it would from the input.

The shard of a frame is a hash of its IP address pair taken in canonical
order (both directions, every IP fragment, every datagram and connection
between two hosts land in the same shard); frames without IP addresses go to
shard 0.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, int32_t, int64_t, uint64_t
from libc.string cimport memcpy, memcmp

import numpy as np

from analyzer.decode._headers cimport Pkt, decode_frame, prefetch_frame, PREFETCH_FRAMES_AHEAD, K_IP, K_FRAGMENT

cdef enum:
    HEADER = 32


cdef inline uint64_t _pair_hash(Pkt* k) noexcept:
    cdef int alen = 4 if k.ipver == 4 else 16
    cdef const uint8_t* a = k.src
    cdef const uint8_t* b = k.dst
    cdef const uint8_t* t
    cdef uint64_t h = 1469598103934665603ULL
    cdef int i
    if memcmp(a, b, alen) > 0:
        t = a
        a = b
        b = t
    h = (h ^ <uint64_t>k.ipver) * 1099511628211ULL
    for i in range(alen):
        h = (h ^ a[i]) * 1099511628211ULL
    for i in range(alen):
        h = (h ^ b[i]) * 1099511628211ULL
    return h


cdef inline Py_ssize_t _shard(const uint8_t* frame, uint32_t caplen, int32_t linktype,
                               uint64_t shards) noexcept:
    """The shard of one frame: its IP address pair's, or 0 when it has none."""
    cdef Pkt k
    cdef int kind = decode_frame(frame, caplen, linktype, &k)
    return <Py_ssize_t>(_pair_hash(&k) % shards) if (kind == K_IP or kind == K_FRAGMENT) else 0


cdef inline Py_ssize_t _record_size(uint32_t caplen) noexcept:
    return HEADER + ((caplen + 7) & ~7)


cdef int _shards(const uint8_t[::1] buf, const int64_t[::1] rec_off, const uint32_t[::1] caplen,
                 const uint16_t[::1] iface, const int32_t[::1] if_linktype, Py_ssize_t n, Py_ssize_t shards,
                 int64_t[::1] sid) except -1:
    """The shard of each of records [0, n) into ``sid``.  The records' offsets are known, so the
    headers of the one ``PREFETCH_FRAMES_AHEAD`` ahead are asked for: their cache misses overlap."""
    cdef Py_ssize_t i
    cdef const uint8_t* base = &buf[0] if buf.shape[0] else NULL
    for i in range(n):
        if i + PREFETCH_FRAMES_AHEAD < n:
            prefetch_frame(base + rec_off[i + PREFETCH_FRAMES_AHEAD])
        sid[i] = _shard(base + rec_off[i], caplen[i], if_linktype[iface[i]], <uint64_t>shards)
    return 0


def shard_of(const uint8_t[::1] buf, const int64_t[::1] rec_off, const uint32_t[::1] caplen,
             const uint16_t[::1] iface, const int32_t[::1] if_linktype, Py_ssize_t n, int shards,
             int64_t[::1] out):
    """The shard of each of records [0, n) into ``out``."""
    _shards(buf, rec_off, caplen, iface, if_linktype, n, shards, out)


def route_batch(const uint8_t[::1] buf, const int64_t[::1] rec_off, const uint32_t[::1] caplen,
                const uint32_t[::1] origlen, const int64_t[::1] ts_ns, const uint16_t[::1] iface,
                const int32_t[::1] if_linktype, int64_t first_frame_no, Py_ssize_t n, list outs):
    """Append records [0, n) of a reader batch to ``outs[shard]`` (bytearrays, one per shard)."""
    cdef Py_ssize_t shards = len(outs), i, s
    cdef const uint8_t* base = &buf[0] if buf.shape[0] else NULL
    cdef uint8_t* dst
    cdef int64_t[::1] shard = np.empty(n, np.int64)
    cdef int64_t[::1] need = np.zeros(shards, np.int64)
    cdef int64_t[::1] at = np.empty(shards, np.int64)
    cdef uint32_t c
    cdef bytearray out
    _shards(buf, rec_off, caplen, iface, if_linktype, n, shards, shard)
    for i in range(n):
        need[shard[i]] += _record_size(caplen[i])
    for s in range(shards):
        out = outs[s]
        at[s] = len(out)
        if need[s]:
            out.extend(bytes(need[s]))
    for i in range(n):
        s = shard[i]
        out = outs[s]
        dst = <uint8_t*>(<char*>out) + at[s]
        c = caplen[i]
        (<uint32_t*>dst)[0] = c
        (<uint32_t*>(dst + 4))[0] = origlen[i]
        (<int64_t*>(dst + 8))[0] = ts_ns[i]
        (<int64_t*>(dst + 16))[0] = first_frame_no + i
        (<int32_t*>(dst + 24))[0] = if_linktype[iface[i]]
        (<int32_t*>(dst + 28))[0] = 0
        memcpy(dst + HEADER, base + rec_off[i], c)
        at[s] += _record_size(c)


def parse_spill(const uint8_t[::1] buf, Py_ssize_t start, Py_ssize_t end, int64_t[::1] rec_off,
                uint32_t[::1] caplen, uint32_t[::1] origlen, int64_t[::1] ts_ns, int32_t[::1] linktype,
                int64_t[::1] frame_no):
    """Records in buf[start:end] into the arrays (as many as fit); returns (records, next start).
    A record that does not fit whole in [start, end) is left for the next call."""
    cdef Py_ssize_t i = 0, pos = start, size, cap = rec_off.shape[0]
    cdef const uint8_t* p
    cdef uint32_t c
    while i < cap and pos + HEADER <= end:
        p = &buf[pos]
        c = (<const uint32_t*>p)[0]
        size = _record_size(c)
        if pos + size > end:
            break
        rec_off[i] = pos + HEADER
        caplen[i] = c
        origlen[i] = (<const uint32_t*>(p + 4))[0]
        ts_ns[i] = (<const int64_t*>(p + 8))[0]
        frame_no[i] = (<const int64_t*>(p + 16))[0]
        linktype[i] = (<const int32_t*>(p + 24))[0]
        pos += size
        i += 1
    return i, pos


def index_blocks(const uint8_t[::1] buf, const int64_t[::1] rec_off, const uint32_t[::1] caplen,
                 const uint32_t[::1] origlen, const int64_t[::1] ts_ns, const uint16_t[::1] iface,
                 const int32_t[::1] if_linktype, Py_ssize_t n, int shards, int64_t base,
                 int64_t first_frame_no):
    """Records [0, n) of a reader batch as one index block per shard (``spill.IndexWriter``):
    a list of ``shards`` bytearrays, empty for a shard without records, else the record
    count (int64) then the columns of ``spill.INDEX_COLUMNS`` (file offset, captured and wire
    lengths, time, frame number, link type), each whole, the records in frame order.  One pass
    to find the shards, one to lay the columns out: what numpy did with a stable sort and a
    gather a column."""
    if n > rec_off.shape[0] or n > caplen.shape[0] or n > origlen.shape[0] or n > ts_ns.shape[0] \
            or n > iface.shape[0] or shards < 1:
        raise ValueError("index_blocks: n larger than the batch's arrays")
    cdef Py_ssize_t i, s, k, cnt
    cdef int64_t[::1] sid = np.empty(n, np.int64)
    cdef int64_t[::1] count = np.zeros(shards, np.int64)
    cdef int64_t[::1] at = np.zeros(shards, np.int64)
    cdef Py_ssize_t[::1] col0 = np.zeros(shards, np.intp)     # where each block's columns begin
    cdef list out = []
    cdef bytearray blk
    cdef uint8_t* p
    _shards(buf, rec_off, caplen, iface, if_linktype, n, shards, sid)
    for i in range(n):
        count[sid[i]] += 1
    for s in range(shards):
        cnt = count[s]
        blk = bytearray(8 + 36 * cnt) if cnt else bytearray()
        out.append(blk)
        if cnt:
            p = <uint8_t*>(<char*>blk)
            (<int64_t*>p)[0] = cnt
            col0[s] = <Py_ssize_t>(p + 8)
    for i in range(n):
        s = sid[i]
        cnt = count[s]
        k = at[s]
        at[s] = k + 1
        p = <uint8_t*>col0[s]
        # columns: off int64, caplen uint32, origlen uint32, ts int64, frame_no int64, linktype int32
        (<int64_t*>p)[k] = rec_off[i] + base
        (<uint32_t*>(p + 8 * cnt))[k] = caplen[i]
        (<uint32_t*>(p + 12 * cnt))[k] = origlen[i]
        (<int64_t*>(p + 16 * cnt))[k] = ts_ns[i]
        (<int64_t*>(p + 24 * cnt))[k] = first_frame_no + i
        (<int32_t*>(p + 32 * cnt))[k] = if_linktype[iface[i]]
    return out
