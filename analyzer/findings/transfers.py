"""A connection seen from the subject's side: which end it is, and the figures each way.

Definitions (the contract of summary.json, torrents.csv, connections.csv):

* ``uploaded_bytes``: piece block bytes the subject put on the wire, each
  byte once however often it was retransmitted; a block cut short counts
  what was sent.  ``uploaded_acked_bytes``: the part the remote side
  acknowledged (TCP cumulative ACK; uTP ack_nr and selective ACKs).
* ``downloaded_bytes`` / ``downloaded_acked_bytes``: the same for blocks
  sent to the subject (acknowledged by the subject).
* Only BitTorrent connections (``bittorrent``, ``bittorrent_unattributed``)
  have piece bytes: the figures of any other connection are 0, whatever its
  bytes looked like to the peer wire parser (chance framing in HTTP).
* A connection between two subject hosts (a subject that is a network, or
  several ``--local``) is *internal*: it is in none of those figures, which
  are exchanges with hosts outside the subject; ``internal`` gives each of
  its two hosts' view (what it received from, and sent to, the other).
* Block bytes lost in capture gaps are never counted in those figures; they
  are reported as ``*_gap_bytes``.  Bytes counted as the tail of a block
  whose header was not captured (piece unknown) are included and also shown
  as ``*_unknown_piece_bytes``.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from analyzer.findings.truncation import Bounds, connection_bounds
from analyzer.sessions.records import ConnectionRecord, client_of
from analyzer.sessions.subject import Subject


@dataclass(slots=True)
class TransferSums:
    """The subject-relative byte figures of one connection, or summed over several."""

    downloaded_bytes: int = 0
    downloaded_acked_bytes: int = 0
    uploaded_bytes: int = 0
    uploaded_acked_bytes: int = 0
    downloaded_unknown_piece_bytes: int = 0
    uploaded_unknown_piece_bytes: int = 0
    downloaded_gap_bytes: int = 0
    uploaded_gap_bytes: int = 0

    def add(self, other: "TransferSums") -> None:
        for f in SUM_FIELDS:
            setattr(self, f, getattr(self, f) + getattr(other, f))


SUM_FIELDS = tuple(f.name for f in fields(TransferSums))


@dataclass(slots=True)
class Transfer:
    """One connection from the subject's side (``side``: which end is the subject: src,
    dst, both or none; the rest is set only for src or dst)."""

    side: str
    remote_ip: str = ""
    remote_port: int = 0
    sums: TransferSums | None = None
    host: str = ""                      # the subject host's address (src or dst side)
    internal: tuple = ()                # side "both": ((src host, its view), (dst host, its view))
    bounds: object = None               # truncation.Bounds (src or dst side)
    down: object = None                 # the record's Direction towards the subject (src or dst side)
    up: object = None                   # ... and from it

    @property
    def involves_subject(self) -> bool:
        return self.sums is not None

    # asked for BitTorrent connections only: decoded on demand, not for every connection
    @property
    def remote_peer_id(self) -> bytes | None:
        return self.down.peer_id if self.down is not None else None

    @property
    def remote_client(self) -> str:
        return client_of(self.down) if self.down is not None else ""

    @property
    def subject_client(self) -> str:
        return client_of(self.up) if self.up is not None else ""


def _sums(r: ConnectionRecord, down, up) -> TransferSums:
    if not r.category.startswith("bittorrent"):
        return TransferSums()
    return TransferSums(down.block_bytes, down.block_acked_bytes, up.block_bytes, up.block_acked_bytes,
                        down.block_tail_bytes, up.block_tail_bytes, down.block_gap_bytes, up.block_gap_bytes)


def transfer(r: ConnectionRecord, subject: Subject) -> Transfer:
    side, down, up = subject.directions(r)
    if down is None:
        if side == "both":
            return Transfer(side, internal=((r.src_ip, _sums(r, r.rev, r.fwd)), (r.dst_ip, _sums(r, r.fwd, r.rev))))
        return Transfer(side)
    sums = _sums(r, down, up)
    return Transfer(
        side,
        remote_ip=r.dst_ip if side == "src" else r.src_ip,
        remote_port=r.dst_port if side == "src" else r.src_port,
        sums=sums,
        host=r.src_ip if side == "src" else r.dst_ip,
        bounds=connection_bounds(r, down, up, sums) if r.category.startswith("bittorrent") else Bounds(),
        down=down,
        up=up,
    )
