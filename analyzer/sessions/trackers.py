"""Tracker announces: HTTP ones found in TCP connections, UDP ones from the
datagram analyzer; the subject's reports and their reconciliation with the
bytes seen on the wire.

A client's announce carries its own counters (uploaded, downloaded, left)
since the torrent was started in that client session, which usually began
before the capture.  So only differences between two announces are compared
with the wire, over the same period: the bytes of the subject's connections
for that torrent in the capture's one-second bins between the two announces,
given as a range (bins wholly inside the period, and bins touching it).
"""
from __future__ import annotations

import numpy as np

from analyzer.sessions.datagrams import TrackerAnnounce
from analyzer.protocols.http_tracker import parse_requests, parse_responses


def _frame_of(marks: list | None, offset: int, r) -> tuple[int, int, int]:
    """(file, frame, time) of the frame that delivered stream byte ``offset`` of the
    initiator's head; the connection's first frame when not known."""
    for head_len, file_idx, frame_no, ts in marks or ():
        if head_len > offset:
            return file_idx, frame_no, ts
    return r.first_file, r.first_frame, r.first_ts_ns


def http_announces(r, head_src: bytes, head_dst: bytes, marks: list | None = None) -> list[TrackerAnnounce]:
    """Announces and scrapes in a TCP connection whose initiator spoke HTTP, each dated by
    the frame that carried the start of its request (``marks``: see Connection.head_marks)."""
    if not head_src.startswith(b"GET "):
        return []
    requests = parse_requests(head_src)
    responses = parse_responses(head_dst) if head_dst.startswith(b"HTTP/1.") else []
    out = []
    for i, req in enumerate(requests):
        resp = responses[i] if i < len(responses) else None
        host = req.host or (f"[{r.dst_ip}]:{r.dst_port}" if ":" in r.dst_ip else f"{r.dst_ip}:{r.dst_port}")
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


def announce_row(a: TrackerAnnounce, by_subject: bool) -> dict:
    from analyzer.protocols.peer_id import peer_id_text
    from analyzer.timefmt import iso_ns
    return {
        "info_hash": a.info_hash, "ts": iso_ns(a.ts_ns), "transport": a.transport, "tracker": a.tracker,
        "kind": a.kind, "event": a.event, "uploaded": a.uploaded, "downloaded": a.downloaded, "left": a.left,
        "client_ip": a.client_ip, "client_port": a.client_port, "port": a.port,
        "peer_id": peer_id_text(a.peer_id), "numwant": a.numwant, "key": a.key,
        "interval": a.interval, "peers_returned": a.peers_returned, "seeders": a.seeders,
        "leechers": a.leechers, "failure": a.failure, "by_subject": by_subject,
        "file": a.file_idx, "frame": a.frame_no,
    }


def subject_announces(announces: list[TrackerAnnounce], subject) -> list[TrackerAnnounce]:
    return [a for a in announces if subject.side(a.client_ip, a.client_port, a.tracker_ip, a.tracker_port) == "src"]


def reconcile(announces: list[TrackerAnnounce], records, subject, groups: dict) -> list[dict]:
    """Per info hash: the subject's own counters (first and last announce that
    carry them) against the block bytes its connections for that torrent carried
    between those two moments (one-second bins: a range)."""
    from analyzer.sessions.summary import subject_directions
    from analyzer.timefmt import iso_ns
    by_hash: dict = {}
    for a in announces:
        if a.kind == "announce" and a.uploaded is not None and a.downloaded is not None:
            by_hash.setdefault(groups.get(a.info_hash, a.info_hash), []).append(a)
    bins: dict = {}
    for r in records:
        if r.category != "bittorrent":
            continue
        key = groups.get(r.info_hash, r.info_hash)
        if key not in by_hash:
            continue
        _, down, up = subject_directions(r, subject)
        if down is None:
            continue
        b = bins.setdefault(key, ({}, {}))
        for series, acc in ((down.block_series, b[0]), (up.block_series, b[1])):
            for sec, n, _ in np.asarray(series).reshape(-1, 3).tolist():
                acc[sec] = acc.get(sec, 0) + n
    out = []
    for info_hash in sorted(by_hash):
        seq = sorted(by_hash[info_hash], key=lambda a: a.ts_ns)
        first, last = seq[0], seq[-1]
        row = {
            "info_hash": info_hash, "announces": len(seq),
            "first": {"ts": iso_ns(first.ts_ns), "event": first.event, "uploaded": first.uploaded,
                      "downloaded": first.downloaded, "left": first.left},
            "last": {"ts": iso_ns(last.ts_ns), "event": last.event, "uploaded": last.uploaded,
                     "downloaded": last.downloaded, "left": last.left},
            "reported_uploaded_between": last.uploaded - first.uploaded,
            "reported_downloaded_between": last.downloaded - first.downloaded,
        }
        down_bins, up_bins = bins.get(info_hash, ({}, {}))
        t0, t1 = first.ts_ns // 1_000_000_000, last.ts_ns // 1_000_000_000
        for name, acc in (("downloaded", down_bins), ("uploaded", up_bins)):
            inner = sum(n for s, n in acc.items() if t0 < s < t1)
            outer = sum(n for s, n in acc.items() if t0 <= s <= t1)
            row[f"wire_{name}_between_min"] = inner
            row[f"wire_{name}_between_max"] = outer
            row[f"wire_{name}_total"] = sum(acc.values())
            reported = row[f"reported_{name}_between"]
            row[f"{name}_consistent"] = inner <= reported <= outer
        out.append(row)
    return out
