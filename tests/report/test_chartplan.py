"""The chart plan (analyzer/report/chartplan.py): the document's process plans, without matplotlib, the
charts the chart process draws: the same keys in the same order, each figure with its plan's size and
caption (the plan adds only what belongs to the report)."""
from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.report import chartplan
from analyzer.report.chartplan import plan
from analyzer.report.data import ReportData
from analyzer.report.drawing import make_charts
from analyzer.report.options import ReportOptions

pytestmark = pytest.mark.xdist_group("report")


@pytest.fixture(scope="session")
def folder(sample_folder):      # (tests/conftest.py)
    return sample_folder


REPO = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="module")
def busy(folder, tmp_path_factory):
    """The sample's folder with 150 connections (its own, again on other ports and times): more than the
    connection chart shows."""
    out = tmp_path_factory.mktemp("busy") / "out"
    shutil.copytree(folder, out)
    path = out / "connections.csv"
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames
        rows = [r for r in reader if r["category"] == "bittorrent" and r["subject_side"] in ("src", "dst")]
    more = []
    for i in range(150):
        r = dict(rows[i % len(rows)])
        r["remote_port"] = str(20000 + i)
        r["conn_id"] = str(1000 + i)
        r["downloaded_bytes"] = str(int(r["downloaded_bytes"] or 0) + i)
        more.append(r)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fields, lineterminator="\n")
        w.writeheader()
        w.writerows(more)
    return out


def specs(planned) -> list[tuple]:
    return [p.chart().spec() for p in planned]


def check_figures(data) -> list[tuple]:
    """Each chart drawn for ``data`` has its plan's size; its caption is where the plan's begins."""
    planned = plan(data)
    drawn = make_charts(data)
    assert [c.key for c in drawn] == [p.key for p in planned]
    for p, c in zip(planned, drawn):
        assert tuple(c.fig.get_size_inches().tolist()) == (p.width_in, p.height_in), p.key
        assert p.caption.startswith(c.fig.bt_caption), p.key
    return specs(planned)


def test_the_chart_process_plans_what_the_document_plans(folder, busy):
    for f in (folder, busy):
        data = ReportData(f)
        assert specs(plan(data)) == specs(plan(data.for_charts()))
        assert specs(plan(data)) == check_figures(data.for_charts())


def test_a_busy_case_plans_a_taller_connection_chart_and_says_what_it_left_out(busy):
    data = ReportData(busy)
    [conn] = [p for p in plan(data) if p.key == "connections"]
    assert data.connections_total == 150
    assert "Shown: the 60 of 150 connections" in conn.caption
    assert (conn.width_in, conn.height_in) == chartplan.connection_size(60) == (8.0, 1.2 + 0.18 * 60)
    check_figures(data.for_charts())


def test_a_window_is_said_in_the_per_peer_caption(folder):
    whole = ReportData(folder)
    start = whole.summary["torrents"][0]["first_seen"]
    data = ReportData(folder, options=ReportOptions(start=start))
    assert data.windowed
    peers = [p for p in plan(data) if p.key.startswith("uploads_per_peer_")]
    assert peers and all(p.caption.endswith("not the time window.") for p in peers)
    assert specs(plan(data)) == check_figures(data.for_charts())


def test_many_torrents_and_client_state_records(tmp_path):
    """A synthetic case: 25 torrents (20 get charts, the totals chart says so), 30 client state records (20
    drawn, in a taller chart)."""
    from analyzer.report.columns import Columns

    class Data:
        windowed = False

        def __init__(self, folder):
            self.folder = folder
            hashes = [f"{i:02x}" * 20 for i in range(25)]
            self.torrents = [{"info_hash": h, "name": f"t{i}", "downloaded_bytes": 1000 * (i + 1),
                              "uploaded_bytes": 10 * i, "verified_downloaded_bytes": None,
                              "verified_uploaded_bytes": None} for i, h in enumerate(hashes)]
            t0 = 1_767_225_600 * 10**9
            n = 5000                # a long timeline: drawn in coarser bins
            self.timeline = Columns({"bin_start": [t0 + (i % n) * 10**9 for i in range(2 * n)],
                                     "bin_seconds": [1] * (2 * n),
                                     "info_hash": [hashes[-1 - i % 2] for i in range(2 * n)],
                                     "direction": ["downloaded"] * (2 * n), "bytes": [1] * (2 * n),
                                     "acked_bytes": [1] * (2 * n)})
            self.peers = Columns({"info_hash": hashes[-2:], "remote_ip": ["10.0.0.1", "10.0.0.2"],
                                  "uploaded_bytes": [5, 6], "downloaded_bytes": [1, 2]})
            self.connections, self.connections_total = [], 0
            self.summary = {"client_state": [{}]}

        def table(self):
            return self.torrents

        def charted_torrents(self, limit=20):
            return sorted(self.torrents, key=lambda t: -t["downloaded_bytes"])[:limit]

        def timeline_of(self, t):
            return self.timeline.where(self.timeline.isin("info_hash", {t["info_hash"]}))

        def peers_of(self, t):
            return self.peers.where(self.peers.isin("info_hash", {t["info_hash"]}))

    fields = ["path", "name", "info_hash", "uploaded_verdict", "downloaded_verdict", "uploaded_compared_bytes",
              "downloaded_compared_bytes", "wire_uploaded_min_bytes", "wire_uploaded_max_bytes",
              "wire_downloaded_min_bytes", "wire_downloaded_max_bytes"]
    with (tmp_path / "client_state.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(fields)
        for i in range(30):
            w.writerow([f"/s/{i}.resume", f"t{i}", f"{i:02x}" * 20, "consistent", "consistent", 100 * i, 50 * i,
                        100 * i, 100 * i, 50 * i, 50 * i])
    data = Data(tmp_path)
    planned = plan(data)
    keys = [p.key for p in planned]
    assert keys[0] == "torrent_totals" and keys[-1] == "client_state"
    assert sum(k.startswith("cumulative_") for k in keys) == 20
    assert "Shown: the 20 of 25 torrents" in planned[0].caption
    state = planned[-1]
    assert "Shown: the 20 of 30 records" in state.caption and state.height_in == chartplan.HEIGHT + 0.6
    cumulative = [p for p in planned if p.key.startswith("cumulative_")]
    assert any("per 3-second bin" in p.caption for p in cumulative)       # 5,000 bins: coarsened to 3 s
    check_figures(data)


def test_planning_imports_no_matplotlib(folder):
    code = f"""
import sys
from analyzer.report.chartplan import plan
from analyzer.report.data import ReportData
planned = plan(ReportData({str(folder)!r}))
assert planned and "matplotlib" not in sys.modules, sorted(m for m in sys.modules if "matplotlib" in m)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]


def test_torrents_whose_hashes_begin_alike_get_charts_of_their_own(tmp_path):
    """Two info hashes sharing their first 12 hex digits (crafted: hostile input) name their charts by the
    whole hash; the others keep the short name."""
    from analyzer.report.columns import Columns

    class Data:
        windowed = False
        folder = tmp_path
        summary: dict = {}
        connections, connections_total = [], 0
        timeline = Columns({"bin_start": [], "bin_seconds": [], "info_hash": [], "direction": [], "bytes": [],
                            "acked_bytes": []})
        peers = Columns({"info_hash": [], "remote_ip": [], "uploaded_bytes": [], "downloaded_bytes": []})
        torrents = [{"info_hash": h, "name": None, "downloaded_bytes": 10, "uploaded_bytes": 0,
                     "verified_downloaded_bytes": None, "verified_uploaded_bytes": None}
                    for h in ("ab" * 6 + "11" * 14, "ab" * 6 + "22" * 14, "cd" * 20)]

        def table(self):
            return self.torrents

        def charted_torrents(self, limit=20):
            return self.torrents

        def timeline_of(self, t):
            return self.timeline

        def peers_of(self, t):
            return self.peers

    keys = [p.key for p in plan(Data())]
    assert len(set(keys)) == len(keys)
    assert f"cumulative_{'ab' * 6 + '11' * 14}" in keys and f"uploads_per_peer_{'ab' * 6 + '22' * 14}" in keys
    assert f"cumulative_{'cd' * 6}" in keys
    assert [c.key for c in make_charts(Data())] == keys
