"""Torrents from the subject's side: hashes grouped into torrents, figures summed per
torrent, transport and subject host, the torrent's metadata, and the verification of its
pieces.

A subject that is a network (or several ``--local``) has several hosts.  The
torrent's figures are its exchanges with hosts outside the subject; each host
has the same figures for its own exchanges (``hosts``: they add up to the
torrent's), plus what it received from and sent to the other subject hosts
(``internal``).  A connection between two subject hosts is counted once, in
the torrent's ``internal_*`` figures (its block bytes both ways), never as an
upload to others."""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from analyzer.findings.transfers import Transfer, TransferSums
from analyzer.findings.truncation import Bounds
from analyzer.protocols.compact import address_order
from analyzer.sessions.index import RecordIndex
from analyzer.sessions.records import ConnectionRecord
from analyzer.sessions.subject import Subject


def torrent_groups(index: RecordIndex, metas: list | None = None) -> dict[str, str]:
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

    def union(a: str, b: str) -> None:
        a, b = find(a), find(b)
        if a != b:
            parent[max(a, b)] = min(a, b)

    for h in sorted(index.info_hashes):
        find(h)
    primaries = set()
    for a, b in sorted(index.hash_pairs):
        primaries.add(a)
        union(a, b)
    seen = set(parent)
    for m in metas or ():
        hashes = [h for h in m.handshake_hashes if h in seen]
        for h in hashes[1:]:
            union(hashes[0], h)
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


@dataclass(slots=True)
class TransportFigures:
    """A torrent's figures over one transport (the subject's connections)."""

    connections: int = 0
    sums: TransferSums = field(default_factory=TransferSums)
    remotes: set = field(default_factory=set)          # distinct remote addresses
    first_seen_ns: int | None = None
    last_seen_ns: int | None = None

    @property
    def peers(self) -> int:
        return len(self.remotes)


@dataclass
class Verification:
    """Verified / failed / incomplete pieces of one torrent, from the subject's side.

    Downloaded: pieces the subject received (each counted once, its content
    bytes).  Uploaded: the bytes the subject contributed to pieces other hosts
    received.  Held: pieces the subject verifiably had (received verified, or
    sent whole and verified at the receiver)."""

    verified_downloaded_bytes: int = 0
    failed_downloaded_bytes: int = 0
    verified_uploaded_bytes: int = 0
    failed_uploaded_bytes: int = 0
    redundant_downloaded_bytes: int = 0
    redundant_uploaded_bytes: int = 0
    pad_downloaded_bytes: int = 0
    pad_uploaded_bytes: int = 0
    pieces: dict = field(default_factory=lambda: {f"pieces_{d}_{st}": 0 for d in ("downloaded", "uploaded")
                                                  for st in ("verified", "failed", "incomplete")})
    held_bytes: int = 0
    held_share: float | None = None


VERIFY_FIELDS = ("verified_downloaded_bytes", "failed_downloaded_bytes", "verified_uploaded_bytes",
                 "failed_uploaded_bytes", "redundant_downloaded_bytes", "redundant_uploaded_bytes",
                 "pad_downloaded_bytes", "pad_uploaded_bytes")


def verification(pieces: list, key: str, meta, subject: Subject) -> Verification:
    out = Verification()
    held = {}
    for p in pieces:
        if p.info_hash != key:
            continue
        if subject.has_address(p.receiver):
            out.pieces[f"pieces_downloaded_{p.status}"] += 1
            out.redundant_downloaded_bytes += p.redundant_bytes
            out.pad_downloaded_bytes += p.pad_bytes
            if p.status == "verified":
                out.verified_downloaded_bytes += p.size
                held[p.index] = p.size
            elif p.status == "failed":
                out.failed_downloaded_bytes += p.size
            continue
        out.redundant_uploaded_bytes += sum(n for ip, n in p.senders_redundant.items() if subject.has_address(ip))
        out.pad_uploaded_bytes += sum(n for ip, n in p.senders_pad.items() if subject.has_address(ip))
        sent = sum(n for ip, n in p.senders.items() if subject.has_address(ip))
        if not sent:
            continue
        out.pieces[f"pieces_uploaded_{p.status}"] += 1
        if p.status == "verified":
            out.verified_uploaded_bytes += min(sent, p.size)
            if sent >= p.covered:
                held[p.index] = p.size
        elif p.status == "failed":
            out.failed_uploaded_bytes += min(sent, p.size)
    out.held_bytes = sum(held.values())
    out.held_share = round(out.held_bytes / meta.total_size, 6) if meta.total_size else None
    return out


@dataclass
class HostFinding:
    """One subject host's part of a torrent: ``sums`` with hosts outside the subject,
    ``internal`` with the other subject hosts (downloaded: received from them)."""

    host: str
    sums: TransferSums
    internal: TransferSums
    connections: int
    internal_connections: int
    peers: int
    first_seen_ns: int | None
    last_seen_ns: int | None


class _Span:
    """First and last frame time of the connections seen."""

    __slots__ = ("first", "last")

    def __init__(self):
        self.first = self.last = None

    def seen(self, r) -> None:
        self.first = r.first_ts_ns if self.first is None else min(self.first, r.first_ts_ns)
        self.last = r.last_ts_ns if self.last is None else max(self.last, r.last_ts_ns)


class _HostAcc(_Span):
    __slots__ = ("sums", "internal", "connections", "internal_connections", "peers")

    def __init__(self):
        super().__init__()
        self.sums = TransferSums()
        self.internal = TransferSums()
        self.connections = 0
        self.internal_connections = 0
        self.peers: set = set()


@dataclass
class TorrentFinding:
    info_hash: str
    info_hash_aliases: list
    meta: object | None                 # TorrentMeta (given or rebuilt), if known
    verification: Verification | None   # when the metadata is known and pieces were verified
    sums: TransferSums
    peers: int
    connections: int
    first_seen_ns: int
    last_seen_ns: int
    peer_ids: int
    other_connections: int
    transports: dict                    # transport -> TransportFigures, sorted by name
    remote_clients: dict                # client -> connections, sorted
    subject_clients: dict
    hosts: list = field(default_factory=list)         # HostFinding per subject host, by address
    bounds: Bounds = field(default_factory=Bounds)    # lower/upper bounds (connections cut by the snap length)
    announce_basis: list = field(default_factory=list)  # how connections without handshake got the info hash
    internal_connections: int = 0
    internal_bytes: int = 0             # block bytes between subject hosts (both ways, each once)
    internal_acked_bytes: int = 0
    uploaded_piece_messages: int = 0    # piece messages the subject sent (header captured)


class _Acc(_Span):
    __slots__ = ("sums", "transports", "peers", "peer_ids", "connections", "other_connections",
                 "remote_clients", "subject_clients", "aliases", "hosts", "internal_connections", "internal_bytes",
                 "internal_acked_bytes", "bounds", "announce_basis", "uploaded_piece_messages")

    def __init__(self):
        super().__init__()
        self.sums = TransferSums()
        self.transports: dict = defaultdict(TransportFigures)
        self.peers: set = set()
        self.peer_ids: set = set()
        self.connections = 0
        self.other_connections = 0
        self.remote_clients: Counter = Counter()
        self.subject_clients: Counter = Counter()
        self.aliases: set = set()
        self.hosts: dict = defaultdict(_HostAcc)
        self.internal_connections = 0
        self.internal_bytes = 0
        self.internal_acked_bytes = 0
        self.bounds = Bounds()
        self.announce_basis: set = set()
        self.uploaded_piece_messages = 0


class TorrentAccumulator:
    """Sums the subject's BitTorrent connections per torrent (fed one record at a time)."""

    def __init__(self, groups: dict[str, str]):
        self.groups = groups
        self.acc: dict[str, _Acc] = {}

    def add(self, r: ConnectionRecord, t: Transfer) -> None:
        key = self.groups[r.info_hash]
        a = self.acc.get(key)
        if a is None:
            a = self.acc[key] = _Acc()
        a.aliases.update(h for h in (r.info_hash, r.info_hash_reply) if h and h != key)
        if t.internal:
            a.internal_connections += 1
            (_, src_view), _ = t.internal
            a.internal_bytes += src_view.uploaded_bytes + src_view.downloaded_bytes
            a.internal_acked_bytes += src_view.uploaded_acked_bytes + src_view.downloaded_acked_bytes
            for host, view in t.internal:
                h = a.hosts[host]
                h.internal_connections += 1
                h.internal.add(view)
                h.seen(r)
            a.seen(r)
            return
        if not t.involves_subject:
            a.other_connections += 1
            return
        a.connections += 1
        a.uploaded_piece_messages += t.up.pieces
        a.sums.add(t.sums)
        a.bounds.add(t.bounds)
        if r.attribution == "announce":
            a.announce_basis.add(r.evidence.split("; ", 1)[-1])
        h = a.hosts[t.host]
        h.connections += 1
        h.sums.add(t.sums)
        h.peers.add(t.remote_ip)
        h.seen(r)
        tr = a.transports[r.transport]
        tr.connections += 1
        tr.sums.add(t.sums)
        tr.remotes.add(t.remote_ip)
        tr.first_seen_ns = r.first_ts_ns if tr.first_seen_ns is None else min(tr.first_seen_ns, r.first_ts_ns)
        tr.last_seen_ns = r.last_ts_ns if tr.last_seen_ns is None else max(tr.last_seen_ns, r.last_ts_ns)
        a.peers.add(t.remote_ip)
        if t.remote_peer_id:
            a.peer_ids.add(t.remote_peer_id)
        if t.remote_client:
            a.remote_clients[t.remote_client] += 1
        if t.subject_client:
            a.subject_clients[t.subject_client] += 1
        a.seen(r)

    def findings(self, subject: Subject, metas: list, pieces: list | None) -> list[TorrentFinding]:
        """One finding per torrent, sorted by info hash."""
        out = []
        for info_hash in sorted(self.acc):
            a = self.acc[info_hash]
            m = meta_for(info_hash, a.aliases, metas)
            v = None
            if m is not None and pieces is not None:
                v = verification(pieces, m.info_hash_v1 or m.info_hash_v2[:40], m, subject)
            out.append(TorrentFinding(
                info_hash=info_hash, info_hash_aliases=sorted(a.aliases), meta=m, verification=v, sums=a.sums,
                peers=len(a.peers), connections=a.connections, first_seen_ns=a.first, last_seen_ns=a.last,
                peer_ids=len(a.peer_ids), other_connections=a.other_connections,
                transports=dict(sorted(a.transports.items())),
                remote_clients=dict(sorted(a.remote_clients.items())),
                subject_clients=dict(sorted(a.subject_clients.items())),
                hosts=[HostFinding(ip, h.sums, h.internal, h.connections, h.internal_connections, len(h.peers),
                                   h.first, h.last)
                       for ip, h in sorted(a.hosts.items(), key=lambda kv: address_order(kv[0]))],
                internal_connections=a.internal_connections, internal_bytes=a.internal_bytes,
                internal_acked_bytes=a.internal_acked_bytes, bounds=a.bounds,
                announce_basis=sorted(a.announce_basis), uploaded_piece_messages=a.uploaded_piece_messages))
        return out
