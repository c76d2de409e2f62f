"""The wire side of the client state reconciliation, from the findings or from a summary.json.

* ``client_state_finding(state, findings)``: the reconciliation of a run
  (``wire_from_findings``: the torrents, their verified pieces, the inputs'
  time span, the encrypted and unattributed bytes of ``Findings``, and the
  piece messages the subject sent per torrent, for a record whose uploaded
  counter includes their headers (Transmission));
* ``wire_from_summary(summary, pieces, subject, metas)``: the same inputs
  from an output folder already written: summary.json as a dict, and
  pieces.csv rows as dicts (``info_hash``, ``piece``, ``status``,
  ``receiver``, ``senders`` "ip=n;...", ``covered_bytes``,
  ``subject_received``) or the verifier's ``PieceResult`` list; ``subject``
  (a ``Subject`` or the subject's addresses) tells who sent a piece;
  ``metas`` (``TorrentMeta``) give each torrent's piece count and v1 byte
  length (pad files included), else the summary's ``total_size`` and
  ``piece_length`` do; ``connections`` (connections.csv rows as dicts) give
  the piece messages the subject sent (``pieces_src_to_dst`` /
  ``pieces_dst_to_src`` by ``subject_side``), without them that count is
  unknown.
"""
from __future__ import annotations

import ipaddress

from analyzer.evidence.clientstate.model import ClientStateSet
from analyzer.findings.client_state import (CaptureContext, CaptureSpan, ClientStateFinding, WireTorrent,
                                            ns_from_iso, reconcile_state)

RANK = {"incomplete": 0, "failed": 1, "verified": 2}


def client_state_finding(state: ClientStateSet, findings) -> ClientStateFinding:
    """Every record of ``state`` reconciled with the run of ``findings`` (a ``Findings``)."""
    return reconcile_state(state, *wire_from_findings(findings))


def uploaded_piece_messages(f) -> dict[str, int]:
    """{torrent info hash: piece messages the subject sent on its connections} (headers captured), from
    the findings ``f``."""
    return {t.info_hash: t.uploaded_piece_messages for t in f.torrents}


def wire_from_findings(f) -> tuple[list[WireTorrent], CaptureSpan, CaptureContext]:
    """The wire side of the reconciliation from ``Findings``."""
    firsts = [i.first_ts_ns for i in f.inputs if i.first_ts_ns is not None]
    lasts = [i.last_ts_ns for i in f.inputs if i.last_ts_ns is not None]
    span = CaptureSpan(min(firsts) if firsts else None, max(lasts) if lasts else None)
    un = f.unattributed.sums
    context = CaptureContext(f.encrypted.uploaded_bytes, f.encrypted.downloaded_bytes, un.uploaded_bytes,
                             un.downloaded_bytes)
    pieces = _pieces([(p.piece, p.subject_received) for p in f.pieces or ()], f.subject)
    wires = []
    for t in f.torrents:
        s, m, v = t.sums, t.meta, t.verification
        wires.append(_wire(
            t.info_hash, t.info_hash_aliases, m, {k: getattr(s, k) for k in SUMS}, t.first_seen_ns, t.last_seen_ns,
            (v.redundant_downloaded_bytes, v.failed_downloaded_bytes) if v is not None else None,
            (m.piece_length, m.v1_length) if m is not None and m.piece_length else None, pieces))
        wires[-1].uploaded_piece_messages = t.uploaded_piece_messages
    return wires, span, context


def wire_from_summary(summary: dict, pieces=(), subject=None, metas=(),
                      connections=None) -> tuple[list[WireTorrent], CaptureSpan, CaptureContext]:
    firsts = [ns_from_iso(i.get("first_ts")) for i in summary.get("inputs", [])]
    lasts = [ns_from_iso(i.get("last_ts")) for i in summary.get("inputs", [])]
    firsts, lasts = [t for t in firsts if t is not None], [t for t in lasts if t is not None]
    span = CaptureSpan(min(firsts) if firsts else None, max(lasts) if lasts else None)
    enc, un = summary.get("encrypted") or {}, summary.get("unattributed") or {}
    context = CaptureContext(int(enc.get("uploaded_bytes") or 0), int(enc.get("downloaded_bytes") or 0),
                             int(un.get("uploaded_bytes") or 0), int(un.get("downloaded_bytes") or 0))
    by_key = _pieces([(p, None) for p in pieces], subject)
    messages = _messages_from_rows(connections) if connections is not None else None
    wires = []
    for t in summary.get("torrents", []):
        aliases = set(t.get("info_hash_aliases") or ())
        for k in ("info_hash_v1", "info_hash_v2"):
            if t.get(k):
                aliases.add(t[k][:40])
        meta = next((m for m in metas if {t["info_hash"], *aliases} & set(m.handshake_hashes)), None)
        if meta is not None and meta.piece_length:
            geometry = (meta.piece_length, meta.v1_length)
        elif t.get("piece_length") and t.get("total_size") is not None:
            geometry = (int(t["piece_length"]), int(t["total_size"]))
        else:
            geometry = None
        verified = (int(t.get("redundant_downloaded_bytes") or 0), int(t.get("failed_downloaded_bytes") or 0)) \
            if "verification" in t else None
        w = _wire(t["info_hash"], aliases, None, {k: int(t.get(k) or 0) for k in SUMS},
                  ns_from_iso(t.get("first_seen")), ns_from_iso(t.get("last_seen")), verified, geometry, by_key)
        w.name = t.get("name")
        if messages is not None:
            w.uploaded_piece_messages = sum(messages.get(k, 0) for k in {t["info_hash"], *aliases})
        wires.append(w)
    return wires, span, context


def _messages_from_rows(rows) -> dict[str, int]:
    """{info hash: piece messages the subject sent} from connections.csv rows (each connection once, under
    its handshake's info hash, else its reply's)."""
    out: dict = {}
    for r in rows:
        side = r.get("subject_side")
        if r.get("category") != "bittorrent" or side not in ("src", "dst"):
            continue
        n = int(r.get("pieces_src_to_dst" if side == "src" else "pieces_dst_to_src") or 0)
        key = r.get("info_hash") or r.get("info_hash_reply")
        if key:
            out[key] = out.get(key, 0) + n
    return out


SUMS = ("downloaded_bytes", "downloaded_acked_bytes", "uploaded_bytes", "uploaded_acked_bytes",
        "downloaded_gap_bytes", "uploaded_gap_bytes")


def _wire(info_hash, aliases, meta, sums: dict, first, last, verified, geometry, pieces: dict) -> WireTorrent:
    aliases = set(aliases)
    if meta is not None:
        aliases.update(meta.handshake_hashes)
    aliases.discard(info_hash)
    w = WireTorrent(info_hash=info_hash, aliases=tuple(sorted(aliases)), name=meta.name if meta else None,
                    first_seen_ns=first, last_seen_ns=last, pieces_known=verified is not None, **sums)
    if verified is not None:
        w.redundant_downloaded_bytes, w.failed_downloaded_bytes = verified
    if geometry is not None:
        w.piece_length, w.length_bytes = geometry
        w.num_pieces = -(-w.length_bytes // w.piece_length)
    for k in w.keys():
        if k in pieces:
            received, sent = pieces[k]
            for i, s in received.items():
                if RANK[s] > RANK.get(w.received.get(i), -1):
                    w.received[i] = s
            w.sent_verified = frozenset(w.sent_verified | sent)
    return w


def _is_subject(subject, ip: str) -> bool:
    if subject is None:
        return False
    if hasattr(subject, "has_address"):
        return subject.has_address(ip)
    try:
        return ipaddress.ip_address(ip) in {ipaddress.ip_address(a) for a in subject}
    except ValueError:
        return False


def _senders(value) -> dict:
    if isinstance(value, dict):
        return value
    out = {}
    for part in str(value or "").split(";"):
        ip, _, n = part.rpartition("=")
        if ip and n.isdigit():
            out[ip] = int(n)
    return out


def _pieces(pieces, subject) -> dict:
    """{info hash: ({piece: best status the subject received}, {pieces it sent whole, verified})}
    from (PieceResult or pieces.csv row, subject received or None) pairs."""
    by_key: dict = {}
    for p, received in pieces:
        if isinstance(p, dict):
            key, index, status = p["info_hash"], int(p["piece"]), p["status"]
            if received is None:
                received = p.get("subject_received")
                if isinstance(received, str):          # as read back from pieces.csv
                    received = received.lower() == "true"
                elif received is None:
                    received = _is_subject(subject, p.get("receiver", ""))
            senders, covered = _senders(p.get("senders")), int(p.get("covered_bytes") or 0)
        else:
            key, index, status = p.info_hash, p.index, p.status
            if received is None:
                received = _is_subject(subject, p.receiver)
            senders, covered = p.senders, p.covered
        rec, sent = by_key.setdefault(key, ({}, set()))
        if received:
            if RANK.get(status, -1) > RANK.get(rec.get(index), -1):
                rec[index] = status
        elif status == "verified":
            mine = sum(n for ip, n in senders.items() if _is_subject(subject, ip))
            if mine and mine >= covered:
                sent.add(index)
    return by_key
