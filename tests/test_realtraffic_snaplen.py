"""Captures cut by a snap length (96 and 128 bytes, as enterprise and ISP sensors keep): every
peer's own counters lie inside the bounds the analyzer gives, and the info hash comes from
the handshake when the snap length kept it (128), else from the subject's announces (96:
the UDP tracker announce keeps its info hash), else it is unknown."""
from __future__ import annotations

import pytest

from analyzer.analysis import analyze
from analyzer.sessions.subject import given_subject
from analyzer.validation.harness import run_swarm
from analyzer.validation.harness.specs import tracker_pair
from summaries import summarize
from swarms import two_peers

pytestmark = pytest.mark.realtraffic
SIZE = 1_000_000


def inside(bounds, counters):
    assert bounds["downloaded_lower_bytes"] <= counters["total_payload_download"] <= bounds["downloaded_upper_bytes"]
    assert bounds["uploaded_lower_bytes"] <= counters["total_payload_upload"] <= bounds["uploaded_upper_bytes"]


@pytest.mark.parametrize("snaplen", [96, 128])
def test_counters_lie_inside_the_bounds_of_a_cut_capture(tmp_path, snaplen):
    res = run_swarm(tracker_pair(size=SIZE, seed=31), tmp_path, capture_args=["-s", str(snaplen)])
    truth = res.ground_truth
    info_hash = truth["torrents"]["t1"]["info_hash_v1"]
    result = analyze(res.capture_files, local=["127.0.0.3"], warn=lambda m: None)
    for name, peer in truth["peers"].items():
        summary = summarize(result, given_subject([peer["ip"]]))
        [t] = summary["torrents"]
        assert t["info_hash"] == info_hash, name
        b = t["bounds"]
        assert b["truncated_connections"] == t["connections"] >= 1, name
        inside(b, peer["torrents"]["t1"])
        # one figure would be far off: the captured block bytes are a few percent
        assert t["downloaded_bytes"] + t["uploaded_bytes"] < SIZE // 10, name
        assert b["downloaded_upper_bytes"] + b["uploaded_upper_bytes"] - SIZE < SIZE // 100, name
        if snaplen == 96:
            # the handshake's info hash was cut (30 payload bytes): named by the subject's UDP announce
            # (one basis per way the subject met the peer: it accepted a connection, or opened one)
            bases = b["info_hash_from_announces"]
            assert 1 <= len(bases) <= 2 and all(
                "UDP tracker announce (cut by the snap length)" in x and info_hash in x for x in bases), bases
        else:
            assert b["info_hash_from_announces"] == []
        assert summary["unattributed"]["connections"] == 0
    rows = [r for r in result.records if r.transport == "tcp" and r.dst_port == 6881]
    assert rows and all(r.fwd.truncated_bytes + r.rev.truncated_bytes > 0 for r in rows)
    from analyzer.findings import build_findings
    findings = build_findings(result)
    views = [v for v in findings.connection_views() if v.record.category == "bittorrent"]
    assert {v.record.attribution for v in views} == {"announce" if snaplen == 96 else "handshake"}
    # the piece messages each peer sent (client state reconciliation) are those of its connections.csv
    # rows, connections named by announces included
    for name, peer in truth["peers"].items():
        f = build_findings(result, given_subject([peer["ip"]]))
        [t] = f.torrents
        sent = sum(v.transfer.up.pieces for v in f.connection_views()
                   if v.record.category == "bittorrent" and v.transfer.involves_subject)
        assert t.uploaded_piece_messages == sent, name


def test_utp_cut_at_96_bytes_without_announces_has_bounds_but_no_info_hash(tmp_path):
    res = run_swarm(two_peers(size=SIZE, transports="utp"), tmp_path, capture_args=["-s", "96"])
    result = analyze(res.capture_files, local=["127.0.0.3"], warn=lambda m: None)
    for name, peer in res.ground_truth["peers"].items():
        summary = summarize(result, given_subject([peer["ip"]]))
        assert summary["torrents"] == []
        u = summary["unattributed"]
        assert u["connections"] == u["bounds"]["truncated_connections"] == 1
        inside(u["bounds"], peer["torrents"]["t1"])
    [r] = result.records
    assert r.transport == "utp" and r.category == "bittorrent_unattributed" and r.evidence == "handshake_cut"
