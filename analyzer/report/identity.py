"""What links an observation to a person: the remote peers of each torrent and the subject's own
identity (addresses, listen ports, peer_ids, client), from connections.csv, pieces.csv and
summary.json only.

Peer identity, one row per connection of the subject: remote address and port, transport, who
opened it, the remote client as it named itself (BEP 10 ``v``) and as its peer_id encodes it
(BEP 20 conventions), the raw peer_id, piece bytes each way, the piece bytes that verified
(pieces.csv; per remote *address*, since pieces.csv names senders by address), and the frames
that carried the first and the last piece block (connections.csv ``first_block_*`` /
``last_block_*``; "not recorded" when the folder's connections.csv predates those columns).

Subject identity: a listen port is shown by connections the subject accepted (it was the
responder of a captured SYN), by the ``p`` of its BEP 10 handshakes and by the ``port`` of its
tracker announces; peer_ids and clients come from its side of each handshake.

Input: rows of connections.csv and pieces.csv as text (``columns.read_csv``), connections
with ``columns``, the file's header.
"""
from __future__ import annotations

import json
from urllib.parse import unquote_to_bytes

from analyzer.protocols.compact import endpoint_text as endpoint
from analyzer.protocols.peer_id import decode_peer_id
from analyzer.timefmt import parse_iso_ns

IDENTITY_ROWS = 50      # connections per torrent in the peer identity table (those with the most piece bytes)
BLOCK_COLUMNS = ("first_block_file", "first_block_frame", "first_block_ts",
                 "last_block_file", "last_block_frame", "last_block_ts")
NOT_RECORDED = "not recorded"


def _other(side: str) -> str:
    return "dst" if side == "src" else "src"


def _transport(name: str) -> str:
    """connections.csv ``transport`` as the report writes it."""
    return {"tcp": "TCP", "utp": "uTP"}.get(name, name)


def _ext(text: str) -> dict:
    if not text:
        return {}
    try:
        d = json.loads(text)
    except ValueError:
        return {}
    return d if isinstance(d, dict) else {}


def peer_id_client(text: str) -> str | None:
    """The client a peer_id (as printed in the CSV: ASCII, other bytes %XX) encodes, or None."""
    if not text:
        return None
    return decode_peer_id(unquote_to_bytes(text))


def _int(v) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def _number(text) -> int:
    """A byte count of pieces.csv senders (as a number is read there: not one -> 0)."""
    try:
        return int(text)
    except (TypeError, ValueError):
        try:
            return int(float(text))
        except (TypeError, ValueError, OverflowError):
            return 0


def subject_ips(conns: list[dict]) -> set[str]:
    """The subject's own addresses on its connections."""
    return {c["src_ip"] if c["subject_side"] == "src" else c["dst_ip"]
            for c in conns if c["subject_side"] in ("src", "dst")}


def verified_per_address(pieces: list[dict] | None, hashes: set[str], mine: set[str]) -> dict | None:
    """{remote address: (verified bytes it sent the subject, verified bytes the subject sent it)} for
    the torrent's verified pieces; None without pieces.csv (no metadata)."""
    if pieces is None:
        return None
    to_subject: dict = {}
    from_subject: dict = {}
    for p in pieces:
        if p["info_hash"] not in hashes or p["status"] != "verified" or p["senders"] == "":
            continue
        receiver = p["receiver"]
        for part in p["senders"].split(";"):
            sender, eq, n = part.rpartition("=")
            if not eq:
                sender, n = part, ""
            if receiver in mine and sender not in mine:
                to_subject[sender] = to_subject.get(sender, 0) + _number(n)
            elif sender in mine and receiver not in mine:
                from_subject[receiver] = from_subject.get(receiver, 0) + _number(n)
    return {ip: (to_subject.get(ip, 0), from_subject.get(ip, 0)) for ip in sorted(set(to_subject) | set(from_subject))}


def _block(c: dict, which: str, recorded: bool):
    """{'file','frame','ts'} of the first/last piece block frame, None when the connection carried
    none, NOT_RECORDED when connections.csv has no such columns."""
    if not recorded:
        return NOT_RECORDED
    if not c.get(f"{which}_block_frame"):
        return None
    return {"file": c[f"{which}_block_file"], "frame": _int(c[f"{which}_block_frame"]),
            "ts": c[f"{which}_block_ts"]}


def peer_identity(conns: list[dict], pieces: list[dict] | None, hashes: set[str],
                  limit: int = IDENTITY_ROWS) -> dict:
    """{'rows': [...], 'total': connections of the torrent, 'recorded': block columns present,
    'verified': pieces.csv available} for one torrent (its info hashes)."""
    c = [r for r in conns if r["info_hash"] in hashes]
    total = len(c)
    if total > limit:       # the largest (stable: ties in file order)
        c = sorted(c, key=lambda r: -(_int(r["downloaded_bytes"]) + _int(r["uploaded_bytes"])))[:limit]
    c.sort(key=lambda r: (parse_iso_ns(r["first_ts"]), _int(r["conn_id"])))
    recorded = all(k in getattr(conns, "columns", ()) for k in BLOCK_COLUMNS)
    verified = verified_per_address(pieces, hashes, subject_ips(conns))
    rows = []
    for r in c:
        remote = _other(r["subject_side"])
        ext = _ext(r[f"ext_handshake_{remote}"])
        v = verified.get(r["remote_ip"], (0, 0)) if verified is not None else None
        rows.append({
            "conn_id": r["conn_id"],
            "remote": endpoint(r["remote_ip"], r["remote_port"]),
            "remote_ip": r["remote_ip"],
            "transport": _transport(r["transport"]),
            "opened_by": ("the subject" if r["subject_side"] == "src" else "the remote peer")
            if r["initiator_known"] == "1" else "not captured",
            "client_v": ext.get("v") if isinstance(ext.get("v"), str) else None,
            "client_peer_id": peer_id_client(r[f"peer_id_{remote}"]),
            "peer_id": r[f"peer_id_{remote}"] or None,
            "downloaded_bytes": _int(r["downloaded_bytes"]),
            "uploaded_bytes": _int(r["uploaded_bytes"]),
            "verified_downloaded_bytes": None if v is None else v[0],
            "verified_uploaded_bytes": None if v is None else v[1],
            "first_block": _block(r, "first", recorded),
            "last_block": _block(r, "last", recorded),
            "first_ts": r["first_ts"], "last_ts": r["last_ts"],
        })
    return {"rows": rows, "total": total, "recorded": recorded, "verified": verified is not None}


def listen_ports(conns: list[dict], announces: list[dict]) -> list[dict]:
    """The subject's listen ports and what shows each: accepted connections (per transport), the
    BEP 10 ``p`` it sent, the ``port`` of its tracker announces; with counts and first/last time."""
    rows: dict = {}

    def add(ip, port, how, first, last):
        r = rows.setdefault((ip, _int(port), how), {"address": ip, "port": _int(port), "shown_by": how,
                                                     "count": 0, "first_ts": first, "last_ts": last})
        r["count"] += 1
        r["first_ts"] = min(r["first_ts"], first)
        r["last_ts"] = max(r["last_ts"], last)
    for r in conns:
        first, last = r["first_ts"], r["last_ts"]
        side = r["subject_side"]
        ip = r[f"{side}_ip"]
        if side == "dst" and r["initiator_known"] == "1":
            add(ip, r["dst_port"], f"accepted {_transport(r['transport'])} connections", first, last)
        p = _ext(r[f"ext_handshake_{side}"]).get("p")
        if isinstance(p, int) and 0 < p < 65536:
            add(ip, p, "its extension handshakes (BEP 10 p)", first, last)
    for a in announces:
        if a.get("port"):
            add(a.get("client_ip") or "", a["port"], "its tracker announces (port)", a["ts"], a["ts"])
    return sorted(rows.values(), key=lambda r: (r["address"], r["port"], r["shown_by"]))


def subject_peer_ids(conns: list[dict]) -> list[dict]:
    """The subject's peer_ids with the client each names (BEP 10 v, and from the peer_id), the
    connections that carried it and their first and last time."""
    rows: dict = {}
    for r in conns:
        side = r["subject_side"]
        pid = r[f"peer_id_{side}"]
        v = _ext(r[f"ext_handshake_{side}"]).get("v")
        v = v if isinstance(v, str) else None
        if not pid and not v:
            continue
        first, last = r["first_ts"], r["last_ts"]
        row = rows.setdefault((pid, v or ""), {"peer_id": pid or None, "client_v": v,
                                                "client_peer_id": peer_id_client(pid), "connections": 0,
                                                "first_ts": first, "last_ts": last})
        row["connections"] += 1
        row["first_ts"] = min(row["first_ts"], first)
        row["last_ts"] = max(row["last_ts"], last)
    return sorted(rows.values(), key=lambda r: (r["first_ts"], r["peer_id"] or ""))
