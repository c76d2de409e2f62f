"""BEP 9 metadata rebuilding against hostile peers (issue 12): copies, collections and failure
lines are bounded, and a right copy is still found among wrong ones."""
from __future__ import annotations

import hashlib
import time

from analyzer.evidence import metadata
from analyzer.evidence.metadata import MAX_ALTERNATIVES, MetadataCollector, MetadataPiece, parse_data_message
from fuzz.hostile import bencode

INFO = bencode({b"name": b"x", b"piece length": 16384, b"length": 100, b"pieces": bytes(20),
                b"padding": b"p" * 40000})                   # 3 metadata pieces
IH = hashlib.sha1(INFO).hexdigest()


def feed(c: MetadataCollector, info_hash: str, sender: str, payload: bytes):
    """A ut_metadata message as the ut_metadata handler gives it to the collector."""
    piece = parse_data_message(payload)
    return c.add(info_hash, sender, piece) if isinstance(piece, MetadataPiece) else None


def msg(index: int, data: bytes, total: int = len(INFO)) -> bytes:
    return bencode({b"msg_type": 1, b"piece": index, b"total_size": total}) + data


def piece(i: int, info: bytes = INFO) -> bytes:
    return info[i * 16384:(i + 1) * 16384]


def test_right_copy_found_after_many_repeats_of_a_wrong_one():
    c = MetadataCollector()
    wrong = b"w" * 16384
    feed(c, IH, "peer-a", msg(0, wrong))
    t0 = time.monotonic()
    for _ in range(10_000):
        feed(c, IH, "peer-b", msg(0, piece(0)))      # the same other copy, again and again
    assert c.collecting[IH].alternatives == {0: [piece(0)]}
    assert feed(c, IH, "peer-b", msg(1, piece(1))) is None
    meta = feed(c, IH, "peer-b", msg(2, piece(2)))
    assert meta is not None and c.rebuilt[IH] is meta and c.held_bytes == 0
    assert time.monotonic() - t0 < 10


def test_distinct_wrong_copies_are_capped():
    c = MetadataCollector()
    for k in range(100):
        feed(c, IH, f"peer-{k}", msg(1, bytes([k]) * 16384))
    col = c.collecting[IH]
    assert col.n_alternatives == MAX_ALTERNATIVES and sum(len(a) for a in col.alternatives.values()) == MAX_ALTERNATIVES
    assert c.held_bytes == 16384 * (1 + MAX_ALTERNATIVES)


def test_collections_over_the_memory_cap_give_up_the_oldest(monkeypatch):
    monkeypatch.setattr(metadata, "MAX_COLLECTING_BYTES", 5 * 16384)
    c = MetadataCollector()
    hashes = [hashlib.sha1(b"%d" % k).hexdigest() for k in range(10)]
    for h in hashes:
        feed(c, h, "peer", msg(0, b"z" * 16384, total=4 * 16384))
    assert list(c.collecting) == hashes[-5:] and c.held_bytes == 5 * 16384
    assert len(c.failures) == 5 and "given up" in c.failures[0] and hashes[0] in c.failures[0]


def test_failure_lines_are_capped():
    c = MetadataCollector()
    bad = b"b" * len(INFO)
    for _ in range(250):
        for i in range(3):
            feed(c, IH, "peer", msg(i, piece(i, bad)))
    assert len(c.failures) == metadata.MAX_FAILURE_LINES and c.failures_not_listed == 150
    assert not c.collecting and c.held_bytes == 0


def test_failures_beyond_the_listed_ones_are_noted(tmp_path, monkeypatch):
    """Through the analysis: failure lines become notes, and the ones not listed are counted
    in one more note."""
    from analyzer.analysis import analyze
    from analyzer.protocols.bencode import encode
    from flows.craft_tcp import Conversation, hs, msg as pw, write_pcap
    monkeypatch.setattr(metadata, "MAX_FAILURE_LINES", 1)
    small = bencode({b"name": b"x", b"piece length": 16384, b"length": 1, b"pieces": bytes(20)})
    ih = hashlib.sha1(small).digest()
    wrong = msg(0, b"w" * len(small), len(small))
    c = Conversation(("10.0.0.1", 51413), ("10.0.0.2", 6881))
    c.open()
    c.send(0, hs(ih, b"-qB4630-subject00000") + pw(20, b"\x00" + encode({b"m": {b"ut_metadata": 3}})))
    c.send(1, hs(ih, b"-lt2010-remote000000") + pw(20, b"\x00" + encode({b"m": {b"ut_metadata": 5}}))
           + pw(20, b"\x03" + wrong) * 3)
    c.close()
    result = analyze([write_pcap(tmp_path / "meta.pcap", (c.ep, c.segs))], local=["10.0.0.1"], warn=lambda m: None)
    notes = [n for n in result.notes if n.startswith("metadata not rebuilt")]
    assert len(notes) == 2 and "does not match the info hash" in notes[0]
    assert notes[1] == "metadata not rebuilt: ... and 2 more not listed (the first 1 are)"
