"""The set of input files of one run: expansion, ordering, hashing.

Paths may be files or directories (searched recursively).  Files are
processed in the order of their first packet's timestamp, ties broken by a
natural sort of the path, so a rotated set (tcpdump ``-C``: ``cap``,
``cap1``, ``cap2``, ... or ``-G`` strftime names) is read as one stream and
a connection spanning files is reassembled across them.  Reassembly orders
bytes by sequence number, not by time, so sets whose time ranges overlap are
still reassembled correctly; the overlap is reported.

SHA-256 of every input is computed by a helper process from the file as
stored (compressed bytes for compressed files), while the analysis runs (a
thread would wait for the interpreter lock the compiled engine holds).
"""
from __future__ import annotations

import re
import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from analyzer.digest import sha256_file
from analyzer.capture.reader import CaptureError, CaptureReader, FileReport


@dataclass
class InputFile:
    path: Path
    report: FileReport
    first_ts_ns: int | None = None
    sha256: Future | None = field(default=None, repr=False)


def natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def expand_paths(paths: list[str | Path]) -> list[Path]:
    """Files as given, directories expanded (recursively, natural order).

    A missing path is kept: reading it produces the error report."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted((f for f in p.rglob("*") if f.is_file() and not f.name.startswith(".")),
                              key=natural_key))
        else:
            out.append(p)
    seen: set = set()
    unique = []
    for p in out:
        key = p.resolve() if p.exists() else p
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def peek_first_ts(path: Path) -> int | None:
    """Timestamp of the first packet, or None (no packets, or unreadable)."""
    try:
        reader = CaptureReader(path)
    except CaptureError:
        return None
    try:
        for _ in reader.batches():
            if reader.report.first_ts_ns is not None:     # frames of damaged interfaces have no time
                return reader.report.first_ts_ns
    finally:
        reader.close()
    return None


class InputSet:
    """Ordered inputs with their hashes computing in the background."""

    def __init__(self, paths: list[str | Path]):
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"))
        files = []
        for p in expand_paths(paths):
            f = InputFile(p, FileReport(str(p)))
            f.first_ts_ns = peek_first_ts(p)
            files.append(f)
        # order by first packet time; files without packets last; then path
        files.sort(key=lambda f: (f.first_ts_ns is None, f.first_ts_ns or 0, natural_key(f.path)))
        for f in files:
            f.sha256 = self._pool.submit(sha256_file, f.path)
        self.files = files

    def overlaps(self) -> list[tuple[str, str]]:
        """Pairs of consecutive files whose time ranges overlap (after reading)."""
        out = []
        prev = None
        for f in self.files:
            r = f.report
            if r.first_ts_ns is None:
                continue
            if prev is not None and r.first_ts_ns < prev.report.last_ts_ns:
                out.append((str(prev.path), str(f.path)))
            prev = f
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=True)
