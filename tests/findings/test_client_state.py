"""The reconciliation as a pure function: records and wire figures in, verdicts out."""
from __future__ import annotations

import numpy as np
import pytest

from analyzer.evidence.clientstate.model import (PAYLOAD_ALL, PAYLOAD_NET, PAYLOAD_UNDOCUMENTED,
                                                 UPLOAD_PAYLOAD_AND_HEADERS, Have, TorrentState, Value)
from analyzer.findings.client_state import (CaptureContext, CaptureSpan, WireTorrent, compare_pieces, ns_from_iso,
                                            ranges, reconcile, reconcile_torrent)
from analyzer.findings.client_state_wire import wire_from_summary

S = 1_000_000_000
IH = "aa" * 20
CAPTURE = CaptureSpan(1_700_000_100 * S, 1_700_000_200 * S)


def state(up=1000, down=5000, counts=PAYLOAD_ALL, fmt="libtorrent_resume", added=1_700_000_000, last=None,
          have=None, **kw) -> TorrentState:
    t = TorrentState(format=fmt, client="x", info_hash_v1=IH, download_counts=counts, have=have, **kw)
    t.counters = [Value("uploaded", "total_uploaded", up, "bytes"),
                  Value("downloaded", "total_downloaded", down, "bytes")]
    if added:
        t.times.append(Value("added", "added_time", added, "unix_seconds"))
    if last:
        t.times.append(Value("last_activity", "activity-date", last, "unix_seconds"))
    return t


def wire(**kw) -> WireTorrent:
    base = dict(info_hash=IH, uploaded_bytes=1000, uploaded_acked_bytes=1000, downloaded_bytes=5000,
                downloaded_acked_bytes=5000, first_seen_ns=1_700_000_110 * S, last_seen_ns=1_700_000_190 * S)
    base.update(kw)
    return WireTorrent(**base)


def verdicts(rec) -> tuple:
    return rec["uploaded"]["verdict"], rec["downloaded"]["verdict"]


def test_equal_counters_are_consistent():
    rec = reconcile_torrent(state(), [wire()], CAPTURE)
    assert verdicts(rec) == ("consistent", "consistent")
    assert rec["uploaded"]["difference_bytes"] == 0 and rec["wire_torrent"] == IH
    assert rec["periods"]["capture"] == {"first_ts": "2023-11-14T22:15:00.000000000Z",
                                         "last_ts": "2023-11-14T22:16:40.000000000Z"}
    assert "before the capture began" in rec["period_notes"][0]


def test_wire_above_the_counter_is_a_contradiction_said_plainly():
    rec = reconcile_torrent(state(up=400), [wire()], CAPTURE)
    up = rec["uploaded"]
    assert up["verdict"] == "contradiction" and up["difference_bytes"] == -600
    assert up["statement"].startswith("contradiction: the capture shows 600 bytes")
    assert "cannot be smaller" in up["statement"] and "one-second tick" in up["statement"]


def test_counter_above_the_wire_is_possible_transfers_outside_the_capture():
    rec = reconcile_torrent(state(up=10_000), [wire()], CAPTURE, CaptureContext(encrypted_uploaded_bytes=777))
    up = rec["uploaded"]
    assert up["verdict"] == "possible_transfers_outside_capture" and up["difference_bytes"] == 9000
    assert "9,000 bytes" in up["statement"] and "777 bytes uploaded on encrypted connections" in up["statement"]
    assert "lies inside" not in up["statement"]


def test_counter_above_the_wire_with_the_clients_period_inside_the_capture_says_time_does_not_explain_it():
    t = state(up=10_000, fmt="transmission_resume", added=1_700_000_105, last=1_700_000_150)
    rec = reconcile_torrent(t, [wire()], CAPTURE)
    assert "time outside the capture does not explain" in rec["uploaded"]["statement"]
    assert "during the capture" in rec["period_notes"][0]


def test_gap_bytes_make_a_range():
    w = wire(uploaded_gap_bytes=500, downloaded_bytes=5200, downloaded_gap_bytes=300)
    rec = reconcile_torrent(state(up=1300, down=5400), [w], CAPTURE)
    assert verdicts(rec) == ("consistent", "consistent")
    assert (rec["uploaded"]["wire_min_bytes"], rec["uploaded"]["wire_max_bytes"]) == (1000, 1500)
    assert (rec["downloaded"]["wire_min_bytes"], rec["downloaded"]["wire_max_bytes"]) == (5000, 5500)
    assert verdicts(reconcile_torrent(state(up=1600, down=4999), [w], CAPTURE)) == \
        ("possible_transfers_outside_capture", "contradiction")


def test_transmission_downloaded_needs_verified_pieces_and_adds_corrupt():
    t = state(down=4000, counts=PAYLOAD_NET, fmt="transmission_resume")
    t.counters.append(Value("corrupt", "corrupt", 500, "bytes"))
    rec = reconcile_torrent(t, [wire()], CAPTURE)
    assert rec["downloaded"]["verdict"] == "not_comparable" and rec["downloaded"]["client_bytes"] == 4500
    assert rec["downloaded"]["client_key"] == "total_downloaded + corrupt"
    rec = reconcile_torrent(t, [wire(redundant_downloaded_bytes=500, failed_downloaded_bytes=500,
                                     pieces_known=True)], CAPTURE)
    assert rec["downloaded"]["verdict"] == "consistent" and rec["downloaded"]["wire_min_bytes"] == 4500
    rec = reconcile_torrent(t, [wire(redundant_downloaded_bytes=100, pieces_known=True)], CAPTURE)
    assert rec["downloaded"]["verdict"] == "contradiction" and rec["downloaded"]["difference_bytes"] == -400
    assert "one-second tick" not in rec["downloaded"]["statement"]


def test_transmission_uploaded_counts_13_header_bytes_per_piece_message():
    """Transmission's uploaded (uploadedEver) = block bytes + 13 bytes per piece message sent."""
    t = state(up=1000 + 13 * 3, fmt="transmission_resume", upload_counts=UPLOAD_PAYLOAD_AND_HEADERS)
    rec = reconcile_torrent(t, [wire(uploaded_piece_messages=3)], CAPTURE)
    up = rec["uploaded"]
    assert up["verdict"] == "consistent" and up["client_counts"] == "payload_and_piece_headers"
    assert (up["wire_min_bytes"], up["wire_max_bytes"], up["wire_piece_messages"]) == (1039, 1039, 3)
    assert up["wire_min_figure"] == "uploaded_bytes + 13 x uploaded_piece_messages"
    assert "1,039 bytes (uploaded_bytes + 13 x uploaded_piece_messages)" in up["statement"]
    # gap bytes widen the range; the headers are on both ends
    rec = reconcile_torrent(t, [wire(uploaded_piece_messages=3, uploaded_gap_bytes=100)], CAPTURE)
    assert (rec["uploaded"]["wire_min_bytes"], rec["uploaded"]["wire_max_bytes"]) == (1039, 1139)
    # a counter holding the block bytes alone is short of the headers the wire shows
    short = state(up=1000, fmt="transmission_resume", upload_counts=UPLOAD_PAYLOAD_AND_HEADERS)
    rec = reconcile_torrent(short, [wire(uploaded_piece_messages=3)], CAPTURE)
    assert rec["uploaded"]["verdict"] == "contradiction" and rec["uploaded"]["difference_bytes"] == -39
    # more than the headers: possible transfers outside the capture, by the exact difference
    rec = reconcile_torrent(state(up=1100, upload_counts=UPLOAD_PAYLOAD_AND_HEADERS),
                            [wire(uploaded_piece_messages=3)], CAPTURE)
    assert rec["uploaded"]["verdict"] == "possible_transfers_outside_capture"
    assert rec["uploaded"]["difference_bytes"] == 61
    # the other clients' counters are payload alone: no headers added, no message count shown
    rec = reconcile_torrent(state(up=1000), [wire(uploaded_piece_messages=3)], CAPTURE)
    assert rec["uploaded"]["verdict"] == "consistent" and rec["uploaded"]["wire_piece_messages"] is None


def test_transmission_uploaded_without_the_message_count_tells_only_a_contradiction():
    t = state(up=1039, fmt="transmission_resume", upload_counts=UPLOAD_PAYLOAD_AND_HEADERS)
    rec = reconcile_torrent(t, [wire()], CAPTURE)
    up = rec["uploaded"]
    assert up["verdict"] == "not_comparable" and (up["wire_min_bytes"], up["wire_max_bytes"]) == (1000, None)
    assert "number of piece messages was not given" in up["statement"]
    t.counters[0] = Value("uploaded", "uploaded", 999, "bytes")
    assert reconcile_torrent(t, [wire()], CAPTURE)["uploaded"]["verdict"] == "contradiction"


def test_undocumented_counters_compare_with_verified_bytes():
    t = state(down=4000, counts=PAYLOAD_UNDOCUMENTED, fmt="utorrent_resume_dat")
    w = wire(redundant_downloaded_bytes=600, failed_downloaded_bytes=400, pieces_known=True)
    rec = reconcile_torrent(t, [w], CAPTURE)
    assert rec["downloaded"]["verdict"] == "consistent"
    assert rec["downloaded"]["wire_min_figure"] == \
        "downloaded_acked_bytes - redundant_downloaded_bytes - failed_downloaded_bytes"
    assert reconcile_torrent(state(down=6000, counts=PAYLOAD_UNDOCUMENTED), [wire()], CAPTURE)["downloaded"][
        "verdict"] == "possible_transfers_outside_capture"


def test_no_traffic_in_the_capture_compares_with_zero():
    rec = reconcile_torrent(state(up=10, down=0), [], CAPTURE)
    assert rec["matched"] is False and rec["wire_torrent"] is None and "no traffic" in rec["statement"]
    assert verdicts(rec) == ("possible_transfers_outside_capture", "consistent")


def test_matching_by_truncated_v2_and_by_transmission_prefix():
    t = TorrentState(format="libtorrent_resume", client="x", info_hash_v2="bb" * 32)
    t.counters = [Value("uploaded", "total_uploaded", 1000, "bytes")]
    assert reconcile_torrent(t, [wire(aliases=("bb" * 20,))], CAPTURE)["wire_torrent"] == IH
    p = TorrentState(format="transmission_resume", client="x", info_hash_prefix="aa" * 8)
    assert reconcile_torrent(p, [wire()], CAPTURE)["matched"] is True
    rec = reconcile_torrent(p, [wire(), wire(info_hash="aa" * 8 + "cc" * 12)], CAPTURE)
    assert rec["matched"] is False and "several torrents" in rec["statement"]
    nohash = TorrentState(format="transmission_resume", client="x")
    assert "names no info hash" in reconcile_torrent(nohash, [wire()], CAPTURE)["statement"]


def test_traffic_before_the_recorded_addition_is_noted():
    rec = reconcile_torrent(state(added=1_700_000_150), [wire()], CAPTURE)
    assert any("before the client's recorded addition" in n for n in rec["period_notes"])


def test_missing_counter_is_not_recorded():
    t = state()
    t.counters = t.counters[:1]
    assert reconcile_torrent(t, [wire()], CAPTURE)["downloaded"]["verdict"] == "not_recorded"


def bits(pieces, n) -> bytes:
    a = np.zeros(n, dtype=bool)
    a[list(pieces)] = True
    return np.packbits(a).tobytes()


def test_pieces_held_received_and_missing():
    t = state(have=Have("piece", "bitfield", "pieces", bits=bits([0, 1, 2, 5, 6], 8)))
    w = wire(pieces_known=True, num_pieces=8, piece_length=16384, length_bytes=8 * 16384,
             received={0: "verified", 1: "verified", 3: "verified", 4: "failed", 7: "incomplete"},
             sent_verified=frozenset({5, 7}))
    p = compare_pieces(t, w)
    assert p["verdict"] == "pieces_missing"
    assert (p["client_held"], p["received_verified"], p["held_and_received_verified"]) == (5, 3, 2)
    assert (p["received_verified_not_held"], p["received_verified_not_held_pieces"]) == (1, "3")
    assert (p["sent_verified_not_held"], p["sent_verified_not_held_pieces"]) == (1, "7")
    assert (p["received_failed"], p["received_incomplete"], p["held_not_received"]) == (1, 1, 3)
    held_all = state(have=Have("piece", "all", "pieces"))
    assert compare_pieces(held_all, w)["verdict"] == "consistent"


def test_pieces_not_comparable_without_verification_or_geometry():
    t = state(have=Have("piece", "bitfield", "pieces", bits=bits([0], 8)))
    assert compare_pieces(t, wire())["verdict"] == "not_comparable"
    blocks = state(have=Have("block", "bitfield", "progress/blocks", bits=b"\xff"))
    p = compare_pieces(blocks, wire(pieces_known=True))
    assert p["verdict"] == "not_comparable" and "block bitfield" in p["statement"]
    assert compare_pieces(state(), wire())["verdict"] == "not_recorded"


def test_transmission_blocks_map_to_pieces_with_the_wires_geometry():
    # 40,000 bytes in 16 KiB blocks: 3 blocks; pieces of 32 KiB: piece 0 = blocks 0-1, piece 1 = block 2
    t = state(have=Have("block", "bitfield", "progress/blocks", bits=bytes([0b10100000])))
    p = compare_pieces(t, wire(pieces_known=True, num_pieces=2, piece_length=32768, length_bytes=40_000,
                               received={0: "verified", 1: "verified"}))
    assert p["client_held"] == 1 and p["received_verified_not_held_pieces"] == "0"


@pytest.mark.parametrize("indices, text", [([], ""), ([3], "3"), ([0, 1, 2, 5, 7, 8], "0-2,5,7-8")])
def test_ranges(indices, text):
    assert ranges(indices) == text


def test_ranges_are_capped():
    text = ranges(range(0, 1000, 2))
    assert text.endswith("(300 more pieces)") and text.count(",") == 200


def test_iso_round_trip():
    assert ns_from_iso("2023-11-14T22:15:00.000000123Z") == 1_700_000_100 * S + 123
    assert ns_from_iso(None) is None and ns_from_iso("") is None


def test_reconcile_keeps_the_order_given():
    a, b = state(up=1), state(up=2)
    assert [r["uploaded"]["client_bytes"] for r in reconcile([b, a], [wire()], CAPTURE)] == [2, 1]


def test_wire_inputs_from_summary_and_pieces_csv_rows():
    summary = {"inputs": [{"first_ts": "2023-11-14T22:15:00.000000000Z", "last_ts": "2023-11-14T22:16:00.000000000Z"},
                          {"first_ts": "2023-11-14T22:16:00.000000000Z", "last_ts": "2023-11-14T22:16:40.000000000Z"}],
               "encrypted": {"uploaded_bytes": 5, "downloaded_bytes": 6},
               "unattributed": {"uploaded_bytes": 7, "downloaded_bytes": 8},
               "torrents": [{"info_hash": IH, "info_hash_aliases": ["bb" * 20], "info_hash_v1": IH,
                             "info_hash_v2": "cc" * 32, "downloaded_bytes": 10, "downloaded_acked_bytes": 9,
                             "uploaded_bytes": 3, "uploaded_acked_bytes": 3, "downloaded_gap_bytes": 0,
                             "uploaded_gap_bytes": 0, "first_seen": "2023-11-14T22:15:10.000000000Z",
                             "last_seen": None, "name": "t", "total_size": 40_000, "piece_length": 16384,
                             "verification": {}, "redundant_downloaded_bytes": 1, "failed_downloaded_bytes": 0}]}
    rows = [{"info_hash": IH, "piece": "0", "status": "failed", "subject_received": "True", "senders": "10.0.0.2=16384",
             "covered_bytes": "16384", "receiver": "10.0.0.1"},
            {"info_hash": IH, "piece": "0", "status": "verified", "subject_received": "True", "senders": "",
             "covered_bytes": "16384", "receiver": "10.0.0.1"},
            {"info_hash": IH, "piece": "2", "status": "verified", "subject_received": "False",
             "senders": "10.0.0.1=7232", "covered_bytes": "7232", "receiver": "10.0.0.3"},
            {"info_hash": IH, "piece": "1", "status": "verified", "subject_received": "False",
             "senders": "10.0.0.1=100;10.0.0.4=16284", "covered_bytes": "16384", "receiver": "10.0.0.3"}]
    [w], span, ctx = wire_from_summary(summary, rows, subject=["10.0.0.1"])
    assert span == CaptureSpan(1_700_000_100 * S, 1_700_000_200 * S)
    assert ctx == CaptureContext(5, 6, 7, 8)
    assert set(w.aliases) == {"bb" * 20, "cc" * 20} and w.pieces_known and w.redundant_downloaded_bytes == 1
    assert (w.num_pieces, w.piece_length, w.length_bytes) == (3, 16384, 40_000)
    assert w.received == {0: "verified"} and w.sent_verified == {2}
    assert w.first_seen_ns == 1_700_000_110 * S and w.last_seen_ns is None


def test_piece_messages_from_connection_rows():
    summary = {"inputs": [], "torrents": [{"info_hash": IH, "info_hash_aliases": ["bb" * 20], "uploaded_bytes": 3}]}
    rows = [{"category": "bittorrent", "subject_side": "src", "info_hash": IH, "pieces_src_to_dst": "5",
             "pieces_dst_to_src": "100"},
            {"category": "bittorrent", "subject_side": "dst", "info_hash": "bb" * 20, "pieces_src_to_dst": "100",
             "pieces_dst_to_src": "2"},
            {"category": "bittorrent", "subject_side": "none", "info_hash": IH, "pieces_src_to_dst": "100",
             "pieces_dst_to_src": "100"},
            {"category": "bittorrent", "subject_side": "src", "info_hash": "dd" * 20, "pieces_src_to_dst": "100",
             "pieces_dst_to_src": "100"}]
    [w], _, _ = wire_from_summary(summary, connections=rows)
    assert w.uploaded_piece_messages == 7
    [w], _, _ = wire_from_summary(summary)
    assert w.uploaded_piece_messages is None
