"""Torrent metadata rebuilt from the capture (BEP 9, ut_metadata).

A client that joined through a magnet link fetches the info dictionary from
its peers in 16 KiB pieces (``{"msg_type": 1, "piece": i, "total_size": n}``
followed by the data).  ``parse_data_message`` reads one such message (the
routing of BEP 10 messages by name is the job of
``analyzer.sessions.extensions``).  ``MetadataCollector`` gathers the pieces
per info hash in the order they are given; once all are present the
dictionary is checked against the info hash (SHA-1 for v1; SHA-256,
truncated to the handshake's 20 bytes, for v2) and only then used, exactly
like a given .torrent.  A piece seen with different contents from different
peers keeps its first copy; if the check fails, the conflicting copies are
tried.

Bounded against hostile peers: at most ``MAX_ALTERNATIVES`` distinct other
copies per collection (repeats of a copy are not kept again; so at most that
many more candidates are hashed, one at a time), at most
``MAX_COLLECTING_BYTES`` held over all info hashes being collected (beyond,
the oldest collection is given up), and at most ``MAX_FAILURE_LINES``
failure lines (the rest counted in ``failures_not_listed``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from analyzer.evidence.metainfo import MetainfoError, TorrentMeta, meta_from_info
from analyzer.protocols.bencode import BencodeError, decode

PIECE = 16384
MAX_METADATA = 16 << 20
MAX_ALTERNATIVES = 8             # other copies of pieces kept per collection
MAX_COLLECTING_BYTES = 64 << 20  # held over all collections
MAX_FAILURE_LINES = 100


@dataclass(frozen=True)
class MetadataPiece:
    """One ut_metadata data message."""

    index: int
    total_size: int
    data: bytes


def parse_data_message(payload: bytes) -> MetadataPiece | str | None:
    """A data message (msg_type 1) with a consistent piece; None for the other message
    types (request, reject); a short reason (str) for a malformed message."""
    try:
        header, end = decode(payload, allow_trailing=True)
    except BencodeError as e:
        return f"bencode {e.code}"
    if not isinstance(header, dict):
        return "not a dictionary"
    if header.get(b"msg_type") != 1:
        return None
    index, total = header.get(b"piece"), header.get(b"total_size")
    if not isinstance(index, int) or not isinstance(total, int) or not 0 < total <= MAX_METADATA:
        return "bad piece or total_size"
    data = payload[end:]
    n = (total + PIECE - 1) // PIECE
    if not 0 <= index < n or len(data) != min(PIECE, total - index * PIECE):
        return "piece outside total_size or of the wrong length"
    return MetadataPiece(index, total, data)


@dataclass
class _Collect:
    total_size: int
    pieces: dict = field(default_factory=dict)        # index -> bytes (first copy)
    alternatives: dict = field(default_factory=dict)  # index -> [other copies]
    sources: set = field(default_factory=set)         # sender addresses
    held_bytes: int = 0
    n_alternatives: int = 0


class MetadataCollector:
    def __init__(self):
        self.collecting: dict = {}          # info hash (40 hex, as in the handshake) -> _Collect
        self.rebuilt: dict = {}             # info hash -> TorrentMeta
        self.failures: list[str] = []
        self.failures_not_listed = 0
        self.held_bytes = 0                 # over all collections

    def add(self, info_hash: str, sender: str, piece: MetadataPiece) -> TorrentMeta | None:
        """A data piece; returns the metadata when it has just been completed and checked."""
        if info_hash in self.rebuilt:
            return None
        c = self.collecting.get(info_hash)
        if c is None or c.total_size != piece.total_size:
            if c is not None:
                self._drop(info_hash)
            c = self.collecting[info_hash] = _Collect(piece.total_size)
        n = (c.total_size + PIECE - 1) // PIECE
        c.sources.add(sender)
        index, data = piece.index, piece.data
        if index in c.pieces:
            if c.pieces[index] != data:
                alts = c.alternatives.setdefault(index, [])
                if data not in alts and c.n_alternatives < MAX_ALTERNATIVES:
                    alts.append(data)
                    c.n_alternatives += 1
                    self._hold(c, len(data))
            return None
        c.pieces[index] = data
        self._hold(c, len(data))
        if len(c.pieces) < n:
            self._make_room(info_hash)
            return None
        return self._complete(info_hash, c, n)

    def _hold(self, c: _Collect, n: int) -> None:
        c.held_bytes += n
        self.held_bytes += n

    def _drop(self, info_hash: str) -> None:
        c = self.collecting.pop(info_hash)
        self.held_bytes -= c.held_bytes

    def _make_room(self, keep: str) -> None:
        """Over the memory cap: give up the oldest collections (not the one just fed)."""
        while self.held_bytes > MAX_COLLECTING_BYTES and len(self.collecting) > 1:
            oldest = next(h for h in self.collecting if h != keep)
            c = self.collecting[oldest]
            self._drop(oldest)
            self._fail(f"{oldest}: metadata collection of {c.total_size} bytes given up "
                       f"({len(c.pieces)} pieces held; more than {MAX_COLLECTING_BYTES >> 20} MiB being collected)")

    def _fail(self, line: str) -> None:
        if len(self.failures) < MAX_FAILURE_LINES:
            self.failures.append(line)
        else:
            self.failures_not_listed += 1

    def _complete(self, info_hash: str, c: _Collect, n: int) -> TorrentMeta | None:
        def candidates():
            yield b"".join(c.pieces[i] for i in range(n))
            for i, alts in sorted(c.alternatives.items()):
                for alt in alts:
                    yield b"".join(alt if j == i else c.pieces[j] for j in range(n))
        for info in candidates():
            if hashlib.sha1(info).hexdigest() == info_hash or hashlib.sha256(info).hexdigest()[:40] == info_hash:
                self._drop(info_hash)
                try:
                    meta = meta_from_info(info, f"rebuilt from the capture (BEP 9, from {', '.join(sorted(c.sources))})")
                except MetainfoError as e:
                    self._fail(f"{info_hash}: {e}")
                    return None
                self.rebuilt[info_hash] = meta
                return meta
        self._fail(f"{info_hash}: metadata of {c.total_size} bytes does not match the info hash")
        self._drop(info_hash)
        return None
