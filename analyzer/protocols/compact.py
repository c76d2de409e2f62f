"""Compact peer lists (BEP 23, BEP 7, BEP 11): 4- or 16-byte address + 2-byte port, big-endian."""
from __future__ import annotations

import ipaddress
import struct

V4 = 6      # bytes per IPv4 entry
V6 = 18     # bytes per IPv6 entry


def compact_peers(data: bytes, size: int) -> tuple[tuple[str, int], ...]:
    """(address, port) of each whole ``size``-byte entry (``V4`` or ``V6``); a trailing
    partial entry is ignored (callers that must refuse it check ``len(data) % size``)."""
    return tuple((str(ipaddress.ip_address(data[i:i + size - 2])), struct.unpack_from(">H", data, i + size - 2)[0])
                 for i in range(0, len(data) - size + 1, size))
