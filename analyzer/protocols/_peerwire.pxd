from libc.stdint cimport uint8_t, uint32_t, int64_t

from analyzer.flows._sink cimport StreamSink
from analyzer.flows._inplace cimport Span

# Which events the parser materialises as Python objects (counters are always kept).
cpdef enum EventMask:
    EV_HANDSHAKE = 1
    EV_MESSAGES = 2     # small BEP 3/6/52 messages
    EV_PIECE = 4
    EV_EXTENDED = 8
    EV_BITFIELD = 16
    EV_DIAG = 32        # gaps, desync/resync, protocol errors, not-peer-wire
    EV_ALL = 63


cdef class PeerWireParser(StreamSink):
    cdef public int event_mask
    cdef public object block_sink           # optional: .data(index, offset, bytes) for each run of block bytes
    cdef public list ext_messages           # optional: BEP 10 messages (ext id, payload) queued for the owner
                                            # (None: not queued), handshakes (id 0) included
    cdef list _events
    cdef int state
    cdef readonly int64_t stream_off       # stream offset of the next byte
    cdef readonly int64_t max_block

    # handshake
    cdef uint8_t hs[68]
    cdef int hs_len
    cdef readonly bytes reserved, info_hash, peer_id
    cdef readonly bint handshake_seen       # at least protocol, reserved and info_hash
    cdef readonly bint synced               # framing recognised (handshake or resync)
    cdef readonly bytes ext_handshake       # payload of the first BEP 10 handshake

    # current message
    cdef uint8_t hdr[13]
    cdef int hdr_len
    cdef int64_t msg_off
    cdef uint32_t msg_len
    cdef int msg_id
    cdef uint32_t piece_index, piece_begin
    cdef int64_t block_len, block_remaining, block_missing
    cdef uint8_t* body
    cdef Py_ssize_t body_cap, body_len, body_need
    cdef int64_t skip_remaining             # S_SKIP: body bytes of an oversized message still to pass

    # resynchronisation
    cdef uint8_t* rbuf
    cdef Py_ssize_t rbuf_len, rscan, rbuf_cap
    cdef int64_t rbuf_off, resync_start
    cdef bint tail_ok                       # skipped bytes may be a block tail (gap / mid-stream)
    cdef int anchor_kind
    cdef bytes _replay                      # buffered bytes to run again from an anchor
    cdef bint body_lost
    cdef uint8_t* blkbuf                    # block bytes collected for block_sink: inside blkobj
    cdef object blkobj                      # the bytes object handed to block_sink (filled in place)
    cdef Py_ssize_t blk_cap                 # its size
    cdef Py_ssize_t blk_len
    cdef int64_t blk_offset
    cdef object run_owner                   # the stable buffer the bytes _run reads lie in (None: not
                                            # stable, or a replay)
    cdef object blk_owner                   # a run collected in place: the buffer its spans lie in
    cdef Span* blk_spans                    # ... and the spans (blkobj is None meanwhile)
    cdef Py_ssize_t blk_nspans, blk_spans_cap
    cdef bint opaque_scan                   # looking for plaintext after an opaque start
    cdef readonly int64_t plaintext_from    # where plaintext peer wire began after it (-1: never)
    cdef bint head_open
    cdef bytearray _head
    cdef readonly Py_ssize_t head_len       # bytes kept in head so far

    # every stream byte lands in exactly one of these (block_tail and block_gap are subsets)
    cdef readonly int64_t handshake_bytes, message_bytes, block_bytes, unparsed_bytes
    cdef readonly int64_t opaque_bytes, gap_bytes
    cdef readonly int64_t block_tail_bytes, block_gap_bytes
    cdef readonly int64_t messages, pieces, protocol_errors, resyncs, desyncs, lost_messages, breaks
    cdef readonly int64_t oversized_messages  # skipped by their length (also counted in protocol_errors)
    # evidence that a stream without handshake is peer wire: the longest run of consecutive
    # well-formed messages of plausible size (keep-alives neither extend nor break it) since
    # framing was found, and piece messages of the standard shape (16 KiB at a 16 KiB offset)
    cdef readonly int64_t run_messages, best_run, std_blocks
    cdef int64_t msg_counts[32]

    cdef Py_ssize_t _feed_handshake(self, const uint8_t* p, Py_ssize_t n)
    cdef void _handshake_cut(self)
    cdef void _start_header(self)
    cdef Py_ssize_t _feed_header(self, const uint8_t* p, Py_ssize_t n)
    cdef void _start_body(self, Py_ssize_t need)
    cdef void _start_skip(self, uint32_t L, int msg_id)
    cdef void _end_piece(self)
    cdef void _count_message(self, int msg_id)
    cdef void _emit_body(self)
    cdef void _protocol_error(self, str reason)
    cdef void _desync(self)
    cdef void _enter_resync(self, int64_t off, bint tail_ok)
    cdef Py_ssize_t _run(self, const uint8_t* p, Py_ssize_t n)
    cdef Py_ssize_t _scan(self, bint final)
    cdef void _settle(self)
    cdef int _anchor(self, const uint8_t* p, Py_ssize_t avail, int64_t off)
    cdef Py_ssize_t _feed_resync(self, const uint8_t* p, Py_ssize_t n)
    cdef void _resynced(self, Py_ssize_t found)
    cdef void _drop_resync_buffer(self)
    cdef void _keep_block(self, const uint8_t* p, Py_ssize_t n)
    cdef void _flush_block(self)
    cdef void _spans_to_copy(self)
    cdef void _count_skipped(self, int64_t n)
    cdef void _give_up(self)
    cdef void _cut(self, bint gap, bint resync)
