"""--workers auto (analysis.auto_workers): the staged run only where it is expected to end sooner than one
process, by the bench's cost model; never on 2 cores, where one process is faster hashed or not."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from analyzer import analysis
from analyzer.analysis import auto_workers


def files(tmp_path, sizes_gb):
    """Sparse files of these sizes (only their size is read)."""
    out = []
    for i, gb in enumerate(sizes_gb):
        p = tmp_path / f"c{i}.pcap"
        with p.open("wb") as f:
            f.truncate(int(gb * 1e9))
        out.append(p)
    return out


@pytest.mark.parametrize("hashed", [True, False])
def test_two_cores_stay_in_one_process_whatever_the_size(tmp_path, hashed):
    assert auto_workers(files(tmp_path, [500] * 4), hashed, cores=2) == 1


def test_a_single_file_or_a_single_core_is_one_process(tmp_path):
    assert auto_workers(files(tmp_path, [1000]), True, cores=64) == 1
    assert auto_workers(files(tmp_path, [100, 100]), True, cores=1) == 1


def test_one_large_pcap_unhashed_is_cut_into_ranges(tmp_path):
    """Unhashed, one large classic pcap file is mapped by byte range: staged where that pays; hashed,
    its SHA-256 takes one core as long as one process takes, so never; nor a pcapng (no ranges)."""
    [p] = files(tmp_path, [20])
    assert auto_workers([p], False, cores=8) == 1                       # not a classic pcap: no ranges
    with p.open("r+b") as f:
        f.write(bytes.fromhex("d4c3b2a1"))
    assert auto_workers([p], False, cores=8) == 8                       # 0.19 x 20 against 0.9 + 0.075 x 20
    assert auto_workers([p], True, cores=64) == 1
    assert auto_workers([p], False, cores=2) == 1


def test_the_largest_hashed_file_bounds_the_staged_run(tmp_path):
    """Hashed, a case whose bytes are mostly one file ends no sooner staged: that file's task hashes it."""
    assert auto_workers(files(tmp_path, [100, 1]), True, cores=64) == 1
    even = tmp_path / "even"
    even.mkdir()
    assert auto_workers(files(even, [50, 50]), True, cores=64) == 64     # 3.7 + 30 s against 60


@pytest.mark.parametrize("hashed, cores, n, below, above", [
    (True, 4, 2, 2.2, 2.5),     # 0.60 s/GB alone against 0.30 staged, after 0.7 s of start: 2.33 GB
    (False, 8, 2, 7.7, 8.0),    # 0.19 against 0.075, after 0.9 s: 7.83 GB
    (True, 64, 64, 6.2, 6.5),   # 0.60 against 0.019, after 3.7 s (0.05 s a worker: a guess beyond 2): 6.37 GB
])
def test_the_staged_run_where_its_start_is_paid(tmp_path, hashed, cores, n, below, above):
    small, large = tmp_path / "small", tmp_path / "large"
    small.mkdir()
    large.mkdir()
    assert auto_workers(files(small, [below / n] * n), hashed, cores=cores) == 1
    assert auto_workers(files(large, [above / n] * n), hashed, cores=cores) == cores


def test_the_model_is_the_one_the_readme_states():
    readme = (os.path.dirname(__file__) + "/../../README.md")
    text = open(readme, encoding="utf-8").read()
    one, staged = analysis.ONE_PROCESS_S_PER_GB, analysis.STAGED_CPU_S_PER_GB
    assert f"{one[True]:.2f} against {staged[True] / 2:.2f} s/GB" in text
    assert f"{one[False]:.2f} against {staged[False] / 2:.2f}." in text
    assert "3 GB hashed on 4 cores, 8 GB unhashed on 8" in text


def test_unreadable_paths_are_left_out(tmp_path):
    assert auto_workers([tmp_path / "missing", *files(tmp_path, [400])], True, cores=8) == 1


SAMPLE = Path(__file__).resolve().parent.parent.parent / "captures" / "sample-swarm.pcap"


def test_resuming_a_staged_run_stages_again_on_its_shards(tmp_path):
    """--resume with --workers auto: a work folder left by a staged run (its run.json) is resumed staged,
    on the shards its outputs are keyed by, whatever auto would pick for the inputs alone."""
    from analyzer import __version__
    from analyzer.pipeline.workdir import FORMAT, staged_shards
    work = tmp_path / "work"
    work.mkdir()
    (work / "run.json").write_text(json.dumps({"tool": __version__, "format": FORMAT, "shards": 2}))
    assert staged_shards(work) == 2
    result = analysis.analyze([SAMPLE], local=["127.0.0.3"], workers="auto", resume=True, workdir=work)
    try:
        assert result.run["shards"] == 2 and result.run["engine"] != "in-process"
    finally:
        result.close()
    fresh = analysis.analyze([SAMPLE], local=["127.0.0.3"], workers="auto", resume=True, workdir=tmp_path / "none")
    try:
        assert fresh.run["engine"] == "in-process"
    finally:
        fresh.close()
    work.mkdir(exist_ok=True)                            # (the finished run removed its work folder)
    (work / "run.json").write_text(json.dumps({"tool": "0.0.0", "format": FORMAT, "shards": 2}))
    assert staged_shards(work) is None                   # another version's folder: nothing to resume
    (work / "run.json").write_text("not json")
    assert staged_shards(work) is None
