"""Carving: files rebuilt from verified pieces; hostile names stay inside the carve folder."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from analyzer.evidence.carve import Carver, safe_path, sanitize_component
from analyzer.evidence.metainfo import FileEntry, TorrentMeta
from analyzer.evidence.piece_check import TorrentGeometry
from smalldisk import run_on_small_tmpfs

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
    t = TorrentGeometry(m)
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


def carve_all(root, m, content, plen=16, skip=()) -> dict:
    t = TorrentGeometry(m)
    c = Carver(root)
    for i in range(t.num_pieces):
        if i not in skip:
            c.piece(t, i, content[i * plen:(i + 1) * plen])
    [report] = c.finish()
    return report


def test_symlink_in_the_way_is_reported_and_the_rest_carved(tmp_path):
    root = tmp_path / "carve"
    outside = tmp_path / "outside"
    outside.mkdir()
    m, content = meta_for([(("t", "dir", "file"), 20), (("t", "other"), 12)])
    folder = root / ("ab" * 20)
    (folder / "t").mkdir(parents=True)
    os.symlink(outside, folder / "t" / "dir")
    report = carve_all(root, m, content)
    blocked, other = report["files"]
    assert not blocked["written"] and "symbolic link" in blocked["error"] and blocked["complete"]
    assert other["written"] and (folder / "t" / "other").read_bytes() == content[20:]
    assert report["files_not_written"] == 1
    assert list(outside.iterdir()) == []
    assert json.loads((folder / "carve.json").read_text()) == report


def test_info_hash_folder_that_is_a_symlink_is_not_followed(tmp_path):
    """--carve DIR with DIR/<info_hash> -> elsewhere: nothing is written there, the report says why."""
    root = tmp_path / "carve"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, root / ("ab" * 20))
    m, content = meta_for([(("t", "a"), 20)])
    report = carve_all(root, m, content)
    assert "symbolic link" in report["error"] and report["files"] == [] and report["pieces_written"] == 0
    assert report["pieces_not_written"] == 2
    assert list(outside.iterdir()) == []


def test_deep_path_of_long_names_is_carved(tmp_path):
    """30 levels of 200-character names: longer than PATH_MAX, written one component at a time."""
    deep = tuple(("d%02d" % i).ljust(200, "x") for i in range(30))
    m, content = meta_for([(("t", *deep, "deep.bin"), 20), (("t", "plain.bin"), 12)])
    report = carve_all(tmp_path, m, content)
    d, plain = report["files"]
    assert d["written"] and d["complete"] and d["path"] == "/".join(("t", *deep, "deep.bin"))
    assert d["sha256"] == hashlib.sha256(content[:20]).hexdigest()
    assert plain["written"] and (tmp_path / ("ab" * 20) / "t" / "plain.bin").read_bytes() == content[20:]


def test_file_where_a_directory_is_needed_is_reported(tmp_path):
    m, content = meta_for([(("t", "x"), 10), (("t", "x", "y"), 10), (("t", "z"), 12)])
    report = carve_all(tmp_path, m, content)
    x, xy, z = report["files"]
    assert x["written"] and z["written"]
    assert not xy["written"] and "not a directory" in xy["error"]


def test_hostile_torrent_sizes_do_not_hang_or_raise(tmp_path):
    """A file claiming 2^60 bytes: carving is linear in the pieces written, not in the claimed size."""
    entries = [FileEntry(("t", "small"), 16, 0), FileEntry(("t", "huge"), 1 << 60, 16)]
    m = TorrentMeta("test", "t", 16 + (1 << 60), 16, "ab" * 20, None, entries,
                    hashlib.sha1(b"s" * 16).digest() * 2)
    t = TorrentGeometry(m)
    c = Carver(tmp_path)
    c.piece(t, 0, b"s" * 16)
    [report] = c.finish()
    small, huge = report["files"]
    assert small["written"] and small["complete"] and "error" not in report
    assert not huge["written"] and huge["error"] in ("File too large", "Invalid argument")   # EFBIG / EINVAL
    assert huge["missing_ranges"] == [[0, 1 << 60]]


def test_carved_files_are_sparse(tmp_path):
    plen = 1 << 16
    m, content = meta_for([(("t", "big"), 8 * plen)], plen=plen)
    report = carve_all(tmp_path, m, content, plen=plen, skip=set(range(1, 7)))
    [f] = report["files"]
    assert f["missing_ranges"] == [[plen, 7 * plen]] and f["written"]
    path = tmp_path / ("ab" * 20) / "t" / "big"
    data = path.read_bytes()
    assert len(data) == 8 * plen and data[:plen] == content[:plen] and data[7 * plen:] == content[7 * plen:]
    assert data[plen:7 * plen] == bytes(6 * plen)
    assert path.stat().st_blocks * 512 <= 4 * plen          # the 6 missing pieces take no blocks


def test_full_disk_while_carving_is_reported_per_file():
    r = run_on_small_tmpfs("""
        import hashlib
        from analyzer.evidence.carve import Carver
        from analyzer.evidence.metainfo import FileEntry, TorrentMeta
        from analyzer.evidence.piece_check import TorrentGeometry
        plen = 1 << 16
        content = os.urandom(4 * plen)
        files = [FileEntry(("t", "a"), plen, 0), FileEntry(("t", "big"), 2 * plen, plen),
                 FileEntry(("t", "c"), plen, 3 * plen)]
        hashes = b"".join(hashlib.sha1(content[i:i + plen]).digest() for i in range(0, 4 * plen, plen))
        t = TorrentGeometry(TorrentMeta("x", "t", 4 * plen, plen, "ab" * 20, None, files, hashes))
        c = Carver(mnt + "/carve")
        for i in range(4):
            c.piece(t, i, content[i * plen:(i + 1) * plen])
        result["report"] = c.finish()[0]
        folder = mnt + "/carve/" + "ab" * 20
        result["listing"] = sorted(os.listdir(folder)) + sorted(os.listdir(folder + "/t"))
    """, size="400k")
    files = {f["path"]: f for f in r["report"]["files"]}
    assert not files["t/big"]["written"] and files["t/big"]["error"] == "No space left on device"
    assert files["t/a"]["written"] or files["t/c"]["written"]
    assert all(not n.startswith(".") for n in r["listing"])          # no temporary left behind
    assert "big" not in r["listing"]


def test_missing_pieces_are_listed(tmp_path):
    m, content = meta_for([(("t", "a"), 40), (("t", "b"), 8)])
    t = TorrentGeometry(m)
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


# ---------------------------------------------------------------------- through analyze() (crafted capture)
def _carve_run(tmp_path, paths, setup=None):
    from analyzer.analysis import analyze
    from fuzz import hostile as H
    content = bytes(i % 251 for i in range(3 * 16384))
    torrent, ih = H.carve_torrent(paths, content)
    (tmp_path / "t.torrent").write_bytes(torrent)
    (tmp_path / "a.pcap").write_bytes(H.carve_pcap(ih, content))
    carve = tmp_path / "carve"
    outside = tmp_path / "outside"
    outside.mkdir()
    if setup:
        setup(carve, ih.hex(), outside)
    result = analyze([tmp_path / "a.pcap"], local=["10.0.0.1"], torrents=[tmp_path / "t.torrent"], carve=carve,
                     warn=lambda m: None)
    assert list(outside.iterdir()) == []
    return result.carved, carve / ih.hex(), content


def test_carve_deep_names_through_analyze(tmp_path):
    """A 30-deep path of 200-character names stopped the run with ENAMETOOLONG."""
    from fuzz import hostile as H
    [report], folder, content = _carve_run(tmp_path, H.deep_paths())
    deep, plain = report["files"]
    assert deep["written"] and deep["complete"] and plain["written"] and plain["complete"]
    assert (folder / "t" / "plain.bin").read_bytes() == content[len(content) // 2:]


def test_carve_folder_symlink_through_analyze(tmp_path):
    """DIR/<info_hash> -> elsewhere: every file and carve.json were written through the link."""
    def setup(carve, ih, outside):
        carve.mkdir()
        os.symlink(outside, carve / ih)
    [report], _, _ = _carve_run(tmp_path, [["dir", "f.bin"], ["g.bin"]], setup)
    assert "symbolic link" in report["error"] and report["files"] == []


def test_carve_inner_symlink_through_analyze(tmp_path):
    """A link inside the carve folder raised out of the run; now that file is reported."""
    def setup(carve, ih, outside):
        (carve / ih / "t").mkdir(parents=True)
        os.symlink(outside, carve / ih / "t" / "dir")
    [report], folder, _ = _carve_run(tmp_path, [["dir", "f.bin"], ["g.bin"]], setup)
    f, g = report["files"]
    assert not f["written"] and "symbolic link" in f["error"] and g["written"]
    assert json.loads((folder / "carve.json").read_text())["files_not_written"] == 1
