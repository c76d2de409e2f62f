"""The disclosure excerpt of real traffic: two torrents (v1, hybrid) between libtorrent peers over uTP
and TCP at once, announced to an HTTP and a UDP tracker, in the DHT and by LSD.

Both torrents travel between the same two uTP sockets (libtorrent has one UDP socket per session),
so their connections are told apart only by their uTP connection ids.  Each torrent's excerpt,
analysed alone, says what the whole capture said about it; every connection keeps every frame.
"""
from __future__ import annotations

import json

import pandas as pd
import pytest

from excerpts import analyze, assert_frames_map, assert_same_evidence, cut_pcap, extract, frames_csv, peers
from analyzer.validation.harness import run_swarm

pytestmark = [pytest.mark.realtraffic, pytest.mark.xdist_group("extract")]

TRACKERS = [{"name": "h", "kind": "http", "ip": "127.0.0.9", "port": 6969},
            {"name": "u", "kind": "udp", "ip": "127.0.0.9", "port": 6970}]
SPEC = {
    "timeout": 60, "trackers": TRACKERS, "dht_bootstrap": "router", "lsd_interval": 5,
    "torrents": [
        {"name": "a", "size": 600_000, "piece_length": 32768, "version": "v1", "seed": 31, "trackers": ["h", "u"]},
        {"name": "b", "size": 400_000, "piece_length": 32768, "version": "hybrid", "seed": 32,
         "trackers": ["h", "u"]}],
    "peers": [
        {"name": "seed", "ip": "127.0.0.2", "port": 6881, "seeds": ["a", "b"], "transports": "both", "dht": True,
         "lsd": True},
        {"name": "leech", "ip": "127.0.0.3", "port": 6881, "leeches": ["a", "b"], "transports": "both",
         "dht": True, "lsd": True},
        {"name": "l2", "ip": "127.0.0.4", "port": 6881, "leeches": ["b"], "transports": "tcp",
         "connect_to": ["seed"]}],
}


@pytest.fixture(scope="module")
def swarm(tmp_path_factory):
    root = tmp_path_factory.mktemp("swarm")
    res = run_swarm(SPEC, root)
    torrents = [a for t in res.torrent_files.values() for a in ("--torrent", str(t))]
    folder = analyze(res.capture_files, root / "out", "--local", "127.0.0.3", *torrents)
    return res, folder, torrents


def hashes_of(folder, name_hash: str) -> set[str]:
    """A torrent's hashes: as on the wire, aliases, and from its metadata (v1, v2 truncated)."""
    for t in json.loads((folder / "summary.json").read_text())["torrents"]:
        names = {t["info_hash"], *t["info_hash_aliases"], t["info_hash_v1"], (t["info_hash_v2"] or "")[:40]}
        names -= {"", None}
        if name_hash in names:
            return names
    raise AssertionError(name_hash)


def evidence_kinds(folder, hashes) -> set[str]:
    """What the analysis saw of the torrent: connections, tracker announces (HTTP, UDP), DHT, LSD."""
    tracker = pd.read_csv(folder / "tracker.csv")
    tracker = set(tracker[tracker["info_hash"].isin(hashes)]["transport"])
    dht = pd.read_csv(folder / "dht.csv")
    lsd = [e for e in json.loads((folder / "summary.json").read_text())["lsd"] if e["info_hash"] in hashes]
    return {"connection", *({"tracker_connection"} if "http" in tracker else set()),
            *({"udp_tracker"} if "udp" in tracker else set()),
            *({"dht"} if dht["info_hash"].isin(hashes).any() else set()), *({"lsd"} if lsd else set())}


@pytest.mark.parametrize("name", ["a", "b"])
def test_each_torrent_alone(swarm, tmp_path, name):
    res, folder, torrents = swarm
    truth = res.ground_truth["torrents"][name]
    hashes = hashes_of(folder, truth["info_hash_v1"])
    assert len(hashes) == (2 if name == "b" else 1)            # the hybrid's v1 and v2 hashes, linked
    ex = extract(folder, truth["info_hash_v1"], tmp_path / f"{name}.pcapng")
    assert_frames_map(ex, folder, every=4)
    again = analyze([ex], tmp_path / "again", "--local", "127.0.0.3", *torrents)
    assert_same_evidence(folder, again, hashes)
    rows = frames_csv(ex)
    kinds = {e.split(":")[0] for e in rows["evidence"]}
    assert kinds == evidence_kinds(folder, hashes) >= {"connection", "tracker_connection", "udp_tracker"}
    # every frame of each connection taken, and only those: two torrents share the uTP sockets
    conns = pd.read_csv(folder / "connections.csv", dtype=str, keep_default_na=False).set_index("conn_id")
    for evidence, n in rows["evidence"].value_counts().items():
        if ":" in evidence:
            c = conns.loc[evidence.split(":")[1]]
            assert n == int(c["frames_src_to_dst"]) + int(c["frames_dst_to_src"]), evidence
    utp = conns[(conns["transport"] == "utp") & (conns["category"] == "bittorrent")]
    sockets = utp.apply(lambda c: tuple(sorted([(c["src_ip"], c["src_port"]), (c["dst_ip"], c["dst_port"])])), axis=1)
    # (libtorrent opens the hybrid's connections with its v1 or its truncated v2 hash, either one)
    torrent = utp["info_hash"].map(lambda h: min(hashes_of(folder, h)))
    assert torrent.groupby(sockets).nunique().max() == 2, utp
    [t] = json.loads((again / "summary.json").read_text())["torrents"]        # nothing of the other torrent
    assert t["info_hash"] in hashes


def test_one_peer_and_a_window(swarm, tmp_path):
    res, folder, torrents = swarm
    ih = res.ground_truth["torrents"]["b"]["info_hash_v1"]
    hashes = hashes_of(folder, ih)
    ex = extract(folder, ih, tmp_path / "b-l2.pcapng", "--peer", "127.0.0.4")
    again = analyze([ex], tmp_path / "again", "--local", "127.0.0.3", *torrents)
    assert set(peers(again, hashes)["remote_ip"]) == {"127.0.0.4"}
    assert_same_evidence(folder, again, hashes, remote="127.0.0.4", whole_torrent=False)
    # a window over the middle third of the torrent's frames
    times = frames_csv(extract(folder, ih, tmp_path / "b.pcapng"))["ts"]
    text = [times.iloc[len(times) // 3], times.iloc[2 * len(times) // 3]]
    ex = extract(folder, ih, tmp_path / "b-window.pcapng", "--from", text[0], "--to", text[1])
    again = analyze([ex], tmp_path / "again-window", "--local", "127.0.0.3", *torrents)
    [cap] = res.capture_files
    t_from, t_to = (int(pd.Timestamp(x).value) for x in text)
    cut = analyze([cut_pcap(cap, tmp_path / "cut.pcap", t_from, t_to)], tmp_path / "cut", "--local", "127.0.0.3",
                  *torrents)
    assert_same_evidence(cut, again, hashes)
    assert len(frames_csv(ex)) > 0
