"""TCP reassembly under hostile segment orders (issue 12): per-segment cost stays O(log n).

Before the fix, 100,000 segments in reverse order took 14 s (each one scanned the whole
out-of-order list) and draining or finishing removed list heads one by one.  The bounds
here are generous (seconds, not a tight timing): a quadratic version takes minutes.
"""
from __future__ import annotations

import time

from analyzer.flows._tcp import TcpStream
from analyzer.protocols.peerwire import PeerWireParser
from craft_tcp import ACK, SYN

ISN = 1000
OOO_MAX_SEGMENTS = 1 << 14          # mirrors _tcp.pyx


def stream_with(segments, sink=None) -> tuple[TcpStream, float]:
    s = TcpStream(sink)
    t0 = time.monotonic()
    s.receive_segment(ISN, SYN)
    for off, data in segments:
        s.receive_segment(ISN + 1 + off, ACK, data)
    s.close()
    return s, time.monotonic() - t0


def test_100k_segments_in_reverse_order():
    n = 100_000
    s, seconds = stream_with((10 * i, b"%010d" % i) for i in range(n, 0, -1))
    assert seconds < 10
    st = s.stats
    # the cap on held segments is reached after OOO_MAX_SEGMENTS + 1: the hole below them
    # becomes a gap, they are delivered, and everything older arrives too late
    held = OOO_MAX_SEGMENTS + 1
    assert st["gap_bytes"] == 10 * (n + 1 - held) and st["delivered_bytes"] == 10 * held
    assert st["late_bytes"] == 10 * (n - held) and st["duplicate_bytes"] == 0
    assert st["delivered_bytes"] + st["gap_bytes"] == st["next_off"] == 10 * (n + 1)


def test_reverse_order_within_the_cap_is_reassembled_exactly():
    n = OOO_MAX_SEGMENTS
    data = b"".join(b"%010d" % i for i in range(n))
    p = PeerWireParser(True)
    s, seconds = stream_with(((10 * i, data[10 * i:10 * i + 10]) for i in range(n - 1, -1, -1)), sink=p)
    assert seconds < 10
    assert s.stats["delivered_bytes"] == len(data) and s.stats["gap_bytes"] == 0
    assert p.stream_off == len(data)


def test_interleaved_holes_then_fill():
    """Every other segment first (a hole before each), then the missing ones in reverse."""
    n = 60_000
    order = list(range(1, n, 2)) + list(range(n - 2, -1, -2))
    s, seconds = stream_with((10 * i, b"%010d" % i) for i in order)
    assert seconds < 10
    st = s.stats
    assert st["delivered_bytes"] + st["gap_bytes"] == st["next_off"] == 10 * n
    assert st["delivered_bytes"] + st["late_bytes"] + st["duplicate_bytes"] == st["payload_bytes"] == 10 * n


def test_duplicate_flood_beyond_a_hole():
    s, seconds = stream_with([(100, b"x" * 100)] * 100_000 + [(0, b"y" * 100)])
    assert seconds < 10
    st = s.stats
    assert st["duplicate_bytes"] == 100 * 99_999 and st["delivered_bytes"] == 200 and st["gap_bytes"] == 0


def test_one_segment_covering_many_small_ones():
    small = [(20 * i + 10, b"s" * 10) for i in range(OOO_MAX_SEGMENTS - 1)]
    big = (10, b"s" * (20 * OOO_MAX_SEGMENTS))
    s, seconds = stream_with(small * 1 + [big] * 20 + [(0, b"z" * 10)])
    assert seconds < 10
    st = s.stats
    assert st["delivered_bytes"] == 10 + 20 * OOO_MAX_SEGMENTS and st["gap_bytes"] == 0
    assert st["conflict_bytes"] == 0


def test_growing_overlaps_merge_into_one_segment():
    """Each segment covers the previous one and 10 bytes more on each side (beyond a hole):
    merging copies at most the new segment and the two ends, so the cost stays linear."""
    n = 3000
    centre = 10 * n + 100
    data = bytes(range(256)) * (2 * centre // 256 + 1)
    segs = [(centre - 10 * k, data[centre - 10 * k:centre + 10 * k]) for k in range(1, n)]
    s, seconds = stream_with(segs + [(0, data[:centre])])
    assert seconds < 10
    st = s.stats
    assert st["delivered_bytes"] == centre + 10 * (n - 1) and st["gap_bytes"] == 0 and st["conflict_bytes"] == 0
    assert st["duplicate_bytes"] == sum(20 * (k - 1) for k in range(1, n)) + 10 * (n - 1)
