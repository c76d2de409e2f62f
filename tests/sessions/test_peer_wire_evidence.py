"""A connection without a BitTorrent handshake is BitTorrent only on positive evidence.

HTTP downloads whose bodies hold bytes that read as peer wire headers (Windows Delivery
Optimization on port 80, an icon fetched from a tracker host) were counted as
``bittorrent_unattributed`` with bogus 107-byte "pieces"; they are ``other_tcp`` and their
bytes are in no torrent's and no unattributed figure.  Real BitTorrent captured mid-stream
still is BitTorrent (tests/evidence/test_attribution.py, the public captures)."""
from __future__ import annotations

import random
import struct

from craft import ethernet, tcp_conversation, timed, write_pcap
from analyzer.analysis import analyze
from summaries import connections_csv, summarize

CLIENT, SERVER = "10.0.0.1", "10.0.0.80"


def lure(index: int, begin: int) -> bytes:
    """A 107-byte "piece" (length prefix 107, id 7, index, begin, 98 bytes) followed by a valid
    "have" header: two strictly valid headers in a row, what resynchronisation takes as framing."""
    return struct.pack(">IBII", 107, 7, index, begin) + bytes(98) + struct.pack(">IBI", 5, 4, index)


def body(n: int, seed: int = 7) -> bytes:
    """An HTTP payload of ``n`` bytes: random bytes with two lures in it."""
    rng = random.Random(seed)
    data = bytearray(rng.randbytes(n))
    for at, (index, begin) in ((3000, (12, 777)), (9000, (40, 1234))):
        piece = lure(index, begin)
        data[at:at + len(piece)] = piece
    return bytes(data)


def http_download(path: bytes = b"/filestreamingservice/files/abc", size: int = 20000, port: int = 80,
                  start: bool = True):
    """Raw packets of an HTTP/1.1 GET and its answer in 1400-byte segments; without ``start``,
    only the segments of the answer's body after its headers (a capture started mid-download)."""
    request = b"GET " + path + b" HTTP/1.1\r\nHost: dl.example\r\nUser-Agent: Microsoft-Delivery-Optimization/10.0\r\n\r\n"
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nContent-Type: application/octet-stream\r\n\r\n".encode()
    answer = head + body(size)
    segments = [(1, answer[i:i + 1400]) for i in range(0, len(answer), 1400)]
    packets = tcp_conversation(CLIENT, SERVER, 50123, port, [(0, request)] + segments)
    if start:
        return packets
    return packets[3 + 2 + 4:-3]          # no handshake, no request, no response headers, no close


def run(tmp_path, packets, name="http.pcap"):
    path = write_pcap(tmp_path / name, timed([ethernet(p) for p in packets]))
    result = analyze([path], local=[CLIENT], warn=lambda m: None)
    return result, summarize(result)


def assert_not_bittorrent(result, summary):
    [r] = result.records
    assert r.category == "other_tcp" and r.evidence == ""
    cats = summary["accounting"]["categories"]
    assert cats["bittorrent_unattributed"]["frames"] == cats["bittorrent"]["frames"] == 0
    assert cats["other_tcp"]["frames"] == summary["accounting"]["frames"]
    assert summary["torrents"] == []
    u = summary["unattributed"]
    assert u["connections"] == u["downloaded_bytes"] == u["uploaded_bytes"] == u["other_connections"] == 0
    row = dict(zip(*[line.split(",") for line in connections_csv(result).splitlines()[:2]]))
    assert row["downloaded_bytes"] == row["uploaded_bytes"] == "0"


def test_an_http_download_whose_body_looks_like_peer_wire_is_other_tcp(tmp_path):
    result, summary = run(tmp_path, http_download())
    [r] = result.records
    assert r.rev.synced and r.rev.block_bytes >= 98         # the parser found the lures...
    assert_not_bittorrent(result, summary)                 # ...which are no evidence


def test_the_same_download_captured_mid_stream_is_other_tcp(tmp_path):
    result, summary = run(tmp_path, http_download(start=False))
    [r] = result.records
    assert not r.initiator_known and r.fwd.synced and r.fwd.block_bytes >= 98 and r.fwd.best_run <= 2
    assert_not_bittorrent(result, summary)


def test_a_favicon_fetched_from_a_tracker_host_is_neither_tracker_nor_bittorrent(tmp_path):
    result, summary = run(tmp_path, http_download(b"/favicon.ico", size=6000, port=6969))
    assert_not_bittorrent(result, summary)
    assert summary["tracker_reports"] == [] and summary["accounting"]["categories"]["tracker"]["frames"] == 0


def test_real_peer_wire_mid_stream_is_still_bittorrent(tmp_path):
    """Requests and haves from the middle of a connection: a run of well-formed messages."""
    msgs = b"".join(struct.pack(">IBIII", 13, 6, i, 16384 * k, 16384) for i in range(3) for k in range(2))
    msgs += struct.pack(">IBI", 5, 4, 9)
    packets = tcp_conversation(CLIENT, SERVER, 50123, 6881, [(0, b"\x07" * 3 + msgs)], handshake=False, close=False)
    result, summary = run(tmp_path, packets)
    [r] = result.records
    assert r.category == "bittorrent_unattributed" and r.evidence == "message_run" and r.fwd.best_run == 7
    assert summary["unattributed"]["connections"] == 1
