# Link, IPv4/IPv6 and transport header decoding on raw pointers (inline, no objects).
#
# decode_frame() walks link layer -> IP (IPv4 options, IPv6 extension headers)
# and fills a Pkt with pointers into the caller's buffer.  Lengths come from
# the IP header (Ethernet padding is ignored); when the capture holds fewer
# bytes (snap length) ``l4cap`` < ``l4len`` tells how many are missing.
from libc.stdint cimport uint8_t, uint16_t, uint32_t

cdef enum LinkType:
    LT_NULL = 0
    LT_ETHERNET = 1
    LT_RAW_12 = 12
    LT_RAW_14 = 14
    LT_RAW = 101
    LT_LOOP = 108
    LT_LINUX_SLL = 113
    LT_IPV4 = 228
    LT_IPV6 = 229
    LT_LINUX_SLL2 = 276

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


cdef inline uint16_t be16(const uint8_t* p) noexcept nogil:
    return (<uint16_t>p[0] << 8) | p[1]


cdef inline uint32_t rd32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline int decode_ip(const uint8_t* p, Py_ssize_t cap, int ethertype, Pkt* k) noexcept nogil:
    cdef Py_ssize_t hl, total, off
    cdef int nh, version, hops
    cdef uint16_t fragfield
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
        total = be16(p + 4) + 40
        if total == 40 and cap > 40:
            total = cap              # jumbogram or TSO: trust the capture
        nh = p[6]
        off = 40
        hops = 0
        while True:
            if nh == 0 or nh == 43 or nh == 60 or nh == 135 or nh == 139 or nh == 140:
                if cap < off + 2:
                    return K_BAD_IP
                nh, off = p[off], off + (p[off + 1] + 1) * 8
            elif nh == 51:
                if cap < off + 2:
                    return K_BAD_IP
                nh, off = p[off], off + (p[off + 1] + 2) * 4
            elif nh == 44:
                if cap < off + 8:
                    return K_BAD_IP
                if be16(p + off + 2) & 0xFFF9:   # offset != 0 or M set
                    k.proto = 44
                    return K_FRAGMENT
                nh, off = p[off], off + 8   # atomic fragment
            else:
                break
            hops += 1
            if hops > 16 or off > total:
                return K_BAD_IP
        k.proto = nh
        k.l4 = p + off
        k.l4len = total - off
        k.l4cap = (cap if cap < total else total) - off
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
