"""Subject-relative figures: per connection, per torrent, and the accounting.

Definitions (the contract of summary.json, torrents.csv, connections.csv):

* ``uploaded_bytes``: piece block bytes the subject put on the wire, each
  byte once however often it was retransmitted; a block cut short counts
  what was sent.  ``uploaded_acked_bytes``: the part the remote side
  acknowledged (TCP cumulative ACK).
* ``downloaded_bytes`` / ``downloaded_acked_bytes``: the same for blocks
  sent to the subject (acknowledged by the subject).
* Block bytes lost in capture gaps are never counted in those figures; they
  are reported as ``*_gap_bytes``.  Bytes counted as the tail of a block
  whose header was not captured (piece unknown) are included and also shown
  as ``*_unknown_piece_bytes``.
"""
from __future__ import annotations

from collections import Counter, defaultdict

from analyzer.sessions.connections import ConnectionRecord, Direction
from analyzer.sessions.subject import Subject
from analyzer.timefmt import iso_ns

# Every frame falls in exactly one of these (connections put all their frames in one).
ALL_CATEGORIES = ("bittorrent", "bittorrent_unattributed", "encrypted", "tracker", "dht", "lsd",
                  "other_tcp", "udp", "other_ip", "non_ip", "undecodable")
CONNECTION_CATEGORIES = ("bittorrent", "bittorrent_unattributed", "encrypted", "tracker", "other_tcp", "udp")


def subject_directions(r: ConnectionRecord, subject: Subject) -> tuple[str, Direction | None, Direction | None]:
    """(side, direction towards the subject, direction from the subject)."""
    side = subject.side(r.src_ip, r.src_port, r.dst_ip, r.dst_port)
    if side == "src":
        return side, r.rev, r.fwd
    if side == "dst":
        return side, r.fwd, r.rev
    return side, None, None


def transfer_figures(r: ConnectionRecord, subject: Subject) -> dict:
    side, down, up = subject_directions(r, subject)
    if down is None:
        return {"subject_side": side}
    return {
        "subject_side": side,
        "remote_ip": r.dst_ip if side == "src" else r.src_ip,
        "remote_port": r.dst_port if side == "src" else r.src_port,
        "downloaded_bytes": down.block_bytes,
        "downloaded_acked_bytes": down.block_acked_bytes,
        "downloaded_unknown_piece_bytes": down.block_tail_bytes,
        "downloaded_gap_bytes": down.block_gap_bytes,
        "uploaded_bytes": up.block_bytes,
        "uploaded_acked_bytes": up.block_acked_bytes,
        "uploaded_unknown_piece_bytes": up.block_tail_bytes,
        "uploaded_gap_bytes": up.block_gap_bytes,
        "remote_peer_id": down.peer_id,
        "subject_peer_id": up.peer_id,
        "remote_client": r.client(down),
        "subject_client": r.client(up),
    }


SUM_FIELDS = ("downloaded_bytes", "downloaded_acked_bytes", "uploaded_bytes", "uploaded_acked_bytes",
              "downloaded_unknown_piece_bytes", "uploaded_unknown_piece_bytes",
              "downloaded_gap_bytes", "uploaded_gap_bytes")


def torrent_groups(records: list[ConnectionRecord], metas: list | None = None) -> dict[str, str]:
    """info_hash -> the info_hash of its torrent entry.

    Hashes exchanged on one connection (a v1 handshake answered with the
    truncated v2 hash of a hybrid torrent) belong to one torrent, as do the
    v1 and truncated v2 hashes of one given or rebuilt torrent (``metas``);
    the entry is named by the initiator's hash in such an exchange, else by
    the v1 hash, else the smallest."""
    parent: dict[str, str] = {}

    def find(h: str) -> str:
        while parent.setdefault(h, h) != h:
            parent[h] = parent[parent[h]]
            h = parent[h]
        return h

    primaries = set()
    for r in records:
        if r.category != "bittorrent":
            continue
        find(r.info_hash)
        if r.info_hash_reply:
            primaries.add(r.info_hash)
            a, b = find(r.info_hash), find(r.info_hash_reply)
            if a != b:
                parent[max(a, b)] = min(a, b)
    seen = set(parent)
    for m in metas or ():
        hashes = [h for h in m.handshake_hashes if h in seen]
        for h in hashes[1:]:
            a, b = find(hashes[0]), find(h)
            if a != b:
                parent[max(a, b)] = min(a, b)
        if m.info_hash_v1 in seen and not any(h in primaries for h in hashes):
            primaries.add(m.info_hash_v1)
    members: dict[str, list[str]] = defaultdict(list)
    for h in parent:
        members[find(h)].append(h)
    out = {}
    for group in members.values():
        named = sorted(h for h in group if h in primaries) or sorted(group)
        for h in group:
            out[h] = named[0]
    return out


def meta_for(info_hash: str, aliases, metas) -> object | None:
    for m in metas or ():
        if {info_hash, *aliases} & set(m.handshake_hashes):
            return m
    return None


VERIFY_FIELDS = ("verified_downloaded_bytes", "failed_downloaded_bytes", "verified_uploaded_bytes",
                 "failed_uploaded_bytes", "redundant_downloaded_bytes", "redundant_uploaded_bytes",
                 "pad_downloaded_bytes", "pad_uploaded_bytes")


def verification_figures(pieces: list, key: str, meta, subject: Subject) -> dict:
    """Verified / failed / incomplete pieces of one torrent, from the subject's side.

    Downloaded: pieces the subject received (each counted once, its content
    bytes).  Uploaded: the bytes the subject contributed to pieces other hosts
    received.  Held: pieces the subject verifiably had (received verified, or
    sent whole and verified at the receiver)."""
    out = dict.fromkeys(VERIFY_FIELDS, 0)
    counts = {f"pieces_{d}_{st}": 0 for d in ("downloaded", "uploaded")
              for st in ("verified", "failed", "incomplete")}
    held = {}
    for p in pieces:
        if p.info_hash != key:
            continue
        mine_rx = subject.has_address(p.receiver)
        if mine_rx:
            counts[f"pieces_downloaded_{p.status}"] += 1
            out["redundant_downloaded_bytes"] += p.redundant_bytes
            out["pad_downloaded_bytes"] += p.pad_bytes
            if p.status == "verified":
                out["verified_downloaded_bytes"] += p.size
                held[p.index] = p.size
            elif p.status == "failed":
                out["failed_downloaded_bytes"] += p.size
            continue
        out["redundant_uploaded_bytes"] += sum(n for ip, n in p.senders_redundant.items()
                                               if subject.has_address(ip))
        out["pad_uploaded_bytes"] += sum(n for ip, n in p.senders_pad.items() if subject.has_address(ip))
        sent = sum(n for ip, n in p.senders.items() if subject.has_address(ip))
        if not sent:
            continue
        counts[f"pieces_uploaded_{p.status}"] += 1
        if p.status == "verified":
            out["verified_uploaded_bytes"] += min(sent, p.size)
            if sent >= p.covered:
                held[p.index] = p.size
        elif p.status == "failed":
            out["failed_uploaded_bytes"] += min(sent, p.size)
    out.update(counts)
    out["held_bytes"] = sum(held.values())
    out["held_share"] = round(out["held_bytes"] / meta.total_size, 6) if meta.total_size else None
    return out


def build_torrents(records: list[ConnectionRecord], subject: Subject, metas: list | None = None,
                   pieces: list | None = None) -> list[dict]:
    """One object per torrent (sorted by info_hash), figures from the subject's side;
    name, size, piece length and v2 hash when the torrent's metadata is known."""
    acc: dict = {}
    groups = torrent_groups(records, metas)
    for r in records:
        if r.category != "bittorrent":
            continue
        key = groups[r.info_hash]
        t = acc.get(key)
        if t is None:
            t = acc[key] = {
                "sums": Counter(), "transports": defaultdict(Counter), "peers": set(), "peer_ids": set(),
                "connections": 0, "other_connections": 0, "first": None, "last": None,
                "remote_clients": Counter(), "subject_clients": Counter(), "subject_peer_ids": set(),
                "aliases": set(),
            }
        t["aliases"].update(h for h in (r.info_hash, r.info_hash_reply) if h and h != key)
        f = transfer_figures(r, subject)
        if "downloaded_bytes" not in f:
            t["other_connections"] += 1
            continue
        t["connections"] += 1
        for k in SUM_FIELDS:
            t["sums"][k] += f[k]
            t["transports"][r.transport][k] += f[k]
        t["transports"][r.transport]["connections"] += 1
        t["peers"].add(f["remote_ip"])
        if f["remote_peer_id"]:
            t["peer_ids"].add(f["remote_peer_id"])
        if f["subject_peer_id"]:
            t["subject_peer_ids"].add(f["subject_peer_id"])
        if f["remote_client"]:
            t["remote_clients"][f["remote_client"]] += 1
        if f["subject_client"]:
            t["subject_clients"][f["subject_client"]] += 1
        t["first"] = r.first_ts_ns if t["first"] is None else min(t["first"], r.first_ts_ns)
        t["last"] = r.last_ts_ns if t["last"] is None else max(t["last"], r.last_ts_ns)
    out = []
    for info_hash in sorted(acc):
        t = acc[info_hash]
        row = {"info_hash": info_hash, "info_hash_aliases": sorted(t["aliases"])}
        m = meta_for(info_hash, t["aliases"], metas)
        row.update({
            "name": m.name if m else None,
            "total_size": m.total_size if m else None,
            "piece_length": m.piece_length if m else None,
            "info_hash_v1": m.info_hash_v1 if m else None,
            "info_hash_v2": m.info_hash_v2 if m else None,
            "metadata_source": m.source if m else None,
        })
        if m is not None and pieces is not None:
            row["verification"] = verification_figures(pieces, m.info_hash_v1 or m.info_hash_v2[:40], m, subject)
            for k in VERIFY_FIELDS:
                row[k] = row["verification"][k]
        for k in SUM_FIELDS[:4]:
            row[k] = t["sums"][k]
        row.update({
            "peers": len(t["peers"]),
            "connections": t["connections"],
            "first_seen": iso_ns(t["first"]),
            "last_seen": iso_ns(t["last"]),
        })
        for k in SUM_FIELDS[4:]:
            row[k] = t["sums"][k]
        row.update({
            "peer_ids": len(t["peer_ids"]),
            "other_connections": t["other_connections"],
            "transports": {name: {"connections": c["connections"], **{k: c[k] for k in SUM_FIELDS}}
                           for name, c in sorted(t["transports"].items())},
            "remote_clients": dict(sorted(t["remote_clients"].items())),
            "subject_clients": dict(sorted(t["subject_clients"].items())),
        })
        out.append(row)
    return out


def build_subject_clients(records, subject) -> list[dict]:
    """The subject's own client(s): BEP 10 ``v`` and the client decoded from its peer_id,
    with the peer_ids it used and how many connections each was seen on."""
    from analyzer.protocols.peer_id import decode_peer_id, peer_id_text
    seen: dict = {}
    for r in records:
        if not r.category.startswith("bittorrent"):
            continue
        _, down, up = subject_directions(r, subject)
        if up is None or (up.peer_id is None and not up.ext.get("v")):
            continue
        key = (up.ext.get("v") or "", decode_peer_id(up.peer_id) or "", peer_id_text(up.peer_id))
        e = seen.setdefault(key, [0, r.first_ts_ns, r.last_ts_ns])
        e[0] += 1
        e[1] = min(e[1], r.first_ts_ns)
        e[2] = max(e[2], r.last_ts_ns)
    return [{"version_string": v, "peer_id_client": c, "peer_id": pid, "connections": n,
             "first_seen": iso_ns(first), "last_seen": iso_ns(last)}
            for (v, c, pid), (n, first, last) in sorted(seen.items())]


def bittorrent_endpoints(records, announces, udp) -> dict:
    """(ip, port) -> the plaintext evidence that BitTorrent listens there: the port a client
    announced to a tracker or by Local Service Discovery, the BEP 10 ``p`` (listen port) of
    an extended handshake, the responder of a plaintext BitTorrent connection.  Context for
    encrypted connections, whose own bytes say nothing about the protocol inside."""
    eps: dict = defaultdict(set)
    for a in announces:
        if a.kind == "announce" and a.port:
            eps[(a.client_ip, a.port)].add(f"{a.transport.upper()} tracker announce")
    for (ip, _h), (_n, _first, _last, port) in udp.lsd.items():
        if port:
            eps[(ip, port)].add("Local Service Discovery announce")
    for r in records:
        if r.category != "bittorrent":
            continue
        if r.initiator_known:
            eps[(r.dst_ip, r.dst_port)].add("responder of a plaintext BitTorrent connection")
        for d, ip in ((r.fwd, r.src_ip), (r.rev, r.dst_ip)):
            p = d.ext.get("p")
            if isinstance(p, int) and 0 < p < 65536:
                eps[(ip, p)].add("listen port in a BEP 10 handshake")
    return dict(eps)


def encryption_context(r, endpoints: dict) -> str:
    """The plaintext evidence that an encrypted connection's listening side speaks BitTorrent
    (its responder when the SYN was captured, else either end), or ""."""
    ends = [(r.dst_ip, r.dst_port)] if r.initiator_known else [(r.src_ip, r.src_port), (r.dst_ip, r.dst_port)]
    found = [f"{ip}:{port}: " + ", ".join(sorted(endpoints[(ip, port)])) for ip, port in ends
             if (ip, port) in endpoints]
    return "; ".join(found)


def build_encrypted(records, subject, endpoints: dict | None = None) -> dict:
    """MSE/PE connections from the subject's side: every byte after the key
    exchange.  Their content cannot be attributed to any torrent (the keys
    cannot be recovered from a capture).  ``endpoints`` (bittorrent_endpoints):
    to count the connections whose listening side is known for BitTorrent."""
    out = Counter()
    peers = set()
    for r in records:
        if not r.encryption.startswith("mse"):
            continue
        side, down, up = subject_directions(r, subject)
        if down is None:
            out["other_connections"] += 1
            continue
        key = "connections" if r.encryption == "mse" else "plaintext_after_key_exchange"
        out[key] += 1
        if r.encryption != "mse":
            continue
        peers.add(r.dst_ip if side == "src" else r.src_ip)
        if endpoints and encryption_context(r, endpoints):
            out["with_bittorrent_context"] += 1
        flight_up, flight_down = (r.flight_src, r.flight_dst) if side == "src" else (r.flight_dst, r.flight_src)
        out["uploaded_bytes"] += max(0, up.payload_bytes - flight_up)
        out["downloaded_bytes"] += max(0, down.payload_bytes - flight_down)
        out["key_exchange_bytes"] += flight_up + flight_down
    return {
        "connections": out["connections"], "peers": len(peers),
        "uploaded_bytes": out["uploaded_bytes"], "downloaded_bytes": out["downloaded_bytes"],
        "key_exchange_bytes": out["key_exchange_bytes"],
        "plaintext_after_key_exchange": out["plaintext_after_key_exchange"],
        "other_connections": out["other_connections"],
        "with_bittorrent_context": out["with_bittorrent_context"],
        "note": ("Message Stream Encryption recognised by its key exchange; the keys cannot be recovered from "
                 "a capture, so these bytes are not attributed to any torrent. Connections that continued "
                 "in plaintext after the key exchange are parsed and counted like the others. "
                 "with_bittorrent_context: connections whose listening end is shown to be BitTorrent by "
                 "plaintext in the capture (tracker or LSD announce of that port, a BEP 10 listen port, "
                 "a plaintext BitTorrent connection to it); connections.csv encryption_context names it."),
    }


def build_unattributed(records: list[ConnectionRecord], subject: Subject) -> dict:
    """BitTorrent connections without an info_hash (no handshake captured),
    from the subject's side: their piece bytes cannot be given to a torrent."""
    out = Counter()
    peers = set()
    for r in records:
        if r.category != "bittorrent_unattributed":
            continue
        f = transfer_figures(r, subject)
        if "downloaded_bytes" not in f:
            out["other_connections"] += 1
            continue
        out["connections"] += 1
        peers.add(f["remote_ip"])
        for k in SUM_FIELDS:
            out[k] += f[k]
    return {"connections": out["connections"], "peers": len(peers), **{k: out[k] for k in SUM_FIELDS},
            "other_connections": out["other_connections"]}


TCP_STREAM_FIELDS = ("payload_bytes", "duplicate_bytes", "conflict_bytes", "uncompared_bytes", "gap_bytes",
                     "late_bytes", "truncated_bytes")
UTP_STREAM_FIELDS = ("payload_bytes", "duplicate_bytes", "conflict_packets", "gap_packets", "late_bytes",
                     "truncated_bytes")
PEER_WIRE_FIELDS = ("handshake_bytes", "message_bytes", "block_bytes", "block_tail_bytes", "block_gap_bytes",
                    "unparsed_bytes", "opaque_bytes", "lost_messages", "protocol_errors", "resyncs")


def build_accounting(result) -> dict:
    """Every frame in exactly one category; stream-level byte accounting."""
    cats = {c: {"frames": 0, "bytes": 0} for c in ALL_CATEGORIES}
    for c in CONNECTION_CATEGORIES:
        cats[c]["connections"] = 0
    streams = {"tcp": {c: Counter() for c in ("bittorrent", "bittorrent_unattributed", "encrypted", "tracker",
                                               "other_tcp")},
               "utp": {c: Counter() for c in ("bittorrent", "bittorrent_unattributed", "encrypted", "udp")}}
    fields = {"tcp": TCP_STREAM_FIELDS, "utp": UTP_STREAM_FIELDS}
    peer_wire = Counter()
    gaps = {"bytes": Counter(), "packets": Counter()}
    for r in result.records:
        c = cats[r.category]
        c["frames"] += r.frames
        c["bytes"] += r.wire_bytes
        c["connections"] += 1
        side, down, up = subject_directions(r, result.subject)
        for d in (r.fwd, r.rev):
            for k in fields[r.transport]:
                streams[r.transport][r.category][k] += getattr(d, k)
            if r.category.startswith("bittorrent"):
                for k in PEER_WIRE_FIELDS:
                    peer_wire[k] += getattr(d, k)
        unit = "bytes" if r.transport == "tcp" else "packets"
        field_name = "gap_bytes" if r.transport == "tcp" else "gap_packets"
        if down is not None:
            gaps[unit]["to_subject"] += getattr(down, field_name)
            gaps[unit]["from_subject"] += getattr(up, field_name)
        else:
            gaps[unit]["not_involving_subject"] += getattr(r.fwd, field_name) + getattr(r.rev, field_name)
    for k, (frames, nbytes) in result.kinds.items():
        cats[k]["frames"] += frames
        cats[k]["bytes"] += nbytes
    for (k, unit), n in result.udp.categories.items():
        cats.setdefault(k, {"frames": 0, "bytes": 0})[unit] += n
    cats["undecodable"]["reasons"] = dict(sorted(result.reasons.items()))
    if result.unknown_link_types:
        cats["undecodable"]["unknown_link_types"] = {str(k): v for k, v in sorted(result.unknown_link_types.items())}
    frames = sum(c["frames"] for c in cats.values())
    directions = ("to_subject", "from_subject", "not_involving_subject")
    return {
        "frames": frames,
        "bytes": sum(c["bytes"] for c in cats.values()),
        "frames_read": result.frames,
        "categories": cats,
        "gap_bytes": {k: gaps["bytes"][k] for k in directions},
        "gap_packets": {k: gaps["packets"][k] for k in directions},
        "tcp_streams": {c: {k: v[k] for k in TCP_STREAM_FIELDS} for c, v in streams["tcp"].items()},
        "utp_streams": {c: {k: v[k] for k in UTP_STREAM_FIELDS} for c, v in streams["utp"].items()},
        "peer_wire": {k: peer_wire[k] for k in PEER_WIRE_FIELDS},
        "ip_fragments": dict(result.fragments),
        "reused_tuples": result.reused_tuples,
        "connections_finished_after_silence": result.idle_finished,
        "connections_continued_after_silence": result.linked,
        "capture_damage": {
            "unreadable_files": sum(1 for r in result.reports if not r.readable),
            "damaged_bytes": sum(r.damaged_bytes for r in result.reports),
            "truncated_bytes": sum(r.truncated_bytes for r in result.reports),
        },
    }
