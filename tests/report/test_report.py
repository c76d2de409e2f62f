"""The report of the bundled sample: one document in HTML and PDF, checked as a reader would.

Structure, not counts: the tests derive what must be there (sections, tables, figures, case
fields) from the HTML and check the PDF against it with poppler (pdftotext, pdfinfo) and pypdf
(bookmarks); a headless Chromium checks the HTML at 1280 px.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from analyzer.cli import main

pytestmark = pytest.mark.xdist_group("report")

REPO = Path(__file__).resolve().parent.parent.parent
SAMPLE = REPO / "captures" / "sample-swarm.pcap"
TORRENT = REPO / "captures" / "sample-swarm.torrent"
CASE = f"""
case_number = "2026-0113"
examiner = "A. Examiner"
organisation = "Forensic Unit North"
examination_start = 2026-11-29T09:00:00+01:00
examination_end = 2026-11-30
subject_description = "Laptop seized at the subject's address"

[[evidence]]
id = "EXH-1"
path = "{SAMPLE}"
description = "tcpdump on the uplink"
acquired = 2026-11-28T17:50:00Z

[[evidence]]
id = "EXH-2"
path = "second-capture.pcap"
description = "handed over, not analysed"
"""
CASE_VALUES = ["2026-0113", "A. Examiner", "Forensic Unit North", "2026-11-29T09:00:00+01:00", "2026-11-30",
               "Laptop seized at the subject's address", "EXH-1", "tcpdump on the uplink", "2026-11-28T17:50:00Z",
               "EXH-2", "handed over, not analysed"]
CHROMIUM = ["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]


def run(*args, ok=True):
    r = CliRunner().invoke(main, [str(a) for a in args])
    if ok:
        assert r.exit_code == 0, r.output
    return r


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """The sample analysed with --report (no case file)."""
    out = tmp_path_factory.mktemp("report") / "out"
    run("analyze", SAMPLE, "--local", "127.0.0.3", "--torrent", TORRENT, "--out", out, "--quiet", "--report")
    return out


@pytest.fixture(scope="module")
def cased(out, tmp_path_factory):
    """A copy of the folder, reported with a case file, a second time zone and a given date."""
    base = tmp_path_factory.mktemp("cased")
    folder = base / "out"
    shutil.copytree(out, folder)
    (base / "case.toml").write_text(CASE, encoding="utf-8")
    run("report", folder, "--case", base / "case.toml", "--tz", "Europe/Berlin", "--date", "2026-12-01")
    return folder


# ---------------------------------------------------------------------- helpers
def norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def squash(text: str) -> str:
    """Without whitespace and hyphens (pdftotext drops the hyphen where a line breaks after one)."""
    return re.sub(r"[\s\-]", "", text)


def pdf_pages(pdf: Path) -> list[str]:
    text = subprocess.run(["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    return text.split("\f")[:-1]


def pdf_info(pdf: Path) -> dict:
    text = subprocess.run(["pdfinfo", str(pdf)], check=True, capture_output=True, text=True).stdout
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def words_beyond_text_area(pdf: Path, margin_pt: float = 30) -> list[str]:
    """Words whose box runs into the page's right or bottom margin or off the page (content cut)."""
    xml = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    bad = []
    for page in re.finditer(r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', xml, re.S):
        width, height = float(page.group(1)), float(page.group(2))
        for w in re.finditer(r'<word xMin="([\d.-]+)" yMin="([\d.-]+)" xMax="([\d.-]+)" yMax="([\d.-]+)">([^<]*)',
                             page.group(3)):
            x0, y0, x1, y1 = map(float, w.groups()[:4])
            if x0 < 0 or y0 < 0 or x1 > width - margin_pt or y1 > height - 10:
                bad.append(w.group(5))
    return bad


class Headings(HTMLParser):
    """h2/h3 texts and table/figure captions of the report's HTML (outside the SVGs)."""

    def __init__(self):
        super().__init__()
        self.stack, self.h2, self.h3, self.captions, self._buf = [], [], [], [], None

    def handle_starttag(self, tag, attrs):
        self.stack.append(tag)
        if tag in ("h2", "h3", "caption", "figcaption"):
            self._buf = []

    def handle_endtag(self, tag):
        if tag in ("h2", "h3", "caption", "figcaption") and self._buf is not None:
            text = norm("".join(self._buf))
            {"h2": self.h2, "h3": self.h3}.get(tag, self.captions).append(text)
            self._buf = None
        while self.stack and self.stack.pop() != tag:
            pass

    def handle_data(self, data):
        if self._buf is not None and "svg" not in self.stack:
            self._buf.append(data)


def headings(html: str) -> Headings:
    h = Headings()
    h.feed(html)
    return h


# ---------------------------------------------------------------------- files and offline HTML
def test_files_and_manifest(out):
    rep = out / "report"
    names = {p.name for p in rep.iterdir()}
    assert {"report.html", "report.pdf"} <= names
    charts = {n.rsplit(".", 1)[0] for n in names if n.endswith(".png")}
    assert charts and charts == {n.rsplit(".", 1)[0] for n in names if n.endswith(".svg")}
    html = (rep / "report.html").read_text()
    # every chart file is a figure of the document, inline
    assert html.count("<svg") == len(charts) == len(re.findall(r'<figure id="fig-', html))
    for c in charts:
        assert f'id="fig-{c}"' in html
    from matplotlib.image import imread
    for png in rep.glob("*.png"):
        assert imread(png).shape[1] >= 8 * 200          # 8-inch charts at 200 dpi
    manifest = json.loads((out / "manifest.json").read_text())
    assert {f"report/{n}" for n in names} <= {o["path"] for o in manifest["outputs"]}
    v = run("verify", out)
    assert "files match the manifest" in v.output
    # analyze --report does not read the inputs a second time; `report` does (test_case_data_...)
    evidence = html.split('id="tab-evidence"')[1].split("</table>")[0]
    assert "not computed (made by the analysis run itself" in evidence


def test_html_is_offline(out):
    html = (out / "report" / "report.html").read_text()
    assert re.search(r"<svg\b", html)
    for tag in ("<script", "<link", "<img", "<iframe", "<object", "<embed", "@import", "<base"):
        assert tag not in html.lower(), tag
    refs = re.findall(r"""\b(?:src|href|xlink:href|action|poster|srcset)\s*=\s*["']([^"']*)["']""", html, re.I)
    refs += re.findall(r"url\(\s*['\"]?([^)'\"]*)", html)
    assert refs and all(r.startswith("#") for r in refs), [r for r in refs if not r.startswith("#")]
    # no address of anything outside the document, apart from the SVG namespace names
    bare = re.sub(r'xmlns(:\w+)?="http://www\.w3\.org/[^"]*"', "", html)
    assert not re.search(r"(https?|ftp|file):|//[a-z0-9.-]+\.[a-z]{2,}/", bare, re.I)
    # ids unique (the charts' own ids are prefixed per chart)
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))


def test_no_horizontal_overflow_at_1280_px_in_chromium(out, tmp_path):
    def measure(html: str, name: str) -> dict:
        probe = ("<script>window.addEventListener('load',()=>{const d=document.documentElement;"
                 "const p=document.createElement('pre');p.id='bt-measure';p.textContent=JSON.stringify("
                 "{scrollWidth:d.scrollWidth,clientWidth:d.clientWidth,innerWidth:window.innerWidth});"
                 "document.body.appendChild(p);});</script>")
        page = tmp_path / f"{name}.html"
        page.write_text(html.replace("</body>", probe + "</body>"), encoding="utf-8")
        args = [*CHROMIUM, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,1000"]
        dom = subprocess.run([*args, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
        shot = tmp_path / f"{name}.png"
        subprocess.run([*args, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120)
        from matplotlib.image import imread
        assert imread(shot).shape[1] == 1280
        m = re.search(r'<pre id="bt-measure">([^<]*)</pre>', dom)
        assert m, dom[-2000:]
        return json.loads(m.group(1))

    html = (out / "report" / "report.html").read_text()
    m = measure(html, "report")
    assert m["innerWidth"] == 1280
    assert m["scrollWidth"] <= m["clientWidth"] <= 1280, m
    # the check can fail: the same document with one over-wide element overflows
    wide = measure(html.replace("</body>", '<div style="width:1700px">x</div></body>'), "wide")
    assert wide["scrollWidth"] > wide["clientWidth"]


# ---------------------------------------------------------------------- the PDF
def test_pdf_pages_header_footer_and_metadata(cased):
    pdf = cased / "report" / "report.pdf"
    pages = pdf_pages(pdf)
    n = int(pdf_info(pdf)["Pages"])
    assert n == len(pages) >= 3
    for i, text in enumerate(pages, 1):
        assert f"Page {i} of {n}" in text, i
        assert "Report date 2026-12-01 (UTC)" in text, i
        if i > 1:                                              # the cover has no running header
            assert "Case 2026-0113" in text and "BitTorrent traffic analysis" in text, i
    info = pdf_info(pdf)
    assert "2026" in info["CreationDate"] and "Dec  1" in info["CreationDate"]
    assert info["CreationDate"].strip() == info["ModDate"].strip()
    assert info["Author"].strip() == "A. Examiner" and "2026-0113" in info["Title"]
    sizes = subprocess.run(["pdfinfo", "-f", "1", "-l", str(n), str(pdf)], capture_output=True, text=True).stdout
    orientation = re.findall(r"size:\s+([\d.]+) x ([\d.]+) pts \(A4\)", sizes)
    assert len(orientation) == n                                # every page A4
    assert any(float(w) > float(h) for w, h in orientation)     # wide tables on landscape pages


def test_pdf_bookmarks_follow_the_sections(cased):
    from pypdf import PdfReader
    html = (cased / "report" / "report.html").read_text()
    h = headings(html)
    reader = PdfReader(cased / "report" / "report.pdf")
    pages = pdf_pages(cased / "report" / "report.pdf")
    top, nested = [], []
    for item in reader.outline:
        if isinstance(item, list):
            nested += [x.title for x in item if not isinstance(x, list)]
        else:
            top.append((item.title, reader.get_destination_page_number(item)))
    assert [t for t, _ in top] == h.h2                          # one bookmark per section, in order
    assert set(h.h3) <= set(nested)                             # and per torrent beneath
    for title, page in top:                                     # each leads to the page with its heading
        assert title in norm(pages[page]), title
    numbered = [t for t in h.h2 if t[:1].isdigit()]
    assert [int(t.split()[0]) for t in numbered] == list(range(1, len(numbered) + 1))
    assert numbered[-1].endswith(" Attestation") and any(t.endswith(" Evidence") for t in numbered)


def test_every_table_and_figure_is_numbered_and_referenced(cased):
    html = (cased / "report" / "report.html").read_text()
    text = norm(" ".join(pdf_pages(cased / "report" / "report.pdf")))
    for kind in ("Table", "Figure"):
        defined = [int(x) for x in re.findall(rf"\b{kind} (\d+)\. ", text)]
        assert defined == list(range(1, len(defined) + 1)), (kind, defined)
        for k in defined:
            assert len(re.findall(rf"\b{kind} {k}(?!\d)", text)) >= 2, f"{kind} {k} is never referenced"
    assert len(re.findall(r"\bFigure (\d+)\. ", text)) == html.count("<svg")
    assert len(re.findall(r"\bTable (\d+)\. ", text)) == html.count("<caption>")


def test_html_and_pdf_say_the_same(cased):
    html = (cased / "report" / "report.html").read_text()
    text = norm(" ".join(pdf_pages(cased / "report" / "report.pdf")))
    h = headings(html)
    flat = squash(text)
    for item in [*h.h2, *h.h3, *h.captions]:
        assert squash(item) in flat, item
    for figure in ("1,500,000 B", "655,360 B", "1,434,464 B"):
        assert figure in html and figure in text


def test_case_data_on_the_cover_in_the_evidence_table_and_the_attestation(cased):
    pages = [norm(p) for p in pdf_pages(cased / "report" / "report.pdf")]
    for value in ("2026-0113", "A. Examiner", "Forensic Unit North", "2026-11-29T09:00:00+01:00", "2026-11-30",
                  "Laptop seized at the subject's address", "Europe/Berlin"):
        assert value in pages[0], value                          # the cover
    flat = squash(" ".join(pages))
    for value in CASE_VALUES:           # table cells wrap and pdftotext interleaves them: word by word
        assert all(squash(w) in flat for w in value.split()), value
    text = " ".join(pages)
    assert "+01:00" in text                                      # times also in the second zone
    html = (cased / "report" / "report.html").read_text()
    sha = json.loads((cased / "summary.json").read_text())["inputs"][0]["sha256"]
    evidence = html.split('id="tab-evidence"')[1].split("</table>")[0]
    assert "EXH-1" in evidence and evidence.count(sha) == 2 and "same" in evidence     # intake and end
    assert "EXH-2" in html.split('id="tab-unmatched_evidence"')[1]                       # named, not analysed
    attestation = html.split('id="attestation-section"')[1]
    assert "Signature" in attestation and "A. Examiner" in attestation
    manifest = json.loads((cased / "manifest.json").read_text())
    assert manifest["report"]["case"]["source"] == "report --case"
    assert len(manifest["report"]["case"]["sha256"]) == 64
    assert manifest["report"]["tz"] == "Europe/Berlin" and manifest["report"]["date"] == "2026-12-01"


def test_peer_and_subject_identity(cased):
    html = (cased / "report" / "report.html").read_text()
    ident = html.split('id="tab-identity_b98e39419803"')[1].split("</table>")[0]
    conns = [r for r in (cased / "connections.csv").read_text().splitlines()[1:] if ",127.0.0.3," in r]
    assert ident.count("<tr>") == len(conns) + 1                 # header + one row per subject connection
    for remote, peer_id in (("127.0.0.2:6881", "-LT2110-uZ9Df*tIGE(1"), ("127.0.0.4:54755", "-LT2110-!h2Pbj7z_yeA")):
        assert remote in ident and peer_id in ident
    assert "libtorrent/2.1.1.0" in ident and "libtorrent 2.1.1" in ident
    assert "1,434,464 B" in ident and "655,360 B" in ident
    subject = html.split('id="subject-section"')[1].split("</section>")[0]
    assert "6881" in subject and "accepted TCP connections" in subject and "BEP 10 p" in subject
    assert "-LT2110-6Jzu7qHM4Dd6" in subject and "-LT2110-rRPXG0Y!rF5O" in subject


def test_nothing_is_cut(cased, tmp_path):
    assert words_beyond_text_area(cased / "report" / "report.pdf") == []
    # the check can fail: a table wider than the page runs into the margin
    from analyzer.report.pdf import render_pdf
    wide = tmp_path / "wide.pdf"
    render_pdf("<table><tr>" + "<td>column_content_" + "</td><td>column_content_".join(map(str, range(12)))
               + "</td></tr></table>", wide)
    assert words_beyond_text_area(wide)


def test_rendering_refuses_external_resources(tmp_path):
    from analyzer.report.pdf import render_pdf
    with pytest.raises(BaseException, match="must not load"):
        render_pdf('<img src="http://127.0.0.1:9/x.png">', tmp_path / "x.pdf")
    with pytest.raises(BaseException, match="must not load"):
        render_pdf('<style>@import url("file:///etc/hostname");</style><p>x</p>', tmp_path / "y.pdf")


# ---------------------------------------------------------------------- determinism, filters, warnings
def test_report_is_deterministic(out, cased, tmp_path):
    plain = tmp_path / "out"
    shutil.copytree(out, plain)
    run("report", plain)
    for folder, args in ((plain, []), (cased, ["--case", cased.parent / "case.toml", "--tz", "Europe/Berlin",
                                               "--date", "2026-12-01"])):
        before = {p.name: p.read_bytes() for p in (folder / "report").iterdir()}
        run("report", folder, *args)
        after = {p.name: p.read_bytes() for p in (folder / "report").iterdir()}
        assert before.keys() == after.keys()
        assert [k for k in before if before[k] != after[k]] == []
    # analyze --report and report draw the same charts
    for svg in (out / "report").glob("*.svg"):
        assert svg.read_bytes() == (plain / "report" / svg.name).read_bytes()


def test_pdf_is_the_html_laid_out_at_once(out, cased):
    """The PDF is laid out from the skeleton while the charts are drawn, the charts put in afterwards
    (pdf.py): the bytes are those of report.html rendered in one go."""
    from analyzer.report.pdf import render_pdf
    for folder in (out, cased):
        html = (folder / "report" / "report.html").read_text(encoding="utf-8")
        assert render_pdf(html) == (folder / "report" / "report.pdf").read_bytes()


def test_filters_are_checked_recorded_and_narrow_the_report(out, tmp_path):
    folder = tmp_path / "out"
    shutil.copytree(out, folder)
    summary = json.loads((folder / "summary.json").read_text())
    first = summary["torrents"][0]["first_seen"]
    r = run("report", folder, "--torrent-filter", "ffff", ok=False)
    assert r.exit_code == 1 and "matches no torrent" in r.output
    for bad, message in ((["--from", first[:19]], "no time zone"), (["--to", "17:52:48Z"], "no date"),
                         (["--from", "2026-11-28T17:53:00Z", "--to", "2026-11-28T17:52:00Z"], "is after --to"),
                         (["--from", "2030-01-01T00:00:00Z"], "no piece bytes and no connection"),
                         (["--tz", "Europe/Atlantis"], "not a known IANA time zone")):
        r = run("report", folder, *bad, ok=False)
        assert r.exit_code == 1 and message in r.output, (bad, r.output)
    start = first[:19] + "+00:00"
    end = first[:17] + "59+00:00"
    run("report", folder, "--torrent-filter", "SAMPL", "--from", start, "--to", end)
    html = (folder / "report" / "report.html").read_text()
    assert "time window" in html and start in html and "<code>SAMPL</code>" in html
    manifest = json.loads((folder / "manifest.json").read_text())
    rec = manifest["report"]
    assert (rec["torrent_filter"], rec["from"], rec["to"]) == ("SAMPL", start, end)
    assert rec["from_utc"].startswith(first[:19]) and rec["to_utc"].endswith("59.000000000Z")
    assert run("verify", folder).exit_code == 0              # the replaced report's files are no longer listed


def test_subject_warnings_on_the_cover(out, tmp_path):
    folder = tmp_path / "out"
    shutil.copytree(out, folder)
    s = json.loads((folder / "summary.json").read_text())
    s["subject"].update({"matched": False, "ambiguous": True, "candidates": ["127.0.0.3", "127.0.0.4"]})
    (folder / "summary.json").write_text(json.dumps(s))
    run("report", folder)
    html = (folder / "report" / "report.html").read_text()
    cover = html.split('id="cover"')[1].split("</section>")[0]
    assert "matched no traffic" in cover and "ambiguous" in cover and "127.0.0.4" in cover
    first_page = norm(pdf_pages(folder / "report" / "report.pdf")[0])
    assert "WARNING: THE SUBJECT MATCHED NO TRAFFIC" in first_page.upper()
    assert "WARNING: THE SUBJECT IS AMBIGUOUS" in first_page.upper()


def test_case_recorded_by_the_analysis_and_overridden(out, tmp_path):
    from analyzer.case import load_case
    folder = tmp_path / "out"
    shutil.copytree(out, folder)
    (tmp_path / "case.toml").write_text(CASE, encoding="utf-8")
    s = json.loads((folder / "summary.json").read_text())
    s["case"] = load_case(tmp_path / "case.toml").as_json()
    (folder / "summary.json").write_text(json.dumps(s))
    m = json.loads((folder / "manifest.json").read_text())
    m["case_file"] = {"path": "case.toml", "sha256": "ab" * 32}
    (folder / "manifest.json").write_text(json.dumps(m))
    run("report", folder)
    html = (folder / "report" / "report.html").read_text()
    assert "Case 2026-0113" in html and "as recorded by the analysis" in html and "EXH-1" in html
    assert "ab" * 32 in html.split('id="cover"')[1].split("</section>")[0]
    # --case overrides what the analysis recorded
    from analyzer.report.document import _case
    from analyzer.report.options import ReportOptions
    (tmp_path / "other.toml").write_text('case_number = "OTHER-7"\n', encoding="utf-8")
    case, info = _case(s, ReportOptions(case_file=str(tmp_path / "other.toml")))
    assert case.case_number == "OTHER-7" and info["source"] == "report --case" and len(info["sha256"]) == 64
    r = run("report", folder, "--case", tmp_path / "missing.toml", ok=False)
    assert r.exit_code == 1 and "cannot read the case file" in r.output


def test_notebook_runs(out):
    import os

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


def test_evidence_table_says_when_the_end_hash_differs_or_is_missing(out):
    from analyzer.report import document
    from analyzer.report.data import ReportData
    from analyzer.report.options import ReportOptions

    class Fixed:
        def __init__(self, status, sha):
            self.status, self.sha = status, sha

        def result(self, _path):
            return self.status, self.sha
    data = ReportData(out)
    charts = document.build_charts(data)
    for c in charts:
        c.svg_text = "<svg></svg>"
    for status, sha, says in (("computed", "ff" * 32, "DIFFERENT from intake"),
                              ("missing", None, "not available: no file at"),
                              ("skipped", None, "not computed (--no-rehash)")):
        html = document.render_html(document._context(data, charts, ReportOptions(rehash=status != "skipped"), None,
                                                      {"source": None}, ("2026-12-01", "given"), Fixed(status, sha)))
        evidence = html.split('id="tab-evidence"')[1].split("</table>")[0]
        assert says in evidence, status


def test_network_subject_has_a_table_per_host_and_no_internal_peers(tmp_path):
    """A subject of several hosts (--local 127.0.0.0/30): each torrent gets a per-host table whose
    rows add up to the subject's figures, the internal traffic is named once, and the subject's own
    hosts are not listed among its remote peers."""
    out = tmp_path / "out"
    run("analyze", SAMPLE, "--local", "127.0.0.0/30", "--torrent", TORRENT, "--out", out, "--quiet", "--report")
    s = json.loads((out / "summary.json").read_text())
    html = (out / "report" / "report.html").read_text()
    text = norm(" ".join(pdf_pages(out / "report" / "report.pdf")))
    for k, t in enumerate(s["torrents"]):
        hosts = t["hosts"]
        assert len(hosts) > 1
        assert sum(h["downloaded_bytes"] for h in hosts) == t["downloaded_bytes"]
        assert sum(h["uploaded_bytes"] for h in hosts) == t["uploaded_bytes"]
        table = html.split('<caption>')[1:]
        host_tables = [c for c in table if "Piece bytes per host of the subject" in c]
        assert len(host_tables) == len(s["torrents"])
        body = host_tables[k].split("</table>")[0]
        for h in hosts:
            assert f"<td>{h['host']}</td>" in body
        assert "Subject total" in body and "counted once" in body
        peers_tables = [c for c in table if "Piece bytes per remote address" in c.split("</caption>")[0]]
        assert len(peers_tables) == len(s["torrents"])
        rows = peers_tables[k].split("</table>")[0]
        assert "<td>" in rows
        for h in hosts:
            assert h["host"] not in rows, "a subject host listed as a remote peer"
    assert re.search(r"the subject being several hosts, Table \d+ gives each host", text)
