"""Swarm specs shared by the real-traffic tests and ``bt-analyzer validate``.

``two_peers`` (a seed and a leech) and ``three_peers`` (S seeds at a limited
rate, X leeches from S and uploads to L) are the libtorrent transfers; the
rest are the discovery and encryption scenarios: each builds one torrent
"t1" (32 KiB pieces) and peers listening on 6881; ``size``, ``seed`` (the
content's random seed) and ``timeout`` are the test's choice, so two tests
never share content by accident.
"""
from __future__ import annotations


def peer(name: str, ip: str, **kw) -> dict:
    return {"name": name, "ip": ip, "port": 6881, **kw}


def one_torrent(peers: list[dict], *, size: int, seed: int, version: str = "v1", timeout: int = 20,
                trackers: list[dict] = (), **spec) -> dict:
    torrent = {"name": "t1", "size": size, "piece_length": 32768, "version": version, "seed": seed}
    if trackers:
        torrent["trackers"] = [t["name"] for t in trackers]
        spec["trackers"] = list(trackers)
    return {"timeout": timeout, **spec, "torrents": [torrent], "peers": peers}


def tracker_pair(ips=("127.0.0.2", "127.0.0.3"), tracker_ip="127.0.0.9", **kw) -> dict:
    """A seed and a leech that meet only through an HTTP and a UDP tracker."""
    trackers = [{"name": "h", "kind": "http", "ip": tracker_ip, "port": 6969},
                {"name": "u", "kind": "udp", "ip": tracker_ip, "port": 6970}]
    return one_torrent([peer("seed", ips[0], seeds=["t1"]), peer("leech", ips[1], leeches=["t1"])],
                       trackers=trackers, **kw)


def dht_trio(bootstrap: str, **kw) -> dict:
    """A seed and two leeches that meet only through the DHT."""
    return one_torrent([peer("seed", "127.0.0.2", seeds=["t1"], dht=True),
                        peer("l1", "127.0.0.3", leeches=["t1"], dht=True),
                        peer("l2", "127.0.0.4", leeches=["t1"], dht=True)], dht_bootstrap=bootstrap, **kw)


def lsd_pair(**kw) -> dict:
    """A seed and a leech that meet only through Local Service Discovery."""
    return one_torrent([peer("seed", "127.0.0.2", seeds=["t1"], lsd=True),
                        peer("leech", "127.0.0.3", leeches=["t1"], lsd=True)], **kw)


def encrypted_pair(mode: str, **kw) -> dict:
    """The leech connects to the seed; both with encryption ``mode`` (forced, mse_plaintext)."""
    return one_torrent([peer("seed", "127.0.0.2", seeds=["t1"], encryption=mode),
                        peer("leech", "127.0.0.3", leeches=["t1"], connect_to=["seed"], encryption=mode)], **kw)


def two_peers(size=3_000_000, version="v1", ips=("127.0.0.2", "127.0.0.3"), transports="tcp", **torrent):
    return {
        "timeout": 60,
        "torrents": [{"name": "t1", "size": size, "piece_length": 65536, "version": version, "seed": 11,
                      **torrent}],
        "peers": [
            {"name": "seed", "ip": ips[0], "port": 6881, "seeds": ["t1"], "transports": transports},
            {"name": "leech", "ip": ips[1], "port": 6881, "leeches": ["t1"], "connect_to": ["seed"],
             "transports": transports},
        ],
    }


def three_peers(size=1_500_000, transports=("tcp", "tcp", "tcp")):
    """S seeds at a limited rate; X and L leech; L joins late and gets pieces
    from X too, so X (the usual subject) both downloads and uploads."""
    ts, tx, tl = transports
    return {
        "timeout": 90,
        "torrents": [{"name": "t1", "size": size, "piece_length": 32768, "version": "v1", "seed": 5}],
        "peers": [
            {"name": "S", "ip": "127.0.0.2", "port": 6881, "seeds": ["t1"], "upload_rate_limit": 150_000,
             "transports": ts},
            {"name": "X", "ip": "127.0.0.3", "port": 6881, "leeches": ["t1"], "connect_to": ["S"],
             "transports": tx},
            {"name": "L", "ip": "127.0.0.4", "port": 6881, "leeches": ["t1"], "connect_to": ["S", "X"],
             "connect_delay": 2.0, "transports": tl},
        ],
    }
