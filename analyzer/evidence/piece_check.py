"""Torrent geometry and piece hashes, for verification.

Theory of operation
-------------------
``TorrentGeometry`` maps a piece index to its span in the torrent's v1 byte
space (pad files included) and gives, per piece, a *hasher* and the digest
it must produce.  A hasher is fed the piece's bytes strictly in order, in
pieces of any size (``update``), pad-file bytes as the zeros they are, and
``digest()`` is compared with ``expected(index)``:

* v1 (and hybrid): SHA-1 of the whole piece (``hashlib.sha1``);
* v2 only: the SHA-256 merkle root of the piece's 16 KiB leaves
  (``MerklePiece``), over the file's own bytes only (pad bytes past the end
  of the file are ignored): against the file's piece layer, or the file's
  pieces root for a file of one piece (leaves padded with zero hashes to a
  power of two).  Each leaf is hashed as soon as its 16 KiB are complete.

Feeding in order lets the verifier hash a piece while its blocks arrive, so
a piece is checked the moment its last block lands, without assembling it;
v1 blocks are hashed on a native worker thread (``_sha1``), in parallel with
the analysis.
``check(index, data)`` does the same over a whole piece at once (the slow
paths: attribution by piece hashes, alternative assemblies).
"""
from __future__ import annotations

import hashlib

from analyzer.evidence import _sha1

BLOCK = 16384
SHA1_WORKER = _sha1.available()

_sha256 = hashlib.sha256
_zero_bytes = b""


def zeros(n: int) -> memoryview:
    """n zero bytes (a view of one shared buffer, grown as needed)."""
    global _zero_bytes
    if n > len(_zero_bytes):
        _zero_bytes = bytes(max(n, 1 << 20))
    return memoryview(_zero_bytes)[:n]


def pow2(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


def merkle(leaves: list[bytes], width: int) -> bytes:
    """Root of a tree of ``width`` leaves (a power of two), missing ones zero."""
    if width < max(len(leaves), 1) or width & (width - 1):
        width = pow2(max(width, len(leaves), 1))      # metadata with a piece length v2 does not allow
    layer = leaves + [bytes(32)] * (width - len(leaves))
    while len(layer) > 1:
        layer = [_sha256(layer[i] + layer[i + 1]).digest() for i in range(0, len(layer), 2)]
    return layer[0]


class MerklePiece:
    """A v2 piece hashed in order: 16 KiB leaves of the file's bytes (the first
    ``limit`` bytes of the piece), their merkle root over ``width`` leaves (None:
    the file is one piece, the width is the next power of two)."""

    __slots__ = ("limit", "width", "pos", "fill", "h", "leaves")

    def __init__(self, limit: int, width: int | None):
        self.limit, self.width = limit, width
        self.pos = 0                  # bytes fed
        self.fill = 0                 # bytes of the current (partial) leaf
        self.h = None
        self.leaves: list[bytes] = []

    def update(self, data) -> None:
        n = len(data)
        room = self.limit - self.pos
        self.pos += n
        if room <= 0:
            return
        mv = memoryview(data)
        if n > room:
            mv, n = mv[:room], room
        i = 0
        while i < n:
            if self.fill == 0 and n - i >= BLOCK:
                self.leaves.append(_sha256(mv[i:i + BLOCK]).digest())
                i += BLOCK
                continue
            if self.h is None:
                self.h = _sha256()
            take = min(BLOCK - self.fill, n - i)
            self.h.update(mv[i:i + take])
            self.fill += take
            i += take
            if self.fill == BLOCK:
                self.leaves.append(self.h.digest())
                self.h, self.fill = None, 0

    def digest(self) -> bytes:
        leaves = self.leaves + [self.h.digest()] if self.fill else self.leaves
        return merkle(leaves, pow2(len(leaves)) if self.width is None else self.width)


class NoCheck:
    """The hasher of a piece with nothing to check it against: it never matches."""

    __slots__ = ()

    def update(self, data) -> None:
        pass

    def digest(self) -> None:
        return None


class TorrentGeometry:
    """Geometry and hashes of one torrent for verification."""

    def __init__(self, meta):
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

    def pad_ranges(self, start: int, end: int) -> list[tuple[int, int]]:
        """Pad-file ranges inside [start, end), relative to start, in order."""
        out = []
        for a, b in self.pads:
            lo, hi = max(a, start) - start, min(b, end) - start
            if lo < hi:
                out.append((lo, hi))
        return sorted(out)

    def content_bytes(self, start: int, end: int) -> int:
        return (end - start) - sum(max(0, min(end, b) - max(start, a)) for a, b in self.pads)

    def pad_overlap(self, a: int, b: int) -> int:
        return sum(max(0, min(b, hi) - max(a, lo)) for lo, hi in self.pads)

    def _v2_file(self, index: int):
        start = index * self.plen
        for f in self.files:
            if f.offset <= start < f.offset + f.size:
                return f, (start - f.offset) // self.plen
        return None, 0

    def hasher(self, index: int, worker: bool = False):
        """A fresh hasher for piece ``index`` (``update`` in order, ``digest``); its digest
        never equals ``expected(index)`` when there is nothing to check against.  ``worker``:
        a v1 piece is hashed on the SHA-1 worker thread (``_sha1.Sha1Job``: ``final``, ``ready``)."""
        if self.v1:
            return _sha1.Sha1Job() if worker and SHA1_WORKER else hashlib.sha1()
        f, j = self._v2_file(index)
        if not self.expected(index):
            return NoCheck()
        return MerklePiece(f.size - j * self.plen, None if f.size <= self.plen else self.plen // BLOCK)

    def expected(self, index: int):
        """The digest piece ``index`` must have (None: nothing to check it against)."""
        if self.v1:
            return self.meta.piece_hashes[20 * index:20 * index + 20]
        f, j = self._v2_file(index)
        if f is None:
            return None
        if f.size <= self.plen:                       # one piece: the file's pieces root
            return f.pieces_root
        return self.meta.piece_layers.get(f.pieces_root, b"")[32 * j:32 * j + 32]

    def check(self, index: int, data) -> bool:
        """Piece ``index`` (its bytes in the v1 space, pad bytes zeros) hashes right."""
        h = self.hasher(index)
        h.update(data)
        return self.matches(index, h)

    def matches(self, index: int, h) -> bool:
        expected = self.expected(index)
        return bool(expected) and h.digest() == expected

    def assemble(self, index: int, chunks: list) -> bytes | None:
        """The piece from (offset, bytes) chunks if they cover it (pad bytes are zeros)."""
        span = self.piece_span(index)
        if span is None:
            return None
        start, end = span
        size = end - start
        if sum(len(c) for _, c in chunks) + sum(b - a for a, b in self.pad_ranges(start, end)) < size:
            return None                               # cannot cover it
        buf, have = bytearray(size), bytearray(size)
        for lo, hi in self.pad_ranges(start, end):
            have[lo:hi] = b"\x01" * (hi - lo)
        for offset, chunk in chunks:
            chunk = chunk[:max(0, size - offset)]
            buf[offset:offset + len(chunk)] = chunk
            have[offset:offset + len(chunk)] = b"\x01" * len(chunk)
        return bytes(buf) if all(have) else None
