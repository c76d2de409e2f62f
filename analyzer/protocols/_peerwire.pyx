# cython: language_level=3
"""Sans-IO parser of one direction of a BitTorrent peer wire stream.

Theory of operation
-------------------
The parser sees the reassembled byte stream of one TCP (or uTP) direction,
in order, as ``feed`` (bytes), ``feed_gap`` (n bytes that exist on the wire
but were not captured) and ``feed_eof``.  It never receives invented bytes.

States::

    HANDSHAKE --68 bytes--> HEADER <--> BODY        (small messages, buffered)
        |                     ^  \
        | not BT              |   +--> BLOCK        (piece payload, counted, never copied)
        v                     |    \
      OPAQUE               RESYNC   +--> SKIP       (oversized message, passed by its length)
                              ^
                              +-- gap past the current message, protocol error,
                                  or a stream whose start was not captured

* HEADER collects the 4-byte length prefix, the id and (for ``piece``) the
  8-byte index/begin into a 13-byte buffer, validates the length for the id
  and every length against a cap.
* BLOCK counts block bytes and records their stream offsets as ranges, which
  the transport layer drains to split them into acknowledged / not.
* A bitfield, piece, extended or hashes message whose length prefix is over
  the cap (``MAX_MESSAGE``, ``max_block``) is implausible, not garbage: at a
  message boundary the framing is trusted, the message is reported
  (``OversizedMessage``, counted in ``oversized_messages`` and
  ``protocol_errors``) and SKIP passes its body by its length without
  buffering it (counted as unparsed), then parsing goes on after it.  Wrong
  lengths for fixed-size messages and unknown ids stay protocol errors.
* A gap inside a block whose framing is known keeps the parser in sync (the
  missing bytes are counted as ``block_gap_bytes``); so does a gap inside a
  skipped message.  A gap that runs past the
  current message drops to RESYNC.
* RESYNC buffers (at most ``RBUF_CAP`` bytes) and looks for an *anchor*: a
  header that is valid under strict rules (exact fixed lengths, capped piece
  and request lengths, ``d`` after an extended handshake id) and whose
  successor header is valid too; or a standard 16 KiB piece header with an
  aligned offset (distinctive alone); or a handshake (its 20-byte protocol
  string), as when a connection is captured after its SYN.  The bytes skipped before the anchor are the
  tail of a block whose header was not captured when the anchor is a piece
  message and they are no longer than its block; then they count as block
  bytes of an unknown piece, otherwise as unparsed.  After ``RESYNC_BUDGET``
  bytes without an anchor the parser gives up (OPAQUE).

Framing found by resynchronisation can be chance (an HTTP body holding
bytes that read as two valid headers), so the parser also keeps the evidence
that a stream without handshake really is peer wire: ``best_run``, the
longest run of consecutive well-formed messages of plausible size (a piece
block shorter than 16 KiB counts only at a 16 KiB-aligned offset; keep-alives
neither extend nor break a run; protocol errors, gaps past a message and new
anchors end it), and ``std_blocks``, piece messages of the standard shape.

Every stream byte is counted exactly once in handshake, message, block,
unparsed, opaque or gap bytes (``block_tail`` and ``block_gap`` are subsets of
``block`` and ``gap``), so ``sum == stream_off`` after EOF.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, int64_t
from libc.string cimport memcpy, memcmp, memmove
from libc.stdlib cimport malloc, realloc, free
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING

from analyzer.flows._inplace cimport Span, make_in_place, sweep



class _Events:
    """The event types (events.py), imported when the first event is made: the engine asks for
    none, and importing them costs a run's start-up."""

    def __getattr__(self, name):
        from analyzer.protocols import events
        globals()["ev"] = events
        return getattr(events, name)


ev = _Events()

cdef enum:
    S_HANDSHAKE = 0
    S_HEADER = 1
    S_BLOCK = 2
    S_BODY = 3
    S_RESYNC = 4
    S_OPAQUE = 5
    S_SKIP = 6

cdef enum:
    MAX_MESSAGE = 1 << 20          # cap for any non-piece message body
    DEFAULT_MAX_BLOCK = 1 << 17    # BEP 3 blocks are 16 KiB; some clients allow 128 KiB
    RBUF_START = 1 << 8
    RBUF_CAP = 1 << 18
    RESYNC_BUDGET = 1 << 22
    RESYNC_STEP = 1 << 12          # bytes buffered between scans while resynchronising
    OPAQUE_SCAN = 1 << 16          # how far into a non-peer-wire stream plaintext is looked for
    HEAD_CAP = 1 << 13             # first bytes kept of streams not (yet) known as peer wire
    MAX_SPANS = 256                # parts of a block run noted in place (more: copied)
    SPAN_REACH = 8 << 20           # bytes of the buffer a block run in place may span (more: copied)

cdef const char* PROTO = b"\x13BitTorrent protocol"

cdef inline uint32_t be32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline int fixed_length(int msg_id) noexcept nogil:
    """Exact length prefix of fixed-size messages, 0 for variable, -1 unknown id."""
    if msg_id <= 3 or msg_id == 0x0E or msg_id == 0x0F:
        return 1
    if msg_id == 4 or msg_id == 0x0D or msg_id == 0x11:
        return 5
    if msg_id == 6 or msg_id == 8 or msg_id == 0x10:
        return 13
    if msg_id == 9:
        return 3
    if msg_id == 21 or msg_id == 23:
        return 49
    if msg_id == 5 or msg_id == 7 or msg_id == 20 or msg_id == 22:
        return 0
    return -1


cdef inline int strict_header_ok(uint32_t L, int msg_id, int64_t max_block) noexcept nogil:
    """Validity of (length, id) for resynchronisation anchors and their successors."""
    cdef int fixed = fixed_length(msg_id)
    if fixed < 0:
        return 0
    if fixed > 0:
        return L == <uint32_t>fixed
    if msg_id == 7:
        return L > 9 and L - 9 <= max_block
    if msg_id == 22:
        return L >= 81 and (L - 49) % 32 == 0 and L <= MAX_MESSAGE + 1
    return L >= 2 and L <= MAX_MESSAGE + 1     # bitfield, extended


cdef class PeerWireParser:
    """One direction of a peer wire stream: bytes in, typed events out.

    ``at_stream_start``: the first byte fed is the first byte of the stream
    (the TCP SYN was seen), so a handshake is expected; otherwise the parser
    starts by resynchronising.
    """

    def __cinit__(self):
        self.body = NULL
        self.rbuf = NULL
        self.blkbuf = NULL
        self.blk_spans = NULL

    def __init__(self, bint at_stream_start=True, int event_mask=EV_ALL, int64_t max_block=DEFAULT_MAX_BLOCK):
        self._events = []
        self.event_mask = event_mask
        self.max_block = max_block
        self.state = S_HANDSHAKE if at_stream_start else S_RESYNC
        self.resync_start = 0
        self.tail_ok = True      # a stream seen from its middle may start inside a block
        self.head_open = True
        self._head = bytearray()
        self.plaintext_from = -1

    def __dealloc__(self):
        free(self.body)
        free(self.rbuf)
        free(self.blk_spans)

    # ------------------------------------------------------------------ public (Python) API
    def receive_data(self, data):
        cdef const uint8_t[::1] mv
        if len(data):
            mv = data
            self.feed(&mv[0], mv.shape[0])
        self.nranges = 0
        return self.take_events()

    def receive_gap(self, int64_t n):
        if n < 0:
            raise ValueError("gap length must be >= 0")
        self.feed_gap(n)
        self.nranges = 0
        return self.take_events()

    def receive_eof(self):
        self.feed_eof()
        self.nranges = 0
        return self.take_events()

    def take_events(self):
        out = self._events
        self._events = []
        return out

    @property
    def head(self):
        """The first bytes of the stream (up to 8 KiB, contiguous from offset 0),
        kept unless the stream opened with a plaintext handshake: for HTTP
        trackers and encrypted (MSE) connections."""
        return bytes(self._head) if self._head is not None else b""

    @property
    def message_counts(self):
        """{message id: count} of complete messages parsed."""
        return {i: self.msg_counts[i] for i in range(32) if self.msg_counts[i]}

    @property
    def state_name(self):
        return ("handshake", "header", "block", "body", "resync", "opaque", "skip")[self.state]

    def accounted_bytes(self):
        """Sum of the exclusive byte categories (equals stream_off after EOF)."""
        return (self.handshake_bytes + self.message_bytes + self.block_bytes
                + self.unparsed_bytes + self.opaque_bytes + self.gap_bytes)

    # ------------------------------------------------------------------ feeding
    cdef void feed(self, const uint8_t* p, Py_ssize_t n):
        """Consume n stream bytes.  Bytes replayed after a resynchronisation are
        processed first, iteratively (never by recursion), then the rest."""
        cdef Py_ssize_t i = 0, j, take
        cdef bytes r
        cdef object owner = self.feed_owner
        if self.head_open and n > 0:
            take = HEAD_CAP - len(self._head)
            if take > n:
                take = n
            if take > 0 and self.stream_off == len(self._head):
                self._head.extend(PyBytes_FromStringAndSize(<const char*>p, take))
                self.head_len += take
            else:
                self.head_open = False
        while i < n or self._replay is not None:
            if self._replay is not None:
                r = self._replay
                self._replay = None
                self.run_owner = None           # (block bytes from a replay are copied)
                j = self._run(<const uint8_t*>PyBytes_AS_STRING(r), len(r))
                if j < len(r):
                    # Another anchor inside the replayed bytes: its own replay
                    # covers the bytes before r[j:], which follow it.
                    self._replay = self._replay + r[j:]
            else:
                self.run_owner = owner
                i += self._run(p + i, n - i)
        self.run_owner = None

    cdef Py_ssize_t _run(self, const uint8_t* p, Py_ssize_t n):
        """The state machine over p[0:n]; returns early when a replay is pending."""
        cdef Py_ssize_t i = 0, take
        while i < n:
            if self.state == S_BLOCK:
                take = n - i
                if take > self.block_remaining:
                    take = self.block_remaining
                if self.block_sink is not None and take:
                    self._keep_block(p + i, take)
                self.add_range(self.stream_off, self.stream_off + take)
                self.block_bytes += take
                self.block_remaining -= take
                self.stream_off += take
                i += take
                if self.block_remaining == 0:
                    self._end_piece()
            elif self.state == S_HEADER:
                i += self._feed_header(p + i, n - i)
            elif self.state == S_BODY:
                take = n - i
                if take > self.body_need - self.body_len:
                    take = self.body_need - self.body_len
                memcpy(self.body + self.body_len, p + i, take)
                self.body_len += take
                self.message_bytes += take
                self.stream_off += take
                i += take
                if self.body_len == self.body_need:
                    self._emit_body()
                    self._start_header()
            elif self.state == S_SKIP:
                take = n - i
                if take > self.skip_remaining:
                    take = self.skip_remaining
                self.unparsed_bytes += take
                self.stream_off += take
                self.skip_remaining -= take
                i += take
                if self.skip_remaining == 0:
                    self._start_header()
            elif self.state == S_HANDSHAKE:
                i += self._feed_handshake(p + i, n - i)
            elif self.state == S_RESYNC:
                i += self._feed_resync(p + i, n - i)
            else:
                self.opaque_bytes += n - i
                self.stream_off += n - i
                i = n
            if self._replay is not None:
                break
        return i

    cdef void feed_gap(self, int64_t n):
        if n <= 0:
            return
        self.head_open = False
        self._settle()
        cdef int64_t off = self.stream_off
        self.gap_bytes += n
        if self.state == S_BLOCK and n <= self.block_remaining:
            self._flush_block()                 # the run before the gap
            self.block_gap_bytes += n
            self.block_missing += n
            self.block_remaining -= n
            self.stream_off += n
            if self.event_mask & EV_DIAG:
                self._events.append(ev.Gap(off, n, True))
            if self.block_remaining == 0:
                self._end_piece()
            return
        if self.event_mask & EV_DIAG:
            self._events.append(ev.Gap(off, n, False))
        if self.state == S_SKIP and n <= self.skip_remaining:
            # inside a skipped message: its length is known, framing survives
            self.skip_remaining -= n
            self.stream_off += n
            if self.skip_remaining == 0:
                self._start_header()
            return
        if self.state == S_BODY and n <= self.body_need - self.body_len:
            # Inside a message whose length is known: framing survives, the message is lost.
            self.body_lost = True
            self.body_len += n
            self.stream_off += n
            if self.body_len == self.body_need:
                self._emit_body()
                self._start_header()
            return
        self._cut(True, True)
        self.stream_off += n
        if self.state == S_RESYNC:
            self.resync_start = self.stream_off
            self.rbuf_off = self.stream_off
        elif self.state == S_HEADER:
            self.msg_off = self.stream_off

    cdef void feed_break(self):
        """An unknown number of bytes was lost here (a uTP packet missing from the
        capture): whatever message was in progress is cut, framing is lost."""
        self._settle()
        self.breaks += 1
        if self.event_mask & EV_DIAG:
            self._events.append(ev.Gap(self.stream_off, -1, False))
        self._cut(False, True)

    def receive_break(self):
        self.feed_break()
        self.nranges = 0
        return self.take_events()

    cdef void feed_eof(self):
        self._settle()
        self._cut(False, False)

    cdef void _cut(self, bint gap, bint resync):
        """The stream breaks off inside whatever was in progress: a gap past the current
        message (``gap``: the rest of a block lies in it, counted as ``block_gap_bytes``),
        a break of unknown length, or the end (``resync`` False).  The message in progress
        is closed as cut; after a gap or break the framing of what follows is unknown
        (RESYNC), at the end the parser rests at a message boundary."""
        cdef int s = self.state
        if s == S_RESYNC:
            self._drop_resync_buffer()
            if not resync and self.opaque_scan:
                self.state = S_OPAQUE      # no plaintext peer wire turned up
            return
        if s == S_OPAQUE:
            return
        if s == S_BLOCK:
            if gap:
                self.block_gap_bytes += self.block_remaining
            self.block_missing += self.block_remaining
            self.block_remaining = 0
            self._end_piece()
        elif s == S_HEADER:
            # even at a message boundary the framing of what follows is unknown
            self.unparsed_bytes += self.hdr_len
            self.hdr_len = 0
        elif s == S_BODY:
            self.lost_messages += 1
        elif s == S_SKIP:
            self.skip_remaining = 0        # the rest of the skipped message is cut off
        elif s == S_HANDSHAKE:
            self._handshake_cut()
        if resync:
            self._desync()
        elif s == S_BODY or s == S_SKIP:
            self._start_header()

    # ------------------------------------------------------------------ handshake
    cdef Py_ssize_t _feed_handshake(self, const uint8_t* p, Py_ssize_t n):
        cdef Py_ssize_t i = 0
        while i < n and self.hs_len < 68:
            if self.hs_len < 20 and p[i] != <uint8_t>PROTO[self.hs_len]:
                # Not a plaintext BitTorrent handshake.  The stream may still turn
                # to plaintext peer wire after an encryption handshake (MSE with
                # plaintext selected): scan a bounded prefix for it; what is
                # skipped is opaque.
                self.stream_off += i
                if self.event_mask & EV_DIAG:
                    self._events.append(ev.NotPeerWire(self.stream_off - self.hs_len))
                self._enter_resync(self.stream_off - self.hs_len, False)
                self.opaque_scan = True
                self.stream_off -= self.hs_len
                self._feed_resync(self.hs, self.hs_len)
                return i
            self.hs[self.hs_len] = p[i]
            self.hs_len += 1
            i += 1
        self.stream_off += i
        if self.hs_len >= 48 and not self.handshake_seen:
            self.reserved = PyBytes_FromStringAndSize(<char*>self.hs + 20, 8)
            self.info_hash = PyBytes_FromStringAndSize(<char*>self.hs + 28, 20)
            self.handshake_seen = True
            self.synced = True
        if self.hs_len == 68:
            if self.stream_off == 68:
                self.head_open = False      # plainly peer wire: no need to keep its start
                self._head = None
            self.peer_id = PyBytes_FromStringAndSize(<char*>self.hs + 48, 20)
            self.handshake_bytes += 68
            if self.event_mask & EV_HANDSHAKE:
                self._events.append(ev.Handshake(self.reserved, self.info_hash, self.peer_id))
            self._start_header()
        return i

    cdef void _handshake_cut(self):
        """The stream broke or ended inside the handshake."""
        self.handshake_bytes += self.hs_len
        if self.handshake_seen and self.event_mask & EV_HANDSHAKE:
            self._events.append(ev.Handshake(self.reserved, self.info_hash, None))
        self.hs_len = 68

    # ------------------------------------------------------------------ messages
    cdef void _start_header(self):
        self.state = S_HEADER
        self.hdr_len = 0
        self.msg_off = self.stream_off

    cdef Py_ssize_t _feed_header(self, const uint8_t* p, Py_ssize_t n):
        cdef Py_ssize_t i = 0
        cdef int target
        cdef uint32_t L
        cdef int msg_id, fixed
        while i < n:
            target = 4 if self.hdr_len < 4 else (13 if self.msg_id == 7 else 5)
            while i < n and self.hdr_len < target:
                self.hdr[self.hdr_len] = p[i]
                self.hdr_len += 1
                i += 1
            if self.hdr_len < target:
                break
            if self.hdr_len == 4:
                L = be32(self.hdr)
                self.msg_len = L
                self.msg_id = -1
                if L == 0:
                    self._count_message(-1)
                    self.message_bytes += 4
                    self.stream_off += i
                    if self.event_mask & EV_MESSAGES:
                        self._events.append(ev.KeepAlive())
                    self._start_header()
                    return i
                continue
            if self.hdr_len == 5:
                msg_id = self.hdr[4]
                L = self.msg_len
                fixed = fixed_length(msg_id)
                if (msg_id != 7 and L > MAX_MESSAGE + 1) or (fixed > 0 and L != <uint32_t>fixed) or \
                        (msg_id == 7 and (L < 9 or L - 9 > self.max_block)) or (msg_id == 22 and L < 49) or \
                        ((msg_id == 5 or msg_id == 20) and L < 2):
                    self.stream_off += i
                    if (msg_id == 5 or msg_id == 20 or msg_id == 22) and L > MAX_MESSAGE + 1 or \
                            msg_id == 7 and L >= 9 and L - 9 > self.max_block:
                        self._start_skip(L, msg_id)
                    else:
                        self._protocol_error("bad length %d for message id %d" % (L, msg_id))
                    return i
                self.msg_id = msg_id
                if msg_id == 7:
                    continue
                self.message_bytes += 5
                self.stream_off += i
                self._start_body(L - 1)
                return i
            # 13 bytes: piece header complete
            self.piece_index = be32(self.hdr + 5)
            self.piece_begin = be32(self.hdr + 9)
            self.block_len = self.msg_len - 9
            if self.block_len == 16384 and self.piece_begin % 16384 == 0:
                self.std_blocks += 1
            self.block_remaining = self.block_len
            self.block_missing = 0
            self.message_bytes += 13
            self.stream_off += i
            self.state = S_BLOCK
            if self.block_remaining == 0:
                self._end_piece()
            return i
        self.stream_off += i
        return i

    cdef void _start_body(self, Py_ssize_t need):
        self.body_need = need
        self.body_len = 0
        self.body_lost = False
        if need == 0:
            self._emit_body()
            self._start_header()
            return
        if need > self.body_cap or (self.body_cap > 65536 and need <= 65536):
            free(self.body)
            self.body = <uint8_t*>malloc(need if need > 64 else 64)
            if self.body == NULL:
                raise MemoryError()
            self.body_cap = need if need > 64 else 64
        self.state = S_BODY

    cdef void _start_skip(self, uint32_t L, int msg_id):
        """An oversized message of a known variable-length kind: pass it by its length."""
        self.protocol_errors += 1
        self.oversized_messages += 1
        self.message_bytes += 5
        if self.event_mask & EV_DIAG:
            self._events.append(ev.OversizedMessage(self.msg_off, msg_id, L))
        self.skip_remaining = L - 1
        self.state = S_SKIP

    cdef void _keep_block(self, const uint8_t* p, Py_ssize_t n):
        """Collect a block's bytes; the sink gets each contiguous run once (one call per block
        rather than per segment).  Bytes that lie in a stable buffer (``run_owner``: a mapped
        capture file) are noted where they lie, as spans (``flows._inplace``); otherwise, or when
        a run's bytes do not all lie in one such buffer within reach, they are copied into a
        bytes object filled in place (one copy of the block's bytes)."""
        cdef Py_ssize_t cap
        cdef Span* grown
        if self.blk_len == 0:
            self.blk_offset = self.piece_begin + self.block_len - self.block_remaining
            self.blk_cap = self.block_remaining          # the most this run can hold
            if self.run_owner is not None:
                self.blk_owner = self.run_owner
                self.blk_nspans = 0
            else:
                self.blkobj = PyBytes_FromStringAndSize(NULL, self.blk_cap)
                self.blkbuf = <uint8_t*>PyBytes_AS_STRING(self.blkobj)
        elif self.blk_owner is not None and (
                self.run_owner is not self.blk_owner
                or (self.blk_nspans == MAX_SPANS and self.blk_spans[MAX_SPANS - 1].p + self.blk_spans[MAX_SPANS - 1].n != p)
                or <size_t>p - <size_t>self.blk_spans[0].p > SPAN_REACH):
            self._spans_to_copy()       # another buffer, too many parts, or parts too far apart
        if self.blk_owner is not None:
            if self.blk_nspans and self.blk_spans[self.blk_nspans - 1].p + self.blk_spans[self.blk_nspans - 1].n == p:
                self.blk_spans[self.blk_nspans - 1].n += n
            else:
                if self.blk_nspans == self.blk_spans_cap:
                    cap = 16 if self.blk_spans_cap == 0 else 2 * self.blk_spans_cap
                    grown = <Span*>realloc(self.blk_spans, cap * sizeof(Span))
                    if grown == NULL:
                        raise MemoryError()
                    self.blk_spans, self.blk_spans_cap = grown, cap
                self.blk_spans[self.blk_nspans].p = p
                self.blk_spans[self.blk_nspans].n = n
                self.blk_nspans += 1
        else:
            memcpy(self.blkbuf + self.blk_len, p, n)
        self.blk_len += n

    cdef void _spans_to_copy(self):
        """The run collected in place so far is copied; it goes on as a copy."""
        cdef Py_ssize_t i, k = 0
        self.blkobj = PyBytes_FromStringAndSize(NULL, self.blk_cap)
        self.blkbuf = <uint8_t*>PyBytes_AS_STRING(self.blkobj)
        for i in range(self.blk_nspans):
            memcpy(self.blkbuf + k, self.blk_spans[i].p, self.blk_spans[i].n)
            k += self.blk_spans[i].n
        self.blk_owner = None
        self.blk_nspans = 0

    cdef void release(self):
        """End of an input file: a block run collected in place is copied (it may go on in the
        next file; the buffer of this one is let go)."""
        self.feed_owner = None
        if self.blk_owner is not None:
            self._spans_to_copy()

    cdef void _flush_block(self):
        cdef object run = None
        cdef Span* last
        if self.blk_len and self.block_sink is not None:
            if self.blk_owner is not None:
                last = &self.blk_spans[self.blk_nspans - 1]
                sweep(self.blk_owner, last.p + last.n)      # older blocks copied while in memory
                run = make_in_place(self.blk_owner, self.blk_spans, self.blk_nspans, self.blk_len)
            elif self.blk_len == self.blk_cap:
                run = self.blkobj
            else:                                        # a run cut short by a gap
                run = PyBytes_FromStringAndSize(<const char*>self.blkbuf, self.blk_len)
        self.blkobj, self.blkbuf = None, NULL
        self.blk_owner = None
        self.blk_nspans = 0
        self.blk_len = 0
        if run is not None:
            self.block_sink.data(self.piece_index, self.blk_offset, run)

    cdef void _end_piece(self):
        self._flush_block()
        self.pieces += 1
        self._count_message(7)
        if self.event_mask & EV_PIECE:
            self._events.append(ev.Piece(self.piece_index, self.piece_begin, self.block_len, self.block_missing))
        self._start_header()

    cdef void _count_message(self, int msg_id):
        self.messages += 1
        if 0 <= msg_id < 32:
            self.msg_counts[msg_id] += 1
        if msg_id == 7 and self.block_len < 16384 and self.piece_begin % 16384 != 0:
            self.run_messages = 0          # a short block inside a block: not a plausible size
        elif msg_id != -1:
            self.run_messages += 1
            if self.run_messages > self.best_run:
                self.best_run = self.run_messages

    cdef void _emit_body(self):
        cdef int msg_id = self.msg_id
        cdef const uint8_t* b = self.body
        cdef Py_ssize_t n = self.body_len
        cdef int mask = self.event_mask
        cdef bytes payload
        if self.body_lost:
            # part of the body fell in a capture gap: framing kept, content unknown
            self.lost_messages += 1
            return
        self._count_message(msg_id)
        if msg_id == 20:
            if n < 1:
                return
            payload = PyBytes_FromStringAndSize(<char*>b + 1, n - 1)
            if b[0] == 0 and self.ext_handshake is None:
                self.ext_handshake = payload
            if self.ext_messages is not None:
                self.ext_messages.append((b[0], payload))
            if mask & EV_EXTENDED:
                self._events.append(ev.Extended(b[0], payload))
            return
        if msg_id == 5:
            if mask & EV_BITFIELD:
                self._events.append(ev.Bitfield(PyBytes_FromStringAndSize(<char*>b, n)))
            return
        if not (mask & EV_MESSAGES):
            return
        if msg_id == 0:
            self._events.append(ev.Choke())
        elif msg_id == 1:
            self._events.append(ev.Unchoke())
        elif msg_id == 2:
            self._events.append(ev.Interested())
        elif msg_id == 3:
            self._events.append(ev.NotInterested())
        elif msg_id == 4:
            self._events.append(ev.Have(be32(b)))
        elif msg_id == 6:
            self._events.append(ev.Request(be32(b), be32(b + 4), be32(b + 8)))
        elif msg_id == 8:
            self._events.append(ev.Cancel(be32(b), be32(b + 4), be32(b + 8)))
        elif msg_id == 9:
            self._events.append(ev.Port((b[0] << 8) | b[1]))
        elif msg_id == 0x0D:
            self._events.append(ev.Suggest(be32(b)))
        elif msg_id == 0x0E:
            self._events.append(ev.HaveAll())
        elif msg_id == 0x0F:
            self._events.append(ev.HaveNone())
        elif msg_id == 0x10:
            self._events.append(ev.Reject(be32(b), be32(b + 4), be32(b + 8)))
        elif msg_id == 0x11:
            self._events.append(ev.AllowedFast(be32(b)))
        elif msg_id == 21 or msg_id == 23 or (msg_id == 22 and n >= 48):
            root = PyBytes_FromStringAndSize(<char*>b, 32)
            args = (root, be32(b + 32), be32(b + 36), be32(b + 40), be32(b + 44))
            if msg_id == 21:
                self._events.append(ev.HashRequest(*args))
            elif msg_id == 23:
                self._events.append(ev.HashReject(*args))
            else:
                self._events.append(ev.Hashes(*args, PyBytes_FromStringAndSize(<char*>b + 48, n - 48)))
        else:
            self._events.append(ev.UnknownMessage(msg_id, n + 1))

    # ------------------------------------------------------------------ losing and finding framing
    cdef void _protocol_error(self, str reason):
        """Header bytes at msg_off are invalid: resync starting one byte later."""
        cdef int64_t off = self.msg_off
        cdef int hl = self.hdr_len
        self.protocol_errors += 1
        if self.event_mask & EV_DIAG:
            self._events.append(ev.ProtocolError(off, reason))
        # The first header byte is given up; the rest are rescanned.  What is
        # skipped after a protocol error is not taken for a block tail.
        self.unparsed_bytes += 1
        self._enter_resync(off + 1, False)
        self.stream_off = off + 1
        self._feed_resync(self.hdr + 1, hl - 1)

    cdef void _desync(self):
        """A gap ran past the current message (stream_off is still before the gap)."""
        self.desyncs += 1
        if self.event_mask & EV_DIAG:
            self._events.append(ev.Desync(self.stream_off))
        self._enter_resync(self.stream_off, True)

    cdef void _enter_resync(self, int64_t off, bint tail_ok):
        self.run_messages = 0
        self.state = S_RESYNC
        self.rbuf_len = 0
        self.rscan = 0
        self.rbuf_off = off
        self.resync_start = off
        self.tail_ok = tail_ok

    cdef int _anchor(self, const uint8_t* p, Py_ssize_t avail, int64_t off):
        """1: message anchor at p; 2: handshake at p; 0: not; -1: cannot tell yet.
        ``off`` is p's stream offset."""
        cdef uint32_t L, L2
        cdef int msg_id
        cdef Py_ssize_t i
        if p[0] == 19 and not self.handshake_seen and (off == 0 or self.opaque_scan):
            # "\x13BitTorrent protocol" at the first byte of a stream whose SYN was
            # not captured, or after an encryption handshake that settled on
            # plaintext.  Anywhere else it would be data (a block of a file that
            # contains the string), never a handshake.
            for i in range(1, 20):
                if i >= avail:
                    return -1
                if p[i] != <uint8_t>PROTO[i]:
                    break
            else:
                return 2
        if avail < 5:
            return -1
        L = be32(p)
        msg_id = p[4]
        if not strict_header_ok(L, msg_id, self.max_block):
            return 0
        if L + 9 > RBUF_CAP:
            return 0
        if msg_id == 6 or msg_id == 8 or msg_id == 0x10:
            if avail < 17:
                return -1
            if be32(p + 13) == 0 or be32(p + 13) > self.max_block:
                return 0
        elif msg_id == 20:
            if avail < 7:
                return -1
            if p[5] == 0 and p[6] != 0x64:   # extended handshake payload is a dict
                return 0
        elif msg_id == 7 and L == 16384 + 9:
            # The standard 16 KiB block: a 13-byte header with its exact length,
            # the piece id, a block-aligned offset and a plausible index is
            # distinctive enough on its own (needed when only a few segments of
            # a connection were captured, with no second header to confirm).
            if avail < 13:
                return -1
            if be32(p + 9) % 16384 == 0 and be32(p + 5) < (1 << 24) and be32(p + 9) < (1 << 28):
                return 1
        if avail < <Py_ssize_t>(L + 4 + 5):
            return -1
        L2 = be32(p + 4 + L)
        if L2 == 0:
            return 1
        return strict_header_ok(L2, p[4 + L + 4], self.max_block)

    cdef Py_ssize_t _scan(self, bint final):
        """Index in rbuf of the first anchor at or after rscan, or -1.

        Not final: stop at the first position that cannot be decided yet (more
        bytes will come).  Final (a gap or the end comes next): positions that
        cannot be decided are not anchors."""
        cdef Py_ssize_t q = self.rscan
        cdef int r
        while q < self.rbuf_len:
            r = self._anchor(self.rbuf + q, self.rbuf_len - q, self.rbuf_off + q)
            if r > 0:
                self.rscan = q
                self.anchor_kind = r
                return q
            if r < 0 and not final:
                break
            q += 1
        self.rscan = q
        return -1

    cdef Py_ssize_t _feed_resync(self, const uint8_t* p, Py_ssize_t n):
        """Buffer and scan (in steps, so a replay stays short); on an anchor, set
        the replay and return how many input bytes were consumed."""
        cdef Py_ssize_t consumed = 0, take, found, drop, cap, want
        cdef uint8_t* grown
        if self.rbuf == NULL:           # small first: a flood of connections seen mid-stream, each
            self.rbuf = <uint8_t*>malloc(RBUF_START)     # with a few bytes, costs no 256 KiB each
            if self.rbuf == NULL:
                raise MemoryError()
            self.rbuf_cap = RBUF_START
        while consumed < n:
            want = n - consumed if n - consumed < RESYNC_STEP else RESYNC_STEP
            while self.rbuf_cap - self.rbuf_len < want and self.rbuf_cap < RBUF_CAP:
                cap = self.rbuf_cap * 2     # room for this step: the scans happen where they did
                grown = <uint8_t*>realloc(self.rbuf, cap)
                if grown == NULL:
                    raise MemoryError()
                self.rbuf, self.rbuf_cap = grown, cap
            if self.rbuf_len == RBUF_CAP:
                drop = self.rscan if self.rscan > 0 else 1
                memmove(self.rbuf, self.rbuf + drop, self.rbuf_len - drop)
                self.rbuf_len -= drop
                self.rscan -= drop if self.rscan >= drop else self.rscan
                self.rbuf_off += drop
                if self.rbuf_off - self.resync_start > RESYNC_BUDGET:
                    self._give_up()
                    return consumed
            if self.opaque_scan and self.rbuf_off + self.rbuf_len - self.resync_start >= OPAQUE_SCAN:
                self._give_up()
                return consumed
            take = min(self.rbuf_cap - self.rbuf_len, n - consumed, RESYNC_STEP)
            memcpy(self.rbuf + self.rbuf_len, p + consumed, take)
            self.rbuf_len += take
            consumed += take
            self.stream_off += take
            found = self._scan(False)
            if found >= 0:
                self._resynced(found)
                return consumed
        return consumed

    cdef void _settle(self):
        """Before a gap or the end: positions still waiting for bytes are decided
        with what is there, and a later anchor is not missed."""
        cdef Py_ssize_t found
        while self.state == S_RESYNC and self.rbuf_len:
            found = self._scan(True)
            if found < 0:
                return
            self._resynced(found)
            self.feed(NULL, 0)          # run the replay

    cdef void _resynced(self, Py_ssize_t found):
        cdef int64_t skipped = self.rbuf_off + found - self.resync_start
        cdef const uint8_t* a = self.rbuf + found
        cdef bint handshake = self.anchor_kind == 2
        cdef bint tail = False
        if self.tail_ok and skipped > 0 and not handshake and a[4] == 7:
            tail = skipped <= <int64_t>be32(a) - 9
        if tail:
            self.block_bytes += skipped
            self.block_tail_bytes += skipped
            self.add_range(self.resync_start, self.resync_start + skipped)
        else:
            self._count_skipped(skipped)
        if self.opaque_scan:
            self.opaque_scan = False
            self.plaintext_from = self.rbuf_off + found
        self.resyncs += 1
        self.synced = True
        self.run_messages = 0              # a new anchor: a new run
        if self.event_mask & EV_DIAG:
            self._events.append(ev.Resync(self.rbuf_off + found, skipped, tail))
        # The buffered bytes from the anchor on go through the normal states next.
        self._replay = PyBytes_FromStringAndSize(<char*>a, self.rbuf_len - found)
        self.stream_off = self.rbuf_off + found
        self.rbuf_len = 0
        self.rscan = 0
        if handshake:
            self.state = S_HANDSHAKE
            self.hs_len = 0
        else:
            self._start_header()

    cdef void _count_skipped(self, int64_t n):
        if self.opaque_scan:
            self.opaque_bytes += n
        else:
            self.unparsed_bytes += n

    cdef void _drop_resync_buffer(self):
        """Everything given up since resync_start becomes unparsed (opaque in an opaque scan)."""
        self._count_skipped(self.rbuf_off - self.resync_start + self.rbuf_len)
        self.rbuf_off += self.rbuf_len
        self.resync_start = self.rbuf_off
        self.rbuf_len = 0
        self.rscan = 0

    cdef void _give_up(self):
        self._drop_resync_buffer()
        self.state = S_OPAQUE
        free(self.rbuf)
        self.rbuf = NULL
        self.rbuf_cap = 0
