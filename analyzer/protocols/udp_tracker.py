"""UDP tracker protocol (BEP 15): connect, announce, scrape, error.

Requests are recognised by their shape (the connect magic, or an action
field at bytes 8-11 with the length that action implies); responses only in
``decode_response`` given the action of the pending request with the same
transaction id (the caller keeps that state), so random UDP is not mistaken
for tracker traffic.
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from analyzer.protocols.compact import V4, V6, compact_peers

PROTOCOL_ID = 0x41727101980
EVENTS = {0: "", 1: "completed", 2: "started", 3: "stopped"}
CONNECT, ANNOUNCE, SCRAPE, ERROR = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class UdpTrackerRequest:
    action: int
    transaction: int
    connection_id: int
    info_hashes: tuple = ()
    peer_id: bytes | None = None
    downloaded: int | None = None
    left: int | None = None
    uploaded: int | None = None
    event: str | None = None
    ip: str | None = None
    key: int | None = None
    num_want: int | None = None
    port: int | None = None
    truncated: bool = False   # cut by the snap length: the fields not captured are None


@dataclass(frozen=True, slots=True)
class UdpTrackerResponse:
    action: int
    transaction: int
    connection_id: int | None = None
    interval: int | None = None
    leechers: int | None = None
    seeders: int | None = None
    peers: tuple = ()
    scrape: tuple = ()        # (seeders, completed, leechers) per info hash
    message: str | None = None


ANNOUNCE_FIELDS = ((56, 8, "downloaded"), (64, 8, "left"), (72, 8, "uploaded"), (80, 4, "event"), (84, 4, "ip"),
                   (88, 4, "key"), (92, 4, "num_want"), (96, 2, "port"))


def decode_request(p: bytes, length: int | None = None) -> UdpTrackerRequest | None:
    """A request from its captured bytes ``p``; ``length``: its size on the wire when the snap
    length cut it (an announce keeps the fields captured whole, at least its info hash)."""
    if length is not None and len(p) < length and len(p) < 98 <= length:
        return _announce(p, truncated=True)
    if len(p) < 16:
        return None
    conn_id, action, tx = struct.unpack_from(">QII", p, 0)
    if action == CONNECT and conn_id == PROTOCOL_ID and len(p) == 16:
        return UdpTrackerRequest(CONNECT, tx, conn_id)
    if action == ANNOUNCE and len(p) >= 98:
        return _announce(p)
    if action == SCRAPE and len(p) >= 36 and (len(p) - 16) % 20 == 0:
        return UdpTrackerRequest(SCRAPE, tx, conn_id, tuple(p[i:i + 20].hex() for i in range(16, len(p), 20)))
    return None


def _announce(p: bytes, truncated: bool = False) -> UdpTrackerRequest | None:
    """An announce request; ``truncated``: cut by the snap length, the fields not captured
    whole are None."""
    if len(p) < 36:
        return None
    conn_id, action, tx = struct.unpack_from(">QII", p, 0)
    if action != ANNOUNCE:
        return None
    fields: dict = {"peer_id": p[36:56] if len(p) >= 56 else None}
    for off, size, name in ANNOUNCE_FIELDS:
        if len(p) >= off + size:
            fields[name] = int.from_bytes(p[off:off + size], "big", signed=name == "num_want")
    if "event" in fields:
        if fields["event"] not in EVENTS:
            return None
        fields["event"] = EVENTS[fields["event"]]
    if "ip" in fields:
        fields["ip"] = str(ipaddress.IPv4Address(fields["ip"])) if fields["ip"] else None
    return UdpTrackerRequest(ANNOUNCE, tx, conn_id, (p[16:36].hex(),), truncated=truncated, **fields)


def decode_response(p: bytes, expected_action: int, ipv6: bool) -> UdpTrackerResponse | None:
    """A response to a request of ``expected_action`` (peers are 18 bytes over IPv6)."""
    if len(p) < 8:
        return None
    action, tx = struct.unpack_from(">II", p, 0)
    if action == ERROR:
        return UdpTrackerResponse(ERROR, tx, message=p[8:].decode("utf-8", "replace"))
    if action != expected_action:
        return None
    if action == CONNECT and len(p) >= 16:
        return UdpTrackerResponse(CONNECT, tx, connection_id=struct.unpack_from(">Q", p, 8)[0])
    if action == ANNOUNCE and len(p) >= 20:
        interval, leechers, seeders = struct.unpack_from(">III", p, 8)
        # a trailing partial entry (a datagram cut short) is ignored
        return UdpTrackerResponse(ANNOUNCE, tx, interval=interval, leechers=leechers, seeders=seeders,
                                  peers=compact_peers(p[20:], V6 if ipv6 else V4))
    if action == SCRAPE:
        return UdpTrackerResponse(SCRAPE, tx, scrape=tuple(struct.unpack_from(">III", p, i)
                                                           for i in range(8, len(p) - 11, 12)))
    return None
