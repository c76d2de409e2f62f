"""ut_pex (BEP 11) through the BEP 10 router: who told whom about which peer.

Crafted TCP conversations go through the real engine (so the routing by the
receiver's ``m`` dictionary is exercised end to end), and a real capture of
an µTorrent-era swarm from the nDPI test suite carries a real ut_pex message.
"""
from __future__ import annotations

import csv
import io
import ipaddress
import struct

import pytest

from analyzer.analysis import analyze
from analyzer.findings import build_findings
from analyzer.output.tables import pex_csv
from analyzer.protocols.bencode import encode
from analyzer.sessions.extensions.ut_pex import parse_pex
from craft import public_captures_dir
from flows.craft_tcp import Conversation, hs, msg, write_pcap
from summaries import summarize

IH = bytes(range(20))
SUBJECT, REMOTE = ("10.9.0.1", 51413), ("10.9.0.2", 6881)


def compact(*peers: str) -> bytes:
    out = b""
    for p in peers:
        ip, port = p.rsplit(":", 1)
        out += ipaddress.ip_address(ip.strip("[]")).packed + struct.pack(">H", int(port))
    return out


def ext(ext_id: int, payload: dict) -> bytes:
    return msg(20, bytes([ext_id]) + encode(payload))


def exchange(tmp_path, remote_messages: list[bytes], subject_m: dict, remote_m: dict | None = None):
    """The subject connects to REMOTE; both send handshakes and extended handshakes; REMOTE then
    sends ``remote_messages``.  The analysis of the resulting capture."""
    c = Conversation(SUBJECT, REMOTE)
    c.open()
    c.send(0, hs(IH, b"-qB4630-subject00000", bytes([0, 0, 0, 0, 0, 0x10, 0, 0])) + ext(0, {b"m": subject_m}))
    c.send(1, hs(IH, b"-lt2010-remote000000", bytes([0, 0, 0, 0, 0, 0x10, 0, 0]))
           + ext(0, {b"m": remote_m or {b"ut_pex": 7}}) + b"".join(remote_messages))
    c.close()
    path = write_pcap(tmp_path / "pex.pcap", (c.ep, c.segs))
    return analyze([path], local=[SUBJECT[0]], warn=lambda m: None)


def test_peers_the_subject_was_told_about(tmp_path):
    # the subject asked to receive ut_pex as id 3: REMOTE's messages use 3
    added = compact("10.9.0.7:6881", "10.9.0.8:51000")
    result = exchange(tmp_path, [ext(3, {b"added": added, b"added.f": b"\x01\x10"}),
                                 ext(3, {b"added": compact("10.9.0.7:6881"), b"added.f": b"\x02",
                                         b"dropped": compact("10.9.0.8:51000"),
                                         b"added6": compact("[fd00::5]:6881")})],
                      {b"ut_pex": 3})
    f = build_findings(result)
    rows = list(csv.DictReader(io.StringIO(pex_csv(f))))
    assert [(r["peer"], r["added"], r["dropped"], r["flags"], r["to_subject"]) for r in rows] == [
        ("10.9.0.7:6881", "2", "0", "3", "True"),
        ("10.9.0.8:51000", "1", "1", "16", "True"),
        ("[fd00::5]:6881", "1", "0", "0", "True"),
    ]
    assert {(r["sender"], r["receiver"]) for r in rows} == {("10.9.0.2:6881", "10.9.0.1:51413")}
    assert all(r["info_hash"] == IH.hex() and r["first_frame"] for r in rows)
    pex = summarize(result)["pex"]
    assert pex["messages"] == 2 and pex["malformed"] == 0
    [h] = pex["info_hashes"]
    assert (h["info_hash"], h["peers_learned"], h["sources"]) == (IH.hex(), 3, 1)


def test_messages_are_named_by_the_receivers_handshake(tmp_path):
    # REMOTE sends under id 7 (its own number for ut_pex), which the subject never announced:
    # per BEP 10 that is not ut_pex, so nothing is learned, and the message is counted
    result = exchange(tmp_path, [ext(7, {b"added": compact("10.9.0.7:6881")})], {b"ut_pex": 3})
    assert summarize(result)["pex"] == {"messages": 0, "malformed": 0, "dropped_keys": 0, "info_hashes": []}
    assert result.extension_messages["unnamed"] == 1


def test_a_later_handshake_moves_an_extension(tmp_path):
    # BEP 10: a later extended handshake may change the id (or disable it with 0)
    result = exchange(tmp_path, [ext(3, {b"added": compact("10.9.0.7:6881")})], {b"ut_pex": 0})
    assert summarize(result)["pex"]["messages"] == 0


def test_malformed_pex_is_counted():
    assert parse_pex(b"not bencode") is None
    assert parse_pex(encode({b"added": b"\x01\x02\x03"})) is None        # not a multiple of 6
    assert parse_pex(encode([1, 2])) is None
    assert parse_pex(encode({b"added": compact("1.2.3.4:5"), b"added.f": 7})) == [("1.2.3.4:5", True, 0)]


def test_real_capture_ut_pex():
    path = public_captures_dir() / "ndpi_bittorrent_utp.pcap"
    if not path.exists():
        pytest.fail(f"{path} missing")
    result = analyze([path], local=["192.168.1.5"], warn=lambda m: None)
    f = build_findings(result)
    told = [r for r in f.pex.rows if r.to_subject]
    # one ut_pex message from 82.243.113.43 naming 11 peers (checked by hand against the bencoded payload)
    assert f.pex.messages == 1 and len(told) == 11
    assert {r.sender for r in told} == {"82.243.113.43:64969"}
    [h] = f.pex.info_hashes
    assert (h.peers_learned, h.sources) == (11, 1)
