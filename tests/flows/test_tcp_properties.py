"""Property tests of TCP reassembly feeding a peer wire parser (hypothesis, derandomized).

Whatever the segmentation, sequence number origin (wrap-around included),
reordering, duplication and re-segmentation, the parser behind a
``TcpStream`` must see exactly the stream (or, with segments missing from
the capture, exactly the captured ranges and gaps for the rest), and the
stream counters must add up.
"""
from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.flows._tcp import TcpStream
from analyzer.protocols.peerwire import PeerWireParser
from craft_tcp import ACK, FIN, PSH, SYN, BtStream, msg

DEEP = int(os.environ.get("PEERWIRE_DEEP", "0"))
PROPS = settings(derandomize=not DEEP, deadline=None, max_examples=150 * max(DEEP, 1), database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

FIELDS = ("stream_off", "handshake_bytes", "message_bytes", "block_bytes", "unparsed_bytes", "opaque_bytes",
          "gap_bytes", "block_tail_bytes", "block_gap_bytes", "messages", "pieces", "protocol_errors",
          "resyncs", "desyncs", "peer_id", "info_hash", "synced")


def pstate(p):
    return {k: getattr(p, k) for k in FIELDS}


@st.composite
def bt_streams(draw):
    s = BtStream().handshake(bytes(range(20)), b"-XX0000-abcdefghijkl")
    for kind, n in draw(st.lists(st.tuples(st.sampled_from("pphrk"), st.integers(0, 3000)), max_size=12)):
        if kind == "p":
            s.piece(n % 7, n, n, seed=n)
        elif kind == "h":
            s.add(msg(4, n.to_bytes(4, "big")))
        elif kind == "r":
            s.request(1, n, 16384)
        else:
            s.add(b"\0\0\0\0")
    return s


isns = st.one_of(st.integers(0, 2**32 - 1), st.integers(2**32 - 5000, 2**32 - 1), st.integers(0, 100))


@st.composite
def captures(draw, lossy: bool):
    """(stream, isn, capture order of (offset, payload) segments, covered ranges)."""
    s = draw(bt_streams())
    data = bytes(s)
    n = len(data)
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, n - 1)), max_size=30)))) if n > 1 else []
    bounds = [0, *[c for c in cuts if 0 < c < n], n]
    segs = [(a, data[a:b]) for a, b in zip(bounds, bounds[1:])]
    # retransmissions with arbitrary re-segmentation
    for a, ln in draw(st.lists(st.tuples(st.integers(0, max(0, n - 1)), st.integers(1, 2000)), max_size=6)):
        segs.append((a, data[a:a + ln]))
    if lossy and segs:
        drop = draw(st.sets(st.integers(0, len(segs) - 1), max_size=max(1, len(segs) // 3)))
        segs = [x for i, x in enumerate(segs) if i not in drop]
    # bounded reordering: sort by position plus a random delay
    delays = draw(st.lists(st.integers(0, 8), min_size=len(segs), max_size=len(segs)))
    order = [segs[i] for i in sorted(range(len(segs)), key=lambda i: (i + delays[i], i))]
    return s, draw(isns), order


def covered_ranges(segs, n):
    cov = bytearray(n)
    for a, b in segs:
        cov[a:a + len(b)] = b"\1" * len(b)
    return cov


@PROPS
@given(cap=captures(lossy=False), fin=st.booleans(), acks=st.lists(st.integers(0, 10**6), max_size=8))
def test_reassembly_is_transparent(cap, fin, acks):
    s, isn, order = cap
    data = bytes(s)
    p = PeerWireParser(True)
    t = TcpStream(p)
    t.receive_segment(isn, SYN)
    base = isn + 1
    # acknowledgements never beyond what the capture has shown contiguously so far
    ack_at = {k % (len(order) + 1): a for k, a in enumerate(acks)}
    cov = bytearray(len(data))
    contiguous = 0
    last_ack = 0
    for i, (off, payload) in enumerate(order):
        t.receive_segment((base + off) % 2**32, ACK | PSH, payload)
        cov[off:off + len(payload)] = b"\1" * len(payload)
        while contiguous < len(data) and cov[contiguous]:
            contiguous += 1
        if i in ack_at:
            a = min(ack_at[i], contiguous)
            t.receive_ack((base + a) % 2**32)
            last_ack = max(last_ack, a)
    if fin:
        t.receive_segment((base + len(data)) % 2**32, FIN | ACK)
    t.close()
    st_ = t.stats
    ref = PeerWireParser(True)
    ref_events = ref.receive_data(data) + ref.receive_eof()
    assert p.take_events() == ref_events
    assert pstate(p) == pstate(ref)
    assert st_["delivered_bytes"] == len(data) and st_["gap_bytes"] == 0 and st_["late_bytes"] == 0
    assert st_["payload_bytes"] == sum(len(x) for _, x in order)
    assert st_["duplicate_bytes"] == st_["payload_bytes"] - len(data)
    assert st_["conflict_bytes"] == 0
    assert st_["marked_bytes"] == s.block_bytes == p.block_bytes
    assert st_["marked_acked_bytes"] == s.block_bytes_in(0, last_ack)


@PROPS
@given(cap=captures(lossy=True))
def test_missing_segments_become_exact_gaps_at_close(cap):
    s, isn, order = cap
    data = bytes(s)
    p = PeerWireParser(True)
    t = TcpStream(p)
    t.receive_segment(isn, SYN)
    for off, payload in order:
        t.receive_segment((isn + 1 + off) % 2**32, ACK | PSH, payload)
    t.close()
    st_ = t.stats
    cov = covered_ranges(order, len(data))
    end = max((off + len(x) for off, x in order), default=0)
    # reference: the captured ranges as data, the rest as gaps, up to the last captured byte
    ref = PeerWireParser(True)
    events = []
    i = 0
    while i < end:
        j = i
        while j < end and cov[j] == cov[i]:
            j += 1
        events += ref.receive_data(data[i:j]) if cov[i] else ref.receive_gap(j - i)
        i = j
    events += ref.receive_eof()
    assert p.take_events() == events
    assert pstate(p) == pstate(ref)
    assert st_["gap_bytes"] == end - sum(cov[:end])
    assert st_["delivered_bytes"] == sum(cov)
    assert st_["payload_bytes"] == st_["delivered_bytes"] + st_["duplicate_bytes"] + st_["late_bytes"]
    assert p.accounted_bytes() == p.stream_off == end
