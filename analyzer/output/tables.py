"""The CSV tables: torrents.csv, torrent_transports.csv, torrent_hosts.csv, connections.csv
(streamed), tracker.csv, pieces.csv, dht.csv and pex.csv, from the findings (columns described in
the README).

Conventions, so that ``pandas.read_csv`` gives int64 for every count:

* a count the analysis measured is never empty; 0 where zero is true (a connection without the
  subject moved none of the subject's bytes);
* a breakdown is its own file (per transport: torrent_transports.csv, per subject host:
  torrent_hosts.csv), never rows among the totals;
* an integer that may not exist is empty: a reference (a frame, port or connection id with
  nothing to name), a value another party reported (a tracker's interval, seeders and leechers,
  a client's counters in an announce, the sizes in a torrent's metadata) or an upper bound that
  cannot be given (uTP packets lost in a capture cut by a snap length).  Those columns are listed
  in ``NULLABLE_INTEGER_COLUMNS`` (read them with ``dtype="Int64"``);
* every time is ISO 8601 UTC with nanoseconds, followed by ``<name>_excel``: the same time as
  ``YYYY-MM-DD HH:MM:SS.fff`` (UTC, truncated to the millisecond), which spreadsheets parse.
"""
from __future__ import annotations

import csv
import io
import json
import operator
from itertools import chain

from analyzer.findings.transfers import SUM_FIELDS
from analyzer.protocols.peer_id import peer_id_text
from analyzer.output.summary import announce_json
from analyzer.sessions.records import DIRECTION_FIELDS, client_of
from analyzer.timefmt import iso_ns

TIME_COLUMNS = ("first_seen", "last_seen", "ts", "first_ts", "last_ts", "attribution_ts", "first_block_ts",
                "last_block_ts")


def with_excel(columns) -> tuple:
    """The columns with ``<time>_excel`` right after each time column."""
    return tuple(c for name in columns for c in ((name, name + "_excel") if name in TIME_COLUMNS else (name,)))


_EXCEL_AT: dict = {}     # id(base columns) -> (the tuple, positions of its time columns, last first)


def _with_excel(base_columns, values: list) -> list:
    """``values`` under ``base_columns`` with each time column's Excel twin inserted after it
    ('2026-11-28T17:52:48.903610000Z' (timefmt.iso_ns) -> '2026-11-28 17:52:48.903', '' for none)."""
    found = _EXCEL_AT.get(id(base_columns))
    if found is None or found[0] is not base_columns:
        found = _EXCEL_AT[id(base_columns)] = (base_columns, tuple(
            i for i in reversed(range(len(base_columns))) if base_columns[i] in TIME_COLUMNS))
    out = list(values)
    for i in found[1]:
        v = values[i]
        out.insert(i + 1, f"{v[:10]} {v[11:23]}" if v else "")
    return out


INTERNAL_FIELDS = tuple(f"internal_{k}" for k in SUM_FIELDS[:4])
TORRENT_BASE = ("info_hash", "host", "transport", "connections", "peers", *SUM_FIELDS, *INTERNAL_FIELDS,
                "internal_connections", "first_seen", "last_seen", "name", "total_size", "piece_length",
                "info_hash_v2")
TORRENT_COLUMNS = with_excel(TORRENT_BASE)
TORRENT_TRANSPORT_BASE = ("info_hash", "host", "transport", "connections", "peers", *SUM_FIELDS, "first_seen",
                          "last_seen")
TORRENT_TRANSPORT_COLUMNS = with_excel(TORRENT_TRANSPORT_BASE)
TORRENT_HOST_BASE = ("info_hash", "host", "transport", "connections", "peers", *SUM_FIELDS, *INTERNAL_FIELDS,
                     "internal_connections", "first_seen", "last_seen")
TORRENT_HOST_COLUMNS = with_excel(TORRENT_HOST_BASE)


def _writer(buf):
    return csv.writer(buf, lineterminator="\n")


def _csv(base_columns, rows) -> str:
    """Rows (dicts) under ``base_columns`` (and their excel twins); None is written as an empty cell."""
    buf = io.StringIO()
    w = _writer(buf)
    w.writerow(with_excel(base_columns))
    for row in rows:
        w.writerow(_with_excel(base_columns, ["" if row[c] is None else row[c] for c in base_columns]))
    return buf.getvalue()


def torrents_csv(f) -> str:
    """One row per torrent: the subject's totals (``host`` and ``transport`` are 'all'; the
    breakdowns are torrent_transports.csv and torrent_hosts.csv); internal_*: exchanges between
    subject hosts, each byte once (sent by one subject host and received by another)."""
    buf = io.StringIO()
    w = _writer(buf)
    w.writerow(TORRENT_COLUMNS)
    for t in f.torrents:
        m = t.meta
        meta = ["" if v is None else v
                for v in ((m.name, m.total_size, m.piece_length, m.info_hash_v2) if m else (None,) * 4)]
        w.writerow(_with_excel(TORRENT_BASE, [
            t.info_hash, "all", "all", t.connections, t.peers, *(getattr(t.sums, k) for k in SUM_FIELDS),
            *(t.internal_bytes, t.internal_acked_bytes, t.internal_bytes, t.internal_acked_bytes),
            t.internal_connections, iso_ns(t.first_seen_ns), iso_ns(t.last_seen_ns), *meta]))
    return buf.getvalue()


def torrent_transports_csv(f) -> str:
    """One row per torrent and transport (the subject's connections with outside hosts over it, host
    'all'): summed per torrent they give torrents.csv's figures (peers aside: a peer may use both)."""
    buf = io.StringIO()
    w = _writer(buf)
    w.writerow(TORRENT_TRANSPORT_COLUMNS)
    for t in f.torrents:
        for name, tr in t.transports.items():
            w.writerow(_with_excel(TORRENT_TRANSPORT_BASE, [
                t.info_hash, "all", name, tr.connections, tr.peers, *(getattr(tr.sums, k) for k in SUM_FIELDS),
                iso_ns(tr.first_seen_ns), iso_ns(tr.last_seen_ns)]))
    return buf.getvalue()


def torrent_hosts_csv(f) -> str:
    """One row per torrent and subject host (transport 'all'): the byte figures add up to
    torrents.csv's; internal_*: what the host received from and sent to the other subject hosts."""
    buf = io.StringIO()
    w = _writer(buf)
    w.writerow(TORRENT_HOST_COLUMNS)
    for t in f.torrents:
        for h in t.hosts:
            w.writerow(_with_excel(TORRENT_HOST_BASE, [
                t.info_hash, h.host, "all", h.connections, h.peers, *(getattr(h.sums, k) for k in SUM_FIELDS),
                *(getattr(h.internal, k) for k in SUM_FIELDS[:4]), h.internal_connections,
                iso_ns(h.first_seen_ns), iso_ns(h.last_seen_ns)]))
    return buf.getvalue()


CONNECTION_BASE = (
    "conn_id", "transport", "ip_version", "src_ip", "src_port", "dst_ip", "dst_port", "initiator_known",
    "state", "category", "evidence", "attribution", "attribution_file", "attribution_frame", "attribution_ts",
    "attribution_conn_id", "info_hash", "info_hash_reply", "encryption", "encryption_basis",
    "encryption_context",
    "flight_src", "flight_dst", "subject_side", "host",
    "remote_ip", "remote_port", "downloaded_bytes", "downloaded_acked_bytes", "uploaded_bytes",
    "uploaded_acked_bytes", "downloaded_lower_bytes", "downloaded_upper_bytes", "uploaded_lower_bytes",
    "uploaded_upper_bytes", "peer_id_src", "peer_id_dst", "client_src", "client_dst",
    "reserved_src", "reserved_dst", "ext_handshake_src", "ext_handshake_dst",
    *(f"{f}_{d}" for f in DIRECTION_FIELDS for d in ("src_to_dst", "dst_to_src")),
    "first_file", "first_frame", "first_ts", "last_file", "last_frame", "last_ts",
    "first_block_file", "first_block_frame", "first_block_ts", "last_block_file", "last_block_frame", "last_block_ts",
)
CONNECTION_COLUMNS = with_excel(CONNECTION_BASE)


_direction_values = operator.attrgetter(*DIRECTION_FIELDS)
BOUND_FIELDS = ("downloaded_lower_bytes", "downloaded_upper_bytes", "uploaded_lower_bytes", "uploaded_upper_bytes")
_bound_values = operator.attrgetter(*BOUND_FIELDS)
_NO_BOUNDS = (0,) * len(BOUND_FIELDS)           # the subject is not an end of the connection


def _blank(v):
    return "" if v is None else v


def _hex(b: bytes | None) -> str:
    return b.hex() if b is not None else ""


def _compact(d: dict) -> str:
    """The decoded BEP 10 handshake (v, m, p, metadata_size, reqq, yourip) as compact JSON."""
    return json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False) if d else ""


def connection_row(v, files: list[str]) -> list:
    r, t = v.record, v.transfer
    s = t.sums
    attributed = r.attribution_frame >= 0
    row = [r.conn_id, r.transport, r.ip_version, r.src_ip, r.src_port, r.dst_ip, r.dst_port,
           int(r.initiator_known), r.state, r.category, r.evidence, r.attribution,
           files[r.attribution_file] if attributed else "",
           r.attribution_frame if attributed else "",
           iso_ns(r.attribution_ts_ns) if attributed else "",
           "" if v.continues_id is None else v.continues_id, r.info_hash, r.info_hash_reply,
           r.encryption, r.encryption_basis, v.encryption_context, r.flight_src, r.flight_dst,
           t.side, t.host, t.remote_ip if s else "", t.remote_port if s else "",
           s.downloaded_bytes if s else 0, s.downloaded_acked_bytes if s else 0,       # none of the subject's
           s.uploaded_bytes if s else 0, s.uploaded_acked_bytes if s else 0,           # (with outside hosts)
           *(map(_blank, _bound_values(t.bounds)) if s else _NO_BOUNDS),
           peer_id_text(r.fwd.peer_id), peer_id_text(r.rev.peer_id), client_of(r.fwd), client_of(r.rev),
           _hex(r.fwd.reserved), _hex(r.rev.reserved), _compact(r.fwd.ext), _compact(r.rev.ext)]
    row += chain.from_iterable(zip(_direction_values(r.fwd), _direction_values(r.rev)))
    row += [files[r.first_file], r.first_frame, iso_ns(r.first_ts_ns),
            files[r.last_file], r.last_frame, iso_ns(r.last_ts_ns)]
    for ref in (r.first_block, r.last_block):
        row += [files[ref[0]], ref[1], iso_ns(ref[2])] if ref else ["", "", ""]
    return _with_excel(CONNECTION_BASE, row)


def write_connections_csv(f, out) -> None:
    """connections.csv into the text file ``out``, streamed (one row per connection)."""
    w = _writer(out)
    w.writerow(CONNECTION_COLUMNS)
    files = f.files
    w.writerows(connection_row(v, files) for v in f.connection_views())


def connections_csv(f) -> str:
    buf = io.StringIO()
    write_connections_csv(f, buf)
    return buf.getvalue()


TRACKER_BASE = ("info_hash", "ts", "transport", "tracker", "kind", "event", "uploaded", "downloaded", "left",
                "client_ip", "client_port", "port", "peer_id", "numwant", "key", "interval", "peers_returned",
                "seeders", "leechers", "failure", "by_subject", "file", "frame")
TRACKER_COLUMNS = with_excel(TRACKER_BASE)


def tracker_csv(f) -> str:
    """Every announce and scrape in the capture (the subject's and others')."""
    rows = []
    for a, by_subject in f.announces:
        row = announce_json(a, by_subject)
        row["file"] = f.files[a.file_idx] if a.file_idx < len(f.files) else a.file_idx
        rows.append(row)
    return _csv(TRACKER_BASE, rows)


PIECE_BASE = ("info_hash", "piece", "receiver", "senders", "bytes", "status", "covered_bytes",
              "redundant_bytes", "conflict_bytes", "subject_received", "first_file", "first_frame", "first_ts",
              "last_file", "last_frame", "last_ts")
PIECE_COLUMNS = with_excel(PIECE_BASE)


def pieces_csv(f) -> str:
    """One row per (torrent, receiving host, piece) seen: verified, failed or incomplete."""
    rows = []
    for pf in f.pieces:
        p = pf.piece
        rows.append({
            "info_hash": p.info_hash, "piece": p.index, "receiver": p.receiver,
            "senders": ";".join(f"{ip}={n}" for ip, n in sorted(p.senders.items())), "bytes": p.size,
            "status": p.status, "covered_bytes": p.covered, "redundant_bytes": p.redundant_bytes,
            "conflict_bytes": p.conflict_bytes, "subject_received": pf.subject_received,
            "first_file": f.files[p.first[0]], "first_frame": p.first[1], "first_ts": iso_ns(p.first[2]),
            "last_file": f.files[p.last[0]], "last_frame": p.last[1], "last_ts": iso_ns(p.last[2]),
        })
    return _csv(PIECE_BASE, rows)


DHT_BASE = ("info_hash", "method", "querier", "by_subject", "count", "first_seen", "last_seen", "peers_returned")
DHT_COLUMNS = with_excel(DHT_BASE)


def dht_csv(f) -> str:
    return _csv(DHT_BASE, [{"info_hash": r.info_hash, "method": r.method, "querier": r.querier,
                               "by_subject": r.by_subject, "count": r.count, "first_seen": iso_ns(r.first_ns),
                               "last_seen": iso_ns(r.last_ns), "peers_returned": r.peers_returned}
                              for r in f.dht.rows])


PEX_BASE = ("info_hash", "sender", "receiver", "peer", "to_subject", "added", "dropped", "flags",
            "first_seen", "last_seen", "first_file", "first_frame", "last_file", "last_frame")
PEX_COLUMNS = with_excel(PEX_BASE)


def pex_csv(f) -> str:
    """Who told whom about which peer (BEP 11), per torrent; ``to_subject``: the subject was told."""
    return _csv(PEX_BASE, [{"info_hash": r.info_hash, "sender": r.sender, "receiver": r.receiver,
                               "peer": r.peer, "to_subject": r.to_subject, "added": r.added, "dropped": r.dropped,
                               "flags": r.flags, "first_seen": iso_ns(r.first[2]), "last_seen": iso_ns(r.last[2]),
                               "first_file": f.files[r.first[0]], "first_frame": r.first[1],
                               "last_file": f.files[r.last[0]], "last_frame": r.last[1]}
                              for r in f.pex.rows])


# Integer columns that may be empty (see the module docstring), per file; every other integer
# column of these files is never empty.
NULLABLE_INTEGER_COLUMNS = {
    "torrents.csv": ("total_size", "piece_length"),
    "connections.csv": ("attribution_frame", "attribution_conn_id", "remote_port", "first_block_frame",
                        "last_block_frame", "downloaded_upper_bytes", "uploaded_upper_bytes"),
    "tracker.csv": ("uploaded", "downloaded", "left", "port", "numwant", "interval", "seeders", "leechers"),
}
