# cython: language_level=3
"""The verifier's hot path: a block that lands in a hole of its piece.

Theory of operation
-------------------
Almost every block lands where nothing of its piece is yet: it continues
the piece exactly where the bytes hashed so far end, or it arrived before a
block it follows (a seeder's disk reads finish out of order) and fills part
of a hole.  ``PieceState`` holds what such a block touches (the base of
``assembly.Assembly``); ``place`` takes the block when it overlaps no byte
already there: the block object becomes a segment of the piece (no copy),
inserted in offset order, and if it starts at the hashed front the
segments from there on that are contiguous are fed to the piece's hasher
(the SHA-1 worker's job, without a Python call).  The block object is a
``bytes`` copy or, when its bytes lie in a mapped capture, an ``InPlace``
(``flows._inplace``: spans of the capture, hashed where they lie; a tap of a
carving verifier copies it at once, since a carved piece is read again when
it is decided, after the mapping gave those pages back).  Anything else (a block
that overlaps what is there, a piece in buffer mode, a piece fed in too
many runs, a block past the piece's end) returns 0 and goes to the Python
path (``Assembly.insert``), which does the same for the bytes that are new
and compares the others.

``TapState`` (the base of ``pieces.Tap``) remembers the piece its connection
fed last, so such a block costs the parser's call and no dictionary
look-up; a block of another piece in progress costs one look-up in the
verifier's pending pieces.  A piece that leaves the verifier's pending set
without being covered is marked dead (``front`` -2) so that a tap holding
it stops using it.
"""
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.tuple cimport PyTuple_GET_ITEM

from analyzer.evidence._sha1 cimport Sha1Job
from analyzer.flows._inplace cimport InPlace


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


cdef inline int _feed(object h, object data) except -1:
    if type(h) is Sha1Job:
        (<Sha1Job>h).feed(data)
    else:
        h.update(data)
    return 0


cdef inline Py_ssize_t _seg_end(list offs, list segs, Py_ssize_t i) except -1:
    """End offset of segment ``i``."""
    return <Py_ssize_t>(<object>PyList_GET_ITEM(offs, i)) + \
        len(<object>PyTuple_GET_ITEM(<object>PyList_GET_ITEM(segs, i), 0))


cpdef int place(PieceState p, Py_ssize_t offset, object chunk, object sender, object where) except -1:
    """A run of block bytes at ``offset`` of piece ``p`` from ``sender`` (carried by frame
    ``where``), taken when it overlaps nothing the piece has.  0: not taken (the caller takes
    the slow path); 1: taken; 2: taken and the piece is covered."""
    cdef Py_ssize_t n, m, lo, hi, mid, front, i
    cdef list offs = p.offs, segs = p.segs
    cdef object had, data
    if p.front < 0 or (type(chunk) is not bytes and type(chunk) is not InPlace):
        return 0
    n = len(chunk)
    m = PyList_GET_SIZE(offs)
    if n == 0 or offset < 0 or offset + n > p.size or m >= p.seg_limit:
        return 0
    if offset == p.front and p.fi == m:
        # the usual case: it continues the hashed bytes, nothing waits beyond them
        _feed(p.h, chunk)
        offs.append(offset)
        segs.append((chunk, sender))
        p.fi = m + 1
        p.front = offset + n
    else:
        lo, hi = 0, m                 # the first segment that starts after offset
        while lo < hi:
            mid = (lo + hi) >> 1
            if <Py_ssize_t>(<object>PyList_GET_ITEM(offs, mid)) <= offset:
                lo = mid + 1
            else:
                hi = mid
        if lo > 0 and _seg_end(offs, segs, lo - 1) > offset:
            return 0                  # overlaps the segment before
        if lo < m and <Py_ssize_t>(<object>PyList_GET_ITEM(offs, lo)) < offset + n:
            return 0                  # overlaps the segment after
        offs.insert(lo, offset)
        segs.insert(lo, (chunk, sender))
        if offset == p.front:         # it fills the hole at the front: hash what is contiguous now
            i, front, m = p.fi, p.front, m + 1
            while i < m and <Py_ssize_t>(<object>PyList_GET_ITEM(offs, i)) == front:
                data = <object>PyTuple_GET_ITEM(<object>PyList_GET_ITEM(segs, i), 0)
                _feed(p.h, data)
                front += len(data)
                i += 1
            p.fi, p.front = i, front
    p.covered += n
    had = p.senders.get(sender)
    p.senders[sender] = n if had is None else had + n
    p.last = where
    return 2 if p.covered == p.size else 1


def append(PieceState p, Py_ssize_t offset, object chunk, object sender, object where) -> int:
    """``place`` for a block that continues the hashed bytes only (0 for any other)."""
    if offset != p.front or p.fi != len(p.offs):
        return 0
    return place(p, offset, chunk, sender, where)


cdef class TapState:
    """The fields of a tap (``pieces.Tap``) and its fast path."""
    cdef public object verifier, conn, parser, engine, torrent, receiver, sender, probe
    cdef public int d
    cdef public Py_ssize_t probe_bytes
    cdef public PieceState piece      # the piece this tap fed last (None)
    cdef public Py_ssize_t piece_index
    cdef public object pending        # the verifier's pieces in progress (key -> Assembly)
    cdef public bint copy_blocks      # blocks left in place are copied at once (their bytes are
                                      # needed again when the piece is decided: carving)

    def data(self, Py_ssize_t index, Py_ssize_t offset, object chunk):
        """A run of block bytes of piece ``index`` at ``offset`` (from the parser)."""
        cdef PieceState p = self.piece
        cdef int r
        if self.copy_blocks and type(chunk) is InPlace:
            chunk = (<InPlace>chunk).materialize()
        e = self.engine
        where = (e.cur_file, e.cur_frame, e.cur_ts)
        if (p is None or index != self.piece_index) and self.torrent is not None and self.pending is not None:
            p = self.pending.get((self.torrent.key, self.receiver, index))
            if p is not None:
                self.piece, self.piece_index = p, index
        if p is not None and index == self.piece_index:
            r = place(p, offset, chunk, self.sender, where)
            if r:
                if r == 2:
                    self.verifier.covered(self.torrent, self.receiver, index, p)
                return
        self.slow(index, offset, chunk, where)
