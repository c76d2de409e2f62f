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
tried.  Memory: at most ``MAX_COLLECTING`` info hashes at a time (the oldest
is given up, and counted), each at most ``MAX_METADATA`` bytes.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field

from analyzer.evidence.metainfo import MetainfoError, TorrentMeta, meta_from_info
from analyzer.protocols.bencode import BencodeError, decode

PIECE = 16384
MAX_METADATA = 16 << 20
MAX_COLLECTING = 1024
MAX_ALTERNATIVES = 16         # conflicting copies kept per piece


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


class MetadataCollector:
    def __init__(self):
        self.collecting: OrderedDict = OrderedDict()   # info hash (40 hex, as in the handshake) -> _Collect
        self.rebuilt: dict = {}             # info hash -> TorrentMeta
        self.failures: list[str] = []
        self.given_up = 0                   # info hashes dropped beyond MAX_COLLECTING

    def add(self, info_hash: str, sender: str, piece: MetadataPiece) -> TorrentMeta | None:
        """A data piece; returns the metadata when it has just been completed and checked."""
        if info_hash in self.rebuilt:
            return None
        c = self.collecting.get(info_hash)
        if c is None or c.total_size != piece.total_size:
            c = self.collecting[info_hash] = _Collect(piece.total_size)
            while len(self.collecting) > MAX_COLLECTING:
                self.collecting.popitem(last=False)
                self.given_up += 1
        n = (c.total_size + PIECE - 1) // PIECE
        c.sources.add(sender)
        if piece.index in c.pieces:
            alts = c.alternatives.setdefault(piece.index, [])
            if c.pieces[piece.index] != piece.data and piece.data not in alts and len(alts) < MAX_ALTERNATIVES:
                alts.append(piece.data)
            return None
        c.pieces[piece.index] = piece.data
        if len(c.pieces) < n:
            return None
        return self._complete(info_hash, c, n)

    def _complete(self, info_hash: str, c: _Collect, n: int) -> TorrentMeta | None:
        candidates = [b"".join(c.pieces[i] for i in range(n))]
        for i, alts in sorted(c.alternatives.items()):
            for alt in alts:
                candidates.append(b"".join(alt if j == i else c.pieces[j] for j in range(n)))
        del self.collecting[info_hash]
        for info in candidates:
            if hashlib.sha1(info).hexdigest() == info_hash or hashlib.sha256(info).hexdigest()[:40] == info_hash:
                try:
                    meta = meta_from_info(info, f"rebuilt from the capture (BEP 9, from {', '.join(sorted(c.sources))})")
                except MetainfoError as e:
                    self.failures.append(f"{info_hash}: {e}")
                    return None
                self.rebuilt[info_hash] = meta
                return meta
        self.failures.append(f"{info_hash}: metadata of {c.total_size} bytes does not match the info hash")
        return None
