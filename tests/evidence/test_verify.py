"""bt-analyzer verify: the manifest catches a modified input and a modified output."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from analyzer.cli import main

SAMPLE = Path(__file__).resolve().parent.parent.parent / "captures" / "sample-swarm.pcap"


def analyse(tmp_path: Path) -> tuple[Path, Path]:
    cap = tmp_path / "cap.pcap"
    shutil.copy(SAMPLE, cap)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["analyze", str(cap), "--local", "127.0.0.3", "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    return cap, out


def test_untouched_folder_verifies(tmp_path):
    _, out = analyse(tmp_path)
    r = CliRunner().invoke(main, ["verify", str(out)])
    assert r.exit_code == 0
    m = json.loads((out / "manifest.json").read_text())
    n = len(m["inputs"]) + len(m["outputs"])
    assert n == 1 + len([p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json"])
    assert f"{n} of {n} files match the manifest" in r.output


def test_modified_input_is_caught(tmp_path):
    cap, out = analyse(tmp_path)
    data = bytearray(cap.read_bytes())
    data[1000] ^= 1
    cap.write_bytes(bytes(data))
    r = CliRunner().invoke(main, ["verify", str(out), "--quiet"])
    assert r.exit_code == 1
    assert "MODIFIED  input" in r.output and "cap.pcap" in r.output


def test_modified_or_missing_output_is_caught(tmp_path):
    _, out = analyse(tmp_path)
    summary = out / "summary.json"
    summary.write_text(summary.read_text().replace('"uploaded_bytes": 655360', '"uploaded_bytes": 0'))
    (out / "dht.csv").unlink()
    r = CliRunner().invoke(main, ["verify", str(out), "--quiet"])
    assert r.exit_code == 1
    assert "MODIFIED  output summary.json" in r.output
    assert "MISSING   output dht.csv" in r.output


def test_folder_without_manifest(tmp_path):
    r = CliRunner().invoke(main, ["verify", str(tmp_path)])
    assert r.exit_code == 1 and "no manifest" in r.output
