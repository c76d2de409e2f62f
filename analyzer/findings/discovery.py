"""How the subject found peers and named torrents outside peer connections: DHT (BEP 5,
BEP 51) and Local Service Discovery (BEP 14), from its side."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass


@dataclass(frozen=True)
class DhtRow:
    """One info hash, DHT method and querying address (dht.csv)."""

    info_hash: str
    method: str
    querier: str
    by_subject: bool
    count: int
    first_ns: int
    last_ns: int
    peers_returned: int


@dataclass(frozen=True)
class DhtHash:
    """An info hash the subject looked up (get_peers) or announced (announce_peer)."""

    info_hash: str
    get_peers: int
    announce_peer: int
    first_ns: int | None
    last_ns: int | None
    peers_returned: int


@dataclass
class Dht:
    messages: dict            # kind -> count, and "malformed"
    methods: dict             # query method -> count
    subject_messages: int
    remote_nodes: int
    info_hashes: list[DhtHash]
    info_hashes_queried_by_others: int
    sampled_info_hashes: int
    dropped_keys: int
    rows: list[DhtRow]


def dht(udp, subject) -> Dht:
    per_hash: dict = defaultdict(lambda: {"get_peers": 0, "announce_peer": 0, "first": None, "last": None,
                                          "peers_returned": 0, "queried_by_others": 0, "sampled": 0})
    rows = []
    for (info_hash, method, querier), f in sorted(udp.dht_facts.items()):
        mine = subject.has_address(querier)
        rows.append(DhtRow(info_hash, method, querier, mine, f.count, f.first_ns, f.last_ns, f.peers_returned))
        h = per_hash[info_hash]
        if method == "sample_infohashes_result":
            if mine:
                h["sampled"] += f.count
            continue
        if mine:
            h[method] += f.count
            h["peers_returned"] += f.peers_returned
            h["first"] = f.first_ns if h["first"] is None else min(h["first"], f.first_ns)
            h["last"] = f.last_ns if h["last"] is None else max(h["last"], f.last_ns)
        else:
            h["queried_by_others"] += f.count
    speakers = udp.dht_speakers
    return Dht(
        messages={kind: sum(n for (k, _), n in udp.dht_messages.items() if k == kind)
                  for kind in ("query", "response", "error")} | {"malformed": udp.dht_malformed},
        methods={m: n for (k, m), n in sorted(udp.dht_messages.items()) if k == "query"},
        subject_messages=sum(n for ip, n in speakers.items() if subject.has_address(ip)),
        remote_nodes=sum(1 for ip in speakers if not subject.has_address(ip)),
        info_hashes=[DhtHash(k, v["get_peers"], v["announce_peer"], v["first"], v["last"], v["peers_returned"])
                     for k, v in sorted(per_hash.items()) if v["get_peers"] or v["announce_peer"]],
        info_hashes_queried_by_others=sum(1 for v in per_hash.values() if v["queried_by_others"]),
        sampled_info_hashes=sum(1 for v in per_hash.values() if v["sampled"]),
        dropped_keys=udp.dht_dropped_keys,
        rows=rows)


@dataclass(frozen=True)
class LsdAnnounce:
    info_hash: str
    sender: str
    port: int
    count: int
    by_subject: bool
    first_ns: int
    last_ns: int


def lsd(udp, subject) -> list[LsdAnnounce]:
    return [LsdAnnounce(h, ip, port, n, subject.has_address(ip), first, last)
            for (ip, h), (n, first, last, port) in sorted(udp.lsd.items())]
