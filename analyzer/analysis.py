"""One analysis run: inputs -> stages -> connection records, datagram facts, evidence -> subject.

This is the library API the CLI wraps: ``analyze(paths, local=..., workers=...)``
returns an ``AnalysisResult``, the raw material (records, datagram facts,
announces, pieces, metadata) that ``analyzer.findings`` turns into the
subject-relative findings and ``analyzer.output`` writes.

How the work is done is the pipeline's business (``analyzer.pipeline``):
in one process reading the inputs straight through, or in stages (map, flows,
reduce) on a Dask cluster.  ``reduce_parts`` is the reduce stage: it merges
what the shards produced, in an order that does not depend on the number of
shards or the order tasks finished in, so the outputs are byte-identical
whatever the engine.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from analyzer.capture.inputs import InputSet
from analyzer.capture.reader import FileReport
from analyzer.evidence.metainfo import TorrentMeta, load_torrents, torrent_paths
from analyzer.pipeline import Plan, run_plan
from analyzer.pipeline.flows import PartResult
from analyzer.sessions import extensions
from analyzer.sessions.datagrams import DatagramResult
from analyzer.sessions.extensions.ut_metadata import rebuild
from analyzer.sessions.index import RecordIndex
from analyzer.sessions.store import RecordStore
from analyzer.sessions.inference import infer_subject
from analyzer.sessions.subject import Subject, given_subject


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
    linked: int = 0
    finished_at_cap: int = 0                                 # connections finished early (cap on live connections)
    run: dict = field(default_factory=dict)                  # how the run was done (engine, shards, bytes)
    case: object = None                                      # analyzer.case.Case given with --case
    torrent_files: list = field(default_factory=list)        # the .torrent files read, as given
    client_state: object = None                              # evidence.clientstate.ClientStateSet (--client-state)
    tracebacks: list = field(default_factory=list)           # (input, traceback) of internal errors
    cleanup: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def readable_files(self) -> int:
        return sum(1 for r in self.reports if r.readable)

    def close(self, completed: bool = True) -> None:
        """Delete what the run kept on disk: spilled records, the work folder.  After an
        interruption (``completed`` false) a staged run's work folder stays, for ``--resume``."""
        staged = self.run.get("engine") not in (None, "in-process")
        if completed or not staged:
            self.records.close()
        if completed and self.cleanup is not None:
            self.cleanup()


def warn_stderr(message: str) -> None:
    print(f"bt-analyzer: {message}", file=sys.stderr)


def reduce_parts(parts: list[PartResult]) -> dict:
    """Merge shards' results (records by their sort key; counters summed; facts merged)."""
    first = parts[0]
    records = first.records if len(parts) == 1 else RecordStore.merged([p.records for p in parts])
    index, udp = first.index, first.udp
    for p in parts[1:]:
        index.merge(p.index)
        udp.merge(p.udp)
    kinds = {k: [sum(p.kinds[k][0] for p in parts), sum(p.kinds[k][1] for p in parts)] for k in first.kinds}
    reasons: dict = {}
    unknown: dict = {}
    fragments: dict = {}
    for p in parts:
        for k, v in p.reasons.items():
            reasons[k] = reasons.get(k, 0) + v
        for k, v in p.unknown_link_types.items():
            unknown[k] = unknown.get(k, 0) + v
        for k, v in p.fragments.items():
            fragments[k] = fragments.get(k, 0) + v
    verified = [p for p in parts if p.pieces is not None]
    return dict(
        records=records, index=index, udp=udp, kinds=kinds, reasons=reasons, unknown_link_types=unknown,
        fragments=fragments, frames=sum(p.frames for p in parts),
        reused_tuples=sum(p.reused_tuples for p in parts),
        finished_at_cap=sum(p.finished_at_cap for p in parts),
        linked=sum(p.linked for p in parts),
        http_announces=[a for p in parts for a in p.http_announces],
        extensions=extensions.merge_results([p.extensions for p in parts]),
        extension_messages={k: sum(p.extension_messages[k] for p in parts) for k in first.extension_messages},
        pieces=verified[0].pieces if verified else None,
        carved=verified[0].carved if verified else [])


# --workers auto: a cost model from `make bench` (2 cores; slopes over the large case set, 1 to 8 rotated
# files of 4.25 GB, seconds a GB): one process reads at the input hash's pace on one core with the analysis on
# the other; a staged run costs this much CPU a GB (map and flows, every page mapped by each shard, two
# processes on one memory bus), spread over the workers, after a cluster start.  On 2 cores one process is as
# fast hashed (0.58-0.62 against 0.57-0.60 s/GB: the cluster's start decides) and faster without the hash
# (0.18-0.19 against 0.23-0.30); with more cores the staged run wins for cases large enough to pay its start.
ONE_PROCESS_S_PER_GB = {True: 0.60, False: 0.19}          # by whether the inputs are hashed
STAGED_CPU_S_PER_GB = {True: 1.2, False: 0.6}
CLUSTER_START_S = 0.5                                     # + 0.05 s a worker


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    import os
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def auto_workers(paths: list[Path], hash_inputs: bool = True, cores: int | None = None) -> int:
    """Workers for ``--workers auto``: one per core where the staged run is expected to end sooner
    than this process alone (enough cores and bytes to pay the cluster's start), else 1.  A file's
    SHA-256 is computed on one core whatever the workers, so its task takes about as long as one
    process takes for it: hashed, one file never gains, and the largest file bounds the staged run.
    Unhashed, one large classic pcap file is mapped by byte range (``pipeline.ranges``)."""
    from analyzer.pipeline.ranges import _classic_pcap
    sizes = []
    for p in paths:
        try:
            sizes.append(p.stat().st_size)
        except OSError:
            pass
    if cores is None:
        cores = usable_cores()
    if not sizes or cores < 2:
        return 1
    if len(sizes) < 2 and (hash_inputs or not _classic_pcap(paths[0])):
        return 1
    gb = sum(sizes) / 1e9
    one = gb * ONE_PROCESS_S_PER_GB[hash_inputs]
    start = CLUSTER_START_S + 0.05 * cores
    staged = start + gb * STAGED_CPU_S_PER_GB[hash_inputs] / cores
    if hash_inputs:
        staged = max(staged, start + max(sizes) / 1e9 * ONE_PROCESS_S_PER_GB[True])
    return cores if staged < one else 1


def analyze(paths: list[str | Path], *, local: list[str] = (), workers: int | str = 1, torrents: list[str | Path] = (),
            carve: str | Path | None = None, warn: Callable[[str], None] = warn_stderr, jobs: int | None = None,
            scheduler: str | None = None, shards: int | None = None, workdir: str | Path | None = None,
            resume: bool = False, progress=None, case=None, include: str | None = None,
            client_state: list[str | Path] = (), hash_inputs: bool = True, spill: str = "auto") -> AnalysisResult:
    """Analyse the capture files (or folders) ``paths``.

    ``workers`` > 1 or ``scheduler`` (a Dask scheduler address) run the staged
    pipeline (``jobs`` is an older name of ``workers``); ``shards`` overrides the
    number of shards of the flows stage (default: one per worker); ``workdir``
    keeps the stages' outputs (``resume`` reuses those already finished); ``spill``: what the
    map stage writes for an uncompressed input (``index``, ``copy`` or ``auto``: ``Plan.spill_kind``); ``case``: the
    ``analyzer.case.Case`` of the examination (recorded, not used in the analysis);
    ``client_state``: the subject's BitTorrent client state files or folders, reconciled with
    the capture in the findings."""
    subject = given_subject(list(local)) if local else None   # parse errors surface before reading
    if jobs is not None:
        workers = jobs
    metas, meta_errors = load_torrents([Path(t) for t in torrents])
    torrent_files = [str(f) for f in torrent_paths([Path(t) for t in torrents])]
    state = None
    if client_state:
        from analyzer.evidence.clientstate import read_client_state
        state = read_client_state([Path(p) for p in client_state])
        for f in state.files:
            for e in f.errors:
                warn(f"{f.path}: {e}")
    for e in meta_errors:
        warn(e)
    inputs = InputSet(paths, include)
    if inputs.skipped:
        what = f"not matching {include!r}" if include else "that are not captures"
        warn(f"skipped {inputs.skipped} file(s) in the folders given {what}")
    ordered = [f.path for f in inputs.files]
    if workers == "auto":
        from analyzer.pipeline.workdir import staged_shards
        earlier = staged_shards(Path(workdir)) if resume and workdir is not None and scheduler is None else None
        if earlier is not None:         # --resume of a staged run: staged again, on its shards (its keys)
            workers, shards = usable_cores(), shards or earlier
        else:
            workers = auto_workers(ordered, hash_inputs)
    plan = Plan(paths=ordered, metas=metas, carve=Path(carve) if carve else None,
                workers=max(1, workers), scheduler=scheduler, shards=shards,
                workdir=Path(workdir) if workdir else None, resume=resume, progress=progress,
                hash_inputs=hash_inputs, spill=spill)
    outcome = run_plan(plan, warn)
    inputs.set_hashes([r.sha256 for r in outcome.reports])     # computed while reading (read once)
    for f, report in zip(inputs.files, outcome.reports):
        f.report = report
        for e in report.errors:
            warn(f"{report.path}: {e}")
    merged = reduce_parts(outcome.parts)
    if outcome.evidence is not None:
        # the evidence stage of a staged run: pieces (split ones verified again), carved files
        merged["pieces"], merged["carved"] = outcome.evidence.pieces, outcome.evidence.carved
        attributed = outcome.evidence.attributed
        if attributed:
            merged["records"].override(attributed)
            merged["index"] = RecordIndex()
            for r in merged["records"]:
                merged["index"].add(r)
    metadata = rebuild(merged["extensions"]["ut_metadata"])
    rebuilt = list(metadata.rebuilt.values())
    notes = []
    announces = sorted(merged.pop("http_announces") + merged["udp"].tracker,
                       key=lambda a: (a.ts_ns, a.file_idx, a.frame_no, a.info_hash))
    if subject is None:
        subject = infer_subject(merged["index"], announces, merged["udp"])
        warn(f"subject inferred: {subject.basis}")
        notes.append(f"subject inferred: {subject.basis}")
    notes.extend(outcome.notes)
    notes.extend(f"torrent file not usable: {e}" for e in meta_errors)
    notes.extend(f"metadata not rebuilt: {e}" for e in metadata.failures)
    if not hash_inputs:
        notes.append("the inputs were not hashed (--no-input-hash, a triage run): no SHA-256 of them is recorded")
    if metadata.failures_not_listed:
        notes.append(f"metadata not rebuilt: ... and {metadata.failures_not_listed} more not listed "
                     f"(the first {len(metadata.failures)} are)")
    if inputs.skipped:
        notes.append(f"{inputs.skipped} file(s) in the folders given were skipped: "
                     + (f"names not matching --include {include!r}" if include else "not pcap/pcapng captures"))
    return AnalysisResult(
        inputs=inputs, reports=outcome.reports, subject=subject,
        options={"local": list(local), "torrents": [str(t) for t in torrents], "hash_inputs": hash_inputs,
                 "carve": str(carve) if carve else None}, notes=notes,
        announces=announces, metas=metas + rebuilt, rebuilt=rebuilt, run=outcome.run, cleanup=plan.cleanup,
        case=case, torrent_files=torrent_files, client_state=state, tracebacks=outcome.tracebacks,
        **merged)
