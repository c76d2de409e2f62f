"""Spill files: the frames of one input file that belong to one shard (see _spill.pyx for
the record format).  ``SpillWriter`` routes reader batches to per-shard files;
``read_spill`` gives them back as arrays the engine takes."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from analyzer.pipeline import _spill

FLUSH_AT = 4 << 20            # bytes buffered per shard before they are appended to its file
READ_CHUNK = 8 << 20
BATCH_RECORDS = 1 << 15


class SpillWriter:
    """Routes the batches of one input file into ``shards`` spill files under ``folder``."""

    def __init__(self, folder: Path, file_idx: int, shards: int):
        self.paths = [folder / f"f{file_idx:06d}-s{s:04d}.spill" for s in range(shards)]
        self.bufs = [bytearray() for _ in range(shards)]
        self.files = [open(p, "wb") for p in self.paths]
        self.bytes_written = 0
        self.frames = [0] * shards

    def add(self, batch) -> None:
        _spill.route_batch(batch.buf, batch.rec_off, batch.caplen, batch.origlen, batch.ts_ns, batch.iface,
                           batch.if_linktype, batch.first_frame_no, batch.n, self.bufs)
        for s, b in enumerate(self.bufs):
            if len(b) >= FLUSH_AT:
                self._flush(s)

    def _flush(self, s: int) -> None:
        b = self.bufs[s]
        if b:
            self.files[s].write(b)
            self.bytes_written += len(b)
            self.bufs[s] = bytearray()

    def close(self) -> list[Path]:
        for s, f in enumerate(self.files):
            self._flush(s)
            f.flush()
            os.fsync(f.fileno())
            f.close()
        return self.paths

    def abort(self) -> None:
        for f in self.files:
            f.close()
        for p in self.paths:
            p.unlink(missing_ok=True)


class SpillBatch:
    """Records of a spill file as arrays (``Engine.process_records``)."""

    __slots__ = ("buf", "rec_off", "caplen", "origlen", "ts_ns", "linktype", "frame_no", "n")


def read_spill(path: Path):
    """Yield SpillBatch objects over a spill file, in order."""
    b = SpillBatch()
    b.rec_off = np.empty(BATCH_RECORDS, np.int64)
    b.caplen = np.empty(BATCH_RECORDS, np.uint32)
    b.origlen = np.empty(BATCH_RECORDS, np.uint32)
    b.ts_ns = np.empty(BATCH_RECORDS, np.int64)
    b.linktype = np.empty(BATCH_RECORDS, np.int32)
    b.frame_no = np.empty(BATCH_RECORDS, np.int64)
    buf = bytearray(READ_CHUNK)
    view = memoryview(buf)
    fill = 0
    with open(path, "rb") as f:
        while True:
            got = f.readinto(view[fill:])
            fill += got
            pos = 0
            while True:
                n, pos = _spill.parse_spill(buf, pos, fill, b.rec_off, b.caplen, b.origlen, b.ts_ns, b.linktype,
                                            b.frame_no)
                if not n:
                    break
                b.buf, b.n = buf, n
                yield b
            rest = fill - pos
            if not got:
                if rest:
                    raise ValueError(f"{path}: spill file ends inside a record ({rest} bytes)")
                return
            buf[:rest] = buf[pos:fill]
            fill = rest
            if fill == len(buf):               # one record larger than the buffer
                view.release()
                buf.extend(bytes(len(buf)))
                view = memoryview(buf)
