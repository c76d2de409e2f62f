"""The client's own records beside the wire, with resume files written by real libtorrent sessions after a
real transfer (harness spec "save_resume").

S seeds at a limited rate, X leeches from S and uploads to L, L leeches from both.  Each peer's resume file
is read back and compared with the status libtorrent reported when it wrote it, then reconciled with the
capture from that peer's side; edited copies must be caught.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from analyzer.analysis import analyze
from analyzer.evidence.clientstate import read_client_state
from analyzer.findings import build_findings
from analyzer.findings.client_state import reconcile_state
from analyzer.findings.client_state_wire import client_state_finding
from analyzer.output.client_state import client_state_csv, client_state_csv_rows, client_state_json
from analyzer.protocols.bencode import decode, encode
from analyzer.report.client_state import client_state_chart
from analyzer.validation.harness import run_swarm
from swarms import three_peers, two_peers

pytestmark = [pytest.mark.realtraffic, pytest.mark.xdist_group("clientstate")]


@pytest.fixture(scope="module")
def swarm(tmp_path_factory):
    spec = three_peers(size=600_000)
    spec["save_resume"] = True
    return run_swarm(spec, tmp_path_factory.mktemp("clientstate"))


@pytest.fixture(scope="module")
def analyses(swarm):
    """Per peer: (analysis result, findings) with that peer as the subject, pieces verified."""
    out = {}
    for name, peer in swarm.ground_truth["peers"].items():
        result = analyze(swarm.capture_files, local=[peer["ip"]], torrents=[str(swarm.torrent_files["t1"])],
                         warn=lambda m: None)
        out[name] = (result, build_findings(result))
    return out


def resume_of(swarm, peer: str) -> dict:
    return swarm.ground_truth["peers"][peer]["torrents"]["t1"]["resume"]


def reconcile_files(analyses, peer: str, paths) -> list[dict]:
    """summary.json client_state[] of the state files under ``paths``, reconciled from ``peer``'s side."""
    return client_state_json(client_state_finding(read_client_state(paths), analyses[peer][1]))


def values(t: dict, kind: str) -> dict:
    return {v["source_key"]: v["value"] for v in t[kind]}


def test_counters_read_equal_what_libtorrent_reported(swarm):
    for peer in ("S", "X", "L"):
        r = resume_of(swarm, peer)
        assert r["settled"], r
        before, after = r["before"], r["after"]
        [f] = client_state_json(reconcile_state(read_client_state([r["path"]])))
        assert f["format"] == "libtorrent_resume" and f["errors"] == [] and f["version"]["value"].startswith("2.1.1")
        [t] = f["torrents"]
        counters, times = values(t, "counters"), values(t, "times")
        assert counters["total_uploaded"] == before["all_time_upload"] == after["all_time_upload"], peer
        assert counters["total_downloaded"] == before["all_time_download"] == after["all_time_download"], peer
        # all_time_* of a torrent added in this session are its payload totals
        assert counters["total_uploaded"] == after["total_payload_upload"], peer
        assert counters["total_downloaded"] == after["total_payload_download"], peer
        for key, status in (("active_time", "active_seconds"), ("seeding_time", "seeding_seconds"),
                            ("finished_time", "finished_seconds")):
            assert before[status] <= counters[key] <= after[status], (peer, key)
        assert times["added_time"] == after["added_time"] and times["completed_time"] == after["completed_time"]
        if after["last_upload"]:
            assert times["last_upload"] == after["last_upload"]
        assert times["last_download"] == after["last_download"] if after["last_download"] else \
            "last_download" not in times
        assert (t["name"], t["save_path"]) == (after["name"], after["save_path"])
        assert t["info_hash"] == swarm.ground_truth["torrents"]["t1"]["info_hash_v1"]
        state = read_client_state([r["path"]])
        [(_, record)] = list(state.torrents())
        held = record.have.pieces(record.num_pieces)
        assert "".join("1" if b else "0" for b in held) == after["pieces"], peer
    assert resume_of(swarm, "X")["after"]["all_time_upload"] > 0          # X really uploaded


def test_harness_transfer_reconciles_as_consistent(swarm, analyses):
    n = swarm.ground_truth["torrents"]["t1"]["num_pieces"]
    for peer in ("S", "X", "L"):
        [f] = reconcile_files(analyses, peer, [resume_of(swarm, peer)["path"]])
        [t] = f["torrents"]
        rec = t["reconciliation"]
        assert rec["matched"] and rec["wire_torrent"] == t["info_hash"]
        for d in ("uploaded", "downloaded"):
            assert rec[d]["verdict"] == "consistent", (peer, rec[d]["statement"])
            assert rec[d]["client_bytes"] == rec[d]["wire_min_bytes"] == rec[d]["wire_max_bytes"], peer
            assert rec[d]["statement"].startswith("consistent")
        p = rec["pieces"]
        assert p["verdict"] == "consistent" and p["client_held"] == n, (peer, p["statement"])
        if peer == "S":
            assert p["received_verified"] == 0 and p["held_not_received"] == n and p["sent_verified"] > 0
        else:
            assert p["received_verified"] == p["held_and_received_verified"] == n and p["held_not_received"] == 0
        assert rec["periods"]["capture"]["first_ts"] and rec["periods"]["client"]["added"]


def edited_copy(src: str, dst: Path, edit) -> Path:
    d = decode(Path(src).read_bytes())
    edit(d)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(encode(d))
    return dst


def test_edited_file_claiming_fewer_uploaded_bytes_is_a_contradiction(swarm, analyses, tmp_path):
    original = resume_of(swarm, "X")["path"]
    [torrent] = analyses["X"][1].torrents
    wire_up = torrent.sums.uploaded_bytes
    assert wire_up > 100_000

    def edit(d):
        d[b"total_uploaded"] = wire_up - 65536

    copy = edited_copy(original, tmp_path / "edited" / Path(original).name, edit)
    shutil.copy(original, tmp_path / "original.resume")
    items = reconcile_files(analyses, "X", [tmp_path])
    by_name = {Path(f["path"]).name: f for f in items}
    edited = by_name[copy.name]["torrents"][0]["reconciliation"]["uploaded"]
    assert edited["verdict"] == "contradiction" and edited["difference_bytes"] == -65536
    assert edited["statement"].startswith("contradiction: the capture shows 65,536 bytes")
    assert by_name["original.resume"]["torrents"][0]["reconciliation"]["uploaded"]["verdict"] == "consistent"
    assert by_name[copy.name]["sha256"] != by_name["original.resume"]["sha256"]
    # the downloaded counter of the edited copy is untouched and still consistent
    assert by_name[copy.name]["torrents"][0]["reconciliation"]["downloaded"]["verdict"] == "consistent"
    # and a counter larger than the capture: possible transfers outside the capture window
    bigger = edited_copy(original, tmp_path / "bigger" / "x.resume",
                         lambda d: d.__setitem__(b"total_uploaded", wire_up + 1_000_000))
    [f] = reconcile_files(analyses, "X", [bigger])
    up = f["torrents"][0]["reconciliation"]["uploaded"]
    assert up["verdict"] == "possible_transfers_outside_capture" and up["difference_bytes"] == 1_000_000


def test_bitfield_comparison_finds_pieces_no_longer_held(swarm, analyses, tmp_path):
    original = resume_of(swarm, "X")["path"]
    removed = [2, 5, 6]

    def edit(d):
        bits = np.unpackbits(np.frombuffer(d[b"pieces"], dtype=np.uint8))
        bits[removed] = 0
        d[b"pieces"] = np.packbits(bits).tobytes()

    copy = edited_copy(original, tmp_path / "x.resume", edit)
    [f] = reconcile_files(analyses, "X", [copy])
    p = f["torrents"][0]["reconciliation"]["pieces"]
    n = swarm.ground_truth["torrents"]["t1"]["num_pieces"]
    assert p["verdict"] == "pieces_missing"
    assert p["client_held"] == n - 3 and p["received_verified"] == n
    assert (p["received_verified_not_held"], p["received_verified_not_held_pieces"]) == (3, "2,5-6")
    assert p["held_and_received_verified"] == n - 3 and p["held_not_received"] == 0
    # pieces X sent whole to L (verified there) that it no longer holds
    result = analyses["X"][0]
    sent = {r.index for r in result.pieces if r.receiver != "127.0.0.3" and r.status == "verified"
            and r.senders.get("127.0.0.3", 0) >= r.covered}
    assert p["sent_verified"] == len(sent) and p["sent_verified_not_held"] == len(sent & set(removed))


def test_outputs_from_real_files(swarm, analyses, tmp_path):
    folder = Path(resume_of(swarm, "X")["path"]).parent
    items = reconcile_files(analyses, "X", [folder])
    text = client_state_csv(items)
    assert text.count("\n") == 2 and ",consistent," in text
    fig = client_state_chart(client_state_csv_rows(items))
    assert len(fig.axes[0].patches) == 4


@pytest.mark.parametrize("version", ["v2", "hybrid"])
def test_v2_and_hybrid_resume_files_reconcile(tmp_path, version):
    # several files: pieces aligned to files (v2) and pad files (hybrid); libtorrent's piece
    # indices in the bitfield must be the verifier's
    spec = two_peers(size=700_000, version=version)
    spec["torrents"][0]["files"] = [300_000, 5_000, 395_000]
    spec["save_resume"] = True
    res = run_swarm(spec, tmp_path)
    truth = res.ground_truth["torrents"]["t1"]
    for peer in ("seed", "leech"):
        ip = res.ground_truth["peers"][peer]["ip"]
        result = analyze(res.capture_files, local=[ip], torrents=[str(res.torrent_files["t1"])],
                         warn=lambda m: None)
        r = res.ground_truth["peers"][peer]["torrents"]["t1"]["resume"]
        [f] = client_state_json(client_state_finding(read_client_state([r["path"]]), build_findings(result)))
        [t] = f["torrents"]
        assert t["info_hash_v2"] == truth["info_hash_v2"] and t["info_hash_v1"] == truth.get("info_hash_v1")
        rec = t["reconciliation"]
        assert rec["matched"], (peer, rec)
        assert rec["uploaded"]["verdict"] == rec["downloaded"]["verdict"] == "consistent", (peer, rec)
        p = rec["pieces"]
        assert p["verdict"] == "consistent" and p["client_held"] == p["num_pieces"] == truth["num_pieces"]
        if peer == "leech":
            assert p["received_verified"] == p["held_and_received_verified"] == truth["num_pieces"]


def test_command_line_and_report(swarm, tmp_path):
    """analyze --client-state end to end: summary.json client_state[], client_state.csv, the state file in
    the manifest (verify checks it), and the report's section with its table and chart."""
    import json
    from click.testing import CliRunner
    from analyzer.cli import main
    resume_dir = Path(swarm.workdir) / "X" / "resume"
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["analyze", *map(str, swarm.capture_files), "--local", "127.0.0.3",
                                  "--torrent", str(swarm.torrent_files["t1"]), "--client-state", str(resume_dir),
                                  "--out", str(out), "--quiet", "--report"])
    assert r.exit_code == 0, r.output
    s = json.loads((out / "summary.json").read_text())
    [f] = s["client_state"]
    [t] = f["torrents"]
    assert t["reconciliation"]["uploaded"]["verdict"] == "consistent"
    assert t["reconciliation"]["downloaded"]["verdict"] == "consistent"
    assert (out / "client_state.csv").read_text().count("consistent") >= 2
    m = json.loads((out / "manifest.json").read_text())
    assert [e["sha256"] for e in m["client_state_files"]] == [f["sha256"]]
    assert CliRunner().invoke(main, ["verify", str(out)]).exit_code == 0
    html = (out / "report" / "report.html").read_text()
    assert "The client&#39;s own records" in html or "The client's own records" in html
    assert "Lifetime counters against wire figures" in html
