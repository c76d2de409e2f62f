"""The subject's reports to trackers and their reconciliation with the wire.

A client's announce carries its own counters (uploaded, downloaded, left)
since the torrent was started in that client session, which usually began
before the capture.  So only differences between two announces are compared
with the wire, over the same period: the bytes of the subject's connections
for that torrent in the capture's one-second bins between the two announces,
given as a range (bins wholly inside the period, and bins touching it).

Counters start again with every client session, so announces are reconciled
per session: per torrent and subject host, the announces in time order are
cut where a new client session starts: an announce with ``event=started``
to a tracker the current session has already announced to (a client sends
``started`` once per tracker when it starts a torrent), or a ``peer_id`` or
``key`` different from the session's.  Captures of several sessions analysed
together are then reconciled session by session.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analyzer.findings.transfers import Transfer
from analyzer.protocols.compact import address_order
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
    client_ip: str = ""   # the subject host that announced
    session: int = 1      # client session of that host and torrent, 1-based in time order
    session_start: str = "first announce in the capture"   # why a new session starts here

    def reported(self, direction: str) -> int:
        return getattr(self.last, direction) - getattr(self.first, direction)

    def consistent(self, direction: str) -> bool:
        lo, hi, _ = self.wire[direction]
        return lo <= self.reported(direction) <= hi


def client_sessions(announces: list[TrackerAnnounce]) -> list[tuple[str, list[TrackerAnnounce]]]:
    """One host's announces of one torrent (in time order) cut into client sessions
    (see the module docstring): [(why the session starts, its announces)]."""
    out: list = []
    peer_id = key = None
    trackers: set = set()
    for a in announces:
        why = None
        if not out:
            why = "first announce in the capture"
        elif a.peer_id is not None and peer_id is not None and a.peer_id != peer_id:
            why = "new peer_id"
        elif a.key is not None and key is not None and _key(a.key) != _key(key):
            why = "new key"
        elif a.event == "started" and a.tracker in trackers:
            why = "event=started"
        if why is not None:
            out.append((why, []))
            peer_id = key = None
            trackers = set()
        out[-1][1].append(a)
        peer_id = a.peer_id if a.peer_id is not None else peer_id
        key = a.key if a.key is not None else key
        trackers.add(a.tracker)
    return out


class ReconciliationBins:
    """Per-second block bytes of the subject's connections, per torrent and subject host, for the
    torrents the host announced."""

    def __init__(self, mine: list[TrackerAnnounce], groups: dict):
        self.groups = groups
        self.by_host: dict = {}       # (torrent, client ip) -> its announces
        for a in mine:
            if a.kind == "announce" and a.uploaded is not None and a.downloaded is not None:
                self.by_host.setdefault((groups.get(a.info_hash, a.info_hash), a.client_ip), []).append(a)
        self.bins: dict = {}

    def add(self, r: ConnectionRecord, t: Transfer) -> None:
        """A connection between the subject host ``t.host`` and an outside host."""
        key = (self.groups.get(r.info_hash, r.info_hash), t.host)
        if key not in self.by_host:
            return
        b = self.bins.setdefault(key, ({}, {}))
        for series, acc in ((t.down.block_series, b[0]), (t.up.block_series, b[1])):
            for sec, n, _ in np.asarray(series).reshape(-1, 3).tolist():
                acc[sec] = acc.get(sec, 0) + n

    def findings(self) -> list[Reconciliation]:
        """One row per client session, by info hash, host address and time."""
        out = []
        for key in sorted(self.by_host, key=lambda k: (k[0], address_order(k[1]))):
            seq = sorted(self.by_host[key], key=lambda a: (a.ts_ns, a.file_idx, a.frame_no))
            down_bins, up_bins = self.bins.get(key, ({}, {}))
            for n, (why, session) in enumerate(client_sessions(seq), 1):
                first, last = session[0], session[-1]
                t0, t1 = first.ts_ns // 1_000_000_000, last.ts_ns // 1_000_000_000
                wire = {}
                for name, acc in (("downloaded", down_bins), ("uploaded", up_bins)):
                    wire[name] = (sum(v for s, v in acc.items() if t0 < s < t1),
                                  sum(v for s, v in acc.items() if t0 <= s <= t1), sum(acc.values()))
                out.append(Reconciliation(key[0], len(session), first, last, wire, key[1], n, why))
        return out


def _key(k: str):
    """An announce key to compare: HTTP carries it as text (hex as a rule), BEP 15 as a 32-bit
    number (written as 8 hex digits)."""
    try:
        return int(k, 16)
    except ValueError:
        return k
