"""Carving: the torrent's files rebuilt from the pieces that verified.

Every verified piece is written once, at its place in the torrent's byte
space, into an anonymous sparse scratch file inside ``CARVE/<info_hash>/``
(unlinked as soon as it is created: nothing is left behind); at the end
each file of the torrent is cut out of it into a sparse file (missing
ranges are holes, read back as zeros) and listed in
``CARVE/<info_hash>/carve.json`` with, for complete files, their SHA-256.

File names come from untrusted metadata.  Each path component is sanitised
(no empty, ``.`` or ``..`` components, no separators or control characters,
no absolute paths, Windows device names prefixed, length capped).  Every
directory from ``CARVE`` down, ``<info_hash>`` included, is opened with
``O_NOFOLLOW`` relative to its parent's descriptor (``analyzer.safeio``): a
symbolic link planted anywhere below ``CARVE`` is never followed, and path
length is no limit.  Files are written as new files (temporary name, then
linked to a free name; a name that collides gets a numbered suffix).

A file that cannot be written (a link or a file where a directory must be,
a full disk, ...) is listed in carve.json with ``written: false`` and the
reason, and carving goes on with the next file; a torrent folder that cannot
be opened is reported with its reason (in summary.json ``carved``).  Nothing
here raises into the analysis.
"""
from __future__ import annotations

import bisect
import errno
import hashlib
import json
import os
import re
from pathlib import Path

from analyzer.safeio import OutputError, SafeDir

_DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
_BAD = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")
MAX_COMPONENT = 200          # bytes of UTF-8 per path component (file systems allow 255)
MAX_SUFFIX = 1000            # numbered suffixes tried for a name that collides


def sanitize_component(name: str) -> str:
    name = _BAD.sub("_", name).strip()
    if name in ("", ".", ".."):
        name = "_" if not name else name.replace(".", "_")
    if name.split(".")[0].upper() in _DEVICES:
        name = "_" + name
    encoded = name.encode("utf-8")[:MAX_COMPONENT]
    return encoded.decode("utf-8", "ignore") or "_"


def safe_path(root: Path, components) -> Path:
    """The sanitised relative path below ``root`` (what is shown in reports)."""
    return root.joinpath(*[sanitize_component(c) for c in components])


def _reason(e: Exception) -> str:
    return e.reason if isinstance(e, OutputError) else (getattr(e, "strerror", None) or str(e))


class _Carve:
    """One torrent being carved."""

    def __init__(self, t, root: SafeDir | None, root_error: str | None):
        self.t = t
        self.written: list[int] = []          # piece indexes, sorted at the end
        self.have: set = set()
        self.folder: SafeDir | None = None
        self.scratch = None
        self.error = root_error
        self.pieces_not_written = 0
        if root is None:
            return
        try:
            self.folder = root.subdir(t.key)
            self.scratch = self.folder.scratch()
        except (OSError, ValueError) as e:
            self.error = _reason(e)
            self.close()

    def close(self) -> None:
        if self.scratch is not None:
            self.scratch.close()
            self.scratch = None
        if self.folder is not None:
            self.folder.close()
            self.folder = None


class Carver:
    def __init__(self, root: Path):
        self.root_path = Path(root)
        self._root: SafeDir | None = None
        self._root_error: str | None = None
        self.torrents: dict = {}       # key -> _Carve

    def _open_root(self) -> SafeDir | None:
        if self._root is None and self._root_error is None:
            try:
                self._root = SafeDir.open(self.root_path, create=True)
            except (OSError, ValueError) as e:
                self._root_error = _reason(e)
        return self._root

    def piece(self, t, index: int, data: bytes) -> None:
        c = self.torrents.get(t.key)
        if c is None:
            root = self._open_root()
            c = self.torrents[t.key] = _Carve(t, root, self._root_error)
        if index in c.have:
            return
        c.have.add(index)
        if c.scratch is None:
            c.pieces_not_written += 1
            return
        try:
            c.scratch.seek(index * t.plen)
            c.scratch.write(data)
            c.written.append(index)
        except OSError as e:
            c.pieces_not_written += 1
            c.error = c.error or f"pieces not stored: {_reason(e)}"

    def finish(self) -> list[dict]:
        reports = []
        for key in sorted(self.torrents):
            c = self.torrents[key]
            t = c.t
            report = {"info_hash": key, "name": t.meta.name, "folder": str(self.root_path / key),
                      "pieces_written": len(c.written), "pieces_total": t.num_pieces, "files": []}
            if c.folder is not None:
                c.written.sort()
                try:
                    c.scratch.flush()
                except OSError as e:
                    c.error = c.error or _reason(e)
                for f in t.meta.files:
                    if not f.pad:
                        report["files"].append(self._carve_file(c, f))
                report["files_not_written"] = sum(1 for f in report["files"] if not f["written"])
            if c.error:
                report["error"] = c.error
            if c.pieces_not_written:
                report["pieces_not_written"] = c.pieces_not_written
            if c.folder is not None:
                try:
                    c.folder.write_text("carve.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
                except (OSError, ValueError) as e:
                    report["error"] = f"carve.json: {_reason(e)}"
            c.close()
            reports.append(report)
        if self._root is not None:
            self._root.close()
            self._root = None
        return reports

    def _carve_file(self, c: _Carve, f) -> dict:
        parts = [sanitize_component(p) for p in f.path]
        entry = {"path": "/".join(parts), "metadata_path": list(f.path), "size": f.size, "written": False}
        missing = self._missing(c, f)
        entry.update(complete=not missing, missing_ranges=missing, missing_bytes=sum(b - a for a, b in missing),
                     sha256=None)
        try:
            folder = c.folder.subdir(parts[:-1]) if len(parts) > 1 else None
        except (OSError, ValueError) as e:
            entry["error"] = _reason(e)
            return entry
        d = folder or c.folder
        try:
            name, digest = self._write_unique(c, d, parts[-1], f, missing)
            entry["path"] = "/".join([*parts[:-1], name])
            entry["written"] = True
            if not missing:
                entry["sha256"] = digest
        except (OSError, ValueError) as e:
            entry["error"] = _reason(e)
        finally:
            if folder is not None:
                folder.close()
        return entry

    def _missing(self, c: _Carve, f) -> list[list[int]]:
        """Byte ranges of the file (relative to its start) in pieces not written."""
        plen = c.t.plen
        start, end = f.offset, f.offset + f.size
        if f.size == 0:
            return []
        first, last = start // plen, (end - 1) // plen
        lo = bisect.bisect_left(c.written, first)
        hi = bisect.bisect_right(c.written, last)
        out: list[list[int]] = []
        pos = start
        for index in c.written[lo:hi]:
            a = max(index * plen, start)
            if a > pos:
                out.append([pos - start, a - start])
            pos = min((index + 1) * plen, end)
        if pos < end:
            out.append([pos - start, end - start])
        return out

    def _write_unique(self, c: _Carve, d: SafeDir, name: str, f, missing: list) -> tuple[str, str | None]:
        for n in range(MAX_SUFFIX):
            candidate = name if n == 0 else f"{name}.{n}"
            if d.exists(candidate):
                continue
            try:
                with d.create(candidate, exclusive=True) as out:
                    digest = self._copy(c, f, missing, out)
                return candidate, digest
            except OutputError as e:
                if e.errno != errno.EEXIST:     # taken meanwhile: try the next suffix
                    raise
        raise OutputError(os.path.join(d.path, name), f"{MAX_SUFFIX} names taken", errno.EEXIST)

    @staticmethod
    def _copy(c: _Carve, f, missing: list, out) -> str | None:
        """Copy the file's bytes from the scratch file; missing ranges stay holes."""
        h = hashlib.sha256() if not missing else None
        src = c.scratch
        pos, end = 0, f.size
        holes = iter(missing + [[end, end]])
        hole = next(holes)
        while pos < end:
            if pos >= hole[0]:
                pos = hole[1]
                out.seek(pos)
                hole = next(holes)
                continue
            n = min(hole[0] - pos, 1 << 20)
            src.seek(f.offset + pos)
            data = src.read(n)
            if len(data) != n:
                raise OSError(5, "scratch file shorter than the torrent")
            out.write(data)
            if h is not None:
                h.update(data)
            pos += n
        out.truncate(end)
        return h.hexdigest() if h is not None else None
