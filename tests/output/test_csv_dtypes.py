"""The CSV tables in pandas: counts are int64, nullable integers are declared, times parse.

Read from the golden outputs (tests/golden: the sample capture and the public captures, whose
files test_golden.py keeps equal to fresh runs), as a user would: ``pd.read_csv(path)``.
"""
from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path

import pandas as pd
import pytest

from analyzer.output.tables import NULLABLE_INTEGER_COLUMNS, TIME_COLUMNS

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
CSVS = sorted(p for p in GOLDEN.glob("*/*.csv"))
# opaque identifiers that can look like numbers (hex digits): text, read with dtype=str
IDENTIFIERS = {"info_hash", "info_hash_reply", "info_hash_v2", "reserved_src", "reserved_dst", "key", "peer_id",
               "peer_id_src", "peer_id_dst", "flags"}
COUNT = re.compile(r"(_bytes|_frames|_packets|^frames_.*|^connections$|^peers$|^count$|^messages_.*|^pieces_.*|"
                   r"^added$|^dropped$|^peers_returned$|^bytes$|_errors_.*|^resyncs_.*)$")
INTEGER = re.compile(r"^-?\d+$")


def integer_columns(text: pd.DataFrame) -> list[str]:
    """Columns whose non-empty cells are all integers (at least one)."""
    out = []
    for c in text.columns:
        if c in IDENTIFIERS:
            continue
        cells = text[c][text[c] != ""]
        if len(cells) and cells.str.match(INTEGER).all():
            out.append(c)
    return out


def test_every_table_is_covered():
    names = {p.name for p in CSVS}
    assert {"torrents.csv", "torrent_transports.csv", "connections.csv", "tracker.csv", "dht.csv", "pex.csv",
            "pieces.csv"} <= names
    cases = {p.parent.name for p in CSVS}
    assert any(c.startswith("sample") for c in cases) and any(c.startswith("public") for c in cases)


@pytest.mark.parametrize("path", CSVS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_integer_columns_stay_integers(path):
    text = pd.read_csv(path, dtype=str, keep_default_na=False)
    if text.empty:
        return
    plain = pd.read_csv(path)
    nullable = set(NULLABLE_INTEGER_COLUMNS.get(path.name, ()))
    # an upper bound may be unknowable (uTP packets lost in a capture cut by the snap length): no count
    assert not {c for c in nullable if COUNT.search(c) and not c.endswith("_upper_bytes")}, \
        "a count column declared nullable"
    for c in integer_columns(text):
        if c in nullable:
            # empty when absent; read as declared, the values are integers
            typed = pd.read_csv(path, dtype={c: "Int64"})[c]
            assert str(typed.dtype) == "Int64", c
            continue
        assert (text[c] != "").all(), f"{c}: empty cells but not declared nullable"
        assert plain[c].dtype == "int64", (c, plain[c].dtype)
    for c in text.columns:
        if COUNT.search(c) and c not in IDENTIFIERS and c not in nullable:
            assert plain[c].dtype == "int64", (c, plain[c].dtype)


@pytest.mark.parametrize("path", CSVS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_times_come_with_a_spreadsheet_form(path):
    text = pd.read_csv(path, dtype=str, keep_default_na=False)
    for c in [c for c in text.columns if c in TIME_COLUMNS]:
        twin = f"{c}_excel"
        assert list(text.columns).index(twin) == list(text.columns).index(c) + 1
        present = text[c] != ""
        assert ((text[twin] != "") == present).all()
        if not present.any():
            continue
        iso = pd.to_datetime(text[c][present], utc=True)
        # what a spreadsheet reads: a date and a time to the millisecond, no zone (UTC)
        excel = pd.to_datetime(text[twin][present], format="%Y-%m-%d %H:%M:%S.%f")
        assert (iso.dt.tz_localize(None).dt.floor("ms") == excel).all()
        for cell in text[twin][present]:
            assert _dt.datetime.strptime(cell, "%Y-%m-%d %H:%M:%S.%f")      # Excel's own text form
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", cell)


def test_transport_rows_sum_to_the_totals():
    for path in GOLDEN.glob("*/torrent_transports.csv"):
        per = pd.read_csv(path)
        totals = pd.read_csv(path.with_name("torrents.csv")).set_index("info_hash")
        assert (totals["transport"] == "all").all()
        sums = per.groupby("info_hash")[["connections", "downloaded_bytes", "uploaded_bytes",
                                         "downloaded_acked_bytes", "uploaded_acked_bytes"]].sum()
        for h, row in sums.iterrows():
            for k, v in row.items():
                assert totals.loc[h, k] == v, (path, h, k)
        assert (per["peers"] <= totals.loc[per["info_hash"], "peers"].to_numpy()).all()
