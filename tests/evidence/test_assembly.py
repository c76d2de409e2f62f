"""One piece's first copies (analyzer/evidence/assembly.py) and the compiled fast path
(analyzer/evidence/_fastpath.pyx)."""
from __future__ import annotations

import hashlib
import random

from analyzer.evidence import assembly
from analyzer.evidence._fastpath import append, place
from analyzer.evidence.assembly import Assembly, compose

DATA = random.Random(4).randbytes(4 * 16384)


def piece(pads=(), data=DATA) -> Assembly:
    return Assembly(len(data), len(data) - sum(b - a for a, b in pads), list(pads), hashlib.sha1(), (0, 0, 0))


def test_in_order_blocks_take_the_fast_path_and_are_hashed_as_they_come():
    p = piece()
    for k in range(4):
        r = append(p, k * 16384, DATA[k * 16384:(k + 1) * 16384], "a", (0, k, 0))
        assert r == (2 if k == 3 else 1)
    assert p.h.digest() == hashlib.sha1(DATA).digest() and p.data() == DATA
    assert (p.covered, p.senders, p.last, p.front) == (len(DATA), {"a": len(DATA)}, (0, 3, 0), len(DATA))
    assert p.segs[0][0] is not None and p.data() == DATA
    assert p.h is not None and append(p, 0, DATA[:10], "a", None) == 0          # not at the front


def test_out_of_order_blocks_wait_then_are_hashed_in_order():
    p = piece()
    assert append(p, 16384, DATA[16384:32768], "a", None) == 0                 # after a hole: slow path
    assert p.insert(16384, DATA[16384:32768], "a", None) == 16384 and p.front == 0
    assert p.insert(0, DATA[:20000], "b", None) == 16384                        # fills the hole, overlaps
    assert p.front == 32768 and p.conflict_bytes == 0 and not p.alts
    assert append(p, 32768, DATA[32768:49152], "a", None) == 1                  # in order again


def test_blocks_into_holes_take_the_compiled_path_and_are_hashed_in_order():
    p = piece()
    blocks = {k: DATA[k * 16384:(k + 1) * 16384] for k in range(4)}
    assert place(p, 2 * 16384, blocks[2], "a", (0, 1, 0)) == 1 and p.front == 0      # after a hole: waits
    assert place(p, 16384, blocks[1], "b", (0, 2, 0)) == 1 and p.front == 0
    assert place(p, 3 * 16384 - 1, blocks[3], "a", None) == 0                         # overlaps block 2
    assert place(p, 3 * 16384, blocks[3] + b"x", "a", None) == 0                      # past the piece's end
    assert place(p, 3 * 16384, bytearray(blocks[3]), "a", None) == 0                  # not bytes: slow path
    assert place(p, 0, blocks[0], "a", (0, 3, 0)) == 1                                # fills the front hole
    assert (p.front, p.fi, p.offs) == (3 * 16384, 3, [0, 16384, 2 * 16384])          # hashed 0, 1, 2
    assert place(p, 3 * 16384, blocks[3], "b", (0, 4, 0)) == 2                        # covered
    assert p.h.digest() == hashlib.sha1(DATA).digest() and p.data() == DATA
    assert (p.covered, p.senders, p.last, p.conflict_bytes) == (len(DATA), {"a": 2 * 16384, "b": 2 * 16384}, (0, 4, 0), 0)


def test_compiled_and_python_paths_build_the_same_piece():
    rng = random.Random(8)
    for _ in range(30):
        runs = [(a, DATA[a:a + rng.choice((5000, 9000))]) for a in range(0, len(DATA), 5000)]   # covering
        runs += [(a, DATA[a:a + rng.choice((1, 700))]) for a in rng.sample(range(len(DATA)), 10)]  # extra
        rng.shuffle(runs)
        fast, slow = piece(), piece()
        for a, chunk in runs:
            if not place(fast, a, chunk, "s", None):
                fast.insert(a, chunk, "s", None)
            slow.insert(a, chunk, "s", None)
        assert (fast.offs, fast.front, fast.fi, fast.covered, fast.conflict_bytes, fast.senders) == \
            (slow.offs, slow.front, slow.fi, slow.covered, slow.conflict_bytes, slow.senders)
        assert [bytes(s[0]) for s in fast.segs] == [bytes(s[0]) for s in slow.segs]
        assert fast.data() == slow.data() == DATA
        assert fast.h.digest() == slow.h.digest() == hashlib.sha1(DATA).digest()


def test_conflicts_are_counted_and_kept_once_as_alternatives():
    p = piece()
    p.insert(0, DATA[:16384], "a", None)
    other = bytearray(DATA[100:16384 + 100])
    other[0] ^= 1
    other[-1] ^= 1                      # beyond the first copy: new bytes, no conflict
    assert p.insert(100, bytes(other), "b", (0, 9, 0)) == 100 and p.conflict_bytes == 1
    [(parts, sender, where)] = p.alts
    assert sender == "b" and where == (0, 9, 0) and parts == [(100, bytes(other[:16284]))]
    for _ in range(3):                  # the same copy again: conflicts counted, kept once more
        p.insert(100, bytes(other), "b", (0, 10, 0))
    assert p.conflict_bytes == 4 and len(p.alts) == 2
    for i in range(assembly.MAX_ALTERNATIVES + 5):
        p.insert(0, bytes([i]) * 10, "c", None)
    assert len(p.alts) == assembly.MAX_ALTERNATIVES


def test_pad_ranges_are_zeros_that_count_as_covered_not_as_content():
    pads = [(20000, 32768)]
    data = DATA[:20000] + bytes(12768) + DATA[32768:]
    p = piece(pads, data)
    assert p.covered == 12768
    p.insert(0, data[:16384], "a", None)
    p.insert(16384, data[16384:32768], "a", None)      # a block that is partly pad (its zeros compared)
    p.insert(32768, data[32768:], "a", None)
    assert p.covered == p.size and p.conflict_bytes == 0
    assert p.h.digest() == hashlib.sha1(data).digest()
    assert [s for _, _, s in p.content_runs()] == ["a", "a", "a"]


def test_many_runs_switch_to_a_buffer():
    data = DATA[:4096]
    p = piece(data=data)
    for a in range(len(data) - 1, -1, -2):                # every other byte, backwards
        p.insert(a, data[a:a + 1], "a", None)
    assert p.front == -1 and not p.rescuable and p.charged == 2 * len(data)
    for a in range(0, len(data), 2):
        p.insert(a, data[a:a + 2], "b", None)
    assert p.covered == len(data) and p.data() == data
    assert p.hash_done().digest() == hashlib.sha1(data).digest()


def test_compose_credits_the_copies_used_and_the_first_ones_replaced():
    p = piece()
    p.insert(0, b"\0" * 16384, "bad", None)
    p.insert(16384, DATA[16384:], "good", None)
    data, superseded, used = compose(p.runs(), p.size, [(0, DATA[:16384], "good"), (100, DATA[100:200], "x")])
    assert bytes(data) == DATA
    assert superseded == {"bad": 16384} and used == {"good": 16284, "x": 100}


def test_compose_lays_disjoint_copies_in_one_pass():
    p = piece()
    p.insert(0, DATA, "a", None)                                        # one run of 4 blocks
    copies = [(10, b"x" * 5, "b"), (100, b"y" * 16384, "c"), (40000, b"z" * 3, "b")]
    data, superseded, used = compose(p.runs(), p.size, copies)
    want = bytearray(DATA)
    for a, d, _ in copies:
        want[a:a + len(d)] = d
    assert bytes(data) == bytes(want)
    assert superseded == {"a": 16392} and used == {"b": 8, "c": 16384}
