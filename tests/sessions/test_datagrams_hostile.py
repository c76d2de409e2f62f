"""DHT and UDP tracker requests awaiting answers under a flood (issue 12): when the table of
pending requests is full, expiry pops from its oldest end (O(1)) instead of scanning it for
every new request (which made a flood of unanswered queries quadratic), and requests not kept
are counted."""
from __future__ import annotations

import struct
import time

from analyzer.sessions import datagrams
from analyzer.sessions.datagrams import MAX_PENDING, PENDING_TTL_NS, DatagramAnalyzer

NS = 1_000_000_000
A, B = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])


def get_peers(t: bytes) -> bytes:
    return (b"d1:ad2:id20:" + bytes(20) + b"9:info_hash20:" + bytes(range(20)) + b"e1:q9:get_peers1:t"
            + b"%d:" % len(t) + t + b"1:y1:qe")


def response(t: bytes) -> bytes:
    return b"d1:rd2:id20:" + bytes(20) + b"6:valuesl6:" + bytes(6) + b"ee1:t" + b"%d:" % len(t) + t + b"1:y1:re"


def test_flood_of_unanswered_queries_is_linear_and_counted(monkeypatch):
    monkeypatch.setattr(datagrams, "MAX_PENDING", 10_000)
    d = DatagramAnalyzer()
    t0 = time.monotonic()
    n = 30_000                                    # took 20 s (each new query scanned the table)
    for i in range(n):
        p = get_peers(struct.pack(">I", i))
        d.add(0, i, 1000 * NS + i, 100, 1, 4, A, 6881, B, 6881, p, len(p))
    assert time.monotonic() - t0 < 10
    assert d.out.pending_dropped == n - 10_000
    # the first ones are still awaited: their answers match
    r = response(struct.pack(">I", 5))
    d.add(0, n, 1001 * NS, 100, 1, 4, B, 6881, A, 6881, r, len(r))
    [fact] = d.out.dht_facts.values()
    assert fact.count == n and fact.peers_returned == 1


def test_full_table_makes_room_from_its_oldest_expired_entries(monkeypatch):
    monkeypatch.setattr(datagrams, "MAX_PENDING", 100)
    d = DatagramAnalyzer()
    for i in range(100):
        p = get_peers(struct.pack(">I", i))
        d.add(0, i, i * NS, 100, 1, 4, A, 6881, B, 6881, p, len(p))
    late = 50 * NS + PENDING_TTL_NS               # entries 0..49 are now older than the TTL
    for i in range(100, 150):
        p = get_peers(struct.pack(">I", i))
        d.add(0, i, late, 100, 1, 4, A, 6881, B, 6881, p, len(p))
    assert d.out.pending_dropped == 0 and len(d._dht_pending) == 100
    assert [k[-1] for k in d._dht_pending][:2] == [struct.pack(">I", 50), struct.pack(">I", 51)]
    assert MAX_PENDING == 100_000                 # the module's own value, for the README


def test_counts_survive_the_merge_of_shards_and_reach_the_accounting(tmp_path, monkeypatch):
    """pending_dropped (and the decode error counts) add up over shards, and the accounting
    shows them (pending_dropped was lost in the merge before)."""
    from craft import V4_CLIENT, V4_SERVER, analyze_frames, ethernet, udp_packet
    a, b = datagrams.DatagramResult(pending_dropped=2, lsd_malformed=1), \
        datagrams.DatagramResult(pending_dropped=3, udp_tracker_malformed=4)
    a.merge(b)
    assert (a.pending_dropped, a.lsd_malformed, a.udp_tracker_malformed) == (5, 1, 4)
    monkeypatch.setattr(datagrams, "MAX_PENDING", 3)
    frames = [ethernet(udp_packet(V4_CLIENT, V4_SERVER, 6881, 6881, get_peers(struct.pack(">I", i))))
              for i in range(5)]
    _, acc, _ = analyze_frames(tmp_path, frames, local=[V4_CLIENT])
    assert acc["pending_dropped"] == 2
