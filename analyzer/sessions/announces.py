"""Tracker announces and scrapes a client sent (HTTP ones found in TCP connections here;
UDP ones, BEP 15, by the datagram analyzer), with the tracker's answer when captured."""
from __future__ import annotations

from dataclasses import dataclass

from analyzer.protocols.compact import endpoint_text
from analyzer.protocols.http_tracker import parse_requests, parse_responses


@dataclass
class TrackerAnnounce:
    """One announce (or scrape) a client sent to a tracker, with the answer if seen."""

    ts_ns: int
    transport: str            # "http" or "udp"
    tracker: str              # URL as far as the capture shows it
    client_ip: str
    client_port: int
    tracker_ip: str
    tracker_port: int
    info_hash: str
    kind: str = "announce"    # or "scrape"
    event: str | None = None
    uploaded: int | None = None
    downloaded: int | None = None
    left: int | None = None
    peer_id: bytes | None = None
    port: int | None = None
    numwant: int | None = None
    key: str | None = None
    file_idx: int = 0
    frame_no: int = 0
    interval: int | None = None
    peers_returned: int | None = None
    seeders: int | None = None
    leechers: int | None = None
    failure: str | None = None


def _frame_of(marks: list | None, offset: int, r) -> tuple[int, int, int]:
    """(file, frame, time) of the frame that delivered stream byte ``offset`` of the
    initiator's head; the connection's first frame when not known."""
    for head_len, file_idx, frame_no, ts in marks or ():
        if head_len > offset:
            return file_idx, frame_no, ts
    return r.first_file, r.first_frame, r.first_ts_ns


def http_announces(r, head_src: bytes, head_dst: bytes, marks: list | None = None,
                   anomalies: list | None = None) -> list[TrackerAnnounce]:
    """Announces and scrapes in a TCP connection whose initiator spoke HTTP, each dated by
    the frame that carried the start of its request (``marks``: see Connection.head_marks).
    ``anomalies``: gets ("request" or "response", the message's anomalies) for every message
    that did not decode wholly (counted in the accounting)."""
    if not head_src.startswith(b"GET "):
        return []
    requests = parse_requests(head_src)
    responses = parse_responses(head_dst) if head_dst.startswith(b"HTTP/1.") and requests else []
    if anomalies is not None:
        anomalies.extend(("request", m.anomalies) for m in requests if m.anomalies)
        anomalies.extend(("response", m.anomalies) for m in responses if m.anomalies)
    out = []
    for i, req in enumerate(requests):
        resp = responses[i] if i < len(responses) else None
        host = req.host or endpoint_text(r.dst_ip, r.dst_port)
        peer_id = req.params.get("peer_id")
        file_idx, frame_no, ts = _frame_of(marks, req.offset, r)
        for h in req.info_hashes:
            a = TrackerAnnounce(
                ts_ns=ts, transport="http", tracker=f"http://{host}{req.path}",
                client_ip=r.src_ip, client_port=r.src_port, tracker_ip=r.dst_ip, tracker_port=r.dst_port,
                info_hash=h, kind="scrape" if req.is_scrape else "announce",
                event=req.params.get("event", ""), uploaded=req.number("uploaded"),
                downloaded=req.number("downloaded"), left=req.number("left"),
                peer_id=_peer_id_bytes(peer_id), port=req.number("port"), numwant=req.number("numwant"),
                key=req.params.get("key"), file_idx=file_idx, frame_no=frame_no)
            if resp is not None:
                a.interval = resp.interval
                a.peers_returned = len(resp.peers)
                a.failure = resp.failure
                a.seeders = resp.complete
                a.leechers = resp.incomplete
            out.append(a)
    return out


def _peer_id_bytes(v) -> bytes | None:
    if v is None:
        return None
    if len(v) == 40:
        try:
            return bytes.fromhex(v)
        except ValueError:
            pass
    b = v.encode("latin-1", "replace")
    return b if len(b) == 20 else None
