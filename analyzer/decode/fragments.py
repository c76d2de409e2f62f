"""IPv4 and IPv6 fragment reassembly (slow path: fragments are rare in BitTorrent).

The engine copies fragment frames out; ``Defragmenter.add`` returns whole
datagrams (raw IP, no link header) once every byte from 0 to the last
fragment's end is present.  The first copy of any byte wins; overlapping
fragments with different bytes are counted (``analyzer.bytestore``).  Datagrams still incomplete
after ``TIMEOUT_NS`` of capture time, or at the end, are reported as
undecodable frames, never guessed: a fragment that would join a datagram
silent for longer than ``TIMEOUT_NS`` gives that one up first and starts a
new one, and ``add`` itself expires stale datagrams at most once per
``TIMEOUT_NS`` of fragment time, so what is rebuilt depends only on the
sequence of fragments, not on when a caller happens to call ``expire``
(the engine calls ``add`` at the fragment's place in the capture: results do
not depend on batch sizes).  Memory is capped (``MAX_PENDING_BYTES``
and ``MAX_PENDING_DATAGRAMS``): beyond either, the oldest pending datagram is
given up (its frames counted as incomplete, ``evicted`` counts the datagrams).

Cost per fragment is linear in its own length whatever the order: a count of
the bytes held makes the completeness check O(1), and overlapping copies are
compared run by run with slices, not byte by byte.
"""
from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass, field

from analyzer.bytestore import ByteStore
from analyzer.decode._ipv6 import fragment_header

TIMEOUT_NS = 60 * 1_000_000_000
MAX_PENDING_BYTES = 64 << 20
MAX_PENDING_DATAGRAMS = 8192
MAX_PAYLOAD = 65535          # no reassembled payload can be longer


@dataclass
class _Pending:
    header: bytes | None = None        # IPv4 header / IPv6 unfragmentable part (of offset 0)
    next_header_pos: int = -1         # IPv6: where the next-header byte to patch lives
    next_header: int = 0
    store: ByteStore = field(default_factory=ByteStore)  # payload bytes by offset, first copy wins
    total: int | None = None
    frames: int = 0
    wire_bytes: int = 0
    first: tuple = ()                  # (ts, file_idx, frame_no) of the first fragment
    last_ts: int = 0


@dataclass
class Datagram:
    packet: bytes
    ts_ns: int
    file_idx: int
    frame_no: int
    frames: int
    wire_bytes: int


class Defragmenter:
    def __init__(self):
        self.pending: OrderedDict = OrderedDict()      # oldest first
        self.pending_bytes = 0
        self.conflicts = 0
        self.dropped_frames = 0
        self.dropped_bytes = 0
        self.reassembled = 0
        self.evicted = 0                # datagrams given up because of the caps
        self.expired_at: int | None = None   # fragment time of the last expiry sweep made by add

    def add(self, file_idx: int, frame_no: int, ts: int, wire: int, ipver: int, ip: bytes) -> Datagram | None:
        parsed = _parse_v4(ip) if ipver == 4 else _parse_v6(ip)
        if parsed is None:
            self._drop(1, wire)
            return None
        key, offset, more, data, header, nh_pos, nh = parsed
        if self.expired_at is None:
            self.expired_at = ts
        elif ts - self.expired_at > TIMEOUT_NS:
            self.expire(ts)
            self.expired_at = ts
        p = self.pending.get(key)
        if p is not None and ts - p.last_ts > TIMEOUT_NS:
            self._discard(key)          # the datagram this would join timed out: it is given up
            p = None
        if p is None:
            if len(self.pending) >= MAX_PENDING_DATAGRAMS:
                self._evict()
            p = self.pending[key] = _Pending(first=(ts, file_idx, frame_no))
        p.frames += 1
        p.wire_bytes += wire
        p.last_ts = max(p.last_ts, ts)
        if offset == 0 and p.header is None:
            p.header, p.next_header_pos, p.next_header = header, nh_pos, nh
        end = offset + len(data)
        if not more and p.total is None:
            p.total = end
        if end > MAX_PAYLOAD:
            self._discard(key)          # larger than any IP datagram can be ("ping of death")
            return None
        self._store(p, offset, data)
        while self.pending_bytes > MAX_PENDING_BYTES and len(self.pending) > 1:
            self._evict()
        return self._complete(key)

    def _evict(self) -> None:
        """Give up the oldest pending datagram (memory caps)."""
        self.evicted += 1
        _, p = self.pending.popitem(last=False)
        self.pending_bytes -= 2 * len(p.store)
        self._drop(p.frames, p.wire_bytes)

    def _store(self, p: _Pending, offset: int, data: bytes) -> None:
        """First copy of every byte wins; a fragment that overlaps different bytes is a conflict."""
        self.pending_bytes += 2 * p.store.grow(offset + len(data))
        _, differ = p.store.put(offset, data)
        self.conflicts += differ > 0

    def _complete(self, key) -> Datagram | None:
        p = self.pending.get(key)
        if p is None or p.total is None or p.header is None or not p.store.holds(p.total):
            return None
        hdr = bytearray(p.header)
        if len(hdr) + p.total > 65535 + (40 if key[0] == 6 else 0):
            self._discard(key)
            return None
        del self.pending[key]
        self.pending_bytes -= 2 * len(p.store)
        self.reassembled += 1
        if key[0] == 4:
            struct.pack_into(">H", hdr, 2, len(hdr) + p.total)   # total length
            struct.pack_into(">H", hdr, 6, 0)                    # no flags, offset 0
        else:
            hdr[p.next_header_pos] = p.next_header
            struct.pack_into(">H", hdr, 4, len(hdr) - 40 + p.total)
        ts, file_idx, frame_no = p.first
        return Datagram(bytes(hdr) + bytes(p.store.data[:p.total]), ts, file_idx, frame_no, p.frames, p.wire_bytes)

    def expire(self, now_ts: int) -> None:
        for key in [k for k, p in self.pending.items() if now_ts - p.last_ts > TIMEOUT_NS]:
            self._discard(key)

    def flush(self) -> None:
        for key in list(self.pending):
            self._discard(key)

    def _discard(self, key) -> None:
        p = self.pending.pop(key)
        self.pending_bytes -= 2 * len(p.store)
        self._drop(p.frames, p.wire_bytes)

    def _drop(self, frames: int, wire: int) -> None:
        self.dropped_frames += frames
        self.dropped_bytes += wire


def _parse_v4(ip: bytes):
    if len(ip) < 20:
        return None
    hl = (ip[0] & 0x0F) * 4
    total = struct.unpack_from(">H", ip, 2)[0]
    if hl < 20 or len(ip) < hl or total < hl:
        return None
    ident, frag = struct.unpack_from(">HH", ip, 4)
    offset = (frag & 0x1FFF) * 8
    more = bool(frag & 0x2000)
    data = ip[hl:min(total, len(ip))]
    key = (4, ip[12:16], ip[16:20], ident, ip[9])
    return key, offset, more, data, ip[:hl], -1, 0


def _parse_v6(ip: bytes):
    if len(ip) < 40:
        return None
    found = fragment_header(ip)       # the decoder's own walk of the extension headers
    if found is None:
        return None
    off, nh_pos = found
    total = 40 + struct.unpack_from(">H", ip, 4)[0]
    frag, ident = struct.unpack_from(">HI", ip, off + 2)
    key = (6, ip[8:24], ip[24:40], ident)
    data = ip[off + 8:min(total, len(ip))]
    return key, frag & 0xFFF8, bool(frag & 1), data, ip[:off], nh_pos, ip[off]


def fragment_key(ipver: int, ip: bytes):
    """The key ``Defragmenter`` groups a fragment under (its datagram), or None if unparsable."""
    parsed = _parse_v4(ip) if ipver == 4 else _parse_v6(ip)
    return None if parsed is None else parsed[0]
