"""Connections cut by the snap length: a lower and an upper bound, and the info hash from
the subject's announces.

Theory of operation
-------------------
Sensors often keep only the first 64-128 bytes of each frame.  The TCP (uTP)
sequence numbers still say how many bytes each direction carried, but most
piece messages lose their header, so a single figure would either invent or
drop bytes.  For every subject connection whose frames the snap length cut,
each direction gets

* a lower bound: piece bytes of the messages whose header was captured (the
  block length the header states: the captured part and the part the snap
  length cut, ``block_bytes - block_tail_bytes + block_gap_bytes``);
* an upper bound: the bytes in sequence-number space after the handshake,
  less the bytes captured and parsed as other messages or headers
  (``payload_bytes + gap_bytes - 68 - message_bytes``; uTP: the captured and
  cut bytes of every packet, unknown when packets were lost, as a lost uTP
  packet's length is unknown).

Connections not cut have both bounds equal to their figure.  The bounds add
up per torrent (summary.json ``bounds``).

The handshake names the info hash when the snap length kept its first 48
bytes (ahead of 128-byte snap lengths on Ethernet).  Otherwise the hashes the
subject host announced (tracker announce, also one cut by the snap length
that kept its info hash; LSD; DHT get_peers/announce_peer) are used, when
they name one torrent: for the listening port of a connection the subject
accepted, announces of that port (or whose port was not captured); for a
connection it opened, all its announces.  The attribution says so
(``attribution`` "announce", the basis in ``bounds``); several torrents
leave the connection without info hash.
"""
from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field

HANDSHAKE = 68


@dataclass(slots=True)
class Bounds:
    downloaded_lower_bytes: int = 0
    downloaded_upper_bytes: int | None = 0      # None: unknown (uTP packets lost)
    uploaded_lower_bytes: int = 0
    uploaded_upper_bytes: int | None = 0
    truncated_connections: int = 0

    def add(self, other: "Bounds") -> None:
        self.downloaded_lower_bytes += other.downloaded_lower_bytes
        self.uploaded_lower_bytes += other.uploaded_lower_bytes
        self.downloaded_upper_bytes = _plus(self.downloaded_upper_bytes, other.downloaded_upper_bytes)
        self.uploaded_upper_bytes = _plus(self.uploaded_upper_bytes, other.uploaded_upper_bytes)
        self.truncated_connections += other.truncated_connections


def _plus(a, b):
    return None if a is None or b is None else a + b


def truncated(r) -> bool:
    return bool(r.fwd.truncated_bytes or r.rev.truncated_bytes)


def direction_bounds(r, d, figure: int) -> tuple[int, int | None]:
    """(lower, upper) block bytes of direction ``d`` of record ``r``; ``figure`` when not cut."""
    if not truncated(r):
        return figure, figure
    lower = d.block_bytes - d.block_tail_bytes + d.block_gap_bytes
    if r.transport == "tcp":
        span = d.payload_bytes + d.gap_bytes
    elif d.gap_packets:
        return lower, None
    else:
        span = d.payload_bytes + d.truncated_bytes
    hs = HANDSHAKE if d.handshake_bytes else 0
    return lower, max(lower, span - hs - d.message_bytes)


def connection_bounds(r, down, up, sums) -> Bounds:
    dl, du = direction_bounds(r, down, sums.downloaded_bytes)
    ul, uu = direction_bounds(r, up, sums.uploaded_bytes)
    return Bounds(dl, du, ul, uu, int(truncated(r)))


@dataclass
class Announced:
    """The hashes each subject host announced: host -> [(hash, port or None, mechanism, frame ref)]."""

    by_host: dict = field(default_factory=lambda: defaultdict(list))


def announced(announces: list, udp, subject) -> Announced:
    out = Announced()
    for a in announces:
        if a.kind == "announce" and subject.has_address(a.client_ip):
            kind = f"{a.transport.upper()} tracker announce" + (" (cut by the snap length)" if a.port is None else "")
            out.by_host[a.client_ip].append((a.info_hash, a.port, kind, (a.file_idx, a.frame_no, a.ts_ns)))
    for (ip, h), (_n, first, _last, port) in udp.lsd.items():
        if subject.has_address(ip):
            out.by_host[ip].append((h, port, "LSD announce", (-1, -1, first)))
    for (h, method, querier), f in udp.dht_facts.items():
        if method in ("get_peers", "announce_peer") and subject.has_address(querier):
            out.by_host[querier].append((h, None, f"DHT {method}", (-1, -1, f.first_ns)))
    return out


def attribute(r, t, known: Announced, groups: dict):
    """The record ``r`` (a cut subject connection without info hash) attributed to the one torrent
    its subject host announced, as a copy; else ``r`` itself.  ``groups``: torrent groups, so a
    hybrid's v1 and v2 hashes count as one torrent."""
    if r.category != "bittorrent_unattributed" or not t.host or not truncated(r):
        return r
    listening = r.initiator_known and t.side == "dst"
    port = r.dst_port if listening else None
    found = [e for e in known.by_host.get(t.host, ()) if not listening or e[1] in (None, port)]
    torrents = {groups.get(h, h) for h, *_ in found}
    if len(torrents) != 1:
        return r
    [key] = torrents
    hashes = sorted({h for h, *_ in found})
    first = min(found, key=lambda e: e[3][2])
    kinds = ", ".join(sorted({k for _, _, k, _ in found}))
    where = f"{t.host}:{port}" if listening else t.host
    return dataclasses.replace(
        r, category="bittorrent", info_hash=key, attribution="announce",
        attribution_file=first[3][0], attribution_frame=first[3][1], attribution_ts_ns=first[3][2],
        evidence=f"{r.evidence}; info hash from announces of {where} ({kinds}: {', '.join(hashes)}), "
                 f"not from the connection")
