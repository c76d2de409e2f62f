"""Torrent geometry and piece hashes (analyzer/evidence/piece_check.py), against
torrents libtorrent made: v1, v2 (piece layers, one-piece files) and hybrid (pad files)."""
from __future__ import annotations

import random
from pathlib import Path

import libtorrent as lt
import pytest

from analyzer.evidence import piece_check
from analyzer.evidence.metainfo import load_torrent
from analyzer.evidence.piece_check import BLOCK, MerklePiece, TorrentGeometry, merkle
from analyzer.evidence.pieces import Verifier

PLEN = 2 * BLOCK
SIZES = [3 * PLEN + 5000, 7000, PLEN]          # several pieces, a one-piece file, an exact piece


def made_torrent(tmp_path: Path, version: str):
    rng = random.Random(23)
    root = tmp_path / "content"
    (root / "t").mkdir(parents=True)
    files = []
    for i, size in enumerate(SIZES):
        data = rng.randbytes(size)
        (root / "t" / f"f{i}").write_bytes(data)
        files.append(data)
    flags = {"v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only, "hybrid": 0}[version]
    ct = lt.create_torrent([lt.create_file_entry(f"t/f{i}", s) for i, s in enumerate(SIZES)], PLEN, flags)
    lt.set_piece_hashes(ct, str(root))
    path = tmp_path / "t.torrent"
    path.write_bytes(lt.bencode(ct.generate()))
    meta = load_torrent(path)
    # the torrent's v1 byte space: files with their pad files (zeros)
    space = bytearray()
    by_path = {("t", f"f{i}"): d for i, d in enumerate(files)}
    for f in meta.files:
        space += bytes(f.size) if f.pad else by_path[f.path[-2:]]
    return meta, bytes(space)


@pytest.mark.parametrize("version", ["v1", "v2", "hybrid"])
def test_every_piece_checks_whole_and_fed_in_pieces(tmp_path, version):
    meta, space = made_torrent(tmp_path, version)
    t = TorrentGeometry(meta)
    assert t.num_pieces > 4
    rng = random.Random(1)
    for index in range(t.num_pieces):
        start, end = t.piece_span(index)
        piece = space[start:end]
        assert t.check(index, piece)
        h, pos = t.hasher(index), 0
        while pos < len(piece):
            n = rng.choice([1, 999, BLOCK, BLOCK + 1])
            h.update(piece[pos:pos + n])
            pos += n
        assert t.matches(index, h)
        bad = bytearray(piece)
        bad[rng.randrange(t.content_bytes(start, end))] ^= 1       # a content byte (pad bytes follow it)
        assert not t.check(index, bytes(bad))


@pytest.mark.parametrize("version", ["v1", "v2", "hybrid"])
def test_verifier_with_blocks_in_any_order(tmp_path, version, monkeypatch):
    meta, space = made_torrent(tmp_path, version)
    v = Verifier([meta])
    [t] = v.torrents()
    blocks = []
    for index in range(t.num_pieces):
        start, end = t.piece_span(index)
        pads = t.pad_ranges(start, end)
        for offset in range(0, end - start, BLOCK):
            if any(lo <= offset and offset + BLOCK <= hi for lo, hi in pads):
                continue                                          # clients send no block of pad alone
            blocks.append((index, offset, space[start + offset:min(end, start + offset + BLOCK)]))
    random.Random(2).shuffle(blocks)
    for k, (index, offset, chunk) in enumerate(blocks):
        v.add(t, "10.0.0.1", "10.0.0.2", index, offset, chunk, (0, k, 0))
    result = v.finish()
    assert [p.status for p in result] == ["verified"] * t.num_pieces
    assert sum(p.size for p in result) == meta.total_size


def test_merkle_of_a_piece_fed_in_order():
    import hashlib
    rng = random.Random(3)
    data = rng.randbytes(3 * BLOCK + 100)
    leaves = [hashlib.sha256(data[i:i + BLOCK]).digest() for i in range(0, len(data), BLOCK)]
    for limit, width in ((len(data), 4), (2 * BLOCK + 7, 4), (len(data), None)):
        h = MerklePiece(limit, width)
        for i in range(0, len(data), 5000):
            h.update(data[i:i + 5000])
        cut = data[:limit]
        want = [hashlib.sha256(cut[i:i + BLOCK]).digest() for i in range(0, len(cut), BLOCK)]
        assert h.digest() == merkle(want, width or 4)
    assert merkle(leaves[:3], 4) == merkle(leaves[:3] + [bytes(32)], 4)    # missing leaves are zeros


def test_merkle_of_metadata_v2_does_not_allow():
    # a piece length that is not a power of two times 16 KiB (hostile rebuilt metadata):
    # a root all the same, never a crash
    leaves = [bytes([i]) * 32 for i in range(3)]
    assert merkle(leaves, 2) == merkle(leaves, 4)
    assert merkle(leaves, 3) == merkle(leaves, 4)
    assert len(merkle([], 0)) == 32


def test_sha1_on_the_worker_or_in_this_thread(tmp_path, monkeypatch):
    meta, space = made_torrent(tmp_path, "v1")
    t = TorrentGeometry(meta)
    start, end = t.piece_span(1)
    for worker in (True, False):
        monkeypatch.setattr(piece_check, "SHA1_WORKER", worker and piece_check.SHA1_WORKER)
        h = t.hasher(1, worker=True)
        assert hasattr(h, "final") == (worker and piece_check.SHA1_WORKER)
        h.update(space[start:start + 100])
        h.update(space[start + 100:end])
        assert t.matches(1, h)
