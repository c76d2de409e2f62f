"""Smoke test of the real-traffic harness itself (no analyzer involved).

A seed and a leecher exchange a ~2 MB v1 torrent over TCP inside a private
namespace; we check libtorrent's counters and that the capture holds both
handshakes, each sent from its peer's own address.
"""

import pytest

from analyzer.validation.harness import run_swarm
from analyzer.validation.harness.netns import require_tools
from analyzer.validation.harness.specs import two_peers
from craft import tshark

SIZE = 2_000_000


@pytest.mark.realtraffic
def test_two_peer_v1_transfer(tmp_path):
    require_tools("tshark")
    res = run_swarm({**two_peers(SIZE, seed=7), "timeout": 15}, tmp_path)
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
    handshakes = {tuple(row) for row in tshark(res.capture_files[0], "bittorrent.info_hash",
                                                "ip.src", "ip.dst", "bittorrent.info_hash")}
    ih = gt["torrents"]["t1"]["handshake_info_hash"]
    assert handshakes == {("127.0.0.3", "127.0.0.2", ih), ("127.0.0.2", "127.0.0.3", ih)}
