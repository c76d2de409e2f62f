"""timeline.parquet and peers.parquet from the findings (pandas reads them directly, with
UTC nanosecond timestamps).  No pandas here: pyarrow builds and writes the tables.  ``analyze``
makes the files' bytes (``parquet_files``) in a process of their own (parquet_worker.py)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from analyzer.findings.timeline import DIRECTIONS, TRANSPORTS, PeerRow

TIMELINE_COLUMNS = ["bin_start", "bin_seconds", "info_hash", "host", "direction", "transport", "bytes",
                    "acked_bytes"]
PEER_COLUMNS = ["info_hash", "host", "remote_ip", "internal", "transport", "downloaded_bytes",
                "downloaded_acked_bytes", "uploaded_bytes", "uploaded_acked_bytes", "connections", "first_seen",
                "last_seen"]


# pyarrow (about 40 MB) is imported when the tables are written, not with the command: the
# analysis before them is where memory peaks.
def _utc_ns():
    import pyarrow as pa
    return pa.timestamp("ns", tz="UTC")


def _int64(values, typ=None) -> pa.Array:
    """An Arrow int64 (or timestamp) column straight from a numpy buffer.  pa.array() would
    import pandas to inspect its argument, which costs the command most of a second."""
    import pyarrow as pa
    typ = pa.int64() if typ is None else typ
    a = np.ascontiguousarray(values, np.int64)
    return pa.Array.from_buffers(typ, len(a), [None, pa.py_buffer(a)])


def _strings(values) -> pa.Array:
    """An Arrow string column from Python strings (same reason as _int64)."""
    import pyarrow as pa
    enc = [v.encode("utf-8") for v in values]
    offsets = np.zeros(len(enc) + 1, np.int64)
    if enc:
        np.cumsum(np.fromiter(map(len, enc), np.int64, len(enc)), out=offsets[1:])
    if offsets[-1] < 2**31:
        return pa.StringArray.from_buffers(len(enc), pa.py_buffer(offsets.astype(np.int32)),
                                           pa.py_buffer(b"".join(enc)))
    return pa.LargeStringArray.from_buffers(len(enc), pa.py_buffer(offsets), pa.py_buffer(b"".join(enc)))


def timeline_table(timeline) -> pa.Table:
    import pyarrow as pa
    rows, names = timeline.rows, timeline.info_hashes
    return pa.table({
        "bin_start": _int64(rows[:, 0] * 1_000_000_000, _utc_ns()),
        "bin_seconds": _int64(np.full(len(rows), timeline.bin_seconds)),
        "info_hash": _strings([names[i] for i in rows[:, 1]]),
        "host": _strings([timeline.hosts[i] for i in rows[:, 2]]),
        "direction": _strings([DIRECTIONS[i] for i in rows[:, 3]]),
        "transport": _strings([TRANSPORTS[i] for i in rows[:, 4]]),
        "bytes": _int64(rows[:, 5]),
        "acked_bytes": _int64(rows[:, 6]),
    })


def peer_columns(peers: list[PeerRow]) -> list:
    """The columns of peers.parquet (tuples of Python values, in PEER_COLUMNS order)."""
    return list(zip(*[(p.info_hash, p.host, p.remote_ip, p.internal, p.transport, p.downloaded_bytes,
                       p.downloaded_acked_bytes, p.uploaded_bytes, p.uploaded_acked_bytes, p.connections,
                       p.first_seen_ns, p.last_seen_ns)
                      for p in peers])) or [() for _ in PEER_COLUMNS]


def peers_table(peers: list[PeerRow] | None = None, cols: list | None = None) -> pa.Table:
    import pyarrow as pa
    if cols is None:
        cols = peer_columns(peers)
    internal = np.fromiter(cols[3], np.uint8, len(cols[3]))
    return pa.table({
        **{c: _strings(cols[i]) for i, c in enumerate(PEER_COLUMNS[:3])},
        "internal": pa.BooleanArray.from_buffers(pa.bool_(), len(internal),
                                                 [None, pa.py_buffer(np.packbits(internal, bitorder="little"))]),
        "transport": _strings(cols[4]),
        **{c: _int64(cols[i]) for i, c in enumerate(PEER_COLUMNS[5:10], 5)},
        "first_seen": _int64(cols[10], _utc_ns()),
        "last_seen": _int64(cols[11], _utc_ns()),
    })


# What pyarrow.parquet.write_table passes to the compiled writer with our arguments (pyarrow 26),
# spelled out so that the Python module, which imports pyarrow's filesystems (and with them ssl
# and the S3, GCS, Azure and HDFS bindings), is not imported.  tests/output/test_parquet.py checks
# that both give the same bytes.
_WRITER_OPTIONS = dict(
    version="2.6", compression="zstd", use_dictionary=True, write_statistics=True,
    use_deprecated_int96_timestamps=False, compression_level=None, use_byte_stream_split=False,
    column_encoding=None, writer_engine_version="V2", data_page_version="1.0",
    use_compliant_nested_type=True, encryption_properties=None, write_batch_size=None,
    dictionary_pagesize_limit=None, store_schema=True, write_page_index=False, write_page_checksum=False,
    sorting_columns=None, store_decimal_as_integer=False, write_time_adjusted_to_utc=False,
    max_rows_per_page=None, bloom_filter_options=None, use_content_defined_chunking=False,
    coerce_timestamps=None, data_page_size=None, allow_truncated_timestamps=False)


def write_parquet(table: pa.Table, where) -> None:
    """Deterministic Parquet: no schema metadata, zstd.  ``where``: a path or a binary file."""
    table = table.replace_schema_metadata(None)
    try:
        from pyarrow import _parquet
        writer = _parquet.ParquetWriter(where, table.schema, **_WRITER_OPTIONS)
    except (ImportError, AttributeError, TypeError):          # another pyarrow: its public function
        import pyarrow.parquet as pq
        pq.write_table(table, where, compression="zstd")
        return
    writer.write_table(table, row_group_size=None)
    writer.close()


def parquet_files(timeline, cols: list) -> tuple[bytes, bytes]:
    """The bytes of timeline.parquet and peers.parquet (``cols``: ``peer_columns``)."""
    out = []
    for table in (timeline_table(timeline), peers_table(cols=cols)):
        buf = io.BytesIO()
        write_parquet(table, buf)
        out.append(buf.getvalue())
    return out[0], out[1]

