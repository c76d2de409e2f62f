"""Oversized peer wire messages (issue 12): a bitfield claiming 100 MB made the rest of the
connection opaque and the next piece was lost.  A bitfield, piece, extended or hashes message
whose length is over the cap is now passed by its length (never buffered), reported, and the
parser stays in sync."""
from __future__ import annotations

import random
import struct
import time
import tracemalloc

import pytest

from analyzer.protocols import events as ev
from analyzer.protocols.peerwire import PeerWireParser
from fuzz import hostile as H
from pwire import (
    BLOCK, DEFAULT_MAX_BLOCK, MAX_MESSAGE, block_data, check_identity, handshake, have, message, piece,
    raw_header, run, run_chunked, snapshot,
)

HS = handshake()
BEFORE = have(1) + message(2)
AFTER = piece(4, 0, block_data(BLOCK)) + have(2) + message(1)
AFTER_EVENTS = [ev.Piece(4, 0, BLOCK, 0), ev.Have(2), ev.Unchoke()]


def oversized(msg_id: int, length: int) -> bytes:
    body = bytes((i * 7) & 0xFF for i in range(length - 1))
    return raw_header(length, msg_id) + body


CASES = [
    ("bitfield", 5, MAX_MESSAGE + 2),
    ("extended", 20, MAX_MESSAGE + 100),
    ("hashes", 22, MAX_MESSAGE + 49 + 32),
    ("piece", 7, 9 + DEFAULT_MAX_BLOCK + 1),
]


@pytest.mark.parametrize("name,msg_id,length", CASES, ids=[c[0] for c in CASES])
def test_oversized_message_is_skipped_by_its_length(name, msg_id, length):
    big = oversized(msg_id, length)
    p, events = run([HS + BEFORE + big + AFTER])
    off = 68 + len(BEFORE)
    assert events[1:3] == [ev.Have(1), ev.Interested()]
    assert events[3] == ev.OversizedMessage(off, msg_id, length)
    assert events[4:] == AFTER_EVENTS
    assert p.oversized_messages == 1 and p.protocol_errors == 1 and p.resyncs == p.desyncs == 0
    assert p.unparsed_bytes == length - 1
    assert p.message_bytes == len(BEFORE) + 5 + len(AFTER) - BLOCK
    assert p.block_bytes == BLOCK and p.pieces == 1


@pytest.mark.parametrize("name,msg_id,length", CASES, ids=[c[0] for c in CASES])
def test_chunking_invariance(name, msg_id, length):
    """Whole, split at every offset around the header and the end, and at random points."""
    data = HS + BEFORE + oversized(msg_id, length) + AFTER
    start = 68 + len(BEFORE)
    end = start + 4 + length
    ref, ref_events = run([data])
    rnd = random.Random(msg_id)
    cut_sets = [range(start - 2, start + 8), range(end - 6, end + 20),
                sorted(rnd.sample(range(1, len(data)), 300))]
    for cuts in cut_sets:
        p, events = run_chunked(data, cuts)
        assert events == ref_events and snapshot(p) == snapshot(ref)


def test_the_100_mb_bitfield_case():
    """The issue's case: a bitfield claiming 100 MB, all of it on the wire, then a piece and a have:
    both parsed, in bounded memory (nothing of the 100 MB is kept) and time."""
    tracemalloc.start()
    t0 = time.monotonic()
    try:
        p = PeerWireParser(True)
        events = []
        for chunk in H.oversized_bitfield_stream(100 << 20):
            events += p.receive_data(chunk)
        events += p.receive_eof()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    check_identity(p)
    assert events[1] == ev.OversizedMessage(68, 5, 100 << 20)
    assert events[2:] == [ev.Piece(0, 0, 16384, 0), ev.Have(3)]
    assert p.opaque_bytes == 0 and p.unparsed_bytes == (100 << 20) - 1 and p.state_name == "header"
    assert peak < 8 << 20, f"peak {peak >> 20} MiB"
    assert time.monotonic() - t0 < 10


def test_gap_inside_the_skipped_message_keeps_framing():
    big = oversized(5, MAX_MESSAGE + 2)
    cut = 68 + len(BEFORE) + 5 + 1000
    data = HS + BEFORE + big + AFTER
    p, events = run([data[:cut], 5000, data[cut + 5000:]])
    assert events[3] == ev.OversizedMessage(68 + len(BEFORE), 5, MAX_MESSAGE + 2)
    assert events[4] == ev.Gap(cut, 5000, False)
    assert events[5:] == AFTER_EVENTS
    assert p.gap_bytes == 5000 and p.unparsed_bytes == MAX_MESSAGE + 1 - 5000 and p.desyncs == 0


def test_gap_past_the_end_of_the_skipped_message_desyncs():
    big = oversized(5, MAX_MESSAGE + 2)
    data = HS + BEFORE + big + AFTER
    end = 68 + len(BEFORE) + len(big)
    p, events = run([data[:end - 10], 13, data[end + 3:]])
    assert p.desyncs == 1 and p.oversized_messages == 1
    assert ev.Have(2) in events and ev.Unchoke() in events        # found again after the gap


def test_break_inside_the_skipped_message_desyncs():
    big = oversized(20, MAX_MESSAGE + 100)
    p = PeerWireParser(True)
    events = p.receive_data(HS + big[:5000]) + p.receive_break() + p.receive_data(AFTER) + p.receive_eof()
    check_identity(p)
    assert p.desyncs == 1 and p.breaks == 1
    assert events[-3:] == AFTER_EVENTS


def test_end_inside_the_skipped_message():
    big = oversized(5, MAX_MESSAGE + 2)
    p, events = run([HS + big[:70000]])
    assert events[1:] == [ev.OversizedMessage(68, 5, MAX_MESSAGE + 2)]
    assert p.unparsed_bytes == 70000 - 5 and p.state_name == "header"


@pytest.mark.parametrize("header", [raw_header(MAX_MESSAGE + 2, 0x63), raw_header(2, 0), raw_header(0xFFFFFFFF, 4)])
def test_unknown_ids_and_fixed_lengths_stay_protocol_errors(header):
    """Only known variable-length kinds are trusted with a long length; the rest resync."""
    p, events = run([HS + BEFORE + header + bytes(20) + have(7) + message(1)])
    assert p.oversized_messages == 0 and p.protocol_errors == 1 and p.resyncs == 1
    assert events[-2:] == [ev.Have(7), ev.Unchoke()]


def test_largest_accepted_lengths_are_not_oversized():
    bits = bytes(MAX_MESSAGE)
    p, events = run([HS + message(5, bits) + piece(0, 0, block_data(DEFAULT_MAX_BLOCK))])
    assert p.oversized_messages == 0 and events[1:] == [ev.Bitfield(bits), ev.Piece(0, 0, DEFAULT_MAX_BLOCK, 0)]


def test_oversized_length_with_4gb_claim_at_eof():
    p, events = run([HS + struct.pack(">IB", 0xFFFFFFFF, 5) + b"\xff" * 100])
    assert events[1] == ev.OversizedMessage(68, 5, 0xFFFFFFFF) and p.unparsed_bytes == 100


def test_oversized_messages_are_written_out(tmp_path):
    """connections.csv (per direction) and summary.json accounting.peer_wire count the messages
    skipped by their length."""
    import csv
    import io
    from analyzer.analysis import analyze
    from analyzer.findings import build_findings
    from analyzer.output.tables import connections_csv
    from flows.craft_tcp import Conversation, write_pcap
    from summaries import summarize
    c = Conversation(("10.0.0.1", 51413), ("10.0.0.2", 6881), mss=16000)
    c.open()
    c.send(0, HS)
    c.send(1, HS + oversized(5, MAX_MESSAGE + 2) + AFTER)
    c.close()
    result = analyze([write_pcap(tmp_path / "oversized.pcap", (c.ep, c.segs))], local=["10.0.0.1"],
                     warn=lambda m: None)
    [row] = csv.DictReader(io.StringIO(connections_csv(build_findings(result))))
    assert (row["oversized_messages_src_to_dst"], row["oversized_messages_dst_to_src"]) == ("0", "1")
    assert row["protocol_errors_dst_to_src"] == "1" and row["pieces_dst_to_src"] == "1"
    assert summarize(result)["accounting"]["peer_wire"]["oversized_messages"] == 1
