"""How the subject found peers and named torrents outside peer connections: DHT (BEP 5,
BEP 51), Local Service Discovery (BEP 14) and peer exchange (BEP 11), from its side."""
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


@dataclass(frozen=True)
class PexRow:
    """One peer a peer told another about, per torrent (pex.csv)."""

    info_hash: str
    sender: str               # who told ("ip:port")
    receiver: str             # who was told
    peer: str                 # the peer named
    to_subject: bool          # the receiver is the subject
    added: int
    dropped: int
    flags: int
    first: tuple              # (file, frame, ts) of the first and last message naming the peer
    last: tuple


@dataclass(frozen=True)
class PexHash:
    """Peers the subject learned by PEX for one torrent."""

    info_hash: str
    peers_learned: int        # distinct peers added by its peers
    sources: int              # distinct peers that told it
    first_ns: int
    last_ns: int


@dataclass
class Pex:
    messages: int
    malformed: int
    dropped_keys: int
    info_hashes: list[PexHash]
    rows: list[PexRow]


def _ip(endpoint: str) -> str:
    return endpoint[1:endpoint.index("]")] if endpoint.startswith("[") else endpoint.rsplit(":", 1)[0]


def pex(facts, subject, groups: dict) -> Pex:
    """PEX rows (torrents named by their entry hash) and, per torrent, what the subject learned."""
    rows, learned = [], defaultdict(lambda: [set(), set(), None, None])
    for (h, sender, receiver, peer), f in facts.facts.items():
        key = groups.get(h, h)
        mine = subject.has_address(_ip(receiver))
        rows.append(PexRow(key, sender, receiver, peer, mine, f.added, f.dropped, f.flags, f.first, f.last))
        if mine and f.added:
            e = learned[key]
            e[0].add(peer)
            e[1].add(sender)
            e[2] = f.first[2] if e[2] is None else min(e[2], f.first[2])
            e[3] = f.last[2] if e[3] is None else max(e[3], f.last[2])
    rows.sort(key=lambda r: (r.info_hash, r.sender, r.receiver, r.peer))
    return Pex(facts.messages, facts.malformed, facts.dropped_keys,
               [PexHash(h, len(p), len(s), first, last) for h, (p, s, first, last) in sorted(learned.items())], rows)
