"""bt-analyzer validate: the real-traffic scenarios run from the installed command, validation.json,
validation.html, and the report's appendix (report --validation, analyze --report --validation).

The run (conftest.validation_run: libtorrent over uTP, Transmission over TCP) is shared with
test_realtraffic_utp and test_realtraffic_clients, which check the same captures further.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from analyzer.cli import main
from analyzer.report.validation import SCHEMA, figure_statements, load_validation
from conftest import VALIDATION_SCENARIOS

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "captures" / "sample-swarm.pcap"
SAMPLE_TORRENT = REPO / "captures" / "sample-swarm.torrent"


@pytest.mark.realtraffic
@pytest.mark.xdist_group("validation")
def test_validate_writes_validation_json_within_tolerance(validation_run):
    assert validation_run.exit_code == 0, validation_run.output
    doc = validation_run.doc
    assert doc["schema"] == SCHEMA and doc["tool"]["name"] == "bt-analyzer"
    assert [s["name"] for s in doc["scenarios"]] == list(VALIDATION_SCENARIOS)
    assert doc["software"]["libtorrent"] == "2.1.1" and doc["software"]["Transmission"].startswith("Transmission 3")
    for s in doc["scenarios"]:
        assert s["status"] == "passed", (s["name"], s["reason"])
        assert s["capture"]["kernel_dropped"] == 0 and s["capture"]["frames"] > 1000
        assert all(len(f["sha256"]) == 64 for f in s["capture"]["files"])
        assert s["checks"] and all(c["passed"] and c["difference_bytes"] == 0 for c in s["checks"])
        # the tool's figures, and the counters beside them
        for t in s["torrents"]:
            assert t["downloaded_bytes"] == t["downloaded_acked_bytes"] and t["downloaded_gap_bytes"] == 0
            if t["subject_downloads"]:
                assert t["verified_downloaded_bytes"] == t["size_bytes"]
        figures = {c["figure"] for c in s["checks"]}
        assert {"downloaded", "uploaded", "verified", "state_read", "state_reconciled"} <= figures
    by_name = {s["name"]: s for s in doc["scenarios"]}
    tr = by_name["transmission-tcp"]
    assert tr["subject"] == "127.0.0.4" and tr["transport"] == "tcp"
    [up] = [c for c in tr["checks"] if c["figure"] == "uploaded" and c["counter"] == "uploadedEver" and c["torrent"] == "up"]
    [t_up] = [t for t in tr["torrents"] if t["name"] == "up"]
    # Transmission counts the 13-byte header of each piece message it sends
    assert up["client_bytes"] == t_up["uploaded_bytes"] + 13 * t_up["uploaded_piece_messages"] > 2_000_000
    assert {c["source"] for c in tr["checks"] if c["figure"] == "downloaded"} >= {"libtorrent peer seed"}
    assert [f["format"] for f in tr["state_files"]] == ["transmission_resume"] * 2
    lt = by_name["libtorrent-utp"]
    assert lt["subject"] == "127.0.0.3" and lt["client_version"] == "libtorrent 2.1.1"
    # one sentence per figure type, in the file and on the terminal
    statements = {st["figure"]: st for st in doc["statements"]}
    assert statements["downloaded"]["sentence"].startswith("Downloaded piece bytes: 0 bytes difference in 2 of 2 "
                                                           "scenarios")
    assert statements["uploaded"]["scenarios_exact"] == 2 and statements["failed"]["scenarios"] == 1
    assert all(st["max_abs_difference_bytes"] == 0 for st in doc["statements"])
    assert statements["downloaded"]["sentence"] in validation_run.output
    assert doc["statements"] == figure_statements(doc)
    html = (validation_run.out / "validation.html").read_text()
    assert statements["state_reconciled"]["sentence"].replace("'", "&#39;") in html
    assert "uploadedEver" in html and "Table 2." in html
    # the kept scenario folders: the capture, the client's state, the harness result
    kept = validation_run.out / "scenarios" / "transmission-tcp"
    assert (kept / "capture.pcap").stat().st_size == tr["capture"]["files"][0]["size_bytes"]
    assert list((kept / "transmission-state" / "resume").glob("*.resume"))


@pytest.mark.realtraffic
@pytest.mark.xdist_group("validation")
def test_report_appendix_states_the_measured_error(validation_run, tmp_path):
    assert validation_run.exit_code == 0, validation_run.output
    vfile = validation_run.out / "validation.json"
    out = tmp_path / "case"
    r = CliRunner().invoke(main, ["analyze", str(SAMPLE), "--local", "127.0.0.3", "--torrent", str(SAMPLE_TORRENT),
                                  "--out", str(out), "--quiet", "--report", "--validation", str(vfile)])
    assert r.exit_code == 0, r.output
    statements = [st["sentence"] for st in validation_run.doc["statements"]]
    html = (out / "report" / "report.html").read_text()
    assert "Appendix: validation against real clients" in html
    for s in statements:
        assert s.replace("'", "&#39;") in html
    # report --validation on the folder: the same appendix, in the PDF too, and recorded in the manifest
    shutil.copy(vfile, tmp_path / "v.json")
    r = CliRunner().invoke(main, ["report", str(out), "--validation", str(tmp_path / "v.json"), "--no-rehash"])
    assert r.exit_code == 0, r.output
    text = subprocess.run(["pdftotext", "-layout", str(out / "report" / "report.pdf"), "-"], capture_output=True,
                          text=True, check=True).stdout
    flat = " ".join(text.split())
    assert "Appendix: validation against real clients" in flat
    for s in statements:
        assert " ".join(s.split()) in flat, s
    assert "uploadedEver" in flat and "transmission-tcp" in flat
    m = json.loads((out / "manifest.json").read_text())
    assert m["report"]["validation"]["sha256"] == __import__("hashlib").sha256(vfile.read_bytes()).hexdigest()
    assert m["report"]["validation_file"] == str(tmp_path / "v.json")


# ---- without real traffic: prerequisites, options, the statements
def test_missing_prerequisites_one_line_each_and_nothing_run(tmp_path, monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    r = CliRunner().invoke(main, ["validate", "--out", str(tmp_path / "v"), "--scenario", "transmission-tcp",
                                  "--scenario", "libtorrent-tcp"])
    assert r.exit_code == 6, r.output
    lines = [x for x in r.output.splitlines() if x.startswith("bt-analyzer validate: missing: ")]
    assert lines[0].endswith("(run bt-analyzer validate as root)")
    missing = {x.split("missing: ")[1].split(" ")[0] for x in lines[1:]}
    assert missing == {"ip", "ethtool", "tcpdump", "iptables", "ip6tables", "ss", "transmission-daemon"}
    assert any("tcpdump (Debian package tcpdump): not found in PATH; needed by every scenario" in x for x in lines)
    assert any("transmission-daemon (Debian package transmission-daemon): not found in PATH; needed by "
               "transmission-tcp" in x for x in lines)
    assert "Traceback" not in r.output and not (tmp_path / "v").exists()


def test_missing_optional_client_is_skipped_by_default_and_required_when_named(tmp_path, monkeypatch):
    from analyzer.validation import prerequisites
    from analyzer.validation.scenarios import SCENARIOS
    monkeypatch.setattr(prerequisites, "installed", lambda p: p not in ("qbittorrent-nox", "deluged"))
    assert prerequisites.optional_missing(SCENARIOS["qbittorrent-tcp"]) == "not installed: qbittorrent-nox"
    assert prerequisites.optional_missing(SCENARIOS["transmission-tcp"]) is None
    assert prerequisites.missing([SCENARIOS["deluge-utp"]], probe=False) == [
        "deluged (Debian package deluged): not found in PATH; needed by deluge-utp"]
    r = CliRunner().invoke(main, ["validate", "--list"])
    assert r.exit_code == 0 and "qbittorrent-utp" in r.output and "skipped by default" in r.output


def test_usage_errors(tmp_path):
    r = CliRunner().invoke(main, ["validate", "--scenario", "nosuch"])
    assert r.exit_code == 2 and "unknown scenario 'nosuch'" in r.output
    bad = tmp_path / "v.json"
    bad.write_text('{"schema": "something else"}')
    out = tmp_path / "case"
    r = CliRunner().invoke(main, ["analyze", str(SAMPLE), "--out", str(out), "--report", "--validation", str(bad)])
    assert r.exit_code == 2 and "not a validation.json written by bt-analyzer validate" in r.output
    assert not out.exists()          # refused before anything was analysed
    r = CliRunner().invoke(main, ["analyze", str(SAMPLE), "--out", str(out), "--validation", str(bad)])
    assert r.exit_code == 2
    bad.write_text("{")
    r = CliRunner().invoke(main, ["report", str(tmp_path), "--validation", str(bad)])
    assert r.exit_code == 2 and "not JSON" in r.output and "Traceback" not in r.output


def _doc(*scenarios) -> dict:
    return {"schema": SCHEMA, "tool": {"name": "bt-analyzer", "version": "0"}, "scenarios": list(scenarios)}


def _check(figure, diff, counter="c"):
    return {"figure": figure, "torrent": "t", "source": "s", "counter": counter, "client_bytes": 10 + diff,
            "tool_figure": "x", "tool_bytes": 10, "tool_max_bytes": None, "difference_bytes": diff,
            "tolerance_bytes": 0, "passed": diff == 0}


def test_statements_say_the_error_measured(tmp_path):
    doc = _doc({"name": "a", "status": "passed", "checks": [_check("downloaded", 0), _check("uploaded", 0)]},
               {"name": "b", "status": "failed", "checks": [_check("downloaded", 0), _check("uploaded", -1234, "up")]},
               {"name": "c", "status": "error", "checks": []},
               {"name": "d", "status": "skipped", "checks": []})
    st = {s["figure"]: s for s in figure_statements(doc)}
    assert set(st) == {"downloaded", "uploaded"}
    assert st["downloaded"]["sentence"] == ("Downloaded piece bytes: 0 bytes difference in 2 of 2 scenarios "
                                            "(2 comparisons, all within the tolerance of 0 bytes).")
    assert st["uploaded"]["sentence"] == ("Uploaded piece bytes: 0 bytes difference in 1 of 2 scenarios "
                                          "(2 comparisons, 1 outside the tolerance of 0 bytes); the largest "
                                          "difference was -1,234 bytes (b, up).")
    path = tmp_path / "v.json"
    path.write_text(json.dumps(doc))
    assert load_validation(path) == doc
    doc["scenarios"][0]["checks"][0]["figure"] = "made_up"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="holds a comparison that is not one"):
        load_validation(path)


def test_checks_with_a_range():
    from analyzer.validation.relations import Check
    c = Check("state_reconciled", "t", "s", "k", 150, "f", 100, tool_max_bytes=200)
    assert c.difference_bytes == 0 and c.passed
    assert Check("state_reconciled", "t", "s", "k", 90, "f", 100, tool_max_bytes=200).difference_bytes == -10
    assert Check("state_reconciled", "t", "s", "k", 230, "f", 100, tool_max_bytes=200).difference_bytes == 30
    assert not Check("uploaded", "t", "s", "k", 101, "f", 100).passed


def test_validation_html_from_a_document(tmp_path):
    """validation.html from a document with every kind of scenario (passed, failed, error, skipped)."""
    from analyzer.validation.document import write_validation
    doc = _doc({"name": "a", "status": "passed", "description": "A", "client": "x", "client_version": "x 1",
                "transport": "tcp", "ip_version": 4, "drop_probability": 0.02, "subject": "127.0.0.3",
                "reason": None, "duration_seconds": 1.5, "checks": [_check("downloaded", 0)]},
               {"name": "b", "status": "failed", "description": "B", "client": "y", "client_version": None,
                "transport": "utp", "ip_version": 6, "drop_probability": 0.0, "subject": "fd00::4",
                "reason": "t uploadedEver: -1,234 bytes", "duration_seconds": 2.0,
                "checks": [_check("uploaded", -1234, "uploadedEver")]},
               {"name": "c", "status": "error", "description": "C", "client": "z", "client_version": None,
                "transport": "tcp", "ip_version": 4, "drop_probability": 0.0, "subject": None,
                "reason": "swarm.py failed <exit 1>", "duration_seconds": 0.5, "checks": []},
               {"name": "d", "status": "skipped", "description": "D", "client": "w", "client_version": None,
                "transport": "tcp", "ip_version": 4, "drop_probability": 0.0, "subject": None,
                "reason": "not installed: deluged", "duration_seconds": None, "checks": []})
    doc.update(started_utc="2026-01-01T00:00:00Z", finished_utc="2026-01-01T00:01:00Z", duration_seconds=60.0,
               machine={"system": "Linux", "cpus": 2}, software={"libtorrent": "2.1.1"}, tolerance="0 bytes")
    files = write_validation(doc, tmp_path)
    written = json.loads(files[0].read_text())
    assert [s["figure"] for s in written["statements"]] == ["downloaded", "uploaded"]
    html = files[1].read_text()
    assert "4 scenarios were run" in html and "1 passed, 1 failed, 1 could not be run, 1 skipped" in html
    assert "FAILED" in html and "not installed: deluged" in html and "swarm.py failed &lt;exit 1&gt;" in html
    assert '<tr class="failed">' in html and "-1,234 (outside tolerance)" in html and "2.0% loss" in html
    assert load_validation(files[0])["scenarios"][1]["checks"][0]["difference_bytes"] == -1234
