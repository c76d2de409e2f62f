"""The timeline and per-peer tables of the bundled sample (timeline.parquet, peers.parquet):
they add up to the torrent totals, whatever the bin width and however often the
accumulator compacts."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from analyzer.analysis import analyze
from analyzer.findings import build_findings
from analyzer.findings import timeline as tl
from analyzer.findings.timeline import Timeline
from analyzer.output import parquet
from summaries import torrents_of

SAMPLE = Path(__file__).resolve().parent.parent.parent / "captures" / "sample-swarm.pcap"


@pytest.fixture(scope="module")
def result():
    return analyze([SAMPLE], local=["127.0.0.3"], warn=lambda m: None)


def tables(result, bin_seconds):
    f = build_findings(result, bin_seconds=bin_seconds)
    return parquet.timeline_table(f.timeline), parquet.peers_table(f.peers)


@pytest.mark.parametrize("bin_seconds", [1, 5, 3600])
def test_bins_add_up_to_the_torrent_totals(result, bin_seconds):
    [t] = torrents_of(result, result.subject)
    timeline, peers = (x.to_pandas() for x in tables(result, bin_seconds))
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
    a = tables(result, 1)
    monkeypatch.setattr(tl, "COMPACT_AT", 3)
    b = tables(result, 1)
    assert a[0].equals(b[0]) and a[1].equals(b[1])


def test_empty_tables_keep_their_schema():
    import numpy as np
    timeline = parquet.timeline_table(Timeline(1, [], np.empty((0, 7), np.int64)))
    peers = parquet.peers_table([])
    assert timeline.num_rows == peers.num_rows == 0
    assert timeline.column_names == parquet.TIMELINE_COLUMNS and peers.column_names == parquet.PEER_COLUMNS
    assert isinstance(timeline.to_pandas(), pd.DataFrame)


def test_zero_bin_width_is_refused():
    with pytest.raises(ValueError):
        tl.TimelineAccumulator({}, 0)


def test_strings_column_round_trips():
    arr = parquet._strings(["a", "", "é", "b" * 70])
    assert arr.to_pylist() == ["a", "", "é", "b" * 70]
