"""The stages of a run as plain functions on typed values, for any engine to schedule.

* ``read_inline(paths, flows)``: the one-process path, no spill: every input
  file read in order straight into one ``Flows``;
* ``map_file``: one input file -> its frames routed to ``shards`` (frames
  between the same two IP addresses always go to the same shard): an index of
  each shard's frames for an uncompressed file, a copy of them for a
  compressed one (``spill.py``), and the reader's report of the file;
* ``flows_shard``: one shard over the map outputs of every input, in input
  order -> a ``PartResult``.

The reduce stage (merging part results and reports into one
``AnalysisResult``) is ``analyzer.analysis.reduce_parts``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from analyzer.capture.hashing import FileHasher
from analyzer.capture.reader import CaptureError, CaptureReader, FileReport
from analyzer.digest import sha256_file
from analyzer.pipeline.flows import Flows, PartResult
from analyzer.pipeline.progress import Progress
from analyzer.pipeline.spill import IndexWriter, ReadCount, SpillWriter, read_frames


@dataclass
class MapResult:
    file_idx: int
    report: FileReport
    spills: list = field(default_factory=list)     # Path per shard (empty when the file was unreadable)
    spill_bytes: int = 0
    sha256: str | None = None                      # of the input as stored
    key: str | None = None                         # the work folder's key of this output
    traceback: str | None = None                   # of an internal error met on this file
    kind: str = "index"                            # "index" (frames read in place) or "data" (spilled)
    path: str = ""                                 # the input file
    # a byte range of the input (``pipeline.ranges``): the range, where its first record and the one
    # after its last begin, why it could not be read alone, and its first frame's number less one
    byte_range: tuple | None = None
    range_first: int | None = None
    range_exit: int | None = None
    range_error: str | None = None
    frame_base: int = 0
    ranges: list | None = None                     # an input mapped by byte range: a MapResult per range

    def pieces(self) -> list:
        """What the flows stage reads of this input, in order: its ranges, or itself."""
        return self.ranges if self.ranges is not None else [self]


def open_reader(path: Path, report: FileReport, hash_input: bool = True,
                byte_range: tuple | None = None) -> CaptureReader | None:
    """A reader that also hashes the file as it reads it (read once), or None with the reason in
    the report (and the file hashed on its own, when it can be read at all).  ``byte_range``: only
    the records that begin in it (no hash)."""
    try:
        return CaptureReader(path, report, FileHasher() if hash_input else None, byte_range)
    except CaptureError as e:
        report.readable = False
        report.errors.append(str(e).split(": ", 1)[1] if ": " in str(e) else str(e))
        report.sha256 = sha256_file(path) if hash_input else None
        return None


def fault_point(path: Path, stage: str) -> None:
    """Fault injection for the tests of failures confined to one file (``BT_ANALYZER_FAULT`` in
    the environment of the process that reads): ``slow-map:SECONDS`` delays every map task;
    ``slow-flows:SECONDS`` delays every flows task; ``raise:TEXT`` makes reading a file whose
    name contains TEXT fail as an internal error would (map tasks before reading, the
    one-process path after the first batch)."""
    import os
    import time
    kind, _, arg = os.environ.get("BT_ANALYZER_FAULT", "").partition(":")
    if (kind, stage) in (("slow-map", "map"), ("slow-flows", "flows")):
        time.sleep(float(arg))
    elif kind == "raise" and arg and arg in path.name:
        raise RuntimeError(f"fault injected for {path.name}")


def read_inline(paths: list[Path], flows: Flows, progress: Progress | None = None,
                tracebacks: list | None = None, hash_input: bool = True) -> list[FileReport]:
    """Read every input in order into ``flows``; the reports of the files.  An unexpected failure
    (a bug met on a file's data) ends that file alone: its report says where, ``tracebacks`` gets
    (path, traceback), and the next file is read."""
    import sys
    progress = progress or Progress()
    reports = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, 0.0005))   # the hashing thread gets the lock quickly when it asks
    try:
        _read_all(paths, flows, progress, tracebacks, reports, hash_input)
    finally:
        sys.setswitchinterval(interval)
    return reports


def _read_all(paths, flows, progress, tracebacks, reports, hash_input) -> None:
    for file_idx, path in enumerate(paths):
        report = FileReport(str(path))
        reports.append(report)
        reader = open_reader(path, report, hash_input)
        if reader is None:
            progress.task_done("read", str(path), "unreadable")
            continue
        done = 0
        try:
            for batch in reader.batches():
                flows.feed_batch(batch, file_idx)
                fault_point(path, "read")
                pos = reader.raw_position()
                progress.advance(pos - done)
                done = pos
        except Exception as e:
            internal_error(report, e, reader.raw_position(), tracebacks)
            reader.close()
        flows.end_of_file()
        progress.advance(max(0, report.size_bytes - done))
        progress.task_done("read", str(path), file_status(report))


def internal_error(report: FileReport, e: Exception, offset: int | None, tracebacks: list | None) -> None:
    """Record an unexpected failure met while analysing a file (a bug: the traceback is kept)."""
    import traceback
    where = f" near offset {offset}" if offset is not None else ""
    report.internal_error = f"{type(e).__name__}: {e}"
    report.error(None, f"internal error{where}: {type(e).__name__}: {e}; the rest of this file was not "
                       f"analysed (the traceback is in errors.log)")
    if tracebacks is not None:
        tracebacks.append((report.path, traceback.format_exc()))


def file_status(report: FileReport) -> str:
    """ok, damaged or unreadable: how reading a file went."""
    if not report.readable:
        return "unreadable"
    if report.internal_error:
        return "failed"
    return "damaged" if report.errors or report.damaged_bytes or report.truncated_bytes else "ok"


def map_file(path: Path, file_idx: int, shards: int, folder: Path, hash_input: bool = True,
             copy: bool = False, byte_range: tuple | None = None) -> MapResult:
    """Route one input file's frames into ``shards`` spill files under ``folder``: an index of
    where they lie, or (``copy``, or a compressed input) the frames themselves.  ``byte_range``:
    the records that begin in it (``RangeError`` when it cannot be read alone)."""
    report = FileReport(str(path))
    reader = open_reader(path, report, hash_input and byte_range is None, byte_range)
    if reader is None:
        return MapResult(file_idx, report, sha256=report.sha256, path=str(path))
    folder.mkdir(parents=True, exist_ok=True)
    # frames of an uncompressed file are read where they lie (an index); a compressed one's are copied
    writer = (IndexWriter if report.compression == "none" and not copy else SpillWriter)(folder, file_idx, shards)
    try:
        for batch in reader.batches():
            writer.add(batch)
        spills = writer.close()
    except BaseException:
        writer.abort()
        raise
    return MapResult(file_idx, report, spills, writer.bytes_written, sha256=report.sha256, kind=writer.kind,
                     path=str(path), byte_range=byte_range, range_first=reader.range_first,
                     range_exit=reader.range_exit)


def flows_shard(maps: list[MapResult], shard: int, records_folder: Path | None = None, metas: list | None = None,
                carve: bool = False, blocks: Path | None = None) -> PartResult:
    """One shard over the map outputs of every input, in input order.  With ``metas`` (or
    ``carve``), the shard verifies the pieces of its connections and logs their blocks under
    ``blocks`` (``evidence.blocklog``)."""
    verify = bool(metas) or carve
    flows = Flows(metas, carve or None, verify=False, records_folder=records_folder,
                  blocks=blocks if verify else None)
    count = ReadCount()
    for m in sorted(maps, key=lambda m: m.file_idx):
        for piece in m.pieces():
            if piece.spills:
                for b in read_frames(piece.kind, piece.spills[shard], Path(m.path), before_close=flows.end_of_file,
                                     count=count, frame_base=piece.frame_base):
                    flows.feed_records(b, m.file_idx)
    part = flows.finish()
    part.read_bytes = count.bytes
    return part


def evidence_pass(paths: list[Path], keys: set, metas: list = (), store: Path | None = None) -> tuple:
    """Verification of metadata rebuilt from the capture, for a run whose flows stage had several
    shards (a piece is assembled from the blocks of all its receiver's connections): the inputs
    are read again following only the flows ``keys`` (the connections of those torrents, and those
    without a handshake), exactly as the one-process run follows them (metadata registered when it
    completes, blocks verified from then on; ``metas``, the given metadata, verified too so that a
    connection without a handshake is probed as in that run).  Returns the pieces, by record sort
    key the records of connections attributed by piece hashes, and (``store``: a folder to keep
    the verified pieces in, for carving) the finished ``PieceStore`` or None."""
    from analyzer.evidence.blocklog import PieceStore
    from analyzer.sessions.store import sort_key
    flows = Flows(list(metas), verify=True, only=keys)
    if store is not None:
        flows.verifier.carver = PieceStore(store)
    read_inline(paths, flows, hash_input=False)
    part = flows.finish()
    attributed = {sort_key(r): r for r in part.records if r.attribution == "piece_hashes"}
    part.records.close()
    return part.pieces, attributed, part.carved or None
