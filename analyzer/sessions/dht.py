"""DHT and Local Service Discovery facts, from the subject's point of view."""
from __future__ import annotations

from collections import defaultdict

from analyzer.timefmt import iso_ns


def build_dht(udp, subject) -> tuple[dict, list[dict]]:
    """(summary.json ``dht``, dht.csv rows)."""
    per_hash: dict = defaultdict(lambda: {"get_peers": 0, "announce_peer": 0, "first": None, "last": None,
                                          "peers_returned": 0, "queried_by_others": 0,
                                          "sampled": 0})
    rows = []
    for (info_hash, method, querier), f in sorted(udp.dht_facts.items()):
        mine = subject.has_address(querier)
        rows.append({"info_hash": info_hash, "method": method, "querier": querier, "by_subject": mine,
                     "count": f.count, "first_seen": iso_ns(f.first_ns), "last_seen": iso_ns(f.last_ns),
                     "peers_returned": f.peers_returned})
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
    hashes = [{"info_hash": k, "get_peers": v["get_peers"], "announce_peer": v["announce_peer"],
               "first_seen": iso_ns(v["first"]), "last_seen": iso_ns(v["last"]),
               "peers_returned": v["peers_returned"]}
              for k, v in sorted(per_hash.items()) if v["get_peers"] or v["announce_peer"]]
    speakers = udp.dht_speakers
    summary = {
        "messages": {kind: sum(n for (k, _), n in udp.dht_messages.items() if k == kind)
                     for kind in ("query", "response", "error")} | {"malformed": udp.dht_malformed},
        "methods": {m: n for (k, m), n in sorted(udp.dht_messages.items()) if k == "query"},
        "subject_messages": sum(n for ip, n in speakers.items() if subject.has_address(ip)),
        "remote_nodes": sum(1 for ip in speakers if not subject.has_address(ip)),
        "info_hashes": hashes,
        "info_hashes_queried_by_others": sum(1 for v in per_hash.values() if v["queried_by_others"]),
        "sampled_info_hashes": sum(1 for v in per_hash.values() if v["sampled"]),
        "dropped_keys": udp.dht_dropped_keys,
    }
    return summary, rows


def build_lsd(udp, subject) -> list[dict]:
    return [{"info_hash": h, "sender": ip, "port": port, "count": n, "by_subject": subject.has_address(ip),
             "first_seen": iso_ns(first), "last_seen": iso_ns(last)}
            for (ip, h), (n, first, last, port) in sorted(udp.lsd.items())]
