"""Builders and checks shared by the peer wire parser tests.

Messages are built by hand with ``struct`` from BEP 3 / 6 / 10 / 52 (never
with the analyzer), so the tests check the parser against the specs.
"""
from __future__ import annotations

import random
import struct

from analyzer.protocols.peerwire import PeerWireParser

PROTOCOL = b"\x13BitTorrent protocol"
INFO_HASH = bytes(range(1, 21))
PEER_ID = b"-LT2010-" + b"0123456789ab"
BLOCK = 16384
MAX_MESSAGE = 1 << 20          # the parser's cap for non-piece bodies
DEFAULT_MAX_BLOCK = 1 << 17

# reserved bits (BEP 5 DHT, BEP 6 fast, BEP 10 extension protocol, BEP 52 v2 upgrade)
RES_DHT = (7, 0x01)
RES_FAST = (7, 0x04)
RES_V2 = (7, 0x10)
RES_EXT = (5, 0x10)


def reserved(*bits: tuple[int, int]) -> bytes:
    r = bytearray(8)
    for byte, mask in bits:
        r[byte] |= mask
    return bytes(r)


def handshake(info_hash: bytes = INFO_HASH, peer_id: bytes = PEER_ID, res: bytes = bytes(8)) -> bytes:
    assert len(info_hash) == 20 and len(peer_id) == 20 and len(res) == 8
    return PROTOCOL + res + info_hash + peer_id


def message(msg_id: int, payload: bytes = b"") -> bytes:
    return struct.pack(">IB", 1 + len(payload), msg_id) + payload


def raw_header(length: int, msg_id: int) -> bytes:
    """A header with an arbitrary (possibly wrong) length prefix."""
    return struct.pack(">IB", length, msg_id)


def keepalive() -> bytes:
    return b"\0\0\0\0"


def ints(*values: int) -> bytes:
    return struct.pack(">%dI" % len(values), *values)


def have(index: int) -> bytes:
    return message(4, ints(index))


def bitfield(bits: bytes) -> bytes:
    return message(5, bits)


def request(index: int, begin: int, length: int) -> bytes:
    return message(6, ints(index, begin, length))


def piece(index: int, begin: int, block: bytes) -> bytes:
    return message(7, ints(index, begin) + block)


def cancel(index: int, begin: int, length: int) -> bytes:
    return message(8, ints(index, begin, length))


def port(p: int) -> bytes:
    return message(9, struct.pack(">H", p))


def suggest(index: int) -> bytes:
    return message(0x0D, ints(index))


def reject(index: int, begin: int, length: int) -> bytes:
    return message(0x10, ints(index, begin, length))


def allowed_fast(index: int) -> bytes:
    return message(0x11, ints(index))


def extended(ext_id: int, payload: bytes) -> bytes:
    return message(20, bytes([ext_id]) + payload)


def hash_msg(msg_id: int, root: bytes, base_layer: int, index: int, length: int, proof_layers: int,
             hashes: bytes = b"") -> bytes:
    assert len(root) == 32
    return message(msg_id, root + ints(base_layer, index, length, proof_layers) + hashes)


def block_data(n: int, seed: int = 7) -> bytes:
    """Deterministic pseudo-random block payload."""
    return random.Random(seed * 1_000_003 + n).randbytes(n)


# ---------------------------------------------------------------------- feeding and checks
COUNTERS = (
    "stream_off", "handshake_bytes", "message_bytes", "block_bytes", "unparsed_bytes", "opaque_bytes",
    "gap_bytes", "block_tail_bytes", "block_gap_bytes", "messages", "pieces", "protocol_errors",
    "resyncs", "desyncs",
)
EXCLUSIVE = ("handshake_bytes", "message_bytes", "block_bytes", "unparsed_bytes", "opaque_bytes", "gap_bytes")


def snapshot(p: PeerWireParser) -> dict:
    """Every observable figure of a parser."""
    out = {k: getattr(p, k) for k in COUNTERS}
    out.update(message_counts=p.message_counts, state=p.state_name, synced=p.synced,
               handshake_seen=p.handshake_seen, reserved=p.reserved, info_hash=p.info_hash,
               peer_id=p.peer_id, ext_handshake=p.ext_handshake)
    return out


def check_identity(p: PeerWireParser) -> None:
    """Every stream byte in exactly one exclusive category; subsets within their sets."""
    assert p.accounted_bytes() == p.stream_off, snapshot(p)
    assert sum(getattr(p, k) for k in EXCLUSIVE) == p.stream_off
    assert all(getattr(p, k) >= 0 for k in COUNTERS), snapshot(p)
    assert p.block_tail_bytes <= p.block_bytes
    assert p.block_gap_bytes <= p.gap_bytes


def run(ops, *, at_stream_start: bool = True, eof: bool = True, **kw) -> tuple[PeerWireParser, list]:
    """Feed ``ops`` (bytes, or an int n for an n-byte gap) and EOF; check the identity."""
    p = PeerWireParser(at_stream_start, **kw)
    events = []
    for op in ops:
        if isinstance(op, int):
            events += p.receive_gap(op)
        else:
            events += p.receive_data(op)
    if eof:
        events += p.receive_eof()
        check_identity(p)
    return p, events


def run_chunked(data: bytes, cuts, **kw) -> tuple[PeerWireParser, list]:
    """Feed ``data`` split at the sorted offsets ``cuts``."""
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(data))), len(data)]
    return run([data[a:b] for a, b in zip(bounds, bounds[1:])], **kw)
