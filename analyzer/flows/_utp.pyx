# cython: language_level=3
"""Reassembly of one direction of a uTP connection (BEP 29).

Theory of operation
-------------------
uTP numbers *packets*, not bytes: ``seq_nr`` (16 bits, wrapping) is
incremented by each DATA, SYN and FIN packet, while a STATE packet carries the
next number its sender will use without consuming it.  ``rel(seq)`` unwraps a
seq_nr to a 64-bit packet index near ``next_idx`` (signed 16-bit distance),
so wrap-around at 2^16 is invisible above this module.

* The packet ``next_idx`` is delivered to the sink as soon as it arrives;
  later packets wait in an out-of-order dict (copied, capped; at most 2^15
  of them, the reach of a signed 16-bit distance), with a min-heap of their
  numbers so the lowest is found in O(log n); earlier ones
  are duplicates (retransmissions), compared with the first copy through a
  64-bit hash kept per delivered packet, or *late* when they fall in a range
  already declared lost.
* A missing packet is declared lost when the receiver acknowledged past it
  and it stayed missing for ``PATIENCE`` packets of this connection, when the
  out-of-order buffer is full, or at the end.  Its length is unknown, so the
  sink is told that framing broke (``feed_break``), never given zeros; lost
  packets are counted, not turned into bytes.
* ``ack_nr`` (cumulative, inclusive) and the selective-ACK extension from the
  other direction acknowledge packets.  For every delivered packet the bytes
  the sink marked (piece block bytes) are remembered, so acknowledged block
  bytes are exact per packet, in any order.
* Once the receiver has closed (sent ST_FIN or ST_RESET, ``close_receiver``),
  its ACKs credit nothing more: a uTP stack such as libtorrent's goes on
  acknowledging packets after its side closed, but the application has gone
  and never reads them (TCP answers such data with RST instead).  The ACKs a
  FIN or RESET packet itself carries still count (they are handled first).
  Later ACKs only help to notice packets missing from the capture.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int16_t, int32_t, int64_t
from libc.string cimport memcpy
from libc.stdlib cimport malloc, free
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from heapq import heappush, heappop

cdef enum:
    OOO_CAP = 1 << 22
    PATIENCE = 64
    Q_INIT = 64
    Q_MAX = 1 << 15
    MAX_LOSS_RUN = 1 << 12


cdef inline uint32_t payload_hash(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    """A fast 64-bit multiply-xor hash of a packet's payload, folded to 32 bits."""
    cdef uint64_t h = 0x9E3779B97F4A7C15ULL ^ <uint64_t>n
    cdef uint64_t w
    cdef Py_ssize_t i = 0
    while i + 8 <= n:
        memcpy(&w, p + i, 8)
        h = (h ^ w) * 0xFF51AFD7ED558CCDULL
        h ^= h >> 29
        i += 8
    w = 0
    if i < n:
        memcpy(&w, p + i, n - i)
        h = (h ^ w) * 0xC4CEB9FE1A85EC53ULL
    h ^= h >> 32
    return <uint32_t>h


cdef class UtpStream:
    """One direction of a uTP connection; see the module docstring."""

    def __cinit__(self):
        self.ooo = None             # made with the first packet that waits (most streams have none)
        self.ooo_heap = None
        self.q_marked = NULL
        self.q_hash = NULL
        self.q_size = NULL
        self.q_acked = NULL
        self.gap_lo = 0
        self.gap_hi = 0

    def __dealloc__(self):
        self._free_queue()

    def __init__(self, StreamSink sink=None):
        self.sink = sink

    cdef void _free_queue(self):
        free(self.q_marked)
        free(self.q_hash)
        free(self.q_size)
        free(self.q_acked)
        self.q_marked = NULL
        self.q_hash = NULL
        self.q_size = NULL
        self.q_acked = NULL
        self.q_cap = 0

    # ------------------------------------------------------------------ Python API (tests)
    def receive_packet(self, int ptype, uint16_t seq, bytes payload=b"", paylen=None):
        self.packet(ptype, seq, <const uint8_t*>PyBytes_AS_STRING(payload), len(payload),
                    len(payload) if paylen is None else paylen)

    def receive_ack(self, uint16_t ack_nr, bytes sack=b""):
        self.ack(ack_nr, <const uint8_t*>PyBytes_AS_STRING(sack), len(sack))

    def start(self, uint16_t seq):
        self.start_at(seq)

    def receiver_close(self):
        self.close_receiver()

    def close(self):
        self.finish()

    @property
    def stats(self):
        return {name: getattr(self, name) for name in (
            "packets", "payload_bytes", "delivered_bytes", "delivered_packets", "duplicate_bytes",
            "duplicate_packets", "conflict_packets", "uncompared_packets", "gap_packets", "gaps",
            "late_bytes", "truncated_bytes", "marked_bytes", "marked_acked_bytes", "next_idx")}

    # ------------------------------------------------------------------ packets
    cdef void start_at(self, uint16_t seq):
        """The first packet to deliver in this direction has seq_nr ``seq``."""
        if self.started:
            return
        self.started = True
        self.next_idx = seq
        self.q_head_idx = seq
        self.gap_lo = self.gap_hi = seq

    cdef void packet(self, int ptype, uint16_t seq, const uint8_t* data, Py_ssize_t caplen, Py_ssize_t paylen):
        cdef int64_t idx
        cdef uint32_t h
        cdef Py_ssize_t qi
        self.packets += 1
        if ptype == ST_RESET:
            self.reset_seen = True
            return
        if ptype == ST_SYN:
            if not self.started:
                self.syn_seen = True
                self.start_at(seq + 1)
            return
        if ptype == ST_STATE:
            return
        # DATA or FIN: each consumes a sequence number
        if not self.started:
            self.start_at(seq)
        idx = self.rel(seq)
        if ptype == ST_FIN:
            self.fin_seen = True
            self.fin_idx = idx
            caplen = paylen = 0
        self.payload_bytes += caplen
        if caplen < paylen:
            self.truncated_bytes += paylen - caplen
        h = payload_hash(data, caplen)
        if idx < self.next_idx:
            if self.gap_lo <= idx < self.gap_hi or idx < self.q_head_idx - Q_MAX:
                self.late_bytes += caplen
                return
            self.duplicate_packets += 1
            self.duplicate_bytes += caplen
            if idx >= self.q_head_idx:
                qi = idx & (self.q_cap - 1)
                if self.q_size[qi] >= 0 and (self.q_hash[qi] != h or self.q_size[qi] != caplen):
                    self.conflict_packets += 1
            else:
                self.uncompared_packets += 1
            return
        if idx == self.next_idx:
            self._deliver_packet(data, caplen, paylen, h)
            if self.ooo:
                self._drain()
        else:
            if self.ooo is None:
                self.ooo = {}
                self.ooo_heap = []
            old = self.ooo.get(idx)
            if old is not None:
                self.duplicate_packets += 1
                self.duplicate_bytes += caplen
                if (<bytes>old[0]) != PyBytes_FromStringAndSize(<const char*>data, caplen):
                    self.conflict_packets += 1
            else:
                self.ooo[idx] = (PyBytes_FromStringAndSize(<const char*>data, caplen), paylen)
                heappush(self.ooo_heap, idx)
                self.ooo_bytes += caplen
        self._check_hole()

    cdef void _deliver_packet(self, const uint8_t* data, Py_ssize_t caplen, Py_ssize_t paylen, uint32_t h):
        self._deliver(data, caplen, h)
        if caplen < paylen and self.sink is not None:
            # cut by the snap length: the missing bytes are known exactly
            self.sink.feed_gap(paylen - caplen)
            self.sink.nranges = 0

    cdef void _deliver(self, const uint8_t* data, Py_ssize_t n, uint32_t h):
        cdef int64_t marked = 0
        cdef Py_ssize_t i
        cdef bint acked
        if n and self.sink is not None:
            self.sink.feed(data, n)
            for i in range(self.sink.nranges):
                marked += self.sink.ranges[2 * i + 1] - self.sink.ranges[2 * i]
            self.sink.nranges = 0
        self.marked_bytes += marked
        acked = self.have_ack and self.next_idx <= self.ack_idx
        if acked:
            self.marked_acked_bytes += marked
        self._queue_push(<int32_t>marked, h, <int32_t>n, acked)
        self.next_idx += 1
        self.delivered_bytes += n
        self.delivered_packets += 1
        self._pop_acked()

    cdef void _drain(self):
        cdef bytes data
        cdef Py_ssize_t paylen
        while self.next_idx in self.ooo:
            data, paylen = self.ooo.pop(self.next_idx)
            self.ooo_bytes -= len(data)
            self._deliver_packet(<const uint8_t*>PyBytes_AS_STRING(data), len(data), paylen,
                                 payload_hash(<const uint8_t*>PyBytes_AS_STRING(data), len(data)))
        heap = self.ooo_heap
        while heap and <int64_t>heap[0] < self.next_idx:
            heappop(heap)

    cdef int64_t _ooo_min(self):
        """The lowest packet number waiting (ooo must not be empty)."""
        heap = self.ooo_heap
        while <int64_t>heap[0] not in self.ooo:
            heappop(heap)
        return heap[0]

    # ------------------------------------------------------------------ delivered-packet queue
    cdef void _queue_push(self, int32_t marked, uint32_t h, int32_t size, bint acked):
        """Entry for packet next_idx (the queue covers q_head_idx .. next_idx-1)."""
        cdef Py_ssize_t slot, i, new_cap
        cdef int64_t idx
        cdef int32_t* nm
        cdef uint32_t* nh
        cdef int32_t* ns
        cdef uint8_t* na
        if self.q_len == self.q_cap:
            if self.q_cap >= Q_MAX:
                # a window of 32768 unacknowledged packets: forget the oldest
                self.q_head_idx += 1
                self.q_len -= 1
            else:
                new_cap = Q_INIT if self.q_cap == 0 else 2 * self.q_cap
                nm = <int32_t*>malloc(new_cap * sizeof(int32_t))
                nh = <uint32_t*>malloc(new_cap * sizeof(uint32_t))
                ns = <int32_t*>malloc(new_cap * sizeof(int32_t))
                na = <uint8_t*>malloc(new_cap)
                if nm == NULL or nh == NULL or ns == NULL or na == NULL:
                    free(nm); free(nh); free(ns); free(na)
                    raise MemoryError()
                for i in range(self.q_len):
                    idx = self.q_head_idx + i
                    nm[idx & (new_cap - 1)] = self.q_marked[idx & (self.q_cap - 1)]
                    nh[idx & (new_cap - 1)] = self.q_hash[idx & (self.q_cap - 1)]
                    ns[idx & (new_cap - 1)] = self.q_size[idx & (self.q_cap - 1)]
                    na[idx & (new_cap - 1)] = self.q_acked[idx & (self.q_cap - 1)]
                self._free_queue()
                self.q_marked, self.q_hash, self.q_size, self.q_acked = nm, nh, ns, na
                self.q_cap = new_cap
        if self.q_len == 0:
            self.q_head_idx = self.next_idx
        slot = self.next_idx & (self.q_cap - 1)
        self.q_marked[slot] = marked
        self.q_hash[slot] = h
        self.q_size[slot] = size
        self.q_acked[slot] = acked
        self.q_len += 1

    cdef void _pop_acked(self):
        while self.q_len and self.q_acked[self.q_head_idx & (self.q_cap - 1)]:
            self.q_head_idx += 1
            self.q_len -= 1

    cdef void _ack_one(self, int64_t idx):
        cdef Py_ssize_t slot
        if idx < self.q_head_idx or idx >= self.q_head_idx + self.q_len:
            return
        slot = idx & (self.q_cap - 1)
        if not self.q_acked[slot]:
            self.q_acked[slot] = 1
            if self.q_size[slot] >= 0:
                self.marked_acked_bytes += self.q_marked[slot]

    # ------------------------------------------------------------------ acknowledgements
    cdef void close_receiver(self):
        """The receiver of this direction sent ST_FIN or ST_RESET (see the module docstring)."""
        self.receiver_closed = True

    cdef void ack(self, uint16_t ack_nr, const uint8_t* sack, Py_ssize_t sack_len):
        cdef int64_t a, i, lo, hi
        cdef Py_ssize_t j
        cdef int k
        if not self.started:
            return
        a = self.rel(ack_nr)
        if self.receiver_closed:
            if not self.have_late_ack or a > self.late_ack_idx:
                self.late_ack_idx = a
                self.have_late_ack = True
            self._check_hole()
            return
        if not self.have_ack or a > self.ack_idx:
            lo = self.q_head_idx if not self.have_ack or self.ack_idx + 1 < self.q_head_idx else self.ack_idx + 1
            hi = a if a < self.q_head_idx + self.q_len - 1 else self.q_head_idx + self.q_len - 1
            i = lo
            while i <= hi:
                self._ack_one(i)
                i += 1
            self.ack_idx = a
            self.have_ack = True
        for j in range(sack_len):
            for k in range(8):
                if sack[j] & (1 << k):
                    self._ack_one(a + 2 + 8 * j + k)
        self._pop_acked()
        self._check_hole()

    # ------------------------------------------------------------------ losses
    cdef int64_t _acked_end(self):
        """One past the last packet the receiver acknowledged; an ACK of exactly
        one packet past everything seen, with no FIN captured, is the FIN's."""
        cdef int64_t a = self.ack_idx
        if self.have_late_ack and (not self.have_ack or self.late_ack_idx > a):
            a = self.late_ack_idx
        elif not self.have_ack:
            return self.next_idx
        if not self.fin_seen and a == self.next_idx and not self.ooo:
            return self.next_idx
        return a + 1

    cdef void _check_hole(self):
        cdef int64_t target, acked_end, first
        while self.ooo_bytes > OOO_CAP and self.ooo:
            self._lose_to(self._ooo_min())
        acked_end = self._acked_end()
        if acked_end > self.next_idx:
            if self.hole_at != self.next_idx:
                self.hole_at = self.next_idx
                self.hole_frames = 0
            self.hole_frames += 1
            if self.hole_frames > PATIENCE:
                target = acked_end
                if self.ooo:
                    first = self._ooo_min()
                    if first < target:
                        target = first
                self._lose_to(target)
                self.hole_frames = 0
        else:
            self.hole_frames = 0

    cdef void _lose_to(self, int64_t idx):
        """Packets next_idx .. idx-1 were sent but not captured."""
        cdef int64_t n = idx - self.next_idx, i
        if n <= 0:
            return
        if self.sink is not None:
            self.sink.feed_break()
            self.sink.nranges = 0
        self.gap_packets += n
        self.gaps += 1
        self.gap_lo = self.next_idx
        self.gap_hi = idx
        if n > MAX_LOSS_RUN:
            self.q_len = 0            # an implausible jump: start the queue afresh
            self.next_idx = idx
        else:
            for i in range(n):
                self._queue_push(0, 0, -1, self.have_ack and self.next_idx <= self.ack_idx)
                self.next_idx += 1
            self._pop_acked()
        if self.ooo:
            self._drain()

    cdef void finish(self):
        cdef int64_t end
        if self.finished:
            return
        while self.ooo:
            self._lose_to(self._ooo_min())
        self.ooo = self.ooo_heap = None
        end = self._acked_end()
        if end > self.next_idx:
            self._lose_to(end)
        if self.sink is not None:
            self.sink.feed_eof()
            self.sink.nranges = 0
        self.finished = True
        self._free_queue()
        self.q_len = 0
