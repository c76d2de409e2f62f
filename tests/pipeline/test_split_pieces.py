"""Pieces split across shards, with real traffic: a leecher downloads large pieces from four
seeders at once (each rate-limited, so the client spreads the blocks of one piece over them),
one of which serves altered data (every block).  Its connections land in different shards, so pieces are
split; every output (summary, CSVs, Parquet, pieces.csv, carved files) equals the one-process
run's for 2, 3 and 4 shards."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from analyzer.cli import main
from test_golden import output_files

pytestmark = [pytest.mark.realtraffic, pytest.mark.xdist_group("split_swarm")]

SIZE = 2_000_000
PLEN = 262144


def spec() -> dict:
    seeds = [{"name": f"S{i}", "ip": f"127.0.0.{i + 4}", "port": 6881, "seeds": ["t1"],
              "upload_rate_limit": 250_000} for i in range(3)]
    return {
        "timeout": 60,
        "torrents": [{"name": "t1", "size": SIZE, "piece_length": PLEN, "version": "v1", "seed": 23}],
        "peers": [
            *seeds,
            {"name": "B", "ip": "127.0.0.2", "port": 6881, "seeds": ["t1"], "upload_rate_limit": 250_000,
             "corrupt": {"t1": [[b + 5000, 10] for b in range(0, SIZE - 5010, 16384)]}},   # every block it sends
            {"name": "L", "ip": "127.0.0.3", "port": 6881, "leeches": ["t1"],
             "connect_to": ["B", *[s["name"] for s in seeds]]},
        ],
    }


@pytest.fixture(scope="module")
def swarm(tmp_path_factory):
    from analyzer.validation.harness import run_swarm
    tmp = tmp_path_factory.mktemp("split")
    # libtorrent now and then stops asking for the last piece after the bad seeder's failures (all
    # connections idle, 7 of 8 pieces, seen under load, twice in a row once in a full suite run): a
    # new swarm is made, up to twice; the test needs failed pieces split across shards, which any
    # of the swarms has
    for attempt in range(3):
        try:
            res = run_swarm(spec(), tmp / f"swarm{attempt}")
            break
        except RuntimeError as e:
            if attempt == 2 or "leechers not complete" not in str(e):
                raise
    d = tmp / "in"
    d.mkdir()
    for p in res.capture_files:
        shutil.copyfile(p, d / p.name)
    return res, d, Path(res.torrent_files["t1"]), tmp


def run(where: Path, inputs: Path, torrent: Path, *args: str) -> tuple[dict, dict]:
    """The CLI in ``where`` (carving into the relative folder ``carve``, as the paths are
    written into the outputs); every output file, and the manifest's run facts."""
    where.mkdir(parents=True)
    cwd = os.getcwd()
    os.chdir(where)
    try:
        r = CliRunner().invoke(main, ["analyze", str(inputs), "--local", "127.0.0.3", "--out", "out", "--quiet",
                                      "--torrent", str(torrent), "--carve", "carve", *args])
    finally:
        os.chdir(cwd)
    assert r.exit_code == 0, r.output
    return output_files(where / "out"), json.loads((where / "out" / "manifest.json").read_text())["run"]


def test_split_pieces_give_the_one_process_results(swarm):
    res, inputs, torrent, tmp = swarm
    leech = res.ground_truth["peers"]["L"]["torrents"]["t1"]
    assert leech["total_failed_bytes"] > 0, "libtorrent saw no failed piece: the bad seeder did not act"
    ref, _ = run(tmp / "ref", inputs, torrent)
    s = json.loads(ref["summary.json"])
    [t] = [t for t in s["torrents"] if t["name"] == "t1"]
    assert t["verified_downloaded_bytes"] == SIZE
    assert t["failed_downloaded_bytes"] == leech["total_failed_bytes"]
    assert any(n.startswith("../carve/") for n in ref)
    split = {}
    for k in (2, 3, 4):
        files, facts = run(tmp / f"k{k}", inputs, torrent, "--shards", str(k))
        assert facts["shards"] == k and facts["engine"] == "staged, in-process"
        split[k] = facts["evidence"]["split_pieces"]
        assert facts["evidence"]["caps"]["may_differ"] is False
        bad = [n for n in set(ref) | set(files) if ref.get(n) != files.get(n)]
        assert not bad, (k, bad)
    assert max(split.values()) > 0, f"no piece was split across shards: {split}"
    print("split pieces per shard count", split, "failed", t["failed_downloaded_bytes"], "redundant", t["redundant_downloaded_bytes"])
