"""What the map stage writes per input file and shard, and how the flows stage reads it back.

* For an uncompressed input, an *index*: per frame of the shard, its offset
  in the file, captured and wire lengths, time, frame number and link type
  (36 bytes a frame, in column blocks).  The flows stage maps the input file
  into memory and hands the engine the frames where they lie: nothing is
  copied, and the map stage writes a few percent of its input.
* For a compressed input, whose frames have no place in the file, a *data
  spill* (``_spill.pyx``: each frame whole, with the same facts).

Either way frames come back in frame order, as ``FrameBatch`` objects
(buffer + arrays) that ``Engine.process_records`` takes.

The index costs the map stage a few percent of its input in writes but
sends every flows task back to the inputs, and connections being
interleaved there, each task reads nearly every page of every input: on one
machine the page cache serves them all, but on a cluster every machine
running flows tasks reads the inputs again from the shared storage.  A
*copy* (``--spill copy``, the default with ``--scheduler``) writes about
the input's size once and each flows task reads only its own frames.  What
the flows tasks read is counted either way (``ReadCount``: the pages of the
input their frames lie on, or the spill files' bytes).
"""
from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

import numpy as np

from analyzer.capture.mapping import KEEP_BEHIND, redrop
from analyzer.safeio import start_writeback
from analyzer.pipeline import _spill

FLUSH_AT = 4 << 20            # bytes buffered per shard before they are appended to its file
WRITEBACK_EVERY = 4 << 20     # bytes written to a task's spill files between starts of their write-back
READ_CHUNK = 8 << 20
BATCH_RECORDS = 1 << 15
DROP_BEHIND = 64 << 20        # mapped input given back (madvise) after this many bytes were used,
                              # KEEP_BEHIND behind the batch in hand (TCP streams may read there)
INDEX_COLUMNS = (("off", np.int64), ("caplen", np.uint32), ("origlen", np.uint32), ("ts_ns", np.int64),
                 ("frame_no", np.int64), ("linktype", np.int32))
INDEX_BYTES = sum(np.dtype(t).itemsize for _, t in INDEX_COLUMNS)


class ReadCount:
    """Bytes a flows task read from the map stage's outputs and the inputs: for an index, the
    distinct pages of the input its frames lie on (frames come in file order, so a page counts
    once); for a data spill, the file's size."""

    __slots__ = ("bytes", "_last_page")

    def __init__(self):
        self.bytes = 0
        self._last_page = -1

    def new_input(self) -> None:
        self._last_page = -1

    def frames(self, off: np.ndarray, caplen: np.ndarray) -> None:
        """Count the pages of frames at ``off`` (ascending) of ``caplen`` bytes not counted yet."""
        keep = caplen > 0
        if not keep.all():
            off, caplen = off[keep], caplen[keep]
        if not len(off):
            return
        first = off // mmap.PAGESIZE
        last = (off + caplen.astype(np.int64) - 1) // mmap.PAGESIZE
        reach = np.maximum.accumulate(last)
        before = np.empty_like(reach)
        before[0] = self._last_page
        before[1:] = np.maximum(reach[:-1], self._last_page)
        new = last - np.maximum(first, before + 1) + 1
        self.bytes += int(new[new > 0].sum()) * mmap.PAGESIZE
        self._last_page = max(self._last_page, int(reach[-1]))


class FrameBatch:
    """Records as arrays (``Engine.process_records``): offsets into ``buf``."""

    __slots__ = ("buf", "rec_off", "caplen", "origlen", "ts_ns", "linktype", "frame_no", "n", "stable")

    def __init__(self):
        self.stable = False      # buf views a mapped input: its bytes never change while referenced


class _ShardFiles:
    """The spill files of one input, one a shard.  They must be on disk before the task says it
    is done (``--resume`` trusts a finished task's files), and waiting for that is the map
    task's only idle time: their write-back is started as they grow (``start_writeback``), so
    that the ``fsync`` at the end waits for the last few megabytes and one journal commit for
    all of them.  On the bench's 4.25 GB case set with 2 workers (strace), the 38 fsyncs of the
    run waited 0.10-0.12 s in all; now 0.02 s, and starting the write-backs 0.02 s."""

    def __init__(self, folder: Path, file_idx: int, shards: int, suffix: str):
        self.paths = [folder / f"f{file_idx:06d}-s{s:04d}.{suffix}" for s in range(shards)]
        self.files = [open(p, "wb") for p in self.paths]
        self.bytes_written = 0
        self._unsynced = 0

    def write(self, s: int, data) -> None:
        self.files[s].write(data)
        self.bytes_written += len(data)
        self._unsynced += len(data)
        if self._unsynced >= WRITEBACK_EVERY:
            self._unsynced = 0
            for f in self.files:
                f.flush()
                start_writeback(f.fileno())

    def close(self) -> list[Path]:
        for f in self.files:
            f.flush()
            start_writeback(f.fileno())
        for f in self.files:
            os.fsync(f.fileno())
            f.close()
        return self.paths

    def abort(self) -> None:
        for f in self.files:
            f.close()
        for p in self.paths:
            p.unlink(missing_ok=True)


class IndexWriter(_ShardFiles):
    """Routes the batches of one uncompressed input into ``shards`` index files."""

    kind = "index"

    def __init__(self, folder: Path, file_idx: int, shards: int):
        super().__init__(folder, file_idx, shards, "index")
        self.shards = shards

    def add(self, b) -> None:
        blocks = _spill.index_blocks(b.buf, b.rec_off, b.caplen, b.origlen, b.ts_ns, b.iface, b.if_linktype, b.n,
                                     self.shards, b.base, b.first_frame_no)
        for s, block in enumerate(blocks):
            if block:
                self.write(s, block)


class SpillWriter(_ShardFiles):
    """Routes the batches of one (compressed) input into ``shards`` data spill files."""

    kind = "data"

    def __init__(self, folder: Path, file_idx: int, shards: int):
        super().__init__(folder, file_idx, shards, "spill")
        self.bufs = [bytearray() for _ in range(shards)]

    def add(self, batch) -> None:
        _spill.route_batch(batch.buf, batch.rec_off, batch.caplen, batch.origlen, batch.ts_ns, batch.iface,
                           batch.if_linktype, batch.first_frame_no, batch.n, self.bufs)
        for s, b in enumerate(self.bufs):
            if len(b) >= FLUSH_AT:
                self.write(s, b)
                self.bufs[s] = bytearray()

    def close(self) -> list[Path]:
        for s, b in enumerate(self.bufs):
            if b:
                self.write(s, b)
        self.bufs = []
        return super().close()


def read_index(path: Path, input_path: Path, before_close=None, count: ReadCount | None = None,
               frame_base: int = 0):
    """FrameBatch objects over an index file, the frames read where they lie in ``input_path``
    (mapped into memory; what was used is given back as it goes, so memory stays bounded)."""
    if count is not None:
        count.new_input()
    with open(input_path, "rb") as f, open(path, "rb") as idx:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        view = memoryview(mm)
        b = FrameBatch()
        b.buf = view
        b.stable = before_close is not None      # the mapping stays until before_close has run
        try:
            mm.madvise(mmap.MADV_SEQUENTIAL)
            given_back = 0
            while head := idx.read(8):
                n = struct.unpack("<q", head)[0]
                cols = {}
                for name, dtype in INDEX_COLUMNS:
                    width = np.dtype(dtype).itemsize * n
                    cols[name] = np.frombuffer(idx.read(width), dtype, n)
                b.rec_off, b.caplen, b.origlen = cols["off"], cols["caplen"], cols["origlen"]
                b.ts_ns, b.frame_no, b.linktype, b.n = cols["ts_ns"], cols["frame_no"], cols["linktype"], n
                if frame_base:
                    b.frame_no = b.frame_no + frame_base
                if n and int(b.rec_off[-1]) + int(b.caplen[-1]) > size:
                    raise ValueError(f"{input_path}: shorter than its index {path} says")
                if count is not None:
                    count.frames(b.rec_off, b.caplen)
                yield b
                used = max(0, int(b.rec_off[0]) - KEEP_BEHIND) & ~(mmap.PAGESIZE - 1) if n else 0
                if used - given_back >= DROP_BEHIND:
                    mm.madvise(mmap.MADV_DONTNEED, given_back, used - given_back)
                    redrop(mm, given_back, used)
                    given_back = used
        finally:
            try:
                if before_close is not None:
                    before_close()
            finally:
                b.buf = None            # the consumer may still hold the batch: drop its view
                view.release()
                mm.close()


def read_spill(path: Path, count: ReadCount | None = None, frame_base: int = 0):
    """FrameBatch objects over a data spill file, in order (frame numbers plus ``frame_base``)."""
    if count is not None:
        count.bytes += os.stat(path).st_size
    b = FrameBatch()
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
                if frame_base:
                    b.frame_no[:n] += frame_base
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


def read_frames(kind: str, path: Path, input_path: Path, before_close=None, count: ReadCount | None = None,
                frame_base: int = 0):
    """FrameBatch objects of one map output file, whatever its kind.  ``before_close``: called
    before a mapped input is closed (its batches are ``stable`` until then: the engine may leave
    delivered bytes there, and must take them out first).  ``count``: what was read is added to it.
    ``frame_base``: added to the frame numbers (a byte range's are counted from its start)."""
    return (read_index(path, input_path, before_close, count, frame_base) if kind == "index"
            else read_spill(path, count, frame_base))
