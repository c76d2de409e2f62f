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
"""
from __future__ import annotations

import json
from urllib.parse import unquote_to_bytes

import pandas as pd

from analyzer.protocols.peer_id import decode_peer_id

IDENTITY_ROWS = 50      # connections per torrent in the peer identity table (those with the most piece bytes)
BLOCK_COLUMNS = ("first_block_file", "first_block_frame", "first_block_ts",
                 "last_block_file", "last_block_frame", "last_block_ts")
NOT_RECORDED = "not recorded"


def _other(side: str) -> str:
    return "dst" if side == "src" else "src"


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


def endpoint(ip: str, port) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _int(v) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def subject_ips(conns: pd.DataFrame) -> set[str]:
    """The subject's own addresses on its connections."""
    return set(conns.loc[conns["subject_side"] == "src", "src_ip"]) \
        | set(conns.loc[conns["subject_side"] == "dst", "dst_ip"])


def verified_per_address(pieces: pd.DataFrame | None, hashes: set[str], mine: set[str]) -> dict | None:
    """{remote address: (verified bytes it sent the subject, verified bytes the subject sent it)} for
    the torrent's verified pieces; None without pieces.csv (no metadata)."""
    if pieces is None:
        return None
    p = pieces[pieces["info_hash"].isin(hashes) & (pieces["status"] == "verified") & (pieces["senders"] != "")]
    out: dict = {}
    if p.empty:
        return out
    s = p[["receiver", "senders"]].assign(senders=p["senders"].str.split(";")).explode("senders")
    parts = s["senders"].str.rsplit("=", n=1, expand=True)
    s = s.assign(sender=parts[0], bytes=pd.to_numeric(parts[1], errors="coerce").fillna(0).astype("int64"))
    to_subject = s[s["receiver"].isin(mine) & ~s["sender"].isin(mine)].groupby("sender")["bytes"].sum()
    from_subject = s[s["sender"].isin(mine) & ~s["receiver"].isin(mine)].groupby("receiver")["bytes"].sum()
    for ip in set(to_subject.index) | set(from_subject.index):
        out[ip] = (int(to_subject.get(ip, 0)), int(from_subject.get(ip, 0)))
    return out


def _block(c: dict, which: str, recorded: bool):
    """{'file','frame','ts'} of the first/last piece block frame, None when the connection carried
    none, NOT_RECORDED when connections.csv has no such columns."""
    if not recorded:
        return NOT_RECORDED
    if not c.get(f"{which}_block_frame"):
        return None
    return {"file": c[f"{which}_block_file"], "frame": _int(c[f"{which}_block_frame"]),
            "ts": c[f"{which}_block_ts"]}


def peer_identity(conns: pd.DataFrame, pieces: pd.DataFrame | None, hashes: set[str],
                  limit: int = IDENTITY_ROWS) -> dict:
    """{'rows': [...], 'total': connections of the torrent, 'recorded': block columns present,
    'verified': pieces.csv available} for one torrent (its info hashes)."""
    c = conns[conns["info_hash"].isin(hashes)]
    total = len(c)
    if total > limit:
        size = c["downloaded_bytes"].map(_int) + c["uploaded_bytes"].map(_int)
        c = c.loc[size.sort_values(ascending=False, kind="stable").index[:limit]]
    c = c.sort_values(["first_ts", "conn_id"], key=lambda s: s if s.name == "first_ts" else s.map(_int),
                      kind="stable")
    recorded = all(k in conns.columns for k in BLOCK_COLUMNS)
    verified = verified_per_address(pieces, hashes, subject_ips(conns))
    rows = []
    for r in c.to_dict("records"):
        remote = _other(r["subject_side"])
        ext = _ext(r[f"ext_handshake_{remote}"])
        v = verified.get(r["remote_ip"], (0, 0)) if verified is not None else None
        rows.append({
            "conn_id": r["conn_id"],
            "remote": endpoint(r["remote_ip"], r["remote_port"]),
            "remote_ip": r["remote_ip"],
            "transport": {"tcp": "TCP", "utp": "uTP"}.get(r["transport"], r["transport"]),
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
            "first_ts": _ts(r["first_ts"]), "last_ts": _ts(r["last_ts"]),
        })
    return {"rows": rows, "total": total, "recorded": recorded, "verified": verified is not None}


def _ts(x) -> str:
    """A connections.csv time (a pandas Timestamp after ReportData's parse) as the CSV's ISO text."""
    if isinstance(x, pd.Timestamp):
        return x.strftime("%Y-%m-%dT%H:%M:%S") + f".{x.microsecond * 1000 + x.nanosecond:09d}Z"
    return x


def listen_ports(conns: pd.DataFrame, announces: list[dict]) -> list[dict]:
    """The subject's listen ports and what shows each: accepted connections (per transport), the
    BEP 10 ``p`` it sent, the ``port`` of its tracker announces; with counts and first/last time."""
    rows: dict = {}

    def add(ip, port, how, first, last):
        r = rows.setdefault((ip, _int(port), how), {"address": ip, "port": _int(port), "shown_by": how,
                                                     "count": 0, "first_ts": first, "last_ts": last})
        r["count"] += 1
        r["first_ts"] = min(r["first_ts"], first)
        r["last_ts"] = max(r["last_ts"], last)
    for r in conns.to_dict("records"):
        first, last = _ts(r["first_ts"]), _ts(r["last_ts"])
        side = r["subject_side"]
        ip = r[f"{side}_ip"]
        if side == "dst" and r["initiator_known"] == "1":
            transport = {"tcp": "TCP", "utp": "uTP"}.get(r["transport"], r["transport"])
            add(ip, r["dst_port"], f"accepted {transport} connections", first, last)
        p = _ext(r[f"ext_handshake_{side}"]).get("p")
        if isinstance(p, int) and 0 < p < 65536:
            add(ip, p, "its extension handshakes (BEP 10 p)", first, last)
    for a in announces:
        if a.get("port"):
            add(a.get("client_ip") or "", a["port"], "its tracker announces (port)", a["ts"], a["ts"])
    return sorted(rows.values(), key=lambda r: (r["address"], r["port"], r["shown_by"]))


def subject_peer_ids(conns: pd.DataFrame) -> list[dict]:
    """The subject's peer_ids with the client each names (BEP 10 v, and from the peer_id), the
    connections that carried it and their first and last time."""
    rows: dict = {}
    for r in conns.to_dict("records"):
        side = r["subject_side"]
        pid = r[f"peer_id_{side}"]
        v = _ext(r[f"ext_handshake_{side}"]).get("v")
        v = v if isinstance(v, str) else None
        if not pid and not v:
            continue
        first, last = _ts(r["first_ts"]), _ts(r["last_ts"])
        row = rows.setdefault((pid, v or ""), {"peer_id": pid or None, "client_v": v,
                                                "client_peer_id": peer_id_client(pid), "connections": 0,
                                                "first_ts": first, "last_ts": last})
        row["connections"] += 1
        row["first_ts"] = min(row["first_ts"], first)
        row["last_ts"] = max(row["last_ts"], last)
    return sorted(rows.values(), key=lambda r: (r["first_ts"], r["peer_id"] or ""))
