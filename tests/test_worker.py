"""The worker processes' common set-up (analyzer/worker.py: the report's PDF and chart workers, the
Parquet writer): a lower priority while importing, given back afterwards; no garbage collection once
imported; a parent's death reaches every worker."""
from __future__ import annotations

import os

from analyzer import worker


def _report(conn, others):
    import gc
    before = os.getpriority(os.PRIO_PROCESS, 0)
    worker.start_child(others)
    importing = os.getpriority(os.PRIO_PROCESS, 0)
    worker.settle()
    conn.send((before, importing, os.getpriority(os.PRIO_PROCESS, 0), gc.isenabled(), gc.get_freeze_count() > 0,
               [c.closed for c in others]))
    conn.recv()


def test_priority_lowered_while_importing_and_given_back():
    first, first_conn = worker.fork(_report, "t1")
    proc, conn = worker.fork(_report, "t2", [first_conn])
    try:
        before, importing, after, gc_on, frozen, closed = conn.recv()
        if before < worker.NICE and worker._may_return_to(before):      # (root: always)
            assert (importing, after) == (worker.NICE, before)
        else:
            assert importing == after == before
        assert not gc_on and frozen
        # the parent's end of the first worker's pipe, and of its own, are closed in the second
        assert closed == [True, True]
        first_conn.recv()
    finally:
        for p, c in ((proc, conn), (first, first_conn)):
            worker.stop(p, c, timeout=5)
            assert p.exitcode == 0


def _wait(conn, others):
    worker.start_child(others)
    conn.send(os.getpid())
    import time
    time.sleep(60)                      # busy with its job: only the parent's death ends it


def test_a_worker_dies_with_its_parent():
    """The parent SIGKILLed while a worker is busy (not waiting on the pipe): the worker is killed too."""
    import signal
    import time
    r, w = os.pipe()
    parent = os.fork()
    if parent == 0:                     # the "command": forks a worker, reports its pid, waits to be killed
        os.close(r)
        try:
            proc, conn = worker.fork(_wait, "t")
            os.write(w, str(conn.recv()).encode())
            time.sleep(60)
        finally:
            os._exit(0)
    os.close(w)
    child = int(os.read(r, 32))
    os.close(r)
    os.kill(parent, signal.SIGKILL)
    os.waitpid(parent, 0)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{child}/stat") as f:
                if f.read().rpartition(")")[2].split()[0] == "Z":      # dead, not yet reaped by init
                    return
        except FileNotFoundError:
            return
        time.sleep(0.05)
    os.kill(child, signal.SIGKILL)
    raise AssertionError("the worker outlived its parent")
