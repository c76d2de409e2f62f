"""Compact peer lists (BEP 23, BEP 7, BEP 11): 4- or 16-byte address + 2-byte port, big-endian;
and packed addresses as text."""
from __future__ import annotations

import functools
import ipaddress
import socket
import struct

V4 = 6      # bytes per IPv4 entry
V6 = 18     # bytes per IPv6 entry


def address_text(packed: bytes) -> str:
    """A packed IPv4 (4 bytes) or IPv6 (16 bytes) address as ``ipaddress`` writes it
    ('10.0.0.1', '2001:db8::1'), fast: the engine's connections, datagrams and peers name
    addresses this way by the million."""
    if len(packed) == 4:
        return socket.inet_ntoa(packed)
    return _v6_text(packed)


def endpoint_text(ip: str, port: int) -> str:
    """An address text and a port as in a URL: '10.0.0.1:6881', '[2001:db8::1]:6881'."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def address_order(ip: str) -> tuple:
    """Sort key of an address as text: IPv4 before IPv6, then numerically."""
    a = ipaddress.ip_address(ip)
    return (a.version, a.packed)


@functools.lru_cache(maxsize=1 << 16)
def _v6_text(packed: bytes) -> str:
    return str(ipaddress.IPv6Address(packed))


def compact_peers(data: bytes, size: int) -> tuple[tuple[str, int], ...]:
    """(address, port) of each whole ``size``-byte entry (``V4`` or ``V6``); a trailing
    partial entry is ignored (callers that must refuse it check ``len(data) % size``)."""
    return tuple((address_text(data[i:i + size - 2]), struct.unpack_from(">H", data, i + size - 2)[0])
                 for i in range(0, len(data) - size + 1, size))
