"""One piece being assembled for one receiver: its first copies, hashed in order.

Theory of operation
-------------------
An ``Assembly`` keeps the first copy of every byte of a piece as the block
objects the parser handed over (``segs``: disjoint segments sorted by
offset, ``offs`` their offsets; a block that overlaps what is there
contributes views of its new parts), and the piece's pad-file ranges as
segments of zeros.  Its hasher (``piece_check``) is fed the segments in
order as far as they are contiguous from offset 0 (``front``): blocks that
arrive in order are hashed as they land, a block that arrives early waits
in ``segs`` until the bytes before it are there (a block that overlaps
nothing there takes the compiled path, ``_fastpath.place``; ``insert`` does
the rest).  When the piece is covered,
its hash is complete: nothing is copied or hashed again.

Bytes of a later copy that overlap the first copy are compared with it;
those that differ are *conflicts* (counted).  A later copy that conflicts
is also kept, as an *alternative* (at most ``MAX_ALTERNATIVES`` per piece,
repeats not kept twice), for a piece whose first copies fail the hash
check: the verifier then tries the assembly with those copies
(``compose``), since the receiver may hold the later copy (it dropped, or
never read, the earlier one).

A piece fed in many small, out-of-order runs (more segments than
``seg_limit``: pathological or hostile input) switches to a buffer and a
byte map, linear in its bytes whatever the order; such a piece keeps no
alternatives.
"""
from __future__ import annotations

from bisect import bisect_right

from analyzer.bytestore import ByteStore, differing_bytes
from analyzer.evidence._fastpath import PieceState
from analyzer.evidence.piece_check import zeros

MAX_ALTERNATIVES = 8          # later conflicting copies kept per piece
SEG_OVERHEAD = 100            # bytes charged per segment a piece may keep, beyond its data


class Assembly(PieceState):
    """One piece of one receiver (the fields the fast path touches are ``PieceState``'s)."""

    __slots__ = ("content", "conflict_bytes", "redundant_bytes", "pad_bytes", "senders_redundant", "senders_pad",
                 "first", "alts", "charged", "store")

    def __init__(self, size: int, content: int, pads: list, hasher, where):
        self.size = size              # bytes in the piece's byte space (v1: with pad bytes)
        self.content = content        # content bytes
        self.h = hasher
        self.front = 0                # bytes [0, front) present and fed to the hasher (-1: buffer mode)
        self.fi = 0                   # index of the first segment not fed yet
        self.offs: list[int] = []
        self.segs: list[tuple] = []   # (data, sender); pad: (zeros, None)
        self.covered = 0
        self.senders: dict = {}
        self.conflict_bytes = 0
        self.redundant_bytes = 0
        self.pad_bytes = 0
        self.senders_redundant: dict = {}
        self.senders_pad: dict = {}
        self.first = self.last = where
        self.alts: list = []          # ([(offset, data)], sender, where): later conflicting copies
        self.seg_limit = max(256, size >> 12)
        self.charged = size + SEG_OVERHEAD * self.seg_limit   # against the verifier's memory cap
        self.store = None             # buffer mode: the piece's bytes (bytestore.ByteStore)
        for lo, hi in pads:           # pad bytes are zeros, never sent in whole blocks
            self.offs.append(lo)
            self.segs.append((zeros(hi - lo), None))
            self.covered += hi - lo
        if pads:
            self.advance()

    # ---- segments
    def advance(self) -> None:
        """Feed the hasher the segments contiguous with what it has."""
        offs, segs, i, front = self.offs, self.segs, self.fi, self.front
        update = self.h.update
        while i < len(offs) and offs[i] == front:
            data = segs[i][0]
            update(data)
            front += len(data)
            i += 1
        self.fi, self.front = i, front

    def insert(self, offset: int, chunk, sender, where) -> int:
        """A run of block bytes at ``offset`` (inside the piece), from ``sender``, carried
        by frame ``where``; returns how many bytes were new (covered, credited to it)."""
        new = self._insert_buffer(offset, chunk) if self.front < 0 else self._insert_segments(
            offset, chunk, sender, where)
        if new:
            self.covered += new
            self.senders[sender] = self.senders.get(sender, 0) + new
        return new

    def _insert_segments(self, offset: int, chunk, sender, where) -> int:
        offs, segs = self.offs, self.segs
        end = offset + len(chunk)
        i = bisect_right(offs, offset) - 1
        if i < 0 or offs[i] + len(segs[i][0]) <= offset:
            i += 1
        pos, new, differs = offset, [], False
        dup: list = []                # parts overlapping first copies of content (not pad)
        mv = None
        while pos < end:
            if i < len(offs) and offs[i] <= pos:
                data, who = segs[i]
                b = min(end, offs[i] + len(data))
                if mv is None:
                    mv = memoryview(chunk)
                mine = mv[pos - offset:b - offset]
                theirs = memoryview(data)[pos - offs[i]:b - offs[i]]
                n = differing_bytes(mine, theirs)
                self.conflict_bytes += n
                if who is not None:
                    dup.append((pos, mine))
                    differs = differs or n > 0
                pos = b
                i += 1
            else:
                b = min(end, offs[i]) if i < len(offs) else end
                new.append((i, pos, b))
                pos = b
        for i, a, b in reversed(new):
            if a == offset and b == end:
                part = chunk
            else:
                if mv is None:
                    mv = memoryview(chunk)
                part = mv[a - offset:b - offset]
            offs.insert(i, a)
            segs.insert(i, (part, sender))
        if differs:
            self._keep_alternative(dup, sender, where)
        if new:
            self.advance()
            if len(offs) > self.seg_limit:
                self._to_buffer()
        return sum(b - a for _, a, b in new)

    def _keep_alternative(self, parts: list, sender, where) -> None:
        if len(self.alts) >= MAX_ALTERNATIVES:
            return
        parts = [(a, bytes(m)) for a, m in parts]
        if any(p == parts for p, _, _ in self.alts):
            return                    # the same copy again
        self.alts.append((parts, sender, where))
        self.charged += sum(len(m) for _, m in parts)

    def data(self) -> bytes:
        """The piece's bytes, first copies (a covered piece)."""
        if self.front < 0:
            return bytes(self.store.data)
        return b"".join(s[0] for s in self.segs)

    def runs(self) -> list:
        """First copies as (start, end, data, data_start, sender) runs, in order."""
        return [(o, o + len(s[0]), s[0], o, s[1]) for o, s in zip(self.offs, self.segs)]

    def content_runs(self) -> list:
        """The segments that are not pad, as (offset, data, sender) copies."""
        return [(o, s[0], s[1]) for o, s in zip(self.offs, self.segs) if s[1] is not None]

    # ---- buffer mode
    def _to_buffer(self) -> None:
        self.store = ByteStore(self.size)
        for o, s in zip(self.offs, self.segs):
            self.store.put(o, s[0])          # disjoint segments: each laid as it is
        self.charged = 2 * self.size
        self.offs = self.segs = None
        self.alts = []
        self.fi, self.front = self.front, -1     # buffer mode: fi = bytes fed so far, the rest at the end

    def _insert_buffer(self, offset: int, chunk) -> int:
        new, differ = self.store.put(offset, chunk)   # first copy wins, differing bytes counted
        self.conflict_bytes += differ
        return new

    def hash_done(self):
        """The hasher, fed the whole piece (a covered piece)."""
        if self.front < 0 and self.fi >= 0:
            self.h.update(memoryview(self.store.data)[self.fi:])
            self.fi = -1
        return self.h

    @property
    def rescuable(self) -> bool:
        """Later copies can be tried on it (it kept its segments)."""
        return self.front >= 0


def compose(runs: list, size: int, copies: list) -> tuple[bytearray, dict, dict]:
    """The piece with ``copies`` ((offset, data, sender) in order, later ones on top)
    laid over the first-copy ``runs``; returns the bytes, and per sender the bytes of
    first copies replaced (superseded) and of copies used."""
    base = [(*r, False) for r in runs]
    ends = [a + len(d) for a, d, _ in copies]
    if all(ends[i] <= copies[i + 1][0] for i in range(len(copies) - 1)):
        base = _lay(base, copies)     # sorted and disjoint (a new assembly's segments): one pass
    else:
        for a, data, sender in copies:
            base = _lay(base, [(a, data, sender)])
    out = bytearray(size)
    used: dict = {}
    for lo, hi, d, ds, s, laid in base:
        out[lo:hi] = memoryview(d)[lo - ds:hi - ds]
        if laid:
            used[s] = used.get(s, 0) + hi - lo
    superseded: dict = {}
    j = 0
    laid = [(lo, hi) for lo, hi, _, _, _, on_top in base if on_top]
    for lo, hi, _, _, s in runs:
        while j < len(laid) and laid[j][1] <= lo:
            j += 1
        k = j
        while k < len(laid) and laid[k][0] < hi:
            n = min(hi, laid[k][1]) - max(lo, laid[k][0])
            if n > 0 and s is not None:
                superseded[s] = superseded.get(s, 0) + n
            k += 1
    return out, superseded, used


def _lay(base: list, copies: list) -> list:
    """``base`` runs (lo, hi, data, data_start, sender, laid) with the sorted, disjoint
    ``copies`` laid over them."""
    out, j, base = [], 0, list(base)
    for a, data, sender in copies:
        b = a + len(data)
        while j < len(base) and base[j][1] <= a:
            out.append(base[j])
            j += 1
        if j < len(base) and base[j][0] < a:
            out.append((base[j][0], a, *base[j][2:]))          # the part before the copy
        out.append((a, b, data, a, sender, True))
        while j < len(base) and base[j][1] <= b:
            j += 1
        if j < len(base) and base[j][0] < b:
            base[j] = (b, *base[j][1:])                          # the part after it
    out.extend(base[j:])
    return out
