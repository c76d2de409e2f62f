"""Datagrams about one torrent (DHT, UDP trackers, LSD), decided with the project's decoders.

The compiled selector (``_select.pyx``) hands over only the datagrams that
could matter; here each is decoded as the analysis decodes it
(``sessions/datagrams.py``: DHT first, then LSD, then UDP trackers) and kept
when it names one of the torrent's info hashes:

* DHT (BEP 5): ``get_peers`` and ``announce_peer`` queries for the hash, and
  the answers to them (same transaction id, from the queried socket to the
  querier; answers do not repeat the hash); BEP 51 ``sample_infohashes``
  answers listing the hash, with the query they answer (held back until its
  answer shows whether it is evidence, then written at its original place).
* UDP trackers (BEP 15): announces and scrapes for the hash, and the
  tracker's answers (same transaction id).
* LSD (BEP 14): announces listing the hash.

A query waits for its answer at most ``PENDING_TTL_NS`` of capture time (as
in the analysis); at most ``MAX_PENDING`` queries and ``MAX_HELD`` held
``sample_infohashes`` queries are kept (the oldest go first, counted).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from analyzer.extract import _select
from analyzer.extract.folder import peer_has
from analyzer.protocols import udp_tracker as bep15
from analyzer.protocols.krpc import INFO_HASH_QUERIES, KrpcError, decode_krpc
from analyzer.protocols.lsd import decode_lsd

PENDING_TTL_NS = 120 * 1_000_000_000
MAX_PENDING = 100_000
MAX_HELD = 10_000

DHT, UDP_TRACKER, LSD = "dht", "udp_tracker", "lsd"


@dataclass(frozen=True)
class Datagram:
    """A UDP datagram as the judge sees it (packed addresses)."""

    ts_ns: int
    ipver: int
    src: bytes
    sport: int
    dst: bytes
    dport: int
    payload: bytes              # as captured
    length: int                 # on the wire (a snap length can cut the payload)


@dataclass
class Scope:
    """What the excerpt is narrowed to: a time window (inclusive, ns) and a remote address."""

    t_from: int
    t_to: int
    peer: object = None           # sessions.subject.EndpointSpec or None

    def has_time(self, ts: int) -> bool:
        return self.t_from <= ts <= self.t_to

    def has(self, d: Datagram) -> bool:
        if not self.has_time(d.ts_ns):
            return False
        return self.peer is None or peer_has(self.peer, d.src) or peer_has(self.peer, d.dst)


class DatagramJudge:
    """Decides, datagram by datagram in capture order, which are evidence about the torrent."""

    def __init__(self, hashes: list[str], scope: Scope):
        self.hexes = set(hashes)
        self.scope = scope
        self.pending: OrderedDict = OrderedDict()   # (kind, answer's src, sport, dst, dport, tid) -> (ts, action)
        self.held: OrderedDict = OrderedDict()      # sample_infohashes query awaiting its answer -> (ts, frame)
        self.dropped = 0                            # queries forgotten because of the caps
        self._watch = np.empty(0, np.uint64)
        self._watch_dirty = False

    @property
    def watch(self) -> np.ndarray:
        """Sorted hashes of the socket pairs answers are awaited from (for the compiled selector)."""
        if self._watch_dirty:
            self._watch = np.unique(np.array(
                [_select.directed_hash(ipver, src, sport, dst, dport)
                 for (_, ipver, src, sport, dst, dport, _) in self.pending]
                + [_select.directed_hash(ipver, src, sport, dst, dport)
                   for (ipver, src, sport, dst, dport, _) in self.held], np.uint64))
            self._watch_dirty = False
        return self._watch

    def judge(self, d: Datagram, frame=None) -> tuple[str | None, list]:
        """(evidence kind or None, held frames to include with it).  ``frame`` is kept when the
        datagram is a sample_infohashes query whose answer may name the hash."""
        self._expire(d.ts_ns)
        p = d.payload
        if p[:1] == b"d":
            kind = self._dht(d, p, frame)
            if kind is not False:
                return kind
        if d.dport == 6771 or p.startswith(b"BT-SEARCH"):
            a = decode_lsd(p)
            if a is not None:
                return (LSD if self.hexes & set(a.info_hashes) and self.scope.has(d) else None), []
        return self._udp_tracker(d, p), []

    # ------------------------------------------------------------------ DHT
    def _dht(self, d: Datagram, p: bytes, frame):
        try:
            m = decode_krpc(p)
        except KrpcError:
            return False if p[:3] not in (b"d1:", b"d2:") else (None, [])
        if m.kind == "query":
            if m.method in INFO_HASH_QUERIES and m.info_hash in self.hexes and self.scope.has(d):
                self._wait((DHT, d.ipver, d.dst, d.dport, d.src, d.sport, m.transaction), d.ts_ns, None)
                return DHT, []
            if m.method == "sample_infohashes" and frame is not None and self.scope.has(d):
                self._hold((d.ipver, d.dst, d.dport, d.src, d.sport, m.transaction), d.ts_ns, frame)
            return None, []
        answer = (d.ipver, d.src, d.sport, d.dst, d.dport, m.transaction)
        if self.pending.pop((DHT, *answer), None) is not None:
            self._watch_dirty = True
            return (DHT if self.scope.has(d) else None), []
        if m.kind == "response" and self.hexes & set(m.samples) and self.scope.has(d):
            held = self.held.pop(answer, None)
            self._watch_dirty = self._watch_dirty or held is not None
            return DHT, [held[1]] if held is not None else []
        return None, []

    # ------------------------------------------------------------------ UDP trackers
    def _udp_tracker(self, d: Datagram, p: bytes) -> str | None:
        if len(p) >= 8:
            key = (UDP_TRACKER, d.ipver, d.src, d.sport, d.dst, d.dport, int.from_bytes(p[4:8], "big"))
            waiting = self.pending.pop(key, None)
            if waiting is not None:
                self._watch_dirty = True
                r = bep15.decode_response(p, waiting[1], d.ipver == 6)
                if r is not None:
                    return UDP_TRACKER if self.scope.has(d) else None
        req = bep15.decode_request(p, d.length)
        if req is None or req.action not in (bep15.ANNOUNCE, bep15.SCRAPE):
            return None
        if not (self.hexes & set(req.info_hashes)) or not self.scope.has(d):
            return None
        self._wait((UDP_TRACKER, d.ipver, d.dst, d.dport, d.src, d.sport, req.transaction), d.ts_ns, req.action)
        return UDP_TRACKER

    # ------------------------------------------------------------------ waiting for answers
    def _wait(self, key, ts: int, action) -> None:
        self._put(self.pending, MAX_PENDING, key, (ts, action))

    def _hold(self, key, ts: int, frame) -> None:
        self._put(self.held, MAX_HELD, key, (ts, frame))

    def _put(self, table: OrderedDict, cap: int, key, value) -> None:
        """Remember ``value`` as the newest entry of ``table``; the oldest beyond ``cap`` go (counted)."""
        table[key] = value
        table.move_to_end(key)
        self._watch_dirty = True
        while len(table) > cap:
            table.popitem(last=False)
            self.dropped += 1

    def _expire(self, now: int) -> None:
        for table in (self.pending, self.held):
            while table:
                key, value = next(iter(table.items()))
                if now - value[0] <= PENDING_TTL_NS:
                    break
                del table[key]
                self._watch_dirty = True
