"""SHA-256 of an input as stored, from the very bytes the reader reads (the file is read once).

The reader hands every region it has just read to ``FileHasher.submit``; a
worker thread hashes the regions in order while the analysis works on them
(hashlib gives up the interpreter lock while it hashes, and the engine's hot
loop gives it up now and then, so the two use both cores).  Before the reader
reuses a buffer it waits for the hashing of that buffer (``wait``).  For a
compressed file the compressed bytes are hashed as they are read
(``update``), in the reading thread: they are few next to the decompressed
ones.  If reading stops before the end (damage), ``finish`` hashes the rest
of the file from where reading stopped, so the digest is always that of the
whole file.
"""
from __future__ import annotations

import hashlib
from concurrent.futures import Future, ThreadPoolExecutor

READ_REST = 8 << 20
MAPPED_CHUNK = 16 << 20          # bytes of a mapped file hashed per task


class FileHasher:
    _pool: ThreadPoolExecutor | None = None

    def __init__(self):
        self.h = hashlib.sha256()
        self.pending: dict = {}        # buffer id -> [futures]
        self.hashed = 0                # bytes handed over so far

    @classmethod
    def pool(cls) -> ThreadPoolExecutor:
        if cls._pool is None:
            cls._pool = ThreadPoolExecutor(1, thread_name_prefix="bt-analyzer-sha256")
        return cls._pool

    def submit(self, view, owner) -> None:
        """Hash ``view`` (a region of buffer ``owner`` just read) on the worker thread."""
        self.hashed += len(view)
        self.pending.setdefault(id(owner), []).append(self.pool().submit(self.h.update, view))

    def submit_mapped(self, data, mm, start: int) -> None:
        """Hash ``data[start:]`` (a file mapped into memory) on the worker thread, in chunks, giving
        each chunk's pages back once hashed (the scan maps them again if it still needs them)."""
        import mmap as _mmap

        def chunk(a: int, b: int) -> None:
            self.h.update(data[a:b])
            try:
                lo = a & ~(_mmap.PAGESIZE - 1)
                mm.madvise(_mmap.MADV_DONTNEED, lo, (b - lo) & ~(_mmap.PAGESIZE - 1))
            except (ValueError, OSError):
                pass
        for a in range(start, len(data), MAPPED_CHUNK):
            b = min(a + MAPPED_CHUNK, len(data))
            self.hashed += b - a
            self.pending.setdefault("mapped", []).append(self.pool().submit(chunk, a, b))

    def update(self, data) -> None:
        """Hash ``data`` now, in this thread (after everything submitted before)."""
        self.wait()
        self.hashed += len(data)
        self.h.update(data)

    def wait(self, owner=None) -> None:
        """Wait until the regions of buffer ``owner`` (every buffer: None) are hashed."""
        keys = [id(owner)] if owner is not None else list(self.pending)
        for k in keys:
            for f in self.pending.pop(k, ()):
                f.result()

    def finish(self, raw) -> str:
        """The hex digest, after hashing whatever of the file ``raw`` was not read."""
        self.wait()
        try:
            raw.seek(self.hashed)
            while chunk := raw.read(READ_REST):
                self.h.update(chunk)
                self.hashed += len(chunk)
        except (OSError, ValueError):
            pass
        return self.h.hexdigest()


class HashingRaw:
    """A raw file whose reads are hashed as they happen (compressed inputs)."""

    def __init__(self, raw, hasher: FileHasher):
        self.raw, self.hasher = raw, hasher

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.hasher.update(data)
        return data

    def __getattr__(self, name):
        return getattr(self.raw, name)


def done(digest: str | None) -> Future:
    f: Future = Future()
    f.set_result(digest)
    return f
