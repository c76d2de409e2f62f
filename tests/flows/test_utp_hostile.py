"""uTP reassembly under hostile packet orders (issue 12): finding the lowest waiting packet is
O(log n) (a heap), not a scan of every waiting packet per loss."""
from __future__ import annotations

import time

from analyzer.flows._utp import UtpStream
from analyzer.protocols.peerwire import PeerWireParser

DATA = 0


def test_every_other_packet_missing_at_finish():
    """16,383 waiting packets (the most a 16-bit window holds with holes), each after a
    hole: the finish loses them one hole at a time.  Six such connections took 17 s."""
    t0 = time.monotonic()
    n = 16_383
    for _ in range(6):
        s = UtpStream(PeerWireParser(False, 0))
        s.start(0)
        for i in range(n):
            s.receive_packet(DATA, 2 * i + 1, b"u" * 100)
        s.close()
        st = s.stats
        assert st["gap_packets"] == n and st["delivered_packets"] == n and st["delivered_bytes"] == 100 * n
    assert time.monotonic() - t0 < 10


def test_full_buffer_loses_the_lowest_first():
    """Beyond a hole, packets fill the 4 MiB buffer; every further packet makes the lowest
    waiting one be given up: one heap pop each, not a scan of thousands."""
    s = UtpStream()
    s.start(0)
    t0 = time.monotonic()
    n = 60_000
    for i in range(n):
        s.receive_packet(DATA, (2 * i + 1) & 0xFFFF, b"v" * 300)
    s.close()
    assert time.monotonic() - t0 < 10
    st = s.stats
    assert st["delivered_packets"] == n and st["gap_packets"] == n and st["late_bytes"] == 0
