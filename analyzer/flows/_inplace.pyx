# cython: language_level=3
"""Piece blocks left where they lie in a capture buffer that does not change (no copy).

Theory of operation
-------------------
TCP delivers in-order segments straight from the capture buffer (``flows._tcp``),
and when the frames lie in a buffer whose bytes never change while it is
referenced (a capture file mapped into memory: the *owner*), the peer wire
parser need not copy a block's bytes: it notes where each part of the block
lies (a *span*: pointer and length, one per TCP segment) and hands the
verifier an ``InPlace`` object (the spans, the owner kept alive, ``len()``)
instead of a ``bytes`` copy.  The SHA-1 worker hashes the spans where they
lie (``evidence._sha1``); every other consumer (the slow paths of the
verifier, a failed piece hashed again, carving, the staged run's block log)
gets the bytes through the buffer protocol (``bytes(x)``, ``memoryview(x)``),
which *materialises* the object: its bytes are copied once, kept, and the
owner let go.

Lifetimes.  Every object still in place is on a registry (a doubly linked
list in creation order, so oldest first).  Two things materialise them:

* ``release_all()`` at the end of each input file (``Engine.release_buffers``):
  every block still held (pieces waiting for a hole, covered pieces waiting for
  their digest, failed pieces kept, probes) is copied, so that nothing keeps a
  finished file mapped; then the consumers registered with ``add_sync`` (the
  SHA-1 worker) are waited for, so that no pointer into the file is read after
  the caller lets the file go.
* ``sweep(owner, now)`` when a block is made, and at each batch of a
  mapped buffer (``Engine``, with the TCP streams' own: a connection may go
  quiet with its blocks waiting): blocks that lie more than ``REACH`` bytes
  behind ``now`` are copied while their pages are still in memory (the mapping gives pages back ``KEEP_BEHIND`` behind
  its readers; a page read after that is faulted in again and stays in memory).

The parser copies instead (a ``bytes`` object, as before) when a block's bytes
do not all lie in one stable buffer: a run from the TCP out-of-order list, the
comparison ring or a resynchronisation replay, uTP, a capture read into buffers
(compressed, or small), a block that straddles two input files, a block whose
parts lie further apart than ``REACH``, or one of more than ``MAX_SPANS`` parts.
"""
from libc.stdint cimport uint8_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
from cpython.buffer cimport PyBuffer_FillInfo, PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
cimport cython

cdef enum:
    REACH = 8 << 20             # bytes of the buffer behind the newest block or batch a block may lie
                                # (< capture.mapping.KEEP_BEHIND: those pages are still there)

cdef void* reg_head[2]        # 0: blocks not handed to a hasher yet, 1: handed (see mark_fed)
cdef void* reg_tail[2]
reg_head[0] = reg_head[1] = reg_tail[0] = reg_tail[1] = NULL
cdef Py_ssize_t reg_n = 0
cdef long long made_blocks = 0, made_bytes = 0, copied_blocks = 0, copied_bytes = 0
cdef list _syncs = []


@cython.no_gc
@cython.final
cdef class InPlace:
    """A block's bytes as spans of a buffer that does not change (see the module docstring)."""

    def __cinit__(self):
        self.spans = NULL

    def __dealloc__(self):
        if self.owner is not None:
            _unlink(self)
        free(self.spans)

    cdef bytes materialize(self):
        """The bytes (copied once, kept); the owner is let go."""
        cdef Py_ssize_t i, k = 0
        cdef char* d
        global copied_blocks, copied_bytes
        if self.copy is None:
            self.copy = PyBytes_FromStringAndSize(NULL, self.nbytes)
            d = PyBytes_AS_STRING(self.copy)
            for i in range(self.nspans):
                memcpy(d + k, self.spans[i].p, self.spans[i].n)
                k += self.spans[i].n
            copied_blocks += 1
            copied_bytes += self.nbytes
        if self.owner is not None:
            _unlink(self)
            self.owner = None
        return self.copy

    def __len__(self):
        return self.nbytes

    def __bytes__(self):
        return self.materialize()

    def tobytes(self) -> bytes:
        return self.materialize()

    def __getitem__(self, key):
        """An index or a slice of the bytes (which are materialised)."""
        return self.materialize()[key]

    def __getbuffer__(self, Py_buffer* buffer, int flags):
        cdef bytes c = self.materialize()
        PyBuffer_FillInfo(buffer, self, PyBytes_AS_STRING(c), self.nbytes, 1, flags)

    @property
    def in_place(self) -> bool:
        """Its bytes are still read where they lie (not materialised)."""
        return self.owner is not None

    @property
    def span_count(self) -> int:
        return self.nspans

    def __repr__(self):
        return f"<InPlace {self.nbytes} bytes in {self.nspans} spans{'' if self.owner is not None else ', copied'}>"


cdef inline void _unlink(InPlace b) noexcept:
    global reg_n
    if b.prev != NULL:
        (<InPlace>b.prev).next = b.next
    else:
        reg_head[b.fed] = b.next
    if b.next != NULL:
        (<InPlace>b.next).prev = b.prev
    else:
        reg_tail[b.fed] = b.prev
    b.prev = b.next = NULL
    reg_n -= 1


cdef inline void _link(InPlace b, int which) noexcept:
    global reg_n
    b.fed = which
    b.prev, b.next = reg_tail[which], NULL
    if reg_tail[which] != NULL:
        (<InPlace>reg_tail[which]).next = <void*>b
    else:
        reg_head[which] = <void*>b
    reg_tail[which] = <void*>b
    reg_n += 1


cdef void mark_fed(InPlace b) noexcept:
    """``b`` was handed to a hasher, which read it soon (``evidence._sha1``): the sweep leaves it in
    place (it is read again only for a failed piece, a conflicting copy, or the file's end)."""
    if b.owner is not None and not b.fed:
        _unlink(b)
        _link(b, 1)


cdef InPlace make_in_place(object owner, const Span* spans, Py_ssize_t nspans, Py_ssize_t nbytes):
    """A block of ``nbytes`` in ``nspans`` spans of ``owner`` (not None), registered."""
    global made_blocks, made_bytes
    cdef InPlace b = InPlace.__new__(InPlace)
    b.spans = <Span*>malloc(nspans * sizeof(Span))
    if b.spans == NULL:
        raise MemoryError()
    memcpy(b.spans, spans, nspans * sizeof(Span))
    b.nspans, b.nbytes = nspans, nbytes
    b.owner = owner
    _link(b, 0)
    made_blocks += 1
    made_bytes += nbytes
    return b


cdef int sweep(object owner, const uint8_t* now) except -1:
    """Copy the oldest blocks of ``owner`` not handed to a hasher that lie more than ``REACH``
    before ``now`` (waiting in a piece for the bytes before them)."""
    cdef InPlace b
    while reg_head[0] != NULL:
        b = <InPlace>reg_head[0]
        if b.owner is not owner or <size_t>b.spans[0].p >= <size_t>now or \
                <size_t>now - <size_t>b.spans[0].p <= REACH:
            return 0
        b.materialize()
    return 0


def release_all() -> int:
    """End of an input file: every block still in place is copied (its owner let go), then the
    consumers that may still read spans (``add_sync``) are waited for.  Returns the blocks copied."""
    cdef Py_ssize_t n = 0
    cdef int which
    for which in range(2):
        while reg_head[which] != NULL:
            (<InPlace>reg_head[which]).materialize()
            n += 1
    for f in _syncs:
        f()
    return n


def add_sync(f) -> None:
    """``f()`` is called by ``release_all``: it returns once no span handed to it is read any more."""
    if f not in _syncs:
        _syncs.append(f)


def live() -> int:
    """Blocks still in place (not materialised)."""
    return reg_n


def stats() -> dict:
    """Counters of this process: blocks (and bytes) made in place, and those copied later."""
    return {"in_place_blocks": made_blocks, "in_place_bytes": made_bytes,
            "copied_blocks": copied_blocks, "copied_bytes": copied_bytes}


def from_spans(owner, spans) -> InPlace:
    """Tests: an InPlace over ``owner`` (an object whose buffer never moves or changes while it is
    referenced, e.g. ``bytes``) made of ``spans`` ((start, length) pairs)."""
    cdef Py_buffer view
    cdef Span* s
    cdef Py_ssize_t i = 0, total = 0, a, n
    cdef list pairs = [(int(a), int(n)) for a, n in spans]
    if owner is None or not pairs:
        raise ValueError("an owner and at least one span are needed")
    PyObject_GetBuffer(owner, &view, PyBUF_SIMPLE)
    s = <Span*>malloc(len(pairs) * sizeof(Span))
    try:
        for a, n in pairs:
            if a < 0 or n <= 0 or a + n > view.len:
                raise ValueError("a span is not inside the owner")
            s[i].p = <const uint8_t*>view.buf + a
            s[i].n = n
            total += n
            i += 1
        return make_in_place(owner, s, i, total)
    finally:
        free(s)
        PyBuffer_Release(&view)
