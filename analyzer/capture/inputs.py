"""The set of input files of one run: expansion and ordering.

Paths may be files or directories (searched recursively).  Files are
processed in the order of their first packet's timestamp, ties broken by a
natural sort of the path, so a rotated set (tcpdump ``-C``: ``cap``,
``cap1``, ``cap2``, ... or ``-G`` strftime names) is read as one stream and
a connection spanning files is reassembled across them.  Reassembly orders
bytes by sequence number, not by time, so sets whose time ranges overlap are
still reassembled correctly; the overlap is reported.

The SHA-256 of every input (of the file as stored: compressed bytes for a
compressed file) is computed by the reader from the bytes it reads
(``capture.hashing``): each file is read once.
"""
from __future__ import annotations

import bz2
import fnmatch
import gzip
import lzma
import re
import zlib
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from analyzer.capture.reader import PCAP_MAGICS, PCAPNG_MAGIC, CaptureError, CaptureReader, FileReport


@dataclass
class InputFile:
    path: Path
    report: FileReport
    first_ts_ns: int | None = None
    sha256: Future | None = field(default=None, repr=False)


def natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def looks_like_capture(path: Path) -> bool:
    """Does the file start like a pcap or pcapng capture (also inside gzip, bzip2 or xz)?"""
    try:
        with open(path, "rb") as f:
            head = f.read(6)
            if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
                f.seek(0)
                stream = {"\x1f\x8b": gzip.GzipFile, "BZ": bz2.BZ2File}.get(head[:2].decode("latin-1"),
                                                                        lzma.LZMAFile)(fileobj=f)
                try:
                    head = stream.read(4)
                except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error):
                    return False
    except OSError:
        return False
    return head[:4] in PCAP_MAGICS or head[:4] == PCAPNG_MAGIC


def expand_paths(paths: list[str | Path], include: str | None = None) -> tuple[list[Path], int]:
    """Files as given, directories expanded (recursively, natural order), and how many files
    inside directories were left out: those not matching the ``include`` glob (on the name),
    or, without one, those that do not start like a capture.

    A missing path is kept: reading it produces the error report."""
    out: list[Path] = []
    skipped = 0
    for p in map(Path, paths):
        if p.is_dir():
            for f in sorted((f for f in p.rglob("*") if f.is_file() and not f.name.startswith(".")),
                            key=natural_key):
                if fnmatch.fnmatch(f.name, include) if include else looks_like_capture(f):
                    out.append(f)
                else:
                    skipped += 1
        else:
            out.append(p)
    seen: set = set()
    unique = []
    for p in out:
        key = p.resolve() if p.exists() else p
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique, skipped


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
    """Ordered inputs; their hashes are given by whoever read them (``set_hashes``: the reader
    hashes the bytes it reads)."""

    def __init__(self, paths: list[str | Path], include: str | None = None):
        files = []
        expanded, self.skipped = expand_paths(paths, include)
        for p in expanded:
            f = InputFile(p, FileReport(str(p)))
            f.first_ts_ns = peek_first_ts(p)
            files.append(f)
        # order by first packet time; files without packets last; then path
        files.sort(key=lambda f: (f.first_ts_ns is None, f.first_ts_ns or 0, natural_key(f.path)))
        self.files = files

    def set_hashes(self, digests: list[str | None]) -> None:
        for f, d in zip(self.files, digests):
            f.sha256 = Future()
            f.sha256.set_result(d)

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


