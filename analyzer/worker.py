"""Helper processes forked at the start of a command to import a heavy library while the capture
is analysed: the report's PDF and chart workers (report/pdf.py, report/drawing.py) and the Parquet
writer (output/parquet.py).  What they share: forking, the child's set-up, stopping.

A worker is forked before the capture is read and spends its first moments importing its library
(WeasyPrint ~0.4 s, matplotlib, pyarrow ~0.06 s).  While the analysis runs it keeps both cores
busy (the input hash has a thread of its own), so the imports run at a lower priority (nice 10;
the chart process's 15: the PDF's layout waits for the PDF process, not for the charts)
and the analysis is slowed less; once imported, a worker returns to normal priority, where it
stays for its job.  It lowers its priority only where it may raise it again (root, or
RLIMIT_NICE allowing nice 0).

A worker does one job and ends, so after its imports nothing is collected by the cyclic garbage
collector (``settle``): what the imports made is never garbage (frozen), and the cycles one job
leaves are few beside what it holds (collections cost ~15% of the PDF's layout).  Ctrl-C is the
parent's to handle: a worker ignores SIGINT and is closed by the parent; a parent that dies closes
the pipe, which ends a waiting worker.
"""
from __future__ import annotations

import multiprocessing
import os

NICE = 10


_parent: int | None = None          # in a child: the pid of the process that forked it


def fork(target, name: str, others=()):
    """(process, the parent's end of its pipe) running ``target(conn, others)``, or (None, None)
    where fork is unavailable.  ``others``: the parent's ends of earlier workers' pipes, closed in
    the child with the parent's end of its own pipe (so that the parent's death reaches every
    worker as EOF; and it is killed then anyway, see ``start_child``)."""
    global _parent
    try:
        ctx = multiprocessing.get_context("fork")
    except ValueError:
        return None, None
    conn, child = ctx.Pipe()
    _parent = os.getpid()
    proc = ctx.Process(target=target, args=(child, (*others, conn)), name=name, daemon=True)
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


def die_with_parent(parent: int | None) -> None:
    """SIGKILL when the parent dies (Linux ``PR_SET_PDEATHSIG``): a worker busy with its job when
    the command is killed does not outlive it.  ``parent``: its pid before the fork (a parent that
    died before prctl ends the child now)."""
    import ctypes
    import signal
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)     # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):       # not Linux: EOF on the pipe still ends a waiting worker
        pass
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def start_child(others, nice: int = NICE) -> None:
    """In the child, first: death with the parent, signals, the parent's pipe ends, a lower
    priority for the imports (``nice``)."""
    import signal
    global _base_nice
    die_with_parent(_parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for c in others:
        c.close()
    try:
        base = os.getpriority(os.PRIO_PROCESS, 0)
        if base < nice and _may_return_to(base):
            os.setpriority(os.PRIO_PROCESS, 0, nice)
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
