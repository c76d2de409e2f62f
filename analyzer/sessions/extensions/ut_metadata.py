"""ut_metadata (BEP 9): the torrent's info dictionary sent piece by piece.

Every data message is kept (capped) with its place in the capture, so that
the analysis can rebuild the metadata from the messages of all partitions in
capture order (``rebuild``): the result does not depend on how connections
were partitioned.  While reading, the same messages also go to a collector
of the partition's own: metadata completed there is handed at once to the
piece verifier, so that the blocks that follow are verified.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from analyzer.evidence.metadata import MetadataCollector, parse_data_message
from analyzer.sessions.extensions.base import Extension, endpoint, info_hashes

MAX_LOGGED_BYTES = 64 << 20       # data messages kept per partition for the rebuild


@dataclass
class MetadataMessages:
    """What one partition saw: data messages as (order, info hash, sender, piece), order being
    (file, frame, sequence) so that merged partitions replay in capture order."""

    messages: list = field(default_factory=list)
    malformed: int = 0
    dropped: int = 0              # beyond MAX_LOGGED_BYTES


class UtMetadata(Extension):
    name = "ut_metadata"

    def __init__(self, verifier=None):
        super().__init__(verifier)
        self.log = MetadataMessages()
        self.logged_bytes = 0
        self.collector = MetadataCollector()
        if verifier is not None:
            verifier.metadata = self.collector       # hashes being collected keep their blocks coming

    def on_message(self, conn, d: int, payload: bytes, where: tuple) -> None:
        hashes = info_hashes(conn)
        if not hashes:
            return
        piece = parse_data_message(payload)
        if isinstance(piece, str):
            self.log.malformed += 1
            return
        if piece is None:
            return
        info_hash, sender = hashes[0], endpoint(conn, d)[0]
        if info_hash in self.collector.rebuilt:
            return                       # complete here already: later copies cannot change the rebuild
        if self.logged_bytes + len(piece.data) > MAX_LOGGED_BYTES:
            self.log.dropped += 1
        else:
            self.logged_bytes += len(piece.data)
            self.log.messages.append(((where[0], where[1], len(self.log.messages)), info_hash, sender, piece))
        meta = self.collector.add(info_hash, sender, piece)
        if meta is not None and self.verifier is not None and info_hash not in self.verifier.by_hash:
            self.verifier.register(meta)

    def result(self) -> MetadataMessages:
        return self.log

    @staticmethod
    def merge(results: list) -> MetadataMessages:
        out = MetadataMessages()
        for r in results:
            out.messages.extend(r.messages)
            out.malformed += r.malformed
            out.dropped += r.dropped
        out.messages.sort(key=lambda m: m[0])
        return out


def rebuild(log: MetadataMessages) -> MetadataCollector:
    """The metadata the messages give, replayed in capture order."""
    collector = MetadataCollector()
    for _, info_hash, sender, piece in log.messages:
        collector.add(info_hash, sender, piece)
    return collector
