"""Bytes gathered by offset from copies that may overlap: the first copy of every byte wins.

IP fragments (``decode/fragments.py``) and a piece of many segments (``evidence/assembly.py``,
buffer mode) are assembled this way: a later copy never overwrites a byte already held; the
bytes it brings that differ from the ones held are counted as conflicting (``differing_bytes``,
also used for a piece's segments).

Cost is linear in the copy's own length whatever the order of the copies: the bytes held
are marked in a parallel bytearray (``have``) searched with ``bytearray.find``, runs are
copied and compared as slices, and differing bytes are counted only where a run differs.
"""
from __future__ import annotations

import numpy as np


def differing_bytes(a, b) -> int:
    """How many bytes of two equally long byte strings differ."""
    a, b = bytes(a), bytes(b)      # (comparing memoryviews is slow, item by item)
    if a == b:
        return 0
    return int(np.count_nonzero(np.frombuffer(a, np.uint8) != np.frombuffer(b, np.uint8)))


class ByteStore:
    """``data[i]`` is meaningful where ``have[i]`` is 1; ``filled`` counts those bytes."""

    __slots__ = ("data", "have", "filled")

    def __init__(self, size: int = 0):
        self.data = bytearray(size)
        self.have = bytearray(size)
        self.filled = 0

    def __len__(self) -> int:
        return len(self.data)

    def grow(self, size: int) -> int:
        """Make room up to ``size`` bytes; returns how many bytes were added."""
        n = size - len(self.data)
        if n <= 0:
            return 0
        self.data.extend(bytes(n))
        self.have.extend(bytes(n))
        return n

    def mark(self, lo: int, hi: int) -> int:
        """Bytes [lo, hi) are present without being sent (zeros, e.g. pad-file bytes); returns how
        many were not held before."""
        new = self.have.count(0, lo, hi)
        self.have[lo:hi] = b"\x01" * (hi - lo)
        self.filled += new
        return new

    def put(self, offset: int, chunk) -> tuple[int, int]:
        """Store ``chunk`` at ``offset`` (inside the store; ``grow`` first), keeping every byte
        already held: (bytes newly held, bytes of the chunk that differ from those held)."""
        end = offset + len(chunk)
        have, data = self.have, self.data
        if have.find(1, offset, end) < 0:               # nothing there yet: the usual case
            data[offset:end] = chunk
            have[offset:end] = b"\x01" * len(chunk)
            self.filled += len(chunk)
            return len(chunk), 0
        new = differ = 0
        i = offset
        while i < end:
            if have[i]:
                j = have.find(0, i, end)
                j = end if j < 0 else j
                differ += differing_bytes(data[i:j], chunk[i - offset:j - offset])
            else:
                j = have.find(1, i, end)
                j = end if j < 0 else j
                data[i:j] = chunk[i - offset:j - offset]
                have[i:j] = b"\x01" * (j - i)
                new += j - i
            i = j
        self.filled += new
        return new, differ

    def holds(self, end: int) -> bool:
        """Is every byte in [0, end) held?"""
        if self.filled < end:
            return False
        return len(self.have) <= end or self.have.count(0, 0, end) == 0
