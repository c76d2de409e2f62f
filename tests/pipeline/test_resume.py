"""An interrupted staged run continues with --resume: the whole run killed (SIGKILL) while it maps,
then run again with --resume, gives the same files as a run never interrupted, and redoes only the
tasks that had not finished."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from analyzer.cli import main
from conftest import sigint_default
from test_golden import output_files
from pipeline.test_cluster import inputs  # noqa: F401  (the multi-file input set fixture)

BT = Path(sys.executable).with_name("bt-analyzer")


def reference_files(inputs, out):
    r = CliRunner().invoke(main, ["analyze", str(inputs), "--local", "127.0.0.3", "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    return output_files(out)


@pytest.mark.parametrize("how, spill, ranges", [(signal.SIGKILL, "index", False), (signal.SIGTERM, "index", False),
                                               (signal.SIGINT, "index", False), (signal.SIGKILL, "copy", False),
                                               (signal.SIGKILL, "index", True)],
                         ids=["SIGKILL", "SIGTERM", "SIGINT", "SIGKILL-copy", "SIGKILL-ranges"])
def test_kill_then_resume(inputs, tmp_path, how, spill, ranges):   # noqa: F811
    """``ranges``: the larger inputs mapped by byte ranges of 150 kB (a ranged input is reused whole
    once all its ranges are done, else mapped again)."""
    env = {**os.environ, "BT_ANALYZER_RANGE_BYTES": "150000"} if ranges else dict(os.environ)
    ref = reference_files(inputs, tmp_path / "ref")
    out = tmp_path / "out"
    args = [str(BT), "analyze", str(inputs), "--local", "127.0.0.3", "--out", str(out), "--shards", "3",
            "--spill", spill, "--progress", "jsonl", "--quiet"]
    again = [*args, "--resume"]
    p = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         env={**env, "BT_ANALYZER_FAULT": "slow-map:0.3"}, preexec_fn=sigint_default)
    maps = 0
    deadline = time.monotonic() + 60
    for line in p.stderr:                     # wait until some map tasks are finished, then stop the run
        if line.startswith("{") and json.loads(line).get("kind") == "map":
            maps += 1
            if maps == 3:
                break
        assert time.monotonic() < deadline
    os.killpg(p.pid, how)
    p.communicate(timeout=60)
    assert p.returncode != 0
    assert (out / ".work" / "map").exists() and not (out / "summary.json").exists()
    r = subprocess.run(again, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]
    reused = [e for e in events if e.get("event") == "task" and e.get("reused")]
    assert len(reused) >= 3                       # the finished map tasks were not redone
    files = output_files(out)
    facts = json.loads((out / "manifest.json").read_text())["run"]
    assert facts["reused_tasks"] >= 3 and facts["spill"] == spill
    assert bool(facts["ranged_inputs"]) == ranges
    ref.pop("manifest.json"), files.pop("manifest.json")
    assert files == ref
    assert not (out / ".work").exists()           # removed once the run ended well


def test_kill_while_verifying_then_resume(inputs, tmp_path):   # noqa: F811
    """--torrent and --carve in a staged run killed (SIGKILL) once a flows task (which verifies
    pieces and keeps its block spill) has finished: --resume reuses the finished flows tasks and
    every file, carved files included, is the one-process run's."""
    torrent = str(Path(__file__).resolve().parents[2] / "captures" / "sample-swarm.torrent")

    def args(where: Path, *extra: str) -> list[str]:
        where.mkdir(exist_ok=True)
        return [str(BT), "analyze", str(inputs), "--local", "127.0.0.3", "--out", "out", "--quiet",
                "--torrent", torrent, "--carve", "carve", *extra]     # relative: the paths are in the outputs
    ref = tmp_path / "ref"
    subprocess.run(args(ref), cwd=ref, check=True, timeout=120)
    run = tmp_path / "run"
    staged = args(run, "--shards", "3", "--progress", "jsonl")
    p = subprocess.Popen(staged, cwd=run, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         env={**os.environ, "BT_ANALYZER_FAULT": "slow-flows:0.5"})
    deadline = time.monotonic() + 60
    for line in p.stderr:                     # wait until a flows task is finished, then kill the run
        if line.startswith("{") and json.loads(line).get("kind") == "flows":
            break
        assert time.monotonic() < deadline
    os.killpg(p.pid, signal.SIGKILL)
    p.communicate(timeout=60)
    assert not (run / "out" / "summary.json").exists()
    r = subprocess.run([*staged, "--resume"], cwd=run, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]
    assert [e for e in events if e.get("event") == "task" and e.get("reused") and e.get("kind") == "flows"]
    a, b = output_files(ref / "out"), output_files(run / "out")
    a.pop("manifest.json"), b.pop("manifest.json")
    assert any(k.startswith("../carve/") for k in a)
    assert sorted(a) == sorted(b) and all(a[k] == b[k] for k in a)


def test_ctrl_c_during_a_report_run_leaves_no_traceback(inputs, tmp_path):   # noqa: F811
    """`analyze --report` starts its PDF process before reading the capture: Ctrl-C (SIGINT to the
    whole process group, as a terminal sends it) ends the run with status 130, one line, no
    traceback from either process, no summary or report written, and no process left behind."""
    out = tmp_path / "out"
    args = [str(BT), "analyze", str(inputs), "--local", "127.0.0.3", "--out", str(out), "--shards", "3",
            "--progress", "jsonl", "--quiet", "--report"]
    p = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         env={**os.environ, "BT_ANALYZER_FAULT": "slow-map:0.3"}, preexec_fn=sigint_default)
    deadline = time.monotonic() + 60
    lines = []
    for line in p.stderr:                     # the PDF process is up; some map tasks are done
        lines.append(line)
        if line.startswith("{") and json.loads(line).get("kind") == "map":
            break
        assert time.monotonic() < deadline
    os.killpg(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=60)
    err = "".join(lines) + err
    assert p.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert not (out / "summary.json").exists() and not (out / "report").exists()
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-g", str(p.pid)], capture_output=True, text=True).stdout.split()
    assert left == [], left
