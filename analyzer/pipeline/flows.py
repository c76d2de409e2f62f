"""The flows stage: frames -> connections, datagrams and evidence, for one shard.

``Flows`` owns one engine and what hangs off it (the BEP 10 router, the
piece verifier, the IP defragmenter, the datagram analyzer, the connection
linker and the record store).  Frames come either as reader batches (the
in-process path reads and analyses in one go) or as spilled records (the
staged path, one shard at a time, file after file).  ``finish()`` returns
a ``PartResult``: everything the reduce stage merges.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from analyzer.decode.fragments import Defragmenter
from analyzer.evidence.carve import Carver
from analyzer.evidence.pieces import Verifier
from analyzer.sessions import extensions
from analyzer.sessions._engine import Engine
from analyzer.sessions.datagrams import DatagramAnalyzer, DatagramResult
from analyzer.sessions.index import RecordIndex
from analyzer.sessions.linker import ConnectionLinker
from analyzer.sessions.records import record_from_conn
from analyzer.sessions.store import RecordStore

FINISH_LOT = 4096      # connections finished at the end of input between two collections


@dataclass
class PartResult:
    """What one shard (or the whole capture, in one process) produced."""

    records: RecordStore = field(default_factory=RecordStore)
    index: RecordIndex = field(default_factory=RecordIndex)
    kinds: dict = field(default_factory=dict)
    reasons: dict = field(default_factory=dict)
    unknown_link_types: dict = field(default_factory=dict)
    fragments: dict = field(default_factory=dict)
    frames: int = 0
    reused_tuples: int = 0
    finished_at_cap: int = 0      # connections the engine finished early (cap on live connections)
    linked: int = 0               # connections attributed as the continuation of one of those
    udp: DatagramResult = field(default_factory=DatagramResult)
    http_announces: list = field(default_factory=list)
    extensions: dict = field(default_factory=dict)      # extension name -> its handler's result
    extension_messages: dict = field(default_factory=dict)
    pieces: list | None = None    # PieceResult, when this shard verified pieces
    carved: list = field(default_factory=list)
    blocks: dict | None = None    # a staged shard's block log tables (``evidence.blocklog``)
    verify_caps: dict | None = None   # the verifier's result-changing caps (``Verifier.caps``)
    read_bytes: int = 0           # a staged shard's reads of the map outputs and inputs (``spill.ReadCount``)


class Flows:
    def __init__(self, metas: list | None = None, carve: Path | None = None, verify: bool = True,
                 records_folder: Path | None = None, only: set | None = None, blocks: Path | None = None):
        """``only``: follow only these flows (canonical keys), counting nothing else.  ``blocks``:
        a shard of a staged run verifying given metadata: its block log and verified pieces go to
        this folder (``evidence.blocklog``; ``carve``, when set, only says to keep the pieces)."""
        self.out = PartResult(records=RecordStore(folder=records_folder))
        self.engine = Engine(only=only)
        self.blocks = None
        if blocks is not None:
            from analyzer.evidence.blocklog import BlockLog, LoggedVerifier, PieceStore
            self.blocks = BlockLog(blocks)
            self.verifier = LoggedVerifier(metas or [], self.blocks, PieceStore(blocks / "pieces") if carve else None)
        else:
            self.verifier = Verifier(metas or [], Carver(carve) if carve else None) if verify else None
        self.engine.verifier = self.verifier
        self.router = extensions.ExtensionRouter(extensions.handlers(self.verifier))
        self.engine.extensions = self.router
        self.linker = ConnectionLinker()
        self.defrag = self.engine.defrag = Defragmenter()
        self.udp = DatagramAnalyzer()

    def feed_batch(self, batch, file_idx: int) -> None:
        """A capture reader's batch of input file ``file_idx``."""
        self.engine.process_batch(batch, file_idx)
        self._after()

    def end_of_file(self) -> None:
        """An input file is read to its end (or given up): no stream keeps its buffer."""
        self.engine.release_buffers()

    def feed_records(self, b, file_idx: int) -> None:
        """A SpillBatch of input file ``file_idx``."""
        self.engine.process_records(b.buf, b.rec_off, b.caplen, b.origlen, b.ts_ns, b.linktype, b.frame_no,
                                    file_idx, b.n, b.buf if b.stable else None)
        self._after()

    def _after(self) -> None:
        e = self.engine
        if e.datagrams:
            self.udp.add_all(e.take_datagrams())
        self._collect()

    def _collect(self) -> None:
        v = self.verifier
        done = self.engine.drain_finished()
        for i, c in enumerate(done):
            done[i] = None                # each connection freed once its record is made
            attributed = v.attributions.get(c.conn_id) if v is not None else None
            r = self.linker.link(c, record_from_conn(c, self.out.http_announces, attributed))
            self.out.index.add(r)
            self.out.records.add(r)

    def finish(self) -> PartResult:
        out, e = self.out, self.engine
        if self.blocks is not None:
            self.verifier.finishing = True      # blocks released now are ordered by connection
        while e.finish(FINISH_LOT):       # records made lot by lot: memory follows the lot, not every connection
            self._collect()
        self._collect()
        out.linked = self.linker.linked
        if e.datagrams:
            self.udp.add_all(e.take_datagrams())
        out.udp = self.udp.result()
        out.extensions = self.router.results()
        out.extension_messages = {"unnamed": self.router.unnamed, "dropped": self.router.dropped,
                                  "malformed_handshakes": self.router.malformed_handshakes}
        if self.verifier is not None:
            out.pieces = self.verifier.finish()
            out.verify_caps = dict(self.verifier.caps)
            out.carved = self.verifier.carver.finish() if self.verifier.carver is not None else []
        if self.blocks is not None:
            out.blocks = self.blocks.close()
            out.blocks["folder"] = str(self.blocks.folder)
            out.blocks["pieces"], out.carved = out.carved or None, []
        self.defrag.flush()
        if self.defrag.dropped_frames:
            e.count_undecodable(self.defrag.dropped_frames, self.defrag.dropped_bytes, "incomplete_ip_fragments")
        out.kinds = e.kind_counts()
        out.reasons = e.undecodable_reasons()
        out.unknown_link_types = dict(e.unknown_link_types)
        out.fragments = {"datagrams_reassembled": self.defrag.reassembled, "overlap_conflicts": self.defrag.conflicts,
                         "incomplete_frames": self.defrag.dropped_frames, "evicted_datagrams": self.defrag.evicted}
        out.frames = e.frames_seen
        out.reused_tuples = e.reused_tuples
        out.finished_at_cap = e.finished_at_cap
        return out
