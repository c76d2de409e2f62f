"""Chart data: DIR/timeline.parquet and DIR/peers.parquet (pandas reads them directly).

timeline.parquet, one row per time bin, torrent, direction and transport:
``bin_start`` (UTC), ``bin_seconds``, ``info_hash``, ``direction``
("downloaded"/"uploaded", from the subject's side), ``transport``,
``bytes`` (piece block bytes delivered in the bin, each byte once) and
``acked_bytes`` (block bytes acknowledged in the bin).  Bins without traffic
are absent.  Bytes are placed in the bin of the frame that delivered (or
acknowledged) them; summed over bins they equal the torrent's totals.

peers.parquet, one row per torrent, remote peer address and transport:
``downloaded_bytes``, ``uploaded_bytes``, their ``*_acked_bytes``,
``connections``, ``first_seen``, ``last_seen``.

Memory: the per-second series of each connection are turned into numpy
columns and aggregated (sorted, summed per bin) whenever ``COMPACT_AT`` rows
are pending, so memory follows the number of timeline rows (the output;
``--bin`` coarsens it), not the number of connections or frames.  No pandas
here: pyarrow builds and writes the tables, and readers get pandas-friendly
Parquet (timestamps in UTC nanoseconds).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from analyzer.sessions.summary import subject_directions, torrent_groups

TIMELINE_COLUMNS = ["bin_start", "bin_seconds", "info_hash", "direction", "transport", "bytes", "acked_bytes"]
PEER_COLUMNS = ["info_hash", "remote_ip", "transport", "downloaded_bytes", "downloaded_acked_bytes",
                "uploaded_bytes", "uploaded_acked_bytes", "connections", "first_seen", "last_seen"]
DIRECTIONS = ("downloaded", "uploaded")
TRANSPORTS = ("tcp", "utp")
COMPACT_AT = 1 << 20
UTC_NS = pa.timestamp("ns", tz="UTC")


def _int64(values, typ=pa.int64()) -> pa.Array:
    """An Arrow int64 (or timestamp) column straight from a numpy buffer.  pa.array() would
    import pandas to inspect its argument, which costs the command most of a second."""
    a = np.ascontiguousarray(values, np.int64)
    return pa.Array.from_buffers(typ, len(a), [None, pa.py_buffer(a)])


def _strings(values) -> pa.Array:
    """An Arrow string column from Python strings (same reason as _int64)."""
    enc = [v.encode("utf-8") for v in values]
    offsets = np.zeros(len(enc) + 1, np.int64)
    if enc:
        np.cumsum(np.fromiter(map(len, enc), np.int64, len(enc)), out=offsets[1:])
    if offsets[-1] < 2**31:
        return pa.StringArray.from_buffers(len(enc), pa.py_buffer(offsets.astype(np.int32)),
                                           pa.py_buffer(b"".join(enc)))
    large = pa.LargeStringArray.from_buffers(len(enc), pa.py_buffer(offsets), pa.py_buffer(b"".join(enc)))
    return large                                   # > 2 GiB of text: 64-bit offsets


class _Bins:
    """(bin, torrent id, direction, transport) -> [bytes, acked], as numpy columns."""

    def __init__(self):
        self.parts: list[np.ndarray] = []     # rows of int64: bin, torrent, direction, transport, n, acked
        self.pending = 0

    def add(self, rows: np.ndarray) -> None:
        self.parts.append(rows)
        self.pending += len(rows)
        if self.pending >= COMPACT_AT:
            self.parts = [self.compact()]
            self.pending = len(self.parts[0])

    def compact(self) -> np.ndarray:
        if not self.parts:
            return np.empty((0, 6), np.int64)
        rows = np.concatenate(self.parts)
        order = np.lexsort((rows[:, 3], rows[:, 2], rows[:, 1], rows[:, 0]))
        rows = rows[order]
        keys = rows[:, :4]
        new = np.ones(len(rows), bool)
        new[1:] = np.any(keys[1:] != keys[:-1], axis=1)
        starts = np.flatnonzero(new)
        out = keys[starts].copy()
        sums = np.add.reduceat(rows[:, 4:], starts, axis=0) if len(rows) else np.empty((0, 2), np.int64)
        return np.concatenate([out, sums], axis=1)


def build_tables(result, bin_seconds: int = 1) -> tuple[pa.Table, pa.Table]:
    """(timeline, peers) as Arrow tables, rows in a deterministic order."""
    if bin_seconds < 1:
        raise ValueError("bin must be at least one second")
    groups = torrent_groups(result.records, result.metas)
    ids: dict[str, int] = {}
    bins = _Bins()
    peers: dict = {}
    for r in result.records:
        if r.category != "bittorrent":
            continue
        side, down, up = subject_directions(r, result.subject)
        if down is None:
            continue
        key = groups.get(r.info_hash, r.info_hash)
        tid = ids.setdefault(key, len(ids))
        tr = TRANSPORTS.index(r.transport)
        for di, d in enumerate((down, up)):
            if len(d.block_series):
                series = np.asarray(d.block_series, np.int64).reshape(-1, 3)
                rows = np.empty((len(series), 6), np.int64)
                rows[:, 0] = series[:, 0] - series[:, 0] % bin_seconds
                rows[:, 1] = tid
                rows[:, 2] = di
                rows[:, 3] = tr
                rows[:, 4:] = series[:, 1:]
                bins.add(rows)
        remote = r.dst_ip if side == "src" else r.src_ip
        p = peers.setdefault((key, remote, r.transport), [0, 0, 0, 0, 0, r.first_ts_ns, r.last_ts_ns])
        p[0] += down.block_bytes
        p[1] += down.block_acked_bytes
        p[2] += up.block_bytes
        p[3] += up.block_acked_bytes
        p[4] += 1
        p[5] = min(p[5], r.first_ts_ns)
        p[6] = max(p[6], r.last_ts_ns)
    rows = bins.compact()
    # order: bin, then info hash text, direction, transport (independent of first-seen order)
    names = sorted(ids)
    if len(rows):
        rank = np.empty(len(names), np.int64)
        rank[[ids[n] for n in names]] = np.arange(len(names))
        rows[:, 1] = rank[rows[:, 1]]             # torrent ids become positions in ``names``
        rows = rows[np.lexsort((rows[:, 3], rows[:, 2], rows[:, 1], rows[:, 0]))]
    timeline = pa.table({
        "bin_start": _int64(rows[:, 0] * 1_000_000_000, UTC_NS),
        "bin_seconds": _int64(np.full(len(rows), bin_seconds)),
        "info_hash": _strings([names[i] for i in rows[:, 1]]),
        "direction": _strings([DIRECTIONS[i] for i in rows[:, 2]]),
        "transport": _strings([TRANSPORTS[i] for i in rows[:, 3]]),
        "bytes": _int64(rows[:, 4]),
        "acked_bytes": _int64(rows[:, 5]),
    })
    items = sorted(peers.items())
    cols = list(zip(*[(h, ip, t, *v) for (h, ip, t), v in items])) or [[] for _ in PEER_COLUMNS]
    peer_table = pa.table({
        **{c: _strings(cols[i]) for i, c in enumerate(PEER_COLUMNS[:3])},
        **{c: _int64(cols[i]) for i, c in enumerate(PEER_COLUMNS[3:8], 3)},
        "first_seen": _int64(cols[8], UTC_NS),
        "last_seen": _int64(cols[9], UTC_NS),
    })
    return timeline, peer_table


def build_frames(result, bin_seconds: int = 1):
    """The same tables as pandas DataFrames (for notebooks and tests)."""
    timeline, peers = build_tables(result, bin_seconds)
    return timeline.to_pandas(), peers.to_pandas()


def write_parquet(table: pa.Table, path: Path) -> None:
    """Deterministic Parquet: no schema metadata, zstd."""
    pq.write_table(table.replace_schema_metadata(None), path, compression="zstd")
