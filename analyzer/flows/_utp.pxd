from libc.stdint cimport uint8_t, uint16_t, uint32_t, int16_t, int32_t, int64_t

from analyzer.decode._headers cimport ST_DATA, ST_FIN, ST_STATE, ST_RESET, ST_SYN
from analyzer.flows._sink cimport StreamSink


cdef class UtpStream:
    cdef public StreamSink sink
    cdef readonly bint started, syn_seen, fin_seen, reset_seen, finished
    cdef readonly int64_t next_idx        # unwrapped seq_nr of the next packet to deliver
    cdef int64_t fin_idx
    cdef dict ooo                         # idx -> payload (bytes) waiting for earlier packets (None: none yet)
    cdef list ooo_heap                    # min-heap of the keys of ooo (and drained ones, popped lazily)
    cdef readonly int64_t ooo_bytes
    # delivered packets not yet cumulatively acknowledged: idx q_head_idx + i
    cdef int64_t q_head_idx
    cdef Py_ssize_t q_len, q_cap
    cdef int32_t* q_marked
    cdef uint32_t* q_hash
    cdef int32_t* q_size
    cdef uint8_t* q_acked
    cdef readonly int64_t ack_idx         # highest packet acknowledged cumulatively (-1: none)
    cdef bint have_ack
    # the receiver closed (sent ST_FIN or ST_RESET): its later ACKs credit nothing
    cdef readonly bint receiver_closed
    cdef int64_t late_ack_idx             # highest packet it acknowledged after closing
    cdef bint have_late_ack
    cdef int64_t gap_lo, gap_hi           # packet range last declared lost
    cdef int hole_frames
    cdef int64_t hole_at
    # counters
    cdef readonly int64_t packets, payload_bytes, delivered_bytes, delivered_packets
    cdef readonly int64_t duplicate_bytes, duplicate_packets, conflict_packets, uncompared_packets
    cdef readonly int64_t gap_packets, gaps, late_bytes, truncated_bytes
    cdef readonly int64_t marked_bytes, marked_acked_bytes

    cdef inline int64_t rel(self, uint16_t seq) noexcept:
        return self.next_idx + <int16_t>(seq - <uint16_t>self.next_idx)

    cdef void packet(self, int ptype, uint16_t seq, const uint8_t* data, Py_ssize_t caplen, Py_ssize_t paylen)
    cdef void start_at(self, uint16_t seq)
    cdef void ack(self, uint16_t ack_nr, const uint8_t* sack, Py_ssize_t sack_len)
    cdef void close_receiver(self)
    cdef void finish(self)
    cdef void _deliver(self, const uint8_t* data, Py_ssize_t n, uint32_t h)
    cdef void _drain(self)
    cdef int64_t _ooo_min(self)
    cdef void _free_queue(self)
    cdef void _deliver_packet(self, const uint8_t* data, Py_ssize_t caplen, Py_ssize_t paylen, uint32_t h)
    cdef int64_t _acked_end(self)
    cdef void _lose_to(self, int64_t idx)
    cdef void _check_hole(self)
    cdef void _ack_one(self, int64_t idx)
    cdef void _pop_acked(self)
    cdef void _queue_push(self, int32_t marked, uint32_t h, int32_t size, bint acked)
