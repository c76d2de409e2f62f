"""Chart functions on small tables: what they draw matches the table they are given."""
from __future__ import annotations

import pytest
from matplotlib.figure import Figure

from analyzer.report import charts
from analyzer.report.columns import Columns
from analyzer.report.shown import shown_connections
from analyzer.timefmt import iso_ns, parse_iso_ns

TIMELINE = ["bin_start", "bin_seconds", "info_hash", "direction", "transport", "bytes", "acked_bytes"]


def ts(s) -> int:
    """'2026-01-01 10:00:00' (UTC) as ns."""
    return parse_iso_ns(s + "Z")


def table(rows, names) -> Columns:
    return Columns({n: [r[i] for r in rows] for i, n in enumerate(names)})


@pytest.fixture
def timeline():
    rows = [(ts("2026-01-01 10:00:00"), 1, "aa" * 20, "downloaded", "tcp", 1000, 1000),
            (ts("2026-01-01 10:00:01"), 1, "aa" * 20, "downloaded", "utp", 500, 400),
            (ts("2026-01-01 10:00:02"), 1, "aa" * 20, "uploaded", "tcp", 300, 300)]
    return table(rows, TIMELINE)


def texts(fig: Figure) -> str:
    return " ".join(t.get_text() for ax in fig.axes for t in [*ax.texts, ax.title, ax.xaxis.label, ax.yaxis.label]) \
        + " " + " ".join(t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()) \
        + " " + " ".join(t.get_text() for leg in fig.legends for t in leg.get_texts())


def test_cumulative_transfer_ends_at_the_totals(timeline):
    fig = charts.cumulative_transfer(timeline, "t")
    [ax] = fig.axes
    ends = sorted(line.get_ydata()[-1] for line in ax.lines)
    assert ends == [300, 1500]
    assert "Time (UTC)" in texts(fig)
    assert "1,500 B" in texts(fig) and "300 B" in texts(fig)
    styles = {line.get_linestyle() for line in ax.lines}
    assert len(styles) == 2                        # told apart without colour
    assert "once" in fig.bt_caption


def test_uploads_per_peer_groups_the_rest():
    peers = Columns({"remote_ip": [f"10.0.0.{i}" for i in range(15)], "uploaded_bytes": list(range(100, 1600, 100)),
                     "downloaded_bytes": [0] * 15})
    fig = charts.uploads_per_peer(peers, "t", top_n=10)
    [ax] = fig.axes
    widths = [p.get_width() for p in ax.patches]
    assert len(widths) == 11 and sum(widths) == sum(range(100, 1600, 100))
    assert "5 other peers" in [t.get_text() for t in ax.get_yticklabels()]


def test_connection_timeline_marks_transport_and_flow():
    conns = [dict(first_ts="2026-01-01T10:00:00.000000000Z", last_ts="2026-01-01T10:00:10.000000000Z",
                  remote_ip="10.0.0.1", remote_port="6881", transport="tcp", downloaded_bytes="100", uploaded_bytes="0"),
             dict(first_ts="2026-01-01T10:00:05.000000000Z", last_ts="2026-01-01T10:00:20.000000000Z",
                  remote_ip="10.0.0.2", remote_port="6881", transport="utp", downloaded_bytes="0", uploaded_bytes="50")]
    fig = charts.connection_timeline(conns, "c")
    [ax] = fig.axes
    bars = [p for p in ax.patches]
    assert len(bars) == 2
    assert bars[0].get_hatch() in ("", None) and "xx" in bars[1].get_hatch()
    assert "uploaded only" in texts(fig)


def test_connection_timeline_keeps_the_largest_connections():
    n = 100
    conns = [dict(first_ts=iso_ns(ts("2026-01-01 10:00:00") + i * 10**9), last_ts="2026-01-01T10:05:00.000000000Z",
                  remote_ip=f"10.0.{i}.1", remote_port="6881", transport="tcp", downloaded_bytes=str(i),
                  uploaded_bytes="0")
             for i in range(n)]
    fig = charts.connection_timeline(conns, "c", max_rows=10)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == [f"10.0.{i}.1:6881 (tcp)" for i in range(90, 100)]
    assert "10 of 100 connections" in fig.bt_caption
    # the chart process gets the rows shown and their total only (ReportData.for_charts): the same chart
    shown = shown_connections(conns, 10)
    assert shown_connections(shown, 10) == shown
    again = charts.connection_timeline(shown, "c", max_rows=10, total=len(conns))
    assert again.bt_caption == fig.bt_caption and again.get_size_inches().tolist() == fig.get_size_inches().tolist()
    assert [t.get_text() for t in again.axes[0].get_yticklabels()] == labels
    assert [p.get_width() for p in again.axes[0].patches] == [p.get_width() for p in fig.axes[0].patches]


def test_torrent_totals_and_verified_part():
    torrents = [{"info_hash": "aa" * 20, "name": "x", "downloaded_bytes": 2000, "uploaded_bytes": 500,
                 "verified_downloaded_bytes": 1500, "verified_uploaded_bytes": 500}]
    fig = charts.torrent_totals(torrents, "t")
    heights = sorted(p.get_height() for p in fig.axes[0].patches)
    assert heights == [500, 500, 1500, 2000]
    assert "2,000 B" in texts(fig) and "verified" in texts(fig)


def _stairs(fig):
    from matplotlib.patches import StepPatch
    return [p for p in fig.axes[0].patches if isinstance(p, StepPatch)]


def test_throughput_per_second_with_idle_bins_at_zero():
    rows = [(ts("2026-01-01 10:00:00"), 2, "aa" * 20, "downloaded", "tcp", 1000, 1000),
            (ts("2026-01-01 10:00:06"), 2, "aa" * 20, "downloaded", "utp", 500, 400),
            (ts("2026-01-01 10:00:02"), 2, "aa" * 20, "uploaded", "tcp", 300, 300)]
    tl = table(rows, TIMELINE)
    fig = charts.throughput(tl, "t")
    down, up = _stairs(fig)
    assert list(down.get_data().values) == [500, 0, 0, 250]      # the idle bins drawn at zero, not bridged
    assert list(up.get_data().values) == [0, 150, 0, 0]
    assert len(down.get_data().edges) == 5
    assert down.get_linestyle() != up.get_linestyle()
    assert "2-second bins" in fig.bt_caption


def test_long_timelines_are_drawn_with_coarser_bins_and_the_same_totals():
    n = 3 * charts.MAX_POINTS + 7
    tl = Columns({"bin_start": [ts("2026-01-01 00:00:00") + i * 10**9 for i in range(n)], "bin_seconds": [1] * n,
                  "info_hash": ["aa" * 20] * n, "direction": ["downloaded"] * n, "transport": ["tcp"] * n,
                  "bytes": list(range(n)), "acked_bytes": [0] * n})
    fig = charts.throughput(tl, "t")
    [down] = _stairs(fig)
    width = int(fig.bt_caption.split("over ")[1].split("-second")[0])
    assert width == 4 and len(down.get_data().values) <= charts.MAX_POINTS
    assert down.get_data().values.sum() * width == sum(range(n))
    cum = charts.cumulative_transfer(tl, "t")
    assert cum.axes[0].lines[0].get_ydata()[-1] == sum(range(n))


def test_top_peers_sums_each_address_and_ranks_ties_by_the_other_direction_then_address():
    peers = Columns({"remote_ip": ["10.0.0.2", "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"],
                     "uploaded_bytes": [100, 300, 200, 300, 5], "downloaded_bytes": [1, 0, 1, 0, 9],
                     "connections": [1, 1, 2, 1, 1]})
    rows = charts.top_peers(peers, top_n=3)
    assert rows == [{"remote_ip": "10.0.0.2", "uploaded_bytes": 300, "downloaded_bytes": 2, "connections": 3},
                    {"remote_ip": "10.0.0.1", "uploaded_bytes": 300, "downloaded_bytes": 0, "connections": 1},
                    {"remote_ip": "10.0.0.3", "uploaded_bytes": 300, "downloaded_bytes": 0, "connections": 1},
                    {"remote_ip": "1 other peers", "uploaded_bytes": 5, "downloaded_bytes": 9, "connections": 1}]
    # without a connections column (older peers.parquet): counted as 0
    no_conn = Columns({k: peers[k] for k in ("remote_ip", "uploaded_bytes", "downloaded_bytes")})
    assert {r["connections"] for r in charts.top_peers(no_conn)} == {0}
