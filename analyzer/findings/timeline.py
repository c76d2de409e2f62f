"""Chart data: piece bytes per time bin, torrent, direction and transport, and per remote peer.

Timeline: one row per time bin, torrent, direction ("downloaded"/"uploaded",
from the subject's side) and transport: block bytes delivered in the bin
(each byte once) and acknowledged in the bin.  Bins without traffic are
absent.  Bytes are placed in the bin of the frame that delivered (or
acknowledged) them; summed over bins they equal the torrent's totals.
Peers: one row per torrent, remote address and transport.

Memory: the per-second series of each connection are turned into numpy
columns and aggregated (sorted, summed per bin) whenever ``COMPACT_AT`` rows
are pending, so memory follows the number of timeline rows (the output;
the bin width coarsens it), not the number of connections or frames.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analyzer.findings.transfers import Transfer
from analyzer.sessions.records import ConnectionRecord

DIRECTIONS = ("downloaded", "uploaded")
TRANSPORTS = ("tcp", "utp")
COMPACT_AT = 1 << 20


@dataclass
class Timeline:
    """Rows in order of bin, info hash, direction, transport: int64 columns ``bin_start_s``
    (seconds), ``torrent`` (index into ``info_hashes``), ``direction`` (index into
    DIRECTIONS), ``transport`` (index into TRANSPORTS), ``bytes``, ``acked_bytes``."""

    bin_seconds: int
    info_hashes: list[str]
    rows: np.ndarray


@dataclass(frozen=True)
class PeerRow:
    info_hash: str
    remote_ip: str
    transport: str
    downloaded_bytes: int
    downloaded_acked_bytes: int
    uploaded_bytes: int
    uploaded_acked_bytes: int
    connections: int
    first_seen_ns: int
    last_seen_ns: int


class _Bins:
    """(bin, torrent id, direction, transport) -> [bytes, acked], as numpy columns."""

    def __init__(self):
        self.parts: list[np.ndarray] = []     # rows of int64: bin, torrent, direction, transport, n, acked
        self.pending = 0

    def add(self, rows: np.ndarray) -> None:
        self.parts.append(rows)
        self.pending += len(rows)
        if self.pending >= COMPACT_AT:
            self.parts = [self.compact()]
            self.pending = len(self.parts[0])

    def compact(self) -> np.ndarray:
        if not self.parts:
            return np.empty((0, 6), np.int64)
        rows = np.concatenate(self.parts)
        order = np.lexsort((rows[:, 3], rows[:, 2], rows[:, 1], rows[:, 0]))
        rows = rows[order]
        keys = rows[:, :4]
        new = np.ones(len(rows), bool)
        new[1:] = np.any(keys[1:] != keys[:-1], axis=1)
        starts = np.flatnonzero(new)
        out = keys[starts].copy()
        sums = np.add.reduceat(rows[:, 4:], starts, axis=0) if len(rows) else np.empty((0, 2), np.int64)
        return np.concatenate([out, sums], axis=1)


class TimelineAccumulator:
    def __init__(self, groups: dict, bin_seconds: int = 1):
        if bin_seconds < 1:
            raise ValueError("bin must be at least one second")
        self.groups = groups
        self.bin_seconds = bin_seconds
        self.ids: dict[str, int] = {}
        self.bins = _Bins()
        self.peers: dict = {}

    def add(self, r: ConnectionRecord, t: Transfer, down, up) -> None:
        key = self.groups.get(r.info_hash, r.info_hash)
        tid = self.ids.setdefault(key, len(self.ids))
        tr = TRANSPORTS.index(r.transport)
        for di, d in enumerate((down, up)):
            if len(d.block_series):
                series = np.asarray(d.block_series, np.int64).reshape(-1, 3)
                rows = np.empty((len(series), 6), np.int64)
                rows[:, 0] = series[:, 0] - series[:, 0] % self.bin_seconds
                rows[:, 1] = tid
                rows[:, 2] = di
                rows[:, 3] = tr
                rows[:, 4:] = series[:, 1:]
                self.bins.add(rows)
        p = self.peers.setdefault((key, t.remote_ip, r.transport), [0, 0, 0, 0, 0, r.first_ts_ns, r.last_ts_ns])
        p[0] += down.block_bytes
        p[1] += down.block_acked_bytes
        p[2] += up.block_bytes
        p[3] += up.block_acked_bytes
        p[4] += 1
        p[5] = min(p[5], r.first_ts_ns)
        p[6] = max(p[6], r.last_ts_ns)

    def timeline(self) -> Timeline:
        rows = self.bins.compact()
        # order: bin, then info hash text, direction, transport (independent of first-seen order)
        names = sorted(self.ids)
        if len(rows):
            rank = np.empty(len(names), np.int64)
            rank[[self.ids[n] for n in names]] = np.arange(len(names))
            rows[:, 1] = rank[rows[:, 1]]             # torrent ids become positions in ``names``
            rows = rows[np.lexsort((rows[:, 3], rows[:, 2], rows[:, 1], rows[:, 0]))]
        return Timeline(self.bin_seconds, names, rows)

    def peer_rows(self) -> list[PeerRow]:
        return [PeerRow(h, ip, t, *v) for (h, ip, t), v in sorted(self.peers.items())]
