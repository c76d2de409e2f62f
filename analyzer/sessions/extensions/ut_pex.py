"""ut_pex (BEP 11): peers a peer tells about (peer exchange).

A ut_pex message is a bencoded dictionary with ``added``/``added6`` (compact
peers, with ``added.f``/``added6.f`` flags, one byte per peer) and
``dropped``/``dropped6``.  Facts are kept per (info hash, sender, receiver,
peer): how often the peer was added and dropped, the flags seen, and the
first and last frame.  Who the subject is is decided later, so every
exchange is kept (capped at ``MAX_KEYS``; what the cap drops is counted).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from analyzer.protocols.bencode import BencodeError, decode
from analyzer.protocols.compact import V4, V6, compact_peers, endpoint_text
from analyzer.sessions.extensions.base import Extension, endpoint, info_hashes

MAX_KEYS = 1_000_000
MAX_PEERS_PER_MESSAGE = 4096      # BEP 11 suggests at most 50 added and 50 dropped


@dataclass
class PexFact:
    added: int = 0
    dropped: int = 0
    flags: int = 0                # OR of the flags of every time the peer was added
    first: tuple = ()             # (file, frame, ts) of the first and last message naming the peer
    last: tuple = ()


@dataclass
class PexFacts:
    """(info_hash, sender "ip:port", receiver "ip:port", peer "ip:port") -> PexFact."""

    facts: dict = field(default_factory=dict)
    messages: int = 0
    malformed: int = 0
    dropped_keys: int = 0


class UtPex(Extension):
    name = "ut_pex"

    def __init__(self, verifier=None):
        super().__init__(verifier)
        self.out = PexFacts()

    def on_message(self, conn, d: int, payload: bytes, where: tuple) -> None:
        hashes = info_hashes(conn)
        peers = parse_pex(payload)
        if peers is None:
            self.out.malformed += 1
            return
        self.out.messages += 1
        if not hashes:
            return
        sender, receiver = endpoint_text(*endpoint(conn, d)), endpoint_text(*endpoint(conn, 1 - d))
        for peer, added, flags in peers:
            key = (hashes[0], sender, receiver, peer)
            f = self.out.facts.get(key)
            if f is None:
                if len(self.out.facts) >= MAX_KEYS:
                    self.out.dropped_keys += 1
                    continue
                f = self.out.facts[key] = PexFact(first=where)
            if added:
                f.added += 1
                f.flags |= flags
            else:
                f.dropped += 1
            f.last = where

    def result(self) -> PexFacts:
        return self.out

    @staticmethod
    def merge(results: list) -> PexFacts:
        out = PexFacts()
        for r in results:
            out.messages += r.messages
            out.malformed += r.malformed
            out.dropped_keys += r.dropped_keys
            for k, f in r.facts.items():
                g = out.facts.get(k)
                if g is None:
                    out.facts[k] = f
                    continue
                g.added += f.added
                g.dropped += f.dropped
                g.flags |= f.flags
                g.first, g.last = min(g.first, f.first), max(g.last, f.last)
        return out


def parse_pex(payload: bytes) -> list[tuple[str, bool, int]] | None:
    """[(peer "ip:port", added?, flags)] of a ut_pex message; None when malformed."""
    try:
        d = decode(payload)
    except BencodeError:
        return None
    if not isinstance(d, dict):
        return None
    out = []
    for key, size in ((b"added", V4), (b"added6", V6), (b"dropped", V4), (b"dropped6", V6)):
        value = d.get(key, b"")
        if not isinstance(value, bytes) or len(value) % size:
            return None
        flags = d.get(key + b".f", b"") if key.startswith(b"added") else b""
        flags = flags if isinstance(flags, bytes) else b""
        for i, peer in enumerate(compact_peers(value, size)[:MAX_PEERS_PER_MESSAGE]):
            out.append((endpoint_text(*peer), key.startswith(b"added"), flags[i] if i < len(flags) else 0))
    return out
