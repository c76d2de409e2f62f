"""A capture that starts mid-transfer: with the .torrent, the connection is
attributed by piece hashes; without it, it stays BitTorrent without info hash."""
from __future__ import annotations

from pathlib import Path

import struct

from analyzer.analysis import analyze
from analyzer.report.tables import build_summary

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
    full = build_summary(analyze([SAMPLE], local=["127.0.0.3"], warn=lambda m: None))["torrents"][0]
    result = analyze([mid], local=["127.0.0.3"], torrents=[TORRENT], warn=lambda m: None)
    summary = build_summary(result)
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
    summary = build_summary(analyze([mid], local=["127.0.0.3"], warn=lambda m: None))
    assert summary["torrents"] == []
    assert summary["unattributed"]["connections"] >= 1 and summary["unattributed"]["downloaded_bytes"] > 0
