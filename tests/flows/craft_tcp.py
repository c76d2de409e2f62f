"""Helpers for the TCP reassembly and engine tests.

* BitTorrent streams built by hand (``struct``) with the stream offsets of
  every piece block byte, so the expected block / acknowledged figures can be
  computed independently of the analyzer;
* ``Conversation``: a two-party TCP conversation (SYN, SYN-ACK, data with
  correct sequence and acknowledgement numbers, FIN), kept as a list of
  ``Seg`` records that tests may reorder, duplicate, drop or retime before
  ``write_pcap`` turns them into Ethernet/IPv4/TCP frames (scapy) in a
  classic pcap file (nanosecond timestamps, per-record ``caplen``).

Kept separate from ``tests/craft.py`` (capture-layer helpers) on purpose.
"""
from __future__ import annotations

import random
import struct
from dataclasses import dataclass, replace
from pathlib import Path

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
NS = 1_000_000_000
T0 = 1_700_000_000 * NS
BLOCK = 16384


# ---------------------------------------------------------------------- BitTorrent streams
def hs(info_hash: bytes, peer_id: bytes, reserved: bytes = bytes(8)) -> bytes:
    return b"\x13BitTorrent protocol" + reserved + info_hash + peer_id


def msg(msg_id: int, payload: bytes = b"") -> bytes:
    return struct.pack(">IB", 1 + len(payload), msg_id) + payload


def payload_bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


class BtStream:
    """One direction's byte stream, with the offsets of its block bytes."""

    def __init__(self):
        self.data = bytearray()
        self.blocks: list[tuple[int, int]] = []     # [a, b) stream offsets of block payload

    def add(self, b: bytes) -> "BtStream":
        self.data += b
        return self

    def handshake(self, info_hash: bytes, peer_id: bytes) -> "BtStream":
        return self.add(hs(info_hash, peer_id, bytes([0, 0, 0, 0, 0, 0x10, 0, 0x05])))

    def piece(self, index: int, begin: int, length: int = BLOCK, seed: int | None = None) -> "BtStream":
        block = payload_bytes(length, seed if seed is not None else index * 7919 + begin)
        self.add(struct.pack(">IBII", 9 + length, 7, index, begin))
        self.blocks.append((len(self.data), len(self.data) + length))
        return self.add(block)

    def request(self, index: int, begin: int, length: int = BLOCK) -> "BtStream":
        return self.add(msg(6, struct.pack(">III", index, begin, length)))

    @property
    def block_bytes(self) -> int:
        return sum(b - a for a, b in self.blocks)

    def block_bytes_in(self, lo: int, hi: int) -> int:
        """Block bytes inside stream offsets [lo, hi)."""
        return sum(max(0, min(b, hi) - max(a, lo)) for a, b in self.blocks)

    def __bytes__(self) -> bytes:
        return bytes(self.data)

    def __len__(self) -> int:
        return len(self.data)


def seeder_stream(info_hash: bytes, pieces: int = 2, blocks_per_piece: int = 4, last_block: int = BLOCK,
                  peer_id: bytes = b"-TR3000-seederseeder") -> BtStream:
    s = BtStream().handshake(info_hash, peer_id)
    s.add(msg(5, b"\xff" * ((pieces + 7) // 8))).add(msg(1))
    for i in range(pieces):
        for j in range(blocks_per_piece):
            last = i == pieces - 1 and j == blocks_per_piece - 1
            s.piece(i, j * BLOCK, last_block if last else BLOCK)
    return s


def leecher_stream(info_hash: bytes, pieces: int = 2, blocks_per_piece: int = 4, upload_blocks: int = 1,
                   peer_id: bytes = b"-qB4630-leecherleech") -> BtStream:
    s = BtStream().handshake(info_hash, peer_id)
    s.add(msg(2))
    for i in range(pieces):
        for j in range(blocks_per_piece):
            s.request(i, j * BLOCK)
    for k in range(upload_blocks):        # the leecher also serves a few blocks
        s.piece(100 + k, 0, 1000 + k, seed=k)
    return s


# ---------------------------------------------------------------------- TCP conversations
@dataclass
class Seg:
    """One TCP segment as captured: ``side`` 0 is the initiator (A), 1 the responder (B)."""

    side: int
    seq: int
    ack: int | None
    flags: int
    payload: bytes = b""
    ts_ns: int = 0
    caplen_cut: int = 0           # bytes of TCP payload missing from the capture (snap length)
    off: int = 0                  # stream offset of the first payload byte


class Conversation:
    def __init__(self, a=("10.0.0.1", 51413), b=("10.0.0.2", 6881), isn_a: int = 1_000_000,
                 isn_b: int = 3_000_000_000, mss: int = 1400, t0: int = T0, step_ns: int = 1_000_000):
        self.ep = (a, b)
        self.isn = [isn_a % 2**32, isn_b % 2**32]
        self.nxt = [0, 0]            # next stream offset per side (after SYN)
        self.mss = mss
        self.segs: list[Seg] = []
        self.t = t0
        self.step = step_ns
        self.fin_sent = [False, False]

    def seq(self, side: int, off: int) -> int:
        return (self.isn[side] + 1 + off) % 2**32

    def _ack_of(self, side: int) -> int:
        """What ``side`` acknowledges: everything the other side sent so far (incl. its FIN)."""
        other = 1 - side
        return self.seq(other, self.nxt[other] + (1 if self.fin_sent[other] else 0))

    def _add(self, seg: Seg) -> Seg:
        seg.ts_ns = self.t
        self.t += self.step
        self.segs.append(seg)
        return seg

    def open(self) -> "Conversation":
        self._add(Seg(0, self.isn[0], None, SYN))
        self._add(Seg(1, self.isn[1], self.seq(0, 0), SYN | ACK))
        self._add(Seg(0, self.seq(0, 0), self.seq(1, 0), ACK))
        return self

    def ack(self, side: int) -> Seg:
        return self._add(Seg(side, self.seq(side, self.nxt[side]), self._ack_of(side), ACK))

    def send(self, side: int, data: bytes, *, mss: int | None = None, acks: bool = True) -> list[Seg]:
        """Segments of ``data`` from ``side``; with ``acks`` the other side ACKs each one."""
        mss = mss or self.mss
        out = []
        for i in range(0, len(data), mss):
            chunk = bytes(data[i:i + mss])
            off = self.nxt[side]
            seg = self._add(Seg(side, self.seq(side, off), self._ack_of(side), ACK | PSH, chunk, off=off))
            self.nxt[side] += len(chunk)
            out.append(seg)
            if acks:
                self.ack(1 - side)
        return out

    def fin(self, side: int) -> Seg:
        seg = self._add(Seg(side, self.seq(side, self.nxt[side]), self._ack_of(side), FIN | ACK))
        self.fin_sent[side] = True
        return seg

    def close(self) -> "Conversation":
        self.fin(0)
        self.ack(1)
        self.fin(1)
        self.ack(0)
        return self


# ---------------------------------------------------------------------- frames and pcap
MAC_A = "02:00:00:00:00:0a"
MAC_B = "02:00:00:00:00:0b"


def frame(conv_ep, seg: Seg) -> tuple[bytes, int]:
    """(captured bytes, original length) of a segment as an Ethernet frame."""
    (src, sport), (dst, dport) = conv_ep if seg.side == 0 else conv_ep[::-1]
    tcp = TCP(sport=sport, dport=dport, seq=seg.seq, ack=seg.ack or 0, flags=seg.flags, window=65535)
    pkt = Ether(src=MAC_A if seg.side == 0 else MAC_B, dst=MAC_B if seg.side == 0 else MAC_A) / \
        IP(src=src, dst=dst, ttl=64, id=0) / tcp / seg.payload
    raw = bytes(pkt)
    return raw[:len(raw) - seg.caplen_cut], len(raw)


def pcap_bytes(records: list[tuple[int, bytes, int]]) -> bytes:
    """Classic pcap, nanosecond timestamps, Ethernet; records are (ts_ns, data, origlen)."""
    out = [struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1)]
    for ts, data, orig in records:
        sec, ns = divmod(ts, NS)
        out.append(struct.pack("<IIII", sec, ns, len(data), orig) + data)
    return b"".join(out)


def write_pcap(path: Path, *parts) -> Path:
    """``parts``: (conversation endpoints, [Seg]) pairs, written in the order given
    (records keep their own timestamps; several parts are concatenated)."""
    records = []
    for ep, segs in parts:
        for s in segs:
            data, orig = frame(ep, s)
            records.append((s.ts_ns, data, orig))
    path = Path(path)
    path.write_bytes(pcap_bytes(records))
    return path


def copy_seg(seg: Seg, **kw) -> Seg:
    return replace(seg, **kw)
