"""Writing output files without following links and without leaving half-written files.

Theory of operation
-------------------
A ``SafeDir`` holds an open descriptor of a directory.  Every name below it
is reached relative to that descriptor (``openat``-style ``dir_fd`` calls),
one component at a time, each opened with ``O_DIRECTORY | O_NOFOLLOW``: a
symbolic link planted anywhere below the folder the user gave (an output
name, the ``<info_hash>`` folder of ``--carve``, a directory inside it)
makes that one operation fail with ``OutputError``; nothing is ever written
through it.  Path length is no limit either: each call names one component.

The folder the user gave is opened as given (its own path may contain links
the user chose, such as ``/tmp`` on some systems), unless ``follow=False``.

A file is written as a new file: ``create()`` opens a temporary name with
``O_CREAT | O_EXCL | O_NOFOLLOW`` in the same directory; on success the data
is flushed, ``fsync``-ed and the temporary name is renamed over the final
name (``rename`` replaces a link *itself*, never its target), or, with
``exclusive=True``, linked to it only if the name is free.  On any error
(including ``ENOSPC``) the temporary file is removed and one ``OutputError``
names the file and the reason: no half-written file is left behind, and a
previous complete file of that name is untouched.

Names given to ``SafeDir`` methods are single components or ``/``-separated
relative paths; empty, ``.`` and ``..`` components and NUL bytes are refused.
"""
from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NOFOLLOW = os.O_NOFOLLOW
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

_SYNC_FILE_RANGE_WRITE = 2


def _sync_file_range():
    """libc's ``sync_file_range`` (Linux), or None.  Looked up on first use: importing ctypes costs
    every run's start-up 5-45 ms, and only the map stage of a staged run needs it."""
    import sys
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range      # this process's own libc
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    fn.restype = ctypes.c_int
    return fn


_sync_range: object = False        # not looked up yet


def start_writeback(fd: int) -> None:
    """Start writing a file's dirty pages to disk without waiting (Linux ``sync_file_range``), so
    that a later ``fsync`` has little left to wait for.  Only a hint: nowhere else, or when it
    fails, nothing is done (the ``fsync`` does it all)."""
    global _sync_range
    if _sync_range is False:
        _sync_range = _sync_file_range()
    if _sync_range is not None:
        _sync_range(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)


class OutputError(OSError):
    """An output could not be written; ``str()`` is one line naming the path and the reason."""

    def __init__(self, path: str, reason: str, err: int = 0):
        super().__init__(err, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot write {self.path}: {self.reason}"


def _reason(e: OSError) -> str:
    return e.strerror or str(e)


def _components(name: str | os.PathLike | tuple | list) -> list[str]:
    parts = list(name) if isinstance(name, (tuple, list)) else str(name).split("/")
    for p in parts:
        if p in ("", ".", "..") or "/" in p or "\0" in p:
            raise ValueError(f"not a plain relative name: {name!r}")
    return parts


class SafeDir:
    """An open directory; see the module docstring.  Use as a context manager or ``close()``."""

    def __init__(self, fd: int, path: str):
        self.fd = fd
        self.path = path

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | os.PathLike, *, create: bool = True, follow: bool = True) -> "SafeDir":
        """Open the folder ``path``, creating it (and missing parents) if asked.

        ``follow``: the existing part of ``path`` is resolved as the system
        does (the user's own path); with False every component from the root
        (or the current directory) must be a real directory.  Components this
        call creates are always opened without following links."""
        p = Path(path)
        shown = str(p)
        if follow:
            existing, missing = p, []
            while not existing.exists() and existing != existing.parent:
                missing.insert(0, existing.name)
                existing = existing.parent
            if missing and not create:
                raise OutputError(shown, "no such directory", errno.ENOENT)
            try:
                fd = os.open(existing, _DIR_FLAGS)
            except OSError as e:
                raise OutputError(str(existing), _reason(e), e.errno) from None
            root = cls(fd, str(existing))
            if not missing:
                return root
            with root:
                sub = root.subdir(missing, create=True)
            sub.path = shown
            return sub
        start = "/" if p.is_absolute() else "."
        parts = [c for c in p.parts if c != "/"]
        try:
            fd = os.open(start, _DIR_FLAGS)
        except OSError as e:
            raise OutputError(start, _reason(e), e.errno) from None
        with cls(fd, start) as root:
            if not parts:
                return cls(os.dup(fd), shown)
            if ".." in parts:
                raise OutputError(shown, "'..' in a path opened without following links", errno.EINVAL)
            sub = root.subdir(parts, create=create)
        sub.path = shown
        return sub

    def subdir(self, name, *, create: bool = True) -> "SafeDir":
        """The directory ``name`` (one or more components) below this one, created
        if missing (and ``create``); a link or non-directory on the way is an
        ``OutputError``."""
        parts = _components(name)
        fd = self.fd
        shown = self.path
        try:
            for part in parts:
                shown = os.path.join(shown, part)
                new = self._open_dir(fd, part, shown, create)
                if fd != self.fd:
                    os.close(fd)
                fd = new
        except BaseException:
            if fd != self.fd:
                os.close(fd)
            raise
        return SafeDir(fd if fd != self.fd else os.dup(fd), shown)

    @staticmethod
    def _open_dir(parent: int, part: str, shown: str, create: bool) -> int:
        for _ in range(3):              # mkdir and open race with other processes
            try:
                return os.open(part, _DIR_FLAGS | _NOFOLLOW, dir_fd=parent)
            except FileNotFoundError:
                if not create:
                    raise OutputError(shown, "no such directory", errno.ENOENT) from None
                try:
                    os.mkdir(part, 0o755, dir_fd=parent)
                except FileExistsError:
                    pass
                except OSError as e:
                    raise OutputError(shown, _reason(e), e.errno) from None
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise OutputError(shown, _what_is(parent, part) + ": refusing to write through it",
                                      e.errno) from None
                raise OutputError(shown, _reason(e), e.errno) from None
        raise OutputError(shown, "directory keeps disappearing", errno.ENOENT)

    # ------------------------------------------------------------------ queries
    def lstat(self, name) -> os.stat_result | None:
        """``lstat`` of a name directly in this directory, None if absent."""
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def exists(self, name) -> bool:
        return self.lstat(name) is not None

    def unlink(self, name) -> None:
        os.unlink(name, dir_fd=self.fd)

    # ------------------------------------------------------------------ writing
    def create(self, name: str, *, exclusive: bool = False, mode: int = 0o644, fsync: bool = True) -> "NewFile":
        """A new file to be named ``name`` (a single component) when the ``with`` block
        ends without error: ``with d.create("x.json") as f: f.write(...)``."""
        _components(name)
        if "/" in name:
            raise ValueError(f"create() takes one name, not a path: {name!r}")
        return NewFile(self, name, exclusive, mode, fsync)

    def write_bytes(self, name: str, data: bytes, **kw) -> None:
        with self.create(name, **kw) as f:
            f.write(data)

    def write_text(self, name: str, text: str, **kw) -> None:
        self.write_bytes(name, text.encode("utf-8"), **kw)

    def scratch(self):
        """An anonymous read-write file in this directory (unlinked at once: nothing is
        left behind even if the process dies); a binary file object."""
        for _ in range(10):
            tmp = f".scratch-{secrets.token_hex(8)}"
            try:
                fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW | os.O_CLOEXEC, 0o600,
                             dir_fd=self.fd)
            except FileExistsError:
                continue
            except OSError as e:
                raise OutputError(os.path.join(self.path, tmp), _reason(e), e.errno) from None
            os.unlink(tmp, dir_fd=self.fd)
            return os.fdopen(fd, "w+b")
        raise OutputError(self.path, "no free scratch name", errno.EEXIST)

    def sync(self) -> None:
        """fsync the directory itself (makes renames durable)."""
        try:
            os.fsync(self.fd)
        except OSError as e:
            raise OutputError(self.path, _reason(e), e.errno) from None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "SafeDir":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        self.close()


class NewFile:
    """Context manager of ``SafeDir.create``: a binary file object on a temporary name."""

    def __init__(self, d: SafeDir, name: str, exclusive: bool, mode: int, fsync: bool):
        self.d, self.name, self.exclusive, self.mode, self.fsync = d, name, exclusive, mode, fsync
        self.tmp = None
        self.file = None

    @property
    def path(self) -> str:
        return os.path.join(self.d.path, self.name)

    def __enter__(self):
        if self.exclusive and self.d.exists(self.name):
            raise OutputError(self.path, "already exists", errno.EEXIST)
        for _ in range(10):
            tmp = f".{self.name[:200]}.{secrets.token_hex(6)}.tmp"
            try:
                fd = os.open(tmp, _NEW_FILE, self.mode, dir_fd=self.d.fd)
            except FileExistsError:
                continue
            except OSError as e:
                raise OutputError(self.path, _reason(e), e.errno) from None
            self.tmp = tmp
            self.file = os.fdopen(fd, "wb")
            return self.file
        raise OutputError(self.path, "no free temporary name", errno.EEXIST)

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            try:
                self.file.flush()
                if self.fsync:
                    os.fsync(self.file.fileno())
                self.file.close()
                self._publish()
            except OSError as e:
                self._discard()
                if isinstance(e, OutputError):
                    raise
                raise OutputError(self.path, _reason(e), e.errno) from None
            return False
        self._discard()
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise OutputError(self.path, _reason(exc), exc.errno) from None
        return False

    def _publish(self) -> None:
        fd = self.d.fd
        if not self.exclusive:
            os.rename(self.tmp, self.name, src_dir_fd=fd, dst_dir_fd=fd)
            self.tmp = None
            return
        try:
            os.link(self.tmp, self.name, src_dir_fd=fd, dst_dir_fd=fd, follow_symlinks=False)
        except FileExistsError:
            raise OutputError(self.path, "already exists", errno.EEXIST) from None
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            # a file system without hard links: check, then rename (not atomic)
            if self.d.exists(self.name):
                raise OutputError(self.path, "already exists", errno.EEXIST) from None
            os.rename(self.tmp, self.name, src_dir_fd=fd, dst_dir_fd=fd)
            self.tmp = None
            return
        os.unlink(self.tmp, dir_fd=fd)
        self.tmp = None

    def _discard(self) -> None:
        if self.file is not None and not self.file.closed:
            try:
                self.file.close()
            except OSError:
                pass            # ENOSPC again on the final flush: the file goes anyway
        if self.tmp is not None:
            try:
                os.unlink(self.tmp, dir_fd=self.d.fd)
            except OSError:
                pass
            self.tmp = None


def _what_is(parent: int, part: str) -> str:
    try:
        st = os.stat(part, dir_fd=parent, follow_symlinks=False)
    except OSError:
        return "not a directory"
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link"
    return "not a directory"
