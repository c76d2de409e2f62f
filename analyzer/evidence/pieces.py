"""Piece verification: block data seen on the wire checked against torrent hashes.

Theory of operation
-------------------
The engine gives every peer-wire parser a *tap* (``Verifier.tap``); the
parser passes each contiguous run of a block's bytes to it (normally the
whole block, once) with the piece index and the offset in the piece; frame
references are those of the frame that completed the run.  A tap resolves, on its first block, the torrent of
its connection (the info hash of either handshake) and the host that
*receives* the blocks; without metadata for that torrent (given, or being
rebuilt from ut_metadata messages: ``metadata.collecting``) it detaches
itself (one call per connection, not per block).

A connection without a handshake (captured mid-stream) keeps its blocks
(``PROBE_CAP``) until a whole piece of one of the known torrents hashes
right: that attributes the connection ("piece_hashes") and its blocks join
the others.

Blocks are assembled per (torrent, receiving host, piece): a client builds a
piece from blocks of several peers, and each receiver holds its own copy
(``assembly.Assembly``).  The first copy of every byte counts; bytes of later
copies that differ are counted as conflicts.  A piece is hashed while its
blocks arrive (v1: SHA-1 of the piece in the v1 byte space, pad-file bytes
taken as the zeros they are; v2: the SHA-256 merkle root of its 16 KiB
blocks against the file's piece layer, or the file's pieces root for a file
of one piece: ``piece_check``); the block that covers it completes the check,
and the piece is released.  A block of a piece in progress that overlaps
nothing the piece has (in order, or ahead of a hole: a seeder's disk reads
finish out of order) takes the compiled fast path (``_fastpath``): kept as
the object the parser handed over and, once the bytes before it are there,
queued for the SHA-1 worker thread (``_sha1``), nothing copied (a block whose
bytes lie in a mapped capture is not even copied out of it: ``flows._inplace``;
the slow paths read such a block's bytes through the buffer protocol).  A covered v1 piece waits in
``checking`` while the worker finishes its digest; it is decided (verified
or failed) when a block of the same piece arrives, when more than
``MAX_CHECKING`` pieces or ``MAX_CHECKING_BYTES`` wait (the oldest first), or
at the end: points fixed by the capture, so the results do not depend on
the worker's speed.  Only pieces in progress stay in memory, and beyond
``MAX_PENDING_BYTES`` the oldest are given up as incomplete.

A failed piece whose receiver may hold other copies than the first ones is
kept (``HELD_FAILED_BYTES``) until it is settled:

* the receiver fetches the whole piece again (a new assembly of it is
  covered): it had the failed piece, which stays failed;
* otherwise (the capture ends, the new assembly is given up, the kept
  failed pieces exceed their cap) the later copies are tried, at most
  2 x ``MAX_ALTERNATIVES`` + 3 assemblies, one hash each: first the copies of
  the new, incomplete assembly laid over the failed one (a receiver that
  never read a banned peer's block asks for that block only), then each
  conflicting copy that arrived while the piece was assembled, then all of
  them, then those with the new assembly's copies on top (one block fetched
  again before the failure, another after it).  A piece that verifies that way is verified: the copies used are
  credited to their senders, the first copies they replace are
  *redundant* (bytes on the wire the receiver did not keep, like blocks in
  flight when it drops a peer: never failed, which is what a client counts
  for a piece that failed its own check), and the new assembly's other
  bytes are redundant too.

Two caps can change a result, not only memory: ``MAX_PENDING_BYTES`` (a
piece given up as incomplete) and ``HELD_FAILED_BYTES`` (a failed piece
settled before a later copy could rescue it).  ``caps`` counts how often
each acted and the peaks they watch (the pipeline reports them).

Every piece ends in exactly one state: verified, failed or incomplete, with
the frames that carried its first and last bytes and how many bytes each
sender contributed.
"""
from __future__ import annotations

import ipaddress
from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass, field

from analyzer.evidence._fastpath import TapState, place
from analyzer.evidence.assembly import MAX_ALTERNATIVES, Assembly, compose, differing_bytes
from analyzer.evidence.metadata import MetadataCollector
from analyzer.evidence.metainfo import TorrentMeta
from analyzer.evidence.piece_check import BLOCK, TorrentGeometry

__all__ = ["BLOCK", "MAX_ALTERNATIVES", "PieceResult", "Tap", "Verifier"]

MAX_PENDING_BYTES = 512 << 20
MAX_CHECKING = 32             # covered pieces whose hash the worker is finishing, at most ...
MAX_CHECKING_BYTES = 16 << 20  # ... and their bytes (beyond, the oldest is waited for)
HELD_FAILED_BYTES = 64 << 20  # failed pieces kept until settled
PROBE_CAP = 64 << 20          # block bytes kept per connection while attributing by piece hashes


@dataclass
class PieceResult:
    info_hash: str            # the torrent's entry hash (v1 if any, else truncated v2)
    index: int
    receiver: str
    size: int                 # content bytes of the piece (pad bytes excluded)
    status: str               # verified, failed, incomplete
    senders: dict             # sender address -> bytes contributed (the copies the piece was checked with)
    covered: int              # bytes seen (first copies)
    conflict_bytes: int
    first: tuple              # (file, frame, ts)
    last: tuple
    redundant_bytes: int = 0  # bytes received again (a second copy, or after the piece was checked)
    senders_redundant: dict = field(default_factory=dict)
    pad_bytes: int = 0        # pad-file bytes (zeros) that arrived inside blocks
    senders_pad: dict = field(default_factory=dict)
    superseded_bytes: int = 0  # first copies replaced by later ones the piece verified with (in redundant)


class Tap(TapState):
    """The block sink of one parser (one direction of one connection): ``data``
    (``TapState``) takes a block that lands in a hole of a piece in progress,
    ``slow`` everything else."""

    def __init__(self, verifier, conn, d, parser, engine):
        self.verifier, self.conn, self.d, self.parser, self.engine = verifier, conn, d, parser, engine
        self.torrent = None
        self.pending = verifier.pending
        self.probe = None           # index -> [(offset, chunk, where)] while attributing by piece hashes
        self.probe_bytes = 0
        self.piece = None
        self.copy_blocks = verifier.carver is not None   # carved pieces are read when decided

    def _hashes(self) -> list[str]:
        c = self.conn
        return [p.info_hash.hex() for p in (c.parser0, c.parser1) if p is not None and p.info_hash is not None]

    def slow(self, index: int, offset: int, chunk: bytes, where) -> None:
        if self.torrent is None:
            if self.probe is not None:
                self._probe(index, offset, chunk, where)
                return
            if not self._resolve():
                return
        v = self.verifier
        v.add(self.torrent, self.receiver, self.sender, index, offset, chunk, where)
        self.piece = v.pending.get((self.torrent.key, self.receiver, index))
        self.piece_index = index

    def _probe(self, index: int, offset: int, chunk: bytes, where) -> None:
        """No handshake: keep this connection's blocks until a whole piece of
        one of the known torrents hashes right, which attributes the connection."""
        v = self.verifier
        self.probe.setdefault(index, []).append((offset, chunk, where))
        self.probe_bytes += len(chunk)
        for t in v.torrents():
            data = t.assemble(index, [(o, c) for o, c, _ in self.probe[index]])
            if data is not None and t.check(index, data):
                self._set_torrent(t)
                v.attributions[self.conn.conn_id] = (t.key, where)
                held, self.probe = self.probe, None
                for i, chunks in held.items():
                    for o, c, w in chunks:
                        v.add(t, self.receiver, self.sender, i, o, c, w)
                return
        if self.probe_bytes > PROBE_CAP:
            self.probe = None
            self.parser.block_sink = None

    def _set_torrent(self, torrent) -> None:
        c = self.conn
        self.torrent = torrent
        a0, a1 = str(ipaddress.ip_address(c.addr0)), str(ipaddress.ip_address(c.addr1))
        self.sender, self.receiver = (a0, a1) if self.d == 0 else (a1, a0)

    def _resolve(self) -> bool:
        hashes = self._hashes()
        v = self.verifier
        torrent = next((v.by_hash[h] for h in hashes if h in v.by_hash), None)
        if torrent is None:
            if not hashes and v.by_hash:
                self.probe = {}                     # attribute by piece hashes
                return False
            # no metadata (and none being rebuilt) for this torrent, or nothing
            # to match against: stop listening to blocks
            if not hashes or not any(h in v.metadata.collecting for h in hashes):
                self.parser.block_sink = None
            return False
        self._set_torrent(torrent)
        return True


class Verifier:
    def __init__(self, metas: list[TorrentMeta], carver=None):
        self.by_hash: dict = {}
        self.carver = carver
        self.metadata = MetadataCollector()   # replaced by the ut_metadata handler's: hashes being collected
        self.pending: OrderedDict = OrderedDict()   # (torrent key, receiver, index) -> Assembly
        self.pending_bytes = 0
        self.checking: OrderedDict = OrderedDict()  # key -> (Assembly, torrent): covered, hash on the worker
        self.checking_bytes = 0
        self.held: OrderedDict = OrderedDict()      # key -> (Assembly, PieceResult, torrent) of a failed piece
        self.held_bytes = 0
        self.results: list[PieceResult] = []
        self.closed: dict = {}       # (torrent key, receiver, index) -> result of a piece already checked
        self.attributions: dict = {}  # engine connection id -> (torrent key, (file, frame, ts) of the block)
        self.worker_mismatches = 0   # pieces the SHA-1 worker failed and hashlib verified (a bug if ever > 0)
        # the memory caps that can change a result: how often they acted, and the peaks they watch
        self.caps = {"pending_given_up": 0, "held_settled_early": 0, "peak_pending_bytes": 0,
                     "peak_held_bytes": 0}
        for m in metas:
            self.register(m)

    def torrents(self) -> list:
        return list({id(t): t for t in self.by_hash.values()}.values())

    def register(self, meta: TorrentMeta) -> None:
        """Verify the blocks of this torrent from now on (a given .torrent, or metadata just
        rebuilt from the capture)."""
        t = TorrentGeometry(meta)
        for h in meta.handshake_hashes:
            self.by_hash.setdefault(h, t)

    def tap(self, conn, d, parser, engine):
        return Tap(self, conn, d, parser, engine)

    def add(self, t: TorrentGeometry, receiver: str, sender: str, index: int, offset: int, chunk: bytes,
            where) -> None:
        key = (t.key, receiver, index)
        p = self.pending.get(key)
        if p is not None:
            r = place(p, offset, chunk, sender, where)    # into a hole: kept (and hashed if in order)
            if r:
                if r == 2:
                    self._complete(t, key, p, index)
                return
        span = t.piece_span(index)
        if span is None:
            return
        start, end = span
        size = end - start
        if offset >= size:
            return
        if len(chunk) > size - offset:
            chunk = chunk[:size - offset]
        if p is None and key in self.checking:
            self._decide(key)
        if p is None and key in self.closed:
            # the receiver had this piece already (end-game duplicates): redundant,
            # except pad-file bytes at the end of a block that completed it
            pad = t.pad_overlap(start + offset, start + offset + len(chunk))
            _count_again(self.closed[key], sender, len(chunk), pad)
            return
        if p is None:
            p = Assembly(size, t.content_bytes(start, end), t.pad_ranges(start, end), t.hasher(index, True), where)
            self.pending[key] = p
            self._charge(p.charged)
            while self.pending_bytes > MAX_PENDING_BYTES and len(self.pending) > 1:
                old_key, old = self.pending.popitem(last=False)
                self.caps["pending_given_up"] += 1
                self._give_up(old_key, old)
        p.last = where
        charged = p.charged
        new = p.insert(offset, chunk, sender, where)
        if p.charged != charged:
            self._charge(p.charged - charged)
        if new < len(chunk):
            pad = t.pad_overlap(start + offset, start + offset + len(chunk))
            _count_again(p, sender, len(chunk) - new, pad)    # pad-file bytes sent inside a block
        if p.covered == p.size:
            self._complete(t, key, p, index)

    def _charge(self, n: int) -> None:
        """``n`` more bytes of pieces in progress (their peak is watched)."""
        self.pending_bytes += n
        if self.pending_bytes > self.caps["peak_pending_bytes"]:
            self.caps["peak_pending_bytes"] = self.pending_bytes

    def covered(self, t: TorrentGeometry, receiver: str, index: int, p: Assembly) -> None:
        """A tap's fast path covered piece ``p``."""
        self._complete(t, (t.key, receiver, index), p, index)

    def _complete(self, t: TorrentGeometry, key, p: Assembly, index: int) -> None:
        """Piece ``key`` is covered; its hash is being finished on the worker, or now."""
        del self.pending[key]
        self.pending_bytes -= p.charged
        h = p.hash_done()
        if not hasattr(h, "final"):
            self._decide(key, p, t)
            return
        h.final()
        self.checking[key] = (p, t)
        self.checking_bytes += p.charged
        while len(self.checking) > 1 and (self.checking_bytes > MAX_CHECKING_BYTES
                                          or len(self.checking) > MAX_CHECKING):
            self._decide(next(iter(self.checking)))

    def _decide(self, key, p: Assembly | None = None, t: TorrentGeometry | None = None) -> None:
        """Verified or failed (a piece taken from ``checking`` when not given)."""
        if p is None:
            p, t = self.checking.pop(key)
            self.checking_bytes -= p.charged
        h = p.h
        if hasattr(h, "final") and h.digest() is None:     # the worker's OpenSSL failed: hash here
            h = t.hasher(key[2])
            h.update(p.data())
        ok = t.matches(key[2], h)
        if not ok and hasattr(h, "final") and t.expected(key[2]):
            # a failure is never the worker's word alone: hashlib (OpenSSL) hashes the piece again
            again = t.hasher(key[2])
            again.update(p.data())
            if t.matches(key[2], again):
                self.worker_mismatches += 1
                ok = True
        if ok and self.carver is not None:
            self.carver.piece(t, key[2], p.data())
        self._close(key, p, "verified" if ok else "failed", t)

    def _close(self, key, p: Assembly, status: str, t: TorrentGeometry | None = None) -> PieceResult:
        info_hash, receiver, index = key
        r = PieceResult(info_hash, index, receiver, p.content, status, p.senders, p.covered, p.conflict_bytes,
                        p.first, p.last, p.redundant_bytes, dict(p.senders_redundant), p.pad_bytes,
                        dict(p.senders_pad))
        self.results.append(r)
        if status == "incomplete":
            return r
        # a whole new copy of a piece that failed before: the receiver had the failed one
        self._unhold(key)
        if status == "verified":
            self.closed[key] = r     # a failed piece is discarded by the receiver and fetched again
        elif p.rescuable:
            self.held[key] = (p, r, t)
            self.held_bytes += p.charged
            if self.held_bytes > self.caps["peak_held_bytes"]:
                self.caps["peak_held_bytes"] = self.held_bytes
            while self.held_bytes > HELD_FAILED_BYTES and len(self.held) > 1:
                self.caps["held_settled_early"] += 1
                self._settle(next(iter(self.held)))
        return r

    def _unhold(self, key) -> None:
        held = self.held.pop(key, None)
        if held is not None:
            self.held_bytes -= held[0].charged

    def _give_up(self, key, p: Assembly) -> None:
        """A piece taken from ``pending``, not covered (memory cap, end of the capture):
        incomplete, unless it completes a failed piece of the same receiver."""
        if not (key in self.held and self._rescue(key, p)):
            self._unhold(key)
            self._close(key, p, "incomplete")
        self._drop(p)

    def _drop(self, p: Assembly) -> None:
        """Piece ``p``, taken from ``pending`` uncovered, is gone: no hash, and dead (a tap holding it
        must not feed it)."""
        self.pending_bytes -= p.charged
        if hasattr(p.h, "abort"):
            p.h.abort()
        p.front = -2

    def _settle(self, key) -> None:
        """Settle a kept failed piece now: with its new assembly if there is one (a covered
        one decides it: the failure stands)."""
        if key in self.checking:
            self._decide(key)
            return
        n = self.pending.get(key)
        if self._rescue(key, n) and n is not None:
            del self.pending[key]
            self._drop(n)
        self._unhold(key)

    def _rescue(self, key, n: Assembly | None) -> bool:
        """Try the later copies on the failed piece ``key`` (``n``: its new, incomplete
        assembly); True when one assembly verified (the piece is then verified)."""
        p, r, t = self.held[key]
        index = key[2]
        # (copies, the frames that carried them, what they are: "new" (the new assembly's), "alt"
        # (conflicting copies that came while the piece was assembled) or "mixed" (alternatives
        # with the new assembly's copies on top; their senders tagged (sender, "alt" | "new")))
        candidates = []
        later = n.content_runs() if n is not None and n.rescuable else []
        if later and any(differing_bytes(*_overlap(p, a, d)) for a, d, _ in later):
            candidates.append((later, [n.last], "new"))
            senders = list(dict.fromkeys(s for _, _, s in later))
            if len(senders) > 1:      # the receiver may hold one peer's copies and not another's (a
                # block cut short when a banned peer's connection closed is never read)
                candidates += [([c for c in later if c[2] == s], [n.last], "new") for s in senders]
        # each alternative, then all of them (parts, sender, where)
        groups = [[alt] for alt in p.alts] + ([p.alts] if len(p.alts) > 1 else [])
        candidates += [([(a, d, s) for parts, s, _ in g for a, d in parts], [w for _, _, w in g], "alt")
                       for g in groups]
        if later:
            # a block fetched again before the failure and another after it (the receiver holds both)
            on_top = [(a, d, (s, "new")) for a, d, s in later]
            candidates += [([(a, d, (s, "alt")) for parts, s, _ in g for a, d in parts] + on_top,
                            [n.last, *(w for _, _, w in g)], "mixed") for g in groups]
        if not candidates:
            return False
        runs = p.runs()
        for copies, wheres, kind in candidates:
            data, superseded, used = compose(runs, p.size, copies)
            if t.check(index, data):
                self._unhold(key)
                self._adopt(key, p, r, n, superseded, used, wheres, kind)
                if self.carver is not None:
                    self.carver.piece(t, index, bytes(data))
                return True
        return False

    def _adopt(self, key, p: Assembly, r: PieceResult, n: Assembly | None, superseded: dict, used: dict,
               wheres: list, kind: str) -> None:
        """Failed piece ``r`` (assembly ``p``) verified with later copies (``used``, per sender)
        in place of first ones (``superseded``); the new assembly ``n`` joins it.  ``kind``: the
        copies used are the new assembly's ("new"), alternatives ("alt"), or both ("mixed": the
        senders of ``used`` are tagged)."""
        r.status = "verified"
        for s, k in superseded.items():
            _take(r.senders, s, k)
            r.senders_redundant[s] = r.senders_redundant.get(s, 0) + k
            r.superseded_bytes += k
        if kind == "mixed":           # the senders of the copies used are tagged
            alt_used = {s: k for (s, tag), k in used.items() if tag == "alt"}
            new_used = {s: k for (s, tag), k in used.items() if tag == "new"}
        else:
            alt_used, new_used = (used, {}) if kind == "alt" else ({}, used)
        # the first copies replaced are redundant in place of the alternatives used (counted redundant
        # when they arrived), and beyond them redundant bytes more
        r.redundant_bytes += sum(superseded.values()) - sum(alt_used.values())
        for s, k in alt_used.items():
            r.senders[s] = r.senders.get(s, 0) + k
            _take(r.senders_redundant, s, k)
        if n is not None:
            for s, k in n.senders.items():   # the new assembly's copies: used, or redundant
                u = new_used.get(s, 0)
                if u:
                    r.senders[s] = r.senders.get(s, 0) + u
                if k > u:
                    r.senders_redundant[s] = r.senders_redundant.get(s, 0) + k - u
                    r.redundant_bytes += k - u
            r.redundant_bytes += n.redundant_bytes
            r.pad_bytes += n.pad_bytes
            _add_all(r.senders_redundant, n.senders_redundant)
            _add_all(r.senders_pad, n.senders_pad)
            if n.rescuable:
                r.conflict_bytes += sum(differing_bytes(*_overlap(p, a, d)) for a, d, _ in n.content_runs())
        r.last = max([r.last, *wheres])
        self.closed[key] = r

    def finish(self) -> list[PieceResult]:
        while self.checking:
            self._decide(next(iter(self.checking)))
        for key in list(self.held):
            if key in self.pending:
                self._give_up(key, self.pending.pop(key))
            elif key in self.held:
                self._settle(key)
        for key, p in list(self.pending.items()):
            self._give_up(key, p)
        self.pending.clear()
        self.results.sort(key=lambda r: (r.info_hash, r.receiver, r.index, r.first))
        return self.results


def _overlap(p: Assembly, a: int, data) -> tuple[bytes, bytes]:
    """``data`` at offset ``a`` and the first copies of (covered) piece ``p`` under it."""
    b, parts = a + len(data), []
    i = max(0, bisect_right(p.offs, a) - 1)
    while i < len(p.offs) and p.offs[i] < b:
        o, d = p.offs[i], p.segs[i][0]
        if o + len(d) > a:
            parts.append(memoryview(d)[max(a, o) - o:min(b, o + len(d)) - o])
        i += 1
    return bytes(data), b"".join(parts)


def _count_again(r, sender: str, dup: int, pad: int) -> None:
    """``dup`` bytes of a block that piece (or result) ``r`` had already, ``pad`` of the block's
    bytes in pad files: the pad bytes (zeros sent inside a block) as such, the others redundant."""
    if pad:
        r.pad_bytes += min(pad, dup)
        r.senders_pad[sender] = r.senders_pad.get(sender, 0) + min(pad, dup)
    if dup > pad:
        r.redundant_bytes += dup - pad
        r.senders_redundant[sender] = r.senders_redundant.get(sender, 0) + dup - pad


def _take(d: dict, key, n: int) -> None:
    left = d.get(key, 0) - n
    if left:
        d[key] = left
    else:
        d.pop(key, None)


def _add_all(d: dict, other: dict) -> None:
    for k, v in other.items():
        d[k] = d.get(k, 0) + v
