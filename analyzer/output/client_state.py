"""summary.json ``client_state[]`` and client_state.csv: the ``ClientStateFinding`` serialised.

``client_state_json`` is the one source: the CSV (here) and the report's table
and chart (``analyzer.report.client_state``) are derived from its list, so
they never show a number it does not.

Schema of ``client_state[]`` (one object per state file, in path order)::

    {"path": str, "sha256": hex | null, "size_bytes": int | null,
     "format": "libtorrent_resume" | "qbittorrent_fastresume" | "deluge_fastresume" | "transmission_resume"
               | "rtorrent_session" | "rtorrent_libtorrent_resume" | "utorrent_resume_dat" | null,
     "client": "libtorrent" | "qBittorrent" | "Deluge" | "Transmission" | "rtorrent" | "µTorrent/BitTorrent" | null,
     "version": {"value": str, "of": "libtorrent", "source_key": "libtorrent-version"} | null,
                                     # the only version these formats record: the library's
     "errors": [str],                # one line per problem (damaged, unknown format, unreadable entry)
     "torrents": [{
        "entry_key": str | null,     # the record's key in a multi-torrent file (Deluge, µTorrent)
        "info_hash": str | null,     # 40 hex: v1, else truncated v2, else a 16-hex prefix (Transmission 2.x)
        "info_hash_v1": str | null, "info_hash_v2": str | null (64 hex), "info_hash_prefix": str | null,
        "hash_source": str,          # key or "file name"
        "name": str | null, "save_path": str | null,
        "counters": [{"field": "uploaded" | "downloaded" | "corrupt" | "wasted" | "hashfails" | "active"
                               | "seeding" | "finished" | "downloading",
                      "source_key": str, "value": int, "unit": "bytes" | "seconds" | "pieces",
                      "meaning": str}],
        "times": [{"field": "added" | "started" | "completed" | "last_activity" | "last_upload" | "last_download"
                            | "last_seen_complete" | "state_changed" | "written",
                   "source_key": str, "value": int, "unit": "unix_seconds", "utc": ISO 8601, "meaning": str}],
        "download_counts": "payload_all" | "payload_net" | "payload_undocumented",
        "have": {"basis": str, "source_key": str, "unit": "piece" | "block",
                 "form": "bitfield" | "all" | "none" | "count",
                 "stored_set_bits": int | null} | null,
        "num_pieces": int | null, "piece_length": int | null,     # when the file holds the metadata
        "peers": ["ip:port" | "[ip]:port"], "peers_total": int,  # remembered peers (first 200 listed)
        "client_fields": {str: value},                             # qBt-*, rtorrent custom, µTorrent label, ...
        "notes": [str],
        "reconciliation": null                                     # no capture was reconciled
          | {"wire_torrent": null, "matched": false, "statement": str}   # no usable info hash (none, or a
                                                                         # prefix matching several torrents)
          | {
            "wire_torrent": str | null, "matched": bool, "statement": str | null,
            "periods": {"capture": {"first_ts", "last_ts"},
                        "torrent_on_wire": {"first_seen", "last_seen"},
                        "client": {"added", "added_key", "last_activity", "last_activity_key", "written"}},
            "period_notes": [str],
            "uploaded" | "downloaded": {
                "client_bytes": int | null, "client_key": str | null,
                "client_counts": "payload" | "payload_and_piece_headers"      # uploaded
                                 | "payload_all" | "payload_net" | "payload_undocumented",  # downloaded
                "wire_min_bytes": int | null, "wire_max_bytes": int | null,
                "wire_min_figure": str | null,    # e.g. "downloaded_acked_bytes - redundant_downloaded_bytes"
                "wire_max_figure": str | null,    # "<direction>_bytes + <direction>_gap_bytes" (+ 13 x
                                                  # uploaded_piece_messages for payload_and_piece_headers)
                "wire_piece_messages": int | null,  # payload_and_piece_headers: piece messages the subject sent
                "difference_bytes": int | null,   # > 0: the client counts more; < 0: the wire shows more
                "verdict": "consistent" | "contradiction" | "possible_transfers_outside_capture"
                           | "not_comparable" | "not_recorded",
                "statement": str},
            "pieces": {"basis", "num_pieces", "client_held", "received_verified", "received_failed",
                       "received_incomplete", "sent_verified", "held_and_received_verified",
                       "received_verified_not_held", "received_verified_not_held_pieces" ("0-3,7"),
                       "sent_verified_not_held", "sent_verified_not_held_pieces", "held_not_received",
                       "verdict": "consistent" | "pieces_missing" | "not_comparable" | "not_recorded",
                       "statement": str}}}]}
"""
from __future__ import annotations

import csv
import io

from analyzer.evidence.clientstate.model import TorrentState
from analyzer.findings.client_state import ClientStateFinding
from analyzer.timefmt import iso_ns


def client_state_json(finding: ClientStateFinding) -> list[dict]:
    """The ``client_state[]`` list (schema above)."""
    out = []
    for f, recs in zip(finding.state.files, finding.reconciliations):
        out.append({
            "path": f.path, "sha256": f.sha256, "size_bytes": f.size_bytes, "format": f.format,
            "client": f.client,
            "version": {"value": f.version, "of": f.version_of, "source_key": f.version_source} if f.version
            else None,
            "errors": list(f.errors),
            "torrents": [_torrent(t, rec) for t, rec in zip(f.torrents, recs)],
        })
    return out


def _torrent(t: TorrentState, rec: dict | None) -> dict:
    return {
        "entry_key": t.entry_key, "info_hash": t.info_hash, "info_hash_v1": t.info_hash_v1,
        "info_hash_v2": t.info_hash_v2, "info_hash_prefix": t.info_hash_prefix, "hash_source": t.hash_source,
        "name": t.name, "save_path": t.save_path,
        "counters": [c.as_json() for c in t.counters],
        "times": [{**v.as_json(), "utc": iso_ns(v.value * 1_000_000_000)} for v in t.times],
        "download_counts": t.download_counts,
        "have": {"basis": t.have.describe(), "source_key": t.have.source_key, "unit": t.have.unit,
                 "form": t.have.form, "stored_set_bits": t.have.stored_count()} if t.have else None,
        "num_pieces": t.num_pieces, "piece_length": t.piece_length,
        "peers": list(t.peers), "peers_total": t.peers_total,
        "client_fields": dict(t.client_fields),
        "notes": list(t.notes),
        "reconciliation": rec,
    }


# ----------------------------------------------------------------------------- CSV
CLIENT_STATE_COLUMNS = (
    "path", "sha256", "format", "client", "version", "errors", "entry_key", "info_hash", "name",
    "uploaded_key", "uploaded_bytes", "downloaded_key", "downloaded_bytes", "corrupt_bytes",
    "active_seconds", "seeding_seconds", "downloading_seconds", "finished_seconds",
    "added_utc", "completed_utc", "last_activity_utc",
    "have_set_bits", "have_unit", "num_pieces", "peers_total",
    "wire_info_hash", "capture_first_ts", "capture_last_ts", "wire_first_seen", "wire_last_seen",
    "uploaded_compared_bytes", "wire_uploaded_min_bytes", "wire_uploaded_max_bytes", "uploaded_difference_bytes",
    "uploaded_verdict",
    "downloaded_compared_key", "downloaded_compared_bytes", "wire_downloaded_min_bytes", "wire_downloaded_max_bytes",
    "downloaded_difference_bytes", "downloaded_verdict",
    "pieces_client_held", "pieces_received_verified", "pieces_received_verified_not_held",
    "pieces_sent_verified_not_held", "pieces_held_not_received", "pieces_verdict",
)


def _value(t: dict, kind: str, name: str):
    return next((v for v in t[kind] if v["field"] == name), None)


def client_state_csv_rows(items: list[dict]) -> list[dict]:
    """One row per (file, torrent record); a file without records gets one row (its errors)."""
    rows = []
    for f in items:
        base = {"path": f["path"], "sha256": f["sha256"], "format": f["format"], "client": f["client"],
                "version": f["version"]["value"] if f["version"] else None, "errors": "; ".join(f["errors"])}
        if not f["torrents"]:
            rows.append(dict.fromkeys(CLIENT_STATE_COLUMNS) | base)
            continue
        for t in f["torrents"]:
            row = dict.fromkeys(CLIENT_STATE_COLUMNS) | base
            row.update({"entry_key": t["entry_key"], "info_hash": t["info_hash"], "name": t["name"],
                        "num_pieces": t["num_pieces"], "peers_total": t["peers_total"]})
            for name in ("uploaded", "downloaded"):
                if (c := _value(t, "counters", name)):
                    row[f"{name}_key"], row[f"{name}_bytes"] = c["source_key"], c["value"]
            for name in ("corrupt",):
                if (c := _value(t, "counters", name)):
                    row[f"{name}_bytes"] = c["value"]
            for name in ("active", "seeding", "downloading", "finished"):
                if (c := _value(t, "counters", name)):
                    row[f"{name}_seconds"] = c["value"]
            for name, col in (("added", "added_utc"), ("started", "added_utc"), ("completed", "completed_utc"),
                              ("last_activity", "last_activity_utc")):
                if row[col] is None and (v := _value(t, "times", name)):
                    row[col] = v["utc"]
            if t["have"]:
                row["have_set_bits"], row["have_unit"] = t["have"]["stored_set_bits"], t["have"]["unit"]
            rec = t["reconciliation"]
            if rec and "periods" in rec:
                row["wire_info_hash"] = rec["wire_torrent"]
                row["capture_first_ts"] = rec["periods"]["capture"]["first_ts"]
                row["capture_last_ts"] = rec["periods"]["capture"]["last_ts"]
                row["wire_first_seen"] = rec["periods"]["torrent_on_wire"]["first_seen"]
                row["wire_last_seen"] = rec["periods"]["torrent_on_wire"]["last_seen"]
                row["last_activity_utc"] = row["last_activity_utc"] or rec["periods"]["client"]["last_activity"]
                for d in ("uploaded", "downloaded"):
                    c = rec[d]
                    row[f"{d}_compared_bytes"] = c["client_bytes"]
                    row[f"wire_{d}_min_bytes"], row[f"wire_{d}_max_bytes"] = c["wire_min_bytes"], c["wire_max_bytes"]
                    row[f"{d}_difference_bytes"], row[f"{d}_verdict"] = c["difference_bytes"], c["verdict"]
                row["downloaded_compared_key"] = rec["downloaded"]["client_key"]
                p = rec["pieces"]
                row.update({"pieces_client_held": p["client_held"], "pieces_received_verified": p["received_verified"],
                            "pieces_received_verified_not_held": p["received_verified_not_held"],
                            "pieces_sent_verified_not_held": p["sent_verified_not_held"],
                            "pieces_held_not_received": p["held_not_received"], "pieces_verdict": p["verdict"]})
            elif rec:
                row["uploaded_verdict"] = row["downloaded_verdict"] = "not_matched"
            rows.append(row)
    return rows


def client_state_csv(items: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CLIENT_STATE_COLUMNS)
    for row in client_state_csv_rows(items):
        w.writerow(["" if row[c] is None else row[c] for c in CLIENT_STATE_COLUMNS])
    return buf.getvalue()
