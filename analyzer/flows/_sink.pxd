from libc.stdint cimport uint8_t, int64_t


cdef class StreamSink:
    """What a transport (TCP or uTP reassembler) delivers one direction's bytes to.

    The sink may *mark* stream ranges (for the peer wire parser: piece block
    bytes); the transport drains the marks after each delivery and tells how
    many marked bytes the receiver acknowledged.
    """
    cdef int64_t* ranges
    cdef Py_ssize_t nranges, ranges_cap
    # while ``feed`` runs: the buffer the bytes lie in when it does not change while referenced (a
    # mapped capture file; the sink may keep pointers into it and the object), else None
    cdef object feed_owner

    cdef void feed(self, const uint8_t* p, Py_ssize_t n)
    cdef void feed_gap(self, int64_t n)
    cdef void feed_break(self)
    cdef void feed_eof(self)
    cdef void release(self)
    cdef void add_range(self, int64_t a, int64_t b)
