"""The report workers' common set-up: a lower priority while importing, given back afterwards; no
garbage collection once imported; a parent's death reaches every worker; templates compiled in the
chart worker are loaded, not compiled, by the document's process."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from analyzer.report import worker

REPO = Path(__file__).resolve().parent.parent.parent


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
        assert closed == [True]                 # the parent's end of the first worker's pipe, in the second
        first_conn.recv()
    finally:
        for p, c in ((proc, conn), (first, first_conn)):
            worker.stop(p, c, timeout=5)
            assert p.exitcode == 0


def test_templates_compiled_in_the_chart_worker_are_loaded_not_compiled():
    code = """
import time
from analyzer.report import compiled
from analyzer.report.drawing import ChartWorker
w = ChartWorker()
deadline = time.monotonic() + 60
while not w.conn.poll(0.05):
    assert time.monotonic() < deadline
bytecode = w.templates()
w.close()
compiled.accept(bytecode)
env = compiled.environment()
def refuse(*args, **kwargs):
    raise AssertionError("compiled here")
env.compile = refuse
for name in env.list_templates():           # report.html.j2 and what it includes
    env.get_template(name)
print(len(bytecode))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    assert int(r.stdout) >= 3                   # report.html.j2, the partial and the stylesheet it includes
