"""The report's client state table and chart, from summary.json client_state[] and client_state.csv."""
from __future__ import annotations

import csv
import io

from matplotlib.figure import Figure

from analyzer.output.client_state import client_state_csv, client_state_csv_rows
from analyzer.report.client_state import CLIENT_STATE_TABLE_COLUMNS, client_state_chart, client_state_table_rows

from client_state_samples import items_of


def test_report_table_rows(tmp_path):
    rows = client_state_table_rows(items_of(tmp_path))
    assert [r["direction"] for r in rows] == ["uploaded", "downloaded", "pieces held"]
    assert {k for r in rows for k in r} == {k for k, _ in CLIENT_STATE_TABLE_COLUMNS}
    up = rows[0]
    # a Transmission file reconciled from summary.json alone: the piece messages (13 header bytes each in its
    # uploaded counter) are not counted, so the capture gives only the least the client must have counted
    assert (up["client_bytes"], up["wire"], up["verdict"]) == (2_000_000, "at least 2,500,000 B", "CONTRADICTION")
    assert rows[1]["wire"] == "? to 2,000,000 B" and rows[2]["client_key"] == "progress/blocks"


def test_chart_draws_the_tables_numbers_in_greyscale(tmp_path):
    rows = client_state_csv_rows(items_of(tmp_path))
    fig = client_state_chart(rows)
    assert isinstance(fig, Figure) and "lifetime counters" in fig.bt_caption
    [ax] = fig.axes
    heights = sorted(int(p.get_height()) for p in ax.patches)
    assert heights == sorted([2_000_000, 2_500_000, 1_000_000, 2_000_000])
    hatches = {p.get_hatch() for p in ax.patches}
    assert {"//", "\\\\"} <= hatches                      # told apart without colour
    assert len(ax.collections) == 1                       # the downloaded range line (no minimum)
    marks = sorted(t.get_text() for t in ax.texts)
    assert marks == ["?", "✗"]
    # read back from the CSV it is the same chart
    back = client_state_chart(list(csv.DictReader(io.StringIO(client_state_csv(items_of(tmp_path))))))
    assert sorted(int(p.get_height()) for p in back.axes[0].patches) == heights


def test_chart_without_records():
    fig = client_state_chart([])
    assert "no state file record" in " ".join(t.get_text() for t in fig.axes[0].texts)
