"""Real BitTorrent traffic: libtorrent swarms captured in private namespaces.

Every peer of every swarm is taken in turn as the subject, and its figures
must equal libtorrent's own counters with 0 bytes difference:

* ``uploaded_bytes`` == the peer's ``total_payload_upload`` (on the wire, once);
* ``downloaded_acked_bytes`` == its ``total_payload_download``;

and, since every swarm ends cleanly, everything sent was acknowledged.
"""
from __future__ import annotations

import random
import shutil

import pytest

from analyzer.analysis import analyze
from summaries import summarize
from analyzer.validation.harness import run_swarm
from swarms import analyze_swarm, assert_accounting, assert_exact, three_peers, two_peers

pytestmark = pytest.mark.realtraffic


def test_two_peer_transfer(tmp_path):
    res = run_swarm(two_peers(), tmp_path)
    result, summary = analyze_swarm(res, "127.0.0.3")
    assert_exact(result, res.ground_truth)
    assert_accounting(result, summary)
    [t] = summary["torrents"]
    assert t["downloaded_bytes"] == 3_000_000 and t["uploaded_bytes"] == 0
    assert t["peers"] == 1 and t["connections"] == 1
    assert summary["inputs"][0]["link_types"] == ["ETHERNET"]


def test_three_peer_swarm_subject_downloads_and_uploads(tmp_path):
    res = run_swarm(three_peers(), tmp_path)
    result, summary = analyze_swarm(res, "127.0.0.3")
    assert_exact(result, res.ground_truth)
    assert_accounting(result, summary)
    [t] = summary["torrents"]
    assert t["uploaded_bytes"] > 0 and t["downloaded_bytes"] >= 1_500_000
    assert t["peers"] == 2


def test_two_percent_loss_after_capture_point(tmp_path):
    res = run_swarm(two_peers(size=4_000_000), tmp_path, drop_probability=0.02)
    result, summary = analyze_swarm(res, "127.0.0.3")
    assert_exact(result, res.ground_truth)
    assert_accounting(result, summary)
    streams = summary["accounting"]["tcp_streams"]["bittorrent"]
    assert streams["duplicate_bytes"] > 0          # the capture holds retransmissions...
    assert streams["conflict_bytes"] == 0          # ...identical to the originals
    assert streams["gap_bytes"] == 0


def test_three_peer_swarm_with_loss(tmp_path):
    res = run_swarm(three_peers(), tmp_path, drop_probability=0.02)
    result, summary = analyze_swarm(res, "127.0.0.3")
    assert_exact(result, res.ground_truth)
    assert_accounting(result, summary)


def test_ipv6(tmp_path):
    res = run_swarm(two_peers(ips=("fd00::2", "fd00::3")), tmp_path, drop_probability=0.01)
    result, summary = analyze_swarm(res, "fd00::3")
    assert_exact(result, res.ground_truth)
    assert_accounting(result, summary)
    assert {r.ip_version for r in result.records} == {6}


def test_capture_on_any_interface_sll2(tmp_path):
    res = run_swarm(two_peers(), tmp_path, interface="any")
    result, summary = analyze_swarm(res, "127.0.0.3")
    assert summary["inputs"][0]["link_types"] == ["LINUX_SLL2"]
    assert_exact(result, res.ground_truth)
    assert_accounting(result, summary)


def test_pcapng_from_dumpcap(tmp_path):
    res = run_swarm(two_peers(), tmp_path, capture_tool="dumpcap")
    result, summary = analyze_swarm(res, "127.0.0.3")
    assert summary["inputs"][0]["format"] == "pcapng"
    assert_exact(result, res.ground_truth)
    assert_accounting(result, summary)


def test_rotated_set_from_tcpdump_C(tmp_path):
    res = run_swarm(two_peers(size=4_000_000), tmp_path, capture_args=["-C", "1"])
    assert len(res.capture_files) >= 4
    files = list(res.capture_files)
    random.Random(3).shuffle(files)          # order on the command line must not matter
    result, summary = analyze_swarm(res, "127.0.0.3", files=files)
    assert [i["path"] for i in summary["inputs"]] == [str(f) for f in res.capture_files]
    assert_exact(result, res.ground_truth)
    assert_accounting(result, summary)
    # the one connection spans every file
    [r] = [r for r in result.records if r.category == "bittorrent"]
    assert r.first_file == 0 and r.last_file == len(files) - 1


def test_rotated_set_as_directory(tmp_path):
    res = run_swarm(two_peers(size=2_500_000), tmp_path / "run", capture_args=["-C", "1"])
    folder = tmp_path / "captures"
    folder.mkdir()
    for f in res.capture_files:
        shutil.copy(f, folder / f.name)
    result, summary = analyze_swarm(res, "127.0.0.3", files=[folder])
    assert len(summary["inputs"]) == len(res.capture_files)
    assert_exact(result, res.ground_truth)


@pytest.mark.parametrize("version", ["v2", "hybrid"])
def test_v2_and_hybrid_torrents(tmp_path, version):
    res = run_swarm(two_peers(version=version, size=2_000_000), tmp_path)
    result, summary = analyze_swarm(res, "127.0.0.3")
    assert_exact(result, res.ground_truth)
    assert_accounting(result, summary)
    [t] = summary["torrents"]
    truth = res.ground_truth["torrents"]["t1"]
    if version == "v2":
        assert t["info_hash"] == truth["info_hash_v2"][:40]
    else:
        # v1 handshake with the v2 bit, answered with the truncated v2 hash (BEP 52)
        assert t["info_hash"] == truth["info_hash_v1"]
        assert t["info_hash_aliases"] == [truth["info_hash_v2"][:40]]


def test_inferred_subject_is_stated(tmp_path):
    res = run_swarm(three_peers(size=600_000), tmp_path)
    result = analyze(res.capture_files, warn=lambda m: None)
    summary = summarize(result)
    s = summary["subject"]
    assert s["inferred"] is True
    # X (127.0.0.3) and S (127.0.0.2) both talk to everyone in this swarm? No:
    # S-X, S-L, X-L: every address is in 2 of 3 connections -> ambiguous, stated.
    assert s["ambiguous"] is True and "pass --local" in s["basis"]
    assert summary["local"] == [s["candidates"][0]["address"]]


def test_a_subject_network_gives_figures_per_host_and_internal_traffic_once(tmp_path):
    """Two subject hosts A (127.0.0.2, seeds at a limited rate) and B (127.0.0.3) and one outside
    peer O (127.0.0.10) that joins late and trades pieces with both; --local 127.0.0.0/29.
    Per host, its exchanges with O plus its internal ones equal its own counters; what A and B
    sent each other is counted once, as internal, never as an upload of the subject."""
    spec = three_peers(size=700_000)
    spec["peers"][2]["ip"] = "127.0.0.10"
    # the scenario needs O to give the subject network pieces it lacks; under load O sometimes joins
    # when A and B have what it has (it uploaded nothing, seen twice): a new swarm, once
    for attempt in range(2):
        res = run_swarm(spec, tmp_path / f"swarm{attempt}")
        if res.ground_truth["peers"]["L"]["torrents"]["t1"]["total_payload_upload"] > 0:
            break
    truth = res.ground_truth["peers"]
    result, summary = analyze_swarm(res, "127.0.0.0/29")
    assert_accounting(result, summary)
    [t] = summary["torrents"]
    hosts = {h["host"]: h for h in t["hosts"]}
    assert set(hosts) == {"127.0.0.2", "127.0.0.3"}
    for name, ip in (("S", "127.0.0.2"), ("X", "127.0.0.3")):
        h, c = hosts[ip], truth[name]["torrents"]["t1"]
        assert h["uploaded_bytes"] + h["internal_uploaded_bytes"] == c["total_payload_upload"], name
        assert h["downloaded_acked_bytes"] + h["internal_downloaded_acked_bytes"] == c["total_payload_download"], name
        assert h["uploaded_acked_bytes"] == h["uploaded_bytes"] and h["peers"] == 1, name
    # A and B sent each other what their connection's counters say, counted once
    [ab] = [c for c in truth["X"]["torrents"]["t1"]["connections"] if c["remote_peer"] == "S"]
    assert ab["open_at_end"]
    assert t["internal_bytes"] == ab["payload_download"] + ab["payload_upload"] > 0
    assert t["internal_connections"] == 1
    assert hosts["127.0.0.2"]["internal_uploaded_bytes"] == hosts["127.0.0.3"]["internal_downloaded_bytes"] \
        == ab["payload_download"]
    # the subject's totals are its exchanges with O: O's own counters, the other way round
    o = truth["L"]["torrents"]["t1"]
    assert t["uploaded_bytes"] == o["total_payload_download"] > 0
    assert t["downloaded_bytes"] == o["total_payload_upload"] > 0
    assert t["uploaded_bytes"] == sum(h["uploaded_bytes"] for h in hosts.values())
    assert t["downloaded_bytes"] == sum(h["downloaded_bytes"] for h in hosts.values())
    assert t["peers"] == 1 and t["connections"] == 2 and t["other_connections"] == 0
    # the tables: torrents.csv totals, torrent_hosts.csv per host, connections.csv host column, peers and
    # timeline per host
    import csv
    import io
    from summaries import connections_csv, torrent_hosts_csv, torrent_transports_csv, torrents_csv
    [total] = csv.DictReader(io.StringIO(torrents_csv(result)))
    assert (total["host"], total["transport"]) == ("all", "all")
    assert int(total["internal_uploaded_bytes"]) == int(total["internal_downloaded_bytes"]) == t["internal_bytes"]
    assert [(r["host"], r["transport"]) for r in csv.DictReader(io.StringIO(torrent_transports_csv(result)))] == \
        [("all", "tcp")]
    rows = list(csv.DictReader(io.StringIO(torrent_hosts_csv(result))))
    assert [(r["host"], r["transport"]) for r in rows] == [("127.0.0.2", "all"), ("127.0.0.3", "all")]
    assert sum(int(r["uploaded_bytes"]) for r in rows) == int(total["uploaded_bytes"])
    conns = {(r["host"], r["subject_side"]) for r in csv.DictReader(io.StringIO(connections_csv(result)))}
    assert conns == {("127.0.0.2", "dst"), ("127.0.0.3", "dst"), ("", "both")}
    from analyzer.findings import build_findings
    from analyzer.output.parquet import peers_table, timeline_table
    f = build_findings(result)
    peers = peers_table(f.peers).to_pandas()
    external = peers[~peers["internal"]]
    assert external["uploaded_bytes"].sum() == t["uploaded_bytes"]
    assert sorted(peers[peers["internal"]][["host", "remote_ip"]].itertuples(index=False, name=None)) == \
        [("127.0.0.2", "127.0.0.3"), ("127.0.0.3", "127.0.0.2")]
    for (host, who), group in peers.groupby(["host", "internal"]):
        h = hosts[host]
        key = "internal_uploaded_bytes" if who else "uploaded_bytes"
        assert group["uploaded_bytes"].sum() == h[key]
    timeline = timeline_table(f.timeline).to_pandas()
    for (host, direction), group in timeline.groupby(["host", "direction"]):
        assert group["bytes"].sum() == hosts[host][f"{direction}_bytes"]
