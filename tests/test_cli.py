"""The command line, in-process (click's runner): help, options, exit codes, messages."""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from analyzer.cli import main

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "captures" / "sample-swarm.pcap"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_every_command_has_help():
    r = invoke("--help")
    assert r.exit_code == 0 and "Forensic analysis" in r.output
    for name, cmd in main.commands.items():
        assert cmd.help, name
        r = invoke(name, "--help")
        assert r.exit_code == 0 and "Usage:" in r.output
        for opt in cmd.params:
            if opt.param_type_name == "option" and not opt.hidden:
                assert opt.help, f"{name} {opt.name}"


def test_version():
    r = invoke("--version")
    assert r.exit_code == 0 and "bt-analyzer" in r.output


def test_analyze_writes_the_output_folder(tmp_path):
    r = invoke("analyze", SAMPLE, "--local", "127.0.0.3", "--out", tmp_path)
    assert r.exit_code == 0, r.output
    assert "torrent b98e39419803a299cd5c4c83ea3b1ee1be532fa0" in r.stdout
    assert "downloaded       1,500,000 B" in r.stdout
    for name in ("summary.json", "torrents.csv", "connections.csv", "manifest.json"):
        assert (tmp_path / name).is_file()


def test_inferred_subject_is_stated_on_stderr(tmp_path):
    # the sample is a capture of the whole swarm: three BitTorrent hosts, none of them the obvious subject
    r = invoke("analyze", SAMPLE, "--out", tmp_path)
    assert r.exit_code == 4
    assert "subject inferred: ambiguous" in r.stderr and "the subject is ambiguous" in r.stderr
    assert "(inferred, AMBIGUOUS: provisional)" in r.stdout and "candidates: 127.0.0.2 (" in r.stdout
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["subject"]["inferred"] is True and s["subject"]["ambiguous"] is True and s["notes"]
    assert [c["address"] for c in s["subject"]["candidates"]] == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    # --local decides: exit status 0
    r = invoke("analyze", SAMPLE, "--local", "127.0.0.3", "--out", tmp_path / "local", "--quiet")
    assert r.exit_code == 0
    s = json.loads((tmp_path / "local" / "summary.json").read_text())
    assert s["subject"] == {"specs": ["127.0.0.3"], "inferred": False, "basis": "given with --local",
                            "ambiguous": False, "matched": True}


def test_bad_local_spec_is_a_usage_error(tmp_path):
    r = invoke("analyze", SAMPLE, "--local", "not-an-ip", "--out", tmp_path)
    assert r.exit_code == 2
    assert "not an IP address, CIDR network or IP:port" in r.stderr


def test_local_spec_forms(tmp_path):
    for spec in ("127.0.0.3", "127.0.0.0/29", "127.0.0.3:6881", "[::1]:6881", "fd00::/8"):
        r = invoke("analyze", SAMPLE, "--local", spec, "--out", tmp_path / "o", "--quiet", "--force")
        # the IPv6 specs are valid but match nothing in this IPv4 capture (exit status 3)
        assert r.exit_code == (3 if ":" in spec.replace("127.0.0.3:", "") else 0), (spec, r.output)


def test_nothing_readable_exits_non_zero_without_traceback(tmp_path):
    missing = tmp_path / "nope.pcap"
    r = invoke("analyze", missing, "--out", tmp_path / "o")
    assert r.exit_code == 2
    assert f"{missing}: no such file" in r.stderr
    assert "Traceback" not in r.output and "Traceback" not in r.stderr
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["inputs"][0]["readable"] is False


def test_bad_files_fail_alone(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a capture\n")
    r = invoke("analyze", text, SAMPLE, tmp_path / "missing.pcap", "--local", "127.0.0.3",
               "--out", tmp_path / "o", "--quiet")
    assert r.exit_code == 5                      # some inputs could not be read; the others analysed
    assert "2 of 3 input(s) could not be read or failed" in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("bt-analyzer:")]
    assert any(str(text) in line and "not a pcap or pcapng capture" in line for line in lines)
    assert any("missing.pcap" in line and "no such file" in line for line in lines)
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    readable = {Path(i["path"]).name: i["readable"] for i in s["inputs"]}
    assert readable == {"sample-swarm.pcap": True, "notes.txt": False, "missing.pcap": False}
    assert s["torrents"][0]["downloaded_bytes"] == 1_500_000


def test_case_file_is_recorded(tmp_path):
    case = tmp_path / "case.toml"
    case.write_text('case_number = "2026-117"\nexaminer = "A. Examiner"\n\n[[evidence]]\nid = "E1"\n'
                    f'path = "{SAMPLE}"\ndescription = "sensor capture"\n')
    out = tmp_path / "out"
    r = invoke("analyze", SAMPLE, "--local", "127.0.0.3", "--case", case, "--out", out, "--quiet")
    assert r.exit_code == 0, r.output
    s = json.loads((out / "summary.json").read_text())
    assert s["case"]["case_number"] == "2026-117" and s["case"]["evidence"][0]["id"] == "E1"
    m = json.loads((out / "manifest.json").read_text())
    assert m["case_file"]["path"] == str(case) and len(m["case_file"]["sha256"]) == 64
    case.write_text(case.read_text() + "\n# edited\n")
    r = invoke("verify", out)
    assert r.exit_code == 1 and "MODIFIED  input  " + str(case) in r.output


def test_bad_case_file_is_a_usage_error(tmp_path):
    case = tmp_path / "case.toml"
    case.write_text('case_numbr = "x"\n')
    r = invoke("analyze", SAMPLE, "--case", case, "--out", tmp_path / "out")
    assert r.exit_code == 2 and "case_numbr" in r.stderr


def test_subject_that_matches_no_traffic(tmp_path):
    r = invoke("analyze", SAMPLE, "--local", "10.99.0.1", "--out", tmp_path / "out", "--quiet")
    assert r.exit_code == 3
    assert "matches no traffic" in r.stderr
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["subject"]["matched"] is False


def test_torrent_files_are_inputs_and_verify_lists_unknown_files(tmp_path):
    torrent = tmp_path / "t.torrent"
    torrent.write_bytes((REPO / "captures" / "sample-swarm.torrent").read_bytes())
    out = tmp_path / "out"
    assert invoke("analyze", SAMPLE, "--local", "127.0.0.3", "--torrent", torrent, "--out", out,
                  "--quiet").exit_code == 0
    m = json.loads((out / "manifest.json").read_text())
    assert [t["path"] for t in m["torrent_files"]] == [str(torrent)]
    assert invoke("verify", out).exit_code == 0
    (out / "planted.csv").write_text("x\n")
    r = invoke("verify", out)
    assert r.exit_code == 1 and "UNLISTED  file   planted.csv" in r.output


def test_output_folder_with_other_files_is_refused_unless_forced(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "evidence.txt").write_text("the examiner's notes")
    r = invoke("analyze", SAMPLE, "--local", "127.0.0.3", "--out", out, "--quiet")
    assert r.exit_code == 2 and "already holds files (evidence.txt)" in r.stderr
    assert (out / "evidence.txt").exists() and not (out / "summary.json").exists()
    r = invoke("analyze", SAMPLE, "--local", "127.0.0.3", "--out", out, "--quiet", "--force")
    assert r.exit_code == 0 and not (out / "evidence.txt").exists()
    assert invoke("verify", out).exit_code == 0


def test_outputs_are_never_written_through_a_link(tmp_path):
    """A link planted in the output folder (here: at an output's name, in a folder an interrupted run
    left, which --resume accepts) is replaced, never followed."""
    outside = tmp_path / "outside.json"
    outside.write_text("keep")
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").symlink_to(outside)
    r = invoke("analyze", SAMPLE, "--local", "127.0.0.3", "--out", out, "--quiet", "--resume")
    assert r.exit_code == 0
    assert outside.read_text() == "keep" and not (out / "summary.json").is_symlink()


def test_an_internal_error_on_one_file_fails_that_file_alone(tmp_path, monkeypatch):
    """A bug met while analysing a file (injected) ends that file: the rest of the batch is analysed,
    the file's entry says where, the traceback is in errors.log (listed in the manifest), exit status 5."""
    import shutil
    d = tmp_path / "in"
    d.mkdir()
    shutil.copyfile(SAMPLE, d / "a-sample.pcap")
    shutil.copyfile(SAMPLE, d / "b-doomed.pcap")
    monkeypatch.setenv("BT_ANALYZER_FAULT", "raise:doomed")
    out = tmp_path / "out"
    r = invoke("analyze", d, "--local", "127.0.0.3", "--out", out, "--quiet")
    assert r.exit_code == 5, r.output
    s = json.loads((out / "summary.json").read_text())
    by_name = {Path(i["path"]).name: i for i in s["inputs"]}
    assert by_name["b-doomed.pcap"]["internal_error"] == "RuntimeError: fault injected for b-doomed.pcap"
    assert "internal error near offset" in by_name["b-doomed.pcap"]["errors"][-1]
    assert by_name["a-sample.pcap"]["internal_error"] is None and s["torrents"]
    log = (out / "errors.log").read_text()
    assert "b-doomed.pcap" in log and "Traceback" in log
    assert "errors.log" in {o["path"] for o in json.loads((out / "manifest.json").read_text())["outputs"]}


def test_triage_run_without_input_hashes(tmp_path):
    """--no-input-hash: no SHA-256 of the inputs anywhere, said in the summary's notes and the
    manifest's options; verify reports the inputs as not hashed and checks the outputs."""
    out = tmp_path / "out"
    r = invoke("analyze", SAMPLE, "--local", "127.0.0.3", "--out", out, "--quiet", "--no-input-hash")
    assert r.exit_code == 0, r.output
    s = json.loads((out / "summary.json").read_text())
    m = json.loads((out / "manifest.json").read_text())
    assert s["inputs"][0]["sha256"] is None and m["inputs"][0]["sha256"] is None
    assert m["options"]["hash_inputs"] is False and any("not hashed" in n for n in s["notes"])
    r = invoke("verify", out)
    assert r.exit_code == 0 and "UNHASHED  input" in r.output
    (out / "summary.json").write_text("{}")
    assert invoke("verify", out).exit_code == 1
