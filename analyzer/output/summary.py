"""summary.json: the findings as one JSON document (schema ``bt-analyzer/summary/1``,
described field by field in the README)."""
from __future__ import annotations

import json

from analyzer import __version__
from analyzer.findings.torrents import VERIFY_FIELDS
from analyzer.findings.transfers import SUM_FIELDS, TransferSums
from analyzer.protocols.peer_id import peer_id_text
from analyzer.timefmt import iso_ns

SUMMARY_SCHEMA = "bt-analyzer/summary/1"
TOOL = {"name": "bt-analyzer", "version": __version__}
ENCRYPTED_NOTE = (
    "Message Stream Encryption recognised by its key exchange; the keys cannot be recovered from "
    "a capture, so these bytes are not attributed to any torrent. Connections that continued "
    "in plaintext after the key exchange are parsed and counted like the others. "
    "with_bittorrent_context: connections whose listening end is shown to be BitTorrent by "
    "plaintext in the capture (tracker or LSD announce of that port, a BEP 10 listen port, "
    "a plaintext BitTorrent connection to it); connections.csv encryption_context names it.")


def dumps(obj) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def _sums(s: TransferSums, fields=SUM_FIELDS) -> dict:
    return {k: getattr(s, k) for k in fields}


def input_json(i) -> dict:
    entry = {
        "path": i.path, "sha256": i.sha256, "size_bytes": i.size_bytes, "format": i.format,
        "compression": i.compression, "frames": i.frames, "link_types": i.link_types,
        "first_ts": iso_ns(i.first_ts_ns), "last_ts": iso_ns(i.last_ts_ns), "readable": i.readable,
        "errors": i.errors, "errors_not_listed": i.errors_not_listed, "damaged_bytes": i.damaged_bytes,
        "truncated_bytes": i.truncated_bytes, "timestamp_anomalies": i.timestamp_anomalies,
        "damaged_interfaces": i.damaged_interfaces, "interfaces_over_limit": i.interfaces_over_limit,
        "internal_error": i.internal_error,
    }
    if i.skipped_blocks:
        entry["skipped_pcapng_blocks"] = i.skipped_blocks
    return entry


def verification_json(v) -> dict:
    return {**{k: getattr(v, k) for k in VERIFY_FIELDS}, **v.pieces, "held_bytes": v.held_bytes,
            "held_share": v.held_share}


def torrent_json(t) -> dict:
    m = t.meta
    row = {"info_hash": t.info_hash, "info_hash_aliases": t.info_hash_aliases,
           "name": m.name if m else None,
           "total_size": m.total_size if m else None,
           "piece_length": m.piece_length if m else None,
           "info_hash_v1": m.info_hash_v1 if m else None,
           "info_hash_v2": m.info_hash_v2 if m else None,
           "metadata_source": m.source if m else None}
    if t.verification is not None:
        row["verification"] = verification_json(t.verification)
        row.update({k: row["verification"][k] for k in VERIFY_FIELDS})
    row.update(_sums(t.sums, SUM_FIELDS[:4]))
    row.update({"peers": t.peers, "connections": t.connections, "first_seen": iso_ns(t.first_seen_ns),
                "last_seen": iso_ns(t.last_seen_ns)})
    row.update(_sums(t.sums, SUM_FIELDS[4:]))
    row.update({
        "peer_ids": t.peer_ids,
        "other_connections": t.other_connections,
        "transports": {name: {"connections": c.connections, **_sums(c.sums)} for name, c in t.transports.items()},
        "remote_clients": t.remote_clients,
        "subject_clients": t.subject_clients,
        "internal_connections": t.internal_connections,
        "internal_bytes": t.internal_bytes,
        "internal_acked_bytes": t.internal_acked_bytes,
        "hosts": [host_json(h) for h in t.hosts],
        "bounds": bounds_json(t.bounds, t.announce_basis),
    })
    return row


def bounds_json(b, basis=()) -> dict:
    return {"downloaded_lower_bytes": b.downloaded_lower_bytes, "downloaded_upper_bytes": b.downloaded_upper_bytes,
            "uploaded_lower_bytes": b.uploaded_lower_bytes, "uploaded_upper_bytes": b.uploaded_upper_bytes,
            "truncated_connections": b.truncated_connections, "info_hash_from_announces": list(basis)}


def host_json(h) -> dict:
    return {"host": h.host, **_sums(h.sums), "connections": h.connections, "peers": h.peers,
            **{f"internal_{k}": getattr(h.internal, k) for k in SUM_FIELDS[:4]},
            "internal_connections": h.internal_connections,
            "first_seen": iso_ns(h.first_seen_ns), "last_seen": iso_ns(h.last_seen_ns)}


def announce_json(a, by_subject: bool) -> dict:
    return {
        "info_hash": a.info_hash, "ts": iso_ns(a.ts_ns), "transport": a.transport, "tracker": a.tracker,
        "kind": a.kind, "event": a.event, "uploaded": a.uploaded, "downloaded": a.downloaded, "left": a.left,
        "client_ip": a.client_ip, "client_port": a.client_port, "port": a.port,
        "peer_id": peer_id_text(a.peer_id), "numwant": a.numwant, "key": a.key,
        "interval": a.interval, "peers_returned": a.peers_returned, "seeders": a.seeders,
        "leechers": a.leechers, "failure": a.failure, "by_subject": by_subject,
        "file": a.file_idx, "frame": a.frame_no,
    }


def reconciliation_json(r) -> dict:
    def counters(a):
        return {"ts": iso_ns(a.ts_ns), "event": a.event, "uploaded": a.uploaded, "downloaded": a.downloaded,
                "left": a.left}
    row = {"info_hash": r.info_hash, "client_ip": r.client_ip, "session": r.session,
           "session_start": r.session_start, "peer_id": peer_id_text(r.first.peer_id), "key": r.first.key,
           "announces": r.announces, "first": counters(r.first),
           "last": counters(r.last), "reported_uploaded_between": r.reported("uploaded"),
           "reported_downloaded_between": r.reported("downloaded")}
    for name in ("downloaded", "uploaded"):
        lo, hi, total = r.wire[name]
        row[f"wire_{name}_between_min"] = lo
        row[f"wire_{name}_between_max"] = hi
        row[f"wire_{name}_total"] = total
        row[f"{name}_consistent"] = r.consistent(name)
    return row


def dht_json(d) -> dict:
    return {
        "messages": d.messages, "methods": d.methods, "subject_messages": d.subject_messages,
        "remote_nodes": d.remote_nodes,
        "info_hashes": [{"info_hash": h.info_hash, "get_peers": h.get_peers, "announce_peer": h.announce_peer,
                         "first_seen": iso_ns(h.first_ns), "last_seen": iso_ns(h.last_ns),
                         "peers_returned": h.peers_returned} for h in d.info_hashes],
        "info_hashes_queried_by_others": d.info_hashes_queried_by_others,
        "sampled_info_hashes": d.sampled_info_hashes,
        "dropped_keys": d.dropped_keys,
    }


def pex_json(p) -> dict:
    return {"messages": p.messages, "malformed": p.malformed, "dropped_keys": p.dropped_keys,
            "info_hashes": [{"info_hash": h.info_hash, "peers_learned": h.peers_learned, "sources": h.sources,
                             "first_seen": iso_ns(h.first_ns), "last_seen": iso_ns(h.last_ns)}
                            for h in p.info_hashes]}


def encrypted_json(e, note: str) -> dict:
    return {"connections": e.connections, "peers": len(e.peers), "uploaded_bytes": e.uploaded_bytes,
            "downloaded_bytes": e.downloaded_bytes, "key_exchange_bytes": e.key_exchange_bytes,
            "plaintext_after_key_exchange": e.plaintext_after_key_exchange,
            "other_connections": e.other_connections, "with_bittorrent_context": e.with_bittorrent_context,
            "note": note}


def accounting_json(a) -> dict:
    return {"frames": a.frames, "bytes": a.bytes, "frames_read": a.frames_read, "categories": a.categories,
            "gap_bytes": a.gap_bytes, "gap_packets": a.gap_packets, "tcp_streams": a.tcp_streams,
            "utp_streams": a.utp_streams, "peer_wire": a.peer_wire, "ip_fragments": a.ip_fragments,
            "reused_tuples": a.reused_tuples,
            "connections_finished_after_silence": a.connections_finished_after_silence,
            "connections_continued_after_silence": a.connections_continued_after_silence,
            "connections_finished_at_cap": a.connections_finished_at_cap,
            "capture_damage": a.capture_damage, "decode_errors": a.decode_errors,
            "extension_messages": a.extension_messages, "pending_dropped": a.pending_dropped}


def _client_state_json(finding) -> list:
    from analyzer.output.client_state import client_state_json      # only with --client-state
    return client_state_json(finding)


def summary_json(f) -> dict:
    """The summary.json document of findings ``f``."""
    u = f.unattributed
    head = {"schema": SUMMARY_SCHEMA, "tool": TOOL}
    if f.case is not None:
        head["case"] = f.case.as_json()
    return {
        **head,
        "local": [s.text for s in f.subject.specs],
        "subject": {**f.subject.as_json(), "matched": f.subject_matched},
        "subject_clients": [{"version_string": c.version_string, "peer_id_client": c.peer_id_client,
                             "peer_id": c.peer_id, "connections": c.connections,
                             "first_seen": iso_ns(c.first_seen_ns), "last_seen": iso_ns(c.last_seen_ns)}
                            for c in f.subject_clients],
        "inputs": [input_json(i) for i in f.inputs],
        "input_overlaps": [{"earlier": a, "later": b} for a, b in f.input_overlaps],
        "torrents": [torrent_json(t) for t in f.torrents],
        "unattributed": {"connections": u.connections, "peers": len(u.peers), **_sums(u.sums),
                         "other_connections": u.other_connections, "bounds": bounds_json(u.bounds)},
        "encrypted": encrypted_json(f.encrypted, ENCRYPTED_NOTE),
        "tracker_reports": [announce_json(a, True) for a in f.subject_reports],
        "tracker_reconciliation": [reconciliation_json(r) for r in f.reconciliation],
        "dht": dht_json(f.dht),
        "lsd": [{"info_hash": e.info_hash, "sender": e.sender, "port": e.port, "count": e.count,
                 "by_subject": e.by_subject, "first_seen": iso_ns(e.first_ns), "last_seen": iso_ns(e.last_ns)}
                for e in f.lsd],
        "pex": pex_json(f.pex),
        **({"client_state": _client_state_json(f.client_state)} if f.client_state is not None else {}),
        "carved": f.carved,
        "accounting": accounting_json(f.accounting),
        "notes": f.notes + (list(f.client_state.notes) if f.client_state is not None else []),
    }
