# cython: language_level=3
"""Record scanners for pcap and pcapng (compiled; one pass over a buffer).

Each scanner walks records in ``buf[pos:end]`` and writes, for each packet,
the offset of its data in ``buf``, captured and original lengths, timestamp
in integer nanoseconds and interface id into caller-provided arrays.  It
stops when the arrays are full, when the next record is not entirely in the
buffer (the caller reads more and calls again), at a record it cannot trust,
or (pcapng) at a block that is not a packet, which Python handles.

Return value: ``(n_records, new_pos, status)`` with status one of the
ST_* constants below.

Odd timestamps are counted, not refused, in ``odd`` (an int64 array of
``ODD_SLOTS``): a fraction field of a second or more (pcap), and times
outside 1970..2100; with the buffer offset of the first of each kind
(-1 until one is seen).  Timestamps that overflow 64-bit nanoseconds are
saturated (and so counted as after 2100), never wrapped.

pcapng interfaces whose timestamp resolution is out of range are given
``if_kind`` ``KIND_DAMAGED`` by the reader: their frames get the previous
frame's time and no arithmetic is done on their resolution.  Interfaces
declared beyond the arrays given (``n_declared`` > their length, the reader's
cap) get the interface index ``len(if_kind)``, which the reader maps to a
link type the engine counts as undecodable.

Each record header is a cache miss that must be served before the next
record's place is known.  A scanner either streams the buffer's lines ahead
of the record in hand (``_prefetch``) or, asked to (``walk``: the reader
does once a batch's records averaged 512 bytes or more), first brings its
window's headers into the cache by following 16 chains of records at once
(``_walk_headers``).  Either is a hint: the
records found are the scan's own, the same whichever it takes.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, int32_t, int64_t, uint64_t, INT64_MAX
from posix.unistd cimport usleep

cdef extern from *:
    void __builtin_prefetch(const void*, int, int) nogil

cdef extern from *:
    """
    static volatile uint64_t bt_scan_walk_sink;   /* keeps the header walk from being optimised away */
    """
    uint64_t bt_scan_walk_sink

cdef enum:
    PREFETCH_AHEAD = 8192   # bytes of the buffer asked for ahead of the record in hand (see _prefetch)
    WALK_CHAINS = 16        # chains of records _walk_headers follows at once
    PAGER_SLEEP_US = 2000   # microseconds the pager sleeps when it is ahead of its readers (run_pager)

ST_FULL = 0        # output arrays full
ST_NEED_MORE = 1   # next record incomplete in the buffer
ST_BAD = 2         # record header cannot be trusted (absurd length)
ST_BLOCK = 3       # pcapng block that is not a packet: handle in Python

cdef enum:
    K_DECIMAL = 0      # if_tsresol 10^-exp
    K_BINARY = 1       # if_tsresol 2^-exp
    K_DAMAGED = 2      # resolution out of range: no timestamps from this interface
KIND_DECIMAL, KIND_BINARY, KIND_DAMAGED = K_DECIMAL, K_BINARY, K_DAMAGED

ODD_SLOTS = 6      # [fraction >= 1 s, first; after 2100, first; before 1970, first]
ODD_FRACTION = 0
ODD_LATE = 2
ODD_EARLY = 4
cdef int64_t TS_2100 = 4102444800LL * 1000000000LL     # 2100-01-01T00:00:00Z


cdef inline void note_odd(int64_t[::1] odd, int slot, Py_ssize_t pos) noexcept:
    odd[slot] += 1
    if odd[slot + 1] < 0:
        odd[slot + 1] = pos


cdef inline void check_time(int64_t ts, int64_t[::1] odd, Py_ssize_t pos) noexcept:
    if ts >= TS_2100:
        note_odd(odd, ODD_LATE, pos)
    elif ts < 0:
        note_odd(odd, ODD_EARLY, pos)

cdef inline uint32_t rd32(const uint8_t* p, bint swapped) noexcept nogil:
    if swapped:
        return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]
    return (<uint32_t>p[3] << 24) | (<uint32_t>p[2] << 16) | (<uint32_t>p[1] << 8) | p[0]


cdef inline Py_ssize_t _prefetch(const uint8_t* b, Py_ssize_t pf, Py_ssize_t pos, Py_ssize_t end) noexcept nogil:
    """Ask the memory for every cache line from ``pf`` to ``PREFETCH_AHEAD`` bytes past ``pos``
    (capped at ``end``); returns where that stopped.  A scan follows the chain of record lengths,
    each header a cache miss that must be served before the next header's place is known: with
    the lines ahead already asked for, the misses overlap instead of adding up (146 -> 43 ns a
    record on 1514-byte frames here), whatever the records' lengths."""
    cdef Py_ssize_t lim = pos + PREFETCH_AHEAD
    if lim > end:
        lim = end
    if pf < pos:
        pf = pos & ~(<Py_ssize_t>63)
    while pf < lim:
        __builtin_prefetch(b + pf, 0, 0)
        pf += 64
    return pf


cdef inline bint _pcapng_packet_block(const uint8_t* b, Py_ssize_t q, Py_ssize_t end, bint swapped,
                                      uint32_t max_block) noexcept nogil:
    """A plausible packet block (Enhanced, Simple or obsolete Packet Block) at ``q``: its length
    sane, within ``end``, and its trailing copy equal."""
    cdef uint32_t btype, blen
    if q + 16 > end:
        return False
    btype = rd32(b + q, swapped)
    blen = rd32(b + q + 4, swapped)
    if (btype != 6 and btype != 3 and btype != 2) or blen < 16 or blen % 4 != 0 or blen > max_block:
        return False
    return q + blen <= end and rd32(b + q + blen - 4, swapped) == blen


cdef inline bint _chain_starts(const uint8_t* b, Py_ssize_t q, Py_ssize_t end, bint swapped, bint pcapng,
                               int64_t frac_ns, uint32_t limit) noexcept nogil:
    """Two plausible records chained at ``q`` (pcap record headers, or pcapng packet blocks)."""
    cdef Py_ssize_t nxt
    if pcapng:
        return _pcapng_packet_block(b, q, end, swapped, limit) and \
            _pcapng_packet_block(b, q + rd32(b + q + 4, swapped), end, swapped, limit)
    if not pcap_plausible(b + q, swapped, frac_ns, limit, -1):
        return False
    nxt = q + 16 + rd32(b + q + 8, swapped)
    return nxt + 16 <= end and pcap_plausible(b + nxt, swapped, frac_ns, limit, -1)


cdef Py_ssize_t _walk_headers(const uint8_t* b, Py_ssize_t pos, Py_ssize_t end, bint swapped, bint pcapng,
                              int64_t frac_ns, uint32_t limit) noexcept nogil:
    """Bring the record headers of ``b[pos:end]`` into the cache, ``WALK_CHAINS`` chains of
    records at once, before the scan follows the one chain that counts (``scan_pcap`` and
    ``scan_pcapng`` with ``walk``).  ``limit``: the largest caplen (pcap) or block (pcapng).

    The scan cannot know where a record begins before it has read the one before it: each header
    is a cache miss that must be served before the next can be asked for.  ``_prefetch`` overlaps
    those misses by asking for every line of the buffer ahead, which reads the whole file from
    memory: for 1.2 kB records that is 45 ns a record on this machine, bound by one core's memory
    bandwidth (25 GB/s), and slower still when two processes scan at once (two workers: 47-53 ns).
    This walk starts a chain at the window's start and one at the first two chained plausible
    records after each 16th of it (on the window's 4-byte grid for pcapng, whose blocks are
    4-aligned within a section), and follows them all in turns, so that 16 misses are in flight
    and only the headers' lines are read (a pcapng block's header and its trailing length, both
    of which its scan reads): pcap, 25 ns a record, walk and scan together, alone or two at once.
    The pcapng scan is bound by its own work (50-56 ns a block of 1.2 kB, walked or streamed,
    alone), but no longer reads the whole file: two at once, 52-55 ns a block against 52-72.

    It decides nothing: a chain that begins inside a frame (a plausible record there) or meets
    an implausible length just stops, and the scan that follows reads every header itself,
    exactly as it would without the walk; a wrong guess only costs the misses the walk did not
    save.  With small records the stream is cheaper (a line holds several headers: 146-byte
    records 7 ns against 15, 806-byte 32 against 21), so the reader asks for the walk only when its
    last batch's records averaged ``WALK_MIN_MEAN`` bytes or more.  Returns the headers it read."""
    cdef Py_ssize_t p[WALK_CHAINS]
    cdef Py_ssize_t stop[WALK_CHAINS]
    cdef Py_ssize_t step = 4 if pcapng else 1
    cdef Py_ssize_t seg = ((end - pos) // WALK_CHAINS) & ~(step - 1), q, bound, visited = 0
    cdef uint32_t length
    cdef uint64_t acc = 0
    cdef int k, live
    if seg < 64:
        return 0
    p[0] = pos
    for k in range(1, WALK_CHAINS):
        q = pos + k * seg
        bound = q + seg
        p[k] = bound                        # no start found: the chain is empty
        while q < bound and q + 16 <= end:
            if _chain_starts(b, q, end, swapped, pcapng, frac_ns, limit):
                p[k] = q
                break
            q += step
    for k in range(WALK_CHAINS - 1):
        stop[k] = p[k + 1]
    stop[WALK_CHAINS - 1] = end
    live = 1
    while live:
        live = 0
        for k in range(WALK_CHAINS):
            if p[k] >= stop[k] or p[k] + 16 > end:
                continue
            visited += 1
            if pcapng:                  # block length; the next block follows its trailing copy
                length = rd32(b + p[k] + 4, swapped)
                if length < 12 or length % 4 != 0 or length > limit or p[k] + length > end:
                    p[k] = stop[k]
                    continue
                acc += rd32(b + p[k] + length - 4, swapped)
                p[k] += length
            else:                       # caplen; the next record follows the frame
                length = rd32(b + p[k] + 8, swapped)
                acc += length
                if length > limit:
                    p[k] = stop[k]
                    continue
                p[k] += 16 + length
            live = 1
    bt_scan_walk_sink = acc
    return visited


cdef Py_ssize_t _walk_view(const uint8_t[::1] buf, Py_ssize_t pos, Py_ssize_t end, bint swapped, bint pcapng,
                           int64_t frac_ns, uint32_t limit):
    if end > buf.shape[0]:
        end = buf.shape[0]
    if pos < 0 or pos >= end:
        return 0
    return _walk_headers(&buf[0], pos, end, swapped, pcapng, frac_ns, limit)


def walk_pcap_headers(const uint8_t[::1] buf, Py_ssize_t pos, Py_ssize_t end, bint swapped, int64_t frac_ns,
                      uint32_t max_caplen):
    """``_walk_headers`` over pcap records alone (tests): the number of headers it read."""
    return _walk_view(buf, pos, end, swapped, False, frac_ns, max_caplen)


def walk_pcapng_blocks(const uint8_t[::1] buf, Py_ssize_t pos, Py_ssize_t end, bint swapped, uint32_t max_block):
    """``_walk_headers`` over pcapng blocks alone (tests): the number of blocks it read."""
    return _walk_view(buf, pos, end, swapped, True, 1, max_block)


cdef inline uint16_t rd16(const uint8_t* p, bint swapped) noexcept nogil:
    if swapped:
        return (<uint16_t>p[0] << 8) | p[1]
    return (<uint16_t>p[1] << 8) | p[0]


def scan_pcap(const uint8_t[::1] buf, Py_ssize_t pos, Py_ssize_t end, bint swapped, int64_t frac_ns,
              uint32_t max_caplen, int64_t[::1] out_off, uint32_t[::1] out_cap, uint32_t[::1] out_orig,
              int64_t[::1] out_ts, int64_t[::1] odd, bint walk=False):
    """pcap records: 16-byte header (sec, frac, caplen, origlen) then data.

    ``swapped``: the file is big-endian (this module reads little-endian
    natively); ``frac_ns``: nanoseconds per unit of the fraction field (1000
    for microsecond files, 1 for nanosecond files).  ``walk``: bring the
    headers of ``buf[pos:end]`` into the cache first (``_walk_headers``)
    instead of streaming the buffer ahead of the scan (``_prefetch``); the
    records found are the same either way.
    """
    cdef Py_ssize_t n = 0, cap_out = out_off.shape[0]
    cdef const uint8_t* b = &buf[0]
    cdef uint32_t caplen, origlen, frac
    cdef int64_t frac_limit = 1000000000 // frac_ns
    cdef Py_ssize_t pf = 0
    if walk:
        _walk_headers(b, pos, end, swapped, False, frac_ns, max_caplen)
    while n < cap_out:
        if not walk:
            pf = _prefetch(b, pf, pos, end)
        if end - pos < 16:
            return n, pos, ST_NEED_MORE
        caplen = rd32(b + pos + 8, swapped)
        origlen = rd32(b + pos + 12, swapped)
        if caplen > max_caplen:
            return n, pos, ST_BAD
        if end - pos - 16 < caplen:
            return n, pos, ST_NEED_MORE
        frac = rd32(b + pos + 4, swapped)
        if frac >= frac_limit:
            note_odd(odd, ODD_FRACTION, pos)
        out_ts[n] = <int64_t>rd32(b + pos, swapped) * 1000000000 + <int64_t>frac * frac_ns
        if out_ts[n] >= TS_2100:
            note_odd(odd, ODD_LATE, pos)
        out_off[n] = pos + 16
        out_cap[n] = caplen
        out_orig[n] = origlen if origlen >= caplen else caplen
        n += 1
        pos += 16 + caplen
    return n, pos, ST_FULL


cdef inline bint pcap_plausible(const uint8_t* h, bint swapped, int64_t frac_ns, uint32_t max_caplen,
                                int64_t ref_sec) noexcept nogil:
    cdef uint32_t sec = rd32(h, swapped), frac = rd32(h + 4, swapped)
    cdef uint32_t caplen = rd32(h + 8, swapped), origlen = rd32(h + 12, swapped)
    if caplen == 0 or caplen > max_caplen or origlen < caplen or origlen > 16 * max_caplen:
        return False
    if <int64_t>frac * frac_ns >= 1000000000:
        return False
    if ref_sec >= 0 and (<int64_t>sec < ref_sec - 86400 or <int64_t>sec > ref_sec + 86400 * 30):
        return False
    return True


def resync_pcap(const uint8_t[::1] buf, Py_ssize_t pos, Py_ssize_t end, bint swapped, int64_t frac_ns,
                uint32_t max_caplen, int64_t ref_sec, bint at_eof):
    """Look for the next trustworthy record header at or after ``pos``.

    A candidate must be plausible (lengths, fraction, time near ``ref_sec``)
    and be followed by another plausible header (or by the end of the file).
    Returns ``(True, offset)`` when found, else ``(False, keep)``: nothing
    before ``keep`` can start a record; read more and call again from there.
    """
    cdef const uint8_t* b = &buf[0]
    cdef Py_ssize_t p, nxt
    p = pos
    while p + 16 <= end:
        if pcap_plausible(b + p, swapped, frac_ns, max_caplen, ref_sec):
            nxt = p + 16 + rd32(b + p + 8, swapped)
            if nxt + 16 <= end:
                if pcap_plausible(b + nxt, swapped, frac_ns, max_caplen, ref_sec):
                    return True, p
            elif at_eof:
                if nxt == end:
                    return True, p
            else:
                return False, p
        p += 1
    return False, p


cdef inline int64_t pcapng_ts_ns(uint64_t t, int kind, int exp, int64_t offset_s) noexcept nogil:
    """Convert a pcapng timestamp with if_tsresol 10^-exp (kind 0, exp <= 18) or 2^-exp
    (kind 1, exp <= 63); the reader refuses other resolutions.  Saturates at INT64_MAX."""
    cdef uint64_t whole, part
    cdef uint64_t ns
    cdef int i
    cdef uint64_t p10 = 1
    cdef uint64_t limit = <uint64_t>INT64_MAX
    if kind == K_DECIMAL:
        if exp <= 9:
            for i in range(9 - exp):
                p10 *= 10
            if t > limit / p10:
                return INT64_MAX
            ns = t * p10
        else:
            for i in range(exp - 9):
                p10 *= 10
            ns = t // p10
    else:
        whole = t >> exp
        part = t & ((1ULL << exp) - 1)
        if whole > limit / 1000000000ULL:
            return INT64_MAX
        ns = whole * 1000000000ULL
        if exp < 34:
            ns += (part * 1000000000ULL) >> exp
        else:
            # part * 10^9 needs up to 94 bits: as hi * 2^32 + lo (each < 2^62), shifted exactly
            ns += ((part >> 32) * 1000000000ULL + (((part & 0xFFFFFFFFULL) * 1000000000ULL) >> 32)) >> (exp - 32)
        if ns > limit:
            return INT64_MAX
    # ns <= INT64_MAX here; |offset_s| <= 2^33 (the reader's range), so offset_s * 10^9 fits
    if offset_s > 0 and <int64_t>ns > INT64_MAX - offset_s * 1000000000:
        return INT64_MAX
    return <int64_t>ns + offset_s * 1000000000


def scan_pcapng(const uint8_t[::1] buf, Py_ssize_t pos, Py_ssize_t end, bint swapped,
                const int32_t[::1] if_kind, const int32_t[::1] if_exp, const int64_t[::1] if_offset,
                const uint32_t[::1] if_snaplen, Py_ssize_t n_declared, uint32_t max_block, int64_t last_ts,
                int64_t[::1] out_off, uint32_t[::1] out_cap, uint32_t[::1] out_orig,
                int64_t[::1] out_ts, uint16_t[::1] out_if, int64_t[::1] odd, bint walk=False):
    """pcapng Enhanced, Simple and (obsolete) Packet Blocks; stops at any other block.

    ``last_ts`` is given to Simple Packet Blocks, which carry no timestamp, and to
    frames of damaged or over-the-cap interfaces.  ``n_declared``: interfaces
    described in this section (at least ``len(if_kind)``).  ``walk``: the
    blocks of ``buf[pos:end]`` brought into the cache first
    (``_walk_headers``), the buffer not streamed; the same blocks found.
    """
    cdef Py_ssize_t n = 0, cap_out = out_off.shape[0]
    cdef const uint8_t* b = &buf[0]
    cdef uint32_t btype, blen, caplen, origlen, iface
    cdef Py_ssize_t n_if = if_kind.shape[0]
    cdef uint64_t t
    cdef Py_ssize_t pf = 0
    if walk:
        _walk_headers(b, pos, end, swapped, True, 1, max_block)
    while n < cap_out:
        if not walk:
            pf = _prefetch(b, pf, pos, end)
        if end - pos < 12:
            return n, pos, ST_NEED_MORE
        btype = rd32(b + pos, swapped)
        blen = rd32(b + pos + 4, swapped)
        if btype != 6 and btype != 3 and btype != 2:
            return n, pos, ST_BLOCK
        if blen < 16 or blen % 4 != 0 or blen > max_block:
            return n, pos, ST_BAD
        if end - pos < blen:
            return n, pos, ST_NEED_MORE
        if rd32(b + pos + blen - 4, swapped) != blen:
            return n, pos, ST_BAD       # the trailing copy of the length disagrees
        if btype == 6 or btype == 2:   # Enhanced / (obsolete) Packet Block: same layout
            if blen < 32:
                return n, pos, ST_BAD
            # the obsolete block has a 16-bit interface id (then a drops counter)
            iface = rd32(b + pos + 8, swapped) if btype == 6 else rd16(b + pos + 8, swapped)
            caplen = rd32(b + pos + 20, swapped)
            origlen = rd32(b + pos + 24, swapped)
            if iface >= n_declared or caplen > blen - 32:
                return n, pos, ST_BAD
            if iface >= n_if:
                iface = n_if                # beyond the reader's cap: counted, not decoded
            elif if_kind[iface] != K_DAMAGED:
                t = (<uint64_t>rd32(b + pos + 12, swapped) << 32) | rd32(b + pos + 16, swapped)
                last_ts = pcapng_ts_ns(t, if_kind[iface], if_exp[iface], if_offset[iface])
                check_time(last_ts, odd, pos)
            out_off[n] = pos + 28
        else:                 # Simple Packet Block: interface 0, no timestamp
            if n_declared == 0:
                return n, pos, ST_BAD
            iface = 0
            origlen = rd32(b + pos + 8, swapped)
            caplen = blen - 16
            if n_if and if_snaplen[0] and caplen > if_snaplen[0]:
                caplen = if_snaplen[0]
            if caplen > origlen:
                caplen = origlen
            out_off[n] = pos + 12
        out_cap[n] = caplen
        out_orig[n] = origlen if origlen >= caplen else caplen
        out_ts[n] = last_ts
        out_if[n] = iface
        n += 1
        pos += blen
    return n, pos, ST_FULL


def resync_pcapng(const uint8_t[::1] buf, Py_ssize_t pos, Py_ssize_t end, bint swapped,
                  uint32_t max_block, bint at_eof):
    """Next offset >= pos (in steps of 4) where a block of a known type starts
    whose trailing length copy matches.  Same return convention as resync_pcap."""
    cdef const uint8_t* b = &buf[0]
    cdef Py_ssize_t p = pos
    cdef uint32_t btype, blen
    while p + 12 <= end:
        btype = rd32(b + p, swapped)
        blen = rd32(b + p + 4, swapped)
        if (btype <= 10 or btype == 0x0A0D0D0A) and blen >= 12 and blen % 4 == 0 and blen <= max_block:
            if p + blen <= end:
                if rd32(b + p + blen - 4, swapped) == blen:
                    return True, p
            elif not at_eof:
                return False, p
        p += 4
    return False, p


def touch_pages(const uint8_t[::1] buf, Py_ssize_t start, Py_ssize_t end, Py_ssize_t stride):
    """Read one byte every ``stride`` bytes of ``buf[start:end]`` without the interpreter lock:
    the pages of a mapped file are faulted in on the calling (worker) thread, not by the scan.
    Returns an unused checksum (so the reads are not optimised away)."""
    cdef Py_ssize_t i
    cdef uint8_t acc = 0
    if start < 0:
        start = 0
    if end > buf.shape[0]:
        end = buf.shape[0]
    if stride < 1:
        stride = 1
    with nogil:
        i = start
        while i < end:
            acc ^= (<volatile const uint8_t*>&buf[i])[0]
            i += stride
    return acc


cdef enum:
    P_LEAD = 0
    P_STOP = 1
    P_DONE = 2
    STOP_EVERY = 64           # pages the pager faults between looks at the stop flag
PAGER_LEAD, PAGER_STOP, PAGER_DONE = P_LEAD, P_STOP, P_DONE     # slots of the pager's state array


def run_pager(const uint8_t[::1] buf, int64_t[::1] state, Py_ssize_t ahead, Py_ssize_t stride):
    """Fault in the pages of ``buf`` (a mapped file) up to ``ahead`` bytes past ``state[PAGER_LEAD]``
    (the furthest position its readers reached, which they store there), until the end of ``buf``
    or until ``state[PAGER_STOP]`` is set; ``state[PAGER_DONE]`` is how far it got (and, when the
    thread starts, where it begins: a reader of a byte range of the file sets it).  Runs without
    the interpreter lock from start to end (a worker thread calls it once): it looks at the
    readers' position every ``PAGER_SLEEP_US`` when it is ahead of them, and at the stop flag
    every ``STOP_EVERY`` pages while it faults (a reader that stops early may have moved the
    lead to the end of the file just before it stops the pager).

    It sleeps that long because it shares the cores: in a staged run every core has a worker of
    its own, and a pager that woke every 100 microseconds (as it did) took the core from them
    10,000 times a second.  ``ahead`` covers several sleeps at the fastest scan."""
    cdef Py_ssize_t size = buf.shape[0], done = 0, target, k
    cdef uint8_t acc = 0
    cdef volatile int64_t* st = &state[0]
    if stride < 1:
        stride = 1
    if st[P_DONE] > 0:
        done = st[P_DONE]
    with nogil:
        while st[P_STOP] == 0:
            target = st[P_LEAD] + ahead
            if target > size:
                target = size
            if done < target:
                k = 0
                while done < target:
                    acc ^= (<volatile const uint8_t*>&buf[done])[0]
                    done += stride
                    k += 1
                    if k == STOP_EVERY:
                        k = 0
                        st[P_DONE] = done
                        if st[P_STOP] != 0:
                            break
                st[P_DONE] = done if done < size else size
            elif done >= size:
                break
            else:
                usleep(PAGER_SLEEP_US)
    return acc
