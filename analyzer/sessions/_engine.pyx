# cython: language_level=3
"""The per-frame hot path: decode, classify, find the connection, reassemble.

Theory of operation
-------------------
``Engine.process`` takes a batch of capture records (one buffer, arrays of
record offsets, lengths, timestamps and interface ids, as produced by the
capture scanners) and handles each frame without creating Python objects,
except for a connection's first frame:

1. ``decode_frame`` walks the link and IP headers (pointers into the buffer).
2. Frames that are not TCP are counted by kind (non-IP, UDP, other IP,
   undecodable with a reason); IP fragments are copied out for the Python
   defragmenter, which feeds whole datagrams back through ``process_datagram``.
3. A TCP frame's canonical 4-tuple key finds its ``TcpConnection`` (the last
   key is cached: consecutive frames of one flow skip the dict).  A SYN on a
   closed connection, or with a new ISN, starts a new connection (4-tuple reuse).
4. The ACK moves the other direction's acknowledgement point; the payload goes
   to this direction's ``TcpStream``, whose sink is a ``PeerWireParser``.

Connections are *finished* (streams flushed, gaps declared) when they are
closed and idle for ``CLOSED_IDLE_NS`` of capture time, or at the end of the
input; finished connections are handed to Python through ``drain_finished``.
Live state is therefore proportional to live connections, not to the capture.

With ``partitions`` > 1 an engine handles only flows whose symmetric hash
falls in its ``partition`` (and partition 0 counts everything flow-less), so
several processes can share a capture.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, int32_t, int64_t, uint64_t
from libc.string cimport memcpy, memcmp, memset
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING

from analyzer.decode._headers cimport (
    Pkt, decode_frame, be16, rd32, K_IP, K_NON_IP, K_FRAGMENT, K_BAD_LINK,
    K_UNKNOWN_LINK, K_BAD_IP, LT_RAW,
)
from analyzer.flows._tcp cimport TcpStream, TH_SYN, TH_ACK, TH_FIN, TH_RST
from analyzer.protocols._peerwire cimport PeerWireParser, EV_ALL

cdef int64_t CLOSED_IDLE_NS = 60 * 1000000000
cdef int64_t IDLE_SHRINK_NS = 120 * 1000000000
cdef int64_t SWEEP_EVERY_NS = 10 * 1000000000

# Frame kinds counted by the engine itself (TCP frames are counted per connection).
KIND_NAMES = ("udp", "other_ip", "non_ip", "undecodable")
REASON_NAMES = ("truncated_link_header", "unsupported_link_type", "bad_ip_header",
                "bad_tcp_header", "bad_udp_header", "incomplete_ip_fragments")
cdef enum:
    C_UDP = 0
    C_OTHER_IP = 1
    C_NON_IP = 2
    C_UNDECODABLE = 3
    R_BAD_LINK = 0
    R_UNKNOWN_LINK = 1
    R_BAD_IP = 2
    R_BAD_TCP = 3
    R_BAD_UDP = 4
    R_INCOMPLETE_FRAGMENTS = 5


cdef class TcpConnection:
    """Both directions of one TCP connection.  Endpoint 0 is the initiator when
    the handshake was seen (SYN sender), else the sender of the first frame."""
    cdef readonly int64_t conn_id
    cdef readonly int ip_version
    cdef readonly bytes addr0, addr1
    cdef readonly int port0, port1
    cdef readonly TcpStream s0, s1
    cdef readonly int64_t frames0, frames1, wire_bytes0, wire_bytes1
    cdef readonly int first_file, last_file
    cdef readonly int64_t first_frame, last_frame, first_ts, last_ts
    cdef readonly bint closed, reset
    cdef int64_t close_ts
    cdef bytes key

    @property
    def parser0(self):
        return self.s0.sink

    @property
    def parser1(self):
        return self.s1.sink


cdef class Engine:
    cdef dict conns
    cdef list finished
    cdef readonly list fragments
    cdef public int event_mask
    cdef int64_t next_conn_id
    cdef int partitions, partition
    cdef uint8_t last_key[37]
    cdef TcpConnection last_conn
    cdef int64_t last_sweep_ts, max_ts
    cdef int64_t kind_frames[4]
    cdef int64_t kind_bytes[4]
    cdef int64_t reason_frames[6]
    cdef readonly dict unknown_link_types
    cdef readonly int64_t frames_seen, tcp_frames, reused_tuples

    def __init__(self, int partitions=1, int partition=0, int event_mask=0):
        self.conns = {}
        self.finished = []
        self.fragments = []
        self.event_mask = event_mask
        self.partitions = partitions
        self.partition = partition
        self.last_conn = None
        self.unknown_link_types = {}
        self.last_sweep_ts = -1

    # ------------------------------------------------------------------ Python API
    def process(self, const uint8_t[::1] buf, const int64_t[::1] rec_off, const uint32_t[::1] caplen,
                const uint32_t[::1] origlen, const int64_t[::1] ts_ns, const uint16_t[::1] iface,
                const int32_t[::1] if_linktype, int file_idx, int64_t first_frame_no,
                Py_ssize_t start, Py_ssize_t end):
        """Handle records [start, end) of a batch; record i is frame first_frame_no + i."""
        cdef Py_ssize_t i
        cdef const uint8_t* base = &buf[0] if buf.shape[0] else NULL
        for i in range(start, end):
            self._frame(base + rec_off[i], caplen[i], origlen[i], ts_ns[i],
                        if_linktype[iface[i]], file_idx, first_frame_no + i, 1)
            if ts_ns[i] > self.max_ts:
                self.max_ts = ts_ns[i]
        if self.max_ts - self.last_sweep_ts >= SWEEP_EVERY_NS:
            self._sweep(False)

    def process_datagram(self, bytes ip_packet, int64_t ts_ns, int file_idx, int64_t frame_no,
                         int64_t n_frames, int64_t wire_bytes):
        """A datagram rebuilt from ``n_frames`` IP fragments (raw IP, no link header)."""
        cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(ip_packet)
        self.frames_seen -= n_frames      # already counted one by one as fragments
        self._frame(p, len(ip_packet), wire_bytes, ts_ns, LT_RAW, file_idx, frame_no, n_frames)

    def count_undecodable(self, int64_t frames, int64_t wire_bytes, int reason):
        if not self._mine_flowless():
            return
        self.kind_frames[C_UNDECODABLE] += frames
        self.kind_bytes[C_UNDECODABLE] += wire_bytes
        self.reason_frames[reason] += frames

    def finish(self):
        """End of input: finish every connection."""
        self._sweep(True)

    def drain_finished(self):
        out = self.finished
        self.finished = []
        return out

    @property
    def live_connections(self):
        return len(self.conns)

    def kind_counts(self):
        return {KIND_NAMES[i]: (self.kind_frames[i], self.kind_bytes[i]) for i in range(4)}

    def undecodable_reasons(self):
        return {REASON_NAMES[i]: self.reason_frames[i] for i in range(6) if self.reason_frames[i]}

    # ------------------------------------------------------------------ per frame
    cdef void _count(self, int kind, int64_t wire, int64_t weight):
        self.kind_frames[kind] += weight
        self.kind_bytes[kind] += wire

    cdef void _frame(self, const uint8_t* p, Py_ssize_t cap, int64_t wire, int64_t ts, int linktype,
                     int file_idx, int64_t frame_no, int64_t weight):
        cdef Pkt k
        cdef int kind
        self.frames_seen += weight
        kind = decode_frame(p, cap, linktype, &k)
        if kind == K_IP:
            if k.proto == 6:
                self._tcp(&k, wire, ts, file_idx, frame_no, weight)
                return
            if not self._mine_flowless():
                return
            if k.proto == 17:
                if k.l4cap < 8 and k.l4len >= 8:
                    pass      # truncated by snap length: still a UDP frame
                elif k.l4len < 8:
                    self._undecodable(wire, weight, R_BAD_UDP)
                    return
                self._count(C_UDP, wire, weight)
            else:
                self._count(C_OTHER_IP, wire, weight)
        elif kind == K_FRAGMENT:
            # every partition rebuilds datagrams (their flows may be its own);
            # the frames are counted once the datagram is whole (or given up)
            self.fragments.append((file_idx, frame_no, ts, wire, k.ipver,
                                   PyBytes_FromStringAndSize(<const char*>k.ip, k.ipcap)))
        elif not self._mine_flowless():
            return
        elif kind == K_NON_IP:
            self._count(C_NON_IP, wire, weight)
        elif kind == K_BAD_LINK:
            self._undecodable(wire, weight, R_BAD_LINK)
        elif kind == K_UNKNOWN_LINK:
            self._undecodable(wire, weight, R_UNKNOWN_LINK)
            self.unknown_link_types[linktype] = self.unknown_link_types.get(linktype, 0) + weight
        else:
            self._undecodable(wire, weight, R_BAD_IP)

    cdef inline bint _mine_flowless(self):
        # Frames without a flow (and fragments, reassembled in partition 0's
        # process only) belong to partition 0.
        return self.partition == 0

    cdef void _undecodable(self, int64_t wire, int64_t weight, int reason):
        self._count(C_UNDECODABLE, wire, weight)
        self.reason_frames[reason] += weight

    cdef void _tcp(self, Pkt* k, int64_t wire, int64_t ts, int file_idx, int64_t frame_no, int64_t weight):
        cdef const uint8_t* t = k.l4
        cdef int doff, flags, alen, d
        cdef uint16_t sport, dport
        cdef uint8_t key[37]
        cdef Py_ssize_t paylen, paycap
        cdef TcpConnection c
        cdef TcpStream s, other
        if k.l4cap < 20 or k.l4len < 20:
            if self._mine_flowless():
                self._undecodable(wire, weight, R_BAD_TCP)
            return
        doff = (t[12] >> 4) * 4
        if doff < 20 or doff > k.l4len or doff > k.l4cap:
            if self._mine_flowless():
                self._undecodable(wire, weight, R_BAD_TCP)
            return
        sport = be16(t)
        dport = be16(t + 2)
        flags = t[13]
        paylen = k.l4len - doff
        paycap = k.l4cap - doff
        # canonical key: version, then the lower (addr, port) endpoint first
        alen = 4 if k.ipver == 4 else 16
        memset(key, 0, 37)
        key[0] = k.ipver
        if _endpoint_cmp(k.src, sport, k.dst, dport, alen) <= 0:
            memcpy(key + 1, k.src, alen)
            key[17] = sport >> 8; key[18] = sport & 0xFF
            memcpy(key + 19, k.dst, alen)
            key[35] = dport >> 8; key[36] = dport & 0xFF
        else:
            memcpy(key + 1, k.dst, alen)
            key[17] = dport >> 8; key[18] = dport & 0xFF
            memcpy(key + 19, k.src, alen)
            key[35] = sport >> 8; key[36] = sport & 0xFF
        if self.partitions > 1 and _key_hash(key) % self.partitions != <uint64_t>self.partition:
            return
        self.tcp_frames += weight
        if self.last_conn is not None and memcmp(key, self.last_key, 37) == 0:
            c = self.last_conn
        else:
            pykey = PyBytes_FromStringAndSize(<char*>key, 37)
            c = self.conns.get(pykey)
            if c is None:
                c = self._new_conn(pykey, k, sport, dport, flags, ts, file_idx, frame_no)
            memcpy(self.last_key, key, 37)
            self.last_conn = c
        d = 0 if (sport == c.port0 and memcmp(k.src, PyBytes_AS_STRING(c.addr0), alen) == 0) else 1
        s = c.s0 if d == 0 else c.s1
        if (flags & (TH_SYN | TH_ACK)) == TH_SYN and s.started and \
                (c.closed or not s.syn_seen or s.isn != rd32(t + 4)):
            # 4-tuple reuse: a fresh SYN on a closed connection or with a new ISN
            self.reused_tuples += 1
            self._finish_conn(c)
            c = self._new_conn(c.key, k, sport, dport, flags, ts, file_idx, frame_no)
            self.last_conn = c
            d = 0
            s = c.s0
        other = c.s1 if d == 0 else c.s0
        if d == 0:
            c.frames0 += weight
            c.wire_bytes0 += wire
        else:
            c.frames1 += weight
            c.wire_bytes1 += wire
        c.last_file = file_idx
        c.last_frame = frame_no
        if ts > c.last_ts:
            c.last_ts = ts
        elif ts < c.first_ts:
            c.first_ts = ts      # capture timestamps can go backwards: keep the span
        if flags & TH_ACK:
            other.ack(rd32(t + 8))
        if s.sink is None and (flags & TH_SYN or paylen > 0):
            s.sink = PeerWireParser(bool(flags & TH_SYN), self.event_mask)
        s.segment(rd32(t + 4), flags, t + doff, paycap if paycap < paylen else paylen, paylen)
        if not c.closed:
            if flags & TH_RST:
                c.closed = True
                c.reset = True
                c.close_ts = ts
            elif c.s0.fin_seen and c.s1.fin_seen:
                c.closed = True
                c.close_ts = ts

    cdef TcpConnection _new_conn(self, bytes pykey, Pkt* k, uint16_t sport, uint16_t dport, int flags,
                                 int64_t ts, int file_idx, int64_t frame_no):
        cdef TcpConnection c = TcpConnection.__new__(TcpConnection)
        cdef int alen = 4 if k.ipver == 4 else 16
        c.conn_id = self.next_conn_id
        self.next_conn_id += 1
        c.key = pykey
        c.ip_version = k.ipver
        src = PyBytes_FromStringAndSize(<const char*>k.src, alen)
        dst = PyBytes_FromStringAndSize(<const char*>k.dst, alen)
        if (flags & (TH_SYN | TH_ACK)) == (TH_SYN | TH_ACK):
            # first frame seen is the SYN-ACK: the receiver is the initiator
            c.addr0, c.port0, c.addr1, c.port1 = dst, dport, src, sport
        else:
            c.addr0, c.port0, c.addr1, c.port1 = src, sport, dst, dport
        c.s0 = TcpStream()
        c.s1 = TcpStream()
        c.first_file = file_idx
        c.first_frame = frame_no
        c.first_ts = ts
        c.last_ts = ts
        self.conns[pykey] = c
        return c

    # ------------------------------------------------------------------ connection lifetime
    cdef void _finish_conn(self, TcpConnection c):
        c.s0.finish()
        c.s1.finish()
        if self.conns.get(c.key) is c:
            del self.conns[c.key]
        if self.last_conn is c:
            self.last_conn = None
        self.finished.append(c)

    cdef void _sweep(self, bint all_):
        cdef TcpConnection c
        cdef list done = []
        self.last_sweep_ts = self.max_ts
        for c in self.conns.values():
            if all_ or (c.closed and self.max_ts - c.last_ts > CLOSED_IDLE_NS):
                done.append(c)
            elif self.max_ts - c.last_ts > IDLE_SHRINK_NS:
                c.s0.shrink()
                c.s1.shrink()
        # deterministic order: by creation
        done.sort(key=_conn_order)
        for c in done:
            self._finish_conn(c)


def _conn_order(TcpConnection c):
    return c.conn_id


cdef inline int _endpoint_cmp(const uint8_t* a, uint16_t pa, const uint8_t* b, uint16_t pb, int alen) noexcept:
    cdef int r = memcmp(a, b, alen)
    if r != 0:
        return r
    return <int>pa - <int>pb


cdef inline uint64_t _key_hash(const uint8_t* key) noexcept:
    # FNV-1a over the canonical key: the same for both directions by construction.
    cdef uint64_t h = 1469598103934665603ULL
    cdef int i
    for i in range(37):
        h = (h ^ key[i]) * 1099511628211ULL
    return h
