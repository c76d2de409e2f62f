# Which UDP payloads could be BitTorrent datagrams (inline, on raw pointers).
from libc.stdint cimport uint8_t, uint16_t, uint32_t
from libc.string cimport memcmp

from analyzer.decode._headers cimport rd32


cdef inline bint bittorrent_datagram_candidate(const uint8_t* p, Py_ssize_t n, Py_ssize_t length, uint16_t sport,
                                               uint16_t dport) noexcept nogil:
    """Could be DHT (a bencoded dict, BEP 5), a UDP tracker message (BEP 15) or Local
    Service Discovery (BEP 14)?  The Python decoders decide; this only keeps obvious
    other UDP traffic (DNS, QUIC, media) off the slow path.  ``n`` bytes were captured of
    ``length`` (a snap length keeps an announce's info hash, at bytes 16-35)."""
    cdef uint32_t action
    if n >= 2 and p[0] == 0x64 and (p[1] == 0x31 or p[1] == 0x32):   # "d1:" / "d2:" (KRPC dicts)
        return True
    if dport == 6771 or sport == 6771 or (n >= 9 and memcmp(p, b"BT-SEARCH", 9) == 0):
        return True
    if n >= 16 and rd32(p) == 0x417 and rd32(p + 4) == 0x27101980:   # connect request magic
        return True
    if n >= 8:
        action = rd32(p)
        if action <= 3:                                              # tracker responses
            return True
    if n >= 16:
        action = rd32(p + 8)
        if (action == 1 and length >= 98 and n >= 36) or (action == 2 and (n - 16) % 20 == 0):   # announce / scrape
            return True
    return False
