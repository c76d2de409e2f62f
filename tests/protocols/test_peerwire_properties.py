"""Property tests of the peer wire parser (hypothesis, derandomized).

* valid message sequences parse to exactly the events a model predicts;
* chunking invariance: whole, byte-by-byte and random split points give the
  same events and counters, also with garbage and gaps inserted and for
  mid-stream starts;
* fuzz: arbitrary bytes and gaps never raise, the accounting identity holds,
  and no Piece is longer than ``max_block``.
"""
from __future__ import annotations

import os
import struct

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from analyzer.protocols import events as ev
from analyzer.protocols._peerwire import EventMask
from analyzer.protocols.peerwire import PeerWireParser
from pwire import (
    DEFAULT_MAX_BLOCK, INFO_HASH, PEER_ID, block_data, check_identity, handshake, keepalive, message, snapshot,
)

# Deterministic and fast by default; PEERWIRE_DEEP=<factor> explores randomly with more examples.
DEEP = int(os.environ.get("PEERWIRE_DEEP", "0"))
PROPS = settings(derandomize=not DEEP, deadline=None, max_examples=200 * max(DEEP, 1), database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FEW = settings(PROPS, max_examples=60 * max(DEEP, 1))

u32 = st.integers(0, 2**32 - 1)
root = st.binary(min_size=32, max_size=32)


def _pack(*v):
    return struct.pack(">%dI" % len(v), *v)


# (wire bytes, expected event, block length or None)
def _fixed(msg_id, expected):
    return st.just((message(msg_id), expected, None))


def _idx(msg_id, cls):
    return u32.map(lambda i: (message(msg_id, _pack(i)), cls(i), None))


def _triple(msg_id, cls):
    return st.tuples(u32, u32, u32).map(lambda t: (message(msg_id, _pack(*t)), cls(*t), None))


def _hash(msg_id, cls):
    return st.tuples(root, u32, u32, u32, u32).map(
        lambda t: (message(msg_id, t[0] + _pack(*t[1:])), cls(*t), None))


def _piece(t):
    index, begin, block = t
    return message(7, _pack(index, begin) + block), ev.Piece(index, begin, len(block), 0), len(block)


block = st.one_of(st.binary(max_size=200), st.sampled_from([0, 1, 16384]).map(block_data))

MESSAGE = st.one_of(
    st.just((keepalive(), ev.KeepAlive(), None)),
    _fixed(0, ev.Choke()), _fixed(1, ev.Unchoke()), _fixed(2, ev.Interested()), _fixed(3, ev.NotInterested()),
    _idx(4, ev.Have),
    st.binary(min_size=1, max_size=64).map(lambda b: (message(5, b), ev.Bitfield(b), None)),
    _triple(6, ev.Request),
    st.tuples(u32, u32, block).map(_piece),
    _triple(8, ev.Cancel),
    st.integers(0, 65535).map(lambda p: (message(9, struct.pack(">H", p)), ev.Port(p), None)),
    _idx(0x0D, ev.Suggest), _fixed(0x0E, ev.HaveAll()), _fixed(0x0F, ev.HaveNone()),
    _triple(0x10, ev.Reject), _idx(0x11, ev.AllowedFast),
    st.tuples(st.integers(0, 255), st.binary(max_size=80)).map(
        lambda t: (message(20, bytes([t[0]]) + t[1]), ev.Extended(*t), None)),
    _hash(21, ev.HashRequest),
    st.tuples(root, u32, u32, u32, u32, st.lists(st.binary(min_size=32, max_size=32), max_size=3)).map(
        lambda t: (message(22, t[0] + _pack(*t[1:5]) + b"".join(t[5])),
                   ev.Hashes(*t[:5], b"".join(t[5])), None)),
    _hash(23, ev.HashReject),
    st.tuples(st.sampled_from([10, 11, 12, 19, 24, 99, 255]), st.binary(max_size=30)).map(
        lambda t: (message(t[0], t[1]), ev.UnknownMessage(t[0], len(t[1]) + 1), None)),
)

PIECE = st.tuples(u32, u32, block).map(_piece)
reserved = st.binary(min_size=8, max_size=8)
EV_ALL = int(EventMask.EV_ALL)


def feed(ops, *, at_stream_start=True, max_block=DEFAULT_MAX_BLOCK, event_mask=EV_ALL):
    """ops: bytes or int (gap).  Returns (parser, events) after EOF; never raises."""
    p = PeerWireParser(at_stream_start, event_mask, max_block)
    events = []
    for op in ops:
        events += p.receive_gap(op) if isinstance(op, int) else p.receive_data(op)
    events += p.receive_eof()
    return p, events


def split(data: bytes, cuts) -> list[bytes]:
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(data))), len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def rechunk(ops, how, draw=None):
    """Merge adjacent data ops, then split each run: 'whole', 'bytes' or random cuts."""
    runs = []
    for op in ops:
        if isinstance(op, int):
            runs.append(op)
        elif runs and isinstance(runs[-1], bytes):
            runs[-1] += op
        else:
            runs.append(bytes(op))
    out = []
    for r in runs:
        if isinstance(r, int):
            out.append(r)
        elif how == "whole":
            out.append(r)
        elif how == "bytes":
            out += [r[i:i + 1] for i in range(len(r))]
        else:
            out += split(r, draw(st.lists(st.integers(0, len(r)), max_size=12)))
    return [o for o in out if o != b""]


def outcome(p, events):
    return events, snapshot(p)


def label(p):
    """Say which paths an example took (see --hypothesis-show-statistics)."""
    for k in ("protocol_errors", "resyncs", "desyncs", "block_tail_bytes", "block_gap_bytes", "opaque_bytes"):
        if getattr(p, k):
            event(k)


# ---------------------------------------------------------------------- valid sequences
@PROPS
@given(res=reserved, msgs=st.lists(MESSAGE, max_size=25), data=st.data())
def test_valid_sequence_matches_model_under_any_chunking(res, msgs, data):
    stream = handshake(res=res) + b"".join(m[0] for m in msgs)
    expected = [ev.Handshake(res, INFO_HASH, PEER_ID)] + [m[1] for m in msgs]
    blocks = sum(m[2] for m in msgs if m[2] is not None)
    p, events = feed([stream])
    check_identity(p)
    assert events == expected
    assert p.block_bytes == blocks
    assert p.message_bytes == len(stream) - 68 - blocks
    assert p.messages == len(msgs)
    assert p.pieces == sum(1 for m in msgs if m[2] is not None)
    assert p.unparsed_bytes == p.opaque_bytes == p.gap_bytes == p.protocol_errors == p.resyncs == 0
    reference = outcome(p, events)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=40))
    assert outcome(*feed(split(stream, cuts))) == reference
    if len(stream) <= 20000:
        assert outcome(*feed(split(stream, range(len(stream))))) == reference


# ---------------------------------------------------------------------- garbage and gaps
def _holed(t):
    """A message with ``g`` of its bytes from offset ``a`` lost in a capture gap."""
    (wire, _, _), a, g = t
    a %= len(wire) + 1
    g = min(g, len(wire) - a) or 1
    return [wire[:a], g, wire[a + g:]]


OP = st.one_of(
    MESSAGE.map(lambda m: [m[0]]),
    st.lists(MESSAGE.map(lambda m: m[0]), min_size=1, max_size=4),
    st.binary(min_size=1, max_size=40).map(lambda b: [b]),                    # garbage
    st.integers(1, 20000).map(lambda n: [n]),                                 # gap
    st.tuples(MESSAGE, st.integers(0, 100)).map(lambda t: [t[0][0][:t[1]]]),  # a cut message
    st.tuples(MESSAGE, st.integers(0, 20000), st.integers(1, 3000)).map(_holed),
    st.lists(PIECE.map(lambda m: m[0]), min_size=1, max_size=3).map(list),
    st.tuples(PIECE, st.integers(0, 20000), st.integers(1, 3000)).map(_holed),
).map(lambda ops: [o for o in ops if o != b""])
OPS = st.lists(OP, max_size=12).map(lambda ll: [o for ops in ll for o in ops])


@PROPS
@given(at_start=st.booleans(), ops=OPS, data=st.data())
def test_chunking_invariance_with_garbage_and_gaps(at_start, ops, data):
    ops = ([handshake()] if at_start else []) + ops
    p, events = feed(rechunk(ops, "whole"), at_stream_start=at_start)
    check_identity(p)
    label(p)
    reference = outcome(p, events)
    assert outcome(*feed(rechunk(ops, "random", data.draw), at_stream_start=at_start)) == reference
    if sum(len(o) for o in ops if isinstance(o, bytes)) <= 20000:
        assert outcome(*feed(rechunk(ops, "bytes"), at_stream_start=at_start)) == reference


@FEW
@given(msgs=st.lists(MESSAGE, min_size=1, max_size=20), start=st.integers(0, 10**6), data=st.data())
def test_mid_stream_start_chunking_invariance(msgs, start, data):
    stream = b"".join(m[0] for m in msgs)
    stream = stream[start % (len(stream) + 1):]
    p, events = feed([stream], at_stream_start=False)
    check_identity(p)
    label(p)
    reference = outcome(p, events)
    assert outcome(*feed(split(stream, data.draw(st.lists(st.integers(0, len(stream)), max_size=30))),
                         at_stream_start=False)) == reference
    if len(stream) <= 20000:
        assert outcome(*feed(split(stream, range(len(stream))), at_stream_start=False)) == reference


@FEW
@given(msgs=st.lists(MESSAGE, min_size=2, max_size=20))
def test_event_mask_never_changes_counters(msgs):
    stream = handshake() + b"".join(m[0] for m in msgs)
    full = feed([stream[:len(stream) // 2], 7, stream[len(stream) // 2 + 7:]])[0]
    quiet, events = feed([stream[:len(stream) // 2], 7, stream[len(stream) // 2 + 7:]], event_mask=0)
    assert events == []
    assert snapshot(full) == snapshot(quiet)


# ---------------------------------------------------------------------- fuzz
def _check_fuzz(p, events, max_block):
    check_identity(p)
    for e in events:
        assert type(e).__module__ == ev.__name__, e
        if isinstance(e, ev.Piece):
            assert 0 <= e.length <= max_block, e
            assert 0 <= e.missing <= e.length, e
        if isinstance(e, (ev.Resync, ev.Desync, ev.Gap, ev.ProtocolError, ev.NotPeerWire)):
            assert 0 <= e.offset <= p.stream_off, e
    assert p.pieces == sum(1 for e in events if isinstance(e, ev.Piece))


FUZZ_OP = st.one_of(st.binary(max_size=300), st.binary(max_size=300), st.integers(0, 5000),
                    MESSAGE.map(lambda m: m[0]))


@settings(PROPS, max_examples=300 * max(DEEP, 1))
@given(at_start=st.booleans(), with_handshake=st.booleans(), ops=st.lists(FUZZ_OP, max_size=20),
       max_block=st.sampled_from([1, 16, 1024, DEFAULT_MAX_BLOCK]))
def test_fuzz_never_raises_and_accounts_every_byte(at_start, with_handshake, ops, max_block):
    if with_handshake and at_start:
        ops = [handshake()] + ops
    p, events = feed(ops, at_stream_start=at_start, max_block=max_block)
    label(p)
    _check_fuzz(p, events, max_block)


@FEW
@given(body=st.binary(min_size=1, max_size=2000), max_block=st.sampled_from([16, 1024]))
def test_no_piece_beyond_max_block(body, max_block):
    """Pieces whose declared block exceeds max_block, among valid ones, never come out as Piece."""
    big = message(7, _pack(1, 0) + block_data(max_block + 1))
    ok = message(7, _pack(1, 0) + block_data(max_block))
    for stream in (handshake() + big + ok + body + ok + big, ok + body + big + ok + ok + big + ok):
        p, events = feed([stream], at_stream_start=stream.startswith(b"\x13"), max_block=max_block)
        _check_fuzz(p, events, max_block)


@FEW
@given(size=st.one_of(st.integers(1, 3000), st.just(16384)), n=st.integers(3, 8), start=st.integers(0, 10**6),
       data=st.data())
@example(size=1847, n=3, start=1, data=None)   # see test_peerwire.py::test_pending_false_candidate_...
def test_mid_stream_bulk_download_accounting(size, n, start, data):
    """Back-to-back pieces of one block size, captured from an arbitrary offset:
    inside a block the tail is counted and the rest is exact; inside a header the
    remnant and the following block are unparsed (more than one block).

    (Hypothesis mines constants from every loaded module, so derandomized
    examples depend on which test modules a run imports: the explicit example
    keeps the known failure deterministic.)"""
    stream = b"".join(message(7, _pack(0, i * size) + block_data(size, i)) for i in range(n))
    unit = 13 + size
    start %= unit * (n - 2)                       # leave at least two headers after the start
    fed = stream[start:]
    cuts = [] if data is None else data.draw(st.lists(st.integers(0, len(fed)), max_size=20))
    p, events = feed(split(fed, cuts), at_stream_start=False)
    check_identity(p)
    k, pos = divmod(start, unit)
    if pos == 0:                                   # at a header
        assert p.block_bytes == (n - k) * size and p.block_tail_bytes == 0 and p.unparsed_bytes == 0
    elif pos >= 13:                                # inside block k
        tail = unit - pos
        assert p.block_tail_bytes == tail
        assert p.block_bytes == tail + (n - k - 1) * size
        assert p.unparsed_bytes == 0
    else:                                          # inside header k
        assert p.block_tail_bytes == 0
        assert p.unparsed_bytes == unit - pos
        assert p.block_bytes == (n - k - 1) * size
    assert p.message_bytes == 13 * (n - k - (pos > 0))
