"""The subject's reports to trackers and their reconciliation with the wire.

A client's announce carries its own counters (uploaded, downloaded, left)
since the torrent was started in that client session, which usually began
before the capture.  So only differences between two announces are compared
with the wire, over the same period: the bytes of the subject's connections
for that torrent in the capture's one-second bins between the two announces,
given as a range (bins wholly inside the period, and bins touching it).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analyzer.sessions.announces import TrackerAnnounce
from analyzer.sessions.records import ConnectionRecord


def subject_announces(announces: list[TrackerAnnounce], subject) -> list[TrackerAnnounce]:
    return [a for a in announces if subject.side(a.client_ip, a.client_port, a.tracker_ip, a.tracker_port) == "src"]


@dataclass
class Reconciliation:
    info_hash: str
    announces: int
    first: TrackerAnnounce
    last: TrackerAnnounce
    wire: dict            # direction -> (min, max, total) block bytes: bins inside, bins touching, all

    def reported(self, direction: str) -> int:
        return getattr(self.last, direction) - getattr(self.first, direction)

    def consistent(self, direction: str) -> bool:
        lo, hi, _ = self.wire[direction]
        return lo <= self.reported(direction) <= hi


class ReconciliationBins:
    """Per-second block bytes of the subject's connections, for the torrents it announced."""

    def __init__(self, mine: list[TrackerAnnounce], groups: dict):
        self.groups = groups
        self.by_hash: dict = {}
        for a in mine:
            if a.kind == "announce" and a.uploaded is not None and a.downloaded is not None:
                self.by_hash.setdefault(groups.get(a.info_hash, a.info_hash), []).append(a)
        self.bins: dict = {}

    def add(self, r: ConnectionRecord, down, up) -> None:
        key = self.groups.get(r.info_hash, r.info_hash)
        if key not in self.by_hash:
            return
        b = self.bins.setdefault(key, ({}, {}))
        for series, acc in ((down.block_series, b[0]), (up.block_series, b[1])):
            for sec, n, _ in np.asarray(series).reshape(-1, 3).tolist():
                acc[sec] = acc.get(sec, 0) + n

    def findings(self) -> list[Reconciliation]:
        out = []
        for info_hash in sorted(self.by_hash):
            seq = sorted(self.by_hash[info_hash], key=lambda a: a.ts_ns)
            first, last = seq[0], seq[-1]
            down_bins, up_bins = self.bins.get(info_hash, ({}, {}))
            t0, t1 = first.ts_ns // 1_000_000_000, last.ts_ns // 1_000_000_000
            wire = {}
            for name, acc in (("downloaded", down_bins), ("uploaded", up_bins)):
                wire[name] = (sum(n for s, n in acc.items() if t0 < s < t1),
                              sum(n for s, n in acc.items() if t0 <= s <= t1), sum(acc.values()))
            out.append(Reconciliation(info_hash, len(seq), first, last, wire))
        return out
