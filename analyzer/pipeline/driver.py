"""The staged run, stage by stage, on any executor: this process, or a Dask cluster.

The driver asks the work folder what is finished (with ``--resume``),
submits the missing map tasks, then, once every input is mapped, the missing
flows tasks, and reports each finished task to the progress.  Tasks are the
module-level functions below: plain arguments in, a result pickled into the
task's own folder (the finished mark) and returned.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

from analyzer.capture.reader import FileReport
from analyzer.digest import sha256_file
from analyzer.pipeline.stages import (MapResult, evidence_pass, fault_point, file_status, flows_shard, internal_error,
                                      map_file)
from analyzer.pipeline.evidence import caps_notes, run_evidence
from analyzer.pipeline.ranges import assemble, discard, finish, hash_task, map_range_task, plan_ranges
from analyzer.pipeline.workdir import WorkFolder, flows_key, install, map_folder, map_key, save_result

MAP_RETRIES = 2


# ---------------------------------------------------------------------- tasks (run anywhere)
def input_identity(path: Path, hash_input: bool) -> str | None:
    """What a map output is keyed by: the input's SHA-256, or, in a run that does not hash its
    inputs, its device, inode, size and modification time."""
    if hash_input:
        return sha256_file(path)
    try:
        st = path.stat()
    except OSError:
        return None
    return f"stat-{st.st_dev}-{st.st_ino}-{st.st_size}-{st.st_mtime_ns}"


def map_task(path: Path, file_idx: int, shards: int, root: Path, hash_input: bool = True,
             copy: bool = False) -> MapResult:
    """Map one input into a folder of its own, keyed by the input's SHA-256; an unexpected failure
    is confined to this file (reported in its FileReport, traceback in errors.log)."""
    staging = root / "map" / f".{file_idx}-{os.getpid()}-{time.monotonic_ns()}"
    try:
        fault_point(path, "map")
        result = map_file(path, file_idx, shards, staging, hash_input, copy)
        identity = result.sha256 if hash_input else input_identity(path, False)
        result.key = map_key(identity, shards, copy) if identity else None
        if result.key is None:
            shutil.rmtree(staging, ignore_errors=True)
            return result
        final = map_folder(root, result.key, file_idx)
        result.spills = install(staging, final, result.spills)
        save_result(final, result)
        return result
    except Exception as e:  # a bug met on this file's data: the other files go on
        shutil.rmtree(staging, ignore_errors=True)
        report = FileReport(str(path), readable=False)
        tracebacks: list = []
        internal_error(report, e, None, tracebacks)
        return MapResult(file_idx, report, traceback=tracebacks[0][1])


def flows_task(shard: int, shards: int, maps: list[MapResult], root: Path, key: str, metas: list = (),
               carve: bool = False):
    """One shard over the spill files of every mapped input, in input order (verifying the pieces
    of its connections, its blocks logged, with ``metas`` or ``carve``)."""
    folder = root / "flows" / key
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    fault_point(Path(f"shard-{shard}"), "flows")
    part = flows_shard(maps, shard, records_folder=folder / "records", metas=list(metas), carve=carve,
                       blocks=folder / "blocks")
    save_result(folder, part)
    return part


# ---------------------------------------------------------------------- executors
class _Done:
    """A task already run (hashable, as Dask futures are)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


class LocalExecutor:
    """Runs each task when it is submitted, in this process."""

    name = "staged, in-process"
    workers = 1

    def submit(self, fn, *args, **kw):
        return _Done(fn(*args))

    def done(self, futures):
        yield from futures

    @staticmethod
    def result(future):
        return future.value


class DaskExecutor:
    name = "dask"

    def __init__(self, client):
        self.client = client
        self.workers = len(client.scheduler_info().get("workers", {})) or 1

    def submit(self, fn, *args, retries: int = 0, priority: int = 0):
        return self.client.submit(fn, *args, pure=False, retries=retries, priority=priority)

    def done(self, futures):
        from distributed import as_completed
        yield from as_completed(futures)

    @staticmethod
    def result(future):
        return future.result()


# ---------------------------------------------------------------------- the driver
def run_staged(plan, executor, progress, warn):
    from analyzer.pipeline import Outcome, _size
    # one shard a worker: every flows task maps every input and, connections being interleaved in
    # it, touches nearly all its pages, so each more shard costs ~0.05-0.1 CPU-s a GB in page
    # tables (measured: 8 shards 1.27 s, 2 shards 0.89 s, 1 shard 0.51 s for the bench's case set)
    shards = plan.shards or (executor.workers if executor.workers > 1 else plan.workers)
    work = WorkFolder(plan.work_folder(), shards, plan.resume)
    copy = plan.spill_kind() == "copy"
    paths = plan.paths
    maps: dict[int, MapResult] = {}
    reused = 0
    if plan.resume:
        hashes = [executor.submit(input_identity, p, plan.hash_inputs) for p in paths]
        for i, h in enumerate(hashes):
            digest = executor.result(h)
            found = work.finished_map(map_key(digest, shards, copy)) if digest else None
            if found is not None:
                maps[i] = replace(found, file_idx=i)
                reused += 1
                progress.advance(_size(paths[i]))
                progress.task_done("map", str(paths[i]), file_status(found.report), reused=True)
    # inputs larger than their share of the case are mapped by byte range (``ranges``), in parallel
    cut = {i: r for i, r in plan_ranges(paths, executor.workers, plan.hash_inputs).items() if i not in maps}
    pending: dict = {}
    for i, p in enumerate(paths):
        if i in maps:
            continue
        if i in cut:
            for k, byte_range in enumerate(cut[i]):
                pending[executor.submit(map_range_task, p, i, k, byte_range, shards, work.root, copy,
                                        retries=MAP_RETRIES)] = ("range", i, k)
            if plan.hash_inputs:
                pending[executor.submit(hash_task, p, retries=MAP_RETRIES)] = ("hash", i, None)
        else:
            pending[executor.submit(map_task, p, i, shards, work.root, plan.hash_inputs, copy,
                                    retries=MAP_RETRIES)] = ("map", i, None)
    range_parts = {i: [None] * len(r) for i, r in cut.items()}
    digests: dict = {}
    one_pass: list = []           # ranged inputs mapped again in one pass (what the ranges could not settle)
    while pending:
        current, pending = pending, {}
        for fut in executor.done(list(current)):
            what, i, k = current[fut]
            result = executor.result(fut)
            if what == "map":
                maps[i] = result
                if i not in cut:
                    progress.advance(_size(paths[i]))
                progress.task_done("map", str(paths[i]), file_status(result.report), spill_bytes=result.spill_bytes)
                continue
            if what == "range":
                range_parts[i][k] = result
                a, b = cut[i][k]
                progress.advance(b - a)
                progress.task_done("range", f"{paths[i]} bytes {a}..{b}",
                                   "ok" if not result.range_error else "one pass", spill_bytes=result.spill_bytes)
            else:
                digests[i] = result
            if any(x is None for x in range_parts[i]) or (plan.hash_inputs and i not in digests):
                continue
            m, why = assemble(paths[i], i, range_parts[i], digests.get(i), plan.hash_inputs)
            identity = (m.sha256 if plan.hash_inputs else input_identity(paths[i], False)) if m else None
            if m is None or identity is None:
                discard(range_parts[i])
                one_pass.append(f"{paths[i]}: {why or 'no identity'}")
                pending[executor.submit(map_task, paths[i], i, shards, work.root, plan.hash_inputs, copy,
                                        retries=MAP_RETRIES)] = ("map", i, None)
                continue
            m.key = map_key(identity, shards, copy)
            m = finish(m, work.map_folder(m.key, i))
            save_result(work.map_folder(m.key, i), m)
            maps[i] = m
            progress.task_done("map", str(paths[i]), file_status(m.report), spill_bytes=m.spill_bytes,
                               ranges=len(m.ranges))
    ordered = [maps[i] for i in range(len(paths))]
    keys = [m.key for m in ordered if m.spills or m.ranges]
    parts: list = [None] * shards
    futures = {}
    verify = [sorted(m.info_hash_v1 or m.info_hash_v2 for m in plan.metas), plan.carve is not None]
    # the largest shards first (what the map stage wrote for them): the last task to start is a
    # small one, so the workers finish together
    weight = [sum(_size(p.spills[s]) for m in ordered for p in m.pieces() if p.spills) for s in range(shards)]
    for rank, s in enumerate(sorted(range(shards), key=lambda s: (-weight[s], s))):
        key = flows_key(s, shards, keys, verify)
        found = work.finished_flows(key) if plan.resume else None
        if found is not None:
            parts[s] = found
            reused += 1
            progress.task_done("flows", f"shard {s}", reused=True)
        else:
            futures[executor.submit(flows_task, s, shards, ordered, work.root, key, plan.metas,
                                    plan.carve is not None, priority=shards - rank)] = s
    for fut in executor.done(list(futures)):
        s = futures[fut]
        parts[s] = executor.result(fut)
        progress.task_done("flows", f"shard {s}")
    evidence = run_evidence(plan, executor, parts, work.root, progress, evidence_pass)
    run = {"engine": executor.name, "workers": executor.workers, "shards": shards,
           "spill": plan.spill_kind(), "spill_bytes": sum(m.spill_bytes for m in ordered),
           "flows_read_bytes": sum(p.read_bytes for p in parts), "reused_tasks": reused,
           "ranged_inputs": sum(1 for m in ordered if m.ranges), "range_tasks": sum(len(r) for r in cut.values())}
    if one_pass:
        run["ranges_mapped_again"] = one_pass
    notes = []
    if evidence is not None:
        run["evidence"] = evidence.facts
        notes = caps_notes(evidence.facts.get("caps", {}), staged=True)
    return Outcome([m.report for m in ordered], parts, run, notes=notes,
                   sha256=[m.sha256 for m in ordered],
                   tracebacks=[(m.report.path, m.traceback) for m in ordered if m.traceback], evidence=evidence)
