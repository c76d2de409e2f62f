"""The expert-witness report: DIR/report/report.html, report.pdf and every chart
as PNG (200 dpi) and SVG, built only from the files of the output folder.

The report states measurements, not conclusions: a summary table per
torrent, the charts (each with a caption saying what is counted and how),
the methodology, the limitations found in this capture (gaps, encrypted and
unattributed bytes, capture damage), the evidence list (every input with its
SHA-256, frames and time span) and the tool version and parameters.
``torrent_filter`` (info hash prefix or name substring) and ``start``/``end``
(UTC) narrow charts and tables; within a time window the per-torrent figures
are those of the window (sums of timeline.parquet), which the table says.
"""
from __future__ import annotations

import html
import io
import json
import textwrap
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from analyzer.report import charts
from analyzer.units import format_bytes

DPI = 200
TOP_PEERS = 10          # bars (and table rows) per torrent in the per-peer chart; the rest in one row
TORRENT_CHARTS = 20     # torrents (the largest by piece bytes) that get their own charts
SUMMARY_COLUMNS = [("info_hash", "Info hash"), ("name", "Name"), ("total_size", "Size"),
                   ("downloaded_bytes", "Downloaded"), ("downloaded_acked_bytes", "Downloaded, acknowledged"),
                   ("uploaded_bytes", "Uploaded"), ("uploaded_acked_bytes", "Uploaded, acknowledged"),
                   ("verified_downloaded_bytes", "Downloaded, verified"),
                   ("verified_uploaded_bytes", "Uploaded, verified"), ("ratio", "Upload / download"),
                   ("peers", "Peers"), ("first_seen", "First seen (UTC)"), ("last_seen", "Last seen (UTC)")]
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
]


def _fmt(value, key: str) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "—"
    if key.endswith("_bytes") or key == "total_size":
        v = int(value)
        return f"{v:,} B" if abs(v) < 1000 else f"{v:,} B = {format_bytes(v)}"
    if key == "ratio":
        return f"{value:.3f}"
    if key == "info_hash":
        return str(value)
    return str(value)


def _announce_text(a: dict) -> str:
    def n(v):
        return "—" if v is None else f"{v:,}"
    return (f"{a['ts']} {a['event'] or '(no event)'}: uploaded {n(a['uploaded'])}, downloaded "
            f"{n(a['downloaded'])}, left {n(a['left'])}")


PARTICIPATION_COLUMNS = [("info_hash", "Info hash"), ("mechanism", "How the subject named it"), ("count", "Messages"),
                         ("first_ts", "First (UTC)"), ("last_ts", "Last (UTC)"),
                         ("in_summary", "Peer connections in the summary table")]
RECONCILIATION_COLUMNS = [("info_hash", "Info hash"), ("announces", "Announces"),
                          ("first", "First announce (client's counters)"),
                          ("last", "Last announce (client's counters)"),
                          ("reported_uploaded_between_bytes", "Reported uploaded between them"),
                          ("wire_uploaded", "Piece bytes uploaded on the wire between them"),
                          ("reported_downloaded_between_bytes", "Reported downloaded between them"),
                          ("wire_downloaded", "Piece bytes downloaded on the wire between them"),
                          ("within", "Reported figure within the wire range")]
PARTICIPATION_TEXT = ("Info hashes the subject named in its own messages other than peer connections: tracker "
                      "announces and scrapes, DHT lookups (get_peers) and announcements (announce_peer), Local "
                      "Service Discovery. They show interest in or an offer of a torrent, not a transfer. Clients "
                      "also send DHT get_peers for random targets to maintain their routing tables: an info "
                      "hash seen only in get_peers, with nothing else about it, need not be a torrent.")
RECONCILIATION_TEXT = ("A client's announces carry its own running totals (uploaded, downloaded, left), which may "
                       "include transfers before the capture began. The difference between its first and last "
                       "announce in the capture is set against the piece bytes the capture shows for the same "
                       "torrent between those two moments (a range, because the capture's per-second bins "
                       "straddle the announce times). Clients exclude redundant and failed data from their "
                       "'downloaded' figure.")


def _hashes(torrents: list[dict]) -> set[str]:
    """The info hashes of summary torrent rows, aliases included."""
    return {h for t in torrents for h in (t["info_hash"], *t["info_hash_aliases"])}


class ReportData:
    def __init__(self, folder: Path, torrent_filter: str | None, start: str | None, end: str | None):
        self.folder = folder
        self.summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        self.manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8")) \
            if (folder / "manifest.json").exists() else {}
        self.timeline = pd.read_parquet(folder / "timeline.parquet")
        self.peers = pd.read_parquet(folder / "peers.parquet")
        conns = pd.read_csv(folder / "connections.csv", dtype=str, keep_default_na=False)
        self.start = pd.Timestamp(start, tz="UTC") if start else None
        self.end = pd.Timestamp(end, tz="UTC") if end else None
        torrents = self.summary["torrents"]
        if torrent_filter:
            f = torrent_filter.lower()
            torrents = [t for t in torrents if t["info_hash"].startswith(f) or f in (t.get("name") or "").lower()]
        self.torrents = torrents
        self.filtered = bool(torrent_filter)
        self.hashes = hashes = _hashes(torrents)
        self.timeline = self.timeline[self.timeline["info_hash"].isin(hashes)]
        self.peers = self.peers[self.peers["info_hash"].isin(hashes)]
        conns = conns[(conns["category"] == "bittorrent") & conns["info_hash"].isin(hashes)
                      & (conns["subject_side"].isin(["src", "dst"]))]
        conns = conns.assign(first_ts=pd.to_datetime(conns["first_ts"], utc=True),
                             last_ts=pd.to_datetime(conns["last_ts"], utc=True))
        if self.start is not None:
            self.timeline = self.timeline[self.timeline["bin_start"] >= self.start.floor("s")]
            conns = conns[conns["last_ts"] >= self.start]
        if self.end is not None:
            self.timeline = self.timeline[self.timeline["bin_start"] <= self.end]
            conns = conns[conns["first_ts"] <= self.end]
        self.connections = conns
        self.windowed = self.start is not None or self.end is not None

    def table(self) -> pd.DataFrame:
        rows = []
        for t in self.torrents:
            row = {k: t.get(k) for k, _ in SUMMARY_COLUMNS}
            if self.windowed:
                tl = self.timeline[self.timeline["info_hash"].isin(_hashes([t]))]
                for d in ("downloaded", "uploaded"):
                    rows_d = tl[tl["direction"] == d]
                    row[f"{d}_bytes"] = int(rows_d["bytes"].sum())
                    row[f"{d}_acked_bytes"] = int(rows_d["acked_bytes"].sum())
                    row[f"verified_{d}_bytes"] = None
            down = row["downloaded_bytes"] or 0
            row["ratio"] = (row["uploaded_bytes"] or 0) / down if down else None
            rows.append(row)
        return pd.DataFrame(rows, columns=[k for k, _ in SUMMARY_COLUMNS])

    def limitations(self) -> list[str]:
        acc = self.summary["accounting"]
        out = []
        gaps = acc["gap_bytes"]
        out.append(f"TCP bytes missing from the capture (gaps): {gaps['to_subject']:,} towards the subject, "
                   f"{gaps['from_subject']:,} from it, {gaps['not_involving_subject']:,} between other hosts.")
        gp = acc.get("gap_packets", {})
        if any(gp.values()):
            out.append(f"uTP packets missing from the capture: {gp.get('to_subject', 0):,} towards the subject, "
                       f"{gp.get('from_subject', 0):,} from it.")
        e = self.summary.get("encrypted", {})
        out.append(f"Encrypted (MSE) connections of the subject: {e.get('connections', 0)}, carrying "
                   f"{e.get('downloaded_bytes', 0):,} bytes to it and {e.get('uploaded_bytes', 0):,} from it "
                   "after the key exchange; not attributable to any torrent"
                   + (f" ({e.get('with_bittorrent_context', 0)} of them to an address and port shown to be "
                      "BitTorrent by plaintext in the capture)." if e.get("connections") else "."))
        u = self.summary.get("unattributed", {})
        out.append(f"BitTorrent connections of the subject without a captured handshake and not attributed by "
                   f"piece hashes: {u.get('connections', 0)}, with {u.get('downloaded_bytes', 0):,} piece bytes "
                   f"downloaded and {u.get('uploaded_bytes', 0):,} uploaded.")
        silent = acc.get("connections_finished_after_silence", 0)
        if silent:
            out.append(f"Connections silent for more than 10 minutes of capture time and closed by the tool: "
                       f"{silent}; {acc.get('connections_continued_after_silence', 0)} of them carried BitTorrent "
                       "messages again later, counted as connections seen mid-stream and attributed to the "
                       "connection they continue (same endpoints; attribution 'same_connection').")
        dmg = acc["capture_damage"]
        out.append(f"Capture damage: {dmg['unreadable_files']} unreadable file(s), {dmg['damaged_bytes']:,} damaged "
                   f"and {dmg['truncated_bytes']:,} truncated bytes; undecodable frames: "
                   f"{acc['categories']['undecodable']['frames']:,}.")
        subj = self.summary["subject"]
        out.append(f"Subject: {', '.join(self.summary['local']) or '(none)'} — {subj['basis']}.")
        out.extend(self.summary.get("notes", []))
        return out

    def charted_torrents(self, limit: int = TORRENT_CHARTS) -> list[dict]:
        """The torrents that get their own charts: the `limit` largest by piece bytes, in table order."""
        size = {t["info_hash"]: (t.get("downloaded_bytes") or 0) + (t.get("uploaded_bytes") or 0)
                for t in self.torrents}
        keep = set(sorted(size, key=lambda h: (-size[h], h))[:limit])
        return [t for t in self.torrents if t["info_hash"] in keep]

    def peer_rows(self, torrent: dict, top_n: int = TOP_PEERS) -> list[dict]:
        """The rows of the torrent's per-peer chart (whole capture), for the table beside it."""
        return charts.top_peers(self.peers[self.peers["info_hash"].isin(_hashes([torrent]))],
                                top_n).to_dict("records")

    def participation(self) -> list[dict]:
        """Info hashes the subject named outside peer connections: its tracker announces and
        scrapes, DHT get_peers/announce_peer, Local Service Discovery announces; one row per info
        hash and mechanism, with counts and first/last time, and whether the summary table has it."""
        s = self.summary
        known = _hashes(s["torrents"])
        rows: dict = {}

        def add(h, how, n, first, last):
            r = rows.setdefault((h, how), {"info_hash": h, "mechanism": how, "count": 0, "first_ts": first,
                                           "last_ts": last, "in_summary": "yes" if h in known else "no"})
            r["count"] += n
            r["first_ts"] = min(filter(None, (r["first_ts"], first)), default=None)
            r["last_ts"] = max(filter(None, (r["last_ts"], last)), default=None)
        for a in s.get("tracker_reports", []):
            add(a["info_hash"], f"tracker {a['kind']} ({a['transport']})", 1, a["ts"], a["ts"])
        for d in s.get("dht", {}).get("info_hashes", []):
            for method in ("get_peers", "announce_peer"):
                if d[method]:
                    add(d["info_hash"], f"DHT {method}", d[method], d["first_seen"], d["last_seen"])
        for e in s.get("lsd", []):
            if e["by_subject"]:
                add(e["info_hash"], "Local Service Discovery", e["count"], e["first_seen"], e["last_seen"])
        out = sorted(rows.values(), key=lambda r: (r["info_hash"], r["mechanism"]))
        if self.windowed:
            out = [r for r in out if (self.end is None or pd.Timestamp(r["first_ts"]) <= self.end)
                   and (self.start is None or pd.Timestamp(r["last_ts"]) >= self.start)]
        if self.filtered:
            out = [r for r in out if r["info_hash"] in self.hashes]
        return out

    def tracker_reconciliation(self) -> list[dict]:
        """Per torrent: the client's own counters in its first and last announce and the piece bytes
        the capture shows between them (summary.json tracker_reconciliation)."""
        rows = []
        for r in self.summary.get("tracker_reconciliation", []):
            if self.filtered and r["info_hash"] not in self.hashes:
                continue
            rows.append({
                "info_hash": r["info_hash"], "announces": r["announces"],
                "first": _announce_text(r["first"]), "last": _announce_text(r["last"]),
                "reported_uploaded_between_bytes": r["reported_uploaded_between"],
                "wire_uploaded": f"{r['wire_uploaded_between_min']:,} to {r['wire_uploaded_between_max']:,} B",
                "reported_downloaded_between_bytes": r["reported_downloaded_between"],
                "wire_downloaded": f"{r['wire_downloaded_between_min']:,} to {r['wire_downloaded_between_max']:,} B",
                "within": ", ".join(f"{d} {'yes' if r[f'{d}_consistent'] else 'no'}"
                                    for d in ("uploaded", "downloaded")),
            })
        return rows

    def evidence(self) -> list[dict]:
        return [{"path": i["path"], "sha256": i["sha256"], "frames": i["frames"], "first_ts": i["first_ts"],
                 "last_ts": i["last_ts"], "errors": "; ".join(i["errors"])} for i in self.summary["inputs"]]


def build_charts(data: ReportData) -> list[tuple[str, Figure]]:
    figs = []
    table = data.table()
    if len(table):
        shown = {t["info_hash"] for t in data.charted_torrents()}
        fig = charts.torrent_totals(table[table["info_hash"].isin(shown)].reset_index(drop=True),
                                    "Piece bytes per torrent")
        if len(shown) < len(table):
            fig.bt_caption += (f" Shown: the {len(shown)} of {len(table):,} torrents with the most piece bytes; "
                               "the summary table lists all of them.")
        figs.append(("torrent_totals", fig))
    for t in data.charted_torrents():
        label = t.get("name") or t["info_hash"]
        hashes = _hashes([t])
        tl = data.timeline[data.timeline["info_hash"].isin(hashes)]
        figs.append((f"cumulative_{t['info_hash'][:12]}",
                     charts.cumulative_transfer(tl, f"Cumulative piece bytes — {label}")))
        fig = charts.uploads_per_peer(data.peers[data.peers["info_hash"].isin(hashes)],
                                      f"Piece bytes uploaded per peer — {label}", top_n=TOP_PEERS)
        if data.windowed:
            fig.bt_caption += " Per-peer figures are for the whole capture, not the time window."
        figs.append((f"uploads_per_peer_{t['info_hash'][:12]}", fig))
    if len(data.connections):
        figs.append(("connections", charts.connection_timeline(data.connections, "Connections of the subject")))
    if len(data.timeline):
        figs.append(("throughput", charts.throughput(data.timeline, "Throughput")))
    return figs


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg"):]


def write_report(folder: Path, torrent_filter: str | None = None, start: str | None = None,
                 end: str | None = None) -> list[Path]:
    """Write DIR/report/*; return the files written."""
    folder = Path(folder)
    data = ReportData(folder, torrent_filter, start, end)
    out = folder / "report"
    out.mkdir(exist_ok=True)
    for old in [*out.glob("*.png"), *out.glob("*.svg"), out / "report.html", out / "report.pdf"]:
        old.unlink(missing_ok=True)          # a narrower report must not leave the previous one's charts
    written = []
    figures = build_charts(data)
    for name, fig in figures:
        for ext, kw in (("png", {"dpi": DPI, "metadata": {"Software": None}}),
                        ("svg", {"metadata": {"Date": None}})):
            path = out / f"{name}.{ext}"
            fig.savefig(path, format=ext, **kw)
            written.append(path)
    (out / "report.html").write_text(render_html(data, figures), encoding="utf-8")
    written.append(out / "report.html")
    write_pdf(data, figures, out / "report.pdf")
    written.append(out / "report.pdf")
    return written


# ---------------------------------------------------------------------- HTML
_CSS = """body{font-family:serif;max-width:60em;margin:2em auto;color:#000;background:#fff}
table{border-collapse:collapse;font-size:85%;margin:1em 0}td,th{border:1px solid #000;padding:.2em .4em;
vertical-align:top;text-align:left}th{background:#eee}figure{margin:1.5em 0}figcaption{font-size:90%}
code{font-size:90%;word-break:break-all}"""


def _table_html(columns: list[tuple[str, str]], rows: list[dict]) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(k), k))}</td>" for k, _ in columns) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(data: ReportData, figures: list[tuple[str, Figure]]) -> str:
    s = data.summary
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>BitTorrent traffic analysis"
             f"</title><style>{_CSS}</style></head><body>",
             "<h1>BitTorrent traffic analysis</h1>",
             f"<p>Subject: <code>{html.escape(', '.join(s['local']) or '(none)')}</code>. "
             f"{'Figures for the time window ' + html.escape(str(data.start or '…')) + ' to ' + html.escape(str(data.end or '…')) + ' (UTC).' if data.windowed else 'Figures for the whole capture.'}</p>",
             "<h2>Summary per torrent</h2>",
             _table_html(SUMMARY_COLUMNS, data.table().to_dict("records"))]
    if data.windowed:
        parts.append("<p>Within a time window, downloaded and uploaded bytes are those of the window; "
                     "verification figures are given for the whole capture only.</p>")
    parts.append("<h2>Charts</h2>")
    for i, (name, fig) in enumerate(figures, 1):
        parts.append(f"<figure id='{name}'>{_svg(fig)}<figcaption>Figure {i}. "
                     f"{html.escape(fig.bt_caption)}</figcaption></figure>")
    parts.append("<h2>Piece bytes per remote peer</h2><p>For the whole capture; per torrent, the "
                 f"{TOP_PEERS} remote addresses the subject uploaded most to and one row for the others, as in the "
                 "per-peer charts.</p>")
    for t in data.charted_torrents():
        parts.append(f"<h3>{html.escape(t.get('name') or t['info_hash'])} <code>{t['info_hash']}</code></h3>")
        parts.append(_table_html([("remote_ip", "Remote address"), ("uploaded_bytes", "Uploaded"),
                                  ("downloaded_bytes", "Downloaded"), ("connections", "Connections")],
                                 data.peer_rows(t)))
    parts.append(f"<h2>Other evidence of participation</h2><p>{html.escape(PARTICIPATION_TEXT)}</p>")
    part = data.participation()
    parts.append(_table_html(PARTICIPATION_COLUMNS, part) if part else "<p>None in this capture.</p>")
    parts.append(f"<h2>The client's own reports to trackers</h2><p>{html.escape(RECONCILIATION_TEXT)}</p>")
    rec = data.tracker_reconciliation()
    parts.append(_table_html(RECONCILIATION_COLUMNS, rec) if rec else "<p>No announce by the subject in this "
                 "capture carried its counters.</p>")
    parts.append("<h2>Methodology</h2><ul>" + "".join(f"<li>{html.escape(m)}</li>" for m in METHODOLOGY) + "</ul>")
    parts.append("<h2>Limitations found in this capture</h2><ul>"
                 + "".join(f"<li>{html.escape(m)}</li>" for m in data.limitations()) + "</ul>")
    parts.append("<h2>Evidence</h2>" + _table_html(
        [("path", "File"), ("sha256", "SHA-256"), ("frames", "Frames"), ("first_ts", "First frame (UTC)"),
         ("last_ts", "Last frame (UTC)"), ("errors", "Errors")], data.evidence()))
    m = data.manifest
    parts.append("<h2>Tool and parameters</h2>"
                 f"<p>{html.escape(s['tool']['name'])} {html.escape(s['tool']['version'])}; command line: "
                 f"<code>{html.escape(' '.join(m.get('command_line', [])))}</code>; options: "
                 f"<code>{html.escape(json.dumps(m.get('options', {}), sort_keys=True))}</code>; libraries: "
                 f"<code>{html.escape(json.dumps(m.get('libraries', {}), sort_keys=True))}</code>.</p>")
    parts.append("</body></html>\n")
    return "".join(parts)


# ---------------------------------------------------------------------- PDF
def _text_pages(title: str, paragraphs: list[str]) -> list[Figure]:
    """A4 pages of monospaced text, as many as the paragraphs need (the title repeated, "continued")."""
    pages: list[Figure] = []
    y = 0.0
    for p in paragraphs:
        lines = textwrap.wrap(p, 100) or [""]
        for line in lines:
            if not pages or y < 0.05:
                fig = Figure(figsize=(8.27, 11.69))
                fig.text(0.08, 0.95, title + (" (continued)" if pages else ""), fontsize=14, weight="bold",
                         va="top")
                pages.append(fig)
                y = 0.91
            pages[-1].text(0.08, y, line, fontsize=8, va="top", family="monospace")
            y -= 0.016
        y -= 0.008
    return pages


def write_pdf(data: ReportData, figures: list[tuple[str, Figure]], path: Path) -> None:
    table = data.table()
    lines = []
    for row in table.to_dict("records"):
        lines.append("")
        lines.extend(f"{label + ':':28}{_fmt(row.get(k), k)}" for k, label in SUMMARY_COLUMNS)
    if data.windowed:
        lines.append(f"Figures for the time window {data.start or '…'} to {data.end or '…'} (UTC); verification "
                     "figures only for the whole capture.")
    with PdfPages(path, metadata={"Creator": "bt-analyzer", "Producer": None, "CreationDate": None}) as pdf:
        for page in _text_pages("BitTorrent traffic analysis — summary per torrent",
                                [f"Subject: {', '.join(data.summary['local']) or '(none)'}", *lines]):
            pdf.savefig(page)
        for i, (_, fig) in enumerate(figures, 1):
            page = Figure(figsize=(8.27, 11.69))
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=DPI)
            buf.seek(0)
            import matplotlib.image as mpimg
            img = mpimg.imread(buf)
            ax = page.add_axes((0.05, 0.35, 0.9, 0.6))
            ax.imshow(img)
            ax.axis("off")
            for j, line in enumerate(textwrap.wrap(f"Figure {i}. {fig.bt_caption}", 110)):
                page.text(0.06, 0.32 - 0.018 * j, line, fontsize=8, va="top")
            pdf.savefig(page)
        peer_lines = []
        for t in data.charted_torrents():
            peer_lines += ["", f"{t.get('name') or t['info_hash']} ({t['info_hash']})"]
            peer_lines += [f"  {r['remote_ip']:40} uploaded {r['uploaded_bytes']:>18,} B  downloaded "
                           f"{r['downloaded_bytes']:>18,} B  connections {r['connections']:,}"
                           for r in data.peer_rows(t)]
        part_lines = [PARTICIPATION_TEXT, ""] + ([
            f"{r['info_hash']}  {r['mechanism']}: {r['count']:,} message(s), {r['first_ts']} .. {r['last_ts']}; "
            f"in the summary table: {r['in_summary']}" for r in data.participation()] or ["None in this capture."])
        rec_lines = [RECONCILIATION_TEXT] + [line for r in data.tracker_reconciliation() for line in (
            "", f"{r['info_hash']}: {r['announces']} announce(s)", f"  first: {r['first']}", f"  last:  {r['last']}",
            f"  reported uploaded between them {r['reported_uploaded_between_bytes']:,} B; on the wire "
            f"{r['wire_uploaded']}", f"  reported downloaded between them {r['reported_downloaded_between_bytes']:,}"
            f" B; on the wire {r['wire_downloaded']}", f"  reported figure within the wire range: {r['within']}")]
        for title, paragraphs in (("Piece bytes per remote peer (whole capture)", peer_lines),
                                  ("Other evidence of participation", part_lines),
                                  ("The client's own reports to trackers", rec_lines),
                                  ("Methodology", METHODOLOGY),
                                  ("Limitations found in this capture", data.limitations())):
            for page in _text_pages(title, paragraphs):
                pdf.savefig(page)
        ev = [f"{e['path']}  sha256 {e['sha256']}  frames {e['frames']}  {e['first_ts']} .. {e['last_ts']}"
              + (f"  errors: {e['errors']}" if e["errors"] else "") for e in data.evidence()]
        m = data.manifest
        ev.append(f"Tool: {data.summary['tool']['name']} {data.summary['tool']['version']}; command line: "
                  f"{' '.join(m.get('command_line', []))}; options: {json.dumps(m.get('options', {}))}")
        for page in _text_pages("Evidence and tool", ev):
            pdf.savefig(page)
