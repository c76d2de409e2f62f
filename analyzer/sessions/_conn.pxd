from libc.stdint cimport int64_t, uint8_t, uint16_t

from analyzer.flows._tcp cimport TcpStream
from analyzer.flows._utp cimport UtpStream


cdef struct ConnData:
    # What only a connection that carried a handshake or piece blocks needs (allocated then)
    int hs_file[2]                     # where each direction's handshake (its info_hash) was
    int64_t hs_frame[2]                # delivered: file index, frame (-1: not seen), time
    int64_t hs_ts[2]
    int first_block_file, last_block_file   # the first and last frame that delivered piece
    int64_t first_block_frame, last_block_frame, first_block_ts, last_block_ts   # block bytes (-1: none)
    # block bytes (delivered, and acknowledged) per second of capture time, each direction
    int64_t* ser_sec[2]
    int64_t* ser_bytes[2]
    int64_t* ser_acked[2]
    Py_ssize_t ser_len[2]
    Py_ssize_t ser_cap[2]


cdef class Connection:
    """Both directions of one connection.  Endpoint 0 is the initiator when the
    connection's start was captured, else the sender of the first frame."""
    cdef readonly int64_t conn_id
    cdef readonly int ip_version
    cdef uint8_t a0[16]                 # endpoint addresses (4 or 16 bytes: ip_version)
    cdef uint8_t a1[16]
    cdef readonly int port0, port1
    cdef readonly int64_t frames0, frames1, wire_bytes0, wire_bytes1
    cdef readonly int first_file, last_file
    cdef readonly int64_t first_frame, last_frame, first_ts, last_ts
    cdef readonly bint closed, reset
    cdef readonly bytes key
    # frames that delivered the initiator's head (its parser's first bytes, where HTTP requests
    # live) while it showed no BitTorrent handshake: [(head length after the frame, file index,
    # frame, time)], None until the first
    cdef readonly list head_marks
    cdef Py_ssize_t head_marked
    # stream bytes the initiator sent before the responder's first payload, and
    # the responder before the initiator's next one (-1: not seen): the sizes of
    # an encryption handshake's first flights (MSE: 96-608 bytes each)
    cdef readonly int64_t flight0, flight1
    # BEP 10 state (sessions.extensions.ConnectionExtensions), None until the first extended message
    cdef public object extensions
    cdef ConnData* x                    # NULL until a handshake or a block (see ConnData)

    cdef ConnData* _data(self) except NULL
    cdef inline bint handshake_noted(self, int d) noexcept:
        return self.x != NULL and self.x.hs_frame[d] >= 0
    cdef void set_addresses(self, const uint8_t* a0, const uint8_t* a1)
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
    cdef readonly tuple halves         # keys registered in the engine's uTP table
