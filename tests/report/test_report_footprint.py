"""The report's footprint: pandas is not imported by `analyze --report` or `bt-analyzer report` (in
any of their processes: the PDF and PNG workers are forked), and the report's peak RSS stays bounded.

Each command runs in a fresh interpreter under ``-X importtime``, whose lines (one per module
imported, in every forked process too, all on the inherited stderr) say what was loaded; a small
parent process reports the peak RSS of the command's process tree (RUSAGE_CHILDREN: the largest).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.xdist_group("report")

REPO = Path(__file__).resolve().parent.parent.parent
SAMPLE = REPO / "captures" / "sample-swarm.pcap"
TORRENT = REPO / "captures" / "sample-swarm.torrent"
REPORT_RSS_MIB = 150        # measured 127-129 MiB (with pandas: 177 MiB)
RUNNER = """
import json, resource, subprocess, sys
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({"rc": r.returncode, "stderr": r.stderr, "stdout": r.stdout,
                  "maxrss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""
CLI = "import sys; sys.argv[0] = 'bt-analyzer'; from analyzer.cli import main; main()"


def run_cli(*args) -> dict:
    cmd = [sys.executable, "-X", "importtime", "-c", CLI, *map(str, args)]
    out = subprocess.run([sys.executable, "-c", RUNNER, *cmd], capture_output=True, text=True, cwd=REPO, check=True)
    result = json.loads(out.stdout)
    assert result["rc"] == 0, result["stderr"][-2000:]
    result["modules"] = {line.split("|")[-1].strip() for line in result["stderr"].splitlines()
                         if line.startswith("import time:")}
    return result


def test_report_without_pandas_and_within_its_memory(tmp_path):
    out = tmp_path / "out"
    analyzed = run_cli("analyze", SAMPLE, "--local", "127.0.0.3", "--torrent", TORRENT, "--out", out, "--quiet",
                       "--report")
    assert (out / "report" / "report.pdf").exists()
    # the lines are real (the check can fail): the report's own modules and libraries are listed
    assert {"analyzer.report.charts", "analyzer.report.columns", "pyarrow.parquet", "weasyprint"} <= analyzed["modules"]
    assert not {m for m in analyzed["modules"] if m.split(".")[0] == "pandas"}
    reported = run_cli("report", out, "--date", "2026-12-01")
    assert {"analyzer.report.data", "matplotlib.figure"} <= reported["modules"]
    assert not {m for m in reported["modules"] if m.split(".")[0] == "pandas"}
    assert reported["maxrss_mib"] < REPORT_RSS_MIB, reported["maxrss_mib"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["report"]["date"] == "2026-12-01"


def test_the_document_process_draws_and_typesets_nothing(tmp_path):
    """`analyze --report`'s own process reads the folder and renders the HTML; matplotlib and WeasyPrint
    are imported by the chart and PDF processes only (forked before the capture is read), so that none
    of their import time is spent after the analysis where they could have been ready."""
    out = tmp_path / "out"
    code = ("import sys; sys.argv = ['bt-analyzer', 'analyze', *sys.argv[1:]]\n"
            "from analyzer.cli import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'matplotlib', 'weasyprint', 'pandas'}))")
    r = subprocess.run([sys.executable, "-c", code, str(SAMPLE), "--local", "127.0.0.3", "--out", str(out),
                        "--quiet", "--report"], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "[]"
    assert (out / "report" / "report.pdf").exists() and len(list((out / "report").glob("*.png"))) >= 4
