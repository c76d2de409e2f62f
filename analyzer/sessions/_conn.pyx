# cython: language_level=3
"""Connection objects of the engine (TCP and uTP): endpoints, per-direction
frame counters, frame references, and the two direction streams."""
from libc.stdint cimport int64_t
from libc.stdlib cimport realloc, free

import numpy as np

from analyzer.flows._tcp cimport TcpStream
from analyzer.flows._utp cimport UtpStream


cdef class Connection:
    def __cinit__(self):
        self.flight0 = -1
        self.flight1 = -1
        self.hs_frame0 = -1
        self.hs_frame1 = -1
        self.first_block_frame = -1
        self.last_block_frame = -1
        for d in range(2):
            self.ser_sec[d] = NULL
            self.ser_bytes[d] = NULL
            self.ser_acked[d] = NULL
            self.ser_len[d] = 0
            self.ser_cap[d] = 0

    def __dealloc__(self):
        for d in range(2):
            free(self.ser_sec[d])
            free(self.ser_bytes[d])
            free(self.ser_acked[d])

    cdef int64_t acked(self, int d):
        return 0

    cdef void add_block_bytes(self, int d, int64_t ts, int64_t n, int64_t acked):
        """Block bytes of direction d delivered (n) and acknowledged (acked) while
        handling a frame at capture time ts."""
        cdef int64_t sec = ts // 1000000000
        cdef Py_ssize_t k = self.ser_len[d]
        if k and self.ser_sec[d][k - 1] == sec:
            self.ser_bytes[d][k - 1] += n
            self.ser_acked[d][k - 1] += acked
            return
        if k == self.ser_cap[d]:
            self.ser_cap[d] = 8 if k == 0 else 2 * k
            self.ser_sec[d] = <int64_t*>realloc(self.ser_sec[d], self.ser_cap[d] * sizeof(int64_t))
            self.ser_bytes[d] = <int64_t*>realloc(self.ser_bytes[d], self.ser_cap[d] * sizeof(int64_t))
            self.ser_acked[d] = <int64_t*>realloc(self.ser_acked[d], self.ser_cap[d] * sizeof(int64_t))
            if self.ser_sec[d] == NULL or self.ser_bytes[d] == NULL or self.ser_acked[d] == NULL:
                raise MemoryError()
        self.ser_sec[d][k] = sec
        self.ser_bytes[d][k] = n
        self.ser_acked[d][k] = acked
        self.ser_len[d] = k + 1

    def block_series(self, int d):
        """int64 array of rows (second, block bytes, acknowledged block bytes) of direction d, in
        order of handling (24 bytes a row: a connection can live for days)."""
        cdef Py_ssize_t i, k = self.ser_len[d]
        out = np.empty((k, 3), np.int64)
        cdef int64_t[:, ::1] v = out
        for i in range(k):
            v[i, 0] = self.ser_sec[d][i]
            v[i, 1] = self.ser_bytes[d][i]
            v[i, 2] = self.ser_acked[d][i]
        return out

    cdef void note_payload(self, int d, int64_t sent0, int64_t sent1):
        """A payload-carrying packet from direction d; sent0/sent1: stream bytes
        each direction had carried before it."""
        if d == 1 and self.flight0 < 0:
            self.flight0 = sent0
        elif d == 0 and self.flight0 >= 0 and self.flight1 < 0:
            self.flight1 = sent1

    cdef void note_handshake(self, int d, int file_idx, int64_t frame_no, int64_t ts):
        if d == 0:
            self.hs_file0, self.hs_frame0, self.hs_ts0 = file_idx, frame_no, ts
        else:
            self.hs_file1, self.hs_frame1, self.hs_ts1 = file_idx, frame_no, ts

    cdef void note_block(self, int file_idx, int64_t frame_no, int64_t ts):
        if self.first_block_frame < 0:
            self.first_block_file, self.first_block_frame, self.first_block_ts = file_idx, frame_no, ts
        self.last_block_file, self.last_block_frame, self.last_block_ts = file_idx, frame_no, ts

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
