"""timeline.parquet and peers.parquet of the bundled sample: they add up to the torrent totals,
whatever the bin width and however often the accumulator compacts."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from analyzer.analysis import analyze
from analyzer.report import timeline as tl
from analyzer.sessions.summary import build_torrents

SAMPLE = Path(__file__).resolve().parent.parent.parent / "captures" / "sample-swarm.pcap"


@pytest.fixture(scope="module")
def result():
    return analyze([SAMPLE], local=["127.0.0.3"], warn=lambda m: None)


@pytest.mark.parametrize("bin_seconds", [1, 5, 3600])
def test_bins_add_up_to_the_torrent_totals(result, bin_seconds):
    [t] = build_torrents(result.records, result.subject)
    timeline, peers = tl.build_frames(result, bin_seconds)
    for d in ("downloaded", "uploaded"):
        rows = timeline[timeline["direction"] == d]
        assert rows["bytes"].sum() == t[f"{d}_bytes"]
        assert rows["acked_bytes"].sum() == t[f"{d}_acked_bytes"]
        assert peers[f"{d}_bytes"].sum() == t[f"{d}_bytes"]
    assert (timeline["bin_start"].astype("int64") % (bin_seconds * 10**9) == 0).all()
    assert not timeline.duplicated(["bin_start", "info_hash", "direction", "transport"]).any()
    assert str(timeline["bin_start"].dtype) == "datetime64[ns, UTC]"
    assert peers["connections"].sum() == t["connections"]


def test_compaction_does_not_change_the_tables(result, monkeypatch):
    a = tl.build_tables(result, 1)
    monkeypatch.setattr(tl, "COMPACT_AT", 3)
    b = tl.build_tables(result, 1)
    assert a[0].equals(b[0]) and a[1].equals(b[1])


def test_empty_tables_keep_their_schema():
    class Empty:
        records, metas, subject = [], [], None
    timeline, peers = tl.build_tables(Empty(), 1)
    assert timeline.num_rows == peers.num_rows == 0
    assert timeline.column_names == tl.TIMELINE_COLUMNS and peers.column_names == tl.PEER_COLUMNS
    assert isinstance(timeline.to_pandas(), pd.DataFrame)


def test_strings_column_round_trips():
    arr = tl._strings(["a", "", "é", "b" * 70])
    assert arr.to_pylist() == ["a", "", "é", "b" * 70]
