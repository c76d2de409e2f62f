"""Blocks handed to the verifier where they lie in a mapped capture (flows._inplace) give what
copied blocks give: the same pieces, failures checked again and carved files from the right
bytes, and no piece keeps a finished file mapped.  Real traffic: the committed sample capture
(captures/sample-swarm.pcap, libtorrent peers), read into buffers and mapped into memory."""
from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest

from analyzer.analysis import analyze
from analyzer.capture import reader
from analyzer.evidence import _sha1, piece_check
from analyzer.evidence.metainfo import load_torrent
from analyzer.flows import _inplace
from analyzer.pipeline.flows import Flows
from summaries import connections_csv, summarize

REPO = Path(__file__).resolve().parent.parent.parent
SAMPLE = REPO / "captures" / "sample-swarm.pcap"
TORRENT = REPO / "captures" / "sample-swarm.torrent"
NEVER = 1 << 62


def fed_in_place() -> int:
    return _sha1.fed_blocks_in_place() if _sha1.available() else 0


def pieces_of(result) -> list:
    return sorted((p.info_hash, p.receiver, p.index, p.status, p.covered, p.conflict_bytes, p.redundant_bytes,
                   sorted(p.senders.items()), p.first, p.last) for p in result.pieces)


def run(monkeypatch, paths, map_at: int, **kw):
    """analyze() with files mapped (map_at 0) or read into buffers (NEVER); returns the outputs
    and how many blocks were made, and fed to the SHA-1 worker, in place."""
    monkeypatch.setattr(reader, "MAP_AT", map_at)
    made, fed = _inplace.stats()["in_place_blocks"], fed_in_place()
    result = analyze(paths, warn=lambda m: None, **kw)
    out = (summarize(result), connections_csv(result), pieces_of(result))
    counts = (_inplace.stats()["in_place_blocks"] - made, fed_in_place() - fed)
    result.close()
    assert _inplace.live() == 0
    return out, counts


def test_the_sample_capture_verifies_the_same_mapped_or_read(monkeypatch):
    kw = dict(local=["127.0.0.3"], torrents=[TORRENT])
    mapped, (made, fed) = run(monkeypatch, [SAMPLE], 0, **kw)
    read, (made_read, fed_read) = run(monkeypatch, [SAMPLE], NEVER, **kw)
    assert mapped == read
    assert {p[3] for p in mapped[2]} == {"verified"} and len(mapped[2]) == 92
    assert made_read == fed_read == 0                      # read into buffers: copies, as before
    assert made >= 180                                     # nearly every block of the capture
    if _sha1.available():
        assert fed >= 170                                  # hashed where they lie


def test_a_block_across_two_input_files_is_copied(monkeypatch, tmp_path):
    """The sample capture cut into two files in the middle of a block: the same pieces."""
    data = SAMPLE.read_bytes()
    cut = 24
    while cut < len(data) * 0.6:                            # the record after 60% of the file
        cut += 16 + int.from_bytes(data[cut + 8:cut + 12], "little")
    (tmp_path / "a.pcap").write_bytes(data[:cut])
    (tmp_path / "b.pcap").write_bytes(data[:24] + data[cut:])
    kw = dict(local=["127.0.0.3"], torrents=[TORRENT])
    read = run(monkeypatch, [SAMPLE], NEVER, **kw)[0]
    whole, (made_whole, _) = run(monkeypatch, [SAMPLE], 0, **kw)
    two, (made, _) = run(monkeypatch, [tmp_path / "a.pcap", tmp_path / "b.pcap"], 0, **kw)

    def same(p):                                             # (frame numbers count per file)
        return p[:8], p[8][2], p[9][2]
    assert whole == read
    assert [same(p) for p in two[2]] == [same(p) for p in whole[2]]
    assert 100 < made < made_whole                           # the blocks cut by the end of a.pcap: copies


def test_no_piece_keeps_a_mapped_file_once_it_is_read(monkeypatch):
    """Pieces in progress hold blocks in place at the end of the file: release_buffers copies them
    (and waits for the SHA-1 worker), so the mapping goes; the pieces come out as when read."""
    monkeypatch.setattr(reader, "MAP_AT", 0)
    flows = Flows([load_torrent(TORRENT)], None, verify=True)
    refs = []
    for b in reader.CaptureReader(SAMPLE).batches():
        assert b.stable
        refs.append(weakref.ref(b.buf))
        flows.feed_batch(b, 0)
    del b
    gc.collect()
    held = _inplace.live()
    assert held > 0 and any(x() is not None for x in refs)  # pieces hold blocks in place
    flows.end_of_file()
    gc.collect()
    assert _inplace.live() == 0 and all(x() is None for x in refs)
    mapped = flows.finish().pieces
    monkeypatch.setattr(reader, "MAP_AT", NEVER)
    flows = Flows([load_torrent(TORRENT)], None, verify=True)
    for b in reader.CaptureReader(SAMPLE).batches():
        flows.feed_batch(b, 0)
    flows.end_of_file()
    assert mapped == flows.finish().pieces


@pytest.mark.skipif(not _sha1.available(), reason="no libcrypto to load")
def test_a_failure_is_checked_again_with_the_bytes_left_in_place(monkeypatch):
    """The worker's digest taken as wrong for every piece: each is hashed again with hashlib from
    its blocks (hashed where they lie, read again now): all verify, each counted as a mismatch."""
    real = piece_check.TorrentGeometry.matches
    monkeypatch.setattr(piece_check.TorrentGeometry, "matches",
                        lambda self, index, h: False if isinstance(h, _sha1.Sha1Job) else real(self, index, h))
    monkeypatch.setattr(reader, "MAP_AT", 0)
    fed = fed_in_place()
    flows = Flows([load_torrent(TORRENT)], None, verify=True)
    for b in reader.CaptureReader(SAMPLE).batches():
        flows.feed_batch(b, 0)
    flows.end_of_file()
    pieces = flows.finish().pieces
    assert fed_in_place() - fed > 100
    assert len(pieces) == 92 and {p.status for p in pieces} == {"verified"}
    assert flows.verifier.worker_mismatches == 92


def test_failed_and_carved_pieces_from_a_mapped_capture(monkeypatch, tmp_path):
    """A crafted transfer with one altered block: the piece fails (its bytes hashed again), the
    others verify and are carved byte for byte, mapped or read."""
    from fuzz import hostile as H
    content = bytes(i * 7 % 251 for i in range(6 * 16384))
    torrent, ih = H.carve_torrent([["f.bin"]], content)
    (tmp_path / "t.torrent").write_bytes(torrent)
    altered = bytearray(content)
    altered[2 * 16384 + 500] ^= 0xFF
    (tmp_path / "a.pcap").write_bytes(H.carve_pcap(ih, bytes(altered)))
    out = []
    for map_at in (0, NEVER):
        carve = tmp_path / f"carve-{map_at}"
        monkeypatch.setattr(reader, "MAP_AT", map_at)
        result = analyze([tmp_path / "a.pcap"], local=["10.0.0.1"], torrents=[tmp_path / "t.torrent"],
                         carve=carve, warn=lambda m: None)
        statuses = [p.status for p in sorted(result.pieces, key=lambda p: p.index)]
        carved = (carve / ih.hex() / "t" / "f.bin").read_bytes()
        out.append((statuses, pieces_of(result)))
        result.close()
        assert statuses == ["verified"] * 2 + ["failed"] + ["verified"] * 3
        assert carved[:2 * 16384] == content[:2 * 16384] and carved[3 * 16384:] == content[3 * 16384:]
    assert out[0] == out[1]


# ---------------------------------------------------------------------- the verifier given blocks in place
SUBJECT, BAD, GOOD = "127.0.0.4", "127.0.0.5", "127.0.0.2"
BLOCK = 16384


def verifier(data: bytes, plen: int):
    import hashlib
    from analyzer.evidence.metainfo import meta_from_info
    from analyzer.evidence.pieces import Verifier
    from analyzer.protocols.bencode import encode
    hashes = b"".join(hashlib.sha1(data[i:i + plen]).digest() for i in range(0, len(data), plen))
    info = encode({b"name": b"t", b"length": len(data), b"piece length": plen, b"pieces": hashes})
    v = Verifier([meta_from_info(info, "test")])
    [t] = v.torrents()
    return v, t


class _Engine:
    cur_file, cur_frame, cur_ts = 0, 0, 0


class _Conn:
    conn_id, addr0, addr1 = 1, bytes([127, 0, 0, 2]), bytes([127, 0, 0, 4])
    parser0 = parser1 = None


def feed_all(calls: list, in_place: bool, probe: bool):
    """The calls (index, offset, bytes, sender) through a tap, as bytes or as blocks in place (the
    bytes in a buffer with frame headers between segments of 1448 bytes); ``probe``: a connection
    without handshake (attributed by piece hashes first)."""
    import numpy as np
    data = bytes(range(256)) * (9 * BLOCK // 256 + 1)
    data = data[:9 * BLOCK - 5000]                          # the last piece shorter than a block
    v, t = verifier(data, 2 * BLOCK)
    buf, spans = bytearray(), []
    for index, offset, chunk, sender in calls:
        parts = []
        for a in range(0, len(chunk), 1448):
            buf += bytes(54)
            parts.append((len(buf), min(1448, len(chunk) - a)))
            buf += chunk[a:a + 1448]
        spans.append(parts)
    owner = np.frombuffer(bytes(buf), np.uint8)
    taps = {}
    _Engine.cur_frame = 0
    for (index, offset, chunk, sender), parts in zip(calls, spans):
        tap = taps.get(sender)
        if tap is None:
            tap = taps[sender] = v.tap(_Conn(), 0, None, _Engine())
            if probe:
                tap.probe = {}
            else:
                tap.torrent, tap.sender, tap.receiver = t, sender, SUBJECT
            tap.receiver, tap.sender = SUBJECT, sender
        _Engine.cur_frame += 1
        tap.data(index, offset, _inplace.from_spans(owner, parts) if in_place else chunk)
    _inplace.release_all()
    return sorted(map(repr, v.finish())), v.worker_mismatches


@pytest.mark.parametrize("probe", [False, True])
def test_the_verifier_takes_blocks_in_place_as_copies(probe):
    """In order, ahead of a hole, overlapping with conflicting bytes, past the end of the last
    piece, on a connection attributed by piece hashes: the same results, in place or copied."""
    import random
    data = bytes(range(256)) * (9 * BLOCK // 256 + 1)
    data = data[:9 * BLOCK - 5000]
    rng = random.Random(8)
    calls = []
    for index in range(5):
        offsets = [0, BLOCK] if index % 2 else [BLOCK, 0]  # odd pieces in order, even ones reversed
        for o in offsets:
            a = index * 2 * BLOCK + o
            chunk = data[a:a + BLOCK]
            if index == 4 and o == 0:
                chunk = chunk + bytes(5000)                  # past the end of the last piece (cut)
            if chunk:
                calls.append((index, o, chunk, GOOD))
    bad = bytearray(data[2 * BLOCK + 100:2 * BLOCK + 3000])
    bad[7] ^= 1
    calls.insert(rng.randrange(len(calls)), (1, 100, bytes(bad), BAD))             # a conflicting copy
    copied = feed_all(calls, False, probe)
    fed = fed_in_place()
    assert feed_all(calls, True, probe) == copied
    assert fed_in_place() > fed or not _sha1.available()
    results = "".join(copied[0])
    assert results.count("status='verified'") == 5 and copied[1] == 0
    assert ("conflict_bytes=1," in results) != probe       # (the other tap's lone copy never attributes)
