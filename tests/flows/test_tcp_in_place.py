"""TCP streams that leave delivered bytes where they lie (a mapped capture file, ``owner``) and
copy them into the comparison ring only when needed give what copying every delivery gives:
the same conflicts, uncompared and duplicate bytes, the same stream to the parser, whatever the
segment sizes, the distance of a retransmission, a change of buffer or a gap."""
from __future__ import annotations

import random

import pytest

from analyzer.flows._tcp import TcpStream
from analyzer.protocols.peerwire import PeerWireParser
from craft_tcp import ACK, PSH, SYN, seeder_stream

ISN = 5000
STATS = ("segments", "payload_bytes", "delivered_bytes", "duplicate_bytes", "conflict_bytes", "conflict_segments",
         "uncompared_bytes", "gap_bytes", "gaps", "late_bytes", "next_off")


def script(seed: int, data: bytes) -> list:
    """Operations on a stream of ``data``: in-order deliveries of random sizes from one of two
    buffers holding the data (a change of buffer, as between two files), retransmissions of
    earlier ranges near and far (some with bytes changed), out-of-order segments, acks."""
    rnd = random.Random(seed)
    ops, off = [], 0
    while off < len(data):
        n = min(len(data) - off, rnd.choice([1, 7, 100, 536, 1448, 1448, 1448, 2896, 9000]))
        r = rnd.random()
        if r < 0.04 and off + n + 3000 < len(data):              # a later segment first (out of order)
            ops.append(("seg", off + n, 1500, rnd.randrange(2), False))
        ops.append(("seg", off, n, 0 if rnd.random() < 0.97 else 1, False))
        off += n
        if rnd.random() < 0.08 and off > 10:                      # a retransmission, maybe changed
            back = rnd.choice([10, 500, 5000, 60_000, 70_000, 200_000])
            a = max(0, off - back)
            k = min(off - a, rnd.choice([1, 300, 1448, 4000]))
            ops.append(("seg", a, k, rnd.randrange(2), rnd.random() < 0.5))
        if rnd.random() < 0.1:
            ops.append(("ack", off - rnd.randrange(min(off, 3000) + 1)))
    return ops


def run(data: bytes, ops: list, in_place: bool, sink: bool):
    bufs = [bytes(data), bytes(bytearray(data))]                  # two buffers, the same bytes
    changed = bytearray(data)
    for i in range(0, len(changed), 97):
        changed[i] ^= 0x5A
    changed = bytes(changed)
    p = PeerWireParser(True) if sink else None
    s = TcpStream(p)
    s.receive_segment(ISN, SYN)
    pending_seen = 0
    for op in ops:
        if op[0] == "ack":
            s.receive_ack((ISN + 1 + op[1]) % 2**32)
            continue
        _, off, n, which, modify = op
        src = changed if modify else bufs[which]
        seq = (ISN + 1 + off) % 2**32
        if in_place:
            s.receive_in_place(seq, ACK | PSH, src, off, n)
        else:
            s.receive_segment(seq, ACK | PSH, src[off:off + n])
        pending_seen = max(pending_seen, s.pending_deliveries)
    s.close()
    st = {k: s.stats[k] for k in STATS}
    return st, (p.take_events() if p else None), pending_seen


@pytest.mark.parametrize("seed", range(12))
def test_in_place_deliveries_compare_as_copies_do(seed):
    data = random.Random(seed).randbytes(600_000)
    ops = script(seed, data)
    copied, _, none_pending = run(data, ops, False, False)
    placed, _, pending = run(data, ops, True, False)
    assert placed == copied
    assert none_pending == 0 and pending > 1                      # the in-place path was taken
    assert copied["duplicate_bytes"] > 0 and copied["conflict_bytes"] > 0 and copied["uncompared_bytes"] > 0


def test_in_place_deliveries_give_the_parser_the_same_stream():
    data = bytes(seeder_stream(bytes(range(20)), pieces=6, blocks_per_piece=8, last_block=16384).data)
    ops = script(99, data)
    (copied, ev_copied, _), (placed, ev_placed, pending) = run(data, ops, False, True), run(data, ops, True, True)
    assert placed == copied and ev_placed == ev_copied and pending > 1


def test_a_gap_and_an_idle_release_drop_nothing_that_is_compared():
    """A hole declared a gap (the receiver acked past it) and the ring released (``shrink``)
    while deliveries are pending: later duplicates are compared or uncompared as with copies."""
    data = random.Random(5).randbytes(300_000)
    ops = [("seg", o, 1448, 0, False) for o in range(0, 100_000, 1448)]
    hole = ops[-1][1] + 1448
    ops += [("seg", o, 1448, 0, False) for o in range(hole + 20_000, 250_000, 1448)]
    ops += [("ack", 250_000)] * 70                                 # the hole is given up as a gap
    ops += [("seg", 90_000, 4000, 0, True), ("seg", 240_000, 4000, 0, True), ("seg", 200_000, 1000, 0, False)]
    assert run(data, ops, True, False)[0] == run(data, ops, False, False)[0]
