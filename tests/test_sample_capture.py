"""The committed sample capture (captures/sample-swarm.pcap) against its ground truth,
and the determinism of the outputs."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from analyzer.analysis import analyze
from analyzer.cli import main
from analyzer.sessions.subject import given_subject
from summaries import torrents_of
from craft import insert_silence

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "captures" / "sample-swarm.pcap"
TRUTH = json.loads((REPO / "captures" / "sample-swarm.truth.json").read_text())
INFO_HASH = TRUTH["torrents"]["sample"]["info_hash_v1"]


@pytest.fixture(scope="module")
def result():
    return analyze([SAMPLE], local=["127.0.0.3"], warn=lambda m: None)


@pytest.mark.parametrize("peer", sorted(TRUTH["peers"]))
def test_each_peer_matches_its_libtorrent_counters(result, peer):
    p = TRUTH["peers"][peer]
    counters = p["torrents"]["sample"]
    [t] = torrents_of(result, given_subject([p["ip"]]))
    assert t["info_hash"] == INFO_HASH
    assert t["uploaded_bytes"] == t["uploaded_acked_bytes"] == counters["total_payload_upload"]
    assert t["downloaded_bytes"] == t["downloaded_acked_bytes"] == counters["total_payload_download"]


def test_frames_match_tshark(result):
    out = subprocess.run(["tshark", "-n", "-r", str(SAMPLE), "-T", "fields", "-e", "frame.number"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert result.frames == len(out) == sum(r.frames for r in result.records)


def run_cli(tmp_path: Path, name: str, *args: str) -> Path:
    out = tmp_path / name
    r = CliRunner().invoke(main, ["analyze", str(SAMPLE), "--out", str(out), "--quiet", *args])
    assert r.exit_code == 0, r.output
    return out


def test_outputs_are_byte_identical_across_runs_and_jobs(tmp_path):
    a = run_cli(tmp_path, "a", "--local", "127.0.0.3")
    b = run_cli(tmp_path, "b", "--local", "127.0.0.3")
    c = run_cli(tmp_path, "c", "--local", "127.0.0.3", "--shards", "2")
    for name in ("summary.json", "torrents.csv", "connections.csv", "tracker.csv", "dht.csv", "timeline.parquet",
                 "peers.parquet"):
        assert (a / name).read_bytes() == (b / name).read_bytes() == (c / name).read_bytes(), name
    # the run itself (times, command line) lives in the manifest only
    ma, mb = (json.loads((d / "manifest.json").read_text()) for d in (a, b))
    assert ma["outputs"] == mb["outputs"]
    assert ma["inputs"][0]["sha256"] == json.loads((a / "summary.json").read_text())["inputs"][0]["sha256"]


def test_summary_contract(tmp_path):
    out = run_cli(tmp_path, "o", "--local", "127.0.0.3")
    s = json.loads((out / "summary.json").read_text())
    assert s["schema"] == "bt-analyzer/summary/1"
    assert s["tool"]["name"] == "bt-analyzer" and s["tool"]["version"]
    assert s["local"] == ["127.0.0.3"]
    [inp] = s["inputs"]
    assert set(inp) >= {"path", "sha256", "size_bytes", "frames", "link_types", "first_ts", "last_ts"}
    assert inp["size_bytes"] == SAMPLE.stat().st_size
    [t] = s["torrents"]
    assert set(t) >= {"info_hash", "downloaded_bytes", "downloaded_acked_bytes", "uploaded_bytes",
                      "uploaded_acked_bytes", "peers", "connections", "first_seen", "last_seen"}
    assert t["peers"] == 2 and t["connections"] == 2
    assert {c["peer_id_client"] for c in s["subject_clients"]} == {"libtorrent 2.1.1"}
    assert {c["version_string"] for c in s["subject_clients"]} == {"libtorrent/2.1.1.0"}
    acc = s["accounting"]
    assert set(acc["categories"]) >= {"bittorrent", "bittorrent_unattributed", "other_tcp", "udp", "non_ip",
                                      "undecodable"}
    assert sum(c["frames"] for c in acc["categories"].values()) == acc["frames"] == inp["frames"]
    assert set(acc["gap_bytes"]) >= {"to_subject", "from_subject"}
    header = (out / "connections.csv").read_text().splitlines()[0].split(",")
    for col in ("transport", "src_ip", "src_port", "dst_ip", "dst_port", "info_hash", "peer_id_src",
                "client_src", "first_frame", "first_ts", "last_frame", "last_ts"):
        assert col in header
    rows = (out / "torrents.csv").read_text().splitlines()
    assert rows[1].startswith(INFO_HASH + ",all,")


def test_a_long_silence_splits_connections_and_the_totals_stay_exact(tmp_path):
    """Real traffic with 11 minutes of silence inserted mid-transfer: every connection is
    finished (memory follows live connections) and continues as a connection seen
    mid-stream, attributed as "same_connection" to the one it continues; the piece bytes
    still add up to the clients' counters."""
    path = insert_silence(SAMPLE, tmp_path / "silent.pcap", 1800, 660)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["analyze", str(path), "--local", "127.0.0.3", "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    [t] = summary["torrents"]
    [me] = [p["torrents"]["sample"] for p in TRUTH["peers"].values() if p["ip"] == "127.0.0.3"]
    assert t["uploaded_bytes"] == me["total_payload_upload"]
    assert t["downloaded_acked_bytes"] == me["total_payload_download"]
    import csv
    rows = list(csv.DictReader((out / "connections.csv").open()))
    before = [r for r in rows if int(r["first_frame"]) < 1800]
    after = [r for r in rows if int(r["first_frame"]) >= 1800]
    assert len(before) == len(after) == 3
    assert {r["attribution"] for r in after} == {"same_connection"}
    by_id = {r["conn_id"]: r for r in before}
    for r in after:
        e = by_id[r["attribution_conn_id"]]
        assert {(r["src_ip"], r["src_port"]), (r["dst_ip"], r["dst_port"])} == \
            {(e["src_ip"], e["src_port"]), (e["dst_ip"], e["dst_port"])}
        assert r["attribution_frame"] == e["attribution_frame"] and r["info_hash"] == e["info_hash"]
    assert summary["accounting"]["connections_finished_after_silence"] == 3
    assert summary["accounting"]["connections_continued_after_silence"] == 3


def test_block_frames_agree_with_tshark(result):
    """connections.csv first/last_block_frame: the first frame carrying piece block bytes (at or
    before the frame where tshark completes the first piece message) and the frame that completes
    the last one (tshark's last piece message frame)."""
    import csv
    import io
    from summaries import connections_csv
    out = subprocess.run(["tshark", "-n", "-r", str(SAMPLE), "-Y", "bittorrent.msg.type == 7", "-T", "fields",
                          "-e", "frame.number", "-e", "ip.src", "-e", "tcp.srcport", "-e", "ip.dst",
                          "-e", "tcp.dstport"], capture_output=True, text=True, check=True).stdout
    frames: dict = {}
    for line in out.splitlines():
        n, *ends = line.split("\t")
        key = frozenset([(ends[0], ends[1]), (ends[2], ends[3])])
        frames.setdefault(key, []).append(int(n))
    rows = [r for r in csv.DictReader(io.StringIO(connections_csv(result))) if r["category"] == "bittorrent"]
    assert len(rows) == len(frames) == 3
    for r in rows:
        seen = frames[frozenset([(r["src_ip"], r["src_port"]), (r["dst_ip"], r["dst_port"])])]
        assert int(r["first_block_frame"]) <= min(seen)
        assert int(r["last_block_frame"]) == max(seen)
        assert r["first_block_file"] == r["last_block_file"] == str(SAMPLE)
