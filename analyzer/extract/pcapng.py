"""The excerpt files: FILE.pcapng and FILE.frames.csv.

Theory of operation
-------------------
Frames selected while scanning arrive in capture order, as Enhanced Packet
Blocks built by ``_select.write_epbs``, and go straight into FILE.pcapng
(under a temporary name): a Section Header Block, then an Interface
Description Block for each link type when its first frame comes
(``if_tsresol`` 9: nanosecond timestamps, as read; the block is allowed
anywhere before its first use), then the frames.  A 24-byte index record per
frame (position = file index << 40 | frame number, timestamp, evidence tag,
block size) goes to a temporary index file, so memory does not grow with the
excerpt.  A few frames are decided only later (IP fragments, once their
datagram is whole; a BEP 51 query, once its answer is seen): they are kept in
memory as *late* frames.

``finish`` splices the late frames in at their original places (only then is
the file rewritten, with every interface described first), writes
FILE.frames.csv from the index, one row per excerpt frame (its number,
original file and frame number, time, evidence), and renames both.
"""
from __future__ import annotations

import csv
import io
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analyzer import __version__
from analyzer.decode.linktypes import linktype_name
from analyzer.extract import _select
from analyzer.safeio import SafeDir

INDEX = np.dtype([("pos", "<i8"), ("ts", "<i8"), ("tag", "<i4"), ("size", "<u4")])
CHUNK = 1 << 16                  # index records per step of the final pass
COPY = 16 << 20
FRAMES_COLUMNS = ("frame", "original_file", "original_frame", "ts", "evidence")


@dataclass(frozen=True)
class LateFrame:
    """A frame decided after later frames were written (an IP fragment, a held query)."""

    pos: int
    ts_ns: int
    linktype: int
    origlen: int
    data: bytes
    tag: int


def frames_csv_path(pcapng: Path) -> Path:
    """FILE.pcapng -> FILE.frames.csv (another name: NAME.frames.csv beside it)."""
    return pcapng.with_suffix(".frames.csv") if pcapng.suffix == ".pcapng" else \
        pcapng.with_name(pcapng.name + ".frames.csv")


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + bytes(-len(value) % 4)


def _block(btype: int, body: bytes) -> bytes:
    size = 12 + len(body)
    return struct.pack("<II", btype, size) + body + struct.pack("<I", size)


def section_header(comment: str) -> bytes:
    options = _option(4, f"bt-analyzer {__version__}".encode()) + _option(1, comment.encode()) + _option(0, b"")
    return _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + options)


def interface_description(linktype: int) -> bytes:
    """An interface of one link type, nanosecond timestamps, snap length 0 (no limit)."""
    options = _option(2, f"link type {linktype_name(linktype)} ({linktype})".encode()) \
        + _option(9, bytes([9])) + _option(0, b"")
    return _block(1, struct.pack("<HHI", linktype, 0, 0) + options)


def _csv_field(text: str) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow([text])
    return buf.getvalue().encode("utf-8")


def _blob(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    fields = [_csv_field(t) for t in texts]
    off = np.zeros(len(fields) + 1, np.int64)
    off[1:] = np.cumsum([len(f) for f in fields])
    return np.frombuffer(b"".join(fields) or b"\0", np.uint8), off


class ExcerptWriter:
    """Writes FILE.pcapng and FILE.frames.csv through ``analyzer.safeio`` (no link followed, never
    half-written: both appear complete at ``finish``, or not at all)."""

    def __init__(self, out: Path, comment: str):
        self.out = Path(out)
        self.csv_path = frames_csv_path(self.out)
        self._dir = SafeDir.open(self.out.parent, create=False)
        self._pcap = self._dir.create(self.out.name)
        self._blocks = self._pcap.__enter__()
        self._index = self._dir.scratch()
        self._head = section_header(comment)
        self._blocks.write(self._head)
        self.idb_of: dict[int, int] = {}       # link type -> interface id in the excerpt
        self._idbs: list[tuple[int, bytes]] = []   # (frames written before it, block)
        self.frames = 0                        # written in order
        self.late: list[LateFrame] = []
        self._buf = bytearray()

    # ------------------------------------------------------------------ while scanning
    def _idb(self, linktype: int) -> int:
        if linktype not in self.idb_of:
            self.idb_of[linktype] = len(self.idb_of)
            block = interface_description(linktype)
            self._idbs.append((self.frames, block))
            self._blocks.write(block)
        return self.idb_of[linktype]

    def add(self, batch, pos0: int, idx: np.ndarray, tags: np.ndarray) -> None:
        """Records ``idx`` (sorted) of a reader batch, with their evidence tags."""
        n = len(idx)
        if not n:
            return
        ts = batch.ts_ns[idx]
        if int(ts.min()) < 0:
            raise ValueError("a selected frame has a time before 1970, which pcapng cannot hold")
        for lt in np.unique(batch.if_linktype[batch.iface[idx]]):     # interfaces described before use
            self._idb(int(lt))
        idb_of_iface = np.array([self.idb_of.get(int(lt), 0) for lt in batch.if_linktype], np.int32)
        self._buf.clear()
        _select.write_epbs(batch.buf, batch.rec_off, batch.caplen, batch.origlen, batch.ts_ns, batch.iface,
                           idb_of_iface, idx, n, self._buf)
        self._blocks.write(self._buf)
        rec = np.empty(n, INDEX)
        rec["pos"] = np.int64(pos0) + idx.astype(np.int64)
        rec["ts"] = ts
        rec["tag"] = tags
        rec["size"] = _select.epb_sizes(batch.caplen, idx, n)
        self._index.write(rec.tobytes())
        self.frames += n

    def add_late(self, frame: LateFrame) -> None:
        if frame.ts_ns < 0:
            raise ValueError("a selected frame has a time before 1970, which pcapng cannot hold")
        self._idb(frame.linktype)
        self.late.append(frame)

    @property
    def total(self) -> int:
        return self.frames + len(self.late)

    # ------------------------------------------------------------------ at the end
    def finish(self, file_names: list[str], evidence: list[str]) -> None:
        """Write FILE.pcapng (the late frames put in place) and FILE.frames.csv."""
        self._index.flush()
        index = np.memmap(self._index, INDEX, mode="r") if self._index.tell() else np.empty(0, INDEX)
        late = sorted(self.late, key=lambda f: f.pos)
        late_rec = np.empty(len(late), INDEX)
        for i, f in enumerate(late):
            late_rec[i] = (f.pos, f.ts_ns, f.tag, 32 + (len(f.data) + 3) // 4 * 4)
        where = np.searchsorted(index["pos"], late_rec["pos"])     # late frame i goes before index[where[i]]
        pcap = self._splice(index, late, where) if late else self._pcap
        file_blob, file_off = _blob(file_names)
        tag_blob, tag_off = _blob(evidence)
        with self._dir.create(self.csv_path.name) as out:
            out.write((",".join(FRAMES_COLUMNS) + "\n").encode())
            number, j = 1, 0
            for start in range(0, max(len(index), 1), CHUNK):
                part = np.asarray(index[start:start + CHUNK])
                stop = start + len(part)
                k = j
                while k < len(late) and (where[k] < stop or stop == len(index)):
                    k += 1
                if k > j:
                    part = np.insert(part, where[j:k] - start, late_rec[j:k])
                    j = k
                out.write(_select.format_frames_csv(
                    number, np.ascontiguousarray(part["pos"]), np.ascontiguousarray(part["ts"]),
                    np.ascontiguousarray(part["tag"]), len(part), file_blob, file_off, tag_blob, tag_off))
                number += len(part)
            del index
            self._index.close()
            pcap.__exit__(None, None, None)           # the excerpt appears, then its frames.csv
        self._dir.close()

    def _splice(self, index: np.ndarray, late: list[LateFrame], where: np.ndarray):
        """A second version of the excerpt with every interface described first and the late frames in
        place (the first, written while scanning, is dropped); its NewFile, still open."""
        self._blocks.flush()
        fd = os.open(self._pcap.tmp, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self._dir.fd)
        first = os.fdopen(fd, "rb")
        spliced = self._dir.create(self.out.name)
        out = spliced.__enter__()
        offsets = _offsets_at(index, where)                 # of the in-order blocks, interfaces aside
        idb_offsets = _offsets_at(index, np.array([before for before, _ in self._idbs], np.int64))
        with first as blocks:
            out.write(blocks.read(len(self._head)))
            for _, block in self._idbs:
                out.write(block)
            events = sorted([(int(before), 0, k) for k, (before, _) in enumerate(self._idbs)]
                            + [(int(where[i]), 1, i) for i in range(len(late))])
            done = 0                                        # bytes of in-order blocks copied
            for _, kind, k in events:
                at = int(idb_offsets[k]) if kind == 0 else int(offsets[k])
                _copy(blocks, out, at - done)
                done = at
                if kind == 0:
                    blocks.read(len(self._idbs[k][1]))      # an interface block: already written above
                else:
                    out.write(self._late_block(late[k]))
            shutil.copyfileobj(blocks, out, COPY)
        self._pcap.__exit__(RuntimeError, RuntimeError("replaced"), None)     # drops the first version
        self._pcap = spliced
        return spliced

    def _late_block(self, f: LateFrame) -> bytes:
        buf = bytearray()
        data = np.frombuffer(f.data, np.uint8) if f.data else np.zeros(1, np.uint8)
        _select.write_epbs(data, np.zeros(1, np.int64), np.array([len(f.data)], np.uint32),
                           np.array([f.origlen], np.uint32), np.array([f.ts_ns], np.int64),
                           np.zeros(1, np.uint16), np.array([self.idb_of[f.linktype]], np.int32),
                           np.zeros(1, np.int32), 1, buf)
        return bytes(buf)

    def discard(self) -> None:
        """Drop everything written (the extraction failed)."""
        self._pcap.__exit__(RuntimeError, RuntimeError("discarded"), None)
        self._index.close()
        self._dir.close()


def _offsets_at(index: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Byte offsets in the block file of the blocks index[where] (sorted; len(index): the end)."""
    out = np.empty(len(where), np.int64)
    total, j, n = 0, 0, len(index)
    for start in range(0, n, CHUNK):
        sizes = np.asarray(index["size"][start:start + CHUNK], np.int64)
        before = np.concatenate([[0], np.cumsum(sizes)]) + total
        while j < len(where) and where[j] < start + len(sizes):
            out[j] = before[where[j] - start]
            j += 1
        total = int(before[-1])
    out[j:] = total
    return out


def _copy(src, dst, n: int) -> None:
    while n > 0:
        chunk = src.read(min(COPY, n))
        if not chunk:
            raise OSError("temporary block file shorter than its index")
        dst.write(chunk)
        n -= len(chunk)
