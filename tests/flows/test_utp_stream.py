"""UtpStream (BEP 29 reassembly) through its Python API: packet order, wrap-around,
duplicates, losses, acknowledged block bytes."""
from __future__ import annotations

import struct

import pytest

from analyzer.flows._utp import UtpStream
from analyzer.protocols.peerwire import PeerWireParser

DATA, FIN, STATE, RESET, SYN = 0, 1, 2, 3, 4
HS = b"\x13BitTorrent protocol" + bytes(8) + bytes(range(20)) + b"-LT2110-abcdefghijkl"


def stream_bytes(n_blocks=4, block=1000):
    return HS + b"".join(struct.pack(">IBII", 9 + block, 7, i, 0) + bytes([i]) * block for i in range(n_blocks))


def packets(data, size=500):
    return [data[i:i + size] for i in range(0, len(data), size)]


def new(at_start=True):
    p = PeerWireParser(at_stream_start=at_start, event_mask=0)
    return UtpStream(p), p


@pytest.mark.parametrize("first_seq", [100, 65530, 65535, 0])
@pytest.mark.parametrize("order", ["in", "reversed_pairs", "reversed"])
def test_any_order_and_wrap_around_deliver_the_stream_once(first_seq, order):
    data = stream_bytes()
    pk = list(enumerate(packets(data)))
    if order == "reversed_pairs":
        pk = [x for i in range(0, len(pk), 2) for x in reversed(pk[i:i + 2])]
    elif order == "reversed":
        pk = pk[:1] + pk[1:][::-1]
    s, p = new()
    s.receive_packet(SYN, (first_seq - 1) & 0xFFFF)
    for i, chunk in pk:
        s.receive_packet(DATA, (first_seq + i) & 0xFFFF, chunk)
    s.receive_ack((first_seq + len(pk) - 1) & 0xFFFF)
    s.close()
    st = s.stats
    assert st["delivered_bytes"] == len(data) and st["gap_packets"] == 0
    assert p.block_bytes == 4000 and p.pieces == 4
    assert st["marked_bytes"] == st["marked_acked_bytes"] == 4000


def test_duplicates_counted_once_and_conflicts_flagged():
    data = stream_bytes()
    pk = packets(data)
    s, p = new()
    s.receive_packet(SYN, 9)
    for i, chunk in enumerate(pk):
        s.receive_packet(DATA, 10 + i, chunk)
    s.receive_packet(DATA, 12, pk[2])                    # retransmission, same bytes
    s.receive_packet(DATA, 13, b"X" * len(pk[3]))        # same seq_nr, different bytes
    st = s.stats
    assert st["duplicate_packets"] == 2 and st["conflict_packets"] == 1
    assert st["delivered_bytes"] == len(data) and p.block_bytes == 4000


def test_loss_declared_after_patience_and_framing_recovers():
    data = stream_bytes(n_blocks=8, block=1000)
    pk = packets(data, 250)
    s, p = new()
    s.receive_packet(SYN, 0)
    lost = 10
    for i, chunk in enumerate(pk):
        if i != lost:
            s.receive_packet(DATA, 1 + i, chunk)
    # the receiver acknowledged everything: the capture missed packet `lost`
    for _ in range(70):
        s.receive_ack(len(pk))
    st = s.stats
    assert st["gap_packets"] == 1 and st["delivered_bytes"] == len(data) - len(pk[lost])
    s.close()
    # the block around the loss is lost to framing; later blocks are counted again
    assert 4000 <= p.block_bytes < 8000 and p.resyncs >= 1


def test_no_loss_before_patience():
    data = stream_bytes()
    pk = packets(data)
    s, _ = new()
    s.receive_packet(SYN, 0)
    s.receive_packet(DATA, 1, pk[0])
    s.receive_packet(DATA, 3, pk[2])
    s.receive_ack(3)                      # acked past the hole: capture reordering is possible
    assert s.stats["gap_packets"] == 0
    s.receive_packet(DATA, 2, pk[1])      # the retransmission / late copy arrives
    for i in range(3, len(pk)):
        s.receive_packet(DATA, 1 + i, pk[i])
    s.close()
    assert s.stats["gap_packets"] == 0 and s.stats["delivered_bytes"] == len(data)


def test_selective_acks_count_acked_block_bytes_out_of_order():
    data = stream_bytes(n_blocks=2, block=1000)       # 68 + 2*1013 bytes
    pk = packets(data, 500)                            # 5 packets: seq 1..5
    s, p = new()
    s.receive_packet(SYN, 0)
    for i, chunk in enumerate(pk):
        s.receive_packet(DATA, 1 + i, chunk)
    s.receive_ack(1)                                   # cumulative: packet 1 only
    acked_first = s.stats["marked_acked_bytes"]
    s.receive_ack(1, bytes([0b00000111]))              # SACK: packets 3, 4, 5
    after_sack = s.stats["marked_acked_bytes"]
    assert after_sack > acked_first
    s.receive_ack(5)
    assert s.stats["marked_acked_bytes"] == p.block_bytes == 2000


def test_ack_of_uncaptured_fin_is_not_a_loss():
    s, _ = new()
    s.receive_packet(SYN, 0)
    s.receive_packet(DATA, 1, HS)
    s.receive_ack(2)                      # acks the FIN (seq 2), which the capture missed
    s.close()
    assert s.stats["gap_packets"] == 0


def test_mid_stream_start_counts_block_tail():
    data = stream_bytes(n_blocks=4, block=16384)
    start = 68 + 13 + 5000                 # inside the first block
    tail = data[start:]
    s, p = new(at_start=False)
    for i, chunk in enumerate(packets(tail, 1400)):
        s.receive_packet(DATA, 500 + i, chunk)
    s.close()
    assert p.block_tail_bytes == 16384 - 5000
    assert p.block_bytes == 4 * 16384 - 5000


@pytest.mark.parametrize("late", ["cumulative", "selective"])
def test_acknowledgements_after_the_receiver_closed_credit_nothing(late):
    """libtorrent's uTP stack goes on acknowledging packets after its side sent ST_FIN; its
    application has gone and never reads them: they are not acknowledged block bytes."""
    data = stream_bytes(n_blocks=4, block=1000)
    pk = packets(data)
    s, p = new()
    s.receive_packet(SYN, 9)
    for i, chunk in enumerate(pk):
        s.receive_packet(DATA, 10 + i, chunk)
    s.receive_ack(10 + 3)                 # the FIN's own ack_nr still counts (it is read first)
    before = s.stats["marked_acked_bytes"]
    s.receiver_close()
    if late == "cumulative":
        s.receive_ack(10 + len(pk) - 1)
    else:
        s.receive_ack(10 + 3, bytes([0xFF]))
    s.close()
    st = s.stats
    assert 0 < before < st["marked_bytes"] == 4000
    assert st["marked_acked_bytes"] == before
    assert st["gap_packets"] == 0


def test_data_acknowledged_before_the_close_but_captured_after_it_still_counts():
    """Data the receiver acknowledged before closing, captured late (out of order), still counts."""
    data = stream_bytes(n_blocks=2, block=1000)
    pk = packets(data)
    s, p = new()
    s.receive_packet(SYN, 9)
    for i, chunk in enumerate(pk[:-1]):
        s.receive_packet(DATA, 10 + i, chunk)
    s.receive_ack(10 + len(pk) - 1)       # acknowledges the last packet too
    s.receiver_close()
    s.receive_packet(DATA, 10 + len(pk) - 1, pk[-1])
    s.close()
    st = s.stats
    assert st["marked_acked_bytes"] == st["marked_bytes"] == 2000
