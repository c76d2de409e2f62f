"""The findings of an analysis: what it shows from the subject's side, built once, typed.

Theory of operation
-------------------
``analyzer.analysis`` produces the raw material of a run (connection
records, datagram facts, tracker announces, pieces, metadata, what every
BEP 10 handler collected), none of it relative to the subject.  Once the
subject is known, ``build_findings`` makes one pass over the connection
records, computing each connection's subject view once (``transfer``) and
feeding every accumulator with it: torrents, unattributed and encrypted
connections, the subject's clients, the accounting, the timeline and
per-peer tables, and the per-second bins the tracker reconciliation needs.
The rest (tracker reports, DHT, LSD, PEX, pieces) comes from the datagram
and evidence facts.  The result is a ``Findings`` object that the writers in
``analyzer.output`` serialise and nothing else: findings never call back
into the analysis, and the writers never compute.

Connections are many (a case can have millions): their rows for
connections.csv are produced by ``Findings.connection_views()``, a second
pass over the stored records, rather than kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from analyzer.findings import discovery, truncation
from analyzer.findings.accounting import Accounting, AccountingAccumulator
from analyzer.findings.connections import (Encrypted, SubjectClient, SubjectClients, Unattributed,
                                           bittorrent_endpoints, connection_views, encryption_context)
from analyzer.findings.timeline import PeerRow, Timeline, TimelineAccumulator
from analyzer.findings.torrents import TorrentAccumulator, TorrentFinding, torrent_groups
from analyzer.findings.trackers import Reconciliation, ReconciliationBins, subject_announces
from analyzer.findings.transfers import transfer
from analyzer.sessions.store import sort_key
from analyzer.sessions.subject import Subject


@dataclass(frozen=True)
class InputFinding:
    """One input file: where it is, its SHA-256 and what reading it found."""

    path: str
    sha256: str | None
    size_bytes: int
    format: str | None
    compression: str | None
    frames: int
    link_types: list
    first_ts_ns: int | None
    last_ts_ns: int | None
    readable: bool
    errors: list
    damaged_bytes: int
    truncated_bytes: int
    skipped_blocks: dict
    internal_error: str | None
    errors_not_listed: int = 0        # error lines beyond the ones listed
    timestamp_anomalies: dict = field(default_factory=dict)   # kind -> records
    damaged_interfaces: int = 0       # pcapng interfaces whose frames cannot be decoded
    interfaces_over_limit: int = 0    # pcapng interfaces described beyond the cap


@dataclass(frozen=True)
class PieceFinding:
    piece: object                 # evidence.pieces.PieceResult
    subject_received: bool


@dataclass
class Findings:
    subject: Subject
    inputs: list[InputFinding]
    files: list[str]              # input paths by file index (frame references)
    torrents: list[TorrentFinding]
    subject_clients: list[SubjectClient]
    unattributed: Unattributed
    encrypted: Encrypted
    announces: list               # (TrackerAnnounce, by the subject?) for every announce and scrape
    subject_reports: list         # the subject's TrackerAnnounces
    reconciliation: list[Reconciliation]
    dht: discovery.Dht
    lsd: list[discovery.LsdAnnounce]
    pex: discovery.Pex
    carved: list
    accounting: Accounting
    timeline: Timeline
    peers: list[PeerRow]
    pieces: list[PieceFinding] | None     # None: no metadata, or verification not run
    rebuilt: list                 # TorrentMeta rebuilt from the capture
    notes: list[str]
    options: dict
    subject_matched: bool         # the subject is an end of some traffic (a connection, announce, DHT, LSD)
    case: object                  # analyzer.case.Case, or None
    torrent_files: list           # .torrent files given, as named
    run: dict                     # how the run was done (engine, workers, shards): manifest only
    client_state: object = None   # findings.client_state.ClientStateFinding (--client-state)
    tracebacks: list = field(default_factory=list)   # (input, traceback) of internal errors: errors.log
    input_overlaps: list = field(default_factory=list)   # (earlier, later) paths: consecutive inputs overlapping
    records: object = field(repr=False, default=None)   # the analysis's RecordStore (second pass)
    endpoints: dict = field(repr=False, default_factory=dict)
    continued_ids: dict = field(repr=False, default_factory=dict)
    announced: object = field(repr=False, default=None)   # truncation.Announced
    groups: dict = field(repr=False, default_factory=dict)

    def connection_views(self):
        """Every connection from the subject's side, in first-frame order (a generator)."""
        return connection_views(self.records, self.subject, self.endpoints, self.continued_ids, self.announced,
                                self.groups)


def input_findings(result) -> list[InputFinding]:
    out = []
    for f in result.inputs.files:
        r = f.report
        out.append(InputFinding(
            path=str(f.path), sha256=f.sha256,
            size_bytes=r.size_bytes, format=r.format or None, compression=r.compression, frames=r.frames,
            link_types=sorted(r.link_types), first_ts_ns=r.first_ts_ns, last_ts_ns=r.last_ts_ns,
            readable=r.readable, errors=list(r.errors), damaged_bytes=r.damaged_bytes,
            truncated_bytes=r.truncated_bytes, skipped_blocks=dict(sorted(r.skipped_blocks.items())),
            internal_error=r.internal_error, errors_not_listed=r.errors_not_listed,
            timestamp_anomalies=dict(sorted(r.timestamp_anomalies.items())),
            damaged_interfaces=r.damaged_interfaces, interfaces_over_limit=r.interfaces_over_limit))
    return out


def overlap_note(overlaps: list) -> list[str]:
    """One note for all input files whose time ranges overlap (the pairs go to a side table:
    a capture split per connection has hundreds)."""
    if not overlaps:
        return []
    return [f"time ranges overlap: {len(overlaps)} pair(s) of consecutive input files (listed in "
            f"input_overlaps; reassembly orders by sequence number, not time)"]


def build_findings(result, subject: Subject | None = None, bin_seconds: int = 1) -> Findings:
    """The findings of ``result`` from the side of ``subject`` (default: the analysis's)."""
    subject = subject or result.subject
    groups = torrent_groups(result.index, result.metas)
    announced = truncation.announced(result.announces, result.udp, subject)
    for entries in announced.by_host.values():
        for h, *_ in entries:
            groups.setdefault(h, h)        # torrents named only by announces (connections cut by the snap length)
    endpoints = bittorrent_endpoints(result.index, result.announces, result.udp)
    mine = subject_announces(result.announces, subject)
    torrents = TorrentAccumulator(groups)
    unattributed, encrypted, clients = Unattributed(), Encrypted(), SubjectClients()
    ends = [r.last_ts_ns for r in result.reports if r.last_ts_ns is not None]
    accounting = AccountingAccumulator(max(ends) if ends else None)
    timeline = TimelineAccumulator(groups, bin_seconds)
    reconciliation = ReconciliationBins(mine, groups)
    continued = result.index.continued
    continued_ids = {}
    matched = False
    for r in result.records:                     # the one pass
        t = transfer(r, subject)
        r = truncation.attribute(r, t, announced, groups)
        matched = matched or t.side != "none"
        accounting.add(r, t)
        if continued and sort_key(r) in continued:
            continued_ids[sort_key(r)] = r.conn_id
        if r.encryption.startswith("mse"):
            encrypted.add(r, t, encryption_context(r, endpoints) if t.involves_subject else "")
        if r.category == "bittorrent_unattributed":
            unattributed.add(t)
        if not r.category.startswith("bittorrent"):
            continue
        clients.add(r, t)
        if r.category != "bittorrent":
            continue
        torrents.add(r, t)
        if t.internal:
            timeline.add_internal(r, t)
        if t.involves_subject:
            timeline.add(r, t)
            reconciliation.add(r, t)
    mine_ids = {id(a) for a in mine}
    overlaps = result.inputs.overlaps()
    dht, lsd = discovery.dht(result.udp, subject), discovery.lsd(result.udp, subject)
    pieces = None
    if result.metas and result.pieces is not None:
        pieces = [PieceFinding(p, subject.has_address(p.receiver)) for p in result.pieces]
    f = Findings(
        subject=subject,
        inputs=input_findings(result),
        files=[str(f.path) for f in result.inputs.files],
        torrents=torrents.findings(subject, result.metas, result.pieces),
        subject_clients=clients.findings(),
        unattributed=unattributed,
        encrypted=encrypted,
        announces=[(a, id(a) in mine_ids) for a in result.announces],
        subject_reports=mine,
        reconciliation=reconciliation.findings(),
        dht=dht,
        lsd=lsd,
        pex=discovery.pex(result.extensions["ut_pex"], subject, groups),
        carved=result.carved,
        accounting=accounting.finish(result),
        timeline=timeline.timeline(),
        peers=timeline.peer_rows(),
        pieces=pieces,
        rebuilt=result.rebuilt,
        notes=list(result.notes) + overlap_note(overlaps),
        options=result.options,
        input_overlaps=overlaps,
        subject_matched=matched or bool(mine) or any(e.by_subject for e in lsd) or dht.subject_messages > 0,
        case=result.case,
        torrent_files=result.torrent_files,
        run=result.run,
        records=result.records,
        endpoints=endpoints,
        continued_ids=continued_ids,
        announced=announced,
        groups=groups,
    )
    f.tracebacks = list(result.tracebacks)
    if result.client_state is not None:
        from analyzer.findings.client_state_wire import client_state_finding
        f.client_state = client_state_finding(result.client_state, f)
    return f
