"""What the wire shows about a uTP receiver's acknowledgements, read with scapy
(independently of the analyzer), for the real-traffic tests of receivers that close.

For every connection into ``receiver``: the data packets it received, the first
time it acknowledged each (cumulative ack_nr or selective ACK), and the moment it
closed (its first ST_FIN or ST_RESET).  From that:

* ``acked_after_close``: data it acknowledged only after closing (its application
  had gone: libtorrent's uTP stack still acknowledges such packets);
* ``unread_bound``: what the wire allows the receiver to have acknowledged without
  its application reading it: packets first acknowledged within ``window_ns``
  before its close, plus the receive buffer it still held when closing (BEP 29
  ``wnd_size`` is the free space of the receive buffer: the largest window it ever
  advertised minus the one in its close packet).
"""
from __future__ import annotations

import heapq
import struct
from dataclasses import dataclass, field

from scapy.all import IP, UDP, IPv6, PcapReader

ST_DATA, ST_FIN, ST_STATE, ST_RESET, ST_SYN = range(5)


@dataclass
class Inbound:
    """One connection's direction into the receiver."""

    sizes: dict = field(default_factory=dict)        # unwrapped seq_nr -> payload bytes
    first_ack_ns: dict = field(default_factory=dict)  # unwrapped seq_nr -> first acknowledged
    acked_by_close: int = 0                           # payload bytes acknowledged up to the close
    close_ns: int | None = None
    close_wnd: int | None = None
    max_wnd: int = 0
    base: int | None = None
    pending: list = field(default_factory=list)       # heap of seq_nrs not yet acknowledged

    def unwrap(self, seq: int) -> int:
        if self.base is None:
            self.base = seq
        return self.base + ((seq - self.base + 0x8000) & 0xFFFF) - 0x8000


def utp_packets(path):
    """(ts_ns, src, sport, dst, dport, type, wnd_size, seq_nr, ack_nr, payload bytes, sack bitmask)."""
    with PcapReader(str(path)) as rd:
        for p in rd:
            ip = p[IP] if IP in p else p[IPv6] if IPv6 in p else None
            if ip is None or UDP not in p:
                continue
            d = bytes(p[UDP].payload)
            if len(d) < 20 or d[0] & 0x0F != 1 or d[0] >> 4 > 4:
                continue
            ext, off, sack = d[1], 20, b""
            while ext and off + 2 <= len(d):
                if ext == 1:
                    sack = d[off + 2:off + 2 + d[off + 1]]
                ext, off = d[off], off + 2 + d[off + 1]
            wnd, seq, ack = struct.unpack(">IHH", d[12:20])
            yield (int(p.time * 10**9), str(ip.src), p[UDP].sport, str(ip.dst), p[UDP].dport, d[0] >> 4, wnd,
                   seq, ack, max(0, len(d) - off), sack)


def inbound(path, receiver: str) -> dict:
    """(sender, sender port, receiver port) -> Inbound, for every uTP connection into ``receiver``."""
    conns: dict = {}
    for ts, src, sport, dst, dport, typ, wnd, seq, ack, n, sack in utp_packets(path):
        if dst == receiver and typ == ST_DATA:
            c = conns.setdefault((src, sport, dport), Inbound())
            s = c.unwrap(seq)
            if s not in c.sizes:
                c.sizes[s] = n
                heapq.heappush(c.pending, s)
        elif src == receiver and (dst, dport, sport) in conns and typ != ST_SYN:
            c = conns[(dst, dport, sport)]
            c.max_wnd = max(c.max_wnd, wnd)
            a = c.unwrap(ack)
            acked = []
            while c.pending and c.pending[0] <= a:
                s = heapq.heappop(c.pending)
                if s not in c.first_ack_ns:
                    acked.append(s)
            acked += [a + 2 + 8 * j + k for j, b in enumerate(sack) for k in range(8)
                      if b >> k & 1 and a + 2 + 8 * j + k in c.sizes and a + 2 + 8 * j + k not in c.first_ack_ns]
            for s in acked:
                c.first_ack_ns[s] = ts
                if c.close_ns is None:
                    c.acked_by_close += c.sizes[s]
            if typ in (ST_FIN, ST_RESET) and c.close_ns is None:
                c.close_ns, c.close_wnd = ts, wnd
    return conns


def acked_after_close(conns: dict) -> int:
    """Payload bytes the receiver first acknowledged after it had closed the connection."""
    return sum(c.sizes[s] for c in conns.values() if c.close_ns is not None
               for s, t in c.first_ack_ns.items() if t > c.close_ns)


def unread_bound(conns: dict, window_ns: int = 2_000_000) -> int:
    """Payload bytes the receiver may have acknowledged without its application reading them
    (see the module docstring)."""
    total = 0
    for c in conns.values():
        if c.close_ns is None:
            continue
        total += sum(c.sizes[s] for s, t in c.first_ack_ns.items() if c.close_ns - window_ns <= t <= c.close_ns)
        total += max(0, c.max_wnd - (c.close_wnd or 0))
    return total
