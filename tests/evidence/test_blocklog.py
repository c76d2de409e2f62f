"""The block log of a staged run and the replay of pieces split across shards
(analyzer/evidence/blocklog.py, analyzer/pipeline/evidence.py).

The property: blocks of several receivers' pieces, from several senders, with duplicates,
corrupt copies, overlaps and pieces fetched again, dealt to shards by sender (as frames are
sharded by IP pair), each shard verifying its own and logging them, then the split pieces
replayed: the merged results equal one verifier fed every block in order."""
from __future__ import annotations

import hashlib
from types import SimpleNamespace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.evidence.blocklog import ROW, BlockLog, LoggedVerifier, PieceStore, load_tables, read_piece, \
    read_rows, remove_spill, replay
from analyzer.evidence.metainfo import meta_from_info
from analyzer.evidence.pieces import BLOCK, Verifier
from analyzer.pipeline.evidence import _order, split_keys
from analyzer.protocols.bencode import encode

PLEN = 4 * BLOCK
DATA = bytes((i * 7 + i // 251) & 0xFF for i in range(3 * PLEN + 5000))
RECEIVERS = ["10.0.0.1", "10.0.0.2"]
SENDERS = ["10.0.1.1", "10.0.1.2", "10.0.1.3", "10.0.1.4"]


def meta():
    hashes = b"".join(hashlib.sha1(DATA[i:i + PLEN]).digest() for i in range(0, len(DATA), PLEN))
    info = encode({b"name": b"t", b"length": len(DATA), b"piece length": PLEN, b"pieces": hashes})
    return meta_from_info(info, "test")


def as_tuple(r) -> tuple:
    return (r.info_hash, r.index, r.receiver, r.size, r.status, sorted(r.senders.items()), r.covered,
            r.conflict_bytes, r.first, r.last, r.redundant_bytes, sorted(r.senders_redundant.items()),
            r.pad_bytes, r.superseded_bytes)


block = st.tuples(st.sampled_from(RECEIVERS), st.sampled_from(SENDERS), st.integers(0, 3),
                  st.integers(0, 3), st.booleans(), st.sampled_from([BLOCK, BLOCK // 2, BLOCK + 100]))


def blocks_of(spec) -> list:
    """(receiver, sender, index, offset, chunk) from the drawn tuples (some corrupt)."""
    out = []
    for receiver, sender, index, blk, corrupt, n in spec:
        start = index * PLEN + blk * BLOCK
        if start >= len(DATA) or blk * BLOCK >= min(PLEN, len(DATA) - index * PLEN):
            continue
        chunk = DATA[start:start + n]
        if corrupt:
            chunk = bytes([chunk[0] ^ 0x55]) + chunk[1:]
        out.append((receiver, sender, index, blk * BLOCK, chunk))
    return out


def run_sharded(m, blocks: list, shard_of, folder, carve: bool):
    """Each shard verifies its blocks and logs them; split pieces replayed; results merged."""
    parts = []
    for s in sorted(set(shard_of.values())):
        log = BlockLog(folder / f"s{s}")
        v = LoggedVerifier([m], log, PieceStore(folder / f"s{s}" / "pieces") if carve else None)
        [t] = v.torrents()
        for n, (receiver, sender, index, offset, chunk) in enumerate(blocks):
            if shard_of[sender] == s:
                v.ordinal = (0, 0, n)
                v.add(t, receiver, sender, index, offset, chunk, (0, n, n * 1000))
        results = v.finish()
        tables = log.close()
        tables["folder"] = str(log.folder)
        parts.append(SimpleNamespace(pieces=results, blocks=tables,
                                     store=v.carver.finish() if carve else None))
    split = split_keys(parts)
    merged = [r for p in parts for r in p.pieces if (r.info_hash, r.receiver, r.index) not in split]
    stores = [p.store for p in parts if p.store]
    got, store, nblocks, read, caps = replay([m], [(p.blocks["folder"], load_tables(p.blocks["folder"]))
                                                  for p in parts], split, folder / "replay" if carve else None)
    if store:
        stores.append(store)
    merged += got
    merged.sort(key=_order)
    return merged, split, stores, nblocks


@settings(max_examples=60, deadline=None)
@given(st.lists(block, min_size=1, max_size=40), st.lists(st.integers(0, 2), min_size=4, max_size=4))
def test_split_pieces_replayed_equal_one_verifier(tmp_path_factory, spec, shards):
    m = meta()
    blocks = blocks_of(spec)
    ref = Verifier([m])
    [t] = ref.torrents()
    for n, (receiver, sender, index, offset, chunk) in enumerate(blocks):
        ref.add(t, receiver, sender, index, offset, chunk, (0, n, n * 1000))
    expected = [as_tuple(r) for r in ref.finish()]
    shard_of = dict(zip(SENDERS, shards))
    got, split, _, _ = run_sharded(m, blocks, shard_of, tmp_path_factory.mktemp("shards"), carve=False)
    assert [as_tuple(r) for r in got] == expected
    touched = {}
    for receiver, sender, index, _, _ in blocks:
        touched.setdefault((t.key, receiver, index), set()).add(shard_of[sender])
    assert split == {k for k, s in touched.items() if len(s) > 1}


def test_a_piece_split_across_shards_verifies_and_is_kept(tmp_path):
    """Piece 0 of one receiver: its blocks from two senders in two shards; neither shard can
    verify it, the replay does, and keeps its bytes for carving."""
    m = meta()
    blocks = [(RECEIVERS[0], SENDERS[i % 2], 0, i * BLOCK, DATA[i * BLOCK:(i + 1) * BLOCK]) for i in range(4)]
    got, split, stores, nblocks = run_sharded(m, blocks, {SENDERS[0]: 0, SENDERS[1]: 1, SENDERS[2]: 0,
                                                          SENDERS[3]: 0}, tmp_path, carve=True)
    [r] = got
    assert r.status == "verified" and r.senders == {SENDERS[0]: 2 * BLOCK, SENDERS[1]: 2 * BLOCK}
    assert split and nblocks == 4
    t = Verifier([m]).torrents()[0]
    assert [read_piece(s, t, 0) for s in stores] == [None, None, DATA[:PLEN]]   # the replay alone verified it


def test_log_rows_and_spill(tmp_path):
    log = BlockLog(tmp_path)
    for n in range(20000):                     # beyond one in-memory lot of rows
        log.add(("k", "r", n % 3), (0, 1, n), n, bytes([n & 0xFF]) * 3, "s", (1, n, 7))
    tables = log.close()
    assert tables["spill_bytes"] == 60000 and tables["keys"] == [("k", "r", 0), ("k", "r", 1), ("k", "r", 2)]
    assert load_tables(tmp_path)["rows"] == [6667, 6667, 6666]
    rows = read_rows(tmp_path, {1}, chunk_rows=1000)
    assert len(rows) == 6667 and rows.dtype == ROW
    assert (rows["o_frame"] % 3 == 1).all() and (np.diff(rows["seq"]) > 0).all()
    r = rows[5]
    with open(tmp_path / "blocks.spill", "rb") as f:
        f.seek(int(r["pos"]))
        assert f.read(int(r["length"])) == bytes([int(r["o_frame"]) & 0xFF]) * 3
    remove_spill(tmp_path)
    assert not (tmp_path / "blocks.spill").exists() and not (tmp_path / "blocks.log").exists()
