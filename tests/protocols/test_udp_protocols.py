"""DHT (KRPC), UDP tracker (BEP 15), LSD (BEP 14), HTTP tracker and MSE decoding: tables of inputs."""
from __future__ import annotations

import gzip
import struct

import pytest

from analyzer.protocols import udp_tracker as bep15
from analyzer.protocols.bencode import encode
from analyzer.protocols.http_tracker import parse_requests, parse_responses
from analyzer.protocols.krpc import KrpcError, decode_krpc
from analyzer.protocols.lsd import decode_lsd
from analyzer.protocols.mse import mse_basis

IH = bytes(range(20))
NODE = b"N" * 20


@pytest.mark.parametrize("msg,want", [
    ({"t": b"aa", "y": "q", "q": "ping", "a": {"id": NODE}}, ("query", "ping", None)),
    ({"t": b"aa", "y": "q", "q": "find_node", "a": {"id": NODE, "target": IH}}, ("query", "find_node", None)),
    ({"t": b"aa", "y": "q", "q": "get_peers", "a": {"id": NODE, "info_hash": IH}},
     ("query", "get_peers", IH.hex())),
    ({"t": b"aa", "y": "q", "q": "announce_peer",
      "a": {"id": NODE, "info_hash": IH, "port": 6881, "token": b"x", "implied_port": 1}},
     ("query", "announce_peer", IH.hex())),
    ({"t": b"aa", "y": "q", "q": "sample_infohashes", "a": {"id": NODE, "target": IH}},
     ("query", "sample_infohashes", None)),
    ({"t": b"aa", "y": "r", "r": {"id": NODE, "values": [b"\x01\x02\x03\x04\x1a\xe1"] * 3}},
     ("response", None, None)),
    ({"t": b"aa", "y": "e", "e": [201, b"A Generic Error Ocurred"]}, ("error", None, None)),
])
def test_krpc_messages(msg, want):
    m = decode_krpc(encode(msg))
    assert (m.kind, m.method, m.info_hash) == want
    if m.method == "announce_peer":
        assert m.port == 6881 and m.implied_port
    if m.kind == "response":
        assert m.values == 3
    if m.kind == "error":
        assert m.error == (201, "A Generic Error Ocurred")


def test_krpc_sample_infohashes_response():
    m = decode_krpc(encode({"t": b"t1", "y": "r", "r": {"id": NODE, "samples": IH + bytes(20), "num": 2}}))
    assert m.samples == (IH.hex(), bytes(20).hex())


@pytest.mark.parametrize("payload", [b"d1:t2:aa1:y1:qe", b"d1:y1:qe", b"li1ee", b"d1:t2:aa1:y1:xe", b"d1:t2:a"])
def test_krpc_malformed(payload):
    with pytest.raises(KrpcError):
        decode_krpc(payload)


def test_udp_tracker_exchange():
    connect = struct.pack(">QII", bep15.PROTOCOL_ID, 0, 7)
    assert bep15.decode_request(connect) == bep15.UdpTrackerRequest(0, 7, bep15.PROTOCOL_ID)
    r = bep15.decode_response(struct.pack(">IIQ", 0, 7, 0x1122334455667788), 0, False)
    assert r.connection_id == 0x1122334455667788
    announce = struct.pack(">QII20s20sQQQIIIiH", 0x1122334455667788, 1, 8, IH, b"-LT2110-" + b"x" * 12,
                           1000, 2000, 3000, 2, 0, 0xABCD, -1, 6881)
    req = bep15.decode_request(announce)
    assert (req.info_hashes, req.downloaded, req.left, req.uploaded, req.event, req.port, req.num_want) == \
        ((IH.hex(),), 1000, 2000, 3000, "started", 6881, -1)
    resp = struct.pack(">IIIII", 1, 8, 1800, 3, 5) + bytes([10, 0, 0, 1]) + struct.pack(">H", 6881)
    r = bep15.decode_response(resp, 1, False)
    assert (r.interval, r.leechers, r.seeders, r.peers) == (1800, 3, 5, (("10.0.0.1", 6881),))
    r6 = bep15.decode_response(struct.pack(">IIIII", 1, 8, 1800, 0, 1) + bytes(15) + b"\x01\x1a\xe1", 1, True)
    assert r6.peers == (("::1", 6881),)
    err = bep15.decode_response(struct.pack(">II", 3, 8) + b"torrent not registered", 1, False)
    assert err.message == "torrent not registered"
    scrape = struct.pack(">QII", 5, 2, 9) + IH + bytes(20)
    assert bep15.decode_request(scrape).info_hashes == (IH.hex(), bytes(20).hex())
    assert bep15.decode_response(struct.pack(">IIIII", 2, 9, 4, 10, 2), 2, False).scrape == ((4, 10, 2),)


@pytest.mark.parametrize("payload", [bytes(16), b"\x00" * 15, struct.pack(">QII", 5, 1, 1) + bytes(10)])
def test_udp_tracker_not_requests(payload):
    assert bep15.decode_request(payload) is None


def test_lsd():
    msg = (b"BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\nInfohash: " + IH.hex().upper().encode()
           + b"\r\nInfohash: " + bytes(20).hex().encode() + b"\r\ncookie: abc\r\n\r\n\r\n")
    a = decode_lsd(msg)
    assert (a.port, a.info_hashes, a.cookie) == (6881, (IH.hex(), bytes(20).hex()), "abc")
    assert decode_lsd(b"M-SEARCH * HTTP/1.1\r\n\r\n") is None


def test_http_tracker_request_and_gzip_response():
    q = ("/announce?info_hash=" + "".join(f"%{b:02X}" for b in IH) + "&peer_id=-LT2110-abcdefghijkl"
         "&port=6881&uploaded=10&downloaded=20&left=30&event=completed&numwant=50&key=ab12&compact=1")
    head = f"GET {q} HTTP/1.1\r\nHost: tracker.example:6969\r\nUser-Agent: libtorrent/2.1.1\r\n\r\n".encode()
    [req] = parse_requests(head + b"GET /scrape?info_hash=" + b"%41" * 20 + b" HTTP/1.1\r\n\r\n")[:1]
    assert req.info_hashes == (IH.hex(),) and req.host == "tracker.example:6969"
    assert (req.number("uploaded"), req.number("downloaded"), req.number("left"), req.params["event"]) == \
        (10, 20, 30, "completed")
    body = gzip.compress(encode({"interval": 900, "peers": bytes([10, 0, 0, 2, 0x1A, 0xE1]),
                                 "peers6": bytes(15) + b"\x01\x1a\xe1"}))
    resp = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    [r] = parse_responses(resp)
    assert (r.status, r.interval, r.peers) == (200, 900, (("10.0.0.2", 6881), ("::1", 6881)))
    chunked = encode({"failure reason": "unregistered torrent"})
    [f] = parse_responses(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % len(chunked)
                          + chunked + b"\r\n0\r\n\r\n")
    assert f.failure == "unregistered torrent"
    dict_peers = encode({"interval": 60, "peers": [{"ip": "10.1.1.1", "port": 1, "peer id": b"x" * 20}]})
    [d] = parse_responses(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(dict_peers) + dict_peers)
    assert d.peers == (("10.1.1.1", 1),)


def test_mse_basis():
    import random
    rnd = random.Random(1)
    key_a = bytes(rnd.randrange(256) for _ in range(200))
    key_b = bytes(rnd.randrange(256) for _ in range(150))
    assert mse_basis(200, 150, key_a, key_b)
    assert mse_basis(90, 150, key_a, key_b) is None                      # too short for a 96-byte key
    assert mse_basis(700, 150, key_a, key_b) is None                     # longer than key + 512 padding
    assert mse_basis(200, 150, b"\x16\x03\x01" + key_a, key_b) is None   # TLS
    assert mse_basis(200, 150, b"A" * 200, key_b) is None                # not random


def test_an_announce_cut_by_the_snap_length_keeps_what_was_captured():
    announce = struct.pack(">QII", 0xC0FFEE, 1, 7) + IH + b"-LT2110-abcdefghijkl" + struct.pack(
        ">QQQIIIiH", 100, 200, 300, 2, 0, 0x1234, -1, 6881)
    assert len(announce) == 98
    assert bep15.decode_request(announce[:54]) is None                 # without its length: not a request
    cut = bep15.decode_request(announce[:54], 98)                      # 96-byte snap length over IPv4
    assert cut.truncated and cut.info_hashes == (IH.hex(),) and cut.peer_id is None and cut.port is None
    cut = bep15.decode_request(announce[:86], 98)                      # 128 bytes: up to the event
    assert (cut.downloaded, cut.left, cut.uploaded, cut.event, cut.port) == (100, 200, 300, "started", None)
    assert bep15.decode_request(announce[:30], 98) is None             # the info hash cut: nothing to say
    assert bep15.decode_request(announce, 98) == bep15.decode_request(announce)
