"""Carving: files rebuilt from verified pieces; hostile names stay inside the carve folder."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from analyzer.evidence.carve import Carver, safe_path, sanitize_component
from analyzer.evidence.metainfo import FileEntry, TorrentMeta
from analyzer.evidence.pieces import _Torrent

REPO = Path(__file__).resolve().parent.parent.parent


@pytest.mark.parametrize("name,expected", [
    ("..", "__"), (".", "_"), ("", "_"), ("a/b", "a_b"), ("a\\b", "a_b"), ("CON", "_CON"), ("nul.txt", "_nul.txt"),
    ("x\x00y", "x_y"), ("ok.bin", "ok.bin"), ("é" * 300, "é" * 100),
])
def test_sanitize_component(name, expected):
    assert sanitize_component(name) == expected


def meta_for(files: list[tuple[tuple, int]], plen=16) -> tuple[TorrentMeta, bytes]:
    entries, offset = [], 0
    for path, size in files:
        entries.append(FileEntry(path, size, offset))
        offset += size
    content = bytes(i % 251 for i in range(offset))
    hashes = b"".join(hashlib.sha1(content[i:i + plen]).digest() for i in range(0, offset, plen))
    m = TorrentMeta("test", files[0][0][0], offset, plen, "ab" * 20, None, entries, hashes)
    return m, content


HOSTILE = [
    (("../../escape",), 10), (("evil", "..", "..", "up"), 10), (("evil", "/etc", "passwd"), 10),
    (("evil", "CON"), 5), (("evil", "a\x00b"), 5), (("evil", "same"), 3), (("evil", "same"), 3),
]


def test_hostile_names_cannot_escape(tmp_path):
    root = tmp_path / "carve"
    m, content = meta_for(HOSTILE)
    t = _Torrent(m)
    c = Carver(root)
    for i in range(t.num_pieces):
        c.piece(t, i, content[i * 16:(i + 1) * 16])
    [report] = c.finish()
    base = os.path.realpath(root)
    written = [p for p in root.rglob("*") if p.is_file()]
    assert all(os.path.realpath(p).startswith(base + os.sep) for p in written)
    assert not (tmp_path / "escape").exists() and not (tmp_path.parent / "escape").exists()
    assert len(report["files"]) == len(HOSTILE) and all(f["complete"] for f in report["files"])
    paths = [f["path"] for f in report["files"]]
    assert len(set(paths)) == len(paths)                     # a colliding name got a suffix
    folder = root / ("ab" * 20)
    for f, (path, size) in zip(report["files"], HOSTILE):
        data = (folder / f["path"]).read_bytes()
        assert len(data) == size and hashlib.sha256(data).hexdigest() == f["sha256"]


def test_symlink_in_the_way_is_refused(tmp_path):
    root = tmp_path / "carve"
    outside = tmp_path / "outside"
    outside.mkdir()
    m, content = meta_for([(("t", "dir", "file"), 20)])
    folder = root / ("ab" * 20)
    (folder / "t").mkdir(parents=True)
    os.symlink(outside, folder / "t" / "dir")
    t = _Torrent(m)
    c = Carver(root)
    c.piece(t, 0, content[:16])
    c.piece(t, 1, content[16:])
    with pytest.raises(ValueError, match="not a plain directory"):
        c.finish()
    assert list(outside.iterdir()) == []


def test_missing_pieces_are_listed(tmp_path):
    m, content = meta_for([(("t", "a"), 40), (("t", "b"), 8)])
    t = _Torrent(m)
    c = Carver(tmp_path)
    c.piece(t, 0, content[:16])
    c.piece(t, 2, content[32:48])              # piece 1 (bytes 16-32 of file a) missing
    [report] = c.finish()
    a, b = report["files"]
    assert not a["complete"] and a["missing_ranges"] == [[16, 32]] and a["sha256"] is None
    assert b["complete"] and b["sha256"] == hashlib.sha256(content[40:48]).hexdigest()


def test_safe_path_rejects_nothing_it_cannot_clean(tmp_path):
    p = safe_path(tmp_path, ["..", "..", "x"])
    assert str(p).startswith(str(tmp_path))
