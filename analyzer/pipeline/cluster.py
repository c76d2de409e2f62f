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

import contextlib
import signal
import threading
from typing import Callable

from analyzer.pipeline.driver import DaskExecutor, run_staged


@contextlib.contextmanager
def _signals_deferred():
    """SIGINT and SIGTERM held back while the scheduler and the client are made (about 0.1 s;
    the threads Dask starts meanwhile inherit the mask, so the signal then reaches this thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def quiet_distributed() -> None:
    """distributed's own stderr handlers at CRITICAL from now on.  A local cluster silences them
    while it lives (``silence_logs``) and gives them their level back when it closes, but its comms
    close after it does and then log, at INFO and with a traceback ("Batched Comm Closed"), on the
    command's stderr (seen after Ctrl-C).  Kept for the rest of the process: its tasks' errors
    reach the run through their futures, not through these logs."""
    import logging
    for handler in logging.getLogger("distributed").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setLevel(logging.CRITICAL)


# A local cluster's Dask settings (a cluster given by --scheduler keeps its own).  Dask's defaults
# serve an interactive dashboard, which a run does not start, and each took time from the tasks:
# a worker sampled its task thread's stack every 10 ms for the dashboard's profile (taking the
# interpreter lock 100 times a second); each process's event loop woke every 20 ms to check it
# was not blocked (a warning we silence) and sampled its CPU and memory every 0.5 s.  On the
# bench's 4.25 GB case set, 2 workers' tasks took 0.91 s (best) and 1.07 s (mean) with the
# settings below, 1.03 and 1.12 s with Dask's defaults (8 runs each, taking turns).  Given as
# environment variables too, so that workers spawned by Dask (when the run cannot fork them)
# read them; a variable the user set wins.
LOCAL_DASK = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
}


def local_dask_config() -> None:
    """Apply ``LOCAL_DASK`` to this process (and the workers it forks or spawns after this)."""
    import os
    import dask
    mine = {}
    for key, value in LOCAL_DASK.items():
        var = "DASK_" + key.upper().replace(".", "__").replace("-", "_")
        if var not in os.environ:
            os.environ[var] = str(value)
            mine[key] = value
    dask.config.set(mine)


def connect(plan, slots=None):
    """(client, cluster or None): a client of the plan's scheduler, or of a new local cluster (its
    workers forked earlier by ``slots`` when the run could fork them, else spawned by Dask)."""
    from distributed import Client, LocalCluster
    if plan.scheduler:
        return Client(plan.scheduler, timeout="30s"), None
    kw = dict(threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
              scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"}, memory_limit=0, silence_logs=50)
    if slots is None:
        cluster = LocalCluster(n_workers=plan.workers, **kw)
        return Client(cluster), cluster
    with _signals_deferred():          # a cluster or client half made by Ctrl-C would complain at exit
        cluster = LocalCluster(n_workers=0, **kw)
        slots.connect(cluster.scheduler_address)
        client = Client(cluster)
    try:
        client.wait_for_workers(plan.workers, timeout=120)
    except BaseException:
        client.close()
        cluster.close()
        raise
    return client, cluster


def run_on_dask(plan, warn: Callable[[str], None], progress, slots=None):
    quiet_distributed()
    client, cluster = connect(plan, slots)
    try:
        outcome = run_staged(plan, DaskExecutor(client), progress, warn)
        if cluster is not None:
            outcome.run["local_workers"] = "spawned" if slots is None else "forked"
        return outcome
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
