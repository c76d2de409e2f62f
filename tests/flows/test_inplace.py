"""Piece blocks left where they lie (analyzer/flows/_inplace.pyx): the object, the parser that makes
them from TCP deliveries in place, and the SHA-1 worker that hashes their spans."""
from __future__ import annotations

import gc
import hashlib
import random
import weakref

import numpy as np
import pytest

from analyzer.evidence import _sha1
from analyzer.flows import _inplace
from analyzer.flows._inplace import InPlace, from_spans
from analyzer.flows._tcp import TcpStream
from analyzer.protocols.peerwire import PeerWireParser
from craft_tcp import ACK, PSH, SYN, seeder_stream

ISN = 7000


def owner_of(data: bytes) -> np.ndarray:
    """A buffer that can be watched with a weak reference (as a mapped file's array is)."""
    return np.frombuffer(bytearray(data), np.uint8)


def test_an_in_place_block_reads_as_its_bytes_and_lets_its_owner_go_once_copied():
    data = random.Random(1).randbytes(10_000)
    owner = owner_of(data)
    ref = weakref.ref(owner)
    gc.collect()
    live = _inplace.live()
    b = from_spans(owner, [(100, 1448), (1600, 1), (2000, 3000)])
    expected = data[100:1548] + data[1600:1601] + data[2000:5000]
    assert len(b) == len(expected) and b.in_place and b.span_count == 3
    assert _inplace.live() == live + 1
    del owner
    gc.collect()
    assert ref() is not None                                # the block keeps its buffer
    assert bytes(b) == expected and memoryview(b).tobytes() == expected and b"".join([b, b]) == 2 * expected
    assert not b.in_place and _inplace.live() == live       # copied once: the buffer is let go
    gc.collect()
    assert ref() is None
    assert hashlib.sha1(b).digest() == hashlib.sha1(expected).digest()
    with pytest.raises(TypeError):
        memoryview(b)[0:1] = b"x"                            # read-only


def test_release_all_copies_every_block_in_place():
    data = random.Random(2).randbytes(4096)
    owner = owner_of(data)
    ref = weakref.ref(owner)
    blocks = [from_spans(owner, [(i * 512, 512)]) for i in range(8)]
    del owner
    assert _inplace.release_all() >= 8
    gc.collect()
    assert ref() is None and not any(b.in_place for b in blocks) and _inplace.live() == 0
    assert b"".join(blocks) == data


@pytest.mark.skipif(not _sha1.available(), reason="no libcrypto to load")
@pytest.mark.parametrize("openssl", [False, True])
def test_the_worker_hashes_spans_of_any_length_where_they_lie(openssl):
    """Several pieces at once (the worker's lanes), each fed blocks of spans of odd lengths (a
    partial 64-byte block at every span's end), copies and blocks in place mixed."""
    _sha1.use_openssl(openssl)
    try:
        rng = random.Random(3)
        data = rng.randbytes(2_000_000)
        owner = owner_of(data)
        jobs, expected = [], []
        pos = 0
        for _ in range(12):
            job, piece = _sha1.Sha1Job(), bytearray()
            for _ in range(rng.randrange(1, 9)):
                spans = []
                for _ in range(rng.randrange(1, 14)):
                    n = rng.choice([1, 13, 63, 64, 65, 1448, 1448, 4096, 9000])
                    spans.append((pos, n))
                    piece += data[pos:pos + n]
                    pos += n + rng.choice([0, 54, 66])            # frame headers between the spans
                if rng.random() < 0.8:
                    job.update(from_spans(owner, spans))
                else:
                    job.update(b"".join(data[a:a + n] for a, n in spans))
            job.final()
            jobs.append(job)
            expected.append(hashlib.sha1(piece).digest())
        assert [j.digest() for j in jobs] == expected
    finally:
        _sha1.use_openssl(False)


@pytest.mark.skipif(not _sha1.available(), reason="no libcrypto to load")
def test_feeds_wait_while_too_many_bytes_in_place_are_in_flight():
    """More bytes in place than INPLACE_MAX (and more spans than the ring holds): the feed waits
    for the worker; digests are right, the buffer is pinned until the worker is past it."""
    wake, most = _sha1.in_place_limits()
    _sha1.in_place_limits(1 << 16, 1 << 18)
    try:
        data = random.Random(4).randbytes(4_000_000)
        owner = owner_of(data)
        ref = weakref.ref(owner)
        waits = _sha1.in_place_waits()
        jobs = []
        for a in range(0, len(data), 1_000_000):          # 10,000 spans a block: more than the ring
            job = _sha1.Sha1Job()
            job.update(from_spans(owner, [(a + k, 100) for k in range(0, 1_000_000, 100)]))
            job.final()
            jobs.append((job, hashlib.sha1(data[a:a + 1_000_000]).digest()))
        assert _sha1.in_place_waits() > waits
        del owner
        _inplace.release_all()                     # copies the blocks, waits for the worker (sync)
        gc.collect()
        assert ref() is None
        assert all(j.digest() == d for j, d in jobs)
    finally:
        _sha1.in_place_limits(wake, most)


# ---------------------------------------------------------------------- the parser over TCP in place
class Sink:
    def __init__(self):
        self.calls = []

    def data(self, index, offset, chunk):
        self.calls.append((index, offset, chunk))


def parse(stream: bytes, segments: list, release_at: int | None = None):
    """Feed ``stream`` to a parser through a TCP stream: ``segments`` are (offset, length, buffer)
    with buffer 0 or 1 (two captures of the stream, as two input files: each segment after 54
    bytes of frame headers), or None (copied).  Returns the block runs handed to the sink."""
    bufs, where = [bytearray(), bytearray()], {}
    for off, n, _ in segments:
        for b in bufs:
            b += bytes(54)
            where[off, n] = len(b)
            b += stream[off:off + n]
    bufs = [bytes(b) for b in bufs]
    p = PeerWireParser(True)
    sink = p.block_sink = Sink()
    s = TcpStream(p)
    s.receive_segment(ISN, SYN)
    for k, (off, n, which) in enumerate(segments):
        if k == release_at:
            s.release_buffer()
        seq = (ISN + 1 + off) % 2**32
        if which is None:
            s.receive_segment(seq, ACK | PSH, stream[off:off + n])
        else:
            s.receive_in_place(seq, ACK | PSH, bufs[which], where[off, n], n)
    s.close()
    return sink.calls


def cut(length: int, size: int = 1448) -> list:
    return [(o, min(size, length - o), 0) for o in range(0, length, size)]


def same_runs(a: list, b: list) -> bool:
    return [(i, o, bytes(c)) for i, o, c in a] == [(i, o, bytes(c)) for i, o, c in b]


def test_blocks_delivered_in_place_are_handed_over_in_place():
    stream = bytes(seeder_stream(bytes(range(20)), pieces=3, blocks_per_piece=4).data)
    placed = parse(stream, cut(len(stream)))
    copied = parse(stream, [(o, n, None) for o, n, _ in cut(len(stream))])
    assert all(type(c) is InPlace and c.in_place and c.span_count >= 12 for _, _, c in placed)
    assert len(placed) == 12 and same_runs(placed, copied)
    assert all(type(c) is bytes for _, _, c in copied)


def test_a_block_partly_out_of_order_or_across_two_buffers_is_copied():
    stream = bytes(seeder_stream(bytes(range(20)), pieces=2, blocks_per_piece=4).data)
    segs = cut(len(stream))
    # a segment of block 2 arrives before the one ahead of it (the out-of-order list: a copy)
    k = next(i for i, (o, _, _) in enumerate(segs) if o > 2 * 16397 + 5000)
    reordered = segs[:k] + [segs[k + 1], segs[k]] + segs[k + 2:]
    # block 5 starts in buffer 0 and ends in buffer 1 (a block that straddles two input files)
    m = next(i for i, (o, _, _) in enumerate(segs) if o > 5 * 16397 + 8000)
    switched = segs[:m] + [(o, n, 1) for o, n, _ in segs[m:]]
    reference = parse(stream, [(o, n, None) for o, n, _ in segs])
    for segments, copied in ((reordered, {2}), (switched, {5})):
        runs = parse(stream, segments)
        assert same_runs(runs, reference)
        assert {i for i, (_, _, c) in enumerate(runs) if type(c) is bytes} == copied


def test_a_block_in_progress_at_the_end_of_a_file_is_copied():
    stream = bytes(seeder_stream(bytes(range(20)), pieces=1, blocks_per_piece=4).data)
    segs = cut(len(stream))
    k = next(i for i, (o, _, _) in enumerate(segs) if o > 16397 + 8000)     # inside block 1
    runs = parse(stream, segs[:k] + [(o, n, 1) for o, n, _ in segs[k:]], release_at=k)
    assert same_runs(runs, parse(stream, [(o, n, None) for o, n, _ in segs]))
    assert [type(c) for _, _, c in runs] == [InPlace, bytes, InPlace, InPlace]


def test_blocks_waiting_far_behind_are_copied_while_their_pages_are_there():
    """Blocks not handed to a hasher (here: all, the sink keeps them) that lie more than REACH
    (8 MiB) behind the newest block are copied (the mapping gives pages back 16 MiB behind)."""
    stream = bytes(seeder_stream(bytes(range(20)), pieces=40, blocks_per_piece=16).data)     # 10.5 MB
    runs = parse(stream, cut(len(stream), 9000))
    states = [c.in_place for _, _, c in runs]
    k = states.index(True)
    assert states == [False] * k + [True] * (len(runs) - k)
    assert abs((len(runs) - k) * (16384 + 13) * 9054 / 9000 - (8 << 20)) < 2 * 16397     # (frame headers)
    assert same_runs(runs, parse(stream, [(o, n, None) for o, n, _ in cut(len(stream), 9000)]))
