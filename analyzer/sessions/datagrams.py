"""UDP datagrams the engine handed over: DHT (BEP 5/51), UDP trackers (BEP 15),
Local Service Discovery (BEP 14).  Everything else is counted as UDP.

The subject may only be known at the end (inferred), so this module keeps
facts keyed by addresses, aggregated where they can be numerous (DHT
messages: per info hash, method and querier; counts per message type) and
whole where they are few (tracker announces, LSD announces).  Memory is
bounded by those keys, with caps; what a cap drops is counted.
"""
from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from analyzer.protocols import udp_tracker as bep15
from analyzer.protocols.compact import address_text, endpoint_text
from analyzer.protocols.krpc import INFO_HASH_QUERIES, KrpcError, decode_krpc
from analyzer.protocols.lsd import decode_lsd
from analyzer.sessions.announces import TrackerAnnounce

MAX_DHT_KEYS = 1_000_000
MAX_PENDING = 100_000
PENDING_TTL_NS = 120 * 1_000_000_000


@dataclass
class DhtFact:
    count: int = 0
    first_ns: int = 0
    last_ns: int = 0
    peers_returned: int = 0


@dataclass
class DatagramResult:
    categories: Counter = field(default_factory=Counter)   # (category, "frames"|"bytes") -> n
    tracker: list = field(default_factory=list)            # TrackerAnnounce (UDP)
    dht_messages: Counter = field(default_factory=Counter)  # (kind, method) -> n
    dht_malformed: int = 0
    dht_facts: dict = field(default_factory=dict)          # (info_hash, method, querier_ip) -> DhtFact
    dht_dropped_keys: int = 0
    pending_dropped: int = 0                               # DHT / UDP tracker requests not kept (cap)
    lsd_malformed: int = 0                                 # BT-SEARCH datagrams that do not decode (no info hash)
    udp_tracker_malformed: int = 0                         # answers to a UDP tracker request that do not decode
    dht_speakers: Counter = field(default_factory=Counter)  # address -> DHT messages sent
    dht_ends: Counter = field(default_factory=Counter)      # address -> DHT messages it sent or received
    lsd: dict = field(default_factory=dict)                # (sender_ip, info_hash) -> [count, first, last, port]

    def merge(self, other: "DatagramResult") -> None:
        """Add the facts of another shard (whose datagrams were between other address pairs)."""
        self.categories.update(other.categories)
        self.tracker.extend(other.tracker)
        self.dht_messages.update(other.dht_messages)
        self.dht_malformed += other.dht_malformed
        self.dht_dropped_keys += other.dht_dropped_keys
        self.pending_dropped += other.pending_dropped
        self.lsd_malformed += other.lsd_malformed
        self.udp_tracker_malformed += other.udp_tracker_malformed
        self.dht_speakers.update(other.dht_speakers)
        self.dht_ends.update(other.dht_ends)
        for k, f in other.dht_facts.items():
            g = self.dht_facts.get(k)
            if g is None:
                self.dht_facts[k] = f
            else:
                g.count += f.count
                g.first_ns, g.last_ns = min(g.first_ns, f.first_ns), max(g.last_ns, f.last_ns)
                g.peers_returned += f.peers_returned
        for k, e in other.lsd.items():
            g = self.lsd.get(k)
            if g is None:
                self.lsd[k] = list(e)
            else:
                port = g[3] if g[1] <= e[1] else e[3]
                self.lsd[k] = [g[0] + e[0], min(g[1], e[1]), max(g[2], e[2]), port]


_ip = address_text


class DatagramAnalyzer:
    def __init__(self):
        self.out = DatagramResult()
        # oldest first (a repeated key moves to the end), so expiry pops from the front
        self._dht_pending = OrderedDict()   # (querier, q port, responder, r port, t) -> (info_hash, ts)
        self._udp_pending = OrderedDict()   # (client, c port, tracker, t port, tx) -> (action, [announces], ts)

    def add_all(self, datagrams: list) -> None:
        for d in datagrams:
            self.add(*d)

    def add(self, file_idx, frame_no, ts, wire, weight, ipver, src, sport, dst, dport, payload, paylen) -> None:
        src_ip, dst_ip = _ip(src), _ip(dst)
        if payload[:1] == b"d" and self._dht(ts, src_ip, sport, dst_ip, dport, payload):
            self._count("dht", weight, wire)
        elif (dport == 6771 or payload.startswith(b"BT-SEARCH")) and self._lsd(ts, src_ip, payload):
            self._count("lsd", weight, wire)
        elif payload.startswith(b"BT-SEARCH"):
            self.out.lsd_malformed += 1           # an LSD announce that names no info hash: still LSD
            self._count("lsd", weight, wire)
        elif self._udp_tracker(ts, file_idx, frame_no, ipver, src_ip, sport, dst_ip, dport, payload, paylen):
            self._count("tracker", weight, wire)
        else:
            self._count("udp", weight, wire)

    def _count(self, category: str, frames: int, wire: int) -> None:
        self.out.categories[(category, "frames")] += frames
        self.out.categories[(category, "bytes")] += wire

    # ------------------------------------------------------------------ DHT
    def _dht(self, ts, src, sport, dst, dport, payload) -> bool:
        try:
            m = decode_krpc(payload)
        except KrpcError:
            if payload[:3] in (b"d1:", b"d2:"):
                self.out.dht_malformed += 1       # looks like KRPC but is broken: still DHT traffic
                return True
            return False
        out = self.out
        out.dht_messages[(m.kind, m.method or "")] += 1
        out.dht_speakers[src] += 1
        out.dht_ends.update({src, dst})
        if m.kind == "query":
            key = m.info_hash if m.method in INFO_HASH_QUERIES else None
            if key is not None:
                self._fact((key, m.method, src), ts)
            if m.method == "sample_infohashes" or m.method in INFO_HASH_QUERIES:
                self._remember(self._dht_pending, (src, sport, dst, dport, m.transaction), (m.method, key, ts), ts)
        elif m.kind == "response":
            pending = self._dht_pending.pop((dst, dport, src, sport, m.transaction), None)
            if pending is not None:
                method, info_hash, _ = pending
                if method == "get_peers" and m.values:
                    f = self.out.dht_facts.get((info_hash, "get_peers", dst))
                    if f is not None:
                        f.peers_returned += m.values
                for h in m.samples:
                    self._fact((h, "sample_infohashes_result", dst), ts)
        return True

    def _fact(self, key, ts) -> None:
        f = self.out.dht_facts.get(key)
        if f is None:
            if len(self.out.dht_facts) >= MAX_DHT_KEYS:
                self.out.dht_dropped_keys += 1
                return
            f = self.out.dht_facts[key] = DhtFact(first_ns=ts, last_ns=ts)
        f.count += 1
        f.first_ns = min(f.first_ns, ts)
        f.last_ns = max(f.last_ns, ts)

    def _remember(self, pending: OrderedDict, key, value, ts: int) -> None:
        """A request whose answer is awaited; when MAX_PENDING are awaited, those older
        than PENDING_TTL_NS go first (from the front: O(1) each), else it is not kept
        (counted: its answer will not be matched)."""
        pending.pop(key, None)
        if len(pending) >= MAX_PENDING:
            while pending and ts - next(iter(pending.values()))[-1] > PENDING_TTL_NS:
                pending.popitem(last=False)
        if len(pending) < MAX_PENDING:
            pending[key] = value
        else:
            self.out.pending_dropped += 1

    # ------------------------------------------------------------------ LSD
    def _lsd(self, ts, src, payload) -> bool:
        a = decode_lsd(payload)
        if a is None:
            return False
        for h in a.info_hashes:
            entry = self.out.lsd.get((src, h))
            if entry is None:
                self.out.lsd[(src, h)] = [1, ts, ts, a.port]
            else:
                entry[0] += 1
                entry[1] = min(entry[1], ts)
                entry[2] = max(entry[2], ts)
        return True

    # ------------------------------------------------------------------ UDP trackers
    def _udp_tracker(self, ts, file_idx, frame_no, ipver, src, sport, dst, dport, payload, paylen=None) -> bool:
        pending = self._udp_pending.pop((dst, dport, src, sport, int.from_bytes(payload[4:8], "big")), None) \
            if len(payload) >= 8 else None
        if pending is not None:
            action, announces, _ = pending
            r = bep15.decode_response(payload, action, ipver == 6)
            if r is None:
                self.out.udp_tracker_malformed += 1      # the answer to a request we saw, undecodable
            else:
                for i, announce in enumerate(announces):
                    if r.action == bep15.ERROR:
                        announce.failure = r.message
                    elif r.action == bep15.ANNOUNCE:
                        announce.interval = r.interval
                        announce.peers_returned = len(r.peers)
                        announce.seeders = r.seeders
                        announce.leechers = r.leechers
                    elif r.action == bep15.SCRAPE and i < len(r.scrape):
                        # one (seeders, completed, leechers) per hash, in the order of the request
                        announce.seeders, _, announce.leechers = r.scrape[i]
                return True
        req = bep15.decode_request(payload, paylen)
        if req is None:
            return False
        announces = []
        if req.action in (bep15.ANNOUNCE, bep15.SCRAPE):
            for h in req.info_hashes:
                announce = TrackerAnnounce(
                    ts_ns=ts, transport="udp", tracker=f"udp://{endpoint_text(dst, dport)}", client_ip=src,
                    client_port=sport, tracker_ip=dst, tracker_port=dport, info_hash=h,
                    kind="announce" if req.action == bep15.ANNOUNCE else "scrape", event=req.event,
                    uploaded=req.uploaded, downloaded=req.downloaded, left=req.left, peer_id=req.peer_id,
                    port=req.port, numwant=req.num_want, key=None if req.key is None else f"{req.key:08x}",
                    file_idx=file_idx, frame_no=frame_no)
                self.out.tracker.append(announce)
                announces.append(announce)
        self._remember(self._udp_pending, (src, sport, dst, dport, req.transaction), (req.action, announces, ts), ts)
        return True

    def result(self) -> DatagramResult:
        return self.out
