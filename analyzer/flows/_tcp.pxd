from libc.stdint cimport uint8_t, uint32_t, int32_t, int64_t

from analyzer.decode._headers cimport TH_FIN, TH_SYN, TH_RST, TH_PUSH, TH_ACK
from analyzer.flows._sink cimport StreamSink


cdef class Segment:
    cdef int64_t off
    cdef bytes data


cdef struct PendEntry:
    const uint8_t* p                       # delivered bytes still where the capture had them
    int64_t off
    int64_t n


cdef struct TcpData:
    # What only a stream that carries payload (or sees a hole) needs: allocated then, zeroed.
    int64_t ooo_bytes
    uint8_t* ring
    int64_t ring_cap, ring_from
    # deliveries not yet copied into the ring (see the module docstring), a ring of pend_cap
    PendEntry* pend
    Py_ssize_t pend_head, pend_n, pend_cap
    int64_t gap_lo, gap_hi                 # the range last declared a gap
    int hole_frames
    int64_t hole_at                        # next_off when the current hole was first seen acked
    # marked (e.g. piece block) ranges not yet acknowledged, as [a, b) pairs
    int64_t* marks
    Py_ssize_t marks_head, marks_len, marks_cap
    # counters
    int64_t segments, payload_bytes, delivered_bytes, duplicate_bytes
    int64_t conflict_bytes, conflict_segments, uncompared_bytes
    int64_t gap_bytes, gaps, late_bytes, truncated_bytes, marked_bytes


cdef enum:
    PEND_REACH = 12 << 20          # bytes of the buffer behind the frame in hand a pending delivery may lie
                                   # (< capture.mapping.KEEP_BEHIND: those pages are still there)


cdef class TcpStream:
    cdef public StreamSink sink
    cdef readonly bint started, syn_seen, fin_seen, rst_seen, finished
    cdef readonly uint32_t isn
    cdef uint32_t base_seq
    cdef readonly int64_t next_off, max_end, fin_off, ack_off
    cdef readonly int64_t marked_acked_bytes
    cdef list ooo                          # out-of-order Segments (None until the first)
    cdef TcpData* x                        # NULL until the stream needs it (see TcpData)
    cdef object pend_owner                 # the buffer the pending deliveries lie in (kept alive)
    cdef public list pend_registry         # the engine's streams with pending deliveries (or None)
    cdef bint registered                   # ... this one is in it

    cdef inline int64_t rel(self, uint32_t seq) noexcept:
        return self.next_off + <int32_t>(seq - <uint32_t>(self.base_seq + <uint32_t>self.next_off))

    cdef void segment(self, uint32_t seq, int flags, const uint8_t* data, Py_ssize_t caplen, Py_ssize_t paylen,
                      object owner)
    cdef void ack(self, uint32_t ack)
    cdef void finish(self)
    cdef void shrink(self)
    cdef void _insert(self, int64_t off, const uint8_t* data, Py_ssize_t n, object owner)
    cdef void _deliver(self, const uint8_t* data, Py_ssize_t n, object owner)
    cdef void _to_ring(self, int64_t pos, const uint8_t* data, Py_ssize_t n)
    cdef void _pend_to_ring(self, PendEntry* e)
    cdef void _materialize(self)
    cdef bint release_before(self, const uint8_t* limit)
    cdef void _drain(self)
    cdef void _take(self, Segment s)
    cdef Py_ssize_t _first_ending_after(self, int64_t off)
    cdef void _store(self, int64_t off, const uint8_t* data, Py_ssize_t n)
    cdef void _compare(self, int64_t off, const uint8_t* data, Py_ssize_t n, int64_t late)
    cdef void _grow_ring(self)
    cdef void _gap_to(self, int64_t off)
    cdef void _check_hole(self)
    cdef int64_t _acked_data_end(self)
    cdef void _take_marks(self)
    cdef void _apply_ack(self)
    cdef TcpData* _data(self) except NULL
