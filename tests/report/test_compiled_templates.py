"""Templates compiled in the chart worker (analyzer/report/compiled.py) are loaded, not compiled,
by the document's process."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent


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
