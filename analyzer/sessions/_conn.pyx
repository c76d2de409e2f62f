# cython: language_level=3
"""Connection objects of the engine (TCP and uTP): endpoints, per-direction
frame counters, frame references, and the two direction streams."""
from libc.stdint cimport int64_t

from analyzer.flows._tcp cimport TcpStream
from analyzer.flows._utp cimport UtpStream


cdef class Connection:
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

    cdef void close(self, int64_t ts, bint reset):
        if not self.closed:
            self.closed = True
            self.close_ts = ts
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
    cdef void finish_streams(self):
        self.s0.finish()
        self.s1.finish()

    cdef void shrink(self):
        self.s0.shrink()
        self.s1.shrink()


cdef class UtpConnection(Connection):
    cdef void finish_streams(self):
        self.s0.finish()
        self.s1.finish()
