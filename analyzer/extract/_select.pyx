# cython: language_level=3
"""Which frames of a capture batch carry a torrent's evidence, and their pcapng blocks.

Theory of operation
-------------------
The flows to extract (the torrent's TCP and uTP connections, the HTTP tracker
connections that announced it) come from the output folder as a
``FlowTable``: one entry per connection with its canonical key (IP version,
the two endpoints in the engine's canonical order, the transport) and the
range of positions it owns, ``position = file index << 40 | frame number``.
Entries are sorted by an FNV-1a hash of the key, so a frame finds its
candidates with one binary search; the key is then compared byte for byte.

A 4-tuple can be reused: the engine gives every frame of a 4-tuple to the
connection current at that moment, and a new connection starts at its first
frame.  So a frame at a connection's first position is that connection's,
and a TCP connection owns every frame of its 4-tuple from its first frame to
the frame before the next connection's first (the folder gives that bound:
``last_frame`` alone can be earlier than a connection's last frame when the
engine handled a datagram rebuilt from fragments last).

uTP connections of one socket pair live side by side (libtorrent has one
UDP socket for every torrent), told apart by their connection ids.  Each uTP
entry learns its ids at its first frame, as the engine registers them (a SYN
with id X: X and X+1 from its sender, X from the other side; a connection
first seen mid-stream: its id from the sender, id-1 or id+1 from the other
side), and owns the frames carrying them until a later connection of the
same sockets takes one of those ids over (its first frame ends the earlier
connection, as in the engine).  The table therefore also holds the other uTP
connections of those socket pairs, with tag -1.

``select`` walks the records of a batch without creating Python objects and
fills arrays: the records to write (with the entry's tag) and the
*candidates* Python must look at: IP fragments (reassembled by the caller),
and UDP datagrams that may be DHT, tracker or LSD messages about the torrent
(one naming a wanted info hash, one from a socket pair the caller is waiting
for an answer on, LSD, a BEP 51 ``sample_infohashes`` query).  It stops after
a datagram naming an info hash, so that the caller can add the socket pair to
the watch list before the answer is seen.

``write_epbs`` turns selected records into pcapng Enhanced Packet Blocks
(timestamps in nanoseconds, original lengths kept) and ``format_frames_csv``
writes the rows of FILE.frames.csv, both without per-frame Python objects.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, int8_t, int32_t, int64_t, uint64_t
from libc.string cimport memcpy, memcmp, memset, memchr
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_Resize
from cpython.bytes cimport PyBytes_FromStringAndSize

import numpy as np

from analyzer.decode._headers cimport (
    Pkt, Transport, UtpHeader, decode_frame, decode_tcp, decode_udp, decode_utp, be16, K_IP, K_FRAGMENT,
    T_OK, ST_SYN, LT_RAW,
)
from analyzer.protocols._datagram cimport bittorrent_datagram_candidate

cdef enum:
    KEY = 38            # IP version, low endpoint (16 + 2), high endpoint (16 + 2), transport
    DKEY = 37           # directed: IP version, source (16 + 2), destination (16 + 2)
    SHIFT = 40          # position = file index << 40 | frame number
    CACHE = 256         # remembered answers of FlowTable.match
    P_TCP = 6
    P_UTP = 17
    # candidate kinds (what Python must decide)
    C_FRAGMENT = 1      # an IP fragment: reassemble, then decide on the datagram
    C_NAMES = 2         # a datagram whose payload holds a wanted info hash (raw 20 bytes)
    C_WATCH = 3         # a datagram from a socket pair an answer is awaited on
    C_LSD = 4           # a Local Service Discovery message (the hash is in hex)
    C_SAMPLE_QUERY = 5  # a BEP 51 sample_infohashes query (its answer may name the hash)
    R_SELECTED = 16     # a frame of a connection to extract

cdef int64_t END_POS = 0x7FFFFFFFFFFFFFFF
POS_SHIFT = SHIFT
PROTO_TCP = P_TCP
PROTO_UTP = P_UTP
CAND_FRAGMENT = C_FRAGMENT
CAND_NAMES = C_NAMES
CAND_WATCH = C_WATCH
CAND_LSD = C_LSD
CAND_SAMPLE_QUERY = C_SAMPLE_QUERY
SELECTED = R_SELECTED

cdef const char* SAMPLE_METHOD = b"17:sample_infohashes"


cdef inline uint64_t _fnv(const uint8_t* p, int n) noexcept nogil:
    cdef uint64_t h = 1469598103934665603ULL
    cdef int i
    for i in range(n):
        h = (h ^ p[i]) * 1099511628211ULL
    return h


cdef inline int _endpoint_cmp(const uint8_t* a, uint16_t pa, const uint8_t* b, uint16_t pb, int alen) noexcept nogil:
    cdef int r = memcmp(a, b, alen)
    if r != 0:
        return r
    return <int>pa - <int>pb


cdef inline void _put_pair(int ipver, const uint8_t* a, uint16_t pa, const uint8_t* b, uint16_t pb,
                           uint8_t* key) noexcept nogil:
    """The first DKEY bytes of a key: IP version, endpoint a, endpoint b (addresses zero padded)."""
    cdef int alen = 4 if ipver == 4 else 16
    memset(key, 0, DKEY)
    key[0] = ipver
    memcpy(key + 1, a, alen)
    key[17] = pa >> 8
    key[18] = pa & 0xFF
    memcpy(key + 19, b, alen)
    key[35] = pb >> 8
    key[36] = pb & 0xFF


cdef inline bint _fill_key(int ipver, const uint8_t* src, uint16_t sport, const uint8_t* dst, uint16_t dport,
                           int proto, uint8_t* key) noexcept nogil:
    """The canonical key (the engine's order: lower endpoint first); True if src is the lower one."""
    cdef bint src_low = _endpoint_cmp(src, sport, dst, dport, 4 if ipver == 4 else 16) <= 0
    if src_low:
        _put_pair(ipver, src, sport, dst, dport, key)
    else:
        _put_pair(ipver, dst, dport, src, sport, key)
    key[DKEY] = proto
    return src_low


cdef inline uint64_t _directed_hash(int ipver, const uint8_t* src, uint16_t sport, const uint8_t* dst,
                                    uint16_t dport) noexcept nogil:
    cdef uint8_t key[DKEY]
    _put_pair(ipver, src, sport, dst, dport, key)
    return _fnv(key, DKEY)


def directed_hash(int ipver, bytes src, int sport, bytes dst, int dport) -> int:
    """The watch-list hash of datagrams sent from src:sport to dst:dport (packed addresses)."""
    return _directed_hash(ipver, <const uint8_t*>src, sport, <const uint8_t*>dst, dport)


cdef inline bint _contains(const uint8_t* hay, Py_ssize_t n, const uint8_t* needle, Py_ssize_t m) noexcept nogil:
    cdef const uint8_t* p = hay
    cdef const uint8_t* end = hay + n - m
    cdef const void* hit
    if m == 0 or n < m:
        return m == 0
    while p <= end:
        hit = memchr(p, needle[0], end - p + 1)
        if hit == NULL:
            return False
        p = <const uint8_t*>hit
        if memcmp(p, needle, m) == 0:
            return True
        p += 1
    return False


cdef inline bint _in_sorted(const uint64_t[::1] a, uint64_t h) noexcept nogil:
    cdef Py_ssize_t lo = 0, hi = a.shape[0], mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < h:
            lo = mid + 1
        else:
            hi = mid
    return lo < a.shape[0] and a[lo] == h


cdef class FlowTable:
    """The connections to extract (see the module docstring)."""
    cdef readonly Py_ssize_t n
    cdef uint64_t[::1] hashes           # sorted; within one hash by first position
    cdef uint8_t[:, ::1] keys
    cdef int64_t[::1] first_pos
    cdef int64_t[::1] last_pos
    cdef int32_t[::1] tags
    cdef int8_t[::1] utp_learned      # uTP: the connection ids are known (its first frame was seen)
    cdef int32_t[:, ::1] utp_ids      # uTP: ids in packets from the lower endpoint (2), from the higher (2); -1 none
    # the last answers, by hash, side and connection id: entry, and the positions it stays valid for
    cdef int64_t cache_entry[CACHE]
    cdef int64_t cache_from[CACHE]
    cdef int64_t cache_until[CACHE]

    def __init__(self, entries):
        """entries: (ip_version, src packed, src_port, dst packed, dst_port, PROTO_TCP|PROTO_UTP,
        first position, last position, tag); tag -1: a connection not to extract whose first
        frame ends earlier uTP connections of the same sockets (their last position is open)."""
        cdef Py_ssize_t n = len(entries), i
        cdef uint8_t key[KEY]
        keys = np.zeros((n, KEY), np.uint8)
        hashes = np.zeros(n, np.uint64)
        first = np.zeros(n, np.int64)
        last = np.zeros(n, np.int64)
        tags = np.zeros(n, np.int32)
        cdef uint8_t[:, ::1] kv = keys
        for i, (ipver, src, sport, dst, dport, proto, f, l, tag) in enumerate(entries):
            if len(src) != (4 if ipver == 4 else 16) or len(dst) != len(src):
                raise ValueError(f"entry {i}: address length does not match IP version {ipver}")
            _fill_key(ipver, <const uint8_t*><bytes>src, sport, <const uint8_t*><bytes>dst, dport, proto, key)
            memcpy(&kv[i, 0], key, KEY)
            hashes[i] = _fnv(key, KEY)
            first[i], last[i], tags[i] = f, l, tag
        order = np.lexsort((np.arange(n), first, hashes))
        self.n = n
        self.hashes = np.ascontiguousarray(hashes[order])
        self.keys = np.ascontiguousarray(keys[order])
        self.first_pos = np.ascontiguousarray(first[order])
        self.last_pos = np.ascontiguousarray(last[order])
        self.tags = np.ascontiguousarray(tags[order])
        self.utp_learned = np.zeros(n, np.int8)
        self.utp_ids = np.full((n, 4), -1, np.int32)
        for i in range(CACHE):
            self.cache_entry[i] = -1

    cdef inline Py_ssize_t _last_at(self, uint64_t h, int64_t pos) noexcept nogil:
        """The last entry with this hash and a first position <= pos (-1: none)."""
        cdef Py_ssize_t lo = 0, hi = self.n, mid
        while lo < hi:
            mid = (lo + hi) >> 1
            if self.hashes[mid] < h or (self.hashes[mid] == h and self.first_pos[mid] <= pos):
                lo = mid + 1
            else:
                hi = mid
        if lo == 0 or self.hashes[lo - 1] != h:
            return -1
        return lo - 1

    cdef inline bint _carries(self, Py_ssize_t e, int side, int32_t cid) noexcept nogil:
        return self.utp_learned[e] and (self.utp_ids[e, 2 * side] == cid or self.utp_ids[e, 2 * side + 1] == cid)

    cdef int32_t match(self, Pkt* k, uint16_t sport, uint16_t dport, int proto, int64_t pos,
                       UtpHeader* u) noexcept nogil:
        """The tag of the entry this frame belongs to (-1: none, or an entry that only bounds others)."""
        cdef uint8_t key[KEY]
        cdef bint src_low = _fill_key(k.ipver, k.src, sport, k.dst, dport, proto, key)
        cdef uint64_t h = _fnv(key, KEY)
        cdef int side = 0 if src_low else 1          # 0: sent by the lower endpoint
        cdef int32_t cid = u.conn_id if proto == P_UTP else -1
        cdef Py_ssize_t slot = <Py_ssize_t>((h ^ (<uint64_t>(cid + 1) * 0x9E3779B97F4A7C15ULL) ^ <uint64_t>side)
                                            & (CACHE - 1))
        cdef Py_ssize_t e = self.cache_entry[slot], j, i
        cdef int64_t until
        if e >= 0 and self.cache_from[slot] < pos < self.cache_until[slot] and self.hashes[e] == h \
                and pos <= self.last_pos[e] and memcmp(&self.keys[e, 0], key, KEY) == 0 \
                and (proto == P_TCP or self._carries(e, side, cid)):
            return self.tags[e]
        j = self._last_at(h, pos)
        if j < 0:
            return -1
        until = self.first_pos[j + 1] if j + 1 < self.n and self.hashes[j + 1] == h else END_POS
        # a connection that starts at this frame owns it
        i = j
        while i >= 0 and self.hashes[i] == h and self.first_pos[i] == pos:
            if memcmp(&self.keys[i, 0], key, KEY) == 0:
                if proto == P_UTP and not self.utp_learned[i]:
                    self._learn(i, j, h, key, side, u, pos)
                return self._remember(slot, i, pos, until)
            i -= 1
        # else the one whose range holds it (TCP ranges do not overlap; uTP: the one carrying the id)
        i = j
        while i >= 0 and self.hashes[i] == h:
            if memcmp(&self.keys[i, 0], key, KEY) == 0:
                if proto == P_TCP:           # the last one started: its range holds the frame or none does
                    return self._remember(slot, i, pos, until) if pos <= self.last_pos[i] else -1
                if pos <= self.last_pos[i] and self._carries(i, side, cid):
                    return self._remember(slot, i, pos, until)
            i -= 1
        return -1

    cdef inline int32_t _remember(self, Py_ssize_t slot, Py_ssize_t e, int64_t pos, int64_t until) noexcept nogil:
        self.cache_entry[slot] = e
        self.cache_from[slot] = pos
        self.cache_until[slot] = until
        return self.tags[e]

    cdef void _learn(self, Py_ssize_t i, Py_ssize_t i0, uint64_t h, const uint8_t* key, int side, UtpHeader* u,
                     int64_t pos) noexcept nogil:
        """uTP entry i's connection ids, from its first frame (as the engine registers them), and the
        end of earlier connections of the same socket pair whose ids it takes over."""
        cdef uint16_t cid = u.conn_id
        cdef int other = 1 - side
        cdef Py_ssize_t j
        self.utp_learned[i] = 1
        self.utp_ids[i, 2 * side] = cid
        if u.ptype == ST_SYN:
            self.utp_ids[i, 2 * side + 1] = <uint16_t>(cid + 1)
            self.utp_ids[i, 2 * other] = cid
        else:
            self.utp_ids[i, 2 * other] = <uint16_t>(cid - 1)
            self.utp_ids[i, 2 * other + 1] = <uint16_t>(cid + 1)
        j = i0
        while j >= 0 and self.hashes[j] == h:          # the entries started before (sorted by first position)
            if j != i and self.utp_learned[j] and self.first_pos[j] < pos <= self.last_pos[j] \
                    and memcmp(&self.keys[j, 0], key, KEY) == 0 and self._shares_ids(i, j):
                self.last_pos[j] = pos - 1
            j -= 1

    cdef bint _shares_ids(self, Py_ssize_t i, Py_ssize_t j) noexcept nogil:
        cdef int a, b
        for a in range(4):
            if self.utp_ids[i, a] < 0:
                continue
            for b in range(2 * (a // 2), 2 * (a // 2) + 2):
                if self.utp_ids[i, a] == self.utp_ids[j, b]:
                    return True
        return False


cdef inline int _classify(FlowTable table, const uint64_t[::1] watch, const uint8_t* hashes20, Py_ssize_t n_hashes,
                          const uint8_t* p, Py_ssize_t cap, int linktype, int64_t pos, int32_t* tag) noexcept nogil:
    """0: nothing; R_SELECTED (``tag`` set); otherwise a C_* candidate kind."""
    cdef Pkt k
    cdef Transport t
    cdef UtpHeader u
    cdef int kind = decode_frame(p, cap, linktype, &k)
    cdef Py_ssize_t j
    if kind == K_FRAGMENT:
        return C_FRAGMENT
    if kind != K_IP:
        return 0
    if k.proto == 6:
        if decode_tcp(&k, &t) != T_OK:
            return 0
        tag[0] = table.match(&k, t.sport, t.dport, P_TCP, pos, NULL)
        return R_SELECTED if tag[0] >= 0 else 0
    if k.proto != 17 or decode_udp(&k, &t) != T_OK:
        return 0
    if decode_utp(t.pay, t.paycap, t.paylen, &u):
        tag[0] = table.match(&k, t.sport, t.dport, P_UTP, pos, &u)
        return R_SELECTED if tag[0] >= 0 else 0
    if not bittorrent_datagram_candidate(t.pay, t.paycap, t.paylen, t.sport, t.dport):
        return 0
    for j in range(n_hashes):
        if _contains(t.pay, t.paycap, hashes20 + 20 * j, 20):
            return C_NAMES
    if watch.shape[0] and _in_sorted(watch, _directed_hash(k.ipver, k.src, t.sport, k.dst, t.dport)):
        return C_WATCH
    if t.dport == 6771 or t.sport == 6771 or (t.paycap >= 9 and memcmp(t.pay, b"BT-SEARCH", 9) == 0):
        return C_LSD
    if t.paycap >= 1 and t.pay[0] == 0x64 and _contains(t.pay, t.paycap, <const uint8_t*>SAMPLE_METHOD, 20):
        return C_SAMPLE_QUERY
    return 0


def select(FlowTable table, const uint64_t[::1] watch, const uint8_t[::1] hashes20,
           const uint8_t[::1] buf, const int64_t[::1] rec_off, const uint32_t[::1] caplen,
           const int64_t[::1] ts_ns, const uint16_t[::1] iface, const int32_t[::1] if_linktype,
           int64_t pos0, Py_ssize_t start, Py_ssize_t end, int64_t t_from, int64_t t_to,
           int32_t[::1] sel_idx, int32_t[::1] sel_tag, int32_t[::1] cand_idx, int8_t[::1] cand_kind):
    """Records [start, end) of a batch (record i is at position pos0 + i).  Returns
    (selected, candidates, next): selected records in the window go to sel_idx/sel_tag, candidates
    (any time: the caller applies the window) to cand_idx/cand_kind; ``next`` < end after a
    C_NAMES candidate (call again from there once the watch list is updated)."""
    cdef Py_ssize_t i, ns = 0, nc = 0
    cdef const uint8_t* base = &buf[0] if buf.shape[0] else NULL
    cdef const uint8_t* h20 = &hashes20[0] if hashes20.shape[0] else NULL
    cdef Py_ssize_t n_hashes = hashes20.shape[0] // 20
    cdef int r
    cdef int32_t tag = -1
    cdef Py_ssize_t stop = end
    with nogil:
        for i in range(start, end):
            r = _classify(table, watch, h20, n_hashes, base + rec_off[i], caplen[i], if_linktype[iface[i]],
                          pos0 + i, &tag)
            if r == 0:
                continue
            if r == R_SELECTED:
                if t_from <= ts_ns[i] <= t_to:
                    sel_idx[ns] = i
                    sel_tag[ns] = tag
                    ns += 1
                continue
            cand_idx[nc] = i
            cand_kind[nc] = r
            nc += 1
            if r == C_NAMES:
                stop = i + 1
                break
    return ns, nc, stop


def classify_packet(FlowTable table, const uint64_t[::1] watch, const uint8_t[::1] hashes20, bytes packet,
                    int linktype, int64_t pos):
    """(kind, tag) of one packet (a datagram rebuilt from fragments: raw IP, LT_RAW)."""
    cdef int32_t tag = -1
    cdef const uint8_t* h20 = &hashes20[0] if hashes20.shape[0] else NULL
    cdef int r = _classify(table, watch, h20, hashes20.shape[0] // 20, <const uint8_t*>packet, len(packet),
                           linktype, pos, &tag)
    return r, tag


def datagram_fields(const uint8_t[::1] buf, Py_ssize_t off, Py_ssize_t cap, int linktype):
    """(ip_version, src, sport, dst, dport, payload, length on the wire) of a UDP datagram (packed
    addresses; the payload as captured), or None."""
    cdef Pkt k
    cdef Transport t
    cdef int alen
    if cap <= 0 or decode_frame(&buf[off], cap, linktype, &k) != K_IP or k.proto != 17 or decode_udp(&k, &t) != T_OK:
        return None
    alen = 4 if k.ipver == 4 else 16
    return (k.ipver, PyBytes_FromStringAndSize(<const char*>k.src, alen), t.sport,
            PyBytes_FromStringAndSize(<const char*>k.dst, alen), t.dport,
            PyBytes_FromStringAndSize(<const char*>t.pay, t.paycap), t.paylen)


def fragment_ip(const uint8_t[::1] buf, Py_ssize_t off, Py_ssize_t cap, int linktype):
    """(ip_version, IP packet bytes) of an IP fragment frame, or None."""
    cdef Pkt k
    if cap <= 0 or decode_frame(&buf[off], cap, linktype, &k) != K_FRAGMENT:
        return None
    return k.ipver, PyBytes_FromStringAndSize(<const char*>k.ip, k.ipcap)


RAW = LT_RAW


# ---------------------------------------------------------------- pcapng Enhanced Packet Blocks
cdef inline void _le32(uint8_t* p, uint32_t v) noexcept nogil:
    p[0] = v & 0xFF
    p[1] = (v >> 8) & 0xFF
    p[2] = (v >> 16) & 0xFF
    p[3] = (v >> 24) & 0xFF


cdef inline Py_ssize_t epb_size(uint32_t caplen) noexcept nogil:
    return 32 + ((caplen + 3) & ~(<uint32_t>3))


def write_epbs(const uint8_t[::1] buf, const int64_t[::1] rec_off, const uint32_t[::1] caplen,
               const uint32_t[::1] origlen, const int64_t[::1] ts_ns, const uint16_t[::1] iface,
               const int32_t[::1] idb_of_iface, const int32_t[::1] idx, Py_ssize_t n, bytearray out):
    """Append an Enhanced Packet Block (little-endian, timestamp in ns) for records idx[:n] to ``out``;
    returns the number of bytes appended.  Timestamps must not be negative (checked by the caller)."""
    cdef Py_ssize_t j, need = 0, at = len(out), size
    cdef int32_t i
    cdef uint8_t* d
    cdef uint32_t c
    cdef uint64_t t
    cdef const uint8_t* base = &buf[0] if buf.shape[0] else NULL
    for j in range(n):
        need += epb_size(caplen[idx[j]])
    PyByteArray_Resize(out, at + need)
    d = <uint8_t*>PyByteArray_AS_STRING(out) + at
    with nogil:
        for j in range(n):
            i = idx[j]
            c = caplen[i]
            size = epb_size(c)
            t = <uint64_t>ts_ns[i]
            _le32(d, 6)
            _le32(d + 4, <uint32_t>size)
            _le32(d + 8, <uint32_t>idb_of_iface[iface[i]])
            _le32(d + 12, <uint32_t>(t >> 32))
            _le32(d + 16, <uint32_t>(t & 0xFFFFFFFFULL))
            _le32(d + 20, c)
            _le32(d + 24, origlen[i])
            memcpy(d + 28, base + rec_off[i], c)
            _le32(d + size - 4, <uint32_t>size)
            d += size
    return need


def epb_sizes(const uint32_t[::1] caplen, const int32_t[::1] idx, Py_ssize_t n):
    """Sizes of the blocks write_epbs makes for records idx[:n] (uint32 array)."""
    out = np.empty(n, np.uint32)
    cdef uint32_t[::1] o = out
    cdef Py_ssize_t j
    for j in range(n):
        o[j] = epb_size(caplen[idx[j]])
    return out


# ---------------------------------------------------------------- FILE.frames.csv rows
cdef inline Py_ssize_t _put_uint(char* d, uint64_t v, int width) noexcept nogil:
    """Decimal digits of v (at least ``width``, zero padded); returns the count."""
    cdef char tmp[24]
    cdef int n = 0, i
    while v or n == 0 or n < width:
        tmp[n] = <char>(48 + v % 10)
        v //= 10
        n += 1
    for i in range(n):
        d[i] = tmp[n - 1 - i]
    return n


cdef inline Py_ssize_t _put_iso(char* d, int64_t ts) noexcept nogil:
    """ISO 8601 UTC with nanoseconds (analyzer.timefmt.iso_ns): 2026-11-28T17:52:48.903610000Z."""
    cdef int64_t sec = ts // 1000000000, frac = ts % 1000000000
    cdef int64_t days, rem, z, era, doe, yoe, y, doy, mp, dd, mm
    cdef Py_ssize_t n = 0
    if frac < 0:
        frac += 1000000000
        sec -= 1
    days = sec // 86400
    rem = sec % 86400
    if rem < 0:
        rem += 86400
        days -= 1
    # civil_from_days (H. Hinnant)
    z = days + 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    dd = doy - (153 * mp + 2) // 5 + 1
    mm = mp + 3 if mp < 10 else mp - 9
    if mm <= 2:
        y += 1
    n += _put_uint(d + n, <uint64_t>y, 4)
    d[n] = 45
    n += 1
    n += _put_uint(d + n, <uint64_t>mm, 2)
    d[n] = 45
    n += 1
    n += _put_uint(d + n, <uint64_t>dd, 2)
    d[n] = 84
    n += 1
    n += _put_uint(d + n, <uint64_t>(rem // 3600), 2)
    d[n] = 58
    n += 1
    n += _put_uint(d + n, <uint64_t>(rem % 3600 // 60), 2)
    d[n] = 58
    n += 1
    n += _put_uint(d + n, <uint64_t>(rem % 60), 2)
    d[n] = 46
    n += 1
    n += _put_uint(d + n, <uint64_t>frac, 9)
    d[n] = 90
    n += 1
    return n


def format_frames_csv(int64_t first_frame, const int64_t[::1] pos, const int64_t[::1] ts_ns,
                      const int32_t[::1] tag, Py_ssize_t n, const uint8_t[::1] file_blob,
                      const int64_t[::1] file_off, const uint8_t[::1] tag_blob, const int64_t[::1] tag_off):
    """Rows ``frame,original_file,original_frame,ts,evidence`` for excerpt frames first_frame ...;
    the names are CSV fields already quoted as needed, concatenated in the blobs (``*_off``: n+1
    offsets)."""
    cdef Py_ssize_t j, need = 0, at = 0, f, g
    cdef int64_t p
    for j in range(n):
        f = pos[j] >> SHIFT
        need += 20 + (file_off[f + 1] - file_off[f]) + 20 + 32 + (tag_off[tag[j] + 1] - tag_off[tag[j]]) + 5
    out = bytearray(need)
    cdef char* d = <char*>out
    with nogil:
        for j in range(n):
            p = pos[j]
            f = p >> SHIFT
            g = tag[j]
            at += _put_uint(d + at, <uint64_t>(first_frame + j), 1)
            d[at] = 44
            at += 1
            memcpy(d + at, &file_blob[file_off[f]], file_off[f + 1] - file_off[f])
            at += file_off[f + 1] - file_off[f]
            d[at] = 44
            at += 1
            at += _put_uint(d + at, <uint64_t>(p & ((1LL << SHIFT) - 1)), 1)
            d[at] = 44
            at += 1
            at += _put_iso(d + at, ts_ns[j])
            d[at] = 44
            at += 1
            memcpy(d + at, &tag_blob[tag_off[g]], tag_off[g + 1] - tag_off[g])
            at += tag_off[g + 1] - tag_off[g]
            d[at] = 10
            at += 1
    return bytes(out[:at])
