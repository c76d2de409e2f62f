"""The disclosure excerpt analysed alone says what the whole capture said about the torrent.

On the bundled sample (subject 127.0.0.3), a rotated set cut from it, the public uTP capture and
the public captures together (other torrents, HTTP trackers, DHT, LSD); narrowed to a remote
(--peer) and to a time window (--from/--to: compared with the capture cut to that window).
Wireshark reads every excerpt, and frames.csv maps each excerpt frame to the same bytes in the
original file.
"""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from craft import capinfos_count, public_captures_dir, tshark_frames
from excerpts import (analyze, assert_frames_map, assert_same_evidence, cli, connections, cut_pcap, extract,
                      frames_csv, peers, torrent_hashes)
from test_golden import SAMPLE, split_pcap

SAMPLE_HASH = "b98e39419803a299cd5c4c83ea3b1ee1be532fa0"
PUBLIC = public_captures_dir()
NS = 1_000_000_000

pytestmark = pytest.mark.xdist_group("extract")


def local_of(folder) -> list[str]:
    return [a for s in json.loads((folder / "summary.json").read_text())["local"] for a in ("--local", s)]


def roundtrip(folder, info_hash, excerpt, *options, every=1):
    """Extract, check the files, analyse the excerpt with the same subject; the second folder."""
    extract(folder, info_hash, excerpt, *options)
    rows = frames_csv(excerpt)
    assert len(tshark_frames(excerpt)) == capinfos_count(excerpt) == len(rows) > 0
    assert_frames_map(excerpt, folder, every=every)
    return analyze([excerpt], excerpt.with_suffix(".out"), *local_of(folder))


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    return analyze([SAMPLE], root / "out", "--local", "127.0.0.3")


def test_sample(sample, tmp_path):
    again = roundtrip(sample, SAMPLE_HASH, tmp_path / "x.pcapng", every=5)
    assert_same_evidence(sample, again, {SAMPLE_HASH})
    assert len(peers(again, {SAMPLE_HASH})) == 2
    out = cli("verify", sample)
    assert f"ok        extract {tmp_path / 'x.pcapng'}" in out


def test_rotated_set(tmp_path):
    files = split_pcap(SAMPLE, tmp_path, [700, 1600, 2900])
    folder = analyze(files, tmp_path / "out", "--local", "127.0.0.3")
    again = roundtrip(folder, SAMPLE_HASH, tmp_path / "x.pcapng", every=3)
    assert_same_evidence(folder, again, {SAMPLE_HASH})
    rows = frames_csv(tmp_path / "x.pcapng")
    assert list(rows["original_file"].unique()) == [str(f) for f in files]
    # connections span the files: each excerpt frame's place is its file and frame number there
    assert rows.groupby("original_file")["original_frame"].min().tolist() == [1, 1, 1, 1]


def test_utp_public_capture(tmp_path):
    cap = PUBLIC / "ndpi_bittorrent_utp.pcap"
    shutil.copyfile(cap, tmp_path / cap.name)
    folder = analyze([tmp_path / cap.name], tmp_path / "out")
    [t] = json.loads((folder / "summary.json").read_text())["torrents"]
    again = roundtrip(folder, t["info_hash"], tmp_path / "x.pcapng")
    assert_same_evidence(folder, again, {t["info_hash"]})
    [row] = connections(again, {t["info_hash"]}).to_dict("records")
    assert row["transport"] == "utp" and int(row["block_bytes_src_to_dst"]) + int(row["block_bytes_dst_to_src"]) > 0


def test_peer_narrows_to_one_remote(sample, tmp_path):
    again = roundtrip(sample, SAMPLE_HASH, tmp_path / "x.pcapng", "--peer", "127.0.0.4")
    assert_same_evidence(sample, again, {SAMPLE_HASH}, remote="127.0.0.4", whole_torrent=False)
    assert set(peers(again, {SAMPLE_HASH})["remote_ip"]) == {"127.0.0.4"}
    # every frame of that connection, none of the others
    conns = pd.read_csv(sample / "connections.csv", dtype=str, keep_default_na=False)
    [c] = conns[conns["remote_ip"] == "127.0.0.4"].to_dict("records")
    rows = frames_csv(tmp_path / "x.pcapng")
    assert set(rows["evidence"]) == {f"connection:{c['conn_id']}"}
    assert len(rows) == int(c["frames_src_to_dst"]) + int(c["frames_dst_to_src"])
    # the port narrows too
    cli("extract", sample, "--info-hash", SAMPLE_HASH, "-o", tmp_path / "y.pcapng", "--peer", "127.0.0.4:1")
    assert len(frames_csv(tmp_path / "y.pcapng")) == 0


@pytest.mark.parametrize("start,end", [("2026-11-28T17:52:55Z", "2026-11-28T18:53:00+01:00"),
                                       ("2026-11-28T17:52:50.919600Z", "2026-11-28T17:52:52Z")])
def test_time_window(sample, tmp_path, start, end):
    """Within a window the excerpt says what the capture cut to that window says."""
    again = roundtrip(sample, SAMPLE_HASH, tmp_path / "x.pcapng", "--from", start, "--to", end)
    t_from, t_to = (int(pd.Timestamp(t).value) for t in (start, end))
    rows = frames_csv(tmp_path / "x.pcapng")
    ts = pd.to_datetime(rows["ts"]).astype("int64")
    assert ts.min() >= t_from and ts.max() <= t_to
    cut = analyze([cut_pcap(SAMPLE, tmp_path / "cut.pcap", t_from, t_to)], tmp_path / "cut", "--local", "127.0.0.3")
    assert_same_evidence(cut, again, {SAMPLE_HASH})
    entry = json.loads((sample / "manifest.json").read_text())["extracts"]
    [e] = [e for e in entry if e["resolved_path"] == str((tmp_path / "x.pcapng").resolve())]
    assert e["filters"]["from"] == start and e["filters"]["to_utc"].startswith(pd.Timestamp(end).tz_convert("UTC")
                                                                               .strftime("%Y-%m-%dT%H:%M:%S"))


def test_window_after_every_connection_ended_lists_none(sample, tmp_path):
    """The manifest's entry counts the connections overlapping the window: none when every
    connection of the torrent ended before --from."""
    cli("extract", sample, "--info-hash", SAMPLE_HASH, "-o", tmp_path / "late.pcapng",
        "--from", "2026-11-28T17:53:30Z", "--to", "2026-11-28T17:54:00Z")
    entry = json.loads((sample / "manifest.json").read_text())["extracts"]
    [e] = [e for e in entry if e["resolved_path"] == str((tmp_path / "late.pcapng").resolve())]
    assert e["connections"] == 0 and len(frames_csv(tmp_path / "late.pcapng")) == 0


@pytest.fixture(scope="module")
def public(tmp_path_factory):
    root = tmp_path_factory.mktemp("public")
    (root / "input").mkdir()
    for p in sorted(PUBLIC.iterdir()):
        if p.suffix in (".pcap", ".pcapng"):
            shutil.copyfile(p, root / "input" / p.name)
    return analyze([root / "input"], root / "out")


@pytest.mark.parametrize("info_hash,source,kinds", [
    ("dcfcdccfb9e670ccc3dd40c78c161f2bea243126", "ndpi_bittorrent.pcap", {"connection"}),
    ("0ca4c8e7fb26a354b1a7aa15baeaf26067c66811", "ndpi_bittorrent_utp.pcap", {"connection"}),
    ("e4be9e4db876e3e3179778b03e906297be5c8dbe", "zeek_bittorrent_tracker.pcap", {"tracker_connection"}),
    ("aa3769c4530dde06241873dad43ab5ccec2ce622", "ndpi_bt-http.pcapng", {"tracker_connection"}),
    ("6d6e6f707172737475767778797a313233343536", "suricata-verify_bittorrent-dht_SYNTHETIC.pcap", {"dht"}),
    ("ed4f1085e885f98f9a69b70ee89eb988b8fd9115", "ndpi_bt_search.pcap", {"lsd"}),
])
def test_public_captures_together(public, tmp_path, info_hash, source, kinds):
    """Many inputs, many torrents: the excerpt holds only the frames about this one."""
    again = roundtrip(public, info_hash, tmp_path / "x.pcapng")
    hashes = torrent_hashes(public, info_hash)
    assert_same_evidence(public, again, hashes)
    rows = frames_csv(tmp_path / "x.pcapng")
    assert {f.rsplit("/", 1)[-1] for f in rows["original_file"]} == {source}
    assert {e.split(":")[0] for e in rows["evidence"]} == kinds
    if "tracker_connection" in kinds:
        assert len(pd.read_csv(again / "tracker.csv")) == 1
