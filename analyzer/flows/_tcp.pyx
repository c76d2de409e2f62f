# cython: language_level=3
"""Reassembly of one direction of a TCP connection.

Theory of operation
-------------------
Sequence numbers are mapped to 64-bit *stream offsets*: offset 0 is the byte
after the SYN (or the first byte seen when the connection start was not
captured), and ``rel(seq)`` interprets ``seq`` as a signed 32-bit distance from
``next_off``, so wrap-around at 2^32 is invisible above this module.

* ``next_off``: every byte below it was delivered to the sink exactly once or
  declared a gap.  A segment that starts at ``next_off`` is delivered straight
  from the capture buffer (no copy); bytes below ``next_off`` are duplicates
  (retransmissions, overlapping re-segmentation) and are compared against a
  ring of recently delivered bytes: differing bytes are counted as conflicts,
  bytes older than the ring as uncompared.  When the frames lie in a buffer
  that does not change while it is referenced (a capture file mapped into
  memory: the caller passes it as ``owner``), a stream whose ring is full
  size does not copy each delivery into the ring: it notes where the bytes
  lie (``PendEntry``, one for every 512 bytes of ring, the buffer kept alive) and copies
  them only when they are needed (a duplicate to compare, a delivery from
  another buffer, a gap); entries that fall out of the ring's reach before
  then are never copied.  The buffer gives its pages back behind its
  readers, so the engine has every stream with pending entries copy those
  ``PEND_REACH`` behind each batch first (``release_before``, through
  ``pend_registry``), busy or quiet: a copy made later would read pages
  that came back, and stay.  Segments beyond ``next_off`` wait
  in a sorted, non-overlapping out-of-order list (copied, capped at
  ``OOO_CAP`` bytes and ``OOO_MAX_SEGMENTS`` segments): a segment's place is
  found by binary search and spliced in with one list operation, and a drain
  removes what it delivered at once, so reverse-order or interleaved floods
  cost O(log n) plus one pointer move per segment, never a scan.
* A hole becomes a *gap* (``sink.feed_gap``, never zeros) when the receiver
  acknowledged beyond it and it stayed unfilled for ``PATIENCE`` further
  frames of this connection (the capture missed bytes the receiver got; the
  patience absorbs multi-CPU capture reordering), when the out-of-order
  buffer passes either cap, when a segment was cut by the snap length, or at
  the end of the connection.
* ACKs from the other direction move ``ack_off``.  Ranges the sink marks (piece
  block bytes) are split into acknowledged and not as the ACKs pass them.

Frame timestamps are never used here: order comes from sequence numbers.

Memory: a stream that never carries payload (a half-open connection of a SYN
flood, the silent side of a scan) holds only its sequence-number state; the
out-of-order list, the ring, the marks and the counters (``TcpData``) are
allocated with its first payload byte, hole or gap.
"""
from libc.stdint cimport uint8_t, uint32_t, int32_t, int64_t
from libc.string cimport memcpy, memcmp, memmove
from libc.stdlib cimport calloc, malloc, realloc, free
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING

cdef enum:
    PEND_MIN = 64                  # entries of deliveries left in place (at least; ring_cap >> PEND_SHIFT)
    PEND_SHIFT = 9
    RING_START = 1 << 8
    RING_INIT = 1 << 16
    RING_MAX = 1 << 20
    OOO_CAP = 1 << 22
    OOO_MAX_SEGMENTS = 1 << 14
    PATIENCE = 64
    MAX_MARKS = 1 << 20

cdef int64_t MAX_ACK_AHEAD = 1 << 30

cdef extern from *:
    """
    #define BT_PREFETCH(p) __builtin_prefetch((const void*)(p))
    """
    void BT_PREFETCH(const void* p) noexcept nogil


cdef class Segment:
    pass


cdef inline Segment make_segment(int64_t off, const uint8_t* data, Py_ssize_t n):
    cdef Segment s = Segment.__new__(Segment)
    s.off = off
    s.data = PyBytes_FromStringAndSize(<const char*>data, n)
    return s


cdef class TcpStream:
    """One direction of a TCP connection; see the module docstring."""

    def __cinit__(self):
        self.x = NULL
        self.ooo = None

    def __dealloc__(self):
        if self.x != NULL:
            free(self.x.pend)
            free(self.x.ring)
            free(self.x.marks)
            free(self.x)

    cdef TcpData* _data(self) except NULL:
        """The payload state, allocated (zeroed) on first use: a stream that never carries
        payload (a SYN flood's half-open connections) costs only the object."""
        if self.x == NULL:
            self.x = <TcpData*>calloc(1, sizeof(TcpData))
            if self.x == NULL:
                raise MemoryError()
        return self.x

    def __init__(self, StreamSink sink=None):
        self.sink = sink

    # ------------------------------------------------------------------ Python API (tests)
    def receive_segment(self, uint32_t seq, int flags, bytes payload=b"", paylen=None):
        cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(payload)
        cdef Py_ssize_t n = len(payload)
        self.segment(seq, flags, p, n, n if paylen is None else paylen, None)

    def receive_in_place(self, uint32_t seq, int flags, bytes buf, Py_ssize_t start, Py_ssize_t n):
        """A segment whose payload is ``buf[start:start+n]``, left where it lies (``buf`` is the
        owner the stream may keep: as the engine does with a mapped capture file)."""
        if start < 0 or n < 0 or start + n > len(buf):
            raise ValueError("the payload is not inside buf")
        self.segment(seq, flags, <const uint8_t*>PyBytes_AS_STRING(buf) + start, n, n, buf)

    def release_buffer(self):
        """Copy what still lies in the caller's buffer into the ring and let the buffer go, and so
        does the sink (a block in progress); the engine at the end of each input file: a mapped file
        is not kept open by idle streams."""
        if self.x != NULL and self.x.pend_n:
            self._materialize()
        if self.sink is not None:
            self.sink.release()

    @property
    def pending_deliveries(self):
        """Deliveries noted where they lie and not yet copied into the ring."""
        return self.x.pend_n if self.x != NULL else 0

    def receive_ack(self, uint32_t ack):
        self.ack(ack)

    def close(self):
        self.finish()

    # counters (0 while the stream has no payload state)
    @property
    def segments(self): return self.x.segments if self.x != NULL else 0
    @property
    def payload_bytes(self): return self.x.payload_bytes if self.x != NULL else 0
    @property
    def delivered_bytes(self): return self.x.delivered_bytes if self.x != NULL else 0
    @property
    def duplicate_bytes(self): return self.x.duplicate_bytes if self.x != NULL else 0
    @property
    def conflict_bytes(self): return self.x.conflict_bytes if self.x != NULL else 0
    @property
    def conflict_segments(self): return self.x.conflict_segments if self.x != NULL else 0
    @property
    def uncompared_bytes(self): return self.x.uncompared_bytes if self.x != NULL else 0
    @property
    def gap_bytes(self): return self.x.gap_bytes if self.x != NULL else 0
    @property
    def gaps(self): return self.x.gaps if self.x != NULL else 0
    @property
    def late_bytes(self): return self.x.late_bytes if self.x != NULL else 0
    @property
    def truncated_bytes(self): return self.x.truncated_bytes if self.x != NULL else 0
    @property
    def marked_bytes(self): return self.x.marked_bytes if self.x != NULL else 0
    @property
    def ooo_bytes(self): return self.x.ooo_bytes if self.x != NULL else 0

    @property
    def stats(self):
        return {name: getattr(self, name) for name in (
            "segments", "payload_bytes", "delivered_bytes", "duplicate_bytes", "conflict_bytes",
            "conflict_segments", "uncompared_bytes", "gap_bytes", "gaps", "late_bytes",
            "truncated_bytes", "marked_bytes", "marked_acked_bytes", "next_off", "ack_off")}

    # ------------------------------------------------------------------ segments
    cdef void segment(self, uint32_t seq, int flags, const uint8_t* data, Py_ssize_t caplen, Py_ssize_t paylen,
                      object owner):
        cdef int64_t off, end, target
        cdef Segment first
        if flags & TH_RST:
            self.rst_seen = True
        if not self.started:
            if flags & TH_SYN:
                self.isn = seq
                self.base_seq = seq + 1
                self.syn_seen = True
            elif paylen > 0 or flags & TH_FIN:
                self.base_seq = seq
            else:
                return
            self.started = True
        if flags & TH_SYN:
            seq += 1
        off = self.rel(seq)
        if paylen > 0:
            self._data()
            self.x.segments += 1
            self.x.payload_bytes += caplen
            end = off + paylen
            if end > self.max_end:
                self.max_end = end
            if caplen > 0:
                self._insert(off, data, caplen, owner)
            if caplen < paylen:
                # Cut by the snap length: those bytes exist but are not in the capture.
                self.x.truncated_bytes += paylen - caplen
                if self.next_off == off + caplen:
                    target = end
                    if self.ooo:
                        first = self.ooo[0]
                        if first.off < target:
                            target = first.off
                    self._gap_to(target)
                    if self.ooo:
                        self._drain()
        if flags & TH_FIN:
            self.fin_seen = True
            self.fin_off = off + paylen
            if self.fin_off > self.max_end:
                self.max_end = self.fin_off
        self._check_hole()

    cdef void _insert(self, int64_t off, const uint8_t* data, Py_ssize_t n, object owner):
        cdef int64_t k, late
        if off < self.next_off:
            k = self.next_off - off
            if k > n:
                k = n
            # Bytes before the first byte we followed, or inside the range last
            # declared a gap, came too late to be used; the rest are duplicates.
            late = _overlap(off, off + k, -MAX_ACK_AHEAD, 0) + \
                _overlap(off, off + k, self.x.gap_lo, self.x.gap_hi)
            self.x.late_bytes += late
            self.x.duplicate_bytes += k - late
            self._compare(off, data, k, late)
            if k == n:
                return
            data += k
            n -= k
            off = self.next_off
        if off == self.next_off:
            self._deliver(data, n, owner)
            if self.ooo:
                self._drain()
        else:
            self._store(off, data, n)

    cdef void _deliver(self, const uint8_t* data, Py_ssize_t n, object owner):
        cdef PendEntry* e
        cdef Py_ssize_t k
        if owner is not None:
            # the next record's headers follow these bytes in the capture: read them into the cache
            # while the sink works (nothing else reads the payload, which would bring them in)
            BT_PREFETCH(data + n)
            BT_PREFETCH(data + n + 64)
        if self.sink is not None:
            self.sink.feed_owner = owner      # the sink may leave block bytes there too (flows._inplace)
            self.sink.feed(data, n)
            self.sink.feed_owner = None
        # Keep the last bytes for comparing later retransmissions.  The ring starts small and
        # doubles while it holds every byte since ring_from, up to RING_INIT: the same bytes as a
        # RING_INIT ring from the start, without 64 KiB for each stream of a few bytes (a flood of
        # connections that each carry a little payload).
        if self.x.ring == NULL:
            self.x.ring = <uint8_t*>malloc(RING_START)
            if self.x.ring == NULL:
                raise MemoryError()
            self.x.ring_cap = RING_START
        while self.x.ring_cap < RING_INIT and self.next_off + n - self.x.ring_from > self.x.ring_cap:
            k = self.x.ring_cap
            self._grow_ring()
            if self.x.ring_cap == k:
                break           # no memory for a larger ring: older bytes are then uncompared
        if owner is not None and self.x.ring_cap >= RING_INIT:
            # the bytes stay where they lie until needed (see the module docstring)
            if self.x.pend_n and self.pend_owner is not owner:
                self._materialize()
            if self.x.pend == NULL:     # room for the ring's reach in full-size segments, twice over
                k = self.x.ring_cap >> PEND_SHIFT
                self.x.pend_cap = k if k > PEND_MIN else PEND_MIN
                self.x.pend = <PendEntry*>malloc(self.x.pend_cap * sizeof(PendEntry))
                if self.x.pend == NULL:
                    raise MemoryError()
            # entries wholly out of the ring's reach once these bytes are in are never copied (those
            # the buffer is about to give back are copied by the engine's sweep: release_before)
            while self.x.pend_n:
                e = &self.x.pend[self.x.pend_head]
                if e.off + e.n > self.next_off + n - self.x.ring_cap:
                    break
                self.x.pend_head = (self.x.pend_head + 1) % self.x.pend_cap
                self.x.pend_n -= 1
            if self.x.pend_n == self.x.pend_cap:
                self._materialize()
            e = &self.x.pend[(self.x.pend_head + self.x.pend_n) % self.x.pend_cap]
            e.p, e.off, e.n = data, self.next_off, n
            self.x.pend_n += 1
            self.pend_owner = owner
            if not self.registered and self.pend_registry is not None:
                self.pend_registry.append(self)
                self.registered = True
        else:
            if self.x.pend_n:
                self._materialize()
            self._to_ring(self.next_off, data, n)
        self.next_off += n
        self.x.delivered_bytes += n
        if self.sink is not None and self.sink.nranges:
            self._take_marks()

    cdef void _to_ring(self, int64_t pos, const uint8_t* data, Py_ssize_t n):
        """Copy stream bytes [pos, pos+n) into the ring (the last ring_cap of them)."""
        cdef int64_t first
        cdef Py_ssize_t k, chunk
        k = n if n < self.x.ring_cap else self.x.ring_cap
        pos += n - k
        data += n - k
        while k > 0:
            first = pos & (self.x.ring_cap - 1)
            chunk = self.x.ring_cap - first
            if chunk > k:
                chunk = k
            memcpy(self.x.ring + first, data, chunk)
            data += chunk
            pos += chunk
            k -= chunk

    cdef void _pend_to_ring(self, PendEntry* e):
        """Copy the part of a pending delivery still within the ring's reach into the ring (entries
        are copied oldest first, so newer bytes land over older ones)."""
        cdef int64_t lo = self.next_off - self.x.ring_cap
        if e.off + e.n <= lo:
            return
        if e.off < lo:
            self._to_ring(lo, e.p + (lo - e.off), e.n - (lo - e.off))
        else:
            self._to_ring(e.off, e.p, e.n)

    cdef void _materialize(self):
        """Copy the pending deliveries into the ring (oldest first), and let their buffer go."""
        cdef Py_ssize_t i
        if self.x == NULL or self.x.pend_n == 0:
            self.pend_owner = None
            return
        for i in range(self.x.pend_n):
            self._pend_to_ring(&self.x.pend[(self.x.pend_head + i) % self.x.pend_cap])
        self.x.pend_head = 0
        self.x.pend_n = 0
        self.pend_owner = None

    cdef bint release_before(self, const uint8_t* limit):
        """Copy the pending deliveries that lie before ``limit`` in the buffer in hand (they are
        in buffer order); True while some are left (the stream stays in the registry)."""
        cdef PendEntry* e
        if self.x == NULL or self.x.pend_n == 0:
            self.registered = False
            return False
        while self.x.pend_n:
            e = &self.x.pend[self.x.pend_head]
            if e.p >= limit:
                return True
            self._pend_to_ring(e)
            self.x.pend_head = (self.x.pend_head + 1) % self.x.pend_cap
            self.x.pend_n -= 1
        self.pend_owner = None
        self.registered = False
        return False

    cdef void _drain(self):
        """Deliver the stored segments that now start at or before next_off."""
        cdef Segment s
        cdef Py_ssize_t i = 0, n = len(self.ooo)
        while i < n:
            s = self.ooo[i]
            if s.off > self.next_off:
                break
            self._take(s)
            i += 1
        if i:
            del self.ooo[:i]

    cdef void _take(self, Segment s):
        """A stored segment (already out of the list) starting at or before next_off."""
        cdef int64_t s_end, k
        cdef const uint8_t* d = <const uint8_t*>PyBytes_AS_STRING(s.data)
        self.x.ooo_bytes -= len(s.data)
        s_end = s.off + len(s.data)
        k = (s_end if s_end < self.next_off else self.next_off) - s.off
        if k > 0:
            self.x.duplicate_bytes += k
            self._compare(s.off, d, k, 0)
        if s_end > self.next_off:
            self._deliver(d + k, s_end - self.next_off, None)     # (the segment is about to go)

    cdef Py_ssize_t _first_ending_after(self, int64_t off):
        """Index of the first stored segment that ends after ``off`` (binary search:
        the segments are sorted and do not overlap, so their ends increase)."""
        cdef Py_ssize_t lo = 0, hi = len(self.ooo), mid
        cdef Segment s
        while lo < hi:
            mid = (lo + hi) >> 1
            s = self.ooo[mid]
            if s.off + len(s.data) <= off:
                lo = mid + 1
            else:
                hi = mid
        return lo

    cdef void _store(self, int64_t off, const uint8_t* data, Py_ssize_t n):
        """Keep [off, off+n) (beyond next_off): the first copy of every byte wins.  A segment
        that overlaps stored ones is merged with them into one (the list never grows by
        more than one entry per segment)."""
        cdef Py_ssize_t i, j, k, held = 0
        cdef int64_t end = off + n, lo, hi, a, b, s_end
        cdef Segment s, first, last
        cdef bytearray merged
        cdef uint8_t* m
        cdef const uint8_t* sd
        if self.ooo is None:
            self.ooo = []
        i = self._first_ending_after(off)
        if i == len(self.ooo):
            self.ooo.append(make_segment(off, data, n))          # the usual case: beyond everything
            self.x.ooo_bytes += n
            return
        first = self.ooo[i]
        if first.off >= end:
            self.ooo.insert(i, make_segment(off, data, n))       # in a hole, touching nothing
            self.x.ooo_bytes += n
            return
        j = i + 1
        while j < len(self.ooo) and (<Segment>self.ooo[j]).off < end:
            j += 1
        last = self.ooo[j - 1]
        lo = first.off if first.off < off else off
        hi = last.off + len(last.data)
        if end > hi:
            hi = end
        merged = bytearray(hi - lo)
        m = <uint8_t*>(<char*>merged)
        memcpy(m + (off - lo), data, n)
        for k in range(i, j):
            s = self.ooo[k]
            sd = <const uint8_t*>PyBytes_AS_STRING(s.data)
            s_end = s.off + len(s.data)
            a = s.off if s.off > off else off
            b = s_end if s_end < end else end
            self.x.duplicate_bytes += b - a
            if memcmp(data + (a - off), sd + (a - s.off), b - a) != 0:
                self.x.conflict_segments += 1
                self.x.conflict_bytes += _count_diff(data + (a - off), sd + (a - s.off), b - a)
            memcpy(m + (s.off - lo), sd, len(s.data))             # the stored (first) copy wins
            held += len(s.data)
        self.x.ooo_bytes += (hi - lo) - held
        self.ooo[i:j] = [make_segment(lo, m, hi - lo)]

    cdef void _compare(self, int64_t off, const uint8_t* data, Py_ssize_t n, int64_t late):
        """Compare bytes [off, off+n) (all below next_off) with what was delivered.

        ``late`` of them fell in a gap (never delivered): not counted as uncompared.
        """
        if self.x.pend_n:
            self._materialize()
        cdef int64_t lo = self.next_off - self.x.ring_cap
        cdef int64_t a, first
        cdef Py_ssize_t k, chunk
        cdef int64_t diff = 0
        if lo < self.x.ring_from:
            lo = self.x.ring_from
        a = off if off > lo else lo
        if a > off:
            self.x.uncompared_bytes += ((a - off) if a - off < n else n) - late
            if self.x.ring_cap < RING_MAX and self.x.ring != NULL and off >= self.x.ring_from:
                self._grow_ring()
        if self.x.ring == NULL or a >= off + n:
            return
        data += a - off
        k = off + n - a
        while k > 0:
            first = a & (self.x.ring_cap - 1)
            chunk = self.x.ring_cap - first
            if chunk > k:
                chunk = k
            if memcmp(self.x.ring + first, data, chunk) != 0:
                diff += _count_diff(self.x.ring + first, data, chunk)
            data += chunk
            a += chunk
            k -= chunk
        if diff:
            self.x.conflict_segments += 1
            self.x.conflict_bytes += diff

    cdef void _grow_ring(self):
        """Double the ring, keeping the bytes it holds at their new positions."""
        if self.x.pend_n:
            self._materialize()
        free(self.x.pend)               # sized for the old ring: made again at the next delivery
        self.x.pend = NULL
        cdef int64_t new_cap = self.x.ring_cap * 2
        cdef uint8_t* r = <uint8_t*>malloc(new_cap)
        cdef int64_t lo = self.next_off - self.x.ring_cap, o, k
        if r == NULL:
            return
        if lo < self.x.ring_from:
            lo = self.x.ring_from
        o = lo
        while o < self.next_off:       # in runs that wrap neither ring
            k = self.next_off - o
            if k > self.x.ring_cap - (o & (self.x.ring_cap - 1)):
                k = self.x.ring_cap - (o & (self.x.ring_cap - 1))
            if k > new_cap - (o & (new_cap - 1)):
                k = new_cap - (o & (new_cap - 1))
            memcpy(r + (o & (new_cap - 1)), self.x.ring + (o & (self.x.ring_cap - 1)), k)
            o += k
        free(self.x.ring)
        self.x.ring = r
        self.x.ring_cap = new_cap
        self.x.ring_from = lo      # older offsets were never kept

    # ------------------------------------------------------------------ holes and gaps
    cdef void _gap_to(self, int64_t off):
        cdef int64_t n = off - self.next_off
        if n <= 0:
            return
        self._data()
        if self.x.pend_n:
            self._materialize()
        if self.sink is not None:
            self.sink.feed_gap(n)
        self.x.gap_bytes += n
        self.x.gaps += 1
        self.x.gap_lo = self.next_off
        self.x.gap_hi = off
        self.next_off = off
        self.x.ring_from = off
        if self.sink is not None and self.sink.nranges:
            self._take_marks()

    cdef inline int64_t _acked_data_end(self):
        """End of the data the receiver acknowledged.  An ACK one past every byte
        seen, with no FIN captured, acknowledges the (uncaptured) FIN, not data."""
        if not self.fin_seen and self.ack_off == self.max_end + 1:
            return self.max_end
        return self.ack_off

    cdef void _check_hole(self):
        cdef int64_t target, acked
        cdef Segment s
        while self.ooo and (self.x.ooo_bytes > OOO_CAP or len(self.ooo) > OOO_MAX_SEGMENTS):
            s = self.ooo[0]
            self._gap_to(s.off)
            self._drain()
        acked = self._acked_data_end()
        if acked > self.next_off:
            self._data()
            if self.x.hole_at != self.next_off:
                self.x.hole_at = self.next_off      # a new hole: patience starts again
                self.x.hole_frames = 0
            self.x.hole_frames += 1
            if self.x.hole_frames > PATIENCE:
                target = acked
                if self.ooo:
                    s = self.ooo[0]
                    if s.off < target:
                        target = s.off
                self._gap_to(target)
                if self.ooo:
                    self._drain()
                self.x.hole_frames = 0
        elif self.x != NULL:
            self.x.hole_frames = 0

    cdef void finish(self):
        """End of the connection or of the capture: everything left is delivered or a gap."""
        cdef Segment s
        cdef int64_t end
        cdef list held
        if self.finished:
            return
        held, self.ooo = self.ooo or [], None
        for s in held:
            self._gap_to(s.off)
            self._take(s)
        end = self._acked_data_end()
        if self.max_end > end:
            end = self.max_end
        self._gap_to(end)
        if self.sink is not None:
            self.sink.feed_eof()
            if self.sink.nranges:
                self._take_marks()
        self.finished = True
        self.shrink()

    cdef void shrink(self):
        """Release the comparison ring (idle or finished connection)."""
        if self.x == NULL:
            return
        self.x.pend_n = 0               # no comparison after this: what was pending is not needed
        self.x.pend_head = 0
        self.pend_owner = None
        free(self.x.ring)
        self.x.ring = NULL
        self.x.ring_cap = 0
        self.x.ring_from = self.next_off

    # ------------------------------------------------------------------ acknowledgements
    cdef void ack(self, uint32_t ack):
        cdef int64_t off
        if not self.started:
            return
        off = self.rel(ack)
        if self.fin_seen and off == self.fin_off + 1:
            off = self.fin_off        # the FIN's own sequence number
        if off > self.ack_off and off <= self.max_end + MAX_ACK_AHEAD:
            self.ack_off = off
            if self.x != NULL and self.x.marks_len > self.x.marks_head:
                self._apply_ack()
        self._check_hole()

    cdef void _take_marks(self):
        cdef StreamSink sink = self.sink
        cdef Py_ssize_t i
        cdef int64_t a, b
        self._data()
        for i in range(sink.nranges):
            a = sink.ranges[2 * i]
            b = sink.ranges[2 * i + 1]
            self.x.marked_bytes += b - a
            if b <= self.ack_off:
                self.marked_acked_bytes += b - a
                continue
            if a < self.ack_off:
                self.marked_acked_bytes += self.ack_off - a
                a = self.ack_off
            if self.x.marks_len == self.x.marks_cap:
                if self.x.marks_head > 0:
                    memmove(self.x.marks, self.x.marks + 2 * self.x.marks_head,
                            2 * (self.x.marks_len - self.x.marks_head) * sizeof(int64_t))
                    self.x.marks_len -= self.x.marks_head
                    self.x.marks_head = 0
                elif self.x.marks_cap < MAX_MARKS:
                    self.x.marks_cap = 16 if self.x.marks_cap == 0 else 2 * self.x.marks_cap
                    self.x.marks = <int64_t*>realloc(self.x.marks, 2 * self.x.marks_cap * sizeof(int64_t))
                    if self.x.marks == NULL:
                        raise MemoryError()
                else:
                    # A million unacknowledged ranges: widen the last one (bounded memory).
                    self.x.marks[2 * self.x.marks_len - 1] = b
                    continue
            self.x.marks[2 * self.x.marks_len] = a
            self.x.marks[2 * self.x.marks_len + 1] = b
            self.x.marks_len += 1
        sink.nranges = 0

    cdef void _apply_ack(self):
        cdef int64_t a, b
        while self.x.marks_head < self.x.marks_len:
            a = self.x.marks[2 * self.x.marks_head]
            b = self.x.marks[2 * self.x.marks_head + 1]
            if b <= self.ack_off:
                self.marked_acked_bytes += b - a
                self.x.marks_head += 1
            else:
                if a < self.ack_off:
                    self.marked_acked_bytes += self.ack_off - a
                    self.x.marks[2 * self.x.marks_head] = self.ack_off
                break
        if self.x.marks_head == self.x.marks_len:
            self.x.marks_head = 0
            self.x.marks_len = 0


cdef int64_t _count_diff(const uint8_t* a, const uint8_t* b, Py_ssize_t n) noexcept:
    cdef Py_ssize_t i
    cdef int64_t d = 0
    for i in range(n):
        if a[i] != b[i]:
            d += 1
    return d


cdef inline int64_t _overlap(int64_t a, int64_t b, int64_t c, int64_t d) noexcept:
    """Length of [a, b) ∩ [c, d)."""
    cdef int64_t lo = a if a > c else c
    cdef int64_t hi = b if b < d else d
    return hi - lo if hi > lo else 0
