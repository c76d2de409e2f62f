"""write_outputs: every output file of a run's findings, through SafeDir, with the SHA-256 of each
for the manifest (see the package docstring)."""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import io
from pathlib import Path

from analyzer.evidence.metainfo import encode_torrent
from analyzer.safeio import SafeDir
from analyzer.output.manifest import manifest_json
from analyzer.output.parquet_worker import ParquetWorker
from analyzer.output.summary import dumps, summary_json
from analyzer.output.tables import (dht_csv, pex_csv, pieces_csv, torrent_hosts_csv, torrent_transports_csv,
                                    torrents_csv, tracker_csv, write_connections_csv)


class _Hashing(io.RawIOBase):
    """A binary file that hashes what is written to it (the manifest records it without reading
    the file back)."""

    def __init__(self, f):
        super().__init__()
        self.f, self.h = f, hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.h.update(b)
        return self.f.write(b)


class OutputFolder:
    """Files written into the output folder through ``SafeDir`` (no link followed, every file
    new and renamed into place), with the SHA-256 of each."""

    def __init__(self, d: SafeDir):
        self.d = d
        self.hashes: dict[str, str] = {}

    def _dir(self, name: str) -> tuple[SafeDir, str]:
        sub, _, leaf = name.rpartition("/")
        return (self.d.subdir(sub) if sub else self.d), leaf

    def put(self, name: str, content: str | bytes) -> None:
        data = content.encode("utf-8") if isinstance(content, str) else content
        d, leaf = self._dir(name)
        d.write_bytes(leaf, data)
        self.hashes[name] = hashlib.sha256(data).hexdigest()

    @contextlib.contextmanager
    def stream(self, name: str, text: bool = True):
        """A file written as a stream (text: UTF-8, no newline translation)."""
        d, leaf = self._dir(name)
        with d.create(leaf) as raw:
            h = _Hashing(raw)
            if text:
                f = io.TextIOWrapper(io.BufferedWriter(h, 1 << 20), encoding="utf-8", newline="")
                yield f
                f.flush()
                f.detach().detach()
            else:
                yield h
        self.hashes[name] = h.h.hexdigest()


def write_outputs(f, out_dir: Path, *, argv: list[str], started: _dt.datetime,
                  parquet: ParquetWorker | None = None) -> dict:
    """Write every output file of findings ``f`` (manifest.json last: a folder with a manifest is
    complete); return the summary.  ``parquet``: the worker forked to make the Parquet files (they
    are made here without one)."""
    parquet = parquet or ParquetWorker(parallel=False)
    parquet.submit(f.timeline, f.peers)       # made there while the tables below are made here
    summary = summary_json(f)
    files = {
        "summary.json": dumps(summary),
        "torrents.csv": torrents_csv(f),
        "torrent_transports.csv": torrent_transports_csv(f),
        "torrent_hosts.csv": torrent_hosts_csv(f),
        "tracker.csv": tracker_csv(f),
        "dht.csv": dht_csv(f),
        "pex.csv": pex_csv(f),
    }
    if f.pieces is not None:
        files["pieces.csv"] = pieces_csv(f)
    if f.client_state is not None:
        from analyzer.output.client_state import client_state_csv
        files["client_state.csv"] = client_state_csv(summary["client_state"])
    if f.tracebacks:
        files["errors.log"] = "".join(f"--- internal error while analysing {path}\n{text}\n"
                                      for path, text in f.tracebacks)
    for meta in f.rebuilt:
        files[f"metadata/{meta.info_hash_v1 or meta.info_hash_v2}.torrent"] = encode_torrent(meta)
    with SafeDir.open(out_dir) as d:
        out = OutputFolder(d)
        for name, content in files.items():
            out.put(name, content)
        with out.stream("connections.csv") as fh:
            write_connections_csv(f, fh)
        timeline, peers = parquet.files()
        out.put("timeline.parquet", timeline)
        out.put("peers.parquet", peers)
        out.put("manifest.json", dumps(manifest_json(f, out.hashes, argv=argv, started=started)))
        d.sync()
    return summary
