"""Connections from the subject's side: the ones no torrent can be named for (no
handshake captured; encrypted), the subject's own clients, and each connection as a
row of connections.csv."""
from __future__ import annotations

from dataclasses import dataclass, field

from analyzer.findings.transfers import Transfer, TransferSums, transfer
from analyzer.findings.truncation import Bounds, attribute
from analyzer.protocols.peer_id import decode_peer_id, peer_id_text
from analyzer.sessions.records import ConnectionRecord


def bittorrent_endpoints(index, announces, udp) -> dict:
    """(ip, port) -> the plaintext evidence that BitTorrent listens there: the port a client
    announced to a tracker or by Local Service Discovery, the BEP 10 ``p`` (listen port) of
    an extended handshake, the responder of a plaintext BitTorrent connection.  Context for
    encrypted connections, whose own bytes say nothing about the protocol inside."""
    eps: dict = {k: set(v) for k, v in index.endpoints.items()}
    for a in announces:
        if a.kind == "announce" and a.port:
            eps.setdefault((a.client_ip, a.port), set()).add(f"{a.transport.upper()} tracker announce")
    for (ip, _h), (_n, _first, _last, port) in udp.lsd.items():
        if port:
            eps.setdefault((ip, port), set()).add("Local Service Discovery announce")
    return eps


def encryption_context(r: ConnectionRecord, endpoints: dict) -> str:
    """The plaintext evidence that an encrypted connection's listening side speaks BitTorrent
    (its responder when the SYN was captured, else either end), or ""."""
    ends = [(r.dst_ip, r.dst_port)] if r.initiator_known else [(r.src_ip, r.src_port), (r.dst_ip, r.dst_port)]
    found = [f"{ip}:{port}: " + ", ".join(sorted(endpoints[(ip, port)])) for ip, port in ends
             if (ip, port) in endpoints]
    return "; ".join(found)


@dataclass
class Unattributed:
    """BitTorrent connections without an info_hash (no handshake captured), from the
    subject's side: their piece bytes cannot be given to a torrent."""

    connections: int = 0
    peers: set = field(default_factory=set)
    sums: TransferSums = field(default_factory=TransferSums)
    other_connections: int = 0
    bounds: Bounds = field(default_factory=Bounds)

    def add(self, t: Transfer) -> None:
        if not t.involves_subject:
            self.other_connections += 1
            return
        self.connections += 1
        self.peers.add(t.remote_ip)
        self.sums.add(t.sums)
        self.bounds.add(t.bounds)


@dataclass
class Encrypted:
    """MSE/PE connections from the subject's side: every byte after the key exchange."""

    connections: int = 0
    peers: set = field(default_factory=set)
    uploaded_bytes: int = 0
    downloaded_bytes: int = 0
    key_exchange_bytes: int = 0
    plaintext_after_key_exchange: int = 0
    other_connections: int = 0
    with_bittorrent_context: int = 0

    def add(self, r: ConnectionRecord, t: Transfer, context: str) -> None:
        if not t.involves_subject:
            self.other_connections += 1
            return
        if r.encryption != "mse":
            self.plaintext_after_key_exchange += 1
            return
        self.connections += 1
        self.peers.add(t.remote_ip)
        if context:
            self.with_bittorrent_context += 1
        flight_up, flight_down = (r.flight_src, r.flight_dst) if t.side == "src" else (r.flight_dst, r.flight_src)
        self.uploaded_bytes += max(0, t.up.payload_bytes - flight_up)
        self.downloaded_bytes += max(0, t.down.payload_bytes - flight_down)
        self.key_exchange_bytes += flight_up + flight_down


@dataclass(frozen=True)
class SubjectClient:
    version_string: str
    peer_id_client: str
    peer_id: str
    connections: int
    first_seen_ns: int
    last_seen_ns: int


class SubjectClients:
    """The subject's own client(s): BEP 10 ``v`` and the client decoded from its peer_id,
    with the peer_ids it used and how many connections each was seen on."""

    def __init__(self):
        self.seen: dict = {}

    def add(self, r: ConnectionRecord, t: Transfer) -> None:
        if not t.involves_subject:
            return
        up = t.up
        if up.peer_id is None and not up.ext.get("v"):
            return
        key = (up.ext.get("v") or "", decode_peer_id(up.peer_id) or "", peer_id_text(up.peer_id))
        e = self.seen.setdefault(key, [0, r.first_ts_ns, r.last_ts_ns])
        e[0] += 1
        e[1] = min(e[1], r.first_ts_ns)
        e[2] = max(e[2], r.last_ts_ns)

    def findings(self) -> list[SubjectClient]:
        return [SubjectClient(v, c, pid, n, first, last) for (v, c, pid), (n, first, last) in sorted(self.seen.items())]


@dataclass(slots=True)
class ConnectionView:
    """One row of connections.csv: the record, its subject view, the connection it
    continues (its number) and, for encrypted ones, the plaintext context."""

    record: ConnectionRecord
    transfer: Transfer
    continues_id: int | None
    encryption_context: str


def connection_views(records, subject, endpoints: dict, continued_ids: dict, announced, groups: dict):
    """ConnectionView of every record, in first-frame order (a generator: a case can have
    millions of connections); cut connections attributed by announces as in the findings."""
    for r in records:
        t = transfer(r, subject)
        r = attribute(r, t, announced, groups)
        yield ConnectionView(r, t, continued_ids.get(r.continues) if r.continues else None,
                             encryption_context(r, endpoints) if r.encryption else "")

