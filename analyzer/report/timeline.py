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
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analyzer.sessions.summary import subject_directions, torrent_groups

TIMELINE_COLUMNS = ["bin_start", "bin_seconds", "info_hash", "direction", "transport", "bytes", "acked_bytes"]
PEER_COLUMNS = ["info_hash", "remote_ip", "transport", "downloaded_bytes", "downloaded_acked_bytes",
                "uploaded_bytes", "uploaded_acked_bytes", "connections", "first_seen", "last_seen"]


def build_frames(result, bin_seconds: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    if bin_seconds < 1:
        raise ValueError("bin must be at least one second")
    groups = torrent_groups(result.records, result.metas)
    bins: dict = defaultdict(lambda: [0, 0])
    peers: dict = {}
    for r in result.records:
        if r.category != "bittorrent":
            continue
        side, down, up = subject_directions(r, result.subject)
        if down is None:
            continue
        key = groups.get(r.info_hash, r.info_hash)
        for direction, d in (("downloaded", down), ("uploaded", up)):
            for sec, n, acked in d.block_series:
                b = bins[(sec - sec % bin_seconds, key, direction, r.transport)]
                b[0] += n
                b[1] += acked
        remote = r.dst_ip if side == "src" else r.src_ip
        p = peers.setdefault((key, remote, r.transport), [0, 0, 0, 0, 0, r.first_ts_ns, r.last_ts_ns])
        p[0] += down.block_bytes
        p[1] += down.block_acked_bytes
        p[2] += up.block_bytes
        p[3] += up.block_acked_bytes
        p[4] += 1
        p[5] = min(p[5], r.first_ts_ns)
        p[6] = max(p[6], r.last_ts_ns)
    rows = [(pd.Timestamp(sec * 1_000_000_000, tz="UTC"), bin_seconds, h, direction, transport, n, acked)
            for (sec, h, direction, transport), (n, acked) in sorted(bins.items())]
    timeline = pd.DataFrame(rows, columns=TIMELINE_COLUMNS)
    timeline = timeline.astype({"bin_start": "datetime64[ns, UTC]", "bin_seconds": "int64", "bytes": "int64",
                                "acked_bytes": "int64"})
    prow = [(h, ip, t, *v[:5], pd.Timestamp(v[5], tz="UTC"), pd.Timestamp(v[6], tz="UTC"))
            for (h, ip, t), v in sorted(peers.items())]
    peer_frame = pd.DataFrame(prow, columns=PEER_COLUMNS)
    peer_frame = peer_frame.astype({c: "int64" for c in PEER_COLUMNS[3:8]} |
                                   {"first_seen": "datetime64[ns, UTC]", "last_seen": "datetime64[ns, UTC]"})
    return timeline, peer_frame


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    """Deterministic Parquet: no index, no pandas metadata beyond the schema."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata(None)
    pq.write_table(table, path, compression="zstd")
