"""Unit tests of the sans-IO peer wire parser (BEP 3, 6, 10, 52).

Every test ends the stream and checks the exclusive byte accounting identity
(``accounted_bytes() == stream_off``) through ``pwire.run``.
"""
from __future__ import annotations

import tracemalloc

import pytest

from analyzer.protocols import events as ev
from analyzer.protocols.peerwire import PeerWireParser
from pwire import (
    BLOCK, DEFAULT_MAX_BLOCK, INFO_HASH, MAX_MESSAGE, PEER_ID, RES_DHT, RES_EXT, RES_FAST, RES_V2,
    allowed_fast, bitfield, block_data, cancel, check_identity, extended, handshake, hash_msg, have,
    keepalive, message, piece, port, raw_header, request, reject, reserved, run, run_chunked, snapshot,
    suggest,
)

HS = handshake()
HS_EVENT = ev.Handshake(bytes(8), INFO_HASH, PEER_ID)
ROOT = bytes(range(100, 132))
HASHES = bytes(range(64))

# (name, wire bytes, expected event, message id for message_counts (None: keep-alive))
MESSAGES = [
    ("keep_alive", keepalive(), ev.KeepAlive(), None),
    ("choke", message(0), ev.Choke(), 0),
    ("unchoke", message(1), ev.Unchoke(), 1),
    ("interested", message(2), ev.Interested(), 2),
    ("not_interested", message(3), ev.NotInterested(), 3),
    ("have", have(0xDEADBEEF), ev.Have(0xDEADBEEF), 4),
    ("bitfield", bitfield(b"\xff\xfe\x80"), ev.Bitfield(b"\xff\xfe\x80"), 5),
    ("request", request(3, 16384, 16384), ev.Request(3, 16384, 16384), 6),
    ("cancel", cancel(3, 32768, 16384), ev.Cancel(3, 32768, 16384), 8),
    ("port", port(6881), ev.Port(6881), 9),
    ("port_high", port(65535), ev.Port(65535), 9),
    ("suggest", suggest(12), ev.Suggest(12), 0x0D),
    ("have_all", message(0x0E), ev.HaveAll(), 0x0E),
    ("have_none", message(0x0F), ev.HaveNone(), 0x0F),
    ("reject", reject(4, 0, 16384), ev.Reject(4, 0, 16384), 0x10),
    ("allowed_fast", allowed_fast(77), ev.AllowedFast(77), 0x11),
    ("extended", extended(3, b"d8:msg_typei0e5:piecei0ee"), ev.Extended(3, b"d8:msg_typei0e5:piecei0ee"), 20),
    ("extended_empty_payload", extended(2, b""), ev.Extended(2, b""), 20),
    ("hash_request", hash_msg(21, ROOT, 0, 8, 4, 2), ev.HashRequest(ROOT, 0, 8, 4, 2), 21),
    ("hashes", hash_msg(22, ROOT, 0, 8, 2, 0, HASHES), ev.Hashes(ROOT, 0, 8, 2, 0, HASHES), 22),
    ("hash_reject", hash_msg(23, ROOT, 1, 16, 4, 3), ev.HashReject(ROOT, 1, 16, 4, 3), 23),
    ("unknown_id", message(0x63, b"abc"), ev.UnknownMessage(0x63, 4), 0x63),
]


@pytest.mark.parametrize("name,wire,expected,msg_id", MESSAGES, ids=[m[0] for m in MESSAGES])
def test_message(name, wire, expected, msg_id):
    p, events = run([HS, wire])
    assert events == [HS_EVENT, expected]
    assert p.message_bytes == len(wire)
    assert p.handshake_bytes == 68
    assert p.block_bytes == p.unparsed_bytes == p.opaque_bytes == p.gap_bytes == 0
    assert p.messages == 1
    assert p.message_counts == ({} if msg_id is None or msg_id >= 32 else {msg_id: 1})
    assert p.protocol_errors == p.resyncs == p.desyncs == 0
    assert p.state_name == "header"


@pytest.mark.parametrize("name,wire,expected,msg_id", MESSAGES, ids=[m[0] for m in MESSAGES])
def test_message_byte_by_byte(name, wire, expected, msg_id):
    data = HS + wire + message(1)
    p, events = run_chunked(data, range(len(data)))
    assert events == [HS_EVENT, expected, ev.Unchoke()]
    assert p.message_bytes == len(wire) + 5


@pytest.mark.parametrize("size", [0, 1, 100, BLOCK, DEFAULT_MAX_BLOCK])
def test_piece(size):
    block = block_data(size)
    p, events = run([HS, piece(9, 32768, block), message(2)])
    assert events == [HS_EVENT, ev.Piece(9, 32768, size, 0), ev.Interested()]
    assert p.block_bytes == size
    assert p.message_bytes == 13 + 5
    assert p.pieces == 1 and p.messages == 2
    assert p.message_counts == {7: 1, 2: 1}
    assert p.block_tail_bytes == p.block_gap_bytes == 0


def test_all_messages_back_to_back_in_one_stream():
    wires = [m[1] for m in MESSAGES] + [piece(1, 0, block_data(BLOCK)), piece(1, BLOCK, block_data(999))]
    p, events = run([HS + b"".join(wires)])
    assert events == [HS_EVENT, *(m[2] for m in MESSAGES), ev.Piece(1, 0, BLOCK, 0), ev.Piece(1, BLOCK, 999, 0)]
    assert p.block_bytes == BLOCK + 999
    assert p.message_bytes == sum(len(w) for w in wires) - BLOCK - 999
    assert p.messages == len(wires)


def test_extended_handshake_is_stored_once():
    first = b"d1:md11:ut_metadatai3ee1:pi6881e1:v13:Deluge 2.1.1e"
    second = b"d1:v5:othere"
    p, events = run([HS, extended(0, first), extended(1, b"x"), extended(0, second)])
    assert events == [HS_EVENT, ev.Extended(0, first), ev.Extended(1, b"x"), ev.Extended(0, second)]
    assert p.ext_handshake == first


def test_no_extended_handshake():
    p, _ = run([HS, extended(3, b"d1:ai1ee")])
    assert p.ext_handshake is None


# ---------------------------------------------------------------------- handshake
@pytest.mark.parametrize("bits,dht,fast,ext,v2", [
    ((), False, False, False, False),
    ((RES_DHT,), True, False, False, False),
    ((RES_FAST,), False, True, False, False),
    ((RES_EXT,), False, False, True, False),
    ((RES_V2,), False, False, False, True),
    ((RES_DHT, RES_FAST, RES_EXT, RES_V2), True, True, True, True),
])
def test_handshake_reserved_bits(bits, dht, fast, ext, v2):
    res = reserved(*bits)
    p, events = run([handshake(res=res)])
    assert events == [ev.Handshake(res, INFO_HASH, PEER_ID)]
    h = events[0]
    assert (h.supports_dht, h.supports_fast, h.supports_extensions, h.supports_v2) == (dht, fast, ext, v2)
    assert p.reserved == res and p.info_hash == INFO_HASH and p.peer_id == PEER_ID
    assert p.handshake_seen and p.synced
    assert p.handshake_bytes == 68 and p.stream_off == 68


def test_handshake_byte_by_byte():
    res = reserved(RES_EXT, RES_FAST)
    data = handshake(res=res) + message(2)
    p, events = run_chunked(data, range(len(data)))
    assert events == [ev.Handshake(res, INFO_HASH, PEER_ID), ev.Interested()]


@pytest.mark.parametrize("cut", [48, 50, 67])
def test_handshake_cut_by_eof_after_info_hash(cut):
    p, events = run([HS[:cut]])
    assert events == [ev.Handshake(bytes(8), INFO_HASH, None)]
    assert p.handshake_seen and p.info_hash == INFO_HASH and p.peer_id is None
    assert p.handshake_bytes == cut


@pytest.mark.parametrize("cut", [1, 20, 30, 47])
def test_handshake_cut_before_info_hash(cut):
    p, events = run([HS[:cut]])
    assert events == []
    assert not p.handshake_seen and p.info_hash is None
    assert p.stream_off == cut


def test_handshake_cut_by_gap_after_info_hash():
    rest = have(1) + message(1)
    p, events = run([HS[:55], 13, rest + have(2)])
    assert events[:3] == [ev.Gap(55, 13, False), ev.Handshake(bytes(8), INFO_HASH, None), ev.Desync(55)]
    assert events[3:] == [ev.Resync(68, 0, False), ev.Have(1), ev.Unchoke(), ev.Have(2)]
    assert p.handshake_bytes == 55 and p.gap_bytes == 13


@pytest.mark.parametrize("data", [
    b"GET /announce?info_hash=x HTTP/1.1\r\nHost: t\r\n\r\n",
    b"\x13BitTorrent protocoX" + bytes(60),          # differs in the 20th byte
    b"\x13BitTorrent" + b"\xff" * 100,               # differs after 12 bytes
    block_data(3000, seed=99),                       # e.g. an MSE/PE encrypted stream
])
@pytest.mark.parametrize("chunk", [None, 1, 7])
def test_not_bittorrent(data, chunk):
    cuts = [] if chunk is None else range(0, len(data), chunk)
    p, events = run_chunked(data, cuts)
    assert events == [ev.NotPeerWire(0)]
    assert p.opaque_bytes == len(data) == p.stream_off
    assert not p.synced and not p.handshake_seen
    assert p.state_name == "opaque"


@pytest.mark.parametrize("chunk", [None, 1, 7])
def test_plaintext_peer_wire_after_an_opaque_start(chunk):
    """An MSE key exchange that settled on plaintext: random bytes, then peer
    wire messages (the handshake went encrypted).  The prefix is opaque, the
    messages are parsed."""
    prefix = block_data(300, seed=5)
    msgs = b"\x00\x00\x00\x05\x04\x00\x00\x00\x01" * 20
    data = prefix + msgs
    cuts = [] if chunk is None else range(0, len(data), chunk)
    p, events = run_chunked(data, cuts)
    assert events[0] == ev.NotPeerWire(0)
    assert events[1] == ev.Resync(300, 300, False)
    assert events[2:] == [ev.Have(1)] * 20
    assert p.opaque_bytes == 300 and p.message_bytes == len(msgs) and p.plaintext_from == 300
    assert p.synced and not p.handshake_seen


def test_plaintext_handshake_after_an_opaque_start():
    """The responder's handshake in plaintext after an MSE exchange."""
    hs = b"\x13BitTorrent protocol" + bytes(8) + bytes(range(20)) + b"-LT2110-abcdefghijkl"
    data = block_data(200, seed=6) + hs + b"\x00\x00\x00\x01\x01"
    p, events = run_chunked(data, [])
    assert events[0] == ev.NotPeerWire(0) and events[1] == ev.Resync(200, 200, False)
    assert isinstance(events[2], ev.Handshake) and events[2].info_hash == bytes(range(20))
    assert events[3:] == [ev.Unchoke()]
    assert p.opaque_bytes == 200 and p.handshake_bytes == 68


def test_not_bittorrent_then_gap_stays_opaque():
    data = b"SSH-2.0-OpenSSH_9.6\r\n" + bytes(50)
    p, events = run([data[:10], 40, data[10:]])
    assert events == [ev.NotPeerWire(0), ev.Gap(10, 40, False)]
    assert p.opaque_bytes == len(data) and p.gap_bytes == 40


# ---------------------------------------------------------------------- protocol errors
GARBAGE = b"\xaa"
# (name, the offending bytes as sent) -- each starts with an invalid header
BAD = [
    ("choke_length_2", raw_header(2, 0) + GARBAGE),
    ("have_all_length_2", raw_header(2, 0x0E) + GARBAGE),
    ("have_length_4", raw_header(4, 4) + GARBAGE * 3),
    ("have_length_6", raw_header(6, 4) + GARBAGE * 5),
    ("request_length_12", raw_header(12, 6) + GARBAGE * 11),
    ("reject_length_14", raw_header(14, 0x10) + GARBAGE * 13),
    ("port_length_5", raw_header(5, 9) + GARBAGE * 4),
    ("hash_request_length_48", raw_header(48, 21) + GARBAGE * 47),
    ("hashes_length_48", raw_header(48, 22) + GARBAGE * 47),
    ("piece_length_8", raw_header(8, 7) + GARBAGE * 7),
    ("bitfield_length_1", raw_header(1, 5)),
    ("extended_length_1", raw_header(1, 20)),
    ("unknown_id_above_cap", raw_header(MAX_MESSAGE + 2, 0x63) + GARBAGE * 20),  # body > MAX_MESSAGE
]


@pytest.mark.parametrize("name,bad", BAD, ids=[b[0] for b in BAD])
def test_protocol_error_then_resync(name, bad):
    before = have(1) + message(2)
    after = have(2) + message(1) + request(0, 0, BLOCK)
    off = 68 + len(before)
    p, events = run([HS + before + bad + after])
    assert events[:3] == [HS_EVENT, ev.Have(1), ev.Interested()]
    assert isinstance(events[3], ev.ProtocolError) and events[3].offset == off
    assert events[4:] == [ev.Resync(off + len(bad), len(bad) - 1, False),
                          ev.Have(2), ev.Unchoke(), ev.Request(0, 0, BLOCK)]
    assert p.protocol_errors == 1 and p.resyncs == 1
    assert p.unparsed_bytes == len(bad)
    assert p.message_bytes == len(before) + len(after)
    assert p.synced


def test_piece_longer_than_max_block_is_skipped_by_its_length():
    small = PeerWireParser(max_block=1024)
    events = small.receive_data(HS + piece(0, 0, block_data(1025)) + have(3) + message(1))
    events += small.receive_eof()
    check_identity(small)
    assert events == [HS_EVENT, ev.OversizedMessage(68, 7, 9 + 1025), ev.Have(3), ev.Unchoke()]
    assert small.block_bytes == 0 and small.unparsed_bytes == 8 + 1025
    assert small.oversized_messages == small.protocol_errors == 1 and small.resyncs == 0
    ok, events = run([HS, piece(0, 0, block_data(1024)), have(3)], max_block=1024)
    assert events == [HS_EVENT, ev.Piece(0, 0, 1024, 0), ev.Have(3)]


def test_protocol_error_cut_by_eof():
    p, events = run([HS, have(1), raw_header(3, 0) + b"\x01\x02"])
    assert [type(e) for e in events] == [ev.Handshake, ev.Have, ev.ProtocolError]
    assert p.unparsed_bytes == 7


def test_rejected_header_bytes_are_not_block_tail():
    """BUG: the bytes of a header the parser saw and rejected are counted as the
    tail of a block "whose header was not captured" when the next anchor is a
    piece -- here 4 bytes of a malformed `choke` land in block_bytes (downloaded)."""
    blocks = [piece(0, i * BLOCK, block_data(BLOCK, i)) for i in range(2)]
    p, events = run([HS, have(1), raw_header(2, 0) + GARBAGE, *blocks, message(1)])
    resync = [e for e in events if isinstance(e, ev.Resync)]
    assert resync == [ev.Resync(68 + 9 + 6, 5, False)]
    assert p.block_tail_bytes == 0
    assert p.block_bytes == 2 * BLOCK
    assert p.unparsed_bytes == 6


# ---------------------------------------------------------------------- gaps
def piece_stream(n: int, size: int = BLOCK, index: int = 0) -> list[bytes]:
    return [piece(index, i * size, block_data(size, i)) for i in range(n)]


def test_gap_inside_block_stays_in_sync():
    p1, p2 = piece_stream(2)
    a = 68 + 13 + 5000
    data = HS + p1 + p2 + message(1)
    p, events = run([data[:a], 1000, data[a + 1000:]])
    assert events == [HS_EVENT, ev.Gap(a, 1000, True), ev.Piece(0, 0, BLOCK, 1000),
                      ev.Piece(0, BLOCK, BLOCK, 0), ev.Unchoke()]
    assert p.block_bytes == 2 * BLOCK - 1000
    assert p.block_gap_bytes == p.gap_bytes == 1000
    assert p.desyncs == p.resyncs == 0
    assert p.message_bytes == 2 * 13 + 5


def test_several_gaps_inside_one_block():
    (p1,) = piece_stream(1)
    data = HS + p1 + have(5)
    a = 68 + 13
    ops = [data[:a + 10], 20, data[a + 30:a + 100], 1, data[a + 101:a + BLOCK - 7], 7, data[a + BLOCK:]]
    p, events = run(ops)
    assert events[-2:] == [ev.Piece(0, 0, BLOCK, 28), ev.Have(5)]
    assert p.block_gap_bytes == p.gap_bytes == 28
    assert p.block_bytes == BLOCK - 28


def test_gap_ending_exactly_at_block_end_stays_in_sync():
    (p1,) = piece_stream(1)
    data = HS + p1 + have(5)
    end = 68 + 13 + BLOCK
    p, events = run([data[:end - 300], 300, data[end:]])
    assert events == [HS_EVENT, ev.Gap(end - 300, 300, True), ev.Piece(0, 0, BLOCK, 300), ev.Have(5)]
    assert p.desyncs == 0 and p.block_gap_bytes == 300


def test_gap_in_block_then_eof():
    (p1,) = piece_stream(1)
    data = HS + p1
    p, events = run([data[:68 + 13 + 100], 50, data[68 + 13 + 150:68 + 13 + 1000]])
    assert events[-1] == ev.Piece(0, 0, BLOCK, 50 + BLOCK - 1000)
    assert p.block_bytes == 950 and p.block_gap_bytes == 50


def test_gap_spanning_into_next_block_resyncs_with_tail():
    """Desync at the gap, resync at the next piece header; the skipped rest of
    the block whose header was lost counts as block tail."""
    p1, p2, p3 = piece_stream(3)
    data = HS + p1 + p2 + p3 + message(1)
    a = 68 + 13 + BLOCK - 100          # 100 bytes before the end of block 1
    b = 68 + len(p1) + 13 + 50         # 50 bytes into block 2
    anchor = 68 + len(p1) + len(p2)
    p, events = run([data[:a], b - a, data[b:]])
    assert events == [HS_EVENT, ev.Gap(a, b - a, False), ev.Piece(0, 0, BLOCK, 100), ev.Desync(a),
                      ev.Resync(anchor, anchor - b, True), ev.Piece(0, 2 * BLOCK, BLOCK, 0), ev.Unchoke()]
    assert p.block_tail_bytes == anchor - b
    assert p.block_bytes == (BLOCK - 100) + (anchor - b) + BLOCK
    assert p.unparsed_bytes == 0
    assert p.desyncs == p.resyncs == 1


def test_gap_running_past_block_end_counts_known_block_bytes_as_block_gap():
    """BUG (summary.json contract: "Block bytes lost in capture gaps ... are
    reported as *_gap_bytes"): when a gap starts inside a block whose framing is
    known and runs past its end, the lost rest of that block (the Piece event
    even reports it as ``missing``) is not counted in block_gap_bytes."""
    p1, p2, p3 = piece_stream(3)
    data = HS + p1 + p2 + p3 + message(1)
    a = 68 + 13 + BLOCK - 100
    b = 68 + len(p1) + 13 + 50
    p, events = run([data[:a], b - a, data[b:]])
    assert ev.Piece(0, 0, BLOCK, 100) in events
    assert p.block_gap_bytes >= 100


def test_gap_spanning_header_into_small_messages_is_unparsed():
    (p1,) = piece_stream(1)
    tail = have(1) + have(2) + message(1)
    data = HS + p1 + tail
    a = 68 + 13 + BLOCK - 10
    b = 68 + len(p1) + 3               # inside the first `have`
    anchor = 68 + len(p1) + 9
    p, events = run([data[:a], b - a, data[b:]])
    assert events[-4:] == [ev.Desync(a), ev.Resync(anchor, anchor - b, False), ev.Have(2), ev.Unchoke()]
    assert p.unparsed_bytes == anchor - b
    assert p.block_tail_bytes == 0


def test_skipped_bytes_longer_than_anchor_block_are_unparsed():
    """The tail rule: only skipped bytes that fit in the anchor piece's block count as block tail."""
    p1 = piece(0, 0, block_data(BLOCK))
    short = piece(0, BLOCK, block_data(1000, 3))     # last (short) block of the torrent
    data = HS + p1 + short + message(1)
    a = 68 + 5                          # gap over the start of p1: framing lost
    b = 68 + 13 + 5000                  # 11384 bytes of block 1 remain, more than 1000
    anchor = 68 + len(p1)
    p, events = run([data[:a], b - a, data[b:]])
    assert ev.Resync(anchor, anchor - b, False) in events
    assert p.unparsed_bytes == anchor - b + 5
    assert p.block_bytes == 1000 and p.block_tail_bytes == 0


def test_gap_at_message_boundary_desyncs_and_resyncs_immediately():
    data = HS + have(1) + have(2) + have(3) + message(1)
    a = 68 + 9
    p, events = run([data[:a], 9, data[a + 9:]])
    assert events == [HS_EVENT, ev.Have(1), ev.Gap(a, 9, False), ev.Desync(a), ev.Resync(a + 9, 0, False),
                      ev.Have(3), ev.Unchoke()]
    assert p.unparsed_bytes == 0


def test_gap_inside_small_message_body_keeps_framing():
    """BUG: the theory of operation says a gap drops to RESYNC when it "runs past
    the current message"; a gap inside the body of a bitfield (length known)
    desyncs anyway, and the rest of the bitfield is then counted as the block
    tail of the next piece -- 145 bitfield bytes end up in block_bytes."""
    bf = bitfield(b"\xff" * 200)
    blocks = piece_stream(2)
    data = HS + bf + b"".join(blocks) + message(1)
    a = 68 + 50
    p, events = run([data[:a], 10, data[a + 10:]])
    assert not any(isinstance(e, ev.Desync) for e in events)
    assert p.block_tail_bytes == 0
    assert p.block_bytes == 2 * BLOCK


def test_gap_inside_piece_header():
    p1, p2, p3 = piece_stream(3)
    data = HS + have(7) + p1 + p2 + p3 + message(1)
    a = 68 + 9 + 6                      # 6 of p1's 13 header bytes seen
    p, events = run([data[:a], 4, data[a + 4:]])
    assert events[:4] == [HS_EVENT, ev.Have(7), ev.Gap(a, 4, False), ev.Desync(a)]
    assert p.unparsed_bytes >= 6


def test_gap_during_resync_drops_the_buffer():
    blocks = b"".join(piece_stream(3))
    p, events = run([blocks[100:200], 50, blocks[250:]], at_stream_start=False)
    anchor = 13 + BLOCK - 100           # piece 1's header, in stream offsets
    assert events[:2] == [ev.Gap(100, 50, False), ev.Resync(anchor, anchor - 150, True)]
    assert p.unparsed_bytes == 100      # the buffered bytes before the gap
    assert p.block_tail_bytes == anchor - 150
    assert p.block_bytes == anchor - 150 + 2 * BLOCK


# ---------------------------------------------------------------------- mid-stream start
@pytest.mark.parametrize("k", [1, 5000, BLOCK - 1])
@pytest.mark.parametrize("chunk", [None, 1448, 1])
def test_mid_stream_start_inside_block(k, chunk):
    n = 6
    stream = b"".join(piece_stream(n)) + message(1)
    data = stream[13 + k:]                        # k bytes into block 0
    cuts = [] if chunk is None else range(0, len(data), chunk)
    p, events = run_chunked(data, cuts, at_stream_start=False)
    tail = BLOCK - k
    assert events == [ev.Resync(tail, tail, True), *(ev.Piece(0, i * BLOCK, BLOCK, 0) for i in range(1, n)),
                      ev.Unchoke()]
    assert p.block_tail_bytes == tail
    assert p.block_bytes == tail + (n - 1) * BLOCK
    assert p.message_bytes == (n - 1) * 13 + 5
    assert p.unparsed_bytes == 0
    assert p.synced and not p.handshake_seen and p.info_hash is None


def test_mid_stream_start_at_message_boundary():
    stream = b"".join(piece_stream(3))
    p, events = run([stream], at_stream_start=False)
    assert events == [ev.Resync(0, 0, False), *(ev.Piece(0, i * BLOCK, BLOCK, 0) for i in range(3))]
    assert p.block_bytes == 3 * BLOCK and p.block_tail_bytes == 0


def test_mid_stream_start_inside_piece_header():
    """The header remnant plus the whole block are more than one block: unparsed."""
    stream = b"".join(piece_stream(4))
    data = stream[5:]
    p, events = run([data], at_stream_start=False)
    assert events[0] == ev.Resync(8 + BLOCK, 8 + BLOCK, False)
    assert p.unparsed_bytes == 8 + BLOCK
    assert p.block_bytes == 3 * BLOCK


def test_mid_stream_start_without_anchor_is_unparsed():
    data = block_data(5000, seed=5)
    p, events = run([data], at_stream_start=False)
    assert events == []
    assert p.unparsed_bytes == 5000 and not p.synced


def test_mid_stream_start_anchor_needs_a_valid_successor():
    # a single last message has no successor header: no anchor
    p, events = run([block_data(100, 4) + have(1)], at_stream_start=False)
    assert events == [] and p.unparsed_bytes == 109
    p, events = run([block_data(100, 4) + have(1) + keepalive() + message(1)], at_stream_start=False)
    assert events == [ev.Resync(100, 100, False), ev.Have(1), ev.KeepAlive(), ev.Unchoke()]


@pytest.mark.parametrize("end", ["eof", "gap"])
def test_pending_false_candidate_does_not_hide_the_real_anchor(end):
    """BUG: the resync scan stops at the first position it "cannot tell yet"
    (``_anchor`` -> -1) and never looks past it.  Block bytes that happen to
    read as a long bitfield header (here ``00 00 10 00 05``: 4096 bytes) make
    the scan wait for 4105 bytes; when the stream ends (or a gap drops the
    buffer) first, the real anchors behind it are never tried and everything
    is unparsed.  Small index/begin fields make ``00 00 xx xx`` prefixes common
    next to piece headers, so this hits real mid-stream starts (hypothesis
    found it in test_mid_stream_bulk_download_accounting: size=1847, n=3, start=1)."""
    tail = bytearray(block_data(700, 1))
    tail[200:205] = raw_header(4096, 5)
    pieces = [piece(0, BLOCK + i * 1000, block_data(1000, i)) for i in range(3)]
    data = bytes(tail) + b"".join(pieces)
    ops = [data] if end == "eof" else [data, 10_000, have(1)]
    p, events = run(ops, at_stream_start=False)
    assert [e for e in events if isinstance(e, ev.Resync)][:1] == [ev.Resync(700, 700, True)]
    assert p.block_bytes == 700 + 3000 and p.block_tail_bytes == 700


def test_mid_stream_start_then_gap_inside_block():
    stream = b"".join(piece_stream(4))
    data = stream[13 + 100:]
    # inside the block of piece 2: the anchor (piece 1) was confirmed by piece 2's header
    a = (BLOCK - 100) + 2 * 13 + BLOCK + 2000
    p, events = run([data[:a], 500, data[a + 500:]], at_stream_start=False)
    assert events == [ev.Resync(BLOCK - 100, BLOCK - 100, True), ev.Piece(0, BLOCK, BLOCK, 0),
                      ev.Gap(a, 500, True), ev.Piece(0, 2 * BLOCK, BLOCK, 500), ev.Piece(0, 3 * BLOCK, BLOCK, 0)]
    assert p.block_tail_bytes == BLOCK - 100
    assert p.block_bytes == (BLOCK - 100) + 3 * BLOCK - 500
    assert p.block_gap_bytes == 500
    assert p.desyncs == 0


# ---------------------------------------------------------------------- event mask and robustness
def test_event_mask_filters_events_but_not_counters():
    data = HS + have(1) + bitfield(b"\x0f") + extended(0, b"d1:v1:xe") + b"".join(piece_stream(2)) + message(1)
    full, _ = run([data])
    quiet, events = run([data], event_mask=0)
    assert events == []
    assert snapshot(full) == snapshot(quiet)


def test_gap_length_must_not_be_negative():
    p = PeerWireParser()
    with pytest.raises(ValueError):
        p.receive_gap(-1)
    assert p.receive_gap(0) == [] and p.receive_data(b"") == []
    p.receive_eof()
    check_identity(p)
    assert p.stream_off == 0


def test_resync_cascade_memory_is_bounded():
    """BUG: each resynchronisation replays the rest of its buffer recursively
    (``_resynced`` -> ``feed`` -> protocol error -> ``_feed_resync`` ->
    ``_resynced`` ...), keeping a copy per level alive: a 60 KB chunk of
    ``choke, choke, choke-with-bad-length`` repeated (4000 errors) needs ~120 MB
    and 240 KB needs ~1.8 GB (time is quadratic too).  A streaming parser
    should need O(RBUF_CAP) whatever the input."""
    unit = message(0) + message(0) + raw_header(5, 0)
    data = HS + unit * 4000
    tracemalloc.start()
    try:
        p, events = run([data], event_mask=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert p.protocol_errors == 4000
    assert peak < 16 << 20, f"peak {peak >> 20} MiB"


# ---------------------------------------------------------------------- resync anchors: handshake, lone 16 KiB header
def test_handshake_at_start_of_stream_captured_after_syn():
    p, events = run([HS + have(1) + message(1)], at_stream_start=False)
    assert events == [ev.Resync(0, 0, False), HS_EVENT, ev.Have(1), ev.Unchoke()]
    assert p.handshake_seen and p.info_hash == INFO_HASH and p.peer_id == PEER_ID
    assert p.handshake_bytes == 68 and p.unparsed_bytes == 0


def test_lone_16k_piece_header_is_an_anchor():
    """Only a few segments captured: the tail, one 16 KiB header and part of its block."""
    stream = b"".join(piece_stream(2))
    data = stream[13 + 9000:13 + BLOCK + 13 + 700]
    p, events = run([data], at_stream_start=False)
    tail = BLOCK - 9000
    assert events == [ev.Resync(tail, tail, True), ev.Piece(0, BLOCK, BLOCK, BLOCK - 700)]
    assert p.block_bytes == tail + 700 and p.block_tail_bytes == tail


def _block_with_protocol_string(seed: int) -> bytes:
    """Block payload of a file that holds a BitTorrent client's protocol string
    (any client binary, or a capture of BitTorrent traffic)."""
    b = bytearray(block_data(BLOCK, seed))
    b[9000:9020] = b"\x13BitTorrent protocol"
    return bytes(b)


def test_protocol_string_inside_block_is_not_a_handshake_mid_stream():
    """BUG (uncommitted handshake anchor): resynchronising inside block data
    that contains "\\x13BitTorrent protocol" takes it as a handshake: a
    fabricated info_hash (the 20 block bytes that follow) makes the connection
    "bittorrent" with a phantom torrent, and ~4 KB of block bytes are lost.
    A handshake can only be the first bytes of a stream."""
    stream = b"".join(piece(0, i * BLOCK, _block_with_protocol_string(i)) for i in range(4))
    p, events = run([stream[13 + 5000:]], at_stream_start=False)
    assert not any(isinstance(e, ev.Handshake) for e in events)
    assert not p.handshake_seen and p.info_hash is None
    assert p.block_bytes == 4 * BLOCK - 5000


def test_protocol_string_inside_block_after_gap_keeps_handshake():
    """BUG (same anchor): after a gap, the string inside a block replaces the
    real handshake's peer_id with 20 block bytes and emits a bogus Handshake."""
    stream = HS + b"".join(piece(0, i * BLOCK, _block_with_protocol_string(i)) for i in range(4))
    a = 68 + 13 + BLOCK - 50            # the gap runs into the next block: resync
    p, events = run([stream[:a], 200, stream[a + 200:]])
    assert [e for e in events if isinstance(e, ev.Handshake)] == [HS_EVENT]
    assert p.peer_id == PEER_ID and p.info_hash == INFO_HASH
    assert p.handshake_bytes == 68


def test_resync_budget_gives_up_to_opaque_whatever_the_chunking():
    data = block_data(5 << 20, seed=11) + have(1) + have(2)
    outcomes = []
    for chunk in (len(data), 65536, 1448, 1_000_003):
        p, events = run_chunked(data, range(0, len(data), chunk), at_stream_start=False)
        outcomes.append((events, snapshot(p)))
    assert all(o == outcomes[0] for o in outcomes)
    events, snap = outcomes[0]
    assert events == [] and snap["state"] == "opaque"
    assert snap["unparsed_bytes"] > 4 << 20 and snap["opaque_bytes"] > 0
