"""Local Dask workers forked from the run's process before it starts any thread.

Dask's local cluster spawns each worker: a fresh interpreter that imports
distributed, numpy and the analyzer before its first task, about 0.5 CPU
seconds per worker, so on two cores a two-worker run paid ~0.9 s of start-up
before it could beat one process.  Forking costs a millisecond and the child
has every module already, but forking a process that runs threads (Dask's
event loop, the progress bar) can leave a lock held forever in the child.  So
the run forks its workers first, while it has one thread (``start`` checks
and says no otherwise; the caller then uses Dask's spawned cluster):

    run (driver)                 one thread at fork time
      +- slot 0  "nanny"         single-threaded for life: waits for the
      |    +- worker 0           scheduler's address, forks the worker proper,
      +- slot 1  "nanny"         waits for it, forks it again if it died of
           +- worker 1           anything but a clean close (as Dask's nanny
                                 restarts a worker), so the scheduler can retry
                                 the task it held on the new one.

Each worker is a plain ``distributed.Worker`` (one thread) connected over TCP
on 127.0.0.1 to a scheduler the driver runs in-process: the same engine, the
same task retries, only a cheaper birth.  Every process of the tree dies with
its parent (``PR_SET_PDEATHSIG``) and ignores SIGINT: the driver handles
Ctrl-C and closes the cluster (the scheduler tells its workers to close, each
exits 0, its slot process with it).
"""
from __future__ import annotations

import os
import signal
import sys
import threading

from analyzer.worker import die_with_parent

MAX_RESTARTS = 16          # a slot whose worker keeps dying stops forking new ones (the others go on)


def _worker(address: str, name: str) -> int:
    """The worker proper (in a fresh fork of the slot): serve until the scheduler says close."""
    import asyncio
    import logging
    from distributed import Worker
    logging.getLogger("distributed").setLevel(logging.CRITICAL)

    async def serve():
        # (on loopback only, its comm and its HTTP server: a worker runs what it is sent)
        async with Worker(address, nthreads=1, name=name, memory_limit=0, dashboard=False, host="127.0.0.1",
                          dashboard_address="127.0.0.1:0", death_timeout=60, silence_logs=logging.CRITICAL) as w:
            await w.finished()
    asyncio.run(serve())
    return 0


def _slot(read_fd: int, name: str, parent: int) -> None:
    """A slot's supervisor: never starts a thread, so it may fork its worker again and again."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent)
    os.closerange(3, read_fd)              # the driver's files and pipes are not the slot's
    os.closerange(read_fd + 1, os.sysconf("SC_OPEN_MAX"))
    with os.fdopen(read_fd, "rb") as pipe:
        address = pipe.readline().decode().strip()
    if not address:                        # the driver gave up before the scheduler started
        os._exit(0)
    me = os.getpid()
    for _ in range(1 + MAX_RESTARTS):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                die_with_parent(me)
                code = _worker(address, name)
            except BaseException:          # noqa: BLE001 -- the slot forks a new worker
                code = 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) == 0 or os.getppid() != parent:
            break
    os._exit(0)


class ForkedWorkers:
    """``n`` worker slots forked now; ``connect(address)`` lets their workers join a scheduler."""

    def __init__(self, n: int):
        self.pids: list[int] = []
        self.pipes: list[int] = []
        parent = os.getpid()
        sys.stdout.flush()                 # nothing buffered is written twice
        sys.stderr.flush()
        for i in range(n):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:                    # (the slot closes every other descriptor, w among them)
                try:
                    _slot(r, f"local-{i}", parent)
                finally:
                    os._exit(1)
            os.close(r)
            self.pids.append(pid)
            self.pipes.append(w)

    def connect(self, address: str) -> None:
        for fd in self.pipes:
            os.write(fd, address.encode() + b"\n")
            os.close(fd)
        self.pipes = []

    def close(self, timeout: float = 10.0) -> None:
        """Reap the slots (their workers were told to close by the scheduler); kill what lingers."""
        import time
        for fd in self.pipes:               # never connected: an empty line ends the slot
            os.close(fd)
        self.pipes = []
        deadline = time.monotonic() + timeout
        pending = list(self.pids)
        while pending and time.monotonic() < deadline:
            for pid in list(pending):
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    done = pid
                if done:
                    pending.remove(pid)
            if pending:
                time.sleep(0.02)
        for pid in pending:
            try:
                os.kill(pid, signal.SIGKILL)       # its worker dies with it
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        self.pids = []


def start(n: int) -> ForkedWorkers | None:
    """Fork ``n`` worker slots if this process can (Linux, one Python thread); else None."""
    if sys.platform != "linux" or threading.active_count() != 1:
        return None
    import distributed  # noqa: F401 -- imported once, here, for every worker
    import analyzer.pipeline.driver  # noqa: F401 -- the tasks (and the stages they run)
    if threading.active_count() != 1:       # an import started a thread: do not fork
        return None
    return ForkedWorkers(n)
