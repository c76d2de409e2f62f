"""summary.json client_state[] and client_state.csv: the client state finding serialised."""
from __future__ import annotations

import csv
import io
import json

from analyzer.findings.client_state import reconcile_state
from analyzer.findings.client_state_wire import wire_from_summary
from analyzer.output.client_state import (CLIENT_STATE_COLUMNS, client_state_csv, client_state_csv_rows,
                                          client_state_json)
from client_state_samples import IH, SUMMARY, items_of, make

def test_json_schema_and_verdicts(tmp_path):
    good, bad = items_of(tmp_path)
    assert set(good) == {"path", "sha256", "size_bytes", "format", "client", "version", "errors", "torrents"}
    assert bad["errors"] and bad["torrents"] == [] and bad["format"] is None
    [t] = good["torrents"]
    assert {c["field"]: c["unit"] for c in t["counters"]} == {"uploaded": "bytes", "downloaded": "bytes",
                                                               "corrupt": "bytes", "seeding": "seconds",
                                                               "downloading": "seconds"}
    assert t["times"][0]["utc"] == "2023-11-14T22:13:20.000000000Z"
    rec = t["reconciliation"]
    assert rec["uploaded"]["verdict"] == "contradiction" and rec["uploaded"]["difference_bytes"] == -500_000
    assert rec["downloaded"]["verdict"] == "not_comparable"          # no verified pieces: redundant unknown
    assert rec["pieces"]["verdict"] == "not_comparable" and rec["pieces"]["client_held"] == 8
    assert rec["periods"]["client"]["last_activity"] == "2023-11-14T22:15:50.000000000Z"
    json.dumps([good, bad])                                           # JSON-able as is


def test_without_a_capture_nothing_is_reconciled(tmp_path):
    items = client_state_json(reconcile_state(make(tmp_path)))
    assert items[0]["torrents"][0]["reconciliation"] is None
    rows = client_state_csv_rows(items)
    assert rows[0]["uploaded_verdict"] is None and rows[0]["uploaded_bytes"] == 2_000_000


def test_csv_rows_and_columns(tmp_path):
    rows = list(csv.DictReader(io.StringIO(client_state_csv(items_of(tmp_path)))))
    assert tuple(rows[0]) == CLIENT_STATE_COLUMNS
    good, bad = rows
    assert good["uploaded_verdict"] == "contradiction" and good["wire_uploaded_min_bytes"] == "2500000"
    assert good["downloaded_compared_key"] == "downloaded + corrupt" and good["have_unit"] == "block"
    assert good["added_utc"] == "2023-11-14T22:13:20.000000000Z" and good["info_hash"] == IH
    assert bad["errors"].startswith("damaged") and bad["info_hash"] == ""


def test_output_is_deterministic(tmp_path):
    assert client_state_csv(items_of(tmp_path)) == client_state_csv(items_of(tmp_path))
    assert json.dumps(items_of(tmp_path)) == json.dumps(items_of(tmp_path))


def test_notes_name_the_capture_torrents_without_a_record(tmp_path):
    finding = reconcile_state(make(tmp_path), *wire_from_summary(SUMMARY))
    assert finding.notes == [f"client state: no state file read records torrent {'cd' * 20} of the capture"]
    assert [(f.path.rsplit("/", 1)[-1], rec["wire_torrent"]) for f, _, rec in finding.records()] == \
        [(f"{IH}.resume", IH)]
