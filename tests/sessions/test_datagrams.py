"""The datagram analyzer on crafted BEP 15 exchanges: replies are matched to their requests
by transaction, every hash of a request keeps its own figures."""
from __future__ import annotations

import struct

from craft import ethernet, timed, udp_packet, write_pcap
from analyzer.analysis import analyze

CLIENT, TRACKER = "10.0.0.1", "10.0.0.9"
H1, H2, H3 = bytes([1]) * 20, bytes([2]) * 20, bytes([3]) * 20


def test_a_multi_hash_udp_scrape_keeps_every_hash_with_its_own_figures(tmp_path):
    connect = struct.pack(">QII", 0x41727101980, 0, 7)
    connected = struct.pack(">IIQ", 0, 7, 0xC0FFEE)
    scrape = struct.pack(">QII", 0xC0FFEE, 2, 8) + H1 + H2 + H3
    # (seeders, completed, leechers) per hash, in the order asked
    answer = struct.pack(">II", 2, 8) + struct.pack(">III", 10, 100, 1) + struct.pack(">III", 20, 200, 2) \
        + struct.pack(">III", 30, 300, 3)
    frames = [udp_packet(CLIENT, TRACKER, 40000, 6969, connect), udp_packet(TRACKER, CLIENT, 6969, 40000, connected),
              udp_packet(CLIENT, TRACKER, 40000, 6969, scrape), udp_packet(TRACKER, CLIENT, 6969, 40000, answer)]
    path = write_pcap(tmp_path / "scrape.pcap", timed([ethernet(f) for f in frames]))
    result = analyze([path], local=[CLIENT], warn=lambda m: None)
    scrapes = [a for a in result.announces if a.kind == "scrape"]
    assert [(a.info_hash, a.seeders, a.leechers) for a in scrapes] == \
        [(H1.hex(), 10, 1), (H2.hex(), 20, 2), (H3.hex(), 30, 3)]
    assert all(a.transport == "udp" and a.tracker == f"udp://{TRACKER}:6969" for a in scrapes)
