# cython: language_level=3
"""Connection objects of the engine (TCP and uTP): endpoints, per-direction
frame counters, frame references, and the two direction streams."""
from libc.stdint cimport int64_t, uint8_t
from libc.stdlib cimport calloc, realloc, free
from libc.string cimport memcpy
from cpython.bytes cimport PyBytes_FromStringAndSize

import numpy as np

from analyzer.flows._tcp cimport TcpStream
from analyzer.flows._utp cimport UtpStream


cdef class Connection:
    def __cinit__(self):
        self.flight0 = -1
        self.flight1 = -1
        self.x = NULL

    def __dealloc__(self):
        if self.x != NULL:
            for d in range(2):
                free(self.x.ser_sec[d])
                free(self.x.ser_bytes[d])
                free(self.x.ser_acked[d])
            free(self.x)

    cdef ConnData* _data(self) except NULL:
        """Handshake and block references and the per-second series, allocated on first use:
        a connection that carries neither (a SYN flood's) costs only the object."""
        if self.x == NULL:
            self.x = <ConnData*>calloc(1, sizeof(ConnData))
            if self.x == NULL:
                raise MemoryError()
            self.x.hs_frame[0] = self.x.hs_frame[1] = -1
            self.x.first_block_frame = self.x.last_block_frame = -1
        return self.x

    cdef void set_addresses(self, const uint8_t* a0, const uint8_t* a1):
        cdef int alen = 4 if self.ip_version == 4 else 16
        memcpy(self.a0, a0, alen)
        memcpy(self.a1, a1, alen)

    @property
    def addr0(self):
        return PyBytes_FromStringAndSize(<const char*>self.a0, 4 if self.ip_version == 4 else 16)

    @property
    def addr1(self):
        return PyBytes_FromStringAndSize(<const char*>self.a1, 4 if self.ip_version == 4 else 16)

    # where each direction's handshake (its info_hash) was delivered (frame -1: not seen)
    @property
    def hs_file0(self): return self.x.hs_file[0] if self.x != NULL else 0
    @property
    def hs_file1(self): return self.x.hs_file[1] if self.x != NULL else 0
    @property
    def hs_frame0(self): return self.x.hs_frame[0] if self.x != NULL else -1
    @property
    def hs_frame1(self): return self.x.hs_frame[1] if self.x != NULL else -1
    @property
    def hs_ts0(self): return self.x.hs_ts[0] if self.x != NULL else 0
    @property
    def hs_ts1(self): return self.x.hs_ts[1] if self.x != NULL else 0

    # the first and last frame that delivered piece block bytes (either direction; frame -1: none)
    @property
    def first_block_file(self): return self.x.first_block_file if self.x != NULL else 0
    @property
    def first_block_frame(self): return self.x.first_block_frame if self.x != NULL else -1
    @property
    def first_block_ts(self): return self.x.first_block_ts if self.x != NULL else 0
    @property
    def last_block_file(self): return self.x.last_block_file if self.x != NULL else 0
    @property
    def last_block_frame(self): return self.x.last_block_frame if self.x != NULL else -1
    @property
    def last_block_ts(self): return self.x.last_block_ts if self.x != NULL else 0

    cdef int64_t acked(self, int d):
        return 0

    cdef void add_block_bytes(self, int d, int64_t ts, int64_t n, int64_t acked):
        """Block bytes of direction d delivered (n) and acknowledged (acked) while
        handling a frame at capture time ts."""
        cdef ConnData* x = self._data()
        cdef int64_t sec = ts // 1000000000
        cdef Py_ssize_t k = x.ser_len[d]
        if k and x.ser_sec[d][k - 1] == sec:
            x.ser_bytes[d][k - 1] += n
            x.ser_acked[d][k - 1] += acked
            return
        if k == x.ser_cap[d]:
            x.ser_cap[d] = 8 if k == 0 else 2 * k
            x.ser_sec[d] = <int64_t*>realloc(x.ser_sec[d], x.ser_cap[d] * sizeof(int64_t))
            x.ser_bytes[d] = <int64_t*>realloc(x.ser_bytes[d], x.ser_cap[d] * sizeof(int64_t))
            x.ser_acked[d] = <int64_t*>realloc(x.ser_acked[d], x.ser_cap[d] * sizeof(int64_t))
            if x.ser_sec[d] == NULL or x.ser_bytes[d] == NULL or x.ser_acked[d] == NULL:
                raise MemoryError()
        x.ser_sec[d][k] = sec
        x.ser_bytes[d][k] = n
        x.ser_acked[d][k] = acked
        x.ser_len[d] = k + 1

    def block_series(self, int d):
        """int64 array of rows (second, block bytes, acknowledged block bytes) of direction d, in
        order of handling (24 bytes a row: a connection can live for days); None when empty."""
        cdef Py_ssize_t i, k = self.x.ser_len[d] if self.x != NULL else 0
        if k == 0:
            return None
        out = np.empty((k, 3), np.int64)
        cdef int64_t[:, ::1] v = out
        for i in range(k):
            v[i, 0] = self.x.ser_sec[d][i]
            v[i, 1] = self.x.ser_bytes[d][i]
            v[i, 2] = self.x.ser_acked[d][i]
        return out

    cdef void note_payload(self, int d, int64_t sent0, int64_t sent1):
        """A payload-carrying packet from direction d; sent0/sent1: stream bytes
        each direction had carried before it."""
        if d == 1 and self.flight0 < 0:
            self.flight0 = sent0
        elif d == 0 and self.flight0 >= 0 and self.flight1 < 0:
            self.flight1 = sent1

    cdef void note_handshake(self, int d, int file_idx, int64_t frame_no, int64_t ts):
        cdef ConnData* x = self._data()
        x.hs_file[d], x.hs_frame[d], x.hs_ts[d] = file_idx, frame_no, ts

    cdef void note_block(self, int file_idx, int64_t frame_no, int64_t ts):
        cdef ConnData* x = self._data()
        if x.first_block_frame < 0:
            x.first_block_file, x.first_block_frame, x.first_block_ts = file_idx, frame_no, ts
        x.last_block_file, x.last_block_frame, x.last_block_ts = file_idx, frame_no, ts

    cdef void note_head(self, Py_ssize_t head_len, int file_idx, int64_t frame_no, int64_t ts):
        self.head_marked = head_len
        if self.head_marks is None:
            self.head_marks = []
        if len(self.head_marks) < 256:
            self.head_marks.append((head_len, file_idx, frame_no, ts))

    cdef void touch(self, int d, int64_t wire, int64_t weight, int64_t ts, int file_idx, int64_t frame_no):
        if d == 0:
            self.frames0 += weight
            self.wire_bytes0 += wire
        else:
            self.frames1 += weight
            self.wire_bytes1 += wire
        self.last_file = file_idx
        self.last_frame = frame_no
        if ts > self.last_ts:
            self.last_ts = ts
        elif ts < self.first_ts:
            self.first_ts = ts      # capture timestamps can go backwards: keep the span

    cdef void close(self, bint reset):
        self.closed = True
        if reset:
            self.reset = True

    cdef void finish_streams(self):
        pass

    cdef void shrink(self):
        pass

    @property
    def transport(self):
        return "tcp" if isinstance(self, TcpConnection) else "utp"

    @property
    def parser0(self):
        return getattr(self, "s0").sink

    @property
    def parser1(self):
        return getattr(self, "s1").sink


cdef class TcpConnection(Connection):
    cdef int64_t acked(self, int d):
        return self.s0.marked_acked_bytes if d == 0 else self.s1.marked_acked_bytes

    cdef void finish_streams(self):
        self.s0.finish()
        self.s1.finish()

    cdef void shrink(self):
        self.s0.shrink()
        self.s1.shrink()


cdef class UtpConnection(Connection):
    cdef int64_t acked(self, int d):
        return self.s0.marked_acked_bytes if d == 0 else self.s1.marked_acked_bytes

    cdef void finish_streams(self):
        self.s0.finish()
        self.s1.finish()
