"""The staged pipeline on Dask: a local cluster of worker processes, or an existing scheduler.

Map tasks (one per input file) write spill files into the work folder; flows
tasks (one per shard) read them and write their record runs there too, so the
work folder must be visible at the same path to every worker (a shared file
system on a real cluster).  Each task's inputs are plain values and paths, so
the scheduler may run, retry (a worker that died) or move any task: the
results are the same.  A task whose input file cannot be read reports it in
the file's report; the other files go on.
"""
from __future__ import annotations

import os
import shutil
import time
import traceback
from pathlib import Path
from typing import Callable

from analyzer.capture.reader import FileReport
from analyzer.pipeline.stages import MapResult, flows_shard, map_file, read_inline

MAP_RETRIES = 2


def _fault(path: Path) -> None:
    """Fault injection for the cluster tests (``BT_ANALYZER_FAULT``, set in a worker's
    environment): ``slow-map:SECONDS`` delays every map task, ``map-raise:TEXT`` makes the map
    task of a file whose name contains TEXT fail as an internal error would."""
    fault = os.environ.get("BT_ANALYZER_FAULT", "")
    kind, _, arg = fault.partition(":")
    if kind == "slow-map":
        time.sleep(float(arg))
    elif kind == "map-raise" and arg and arg in path.name:
        raise RuntimeError(f"fault injected for {path.name}")


def safe_map_file(path: Path, file_idx: int, shards: int, folder: Path) -> MapResult:
    """map_file, with an unexpected failure confined to this file (its spills removed)."""
    try:
        _fault(path)
        return map_file(path, file_idx, shards, folder)
    except Exception as e:  # a bug met on this file's data: the other files go on
        report = FileReport(str(path), readable=False)
        report.errors.append(f"internal error while reading: {type(e).__name__}: {e}")
        for s in range(shards):
            (folder / f"f{file_idx:06d}-s{s:04d}.spill").unlink(missing_ok=True)
        log = folder.parent / "errors.log"
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"--- {path}\n{traceback.format_exc()}\n")
        return MapResult(file_idx, report)


def _flows_from_maps(shard: int, maps: list[MapResult], records_folder: Path):
    spills = [(m.file_idx, m.spills[shard]) for m in sorted(maps, key=lambda m: m.file_idx) if m.spills]
    return flows_shard(spills, records_folder=records_folder)


def _inline_task(paths: list[Path], metas, carve):
    """The whole run in one task (verification needs every connection together)."""
    from analyzer.pipeline.flows import Flows
    flows = Flows(metas, carve, verify=True)
    reports = read_inline(paths, flows)
    return reports, flows.finish()


def connect(plan):
    """(client, cluster or None): a client of the plan's scheduler, or of a new local cluster."""
    from distributed import Client, LocalCluster
    if plan.scheduler:
        return Client(plan.scheduler, timeout="30s"), None
    cluster = LocalCluster(n_workers=plan.workers, threads_per_worker=1, processes=True,
                           dashboard_address=None, memory_limit=0, silence_logs=50)
    return Client(cluster), cluster


def run_on_dask(plan, warn: Callable[[str], None], progress):
    from distributed import as_completed
    from analyzer.pipeline import Outcome, _size
    from analyzer.pipeline.stages import file_status
    client, cluster = connect(plan)
    work = plan.work_folder()
    try:
        workers = len(client.scheduler_info().get("workers", {})) or plan.workers
        if plan.verify:
            reports, part = client.submit(_inline_task, plan.paths, plan.metas, plan.carve, pure=False).result()
            for p, r in zip(plan.paths, reports):
                progress.advance(_size(p))
                progress.task_done("read", str(p), file_status(r))
            return Outcome(reports, [part], {"engine": "dask", "workers": workers, "shards": 1, "spill_bytes": 0})
        shards = plan.shards or workers
        maps = [client.submit(safe_map_file, p, i, shards, work / "map", pure=False, retries=MAP_RETRIES)
                for i, p in enumerate(plan.paths)]
        records = work / "records"
        records.mkdir(exist_ok=True)
        flows = [client.submit(_flows_from_maps, s, maps, records, pure=False) for s in range(shards)]
        map_results = []
        for f in as_completed(maps):
            m = f.result()
            map_results.append(m)
            progress.advance(_size(plan.paths[m.file_idx]))
            progress.task_done("map", str(plan.paths[m.file_idx]), file_status(m.report), spill_bytes=m.spill_bytes)
        map_results.sort(key=lambda m: m.file_idx)
        parts = [None] * shards
        index = {f.key: s for s, f in enumerate(flows)}
        for f in as_completed(flows):
            parts[index[f.key]] = f.result()
            progress.task_done("flows", f"shard {index[f.key]}")
        if (work / "errors.log").exists():
            warn(f"internal errors while reading some inputs: tracebacks in {work / 'errors.log'}")
        return Outcome([m.report for m in map_results], parts,
                       {"engine": "dask", "workers": workers, "shards": shards,
                        "spill_bytes": sum(m.spill_bytes for m in map_results)})
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
        shutil.rmtree(work / "map", ignore_errors=True)      # the records stay until the outputs are written
