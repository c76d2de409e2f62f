"""What the report shows, read only from an analysis output folder and narrowed by its filters.

``ReportData`` reads summary.json, manifest.json, timeline.parquet, peers.parquet,
connections.csv and pieces.csv (when present) and applies ``--torrent-filter`` (info
hash prefix, alias prefix, or name substring) and ``--from``/``--to`` (a window: charts
and per-torrent figures become sums of timeline.parquet over it; connections are those
overlapping it).  A filter that selects nothing is a ReportError, not an empty report.
The row builders return plain dicts the template formats; nothing here writes a file.

No pandas (see columns.py): the timeline and the peers are numpy columns, connections and
pieces are CSV rows (text) kept while the file is read only if the report can show them,
times are integer ns.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from analyzer.report.columns import Columns, CsvRows, ns_of, read_csv, read_parquet
from analyzer.report.options import ReportError, ReportOptions
from analyzer.report.shown import shown_connections, top_peers
from analyzer.timefmt import iso_ns, parse_iso_ns

TOP_PEERS = 10          # bars (and table rows) per torrent in the per-peer chart; the rest in one row
TORRENT_CHARTS = 20     # torrents (the largest by piece bytes) that get their own charts
# The columns of connections.csv and pieces.csv the report reads (a case can have millions of rows).
CONNECTION_COLUMNS = {
    "conn_id", "transport", "src_ip", "src_port", "dst_ip", "dst_port", "initiator_known", "category",
    "info_hash", "subject_side", "remote_ip", "remote_port", "downloaded_bytes", "uploaded_bytes",
    "peer_id_src", "peer_id_dst", "ext_handshake_src", "ext_handshake_dst", "first_ts", "last_ts",
    "first_block_file", "first_block_frame", "first_block_ts", "last_block_file", "last_block_frame",
    "last_block_ts"}
PIECE_COLUMNS = {"info_hash", "receiver", "senders", "status"}
TIMELINE_COLUMNS = ("bin_start", "bin_seconds", "info_hash", "direction", "bytes", "acked_bytes")
PEER_COLUMNS = ("info_hash", "remote_ip", "uploaded_bytes", "downloaded_bytes")
PEER_OPTIONAL = ("internal", "connections")


def hashes_of(torrents: list[dict]) -> set[str]:
    """The info hashes of summary torrent rows, aliases included."""
    return {h for t in torrents for h in (t["info_hash"], *t["info_hash_aliases"])}


def _announce_text(a: dict) -> str:
    def n(v):
        return "—" if v is None else f"{v:,}"
    return (f"{a['ts']} {a['event'] or '(no event)'}: uploaded {n(a['uploaded'])}, downloaded "
            f"{n(a['downloaded'])}, left {n(a['left'])}")


def _ns(text) -> int | None:
    """A time of summary.json as ns (None for none or not a time: such a row is outside any window)."""
    try:
        return parse_iso_ns(text) if text else None
    except ValueError:
        return None


def _le(a: int | None, b: int | None) -> bool:
    """a <= b, false when either is not a time (as pandas compares NaT)."""
    return a is not None and b is not None and a <= b


def in_window(text, start: int | None, end: int | None) -> bool:
    """A time of summary.json within [start, end] (either open); not a time: outside."""
    t = _ns(text)
    return (start is None or _le(start, t)) and (end is None or _le(t, end))


def _matches(t: dict, f: str) -> bool:
    return any(h.startswith(f) for h in (t["info_hash"], *t["info_hash_aliases"])) \
        or f in (t.get("name") or "").lower()


class ReportData:
    def __init__(self, folder: Path, torrent_filter: str | None = None, start: str | None = None,
                 end: str | None = None, options: ReportOptions | None = None):
        if options is None:
            options = ReportOptions(torrent_filter=torrent_filter, start=start, end=end)
        self.options = options
        self.folder = folder = Path(folder)
        self.summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        self.manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8")) \
            if (folder / "manifest.json").exists() else {}
        timeline = read_parquet(folder / "timeline.parquet", TIMELINE_COLUMNS)
        peers = read_parquet(folder / "peers.parquet", PEER_COLUMNS, PEER_OPTIONAL)
        if not (folder / "connections.csv").exists():
            raise FileNotFoundError(2, "No such file or directory", str(folder / "connections.csv"))
        self.start, self.end = options.start_ts, options.end_ts
        torrents = self.summary["torrents"]
        self.filtered = options.torrent_filter is not None
        if self.filtered:
            f = options.torrent_filter.strip().lower()
            torrents = [t for t in torrents if _matches(t, f)]
            if not torrents:
                raise ReportError(f"--torrent-filter {options.torrent_filter!r} matches no torrent of this "
                                  f"analysis ({len(self.summary['torrents'])} torrent(s): info hash prefix or "
                                  "part of the name)")
        self.torrents = torrents
        self.hashes = hashes = hashes_of(torrents)
        timeline = timeline.where(timeline.isin("info_hash", hashes))
        peers = peers.where(peers.isin("info_hash", hashes))
        if "internal" in peers:                  # other hosts of a network subject are not its peers
            peers = peers.where(~peers["internal"])
        self.peers = peers
        conns = read_csv(folder / "connections.csv", CONNECTION_COLUMNS,
                         lambda r: r.get("category") == "bittorrent" and r.get("info_hash") in hashes
                         and r.get("subject_side") in ("src", "dst"))
        first = ns_of([c["first_ts"] for c in conns], "connections.csv first_ts")
        last = ns_of([c["last_ts"] for c in conns], "connections.csv last_ts")
        for c, f, la in zip(conns, first.tolist(), last.tolist()):     # as the output files write times
            if len(c["first_ts"]) != 30 or len(c["last_ts"]) != 30:
                c["first_ts"], c["last_ts"] = iso_ns(f), iso_ns(la)
        keep = np.ones(len(conns), dtype=bool)
        if self.start is not None:
            timeline = timeline.where(timeline["bin_start"] + timeline["bin_seconds"] * 1_000_000_000 > self.start)
            keep &= last >= self.start
        if self.end is not None:
            timeline = timeline.where(timeline["bin_start"] <= self.end)
            keep &= first <= self.end
        self.timeline = timeline
        self.connections = CsvRows((c for c, k in zip(conns, keep) if k), conns.columns)
        self.connections_total = len(self.connections)
        self.windowed = self.start is not None or self.end is not None
        if self.windowed and not len(timeline) and not self.connections:
            span = [t for tr in torrents for t in (tr["first_seen"], tr["last_seen"]) if t]
            raise ReportError(f"--from/--to: no piece bytes and no connection of the subject in {options.start or '…'}"
                              f" to {options.end or '…'}"
                              + (f" (the selected torrents' traffic spans {min(span)} to {max(span)})"
                                 if span else ""))
        pieces = folder / "pieces.csv"
        # only verified pieces with senders are shown (identity.verified_per_address): the rest is not kept
        self.pieces = read_csv(pieces, PIECE_COLUMNS,
                               lambda r: r.get("status") == "verified" and r.get("senders", "") != ""
                               and r.get("info_hash") in hashes) if pieces.exists() else None

    def for_charts(self) -> ReportData:
        """A copy holding what the charts draw, for the chart process: of the connections those the
        connection chart shows (``connections_total`` keeps their number), no pieces."""
        import copy
        out = copy.copy(self)
        out.connections = CsvRows(shown_connections(self.connections), self.connections.columns)
        out.pieces = None
        return out

    # ------------------------------------------------------------------ per torrent
    def torrent_rows(self) -> list[dict]:
        """One dict per torrent: the summary row, within a window the window's sums of timeline.parquet
        (verification then unknown), and the upload/download ratio."""
        rows = []
        for t in self.torrents:
            row = dict(t)
            if self.windowed:
                mine = self.timeline.isin("info_hash", hashes_of([t]))
                for d in ("downloaded", "uploaded"):
                    rows_d = mine & (self.timeline["direction"] == d)
                    row[f"{d}_bytes"] = int(self.timeline["bytes"][rows_d].sum())
                    row[f"{d}_acked_bytes"] = int(self.timeline["acked_bytes"][rows_d].sum())
                    row[f"verified_{d}_bytes"] = None
            down = row["downloaded_bytes"] or 0
            row["ratio"] = (row["uploaded_bytes"] or 0) / down if down else None
            rows.append(row)
        return rows

    def table(self) -> list[dict]:
        """The torrent rows with the columns of the totals chart."""
        cols = ["info_hash", "name", "downloaded_bytes", "uploaded_bytes", "verified_downloaded_bytes",
                "verified_uploaded_bytes"]
        return [{k: r.get(k) for k in cols} for r in self.torrent_rows()]

    def charted_torrents(self, limit: int = TORRENT_CHARTS) -> list[dict]:
        """The torrents that get their own section: the `limit` largest by piece bytes, in table order."""
        size = {t["info_hash"]: (t.get("downloaded_bytes") or 0) + (t.get("uploaded_bytes") or 0)
                for t in self.torrents}
        keep = set(sorted(size, key=lambda h: (-size[h], h))[:limit])
        return [t for t in self.torrents if t["info_hash"] in keep]

    def peer_rows(self, torrent: dict, top_n: int = TOP_PEERS) -> list[dict]:
        """The rows of the torrent's per-peer chart (whole capture), for the table beside it."""
        return top_peers(self.peers_of(torrent), top_n)

    def peers_of(self, torrent: dict) -> Columns:
        """peers.parquet rows of the torrent (its info hashes)."""
        return self.peers.where(self.peers.isin("info_hash", hashes_of([torrent])))

    def timeline_of(self, torrent: dict) -> Columns:
        """timeline.parquet rows of the torrent (its info hashes) in the window."""
        return self.timeline.where(self.timeline.isin("info_hash", hashes_of([torrent])))

    # ------------------------------------------------------------------ other evidence
    def participation(self) -> list[dict]:
        """Info hashes the subject named outside peer connections: its tracker announces and
        scrapes, DHT get_peers/announce_peer, Local Service Discovery announces; one row per info
        hash and mechanism, with counts and first/last time, and whether the summary table has it."""
        s = self.summary
        known = hashes_of(s["torrents"])
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
            out = [r for r in out if (self.end is None or _le(_ns(r["first_ts"]), self.end))
                   and (self.start is None or _le(self.start, _ns(r["last_ts"])))]
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
        out.append(f"Encrypted (MSE) connections of the subject: {e.get('connections', 0):,}, carrying "
                   f"{e.get('downloaded_bytes', 0):,} bytes to it and {e.get('uploaded_bytes', 0):,} from it "
                   "after the key exchange; not attributable to any torrent"
                   + (f" ({e.get('with_bittorrent_context', 0):,} of them to an address and port shown to be "
                      "BitTorrent by plaintext in the capture)." if e.get("connections") else "."))
        u = self.summary.get("unattributed", {})
        out.append(f"BitTorrent connections of the subject without a captured handshake and not attributed by "
                   f"piece hashes: {u.get('connections', 0):,}, with {u.get('downloaded_bytes', 0):,} piece bytes "
                   f"downloaded and {u.get('uploaded_bytes', 0):,} uploaded.")
        silent = acc.get("connections_finished_after_silence", 0)
        if silent:
            out.append(f"Connections silent for more than 10 minutes of capture time and closed by the tool: "
                       f"{silent:,}; {acc.get('connections_continued_after_silence', 0):,} of them carried "
                       "BitTorrent messages again later, counted as connections seen mid-stream and attributed to "
                       "the connection they continue (same endpoints; attribution 'same_connection').")
        dmg = acc["capture_damage"]
        out.append(f"Capture damage: {dmg['unreadable_files']:,} unreadable file(s), {dmg['damaged_bytes']:,} "
                   f"damaged and {dmg['truncated_bytes']:,} truncated bytes; undecodable frames: "
                   f"{acc['categories']['undecodable']['frames']:,}.")
        subj = self.summary["subject"]
        out.append(f"Subject: {', '.join(self.summary['local']) or '(none)'} — {subj['basis']}.")
        out.extend(self.summary.get("notes", []))
        return out

    # ------------------------------------------------------------------ the subject
    def subject_state(self) -> dict:
        """What the cover must say about the subject spec: inferred, ambiguous, matched no traffic."""
        subj = self.summary["subject"]
        return {"specs": self.summary["local"], "basis": subj.get("basis"), "inferred": bool(subj.get("inferred")),
                "ambiguous": bool(subj.get("ambiguous")), "candidates": subj.get("candidates") or [],
                "unmatched": subj.get("matched") is False}

    def traffic_span(self) -> tuple[str | None, str | None]:
        """First and last frame of all inputs (summary.json inputs)."""
        firsts = [i["first_ts"] for i in self.summary["inputs"] if i.get("first_ts")]
        lasts = [i["last_ts"] for i in self.summary["inputs"] if i.get("last_ts")]
        return (min(firsts) if firsts else None), (max(lasts) if lasts else None)
