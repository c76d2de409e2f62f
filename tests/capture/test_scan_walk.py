"""The pcap scan's header walk (``_scan._walk_headers``) is a cache hint only: with it or
without it, ``scan_pcap`` finds the same records, stops at the same place for the same reason and
notes the same odd timestamps, whatever the bytes (plausible headers inside frames, damage, a
window that ends inside a record, either byte order)."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from analyzer.capture import _scan, reader
from analyzer.capture.reader import CaptureReader
from craft import public_captures_dir

SAMPLE = Path(__file__).resolve().parents[2] / "captures" / "sample-swarm.pcap"
MAX_CAPLEN = 262144


def scan(buf, pos: int, end: int, walk: bool, cap: int = 1 << 15, swapped=False, frac_ns=1000,
         max_caplen=MAX_CAPLEN):
    out = (np.zeros(cap, np.int64), np.zeros(cap, np.uint32), np.zeros(cap, np.uint32), np.zeros(cap, np.int64))
    odd = np.array([0, -1] * 3, np.int64)
    n, pos, status = _scan.scan_pcap(np.frombuffer(buf, np.uint8), pos, end, swapped, frac_ns, max_caplen, *out,
                                     odd, walk)
    return n, pos, status, [a[:n].tolist() for a in out], odd.tolist()


def same_both_ways(buf, pos: int, end: int, **kw):
    plain = scan(buf, pos, end, False, **kw)
    assert scan(buf, pos, end, True, **kw) == plain
    return plain


def record(i: int, data: bytes, swapped=False, frac=None, origlen=None) -> bytes:
    e = ">" if swapped else "<"
    return struct.pack(e + "IIII", 1_700_000_000 + i // 7, (i * 37) % 1_000_000 if frac is None else frac,
                       len(data), len(data) if origlen is None else origlen) + data


def fake_chain(k: int, swapped=False) -> bytes:
    """``k`` plausible, chained record headers: what a frame carrying a capture looks like."""
    return b"".join(record(i, bytes(40), swapped) for i in range(k))


def test_a_real_capture_scans_the_same_with_the_walk():
    data = SAMPLE.read_bytes()
    for end in (len(data), 1 << 20, 300_001, 70_000):            # whole, and windows ending inside records
        pos = 24
        while True:
            n, pos2, status, _, _ = same_both_ways(data, pos, min(end, len(data)), cap=4096)
            if not n or pos2 >= min(end, len(data)):
                break
            pos = pos2


def test_public_pcaps_scan_the_same_with_the_walk():
    for p in sorted(public_captures_dir().glob("*.pcap")):
        data = p.read_bytes()
        if len(data) < 24 or data[:4] not in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1",
                                              b"\xa1\xb2\x3c\x4d"):
            continue
        swapped = data[:4] in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d")
        frac_ns = 1 if data[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1000
        same_both_ways(data, 24, len(data), swapped=swapped, frac_ns=frac_ns)


def test_chains_started_inside_frames_change_nothing():
    """Frames full of plausible chained headers, where the walk's segments begin: its chains start
    there and run through the frames; the scan still follows the file's own records."""
    recs = []
    for i in range(400):
        body = fake_chain(1 + i % 30) if i % 3 else bytes(1400 + i % 97)
        recs.append(record(i, body))
    data = bytes(24) + b"".join(recs)
    got = same_both_ways(data, 24, len(data))
    assert got[0] == 400 and got[2] == _scan.ST_NEED_MORE and got[1] == len(data)


def test_damage_and_odd_times_stop_and_count_the_same():
    recs = [record(i, bytes(900 + i)) for i in range(300)]
    recs[150] = record(150, bytes(900), frac=2_000_000)                                   # fraction >= 1 s
    recs[170] = struct.pack("<IIII", 4_200_000_000, 0, 900, 900) + bytes(900)              # after 2100
    recs[250] = struct.pack("<IIII", 1_700_000_000, 0, MAX_CAPLEN + 1, 1000) + bytes(900)  # damage
    data = bytes(24) + b"".join(recs)
    n, _, status, _, odd = same_both_ways(data, 24, len(data))
    assert (n, status) == (250, _scan.ST_BAD)
    assert odd[0] == 1 and odd[2] == 1


@pytest.mark.parametrize("swapped", [False, True])
def test_either_byte_order_and_full_outputs(swapped):
    data = bytes(24) + b"".join(record(i, bytes(700 + (i * 131) % 1500), swapped) for i in range(500))
    n, _, status, _, _ = same_both_ways(data, 24, len(data), swapped=swapped, cap=333)
    assert (n, status) == (333, _scan.ST_FULL)


def test_random_streams_scan_the_same_with_the_walk():
    from hypothesis import given, settings, strategies as st

    frame = st.one_of(st.binary(min_size=0, max_size=3000),
                      st.integers(1, 40).map(fake_chain),
                      st.integers(0, 9000).map(bytes))

    @settings(max_examples=300, derandomize=True, deadline=None, database=None)
    @given(frames=st.lists(frame, min_size=1, max_size=120), cut=st.integers(0, 5000),
           garbage=st.lists(st.tuples(st.integers(0, 10**6), st.binary(min_size=1, max_size=40)), max_size=3),
           swapped=st.booleans(), cap=st.integers(1, 200), max_caplen=st.sampled_from([8000, MAX_CAPLEN]))
    def check(frames, cut, garbage, swapped, cap, max_caplen):
        data = bytearray(bytes(24) + b"".join(record(i, f, swapped) for i, f in enumerate(frames)))
        for at, junk in garbage:                   # damage: bytes overwritten anywhere
            at = 24 + at % max(1, len(data) - 24)
            data[at:at + len(junk)] = junk
        data = bytes(data)
        end = max(24, len(data) - cut)
        same_both_ways(data, 24, end, swapped=swapped, cap=cap, max_caplen=max_caplen)

    check()


def test_the_reader_walks_after_a_batch_of_large_records_only(tmp_path, monkeypatch):
    calls = []
    real = _scan.scan_pcap

    def spy(*args):
        calls.append(args[-1])
        return real(*args)

    monkeypatch.setattr(_scan, "scan_pcap", spy)
    monkeypatch.setattr(reader, "BATCH_RECORDS", 64)
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for name, size, want in (("large.pcap", 1400, True), ("small.pcap", 200, False)):
        calls.clear()
        p = tmp_path / name
        p.write_bytes(header + b"".join(record(i, bytes(size)) for i in range(300)))
        frames = sum(b.n for b in CaptureReader(p).batches())
        assert frames == 300
        assert calls[0] is False and set(calls[1:]) == {want}


def true_records(data: bytes, pos: int, end: int) -> int:
    n = 0
    while pos + 16 <= end:
        caplen = struct.unpack_from("<I", data, pos + 8)[0]
        if pos + 16 + caplen > end:
            return n + 1                  # the walk reads the header of a record the window cuts
        n, pos = n + 1, pos + 16 + caplen
    return n


def test_the_walk_reads_the_headers_the_scan_will_read():
    """On real traffic its 16 chains begin at real records (a plausible pair of headers is where
    a record begins) and meet where the next begins: every header of the window read once."""
    data = SAMPLE.read_bytes()
    for a, b in ((24, len(data)), (24, 1 << 20), (24, 4 << 20)):
        pos = 24
        while pos < a:
            pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
        b = min(b, len(data))
        want = true_records(data, pos, b)
        got = _scan.walk_pcap_headers(np.frombuffer(data, np.uint8), pos, b, False, 1000, MAX_CAPLEN)
        assert want - 16 <= got <= want + 16       # a chain may stop at, or read one past, its seam
    assert _scan.walk_pcap_headers(np.frombuffer(data, np.uint8), 24, 24 + 1000, False, 1000, MAX_CAPLEN) == 0


def test_the_walk_reads_nothing_past_the_window():
    """Records ending exactly where readable memory ends (the next page unreadable): walk and scan
    read within the window, whatever its last record's length claims."""
    import ctypes
    import mmap
    page = mmap.PAGESIZE
    size = 64 * page
    mm = mmap.mmap(-1, size + page)
    libc = ctypes.CDLL(None, use_errno=True)
    base = ctypes.addressof(ctypes.c_char.from_buffer(mm))
    assert libc.mprotect(ctypes.c_void_p(base + size), page, 0) == 0       # the page after: no access
    try:
        view = np.frombuffer(mm, np.uint8, count=size)
        for tail in (0, 5, 16, 20, 900):
            recs = b"".join(record(i, bytes(1300 + (i * 7) % 300)) for i in range(300))
            body = recs[:size - 24 - tail] if tail else recs
            blob = (bytes(24) + body)[-size:]
            start = size - len(blob)
            view[:] = 0
            view[start:] = np.frombuffer(blob, np.uint8)
            last = bytes(struct.pack("<IIII", 1_700_000_000, 0, 1 << 17, 1 << 17))       # claims more than is left
            if tail == 16:
                view[size - 16:] = np.frombuffer(last, np.uint8)
            for walk in (False, True):
                out = (np.zeros(4096, np.int64), np.zeros(4096, np.uint32), np.zeros(4096, np.uint32),
                       np.zeros(4096, np.int64))
                odd = np.array([0, -1] * 3, np.int64)
                _scan.scan_pcap(view, start + 24, size, False, 1000, MAX_CAPLEN, *out, odd, walk)
            _scan.walk_pcap_headers(view, start + 24, size, False, 1000, MAX_CAPLEN)
        del view
    finally:
        libc.mprotect(ctypes.c_void_p(base + size), page, 3)
        mm.close()


# ---------------------------------------------------------------------- pcapng
def scan_ng(buf, pos: int, end: int, walk: bool, cap: int = 1 << 15, swapped=False, n_if=1):
    out = (np.zeros(cap, np.int64), np.zeros(cap, np.uint32), np.zeros(cap, np.uint32), np.zeros(cap, np.int64),
           np.zeros(cap, np.uint16))
    odd = np.array([0, -1] * 3, np.int64)
    n, pos, status = _scan.scan_pcapng(np.frombuffer(buf, np.uint8), pos, end, swapped,
                                       np.zeros(n_if, np.int32), np.full(n_if, 6, np.int32),
                                       np.zeros(n_if, np.int64), np.zeros(n_if, np.uint32), n_if, 1 << 24, 0,
                                       *out, odd, walk)
    return n, pos, status, [a[:n].tolist() for a in out], odd.tolist()


def ng_same_both_ways(buf, pos: int, end: int, **kw):
    plain = scan_ng(buf, pos, end, False, **kw)
    assert scan_ng(buf, pos, end, True, **kw) == plain
    return plain


def test_pcapng_blocks_scan_the_same_with_the_walk():
    import craft as H
    for big in (False, True):
        head = H.shb(big_endian=big) + H.idb(1, big_endian=big)
        blocks = []
        for i in range(400):
            data = bytes(1400 + i % 300)
            if i % 5 == 1:       # a frame carrying pcapng blocks: plausible chains inside it
                data = b"".join(H.epb(0, i, bytes(60), big_endian=big) for _ in range(1 + i % 9))
            blocks.append(H.epb(0, 1_700_000_000_000_000 + i, data, big_endian=big))
        data = head + b"".join(blocks)
        n, pos, status, _, _ = ng_same_both_ways(data, len(head), len(data), swapped=big)
        assert (n, status) == (400, _scan.ST_NEED_MORE) and pos == len(data)
        got = _scan.walk_pcapng_blocks(np.frombuffer(data, np.uint8), len(head), len(data), big, 1 << 24)
        assert 400 - 16 <= got <= 400 + 16 + 16 * 9        # chains begun inside frames may read theirs


def test_random_pcapng_streams_scan_the_same_with_the_walk():
    import craft as H
    from hypothesis import given, settings, strategies as st

    frame = st.one_of(st.binary(min_size=0, max_size=3000),
                      st.integers(1, 20).map(lambda k: b"".join(H.epb(0, 5, bytes(40)) for _ in range(k))),
                      st.integers(0, 9000).map(bytes))

    @settings(max_examples=200, derandomize=True, deadline=None, database=None)
    @given(frames=st.lists(frame, min_size=1, max_size=100), cut=st.integers(0, 5000),
           garbage=st.lists(st.tuples(st.integers(0, 10**6), st.binary(min_size=1, max_size=40)), max_size=3),
           cap=st.integers(1, 200), other=st.integers(0, 99))
    def check(frames, cut, garbage, cap, other):
        blocks = [H.epb(0, i, f) for i, f in enumerate(frames)]
        blocks.insert(other % (len(blocks) + 1), H.idb(1))          # a block the scan stops at
        data = bytearray(H.shb() + H.idb(1) + b"".join(blocks))
        start = len(H.shb() + H.idb(1))
        for at, junk in garbage:
            at = start + at % max(1, len(data) - start)
            data[at:at + len(junk)] = junk
        data = bytes(data)
        ng_same_both_ways(data, start, max(start, len(data) - cut), cap=cap, n_if=2)

    check()


def test_public_pcapngs_scan_the_same_with_the_walk(monkeypatch):
    """Real pcapng files read with the walk forced on from the first batch, and off: the same batches."""
    calls = {"walk": None}
    real = _scan.scan_pcapng

    def forced(*args):
        return real(*args[:-1], calls["walk"])

    monkeypatch.setattr(_scan, "scan_pcapng", forced)
    files = [p for p in sorted(public_captures_dir().glob("*.pcapng"))][:12]
    assert files
    for p in files:
        got = {}
        for walk in (False, True):
            calls["walk"] = walk
            try:
                got[walk] = [(b.n, b.rec_off[:b.n].tolist(), b.ts_ns[:b.n].tolist(), b.caplen[:b.n].tolist())
                            for b in CaptureReader(p).batches()]
            except Exception as e:          # unreadable either way alike
                got[walk] = repr(e)
        assert got[True] == got[False], p
