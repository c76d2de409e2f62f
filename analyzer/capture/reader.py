"""One capture file -> batches of frames (pcap, pcapng; gzip/bzip2/xz compressed).

Theory of operation
-------------------
The file is read with ``readinto`` into two reusable buffers used in turn
(32 MiB each, or the file's size when an uncompressed file is smaller: a
capture split per connection is hundreds of small files; the first 64 KiB are
scanned before the buffers grow, so peeking at the first timestamp reads no
more; buffers are never zero-filled).  The compiled scanners (``_scan.pyx``)
fill fixed-size arrays with the offset, lengths, timestamp and interface of
each record, and each full or final set of arrays is yielded as a ``Batch``
that the consumer must use before asking for the next one.  A record cut by
the end of a buffer is moved to the front of the other and completed by the
next read, so memory is bounded by the buffers whatever the file size.  Given
a ``FileHasher``, the reader hands every region it reads to it (the file's
SHA-256 from the same bytes: read once); the other buffer is what lets the
hashing of one run while the next is read.

pcapng blocks other than packets are parsed here in Python: section headers
(byte order per section), interface descriptions (link type, snap length,
``if_tsresol``, ``if_tsoffset``); every other block type is skipped and
counted.  Interface tables are arrays grown by doubling (linear in the number
of interface blocks) and capped at ``MAX_INTERFACES`` per section.  An
interface whose description is short or whose timestamp resolution or offset
is out of range is *damaged*: one error line, and its frames keep their place
but get a link type (``LT_DAMAGED_INTERFACE``) the engine counts as
undecodable; frames of interfaces beyond the cap likewise
(``LT_INTERFACE_OVER_LIMIT``).

Odd timestamps (a fraction-of-second field of a second or more, times
outside 1970..2100) are kept as computed and counted per file
(``timestamp_anomalies``, one summary line each with the first offset).
Error lines are bounded: the first ``MAX_ERROR_LINES`` are kept, the rest
counted (``errors_not_listed``).

A classic pcap file can also be read by *byte range* (``byte_range``: the
staged pipeline's map tasks of one large file, ``pipeline.ranges``): the
reader takes the records that *begin* in [start, end), the first being the
first plausible chain of record headers at or after ``start`` (the file's
first record for the range at its start), and says where the record after
its last one begins (``range_exit``).  Ranges of one file partition its
records exactly as one pass does when each range begins where the one
before it ended (the caller checks that seam, and damage in any but the
last range sends it back to one pass: resynchronising inside a range could
differ from one pass).  The damage search's time reference is the last
record read before the damage (not the first of the batch in hand), so the
last range decides a damaged or truncated end exactly as one pass does.

Damage never raises out of ``batches()``: a record or block whose length
cannot be trusted is reported (file, offset, reason) and the reader searches
forward for the next plausible record, counting the skipped bytes; a
truncated last record and a broken compressed stream end the file with a
report.  Only a file that cannot be opened or is not a capture at all raises
``CaptureError`` (from the constructor).
"""
from __future__ import annotations

import mmap
import os
import stat
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analyzer.capture import _scan
from analyzer.capture.hashing import FileHasher, HashingRaw
from analyzer.capture.mapping import MappedFile
from analyzer.decode.linktypes import linktype_name

BUFFER_SIZE = 32 << 20
MAP_AT = 2 * BUFFER_SIZE        # uncompressed files this large are mapped into memory, not read into buffers
MAPPED_WINDOW = 4 << 20         # bytes of a mapped file scanned per batch (at most)
FIRST_READ = 1 << 16
BATCH_RECORDS = 1 << 15
WALK_MIN_MEAN = 512         # mean record bytes of a batch from which the next scan walks its window's headers first
MAX_PCAPNG_BLOCK = 16 << 20
DEFAULT_MAX_CAPLEN = 262144
MAX_INTERFACES = 65535       # per pcapng section; ids 0..65534 (the engine's interface index is 16-bit)
MAX_ERROR_LINES = 100        # error lines kept per file; the rest are counted
MAX_TSOFFSET_S = 1 << 33     # |if_tsoffset| beyond ~272 years is damage
LT_DAMAGED_INTERFACE = -1    # link types the engine counts as undecodable (reasons named in _engine.pyx)
LT_INTERFACE_OVER_LIMIT = -2
ODD_NAMES = ("fraction_of_second_out_of_range", "after_2100", "before_1970")

PCAPNG_BLOCK_NAMES = {
    0x0A0D0D0A: "section_header", 1: "interface_description", 2: "packet", 3: "simple_packet",
    4: "name_resolution", 5: "interface_statistics", 6: "enhanced_packet",
    9: "systemd_journal_export", 0x0A: "decryption_secrets", 0xBAD: "custom", 0x40000BAD: "custom",
}
PCAP_MAGICS = {  # first 4 bytes -> (big-endian file, nanosecond resolution)
    b"\xd4\xc3\xb2\xa1": (False, False), b"\xa1\xb2\xc3\xd4": (True, False),
    b"\x4d\x3c\xb2\xa1": (False, True), b"\xa1\xb2\x3c\x4d": (True, True),
}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"


class CaptureError(Exception):
    """The file cannot be read as a capture at all."""


class RangeError(CaptureError):
    """A byte range of the file cannot be read on its own (the caller reads the file in one pass)."""


RANGE_CHAIN = 8              # plausible record headers in a row that begin a byte range
ST_RANGE_END = -1            # (batches(), a byte range) the next record begins past the range


@dataclass
class Batch:
    buf: bytearray
    rec_off: np.ndarray
    caplen: np.ndarray
    origlen: np.ndarray
    ts_ns: np.ndarray
    iface: np.ndarray
    if_linktype: np.ndarray
    n: int
    first_frame_no: int  # frame number (1-based, as in Wireshark) of record 0
    base: int = 0        # stream offset of buf[0] (a file offset for an uncompressed file)
    stable: bool = False  # buf is a mapped file: its bytes stay as they are while it is referenced


@dataclass
class FileReport:
    """What reading one file found; ends up in summary.json ``inputs``."""

    path: str
    size_bytes: int = 0
    format: str = ""
    compression: str = "none"
    frames: int = 0
    link_types: set = field(default_factory=set)
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None
    errors: list = field(default_factory=list)
    damaged_bytes: int = 0
    truncated_bytes: int = 0
    skipped_blocks: dict = field(default_factory=dict)
    readable: bool = True
    sha256: str | None = None          # of the file as stored (compressed bytes for a compressed file)
    internal_error: str | None = None   # an unexpected failure while analysing the file (a bug; traceback logged)
    errors_not_listed: int = 0          # error lines beyond MAX_ERROR_LINES
    timestamp_anomalies: dict = field(default_factory=dict)   # ODD_NAMES -> records
    damaged_interfaces: int = 0         # pcapng interfaces whose frames cannot be decoded
    interfaces_over_limit: int = 0      # pcapng interfaces described beyond MAX_INTERFACES

    def error(self, offset: int | None, message: str) -> None:
        if len(self.errors) >= MAX_ERROR_LINES:
            self.errors_not_listed += 1
            return
        where = f"offset {offset}: " if offset is not None else ""
        self.errors.append(f"{where}{message}")

    def close_errors(self) -> None:
        """After the last error: say how many were not listed (one line)."""
        if self.errors_not_listed and not self.errors[-1].startswith("... and "):
            self.errors.append(f"... and {self.errors_not_listed} more error(s) not listed "
                               f"(the first {MAX_ERROR_LINES} are)")


class _Decompressed:
    """``readinto`` over a gzip/bzip2/xz file that hands out every byte
    decompressed before the point of damage (the standard library's file
    objects drop the partial output of a failing read), then raises.

    Concatenated members/streams are followed; zero padding after the last
    one is ignored, as gzip itself does.
    """

    RAW_CHUNK = 1 << 14         # what a damaged chunk can cost: its own output
    MAX_OUT = 1 << 20
    def __init__(self, raw, kind: str):
        import bz2               # imported only for compressed inputs (start-up of the others)
        import lzma
        self._bz2, self._lzma = bz2, lzma
        self._ERRORS = (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError)
        self.raw = raw
        self.kind = kind
        self.d = None             # current decompressor (None between members)
        self.carry = b""          # input left over after a member ended
        self.fed = False          # the current member received input
        self.out = memoryview(b"")
        self.error: Exception | None = None
        self.done = False

    def _new(self):
        if self.kind == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        return self._bz2.BZ2Decompressor() if self.kind == "bzip2" else self._lzma.LZMADecompressor()

    def readinto(self, view) -> int:
        """Bytes copied into ``view``; 0 at the end, with ``error`` set if the end is damage."""
        while not len(self.out) and not self.done:
            self._step()
        if not len(self.out):
            return 0
        n = min(len(view), len(self.out))
        view[:n] = self.out[:n]
        self.out = self.out[n:]
        return n

    def _step(self) -> None:
        if self.d is None:
            data = self.carry or self.raw.read(self.RAW_CHUNK)
            self.carry = b""
            if not data.strip(b"\0"):
                if not data or not self.raw.read(1):     # end, or only zero padding left
                    self.done = True
                    return
            self.d, self.fed = self._new(), False
        elif self.kind == "gzip":
            data = self.d.unconsumed_tail or self.raw.read(self.RAW_CHUNK)
        else:
            data = self.raw.read(self.RAW_CHUNK) if self.d.needs_input else b""
        if not data and (self.kind == "gzip" or self.d.needs_input):
            if self.fed and not self.d.eof:
                self.error = EOFError(f"{self.kind} stream ended before its end marker (file truncated)")
            self.done = True
            return
        self.fed = True
        try:
            out = self.d.decompress(data, self.MAX_OUT)
        except self._ERRORS as e:
            self.error = e
            self.done = True
            return
        self.out = memoryview(out)
        if self.d.eof:
            self.carry = self.d.unused_data
            self.d = None

    def close(self) -> None:
        self.raw.close()


def open_regular(path: Path):
    """A binary file object on ``path`` if it is a regular file (links to one are
    followed), else ``CaptureError``.  A FIFO, device or socket is never read:
    opened non-blocking (a FIFO without a writer would block) and checked with
    ``fstat`` on the open descriptor, so nothing can be swapped in between."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise CaptureError(f"{path}: is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise CaptureError(f"{path}: not a regular file ({_file_kind(st.st_mode)}): refused "
                               f"(it could be endless or block)")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def _open_stream(path: Path):
    """The file's byte stream, decompressed when needed, and the compression name."""
    raw = open_regular(path)
    head = raw.read(6)
    raw.seek(0)
    if head[:2] == b"\x1f\x8b":
        return _Decompressed(raw, "gzip"), "gzip", raw
    if head[:3] == b"BZh":
        return _Decompressed(raw, "bzip2"), "bzip2", raw
    if head[:6] == b"\xfd7zXZ\x00":
        return _Decompressed(raw, "xz"), "xz", raw
    return raw, "none", raw


class CaptureReader:
    _want = FIRST_READ      # buffer size to grow to on the next read (set by batches())

    def __init__(self, path: str | Path, report: FileReport | None = None, hasher: FileHasher | None = None,
                 byte_range: tuple[int, int] | None = None):
        """``hasher``: computes the SHA-256 of the file as stored from the bytes read here
        (``sha256`` after the last batch).  ``byte_range``: (start, end): only the records that
        begin in it (an uncompressed classic pcap file, without a hasher; see the module's doc);
        ``batches()`` raises ``RangeError`` when it cannot begin there."""
        self.path = Path(path)
        self._range = byte_range
        self.range_first: int | None = None     # where the range's first record begins
        self.range_exit: int | None = None      # where the record after its last one begins (or the end)
        self._ref_sec = -1                       # seconds of the last record read (the damage search's reference)
        self.report = report or FileReport(str(path))
        self.sha256: str | None = None
        try:
            self._stream, self.report.compression, self._raw = _open_stream(self.path)
            self.report.size_bytes = os.fstat(self._raw.fileno()).st_size
        except FileNotFoundError:
            raise CaptureError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise CaptureError(f"{path}: is a directory") from None
        except OSError as e:
            raise CaptureError(f"{path}: cannot open: {e.strerror or e}") from None
        self._hasher = hasher
        self._hash_views = hasher is not None and self.report.compression == "none"
        if hasher is not None and not self._hash_views:
            self._stream.raw = HashingRaw(self._raw, hasher)     # compressed: hash the bytes as stored
        # A small first buffer: opening a file (e.g. to peek at its first
        # timestamp) reads only its start; batches() grows it to BUFFER_SIZE.
        # Buffers are never zero-filled (np.empty): only bytes read are ever looked at.
        self._buf = np.empty(FIRST_READ, np.uint8)
        self._spare = None        # the other big buffer (reading goes on while the hasher reads one)
        self._fill = 0
        self._pos = 0
        self._base = 0  # stream offset of _buf[0]
        self._eof = False
        self._mm = None           # the file mapped into memory (large uncompressed files, see _map)
        try:
            self._read_more()
            magic = bytes(self._buf[:4])
            if self._fill < 4 and self.report.errors:
                raise CaptureError(f"{path}: cannot read: {self.report.errors[-1]}")
            if magic in PCAP_MAGICS:
                self.report.format = "pcap"
                self._init_pcap(*PCAP_MAGICS[magic])
            elif magic == PCAPNG_MAGIC:
                self.report.format = "pcapng"
                self._init_pcapng()
            else:
                what = "empty file" if self._fill == 0 else f"unknown magic {magic.hex()}"
                raise CaptureError(f"{path}: not a pcap or pcapng capture ({what})")
        except CaptureError:
            self.close()
            raise
        n = BATCH_RECORDS
        self._walk = False
        self._off = np.empty(n, np.int64)
        self._cap = np.empty(n, np.uint32)
        self._orig = np.empty(n, np.uint32)
        self._ts = np.empty(n, np.int64)
        self._if = np.zeros(n, np.uint16)
        self._odd = np.full(_scan.ODD_SLOTS, -1, np.int64)
        self._odd[0::2] = 0
        self._odd_first: list = [None] * 3

    # ------------------------------------------------------------------ buffer management
    def _read_more(self) -> int:
        """Move unread bytes to the front (of the other buffer, once there are two: the hasher may
        still be reading this one) and fill the rest of the buffer."""
        if len(self._buf) < self._want:
            self._grow(self._want)
        elif len(self._buf) < BUFFER_SIZE and self._pos == 0 and self._fill == len(self._buf):
            self._grow(BUFFER_SIZE)         # a record larger than the file said it was (a growing file)
        if self._pos:
            rest = self._fill - self._pos
            target = self._spare if self._spare is not None else self._buf
            if self._hash_views:
                self._hasher.wait(target)
            target[:rest] = self._buf[self._pos:self._fill]
            if target is not self._buf:
                self._spare, self._buf = self._buf, target
            self._base += self._pos
            self._fill = rest
            self._pos = 0
        got_total = 0
        view = memoryview(self._buf)
        while self._fill < len(self._buf) and not self._eof:
            try:
                got = self._stream.readinto(view[self._fill:])
            except (OSError, EOFError, ValueError, zlib.error, *getattr(self._stream, "_ERRORS", ())) as e:
                # Everything read before the damage stays in the buffer and is analysed.
                self._eof = True
                what = f"{self.report.compression} stream" if self.report.compression != "none" else "read"
                self.report.error(self._base + self._fill,
                                  f"{what} failed after {self._base + self._fill} bytes: {e}; "
                                  f"the rest of the file is unreadable")
                break
            if not got:
                self._eof = True
                failure = getattr(self._stream, "error", None)
                if failure is not None:
                    self.report.error(self._base + self._fill,
                                      f"{self.report.compression} stream failed after {self._base + self._fill} "
                                      f"decompressed bytes: {failure}; the rest of the file is unreadable")
                break
            if self._hash_views:
                self._hasher.submit(view[self._fill:self._fill + got], self._buf)
            self._fill += got
            got_total += got
        return got_total

    def _grow(self, size: int) -> None:
        """To two buffers of ``size`` (what was read is copied, not read again)."""
        big = np.empty(size, np.uint8)
        big[:self._fill] = self._buf[:self._fill]
        self._buf, self._spare = big, np.empty(size, np.uint8)

    def _buffer_size(self) -> int:
        """BUFFER_SIZE, or the size of a smaller uncompressed file (it fits whole)."""
        if self.report.compression == "none" and self.report.size_bytes:
            return max(FIRST_READ, min(BUFFER_SIZE, self.report.size_bytes))
        return BUFFER_SIZE

    def _safe_read_more(self) -> bool:
        """Read more (a broken stream ends the file with a report); True if bytes came."""
        return self._read_more() > 0

    def raw_position(self) -> int:
        """Bytes of the file as stored read so far (compressed bytes for a compressed file)."""
        if self._mm is not None:
            return self._base + self._pos
        try:
            return self._raw.tell()
        except (OSError, ValueError):
            return self.report.size_bytes

    def _enter_range(self) -> None:
        """Map the file from the first record of the byte range on (``RangeError`` if none)."""
        start, end = self._range
        if self.report.format != "pcap" or self.report.compression != "none" or self._hasher is not None:
            raise RangeError(f"{self.path}: only an uncompressed classic pcap file, unhashed, is read by byte range")
        if start > self._pos:
            try:
                with mmap.mmap(self._raw.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                    self._pos = self._find_record(mm, start, end)
            except (OSError, ValueError) as e:
                raise RangeError(f"{self.path}: cannot map: {e}") from None
        self.range_first = self._pos
        self._map()
        if self._mm is None:
            raise RangeError(f"{self.path}: cannot map")

    def _find_record(self, data, start: int, end: int) -> int:
        """The first offset in [start, end) where RANGE_CHAIN plausible record headers follow one
        another (or reach the end of the file exactly)."""
        size = len(data)
        e = ">I" if self._swapped else "<I"
        p = start
        while True:
            found, p = _scan.resync_pcap(data, p, size, self._swapped, self._frac_ns, self._max_caplen, -1, True)
            if not found or p >= end:
                raise RangeError(f"{self.path}: no record begins in bytes {start}..{end}")
            q = p
            for _ in range(RANGE_CHAIN):
                if q == size:
                    return p
                ok, at = _scan.resync_pcap(data, q, size, self._swapped, self._frac_ns, self._max_caplen, -1, True)
                if not ok or at != q:
                    break
                q += 16 + struct.unpack_from(e, data, q + 8)[0]
            else:
                return p
            p += 1

    def _cut(self, n: int, status: int) -> tuple[int, int]:
        """(records, status) of a scan within the byte range: those beginning at or past its end
        are left out, and the range ends where the first of them begins."""
        end = self._range[1]
        if n and int(self._off[n - 1]) - 16 >= end:
            n = int(np.searchsorted(self._off[:n], end + 16))
            self._pos = int(self._off[n]) - 16
            return n, ST_RANGE_END
        if self._pos >= end:
            return n, ST_RANGE_END
        return n, status

    def _map(self) -> None:
        """A large uncompressed file is scanned where it lies, mapped into memory: no copy into
        buffers, no buffer to refill; the hasher reads the same pages (``capture.mapping``: pages
        faulted in ahead on a worker thread, given back behind both readers)."""
        if self.report.compression != "none" or self.report.size_bytes < MAP_AT or self._base != 0:
            if self._range is None:
                return
        try:
            mapped = MappedFile(self._raw.fileno(), self._fill if self._hasher is not None else None,
                                start=self._pos if self._range is not None else 0)
        except (OSError, ValueError):
            return                                  # not mappable: the buffers it is
        self._mm = mapped
        self._buf, self._spare = mapped.data, None
        if self._hasher is not None:
            self._hasher.submit_mapped(mapped, self._fill)
        self._fill = len(self._buf)
        self._eof = True

    def _scan_end(self) -> int:
        """Where the next scan stops: the end of what was read, or for a mapped file
        ``self._window`` bytes on (batches of a few MiB keep the pager ahead of the scan)."""
        if self._mm is None:
            self._end = self._fill
        else:
            self._end = min(self._fill, self._pos + self._window)
        return self._end

    def _finish_hash(self) -> None:
        if self._hasher is not None and self.sha256 is None:
            self.sha256 = self.report.sha256 = self._hasher.finish(self._raw)

    def close(self) -> None:
        if getattr(self, "_mm", None) is not None:
            self._mm.close()
            self._buf = np.empty(0, np.uint8)         # batches hold no view of it past this point
            self._mm = None                           # unmapped when the last view is gone
        for f in (getattr(self, "_stream", None), getattr(self, "_raw", None)):
            if f is not None:
                f.close()

    # ------------------------------------------------------------------ formats
    def _init_pcap(self, big_endian: bool, nanosecond: bool) -> None:
        if self._fill < 24:
            raise CaptureError(f"{self.path}: pcap file header truncated ({self._fill} bytes)")
        e = ">" if big_endian else "<"
        _, _, _, _, _, snaplen, network = struct.unpack_from(e + "IHHiIII", self._buf, 0)
        self._swapped = big_endian
        self._frac_ns = 1 if nanosecond else 1000
        self._max_caplen = max(DEFAULT_MAX_CAPLEN, min(snaplen, 16 << 20))
        linktype = network & 0x03FFFFFF
        self._if_linktype = np.array([linktype], np.int32)
        self.report.link_types.add(linktype_name(linktype))
        self._pos = 24

    def _init_pcapng(self) -> None:
        self._swapped = False
        cap = 16
        self._a_kind = np.zeros(cap, np.int32)
        self._a_exp = np.zeros(cap, np.int32)
        self._a_offset = np.zeros(cap, np.int64)
        self._a_snap = np.zeros(cap, np.uint32)
        self._a_lt = np.zeros(cap + 1, np.int32)
        self._last_ts = 0
        self._section = -2          # the file's first block, a section header, makes it section 0
        self._new_section()

    def _new_section(self) -> None:
        """Interface ids start again (a section header block)."""
        self._section += 1
        self._n_if = 0              # interfaces stored (at most MAX_INTERFACES)
        self._n_declared = 0        # interface description blocks in this section
        self._odd_ifaces = False    # some interface is damaged or over the limit
        self._a_lt[0] = LT_INTERFACE_OVER_LIMIT
        self._if_linktype = self._a_lt[:1]

    def _grow_interfaces(self) -> None:
        cap = 2 * len(self._a_kind)
        for name in ("_a_kind", "_a_exp", "_a_offset", "_a_snap"):
            old = getattr(self, name)
            new = np.zeros(cap, old.dtype)
            new[:len(old)] = old
            setattr(self, name, new)
        lt = np.zeros(cap + 1, np.int32)
        lt[:len(self._a_lt)] = self._a_lt
        self._a_lt = lt

    # ------------------------------------------------------------------ iteration
    def batches(self):
        """Yield ``Batch`` objects until the end of the file (see module docstring)."""
        frame_no = 1
        self._want = self._buffer_size()      # the first scan uses what the constructor read
        self._window = MAPPED_WINDOW
        if self._range is not None:
            try:
                self._enter_range()
            except BaseException:
                self.close()
                raise
        else:
            self._map()
        scan = self._scan_pcap if self.report.format == "pcap" else self._scan_pcapng
        try:
            while True:
                n, status = scan()
                if self._range is not None:
                    n, status = self._cut(n, status)
                if n:
                    self._ref_sec = int(self._ts[n - 1] // 1_000_000_000)
                    batch = Batch(self._buf, self._off, self._cap, self._orig, self._ts, self._if,
                                  self._if_linktype, n, frame_no, self._base, self._mm is not None)
                    self._note_batch(n)
                    yield batch
                    frame_no += n
                    if self._mm is not None:
                        self._mm.scan_to(self._base + self._pos)
                if status == ST_RANGE_END:
                    self.range_exit = self._pos
                    self._mm.close()            # the pager stops here, not at the end of the file
                    break
                if status == _scan.ST_FULL:
                    continue
                if status == _scan.ST_BAD:
                    if not self._recover():
                        break
                    continue
                if status == _scan.ST_BLOCK:
                    if not self._handle_block():
                        break
                    continue
                # ST_NEED_MORE
                if self._mm is not None and self._end < self._fill:
                    if not n:
                        self._window *= 2      # a record larger than the window
                    continue
                if self._eof or not self._safe_read_more():
                    if self._pos < self._fill:
                        if self._recover_at_end():
                            continue
                        left = self._fill - self._pos
                        self.report.truncated_bytes += left
                        self.report.error(self._base + self._pos,
                                          f"last record truncated: {left} bytes of an incomplete record at the end")
                    self.range_exit = self._base + self._fill
                    break
            self._report_odd_timestamps()
        finally:
            self.report.close_errors()
            if self._mm is not None:
                self._mm.scan_done()
            self._finish_hash()
            self.close()

    def _note_batch(self, n: int) -> None:
        r = self.report
        r.frames += n
        ts = self._ts[:n]
        if self.report.format == "pcapng" and self._odd_ifaces:
            ts = ts[self._if_linktype[self._if[:n]] >= 0]      # frames without a time of their own
            if not len(ts):
                return
        lo, hi = int(ts.min()), int(ts.max())
        r.first_ts_ns = lo if r.first_ts_ns is None else min(lo, r.first_ts_ns)
        r.last_ts_ns = hi if r.last_ts_ns is None else max(hi, r.last_ts_ns)

    def _note_odd(self) -> None:
        """First file offsets of odd timestamps (the scanner gives buffer offsets)."""
        for k in range(3):
            if self._odd_first[k] is None and self._odd[2 * k + 1] >= 0:
                self._odd_first[k] = self._base + int(self._odd[2 * k + 1])

    def _report_odd_timestamps(self) -> None:
        what = {
            0: "with a fraction-of-second field of a second or more (taken as given: the time runs into "
               "the following second(s))",
            1: "dated after 2100", 2: "dated before 1970"}
        for k in range(3):
            count = int(self._odd[2 * k])
            if count:     # one summary line per kind, kept even when the error lines are full
                self.report.timestamp_anomalies[ODD_NAMES[k]] = count
                self.report.errors.append(f"offset {self._odd_first[k]}: {count} record(s) {what[k]} (first here)")

    def _scan_pcap(self):
        start = self._pos
        n, self._pos, status = _scan.scan_pcap(
            self._buf, self._pos, self._scan_end(), self._swapped, self._frac_ns, self._max_caplen,
            self._off, self._cap, self._orig, self._ts, self._odd, self._walk)
        if n:     # the header walk pays for large records only (``_scan._walk_headers``)
            self._walk = self._pos - start >= WALK_MIN_MEAN * n
        self._note_odd()
        return n, status

    def _scan_pcapng(self):
        k = self._n_if
        start = self._pos
        n, self._pos, status = _scan.scan_pcapng(
            self._buf, self._pos, self._scan_end(), self._swapped, self._a_kind[:k], self._a_exp[:k], self._a_offset[:k],
            self._a_snap[:k], self._n_declared, MAX_PCAPNG_BLOCK, self._last_ts, self._off, self._cap, self._orig,
            self._ts, self._if, self._odd, self._walk)
        if n:
            self._walk = self._pos - start >= WALK_MIN_MEAN * n
            self._last_ts = int(self._ts[n - 1])
        self._note_odd()
        return n, status

    # ------------------------------------------------------------------ damage
    def _recover(self) -> bool:
        """A record/block at _pos cannot be trusted: report it and find the next one."""
        start = self._base + self._pos
        reason = self._describe_bad()
        skipped = 0
        self._pos += 1 if self.report.format == "pcap" else 4
        skipped += 1 if self.report.format == "pcap" else 4
        while True:
            if self.report.format == "pcap":
                found, p = _scan.resync_pcap(self._buf, self._pos, self._fill, self._swapped, self._frac_ns,
                                             self._max_caplen, self._ref_sec, self._eof)
            else:
                found, p = _scan.resync_pcapng(self._buf, self._pos, self._fill, self._swapped,
                                               MAX_PCAPNG_BLOCK, self._eof)
            skipped += p - self._pos
            self._pos = p
            if found:
                self.report.damaged_bytes += skipped
                self.report.error(start, f"{reason}; skipped {skipped} bytes to the next plausible record")
                return True
            if self._eof or not self._safe_read_more():
                skipped += self._fill - self._pos
                self._pos = self._fill
                self.report.damaged_bytes += skipped
                self.report.error(start, f"{reason}; no plausible record in the remaining {skipped} bytes")
                return False

    def _recover_at_end(self) -> bool:
        """The last record claims more bytes than the file has left: if trustworthy
        records follow, that is damage (reported, skipped), not a truncated end."""
        step = 1 if self.report.format == "pcap" else 4
        if self.report.format == "pcap":
            found, p = _scan.resync_pcap(self._buf, self._pos + step, self._fill, self._swapped, self._frac_ns,
                                         self._max_caplen, self._ref_sec, True)
        else:
            found, p = _scan.resync_pcapng(self._buf, self._pos + step, self._fill, self._swapped,
                                           MAX_PCAPNG_BLOCK, True)
        if not found:
            return False
        e = ">" if self._swapped else "<"
        left = self._fill - self._pos
        if self.report.format == "pcap":
            caplen = struct.unpack_from(e + "I", self._buf, self._pos + 8)[0]
            reason = f"record claims {caplen} captured bytes, more than the {left - 16} left in the file"
        else:
            btype, blen = struct.unpack_from(e + "II", self._buf, self._pos)
            reason = f"pcapng block type 0x{btype:x} claims {blen} bytes, more than the {left} left in the file"
        skipped = p - self._pos
        self.report.damaged_bytes += skipped
        self.report.error(self._base + self._pos, f"{reason}; skipped {skipped} bytes to the next plausible record")
        self._pos = p
        return True

    def _describe_bad(self) -> str:
        e = ">" if self._swapped else "<"
        buf, pos = self._buf, self._pos
        if self.report.format == "pcap":
            caplen = struct.unpack_from(e + "I", buf, pos + 8)[0]
            return f"record claims {caplen} captured bytes (more than the maximum {self._max_caplen})"
        btype, blen = struct.unpack_from(e + "II", buf, pos)
        name = f"pcapng block type 0x{btype:x}"
        if blen < 12 or blen % 4 or blen > MAX_PCAPNG_BLOCK:
            return f"{name} with invalid length {blen}"
        if self._fill - pos >= blen:
            trailer = struct.unpack_from(e + "I", buf, pos + blen - 4)[0]
            if trailer != blen:
                return f"{name}: length {blen} disagrees with its trailing copy {trailer}"
        n_if = self._n_declared
        if btype in (2, 6) and blen >= 32 and self._fill - pos >= 28:
            iface = struct.unpack_from(e + ("H" if btype == 2 else "I"), buf, pos + 8)[0]
            caplen = struct.unpack_from(e + "I", buf, pos + 20)[0]
            if iface >= n_if:
                return f"packet block refers to interface {iface}, but {n_if} interface(s) are described"
            if caplen > blen - 32:
                return f"packet block claims {caplen} captured bytes (caplen) but has room for {blen - 32}"
        if btype == 3 and n_if == 0:
            return "simple packet block before any interface description"
        return f"{name} with invalid length {blen}"

    # ------------------------------------------------------------------ pcapng non-packet blocks
    def _handle_block(self) -> bool:
        e = ">" if self._swapped else "<"
        if self._fill - self._pos < 12:
            return False
        btype = struct.unpack_from(e + "I", self._buf, self._pos)[0]
        if btype == 0x0A0D0D0A:
            bom = bytes(self._buf[self._pos + 8:self._pos + 12])
            if bom == b"\x4d\x3c\x2b\x1a":
                self._swapped = False
            elif bom == b"\x1a\x2b\x3c\x4d":
                self._swapped = True
            else:
                self.report.error(self._base + self._pos, "section header with unknown byte-order magic")
                return self._recover()
            e = ">" if self._swapped else "<"
            self._new_section()
        blen = struct.unpack_from(e + "I", self._buf, self._pos + 4)[0]
        if blen < 12 or blen % 4 or blen > MAX_PCAPNG_BLOCK:
            return self._recover()
        if self._fill - self._pos < blen:
            if not self._eof and self._safe_read_more():
                return True  # more data in the buffer: the scan loop comes back here
            if self._recover_at_end():
                return True
            left = self._fill - self._pos
            self.report.truncated_bytes += left
            self.report.error(self._base + self._pos, f"last block truncated ({left} of {blen} bytes)")
            return False
        if struct.unpack_from(e + "I", self._buf, self._pos + blen - 4)[0] != blen:
            return self._recover()
        body = bytes(self._buf[self._pos + 8:self._pos + blen - 4])
        if btype == 1:
            self._add_interface(body, e, self._base + self._pos)
        elif btype != 0x0A0D0D0A:
            name = PCAPNG_BLOCK_NAMES.get(btype, f"0x{btype:x}")
            self.report.skipped_blocks[name] = self.report.skipped_blocks.get(name, 0) + 1
        self._pos += blen
        return True

    def _add_interface(self, body: bytes, e: str, offset: int) -> None:
        iface = self._n_declared
        self._n_declared += 1
        if iface >= MAX_INTERFACES:
            self.report.interfaces_over_limit += 1
            if iface == MAX_INTERFACES:
                self._odd_ifaces = True
                self.report.error(offset, f"section {self._section} describes more than {MAX_INTERFACES:,} "
                                          f"interfaces: the frames of interfaces {MAX_INTERFACES} and up are counted "
                                          f"as undecodable (interface_over_limit)")
            return
        kind, exp, tsoffset, snaplen, linktype, damage = 0, 6, 0, 0, LT_DAMAGED_INTERFACE, None
        if len(body) < 8:
            damage = f"description of {len(body)} bytes (at least 8)"
        else:
            linktype, _, snaplen = struct.unpack_from(e + "HHI", body, 0)
            for code, value in _options(body[8:], e):
                if code == 9 and value:
                    kind, exp = (value[0] >> 7), value[0] & 0x7F
                elif code == 14 and len(value) == 8:
                    tsoffset = struct.unpack(e + "q", value)[0]
            if (kind == 0 and exp > 18) or (kind == 1 and exp > 63):
                damage = f"if_tsresol {'10' if kind == 0 else '2'}^-{exp} out of range " \
                         f"(at most {'10^-18' if kind == 0 else '2^-63'})"
            elif abs(tsoffset) > MAX_TSOFFSET_S:
                damage = f"if_tsoffset {tsoffset} s out of range"
        if damage is not None:
            kind, exp, tsoffset, linktype = _scan.KIND_DAMAGED, 0, 0, LT_DAMAGED_INTERFACE
            self._odd_ifaces = True
            self.report.damaged_interfaces += 1
            self.report.error(offset, f"interface {iface} (section {self._section}) damaged: {damage}; "
                                      f"its frames are counted as undecodable (damaged_interface)")
        else:
            self.report.link_types.add(linktype_name(linktype))
        if iface >= len(self._a_kind):
            self._grow_interfaces()
        self._a_kind[iface] = kind
        self._a_exp[iface] = exp
        self._a_offset[iface] = tsoffset
        self._a_snap[iface] = snaplen
        self._a_lt[iface] = linktype
        self._a_lt[iface + 1] = LT_INTERFACE_OVER_LIMIT
        self._n_if = iface + 1
        self._if_linktype = self._a_lt[:iface + 2]


def _options(data: bytes, e: str):
    """pcapng options (code, value) until opt_endofopt."""
    pos = 0
    while pos + 4 <= len(data):
        code, length = struct.unpack_from(e + "HH", data, pos)
        if code == 0:
            return
        yield code, data[pos + 4:pos + 4 + length]
        pos += 4 + (length + 3) // 4 * 4
