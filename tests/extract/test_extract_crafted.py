"""The disclosure excerpt on crafted edge cases (scapy): the exact frames taken, and the refusals.

One capture holds, for torrent A and (to be left out) torrent B: two TCP connections on the same
4-tuple one after the other (A, then B); another connection for A with a segment sent as IP
fragments in reverse order;
DHT get_peers queries and their answers (A's answer fragmented, answers do not name the hash);
a BEP 51 sample_infohashes query whose answer lists A (the query must come too) and one whose
answer does not; a UDP tracker's connect exchange (not about any torrent), announces and answers;
LSD announces; an unrelated fragmented datagram.
"""
from __future__ import annotations

import json
import shutil
import struct

import pytest

from analyzer.protocols.bencode import encode
from craft import (BT_MESSAGES, bt_handshake, ethernet, fragment_packet, tcp_conversation, timed, udp_packet,
                   write_pcap)
from excerpts import analyze, assert_frames_map, assert_same_evidence, cli, extract, frames_csv

A, B = bytes(range(20)), bytes(range(100, 120))
CLIENT, SERVER, NODE_IP, SAMPLER, TRACKER = "10.0.0.1", "10.0.0.2", "10.0.0.9", "10.0.0.8", "10.0.0.7"
NODE = b"N" * 20


def conversation(h: bytes, port: int = 50000) -> list[bytes]:
    return tcp_conversation(CLIENT, SERVER, port, 6881, payloads=[
        (0, bt_handshake(h, b"-CL0001-clientclient")), (1, bt_handshake(h, b"-SV0001-serverserver")),
        (0, BT_MESSAGES)])


def dht(src, dst, sport, dport, msg) -> bytes:
    return udp_packet(src, dst, sport, dport, encode(msg))


def get_peers(h: bytes, t: bytes) -> list[bytes]:
    q = dht(CLIENT, NODE_IP, 6881, 7000,
            {b"t": t, b"y": b"q", b"q": b"get_peers", b"a": {b"id": NODE, b"info_hash": h}})
    r = dht(NODE_IP, CLIENT, 7000, 6881, {b"t": t, b"y": b"r", b"r": {
        b"id": NODE, b"token": b"tok", b"values": [bytes([10, 0, 1, i, 0x1A, 0xE1]) for i in range(60)]}})
    return [q, r]


def samples(t: bytes, listed: bytes) -> list[bytes]:
    q = dht(CLIENT, SAMPLER, 6881, 7001, {b"t": t, b"y": b"q", b"q": b"sample_infohashes",
                                         b"a": {b"id": NODE, b"target": NODE}})
    r = dht(SAMPLER, CLIENT, 7001, 6881, {b"t": t, b"y": b"r", b"r": {
        b"id": NODE, b"samples": listed, b"num": len(listed) // 20, b"interval": 60}})
    return [q, r]


def udp_tracker_announce(h: bytes, tid: int) -> list[bytes]:
    req = struct.pack(">QII", 0x1122334455667788, 1, tid) + h + b"-CL0001-clientclient" \
        + struct.pack(">QQQIIIiH", 0, 1000, 0, 2, 0, 0xABCD, -1, 6881)
    resp = struct.pack(">IIIII", 1, tid, 1800, 1, 2) + bytes([10, 0, 0, 2, 0x1A, 0xE1])
    return [udp_packet(CLIENT, TRACKER, 6881, 6969, req), udp_packet(TRACKER, CLIENT, 6969, 6881, resp)]


def lsd(h: bytes) -> bytes:
    msg = (b"BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\nInfohash: "
           + h.hex().upper().encode() + b"\r\n\r\n\r\n")
    return udp_packet(CLIENT, "239.192.152.143", 6771, 6771, msg)


def crafted() -> list[tuple[bytes, str | None]]:
    """(IP packet, its evidence in A's excerpt or None) in capture order."""
    out = [(p, "connection:1") for p in conversation(A)]
    out += [(p, None) for p in conversation(B)]             # the same 4-tuple, reused for torrent B
    for i, p in enumerate(conversation(A, 50001)):
        if i == 5:                                           # the server's handshake, fragmented, last first
            out += [(f, "connection:3") for f in reversed(fragment_packet(p, 24, ident=0x5151))]
        else:
            out.append((p, "connection:3"))
    q, r = get_peers(A, b"ga")
    out += [(q, "dht")] + [(f, "dht") for f in fragment_packet(r, 200, ident=0x6161)]
    out += [(p, None) for p in get_peers(B, b"gb")]
    out += [(p, "dht") for p in samples(b"sa", B + A)]       # the answer lists A: the query comes too
    out += [(p, None) for p in samples(b"sb", B)]
    connect = struct.pack(">QII", 0x41727101980, 0, 77)
    out += [(udp_packet(CLIENT, TRACKER, 6881, 6969, connect), None),
            (udp_packet(TRACKER, CLIENT, 6969, 6881, struct.pack(">IIQ", 0, 77, 0x1122334455667788)), None)]
    out += [(p, "udp_tracker") for p in udp_tracker_announce(A, 78)]
    out += [(p, None) for p in udp_tracker_announce(B, 79)]
    out += [(lsd(A), "lsd"), (lsd(B), None)]
    junk = udp_packet(CLIENT, "10.0.0.55", 5000, 5001, b"\x7f" * 400)
    out += [(f, None) for f in fragment_packet(junk, 128, ident=0x7171)]
    return out


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("crafted")
    packets = crafted()
    cap = write_pcap(root / "crafted.pcap", timed([ethernet(p) for p, _ in packets]), nano=True)
    folder = analyze([cap], root / "out", "--local", CLIENT)
    return root, cap, folder, [(i + 1, e) for i, (_, e) in enumerate(packets) if e]


def test_exactly_the_frames_of_the_torrent(case, tmp_path):
    root, cap, folder, expected = case
    ex = extract(folder, A.hex(), tmp_path / "a.pcapng")
    rows = frames_csv(ex)
    assert list(zip(rows["original_frame"], rows["evidence"])) == expected
    assert set(rows["original_file"]) == {str(cap)}
    assert_frames_map(ex, folder)


def test_the_excerpt_says_the_same_about_the_torrent(case, tmp_path):
    root, cap, folder, _ = case
    ex = extract(folder, A.hex(), tmp_path / "a.pcapng")
    again = analyze([ex], tmp_path / "again", "--local", CLIENT)
    assert_same_evidence(folder, again, {A.hex()})
    summary = json.loads((again / "summary.json").read_text())
    assert [t["info_hash"] for t in summary["torrents"]] == [A.hex()]
    cats = {k for k, v in summary["accounting"]["categories"].items() if v["frames"]}
    assert cats == {"bittorrent", "dht", "tracker", "lsd"}           # nothing but evidence
    dht_rows = (again / "dht.csv").read_text().splitlines()
    assert any(A.hex() in r and r.endswith(",60") for r in dht_rows)       # the fragmented answer counted
    assert any(A.hex() in r and "sample_infohashes_result" in r for r in dht_rows)


def test_manifest_records_and_verify_checks_the_excerpt(case, tmp_path):
    root, cap, folder, expected = case
    work = tmp_path / "out"
    shutil.copytree(folder, work)
    ex = extract(work, A.hex(), work / "a.pcapng", "--peer", SERVER)
    manifest = json.loads((work / "manifest.json").read_text())
    [entry] = [e for e in manifest["extracts"] if e["path"] == "a.pcapng"]
    assert entry["path"] == "a.pcapng" and entry["frames_csv"]["path"] == "a.frames.csv"
    assert entry["info_hash"] == A.hex() and entry["filters"]["peer"] == SERVER
    # the connections only: no datagram was exchanged with the server
    assert entry["frames"] == len(frames_csv(ex)) == sum(1 for e in expected if e[1].startswith("connection"))
    out = cli("verify", work)
    assert "ok        extract a.pcapng" in out and "ok        extract a.frames.csv" in out
    assert "UNLISTED" not in out
    extract(work, A.hex(), work / "a.pcapng")                  # again, to the same file: replaced
    assert [e["path"] for e in json.loads((work / "manifest.json").read_text())["extracts"]].count("a.pcapng") == 1
    with open(ex, "ab") as f:
        f.write(b"\0\0\0\0")
    out = cli("verify", work, code=1)
    assert "MODIFIED  extract a.pcapng" in out


def test_refusals(case, tmp_path):
    root, cap, folder, _ = case
    def refused(*args, text, code=2):
        out = cli("extract", folder, *args, code=code)
        assert text in out and "Traceback" not in out, out
    refused("--info-hash", "ab" * 20, "-o", tmp_path / "x.pcapng", text="does not occur", code=1)
    refused("--info-hash", "xyz", "-o", tmp_path / "x.pcapng", text="40 hex digits")
    refused("--info-hash", A.hex(), "-o", tmp_path / "x.pcap", text="FILE.pcapng")
    refused("--info-hash", A.hex(), "-o", tmp_path / "x.pcapng", "--from", "2023-11-14 22:13:20",
            text="no time zone")
    refused("--info-hash", A.hex(), "-o", tmp_path / "x.pcapng", "--from", "2023-11-15T00:00:00Z",
            "--to", "2023-11-14T00:00:00Z", text="after --to")
    refused("--info-hash", A.hex(), "-o", tmp_path / "x.pcapng", "--peer", "not-an-ip", text="--peer")
    refused("--info-hash", A.hex(), "-o", tmp_path / "nowhere" / "x.pcapng", text="does not exist")
    refused("--info-hash", A.hex(), "-o", folder / "summary.json", text="FILE.pcapng")
    assert not (tmp_path / "x.pcapng").exists()


def test_changed_or_missing_input_is_refused(case, tmp_path):
    root, cap, folder, _ = case
    work = tmp_path / "w"
    shutil.copytree(root, work)
    manifest = json.loads((work / "out" / "manifest.json").read_text())
    for i in manifest["inputs"]:
        i["resolved_path"] = str(work / "crafted.pcap")
    (work / "out" / "manifest.json").write_text(json.dumps(manifest))
    data = bytearray((work / "crafted.pcap").read_bytes())
    data[-1] ^= 0xFF                                           # same size, other bytes
    (work / "crafted.pcap").write_bytes(bytes(data))
    out = cli("extract", work / "out", "--info-hash", A.hex(), "-o", tmp_path / "x.pcapng", code=1)
    assert "has changed since the analysis: SHA-256" in out
    assert not (tmp_path / "x.pcapng").exists() and not list(tmp_path.glob("x.*"))
    (work / "crafted.pcap").unlink()
    out = cli("extract", work / "out", "--info-hash", A.hex(), "-o", tmp_path / "x.pcapng", code=1)
    assert "is missing" in out
