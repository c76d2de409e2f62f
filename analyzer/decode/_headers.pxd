# Link, IPv4/IPv6, TCP, UDP and uTP header decoding on raw pointers (inline, no objects).
#
# decode_frame() walks link layer -> IP (IPv4 options, IPv6 extension headers)
# and fills a Pkt with pointers into the caller's buffer.  Lengths come from
# the IP header (Ethernet padding is ignored); when the capture holds fewer
# bytes (snap length) ``l4cap`` < ``l4len`` tells how many are missing.
from libc.stdint cimport uint8_t, uint16_t, uint32_t

from analyzer.decode.linktypes cimport (
    LT_NULL, LT_ETHERNET, LT_RAW_12, LT_RAW_14, LT_RAW, LT_LOOP, LT_LINUX_SLL, LT_IPV4, LT_IPV6, LT_LINUX_SLL2,
)

cdef enum Kind:
    K_IP = 0
    K_NON_IP = 1
    K_FRAGMENT = 2
    K_BAD_LINK = 3        # link header truncated
    K_UNKNOWN_LINK = 4    # link type not supported
    K_BAD_IP = 5          # IP header truncated or inconsistent

cdef struct Pkt:
    int ipver
    int proto
    const uint8_t* src
    const uint8_t* dst
    const uint8_t* ip
    Py_ssize_t ipcap
    const uint8_t* l4
    Py_ssize_t l4cap
    Py_ssize_t l4len


cdef extern from *:
    """
    #define BT_HEADERS_PREFETCH(p) __builtin_prefetch((const void*)(p))
    """
    void BT_HEADERS_PREFETCH(const void* p) noexcept nogil


cdef enum:
    PREFETCH_FRAMES_AHEAD = 8   # a loop over records at known offsets prefetches the frame this far ahead


cdef inline void prefetch_frame(const uint8_t* p) noexcept nogil:
    """Ask the memory for the two cache lines a frame's link, IP and TCP headers lie on (a loop
    over records at known offsets calls it ``PREFETCH_FRAMES_AHEAD`` records ahead: their misses
    then overlap)."""
    BT_HEADERS_PREFETCH(p)
    BT_HEADERS_PREFETCH(p + 64)


cdef inline uint16_t be16(const uint8_t* p) noexcept nogil:
    return (<uint16_t>p[0] << 8) | p[1]


cdef inline uint32_t rd32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


# IPv6 extension headers, walked once for the decoder and the defragmenter
# (analyzer.decode._ipv6.fragment_header): hop-by-hop, routing, destination options,
# mobility, HIP, shim6 ((len + 1) * 8 bytes), AH ((len + 2) * 4), and fragment headers
# (8 bytes; an atomic fragment, offset 0 and no M flag, is walked past).
cdef enum V6WalkResult:
    W_UPPER = 0           # ``nh`` is an upper-layer protocol at ``off``
    W_FRAGMENT = 1        # a fragment header at ``off``; the byte naming it is at ``nh_pos``
    W_BAD = 2             # a header cut by the capture, past the payload length, or more than 16

cdef struct V6Walk:
    int nh
    Py_ssize_t off
    Py_ssize_t nh_pos
    Py_ssize_t total      # 40 + payload length (the captured length for a jumbogram or TSO)


cdef inline int ipv6_walk(const uint8_t* p, Py_ssize_t cap, V6Walk* w) noexcept nogil:
    """Walk the extension headers of an IPv6 packet of which ``cap`` >= 40 bytes were captured."""
    cdef int nh = p[6], hops = 0
    cdef Py_ssize_t off = 40, nh_pos = 6
    cdef Py_ssize_t total = be16(p + 4) + 40
    if total == 40 and cap > 40:
        total = cap              # jumbogram or TSO: trust the capture
    w.total = total
    while True:
        if nh == 0 or nh == 43 or nh == 60 or nh == 135 or nh == 139 or nh == 140:
            if cap < off + 2:
                return W_BAD
            nh_pos = off
            nh, off = p[off], off + (p[off + 1] + 1) * 8
        elif nh == 51:
            if cap < off + 2:
                return W_BAD
            nh_pos = off
            nh, off = p[off], off + (p[off + 1] + 2) * 4
        elif nh == 44:
            if cap < off + 8:
                return W_BAD
            if be16(p + off + 2) & 0xFFF9:   # offset != 0 or M set
                w.nh, w.off, w.nh_pos = nh, off, nh_pos
                return W_FRAGMENT
            nh_pos = off
            nh, off = p[off], off + 8   # atomic fragment
        else:
            w.nh, w.off, w.nh_pos = nh, off, nh_pos
            return W_UPPER
        hops += 1
        if hops > 16 or off > total:
            return W_BAD


cdef inline int decode_ip(const uint8_t* p, Py_ssize_t cap, int ethertype, Pkt* k) noexcept nogil:
    cdef Py_ssize_t hl, total
    cdef int version, r
    cdef uint16_t fragfield
    cdef V6Walk w
    if cap < 1:
        return K_BAD_IP
    version = p[0] >> 4
    if ethertype == 0x0800 and version != 4:
        return K_BAD_IP
    if ethertype == 0x86DD and version != 6:
        return K_BAD_IP
    k.ip = p
    k.ipcap = cap
    if version == 4:
        hl = (p[0] & 0x0F) * 4
        if hl < 20 or cap < hl:
            return K_BAD_IP
        total = be16(p + 2)
        if total == 0:
            total = cap              # TSO on the capturing host: trust the capture
        if total < hl:
            return K_BAD_IP
        k.ipver = 4
        k.proto = p[9]
        k.src = p + 12
        k.dst = p + 16
        fragfield = be16(p + 6)
        if fragfield & 0x3FFF:       # MF set or offset != 0
            return K_FRAGMENT
        k.l4 = p + hl
        k.l4len = total - hl
        k.l4cap = (cap if cap < total else total) - hl
        return K_IP
    if version == 6:
        if cap < 40:
            return K_BAD_IP
        k.ipver = 6
        k.src = p + 8
        k.dst = p + 24
        r = ipv6_walk(p, cap, &w)
        if r == W_FRAGMENT:
            k.proto = 44
            return K_FRAGMENT
        if r == W_BAD:
            return K_BAD_IP
        k.proto = w.nh
        k.l4 = p + w.off
        k.l4len = w.total - w.off
        k.l4cap = (cap if cap < w.total else w.total) - w.off
        if k.l4cap < 0:
            k.l4cap = 0
        return K_IP
    return K_BAD_IP


cdef inline int decode_frame(const uint8_t* p, Py_ssize_t cap, int linktype, Pkt* k) noexcept nogil:
    cdef int ethertype, af
    cdef Py_ssize_t off
    if linktype == LT_ETHERNET:
        if cap < 14:
            return K_BAD_LINK
        ethertype = be16(p + 12)
        off = 14
        while ethertype == 0x8100 or ethertype == 0x88A8 or ethertype == 0x9100:
            if cap < off + 4:
                return K_BAD_LINK
            ethertype = be16(p + off + 2)
            off += 4
        if ethertype != 0x0800 and ethertype != 0x86DD:
            return K_NON_IP
        return decode_ip(p + off, cap - off, ethertype, k)
    if linktype == LT_LINUX_SLL2:
        if cap < 20:
            return K_BAD_LINK
        ethertype = be16(p)
        if ethertype != 0x0800 and ethertype != 0x86DD:
            return K_NON_IP
        return decode_ip(p + 20, cap - 20, ethertype, k)
    if linktype == LT_LINUX_SLL:
        if cap < 16:
            return K_BAD_LINK
        ethertype = be16(p + 14)
        if ethertype != 0x0800 and ethertype != 0x86DD:
            return K_NON_IP
        return decode_ip(p + 16, cap - 16, ethertype, k)
    if linktype == LT_RAW or linktype == LT_RAW_12 or linktype == LT_RAW_14:
        return decode_ip(p, cap, 0, k)
    if linktype == LT_IPV4:
        return decode_ip(p, cap, 0x0800, k)
    if linktype == LT_IPV6:
        return decode_ip(p, cap, 0x86DD, k)
    if linktype == LT_NULL or linktype == LT_LOOP:
        if cap < 4:
            return K_BAD_LINK
        if linktype == LT_LOOP:
            af = rd32(p)
        else:
            af = p[0] | (p[1] << 8) | (p[2] << 16) | (p[3] << 24)   # host order of the capturer
            if af > 0xFFFF:
                af = rd32(p)
        if af == 2:
            return decode_ip(p + 4, cap - 4, 0x0800, k)
        if af == 10 or af == 24 or af == 28 or af == 30:
            return decode_ip(p + 4, cap - 4, 0x86DD, k)
        return K_NON_IP
    return K_UNKNOWN_LINK


# ---------------------------------------------------------------- transport headers
# A transport header decoded from a Pkt whose ``kind`` is K_IP: ports, and for
# TCP the sequence/ack numbers and flags; ``pay``/``paycap``/``paylen`` are the
# payload pointer, the captured payload bytes and the payload length on the
# wire (the IP header's, so a snap length shows as paycap < paylen).
cdef enum TcpFlags:
    TH_FIN = 0x01
    TH_SYN = 0x02
    TH_RST = 0x04
    TH_PUSH = 0x08
    TH_ACK = 0x10

cdef enum TransportResult:
    T_OK = 0
    T_BAD = 1             # header truncated on the wire or inconsistent: undecodable
    T_CUT = 2             # UDP: a well-formed datagram whose header the snap length cut

cdef struct Transport:
    uint16_t sport
    uint16_t dport
    uint32_t seq
    uint32_t ack
    int flags
    const uint8_t* pay
    Py_ssize_t paycap
    Py_ssize_t paylen


cdef inline int decode_tcp(Pkt* k, Transport* t) noexcept nogil:
    cdef const uint8_t* h = k.l4
    cdef Py_ssize_t doff
    if k.l4cap < 20 or k.l4len < 20:
        return T_BAD
    doff = (h[12] >> 4) * 4
    if doff < 20 or doff > k.l4len:
        return T_BAD
    t.sport = be16(h)
    t.dport = be16(h + 2)
    t.seq = rd32(h + 4)
    t.ack = rd32(h + 8)
    t.flags = h[13]
    t.pay = h + doff
    t.paylen = k.l4len - doff
    t.paycap = k.l4cap - doff
    if t.paycap > t.paylen:
        t.paycap = t.paylen
    if t.paycap < 0:
        t.paycap = 0          # options cut by the snap length (64 bytes with timestamps): no payload captured
    return T_OK


cdef inline int decode_udp(Pkt* k, Transport* t) noexcept nogil:
    cdef const uint8_t* h = k.l4
    if k.l4len < 8:
        return T_BAD
    if k.l4cap < 8:
        return T_CUT
    t.sport = be16(h)
    t.dport = be16(h + 2)
    t.seq = 0
    t.ack = 0
    t.flags = 0
    t.pay = h + 8
    t.paylen = k.l4len - 8
    t.paycap = (k.l4cap if k.l4cap < k.l4len else k.l4len) - 8
    return T_OK


# ---------------------------------------------------------------- uTP (BEP 29) header
cdef enum UtpType:
    ST_DATA = 0
    ST_FIN = 1
    ST_STATE = 2
    ST_RESET = 3
    ST_SYN = 4

cdef struct UtpHeader:
    int ptype
    uint16_t conn_id
    uint16_t seq_nr
    uint16_t ack_nr
    Py_ssize_t hdrlen           # fixed header and extensions
    Py_ssize_t sack_off         # selective ACK bitmask (offset from the header's start), 0: none
    Py_ssize_t sack_len


cdef inline bint decode_utp(const uint8_t* p, Py_ssize_t cap, Py_ssize_t length, UtpHeader* u) noexcept nogil:
    """A consistent BEP 29 header in a UDP payload: version 1, type 0-4, extension
    chain inside the captured bytes, payload only on DATA packets (and always there)."""
    cdef int ext, hops = 0
    cdef Py_ssize_t off = 20, elen
    if cap < 20 or length < 20 or (p[0] & 0x0F) != 1:
        return False
    u.ptype = p[0] >> 4
    if u.ptype > 4:
        return False
    u.sack_off = 0
    u.sack_len = 0
    ext = p[1]
    while ext:
        if off + 2 > cap or hops >= 8 or ext > 16:
            return False
        elen = p[off + 1]
        if ext == 1:
            # BEP 29 asks for multiples of 4 bytes; libtorrent sends as few as 1
            if elen < 1:
                return False
            u.sack_off = off + 2
            u.sack_len = elen
        ext = p[off]
        off += 2 + elen
        hops += 1
    if off > length or off > cap:
        return False
    if (u.ptype == ST_DATA) != (length > off):
        return False
    u.hdrlen = off
    u.conn_id = be16(p + 2)
    u.seq_nr = be16(p + 16)
    u.ack_nr = be16(p + 18)
    return True
