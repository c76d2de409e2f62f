"""UDP datagrams the engine handed over: DHT (BEP 5), UDP trackers (BEP 15),
Local Service Discovery (BEP 14).  Everything else is counted as UDP."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class DatagramResult:
    categories: Counter = field(default_factory=Counter)   # (category, "frames"|"bytes") -> n


class DatagramAnalyzer:
    def __init__(self):
        self.out = DatagramResult()

    def add_all(self, datagrams: list) -> None:
        for d in datagrams:
            self.add(*d)

    def add(self, file_idx, frame_no, ts, wire, weight, ipver, src, sport, dst, dport, payload, paylen) -> None:
        self._count("udp", weight, wire)

    def _count(self, category: str, frames: int, wire: int) -> None:
        self.out.categories[(category, "frames")] += frames
        self.out.categories[(category, "bytes")] += wire

    def result(self) -> DatagramResult:
        return self.out
