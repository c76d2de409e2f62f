"""The Parquet process (analyzer/output/parquet_worker.py): the same bytes as made in this process;
``analyze``'s own process never imports pyarrow; a worker that dies or fails leaves the files to
this process, with the reason kept; a worker given nothing to do is stopped at once."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analyzer.analysis import analyze
from analyzer.findings import build_findings
from analyzer.output import parquet
from analyzer.output.parquet_worker import ParquetWorker

REPO = Path(__file__).resolve().parent.parent.parent
SAMPLE = REPO / "captures" / "sample-swarm.pcap"


@pytest.fixture(scope="module")
def findings():
    f = build_findings(analyze([SAMPLE], local=["127.0.0.3"], warn=lambda m: None))
    assert len(f.timeline.rows) and f.peers          # the files have rows: the comparison can fail
    return f


def test_the_worker_makes_the_same_bytes(findings):
    here = ParquetWorker(parallel=False)
    here.submit(findings.timeline, findings.peers)
    w = ParquetWorker()
    assert w.conn is not None
    w.submit(findings.timeline, findings.peers)
    try:
        assert w.files() == here.files()
        assert w.fallback is None
    finally:
        w.close()


def test_a_dead_worker_leaves_the_files_to_this_process(findings):
    expected = parquet.parquet_files(findings.timeline, parquet.peer_columns(findings.peers))
    w = ParquetWorker()
    w._proc.kill()
    w._proc.join()
    w.submit(findings.timeline, findings.peers)
    assert w.files() == expected
    assert "ended" in w.fallback


def test_a_failure_in_the_worker_leaves_the_files_to_this_process(findings, monkeypatch):
    expected = parquet.parquet_files(findings.timeline, parquet.peer_columns(findings.peers))
    parent, real = os.getpid(), parquet.parquet_files

    def fails_in_the_child(*args):
        if os.getpid() != parent:
            raise RuntimeError("broken in the child")
        return real(*args)

    monkeypatch.setattr(parquet, "parquet_files", fails_in_the_child)
    w = ParquetWorker()
    w.submit(findings.timeline, findings.peers)
    assert w.files() == expected
    assert "broken in the child" in w.fallback


def test_a_worker_given_nothing_stops_at_once():
    w = ParquetWorker()
    proc = w._proc
    t0 = time.monotonic()
    w.close()
    assert time.monotonic() - t0 < 1 and not proc.is_alive()


@pytest.mark.parametrize("workers, in_worker", [("auto", True), ("2", False)])
def test_analyze_makes_the_parquet_files_in_the_worker(tmp_path, workers, in_worker):
    """pyarrow is imported by the Parquet process only (forked before the analysis is imported), and
    the files are those of a run without it; a run on a cluster (--workers 2) makes them itself (the
    workers' start keeps the cores busy)."""
    code = ("import sys; sys.argv = ['bt-analyzer', 'analyze', *sys.argv[1:]]\n"
            "from analyzer.output import parquet_worker\n"
            "made = []\n"
            "files = parquet_worker.ParquetWorker.files\n"
            "def spy(self):\n"
            "    made.append(self._proc is not None)\n"
            "    return files(self)\n"
            "parquet_worker.ParquetWorker.files = spy\n"
            "from analyzer.cli import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print(made, sorted({m.split('.')[0] for m in sys.modules} & {'pyarrow', 'pandas'}))")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-c", code, str(SAMPLE), "--local", "127.0.0.3", "--out", str(out),
                        "--quiet", "--workers", workers], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    made, imported = r.stdout.strip().split("] ")
    assert made == f"[{in_worker}"
    if in_worker:
        assert imported == "[]"
    f = build_findings(analyze([SAMPLE], local=["127.0.0.3"], warn=lambda m: None))
    timeline, peers = parquet.parquet_files(f.timeline, parquet.peer_columns(f.peers))
    assert (out / "timeline.parquet").read_bytes() == timeline
    assert (out / "peers.parquet").read_bytes() == peers
