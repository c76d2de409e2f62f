"""Every frame in exactly one category, the stream-level byte accounting, and every
decoding error and cap that cost something.

Categories: connections put all their frames in theirs (see
sessions.records); the engine counts the frames that belong to no
connection (UDP, other IP, non-IP, undecodable with a reason), the datagram
analyzer those of DHT, LSD and UDP trackers.

``decode_errors`` counts, by protocol, the messages that were recognised but
did not decode (each is also kept or counted where it belongs: a malformed
KRPC message is still DHT traffic); nothing that fails to decode is dropped
without a count.
"""
from __future__ import annotations

import operator
from collections import Counter
from dataclasses import dataclass

from analyzer.findings.transfers import Transfer
from analyzer.sessions._engine import OPEN_IDLE_NS
from analyzer.sessions.records import ConnectionRecord

ALL_CATEGORIES = ("bittorrent", "bittorrent_unattributed", "encrypted", "tracker", "dht", "lsd",
                  "other_tcp", "udp", "other_ip", "non_ip", "undecodable")
CONNECTION_CATEGORIES = ("bittorrent", "bittorrent_unattributed", "encrypted", "tracker", "other_tcp", "udp")
TCP_STREAM_FIELDS = ("payload_bytes", "duplicate_bytes", "conflict_bytes", "uncompared_bytes", "gap_bytes",
                     "late_bytes", "truncated_bytes")
UTP_STREAM_FIELDS = ("payload_bytes", "duplicate_bytes", "conflict_packets", "gap_packets", "late_bytes",
                     "truncated_bytes")
PEER_WIRE_FIELDS = ("handshake_bytes", "message_bytes", "block_bytes", "block_tail_bytes", "block_gap_bytes",
                    "unparsed_bytes", "opaque_bytes", "lost_messages", "protocol_errors", "oversized_messages",
                    "resyncs")
STREAM_CATEGORIES = {"tcp": ("bittorrent", "bittorrent_unattributed", "encrypted", "tracker", "other_tcp"),
                     "utp": ("bittorrent", "bittorrent_unattributed", "encrypted", "udp")}
STREAM_FIELDS = {"tcp": TCP_STREAM_FIELDS, "utp": UTP_STREAM_FIELDS}
GAP_DIRECTIONS = ("to_subject", "from_subject", "not_involving_subject")
_STREAM_VALUES = {t: operator.attrgetter(*names) for t, names in STREAM_FIELDS.items()}
_peer_wire_values = operator.attrgetter(*PEER_WIRE_FIELDS)


@dataclass
class Accounting:
    frames: int
    bytes: int
    frames_read: int
    categories: dict              # category -> {frames, bytes[, connections][, reasons, unknown_link_types]}
    gap_bytes: dict               # GAP_DIRECTIONS -> TCP stream bytes never captured
    gap_packets: dict             # GAP_DIRECTIONS -> uTP packets never captured
    tcp_streams: dict             # category -> TCP_STREAM_FIELDS
    utp_streams: dict             # category -> UTP_STREAM_FIELDS
    peer_wire: dict               # PEER_WIRE_FIELDS
    ip_fragments: dict
    reused_tuples: int
    connections_finished_after_silence: int
    connections_continued_after_silence: int
    connections_finished_at_cap: int
    capture_damage: dict
    decode_errors: dict
    extension_messages: dict
    pending_dropped: int


class AccountingAccumulator:
    def __init__(self, capture_end_ns: int | None = None):
        """``capture_end_ns``: the last frame time of the capture (for connections left
        open and silent long before it)."""
        self.silent_before = None if capture_end_ns is None else capture_end_ns - OPEN_IDLE_NS
        self.finished_after_silence = 0
        self.cats = {c: {"frames": 0, "bytes": 0} for c in ALL_CATEGORIES}
        for c in CONNECTION_CATEGORIES:
            self.cats[c]["connections"] = 0
        self.streams = {t: {c: Counter() for c in cats} for t, cats in STREAM_CATEGORIES.items()}
        self.peer_wire = Counter()
        self.gaps = {"bytes": Counter(), "packets": Counter()}
        self.tracker_messages = Counter()          # "request" / "response" -> messages with anomalies
        self.tracker_anomalies = Counter()         # anomaly kind -> count

    def add(self, r: ConnectionRecord, t: Transfer) -> None:
        if r.state == "open" and self.silent_before is not None and r.last_ts_ns < self.silent_before:
            self.finished_after_silence += 1
        c = self.cats[r.category]
        c["frames"] += r.frames
        c["bytes"] += r.wire_bytes
        c["connections"] += 1
        streams = self.streams[r.transport][r.category]
        names, values = STREAM_FIELDS[r.transport], _STREAM_VALUES[r.transport]
        bittorrent = r.category.startswith("bittorrent")
        for d in (r.fwd, r.rev):
            vs = values(d)
            if any(vs):
                for k, v in zip(names, vs):
                    if v:
                        streams[k] += v
            if bittorrent:
                for k, v in zip(PEER_WIRE_FIELDS, _peer_wire_values(d)):
                    if v:
                        self.peer_wire[k] += v
        for side, anomalies in r.tracker_anomalies:
            self.tracker_messages[side] += 1
            for a in anomalies:
                self.tracker_anomalies[a.partition(":")[0]] += 1
        unit, name = ("bytes", "gap_bytes") if r.transport == "tcp" else ("packets", "gap_packets")
        if t.involves_subject:
            self.gaps[unit]["to_subject"] += getattr(t.down, name)
            self.gaps[unit]["from_subject"] += getattr(t.up, name)
        else:
            self.gaps[unit]["not_involving_subject"] += getattr(r.fwd, name) + getattr(r.rev, name)

    def finish(self, result) -> Accounting:
        """The accounting, with the frames counted outside connections (``result``: the analysis)."""
        cats = self.cats
        for k, (frames, nbytes) in result.kinds.items():
            cats[k]["frames"] += frames
            cats[k]["bytes"] += nbytes
        for (k, unit), n in result.udp.categories.items():
            cats.setdefault(k, {"frames": 0, "bytes": 0})[unit] += n
        cats["undecodable"]["reasons"] = dict(sorted(result.reasons.items()))
        if result.unknown_link_types:
            cats["undecodable"]["unknown_link_types"] = {str(k): v for k, v in sorted(result.unknown_link_types.items())}
        return Accounting(
            frames=sum(c["frames"] for c in cats.values()),
            bytes=sum(c["bytes"] for c in cats.values()),
            frames_read=result.frames,
            categories=cats,
            gap_bytes={k: self.gaps["bytes"][k] for k in GAP_DIRECTIONS},
            gap_packets={k: self.gaps["packets"][k] for k in GAP_DIRECTIONS},
            tcp_streams={c: {k: v[k] for k in TCP_STREAM_FIELDS} for c, v in self.streams["tcp"].items()},
            utp_streams={c: {k: v[k] for k in UTP_STREAM_FIELDS} for c, v in self.streams["utp"].items()},
            peer_wire={k: self.peer_wire[k] for k in PEER_WIRE_FIELDS},
            ip_fragments=dict(result.fragments),
            reused_tuples=result.reused_tuples,
            connections_finished_after_silence=self.finished_after_silence,
            connections_continued_after_silence=result.linked,
            connections_finished_at_cap=result.finished_at_cap,
            capture_damage=capture_damage(result.reports),
            decode_errors=self.decode_errors(result),
            extension_messages=extension_messages(result),
            pending_dropped=result.udp.pending_dropped)

    def decode_errors(self, result) -> dict:
        """Messages recognised but not decoded, by protocol (see the module docstring)."""
        udp, ext = result.udp, result.extensions
        return {
            "krpc": udp.dht_malformed,
            "lsd": udp.lsd_malformed,
            "udp_tracker": udp.udp_tracker_malformed,
            "http_tracker_requests": self.tracker_messages["request"],
            "http_tracker_responses": self.tracker_messages["response"],
            "http_tracker_anomalies": dict(sorted(self.tracker_anomalies.items())),
            "extended_handshakes": result.extension_messages.get("malformed_handshakes", 0),
            "ut_metadata": ext["ut_metadata"].malformed if "ut_metadata" in ext else 0,
            "ut_pex": ext["ut_pex"].malformed if "ut_pex" in ext else 0,
        }


def extension_messages(result) -> dict:
    """BEP 10 messages that reached no handler, or were not kept."""
    m, ext = result.extension_messages, result.extensions
    return {"unnamed": m.get("unnamed", 0), "over_cap": m.get("dropped", 0),
            "ut_metadata_not_kept": ext["ut_metadata"].dropped if "ut_metadata" in ext else 0}


def capture_damage(reports) -> dict:
    """What reading the input files found, summed over them (per file: summary.json inputs)."""
    odd: Counter = Counter()
    for r in reports:
        odd.update(r.timestamp_anomalies)
    return {
        "unreadable_files": sum(1 for r in reports if not r.readable),
        "damaged_bytes": sum(r.damaged_bytes for r in reports),
        "truncated_bytes": sum(r.truncated_bytes for r in reports),
        "errors_not_listed": sum(r.errors_not_listed for r in reports),
        "timestamp_anomalies": dict(sorted(odd.items())),
        "damaged_interfaces": sum(r.damaged_interfaces for r in reports),
        "interfaces_over_limit": sum(r.interfaces_over_limit for r in reports),
    }
