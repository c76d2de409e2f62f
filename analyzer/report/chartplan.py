"""The report's charts before any is drawn: which, in what order, under what key, caption and size.

No matplotlib here (numpy only).  The document's process plans the charts the moment it has read
the analysis folder and renders the skeleton from the plan (figures.py), so the PDF process lays
the pages out while the chart process is still importing matplotlib or drawing; the chart
process draws the same plan (``drawing.make_charts``).  Each chart function of ``charts`` and
``client_state`` takes its caption and size from the functions here, so the figure it returns (in
a notebook too) has the caption and the size the plan says, and the plan adds only what belongs
to the report (which torrents are shown, a time window).

Both processes plan from their own copy of the data (the chart process gets
``ReportData.for_charts()``: the connections already narrowed to those the chart shows, their
number kept), and plan the same charts: tests compare the two, and each figure with its plan.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

WIDTH, HEIGHT = 8.0, 4.5            # inches: every chart but the connections' and a busy client-state chart
MAX_POINTS = 2000                   # bins drawn at most by a time chart (see grid)
NS = 1_000_000_000


# ---------------------------------------------------------------------- time bins
def grid(timeline) -> tuple[int, np.ndarray]:
    """The bins a time chart draws: from the first to the last bin of the table, every bin, coarsened to
    a whole multiple of the table's bin width so that at most MAX_POINTS remain (SVGs stay small and
    lines stay readable for captures spanning weeks).  (bin width in s, bin edges in ns)"""
    bins = int(timeline["bin_seconds"][0])
    first, last = int(timeline["bin_start"].min()), int(timeline["bin_start"].max())
    span = (last - first) // NS + bins
    width = bins * max(1, -(-span // (bins * MAX_POINTS)))
    return width, first + np.arange(-(-span // width) + 1, dtype=np.int64) * (width * NS)


def drawn_bin_width(timeline) -> int:
    """The bin width in seconds a time chart of ``timeline`` draws (1 for an empty one)."""
    return grid(timeline)[0] if len(timeline) else 1


# ---------------------------------------------------------------------- captions and sizes
def cumulative_caption(width: int) -> str:
    return ("Cumulative piece (block) bytes on the wire from the subject's side: downloaded = blocks sent to the "
            "subject, uploaded = blocks the subject sent; each byte counted once however often retransmitted, "
            f"summed per {width}-second bin by the time of the frame that delivered it and plotted at the bin's "
            "end. Bytes lost in capture gaps are not counted.")


def uploads_per_peer_caption(top_n: int, column: str) -> str:
    what = "uploaded" if column == "uploaded_bytes" else "downloaded"
    return (f"Piece (block) bytes the subject {what} per remote address, all connections and transports "
            f"together; the {top_n} largest shown, the others summed in one bar.")


def connection_size(rows: int) -> tuple[float, float]:
    """The connection chart's size in inches for ``rows`` bars."""
    return WIDTH, max(HEIGHT, 1.2 + 0.18 * rows)


def connection_caption(total: int, max_rows: int) -> str:
    shown = "" if total <= max_rows else (f" Shown: the {max_rows} of {total:,} connections with the most piece "
                                          "bytes; connections.csv lists all of them.")
    return ("Each bar spans a connection of the subject from its first to its last captured frame. Fill and "
            "pattern give the direction of piece bytes (downloaded by the subject, uploaded by it, both, none); "
            "cross-hatching marks uTP connections." + shown)


TOTALS_CAPTION = ("Per torrent, piece bytes downloaded and uploaded by the subject (outlined bars) and, where the "
                  "torrent's metadata was available, the part in pieces that verified against its hashes (narrow "
                  "solid bars).")


def throughput_caption(width: int) -> str:
    return (f"Piece (block) bytes per second from the subject's side, averaged over {width}-second bins from the "
            "first to the last bin with piece bytes; a bin with none seen is drawn at zero.")


def _counter(v) -> float:
    """A counter as a number for ranking (not one: 0)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return 0.0
    return 0.0 if f != f else f


def client_state_records(rows, max_records: int) -> tuple[list, int]:
    """(the records the client-state chart draws, how many were reconciled): those with a verdict, at most
    ``max_records`` with the largest counters (ties in file order), in that order."""
    records = [r for r in rows if r.get("uploaded_verdict") is not None and str(r["uploaded_verdict"]) != ""
               and str(r["uploaded_verdict"]) != "not_matched"]
    total = len(records)
    if total > max_records:
        size = [max(_counter(r["uploaded_compared_bytes"]), _counter(r["downloaded_compared_bytes"]))
                for r in records]
        records = [records[i] for i in sorted(range(total), key=lambda i: -size[i])[:max_records]]
    return records, total


def client_state_size(records: int) -> tuple[float, float]:
    return WIDTH, HEIGHT + (0.6 if records > 6 else 0)


def client_state_caption(total: int, max_records: int) -> str:
    shown = "" if total <= max_records else (f" Shown: the {max_records} of {total:,} records with the largest "
                                             "counters; client_state.csv lists all of them.")
    return ("Per torrent record of a client state file: the client's lifetime counters (outlined, hatched bars) "
            "against the piece bytes the capture shows from the subject's side for the same torrent (solid bars; "
            "where the capture gives a range, the bar shows the least the client must have counted and a thin "
            "line rises to the most the capture accounts for). Above each pair: = consistent, ✗ contradiction "
            "(the capture shows more than the lifetime counter), + the counter is larger (possible transfers "
            "outside the capture window), ? not comparable, – not recorded." + shown)


# ---------------------------------------------------------------------- the plan
@dataclass
class Planned:
    """One chart of the report: its key (file stem), caption and size, and how it is drawn: the chart
    function's name (``kind``) and its arguments."""
    key: str
    caption: str
    width_in: float
    height_in: float
    kind: str
    args: tuple

    def chart(self):
        """The document's Chart (no figure) of this plan."""
        from analyzer.report.figures import Chart
        return Chart(self.key, self.caption, self.width_in, self.height_in)


CLIENT_STATE_RECORDS = 20           # records in the client-state chart


def plan(data) -> list[Planned]:
    """The report's charts for ``data`` (a ReportData, or its ``for_charts()`` copy), in document order."""
    from analyzer.report.data import TOP_PEERS
    from analyzer.report.shown import CONNECTION_CHART_ROWS, shown_connections
    out = []
    table = data.table()
    charted = data.charted_torrents()
    if len(table):
        shown = {t["info_hash"] for t in charted}
        caption = TOTALS_CAPTION
        if len(shown) < len(table):
            caption += (f" Shown: the {len(shown)} of {len(table):,} torrents with the most piece bytes; "
                        "the summary tables list all of them.")
        out.append(Planned("torrent_totals", caption, WIDTH, HEIGHT, "torrent_totals",
                           ([r for r in table if r["info_hash"] in shown], "Piece bytes per torrent")))
    # a torrent's charts are named by its info hash's first 12 hex digits; torrents that share them (two
    # info hashes crafted alike) are named by the whole hash, so that every chart has a file of its own
    prefixes = Counter(t["info_hash"][:12] for t in charted)
    for t in charted:
        label = t.get("name") or t["info_hash"]
        stem = t["info_hash"][:12] if prefixes[t["info_hash"][:12]] == 1 else t["info_hash"]
        timeline = data.timeline_of(t)
        out.append(Planned(f"cumulative_{stem}", cumulative_caption(drawn_bin_width(timeline)),
                           WIDTH, HEIGHT, "cumulative_transfer", (timeline, f"Cumulative piece bytes — {label}")))
        caption = uploads_per_peer_caption(TOP_PEERS, "uploaded_bytes")
        if data.windowed:
            caption += " Per-peer figures are for the whole capture, not the time window."
        out.append(Planned(f"uploads_per_peer_{stem}", caption, WIDTH, HEIGHT, "uploads_per_peer",
                           (data.peers_of(t), f"Piece bytes uploaded per peer — {label}", TOP_PEERS)))
    if len(data.connections):
        shown = shown_connections(data.connections)
        out.append(Planned("connections", connection_caption(data.connections_total, CONNECTION_CHART_ROWS),
                           *connection_size(len(shown)), "connection_timeline",
                           (shown, "Connections of the subject", CONNECTION_CHART_ROWS, data.connections_total)))
    if len(data.timeline):
        out.append(Planned("throughput", throughput_caption(drawn_bin_width(data.timeline)), WIDTH, HEIGHT,
                           "throughput", (data.timeline, "Throughput")))
    state_csv = data.folder / "client_state.csv"
    if data.summary.get("client_state") and state_csv.exists():
        from analyzer.report.columns import read_csv
        rows = read_csv(state_csv)
        if any(r.get("uploaded_verdict") or r.get("downloaded_verdict") for r in rows):
            records, total = client_state_records(rows, CLIENT_STATE_RECORDS)
            out.append(Planned("client_state", client_state_caption(total, CLIENT_STATE_RECORDS),
                               *client_state_size(len(records)), "client_state_chart",
                               (rows, "Lifetime counters against wire figures per torrent", CLIENT_STATE_RECORDS)))
    return out
