"""Frames cut by a snap length inside the TCP options (64 bytes with timestamps): the
20-byte TCP header still gives ports, sequence numbers and flags, so the connection and its
stream bytes are kept (none captured), not counted undecodable."""
from __future__ import annotations

from scapy.layers.inet import IP, TCP

from craft import Frame, BASE_TS_NS, ethernet, run_analysis, write_pcap


def test_tcp_options_cut_by_the_snap_length_still_make_a_connection(tmp_path):
    opts = [("NOP", None), ("NOP", None), ("Timestamp", (1, 2))]
    packets = [IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=5000, dport=6881, seq=1000 + 1000 * i, flags="PA",
                                                        options=opts) / (b"x" * 1000) for i in range(3)]
    frames = [Frame(BASE_TS_NS + i * 1000, ethernet(bytes(p))[:64], len(ethernet(bytes(p)))) for i, p in enumerate(packets)]
    path = write_pcap(tmp_path / "cut.pcap", frames, snaplen=64)
    result, acc, _ = run_analysis([path], expected_frames=3)
    assert acc["categories"]["undecodable"]["frames"] == 0
    [r] = result.records
    assert r.fwd.frames == 3 and r.fwd.truncated_bytes == 3000 and r.fwd.gap_bytes == 3000
    assert r.category == "other_tcp"
