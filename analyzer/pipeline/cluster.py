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

from typing import Callable

from analyzer.pipeline.driver import DaskExecutor, run_staged


def connect(plan):
    """(client, cluster or None): a client of the plan's scheduler, or of a new local cluster."""
    from distributed import Client, LocalCluster
    if plan.scheduler:
        return Client(plan.scheduler, timeout="30s"), None
    cluster = LocalCluster(n_workers=plan.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, scheduler_kwargs={"dashboard": False}, memory_limit=0,
                           silence_logs=50)
    return Client(cluster), cluster


def run_on_dask(plan, warn: Callable[[str], None], progress):
    client, cluster = connect(plan)
    try:
        return run_staged(plan, DaskExecutor(client), progress, warn)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
