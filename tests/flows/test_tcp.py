"""TCP reassembly (``TcpStream``), alone and with a ``PeerWireParser`` sink.

The reference for every sink test is the same byte stream parsed directly by
a fresh parser: whatever the segmentation, order, duplication or sequence
number wrap, the sink must see exactly that stream (same events, same
counters), and the stream counters must say what happened on the wire.
"""
from __future__ import annotations

import random

import pytest

from analyzer.flows._tcp import TcpStream
from analyzer.protocols import events as ev
from analyzer.protocols.peerwire import PeerWireParser
from craft_tcp import ACK, BLOCK, FIN, PSH, RST, SYN, seeder_stream

PATIENCE = 64          # frames a hole acknowledged by the receiver may stay open (mirrors _tcp.pyx)
IH = bytes(range(20))
PARSER_FIELDS = (
    "stream_off", "handshake_bytes", "message_bytes", "block_bytes", "unparsed_bytes", "opaque_bytes",
    "gap_bytes", "block_tail_bytes", "block_gap_bytes", "messages", "pieces", "protocol_errors", "resyncs",
    "desyncs", "peer_id", "info_hash", "synced",
)


def pstate(p: PeerWireParser) -> dict:
    return {k: getattr(p, k) for k in PARSER_FIELDS}


def reference(data: bytes, at_stream_start: bool = True):
    p = PeerWireParser(at_stream_start)
    events = p.receive_data(data) + p.receive_eof()
    return events, pstate(p)


def cut(data: bytes, mss: int, isn: int, syn: bool = True) -> list[tuple[int, bytes]]:
    """(seq, payload) segments of ``data``; the first byte is at isn+1 (after a SYN) or isn."""
    base = isn + 1 if syn else isn
    return [((base + i) % 2**32, data[i:i + mss]) for i in range(0, len(data), mss)]


def new(sink: bool = True, at_stream_start: bool = True, isn: int | None = 1000):
    p = PeerWireParser(at_stream_start) if sink else None
    s = TcpStream(p)
    if isn is not None:
        s.receive_segment(isn, SYN)
    return s, p


def deliver(s: TcpStream, segs, flags: int = ACK | PSH) -> None:
    for seq, payload in segs:
        s.receive_segment(seq, flags, payload)


def finish(s: TcpStream, p: PeerWireParser | None):
    s.close()
    st = s.stats
    # every captured payload byte is delivered once, or a duplicate, or late
    assert st["payload_bytes"] == st["delivered_bytes"] + st["duplicate_bytes"] + st["late_bytes"], st
    assert st["next_off"] == st["delivered_bytes"] + st["gap_bytes"], st
    if p is None:
        return st, None, None
    assert p.accounted_bytes() == p.stream_off == st["next_off"]
    assert p.gap_bytes == st["gap_bytes"]
    assert st["marked_bytes"] == p.block_bytes
    assert 0 <= st["marked_acked_bytes"] <= st["marked_bytes"]
    return st, p.take_events(), pstate(p)


@pytest.fixture(scope="module")
def bt():
    return seeder_stream(IH, pieces=2, blocks_per_piece=2, last_block=5000)


# ---------------------------------------------------------------------- in order, no sink / sink
def test_in_order_without_sink():
    data = random.Random(1).randbytes(10_000)
    s, _ = new(sink=False)
    deliver(s, cut(data, 1000, 1000))
    st, _, _ = finish(s, None)
    assert st["delivered_bytes"] == st["payload_bytes"] == 10_000
    assert st["segments"] == 10
    assert st["duplicate_bytes"] == st["gap_bytes"] == st["conflict_bytes"] == 0
    assert s.syn_seen and s.isn == 1000 and s.finished


def test_in_order_with_parser(bt):
    s, p = new()
    deliver(s, cut(bytes(bt), 1448, 1000))
    st, events, state = finish(s, p)
    assert (events, state) == reference(bytes(bt))
    assert p.block_bytes == bt.block_bytes
    assert st["marked_bytes"] == bt.block_bytes


def test_pure_acks_and_empty_segments_do_not_start_a_stream():
    s = TcpStream(None)
    s.receive_segment(5000, ACK)
    s.receive_ack(77)
    assert not s.started
    s.receive_segment(5000, ACK | PSH, b"abc")
    assert s.started and not s.syn_seen and s.next_off == 3


# ---------------------------------------------------------------------- reordering and duplicates
@pytest.mark.parametrize("order", ["reverse", "pairs", "shuffle", "interleave"])
def test_reordering(bt, order):
    segs = cut(bytes(bt), 1000, 1000)
    if order == "reverse":
        segs = segs[::-1]
    elif order == "pairs":
        segs = [x for i in range(0, len(segs), 2) for x in segs[i:i + 2][::-1]]
    elif order == "shuffle":
        random.Random(4).shuffle(segs)
    else:
        segs = segs[1::2] + segs[0::2]
    s, p = new()
    deliver(s, segs)
    assert s.ooo_bytes == 0
    st, events, state = finish(s, p)
    assert (events, state) == reference(bytes(bt))
    assert st["duplicate_bytes"] == st["gap_bytes"] == st["late_bytes"] == 0


def test_retransmissions_counted_once(bt):
    segs = cut(bytes(bt), 1000, 1000)
    wire = []
    extra = 0
    for i, seg in enumerate(segs):
        wire.append(seg)
        if i % 3 == 0:
            wire.append(seg)                      # immediate retransmission
            extra += len(seg[1])
    wire += segs[5:8]                             # late retransmissions of old data
    extra += sum(len(x[1]) for x in segs[5:8])
    s, p = new()
    deliver(s, wire)
    st, events, state = finish(s, p)
    assert (events, state) == reference(bytes(bt))
    assert st["duplicate_bytes"] == extra
    assert st["delivered_bytes"] == len(bt)
    assert st["conflict_bytes"] == st["conflict_segments"] == 0


def test_retransmission_of_out_of_order_segment(bt):
    segs = cut(bytes(bt), 1000, 1000)
    s, p = new()
    deliver(s, [segs[2], segs[2], segs[3], segs[2], segs[0], segs[1]] + segs[4:])
    st, events, state = finish(s, p)
    assert (events, state) == reference(bytes(bt))
    assert st["duplicate_bytes"] == 2 * len(segs[2][1])


def test_overlapping_resegmentation(bt):
    data = bytes(bt)
    isn = 1000
    s, p = new(isn=isn)
    first = cut(data[:6000], 1000, isn)
    deliver(s, first[:3] + first[4:])                 # [3000, 4000) missing
    # the sender re-segments: one retransmission covering [2500, 4700), then the rest of the stream
    deliver(s, [((isn + 1 + 2500), data[2500:4700])])
    deliver(s, [((isn + 1 + 5500 + i) % 2**32, data[5500 + i:5500 + i + 1400]) for i in range(0, len(data) - 5500, 1400)])
    st, events, state = finish(s, p)
    assert (events, state) == reference(data)
    # 500 + 700 bytes of the big retransmission and 500 of the next one were seen before
    assert st["duplicate_bytes"] == 500 + 700 + 500
    assert st["conflict_bytes"] == 0


def test_conflicting_overlap_first_copy_wins(bt):
    data = bytes(bt)
    segs = cut(data, 1000, 1000)
    bad = bytearray(segs[3][1])
    for i in (0, 10, 999):
        bad[i] ^= 0xFF
    s, p = new()
    deliver(s, segs[:5] + [(segs[3][0], bytes(bad))] + segs[5:])
    st, events, state = finish(s, p)
    assert (events, state) == reference(data)
    assert st["conflict_bytes"] == 3 and st["conflict_segments"] == 1
    assert st["duplicate_bytes"] == 1000


def test_conflicting_overlap_in_out_of_order_buffer(bt):
    data = bytes(bt)
    segs = cut(data, 1000, 1000)
    bad = bytearray(data[4500:5500])
    bad[100] ^= 1
    bad[600] ^= 1
    s, p = new()
    # [4000, 5000) and [5000, 6000) wait out of order; a conflicting copy of [4500, 5500) arrives
    deliver(s, [segs[4], segs[5], ((1001 + 4500), bytes(bad))] + segs[:4] + segs[6:])
    st, events, state = finish(s, p)
    assert (events, state) == reference(data)
    assert st["conflict_bytes"] == 2
    assert st["duplicate_bytes"] == 1000


def test_old_duplicate_beyond_ring_is_uncompared():
    data = random.Random(2).randbytes(3 << 20)
    segs = cut(data, 65536, 1000)
    s, _ = new(sink=False)
    deliver(s, segs + [segs[0]])
    st, _, _ = finish(s, None)
    assert st["duplicate_bytes"] == 65536
    assert st["uncompared_bytes"] == 65536          # older than the comparison ring
    assert st["conflict_bytes"] == 0


@pytest.mark.parametrize("delivered", [40, 255, 256, 257, 3000, 40_000, 65_536, 200_000])
def test_a_changed_retransmission_is_compared_at_every_ring_size(delivered):
    """The ring starts at 256 bytes and doubles while it holds every byte delivered: a
    retransmission of the first bytes with one byte changed is compared (one conflicting byte)
    as long as they are within the last 64 KiB, whatever the ring's size at the time."""
    data = random.Random(delivered).randbytes(delivered)
    s, _ = new(sink=False)
    deliver(s, cut(data, 1000, 1000))
    k = min(delivered, 1000)
    changed = bytearray(data[:k])
    changed[k // 2] ^= 0xFF
    deliver(s, [(1001, bytes(changed))])
    st, _, _ = finish(s, None)
    assert st["duplicate_bytes"] == k
    if delivered <= 65_536:
        assert (st["conflict_bytes"], st["conflict_segments"], st["uncompared_bytes"]) == (1, 1, 0)
    else:
        assert (st["conflict_bytes"], st["uncompared_bytes"]) == (0, k)


# ---------------------------------------------------------------------- sequence number wrap-around
@pytest.mark.parametrize("isn", [2**32 - 1, 2**32 - 2, 2**32 - 5000, 2**32 - 40000])
def test_wrap_around_with_reordering(bt, isn):
    data = bytes(bt)
    segs = cut(data, 1000, isn)
    assert any(seq < 2**31 for seq, _ in segs) and (isn == 2**32 - 1 or any(seq > 2**31 for seq, _ in segs))
    order = segs[:]
    random.Random(isn).shuffle(order)
    s, p = new(isn=isn)
    deliver(s, order + order[:5])
    # the receiver acknowledges half of the stream, across the wrap
    half = len(data) // 2
    s.receive_ack((isn + 1 + half) % 2**32)
    assert s.stats["marked_acked_bytes"] == bt.block_bytes_in(0, half)
    s.receive_ack((isn + 1 + len(data)) % 2**32)
    st, events, state = finish(s, p)
    assert (events, state) == reference(data)
    assert st["delivered_bytes"] == len(data) and st["duplicate_bytes"] == sum(len(x[1]) for x in order[:5])
    assert st["marked_acked_bytes"] == bt.block_bytes


def test_wrap_around_mid_stream_start(bt):
    data = bytes(bt)
    first = 2**32 - 3000
    segs = cut(data, 1000, first, syn=False)
    s, p = new(at_stream_start=False, isn=None)
    deliver(s, segs[5:] + segs[:5])            # earlier segments arrive after the first one seen
    st, events, state = finish(s, p)
    assert st["late_bytes"] == 5000            # before the first byte followed: too late
    assert st["delivered_bytes"] == len(data) - 5000
    assert (events, state) == reference(data[5000:], at_stream_start=False)


# ---------------------------------------------------------------------- mid-stream start
def test_mid_stream_start(bt):
    data = bytes(bt)
    start = bt.blocks[0][0] + 3000            # 3000 bytes into the first block
    segs = cut(data[start:], 1448, 777_777, syn=False)
    s, p = new(at_stream_start=False, isn=None)
    deliver(s, segs)
    st, events, state = finish(s, p)
    assert not s.syn_seen
    assert (events, state) == reference(data[start:], at_stream_start=False)
    assert events[0] == ev.Resync(BLOCK - 3000, BLOCK - 3000, True)
    assert p.block_tail_bytes == BLOCK - 3000
    assert p.block_bytes == bt.block_bytes - 3000
    assert st["marked_bytes"] == bt.block_bytes - 3000


# ---------------------------------------------------------------------- holes and gaps
def hole_setup(bt, hole=(20, 22)):
    """Segments of 1000 bytes with segments [hole) never captured."""
    data = bytes(bt)
    segs = cut(data, 1000, 1000)
    kept = segs[:hole[0]] + segs[hole[1]:]
    lo, hi = hole[0] * 1000, hole[1] * 1000
    return data, segs, kept, lo, hi


def test_hole_not_acknowledged_waits_until_close(bt):
    data, segs, kept, lo, hi = hole_setup(bt)
    s, p = new()
    deliver(s, kept)
    for _ in range(3 * PATIENCE):
        s.receive_segment(segs[-1][0], ACK | PSH, segs[-1][1])   # retransmissions: frames go by
    s.receive_ack(1001 + lo)                                  # the receiver only got bytes up to the hole
    assert s.stats["gap_bytes"] == 0 and s.next_off == lo and s.ooo_bytes == len(data) - hi
    st, events, _ = finish(s, p)
    assert st["gap_bytes"] == hi - lo and st["gaps"] == 1
    assert ev.Gap(lo, hi - lo, True) in events                # inside block 1 of piece 0
    assert p.block_gap_bytes == hi - lo
    assert p.block_bytes == bt.block_bytes - (hi - lo)


def test_hole_acknowledged_becomes_gap_after_patience(bt):
    data, segs, kept, lo, hi = hole_setup(bt)
    s, p = new()
    deliver(s, kept[:30])                      # up to the hole, and 10 segments beyond it
    s.receive_ack(1001 + hi + 5000)            # the receiver got the hole's bytes: the capture missed them
    for i in range(PATIENCE - 2):
        s.receive_ack(1001 + hi + 5000)        # further frames (duplicate ACKs)
    assert s.stats["gap_bytes"] == 0, "declared before PATIENCE frames went by"
    for i in range(3):
        s.receive_ack(1001 + hi + 5000)
    assert s.stats["gap_bytes"] == hi - lo and s.stats["gaps"] == 1
    assert s.next_off == 30 * 1000 + (hi - lo)                 # the waiting segments were delivered
    events = p.take_events()
    assert ev.Gap(lo, hi - lo, True) in events
    # the missing bytes show up later: too late
    deliver(s, segs[20:22] + kept[30:])
    st, events2, state = finish(s, p)
    assert st["late_bytes"] == hi - lo
    assert st["gap_bytes"] == hi - lo
    assert p.block_bytes == bt.block_bytes - (hi - lo)


def test_patience_counts_frames_per_hole():
    """BUG: ``hole_frames`` is only reset when the receiver's ACK point is
    reached, not when the hole it counted for is filled.  A capture that
    steadily shows each ACK two segments before the data it acknowledges
    (multi-queue capture reordering, the very case PATIENCE absorbs) has a
    *new* one-frame hole every time, yet after PATIENCE frames one of them is
    declared a gap and its bytes, arriving in the next frame, are counted as
    late: here 1100 of 20000 bytes are lost although every byte was captured."""
    isn = 1000
    s = TcpStream(None)
    s.receive_segment(isn, SYN)
    n = 200
    data = [bytes([i % 256]) * 100 for i in range(n)]
    s.receive_ack(isn + 1 + 100)
    for i in range(n):
        s.receive_ack(isn + 1 + min(i + 2, n) * 100)
        s.receive_segment(isn + 1 + i * 100, ACK, data[i])
    st, _, _ = finish(s, None)
    assert st["gap_bytes"] == 0 and st["late_bytes"] == 0
    assert st["delivered_bytes"] == 100 * n


def test_close_declares_trailing_gap_up_to_ack(bt):
    data = bytes(bt)
    segs = cut(data, 1000, 1000)
    s, p = new()
    deliver(s, segs[:-3])
    s.receive_ack(1001 + len(data))            # the receiver got everything
    st, events, _ = finish(s, p)
    tail = len(data) - 1000 * (len(segs) - 3)
    assert st["gap_bytes"] == tail
    assert st["delivered_bytes"] == len(data) - tail


def test_ack_of_uncaptured_fin_is_not_a_gap_byte():
    """BUG: when the FIN segment itself is missing from the capture but the
    receiver's ACK of it (fin_off + 1) is seen, close() declares a 1-byte gap
    (the FIN's sequence number is not a stream byte): gap_bytes reports data
    that never existed and the parser receives a Gap event."""
    s, p = new()
    s.receive_segment(1001, ACK | PSH, b"\x13BitTorrent protocol" + bytes(48))
    s.receive_ack(1001 + 68 + 1)               # ACK of the FIN; the FIN was not captured
    st, events, _ = finish(s, p)
    assert st["gap_bytes"] == 0
    assert not any(isinstance(e, ev.Gap) for e in events)


def test_fin_is_not_a_gap_byte():
    s, _ = new(sink=False)
    s.receive_segment(1001, ACK | PSH, b"x" * 100)
    s.receive_segment(1101, FIN | ACK)
    s.receive_ack(1102)                        # ACK of the FIN
    st, _, _ = finish(s, None)
    assert st["gap_bytes"] == 0 and st["ack_off"] == 100 and s.fin_seen


def test_rst_is_recorded():
    s, _ = new(sink=False)
    s.receive_segment(1001, RST)
    assert s.rst_seen


# ---------------------------------------------------------------------- snap length
def test_snaplen_truncated_segment_in_block(bt):
    data = bytes(bt)
    segs = cut(data, 1000, 1000)
    s, p = new()
    deliver(s, segs[:20])
    seq, payload = segs[20]                      # inside block 1 of piece 0
    s.receive_segment(seq, ACK | PSH, payload[:600], paylen=len(payload))
    assert s.stats["gap_bytes"] == 400 and s.next_off == 21 * 1000   # declared at once
    deliver(s, segs[21:])
    st, events, _ = finish(s, p)
    assert st["truncated_bytes"] == 400
    assert st["payload_bytes"] == len(data) - 400
    assert ev.Gap(20 * 1000 + 600, 400, True) in events
    assert p.block_gap_bytes == 400 and p.desyncs == 0
    assert p.block_bytes == bt.block_bytes - 400


def test_snaplen_every_segment_truncated(bt):
    data = bytes(bt)
    segs = cut(data, 1000, 1000)
    s, p = new()
    keep = 1000 - 54
    for seq, payload in segs:
        s.receive_segment(seq, ACK | PSH, payload[:keep], paylen=len(payload))
    st, events, _ = finish(s, p)
    missing = sum(max(0, len(x) - keep) for _, x in segs)
    assert st["truncated_bytes"] == missing == st["gap_bytes"]
    assert st["delivered_bytes"] == len(data) - missing


def test_snaplen_truncated_out_of_order(bt):
    data = bytes(bt)
    segs = cut(data, 1000, 1000)
    s, p = new()
    deliver(s, segs[:20])
    seq, payload = segs[21]
    s.receive_segment(seq, ACK | PSH, payload[:300], paylen=1000)   # truncated, out of order
    deliver(s, [segs[20]] + segs[22:])
    st, events, _ = finish(s, p)
    assert st["truncated_bytes"] == 700 and st["gap_bytes"] == 700
    assert st["delivered_bytes"] == len(data) - 700
    assert p.block_bytes == bt.block_bytes - 700


def test_snaplen_gap_stops_at_buffered_data():
    """BUG: a snap-length-truncated segment delivered in order declares its whole
    missing tail a gap at once, even the part already waiting in the
    out-of-order buffer: here [600, 1000) is declared although [800, 1000) was
    captured; those 200 bytes are then thrown away as "duplicate/uncompared".
    The gap should end at the first buffered byte (min(end, ooo[0].off)).
    (Hypothesis' minimal form: segment [1, 68) buffered, then [0, 2) captured
    with 0 bytes -> 2 gap bytes instead of 1.)"""
    s, _ = new(sink=False)
    s.receive_segment(1001 + 800, ACK | PSH, b"b" * 1000)
    s.receive_segment(1001, ACK | PSH, b"a" * 600, paylen=1000)
    st, _, _ = finish(s, None)
    assert st["truncated_bytes"] == 400
    assert st["gap_bytes"] == 200
    assert st["delivered_bytes"] == 1600
    assert st["duplicate_bytes"] == st["uncompared_bytes"] == 0


# ---------------------------------------------------------------------- marked block bytes
def test_marked_bytes_follow_acknowledgements(bt):
    data = bytes(bt)
    segs = cut(data, 1000, 1000)
    s, p = new()
    points = [0, 50, 68, 200, 5000, 17000, 17001, 40000, len(data) - 1, len(data)]
    acked = 0
    for seq, payload in segs:
        s.receive_segment(seq, ACK | PSH, payload)
        delivered = s.next_off
        for x in points:
            if acked < x <= delivered:
                s.receive_ack(1001 + x)
                acked = x
                assert s.stats["marked_acked_bytes"] == bt.block_bytes_in(0, x), x
        assert s.stats["marked_bytes"] == bt.block_bytes_in(0, delivered)
    s.receive_ack(1001 + 10)                       # old ACK: ignored
    st, _, _ = finish(s, p)
    assert st["marked_acked_bytes"] == bt.block_bytes


def test_ack_ahead_of_capture_marks_bytes_acked_on_delivery(bt):
    data = bytes(bt)
    segs = cut(data, 1000, 1000)
    s, p = new()
    s.receive_ack(1001 + 30000)
    deliver(s, segs)
    st, _, _ = finish(s, p)
    assert st["marked_acked_bytes"] == bt.block_bytes_in(0, 30000)
    assert st["marked_bytes"] == bt.block_bytes


def test_unacknowledged_blocks_stay_unacked_at_close(bt):
    data = bytes(bt)
    s, p = new()
    deliver(s, cut(data, 1000, 1000))
    s.receive_ack(1001 + 20000)
    st, _, _ = finish(s, p)
    assert st["marked_acked_bytes"] == bt.block_bytes_in(0, 20000) < st["marked_bytes"]


def test_tail_range_of_mid_stream_start_is_marked(bt):
    data = bytes(bt)
    start = bt.blocks[0][0] + 3000
    s, p = new(at_stream_start=False, isn=None)
    s.receive_segment(5555, ACK | PSH, data[start:start + 1000])
    deliver(s, cut(data[start + 1000:], 1000, 5555 + 1000, syn=False))
    s.receive_ack(5555 + 2000)                     # inside the tail
    assert s.stats["marked_acked_bytes"] == 2000
    st, _, _ = finish(s, p)
    assert st["marked_bytes"] == p.block_bytes == bt.block_bytes - 3000


def test_acks_far_ahead_are_ignored():
    s, _ = new(sink=False)
    s.receive_segment(1001, ACK | PSH, b"x" * 100)
    s.receive_ack((1001 + 100 + (1 << 30) + 10) % 2**32)
    assert s.ack_off == 0
    s.receive_ack(1001 + 100)
    assert s.ack_off == 100


def test_gap_bytes_are_never_marked(bt):
    data, segs, kept, lo, hi = hole_setup(bt)
    s, p = new()
    deliver(s, kept)
    s.receive_ack(1001 + len(data))
    st, _, _ = finish(s, p)
    assert st["marked_bytes"] == st["marked_acked_bytes"] == bt.block_bytes - (hi - lo)
