"""Smoke test of the real-traffic harness itself (no analyzer involved).

A seed and a leecher exchange a ~2 MB v1 torrent over TCP inside a private
namespace; we check libtorrent's counters and that the capture holds both
handshakes, each sent from its peer's own address.
"""

import subprocess

import pytest

from analyzer.validation.harness import run_swarm
from analyzer.validation.harness.netns import require_tools

SIZE = 2_000_000


@pytest.mark.realtraffic
def test_two_peer_v1_transfer(tmp_path):
    require_tools("tshark")
    spec = {
        "timeout": 15,
        "torrents": [{"name": "t1", "size": SIZE, "piece_length": 65536,
                      "version": "v1", "seed": 7}],
        "peers": [
            {"name": "seed", "ip": "127.0.0.2", "port": 6881, "seeds": ["t1"]},
            {"name": "leech", "ip": "127.0.0.3", "port": 6881, "leeches": ["t1"],
             "connect_to": ["seed"]},
        ],
    }
    res = run_swarm(spec, tmp_path)
    gt = res.ground_truth
    seed = gt["peers"]["seed"]["torrents"]["t1"]
    leech = gt["peers"]["leech"]["torrents"]["t1"]
    assert gt["torrents"]["t1"]["total_size"] == SIZE
    assert leech["is_seeding"]
    assert leech["total_failed_bytes"] == 0
    # Payload download counts redundant bytes too; net of them it is the size.
    assert leech["total_payload_download"] - leech["total_redundant_bytes"] == SIZE
    assert seed["total_payload_upload"] == leech["total_payload_download"]
    assert res.torrent_files["t1"].is_file()

    assert len(res.capture_files) == 1 and res.capture_files[0].stat().st_size > SIZE
    out = subprocess.run(
        ["tshark", "-r", str(res.capture_files[0]), "-Y", "bittorrent.info_hash",
         "-T", "fields", "-e", "ip.src", "-e", "ip.dst", "-e", "bittorrent.info_hash"],
        capture_output=True, text=True, check=True).stdout
    handshakes = {tuple(line.split("\t")) for line in out.splitlines() if line}
    ih = gt["torrents"]["t1"]["handshake_info_hash"]
    assert handshakes == {("127.0.0.3", "127.0.0.2", ih), ("127.0.0.2", "127.0.0.3", ih)}
