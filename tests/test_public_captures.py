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
from analyzer.report.tables import build_summary

PUBLIC = Path(__file__).resolve().parent.parent.parent / "shared" / "captures" / "public"
FILES = sorted(p for p in PUBLIC.glob("*") if p.suffix in (".pcap", ".pcapng")) if PUBLIC.is_dir() else []

pytestmark = pytest.mark.skipif(not FILES, reason=f"{PUBLIC} not present")


def run(path: Path):
    result = analyze([path], warn=lambda m: None)
    return result, build_summary(result)


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


@pytest.mark.parametrize("name", ["ndpi_tls_torrent.pcapng", "ndpi_bt-dns.pcap"])
def test_negative_cases_hold_no_bittorrent(name):
    _, summary = run(PUBLIC / name)
    cats = summary["accounting"]["categories"]
    assert cats["bittorrent"]["frames"] == cats["bittorrent_unattributed"]["frames"] == 0
    assert summary["torrents"] == []
