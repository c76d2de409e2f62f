"""Torrent metadata rebuilt from the capture (BEP 9, ut_metadata).

A client that joined through a magnet link fetches the info dictionary from
its peers in 16 KiB pieces (``{"msg_type": 1, "piece": i, "total_size": n}``
followed by the data).  The message id is the one the *receiving* side
announced for ``ut_metadata`` in its extended handshake.  Pieces are
collected per info hash; once all are present the dictionary is checked
against the info hash (SHA-1 for v1; SHA-256, truncated to the handshake's
20 bytes, for v2) and only then used, exactly like a given .torrent.  A
piece seen with different contents from different peers keeps its first
copy; if the check fails, the conflicting copies are tried.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from analyzer.evidence.metainfo import MetainfoError, TorrentMeta, meta_from_info
from analyzer.protocols.bencode import BencodeError, decode

PIECE = 16384
MAX_METADATA = 16 << 20


@dataclass
class _Collect:
    total_size: int
    pieces: dict = field(default_factory=dict)        # index -> bytes (first copy)
    alternatives: dict = field(default_factory=dict)  # index -> [other copies]
    sources: set = field(default_factory=set)         # sender addresses
    first: tuple = ()


class MetadataCollector:
    def __init__(self):
        self.collecting: dict = {}          # info hash (40 hex, as in the handshake) -> _Collect
        self.rebuilt: dict = {}             # info hash -> TorrentMeta
        self.failures: list[str] = []

    def message(self, info_hash: str, sender: str, payload: bytes, where: tuple) -> TorrentMeta | None:
        """A ut_metadata message; returns the metadata when it has just been completed and checked."""
        if info_hash in self.rebuilt:
            return None
        try:
            header, end = decode(payload, allow_trailing=True)
        except BencodeError:
            return None
        if not isinstance(header, dict) or header.get(b"msg_type") != 1:
            return None
        index, total = header.get(b"piece"), header.get(b"total_size")
        if not isinstance(index, int) or not isinstance(total, int) or not 0 < total <= MAX_METADATA:
            return None
        data = payload[end:]
        c = self.collecting.get(info_hash)
        if c is None or c.total_size != total:
            c = self.collecting[info_hash] = _Collect(total, first=where)
        n = (total + PIECE - 1) // PIECE
        if not 0 <= index < n or len(data) != min(PIECE, total - index * PIECE):
            return None
        c.sources.add(sender)
        if index in c.pieces:
            if c.pieces[index] != data:
                c.alternatives.setdefault(index, []).append(data)
            return None
        c.pieces[index] = data
        if len(c.pieces) < n:
            return None
        return self._complete(info_hash, c, n)

    def _complete(self, info_hash: str, c: _Collect, n: int) -> TorrentMeta | None:
        candidates = [b"".join(c.pieces[i] for i in range(n))]
        for i, alts in sorted(c.alternatives.items()):
            for alt in alts:
                candidates.append(b"".join(alt if j == i else c.pieces[j] for j in range(n)))
        for info in candidates:
            if hashlib.sha1(info).hexdigest() == info_hash or hashlib.sha256(info).hexdigest()[:40] == info_hash:
                try:
                    meta = meta_from_info(info, f"rebuilt from the capture (BEP 9, from {', '.join(sorted(c.sources))})")
                except MetainfoError as e:
                    self.failures.append(f"{info_hash}: {e}")
                    return None
                self.rebuilt[info_hash] = meta
                del self.collecting[info_hash]
                return meta
        self.failures.append(f"{info_hash}: metadata of {c.total_size} bytes does not match the info hash")
        del self.collecting[info_hash]
        return None
