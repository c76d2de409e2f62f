"""The real-traffic validation scenarios with other clients, as swarm specs.

``exchange(client)``: the client (subject, 127.0.0.4 or fd00::4) downloads
torrent "down" from a libtorrent seeder ("seed", .2) and at the same time
seeds torrent "up" to a libtorrent leecher ("leech", .3); both libtorrent
peers dial the client.  Running both directions at once keeps a scenario
short for clients that only (un)choke and decide interest on a periodic
pulse (Transmission: every 10 s).

``lifecycle(client)``: one torrent; the client downloads it from the seeder
and, once complete, seeds it to a leecher that dials it only then (the whole
life of a download in one capture).

libtorrent's peers keep the harness's ``min_reconnect_time`` of 1 s: a peer
that a client turned away (qBittorrent right after adding a torrent, see its
driver) dials again at once, as real peers do; the price is that a seeder
redials a client that drops seed-to-seed connections (Transmission) about
once a second until the run ends, each such connection a handshake and no
payload.  Encryption is off on both sides (plaintext peer wire).
"""
from __future__ import annotations

V4 = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
V6 = ("fd00::2", "fd00::3", "fd00::4")


def _torrent(name: str, size: int, piece_length: int, seed: int) -> dict:
    return {"name": name, "size": size, "piece_length": piece_length, "version": "v1", "seed": seed}


def exchange(client: str, *, size: int = 2_000_000, piece_length: int = 32768, transports: str = "tcp",
             ipv6: bool = False, timeout: int = 60, seed: int = 31, dial: bool = False,
             bad_seeder: bool = False) -> dict:
    """The client downloads "down" from "seed" and uploads "up" to "leech".
    ``dial``: the client connects to the seeder itself (where it can).
    ``bad_seeder``: a second seeder of "down" ("bad", .5 / fd00::5) serves
    every piece corrupted, so the client receives pieces that fail their hash
    check (and, depending on its piece picker, blocks twice); the good seeder
    then uploads at most 500 kB/s, so that the client turns to the bad one."""
    ips = V6 if ipv6 else V4
    spec = {
        "timeout": timeout,
        "torrents": [_torrent("down", size, piece_length, seed), _torrent("up", size, piece_length, seed + 1)],
        "peers": [
            {"name": "seed", "ip": ips[0], "port": 6881, "seeds": ["down"], "transports": transports,
             "connect_to": [] if dial else [client]},
            {"name": "leech", "ip": ips[1], "port": 6881, "leeches": ["up"], "transports": transports,
             "connect_to": [client]},
        ],
        "external": [{"name": client, "client": client, "ip": ips[2], "port": 6881, "leeches": ["down"],
                      "seeds": ["up"], "transports": transports, "dial": ["seed"] if dial else []}],
    }
    if bad_seeder:
        # the good seeder is throttled so that the client asks the bad one too
        spec["peers"][0]["upload_rate_limit"] = 500_000
        spec["peers"].append({"name": "bad", "ip": "fd00::5" if ipv6 else "127.0.0.5", "port": 6881,
                              "seeds": ["down"], "transports": transports, "connect_to": [client],
                              "corrupt": {"down": [[0, size]]}})
    return spec


def lifecycle(client: str, *, size: int = 2_000_000, piece_length: int = 32768, transports: str = "tcp",
              ipv6: bool = False, timeout: int = 60, seed: int = 41) -> dict:
    """The client downloads "t1" from "seed", then seeds it to "leech"."""
    ips = V6 if ipv6 else V4
    return {
        "timeout": timeout,
        "torrents": [_torrent("t1", size, piece_length, seed)],
        "peers": [
            {"name": "seed", "ip": ips[0], "port": 6881, "seeds": ["t1"], "transports": transports,
             "connect_to": [client]},
            {"name": "leech", "ip": ips[1], "port": 6881, "leeches": ["t1"], "transports": transports,
             "connect_to": [client], "connect_after": "client_done"},
        ],
        "external": [{"name": client, "client": client, "ip": ips[2], "port": 6881, "leeches": ["t1"],
                      "transports": transports}],
    }
