"""Output folder: summary.json, torrents.csv, connections.csv (deterministic) and
manifest.json (the one file that describes the run itself: times, command
line, platform, and SHA-256 of every input and output)."""
from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import platform
import sys
from pathlib import Path

from analyzer import __version__
from analyzer.digest import sha256_file
from analyzer.evidence.metainfo import encode_torrent
from analyzer.report.timeline import build_tables, write_parquet
from analyzer.protocols.peer_id import peer_id_text
from analyzer.sessions.connections import DIRECTION_FIELDS, ConnectionRecord
from analyzer.sessions.dht import build_dht, build_lsd
from analyzer.sessions.store import sort_key
from analyzer.sessions.summary import (SUM_FIELDS, build_accounting, build_encrypted, build_subject_clients,
                                       build_torrents,
                                       build_unattributed, encryption_context,
                                       torrent_groups, transfer_figures)
from analyzer.sessions.trackers import announce_row, reconcile, subject_announces
from analyzer.timefmt import iso_ns

SUMMARY_SCHEMA = "bt-analyzer/summary/1"
MANIFEST_SCHEMA = "bt-analyzer/manifest/1"
TOOL = {"name": "bt-analyzer", "version": __version__}


def input_entries(result) -> list[dict]:
    out = []
    for f in result.inputs.files:
        r = f.report
        entry = {
            "path": str(f.path),
            "sha256": f.sha256.result() if f.sha256 is not None else None,
            "size_bytes": r.size_bytes,
            "format": r.format or None,
            "compression": r.compression,
            "frames": r.frames,
            "link_types": sorted(r.link_types),
            "first_ts": iso_ns(r.first_ts_ns),
            "last_ts": iso_ns(r.last_ts_ns),
            "readable": r.readable,
            "errors": list(r.errors),
            "damaged_bytes": r.damaged_bytes,
            "truncated_bytes": r.truncated_bytes,
        }
        if r.skipped_blocks:
            entry["skipped_pcapng_blocks"] = dict(sorted(r.skipped_blocks.items()))
        out.append(entry)
    return out


def build_summary(result) -> dict:
    subject = result.subject
    mine = subject_announces(result.announces, subject)
    dht, _ = build_dht(result.udp, subject)
    return {
        "schema": SUMMARY_SCHEMA,
        "tool": TOOL,
        "local": [s.text for s in subject.specs],
        "subject": subject.as_json(),
        "subject_clients": build_subject_clients(result.records, subject),
        "inputs": input_entries(result),
        "torrents": build_torrents(result.records, subject, result.metas, result.pieces),
        "unattributed": build_unattributed(result.records, subject),
        "encrypted": build_encrypted(result.records, subject, result.bt_endpoints),
        "tracker_reports": [announce_row(a, True) for a in mine],
        "tracker_reconciliation": reconcile(mine, result.records, subject,
                                            torrent_groups(result.records, result.metas)),
        "dht": dht,
        "lsd": build_lsd(result.udp, subject),
        "carved": result.carved,
        "accounting": build_accounting(result),
        "notes": list(result.notes),
    }


TORRENT_COLUMNS = ("info_hash", "transport", "connections", "peers", *SUM_FIELDS, "first_seen", "last_seen",
                   "name", "total_size", "piece_length", "info_hash_v2")


def torrents_csv(summary: dict) -> str:
    """One row per torrent for all transports together (transport 'all'), then one per transport."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(TORRENT_COLUMNS)
    for t in summary["torrents"]:
        meta = ["" if t[k] is None else t[k] for k in ("name", "total_size", "piece_length", "info_hash_v2")]
        w.writerow([t["info_hash"], "all", t["connections"], t["peers"], *(t[k] for k in SUM_FIELDS),
                    t["first_seen"], t["last_seen"], *meta])
        for name, tr in t["transports"].items():
            w.writerow([t["info_hash"], name, tr["connections"], "", *(tr[k] for k in SUM_FIELDS), "", "", *meta])
    return buf.getvalue()


CONNECTION_COLUMNS = (
    "conn_id", "transport", "ip_version", "src_ip", "src_port", "dst_ip", "dst_port", "initiator_known",
    "state", "category", "attribution", "attribution_file", "attribution_frame", "attribution_ts",
    "attribution_conn_id", "info_hash", "info_hash_reply", "encryption", "encryption_basis",
    "encryption_context",
    "flight_src", "flight_dst", "subject_side",
    "remote_ip", "remote_port", "downloaded_bytes", "downloaded_acked_bytes", "uploaded_bytes",
    "uploaded_acked_bytes", "peer_id_src", "peer_id_dst", "client_src", "client_dst",
    "reserved_src", "reserved_dst", "ext_handshake_src", "ext_handshake_dst",
    *(f"{f}_{d}" for f in DIRECTION_FIELDS for d in ("src_to_dst", "dst_to_src")),
    "first_file", "first_frame", "first_ts", "last_file", "last_frame", "last_ts",
)


def connection_row(r: ConnectionRecord, result, files: list[str], continues_id="") -> list:
    f = transfer_figures(r, result.subject)
    row = [r.conn_id, r.transport, r.ip_version, r.src_ip, r.src_port, r.dst_ip, r.dst_port,
           int(r.initiator_known), r.state, r.category, r.attribution,
           files[r.attribution_file] if r.attribution_frame >= 0 else "",
           r.attribution_frame if r.attribution_frame >= 0 else "",
           iso_ns(r.attribution_ts_ns) if r.attribution_frame >= 0 else "",
           continues_id, r.info_hash, r.info_hash_reply,
           r.encryption, r.encryption_basis,
           encryption_context(r, result.bt_endpoints) if r.encryption else "", r.flight_src, r.flight_dst,
           f["subject_side"], f.get("remote_ip", ""), f.get("remote_port", ""),
           f.get("downloaded_bytes", ""), f.get("downloaded_acked_bytes", ""),
           f.get("uploaded_bytes", ""), f.get("uploaded_acked_bytes", ""),
           peer_id_text(r.fwd.peer_id), peer_id_text(r.rev.peer_id), r.client(r.fwd), r.client(r.rev),
           _hex(r.fwd.reserved), _hex(r.rev.reserved), _compact(r.fwd.ext), _compact(r.rev.ext)]
    for name in DIRECTION_FIELDS:
        row.append(getattr(r.fwd, name))
        row.append(getattr(r.rev, name))
    row += [files[r.first_file], r.first_frame, iso_ns(r.first_ts_ns),
            files[r.last_file], r.last_frame, iso_ns(r.last_ts_ns)]
    return row


def _hex(b: bytes | None) -> str:
    return b.hex() if b is not None else ""


def _compact(d: dict) -> str:
    """The decoded BEP 10 handshake (v, m, p, metadata_size, reqq, yourip) as compact JSON."""
    return json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False) if d else ""


def connections_csv(result, out=None) -> str | None:
    """connections.csv, streamed into the text file ``out`` when given (one row per
    connection: a case can have millions), else returned as a string."""
    files = [str(f.path) for f in result.inputs.files]
    buf = out if out is not None else io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CONNECTION_COLUMNS)
    # "same_connection" rows name the earlier connection by its number, known only when it is
    # written; the (few) referenced ones are found first, by their stable sort key
    wanted = {r.continues for r in result.records if r.continues} if result.linked else set()
    ids: dict = {}
    for r in result.records:
        if wanted and sort_key(r) in wanted:
            ids[sort_key(r)] = r.conn_id
        w.writerow(connection_row(r, result, files, ids.get(r.continues, "") if r.continues else ""))
    return None if out is not None else buf.getvalue()


def _csv(columns, rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for row in rows:
        w.writerow(["" if row[c] is None else row[c] for c in columns])
    return buf.getvalue()


TRACKER_COLUMNS = ("info_hash", "ts", "transport", "tracker", "kind", "event", "uploaded", "downloaded", "left",
                   "client_ip", "client_port", "port", "peer_id", "numwant", "key", "interval", "peers_returned",
                   "seeders", "leechers", "failure", "by_subject", "file", "frame")


def tracker_csv(result) -> str:
    """Every announce and scrape in the capture (the subject's and others')."""
    files = [str(f.path) for f in result.inputs.files]
    mine = {id(a) for a in subject_announces(result.announces, result.subject)}
    rows = []
    for a in result.announces:
        row = announce_row(a, id(a) in mine)
        row["file"] = files[a.file_idx] if a.file_idx < len(files) else a.file_idx
        rows.append(row)
    return _csv(TRACKER_COLUMNS, rows)


PIECE_COLUMNS = ("info_hash", "piece", "receiver", "senders", "bytes", "status", "covered_bytes",
                 "redundant_bytes", "conflict_bytes", "subject_received", "first_file", "first_frame", "first_ts",
                 "last_file", "last_frame", "last_ts")


def pieces_csv(result) -> str:
    """One row per (torrent, receiving host, piece) seen: verified, failed or incomplete."""
    files = [str(f.path) for f in result.inputs.files]
    rows = []
    for p in result.pieces:
        rows.append({
            "info_hash": p.info_hash, "piece": p.index, "receiver": p.receiver,
            "senders": ";".join(f"{ip}={n}" for ip, n in sorted(p.senders.items())), "bytes": p.size,
            "status": p.status, "covered_bytes": p.covered, "redundant_bytes": p.redundant_bytes,
            "conflict_bytes": p.conflict_bytes,
            "subject_received": result.subject.has_address(p.receiver),
            "first_file": files[p.first[0]], "first_frame": p.first[1], "first_ts": iso_ns(p.first[2]),
            "last_file": files[p.last[0]], "last_frame": p.last[1], "last_ts": iso_ns(p.last[2]),
        })
    return _csv(PIECE_COLUMNS, rows)


DHT_COLUMNS = ("info_hash", "method", "querier", "by_subject", "count", "first_seen", "last_seen", "peers_returned")


def dht_csv(result) -> str:
    return _csv(DHT_COLUMNS, build_dht(result.udp, result.subject)[1])


def dumps(obj) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def _version(module: str) -> str | None:
    """A distribution's installed version, without importing it."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(module)
    except PackageNotFoundError:
        return None


def _utc(t: _dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def write_outputs(result, out_dir: Path, *, argv: list[str], started: _dt.datetime, bin_seconds: int = 1,
                  report: bool = False) -> dict:
    """Write every output file (and the report when asked); return the summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = build_summary(result)
    files = {
        "summary.json": dumps(summary),
        "torrents.csv": torrents_csv(summary),
    }
    files["tracker.csv"] = tracker_csv(result)
    files["dht.csv"] = dht_csv(result)
    if result.metas:
        files["pieces.csv"] = pieces_csv(result)
    for meta in result.rebuilt:
        h = meta.info_hash_v1 or meta.info_hash_v2
        files[f"metadata/{h}.torrent"] = encode_torrent(meta)
    for name, content in files.items():
        if content is None:
            continue
        target = out_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    with open(out_dir / "connections.csv", "w", encoding="utf-8", newline="") as f:
        connections_csv(result, f)
    files["connections.csv"] = None          # written above, streamed
    timeline, peers = build_tables(result, bin_seconds)
    write_parquet(timeline, out_dir / "timeline.parquet")
    write_parquet(peers, out_dir / "peers.parquet")
    names = sorted([*files, "timeline.parquet", "peers.parquet"])
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "tool": TOOL,
        "command_line": argv,
        "options": result.options,
        "started_utc": _utc(started),
        "finished_utc": _utc(_dt.datetime.now(_dt.timezone.utc)),
        "platform": {"python": sys.version.split()[0], "system": platform.platform(),
                     "machine": platform.machine()},
        "libraries": {name: _version(name) for name in ("libtorrent", "matplotlib", "numpy", "pandas", "pyarrow")},
        "inputs": [{"path": e["path"], "resolved_path": str(Path(e["path"]).resolve()), "sha256": e["sha256"],
                    "size_bytes": e["size_bytes"]} for e in summary["inputs"]],
        "outputs": [{"path": name, "sha256": sha256_file(out_dir / name)} for name in sorted(names)],
    }
    (out_dir / "manifest.json").write_text(dumps(manifest), encoding="utf-8")
    if report:
        # The report reads the manifest (command line, options, libraries), so it comes after it,
        # exactly as `bt-analyzer report` would run on the finished folder.
        from analyzer.report.document import write_report
        add_to_manifest(out_dir, write_report(out_dir), finished=True)
    return summary


def add_to_manifest(out_dir: Path, files: list[Path], finished: bool = False) -> None:
    """Record files written later (the report) in the folder's manifest.json; `finished` moves the
    run's end time to now (the report was part of the same `analyze` run)."""
    path = out_dir / "manifest.json"
    if not path.exists():
        return
    manifest = json.loads(path.read_text(encoding="utf-8"))
    outputs = {o["path"]: o for o in manifest.get("outputs", [])
               if not o["path"].startswith("report/") or (out_dir / o["path"]).exists()}
    for f in files:
        name = str(Path(f).relative_to(out_dir))
        outputs[name] = {"path": name, "sha256": sha256_file(f)}
    manifest["outputs"] = [outputs[k] for k in sorted(outputs)]
    if finished:
        manifest["finished_utc"] = _utc(_dt.datetime.now(_dt.timezone.utc))
    path.write_text(dumps(manifest), encoding="utf-8")
