"""The expert-witness report: DIR/report/report.html and report.pdf, one document written
once from Jinja2 templates (``templates/report.html.j2``) and printed to PDF by WeasyPrint,
and every chart as PNG (200 dpi) and SVG.  It is built only from the files of the output
folder (and the case file, if one is given).

The report states measurements, not conclusions.  Tables and figures are numbered in
document order and every one is referenced from the text: the template is rendered twice,
the first pass recording where each table, figure and section is defined, the second
writing the numbers (a reference to something never defined, or a table or figure never
referenced, is an error).  Charts are matplotlib SVG, inline in the HTML (ids prefixed per
chart so the document stays valid) and therefore in the PDF.

Everything that varies between runs is fixed: the report's date comes from ``--date`` or
the analysis run's start in manifest.json, the PDF's dates are that date, SVG ids are
hashed with a fixed salt; so rebuilding from the same folder gives the same bytes.

Time: two processes are forked when the report starts (``analyze --report``: before the
capture is read): the PDF worker (pdf.py) imports WeasyPrint and the chart worker
(drawing.py) matplotlib, so this process imports neither.  It reads the folder, hands
the data to the chart worker, plans the charts itself (chartplan.py: each chart's key,
caption and size, without matplotlib) and renders the HTML with an empty placeholder of
that size for each chart (the skeleton, figures.py), which the PDF worker lays out while
the chart worker draws the SVGs;
the SVGs fill the placeholders (report.html) and the laid-out pages (report.pdf), and the
chart worker draws the PNGs meanwhile.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from analyzer.report.figures import Chart, fill_charts  # noqa: F401 -- Chart re-exported
from analyzer.report.options import ReportError, ReportOptions, report_date  # noqa: F401 -- re-exported

TITLE = "BitTorrent traffic analysis"
METHODOLOGY = [
    "Piece bytes are the bytes of BitTorrent 'piece' messages (blocks) carried by the subject's connections, "
    "counted from the subject's side: downloaded = sent to the subject, uploaded = sent by the subject.",
    "TCP and uTP streams are reassembled by sequence number: a byte retransmitted several times is counted once; "
    "bytes missing from the capture are measured as gaps and never counted or estimated.",
    "'Acknowledged' bytes are those the receiving side acknowledged at the transport level (TCP cumulative ACK; "
    "uTP ack_nr and selective ACKs).",
    "'Verified' bytes belong to pieces whose bytes, as seen in the capture, hash to the value in the torrent's "
    "metadata (given .torrent files or metadata rebuilt from the capture and checked against the info hash).",
    "The info hash of a connection comes from its BitTorrent handshake, or, where the handshake was not "
    "captured, from blocks that verified against a known torrent.",
    "Connections using Message Stream Encryption are recognised by their key exchange; their content cannot be "
    "decrypted from a capture and is not attributed to any torrent.",
    "A remote client is named twice where possible: as it named itself in its extension handshake (BEP 10 'v') "
    "and as its peer_id encodes it (BEP 20 conventions); both are claims of the software, not proof.",
]
PARTICIPATION_TEXT = ("Info hashes the subject named in its own messages other than peer connections: tracker "
                      "announces and scrapes, DHT lookups (get_peers) and announcements (announce_peer), Local "
                      "Service Discovery. They show interest in or an offer of a torrent, not a transfer. Clients "
                      "also send DHT get_peers for random targets to maintain their routing tables: an info "
                      "hash seen only in get_peers, with nothing else about it, need not be a torrent.")
CLIENT_STATE_TEXT = ("The subject's BitTorrent client keeps lifetime counters per torrent in its state files (resume "
                     "data). They cover the torrent's whole life in that client, the capture only its own time "
                     "span, so the capture can show less than a counter (transfers outside the capture window) "
                     "but never more: a capture showing more uploaded or downloaded bytes than the client counted "
                     "is a contradiction. Each state file is hashed in the manifest.")
from analyzer.report.client_state import CLIENT_STATE_TABLE_COLUMNS  # noqa: E402  (a constant)

RECONCILIATION_TEXT = ("A client's announces carry its own running totals (uploaded, downloaded, left), which may "
                       "include transfers before the capture began. The difference between its first and last "
                       "announce in the capture is set against the piece bytes the capture shows for the same "
                       "torrent between those two moments (a range, because the capture's per-second bins "
                       "straddle the announce times). Clients exclude redundant and failed data from their "
                       "'downloaded' figure.")


def __getattr__(name):
    # ReportData lives in data.py (imported lazily: numpy and pyarrow are not needed to start the PDF worker)
    if name in ("ReportData", "TOP_PEERS", "TORRENT_CHARTS"):
        from analyzer.report import data
        return getattr(data, name)
    raise AttributeError(name)


class ReportFiles(list):
    """The files written (a list of paths) and ``record``: the report's settings for manifest.json
    ``report`` (see options.record_in_manifest)."""
    record: dict


# ---------------------------------------------------------------------- charts
def build_charts(data) -> list[Chart]:
    """The report's charts for ``data``, laid out (drawn in this process; see drawing.py)."""
    from analyzer.report.drawing import lay_out, make_charts
    charts_ = make_charts(data)
    lay_out(charts_)
    return charts_


def start_workers(parallel: bool = True, others=()):
    """(PdfWorker, ChartWorker): the report's two processes, forked now to import their libraries
    (``others``: the parent's ends of other workers' pipes, closed in these)."""
    from analyzer.report.drawing import ChartWorker
    from analyzer.report.pdf import PdfWorker
    pdf = PdfWorker(parallel, others=list(others))
    return pdf, ChartWorker(parallel, others=[*others, *([pdf.conn] if pdf.conn is not None else [])])


# ---------------------------------------------------------------------- numbering
class Numbering:
    """Numbers of sections, tables and figures in document order, and the references to them."""
    PREFIX = {"section": "sec", "table": "tab", "figure": "fig"}
    LABEL = {"section": "Section", "table": "Table", "figure": "Figure"}

    def __init__(self, known: dict | None = None):
        self.known = known or {}
        self.defined: dict = {}
        self.referenced: set = set()

    def anchor(self, kind: str, key: str) -> str:
        return f"{self.PREFIX[kind]}-{key}"

    def define(self, kind: str, key: str) -> int:
        if (kind, key) in self.defined:
            raise ValueError(f"{kind} {key!r} defined twice")
        n = 1 + sum(1 for k in self.defined if k[0] == kind)
        self.defined[(kind, key)] = n
        return n

    def number(self, kind: str, key: str):
        """The number of something defined anywhere in the document (from the first pass)."""
        return self.known.get((kind, key), "?")

    def ref(self, kind: str, key: str):
        from markupsafe import Markup
        self.referenced.add((kind, key))
        n = self.known.get((kind, key), "?")
        return Markup('<a class="ref" href="#{}">{} {}</a>').format(self.anchor(kind, key), self.LABEL[kind], n)

    def check(self) -> None:
        missing = sorted(self.referenced - set(self.defined))
        if missing:
            raise ValueError(f"references to undefined {missing}")
        unreferenced = sorted(k for k in self.defined if k[0] != "section" and k not in self.referenced)
        if unreferenced:
            raise ValueError(f"tables/figures never referenced from the text: {unreferenced}")


def _environment():
    from analyzer.report.compiled import environment
    return environment()


def render_html(context: dict) -> str:
    """The report's HTML: rendered twice so that every reference carries its number, charts inline."""
    return fill_charts(render_skeleton(context), {c.key: c.inline_svg() for c in context["figures"].values()})


def render_skeleton(context: dict) -> str:
    """The report's HTML with each chart as its placeholder (figures.py): needs no chart drawn."""
    return render_numbered("report.html.j2", context)


def render_numbered(template_name: str, context: dict) -> str:
    """A document of templates/ rendered twice, so that every reference carries its number
    (the report; validation.html)."""
    from analyzer.report import formatting
    env = _environment()
    template = env.get_template(template_name)
    known = None
    for _ in range(2):
        num = Numbering(known)
        with formatting.zone(context.get("zone")):
            html = template.render(num=num, **context)
        known = num.defined
    num.check()
    return html


# ---------------------------------------------------------------------- the report
def _context(data, charts_: list[Chart], options: ReportOptions, case, case_info: dict, date: tuple,
             rehash, validation: dict | None = None) -> dict:
    from analyzer.report import identity
    from analyzer.report.data import hashes_of
    from analyzer.report.exhibits import evidence_rows, file_refs
    evidence, unmatched = evidence_rows(data.summary, data.manifest, case, rehash)
    charted = data.charted_torrents()
    announces = [a for a in data.summary.get("tracker_reports", []) if a.get("kind") == "announce"
                 and (not data.filtered or a["info_hash"] in data.hashes)]
    if data.windowed:
        from analyzer.report.data import in_window
        announces = [a for a in announces if in_window(a["ts"], data.start, data.end)]
    return {
        "title": TITLE, "tool": data.summary["tool"], "manifest": data.manifest, "summary": data.summary,
        "options": options, "zone": options.zone, "tz": options.tz, "date": date[0], "date_source": date[1],
        "case": case, "case_info": case_info,
        "subject": data.subject_state(), "span": data.traffic_span(),
        "windowed": data.windowed, "filtered": data.filtered,
        "start": options.start, "end": options.end, "torrent_filter": options.torrent_filter,
        "torrents": data.torrent_rows(), "charted": charted,
        "all_torrents": len(data.summary["torrents"]),
        "peers": {t["info_hash"]: data.peer_rows(t) for t in charted},
        "identity": {t["info_hash"]: identity.peer_identity(data.connections, data.pieces, hashes_of([t]))
                     for t in charted},
        "identity_rows": identity.IDENTITY_ROWS,
        "listen_ports": identity.listen_ports(data.connections, announces),
        "subject_peer_ids": identity.subject_peer_ids(data.connections),
        "figures": {c.key: c for c in charts_},
        "participation": data.participation(), "participation_text": PARTICIPATION_TEXT,
        "reconciliation": data.tracker_reconciliation(), "reconciliation_text": RECONCILIATION_TEXT,
        "client_state_given": "client_state" in data.summary, "client_state_text": CLIENT_STATE_TEXT,
        "client_state": _client_state_rows(data), "client_state_columns": CLIENT_STATE_TABLE_COLUMNS,
        "client_state_files": data.summary.get("client_state", []),
        "methodology": METHODOLOGY, "limitations": data.limitations(),
        "evidence": evidence, "unmatched_evidence": unmatched, "refs": file_refs(evidence),
        "rehash": options.rehash, "rehash_note": options.rehash_note, "report_libraries": report_libraries(),
        "validation": validation,
    }


def _client_state_rows(data) -> list[dict]:
    from analyzer.report.client_state import client_state_table_rows
    rows = client_state_table_rows(data.summary.get("client_state", []))
    if data.filtered:
        names = {t.get("name") for t in data.torrents} | data.hashes
        rows = [r for r in rows if r["torrent"] in names]
    return rows


def report_libraries() -> dict:
    """Versions of the libraries that draw and typeset the report (installed metadata, no import)."""
    return dict(_library_versions())


@lru_cache(maxsize=1)
def _library_versions() -> tuple:
    from importlib.metadata import PackageNotFoundError, version     # (~0.02 s: read once a process)
    out = []
    for name in ("jinja2", "matplotlib", "numpy", "pyarrow", "weasyprint"):
        try:
            out.append((name, version(name)))
        except PackageNotFoundError:
            out.append((name, None))
    return tuple(out)


def _case(folder_summary: dict, options: ReportOptions, manifest: dict | None = None):
    """(Case or None, {'source', 'path', 'sha256'}): --case overrides summary.json ``case`` (whose file
    manifest.json ``case_file`` {path, sha256} names, when the analysis recorded it)."""
    from analyzer.case import Case, load_case
    from analyzer.digest import sha256_file
    if options.case_file:
        case = load_case(options.case_file)
        return case, {"source": "report --case", "path": str(options.case_file),
                      "sha256": sha256_file(options.case_file)}
    if folder_summary.get("case"):
        recorded = (manifest or {}).get("case_file") or {}
        return Case.from_json(folder_summary["case"]), {"source": "summary.json", "path": recorded.get("path"),
                                                        "sha256": recorded.get("sha256")}
    return None, {"source": None, "path": None, "sha256": None}


def _validation(options: ReportOptions) -> tuple[dict | None, dict | None]:
    """(template context, manifest record) of the --validation file, or (None, None)."""
    if not options.validation_file:
        return None, None
    from analyzer.digest import sha256_file
    from analyzer.report.validation import ValidationFileError, load_validation, validation_context
    try:
        doc = load_validation(options.validation_file)
    except ValidationFileError as e:
        raise ReportError(f"--validation {e}") from None
    sha = sha256_file(options.validation_file)
    return (validation_context(doc, str(options.validation_file), sha),
            {"path": str(options.validation_file), "sha256": sha, "started_utc": doc.get("started_utc")})


def write_report(folder: Path, torrent_filter: str | None = None, start: str | None = None,
                 end: str | None = None, *, options: ReportOptions | None = None,
                 parallel: bool = True, validation_file: str | None = None, pdf_worker=None,
                 chart_worker=None) -> ReportFiles:
    """Write DIR/report/*; return the files written (with ``.record`` for the manifest).

    ReportError (a clear message) when the options or the filters cannot be honoured, or the
    validation file (``options.validation_file``, or ``validation_file`` without options) cannot
    be used; CaseError for an unusable case file.  ``pdf_worker``, ``chart_worker``: the workers of
    start_workers() started earlier (``analyze --report`` starts them before reading the capture),
    used and closed here."""
    folder = Path(folder)
    if options is None:
        # called by `analyze --report`: the inputs were hashed moments ago while being read; re-reading
        # them (terabytes, perhaps) is left to `bt-analyzer report` at the end of the examination
        options = ReportOptions(torrent_filter=torrent_filter, start=start, end=end, rehash=False,
                                rehash_note="made by the analysis run itself; bt-analyzer report re-hashes",
                                validation_file=str(validation_file) if validation_file else None)
    workers = [w for w in (pdf_worker, chart_worker) if w is not None]
    rehash = None
    try:
        validation, validation_record = _validation(options)
        if pdf_worker is None or chart_worker is None:
            for w in workers:
                w.close()
            workers = list(start_workers(parallel))
        pdf, drawer = workers
        from analyzer.report.chartplan import plan
        from analyzer.report.data import ReportData
        from analyzer.report.exhibits import Rehash
        data = ReportData(folder, options=options)
        drawer.start(data.for_charts())      # it draws from now on
        charts_ = [p.chart() for p in plan(data)]
        case, case_info = _case(data.summary, options, data.manifest)
        date = report_date(options, data.manifest)
        out = folder / "report"
        from analyzer.safeio import SafeDir
        with SafeDir.open(folder) as d:
            d.subdir("report").close()       # made here, refused if something planted a link in its place
        for old in [*out.glob("*.png"), *out.glob("*.svg"), out / "report.html", out / "report.pdf"]:
            old.unlink(missing_ok=True)      # a narrower report must not leave the previous one's charts
        rehash = Rehash(data.manifest, options.rehash)
        skeleton = render_skeleton(_context(data, charts_, options, case, case_info, date, rehash, validation))
        pdf.lay_out(skeleton)                # the PDF worker lays the pages out while the charts are drawn
        svgs = drawer.write()                # (the SVG files are written now)
        planned = [c.key for c in charts_]
        if list(svgs) != planned:
            from analyzer.report.drawing import ChartError
            raise ChartError(f"drawing the charts failed: the chart process drew {list(svgs)}, the document "
                             f"planned {planned}")
        for c in charts_:
            c.svg_text = svgs[c.key]
        inline = {c.key: c.inline_svg() for c in charts_}
        (out / "report.html").write_text(fill_charts(skeleton, inline), encoding="utf-8")
        pdf.finish(inline, out / "report.pdf")
        drawer.finish()                      # the PNGs
    finally:
        for w in workers:
            w.close()
        if rehash is not None:
            rehash.close()
    files = ReportFiles([*(out / f"{c.key}.{ext}" for c in charts_ for ext in ("png", "svg")),
                         out / "report.html", out / "report.pdf"])
    record = options.record()
    record.update({"date_given": options.date, "date": date[0], "date_source": date[1],
                   "case": case_info, "rehash_inputs": options.rehash, "libraries": report_libraries(),
                   "validation": validation_record})
    files.record = record
    return files
