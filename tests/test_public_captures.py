"""Real captures from other projects' test suites (../shared/captures/public).

Every file must analyse without error, frame counts must agree with tshark,
and the findings that can be checked are checked.  The folder lives beside
the repository, not in it; the test runs when it exists.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from analyzer.analysis import analyze
from summaries import summarize
from craft import public_captures_dir

PUBLIC = public_captures_dir()
FILES = sorted(p for p in PUBLIC.glob("*") if p.suffix in (".pcap", ".pcapng")) if PUBLIC.is_dir() else []

pytestmark = pytest.mark.skipif(not FILES, reason=f"{PUBLIC} not present")


def run(path: Path):
    result = analyze([path], warn=lambda m: None)
    return result, summarize(result)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_analyses_without_error_and_counts_every_frame(path):
    result, summary = run(path)
    [inp] = summary["inputs"]
    assert inp["readable"] and inp["errors"] == []
    frames = subprocess.run(["tshark", "-n", "-r", str(path), "-T", "fields", "-e", "frame.number"],
                            capture_output=True, text=True, check=True).stdout.split()
    acc = summary["accounting"]
    assert inp["frames"] == len(frames) == acc["frames"]
    assert sum(c["frames"] for c in acc["categories"].values()) == len(frames)
    assert acc["categories"]["undecodable"]["frames"] == 0


def test_ndpi_bittorrent_handshakes():
    # 24 TCP flows captured after their SYN, 41 plaintext handshakes, one info_hash
    result, summary = run(PUBLIC / "ndpi_bittorrent.pcap")
    bt = [r for r in result.records if r.category == "bittorrent"]
    assert len(bt) == 24
    assert sum(d.info_hash is not None for r in bt for d in (r.fwd, r.rev)) == 41
    [t] = summary["torrents"]
    assert t["info_hash"] == "dcfcdccfb9e670ccc3dd40c78c161f2bea243126"
    assert summary["local"] == ["192.168.1.3"] and summary["subject"]["ambiguous"] is False
    assert t["downloaded_bytes"] > 0


def test_arkime_scrubbed_info_hash():
    _, summary = run(PUBLIC / "arkime_bt-tcp.pcap")
    assert [t["info_hash"] for t in summary["torrents"]] == ["aa" * 20]


def test_mid_transfer_capture_without_handshake():
    # piece data on port 6881, no handshake: BitTorrent, but no info_hash to attribute it to
    result, summary = run(PUBLIC / "ppa1e_torrential-slowness.pcap")
    assert summary["torrents"] == []
    u = summary["unattributed"]
    assert u["connections"] >= 1 and u["uploaded_bytes"] + u["downloaded_bytes"] > 0
    assert summary["accounting"]["categories"]["bittorrent_unattributed"]["frames"] > 0
    # positive evidence: 16 KiB blocks at 16 KiB offsets (a lone chance framing would not do)
    assert {r.evidence for r in result.records if r.category == "bittorrent_unattributed"} == {"standard_blocks"}
    assert u["connections"] == 3 and u["downloaded_bytes"] + u["uploaded_bytes"] == 6724 + 9484 + 1367


@pytest.mark.parametrize("name", ["ndpi_tls_torrent.pcapng", "ndpi_bt-dns.pcap"])
def test_negative_cases_hold_no_bittorrent(name):
    _, summary = run(PUBLIC / name)
    cats = summary["accounting"]["categories"]
    assert cats["bittorrent"]["frames"] == cats["bittorrent_unattributed"]["frames"] == 0
    assert summary["torrents"] == []


def test_ndpi_utp_flow_is_attributed_with_its_blocks():
    # a uTP connection with handshake, bitfield, have, request and piece messages
    result, summary = run(PUBLIC / "ndpi_bittorrent_utp.pcap")
    [t] = summary["torrents"]
    assert t["info_hash"] == "0ca4c8e7fb26a354b1a7aa15baeaf26067c66811"
    assert list(t["transports"]) == ["utp"]
    [r] = [r for r in result.records if r.category == "bittorrent"]
    assert r.transport == "utp" and sorted([r.fwd.block_bytes, r.rev.block_bytes]) == [0, 32768]
    # the same capture holds DHT get_peers lookups by 82.243.113.43, for hashes near its own node id
    # (routing-table upkeep), not for the torrent: nothing tells which end is the local host
    assert summary["dht"]["methods"] == {"get_peers": 3}
    assert summary["subject"]["ambiguous"] is True
    from analyzer.sessions.subject import given_subject
    assert len(summarize(result, given_subject(["82.243.113.43"]))["dht"]["info_hashes"]) == 3


def test_zeek_http_tracker_announce_and_answer():
    _, summary = run(PUBLIC / "zeek_bittorrent_tracker.pcap")
    [a] = summary["tracker_reports"]
    assert (a["info_hash"], a["event"], a["uploaded"], a["downloaded"], a["left"], a["port"]) == \
        ("e4be9e4db876e3e3179778b03e906297be5c8dbe", "started", 0, 0, 1921843200, 63448)
    assert a["tracker"] == "http://torrent.ubuntu.com:6969/announce" and a["transport"] == "http"
    assert a["peer_id"].startswith("-DE13F0-")
    assert (a["interval"], a["peers_returned"], a["seeders"], a["leechers"]) == (1800, 50, 4499, 109)
    assert summary["accounting"]["categories"]["tracker"]["frames"] == 10


def test_ndpi_http_tracker_by_transmission():
    _, summary = run(PUBLIC / "ndpi_bt-http.pcapng")
    [a] = summary["tracker_reports"]
    assert a["peer_id"].startswith("-TR2940-") and a["event"] == "started" and a["left"] == 282050560
    assert summary["subject"]["inferred"] and summary["local"] == [a["client_ip"]]


def test_local_service_discovery():
    _, summary = run(PUBLIC / "ndpi_bt_search.pcap")
    [a] = summary["lsd"]
    assert (a["info_hash"], a["port"], a["count"]) == ("ed4f1085e885f98f9a69b70ee89eb988b8fd9115", 61197, 2)


def test_dht_messages_and_malformed_ones():
    _, summary = run(PUBLIC / "suricata-verify_bittorrent-dht_SYNTHETIC.pcap")
    d = summary["dht"]
    assert d["messages"] == {"query": 7, "response": 6, "error": 2, "malformed": 1}
    assert d["methods"] == {"announce_peer": 2, "find_node": 1, "get_peers": 2, "ping": 2}
    assert summary["accounting"]["categories"]["dht"]["frames"] == 16


def test_mse_that_settled_on_plaintext():
    # MSE key exchange, initiator's handshake still encrypted, then plaintext piece blocks
    result, summary = run(PUBLIC / "ndpi_bittorrent_tcp_miss.pcapng")
    [r] = list(result.records)
    assert r.encryption == "mse_plaintext" and r.category == "bittorrent"
    assert r.info_hash == "0f6b9cd2b7da4de9b6c846203920e3da49cdb795"   # the responder's plaintext handshake
    assert max(r.fwd.block_bytes, r.rev.block_bytes) >= 5 * 16384
    assert summary["encrypted"]["plaintext_after_key_exchange"] == 1


def test_dht_only_capture_infers_the_node_that_looked_up_and_announced():
    # the BEP 5 examples: 190.0.0.1 queries 190.0.0.2 and 190.0.0.3, including get_peers and
    # announce_peer for one info hash (before: no subject, dht.info_hashes empty)
    _, summary = run(PUBLIC / "suricata-verify_bittorrent-dht_SYNTHETIC.pcap")
    s = summary["subject"]
    assert summary["local"] == ["190.0.0.1"] and s["ambiguous"] is False
    assert s["basis"].startswith("190.0.0.1 is an end of all") and "sent 4 get_peers/announce_peer" in s["basis"]
    [h] = summary["dht"]["info_hashes"]
    assert (h["info_hash"], h["get_peers"], h["announce_peer"]) == ("6d6e6f707172737475767778797a313233343536", 2, 2)
    ev = {c["address"]: c["evidence"] for c in s["candidates"]}
    assert ev["190.0.0.1"]["dht_queries"] == 4 and ev["190.0.0.3"]["dht_queries"] == 0


def test_dht_messages_between_unrelated_hosts_are_ambiguous():
    # three DHT packets between three unrelated pairs of hosts: no node is the capture's
    _, summary = run(PUBLIC / "arkime_bt-udp.pcap")
    s = summary["subject"]
    assert s["ambiguous"] is True and "none is an end of all of it" in s["basis"]
    assert len(s["candidates"]) >= 4 and all(c["evidence"]["dht_messages"] == 1 for c in s["candidates"])
