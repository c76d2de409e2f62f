"""Carving: the torrent's files rebuilt from the pieces that verified.

Every verified piece is written once, at its place in the torrent's byte
space, into ``CARVE/<info_hash>/.pieces`` (sparse); at the end each file of
the torrent is cut out of it, missing ranges are left as zeros and listed in
``CARVE/<info_hash>/carve.json`` with, for complete files, their SHA-256.

File names come from untrusted metadata.  Each path component is sanitised
(no empty, ``.`` or ``..`` components, no separators or control characters,
no absolute paths, Windows device names prefixed, length capped), the final
path must lie inside the torrent's carve folder, existing symbolic links are
never followed (every component is checked, files are opened with
O_NOFOLLOW and O_EXCL), and a name that collides gets a numbered suffix.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from pathlib import Path

_DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
_BAD = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")
MAX_COMPONENT = 200


def sanitize_component(name: str) -> str:
    name = _BAD.sub("_", name).strip()
    if name in ("", ".", ".."):
        name = "_" if not name else name.replace(".", "_")
    if name.split(".")[0].upper() in _DEVICES:
        name = "_" + name
    encoded = name.encode("utf-8")[:MAX_COMPONENT]
    return encoded.decode("utf-8", "ignore") or "_"


def safe_path(root: Path, components) -> Path:
    parts = [sanitize_component(c) for c in components]
    path = root.joinpath(*parts)
    if os.path.commonpath([os.path.abspath(path), os.path.abspath(root)]) != os.path.abspath(root):
        raise ValueError(f"path escapes the carve folder: {components!r}")
    return path


def _make_dirs(root: Path, path: Path) -> None:
    """Create the directories between root and path, refusing symbolic links."""
    current = root
    for part in path.relative_to(root).parts[:-1]:
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            os.mkdir(current)
            continue
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
            raise ValueError(f"refusing to write through {current}: not a plain directory")


def _unique(path: Path) -> Path:
    n = 1
    candidate = path
    while os.path.lexists(candidate):
        candidate = path.with_name(f"{path.name}.{n}")
        n += 1
    return candidate


class Carver:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.torrents: dict = {}       # key -> (_Torrent, set of written piece indexes, pieces file)

    def piece(self, t, index: int, data: bytes) -> None:
        entry = self.torrents.get(t.key)
        if entry is None:
            folder = self.root / t.key
            folder.mkdir(parents=True, exist_ok=True)
            entry = self.torrents[t.key] = (t, set(), folder / ".pieces")
            with open(entry[2], "wb") as f:
                f.truncate(t.length)
        if index in entry[1]:
            return
        with open(entry[2], "r+b") as f:
            f.seek(index * t.plen)
            f.write(data)
        entry[1].add(index)

    def finish(self) -> list[dict]:
        reports = []
        for key in sorted(self.torrents):
            t, written, pieces = self.torrents[key]
            folder = self.root / key
            files = []
            with open(pieces, "rb") as src:
                for f in t.meta.files:
                    if f.pad:
                        continue
                    files.append(self._carve_file(t, written, folder, f, src))
            pieces.unlink()
            report = {"info_hash": key, "name": t.meta.name, "folder": str(folder),
                      "pieces_written": len(written), "pieces_total": t.num_pieces, "files": files}
            (folder / "carve.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
            reports.append(report)
        return reports

    def _carve_file(self, t, written: set, folder: Path, f, src) -> dict:
        path = _unique(safe_path(folder, f.path))
        _make_dirs(folder, path)
        missing = []
        h = hashlib.sha256()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        with os.fdopen(fd, "wb") as out:
            pos = f.offset
            end = f.offset + f.size
            while pos < end:
                index = pos // t.plen
                piece_end = min((index + 1) * t.plen, end)
                src.seek(pos)
                data = src.read(piece_end - pos)
                out.write(data)
                h.update(data)
                if index not in written:
                    a, b = pos - f.offset, piece_end - f.offset
                    if missing and missing[-1][1] == a:
                        missing[-1][1] = b
                    else:
                        missing.append([a, b])
                pos = piece_end
        complete = not missing
        return {"path": str(path.relative_to(folder)), "metadata_path": list(f.path), "size": f.size,
                "complete": complete, "missing_ranges": missing,
                "missing_bytes": sum(b - a for a, b in missing), "sha256": h.hexdigest() if complete else None}
