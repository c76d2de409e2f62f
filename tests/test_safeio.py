"""Safe output writing (analyzer.safeio): never through a link, never half-written."""
from __future__ import annotations

import errno
import os

import pytest

from analyzer import safeio
from analyzer.safeio import OutputError, SafeDir
from smalldisk import run_on_small_tmpfs


def listing(path) -> list[str]:
    return sorted(os.listdir(path))


def test_write_is_whole_and_leaves_no_temporary(tmp_path):
    with SafeDir.open(tmp_path / "out") as d:
        d.write_bytes("a.json", b"{}\n")
        d.write_text("b.txt", "\u00e9")
    assert listing(tmp_path / "out") == ["a.json", "b.txt"]
    assert (tmp_path / "out" / "a.json").read_bytes() == b"{}\n"
    assert (tmp_path / "out" / "b.txt").read_text("utf-8") == "\u00e9"


def test_replacing_an_existing_file(tmp_path):
    (tmp_path / "a").write_text("old")
    with SafeDir.open(tmp_path) as d:
        d.write_text("a", "new")
    assert (tmp_path / "a").read_text() == "new"


def test_output_name_that_is_a_symlink_is_replaced_not_followed(tmp_path):
    """DIR/summary.json -> /elsewhere/victim: the link is replaced by the new file, the victim untouched."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(victim, out / "summary.json")
    with SafeDir.open(out) as d:
        d.write_text("summary.json", "{}")
    assert victim.read_text() == "precious"
    assert not (out / "summary.json").is_symlink() and (out / "summary.json").read_text() == "{}"


def test_exclusive_refuses_an_existing_name_even_a_link(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    os.symlink(victim, tmp_path / "x")
    (tmp_path / "y").write_text("first")
    with SafeDir.open(tmp_path) as d:
        for name in ("x", "y"):
            with pytest.raises(OutputError, match="already exists"):
                d.write_text(name, "second", exclusive=True)
        d.write_text("z", "new", exclusive=True)
    assert victim.read_text() == "precious" and (tmp_path / "y").read_text() == "first"
    assert listing(tmp_path) == ["victim", "x", "y", "z"]


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_symlinked_directory_component_is_refused(tmp_path, where):
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    parts = ["a", "b", "c"]
    k = parts.index({"first": "a", "middle": "b", "last": "c"}[where])
    real = out.joinpath(*parts[:k])
    real.mkdir(parents=True)
    os.symlink(outside, real / parts[k])
    with SafeDir.open(out) as d:
        with pytest.raises(OutputError, match="symbolic link") as e:
            with d.subdir(parts) as sub:
                sub.write_text("f", "x")
    assert e.value.errno in (errno.ELOOP, errno.ENOTDIR)
    assert str(out.joinpath(*parts[:k + 1])) in str(e.value)
    assert listing(outside) == []


def test_file_where_a_directory_is_needed(tmp_path):
    (tmp_path / "a").write_text("a file")
    with SafeDir.open(tmp_path) as d:
        with pytest.raises(OutputError, match="not a directory"):
            d.subdir("a/b")


def test_given_folder_may_have_links_in_its_own_path_unless_told_not_to(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "link")
    with SafeDir.open(tmp_path / "link" / "new" / "deeper") as d:
        d.write_text("f", "x")
    assert (real / "new" / "deeper" / "f").read_text() == "x"
    with pytest.raises(OutputError, match="symbolic link"):
        SafeDir.open(tmp_path / "link" / "other", follow=False)
    assert not (real / "other").exists()
    with SafeDir.open(tmp_path / "real" / "plain", follow=False) as d:
        d.write_text("g", "y")
    assert (real / "plain" / "g").read_text() == "y"


def test_dangling_link_as_the_given_folder_is_not_created_through(tmp_path):
    os.symlink(tmp_path / "elsewhere", tmp_path / "out")
    with pytest.raises(OutputError, match="symbolic link"):
        SafeDir.open(tmp_path / "out")
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("name", ["", ".", "..", "a/../b", "a//b", "x\0y"])
def test_names_that_are_not_plain_are_refused(tmp_path, name):
    with SafeDir.open(tmp_path) as d:
        with pytest.raises(ValueError):
            d.subdir(name)
        with pytest.raises(ValueError):
            d.write_text(name, "x")


def test_deep_paths_beyond_path_max(tmp_path):
    """30 levels of 200-character names (6,000+ characters, more than PATH_MAX): one component per call."""
    parts = [("d%02d" % i).ljust(200, "x") for i in range(30)]
    with SafeDir.open(tmp_path) as d, d.subdir(parts) as deep:
        deep.write_bytes("f.bin", b"deep")
        assert deep.path.endswith(parts[-1]) and len(deep.path) > 6000
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        for p in parts:
            nfd = os.open(p, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        assert os.stat("f.bin", dir_fd=fd).st_size == 4
    finally:
        os.close(fd)


def test_error_inside_the_block_leaves_nothing(tmp_path):
    (tmp_path / "keep").write_text("previous")
    with SafeDir.open(tmp_path) as d:
        with pytest.raises(RuntimeError):
            with d.create("keep") as f:
                f.write(b"half")
                raise RuntimeError("boom")
        with pytest.raises(OutputError, match="No space left") as e:
            with d.create("new") as f:
                f.write(b"half")
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert e.value.errno == errno.ENOSPC and str(tmp_path / "new") in str(e.value)
    assert listing(tmp_path) == ["keep"] and (tmp_path / "keep").read_text() == "previous"


def test_failing_fsync_leaves_nothing(tmp_path, monkeypatch):
    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    with SafeDir.open(tmp_path) as d:
        monkeypatch.setattr(safeio.os, "fsync", no_space)
        with pytest.raises(OutputError, match="No space left"):
            d.write_bytes("f", b"x" * 100)
    assert listing(tmp_path) == []


def test_scratch_file_leaves_nothing(tmp_path):
    with SafeDir.open(tmp_path) as d:
        with d.scratch() as s:
            s.truncate(1 << 30)
            s.seek(5)
            s.write(b"abc")
            s.seek(0)
            assert s.read(8) == b"\0" * 5 + b"abc"
            assert listing(tmp_path) == []


def test_full_disk_real_tmpfs():
    """A real full disk (a 128 KiB tmpfs): the big file fails with one ENOSPC error, nothing
    half-written is left, the small files before and after are whole, an older file of the same
    name is untouched."""
    r = run_on_small_tmpfs("""
        from analyzer.safeio import OutputError, SafeDir
        with SafeDir.open(mnt + "/out") as d:
            d.write_bytes("small-1", b"a" * 1000)
            d.write_bytes("big", b"old")
            try:
                d.write_bytes("big", os.urandom(1 << 20))
            except OutputError as e:
                result["error"] = str(e)
                result["errno"] = e.errno
            d.write_bytes("small-2", b"b" * 1000)
        result["files"] = sorted(os.listdir(mnt + "/out"))
        result["big"] = open(mnt + "/out/big", "rb").read().decode()
        result["sizes"] = [os.path.getsize(mnt + "/out/" + n) for n in result["files"]]
    """)
    assert r["errno"] == errno.ENOSPC and r["error"].endswith("/out/big: No space left on device")
    assert r["error"].startswith("cannot write ") and "\n" not in r["error"]
    assert r["files"] == ["big", "small-1", "small-2"] and r["sizes"] == [3, 1000, 1000] and r["big"] == "old"


def test_start_writeback_is_linux_sync_file_range_and_only_a_hint(tmp_path):
    """The map stage starts its spill files' write-back early (``spill._ShardFiles``): on Linux
    that is ``sync_file_range``, found when first needed (not at import: ctypes costs every run's
    start-up); a descriptor it cannot use is no error (the fsync that follows does the work)."""
    import sys
    from analyzer import safeio
    from analyzer.safeio import start_writeback
    p = tmp_path / "f"
    with open(p, "wb") as f:
        f.write(b"x" * (1 << 20))
        f.flush()
        start_writeback(f.fileno())
        os.fsync(f.fileno())
    assert p.read_bytes() == b"x" * (1 << 20)
    if sys.platform == "linux":
        assert safeio._sync_range not in (None, False)       # looked up on first use, and found
    fd = os.open(tmp_path, os.O_RDONLY)      # a directory: sync_file_range refuses it
    try:
        start_writeback(fd)
    finally:
        os.close(fd)
    start_writeback(1 << 20)                 # no such descriptor
