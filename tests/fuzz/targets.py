"""Fuzz targets: one function per parser, ``target(data: bytes) -> None``.

Invariant of every target: the parser either parses or reports the damage in
its documented way (an anomaly count, an error event, a closed exception
type such as ``BencodeError`` / ``KrpcError`` / ``CaptureError``); any other
exception is a finding.  Each target also checks a few properties of what
it got (byte accounting identities, bounds), raising ``AssertionError``
when one breaks.  Memory is capped by the runner (``run.py``).

The targets that drive compiled kernels (peerwire, tcp, utp, engine, and
the capture scanners under ``capture``) decode the fuzz input into a
sequence of operations (chunks, gaps, segments, packets) with a small
byte-level grammar, so mutations explore orders, overlaps and gaps.
"""
from __future__ import annotations

import os
import struct
import tempfile

import numpy as np

from analyzer.capture import reader as capture_reader
from analyzer.decode.fragments import Defragmenter
from analyzer.protocols import events as ev
from analyzer.protocols.bencode import BencodeError, decode, encode
from analyzer.protocols.http_tracker import parse_requests, parse_responses
from analyzer.protocols.krpc import KrpcError, decode_krpc
from analyzer.protocols.mse import mse_basis
from analyzer.protocols.peerwire import PeerWireParser
from analyzer.protocols.udp_tracker import decode_request, decode_response

MAX_BLOCK = 1 << 17


# ---------------------------------------------------------------------- pure Python
def bencode(data: bytes) -> None:
    try:
        v = decode(data)
    except BencodeError as e:
        assert 0 <= e.pos <= len(data), e
        return
    assert decode(encode(v)) == v


def krpc(data: bytes) -> None:
    try:
        m = decode_krpc(data)
    except KrpcError:
        return
    assert m.kind in ("query", "response", "error")
    assert m.port is None or 0 <= m.port < 65536


def http_tracker(data: bytes) -> None:
    for req in parse_requests(data):
        for key in ("uploaded", "downloaded", "left", "port", "numwant"):
            n = req.number(key)
            assert n is None or 0 <= n < 10**20
    for resp in parse_responses(data):
        assert 0 <= resp.status <= 999


def udp_tracker(data: bytes) -> None:
    decode_request(data)
    for action in range(4):
        decode_response(data, action, False)
        decode_response(data, action, True)


def mse(data: bytes) -> None:
    if len(data) < 4:
        return
    f0, f1 = struct.unpack_from(">HH", data)
    half = (len(data) - 4) // 2
    mse_basis(f0, f1, data[4:4 + half], data[4 + half:])


def fragments(data: bytes) -> None:
    """Records: [flags, offset/8 (2 bytes), length, ident] + payload; flags bit 0 = more
    fragments, bit 1 = IPv6, bit 2 = other source."""
    d = Defragmenter()
    pos = 0
    frame = 0
    while pos + 5 <= len(data):
        flags, off8, n, ident = data[pos], struct.unpack_from(">H", data, pos + 1)[0], data[pos + 3], data[pos + 4]
        payload = data[pos + 5:pos + 5 + n]
        pos += 5 + n
        frame += 1
        offset = (off8 & 0x1FFF) * 8
        more = bool(flags & 1)
        if flags & 2:
            src = bytes(15) + bytes([1 + (flags >> 2 & 1)])
            fh = struct.pack(">BBHI", 17, 0, offset | more, ident)
            ip = struct.pack(">IHBB16s16s", 0x60000000, 8 + len(payload), 44, 64, src, bytes(15) + b"\x09") + fh
            got = d.add(0, frame, frame, 100, 6, ip + payload)
        else:
            src = bytes([10, 0, 0, 1 + (flags >> 2 & 1)])
            ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, (offset // 8) | (0x2000 if more else 0),
                             64, 17, 0, src, bytes([10, 0, 0, 9]))
            got = d.add(0, frame, frame, 100, 4, ip + payload)
        if got is not None:
            assert len(got.packet) <= 65535 + 40 and got.frames >= 1
        assert d.pending_bytes >= 0
    d.flush()
    assert not d.pending and d.pending_bytes == 0


# ---------------------------------------------------------------------- capture files
_SCRATCH = None


def _scratch_path() -> str:
    global _SCRATCH
    if _SCRATCH is None:
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        fd, _SCRATCH = tempfile.mkstemp(prefix="bt-fuzz-capture-", dir=base)
        os.close(fd)
    return _SCRATCH


def capture(data: bytes) -> None:
    """The whole reader (pcap/pcapng, compressed) on a file of these bytes, with a small
    buffer (damage and refills happen across buffer boundaries)."""
    saved = {k: getattr(capture_reader, k) for k in _SMALL}
    for k, v in _SMALL.items():
        setattr(capture_reader, k, v)
    try:
        _read_capture(data)
    finally:
        for k, v in saved.items():
            setattr(capture_reader, k, v)


_SMALL = {"BUFFER_SIZE": 1 << 16, "FIRST_READ": 512, "MAX_PCAPNG_BLOCK": 1 << 15, "DEFAULT_MAX_CAPLEN": 1 << 14}


def _read_capture(data: bytes) -> None:
    path = _scratch_path()
    with open(path, "wb") as f:
        f.write(data)
    try:
        r = capture_reader.CaptureReader(path)
    except capture_reader.CaptureError as e:
        assert "\n" not in str(e)
        return
    frames = 0
    for b in r.batches():
        assert 0 < b.n <= len(b.rec_off)
        off, cap, iface = b.rec_off[:b.n], b.caplen[:b.n], b.iface[:b.n]
        assert (off >= 0).all() and (off + cap <= len(b.buf)).all()
        assert (iface < len(b.if_linktype)).all()
        frames += b.n
    rep = r.report
    assert rep.frames == frames and len(rep.errors) <= capture_reader.MAX_ERROR_LINES + 1
    assert rep.damaged_bytes >= 0 and rep.truncated_bytes >= 0


# ---------------------------------------------------------------------- compiled kernels
def _ops(data: bytes):
    """[op, len (2 bytes)] + bytes: op & 3 = 0 data, 1 gap, 2 break (uTP-like loss), 3 data."""
    pos = 0
    while pos + 3 <= len(data):
        op, n = data[pos], struct.unpack_from(">H", data, pos + 1)[0]
        pos += 3
        if op & 3 == 1:
            yield "gap", n & 0x3FFF
        elif op & 3 == 2:
            yield "break", 0
        else:
            yield "data", data[pos:pos + n]
            pos += n


def peerwire(data: bytes) -> None:
    """The parser over ops; the same ops fed again byte by byte give the same events and counters."""
    if not data:
        return
    mode, body = data[0], data[1:]
    at_start = not mode & 1
    max_block = (16, 1024, MAX_BLOCK, 1 << 14)[mode >> 1 & 3]
    ops = list(_ops(body)) if mode & 8 else [("data", body)]
    p, events = _feed_parser(ops, at_start, max_block, whole=True)
    assert p.accounted_bytes() == p.stream_off and p.block_tail_bytes <= p.block_bytes
    assert p.block_gap_bytes <= p.gap_bytes
    for e in events:
        if isinstance(e, ev.Piece):
            assert 0 <= e.length <= max_block and 0 <= e.missing <= e.length
    if sum(len(x) for k, x in ops if k == "data") <= 4096:
        q, events2 = _feed_parser(ops, at_start, max_block, whole=False)
        assert events2 == events and q.accounted_bytes() == p.accounted_bytes()


def _feed_parser(ops, at_start: bool, max_block: int, whole: bool):
    p = PeerWireParser(at_start, ev_all(), max_block)
    events = []
    for kind, x in ops:
        if kind == "gap":
            events += p.receive_gap(x)
        elif kind == "break":
            events += p.receive_break()
        elif whole:
            events += p.receive_data(x)
        else:
            for i in range(len(x)):
                events += p.receive_data(x[i:i + 1])
    events += p.receive_eof()
    return p, events


def ev_all() -> int:
    from analyzer.protocols._peerwire import EventMask
    return int(EventMask.EV_ALL)


def tcp(data: bytes) -> None:
    """Records [flags, seq offset (2 bytes), ack offset (2 bytes), length] + payload of one
    direction, with a peer wire parser as sink."""
    from analyzer.flows._tcp import TcpStream
    p = PeerWireParser(True)
    s = TcpStream(p)
    s.receive_segment(1000, 0x02)
    pos = 0
    while pos + 6 <= len(data):
        flags, seq, ack, n = data[pos], *struct.unpack_from(">HH", data, pos + 1), data[pos + 5]
        payload = data[pos + 6:pos + 6 + n]
        pos += 6 + n
        cut = len(payload) if not flags & 0x40 else len(payload) // 2      # snap-length cut
        s.receive_segment(1001 + seq * (1 + (flags >> 7)), flags & 0x15, payload[:cut], len(payload))
        if flags & 0x20:
            s.receive_ack(1001 + ack)
    s.close()
    st = s.stats
    assert st["delivered_bytes"] + st["gap_bytes"] == st["next_off"]
    assert p.accounted_bytes() == p.stream_off == st["next_off"]


def utp(data: bytes) -> None:
    """Records [type, seq (2 bytes), ack (2 bytes), length] + payload, with a parser sink."""
    from analyzer.flows._utp import UtpStream
    p = PeerWireParser(False)
    s = UtpStream(p)
    pos = 0
    while pos + 6 <= len(data):
        t, seq, ack, n = data[pos], *struct.unpack_from(">HH", data, pos + 1), data[pos + 5]
        payload = data[pos + 6:pos + 6 + n]
        pos += 6 + n
        s.receive_packet(t % 5, seq, payload)
        if t & 0x80:
            s.receive_ack(ack, payload[:4] if t & 0x40 else b"")
    s.close()
    st = s.stats
    assert st["delivered_packets"] <= st["packets"]
    assert p.accounted_bytes() == p.stream_off


def engine(data: bytes) -> None:
    """Frames [link type index, length (2 bytes)] + bytes through the engine (link, IP, TCP,
    UDP, uTP decoding; every frame counted once)."""
    from analyzer.sessions._engine import Engine
    linktypes = np.array([1, 101, 113, 276, 0, 108, 228, 229, 12, 147], np.int32)
    offs, caps, ifs = [], [], []
    pos = 0
    while pos + 3 <= len(data):
        lt, n = data[pos], struct.unpack_from(">H", data, pos + 1)[0]
        pos += 3
        n = min(n, len(data) - pos)
        offs.append(pos)
        caps.append(n)
        ifs.append(lt % len(linktypes))
        pos += n
    if not offs:
        return
    k = len(offs)
    buf = np.frombuffer(data, np.uint8) if data else np.zeros(1, np.uint8)
    e = Engine()
    e.max_live = 64             # small, so that finishing connections at the cap is exercised too
    e.process(buf, np.array(offs, np.int64), np.array(caps, np.uint32), np.array(caps, np.uint32) + 4,
              np.arange(k, dtype=np.int64) * 1_000_000, np.array(ifs, np.uint16), linktypes, 0, 1, 0, k)
    e.finish()
    e.drain_finished()
    assert e.frames_seen == k


TARGETS = {f.__name__: f for f in (bencode, krpc, http_tracker, udp_tracker, mse, fragments, capture,
                                   peerwire, tcp, utp, engine)}
COMPILED = {"peerwire", "tcp", "utp", "engine"}      # atheris sees only the Python around them
