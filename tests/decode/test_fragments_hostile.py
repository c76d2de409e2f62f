"""IP defragmentation under hostile fragment floods (issue 12): linear cost per fragment,
bounded pending state.  Time bounds are generous; the old code took 10-15 s on these."""
from __future__ import annotations

import struct
import time
import tracemalloc

from analyzer.decode import fragments
from analyzer.decode.fragments import Defragmenter

SRC, DST = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])


def frag(offset: int, data: bytes, more: bool, ident: int = 7, src: bytes = SRC) -> bytes:
    """An IPv4 fragment (checksum left 0: the defragmenter does not check it)."""
    flags = (offset // 8) | (0x2000 if more else 0)
    return struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(data), ident, flags, 64, 17, 0, src, DST) + data


def test_duplicate_flood_is_compared_by_slices():
    """80,000 copies of a 1,480-byte fragment of a datagram whose ends are known: each copy was
    compared byte by byte in Python (and the whole datagram recounted): ~13 s."""
    payload = bytes(range(256)) * 40                     # 10,240 bytes
    d = Defragmenter()
    d.add(0, 1, 0, 60, 4, frag(0, payload[:1480], True))
    d.add(0, 2, 0, 60, 4, frag(8880, payload[8880:], False))
    dup = frag(1480, payload[1480:2960], True)
    t0 = time.monotonic()
    for i in range(80_000):
        assert d.add(0, 3 + i, 0, 60, 4, dup) is None
    assert time.monotonic() - t0 < 10
    assert d.conflicts == 0
    out = None
    for k, off in enumerate(range(2960, 8880, 1480)):
        out = d.add(0, 90_000 + k, 0, 60, 4, frag(off, payload[off:off + 1480], True))
    assert out is not None and out.packet[20:] == payload and out.frames == 80_006


def test_reverse_order_datagram_of_8187_fragments():
    """30 datagrams, each with the first and last fragments first and the rest in reverse: every
    fragment recounted the whole datagram (64 KiB) before (~10 s); now a running count."""
    n = 8187                                        # 20 + 8 * 8187 bytes: the largest IPv4 datagram
    payload = bytes((i * 13) & 0xFF for i in range(8 * n))
    t0 = time.monotonic()
    for ident in range(30):
        d = Defragmenter()
        order = [0, n - 1, *range(n - 2, 0, -1)]
        out = [d.add(0, i, 0, 60, 4, frag(8 * k, payload[8 * k:8 * k + 8], k < n - 1, ident))
               for i, k in enumerate(order)]
        assert [o for o in out if o is not None][0].packet[20:] == payload
    assert time.monotonic() - t0 < 10


def test_partial_overlaps_first_copy_wins_run_by_run():
    d = Defragmenter()
    d.add(0, 1, 0, 60, 4, frag(8, b"A" * 8, True))
    d.add(0, 2, 0, 60, 4, frag(24, b"B" * 8, True))
    d.add(0, 3, 0, 60, 4, frag(0, b"x" * 40, True))          # covers both, differs from both
    assert d.conflicts == 1
    out = d.add(0, 4, 0, 60, 4, frag(40, b"end!end!", False))
    assert out.packet[20:] == b"x" * 8 + b"A" * 8 + b"x" * 8 + b"B" * 8 + b"x" * 8 + b"end!end!"


def test_flood_of_distinct_datagrams_is_bounded():
    """20,000 datagrams of one fragment each (never completed): all were held (~220 MB for
    300,000); now the oldest are given up beyond MAX_PENDING_DATAGRAMS, and counted."""
    d = Defragmenter()
    n = 20_000
    tracemalloc.start()
    try:
        for i in range(n):
            d.add(0, i, 0, 60, 4, frag(8, b"z" * 8, True, ident=i & 0xFFFF, src=bytes([10, 1, 0, i >> 16])))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(d.pending) == fragments.MAX_PENDING_DATAGRAMS
    assert d.evicted == n - fragments.MAX_PENDING_DATAGRAMS == d.dropped_frames
    d.flush()
    assert d.dropped_frames == n and d.dropped_bytes == 60 * n
    assert peak < 24 << 20, f"peak {peak >> 20} MiB"


def test_evicted_datagrams_are_written_out(tmp_path, monkeypatch):
    """summary.json accounting.ip_fragments counts the datagrams given up at the caps."""
    from craft import analyze_frames, ethernet
    monkeypatch.setattr(fragments, "MAX_PENDING_DATAGRAMS", 4)
    frames = [ethernet(frag(8, b"z" * 8, True, ident=i)) for i in range(10)]
    _, acc, _ = analyze_frames(tmp_path, frames, local=["10.0.0.1"])
    assert acc["ip_fragments"] == {"datagrams_reassembled": 0, "overlap_conflicts": 0, "incomplete_frames": 10,
                                   "evicted_datagrams": 6}
    assert acc["categories"]["undecodable"]["reasons"] == {"incomplete_ip_fragments": 10}
