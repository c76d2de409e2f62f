# cython: language_level=3
"""Base class of stream consumers; see _sink.pxd."""
from libc.stdint cimport uint8_t, int64_t
from libc.stdlib cimport realloc, free

cdef enum:
    MAX_RANGES = 1 << 20


cdef class StreamSink:
    def __cinit__(self):
        self.ranges = NULL
        self.nranges = 0
        self.ranges_cap = 0

    def __dealloc__(self):
        free(self.ranges)

    cdef void feed(self, const uint8_t* p, Py_ssize_t n):
        pass

    cdef void feed_gap(self, int64_t n):
        pass

    cdef void feed_break(self):
        """Bytes were lost, how many is unknown (a uTP packet was not captured)."""
        pass

    cdef void feed_eof(self):
        pass

    cdef void release(self):
        """End of an input file: let go of any pointer into the buffers fed so far (copy)."""
        pass

    cdef void add_range(self, int64_t a, int64_t b):
        if self.nranges and self.ranges[2 * self.nranges - 1] == a:
            self.ranges[2 * self.nranges - 1] = b
            return
        if self.nranges == self.ranges_cap:
            if self.ranges_cap >= MAX_RANGES:
                # Never drained (not the case under a transport): widen the last range.
                self.ranges[2 * self.nranges - 1] = b
                return
            self.ranges_cap = 16 if self.ranges_cap == 0 else self.ranges_cap * 2
            self.ranges = <int64_t*>realloc(self.ranges, 2 * self.ranges_cap * sizeof(int64_t))
            if self.ranges == NULL:
                raise MemoryError()
        self.ranges[2 * self.nranges] = a
        self.ranges[2 * self.nranges + 1] = b
        self.nranges += 1
