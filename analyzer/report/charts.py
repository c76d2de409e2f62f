"""Charts for expert-witness reports (matplotlib, Agg; no pyplot global state).

Each function takes the rows it draws (``columns.Columns`` of timeline.parquet
and peers.parquet, CSV rows of connections.csv, dicts of the torrent table)
and returns a ``Figure`` whose ``bt_caption`` says what is counted and how
(pandas DataFrames of the same files, as a notebook reads them, are taken too).  They are
meant to print in black and white: every series differs by line style,
marker or hatch pattern as well as by grey level; time axes are UTC and say
so; totals are given in decimal and binary units; no chart shows a number
the report's tables do not.

Times are integer ns (UTC), given to matplotlib as numpy datetime64: bin edges floored to
microseconds (what ``dates.date2num`` makes of an array of datetimes), a connection's ends
with their nanoseconds.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from analyzer.report import chartplan  # noqa: E402
from analyzer.report.chartplan import HEIGHT, MAX_POINTS, NS, WIDTH  # noqa: E402, F401
from analyzer.report.columns import Columns, as_columns, as_rows  # noqa: E402
from analyzer.report.shown import CONNECTION_CHART_ROWS, shown_connections  # noqa: E402
from analyzer.report.shown import top_peers  # noqa: E402, F401  (also a name of this module: notebooks)
from analyzer.timefmt import parse_iso_ns  # noqa: E402
from analyzer.units import format_bytes  # noqa: E402

matplotlib.rcParams.update({
    "svg.hashsalt": "bt-analyzer",      # deterministic SVG ids
    "svg.fonttype": "none",             # text as text: searchable in the PDF, and 2x faster to draw there
    "font.size": 9,
    "axes.grid": True,
    "grid.color": "0.85",
    "axes.prop_cycle": matplotlib.cycler(color=["0.1", "0.45"]),
})

STYLE = {   # direction -> line style, marker, grey, hatch
    "downloaded": {"linestyle": "-", "marker": "o", "color": "0.1", "hatch": ""},
    "uploaded": {"linestyle": "--", "marker": "s", "color": "0.5", "hatch": "//"},
}


def _decimal(value, _pos=None) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(value) >= size:
            return f"{value / size:g} {unit}"
    return f"{value:g} B"


def _figure() -> tuple[Figure, object]:
    fig = Figure(figsize=(WIDTH, HEIGHT), dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def _time_axis(ax) -> None:
    locator = mdates.AutoDateLocator(tz="UTC")
    ax.xaxis.set_major_locator(locator)
    # Every tick reads as a full clock time (no bare "50" for 17:52:50); the date sits in the offset.
    fmts = ["%Y", "%Y-%m", "%Y-%m-%d", "%H:%M", "%H:%M:%S", "%H:%M:%S.%f"]
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(
        locator, tz="UTC", formats=fmts, zero_formats=fmts,
        offset_formats=["", "%Y", "%Y-%m", "%Y-%m-%d", "%Y-%m-%d", "%Y-%m-%d"]))
    ax.set_xlabel("Time (UTC)")


def _caption(fig: Figure, text: str) -> Figure:
    fig.bt_caption = text
    return fig


def _short(h: str) -> str:
    return h[:12] + "…"


def _dates(ns) -> np.ndarray:
    """Integer ns (UTC) as matplotlib draws a datetime: microseconds, floored."""
    return (np.asarray(ns, dtype=np.int64) // 1000).astype("datetime64[us]")


def _seconds(ns: int) -> float:
    """A duration in ns as seconds (float), as a duration's total_seconds() gives it."""
    whole, rest = divmod(ns, NS)
    return whole + rest / NS


_grid = chartplan.grid      # (the bins a time chart draws: the plan needs them for its captions)


def _per_bin(rows: Columns, width: int, edges: np.ndarray) -> np.ndarray:
    """Bytes per drawn bin (int64), by the bin each row's bin_start falls in."""
    slot = (rows["bin_start"] - edges[0]) // (width * NS)
    out = np.zeros(len(edges) - 1, dtype=np.int64)
    inside = slot < len(out)
    np.add.at(out, slot[inside], rows["bytes"][inside])
    return out


def _binned(timeline: Columns) -> tuple[int, np.ndarray | None, dict]:
    """(bin width drawn, bin edges in ns, {direction: (its rows, bytes per drawn bin)}) for the
    directions present in the timeline."""
    if not len(timeline):
        return 1, None, {}
    width, edges = _grid(timeline)
    out = {}
    for direction in ("downloaded", "uploaded"):
        rows = timeline.where(timeline["direction"] == direction)
        if len(rows):
            out[direction] = (rows, _per_bin(rows, width, edges))
    return width, edges, out


def cumulative_transfer(timeline: Columns, title: str) -> Figure:
    """1. Cumulative bytes downloaded and uploaded by the subject over time (one torrent's rows)."""
    fig, ax = _figure()
    width, edges, per_direction = _binned(as_columns(timeline))
    for direction, (rows, per_bin) in per_direction.items():
        total = int(rows["bytes"].sum())
        s = STYLE[direction]
        # The running total at each bin's end: 0 at the first edge, the table's total at the last.
        cum = [0, *per_bin.cumsum().tolist()]
        ax.plot(_dates(edges), cum, linestyle=s["linestyle"], color=s["color"], marker=s["marker"],
                markevery=max(1, len(cum) // 12), markersize=4,
                label=f"{direction}: {total:,} B = {format_bytes(total)}")
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(FuncFormatter(_decimal))
    ax.set_ylabel("Cumulative piece bytes")
    ax.set_title(title)
    _time_axis(ax)
    if ax.lines:
        ax.legend(loc="upper left")
    return _caption(fig, chartplan.cumulative_caption(width))


def uploads_per_peer(peers: Columns, title: str, top_n: int = 10, column: str = "uploaded_bytes") -> Figure:
    """2. Bytes uploaded to each remote peer (top N, the rest grouped)."""
    fig, ax = _figure()
    rows = top_peers(peers, top_n, column)
    labels = [r["remote_ip"] for r in rows]
    values = [r[column] for r in rows]
    y = list(range(len(values)))[::-1]
    ax.barh(y, values, color="0.8", edgecolor="0.1", hatch="//")
    for yy, v in zip(y, values):
        ax.text(v, yy, f" {v:,} B", va="center", fontsize=8)
    ax.set_yticks(y, labels)
    ax.xaxis.set_major_formatter(FuncFormatter(_decimal))
    what = "uploaded to" if column == "uploaded_bytes" else "downloaded from"
    ax.set_xlabel(f"Piece bytes {what} the peer")
    ax.set_title(title)
    if not any(values):
        ax.text(0.5, 0.5, f"no piece bytes {what} any peer", transform=ax.transAxes, ha="center")
    return _caption(fig, chartplan.uploads_per_peer_caption(top_n, column))


def connection_timeline(connections: list[dict], title: str, max_rows: int = CONNECTION_CHART_ROWS,
                        total: int | None = None) -> Figure:
    """3. One bar per connection from its first to its last frame, by transport and direction of piece flow.

    ``connections``: rows of connections.csv (text).  At most max_rows bars (a case can have tens of
    thousands of connections): those with the most piece bytes, in order of their first frame
    (shown.shown_connections); the caption says how many were left out.  ``total``: the number of
    connections when ``connections`` are those already chosen to be shown (the chart process gets no more)."""
    connections = as_rows(connections)
    total = len(connections) if total is None else total
    connections = shown_connections(connections, max_rows)
    fig = Figure(figsize=chartplan.connection_size(len(connections)), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    flows = {"downloaded only": ("0.2", ""), "uploaded only": ("1.0", "//"), "both": ("0.6", ".."),
             "no piece bytes": ("1.0", "")}
    hatch_transport = {"tcp": "", "utp": "xx"}
    for i, c in enumerate(connections):
        start, end = parse_iso_ns(c["first_ts"]), parse_iso_ns(c["last_ts"])
        down, up = int(c.get("downloaded_bytes") or 0), int(c.get("uploaded_bytes") or 0)
        flow = "both" if down and up else "downloaded only" if down else "uploaded only" if up else "no piece bytes"
        face, hatch = flows[flow]
        width = max(_seconds(end - start), 0.001) / 86400
        ax.barh(i, width, left=mdates.date2num(np.datetime64(start, "ns")), height=0.7, color=face, edgecolor="0.0",
                hatch=hatch + hatch_transport.get(c["transport"], ""),
                linestyle=":" if flow == "no piece bytes" else "-")
    ax.set_yticks(range(len(connections)),
                  [f"{c['remote_ip']}:{c['remote_port']} ({c['transport']})" for c in connections],
                  fontsize=7)
    ax.invert_yaxis()
    ax.xaxis_date(tz="UTC")
    _time_axis(ax)
    ax.set_title(title)
    handles = [Patch(facecolor=f, edgecolor="0", hatch=h, label=k) for k, (f, h) in flows.items()]
    handles.append(Patch(facecolor="1", edgecolor="0", hatch="xx", label="uTP (TCP: no cross-hatch)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=5, fontsize=7)
    return _caption(fig, chartplan.connection_caption(total, max_rows))


def torrent_totals(torrents: list[dict], title: str) -> Figure:
    """4. Downloaded vs uploaded per torrent, with the verified part distinguished (rows of
    ReportData.table())."""
    fig, ax = _figure()
    torrents = as_rows(torrents)
    x = list(range(len(torrents)))
    w = 0.38
    for k, direction in enumerate(("downloaded", "uploaded")):
        s = STYLE[direction]
        totals = [int(t[f"{direction}_bytes"]) for t in torrents]
        xs = [i + (k - 0.5) * w for i in x]
        ax.bar(xs, totals, w, color="1.0", edgecolor=s["color"], hatch=s["hatch"] or "", label=f"{direction}")
        verified_col = f"verified_{direction}_bytes"
        if any(t.get(verified_col) is not None for t in torrents):
            verified = [int(t[verified_col]) if t[verified_col] is not None else 0 for t in torrents]
            ax.bar(xs, verified, w * 0.5, color=s["color"], label=f"{direction}, verified against the torrent")
        for xx, v in zip(xs, totals):
            ax.text(xx, v, f"{v:,} B\n{format_bytes(v)}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, [n if isinstance(n, str) and n else _short(h)
                      for n, h in ((t.get("name"), t["info_hash"]) for t in torrents)])
    top = max([int(t[c]) for c in ("downloaded_bytes", "uploaded_bytes") for t in torrents] + [1])
    ax.set_ylim(0, top * 1.25)
    ax.yaxis.set_major_formatter(FuncFormatter(_decimal))
    ax.set_ylabel("Piece bytes")
    ax.set_title(title)
    fig.legend(loc="outside lower center", ncols=2, fontsize=7)
    return _caption(fig, chartplan.TOTALS_CAPTION)


def throughput(timeline: Columns, title: str) -> Figure:
    """5. Piece bytes per second over time.

    Every bin from the first to the last is drawn, bins without piece bytes as zero (a straight line
    across an idle stretch would suggest traffic that was not there); long captures use coarser bins
    (see _grid) and the caption states the width actually drawn.
    """
    fig, ax = _figure()
    width, edges, per_direction = _binned(as_columns(timeline))
    for direction, (_, per_bin) in per_direction.items():
        rate = per_bin / width
        s = STYLE[direction]
        ax.stairs(rate, _dates(edges), baseline=None, linestyle=s["linestyle"], color=s["color"],
                  label=direction, linewidth=1.2)
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, p: _decimal(v) + "/s"))
    ax.set_ylabel("Piece bytes per second")
    ax.set_title(title)
    _time_axis(ax)
    ax.legend(loc="upper right")
    return _caption(fig, chartplan.throughput_caption(width))
