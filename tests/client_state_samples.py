"""A small client state case shared by the output and report tests: one Transmission resume file and
one damaged file, reconciled with a summary.json holding the torrent and one more."""
from __future__ import annotations

from analyzer.evidence.clientstate import read_client_state
from analyzer.findings.client_state import reconcile_state
from analyzer.findings.client_state_wire import wire_from_summary
from analyzer.output.client_state import client_state_json
from analyzer.protocols.bencode import encode

IH = "ab" * 20
SUMMARY = {
    "inputs": [{"first_ts": "2023-11-14T22:15:00.000000000Z", "last_ts": "2023-11-14T22:16:40.000000000Z"}],
    "torrents": [{"info_hash": IH, "info_hash_aliases": [], "downloaded_bytes": 2_000_000,
                  "downloaded_acked_bytes": 2_000_000, "uploaded_bytes": 2_500_000, "uploaded_acked_bytes": 2_500_000,
                  "downloaded_gap_bytes": 0, "uploaded_gap_bytes": 0, "first_seen": "2023-11-14T22:15:10.000000000Z",
                  "last_seen": "2023-11-14T22:16:30.000000000Z", "name": "debian.iso", "total_size": 262_144,
                  "piece_length": 32768},
                 {"info_hash": "cd" * 20, "info_hash_aliases": [], "downloaded_bytes": 1, "downloaded_acked_bytes": 1,
                  "uploaded_bytes": 0, "uploaded_acked_bytes": 0, "first_seen": None, "last_seen": None}],
}
RESUME = {"activity-date": 1_700_000_150, "added-date": 1_700_000_000, "corrupt": 0, "done-date": 0,
          "downloaded": 1_000_000, "downloading-time-seconds": 500, "name": b"debian.iso",
          "seeding-time-seconds": 400, "uploaded": 2_000_000, "destination": b"/srv",
          "progress": {"blocks": b"all"}}


def make(tmp_path):
    (tmp_path / f"{IH}.resume").write_bytes(encode(RESUME))
    (tmp_path / "zz.resume").write_bytes(b"garbage")
    return read_client_state([tmp_path])


def items_of(tmp_path, summary=SUMMARY) -> list[dict]:
    return client_state_json(reconcile_state(make(tmp_path), *wire_from_summary(summary)))
