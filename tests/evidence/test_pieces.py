"""Piece assembly and verification (analyzer/evidence/pieces.py).

Blocks received twice with different content follow real captures
(tests/test_realtraffic_clients.py, bad-seeder scenario): a bad seeder sends a
corrupt block, the subject bans it (RST: the capture holds the block, the
client never read it) and fetches the block again from a good seeder.  The
client holds the piece; the analyzer must say so, and count the banned peer's
copy as redundant (never failed: the client never failed the piece).
"""
from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.evidence import assembly, piece_check, pieces
from analyzer.evidence.metainfo import meta_from_info
from analyzer.evidence.pieces import BLOCK, Verifier
from analyzer.protocols.bencode import encode

DATA = bytes(range(256)) * (2 * BLOCK // 256)
BAD_X = bytes(b ^ 0xFF for b in DATA[:BLOCK])
SUBJECT, BAD, GOOD = "127.0.0.4", "127.0.0.5", "127.0.0.2"


def verifier(data: bytes = DATA, piece_length: int | None = None):
    plen = piece_length or len(data)
    hashes = b"".join(hashlib.sha1(data[i:i + plen]).digest() for i in range(0, len(data), plen))
    info = encode({b"name": b"t", b"length": len(data), b"piece length": plen, b"pieces": hashes})
    v = Verifier([meta_from_info(info, "test")])
    [t] = v.torrents()
    return v, t


def test_good_blocks_verify():
    v, t = verifier()
    v.add(t, SUBJECT, GOOD, 0, 0, DATA[:BLOCK], (0, 1, 0))
    v.add(t, SUBJECT, GOOD, 0, BLOCK, DATA[BLOCK:], (0, 2, 0))
    [p] = v.finish()
    assert (p.status, p.senders, p.redundant_bytes) == ("verified", {GOOD: 2 * BLOCK}, 0)


def test_corrupt_block_alone_fails():
    v, t = verifier()
    v.add(t, SUBJECT, BAD, 0, 0, BAD_X, (0, 1, 0))
    v.add(t, SUBJECT, GOOD, 0, BLOCK, DATA[BLOCK:], (0, 2, 0))
    [p] = v.finish()
    assert (p.status, p.senders, p.superseded_bytes) == ("failed", {BAD: BLOCK, GOOD: BLOCK}, 0)


def test_resent_block_replaces_the_banned_peers_copy():
    # Deluge 2.0.3: the good copy of block 0 arrives before the piece is covered
    v, t = verifier()
    v.add(t, SUBJECT, BAD, 0, 0, BAD_X, (0, 2148, 0))                  # corrupt copy, never read
    v.add(t, SUBJECT, GOOD, 0, 0, DATA[:BLOCK], (0, 2214, 0))          # asked again
    v.add(t, SUBJECT, GOOD, 0, BLOCK, DATA[BLOCK:], (0, 2231, 0))
    [p] = v.finish()
    assert p.status == "verified"
    assert (p.senders, p.senders_redundant) == ({GOOD: 2 * BLOCK}, {BAD: BLOCK})
    assert (p.redundant_bytes, p.conflict_bytes, p.superseded_bytes) == (BLOCK, BLOCK, BLOCK)
    assert (p.first, p.last) == ((0, 2148, 0), (0, 2231, 0))


def test_block_fetched_again_after_the_piece_failed():
    # qBittorrent 4.5.2: the piece is covered (and fails) before the good copy arrives
    v, t = verifier()
    v.add(t, SUBJECT, BAD, 0, 0, BAD_X, (0, 10, 0))
    v.add(t, SUBJECT, GOOD, 0, BLOCK, DATA[BLOCK:], (0, 11, 0))
    v.add(t, SUBJECT, GOOD, 0, 0, DATA[:BLOCK], (0, 30, 0))
    [p] = v.finish()
    assert (p.status, p.senders, p.senders_redundant) == ("verified", {GOOD: 2 * BLOCK}, {BAD: BLOCK})
    assert (p.redundant_bytes, p.conflict_bytes, p.superseded_bytes, p.last) == (BLOCK, BLOCK, BLOCK, (0, 30, 0))


def test_piece_fetched_again_whole_keeps_the_failure():
    # Transmission 3.00: it kept the corrupt copy, failed the piece and fetched all of it again
    v, t = verifier()
    v.add(t, SUBJECT, BAD, 0, 0, BAD_X, (0, 1, 0))
    v.add(t, SUBJECT, GOOD, 0, 0, DATA[:BLOCK], (0, 2, 0))             # end-game duplicate: redundant
    v.add(t, SUBJECT, GOOD, 0, BLOCK, DATA[BLOCK:], (0, 3, 0))
    v.add(t, SUBJECT, GOOD, 0, 0, DATA[:BLOCK], (0, 4, 0))
    v.add(t, SUBJECT, GOOD, 0, BLOCK, DATA[BLOCK:], (0, 5, 0))
    failed, verified = v.finish()
    assert (failed.status, failed.senders, failed.redundant_bytes) == ("failed", {BAD: BLOCK, GOOD: BLOCK}, BLOCK)
    assert (verified.status, verified.senders, verified.redundant_bytes) == ("verified", {GOOD: 2 * BLOCK}, 0)


def test_later_copies_that_do_not_verify_leave_the_failure():
    v, t = verifier()
    v.add(t, SUBJECT, BAD, 0, 0, BAD_X, (0, 1, 0))
    v.add(t, SUBJECT, BAD, 0, BLOCK, DATA[BLOCK:], (0, 2, 0))
    v.add(t, SUBJECT, GOOD, 0, 0, BAD_X[:100] + DATA[100:BLOCK], (0, 3, 0))   # still corrupt
    failed, incomplete = v.finish()
    assert (failed.status, failed.senders, incomplete.status) == ("failed", {BAD: 2 * BLOCK}, "incomplete")


def test_blocks_fetched_again_before_and_after_the_failure_verify_together():
    # the good copy of block 0 came while the piece was assembled (after the bad one: an alternative),
    # the good copy of block 1 after the piece failed (a new assembly): the receiver holds the piece
    # with both, which neither the alternative alone nor the new copy alone gives
    bad_1 = bytes(b ^ 0xFF for b in DATA[BLOCK:])
    v, t = verifier()
    v.add(t, SUBJECT, BAD, 0, 0, BAD_X, (0, 1, 0))
    v.add(t, SUBJECT, GOOD, 0, 0, DATA[:BLOCK], (0, 2, 0))
    v.add(t, SUBJECT, BAD, 0, BLOCK, bad_1, (0, 3, 0))                 # covers the piece: it fails
    v.add(t, SUBJECT, GOOD, 0, BLOCK, DATA[BLOCK:], (0, 4, 0))
    [p] = v.finish()
    assert p.status == "verified"
    assert (p.senders, p.senders_redundant) == ({GOOD: 2 * BLOCK}, {BAD: 2 * BLOCK})
    assert (p.redundant_bytes, p.superseded_bytes, p.conflict_bytes) == (2 * BLOCK, 2 * BLOCK, 2 * BLOCK)
    assert (p.first, p.last) == ((0, 1, 0), (0, 4, 0))


def test_a_block_cut_short_in_the_new_assembly_is_left_out():
    # aria2 1.36 (CI): block 0 good and block 1 bad fail; block 1 comes again from the good seeder, and
    # the bad seeder's block 0, sent again, is cut short when the client closes its connection (never
    # read): the receiver holds block 0's first copy and block 1's new one
    bad_1 = bytes(b ^ 0xFF for b in DATA[BLOCK:])
    v, t = verifier()
    v.add(t, SUBJECT, BAD, 0, BLOCK, bad_1, (0, 3269, 0))
    v.add(t, SUBJECT, GOOD, 0, 0, DATA[:BLOCK], (0, 3627, 0))          # covers the piece: it fails
    v.add(t, SUBJECT, GOOD, 0, BLOCK, DATA[BLOCK:], (0, 3639, 0))
    v.add(t, SUBJECT, BAD, 0, 0, BAD_X[:13060], (0, 3700, 0))           # the connection closed here
    [p] = v.finish()
    assert p.status == "verified"
    assert (p.senders, p.senders_redundant) == ({GOOD: 2 * BLOCK}, {BAD: BLOCK + 13060})
    assert (p.redundant_bytes, p.superseded_bytes) == (BLOCK + 13060, BLOCK)


def test_alternatives_per_piece_are_capped():
    v, t = verifier()
    v.add(t, SUBJECT, BAD, 0, 0, BAD_X, (0, 1, 0))
    for i in range(pieces.MAX_ALTERNATIVES + 3):      # other corrupt copies, then the good one
        v.add(t, SUBJECT, BAD, 0, 0, bytes([i]) * BLOCK, (0, 2 + i, 0))
    v.add(t, SUBJECT, GOOD, 0, 0, DATA[:BLOCK], (0, 50, 0))
    v.add(t, SUBJECT, GOOD, 0, BLOCK, DATA[BLOCK:], (0, 51, 0))
    [p] = v.finish()
    assert p.status == "failed"                        # the good copy was past the cap


def test_blocks_in_any_order_and_overlapping_runs_verify():
    rng = random.Random(3)
    data = rng.randbytes(5 * BLOCK + 999)
    v, t = verifier(data, piece_length=2 * BLOCK)
    runs = []                                                         # overlapping runs
    for index in range(t.num_pieces):
        start, end = t.piece_span(index)
        runs += [(index, offset, data[start + offset:min(end, start + offset + 7000)])
                 for offset in range(0, end - start, 5000)]
    rng.shuffle(runs)
    sent = 0
    for k, (index, offset, chunk) in enumerate(runs):
        v.add(t, SUBJECT, GOOD if k % 2 else BAD, index, offset, chunk, (0, k, 0))
        sent += len(chunk)
    result = v.finish()
    assert [p.status for p in result] == ["verified"] * 3
    assert sum(sum(p.senders.values()) for p in result) == len(data)
    assert sum(p.redundant_bytes for p in result) == sent - len(data)
    assert sum(p.conflict_bytes for p in result) == 0


def test_conflicting_bytes_are_counted_exactly():
    v, t = verifier()
    v.add(t, SUBJECT, GOOD, 0, 0, DATA[:BLOCK], (0, 1, 0))
    other = bytearray(DATA[100:300])
    for i in (0, 7, 199):
        other[i] ^= 1
    v.add(t, SUBJECT, BAD, 0, 100, bytes(other), (0, 2, 0))
    v.add(t, SUBJECT, GOOD, 0, BLOCK, DATA[BLOCK:], (0, 3, 0))
    [p] = v.finish()
    assert (p.status, p.conflict_bytes, p.redundant_bytes, p.senders_redundant) == ("verified", 3, 200, {BAD: 200})


def test_many_tiny_runs_in_reverse_order():
    # beyond the segment limit a piece switches to a buffer: linear whatever the order
    data = random.Random(5).randbytes(64 * 1024)
    v, t = verifier(data)
    for a in range(len(data) - 1, -1, -1):
        v.add(t, SUBJECT, GOOD, 0, a, data[a:a + 1], (0, a, 0))
    v.add(t, SUBJECT, BAD, 0, 0, data[:10], (0, -1, 0))
    [p] = v.finish()
    assert (p.status, p.senders, p.redundant_bytes) == ("verified", {GOOD: len(data)}, 10)


CHARGE = 2 * BLOCK + assembly.SEG_OVERHEAD * 256     # what a piece of 2 blocks is charged


def test_memory_cap_gives_up_the_oldest_piece(monkeypatch):
    data = random.Random(9).randbytes(8 * BLOCK)
    v, t = verifier(data, piece_length=2 * BLOCK)
    monkeypatch.setattr(pieces, "MAX_PENDING_BYTES", int(3.5 * CHARGE))
    for index in range(4):                                            # first halves: 4 pieces pending
        v.add(t, SUBJECT, GOOD, index, 0, data[index * 2 * BLOCK:][:BLOCK], (0, index, 0))
    assert list(v.pending) == [(t.key, SUBJECT, i) for i in (1, 2, 3)]
    for index in (1, 2, 3):
        v.add(t, SUBJECT, GOOD, index, BLOCK, data[index * 2 * BLOCK + BLOCK:][:BLOCK], (0, 10 + index, 0))
    assert [(p.index, p.status) for p in v.finish()] == [(0, "incomplete")] + [(i, "verified") for i in (1, 2, 3)]
    assert v.pending_bytes == v.checking_bytes == 0


def test_failed_pieces_kept_are_capped(monkeypatch):
    data = random.Random(11).randbytes(6 * BLOCK)
    v, t = verifier(data, piece_length=2 * BLOCK)
    monkeypatch.setattr(pieces, "HELD_FAILED_BYTES", int(2.5 * CHARGE))
    monkeypatch.setattr(piece_check, "SHA1_WORKER", False)            # each piece decided when covered
    for index in range(3):                                            # every piece fails first
        v.add(t, SUBJECT, BAD, index, 0, BAD_X, (0, index, 0))
        v.add(t, SUBJECT, GOOD, index, BLOCK, data[index * 2 * BLOCK + BLOCK:][:BLOCK], (0, 10 + index, 0))
    assert len(v.held) == 2
    for index in range(3):                                            # then gets its first block again
        v.add(t, SUBJECT, GOOD, index, 0, data[index * 2 * BLOCK:][:BLOCK], (0, 20 + index, 0))
    result = {p.index: p.status for p in v.finish()}
    # piece 0 was settled (failed) when the cap was hit, before its block came again
    assert sorted(p.status for p in v.results if p.index == 0) == ["failed", "incomplete"]
    assert result[1] == result[2] == "verified"


@pytest.mark.parametrize("worker", [True, False])
def test_worker_thread_and_hashlib_agree(monkeypatch, worker):
    monkeypatch.setattr(piece_check, "SHA1_WORKER", worker and piece_check.SHA1_WORKER)
    rng = random.Random(13)
    data = rng.randbytes(20 * BLOCK)
    v, t = verifier(data, piece_length=4 * BLOCK)
    blocks = [(i // (4 * BLOCK), i % (4 * BLOCK), data[i:i + BLOCK]) for i in range(0, len(data), BLOCK)]
    blocks[5] = (blocks[5][0], blocks[5][1], bytes(BLOCK))            # piece 1 corrupt
    for k, (index, offset, chunk) in enumerate(blocks + blocks[:3]):
        v.add(t, SUBJECT, GOOD, index, offset, chunk, (0, k, 0))
    result = [(p.index, p.status, p.redundant_bytes) for p in v.finish()]
    assert result == [(0, "verified", 3 * BLOCK), (1, "failed", 0)] + [(i, "verified", 0) for i in range(2, 5)]


# ---- the byte-map model the verifier replaced: same figures, block by block
def reference(t, calls) -> list[tuple]:
    """First copy of every byte, a byte map per piece; pieces closed when covered."""
    pending, closed, out = {}, {}, []
    for receiver, sender, index, offset, chunk in calls:
        start, end = t.piece_span(index)
        size = end - start
        chunk = chunk[:size - offset]
        key = (receiver, index)
        pad = t.pad_overlap(start + offset, start + offset + len(chunk))
        if key not in pending and key in closed:
            r = closed[key]
            r["pad"] += pad
            r["redundant"] += len(chunk) - pad
            continue
        if key not in pending:
            have = bytearray(size)
            for lo, hi in t.pad_ranges(start, end):
                have[lo:hi] = b"\x01" * (hi - lo)
            pending[key] = {"buf": bytearray(size), "have": have, "senders": {}, "conflict": 0, "pad": 0,
                            "redundant": 0, "index": index}
        p = pending[key]
        new = 0
        for i, b in enumerate(chunk):
            if p["have"][offset + i]:
                p["conflict"] += p["buf"][offset + i] != b
            else:
                p["buf"][offset + i], p["have"][offset + i] = b, 1
                new += 1
        if new:
            p["senders"][sender] = p["senders"].get(sender, 0) + new
        dup = len(chunk) - new
        p["pad"] += min(pad, dup)
        p["redundant"] += max(0, dup - pad)
        if all(p["have"]):
            del pending[key]
            p["status"] = "verified" if t.check(index, bytes(p["buf"])) else "failed"
            out.append(p)
            if p["status"] == "verified":
                closed[key] = p
    out += [dict(p, status="incomplete") for p in pending.values()]
    return sorted(((p["index"], p["status"], p["senders"], p["conflict"], p["pad"], p["redundant"]) for p in out),
                  key=repr)


def padded_torrent():
    """Two files and a pad file (BEP 47) in a torrent of 3-block pieces."""
    rng = random.Random(17)
    plen = 3 * BLOCK
    a, b = rng.randbytes(plen + 5000), rng.randbytes(2 * BLOCK + 77)
    pad = -len(a) % plen
    space = a + bytes(pad) + b
    hashes = b"".join(hashlib.sha1(space[i:i + plen]).digest() for i in range(0, len(space), plen))
    info = encode({b"name": b"t", b"piece length": plen, b"pieces": hashes, b"files": [
        {b"path": [b"a"], b"length": len(a)}, {b"path": [b".pad", b"p"], b"length": pad, b"attr": b"p"},
        {b"path": [b"b"], b"length": len(b)}]})
    return meta_from_info(info, "test"), space


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_same_figures_as_the_byte_map_model(data):
    meta, space = padded_torrent()
    v = Verifier([meta])
    [t] = v.torrents()
    calls = []
    for _ in range(data.draw(st.integers(1, 40))):
        index = data.draw(st.integers(0, t.num_pieces - 1))
        start, end = t.piece_span(index)
        offset = data.draw(st.integers(0, end - start - 1))
        n = data.draw(st.sampled_from([1, 100, BLOCK, 2 * BLOCK]))
        chunk = bytearray(space[start + offset:start + offset + n])
        if data.draw(st.booleans()) and chunk:
            chunk[data.draw(st.integers(0, len(chunk) - 1))] ^= 0x40                   # a corrupt copy
        calls.append((data.draw(st.sampled_from([SUBJECT, GOOD])), data.draw(st.sampled_from([BAD, GOOD])),
                      index, offset, bytes(chunk)))
    for k, c in enumerate(calls):
        v.add(t, c[0], c[1], c[2], c[3], c[4], (0, k, 0))
    result = v.finish()
    if any(p.superseded_bytes for p in result):
        return                     # verified with later copies: the model cannot say (tests above)
    mine = sorted(((p.index, p.status, p.senders, p.conflict_bytes, p.pad_bytes, p.redundant_bytes)
                   for p in result), key=repr)
    assert mine == reference(t, [(c[0], c[1], c[2], c[3], c[4]) for c in calls])


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_every_byte_fed_is_in_exactly_one_figure(data):
    """Whatever the copies (corrupt, repeated, before and after a failure), the bytes fed for a piece
    are its results' senders + redundant + pad bytes, also where later copies rescued a failure."""
    plen = 2 * BLOCK
    good = random.Random(5).randbytes(4 * plen)
    v, t = verifier(good, plen)
    fed: dict = {}
    for k in range(data.draw(st.integers(1, 24))):
        index = data.draw(st.integers(0, 3))
        offset = data.draw(st.sampled_from([0, BLOCK, 100, BLOCK - 7]))
        n = data.draw(st.sampled_from([BLOCK, 1, 300, plen]))
        chunk = bytearray(good[index * plen + offset:index * plen + min(plen, offset + n)])
        if data.draw(st.booleans()):
            chunk[data.draw(st.integers(0, len(chunk) - 1))] ^= 0x40
        v.add(t, SUBJECT, data.draw(st.sampled_from([BAD, GOOD])), index, offset, bytes(chunk), (0, k, 0))
        fed[index] = fed.get(index, 0) + len(chunk)
    counted: dict = {}
    for p in v.finish():
        counted[p.index] = counted.get(p.index, 0) + sum(p.senders.values()) + p.redundant_bytes + p.pad_bytes
        assert sum(p.senders_redundant.values()) == p.redundant_bytes
        assert p.superseded_bytes <= p.redundant_bytes
    assert counted == fed


class _Engine:
    cur_file, cur_frame, cur_ts = 0, 0, 0


def tap_for(v, t):
    """A tap of a connection whose torrent and ends are known (as after its handshake)."""
    tap = v.tap(None, 0, None, _Engine())
    tap.torrent, tap.sender, tap.receiver = t, GOOD, SUBJECT
    return tap


def test_a_tap_stops_feeding_a_piece_given_up(monkeypatch):
    data = random.Random(19).randbytes(8 * BLOCK)
    v, t = verifier(data, piece_length=2 * BLOCK)
    tap = tap_for(v, t)
    tap.data(0, 0, data[:BLOCK])                                       # piece 0 pending, the tap holds it
    assert tap.piece is v.pending[(t.key, SUBJECT, 0)]
    monkeypatch.setattr(pieces, "MAX_PENDING_BYTES", int(1.5 * CHARGE))
    v.add(t, SUBJECT, BAD, 1, 0, data[2 * BLOCK:3 * BLOCK], (0, 5, 0))   # piece 0 given up
    held = tap.piece
    tap.data(0, BLOCK, data[BLOCK:2 * BLOCK])                          # not into the piece given up
    assert held.covered == BLOCK and tap.piece is not held
    result = sorted((p.index, p.status, p.covered) for p in v.finish())
    assert result == [(0, "incomplete", BLOCK), (0, "incomplete", BLOCK), (1, "incomplete", BLOCK)]


def test_a_tap_feeds_in_order_blocks_through_the_fast_path():
    data = random.Random(21).randbytes(8 * BLOCK)
    v, t = verifier(data, piece_length=4 * BLOCK)
    tap = tap_for(v, t)
    for k, offset in enumerate(range(0, len(data), BLOCK)):
        _Engine.cur_frame = k
        tap.data(offset // (4 * BLOCK), offset % (4 * BLOCK), data[offset:offset + BLOCK])
    tap.data(1, 0, data[4 * BLOCK:5 * BLOCK])                          # again: redundant
    result = v.finish()
    assert [(p.status, p.senders, p.first[1], p.last[1], p.redundant_bytes) for p in result] == [
        ("verified", {GOOD: 4 * BLOCK}, 0, 3, 0), ("verified", {GOOD: 4 * BLOCK}, 4, 7, BLOCK)]


def test_a_tap_takes_out_of_order_blocks_of_interleaved_pieces_without_the_slow_path(monkeypatch):
    # a seeder's disk reads finish out of order, and blocks of two pieces interleave: only a
    # piece's first block takes the Python path; overlapping copies still do, with the same figures
    rng = random.Random(23)
    data = rng.randbytes(16 * BLOCK)
    v, t = verifier(data, piece_length=4 * BLOCK)
    tap = tap_for(v, t)
    slow = []
    real = pieces.Tap.slow
    monkeypatch.setattr(pieces.Tap, "slow", lambda self, *a: (slow.append(a[:2]), real(self, *a)))
    order = []
    for first in (0, 2):                                      # pieces 0 and 1, then 2 and 3, interleaved
        blocks = [(i, o) for i in (first, first + 1) for o in range(0, 4 * BLOCK, BLOCK)]
        rng.shuffle(blocks)
        order += blocks
    for k, (index, offset) in enumerate(order):
        _Engine.cur_frame = k
        a = index * 4 * BLOCK + offset
        tap.data(index, offset, data[a:a + BLOCK])
    assert sorted(i for i, _ in slow) == [0, 1, 2, 3] and len(slow) == 4      # each piece's first block
    tap.data(3, 100, data[3 * 4 * BLOCK + 100:3 * 4 * BLOCK + 200])           # piece closed: redundant
    result = v.finish()
    assert [(p.index, p.status, p.senders, p.redundant_bytes) for p in result] == \
        [(i, "verified", {GOOD: 4 * BLOCK}, 100 if i == 3 else 0) for i in range(4)]
    assert [(p.first[1], p.last[1]) for p in result] == [
        (min(k for k, (i, _) in enumerate(order) if i == n), max(k for k, (i, _) in enumerate(order) if i == n))
        for n in range(4)]


def test_a_failure_is_checked_again_with_hashlib(monkeypatch):
    # the worker's digest alone never fails a piece: a wrong one (a bug) is caught and counted
    class Wrong:
        def __init__(self):
            self.closed = False

        def update(self, data):
            pass

        def final(self):
            self.closed = True

        def digest(self):
            return bytes(20)

    real = piece_check.TorrentGeometry.hasher
    monkeypatch.setattr(piece_check.TorrentGeometry, "hasher",
                        lambda self, index, worker=False: Wrong() if worker else real(self, index))
    v, t = verifier()
    v.add(t, SUBJECT, GOOD, 0, 0, DATA[:BLOCK], (0, 1, 0))
    v.add(t, SUBJECT, GOOD, 0, BLOCK, DATA[BLOCK:], (0, 2, 0))
    v.add(t, SUBJECT, BAD, 0, 0, BAD_X, (0, 3, 0))                  # redundant copy, after
    [p] = v.finish()
    assert (p.status, v.worker_mismatches) == ("verified", 1)
    v, t = verifier()
    v.add(t, SUBJECT, BAD, 0, 0, BAD_X, (0, 1, 0))
    v.add(t, SUBJECT, GOOD, 0, BLOCK, DATA[BLOCK:], (0, 2, 0))
    [p] = v.finish()
    assert (p.status, v.worker_mismatches) == ("failed", 0)
