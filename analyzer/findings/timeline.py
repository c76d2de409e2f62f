"""Chart data: piece bytes per time bin, torrent, subject host, direction and transport, and
per remote peer.

Timeline: one row per time bin, torrent, subject host, direction
("downloaded"/"uploaded", from the subject's side) and transport: block
bytes delivered in the bin (each byte once) and acknowledged in the bin.
Bins without traffic are absent.  Bytes are placed in the bin of the frame
that delivered (or acknowledged) them; summed over bins and hosts they equal
the torrent's totals (exchanges with hosts outside the subject: traffic
between two subject hosts is not in the timeline).
Peers: one row per torrent, subject host, remote address and transport; a
remote address that is itself a subject host is ``internal`` (its row gives
what the host received from and sent to it; those rows are in no total).

Memory: the per-second series of each connection are turned into numpy
columns and aggregated (sorted, summed per bin) whenever ``COMPACT_AT`` rows
are pending, so memory follows the number of timeline rows (the output;
the bin width coarsens it), not the number of connections or frames.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from analyzer.findings.transfers import Transfer
from analyzer.protocols.compact import address_order
from analyzer.sessions.records import ConnectionRecord

DIRECTIONS = ("downloaded", "uploaded")
TRANSPORTS = ("tcp", "utp")
COMPACT_AT = 1 << 20


@dataclass
class Timeline:
    """Rows in order of bin, info hash, host, direction, transport: int64 columns
    ``bin_start_s`` (seconds), ``torrent`` (index into ``info_hashes``), ``host`` (index into
    ``hosts``), ``direction`` (index into DIRECTIONS), ``transport`` (index into TRANSPORTS),
    ``bytes``, ``acked_bytes``."""

    bin_seconds: int
    info_hashes: list[str]
    rows: np.ndarray
    hosts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PeerRow:
    info_hash: str
    host: str                 # the subject host
    remote_ip: str
    internal: bool            # the remote address is a subject host too
    transport: str
    downloaded_bytes: int
    downloaded_acked_bytes: int
    uploaded_bytes: int
    uploaded_acked_bytes: int
    connections: int
    first_seen_ns: int
    last_seen_ns: int


KEYS = 5     # bin, torrent, host, direction, transport


class _Bins:
    """(bin, torrent id, host id, direction, transport) -> [bytes, acked], as numpy columns."""

    def __init__(self):
        self.parts: list[np.ndarray] = []     # rows of int64: bin, torrent, host, direction, transport, n, acked
        self.pending = 0

    def add(self, rows: np.ndarray) -> None:
        self.parts.append(rows)
        self.pending += len(rows)
        if self.pending >= COMPACT_AT:
            self.parts = [self.compact()]
            self.pending = len(self.parts[0])

    def compact(self) -> np.ndarray:
        if not self.parts:
            return np.empty((0, KEYS + 2), np.int64)
        rows = np.concatenate(self.parts)
        order = np.lexsort(tuple(rows[:, k] for k in reversed(range(KEYS))))
        rows = rows[order]
        keys = rows[:, :KEYS]
        new = np.ones(len(rows), bool)
        new[1:] = np.any(keys[1:] != keys[:-1], axis=1)
        starts = np.flatnonzero(new)
        out = keys[starts].copy()
        sums = np.add.reduceat(rows[:, KEYS:], starts, axis=0) if len(rows) else np.empty((0, 2), np.int64)
        return np.concatenate([out, sums], axis=1)


class TimelineAccumulator:
    def __init__(self, groups: dict, bin_seconds: int = 1):
        if bin_seconds < 1:
            raise ValueError("bin must be at least one second")
        self.groups = groups
        self.bin_seconds = bin_seconds
        self.ids: dict[str, int] = {}
        self.host_ids: dict[str, int] = {}
        self.bins = _Bins()
        self.peers: dict = {}

    def add(self, r: ConnectionRecord, t: Transfer) -> None:
        """A connection between the subject host ``t.host`` and an outside host."""
        key = self.groups.get(r.info_hash, r.info_hash)
        tid = self.ids.setdefault(key, len(self.ids))
        hid = self.host_ids.setdefault(t.host, len(self.host_ids))
        tr = TRANSPORTS.index(r.transport)
        for di, d in enumerate((t.down, t.up)):
            if len(d.block_series):
                series = np.asarray(d.block_series, np.int64).reshape(-1, 3)
                rows = np.empty((len(series), KEYS + 2), np.int64)
                rows[:, 0] = series[:, 0] - series[:, 0] % self.bin_seconds
                rows[:, 1] = tid
                rows[:, 2] = hid
                rows[:, 3] = di
                rows[:, 4] = tr
                rows[:, KEYS:] = series[:, 1:]
                self.bins.add(rows)
        self._peer(key, t.host, t.remote_ip, False, r, t.sums)

    def add_internal(self, r: ConnectionRecord, t: Transfer) -> None:
        """A connection between two subject hosts: a peer row for each, nothing in the timeline."""
        key = self.groups.get(r.info_hash, r.info_hash)
        (a, va), (b, vb) = t.internal
        self._peer(key, a, b, True, r, va)
        self._peer(key, b, a, True, r, vb)

    def _peer(self, key, host, remote, internal, r, s) -> None:
        p = self.peers.setdefault((key, host, remote, internal, r.transport), [0, 0, 0, 0, 0, r.first_ts_ns, r.last_ts_ns])
        p[0] += s.downloaded_bytes
        p[1] += s.downloaded_acked_bytes
        p[2] += s.uploaded_bytes
        p[3] += s.uploaded_acked_bytes
        p[4] += 1
        p[5] = min(p[5], r.first_ts_ns)
        p[6] = max(p[6], r.last_ts_ns)

    def timeline(self) -> Timeline:
        rows = self.bins.compact()
        # order: bin, then info hash text, host address, direction, transport (independent of first-seen order)
        names = sorted(self.ids)
        hosts = sorted(self.host_ids, key=address_order)
        if len(rows):
            for col, order, ids in ((1, names, self.ids), (2, hosts, self.host_ids)):
                rank = np.empty(len(order), np.int64)
                rank[[ids[n] for n in order]] = np.arange(len(order))
                rows[:, col] = rank[rows[:, col]]     # ids become positions in ``names`` / ``hosts``
            rows = rows[np.lexsort(tuple(rows[:, k] for k in reversed(range(KEYS))))]
        return Timeline(self.bin_seconds, names, rows, hosts)

    def peer_rows(self) -> list[PeerRow]:
        return [PeerRow(h, host, ip, internal, t, *v) for (h, host, ip, internal, t), v in
                sorted(self.peers.items(), key=lambda kv: (kv[0][0], address_order(kv[0][1]), kv[0][3],
                                                           address_order(kv[0][2]), kv[0][4]))]
