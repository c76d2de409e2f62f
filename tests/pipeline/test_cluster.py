"""The staged pipeline on real Dask clusters: a local cluster started by the command, and a
`dask scheduler` with two `dask worker` processes started here on loopback.  Every output
file equals the one-process run's, byte for byte; a worker killed mid-task changes nothing;
a file that cannot be read fails alone."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from analyzer.cli import main
from craft import public_captures_dir
from test_golden import RUN_FACTS, output_files, split_pcap

pytestmark = pytest.mark.xdist_group("dask")

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "captures" / "sample-swarm.pcap"
DASK = Path(sys.executable).with_name("dask")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A multi-file set: the sample cut into a rotated set (connections spanning files),
    public captures with uTP, DHT, trackers and connections seen mid-stream."""
    d = tmp_path_factory.mktemp("inputs")
    split_pcap(SAMPLE, d, [700, 1500, 2600])
    for name in ("ndpi_bittorrent_utp.pcap", "ndpi_bittorrent.pcap", "zeek_bittorrent_tracker.pcap",
                 "suricata-verify_bittorrent-dht_SYNTHETIC.pcap", "ppa1e_torrential-slowness.pcap"):
        shutil.copyfile(public_captures_dir() / name, d / name)
    return d


def run(out: Path, inputs: Path, *args: str, env: dict | None = None) -> dict[str, bytes]:
    r = CliRunner().invoke(main, ["analyze", str(inputs), "--local", "127.0.0.3", "--out", str(out), "--quiet",
                                  *args], env=env)
    assert r.exit_code == 0, r.output
    return output_files(out)


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory):
    return run(tmp_path_factory.mktemp("ref") / "out", inputs)


def same(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name] == b[name], name


class Cluster:
    """`dask scheduler` and `dask worker` processes on 127.0.0.1."""

    def __init__(self, tmp: Path, workers: int = 2, env: dict | None = None):
        self.file = tmp / "scheduler.json"
        self.env = {**os.environ, **(env or {})}
        self.scheduler = subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                           "--no-dashboard", "--scheduler-file", str(self.file)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self.env)
        deadline = time.monotonic() + 30
        while not self.file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.address = json.loads(self.file.read_text())["address"]
        assert self.address.startswith("tcp://127.0.0.1:")
        self.workers = [self.start_worker() for _ in range(workers)]
        self.wait_for(workers)

    def start_worker(self):
        return subprocess.Popen([str(DASK), "worker", self.address, "--nthreads", "1", "--no-dashboard",
                                 "--host", "127.0.0.1", "--memory-limit", "0", "--death-timeout", "30"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self.env,
                                start_new_session=True)

    def wait_for(self, n: int) -> None:
        from distributed import Client
        with Client(self.address, timeout="30s") as c:
            c.wait_for_workers(n, timeout=60)

    def close(self) -> None:
        for p in [*self.workers, self.scheduler]:
            try:
                os.killpg(p.pid, signal.SIGTERM) if p is not self.scheduler else p.terminate()
            except ProcessLookupError:
                pass
        for p in [*self.workers, self.scheduler]:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def input_bytes(inputs: Path) -> int:
    return sum(p.stat().st_size for p in inputs.iterdir())


def test_local_cluster_gives_the_same_files(inputs, reference, tmp_path):
    same(reference, run(tmp_path / "out", inputs, "--workers", "2"))
    facts = json.loads((tmp_path / "out" / "manifest.json").read_text())["run"]
    # on this machine the map stage writes an index, and the flows tasks read the frames in the inputs
    # (each nearly every page: connections interleave)
    assert facts["spill"] == "index" and facts["spill_bytes"] < 0.1 * input_bytes(inputs)
    assert 0.5 * input_bytes(inputs) < facts["flows_read_bytes"] < facts["shards"] * 1.1 * input_bytes(inputs)


def test_scheduler_and_workers_give_the_same_files(inputs, reference, tmp_path):
    cluster = Cluster(tmp_path)
    try:
        files = run(tmp_path / "out", inputs, "--scheduler", cluster.address, "--shards", "3")
    finally:
        cluster.close()
    same(reference, files)
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["run"]["engine"] == "dask" and m["run"]["shards"] == 3
    # an existing cluster's machines would each read every input again: the map stage copies the
    # frames (about the inputs' size) and each flows task reads only its own
    facts = m["run"]
    assert facts["spill"] == "copy" and facts["flows_read_bytes"] == facts["spill_bytes"]
    assert 0.9 * input_bytes(inputs) < facts["spill_bytes"] < 1.1 * input_bytes(inputs)


def run_verified(where: Path, inputs: Path, *args: str) -> tuple[dict, dict]:
    """A run with --torrent and --carve (into the relative folder ``carve``: the path is written
    into the outputs) from the folder ``where``; its files and the manifest's run facts."""
    where.mkdir(parents=True, exist_ok=True)
    cwd = os.getcwd()
    os.chdir(where)
    try:
        files = run(where / "out", inputs, "--torrent", str(REPO / "captures" / "sample-swarm.torrent"),
                    "--carve", "carve", *args)
    finally:
        os.chdir(cwd)
    return files, json.loads((where / "out" / "manifest.json").read_text())["run"]


@pytest.fixture(scope="module")
def verified_reference(inputs, tmp_path_factory):
    files, facts = run_verified(tmp_path_factory.mktemp("vref"), inputs)
    assert facts["engine"] == "in-process"
    assert b"verified_downloaded_bytes" in files["summary.json"] and b"verified" in files["pieces.csv"]
    assert any(n.startswith("../carve/") for n in files)
    return files


@pytest.mark.parametrize("args", [["--shards", "2"], ["--shards", "3", "--spill", "copy"], ["--shards", "4"],
                                  ["--workers", "2"]],
                         ids=["shards2", "shards3-copy", "shards4", "workers2"])
def test_verification_staged_gives_the_same_files(inputs, verified_reference, tmp_path, args):
    """--torrent and --carve in a staged run: pieces verified in the flows tasks, those split
    across shards replayed by the evidence stage, files carved from the pieces kept."""
    files, facts = run_verified(tmp_path, inputs, *args)
    shards = int(args[1])                                              # one shard a worker by default
    assert facts["shards"] == shards and facts["engine"] != "in-process"
    assert facts["evidence"]["split_pieces"] > 0 and facts["evidence"]["shuffled_bytes"] > 0
    same(verified_reference, files)
    assert not list((tmp_path / "out").glob(".work*")), "the work folder (block spills) is left behind"


def test_verification_on_scheduler_and_workers(inputs, verified_reference, tmp_path):
    cluster = Cluster(tmp_path)
    try:
        files, facts = run_verified(tmp_path / "run", inputs, "--scheduler", cluster.address, "--shards", "3",
                                    "--spill", "index")
    finally:
        cluster.close()
    assert facts["engine"] == "dask" and facts["shards"] == 3 and facts["evidence"]["evidence_tasks"] > 0
    assert facts["spill"] == "index"
    same(verified_reference, files)


def test_a_killed_worker_changes_nothing(inputs, reference, tmp_path):
    """Tasks slowed down on purpose (the fault knob) so that a worker dies while running one."""
    cluster = Cluster(tmp_path, env={"BT_ANALYZER_FAULT": "slow-map:1.5"})
    try:
        import threading
        from distributed import Client
        victim = cluster.workers[0]

        def kill_when_busy():
            with Client(cluster.address, timeout="30s") as c:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    busy = [w for w in c.processing().values() if w]
                    if busy:
                        os.killpg(victim.pid, signal.SIGKILL)
                        return
                    time.sleep(0.05)
        killer = threading.Thread(target=kill_when_busy)
        killer.start()
        files = run(tmp_path / "out", inputs, "--scheduler", cluster.address, "--shards", "2")
        killer.join()
        assert victim.poll() is not None
    finally:
        cluster.close()
    same(reference, files)


def test_a_file_that_fails_fails_alone(inputs, tmp_path):
    d = tmp_path / "in"
    shutil.copytree(inputs, d)
    broken = d / "zz-broken.pcap"
    broken.write_bytes(bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000") + os.urandom(5000))
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["analyze", str(d), "--local", "127.0.0.3", "--out", str(out), "--quiet",
                                  "--workers", "2"], env={"BT_ANALYZER_FAULT": "raise:ppa1e"})
    assert r.exit_code == 5, r.output            # some inputs failed; the others analysed
    s = json.loads((out / "summary.json").read_text())
    by_name = {Path(i["path"]).name: i for i in s["inputs"]}
    assert by_name["ppa1e_torrential-slowness.pcap"]["readable"] is False
    assert "internal error" in by_name["ppa1e_torrential-slowness.pcap"]["errors"][0]
    assert by_name["ppa1e_torrential-slowness.pcap"]["internal_error"]
    assert "fault injected" in (out / "errors.log").read_text()
    assert by_name["zz-broken.pcap"]["errors"]
    assert by_name["rotated.pcap0"]["frames"] > 0 and s["torrents"]


def magnet_capture(folder: Path) -> list[Path]:
    """A real magnet download (the leech starts from the info hash alone) from two seeders."""
    from analyzer.validation.harness import run_swarm
    from swarms import two_peers
    spec = two_peers(size=900_000)
    spec["peers"][1]["magnet"] = True
    spec["peers"].append({"name": "third", "ip": "127.0.0.4", "port": 6881, "seeds": ["t1"],
                          "connect_to": ["leech"]})
    return run_swarm(spec, folder).capture_files


@pytest.mark.realtraffic
def test_magnet_download_staged_equals_in_process(tmp_path):
    """Metadata rebuilt from ut_metadata messages (a magnet download): with several shards the
    evidence stage verifies the pieces as the one-process run does, so every file is the same."""
    d = tmp_path / "in"
    d.mkdir()
    for p in magnet_capture(tmp_path / "swarm"):
        shutil.copyfile(p, d / p.name)
    ref = run(tmp_path / "ref", d)
    s = json.loads(ref["summary.json"])
    [t] = s["torrents"]
    assert t["name"] == "t1" and t["metadata_source"].startswith("rebuilt") and t["verification"]
    assert t["verified_downloaded_bytes"] > 0
    same(ref, run(tmp_path / "shards", d, "--shards", "3"))
    same(ref, run(tmp_path / "cluster", d, "--workers", "2"))


@pytest.mark.realtraffic
def test_a_whole_case_on_every_engine(inputs, tmp_path):
    """The issue's case: a rotated set with connections spanning files, uTP, DHT, trackers,
    connections seen mid-stream, a magnet download (metadata rebuilt from the capture) and a
    .torrent given (--torrent, --carve), in one run: in-process, on three shards in this process,
    on a 2-worker local cluster and on a scheduler with two workers started here.  Every file
    is the same (the magnet capture's addresses overlap the sample's: one case, two torrents)."""
    d = tmp_path / "in"
    shutil.copytree(inputs, d)
    for p in magnet_capture(tmp_path / "swarm"):
        shutil.copyfile(p, d / f"magnet-{p.name}")
    ref, facts = run_verified(tmp_path / "ref", d)
    assert facts["engine"] == "in-process"
    s = json.loads(ref["summary.json"])
    sources = sorted(t.get("metadata_source") or "" for t in s["torrents"] if t.get("verification"))
    assert any(x.startswith("rebuilt") for x in sources) and any(x.endswith("sample-swarm.torrent") for x in sources), sources
    for name, args in (("shards", ["--shards", "3"]), ("workers", ["--workers", "2"]), ("ranges", ["--workers", "2"])):
        if name == "ranges":       # the larger inputs mapped by byte ranges of 150 kB
            os.environ["BT_ANALYZER_RANGE_BYTES"] = "150000"
        try:
            files, facts = run_verified(tmp_path / name, d, *args)
        finally:
            os.environ.pop("BT_ANALYZER_RANGE_BYTES", None)
        assert facts["engine"] != "in-process" and facts["evidence"]["split_pieces"] > 0
        assert bool(facts["ranged_inputs"]) == (name == "ranges")
        same(ref, files)
    cluster = Cluster(tmp_path)
    try:
        files, facts = run_verified(tmp_path / "dask", d, "--scheduler", cluster.address, "--shards", "2")
    finally:
        cluster.close()
    assert facts["engine"] == "dask"
    same(ref, files)


def test_two_inputs_with_the_same_bytes(tmp_path, monkeypatch):
    """A case holding the same capture twice (a copy under another name): each input is mapped by a
    task of its own into a folder of its own, though their outputs have the same key (it failed with
    a missing index file when the second task replaced the first's folder)."""
    d = tmp_path / "in"
    d.mkdir()
    for name in ("a.pcap", "copy of a.pcap"):
        shutil.copyfile(SAMPLE, d / name)
    ref = run(tmp_path / "ref", d, "--workers", "1")
    assert len(json.loads(ref["summary.json"])["inputs"]) == 2
    same(ref, run(tmp_path / "shards", d, "--shards", "2"))
    monkeypatch.setenv("BT_ANALYZER_RANGE_BYTES", "1000000")       # and each mapped by byte ranges
    same(ref, run(tmp_path / "cluster", d, "--workers", "2"))
    facts = json.loads((tmp_path / "cluster" / "manifest.json").read_text())["run"]
    assert facts["ranged_inputs"] == 2
