"""What the report's two worker processes (pdf.py, drawing.py) share: forking, the child's set-up, stopping.

A worker is forked when a report starts (``analyze --report``: before the capture is read) and
spends its first ~0.4 s importing its library (WeasyPrint, matplotlib).  While the analysis
runs it keeps both cores busy (the input hash has a thread of its own), so the imports run
at a lower priority (nice 10) and the analysis is slowed less; once imported, a worker
returns to normal priority, where it stays for the report itself.  It lowers its priority
only where it may raise it again (root, or RLIMIT_NICE allowing nice 0).

A worker makes one document and ends, so after its imports nothing is collected by the
cyclic garbage collector (``settle``): what the imports made is never garbage (frozen), and
the cycles one report leaves are few beside what it holds (collections cost ~15% of the
PDF's layout).  Ctrl-C is the parent's to handle: a worker ignores SIGINT and is closed by
the parent; a parent that dies closes the pipe, which ends a waiting worker.
"""
from __future__ import annotations

import multiprocessing
import os

NICE = 10


def fork(target, name: str, others=()):
    """(process, the parent's end of its pipe) running ``target(conn, others)``, or (None, None)
    where fork is unavailable.  ``others``: the parent's ends of earlier workers' pipes, closed in
    the child (so that a parent's death still reaches them as EOF)."""
    try:
        ctx = multiprocessing.get_context("fork")
    except ValueError:
        return None, None
    conn, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(child, tuple(others)), name=name, daemon=True)
    proc.start()
    child.close()
    return proc, conn


_base_nice: int | None = None        # the child's priority before start_child lowered it


def _may_return_to(nice: int) -> bool:
    """Whether this process may lower its nice value back to ``nice`` (root, or RLIMIT_NICE)."""
    if os.geteuid() == 0:
        return True
    import resource
    soft, _ = resource.getrlimit(resource.RLIMIT_NICE)
    return soft == resource.RLIM_INFINITY or 20 - soft <= nice


def start_child(others) -> None:
    """In the child, first: signals, the other workers' pipe ends, a lower priority for the imports."""
    import signal
    global _base_nice
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for c in others:
        c.close()
    try:
        base = os.getpriority(os.PRIO_PROCESS, 0)
        if base < NICE and _may_return_to(base):
            os.setpriority(os.PRIO_PROCESS, 0, NICE)
            _base_nice = base
    except OSError:
        pass


def settle() -> None:
    """In the child, once its imports are done: its priority back, no garbage collection from here on."""
    import gc
    if _base_nice is not None:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, _base_nice)
        except OSError:
            pass
    gc.freeze()
    gc.disable()


def stop(proc, conn, timeout: float = 10) -> None:
    """Tell a worker to stop (None) and wait for it; kill it if it does not end within ``timeout``."""
    try:
        conn.send(None)
    except OSError:
        pass
    proc.join(timeout=timeout)
    if proc.is_alive():
        proc.kill()
        proc.join()


class Handle:
    """The parent's side of a worker: the process (None when run in this process) and its pipe."""

    def __init__(self, target, name: str, parallel: bool, others=()):
        self._proc = self._conn = None
        if parallel:
            self._proc, self._conn = fork(target, name, others)

    @property
    def conn(self):
        """The parent's end of the pipe (a later worker's child closes it)."""
        return self._conn

    def close(self) -> None:
        """Stop the worker (a no-op once it finished)."""
        if self._proc is not None:
            stop(self._proc, self._conn)
            self._proc = None
