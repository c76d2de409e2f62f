"""A capture that starts mid-transfer: with the .torrent, the connection is
attributed by piece hashes; without it, it stays BitTorrent without info hash."""
from __future__ import annotations

from pathlib import Path

import struct

import pytest

from analyzer.analysis import analyze
from summaries import summarize

REPO = Path(__file__).resolve().parent.parent.parent
SAMPLE = REPO / "captures" / "sample-swarm.pcap"
TORRENT = REPO / "captures" / "sample-swarm.torrent"
INFO_HASH = "b98e39419803a299cd5c4c83ea3b1ee1be532fa0"
CUT = 1800   # frames dropped: every handshake and the first part of the transfer


def cut_capture(tmp_path) -> tuple[Path, int]:
    """The sample capture without its first CUT frames (records copied as they are)."""
    raw = SAMPLE.read_bytes()
    out = bytearray(raw[:24])
    pos, i, dropped_payload = 24, 0, 0
    while pos < len(raw):
        caplen = struct.unpack_from("<I", raw, pos + 8)[0]
        record = raw[pos:pos + 16 + caplen]
        if i < CUT:
            ip = record[16 + 14:]
            hl = (ip[0] & 15) * 4
            dropped_payload += struct.unpack_from(">H", ip, 2)[0] - hl - (ip[hl + 12] >> 4) * 4
        else:
            out += record
        pos += 16 + caplen
        i += 1
    path = tmp_path / "mid.pcap"
    path.write_bytes(bytes(out))
    return path, dropped_payload


def test_mid_transfer_capture_is_attributed_by_piece_hashes(tmp_path):
    mid, dropped = cut_capture(tmp_path)
    full = summarize(analyze([SAMPLE], local=["127.0.0.3"], warn=lambda m: None))["torrents"][0]
    result = analyze([mid], local=["127.0.0.3"], torrents=[TORRENT], warn=lambda m: None)
    summary = summarize(result)
    records = [r for r in result.records if r.category.startswith("bittorrent")]
    assert records and all(r.attribution == "piece_hashes" and r.info_hash == INFO_HASH for r in records)
    assert all(r.fwd.info_hash is None and r.rev.info_hash is None for r in records)
    [t] = summary["torrents"]
    assert t["info_hash"] == INFO_HASH and t["name"] == "sample"
    # the window holds what the full capture holds minus what was in the dropped frames
    assert 0 < t["downloaded_bytes"] <= full["downloaded_bytes"]
    assert t["downloaded_bytes"] + t["uploaded_bytes"] >= \
        full["downloaded_bytes"] + full["uploaded_bytes"] - dropped
    v = t["verification"]
    assert v["pieces_downloaded_verified"] > 0 and v["pieces_downloaded_failed"] == 0
    assert summary["unattributed"]["connections"] == 0


def test_without_metadata_it_stays_unattributed(tmp_path):
    mid, _ = cut_capture(tmp_path)
    summary = summarize(analyze([mid], local=["127.0.0.3"], warn=lambda m: None))
    assert summary["torrents"] == []
    assert summary["unattributed"]["connections"] >= 1 and summary["unattributed"]["downloaded_bytes"] > 0


def split_capture(tmp_path, cut: int) -> tuple[Path, Path]:
    raw = SAMPLE.read_bytes()
    parts = (bytearray(raw[:24]), bytearray(raw[:24]))
    pos, i = 24, 0
    while pos < len(raw):
        caplen = struct.unpack_from("<I", raw, pos + 8)[0]
        parts[i >= cut].extend(raw[pos:pos + 16 + caplen])
        pos += 16 + caplen
        i += 1
    paths = tmp_path / "before.pcap", tmp_path / "window.pcap"
    for p, data in zip(paths, parts):
        p.write_bytes(bytes(data))
    return paths


@pytest.mark.parametrize("cut", [1000, 2500, 3000])
def test_window_plus_what_came_before_equals_the_clients_counters(tmp_path, cut):
    """The capture split at frame `cut`: the window alone (no handshakes, attributed by
    piece hashes, tails of cut blocks counted) and the part before it add up, for every
    peer, to the client's own counters: the window holds exactly its share."""
    import json
    from analyzer.sessions.subject import given_subject
    from summaries import torrents_of
    truth = json.loads((REPO / "captures" / "sample-swarm.truth.json").read_text())
    before, window = split_capture(tmp_path, cut)
    results = [analyze([p], local=["127.0.0.3"], torrents=[TORRENT], warn=lambda m: None) for p in (before, window)]
    assert {r.attribution for r in results[1].records} == {"piece_hashes"}
    for name, peer in truth["peers"].items():
        counters = peer["torrents"]["sample"]
        subject = given_subject([peer["ip"]])
        rows = [t for r in results for t in torrents_of(r, subject)]
        assert {t["info_hash"] for t in rows} == {INFO_HASH}
        assert sum(t["downloaded_bytes"] for t in rows) == counters["total_payload_download"], name
        assert sum(t["uploaded_bytes"] for t in rows) == counters["total_payload_upload"], name
