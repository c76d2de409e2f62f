# cython: language_level=3
"""The verifier's hot path: a block that continues its piece in order.

Theory of operation
-------------------
Almost every block continues the piece its receiver is building exactly
where the bytes hashed so far end.  ``PieceState`` holds what such a block
touches (the base of ``assembly.Assembly``); ``append`` takes the block when
it starts at the hashed front and nothing waits beyond it: the block object
becomes the piece's next segment (no copy) and is fed to the piece's hasher
(the SHA-1 worker's job, without a Python call).  Anything else (a block out
of order, overlapping, a piece fed in too many runs) returns 0 and goes to
the Python path (``Assembly.insert``).

``TapState`` (the base of ``pieces.Tap``) remembers the piece its connection
fed last, so an in-order block costs the parser's call and no dictionary
look-up.  A piece that leaves the verifier's pending set without being
covered is marked dead (``front`` -2) so that a tap holding it stops using it.
"""
from analyzer.evidence._sha1 cimport Sha1Job


cdef class PieceState:
    cdef public Py_ssize_t size       # bytes in the piece's byte space (v1: with pad bytes)
    cdef public Py_ssize_t front      # bytes [0, front) present and hashed; -1 buffer mode, -2 dead
    cdef public Py_ssize_t fi         # segments fed to the hasher
    cdef public Py_ssize_t covered    # bytes present (first copies, pad bytes included)
    cdef public Py_ssize_t seg_limit  # segments before the piece switches to a buffer
    cdef public list offs             # segment offsets, sorted
    cdef public list segs             # (data, sender); pad: (zeros, None)
    cdef public dict senders          # sender -> bytes of first copies
    cdef public object h              # the hasher
    cdef public object last           # (file, frame, ts) of the latest block


cpdef int append(PieceState p, Py_ssize_t offset, object chunk, object sender, object where) except -1:
    """0: not the in-order case (the caller takes the slow path); 1: appended; 2: appended
    and the piece is covered."""
    cdef Py_ssize_t n
    cdef object h, had
    if offset != p.front or type(chunk) is not bytes or p.fi != len(p.offs) or p.fi >= p.seg_limit:
        return 0
    n = len(chunk)
    if n == 0 or offset + n > p.size:
        return 0
    h = p.h
    if type(h) is Sha1Job:
        (<Sha1Job>h).feed(chunk)
    else:
        h.update(chunk)
    p.offs.append(offset)
    p.segs.append((chunk, sender))
    p.fi += 1
    p.front = offset + n
    p.covered += n
    had = p.senders.get(sender)
    p.senders[sender] = n if had is None else had + n
    p.last = where
    return 2 if p.covered == p.size else 1


cdef class TapState:
    """The fields of a tap (``pieces.Tap``) and its fast path."""
    cdef public object verifier, conn, parser, engine, torrent, receiver, sender, probe
    cdef public int d
    cdef public Py_ssize_t probe_bytes
    cdef public PieceState piece      # the piece this tap fed last (None)
    cdef public Py_ssize_t piece_index

    def data(self, Py_ssize_t index, Py_ssize_t offset, object chunk):
        """A run of block bytes of piece ``index`` at ``offset`` (from the parser)."""
        cdef PieceState p = self.piece
        cdef int r
        e = self.engine
        where = (e.cur_file, e.cur_frame, e.cur_ts)
        if p is not None and index == self.piece_index:
            r = append(p, offset, chunk, self.sender, where)
            if r:
                if r == 2:
                    self.verifier.covered(self.torrent, self.receiver, index, p)
                return
        self.slow(index, offset, chunk, where)
