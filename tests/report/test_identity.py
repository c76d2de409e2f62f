"""Peer and subject identity from connections.csv and pieces.csv rows."""
from __future__ import annotations

import json

from analyzer.report import identity
from analyzer.report.columns import CsvRows

H = "aa" * 20
LT_EXT = json.dumps({"v": "libtorrent/2.1.1.0", "p": 6881}, separators=(",", ":"))


def conns(block_columns: bool = True) -> CsvRows:
    rows = [
        # the subject (127.0.0.3) opened a connection to 127.0.0.2:6881 and downloaded
        dict(conn_id="1", transport="tcp", src_ip="127.0.0.3", src_port="50000", dst_ip="127.0.0.2",
             dst_port="6881", initiator_known="1", subject_side="src", remote_ip="127.0.0.2", remote_port="6881",
             downloaded_bytes="1000", uploaded_bytes="0", peer_id_src="-LT2110-6Jzu7qHM4Dd6",
             peer_id_dst="-LT2110-uZ9Df*tIGE(1", ext_handshake_src=LT_EXT,
             ext_handshake_dst=json.dumps({"v": "libtorrent/2.1.1.0"}), info_hash=H,
             first_ts="2026-11-28T17:52:48.903610000Z", last_ts="2026-11-28T17:53:07.943718000Z",
             first_block_file="a.pcap", first_block_frame="10", first_block_ts="2026-11-28T17:52:50.000000001Z",
             last_block_file="b.pcap", last_block_frame="20", last_block_ts="2026-11-28T17:53:01.000000000Z"),
        # 127.0.0.4 connected to the subject's listen port over uTP and downloaded from it; no BEP 10
        dict(conn_id="2", transport="utp", src_ip="127.0.0.4", src_port="40000", dst_ip="127.0.0.3",
             dst_port="6881", initiator_known="1", subject_side="dst", remote_ip="127.0.0.4", remote_port="40000",
             downloaded_bytes="0", uploaded_bytes="500", peer_id_src="-TR4050-%01%02%03%04%05%06%07%08%09%0A%0B%0C",
             peer_id_dst="-LT2110-6Jzu7qHM4Dd6", ext_handshake_src="", ext_handshake_dst="", info_hash=H,
             first_ts="2026-11-28T17:52:50.000000000Z", last_ts="2026-11-28T17:52:59.000000000Z",
             first_block_file="", first_block_frame="", first_block_ts="",
             last_block_file="", last_block_frame="", last_block_ts=""),
        # another torrent's connection
        dict(conn_id="3", transport="tcp", src_ip="127.0.0.3", src_port="50001", dst_ip="127.0.0.5",
             dst_port="51413", initiator_known="0", subject_side="src", remote_ip="127.0.0.5", remote_port="51413",
             downloaded_bytes="7", uploaded_bytes="0", peer_id_src="", peer_id_dst="", ext_handshake_src="",
             ext_handshake_dst="", info_hash="bb" * 20,
             first_ts="2026-11-28T17:52:40.000000000Z", last_ts="2026-11-28T17:52:41.000000000Z",
             first_block_file="", first_block_frame="", first_block_ts="",
             last_block_file="", last_block_frame="", last_block_ts=""),
    ]
    if not block_columns:
        rows = [{k: v for k, v in r.items() if k not in identity.BLOCK_COLUMNS} for r in rows]
    return CsvRows(rows, rows[0])


PIECES = [
    dict(info_hash=H, receiver="127.0.0.3", senders="127.0.0.2=600;127.0.0.9=400", status="verified"),
    dict(info_hash=H, receiver="127.0.0.3", senders="127.0.0.2=1000", status="failed"),
    dict(info_hash=H, receiver="127.0.0.4", senders="127.0.0.3=500;127.0.0.2=100", status="verified"),
    dict(info_hash="bb" * 20, receiver="127.0.0.3", senders="127.0.0.5=7", status="verified"),
]


def test_peer_identity_rows():
    t = identity.peer_identity(conns(), PIECES, {H})
    assert t["total"] == 2 and t["recorded"] and t["verified"]
    first, second = t["rows"]
    assert first["remote"] == "127.0.0.2:6881" and first["transport"] == "TCP" and first["opened_by"] == "the subject"
    assert first["client_v"] == "libtorrent/2.1.1.0" and first["client_peer_id"] == "libtorrent 2.1.1"
    assert first["peer_id"] == "-LT2110-uZ9Df*tIGE(1"                      # the remote side's, not the subject's
    assert (first["downloaded_bytes"], first["uploaded_bytes"]) == (1000, 0)
    # verified: only the bytes this address contributed to verified pieces (not the failed one)
    assert (first["verified_downloaded_bytes"], first["verified_uploaded_bytes"]) == (600, 0)
    assert first["first_block"] == {"file": "a.pcap", "frame": 10, "ts": "2026-11-28T17:52:50.000000001Z"}
    assert first["last_block"] == {"file": "b.pcap", "frame": 20, "ts": "2026-11-28T17:53:01.000000000Z"}
    assert first["first_ts"] == "2026-11-28T17:52:48.903610000Z"            # nanoseconds kept
    assert second["remote"] == "127.0.0.4:40000" and second["transport"] == "uTP"
    assert second["opened_by"] == "the remote peer" and second["client_v"] is None
    assert second["client_peer_id"].startswith("Transmission")
    assert second["peer_id"].startswith("-TR4050-%01")
    assert (second["verified_downloaded_bytes"], second["verified_uploaded_bytes"]) == (0, 500)
    assert second["first_block"] is None and second["last_block"] is None     # carried no block


def test_peer_identity_without_block_columns_or_metadata():
    t = identity.peer_identity(conns(block_columns=False), None, {H})
    assert not t["recorded"] and not t["verified"]
    assert {r["first_block"] for r in t["rows"]} == {identity.NOT_RECORDED}
    assert {r["verified_downloaded_bytes"] for r in t["rows"]} == {None}


def test_peer_identity_keeps_the_largest_connections_in_time_order():
    t = identity.peer_identity(conns(), PIECES, {H}, limit=1)
    assert t["total"] == 2 and [r["conn_id"] for r in t["rows"]] == ["1"]


def test_listen_ports_and_peer_ids():
    ports = identity.listen_ports(conns(), [{"client_ip": "127.0.0.3", "port": 6881,
                                             "ts": "2026-11-28T17:52:47.000000000Z"},
                                            {"client_ip": "127.0.0.3", "port": None, "ts": "x"}])
    assert [(r["address"], r["port"], r["shown_by"], r["count"]) for r in ports] == [
        ("127.0.0.3", 6881, "accepted uTP connections", 1),
        ("127.0.0.3", 6881, "its extension handshakes (BEP 10 p)", 1),
        ("127.0.0.3", 6881, "its tracker announces (port)", 1)]
    assert ports[0]["first_ts"] == "2026-11-28T17:52:50.000000000Z"
    ids = identity.subject_peer_ids(conns())
    [lt] = [r for r in ids if r["peer_id"] == "-LT2110-6Jzu7qHM4Dd6" and r["client_v"]]
    assert lt["client_peer_id"] == "libtorrent 2.1.1" and lt["connections"] == 1
    # the same peer_id without a BEP 10 handshake is its own row (what each connection showed)
    assert [r["connections"] for r in ids if r["peer_id"] == "-LT2110-6Jzu7qHM4Dd6"] == [1, 1]


def test_endpoint_and_peer_id_decoding():
    assert identity.endpoint("fd00::2", 6881) == "[fd00::2]:6881"
    assert identity.peer_id_client("") is None
    assert identity.peer_id_client("-qB4630-%00%01%02%03%04%05%06%07%08%09%0A%0B") == "qBittorrent 4.6.3"
