"""Facts about the connection records gathered as they are produced.

Some questions need every record before any subject-relative figure can be
computed: which info hashes name one torrent (a hybrid's v1 and v2 hashes
meet on a connection), which address:port pairs are shown to speak
BitTorrent (context for encrypted connections), which connections are
continued by later ones, and, without ``--local``, who the subject is (which
addresses are ends of those connections, who opened them, which listening
ports were connected to from how many addresses).
``RecordIndex.add`` collects them while the records are made (one index per
partition, merged), so that the findings are built in one pass over the
records afterwards.  Memory: small per torrent and per BitTorrent endpoint,
not per connection (the subject evidence is a count per address).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

SUBJECT_EVIDENCE = ("bittorrent", "bittorrent_unattributed", "encrypted")
MAX_CONNECTED_FROM = 1000


@dataclass
class RecordIndex:
    info_hashes: set = field(default_factory=set)        # hashes of "bittorrent" records
    hash_pairs: set = field(default_factory=set)         # (initiator's hash, responder's different hash)
    endpoints: dict = field(default_factory=lambda: defaultdict(set))   # (ip, port) -> evidence (see below)
    continued: set = field(default_factory=set)          # sort keys of connections continued later
    # per category of SUBJECT_EVIDENCE: [connections, Counter(address -> connections it is an end of)]
    ends: dict = field(default_factory=lambda: {c: [0, Counter()] for c in SUBJECT_EVIDENCE})
    # connections of those categories whose SYN was captured: who opened them, and per listening
    # (responder) endpoint the distinct addresses that connected to it (at most MAX_CONNECTED_FROM)
    initiated: Counter = field(default_factory=Counter)
    listeners: dict = field(default_factory=lambda: defaultdict(set))

    def add(self, r) -> None:
        if r.category in self.ends:
            e = self.ends[r.category]
            e[0] += 1
            e[1].update({r.src_ip, r.dst_ip})
            if r.initiator_known:
                self.initiated[r.src_ip] += 1
                seen = self.listeners[(r.dst_ip, r.dst_port)]
                if len(seen) < MAX_CONNECTED_FROM:
                    seen.add(r.src_ip)
        if r.continues:
            self.continued.add(r.continues)
        if r.category != "bittorrent":
            return
        self.info_hashes.add(r.info_hash)
        if r.info_hash_reply:
            self.hash_pairs.add((r.info_hash, r.info_hash_reply))
        if r.initiator_known:
            self.endpoints[(r.dst_ip, r.dst_port)].add("responder of a plaintext BitTorrent connection")
        for d, ip in ((r.fwd, r.src_ip), (r.rev, r.dst_ip)):
            p = d.ext.get("p")
            if isinstance(p, int) and 0 < p < 65536:
                self.endpoints[(ip, p)].add("listen port in a BEP 10 handshake")

    def merge(self, other: "RecordIndex") -> None:
        self.info_hashes |= other.info_hashes
        self.hash_pairs |= other.hash_pairs
        for k, v in other.endpoints.items():
            self.endpoints[k] |= v
        self.continued |= other.continued
        for c, (n, counts) in other.ends.items():
            self.ends[c][0] += n
            self.ends[c][1].update(counts)
        self.initiated.update(other.initiated)
        for k, v in other.listeners.items():
            seen = self.listeners[k]
            for ip in sorted(v):
                if len(seen) >= MAX_CONNECTED_FROM:
                    break
                seen.add(ip)
