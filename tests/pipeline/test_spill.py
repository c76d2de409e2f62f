"""Map outputs (indexes of frames read in place, data spills for compressed inputs): every frame
of a file lands in exactly one shard, frames between two hosts always in the same one, and
reading a shard back gives the frames unchanged, in order."""
from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from analyzer.capture.reader import CaptureReader
from analyzer.pipeline import spill
from analyzer.pipeline.spill import IndexWriter, ReadCount, SpillWriter, read_frames, read_spill
from craft import public_captures_dir

SAMPLE = Path(__file__).resolve().parents[2] / "captures" / "sample-swarm.pcap"


def frames_of(path: Path) -> dict[int, bytes]:
    out = {}
    for b in CaptureReader(path).batches():
        for i in range(b.n):
            off = int(b.rec_off[i])
            out[b.first_frame_no + i] = bytes(b.buf[off:off + int(b.caplen[i])])
    return out


def ip_pair(frame: bytes) -> frozenset | None:
    if frame[12:14] != b"\x08\x00":
        return None
    return frozenset([frame[26:30], frame[30:34]])


@pytest.mark.parametrize("writer", [IndexWriter, SpillWriter])
@pytest.mark.parametrize("shards", [1, 2, 5])
def test_every_frame_in_one_shard_and_back_unchanged(tmp_path, shards, writer):
    w = writer(tmp_path, 0, shards)
    for b in CaptureReader(SAMPLE).batches():
        w.add(b)
    paths = w.close()
    original = frames_of(SAMPLE)
    seen: dict[int, bytes] = {}
    pair_shard: dict = {}
    for s, p in enumerate(paths):
        last = 0
        count, pages = ReadCount(), set()
        for b in read_frames(w.kind, p, SAMPLE, count=count):
            pages.update(page for i in range(b.n) for page in range(
                int(b.rec_off[i]) // mmap.PAGESIZE, (int(b.rec_off[i]) + int(b.caplen[i]) - 1) // mmap.PAGESIZE + 1))
            for i in range(b.n):
                n = int(b.frame_no[i])
                assert n > last            # frame order kept within a shard
                last = n
                off = int(b.rec_off[i])
                frame = bytes(b.buf[off:off + int(b.caplen[i])])
                assert n not in seen
                seen[n] = frame
                assert int(b.linktype[i]) == 1 and int(b.origlen[i]) >= int(b.caplen[i])
                pair = ip_pair(frame)
                assert pair_shard.setdefault(pair, s) == s       # one pair, one shard
        # what the shard read: the input's pages its frames lie on, or its own spill file
        assert count.bytes == (len(pages) * mmap.PAGESIZE if writer is IndexWriter else p.stat().st_size)
    assert seen == original
    assert w.bytes_written == sum(p.stat().st_size for p in paths)
    if writer is IndexWriter:            # a few percent of the capture: frames stay where they are
        assert w.bytes_written < SAMPLE.stat().st_size * 0.1
    if shards > 1:
        assert len(set(pair_shard.values())) > 1                  # the three hosts' pairs spread out


def test_small_read_chunks_and_huge_records(tmp_path, monkeypatch):
    """Records that straddle read chunks, or are larger than the read buffer, come back whole."""
    path = public_captures_dir() / "ndpi_bittorrent.pcap"
    w = SpillWriter(tmp_path, 3, 2)
    for b in CaptureReader(path).batches():
        w.add(b)
    paths = w.close()
    monkeypatch.setattr(spill, "READ_CHUNK", 100)
    got = {}
    for p in paths:
        for b in read_spill(p):
            for i in range(b.n):
                off = int(b.rec_off[i])
                got[int(b.frame_no[i])] = bytes(b.buf[off:off + int(b.caplen[i])])
    assert got == frames_of(path)


def test_truncated_spill_is_an_error(tmp_path):
    w = SpillWriter(tmp_path, 0, 1)
    for b in CaptureReader(SAMPLE).batches():
        w.add(b)
    [p] = w.close()
    p.write_bytes(p.read_bytes()[:-5])
    with pytest.raises(ValueError, match="ends inside a record"):
        for _ in read_spill(p):
            pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3 * mmap.PAGESIZE), st.integers(0, 3 * mmap.PAGESIZE)),
                max_size=60),
       st.lists(st.integers(0, 60), max_size=4), st.integers(1, 3))
def test_read_count_is_the_distinct_pages(frames, cuts, inputs):
    """Frames in file order (gaps, overlaps, zero-length frames, frames spanning pages), fed in
    batches cut anywhere, over several inputs: the count is each input's distinct pages."""
    count = ReadCount()
    expected = 0
    for _ in range(inputs):
        count.new_input()
        off, pos = [], 0
        for gap, _length in frames:
            pos += gap - mmap.PAGESIZE // 2 if pos > mmap.PAGESIZE else gap     # overlaps too
            off.append(max(pos, 0))
        off = sorted(off)
        caplen = [length for _, length in frames]
        pages = {q for o, c in zip(off, caplen) if c for q in range(o // mmap.PAGESIZE, (o + c - 1) // mmap.PAGESIZE + 1)}
        expected += len(pages) * mmap.PAGESIZE
        bounds = sorted({0, len(off), *[min(c, len(off)) for c in cuts]})
        for lo, hi in zip(bounds, bounds[1:]):
            count.frames(np.array(off[lo:hi], np.int64), np.array(caplen[lo:hi], np.uint32))
    assert count.bytes == expected


@pytest.mark.parametrize("shards", [1, 2, 3, 7])
def test_index_blocks_lay_out_what_a_sort_and_gathers_would(shards):
    """The compiled index writer (``_spill.index_blocks``) gives, per shard, the block the
    numpy version gave (a stable sort by shard, then each column gathered), on a real capture."""
    from analyzer.pipeline import _spill
    r = CaptureReader(str(SAMPLE))
    seen, used = 0, set()
    for b in r.batches():
        n = b.n
        sid = np.empty(n, np.int64)
        _spill.shard_of(b.buf, b.rec_off, b.caplen, b.iface, b.if_linktype, n, shards, sid)
        cols = {"off": b.rec_off[:n] + b.base, "caplen": b.caplen[:n], "origlen": b.origlen[:n],
                "ts_ns": b.ts_ns[:n], "frame_no": np.arange(b.first_frame_no, b.first_frame_no + n),
                "linktype": b.if_linktype[b.iface[:n]]}
        order = np.argsort(sid, kind="stable")
        want = []
        for s in range(shards):
            pick = order[sid[order] == s]
            want.append(b"" if not len(pick) else np.int64(len(pick)).tobytes() + b"".join(
                np.ascontiguousarray(cols[name][pick], dtype).tobytes() for name, dtype in spill.INDEX_COLUMNS))
        got = _spill.index_blocks(b.buf, b.rec_off, b.caplen, b.origlen, b.ts_ns, b.iface, b.if_linktype, n,
                                  shards, b.base, b.first_frame_no)
        assert [bytes(g) for g in got] == want
        seen += n
        used |= {s for s, w in enumerate(want) if w}
    assert seen > 1000
    assert len(used) >= min(shards, 2)          # the capture's frames fall in more than one shard
    with pytest.raises(ValueError):
        _spill.index_blocks(b.buf, b.rec_off, b.caplen, b.origlen, b.ts_ns, b.iface, b.if_linktype,
                            len(b.rec_off) + 1, shards, 0, 1)
