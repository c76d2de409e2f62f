"""One analysis run: inputs -> engine -> connection records, datagrams, evidence -> subject.

This is the library API the CLI wraps: ``analyze(paths, local=..., jobs=...)``
returns an ``AnalysisResult``, the raw material (records, datagram facts,
announces, pieces, metadata) that ``analyzer.findings`` turns into the
subject-relative findings and ``analyzer.output`` writes.

With ``jobs`` > 1 the capture is read by that many processes, each owning
the connections whose 4-tuple hashes to it (connections partition cleanly;
frames without a flow are counted by partition 0), and their results are
merged; results are identical whatever ``jobs`` is, except that piece
verification needs every connection in one process.
"""
from __future__ import annotations

import multiprocessing
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from analyzer.capture.inputs import InputSet
from analyzer.capture.reader import CaptureError, CaptureReader, FileReport
from analyzer.decode.fragments import Defragmenter
from analyzer.evidence.carve import Carver
from analyzer.evidence.metainfo import TorrentMeta, load_torrents
from analyzer.evidence.pieces import Verifier
from analyzer.sessions import extensions
from analyzer.sessions._engine import Engine
from analyzer.sessions.datagrams import DatagramAnalyzer, DatagramResult
from analyzer.sessions.extensions.ut_metadata import rebuild
from analyzer.sessions.index import RecordIndex
from analyzer.sessions.linker import ConnectionLinker
from analyzer.sessions.records import record_from_conn
from analyzer.sessions.store import RecordStore
from analyzer.sessions.inference import infer_subject
from analyzer.sessions.subject import Subject, given_subject


@dataclass
class PartResult:
    """What one partition (process) produced."""

    records: RecordStore = field(default_factory=RecordStore)
    index: RecordIndex = field(default_factory=RecordIndex)
    kinds: dict = field(default_factory=dict)
    reasons: dict = field(default_factory=dict)
    unknown_link_types: dict = field(default_factory=dict)
    fragments: dict = field(default_factory=dict)
    reports: list[FileReport] = field(default_factory=list)
    frames: int = 0
    reused_tuples: int = 0
    idle_finished: int = 0        # connections finished after a long silence
    linked: int = 0               # connections attributed as the continuation of one of those
    udp: DatagramResult = field(default_factory=DatagramResult)
    http_announces: list = field(default_factory=list)
    extensions: dict = field(default_factory=dict)      # extension name -> its handler's result
    extension_messages: dict = field(default_factory=dict)
    pieces: list | None = None    # PieceResult, when this partition verified pieces
    carved: list = field(default_factory=list)


@dataclass
class AnalysisResult:
    inputs: InputSet
    reports: list[FileReport]
    records: RecordStore          # iterate: records in first-frame order, numbered
    index: RecordIndex            # facts about the records (torrent hashes, BitTorrent endpoints, ...)
    kinds: dict
    reasons: dict
    unknown_link_types: dict
    fragments: dict
    subject: Subject
    frames: int
    reused_tuples: int
    options: dict
    notes: list[str]
    udp: DatagramResult = field(default_factory=DatagramResult)
    announces: list = field(default_factory=list)     # TrackerAnnounce, HTTP and UDP, in time order
    metas: list[TorrentMeta] = field(default_factory=list)   # given with --torrent, then rebuilt
    pieces: list | None = None                               # PieceResult; None: verification not run
    rebuilt: list[TorrentMeta] = field(default_factory=list)  # metadata rebuilt from the capture (BEP 9)
    carved: list = field(default_factory=list)                # --carve reports
    extensions: dict = field(default_factory=dict)           # BEP 10 handler results (merged), by name
    extension_messages: dict = field(default_factory=dict)   # routing counts (unnamed, dropped)
    idle_finished: int = 0
    linked: int = 0

    @property
    def readable_files(self) -> int:
        return sum(1 for r in self.reports if r.readable)


def warn_stderr(message: str) -> None:
    print(f"bt-analyzer: {message}", file=sys.stderr)


def run_partition(paths: list[Path], partitions: int, partition: int, metas: list | None = None,
                  carve: Path | None = None) -> PartResult:
    """Read every input in order and follow the connections of one partition."""
    out = PartResult()
    engine = Engine(partitions=partitions, partition=partition)
    # pieces are assembled from blocks of several connections, which several
    # partitions would split: verification needs them all
    verifier = Verifier(metas or [], Carver(carve) if carve else None) if partitions == 1 else None
    engine.verifier = verifier
    router = extensions.ExtensionRouter(extensions.handlers(verifier))
    engine.extensions = router
    linker = ConnectionLinker()

    def collect_finished():
        for c in engine.drain_finished():
            attributed = verifier.attributions.get(c.conn_id) if verifier is not None else None
            r = linker.link(c, record_from_conn(c, out.http_announces, attributed))
            out.index.add(r)
            out.records.add(r)

    defrag = Defragmenter()
    udp = DatagramAnalyzer()
    for file_idx, path in enumerate(paths):
        report = FileReport(str(path))
        out.reports.append(report)
        try:
            reader = CaptureReader(path, report)
        except CaptureError as e:
            report.readable = False
            report.errors.append(str(e).split(": ", 1)[1] if ": " in str(e) else str(e))
            continue
        for batch in reader.batches():
            engine.process_batch(batch, file_idx)
            if engine.fragments:
                _defragment(engine, defrag)
                defrag.expire(int(batch.ts_ns[batch.n - 1]))
            if engine.datagrams:
                udp.add_all(engine.take_datagrams())
            collect_finished()
    engine.finish()
    collect_finished()
    out.idle_finished, out.linked = engine.idle_finished, linker.linked
    if engine.datagrams:
        udp.add_all(engine.take_datagrams())
    out.udp = udp.result()
    out.extensions = router.results()
    out.extension_messages = {"unnamed": router.unnamed, "dropped": router.dropped}
    if verifier is not None:
        out.pieces = verifier.finish()
        out.carved = verifier.carver.finish() if verifier.carver is not None else []
    defrag.flush()
    if defrag.dropped_frames:
        engine.count_undecodable(defrag.dropped_frames, defrag.dropped_bytes, "incomplete_ip_fragments")
    out.kinds = engine.kind_counts()
    out.reasons = engine.undecodable_reasons()
    out.unknown_link_types = dict(engine.unknown_link_types)
    out.fragments = {"datagrams_reassembled": defrag.reassembled, "overlap_conflicts": defrag.conflicts,
                     "incomplete_frames": defrag.dropped_frames}
    out.frames = engine.frames_seen
    out.reused_tuples = engine.reused_tuples
    return out


def _defragment(engine: Engine, defrag: Defragmenter) -> None:
    frags, engine.fragments[:] = list(engine.fragments), []
    for file_idx, frame_no, ts, wire, ipver, ip in frags:
        d = defrag.add(file_idx, frame_no, ts, wire, ipver, ip)
        if d is not None:
            engine.process_datagram(d.packet, d.ts_ns, d.file_idx, d.frame_no, d.frames, d.wire_bytes)


def _partition_worker(args):
    return run_partition(*args)


def analyze(paths: list[str | Path], *, local: list[str] = (), jobs: int = 1, torrents: list[str | Path] = (),
            carve: str | Path | None = None, warn: Callable[[str], None] = warn_stderr) -> AnalysisResult:
    subject = given_subject(list(local)) if local else None   # parse errors surface before reading
    metas, meta_errors = load_torrents([Path(t) for t in torrents])
    for e in meta_errors:
        warn(e)
    inputs = InputSet(paths)
    ordered = [f.path for f in inputs.files]
    if (metas or carve) and jobs > 1:
        # a piece is assembled from blocks of several connections, which
        # partitions would split: verification reads in one process
        warn("piece verification reads the capture in one process (--jobs ignored)")
        jobs = 1
    if jobs <= 1:
        parts = [run_partition(ordered, 1, 0, metas, Path(carve) if carve else None)]
    else:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(jobs) as pool:
            parts = pool.map(_partition_worker, [(ordered, jobs, k) for k in range(jobs)])
    inputs.close()          # waits for the input hashes
    main = parts[0]
    for f, report in zip(inputs.files, main.reports):
        f.report = report
        for e in report.errors:
            warn(f"{report.path}: {e}")
    records = main.records if len(parts) == 1 else RecordStore.merged([p.records for p in parts])
    index = main.index
    for p in parts[1:]:
        index.merge(p.index)
    ext = extensions.merge_results([p.extensions for p in parts])
    metadata = rebuild(ext["ut_metadata"])
    rebuilt = list(metadata.rebuilt.values())
    kinds = {k: [sum(p.kinds[k][0] for p in parts), sum(p.kinds[k][1] for p in parts)] for k in main.kinds}
    notes = []
    announces = sorted([a for p in parts for a in p.http_announces] + main.udp.tracker,
                       key=lambda a: (a.ts_ns, a.file_idx, a.frame_no, a.info_hash))
    if subject is None:
        subject = infer_subject(index, announces, main.udp)
        warn(f"subject inferred: {subject.basis}")
        notes.append(f"subject inferred: {subject.basis}")
    notes.extend(f"torrent file not usable: {e}" for e in meta_errors)
    notes.extend(f"metadata not rebuilt: {e}" for e in metadata.failures)
    return AnalysisResult(
        inputs=inputs, reports=main.reports, records=records, index=index, kinds=kinds, reasons=main.reasons,
        unknown_link_types=main.unknown_link_types, fragments=main.fragments, subject=subject,
        frames=main.frames,
        reused_tuples=sum(p.reused_tuples for p in parts),
        idle_finished=sum(p.idle_finished for p in parts), linked=sum(p.linked for p in parts),
        options={"local": list(local), "jobs": jobs, "torrents": [str(t) for t in torrents],
                 "carve": str(carve) if carve else None}, notes=notes,
        udp=main.udp, announces=announces, metas=metas + rebuilt, pieces=main.pieces, rebuilt=rebuilt,
        carved=main.carved, extensions=ext,
        extension_messages={k: sum(p.extension_messages[k] for p in parts) for k in main.extension_messages})
