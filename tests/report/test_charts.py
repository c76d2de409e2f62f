"""Chart functions on small DataFrames: what they draw matches the table they are given."""
from __future__ import annotations

import pandas as pd
import pytest
from matplotlib.figure import Figure

from analyzer.report import charts


def ts(s):
    return pd.Timestamp(s, tz="UTC")


@pytest.fixture
def timeline():
    rows = [(ts("2026-01-01 10:00:00"), 1, "aa" * 20, "downloaded", "tcp", 1000, 1000),
            (ts("2026-01-01 10:00:01"), 1, "aa" * 20, "downloaded", "utp", 500, 400),
            (ts("2026-01-01 10:00:02"), 1, "aa" * 20, "uploaded", "tcp", 300, 300)]
    return pd.DataFrame(rows, columns=["bin_start", "bin_seconds", "info_hash", "direction", "transport", "bytes",
                                       "acked_bytes"])


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
    peers = pd.DataFrame({"remote_ip": [f"10.0.0.{i}" for i in range(15)], "uploaded_bytes": list(range(100, 1600, 100)),
                          "downloaded_bytes": [0] * 15})
    fig = charts.uploads_per_peer(peers, "t", top_n=10)
    [ax] = fig.axes
    widths = [p.get_width() for p in ax.patches]
    assert len(widths) == 11 and sum(widths) == sum(range(100, 1600, 100))
    assert "5 other peers" in [t.get_text() for t in ax.get_yticklabels()]


def test_connection_timeline_marks_transport_and_flow():
    conns = pd.DataFrame({
        "first_ts": [ts("2026-01-01 10:00:00"), ts("2026-01-01 10:00:05")],
        "last_ts": [ts("2026-01-01 10:00:10"), ts("2026-01-01 10:00:20")],
        "remote_ip": ["10.0.0.1", "10.0.0.2"], "remote_port": [6881, 6881], "transport": ["tcp", "utp"],
        "downloaded_bytes": [100, 0], "uploaded_bytes": [0, 50]})
    fig = charts.connection_timeline(conns, "c")
    [ax] = fig.axes
    bars = [p for p in ax.patches]
    assert len(bars) == 2
    assert bars[0].get_hatch() in ("", None) and "xx" in bars[1].get_hatch()
    assert "uploaded only" in texts(fig)


def test_connection_timeline_keeps_the_largest_connections():
    n = 100
    conns = pd.DataFrame({
        "first_ts": [ts("2026-01-01 10:00:00") + pd.Timedelta(seconds=i) for i in range(n)],
        "last_ts": [ts("2026-01-01 10:05:00")] * n,
        "remote_ip": [f"10.0.{i}.1" for i in range(n)], "remote_port": ["6881"] * n, "transport": ["tcp"] * n,
        "downloaded_bytes": [str(i) for i in range(n)], "uploaded_bytes": ["0"] * n})
    fig = charts.connection_timeline(conns, "c", max_rows=10)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == [f"10.0.{i}.1:6881 (tcp)" for i in range(90, 100)]
    assert "10 of 100 connections" in fig.bt_caption


def test_torrent_totals_and_verified_part():
    torrents = pd.DataFrame({"info_hash": ["aa" * 20], "name": ["x"], "downloaded_bytes": [2000],
                             "uploaded_bytes": [500], "verified_downloaded_bytes": [1500],
                             "verified_uploaded_bytes": [500]})
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
    tl = pd.DataFrame(rows, columns=["bin_start", "bin_seconds", "info_hash", "direction", "transport", "bytes",
                                     "acked_bytes"])
    fig = charts.throughput(tl, "t")
    down, up = _stairs(fig)
    assert list(down.get_data().values) == [500, 0, 0, 250]      # the idle bins drawn at zero, not bridged
    assert list(up.get_data().values) == [0, 150, 0, 0]
    assert len(down.get_data().edges) == 5
    assert down.get_linestyle() != up.get_linestyle()
    assert "2-second bins" in fig.bt_caption


def test_long_timelines_are_drawn_with_coarser_bins_and_the_same_totals():
    n = 3 * charts.MAX_POINTS + 7
    tl = pd.DataFrame({"bin_start": pd.date_range("2026-01-01", periods=n, freq="s", tz="UTC"), "bin_seconds": 1,
                       "info_hash": "aa" * 20, "direction": "downloaded", "transport": "tcp",
                       "bytes": range(n), "acked_bytes": 0})
    fig = charts.throughput(tl, "t")
    [down] = _stairs(fig)
    width = int(fig.bt_caption.split("over ")[1].split("-second")[0])
    assert width == 4 and len(down.get_data().values) <= charts.MAX_POINTS
    assert down.get_data().values.sum() * width == sum(range(n))
    cum = charts.cumulative_transfer(tl, "t")
    assert cum.axes[0].lines[0].get_ydata()[-1] == sum(range(n))
