"""The chart process: the same charts as drawn in the calling process, nothing written before the
document says so, and a failure in the chart step as one clear error (worker, in-process, CLI)."""
from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from analyzer.cli import main
from analyzer.report import charts
from analyzer.report.chartplan import plan
from analyzer.report.data import ReportData
from analyzer.report.drawing import ChartError, ChartWorker

pytestmark = pytest.mark.xdist_group("report")


@pytest.fixture(scope="session")
def folder(sample_folder):      # (tests/conftest.py)
    return sample_folder


SAMPLE = Path(__file__).resolve().parent.parent.parent / "captures" / "sample-swarm.pcap"


def draw(folder: Path, parallel: bool) -> tuple[list, dict, dict]:
    """(the plan's specs, SVG texts, {file name: bytes}) of the charts drawn into a copy of ``folder``."""
    copy = folder.parent / f"copy-{parallel}"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(folder, copy)
    (copy / "report").mkdir()
    w = ChartWorker(parallel)
    try:
        data = ReportData(copy)
        w.start(data.for_charts())
        specs = [p.chart().spec() for p in plan(data)]
        if parallel:
            quiet(w._proc.pid)                  # drawn, waiting for the document
        assert list((copy / "report").iterdir()) == []          # nothing written before write()
        svgs = w.write()
        w.finish()
    finally:
        w.close()
    return specs, svgs, {p.name: p.read_bytes() for p in (copy / "report").iterdir()}


def test_the_worker_draws_what_the_calling_process_draws(folder):
    specs, svgs, files = draw(folder, True)
    assert (specs, svgs, files) == draw(folder, False)
    keys = [s[0] for s in specs]
    assert keys[0] == "torrent_totals" and "connections" in keys and "throughput" in keys
    assert list(svgs) == keys
    assert sorted(files) == sorted(f"{k}.{ext}" for k in keys for ext in ("png", "svg"))
    assert all(files[f"{k}.svg"] == svgs[k].encode() for k in keys)
    assert all(files[f"{k}.png"].startswith(b"\x89PNG") for k in keys)


def test_the_chart_process_gets_what_the_charts_draw(folder):
    data = ReportData(folder)
    sent = data.for_charts()
    assert sent.pieces is None and data.pieces is not None
    assert sent.connections == data.connections and sent.connections_total == len(data.connections)
    assert sent.connections is not data.connections and sent.timeline is data.timeline


def test_closed_before_write_leaves_nothing(folder, tmp_path):
    copy = tmp_path / "out"
    shutil.copytree(folder, copy)
    (copy / "report").mkdir()
    w = ChartWorker()
    w.start(ReportData(copy))
    quiet(w._proc.pid)                          # imported, drawn, waiting for the document
    w.close()
    assert list((copy / "report").iterdir()) == []


def test_a_failing_chart_is_one_clear_error(folder, tmp_path, monkeypatch):
    def broken(*_a, **_k):
        raise RuntimeError("boom")
    monkeypatch.setattr(charts, "throughput", broken)       # (the worker is forked: it inherits the patch)
    for parallel in (True, False):
        w = ChartWorker(parallel)
        try:
            w.start(ReportData(folder))
            with pytest.raises(ChartError) as e:
                w.write()
            assert str(e.value) == "drawing the charts failed: RuntimeError: boom"
            assert "in broken" in "".join(e.value.__notes__)   # where, for --debug (the worker's traceback)
        finally:
            w.close()
    copy = tmp_path / "out"
    shutil.copytree(folder, copy)
    for args in (["report", str(copy)], ["analyze", str(SAMPLE), "--local", "127.0.0.3", "--out", str(copy),
                                         "--quiet", "--force", "--report"]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 1, r.output
        assert r.output.strip().splitlines() == [
            "Error: internal error: ChartError: drawing the charts failed: RuntimeError: boom"], r.output
        assert not (copy / "report" / "report.pdf").exists() and not (copy / "report" / "report.html").exists()


def test_a_failure_said_before_the_document_asks_is_the_error(folder, monkeypatch):
    """The chart process fails while drawing, long before the document asks for the SVGs (a long analysis):
    the document still gets its error, not 'the chart process ended'."""
    def broken(*_a, **_k):
        raise RuntimeError("boom")
    monkeypatch.setattr(charts, "throughput", broken)
    w = ChartWorker()
    try:
        w.start(ReportData(folder))
        assert w.conn.poll(60)                  # the failure is sent: the worker has nothing left to do
        time.sleep(0.3)
        with pytest.raises(ChartError, match=r"^drawing the charts failed: RuntimeError: boom\n"):
            w.write()
    finally:
        w.close()
    assert w._proc is None


def quiet(pid: int, still: float = 1.0, limit: float = 60) -> None:
    """Wait until process ``pid`` has used no CPU for ``still`` seconds (done with what it can do)."""
    def cpu():
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    deadline = time.monotonic() + limit
    last, since = cpu(), time.monotonic()
    while time.monotonic() - since < still:
        assert time.monotonic() < deadline
        time.sleep(0.1)
        now = cpu()
        if now != last:
            last, since = now, time.monotonic()


def test_a_chart_process_that_died_is_a_clear_error(folder):
    w = ChartWorker()
    try:
        os.kill(w._proc.pid, signal.SIGKILL)
        w._proc.join()
        with pytest.raises(ChartError, match=r"the chart process ended \(exit status -9\)"):
            w.start(ReportData(folder))
            w.write()
    finally:
        w.close()
