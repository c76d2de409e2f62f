"""A local cluster's workers forked before the run starts a thread (analyzer.pipeline.forked): the
tree is what the module says (a slot per worker, the worker under it), a worker killed mid-task is
forked again and changes nothing, nothing outlives the run (a clean end, or the driver killed),
and a process that already runs threads gets Dask's spawned workers instead."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from analyzer.pipeline import forked
from conftest import sigint_default
from test_cluster import inputs, reference, same  # noqa: F401 -- fixtures
from test_golden import output_files

pytestmark = pytest.mark.xdist_group("dask")

EXE = [str(Path(sys.executable).with_name("bt-analyzer"))]


def children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return sorted(out)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def tree(pid: int) -> dict[int, list[int]]:
    return {c: children(c) for c in children(pid)}


def start(out: Path, inputs: Path, fault: str) -> subprocess.Popen:
    return subprocess.Popen([*EXE, "analyze", str(inputs), "--local", "127.0.0.3", "--out", str(out), "--quiet",
                             "--workers", "2"], env={**os.environ, "BT_ANALYZER_FAULT": fault},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_workers(p: subprocess.Popen, n: int = 2, timeout: float = 60) -> dict[int, list[int]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        t = {s: w for s, w in tree(p.pid).items() if w}
        if len(t) >= n and all(len(w) == 1 for w in t.values()):
            return t
        assert p.poll() is None, p.communicate()
        time.sleep(0.05)
    raise AssertionError(f"no {n} forked workers: {tree(p.pid)}")


def test_workers_are_forked_and_the_outputs_equal_the_one_process_run(inputs, reference, tmp_path):  # noqa: F811
    p = start(tmp_path / "out", inputs, "slow-map:0.5")
    slots = wait_for_workers(p)
    assert len(slots) == 2
    workers = [w for ws in slots.values() for w in ws]
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    same(reference, output_files(tmp_path / "out"))
    run = json.loads((tmp_path / "out" / "manifest.json").read_text())["run"]
    assert run["engine"] == "dask" and run["workers"] == 2 and run["local_workers"] == "forked"
    assert not any(alive(pid) for pid in [*slots, *workers])      # every slot and worker reaped


def listening(pids: list[int]) -> set[str]:
    """The addresses the processes ``pids`` listen on (TCP, IPv4 and IPv6)."""
    import psutil
    found = set()
    for pid in pids:
        try:
            conns = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.Error:
            continue
        found |= {c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN}
    return found


def test_the_cluster_listens_on_loopback_only(inputs, tmp_path):  # noqa: F811
    """A Dask worker runs what it is sent: the scheduler and every forked worker (comm and HTTP server)
    listen on 127.0.0.1, never on all interfaces (the forked workers did, during the run)."""
    p = start(tmp_path / "out", inputs, "slow-map:1.5")
    slots = wait_for_workers(p)
    workers = [w for ws in slots.values() for w in ws]
    deadline = time.monotonic() + 30
    seen: dict[int, set] = {}
    while time.monotonic() < deadline and p.poll() is None and len(seen) < 3:
        for pid in [p.pid, *workers]:
            addresses = listening([pid])
            if addresses:
                seen[pid] = addresses
        time.sleep(0.1)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert set(seen) == {p.pid, *workers}, seen                   # the driver's scheduler and both workers
    assert set().union(*seen.values()) == {"127.0.0.1"}, seen


def test_a_killed_local_worker_is_forked_again_and_changes_nothing(inputs, reference, tmp_path):  # noqa: F811
    p = start(tmp_path / "out", inputs, "slow-map:1.5")
    slots = wait_for_workers(p)
    time.sleep(0.8)                                       # a map task is running on each worker
    slot, [victim] = next(iter(slots.items()))
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (children(slot) in ([], [victim])):
        time.sleep(0.05)
    replaced = children(slot)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert replaced and victim not in replaced            # the slot forked a new worker
    same(reference, output_files(tmp_path / "out"))


def test_nothing_outlives_a_killed_driver(inputs, tmp_path):  # noqa: F811
    p = start(tmp_path / "out", inputs, "slow-map:3")
    slots = wait_for_workers(p)
    everyone = [*slots, *(w for ws in slots.values() for w in ws)]
    os.kill(p.pid, signal.SIGKILL)                         # the driver alone, not its group
    p.communicate()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(alive(pid) for pid in everyone):
        time.sleep(0.05)
    assert not any(alive(pid) for pid in everyone)


def test_ctrl_c_ends_the_whole_tree(inputs, tmp_path):  # noqa: F811
    p = subprocess.Popen([*EXE, "analyze", str(inputs), "--local", "127.0.0.3", "--out", str(tmp_path / "out"),
                          "--quiet", "--workers", "2"], env={**os.environ, "BT_ANALYZER_FAULT": "slow-map:3"},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         preexec_fn=sigint_default)
    slots = wait_for_workers(p)
    everyone = [*slots, *(w for ws in slots.values() for w in ws)]
    os.killpg(p.pid, signal.SIGINT)                        # a terminal's Ctrl-C: the whole group
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "Traceback" not in err, err
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(alive(pid) for pid in everyone):
        time.sleep(0.05)
    assert not any(alive(pid) for pid in everyone)
    assert not (tmp_path / "out" / "summary.json").exists()


def test_a_process_running_threads_does_not_fork():
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert forked.start(2) is None
    finally:
        stop.set()
        t.join()


def test_spawned_workers_when_the_process_runs_threads(inputs, reference, tmp_path):  # noqa: F811
    """In-process with a thread running (as in a notebook): Dask's own spawned workers, same files."""
    from click.testing import CliRunner
    from analyzer.cli import main
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        r = CliRunner().invoke(main, ["analyze", str(inputs), "--local", "127.0.0.3", "--out", str(tmp_path / "out"),
                                      "--quiet", "--workers", "2"])
    finally:
        stop.set()
        t.join()
    assert r.exit_code == 0, r.output
    same(reference, output_files(tmp_path / "out"))
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["run"]["local_workers"] == "spawned"


def test_distributed_says_nothing_on_stderr_after_the_cluster_closed(tmp_path):
    """A local cluster gives distributed's stderr handlers their level back when it closes, but its comms
    close after it and log then ("Batched Comm Closed", a traceback, seen after Ctrl-C in CI): the run
    keeps them at CRITICAL."""
    sample = Path(__file__).resolve().parent.parent.parent / "captures" / "sample-swarm.pcap"
    code = f"""
import logging
from pathlib import Path
from analyzer import analysis
r = analysis.analyze([Path({str(sample)!r})], local=["127.0.0.3"], workers=2, workdir=Path({str(tmp_path / "w")!r}))
assert r.run["engine"] == "dask", r.run
r.close()
logging.getLogger("distributed.batched").info("late comm closed")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "late comm closed" not in r.stderr, r.stderr[-2000:]



@pytest.mark.parametrize("profile", ["default", "user-on"])
def test_a_local_cluster_runs_no_profiler_unless_the_user_asks(profile):
    """A local cluster's processes do not sample their task thread for Dask's dashboard profile,
    nor watch their event loop every 20 ms (pipeline.cluster.LOCAL_DASK: time taken from the
    tasks); set in this process (inherited by forked workers) and in the environment (read by
    spawned ones).  A setting the user gave in the environment wins."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    if profile == "user-on":
        env["DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED"] = "True"
    code = ("import os, json, dask\n"
            "from analyzer.pipeline.cluster import local_dask_config\n"
            "local_dask_config()\n"
            "keys = ['distributed.worker.profile.enabled', 'distributed.admin.tick.interval']\n"
            "print(json.dumps([[dask.config.get(k) for k in keys],\n"
            "                  {k: v for k, v in os.environ.items() if k.startswith('DASK_')}]))\n")
    got, environ = json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                             check=True).stdout)
    assert got == [profile == "user-on", "1s"]
    assert environ["DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED"] == ("True" if profile == "user-on" else "False")
    assert environ["DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL"] == "1s"
    assert environ["DASK_DISTRIBUTED__ADMIN__SYSTEM_MONITOR__INTERVAL"] == "2s"
