# cython: language_level=3
"""The per-frame hot path: decode, classify, find the connection, reassemble.

Theory of operation
-------------------
``Engine.process`` takes a batch of capture records (one buffer, arrays of
record offsets, lengths, timestamps and interface ids, as produced by the
capture scanners) and handles each frame without creating Python objects,
except for a connection's first frame:

1. ``decode_frame`` walks the link and IP headers (pointers into the buffer).
2. IP fragments go to the Python defragmenter (``defrag``) at their place in
   the capture; the fragment that completes a datagram has it handled there
   and then (``process_datagram``), so results do not depend on batch sizes.
   Without ``defrag`` they are copied out (``fragments``) for the caller.  Frames that are neither TCP
   nor UDP are counted by kind (non-IP, other IP, undecodable with a reason).
3. TCP: the canonical 4-tuple key finds the ``TcpConnection`` (the last key
   is cached); a SYN on a closed connection or with a new ISN starts a new one
   (4-tuple reuse).  The ACK moves the other direction's acknowledgement
   point; the payload goes to this direction's ``TcpStream``.
4. UDP: a datagram whose payload is a consistent uTP header (version 1, known
   type, well-formed extension chain, payload only where the type allows it)
   goes to its ``UtpConnection``, found by *half-flow* (source, destination,
   connection id): the SYN's id X is used by the initiator's later packets as
   X+1 and by the responder as X; a connection first seen mid-stream
   registers both possible reverse ids.  Other datagrams that could be DHT,
   UDP tracker or Local Service Discovery messages are copied out to Python
   (``datagrams``); the rest are counted as UDP.
5. Each stream's sink is a ``PeerWireParser``.

Live connections are capped (``max_live``, default ``MAX_LIVE_CONNECTIONS``):
a SYN flood or scan must not take memory without bound.  Beyond the cap the
oldest idle sixteenth (least recent last frame) are finished at once and
counted (``finished_at_cap``); a connection without payload costs a few
hundred bytes (its streams' payload state and references are allocated with
the first payload, see ``flows._tcp`` and ``_conn``).

Connections are *finished* (streams flushed, gaps declared) when closed and
idle for ``CLOSED_IDLE_NS`` of capture time, when silent for ``open_idle_ns``
(default 10 minutes: peers send keep-alives every two minutes and drop silent
connections, and a connection whose FIN/RST was never captured must not stay
in memory for the rest of a weeks-long capture), or at the end of the input,
and handed to Python through ``drain_finished``.  Live state is proportional
to live connections, not to the capture.  Should a connection finished for
silence speak again, its later frames form a new connection seen mid-stream
(the analysis links the two; the findings count the connections still open
more than ``OPEN_IDLE_NS`` before the end of the capture).

Given ``only`` (a set of canonical 4-tuple keys, see ``canonical_key`` in
sessions/records.py), an engine follows only those flows and counts nothing
else: the evidence stage re-reads a capture for the connections of some
torrents.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, int32_t, int64_t, uint64_t
from libc.string cimport memcpy, memcmp, memset
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING

from analyzer.decode._headers cimport (
    Pkt, Transport, UtpHeader, decode_frame, decode_tcp, decode_udp, decode_utp, prefetch_frame, PREFETCH_FRAMES_AHEAD,
    K_IP, K_NON_IP, K_FRAGMENT,
    K_BAD_LINK, K_UNKNOWN_LINK, K_BAD_IP, LT_RAW, T_OK, T_CUT, TH_SYN, TH_ACK, TH_FIN, TH_RST,
    ST_DATA, ST_FIN, ST_STATE, ST_RESET, ST_SYN,
)
from analyzer.flows._tcp cimport PEND_REACH, TcpStream
from analyzer.flows._inplace cimport sweep as release_blocks_behind
from analyzer.flows._utp cimport UtpStream
from analyzer.protocols._datagram cimport bittorrent_datagram_candidate
from analyzer.protocols._peerwire cimport PeerWireParser
from analyzer.sessions._conn cimport Connection, TcpConnection, UtpConnection

import numpy as np
from analyzer.flows._inplace import release_all as release_in_place

cdef int64_t CLOSED_IDLE_NS = 60 * 1000000000
cdef int64_t IDLE_SHRINK_NS = 120 * 1000000000
OPEN_IDLE_NS = 600 * 1000000000
cdef int64_t IDLE_MARGIN_NS = 60 * 1000000000   # the sweep frees silent connections this much later
cdef int64_t SWEEP_EVERY_NS = 10 * 1000000000
cdef Py_ssize_t GIL_EVERY = 1023        # frames between two moments the interpreter lock is given up

MAX_LIVE_CONNECTIONS = 1 << 17          # live connections (TCP and uTP) per engine; beyond, the oldest idle are finished

# Frame kinds counted by the engine itself (connections count their own frames).
KIND_NAMES = ("udp", "other_ip", "non_ip", "undecodable")
REASON_NAMES = ("truncated_link_header", "unsupported_link_type", "bad_ip_header",
                "bad_tcp_header", "bad_udp_header", "incomplete_ip_fragments",
                "damaged_interface", "interface_over_limit")   # the last two: link types -1, -2 (reader.py)
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
    R_DAMAGED_INTERFACE = 6
    R_INTERFACE_OVER_LIMIT = 7
    N_REASONS = 8
    KEY_LEN = 37


cdef class Engine:
    cdef dict conns                 # TCP: canonical key -> TcpConnection
    cdef dict utp_halves            # uTP: half-flow key -> (UtpConnection, direction)
    cdef dict utp_conns             # uTP: conn_id -> UtpConnection (live)
    cdef list finished
    cdef readonly list fragments
    cdef readonly list datagrams
    cdef public int event_mask
    cdef int64_t next_conn_id
    cdef object only                # None, or the canonical keys of the only flows to follow
    cdef uint8_t last_key[KEY_LEN]
    cdef TcpConnection last_conn
    cdef int64_t last_sweep_ts, max_ts
    cdef int64_t kind_frames[4]
    cdef int64_t kind_bytes[4]
    cdef int64_t reason_frames[N_REASONS]
    cdef readonly dict unknown_link_types
    cdef readonly int64_t frames_seen, reused_tuples
    cdef public Py_ssize_t max_live      # cap on live connections (see MAX_LIVE_CONNECTIONS; 0: none)
    cdef readonly int64_t finished_at_cap   # connections finished early because of it
    cdef list closing                    # finish(): the connections being finished, by creation
    cdef Py_ssize_t closing_at
    cdef public int64_t open_idle_ns  # finish a connection silent for this long (capture time)
    cdef public object verifier     # optional: .tap(connection, direction, parser) -> block sink or None
    cdef public object extensions   # optional: sessions.extensions.ExtensionRouter for BEP 10 messages
    cdef public object defrag       # optional: decode.fragments.Defragmenter, fed fragments in place
    cdef readonly int cur_file       # the frame being handled (for evidence references)
    cdef readonly int64_t cur_frame, cur_ts
    # the frame of the capture being read: cur_* except while a datagram rebuilt from fragments is
    # handled (cur_*: its first fragment; order_*: the fragment that completed it), so that a
    # staged run's block log orders blocks as the one-process run hands them over
    cdef readonly int order_file
    cdef readonly int64_t order_frame
    cdef bint in_datagram
    cdef list pend_streams          # TCP streams with deliveries left in a mapped buffer (flows._tcp)
    cdef object cur_owner           # the buffer of the batch in hand when it never changes (a mapped
                                    # file): TCP streams may leave delivered bytes there (flows._tcp)

    def __init__(self, int event_mask=0, only=None):
        self.open_idle_ns = OPEN_IDLE_NS
        self.conns = {}
        self.pend_streams = []
        self.utp_halves = {}
        self.utp_conns = {}
        self.finished = []
        self.fragments = []
        self.datagrams = []
        self.event_mask = event_mask
        self.only = frozenset(only) if only is not None else None
        self.last_conn = None
        self.unknown_link_types = {}
        self.last_sweep_ts = -1
        self.max_live = MAX_LIVE_CONNECTIONS

    # ------------------------------------------------------------------ Python API
    def process(self, const uint8_t[::1] buf, const int64_t[::1] rec_off, const uint32_t[::1] caplen,
                const uint32_t[::1] origlen, const int64_t[::1] ts_ns, const uint16_t[::1] iface,
                const int32_t[::1] if_linktype, int file_idx, int64_t first_frame_no,
                Py_ssize_t start, Py_ssize_t end):
        """Handle records [start, end) of a batch; record i is frame first_frame_no + i."""
        cdef Py_ssize_t i
        cdef const uint8_t* base = &buf[0] if buf.shape[0] else NULL
        if self.cur_owner is not None and start < end:
            self._release_behind(base + rec_off[start])
        for i in range(start, end):
            self._record(i, base + rec_off[i], caplen[i], origlen[i], ts_ns[i],
                         if_linktype[iface[i]], file_idx, first_frame_no + i)
        if self.max_ts - self.last_sweep_ts >= SWEEP_EVERY_NS:
            self._sweep()

    def process_records(self, const uint8_t[::1] buf, const int64_t[::1] rec_off, const uint32_t[::1] caplen,
                        const uint32_t[::1] origlen, const int64_t[::1] ts_ns, const int32_t[::1] linktype,
                        const int64_t[::1] frame_no, int file_idx, Py_ssize_t n, owner=None):
        """Handle records [0, n) given with their own link type and frame number (spilled
        frames of one input file, in frame order).  ``owner``: the object ``buf`` views when its
        bytes never change while it is referenced (a mapped file), else None."""
        cdef Py_ssize_t i
        cdef const uint8_t* base = &buf[0] if buf.shape[0] else NULL
        self.cur_owner = owner
        if owner is not None and n:
            self._release_behind(base + rec_off[0])
        try:
            for i in range(n):
                if i + PREFETCH_FRAMES_AHEAD < n:
                    # a flows task's records are one shard's, read where they lie in the input: the
                    # scan did not just pass there, so each record's headers are a cache miss; asked
                    # for a few records ahead (their offsets are known), the misses overlap
                    prefetch_frame(base + rec_off[i + PREFETCH_FRAMES_AHEAD])
                self._record(i, base + rec_off[i], caplen[i], origlen[i], ts_ns[i], linktype[i], file_idx,
                             frame_no[i])
        finally:
            self.cur_owner = None
        if self.max_ts - self.last_sweep_ts >= SWEEP_EVERY_NS:
            self._sweep()

    cdef inline void _record(self, Py_ssize_t i, const uint8_t* p, Py_ssize_t cap, int64_t wire, int64_t ts,
                             int linktype, int file_idx, int64_t frame_no):
        """Record ``i`` of a batch (one frame of the capture)."""
        self._frame(p, cap, wire, ts, linktype, file_idx, frame_no, 1)
        if ts > self.max_ts:
            self.max_ts = ts
        if (i & GIL_EVERY) == GIL_EVERY:
            with nogil:         # let the hashing thread have the interpreter lock now and then
                pass

    cdef void _release_behind(self, const uint8_t* here):
        """A batch of a mapped buffer begins at ``here``: streams copy their deliveries left more
        than PEND_REACH behind it (the buffer gives those pages back after this batch)."""
        cdef TcpStream s
        cdef Py_ssize_t i, kept = 0
        cdef list streams = self.pend_streams
        release_blocks_behind(self.cur_owner, here)     # piece blocks left in place (flows._inplace)
        if not streams:
            return
        for i in range(len(streams)):
            s = streams[i]
            if s.release_before(here - PEND_REACH):
                streams[kept] = s
                kept += 1
        del streams[kept:]

    def process_batch(self, batch, int file_idx):
        """Handle every record of a capture reader's Batch of file ``file_idx``."""
        self.cur_owner = batch.buf if batch.stable else None
        try:
            self.process(batch.buf, batch.rec_off, batch.caplen, batch.origlen, batch.ts_ns, batch.iface,
                         batch.if_linktype, file_idx, batch.first_frame_no, 0, batch.n)
        finally:
            self.cur_owner = None

    cdef void _fragment(self, int file_idx, int64_t frame_no, int64_t ts, int64_t wire, int ipver, bytes ip):
        if self.defrag is None:
            self.fragments.append((file_idx, frame_no, ts, wire, ipver, ip))
            return
        d = self.defrag.add(file_idx, frame_no, ts, wire, ipver, ip)
        if d is not None:
            owner = self.cur_owner
            self.in_datagram = True
            self.cur_owner = None           # the datagram's bytes are its own, not the batch's
            try:
                self.process_datagram(d.packet, d.ts_ns, d.file_idx, d.frame_no, d.frames, d.wire_bytes)
            finally:
                self.in_datagram = False
                self.cur_owner = owner

    def release_buffers(self):
        """End of an input file: TCP streams copy the delivered bytes they left in its buffer into
        their rings (flows._tcp), and piece blocks left there are copied (flows._inplace), so that
        nothing keeps the file mapped."""
        cdef TcpConnection c
        for c in self.conns.values():
            c.s0.release_buffer()
            c.s1.release_buffer()
        release_in_place()

    def process_datagram(self, bytes ip_packet, int64_t ts_ns, int file_idx, int64_t frame_no,
                         int64_t n_frames, int64_t wire_bytes):
        """A datagram rebuilt from ``n_frames`` IP fragments (raw IP, no link header)."""
        cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(ip_packet)
        self.frames_seen -= n_frames      # already counted one by one as fragments
        self._frame(p, len(ip_packet), wire_bytes, ts_ns, LT_RAW, file_idx, frame_no, n_frames)

    def count_undecodable(self, int64_t frames, int64_t wire_bytes, str reason):
        """Frames found undecodable outside the engine (``reason``: one of REASON_NAMES)."""
        if self._mine_flowless():
            self._undecodable(wire_bytes, frames, REASON_NAMES.index(reason))

    def finish(self, Py_ssize_t limit=0):
        """End of input: finish every connection, in order of creation.  ``limit`` > 0: at most
        that many per call, so that the caller can drain each lot (memory then follows the
        records being made, not every connection at once); returns how many are left."""
        cdef Connection c
        cdef Py_ssize_t n = 0, left
        if self.closing is None:
            self.last_sweep_ts = self.max_ts
            self.closing = sorted([*self.conns.values(), *self.utp_conns.values()], key=_conn_order)
            self.closing_at = 0
        while self.closing_at < len(self.closing) and (limit <= 0 or n < limit):
            c = self.closing[self.closing_at]
            self.closing[self.closing_at] = None
            self.closing_at += 1
            n += 1
            self._finish_conn(c)
        left = len(self.closing) - self.closing_at
        if left == 0:
            self.closing = None
        return left

    def drain_finished(self):
        out = self.finished
        self.finished = []
        return out

    def take_datagrams(self):
        out = self.datagrams
        self.datagrams = []
        return out

    def kind_counts(self):
        return {KIND_NAMES[i]: (self.kind_frames[i], self.kind_bytes[i]) for i in range(4)}

    def undecodable_reasons(self):
        return {REASON_NAMES[i]: self.reason_frames[i] for i in range(N_REASONS) if self.reason_frames[i]}

    # ------------------------------------------------------------------ per frame
    cdef void _count(self, int kind, int64_t wire, int64_t weight):
        self.kind_frames[kind] += weight
        self.kind_bytes[kind] += wire

    cdef void _frame(self, const uint8_t* p, Py_ssize_t cap, int64_t wire, int64_t ts, int linktype,
                     int file_idx, int64_t frame_no, int64_t weight):
        cdef Pkt k
        cdef int kind
        self.frames_seen += weight
        self.cur_file = file_idx
        self.cur_frame = frame_no
        self.cur_ts = ts
        if not self.in_datagram:
            self.order_file = file_idx
            self.order_frame = frame_no
        kind = decode_frame(p, cap, linktype, &k)
        if kind == K_IP:
            if k.proto == 6:
                self._tcp(&k, wire, ts, file_idx, frame_no, weight)
            elif k.proto == 17:
                self._udp(&k, wire, ts, file_idx, frame_no, weight)
            elif self._mine_flowless():
                self._count(C_OTHER_IP, wire, weight)
        elif kind == K_FRAGMENT:
            # the defragmenter rebuilds datagrams (their flows may be followed);
            # the frames are counted once the datagram is whole (or given up)
            self._fragment(file_idx, frame_no, ts, wire, k.ipver,
                           PyBytes_FromStringAndSize(<const char*>k.ip, k.ipcap))
        elif not self._mine_flowless():
            return
        elif kind == K_NON_IP:
            self._count(C_NON_IP, wire, weight)
        elif kind == K_BAD_LINK:
            self._undecodable(wire, weight, R_BAD_LINK)
        elif kind == K_UNKNOWN_LINK and linktype < 0:     # the reader's marks for unusable interfaces
            self._undecodable(wire, weight, R_DAMAGED_INTERFACE if linktype == -1 else R_INTERFACE_OVER_LIMIT)
        elif kind == K_UNKNOWN_LINK:
            self._undecodable(wire, weight, R_UNKNOWN_LINK)
            self.unknown_link_types[linktype] = self.unknown_link_types.get(linktype, 0) + weight
        else:
            self._undecodable(wire, weight, R_BAD_IP)

    cdef inline bint _mine_flowless(self):
        return self.only is None

    cdef void _undecodable(self, int64_t wire, int64_t weight, int reason):
        self._count(C_UNDECODABLE, wire, weight)
        self.reason_frames[reason] += weight

    cdef void _canonical_key(self, Pkt* k, uint16_t sport, uint16_t dport, uint8_t* key):
        """Fill the direction-independent 4-tuple key."""
        cdef int alen = 4 if k.ipver == 4 else 16
        memset(key, 0, KEY_LEN)
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

    cdef inline bint _followed(self, bytes pykey):
        """Is the flow of this canonical key followed (always, without ``only``)?"""
        return self.only is None or pykey in self.only

    cdef void _init_conn(self, Connection c, bytes pykey, Pkt* k, uint16_t sport, uint16_t dport,
                         bint reversed_roles, int64_t ts, int file_idx, int64_t frame_no):
        cdef int alen = 4 if k.ipver == 4 else 16
        c.conn_id = self.next_conn_id
        self.next_conn_id += 1
        c.key = pykey
        c.ip_version = k.ipver
        if reversed_roles:
            c.set_addresses(k.dst, k.src)
            c.port0, c.port1 = dport, sport
        else:
            c.set_addresses(k.src, k.dst)
            c.port0, c.port1 = sport, dport
        c.first_file = file_idx
        c.first_frame = frame_no
        c.first_ts = ts
        c.last_ts = ts

    # ------------------------------------------------------------------ TCP
    cdef void _tcp(self, Pkt* k, int64_t wire, int64_t ts, int file_idx, int64_t frame_no, int64_t weight):
        cdef Transport t
        cdef int alen, d
        cdef uint8_t key[KEY_LEN]
        cdef TcpConnection c
        cdef TcpStream s, other
        cdef int64_t b0, b1, a0, a1
        if decode_tcp(k, &t) != T_OK:
            if self._mine_flowless():
                self._undecodable(wire, weight, R_BAD_TCP)
            return
        alen = 4 if k.ipver == 4 else 16
        self._canonical_key(k, t.sport, t.dport, key)
        if self.last_conn is not None and memcmp(key, self.last_key, KEY_LEN) == 0:
            c = self.last_conn          # (a followed flow: last_conn is only ever one)
        else:
            pykey = PyBytes_FromStringAndSize(<char*>key, KEY_LEN)
            if not self._followed(pykey):
                return
            c = self.conns.get(pykey)
            if c is None:
                c = self._new_tcp(pykey, k, t.sport, t.dport, t.flags, ts, file_idx, frame_no)
            memcpy(self.last_key, key, KEY_LEN)
            self.last_conn = c
        if self._expired(c, ts):
            # closed a while ago, or silent for longer than any peer keeps a connection: what
            # follows is a new connection seen mid-stream (decided here, frame by frame, so that
            # the split does not depend on where batches end; the sweep frees memory later)
            if (t.flags & (TH_SYN | TH_ACK)) == TH_SYN:
                self.reused_tuples += 1
            self._finish_conn(c)
            c = self._new_tcp(c.key, k, t.sport, t.dport, t.flags, ts, file_idx, frame_no)
            self.last_conn = c
        d = 0 if (t.sport == c.port0 and memcmp(k.src, c.a0, alen) == 0) else 1
        s = c.s0 if d == 0 else c.s1
        if (t.flags & (TH_SYN | TH_ACK)) == TH_SYN and s.started and \
                (c.closed or not s.syn_seen or s.isn != t.seq):
            # 4-tuple reuse: a fresh SYN on a closed connection or with a new ISN
            self.reused_tuples += 1
            self._finish_conn(c)
            c = self._new_tcp(c.key, k, t.sport, t.dport, t.flags, ts, file_idx, frame_no)
            self.last_conn = c
            d = 0
            s = c.s0
        other = c.s1 if d == 0 else c.s0
        c.touch(d, wire, weight, ts, file_idx, frame_no)
        b0 = _block_bytes(c.s0.sink)
        b1 = _block_bytes(c.s1.sink)
        a0 = c.s0.marked_acked_bytes
        a1 = c.s1.marked_acked_bytes
        if t.flags & TH_ACK:
            other.ack(t.ack)
        if s.sink is None and t.paylen > 0:
            # parsers are made at the first payload (a SYN flood's half-open connections never get
            # one); bytes the stream already gave up as lost come first, as they would have
            s.sink = self._parser(c, d, s.syn_seen or bool(t.flags & TH_SYN))
            if s.next_off:
                (<PeerWireParser>s.sink).feed_gap(s.next_off)
        if t.paylen > 0 and c.flight1 < 0:
            c.note_payload(d, c.s0.max_end, c.s1.max_end)
        s.segment(t.seq, t.flags, t.pay, t.paycap, t.paylen, self.cur_owner)
        self._track(c, c.s0.sink, c.s1.sink, b0, b1, a0, a1, ts, file_idx, frame_no)
        if t.flags & TH_RST:
            c.close(True)
        elif c.s0.fin_seen and c.s1.fin_seen:
            c.close(False)

    cdef PeerWireParser _parser(self, Connection c, int d, bint at_start):
        cdef PeerWireParser p = PeerWireParser(at_start, self.event_mask)
        if self.verifier is not None:
            p.block_sink = self.verifier.tap(c, d, p, self)
        if self.extensions is not None:
            p.ext_messages = []
        return p

    cdef TcpConnection _new_tcp(self, bytes pykey, Pkt* k, uint16_t sport, uint16_t dport, int flags,
                                int64_t ts, int file_idx, int64_t frame_no):
        cdef TcpConnection c = TcpConnection.__new__(TcpConnection)
        # first frame seen is the SYN-ACK: its receiver is the initiator
        self._init_conn(c, pykey, k, sport, dport, (flags & (TH_SYN | TH_ACK)) == (TH_SYN | TH_ACK),
                        ts, file_idx, frame_no)
        c.s0 = TcpStream.__new__(TcpStream)       # (no __init__: no sink yet)
        c.s1 = TcpStream.__new__(TcpStream)
        c.s0.pend_registry = c.s1.pend_registry = self.pend_streams
        self.conns[pykey] = c
        self._check_live(c)
        return c

    # ------------------------------------------------------------------ UDP
    cdef void _udp(self, Pkt* k, int64_t wire, int64_t ts, int file_idx, int64_t frame_no, int64_t weight):
        cdef Transport t
        cdef UtpHeader u
        cdef int alen = 4 if k.ipver == 4 else 16
        cdef int r = decode_udp(k, &t)
        if r != T_OK:
            if self._mine_flowless():
                if r == T_CUT:
                    self._count(C_UDP, wire, weight)     # cut by the snap length
                else:
                    self._undecodable(wire, weight, R_BAD_UDP)
            return
        if decode_utp(t.pay, t.paycap, t.paylen, &u):
            self._utp(k, &t, &u, wire, ts, file_idx, frame_no, weight)
            return
        if not self._mine_flowless():
            return
        if bittorrent_datagram_candidate(t.pay, t.paycap, t.paylen, t.sport, t.dport):
            self.datagrams.append((file_idx, frame_no, ts, wire, weight, k.ipver,
                                   PyBytes_FromStringAndSize(<const char*>k.src, alen), t.sport,
                                   PyBytes_FromStringAndSize(<const char*>k.dst, alen), t.dport,
                                   PyBytes_FromStringAndSize(<const char*>t.pay, t.paycap), t.paylen))
            return
        self._count(C_UDP, wire, weight)

    cdef void _utp(self, Pkt* k, Transport* t, UtpHeader* u, int64_t wire, int64_t ts, int file_idx,
                   int64_t frame_no, int64_t weight):
        cdef uint8_t key[KEY_LEN]
        cdef int d
        cdef int64_t b0, b1, a0, a1
        cdef UtpConnection c = None
        cdef UtpStream s, other
        if self.only is not None:
            self._canonical_key(k, t.sport, t.dport, key)
            if not self._followed(PyBytes_FromStringAndSize(<char*>key, KEY_LEN)):
                return
        half = _half_key(k, t.sport, t.dport, u.conn_id)
        found = self.utp_halves.get(half)
        if found is not None:
            c, d = found
            if self._expired(c, ts):                    # see the TCP case
                self._finish_conn(c)
                c = None
            elif u.ptype == ST_SYN and (c.closed or (c.syn_seen and c.syn_seq != u.seq_nr)):
                self.reused_tuples += 1
                self._finish_conn(c)
                c = None
        if c is None:
            c = self._new_utp(k, t.sport, t.dport, u.conn_id, u.ptype == ST_SYN, u.seq_nr, ts, file_idx, frame_no)
            d = 0
        s = c.s0 if d == 0 else c.s1
        other = c.s1 if d == 0 else c.s0
        c.touch(d, wire, weight, ts, file_idx, frame_no)
        if s.sink is None and u.ptype == ST_DATA:
            # parsers are made at the first payload, as for TCP (a flood of uTP SYNs gets none);
            # packets the stream already declared lost come first, as they would have
            s.sink = self._parser(c, d, c.syn_seen)
            for _ in range(s.gaps):
                (<PeerWireParser>s.sink).feed_break()
        if not s.started and d == 1 and c.syn_seen and u.ptype != ST_SYN:
            s.start_at(u.seq_nr)       # the responder's first packet carries its first seq_nr
        b0 = _block_bytes(c.s0.sink)
        b1 = _block_bytes(c.s1.sink)
        a0 = c.s0.marked_acked_bytes
        a1 = c.s1.marked_acked_bytes
        if u.ptype != ST_SYN:
            other.ack(u.ack_nr, t.pay + u.sack_off, u.sack_len)
        if u.ptype == ST_DATA and c.flight1 < 0:
            c.note_payload(d, c.s0.delivered_bytes + c.s0.ooo_bytes, c.s1.delivered_bytes + c.s1.ooo_bytes)
        s.packet(u.ptype, u.seq_nr, t.pay + u.hdrlen, t.paycap - u.hdrlen, t.paylen - u.hdrlen)
        if u.ptype == ST_FIN or u.ptype == ST_RESET:
            other.close_receiver()      # this packet's sender has closed: what it acknowledges later, it never read
        self._track(c, c.s0.sink, c.s1.sink, b0, b1, a0, a1, ts, file_idx, frame_no)
        if u.ptype == ST_RESET:
            c.close(True)
        elif c.s0.fin_seen and c.s1.fin_seen:
            c.close(False)

    cdef UtpConnection _new_utp(self, Pkt* k, uint16_t sport, uint16_t dport, uint16_t cid, bint syn,
                                uint16_t seq, int64_t ts, int file_idx, int64_t frame_no):
        """Endpoint 0 is this packet's sender (the initiator when it is a SYN)."""
        cdef UtpConnection c = UtpConnection.__new__(UtpConnection)
        self._init_conn(c, None, k, sport, dport, False, ts, file_idx, frame_no)
        c.s0 = UtpStream()
        c.s1 = UtpStream()
        c.syn_seen = syn
        c.syn_seq = seq
        cdef list halves = []
        d0, d1 = (c, 0), (c, 1)          # one tuple per direction, shared by its keys
        if syn:
            # initiator: SYN with id X, then X+1; responder: X
            self._register(halves, _half_key(k, sport, dport, cid), d0)
            self._register(halves, _half_key(k, sport, dport, <uint16_t>(cid + 1)), d0)
            self._register(halves, _half_key_rev(k, sport, dport, cid), d1)
        else:
            # mid-stream: the sender is the initiator (reply id X = cid-1) or the responder (X+1 = cid+1)
            self._register(halves, _half_key(k, sport, dport, cid), d0)
            self._register(halves, _half_key_rev(k, sport, dport, <uint16_t>(cid - 1)), d1)
            self._register(halves, _half_key_rev(k, sport, dport, <uint16_t>(cid + 1)), d1)
        c.halves = tuple(halves)
        self.utp_conns[c.conn_id] = c
        self._check_live(c)
        return c

    cdef void _register(self, list halves, bytes half, tuple entry):
        if half not in self.utp_halves:
            self.utp_halves[half] = entry
            halves.append(half)

    # ------------------------------------------------------------------ connection lifetime
    cdef void _finish_conn(self, Connection c):
        cdef object p0 = getattr(c, "s0").sink, p1 = getattr(c, "s1").sink
        cdef int64_t b0 = _block_bytes(p0), b1 = _block_bytes(p1), a0 = c.acked(0), a1 = c.acked(1)
        cdef int file0 = self.cur_file, ofile0 = self.order_file
        cdef int64_t frame0 = self.cur_frame, ts0 = self.cur_ts, oframe0 = self.order_frame
        # what the final flush releases is referenced to the connection's last frame, not to the
        # frame being handled (which depends on the other connections read: the shard, the batch)
        self.cur_file, self.cur_frame, self.cur_ts = c.last_file, c.last_frame, c.last_ts
        self.order_file, self.order_frame = c.last_file, c.last_frame
        c.finish_streams()
        self.cur_file, self.cur_frame, self.cur_ts = file0, frame0, ts0
        self.order_file, self.order_frame = ofile0, oframe0
        self._track(c, p0, p1, b0, b1, a0, a1, c.last_ts, c.last_file, c.last_frame)     # bytes released by the final flush
        if isinstance(c, TcpConnection):
            if self.conns.get(c.key) is c:
                del self.conns[c.key]
            if self.last_conn is c:
                self.last_conn = None
        else:
            for half in (<UtpConnection>c).halves:
                if self.utp_halves.get(half, (None,))[0] is c:
                    del self.utp_halves[half]
            self.utp_conns.pop(c.conn_id, None)
        self.finished.append(c)

    cdef void _track(self, Connection c, object p0, object p1, int64_t b0, int64_t b1, int64_t a0, int64_t a1,
                     int64_t ts, int file_idx, int64_t frame_no):
        """Block bytes delivered and acknowledged while handling one frame (either
        direction: an ACK can release buffered data of the other) go to that
        frame's second; a handshake, and block bytes, delivered by it are referenced to that frame."""
        cdef int64_t n, k, m
        if p0 is not None and (<PeerWireParser>p0).info_hash is not None and not c.handshake_noted(0):
            c.note_handshake(0, file_idx, frame_no, ts)
        if p1 is not None and (<PeerWireParser>p1).info_hash is not None and not c.handshake_noted(1):
            c.note_handshake(1, file_idx, frame_no, ts)
        if p0 is not None and (<PeerWireParser>p0).head_len != c.head_marked and not c.handshake_noted(0):
            c.note_head((<PeerWireParser>p0).head_len, file_idx, frame_no, ts)     # for HTTP request times
        n = _block_bytes(p0) - b0
        m = c.acked(0) - a0
        if n or m:
            c.add_block_bytes(0, ts, n, m)
        k = _block_bytes(p1) - b1
        m = c.acked(1) - a1
        if k or m:
            c.add_block_bytes(1, ts, k, m)
        if n or k:
            c.note_block(file_idx, frame_no, ts)
        if self.extensions is not None:
            if p0 is not None and (<PeerWireParser>p0).ext_messages:
                self.extensions.route(c, 0, (<PeerWireParser>p0).ext_messages, (file_idx, frame_no, ts))
            if p1 is not None and (<PeerWireParser>p1).ext_messages:
                self.extensions.route(c, 1, (<PeerWireParser>p1).ext_messages, (file_idx, frame_no, ts))

    cdef void _check_live(self, Connection new):
        """Over the cap on live connections: finish the oldest idle sixteenth of them (by the
        time of their last frame, then creation; never ``new``), counted in finished_at_cap.
        Should one of them speak again, its later frames make a new connection seen
        mid-stream, as after a long silence."""
        cdef Py_ssize_t n = len(self.conns) + len(self.utp_conns), i = 0, k
        cdef Connection c
        if self.max_live <= 0 or n <= self.max_live:
            return
        live = [*self.conns.values(), *self.utp_conns.values()]
        last = np.empty(n, np.int64)
        ids = np.empty(n, np.int64)
        cdef int64_t[::1] lv = last, iv = ids
        for i in range(n):
            c = live[i]
            lv[i] = c.last_ts
            iv[i] = c.conn_id if c is not new else (1 << 62)
            if c is new:
                lv[i] = (1 << 62)
        k = max(1, self.max_live // 16)
        order = np.lexsort((ids, last))[:k]
        done = sorted([live[j] for j in order.tolist()], key=_conn_order)
        live = None
        for c in done:
            self._finish_conn(c)
            self.finished_at_cap += 1

    cdef bint _expired(self, Connection c, int64_t now):
        """Closed for CLOSED_IDLE_NS, or silent for open_idle_ns, at capture time ``now``."""
        if c.closed and now - c.last_ts > CLOSED_IDLE_NS:
            return True
        if now - c.last_ts > self.open_idle_ns:
            return True
        return False

    cdef void _sweep(self):
        cdef Connection c
        cdef list done = []
        self.last_sweep_ts = self.max_ts
        for table in (self.conns, self.utp_conns):
            for c in table.values():
                if self._expired(c, self.max_ts - IDLE_MARGIN_NS):
                    done.append(c)
                elif self.max_ts - c.last_ts > IDLE_SHRINK_NS:
                    c.shrink()
        # deterministic order: by creation
        done.sort(key=_conn_order)
        for c in done:
            self._finish_conn(c)


cdef inline int64_t _block_bytes(object sink):
    return (<PeerWireParser>sink).block_bytes if sink is not None else 0


def _conn_order(Connection c):
    return c.conn_id


cdef inline int _endpoint_cmp(const uint8_t* a, uint16_t pa, const uint8_t* b, uint16_t pb, int alen) noexcept:
    cdef int r = memcmp(a, b, alen)
    if r != 0:
        return r
    return <int>pa - <int>pb


cdef bytes _half_key(Pkt* k, uint16_t sport, uint16_t dport, uint16_t cid):
    """Directed key: source, destination, uTP connection id."""
    cdef uint8_t key[39]
    cdef int alen = 4 if k.ipver == 4 else 16
    memset(key, 0, 39)
    key[0] = k.ipver
    memcpy(key + 1, k.src, alen)
    key[17] = sport >> 8; key[18] = sport & 0xFF
    memcpy(key + 19, k.dst, alen)
    key[35] = dport >> 8; key[36] = dport & 0xFF
    key[37] = cid >> 8; key[38] = cid & 0xFF
    return PyBytes_FromStringAndSize(<char*>key, 39)


cdef bytes _half_key_rev(Pkt* k, uint16_t sport, uint16_t dport, uint16_t cid):
    """The same for the opposite direction (destination -> source)."""
    cdef Pkt r = k[0]
    r.src = k.dst
    r.dst = k.src
    return _half_key(&r, dport, sport, cid)
