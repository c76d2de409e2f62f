"""How a run is executed: in one process, or in stages on a Dask cluster.

Theory of operation
-------------------
A run is four stages whose results flow one way:

1. *map*, one task per input file: read the file, route every frame by its
   IP address pair into one of K shard spill files (``spill.py``), report
   what reading found (frames, damage, link types);
2. *flows*, one task per shard: the shard's spill files of every input, in
   input order, through one engine (``flows.Flows``): reassembly, peer
   wire, connection records, datagrams, BEP 10 handlers;
3. *evidence* (``evidence.py``): piece verification needs every block a
   host received, from all its peers, in capture order.  With .torrent
   files given (or ``--carve``) each flows task verifies the pieces of its
   own connections and logs their blocks (``analyzer.evidence.blocklog``);
   a piece whose blocks several shards logged (*split*: its receiver got
   them over connections in different shards) is verified again by an
   evidence task per (torrent, receiving host) from those blocks, merged
   in the one-process order, and its result replaces the shards'.
   Metadata rebuilt from the capture (magnet links) is verified by reading
   the inputs again along the connections that can carry its blocks.
   ``--carve`` cuts the files from the pieces that verified in the end;
4. *reduce* (``analyzer.analysis.reduce_parts``): records merged by their
   sort key, counters summed, facts merged, metadata rebuilt from every
   shard's ut_metadata messages in capture order.

Every connection, IP fragment and datagram exchange between two hosts is in
one shard, so each shard's engine sees whole conversations and the merged
result does not depend on K, on the number of workers or on the order tasks
finish in: outputs are byte-identical whatever the engine.

The one-process path (one worker, no scheduler) is the same stages with K=1
and no spill: the input is read straight into one ``Flows``.  ``shards``
> 1 with one worker runs the staged path in this process (for tests and
small machines); ``workers`` > 1 starts a local Dask cluster, ``scheduler``
uses an existing one (its workers must see the inputs and the work folder
at the same paths).
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from analyzer.pipeline.flows import Flows, PartResult
from analyzer.pipeline.progress import Progress
from analyzer.pipeline.stages import read_inline


@dataclass
class Plan:
    paths: list[Path]                 # inputs in processing order
    metas: list = field(default_factory=list)
    carve: Path | None = None
    workers: int = 1
    scheduler: str | None = None
    shards: int | None = None
    workdir: Path | None = None
    resume: bool = False
    progress: object = None
    hash_inputs: bool = True          # False: a triage run (--no-input-hash)
    used_workdir: bool = False
    spill: str = "auto"               # what map tasks write for an uncompressed input: index, copy, auto

    def spill_kind(self) -> str:
        """``index`` or ``copy``; ``auto``: a copy on an existing cluster (its workers may be other
        machines, each of which would read every input again for its flows tasks), else an index."""
        if self.spill != "auto":
            return self.spill
        return "copy" if self.scheduler is not None else "index"

    @property
    def verify(self) -> bool:
        """Pieces are verified (while reading, in each shard) when metadata is given or files carved."""
        return bool(self.metas) or self.carve is not None

    def work_folder(self) -> Path:
        """The plan's work folder (a temporary one, made on first use, when none was given)."""
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="bt-analyzer-work-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.used_workdir = True
        return self.workdir

    def cleanup(self) -> None:
        """Remove the work folder once the outputs are written (it only serves to resume)."""
        if self.used_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def staged(self) -> bool:
        return self.scheduler is not None or self.workers > 1 or (self.shards or 1) > 1


@dataclass
class Outcome:
    reports: list                     # FileReport per input, in order
    parts: list[PartResult]           # one per shard
    run: dict                         # engine, workers, shards, spill bytes
    sha256: list | None = None        # per input, when the stages hashed them
    tracebacks: list = field(default_factory=list)   # (input path, traceback) of internal errors
    notes: list = field(default_factory=list)   # for summary.json (verification caps that acted)
    evidence: object = None           # a staged run's evidence stage (pipeline.evidence.Evidence): pieces,
                                      # carved files, records attributed by piece hashes


def run_plan(plan: Plan, warn: Callable[[str], None]) -> Outcome:
    progress = plan.progress or Progress()
    slots = None
    if plan.scheduler is None and plan.workers > 1:     # a local cluster: workers forked while one thread runs
        from analyzer.pipeline.cluster import local_dask_config
        from analyzer.pipeline.forked import start
        local_dask_config()
        slots = start(plan.workers)
    progress.begin(sum(_size(p) for p in plan.paths), len(plan.paths))
    try:
        return _run(plan, warn, progress, slots)
    finally:
        progress.end()
        if slots is not None:
            slots.close()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _run(plan: Plan, warn, progress, slots=None) -> Outcome:
    if not plan.staged:
        flows = Flows(plan.metas, plan.carve, verify=True)
        tracebacks: list = []
        reports = read_inline(plan.paths, flows, progress, tracebacks, plan.hash_inputs)
        part = flows.finish()
        notes = []
        if part.verify_caps:
            from analyzer.pipeline.evidence import caps_notes
            notes = caps_notes(part.verify_caps, staged=False)
        return Outcome(reports, [part], {"engine": "in-process", "workers": 1, "shards": 1,
                                         "spill_bytes": 0}, tracebacks=tracebacks, notes=notes)
    if plan.scheduler is None and plan.workers <= 1:
        from analyzer.pipeline.driver import LocalExecutor, run_staged   # (staged runs only)
        return run_staged(plan, LocalExecutor(), progress, warn)
    from analyzer.pipeline.cluster import run_on_dask
    return run_on_dask(plan, warn, progress, slots)
