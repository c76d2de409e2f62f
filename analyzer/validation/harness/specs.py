"""Swarm specs for the discovery and encryption scenarios, shared by the
harness's own smoke tests and the analyzer's real-traffic tests.

Each builds one torrent "t1" (32 KiB pieces) and peers listening on 6881;
``size``, ``seed`` (the content's random seed) and ``timeout`` are the test's
choice, so two tests never share content by accident.
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
