"""Who the subject is, when ``--local`` was not given: candidates ranked by evidence.

Theory of operation
-------------------
Every address the capture shows acting as a BitTorrent host is a candidate,
with its evidence (``Evidence``):

* ``connections``: BitTorrent connections it is an end of (of ``of``), from
  the strongest kind present: connections with a handshake, else peer wire
  without handshake, else encrypted (MSE) ones; ``initiated``: those it opened
  (SYN captured);
* ``connected_from``: distinct addresses that connected to its busiest
  listening port (``listening_port``): a client is dialled by its swarm;
* ``tracker_announces``, ``lsd_announces``, ``dht_queries`` (get_peers and
  announce_peer it sent): it asked for peers of a torrent; ``info_hashes``:
  the torrents it named that way; ``torrent_announces``: those of them for a
  torrent of the capture's BitTorrent connections (a DHT node also sends
  get_peers for hashes near its own id to maintain its routing table: only
  announcements for the torrent exchanged tell the client apart);
* ``dht_messages``: DHT messages it sent or received (of ``dht_of``).

The subject is decided in this order, and the first rule that singles one
address out wins:

1. with BitTorrent connections: the one address that is an end of all of
   them; if several are (all connections then join the same two hosts), the
   only one of them that announced (tracker, LSD or DHT) a torrent of those
   connections (any torrent, for connections without handshake).  When no
   address is an end of all of them, the capture holds several BitTorrent
   hosts: the one that is an end of the most connections, if it is also the
   only one that announced those torrents, or the only one whose listening
   port was connected to from two or more addresses;
2. without connections: the only address that announced to trackers; else the
   only one that sent LSD announces; else the one address that is an end of
   every DHT message; else the only one that sent get_peers/announce_peer.

When no rule singles one out the inference is *ambiguous*: the best-ranked
candidate is used provisionally, the basis says so, and the command exits
with status 4 (``--local`` decides).  Every candidate is listed with its
evidence (at most ``MAX_LISTED``, best first; the number not listed is kept).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

from analyzer.protocols.compact import address_order
from analyzer.sessions.subject import Subject, parse_endpoint_spec

CONNECTION_KINDS = (("bittorrent", "BitTorrent connections"),
                    ("bittorrent_unattributed", "BitTorrent connections without handshake"),
                    ("encrypted", "encrypted (MSE) connections"))
MAX_LISTED = 20


@dataclass
class Evidence:
    connections: int = 0
    of: int = 0
    initiated: int = 0
    listening_port: int | None = None
    connected_from: int = 0
    tracker_announces: int = 0
    lsd_announces: int = 0
    dht_queries: int = 0
    dht_messages: int = 0
    dht_of: int = 0
    info_hashes: set = field(default_factory=set)
    torrent_announces: int = 0

    @property
    def announced(self) -> bool:
        return bool(self.tracker_announces or self.lsd_announces or self.dht_queries)

    def as_json(self) -> dict:
        d = asdict(self)
        d["info_hashes"] = len(self.info_hashes)
        return d


def gather(index, announces: list, udp) -> tuple[dict[str, Evidence], str]:
    """Evidence per address, and what its ``connections`` count (the kind of connections)."""
    ev: dict[str, Evidence] = {}

    def e(ip: str) -> Evidence:
        x = ev.get(ip)
        if x is None:
            x = ev[ip] = Evidence()
        return x

    what = ""
    for category, name in CONNECTION_KINDS:
        n, counts = index.ends[category]
        if n:
            what = name
            for ip, c in counts.items():
                e(ip).connections, e(ip).of = c, n
            break
    for ip, c in index.initiated.items():
        e(ip).initiated = c
    for (ip, port), sources in index.listeners.items():
        x = e(ip)
        if (len(sources), -port) > (x.connected_from, -(x.listening_port or 0)):
            x.connected_from, x.listening_port = len(sources), port
    torrents = index.info_hashes if what == CONNECTION_KINDS[0][1] else None   # None: any torrent
    named = [(a.client_ip, a.info_hash, 1, "tracker_announces") for a in announces if a.kind == "announce"]
    named += [(ip, h, v[0], "lsd_announces") for (ip, h), v in udp.lsd.items()]
    named += [(querier, h, f.count, "dht_queries") for (h, method, querier), f in udp.dht_facts.items()
              if method in ("get_peers", "announce_peer")]
    for ip, h, count, kind in named:
        x = e(ip)
        setattr(x, kind, getattr(x, kind) + count)
        x.info_hashes.add(h)
        if torrents is None or h in torrents:
            x.torrent_announces += count
    dht_total = sum(udp.dht_messages.values())
    for ip, c in udp.dht_ends.items():
        x = e(ip)
        x.dht_messages, x.dht_of = c, dht_total
    return ev, what


def _rank(item):
    ip, x = item
    return (-x.connections, -x.torrent_announces, -x.connected_from, -x.tracker_announces, -x.lsd_announces,
            -x.dht_messages, address_order(ip))


def _only(pool: list[str], test) -> str | None:
    found = [ip for ip in pool if test(ip)]
    return found[0] if len(found) == 1 else None


def decide(ev: dict[str, Evidence], what: str) -> tuple[str | None, str, bool]:
    """(address or None, basis, ambiguous) by the rules of the module docstring."""
    if what:
        n = max(x.of for x in ev.values())
        common = sorted((ip for ip, x in ev.items() if x.connections == n), key=address_order)
        if len(common) == 1:
            return common[0], f"{common[0]} is an end of all {n} {what}", False
        if common:
            ends = ", ".join(common)
            ip = _only(common, lambda a: ev[a].torrent_announces > 0)
            if ip is not None:
                return ip, (f"{ends} are each an end of all {n} {what}; only {ip} announced "
                            f"{'their torrent' if what == CONNECTION_KINDS[0][1] else 'a torrent'} "
                            f"({_announced(ev[ip])})"), False
            return None, (f"{ends} are each an end of all {n} {what}, and no announcement of their "
                          f"torrent tells them apart"), True
        most = max(x.connections for x in ev.values())
        top = [ip for ip, x in ev.items() if x.connections == most]
        several = f"no address is an end of all {n} {what} (several BitTorrent hosts)"
        if len(top) == 1:
            ip, x = top[0], ev[top[0]]
            if _only(list(ev), lambda a: ev[a].torrent_announces > 0) == ip:
                return ip, (f"{several}; {ip}, an end of {most} of them, is the only one that announced "
                            f"their torrents ({_announced(x)})"), False
            if _only(list(ev), lambda a: ev[a].connected_from >= 2) == ip:
                return ip, (f"{several}; {ip}, an end of {most} of them, is the only one whose listening "
                            f"port ({x.listening_port}) was connected to from several addresses "
                            f"({x.connected_from})"), False
        return None, f"{several}, and neither announcements nor listening ports single one out", True
    trackers = sorted((ip for ip, x in ev.items() if x.tracker_announces), key=address_order)
    if trackers:
        if len(trackers) == 1:
            return trackers[0], f"{trackers[0]} sent every tracker announce ({ev[trackers[0]].tracker_announces})", False
        return None, f"tracker announces by {len(trackers)} addresses ({', '.join(trackers[:5])}...)", True
    lsd = sorted((ip for ip, x in ev.items() if x.lsd_announces), key=address_order)
    if len(lsd) == 1:
        return lsd[0], f"{lsd[0]} sent every Local Service Discovery announce ({ev[lsd[0]].lsd_announces})", False
    dht = [ip for ip, x in ev.items() if x.dht_of and x.dht_messages == x.dht_of]
    if len(dht) == 1:
        x = ev[dht[0]]
        return dht[0], (f"{dht[0]} is an end of all {x.dht_of} DHT messages"
                        + (f" and sent {x.dht_queries} get_peers/announce_peer" if x.dht_queries else "")), False
    queriers = sorted((ip for ip, x in ev.items() if x.dht_queries), key=address_order)
    if len(queriers) == 1:
        return queriers[0], f"{queriers[0]} is the only node that sent get_peers/announce_peer", False
    if lsd or dht or queriers or any(x.dht_messages for x in ev.values()):
        return None, "several hosts speak DHT or LSD and none is an end of all of it", True
    return None, "no BitTorrent, encrypted, tracker, LSD or DHT traffic seen", False


def _announced(x: Evidence) -> str:
    parts = [f"{n} {name}" for n, name in ((x.tracker_announces, "tracker announces"),
                                           (x.lsd_announces, "LSD announces"),
                                           (x.dht_queries, "DHT get_peers/announce_peer")) if n]
    return ", ".join(parts)


def infer_subject(index, announces: list, udp) -> Subject:
    """The subject inferred from the analysis's evidence (``index``: RecordIndex, ``announces``:
    TrackerAnnounce, ``udp``: DatagramResult)."""
    ev, what = gather(index, announces, udp)
    ip, basis, ambiguous = decide(ev, what)
    ranked = sorted(ev.items(), key=_rank)
    if ambiguous and ranked:
        ip = ranked[0][0]
        basis = f"ambiguous: {basis}; {ip} (best ranked) taken provisionally; pass --local to decide"
    listed = ranked[:MAX_LISTED]
    if ip is not None and ip not in dict(listed):
        listed.append((ip, ev[ip]))
    candidates = [{"address": a, "evidence": x.as_json()} for a, x in listed]
    specs = [parse_endpoint_spec(ip)] if ip is not None else []
    return Subject(specs, True, basis if ip is not None or ambiguous else f"{basis}: no subject inferred",
                   ambiguous=ambiguous, candidates=candidates,
                   candidates_not_listed=max(0, len(ev) - len(listed)))
