"""What a client's state file says about one torrent, in one shape for every client.

Each reader (``libtorrent_resume``, ``transmission``, ``rtorrent``,
``utorrent``) turns one file into a ``StateFile`` holding ``TorrentState``
records.  A record keeps every value with the key it came from, so the
outputs can say "total_uploaded = 1 234 567 bytes" and not only a number:

* ``counters``: byte counters (``unit`` "bytes") and durations (``unit``
  "seconds"), each a ``Value`` with the client's own key and what the client
  counts in it (``meaning``);
* ``times``: moments as the client stored them (``unit`` "unix_seconds"),
  kept as integer nanoseconds (``ts_ns``); a client's 0 means "never/unknown"
  and is dropped;
* ``have``: the pieces (or, for Transmission, blocks) the client holds, as a
  ``Have`` that turns into a piece array once the torrent's geometry is known.

Caps: ``MAX_PIECE_BITS`` bits per bitfield, ``MAX_PEERS_LISTED`` peers kept
per torrent (the total is counted).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MAX_PIECE_BITS = 1 << 26          # bits in one have-bitfield (blocks of 16 KiB: 1 TiB)
MAX_PEERS_LISTED = 200
MAX_RECORDS = 50_000              # torrent records read from one multi-torrent file (Deluge, µTorrent)
BLOCK_SIZE = 16384

# What a client's lifetime counters count, per direction (see README "The client's own records").
# "payload_all": piece data bytes, redundant and hash-failed ones included;
# "payload_net": piece data bytes without redundant ones; hash-failed bytes are kept in a
#                separate counter, added back for the comparison (Transmission);
# "payload_undocumented": piece data bytes whose treatment of redundant and hash-failed bytes is not
#                documented (closed source: µTorrent/BitTorrent).
PAYLOAD_ALL = "payload_all"
PAYLOAD_NET = "payload_net"
PAYLOAD_UNDOCUMENTED = "payload_undocumented"
# What the uploaded counter counts: "payload" (piece data bytes), or "payload_and_piece_headers": the
# piece data and the 13-byte header of every piece message sent (length 4, id 1, index 4, begin 4;
# Transmission counts the whole message as piece data).
UPLOAD_PAYLOAD = "payload"
UPLOAD_PAYLOAD_AND_HEADERS = "payload_and_piece_headers"
PIECE_HEADER_BYTES = 13


@dataclass(frozen=True)
class Value:
    field: str                 # our name: uploaded, downloaded, corrupt, active, ...
    source_key: str            # the key in the file
    value: int
    unit: str                  # bytes | seconds | unix_seconds
    meaning: str = ""

    def as_json(self) -> dict:
        return {"field": self.field, "source_key": self.source_key, "value": self.value, "unit": self.unit,
                "meaning": self.meaning}


@dataclass(frozen=True)
class Have:
    """A have-bitfield as stored.

    ``unit`` "piece" (one bit a piece) or "block" (Transmission: one bit per 16 KiB block of the
    torrent's byte space); ``form`` "bitfield" (``bits``, ``order`` "msb": BitTorrent order, bit 7 of
    byte 0 is piece 0; "lsb": µTorrent, bit 0 of byte 0 is piece 0), "all", "none", or "count"
    (rtorrent: the number of pieces done, stored instead of a bitfield when it is all or none)."""

    unit: str
    form: str
    source_key: str
    bits: bytes = b""
    order: str = "msb"
    count: int | None = None
    block_size: int = BLOCK_SIZE

    def describe(self) -> str:
        what = "block" if self.unit == "block" else "piece"
        if self.form == "bitfield":
            order = "least significant bit first" if self.order == "lsb" else "most significant bit first"
            return f"{what} bitfield ({len(self.bits)} bytes, {order}) in '{self.source_key}'"
        if self.form == "count":
            return f"'{self.source_key}' = {self.count} (all or none of the pieces)"
        return f"'{self.source_key}' = \"{self.form}\" ({self.form} {what}s)"

    def raw_bits(self) -> np.ndarray:
        """The stored bits as a bool array (bitfield form), capped at MAX_PIECE_BITS."""
        data = np.frombuffer(self.bits[:MAX_PIECE_BITS // 8], dtype=np.uint8)
        return np.unpackbits(data, bitorder="little" if self.order == "lsb" else "big").astype(bool)

    def pieces(self, num_pieces: int | None, piece_length: int | None = None,
               length: int | None = None) -> np.ndarray | None:
        """Bool array, one entry per piece (``num_pieces`` of them), or None when the pieces cannot be
        known: block bitfields need the torrent's piece length and byte length, the "all" form its
        piece count, and a stored count must be 0 or the piece count."""
        if self.unit == "block":
            return self._block_pieces(num_pieces, piece_length, length)
        if self.form == "none" or (self.form == "count" and self.count == 0):
            n = num_pieces if num_pieces is not None else 0
            return np.zeros(n, dtype=bool)
        if self.form == "count" and num_pieces is not None and self.count != num_pieces:
            return None                 # neither none nor all: rtorrent itself rejects such a file
        if self.form in ("all", "count"):
            n = num_pieces if num_pieces is not None else self.count
            return None if n is None else np.ones(min(n, MAX_PIECE_BITS), dtype=bool)
        bits = self.raw_bits()
        if num_pieces is None:
            return bits
        if len(bits) < num_pieces:
            bits = np.concatenate([bits, np.zeros(num_pieces - len(bits), dtype=bool)])
        return bits[:num_pieces]

    def _block_pieces(self, num_pieces, piece_length, length) -> np.ndarray | None:
        if not piece_length or length is None or num_pieces is None:
            if self.form in ("all", "none") and num_pieces is not None:
                return np.full(num_pieces, self.form == "all", dtype=bool)
            return None
        block = min(self.block_size, piece_length)      # Transmission 3.x: smaller blocks for tiny pieces
        n_blocks = -(-length // block)
        if self.form in ("all", "none"):
            return np.full(num_pieces, self.form == "all", dtype=bool)
        blocks = self.raw_bits()[:n_blocks]
        if len(blocks) < n_blocks:
            blocks = np.concatenate([blocks, np.zeros(n_blocks - len(blocks), dtype=bool)])
        missing = np.concatenate([[0], np.cumsum(~blocks)])
        starts = np.arange(num_pieces, dtype=np.int64) * piece_length
        ends = np.minimum(starts + piece_length, length)
        first, last = starts // block, np.maximum(ends - 1, starts) // block
        first, last = np.minimum(first, n_blocks), np.minimum(last + 1, n_blocks)
        return (missing[last] - missing[first]) == 0

    def stored_count(self) -> int | None:
        """Set bits as stored (pieces or blocks), without any geometry; None for "all"."""
        if self.form == "bitfield":
            return int(self.raw_bits().sum())
        if self.form == "none":
            return 0
        return self.count if self.form == "count" else None


@dataclass
class TorrentState:
    format: str
    client: str
    info_hash_v1: str | None = None      # 40 hex
    info_hash_v2: str | None = None      # 64 hex
    info_hash_prefix: str | None = None  # Transmission 2.x file names: the first 16 hex digits only
    hash_source: str = ""                # where the info hash comes from (a key, or the file name)
    name: str | None = None
    save_path: str | None = None
    counters: list[Value] = field(default_factory=list)
    times: list[Value] = field(default_factory=list)
    have: Have | None = None
    num_pieces: int | None = None        # when the file carries the torrent's metadata
    piece_length: int | None = None
    length_bytes: int | None = None      # v1 byte space (pad files included)
    peers: list[str] = field(default_factory=list)
    peers_total: int = 0
    client_fields: dict = field(default_factory=dict)
    download_counts: str = PAYLOAD_ALL
    upload_counts: str = UPLOAD_PAYLOAD
    entry_key: str | None = None         # the record's key inside a multi-torrent file
    notes: list[str] = field(default_factory=list)

    @property
    def info_hash(self) -> str | None:
        """The key used for matching: v1, else the truncated v2 hash (as in a handshake), else the prefix."""
        if self.info_hash_v1:
            return self.info_hash_v1
        if self.info_hash_v2:
            return self.info_hash_v2[:40]
        return self.info_hash_prefix

    def match_keys(self) -> set[str]:
        return {h for h in (self.info_hash_v1, self.info_hash_v2[:40] if self.info_hash_v2 else None) if h}

    def counter(self, name: str) -> Value | None:
        return next((c for c in self.counters if c.field == name), None)

    def time(self, name: str) -> int | None:
        """ts_ns of the named time, or None."""
        t = next((c for c in self.times if c.field == name), None)
        return t.value * 1_000_000_000 if t is not None else None


@dataclass
class StateFile:
    path: str
    sha256: str | None
    size_bytes: int | None
    format: str | None = None
    client: str | None = None
    version: str | None = None           # a version the file records (none of these formats records the
    version_of: str | None = None        # client's own: libtorrent files record the library's)
    version_source: str | None = None    # the key it came from
    torrents: list[TorrentState] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class ClientStateSet:
    files: list[StateFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def torrents(self):
        """(file, torrent) pairs in output order."""
        for f in self.files:
            for t in f.torrents:
                yield f, t

    def manifest_entries(self) -> list[dict]:
        """Entries for manifest.json "inputs" (or a "client_state_inputs" list): every file read."""
        from pathlib import Path
        return [{"path": f.path, "resolved_path": str(Path(f.path).resolve()), "sha256": f.sha256,
                 "size_bytes": f.size_bytes} for f in self.files]


def time_value(fieldname: str, key: str, seconds, meaning: str = "") -> Value | None:
    """A moment as a client stored it (unix seconds); 0, negatives and non-integers mean unknown."""
    if not isinstance(seconds, int) or seconds <= 0 or seconds >= 1 << 40:
        return None
    return Value(fieldname, key, seconds, "unix_seconds", meaning)


def int_value(fieldname: str, key: str, value, unit: str, meaning: str = "") -> Value | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    return Value(fieldname, key, value, unit, meaning)


def stored_key(d: dict, key: str):
    """(key, the value stored under it, or None)."""
    return key, d.get(key.encode())


def read_values(t: TorrentState, d: dict, counters, times, lookup=stored_key) -> None:
    """Append to ``t`` the ``counters`` ((field, key, unit, meaning)) and ``times`` ((field, key,
    meaning)) that dictionary ``d`` holds; ``lookup(d, key)`` gives (the key found, its value)."""
    for f, key, unit, meaning in counters:
        if (v := int_value(f, *lookup(d, key), unit, meaning)) is not None:
            t.counters.append(v)
    for f, key, meaning in times:
        if (v := time_value(f, *lookup(d, key), meaning)) is not None:
            t.times.append(v)


def text(value, limit: int = 4096) -> str | None:
    """A stored string for output: UTF-8 where it decodes, else latin-1 (never fails), capped."""
    if isinstance(value, str):
        return value[:limit]
    if not isinstance(value, bytes):
        return None
    chunk = value[:4 * limit]
    try:
        return chunk.decode("utf-8")[:limit]
    except UnicodeDecodeError as e:
        if len(chunk) < len(value) and e.start >= len(chunk) - 3:     # a character cut by the cap
            try:
                return chunk[:e.start].decode("utf-8")[:limit]
            except UnicodeDecodeError:
                pass
        return chunk.decode("latin-1")[:limit]
