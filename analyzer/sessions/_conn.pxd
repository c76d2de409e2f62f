from libc.stdint cimport int64_t, uint16_t

from analyzer.flows._tcp cimport TcpStream
from analyzer.flows._utp cimport UtpStream


cdef class Connection:
    """Both directions of one connection.  Endpoint 0 is the initiator when the
    connection's start was captured, else the sender of the first frame."""
    cdef readonly int64_t conn_id
    cdef readonly int ip_version
    cdef readonly bytes addr0, addr1
    cdef readonly int port0, port1
    cdef readonly int64_t frames0, frames1, wire_bytes0, wire_bytes1
    cdef readonly int first_file, last_file
    cdef readonly int64_t first_frame, last_frame, first_ts, last_ts
    cdef readonly bint closed, reset
    cdef readonly bytes key
    # where each direction's handshake (its info_hash) was delivered: file index, frame, time (-1: not seen)
    cdef readonly int hs_file0, hs_file1
    cdef readonly int64_t hs_frame0, hs_frame1, hs_ts0, hs_ts1
    # frames that delivered the initiator's head (its parser's first bytes, where HTTP requests
    # live) while it showed no BitTorrent handshake: [(head length after the frame, file index,
    # frame, time)], None until the first
    cdef readonly list head_marks
    cdef Py_ssize_t head_marked
    # stream bytes the initiator sent before the responder's first payload, and
    # the responder before the initiator's next one (-1: not seen): the sizes of
    # an encryption handshake's first flights (MSE: 96-608 bytes each)
    cdef readonly int64_t flight0, flight1
    # the first and last frame that delivered piece block bytes (either direction; -1: none)
    cdef readonly int first_block_file, last_block_file
    cdef readonly int64_t first_block_frame, last_block_frame, first_block_ts, last_block_ts
    # BEP 10 state (sessions.extensions.ConnectionExtensions), None until the first extended message
    cdef public object extensions

    # block bytes (delivered, and acknowledged) per second of capture time, each direction
    cdef int64_t* ser_sec[2]
    cdef int64_t* ser_bytes[2]
    cdef int64_t* ser_acked[2]
    cdef Py_ssize_t ser_len[2]
    cdef Py_ssize_t ser_cap[2]

    cdef void note_payload(self, int d, int64_t sent0, int64_t sent1)
    cdef void note_handshake(self, int d, int file_idx, int64_t frame_no, int64_t ts)
    cdef void note_block(self, int file_idx, int64_t frame_no, int64_t ts)
    cdef void note_head(self, Py_ssize_t head_len, int file_idx, int64_t frame_no, int64_t ts)
    cdef void add_block_bytes(self, int d, int64_t ts, int64_t n, int64_t acked)
    cdef int64_t acked(self, int d)

    cdef void touch(self, int d, int64_t wire, int64_t weight, int64_t ts, int file_idx, int64_t frame_no)
    cdef void close(self, bint reset)
    cdef void finish_streams(self)
    cdef void shrink(self)


cdef class TcpConnection(Connection):
    cdef readonly TcpStream s0, s1


cdef class UtpConnection(Connection):
    cdef readonly UtpStream s0, s1
    cdef readonly bint syn_seen
    cdef uint16_t syn_seq
    cdef readonly list halves          # keys registered in the engine's uTP table
