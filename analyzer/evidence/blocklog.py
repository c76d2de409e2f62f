"""Piece verification split across shards: the block log, its spill, and the replay.

Theory of operation
-------------------
A staged run shards frames by IP address pair, so the connections a host
downloads one piece from may be in different shards.  The verifier's
outcome for a piece (first copy of every byte counts, conflicts, failed
pieces tried with later copies, redundant bytes, credit per sender)
depends on the order of *all* the blocks of that (torrent, receiver,
piece), so each shard verifies its own connections (``LoggedVerifier``)
and also keeps a *block log*: every call that hands the verifier a run
of block bytes, as one fixed-size row (``ROW``): the piece's key (an id
into the log's key table), a global *ordinal*, the offset and length in
the piece, the sender, the frame reference the verifier records
(``where``) and the position of the bytes in the shard's block spill
file (appended sequentially).

The ordinal orders the calls exactly as the one-process run makes them:
``(0, file, frame, seq)`` for a block handed over while the engine handles
frame ``frame`` of input ``file`` (for a datagram rebuilt from IP fragments:
the fragment that completed it; every frame is in exactly one shard, and
within a frame the shard makes the same calls in the same order: ``seq``,
a per-shard counter, breaks the tie), ``(1, first file, first frame, seq)``
for a block released when the connection is finished at the end of the
input (the engine finishes connections in order of creation, in each
shard as in the whole run).  Blocks held by a connection without a
handshake join the verifier when the connection is attributed by piece
hashes: they get the ordinal of that moment, as in the one-process run.

A (torrent, receiver, piece) that one shard alone touched keeps that
shard's results.  One touched by several shards is *split*: ``replay``
reads exactly its rows from every shard's log, merges them by ordinal,
reads their bytes from the spills and feeds them, in that order, to a
fresh ``Verifier`` with the same metadata; its results replace the
shards' results for those pieces.

Verified pieces are not carved by the shards (a split piece may verify in
one shard and fail in the whole run): ``PieceStore`` keeps each verified
piece in a sparse file per torrent, and the reduce stage carves the
pieces that verified in the end from those stores (every verified copy of
a piece has the same bytes, the ones its hash names).
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from analyzer.evidence.pieces import Tap, Verifier

ROW = np.dtype([("key", "<u4"), ("phase", "u1"), ("o_file", "<i8"), ("o_frame", "<i8"), ("seq", "<i8"),
                ("offset", "<u4"), ("length", "<u4"), ("sender", "<u4"),
                ("w_file", "<i4"), ("w_frame", "<i8"), ("w_ts", "<i8"), ("pos", "<u8")])
FLUSH_ROWS = 8192             # rows kept in memory before they are appended to the log file
ORDER = ["phase", "o_file", "o_frame", "seq"]


class BlockLog:
    """One shard's block log (``blocks.log``, rows) and block spill (``blocks.spill``, bytes)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.spill = open(self.folder / "blocks.spill", "wb")
        self.rows = open(self.folder / "blocks.log", "wb")
        self.keys: dict = {}          # (torrent key, receiver, index) -> id
        self.key_rows: list = []      # rows per key id
        self.senders: dict = {}       # sender -> id
        self.buf = np.zeros(FLUSH_ROWS, ROW)
        self.n = 0
        self.seq = 0
        self.pos = 0
        self.spill_bytes = 0

    def add(self, key: tuple, ordinal: tuple, offset: int, chunk, sender: str, where: tuple) -> None:
        k = self.keys.get(key)
        if k is None:
            k = self.keys[key] = len(self.keys)
            self.key_rows.append(0)
        self.key_rows[k] += 1
        s = self.senders.get(sender)
        if s is None:
            s = self.senders[sender] = len(self.senders)
        n = len(chunk)
        self.buf[self.n] = (k, ordinal[0], ordinal[1], ordinal[2], self.seq, offset, n, s,
                            where[0], where[1], where[2], self.pos)
        self.seq += 1
        self.n += 1
        self.spill.write(chunk)
        self.pos += n
        if self.n == FLUSH_ROWS:
            self._flush()

    def _flush(self) -> None:
        self.rows.write(self.buf[:self.n].tobytes())
        self.n = 0

    def close(self) -> dict:
        """Close the files; the log's tables (saved beside them as ``blocks.keys``)."""
        self._flush()
        self.rows.close()
        self.spill.close()
        self.spill_bytes = self.pos
        tables = {"keys": list(self.keys), "rows": self.key_rows, "senders": list(self.senders),
                  "spill_bytes": self.pos}
        with open(self.folder / "blocks.keys", "wb") as f:
            pickle.dump(tables, f, protocol=pickle.HIGHEST_PROTOCOL)
        return tables


def load_tables(folder: Path) -> dict:
    with open(Path(folder) / "blocks.keys", "rb") as f:
        return pickle.load(f)


def read_rows(folder: Path, key_ids, chunk_rows: int = 1 << 20) -> np.ndarray:
    """The rows of a shard's log whose key is one of ``key_ids`` (read in chunks: bounded memory)."""
    wanted = np.asarray(sorted(key_ids), dtype=np.uint32)
    out = []
    with open(Path(folder) / "blocks.log", "rb") as f:
        while True:
            raw = f.read(chunk_rows * ROW.itemsize)
            if not raw:
                break
            rows = np.frombuffer(raw, ROW)
            sel = rows[np.isin(rows["key"], wanted)]
            if len(sel):
                out.append(sel.copy())
    return np.concatenate(out) if out else np.zeros(0, ROW)


class LoggedTap(Tap):
    """A tap of a staged run: every block goes through ``Verifier.add`` (no fast path), with the
    ordinal of this moment."""

    def data(self, index: int, offset: int, chunk) -> None:
        e = self.engine
        v = self.verifier
        if v.finishing:
            c = self.conn
            v.ordinal = (1, c.first_file, c.first_frame)
        else:
            v.ordinal = (0, e.order_file, e.order_frame)
        self.slow(index, offset, chunk, (e.cur_file, e.cur_frame, e.cur_ts))


class LoggedVerifier(Verifier):
    """The verifier of one shard of a staged run: verifies as ``Verifier`` does (given metadata
    only: metadata rebuilt from the capture is the evidence stage's), logs every block it is
    handed, and keeps verified pieces in ``PieceStore`` rather than carving them."""

    def __init__(self, metas: list, log: BlockLog, store: "PieceStore | None" = None):
        super().__init__([], store)
        for m in metas:
            Verifier.register(self, m)
        self.log = log
        self.ordinal = (0, 0, 0)
        self.finishing = False

    def register(self, meta) -> None:
        """Metadata rebuilt from the capture: its blocks are verified by the evidence stage."""

    def tap(self, conn, d, parser, engine):
        return LoggedTap(self, conn, d, parser, engine)

    def add(self, t, receiver: str, sender: str, index: int, offset: int, chunk, where) -> None:
        if t.piece_span(index) is not None:
            self.log.add((t.key, receiver, index), self.ordinal, offset, chunk, sender, where)
        super().add(t, receiver, sender, index, offset, chunk, where)


class PieceStore:
    """Verified pieces kept for carving: one sparse file per torrent (piece ``i`` at ``i`` times the
    piece length), and which pieces it holds.  The same interface as ``carve.Carver`` for the
    verifier (``piece``, ``finish``)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.files: dict = {}         # torrent key -> open file
        self.have: dict = {}          # torrent key -> {index: length}

    def piece(self, t, index: int, data) -> None:
        have = self.have.setdefault(t.key, {})
        if index in have:
            return
        f = self.files.get(t.key)
        if f is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            f = self.files[t.key] = open(self.folder / f"{t.key}.pieces", "wb")
        f.seek(index * t.plen)
        f.write(data)
        have[index] = len(data)

    def finish(self) -> dict:
        """{torrent key: {index: length}}, the files closed."""
        for f in self.files.values():
            f.close()
        self.files = {}
        return {"folder": str(self.folder), "have": self.have}


def read_piece(store: dict, t, index: int) -> bytes | None:
    """Piece ``index`` of torrent ``t`` from a finished ``PieceStore`` (its ``finish()``), or None."""
    n = store["have"].get(t.key, {}).get(index)
    if n is None:
        return None
    with open(Path(store["folder"]) / f"{t.key}.pieces", "rb") as f:
        f.seek(index * t.plen)
        data = f.read(n)
    return data if len(data) == n else None


def replay(metas: list, shards: list[tuple[Path, dict]], keys: set, store_folder: Path | None) -> tuple:
    """Verify the split pieces ``keys`` ((torrent key, receiver, index)) from the block logs of
    ``shards`` ((folder, tables) per shard that touched them): their rows merged by ordinal, their
    bytes read from the spills, fed to a fresh verifier.  Returns (results, piece store or None,
    blocks, bytes read, the verifier's ``caps``)."""
    parts = []
    for n, (folder, tables) in enumerate(shards):
        ids = {i for i, k in enumerate(tables["keys"]) if tuple(k) in keys}
        if not ids:
            continue
        rows = read_rows(folder, ids)
        parts.append((n, rows))
    if not parts:
        return [], None, 0, 0, {}
    merged = np.concatenate([r for _, r in parts])
    shard_of = np.concatenate([np.full(len(r), n, np.int32) for n, r in parts])
    order = np.lexsort((merged["seq"], merged["o_frame"], merged["o_file"], merged["phase"]))
    store = PieceStore(store_folder) if store_folder is not None else None
    v = Verifier(metas, store)
    torrents = {t.key: t for t in v.torrents()}
    spills = {n: open(Path(shards[n][0]) / "blocks.spill", "rb") for n, _ in parts}
    read = 0
    try:
        for i in order.tolist():
            r = merged[i]
            tables = shards[int(shard_of[i])][1]
            tkey, receiver, index = tables["keys"][int(r["key"])]
            t = torrents.get(tkey)
            if t is None:
                continue
            f = spills[int(shard_of[i])]
            f.seek(int(r["pos"]))
            chunk = f.read(int(r["length"]))
            read += len(chunk)
            v.add(t, receiver, tables["senders"][int(r["sender"])], index, int(r["offset"]), chunk,
                  (int(r["w_file"]), int(r["w_frame"]), int(r["w_ts"])))
    finally:
        for f in spills.values():
            f.close()
    results = v.finish()
    return results, store.finish() if store is not None else None, len(order), read, dict(v.caps)


def remove_spill(folder: Path) -> None:
    """Delete a shard's block spill and log (their results are merged)."""
    for name in ("blocks.spill", "blocks.log"):
        try:
            os.unlink(Path(folder) / name)
        except OSError:
            pass
