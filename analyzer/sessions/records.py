"""Finished engine connections -> plain records (the unit of every table and total).

A record keeps both directions' figures, named from the initiator's point of
view: ``src`` is the endpoint that sent the SYN when the handshake was
captured (``initiator_known``), otherwise the sender of the first frame.
Subject-relative figures (downloaded/uploaded) are derived later, once the
subject is known.

Category of a connection (every one of its frames falls in it):

* ``bittorrent``: a BitTorrent handshake with an info_hash was seen
  (``attribution`` "handshake"), or, without one, blocks it carried verified
  against a known torrent (``attribution`` "piece_hashes"), or it continues a
  connection with the same endpoints (TCP 4-tuple, uTP connection ids) that
  had an info hash earlier in the capture and was finished after a long
  silence (``attribution`` "same_connection"; connections.csv
  ``attribution_conn_id`` names it).  ``attribution_file``/``_frame``/``_ts_ns`` give the frame that
  delivered the evidence: the handshake, or the block completing the piece
  that verified (for "same_connection", the earlier connection's);
* ``bittorrent_unattributed``: no handshake, so no info_hash, but positive
  evidence of peer wire (``evidence``): ``standard_blocks`` (piece messages of
  16 KiB at a 16 KiB offset), ``message_run`` (``RUN_EVIDENCE`` or more
  consecutive well-formed messages of plausible size, or a direction whose
  every captured byte is such messages, two or more), ``mse`` (an MSE key
  exchange that settled on plaintext), ``handshake_cut`` (the 20-byte
  protocol string opened the stream, the info hash was not captured).
  Framing found by chance (an HTTP body with bytes that read as two valid
  headers) is not evidence: such a connection stays ``other_tcp`` (``udp``),
  and an HTTP exchange (the initiator's request, the responder's status
  line) never counts as peer wire.  A connection whose blocks verified
  against a known torrent is ``bittorrent`` (``piece_hashes``) whatever
  else it showed;
* ``tracker``: an HTTP tracker exchange (announces and scrapes, appended to
  the analysis's announces);
* ``encrypted``: an MSE/PE key exchange, no plaintext peer wire (``encryption``
  "mse"; a key exchange followed by plaintext peer wire stays ``bittorrent``
  with ``encryption`` "mse_plaintext");
* ``other_tcp``: anything else (``udp`` for a uTP-shaped flow without peer wire).

``info_hash`` is the one in the initiator's handshake (else the responder's).
When the responder answered with a different one, it is kept as
``info_hash_reply``: for a hybrid v1/v2 torrent (BEP 52) a v2-capable peer
answers a v1 handshake that has the v2 bit set with the v2 info hash
truncated to 20 bytes, so the two hashes name the same torrent.
"""
from __future__ import annotations

import ipaddress

import operator
from dataclasses import dataclass, field, fields

import numpy as np

from analyzer.protocols.compact import address_text
from analyzer.protocols.extension import decode_ext_handshake
from analyzer.protocols.mse import mse_basis
from analyzer.protocols.peer_id import decode_peer_id
from analyzer.sessions.announces import http_announces

DIRECTION_FIELDS = (
    "frames", "wire_bytes", "payload_bytes", "duplicate_bytes", "conflict_bytes", "uncompared_bytes",
    "gap_bytes", "late_bytes", "truncated_bytes", "block_bytes", "block_acked_bytes",
    "block_tail_bytes", "block_gap_bytes", "handshake_bytes", "message_bytes", "unparsed_bytes",
    "opaque_bytes", "messages", "pieces", "lost_messages", "protocol_errors", "oversized_messages", "resyncs",
    "gap_packets", "conflict_packets",
)


EMPTY_SERIES = np.empty((0, 3), np.int64)       # shared by every direction without block bytes
EMPTY_SERIES.flags.writeable = False


@dataclass(slots=True)
class Direction:
    frames: int = 0
    wire_bytes: int = 0
    payload_bytes: int = 0        # stream bytes delivered once (retransmissions removed)
    duplicate_bytes: int = 0      # retransmitted / overlapping bytes seen again
    conflict_bytes: int = 0       # duplicates whose content differed from the first copy
    uncompared_bytes: int = 0     # duplicates too old to compare
    gap_bytes: int = 0            # stream bytes never captured
    late_bytes: int = 0           # bytes that arrived after their range was declared a gap
    truncated_bytes: int = 0      # payload cut by the snap length
    block_bytes: int = 0          # piece block bytes on the wire, each once
    block_acked_bytes: int = 0    # ... of which the receiver acknowledged
    block_tail_bytes: int = 0     # ... of which tails of blocks whose header was not captured
    block_gap_bytes: int = 0      # block bytes inside capture gaps (not in block_bytes)
    handshake_bytes: int = 0
    message_bytes: int = 0
    unparsed_bytes: int = 0
    opaque_bytes: int = 0
    messages: int = 0
    pieces: int = 0
    lost_messages: int = 0        # messages whose framing survived a gap but whose content did not
    protocol_errors: int = 0
    oversized_messages: int = 0   # messages over the length caps, skipped by their length (in protocol_errors)
    resyncs: int = 0
    gap_packets: int = 0          # uTP: packets never captured (their length is unknown)
    conflict_packets: int = 0     # uTP: retransmitted packets whose content differed
    best_run: int = 0             # longest run of well-formed messages (see PeerWireParser)
    std_blocks: int = 0           # piece messages of 16 KiB at a 16 KiB offset
    peer_id: bytes | None = None
    info_hash: bytes | None = None
    reserved: bytes | None = None
    ext: dict = field(default_factory=dict)
    synced: bool = False
    # int64 rows (capture second, block bytes, acked block bytes), see Connection.block_series
    block_series: np.ndarray = field(default_factory=lambda: EMPTY_SERIES)   # the last field

    def __reduce__(self):
        # pickled as plain values (records are spilled and read back twice: this is most of
        # their cost for the many connections of a scan or flood); the series as raw bytes
        series = self.block_series
        if len(series):
            return _direction, (_DIRECTION_VALUES(self), series.tobytes())
        return Direction, _DIRECTION_VALUES(self)


@dataclass(slots=True)
class ConnectionRecord:
    conn_id: int
    transport: str
    ip_version: int
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    initiator_known: bool
    fwd: Direction                # src -> dst
    rev: Direction                # dst -> src
    first_file: int
    first_frame: int
    first_ts_ns: int
    last_file: int
    last_frame: int
    last_ts_ns: int
    state: str                    # fin, rst or open
    first_block: tuple = ()       # (file, frame, ts) of the first and last frame that delivered piece
    last_block: tuple = ()        # block bytes, either direction (empty: none)
    category: str = "other_tcp"
    info_hash: str = ""
    info_hash_reply: str = ""
    attribution: str = ""
    attribution_file: int = -1    # file index, frame and time of the frame the attribution rests on
    attribution_frame: int = -1
    attribution_ts_ns: int = 0
    continues: tuple | None = None  # "same_connection": sort key of the earlier connection (store.sort_key)
    flight_src: int = -1          # bytes src sent before dst's first byte
    flight_dst: int = -1          # bytes dst sent before src's next
    encryption: str = ""          # "mse" (encrypted throughout) or "mse_plaintext"
    encryption_basis: str = ""
    evidence: str = ""            # why a BitTorrent connection is one (see the module docstring)
    # HTTP tracker messages that did not decode wholly: ("request"|"response", their anomalies)
    tracker_anomalies: tuple = ()

    def __reduce__(self):
        return record_from_state, (record_state(self),)

    @property
    def frames(self) -> int:
        return self.fwd.frames + self.rev.frames

    @property
    def wire_bytes(self) -> int:
        return self.fwd.wire_bytes + self.rev.wire_bytes

    def client(self, d: Direction) -> str:
        """BEP 10 ``v`` if sent, else the client decoded from the peer_id."""
        return client_of(d)


def canonical_key(r: ConnectionRecord) -> bytes:
    """The engine's direction-independent 4-tuple key of a record's flow (IP version, then the
    lower endpoint's address and port, then the other's; addresses padded to 16 bytes)."""
    ends = sorted([(ipaddress.ip_address(r.src_ip).packed, r.src_port),
                   (ipaddress.ip_address(r.dst_ip).packed, r.dst_port)])
    return bytes([r.ip_version]) + b"".join(a.ljust(16, b"\0") + p.to_bytes(2, "big") for a, p in ends)


def client_of(d: Direction) -> str:
    """BEP 10 ``v`` if sent, else the client decoded from the peer_id (of a record's direction)."""
    if d.peer_id is None and not d.ext:
        return ""
    return d.ext.get("v") or decode_peer_id(d.peer_id) or ""


_DIRECTION_VALUES = operator.attrgetter(*[f.name for f in fields(Direction)][:-1])
_RECORD_NAMES = [f.name for f in fields(ConnectionRecord)]
_FWD = _RECORD_NAMES.index("fwd")
assert _RECORD_NAMES[_FWD:_FWD + 2] == ["fwd", "rev"]
_RECORD_VALUES = operator.attrgetter(*[n for n in _RECORD_NAMES if n not in ("fwd", "rev")])


def record_state(r: ConnectionRecord) -> tuple:
    """A record as one flat tuple of plain values (what the record store pickles: building
    and reading back the records of a scan or flood is most of their cost)."""
    f, b = r.fwd, r.rev
    return (_RECORD_VALUES(r), _DIRECTION_VALUES(f), _DIRECTION_VALUES(b),
            f.block_series.tobytes() if len(f.block_series) else None,
            b.block_series.tobytes() if len(b.block_series) else None)


def record_from_state(state: tuple) -> ConnectionRecord:
    values, fv, bv, fs, bs = state
    f, b = Direction(*fv), Direction(*bv)
    if fs is not None:
        f.block_series = np.frombuffer(fs, np.int64).reshape(-1, 3)
    if bs is not None:
        b.block_series = np.frombuffer(bs, np.int64).reshape(-1, 3)
    return ConnectionRecord(*values[:_FWD], f, b, *values[_FWD:])


def _direction(values: tuple, series: bytes) -> Direction:
    """A Direction with block series from its pickled form (see ``Direction.__reduce__``)."""
    d = Direction(*values)
    d.block_series = np.frombuffer(series, np.int64).reshape(-1, 3)
    return d


def direction_of(stream, parser, frames: int, wire: int, transport: str, ext: dict | None) -> Direction:
    d = Direction(frames=frames, wire_bytes=wire)
    d.payload_bytes = stream.delivered_bytes
    d.duplicate_bytes = stream.duplicate_bytes
    d.late_bytes = stream.late_bytes
    d.truncated_bytes = stream.truncated_bytes
    d.block_acked_bytes = stream.marked_acked_bytes
    if transport == "tcp":
        d.conflict_bytes = stream.conflict_bytes
        d.uncompared_bytes = stream.uncompared_bytes
        d.gap_bytes = stream.gap_bytes
    else:
        d.gap_packets = stream.gap_packets
        d.conflict_packets = stream.conflict_packets
    if parser is not None:
        d.block_bytes = parser.block_bytes
        d.block_tail_bytes = parser.block_tail_bytes
        d.block_gap_bytes = parser.block_gap_bytes
        d.handshake_bytes = parser.handshake_bytes
        d.message_bytes = parser.message_bytes
        d.unparsed_bytes = parser.unparsed_bytes
        d.opaque_bytes = parser.opaque_bytes
        d.messages = parser.messages
        d.pieces = parser.pieces
        d.lost_messages = parser.lost_messages
        d.protocol_errors = parser.protocol_errors
        d.oversized_messages = parser.oversized_messages
        d.resyncs = parser.resyncs
        d.best_run = parser.best_run
        d.std_blocks = parser.std_blocks
        d.peer_id = parser.peer_id
        d.info_hash = parser.info_hash
        d.reserved = parser.reserved
        d.synced = parser.synced
        # decoded once, by the extension router; standalone engines (no router) decode here
        d.ext = ext if ext is not None else decode_ext_handshake(parser.ext_handshake)
    return d


def record_from_conn(c, announces: list | None = None, attributed: tuple | None = None) -> ConnectionRecord:
    """Build the record of a finished engine connection (TCP or uTP); HTTP
    tracker announces found in it are appended to ``announces``; ``attributed``:
    (info hash, (file, frame, ts)) its blocks verified against when no handshake
    was captured."""
    transport = c.transport
    ext = c.extensions.handshakes if c.extensions is not None else (None, None)
    fwd = direction_of(c.s0, c.parser0, c.frames0, c.wire_bytes0, transport, ext[0])
    rev = direction_of(c.s1, c.parser1, c.frames1, c.wire_bytes1, transport, ext[1])
    series = c.block_series(0)
    if series is not None:
        fwd.block_series = series
    series = c.block_series(1)
    if series is not None:
        rev.block_series = series
    r = ConnectionRecord(
        conn_id=c.conn_id, transport=transport, ip_version=c.ip_version,
        src_ip=address_text(c.addr0), src_port=c.port0,
        dst_ip=address_text(c.addr1), dst_port=c.port1,
        initiator_known=bool(c.s0.syn_seen), fwd=fwd, rev=rev,
        first_file=c.first_file, first_frame=c.first_frame, first_ts_ns=c.first_ts,
        last_file=c.last_file, last_frame=c.last_frame, last_ts_ns=c.last_ts,
        state="rst" if c.reset else "fin" if c.closed else "open",
        flight_src=c.flight0, flight_dst=c.flight1,
    )
    if c.first_block_frame >= 0:
        r.first_block = (c.first_block_file, c.first_block_frame, c.first_block_ts)
        r.last_block = (c.last_block_file, c.last_block_frame, c.last_block_ts)
    head0 = c.parser0.head if c.parser0 is not None else b""
    head1 = c.parser1.head if c.parser1 is not None else b""
    classify(r, head0, head1, announces, c.head_marks)
    if r.attribution == "handshake":
        d = 0 if r.fwd.info_hash is not None else 1
        r.attribution_file, r.attribution_frame, r.attribution_ts_ns = (
            (c.hs_file0, c.hs_frame0, c.hs_ts0) if d == 0 else (c.hs_file1, c.hs_frame1, c.hs_ts1))
    if attributed and r.category in ("bittorrent_unattributed", "other_tcp", "udp") and \
            (r.fwd.synced or r.rev.synced):
        r.category = "bittorrent"
        r.info_hash, (r.attribution_file, r.attribution_frame, r.attribution_ts_ns) = attributed
        r.attribution = r.evidence = "piece_hashes"
    return r


RUN_EVIDENCE = 4
HTTP_METHODS = (b"GET ", b"POST ", b"HEAD ", b"PUT ", b"OPTIONS ", b"DELETE ", b"CONNECT ", b"PATCH ")
PROTOCOL_STRING = b"\x13BitTorrent protocol"


def is_http(head_src: bytes, head_dst: bytes) -> bool:
    """The connection's start shows HTTP: a request line from the initiator or a status line
    from the responder."""
    return head_src.startswith(HTTP_METHODS) or head_dst.startswith(b"HTTP/1.")


def _all_messages(d: Direction) -> bool:
    """Every byte of the direction, as captured, is a well-formed message (two or more)."""
    return d.best_run >= 2 and d.payload_bytes > 0 and not (d.unparsed_bytes or d.opaque_bytes or d.protocol_errors)


def peer_wire_evidence(r: ConnectionRecord, head_src: bytes, head_dst: bytes, mse: bool) -> str:
    """Positive evidence that a connection without handshake speaks peer wire (see the
    module docstring), or ""."""
    if is_http(head_src, head_dst):
        return ""
    if head_src.startswith(PROTOCOL_STRING) or head_dst.startswith(PROTOCOL_STRING):
        return "handshake_cut"
    if r.fwd.std_blocks or r.rev.std_blocks:
        return "standard_blocks"
    if max(r.fwd.best_run, r.rev.best_run) >= RUN_EVIDENCE or any(_all_messages(d) for d in (r.fwd, r.rev)):
        return "message_run"
    if mse and (r.fwd.synced or r.rev.synced):
        return "mse"
    return ""


def classify(r: ConnectionRecord, head_src: bytes = b"", head_dst: bytes = b"",
             announces: list | None = None, marks_src: list | None = None) -> None:
    """Category from what the parsers found (see the module docstring), then,
    for streams that did not open with a plaintext handshake, whether they are
    an HTTP tracker exchange or an MSE-encrypted BitTorrent connection."""
    hashes = [d.info_hash for d in (r.fwd, r.rev) if d.info_hash is not None]
    opaque_start = r.fwd.opaque_bytes > 0 and r.rev.opaque_bytes > 0
    mse = mse_basis(r.flight_src, r.flight_dst, head_src, head_dst) if r.initiator_known and opaque_start else None
    if hashes:
        r.category = "bittorrent"
        r.attribution = r.evidence = "handshake"
        r.info_hash = hashes[0].hex()
        if len(hashes) == 2 and hashes[0] != hashes[1]:
            r.info_hash_reply = hashes[1].hex()
    elif (r.fwd.synced or r.rev.synced or head_src.startswith(PROTOCOL_STRING)) and \
            (ev := peer_wire_evidence(r, head_src, head_dst, mse is not None)):
        r.category = "bittorrent_unattributed"
        r.evidence = ev
    else:
        # a uTP-shaped UDP flow that carried no peer wire protocol is just UDP
        r.category = "other_tcp" if r.transport == "tcp" else "udp"
    if r.category == "other_tcp" and head_src.startswith(b"GET "):
        anomalies: list = []
        found = http_announces(r, head_src, head_dst, marks_src, anomalies)
        r.tracker_anomalies = tuple(anomalies)
        if found:
            r.category = "tracker"
            if announces is not None:
                announces.extend(found)
            return
    if mse is not None:
        r.encryption_basis = mse
        if r.category in ("other_tcp", "udp"):
            r.encryption = "mse"
            r.category = "encrypted"
        else:
            r.encryption = "mse_plaintext"     # plaintext peer wire after the key exchange

