"""Piece verification: block data seen on the wire checked against torrent hashes.

Theory of operation
-------------------
The engine gives every peer-wire parser a *tap* (``Verifier.tap``); the
parser passes each contiguous run of a block's bytes to it (normally the
whole block, once) with the piece index and the offset in the piece; frame
references are those of the frame that completed the run.  A tap resolves, on its first block, the torrent of
its connection (the info hash of either handshake) and the host that
*receives* the blocks; without metadata for that torrent (given, or being
rebuilt from ut_metadata messages: ``metadata.collecting``) it detaches
itself (one call per connection, not per block).

A connection without a handshake (captured mid-stream) keeps its blocks
(``PROBE_CAP``) until a whole piece of one of the known torrents hashes
right: that attributes the connection ("piece_hashes") and its blocks join
the others.

Blocks are assembled per (torrent, receiving host, piece): a client builds a
piece from blocks of several peers, and each receiver holds its own copy.
The first copy of every byte counts; bytes of later copies that differ are
counted as conflicts.  When a piece is covered it is hashed (v1: SHA-1 of the
piece in the v1 byte space, pad-file bytes taken as the zeros they are; v2:
the SHA-256 merkle root of its 16 KiB blocks against the file's piece layer,
or the file's pieces root for a file of one piece) and released; only pieces
in progress stay in memory, and beyond ``MAX_PENDING_BYTES`` the oldest are
given up as incomplete.  Every piece ends in exactly one state: verified,
failed or incomplete, with the frames that carried its first and last bytes
and how many bytes each sender contributed.
"""
from __future__ import annotations

import hashlib
import ipaddress
from collections import OrderedDict
from dataclasses import dataclass, field

from analyzer.evidence.metadata import MetadataCollector
from analyzer.evidence.metainfo import TorrentMeta

BLOCK = 16384
MAX_PENDING_BYTES = 512 << 20
PROBE_CAP = 64 << 20          # block bytes kept per connection while attributing by piece hashes
_ONES = memoryview(b"\x01" * (1 << 17))


@dataclass
class PieceResult:
    info_hash: str            # the torrent's entry hash (v1 if any, else truncated v2)
    index: int
    receiver: str
    size: int                 # content bytes of the piece (pad bytes excluded)
    status: str               # verified, failed, incomplete
    senders: dict             # sender address -> bytes contributed (first copies)
    covered: int              # bytes seen (first copies)
    conflict_bytes: int
    first: tuple              # (file, frame, ts)
    last: tuple
    redundant_bytes: int = 0  # bytes received again (a second copy, or after the piece was checked)
    senders_redundant: dict = field(default_factory=dict)
    pad_bytes: int = 0        # pad-file bytes (zeros) that arrived inside blocks
    senders_pad: dict = field(default_factory=dict)


@dataclass
class _Piece:
    size: int                 # bytes in the piece's byte space (v1: with pad bytes)
    content: int              # content bytes
    buf: bytearray
    have: bytearray           # 1 per byte present
    covered: int = 0
    senders: dict = field(default_factory=dict)
    conflict_bytes: int = 0
    redundant_bytes: int = 0
    pad_bytes: int = 0
    senders_redundant: dict = field(default_factory=dict)
    senders_pad: dict = field(default_factory=dict)
    first: tuple = ()
    last: tuple = ()


class _Torrent:
    """Geometry and hashes of one torrent for verification."""

    def __init__(self, meta: TorrentMeta):
        self.meta = meta
        self.key = meta.info_hash_v1 or meta.info_hash_v2[:40]
        self.plen = meta.piece_length
        self.length = meta.v1_length
        self.num_pieces = (self.length + self.plen - 1) // self.plen if self.plen else 0
        self.v1 = bool(meta.piece_hashes)
        self.pads = [(f.offset, f.offset + f.size) for f in meta.files if f.pad]
        self.files = [f for f in meta.files if not f.pad]

    def piece_span(self, index: int) -> tuple[int, int] | None:
        if not 0 <= index < self.num_pieces:
            return None
        start = index * self.plen
        return start, min(start + self.plen, self.length)

    def assemble(self, index: int, chunks: list) -> bytes | None:
        """The piece from (offset, bytes) chunks if they cover it (pad bytes are zeros)."""
        span = self.piece_span(index)
        if span is None:
            return None
        start, end = span
        buf, have = bytearray(end - start), bytearray(end - start)
        for a, b in self.pads:
            lo, hi = max(a, start) - start, min(b, end) - start
            if lo < hi:
                have[lo:hi] = b"\x01" * (hi - lo)
        for offset, chunk in chunks:
            chunk = chunk[:max(0, len(buf) - offset)]
            buf[offset:offset + len(chunk)] = chunk
            have[offset:offset + len(chunk)] = b"\x01" * len(chunk)
        return bytes(buf) if all(have) else None

    def content_bytes(self, start: int, end: int) -> int:
        return (end - start) - sum(max(0, min(end, b) - max(start, a)) for a, b in self.pads)

    def check(self, index: int, data: bytes) -> bool:
        if self.v1:
            return hashlib.sha1(data).digest() == self.meta.piece_hashes[20 * index:20 * index + 20]
        start = index * self.plen
        for f in self.files:
            if f.offset <= start < f.offset + f.size:
                return self._check_v2(f, (start - f.offset) // self.plen, data)
        return False

    def _check_v2(self, f, j: int, data: bytes) -> bool:
        # only the file's own bytes are hashed; leaves past its end are zero hashes
        data = data[:f.size - j * self.plen]
        leaves = [hashlib.sha256(data[i:i + BLOCK]).digest() for i in range(0, len(data), BLOCK)]
        if f.size <= self.plen:                       # one piece: the file's pieces root
            return _merkle(leaves, _pow2(len(leaves))) == f.pieces_root
        layer = self.meta.piece_layers.get(f.pieces_root, b"")
        return _merkle(leaves, self.plen // BLOCK) == layer[32 * j:32 * j + 32]


def _pow2(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


def _merkle(leaves: list[bytes], width: int) -> bytes:
    """Root of a tree of ``width`` leaves (a power of two), missing ones zero."""
    layer = leaves + [bytes(32)] * (width - len(leaves))
    while len(layer) > 1:
        layer = [hashlib.sha256(layer[i] + layer[i + 1]).digest() for i in range(0, len(layer), 2)]
    return layer[0]


class Tap:
    """The block sink of one parser (one direction of one connection)."""

    __slots__ = ("verifier", "conn", "d", "parser", "engine", "torrent", "receiver", "sender", "probe",
                 "probe_bytes")

    def __init__(self, verifier, conn, d, parser, engine):
        self.verifier, self.conn, self.d, self.parser, self.engine = verifier, conn, d, parser, engine
        self.torrent = None
        self.probe = None           # index -> [(offset, chunk, where)] while attributing by piece hashes
        self.probe_bytes = 0

    def _hashes(self) -> list[str]:
        c = self.conn
        return [p.info_hash.hex() for p in (c.parser0, c.parser1) if p is not None and p.info_hash is not None]

    def data(self, index: int, offset: int, chunk: bytes) -> None:
        e = self.engine
        where = (e.cur_file, e.cur_frame, e.cur_ts)
        if self.torrent is None:
            if self.probe is not None:
                self._probe(index, offset, chunk, where)
                return
            if not self._resolve():
                return
        self.verifier.add(self.torrent, self.receiver, self.sender, index, offset, chunk, where)

    def _probe(self, index: int, offset: int, chunk: bytes, where) -> None:
        """No handshake: keep this connection's blocks until a whole piece of
        one of the known torrents hashes right, which attributes the connection."""
        v = self.verifier
        self.probe.setdefault(index, []).append((offset, chunk, where))
        self.probe_bytes += len(chunk)
        for t in v.torrents():
            data = t.assemble(index, [(o, c) for o, c, _ in self.probe[index]])
            if data is not None and t.check(index, data):
                self._set_torrent(t)
                v.attributions[self.conn.conn_id] = (t.key, where)
                held, self.probe = self.probe, None
                for i, chunks in held.items():
                    for o, c, w in chunks:
                        v.add(t, self.receiver, self.sender, i, o, c, w)
                return
        if self.probe_bytes > PROBE_CAP:
            self.probe = None
            self.parser.block_sink = None

    def _set_torrent(self, torrent) -> None:
        c = self.conn
        self.torrent = torrent
        a0, a1 = str(ipaddress.ip_address(c.addr0)), str(ipaddress.ip_address(c.addr1))
        self.sender, self.receiver = (a0, a1) if self.d == 0 else (a1, a0)

    def _resolve(self) -> bool:
        hashes = self._hashes()
        v = self.verifier
        torrent = next((v.by_hash[h] for h in hashes if h in v.by_hash), None)
        if torrent is None:
            if not hashes and v.by_hash:
                self.probe = {}                     # attribute by piece hashes
                return False
            # no metadata (and none being rebuilt) for this torrent, or nothing
            # to match against: stop listening to blocks
            if not hashes or not any(h in v.metadata.collecting for h in hashes):
                self.parser.block_sink = None
            return False
        self._set_torrent(torrent)
        return True


class Verifier:
    def __init__(self, metas: list[TorrentMeta], carver=None):
        self.by_hash: dict = {}
        self.carver = carver
        self.metadata = MetadataCollector()   # replaced by the ut_metadata handler's: hashes being collected
        self.pending: OrderedDict = OrderedDict()   # (torrent key, receiver, index) -> _Piece
        self.pending_bytes = 0
        self.results: list[PieceResult] = []
        self.closed: dict = {}       # (torrent key, receiver, index) -> result of a piece already checked
        self.attributions: dict = {}  # engine connection id -> (torrent key, (file, frame, ts) of the block)
        for m in metas:
            self.register(m)

    def torrents(self) -> list:
        return list({id(t): t for t in self.by_hash.values()}.values())

    def register(self, meta: TorrentMeta) -> None:
        """Verify the blocks of this torrent from now on (a given .torrent, or metadata just
        rebuilt from the capture)."""
        t = _Torrent(meta)
        for h in meta.handshake_hashes:
            self.by_hash.setdefault(h, t)

    def tap(self, conn, d, parser, engine):
        return Tap(self, conn, d, parser, engine)

    def add(self, t: _Torrent, receiver: str, sender: str, index: int, offset: int, chunk: bytes, where) -> None:
        span = t.piece_span(index)
        if span is None:
            return
        start, end = span
        size = end - start
        if offset >= size:
            return
        chunk = chunk[:size - offset]
        key = (t.key, receiver, index)
        p = self.pending.get(key)
        if p is None and key in self.closed:
            # the receiver had this piece already (end-game duplicates): redundant,
            # except pad-file bytes at the end of a block that completed it
            r = self.closed[key]
            pad = self._pad_overlap(t, start + offset, start + offset + len(chunk))
            r.pad_bytes += pad
            if pad:
                r.senders_pad[sender] = r.senders_pad.get(sender, 0) + pad
            if len(chunk) > pad:
                r.redundant_bytes += len(chunk) - pad
                r.senders_redundant[sender] = r.senders_redundant.get(sender, 0) + len(chunk) - pad
            return
        if p is None:
            p = _Piece(size, t.content_bytes(start, end), bytearray(size), bytearray(size), first=where)
            if t.pads:
                for a, b in t.pads:      # pad bytes are zeros, never sent in whole blocks
                    lo, hi = max(a, start) - start, min(b, end) - start
                    if lo < hi:
                        p.have[lo:hi] = b"\x01" * (hi - lo)
                        p.covered += hi - lo
            self.pending[key] = p
            self.pending_bytes += 2 * size
            while self.pending_bytes > MAX_PENDING_BYTES and len(self.pending) > 1:
                old_key, old = self.pending.popitem(last=False)
                self._close(old_key, old, "incomplete")
        p.last = where
        n = len(chunk)
        window = p.have[offset:offset + n]
        new = window.count(0)
        if new == n:
            p.buf[offset:offset + n] = chunk
            p.have[offset:offset + n] = _ONES[:n] if n <= len(_ONES) else b"\x01" * n
        else:
            for i, b in enumerate(chunk):
                if window[i]:
                    if p.buf[offset + i] != b:
                        p.conflict_bytes += 1
                else:
                    p.buf[offset + i] = b
                    p.have[offset + i] = 1
        if new:
            p.covered += new
            p.senders[sender] = p.senders.get(sender, 0) + new
        if new < len(chunk):
            dup = len(chunk) - new
            pad = self._pad_overlap(t, start + offset, start + offset + len(chunk))
            p.pad_bytes += min(pad, dup)           # pad-file bytes sent inside a block
            if pad:
                p.senders_pad[sender] = p.senders_pad.get(sender, 0) + min(pad, dup)
            if dup > pad:
                p.redundant_bytes += dup - pad
                p.senders_redundant[sender] = p.senders_redundant.get(sender, 0) + dup - pad
        if p.covered == p.size:
            del self.pending[key]
            data = bytes(p.buf)
            ok = t.check(index, data)
            if ok and self.carver is not None:
                self.carver.piece(t, index, data)
            self._close(key, p, "verified" if ok else "failed")

    @staticmethod
    def _pad_overlap(t: _Torrent, a: int, b: int) -> int:
        return sum(max(0, min(b, hi) - max(a, lo)) for lo, hi in t.pads)

    def _close(self, key, p: _Piece, status: str) -> None:
        self.pending_bytes -= 2 * p.size
        info_hash, receiver, index = key
        r = PieceResult(info_hash, index, receiver, p.content, status, p.senders, p.covered, p.conflict_bytes,
                        p.first, p.last, p.redundant_bytes, dict(p.senders_redundant), p.pad_bytes,
                        dict(p.senders_pad))
        self.results.append(r)
        if status == "verified":
            self.closed[key] = r     # a failed piece is discarded by the receiver and fetched again

    def finish(self) -> list[PieceResult]:
        for key, p in list(self.pending.items()):
            self._close(key, p, "incomplete")
        self.pending.clear()
        self.results.sort(key=lambda r: (r.info_hash, r.receiver, r.index, r.first))
        return self.results
