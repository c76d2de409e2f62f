"""Crafted hostile inputs (issue 12), built by hand with ``struct`` so each one is exact.

Each builder returns the bytes of one input (a capture file, a protocol message
or a list of stream operations).  The regression tests build them here; the
small ones are also committed as seeds in ``tests/fuzz/corpus/<target>/``
(``python -m fuzz.corpus`` from ``tests/`` rewrites that folder), and
``bench/hostile.py`` measures the whole analyzer on them.
"""
from __future__ import annotations

import hashlib
import struct

NS = 1_000_000_000
BASE_S = 1_700_000_000                       # 2023-11-14
CLIENT, SERVER = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
INFO_HASH = bytes(range(20))
HUGE = b"9" * 5000                           # past Python's int() digit limit (4300)


# ---------------------------------------------------------------------- packets (no scapy: exact and fast)
def _csum(b: bytes) -> int:
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f">{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src: bytes, dst: bytes, proto: int, payload: bytes, *, ident: int = 1, frag: int = 0) -> bytes:
    hdr = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, 64, proto, 0, src, dst)
    return hdr[:10] + struct.pack(">H", _csum(hdr)) + hdr[12:] + payload


def tcp(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes = b"") -> bytes:
    seg = struct.pack(">HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0)
    return ipv4(src, dst, 6, seg + payload)


def ether(ip: bytes) -> bytes:
    return bytes.fromhex("020000000002" "020000000001" "0800") + ip


def tcp_stream_packets(c2s: list[bytes], s2c: list[bytes], cport: int = 50000, sport: int = 6881) -> list[bytes]:
    """Ethernet frames of one TCP connection: handshake, the client's payloads, the
    server's payloads (each acknowledged), FIN both ways."""
    S, A, P, F = 0x02, 0x10, 0x08, 0x01
    cs, ss = 1000, 500000
    out = [tcp(CLIENT, SERVER, cport, sport, cs, 0, S), tcp(SERVER, CLIENT, sport, cport, ss, cs + 1, S | A)]
    cs += 1
    ss += 1
    out.append(tcp(CLIENT, SERVER, cport, sport, cs, ss, A))
    for p in c2s:
        out.append(tcp(CLIENT, SERVER, cport, sport, cs, ss, P | A, p))
        cs += len(p)
        out.append(tcp(SERVER, CLIENT, sport, cport, ss, cs, A))
    for p in s2c:
        out.append(tcp(SERVER, CLIENT, sport, cport, ss, cs, P | A, p))
        ss += len(p)
        out.append(tcp(CLIENT, SERVER, cport, sport, cs, ss, A))
    out += [tcp(CLIENT, SERVER, cport, sport, cs, ss, F | A), tcp(SERVER, CLIENT, sport, cport, ss, cs + 1, F | A),
            tcp(CLIENT, SERVER, cport, sport, cs + 1, ss + 1, A)]
    return [ether(p) for p in out]


# ---------------------------------------------------------------------- pcap
def pcap(records: list[tuple[int, int, bytes]], *, nano: bool = False) -> bytes:
    """A little-endian classic pcap of (seconds, fraction, data) records, fields as given."""
    out = [struct.pack("<IHHiIII", 0xA1B23C4D if nano else 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
    for sec, frac, data in records:
        out.append(struct.pack("<IIII", sec, frac, len(data), len(data)) + data)
    return b"".join(out)


def pcap_of(frames: list[bytes], start_s: int = BASE_S) -> bytes:
    return pcap([(start_s, i * 1000, f) for i, f in enumerate(frames)])


def syn_flood_frames(n: int, dst: bytes = SERVER, dport: int = 6881):
    """Ethernet frames of ``n`` SYNs from distinct addresses and ports to one listening port:
    half-open connections that never carry payload (issue 12's 200,000-SYN flood)."""
    for i in range(n):
        src = bytes([10, 128 | (i >> 16) & 127, (i >> 8) & 255, i & 255])
        yield ether(tcp(src, dst, 1024 + i % 60000, dport, i * 7919, 0, 0x02))


def payload_flood_frames(n: int, dst: bytes = SERVER, dport: int = 6881, payload: bytes = b"\x13BitTorrent protocol"):
    """Ethernet frames of ``n`` connections seen mid-stream (no SYN), each one segment of a few
    payload bytes (a BitTorrent handshake's first 20 by default): every one gets payload state,
    a parser resynchronising, a comparison ring."""
    for i in range(n):
        src = bytes([10, 128 | (i >> 16) & 127, (i >> 8) & 255, i & 255])
        yield ether(tcp(src, dst, 1024 + i % 60000, dport, i * 7919, 0, 0x18, payload))


def flood_pcap(frames, per_second: int = 1000) -> bytes:
    return pcap([(BASE_S + i // per_second, (i % per_second) * (1_000_000 // per_second), f)
                 for i, f in enumerate(frames)])


def syn_flood_pcap(n: int, per_second: int = 1000) -> bytes:
    """``n`` SYNs, ``per_second`` of them each second (a pcap)."""
    return pcap([(BASE_S + i // per_second, (i % per_second) * (1_000_000 // per_second), f)
                 for i, f in enumerate(syn_flood_frames(n))])


def udp_frame(payload: bytes = b"x" * 20) -> bytes:
    return ether(ipv4(CLIENT, SERVER, 17, struct.pack(">HHHH", 40000, 40001, 8 + len(payload), 0) + payload))


def pcap_odd_timestamps() -> bytes:
    """Microsecond fields of 10^6 and 2^32-1, a time in 2103, then normal records."""
    f = udp_frame()
    return pcap([(BASE_S, 1, f), (BASE_S, 1_000_000, f), (BASE_S + 1, 0xFFFFFFFF, f),
                 (4_200_000_000, 0, f), (BASE_S + 2, 5, f)])


# ---------------------------------------------------------------------- pcapng
def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def block(btype: int, body: bytes) -> bytes:
    body = _pad4(body)
    return struct.pack("<II", btype, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


def shb() -> bytes:
    return block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(linktype: int = 1, tsresol: int | None = None, body: bytes | None = None) -> bytes:
    if body is not None:
        return block(1, body)
    opts = b""
    if tsresol is not None:
        opts = struct.pack("<HH", 9, 1) + _pad4(bytes([tsresol])) + b"\0\0\0\0"
    return block(1, struct.pack("<HHI", linktype, 0, 0) + opts)


def epb(iface: int, units: int, data: bytes) -> bytes:
    return block(6, struct.pack("<IIIII", iface, units >> 32, units & 0xFFFFFFFF, len(data), len(data)) + _pad4(data))


def pcapng_tsresol(raw: int) -> bytes:
    """Interface 0 has if_tsresol byte ``raw``; interface 1 is normal (microseconds).
    Two frames on each, alternating."""
    f = udp_frame()
    us = BASE_S * 1_000_000
    return shb() + idb(tsresol=raw) + idb() + b"".join(
        epb(0, 0xFFFFFFFFFFFFFFFF - k, f) + epb(1, us + k, f) for k in range(2))


def pcapng_short_idb(body_len: int) -> bytes:
    """An interface description block with an empty or 4-byte body, then a normal one."""
    f = udp_frame()
    return shb() + idb(body=b"\x01\x00\x00\x00"[:body_len]) + idb() + epb(0, 5, f) + \
        epb(1, BASE_S * 1_000_000, f)


def pcapng_many_interfaces(n: int = 70_000, ids: tuple = (0, 1, 65535, 65536, 69_999)) -> bytes:
    f = udp_frame()
    one = idb()
    us = BASE_S * 1_000_000
    return shb() + one * n + b"".join(epb(i, us + k, f) for k, i in enumerate(ids) if i < n)


# ---------------------------------------------------------------------- HTTP tracker
def http_request(field: str = "uploaded", value: bytes = HUGE) -> bytes:
    """An announce whose query parameter ``field`` is ``value``."""
    params = {"peer_id": b"-XX0001-abcdefghijkl", "port": b"6881", "uploaded": b"0", "downloaded": b"0",
              "left": b"0", "event": b"started"}
    params[field] = value
    q = b"info_hash=" + b"".join(b"%%%02X" % c for c in INFO_HASH)
    q += b"".join(b"&" + k.encode() + b"=" + v for k, v in params.items())
    return b"GET /announce?" + q + b" HTTP/1.1\r\nHost: tracker.example\r\nUser-Agent: x\r\n\r\n"


def http_response(status: bytes = b"200", length: bytes | None = None) -> bytes:
    body = b"d8:intervali1800e5:peers6:\x0a\x00\x00\x03\x1a\xe1e"
    cl = str(len(body)).encode() if length is None else length
    return b"HTTP/1.1 " + status + b" OK\r\nContent-Length: " + cl + b"\r\n\r\n" + body


def http_tracker_pcap(case: str) -> bytes:
    """A tracker exchange over TCP with a 5,000-digit number in the query, the status code
    or the Content-Length."""
    req = http_request() if case == "query" else http_request("port", b"6881")
    resp = http_response(status=HUGE) if case == "status" else \
        http_response(length=HUGE) if case == "length" else http_response()
    return pcap_of(tcp_stream_packets([req], [resp], sport=80))


# ---------------------------------------------------------------------- peer wire
def bt_handshake(peer_id: bytes = b"-XX0001-abcdefghijkl") -> bytes:
    return b"\x13BitTorrent protocol" + bytes(8) + INFO_HASH + peer_id


def bt_message(msg_id: int, payload: bytes = b"") -> bytes:
    return struct.pack(">IB", 1 + len(payload), msg_id) + payload


def oversized_bitfield_stream(claim: int = 100 << 20, chunk: int = 1 << 20):
    """Handshake, a bitfield claiming ``claim`` bytes (all present), then a piece and a have:
    the byte strings to feed, generated one at a time."""
    yield bt_handshake()
    yield struct.pack(">IB", claim, 5)
    left = claim - 1
    fill = b"\xff" * chunk
    while left:
        n = min(chunk, left)
        yield fill[:n]
        left -= n
    yield bt_message(7, struct.pack(">II", 0, 0) + b"B" * 16384)
    yield bt_message(4, struct.pack(">I", 3))


# ---------------------------------------------------------------------- torrents for --carve
def bencode(v) -> bytes:
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, str):
        return bencode(v.encode())
    if isinstance(v, list):
        return b"l" + b"".join(bencode(x) for x in v) + b"e"
    return b"d" + b"".join(bencode(k) + bencode(v[k]) for k in sorted(v)) + b"e"


def carve_torrent(paths: list[list[str]], content: bytes, plen: int = 16384) -> tuple[bytes, bytes]:
    """(.torrent bytes, info hash) of a multi-file torrent whose files share ``content``
    equally (the last file takes the rest)."""
    n = len(paths)
    size = len(content) // n
    sizes = [size] * (n - 1) + [len(content) - size * (n - 1)]
    info = {b"name": b"t", b"piece length": plen,
            b"pieces": b"".join(hashlib.sha1(content[i:i + plen]).digest() for i in range(0, len(content), plen)),
            b"files": [{b"length": s, b"path": [c.encode() for c in p]} for p, s in zip(paths, sizes)]}
    raw_info = bencode(info)
    return b"d4:info" + raw_info + b"e", hashlib.sha1(raw_info).digest()


def carve_pcap(info_hash: bytes, content: bytes, plen: int = 16384) -> bytes:
    """A peer wire connection on which the server sends every piece of ``content`` to the client."""
    pieces = [bt_message(7, struct.pack(">II", i // plen, 0) + content[i:i + plen]) for i in range(0, len(content), plen)]
    hs_c = b"\x13BitTorrent protocol" + bytes(8) + info_hash + b"-XX0001-clientclient"
    hs_s = b"\x13BitTorrent protocol" + bytes(8) + info_hash + b"-XX0001-serverserver"
    return pcap_of(tcp_stream_packets([hs_c, bt_message(2)], [hs_s, bt_message(1), *pieces]))


def deep_paths(depth: int = 30, width: int = 200) -> list[list[str]]:
    """A 30-deep path of 200-character names (6,000+ characters: ENAMETOOLONG) and a plain file."""
    return [[("d%d" % i).ljust(width, "x") for i in range(depth)] + ["deep.bin"], ["plain.bin"]]
