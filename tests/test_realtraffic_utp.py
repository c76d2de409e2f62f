"""Real uTP (BEP 29) traffic: libtorrent swarms over uTP, alone and mixed with TCP.

As for TCP, every peer taken as the subject must match its own libtorrent
payload counters to the byte.
"""
from __future__ import annotations

import pytest

from analyzer.validation.harness import run_swarm
from swarms import analyze_swarm, assert_accounting, assert_exact, three_peers, transport_figures, two_peers

pytestmark = pytest.mark.realtraffic


def test_utp_pair(tmp_path):
    res = run_swarm(two_peers(transports="utp"), tmp_path)
    result, summary = analyze_swarm(res, "127.0.0.3")
    assert_exact(result, res.ground_truth)
    assert_accounting(result, summary)
    assert {r.transport for r in result.records} == {"utp"}
    assert summary["torrents"][0]["downloaded_bytes"] == 3_000_000
    assert summary["accounting"]["categories"]["udp"]["frames"] == 0


@pytest.mark.xdist_group("validation")
def test_utp_three_peer_swarm(validation_run):
    # the capture of `bt-analyzer validate --scenario libtorrent-utp` (conftest.validation_run): the same
    # swarm, three_peers over uTP
    assert validation_run.exit_code == 0, validation_run.output
    res = validation_run.kept_result("libtorrent-utp")
    assert res.ground_truth["torrents"]["t1"]["total_size"] == three_peers()["torrents"][0]["size"]
    result, summary = analyze_swarm(res, "127.0.0.3")
    assert_exact(result, res.ground_truth)
    assert_accounting(result, summary)
    [t] = summary["torrents"]
    assert t["uploaded_bytes"] > 0 and t["peers"] == 2


def test_utp_with_two_percent_loss(tmp_path):
    res = run_swarm(two_peers(size=2_000_000, transports="utp"), tmp_path, drop_probability=0.02)
    result, summary = analyze_swarm(res, "127.0.0.3")
    assert_exact(result, res.ground_truth)
    assert_accounting(result, summary)
    streams = summary["accounting"]["utp_streams"]["bittorrent"]
    assert streams["duplicate_bytes"] > 0 and streams["conflict_packets"] == 0


def test_utp_over_ipv6(tmp_path):
    res = run_swarm(two_peers(size=2_000_000, transports="utp", ips=("fd00::2", "fd00::3")), tmp_path,
                    drop_probability=0.01)
    result, summary = analyze_swarm(res, "fd00::3")
    assert_exact(result, res.ground_truth)
    assert_accounting(result, summary)
    assert {(r.transport, r.ip_version) for r in result.records} == {("utp", 6)}


def test_mixed_swarm_subject_uses_both_transports(tmp_path):
    # S speaks TCP only, L uTP only, X both: X's connections to S are TCP, to L uTP
    res = run_swarm(three_peers(transports=("tcp", "both", "utp")), tmp_path)
    result, summary = analyze_swarm(res, "127.0.0.3")
    assert_exact(result, res.ground_truth)
    assert_accounting(result, summary)
    per = transport_figures(summary)
    assert set(per) == {"tcp", "utp"}
    [t] = summary["torrents"]
    for k in ("downloaded_bytes", "uploaded_bytes", "downloaded_acked_bytes", "uploaded_acked_bytes"):
        assert per["tcp"][k] + per["utp"][k] == t[k]
    # the CSVs split by transport too
    from summaries import connections_csv, torrents_csv
    rows = torrents_csv(result).splitlines()[1:]
    assert [r.split(",")[1] for r in rows] == ["all", "tcp", "utp"]
    transports = {line.split(",")[1] for line in connections_csv(result).splitlines()[1:]}
    assert transports == {"tcp", "utp"}


def test_several_torrents_in_one_session(tmp_path):
    spec = two_peers(size=1_000_000, transports="both")
    spec["torrents"] = [
        {"name": "a", "size": 1_000_000, "piece_length": 32768, "version": "v1", "seed": 1},
        {"name": "b", "size": 700_000, "piece_length": 16384, "version": "v2", "seed": 2},
        {"name": "c", "size": 400_000, "piece_length": 65536, "version": "hybrid", "seed": 3},
    ]
    for p in spec["peers"]:
        key = "seeds" if p["name"] == "seed" else "leeches"
        p[key] = ["a", "b", "c"]
    res = run_swarm(spec, tmp_path)
    result, summary = analyze_swarm(res, "127.0.0.3")
    assert_exact(result, res.ground_truth)
    assert_accounting(result, summary)
    assert len(summary["torrents"]) == 3


def test_utp_silence_splits_and_links_the_connection(tmp_path):
    """Real uTP with 11 minutes of silence inserted mid-transfer: the connection is finished
    and its continuation (same connection ids, no SYN) is attributed "same_connection"."""
    from craft import insert_silence, pcap_frames
    res = run_swarm(two_peers(transports="utp"), tmp_path)
    [cap] = res.capture_files
    silent = insert_silence(cap, tmp_path / "silent.pcap", pcap_frames(cap) // 2, 660)
    result, summary = analyze_swarm(res, "127.0.0.3", files=[silent])
    records = [r for r in result.records if r.category == "bittorrent"]
    assert [r.attribution for r in records] == ["handshake", "same_connection"]
    assert records[1].info_hash == records[0].info_hash and records[1].transport == "utp"
    assert summary["accounting"]["connections_continued_after_silence"] == 1
    [t] = summary["torrents"]
    truth = res.ground_truth["peers"]
    [me] = [p["torrents"] for p in truth.values() if p["ip"] == "127.0.0.3"]
    [counters] = me.values()
    # every block byte still on the wire once; acknowledgements of packets in flight at the
    # cut arrive in the continuation, which cannot credit packets it never saw
    assert t["downloaded_bytes"] == counters["total_payload_download"]
    assert 0 <= counters["total_payload_download"] - t["downloaded_acked_bytes"] <= 256 * 1024
