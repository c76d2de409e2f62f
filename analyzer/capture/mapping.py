"""A large uncompressed capture mapped into memory, shared by the scan and the hash.

Theory of operation
-------------------
The reader scans the mapped file in place (no copy into buffers) and the
hasher (``capture.hashing``) computes the file's SHA-256 from the same pages
on its own thread.  Three things keep that fast and bounded:

* A *pager* thread (``_scan.run_pager``, compiled, without the interpreter
  lock from start to end) faults the pages in ``AHEAD`` bytes ahead of the
  furthest reader, so neither the scan nor the hash stops for page faults.
  (The scan brings the record headers into the cache itself: a header is a
  cache miss that must be served before the next one's place is known, so it
  streams the lines just ahead of it, ``_scan._prefetch``, or walks its
  window's headers first, 16 chains at once, ``_scan._walk_headers``.)
* Pages both readers have passed by ``KEEP_BEHIND`` are *given back*
  (``MADV_DONTNEED``) every ``DROP`` bytes: the file's pages in this process
  stay within ``KEEP_BEHIND + DROP + MAX_LAG + AHEAD`` bytes whatever its
  size.  ``KEEP_BEHIND``: TCP streams leave delivered bytes in the mapping
  and may copy them out up to ``PEND_REACH`` (``flows._tcp``) behind the
  frame in hand; a page they read after it was given back would stay.  So
  do piece blocks (``flows._inplace``): those waiting in a piece are copied
  8 MiB behind the newest, the SHA-1 worker reads the others within 16 MiB
  of bytes in flight (``evidence._sha1``).
* A page read after it was given back (a stream or piece block that went
  quiet copying its bytes late) comes back, and would stay: the streams
  copy ahead of that (``flows._tcp``, ``flows._inplace``, swept by the
  engine at each batch), and, for whatever still reads behind, each step of
  the give-back also gives back again, at every multiple of a period, the
  window behind it (``redrop``: 512 MiB every 64 MiB, 4 GiB every 512 MiB,
  and so on by eights: about 40 page-table walks of the file in all, a few
  milliseconds a GB), so that such pages stay at most a period.
* Neither reader runs more than ``MAX_LAG`` bytes ahead of the other: the one
  ahead waits (``scan_to``, ``hash_chunk``).  The slower of the two sets the
  pace either way, so waiting costs no time, and no page is given back
  before both have read it (nothing is faulted twice).  The two never wait
  for each other at once: the one behind is never more than ``MAX_LAG``
  behind.  When the scan ends early (damage, an abandoned reader) or the
  hash fails, the other is released (``scan_done``, ``close``, ``hash_failed``);
  a hash that makes no progress for ``STALL_S`` seconds stops holding the
  scan back (the pages are then given back behind the scan alone: a safety
  net, the result is the same).
"""
from __future__ import annotations

import mmap
import threading

import numpy as np

from analyzer.capture import _scan

AHEAD = 16 << 20        # pages faulted in ahead of the furthest reader
DROP = 8 << 20          # pages given back in steps of this many bytes
KEEP_BEHIND = 16 << 20  # ... this far behind both readers (flows._tcp reads up to PEND_REACH back)
MAX_LAG = 24 << 20      # how far one reader may run ahead of the other
STALL_S = 5.0           # a hash without progress this long no longer holds the scan back
PAGE = mmap.PAGESIZE
REDROP = tuple((8 ** k * (8 << 20), 8 ** (k + 1) * (8 << 20)) for k in range(1, 7))   # (period, window)


def redrop(mm: mmap.mmap, old: int, new: int) -> None:
    """The give-back moved from ``old`` to ``new`` (page-aligned): give back again the window behind
    ``new`` of each period whose multiple it passed (pages read since they were given back)."""
    for period, window in REDROP:
        if new // period == old // period:
            break                    # (a longer period's multiple is passed only with a shorter one's)
        a = max(0, new - window)
        try:
            mm.madvise(mmap.MADV_DONTNEED, a, new - a)
        except (OSError, ValueError):
            return


class MappedFile:
    def __init__(self, fileno: int, hashed_to: int | None, start: int = 0):
        """``hashed_to``: bytes of the file hashed already (the hasher goes on from there), or None
        without a hash.  ``start``: where the scan begins (a reader of a byte range, without a
        hash): nothing before it is faulted in."""
        self.mm = mmap.mmap(fileno, 0, access=mmap.ACCESS_READ)
        try:
            self.mm.madvise(mmap.MADV_SEQUENTIAL)
        except (OSError, ValueError, AttributeError):
            pass
        self.data = np.frombuffer(self.mm, np.uint8)
        self.size = len(self.data)
        self.scanned = start
        self.hashed = self.size if hashed_to is None else min(hashed_to, self.size)
        self.given_back = start & ~(PAGE - 1)
        self.closed = False
        self.unthrottled = False
        self._cv = threading.Condition()
        self._state = np.zeros(3, np.int64)         # the pager's [lead, stop, done]
        self._state[_scan.PAGER_LEAD] = self._state[_scan.PAGER_DONE] = self.given_back
        args = (self.data, self._state, AHEAD, PAGE)
        self._pager = threading.Thread(target=_scan.run_pager, args=args, name="bt-analyzer-pager", daemon=True)
        self._pager.start()

    # ------------------------------------------------------------------ the scan (reader thread)
    def scan_to(self, pos: int) -> None:
        """The scan reached ``pos``: wait while it is too far ahead of the hash, give back pages."""
        with self._cv:
            self.scanned = pos
            self._lead()
            self._cv.notify_all()
            stuck = 0
            while self.scanned - self.hashed > MAX_LAG and not self.closed and not self.unthrottled:
                before = self.hashed
                self._cv.wait(STALL_S / 10)
                stuck = stuck + 1 if self.hashed == before else 0
                if stuck >= 10:          # the hash made no progress for STALL_S: never wait for it again
                    self.unthrottled = True
            self._give_back()

    def scan_done(self) -> None:
        """The scan is over (end of file, or stopped early): the hash is never held back again."""
        with self._cv:
            self.scanned = self.size
            self._lead()
            self._cv.notify_all()
            self._give_back()

    # ------------------------------------------------------------------ the hash (hash thread)
    def hash_chunk(self, h, a: int, b: int) -> None:
        """Hash ``data[a:b]`` into ``h`` (after everything before it), giving back pages."""
        try:
            with self._cv:
                while a - self.scanned > MAX_LAG and not self.closed:
                    self._cv.wait()
            h.update(self.data[a:b])
        finally:
            with self._cv:
                self.hashed = max(self.hashed, b)
                self._lead()
                self._cv.notify_all()
                self._give_back()

    def hash_failed(self) -> None:
        with self._cv:
            self.hashed = self.size
            self._cv.notify_all()

    # ------------------------------------------------------------------ shared
    def _lead(self) -> None:
        self._state[_scan.PAGER_LEAD] = max(self.scanned, self.hashed if self.hashed < self.size else 0)

    def _give_back(self) -> None:
        done = min(self.scanned, self.hashed)
        if self.unthrottled:
            done = max(done, self.scanned - MAX_LAG)
        if self.scanned < self.size:
            done -= KEEP_BEHIND         # TCP streams may still read bytes they left in place there
        done &= ~(PAGE - 1)
        if done - self.given_back >= DROP or (done >= self.size & ~(PAGE - 1) and done > self.given_back):
            try:
                self.mm.madvise(mmap.MADV_DONTNEED, self.given_back, done - self.given_back)
            except (OSError, ValueError):
                pass
            redrop(self.mm, self.given_back, done)
            self.given_back = done

    def close(self) -> None:
        """Stop the pager and release both readers.  The mapping itself goes when the last view of
        it does (a batch or a pending hash may still hold one)."""
        with self._cv:
            self.closed = True
            self._state[_scan.PAGER_STOP] = 1
            self._cv.notify_all()
        self._pager.join()
