"""The report of the bundled sample: files, self-containment, PDF pages, filters, notebook."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from analyzer.cli import main

REPO = Path(__file__).resolve().parent.parent.parent
SAMPLE = REPO / "captures" / "sample-swarm.pcap"
TORRENT = REPO / "captures" / "sample-swarm.torrent"


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "out"
    r = CliRunner().invoke(main, ["analyze", str(SAMPLE), "--local", "127.0.0.3", "--torrent", str(TORRENT),
                                  "--out", str(out), "--quiet", "--report"])
    assert r.exit_code == 0, r.output
    return out


def test_files(out):
    rep = out / "report"
    names = {p.name for p in rep.iterdir()}
    assert {"report.html", "report.pdf"} <= names
    charts = {n.rsplit(".", 1)[0] for n in names if n.endswith(".png")}
    assert charts == {n.rsplit(".", 1)[0] for n in names if n.endswith(".svg")}
    assert len(charts) == 5
    from matplotlib.image import imread
    for png in rep.glob("*.png"):
        assert imread(png).shape[1] >= 8 * 200          # 8-inch charts at 200 dpi
    manifest = json.loads((out / "manifest.json").read_text())
    assert "report/report.pdf" in {o["path"] for o in manifest["outputs"]}


def test_html_is_self_contained(out):
    text = (out / "report" / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", text, re.I)
    assert "<link" not in text and "<script" not in text
    assert text.count("<svg") == 5
    for section in ("Summary per torrent", "Methodology", "Limitations found in this capture", "Evidence",
                    "Tool and parameters"):
        assert section in text
    assert "1,500,000 B" in text and "655,360 B" in text        # the table's figures
    sha = json.loads((out / "summary.json").read_text())["inputs"][0]["sha256"]
    assert sha in text
    assert "<h2>Other evidence of participation</h2>" in text and "<h2>The client's own reports" in text
    peers = text.split("Piece bytes per remote peer</h2>")[1].split("<h2>")[0]
    assert "<td>127.0.0.4</td><td>655,360 B" in peers          # the per-peer chart's numbers, as a table


def test_pdf_pages_render_with_charts(out, tmp_path):
    subprocess.run(["pdftoppm", "-r", "50", "-png", str(out / "report" / "report.pdf"), str(tmp_path / "p")],
                   check=True)
    pages = sorted(tmp_path.glob("p-*.png"))
    assert len(pages) == 1 + 5 + 6                     # summary, one per chart, six text pages
    from matplotlib.image import imread
    for page in pages[1:6]:
        img = imread(page)
        assert (img[..., :3] < 0.5).mean() > 0.002     # ink: not a blank page


def test_filters_narrow_the_report(out, tmp_path):
    r = CliRunner().invoke(main, ["report", str(out), "--torrent-filter", "ffff"])
    assert r.exit_code == 0
    text = (out / "report" / "report.html").read_text()
    assert "b98e39419803" not in text.split("<h2>Charts</h2>")[0].split("<tbody>")[1]
    assert not list((out / "report").glob("cumulative_*"))    # the previous report's charts are gone
    v = CliRunner().invoke(main, ["verify", str(out)])
    assert v.exit_code == 0, v.output                         # and so are their manifest entries
    summary = json.loads((out / "summary.json").read_text())
    first = summary["torrents"][0]["first_seen"]
    r = CliRunner().invoke(main, ["report", str(out), "--from", first[:19], "--to", first[:17] + "59"])
    assert r.exit_code == 0, r.output
    text = (out / "report" / "report.html").read_text()
    assert "time window" in text
    assert CliRunner().invoke(main, ["report", str(out), "--from", "not a time"]).exit_code != 0
    CliRunner().invoke(main, ["report", str(out)])           # leave the folder as the fixture made it


def test_report_is_deterministic(out):
    before = {p.name: p.read_bytes() for p in (out / "report").iterdir()}
    CliRunner().invoke(main, ["report", str(out)])
    after = {p.name: p.read_bytes() for p in (out / "report").iterdir()}
    assert before == after


def test_notebook_runs(out):
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(REPO / "notebooks" / "explore.ipynb", as_version=4)
    os.environ["BT_ANALYZER_OUT"] = str(out)
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    finally:
        del os.environ["BT_ANALYZER_OUT"]
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]


def test_long_text_runs_onto_more_pages():
    from analyzer.report.document import _text_pages
    pages = _text_pages("Evidence", [f"capture-{i:04}.pcap sha256 {'0' * 64}" for i in range(150)])
    assert len(pages) > 2
    assert pages[1].texts[0].get_text() == "Evidence (continued)"
    assert sum(len(p.texts) - 1 for p in pages) == 150
