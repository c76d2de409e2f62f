"""The parser's block sink (what piece verification is fed): each contiguous run of a
block's bytes once, as a bytes object, whatever the chunking; a gap splits a block."""
from __future__ import annotations

import random
import struct

from analyzer.protocols.peerwire import PeerWireParser
from pwire import handshake, message


class Sink:
    def __init__(self):
        self.runs = []

    def data(self, index, offset, chunk):
        assert type(chunk) is bytes
        self.runs.append((index, offset, chunk))


def piece(index: int, begin: int, block: bytes) -> bytes:
    return message(7, struct.pack(">II", index, begin) + block)


def parse(parts) -> list:
    p = PeerWireParser(True)
    sink = Sink()
    p.block_sink = sink
    for kind, x in parts:
        if kind == "gap":
            p.receive_gap(x)
        else:
            p.receive_data(x)
    p.receive_eof()
    return sink.runs


BLOCKS = [(0, 0, random.Random(1).randbytes(16384)), (0, 16384, random.Random(2).randbytes(100)),
          (3, 5, random.Random(3).randbytes(7000))]
STREAM = handshake() + message(1) + b"".join(piece(*b) for b in BLOCKS) + message(4, bytes(4))


def test_every_block_once_whatever_the_chunking():
    whole = parse([("data", STREAM)])
    assert whole == BLOCKS
    rng = random.Random(5)
    for _ in range(5):
        cuts = sorted(rng.sample(range(1, len(STREAM)), 40))
        parts = [("data", STREAM[a:b]) for a, b in zip([0, *cuts], [*cuts, len(STREAM)])]
        assert parse(parts) == BLOCKS
    assert parse([("data", STREAM[i:i + 1]) for i in range(len(STREAM))]) == BLOCKS


def test_a_gap_inside_a_block_splits_it_into_two_runs():
    start = STREAM.index(BLOCKS[0][2])
    a, b = start + 1000, start + 1500                           # 500 bytes of block 0 not captured
    runs = parse([("data", STREAM[:a]), ("gap", b - a), ("data", STREAM[b:])])
    block = BLOCKS[0][2]
    assert runs[:2] == [(0, 0, block[:1000]), (0, 1500, block[1500:])]
    assert runs[2:] == BLOCKS[1:]
