"""Damaged inputs: what cannot be read raises CaptureError (one line, naming the file); damage
inside a capture never raises: it is reported (offset, reason), counted (damaged_bytes,
truncated_bytes) and the reader goes on with the next trustworthy record."""
from __future__ import annotations

import bz2
import functools
import gc
import lzma
import random
import struct
import warnings
import zlib
from pathlib import Path

import pytest

from analyzer.capture import reader
from analyzer.capture.reader import CaptureError, CaptureReader
from summaries import summarize
from craft import (
    BASE_TS_NS, COMPRESSORS, LINKTYPE_ETHERNET, Frame, epb, ethernet, idb, nrb, pcap_bytes, pcap_header, read_records,
    record_offsets, run_analysis, shb, tcp_conversation, timed, tsresol_units, udp_packet, write_pcap,
)

BUFFERS = [pytest.param(None, id="buffer-default"), pytest.param(4096, id="buffer-4096")]
SNAPLEN = 2048          # every test record is shorter


@pytest.fixture
def buffer_size(request, monkeypatch):
    """A small buffer makes damage and resync happen across refills.  The reader relies on its
    buffer holding the largest record/block it accepts (32 MiB vs 16 MiB by default), so the
    limits shrink with it."""
    if request.param:
        monkeypatch.setattr(reader, "BUFFER_SIZE", request.param)
        monkeypatch.setattr(reader, "FIRST_READ", 512, raising=False)       # and grown from 512 bytes
        monkeypatch.setattr(reader, "MAX_PCAPNG_BLOCK", request.param // 2)
        monkeypatch.setattr(reader, "DEFAULT_MAX_CAPLEN", SNAPLEN)
    return request.param


def pcap_sample(frames) -> bytearray:
    return bytearray(pcap_bytes(frames, snaplen=SNAPLEN))


def sample_frames(n=20, seed=3, lo=40, hi=400) -> list[Frame]:
    return list(_sample_frames(n, seed, lo, hi))


@functools.lru_cache(maxsize=None)
def _sample_frames(n, seed, lo, hi) -> tuple[Frame, ...]:
    rnd = random.Random(seed)
    return tuple(Frame(BASE_TS_NS + i * 1_000_000 + i,
                       ethernet(udp_packet(payload=bytes([i % 256]) * rnd.randrange(lo, hi)))) for i in range(n))


@functools.lru_cache(maxsize=None)
def incompressible_frames() -> tuple[Frame, ...]:
    """~170 KB of records with random payloads (so compressed damage lands mid-file and
    bzip2 at level 1 has several blocks)."""
    rnd = random.Random(9)
    return tuple(Frame(f.ts_ns, f.data[:42] + rnd.randbytes(len(f.data) - 42))
                 for f in sample_frames(400, lo=200, hi=600))


def datas(recs) -> list[bytes]:
    return [r.data for r in recs]


# ---------------------------------------------------------------------------------------------- not a capture
def _not_a_capture(tmp_path: Path, kind: str) -> Path:
    p = tmp_path / f"input-{kind}"
    if kind == "missing":
        return p
    if kind == "directory":
        p.mkdir()
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "text":
        p.write_text("GET / HTTP/1.1\r\nHost: example\r\n\r\n")
    elif kind == "short":
        p.write_bytes(b"\xd4\xc3")
    elif kind == "pcap-header-truncated":
        p.write_bytes(pcap_header()[:20])
    elif kind == "gzip-of-text":
        p.write_bytes(COMPRESSORS["gzip"](b"just some text, not a capture\n" * 10))
    return p


UNREADABLE = [
    ("missing", "no such file"),
    ("directory", "directory"),
    ("empty", "empty"),
    ("text", "not a pcap or pcapng"),
    ("short", "not a pcap or pcapng"),
    ("pcap-header-truncated", "truncated"),
    ("gzip-of-text", "not a pcap or pcapng"),
]


@pytest.mark.parametrize("kind,reason", UNREADABLE, ids=[k for k, _ in UNREADABLE])
def test_unreadable_input_raises_one_line_naming_the_file(tmp_path, kind, reason):
    path = _not_a_capture(tmp_path, kind)
    with pytest.raises(CaptureError) as exc:
        CaptureReader(path)
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(str(path) + ": ")
    assert reason in message.lower()


@pytest.mark.parametrize("kind", ["empty", "text", "pcap-header-truncated"])
def test_unreadable_input_leaves_no_file_open(tmp_path, kind):
    """The constructor closes what it opened before raising (no ResourceWarning)."""
    path = _not_a_capture(tmp_path, kind)
    gc.collect()                                   # earlier tests' garbage is not this test's
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            CaptureReader(path)
        except CaptureError:
            pass
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning) and path.name in str(w.message)]
    assert leaks == []


# ---------------------------------------------------------------------------------------------- pcap damage
@pytest.mark.parametrize("buffer_size", BUFFERS, indirect=True)
@pytest.mark.parametrize("cut", [1, 10, 16 + 5, 16, 7], ids=["data-1", "data-10", "header+5", "header-only", "header-part"])
def test_truncated_last_record(tmp_path, buffer_size, cut):
    """The file ends inside the last record: earlier records delivered, the rest reported."""
    frames = sample_frames()
    raw = pcap_sample(frames)
    last = record_offsets(frames)[-1]
    if cut in (16 + 5, 16, 7):
        keep = last + cut                   # header (or part of it) and a few data bytes
    else:
        keep = len(raw) - cut
    path = tmp_path / "t.pcap"
    path.write_bytes(raw[:keep])
    recs, report, _ = read_records(path)
    assert datas(recs) == [f.data for f in frames[:-1]]
    assert report.frames == len(frames) - 1
    assert report.truncated_bytes == keep - last
    assert report.damaged_bytes == 0
    assert len(report.errors) == 1 and report.errors[0].startswith(f"offset {last}: ")
    assert "truncated" in report.errors[0]


@pytest.mark.parametrize("buffer_size", BUFFERS, indirect=True)
@pytest.mark.parametrize("bad", [0, 1, 9, 18, 19])
def test_absurd_caplen_in_a_record(tmp_path, buffer_size, bad):
    """A record claiming 2 GiB: reported at its offset, its bytes skipped, every other record read."""
    frames = sample_frames()
    raw = pcap_sample(frames)
    offs = record_offsets(frames) + [len(raw)]
    struct.pack_into("<I", raw, offs[bad] + 8, 0x7FFFFFFF)
    path = tmp_path / "a.pcap"
    path.write_bytes(raw)
    recs, report, _ = read_records(path)
    want = [f.data for i, f in enumerate(frames) if i != bad]
    assert datas(recs) == want
    assert [r.frame_no for r in recs] == list(range(1, len(want) + 1))
    assert report.damaged_bytes == offs[bad + 1] - offs[bad]
    assert report.truncated_bytes == 0
    assert len(report.errors) == 1 and report.errors[0].startswith(f"offset {offs[bad]}: ")
    assert "2147483647" in report.errors[0]


@pytest.mark.parametrize("buffer_size", BUFFERS, indirect=True)
def test_garbage_between_records(tmp_path, buffer_size):
    frames = sample_frames()
    raw = pcap_sample(frames)
    at = record_offsets(frames)[7]
    garbage = bytes(range(200, 237))
    path = tmp_path / "g.pcap"
    path.write_bytes(raw[:at] + garbage + raw[at:])
    recs, report, _ = read_records(path)
    assert datas(recs) == [f.data for f in frames]
    assert report.damaged_bytes == len(garbage)
    assert len(report.errors) == 1 and report.errors[0].startswith(f"offset {at}: ")


@pytest.mark.parametrize("caplen", [100_000, 200_000])
def test_caplen_running_past_end_of_file_is_damage_not_truncation(tmp_path, caplen):
    """A record in the middle whose (plausible, < 256 KiB) caplen runs past the end of the
    file, with intact records after it: those records are not 'a truncated last record'.
    The reader must report damage at that offset and go on with the following records."""
    frames = sample_frames()
    raw = pcap_sample(frames)
    offs = record_offsets(frames) + [len(raw)]
    bad = 7
    struct.pack_into("<I", raw, offs[bad] + 8, caplen)
    path = tmp_path / "p.pcap"
    path.write_bytes(raw)
    recs, report, _ = read_records(path)
    assert report.truncated_bytes == 0, report.errors
    assert len(report.errors) == 1 and report.errors[0].startswith(f"offset {offs[bad]}: ")
    assert datas(recs) == [f.data for i, f in enumerate(frames) if i != bad]
    assert report.damaged_bytes == offs[bad + 1] - offs[bad]


# ---------------------------------------------------------------------------------------------- pcapng damage
def pcapng_sample(n=20):
    """(bytes, block offsets, packet blocks' data) of SHB, IDB and n EPBs."""
    pk = [f.data for f in sample_frames(n)]
    blocks = [shb(), idb(LINKTYPE_ETHERNET)] + [epb(0, tsresol_units(BASE_TS_NS + i * 1000), p)
                                                for i, p in enumerate(pk)]
    offs, pos = [], 0
    for b in blocks:
        offs.append(pos)
        pos += len(b)
    return bytearray(b"".join(blocks)), offs + [pos], pk


INVALID_LENGTHS = [
    pytest.param(lambda n: 0xFFFFFFF0, id="huge"),
    pytest.param(lambda n: 13, id="not-multiple-of-4"),
    pytest.param(lambda n: 8, id="below-minimum"),
    pytest.param(lambda n: n - 4, id="shorter-than-its-packet"),
]


@pytest.mark.parametrize("buffer_size", BUFFERS, indirect=True)
@pytest.mark.parametrize("length", INVALID_LENGTHS)
def test_pcapng_invalid_block_length(tmp_path, buffer_size, length):
    raw, offs, pk = pcapng_sample()
    k = 9                                            # the EPB of packet 7
    struct.pack_into("<I", raw, offs[k] + 4, length(offs[k + 1] - offs[k]))
    path = tmp_path / "n.pcapng"
    path.write_bytes(raw)
    recs, report, _ = read_records(path)
    assert datas(recs) == pk[:7] + pk[8:]
    assert len(report.errors) == 1 and report.errors[0].startswith(f"offset {offs[k]}: ")
    assert report.damaged_bytes == offs[k + 1] - offs[k]
    assert report.truncated_bytes == 0 and report.skipped_blocks == {}


@pytest.mark.parametrize("delta", [4, 64])
def test_pcapng_block_length_disagreeing_with_its_trailer(tmp_path, delta):
    """A packet block whose leading length is plausible but differs from the trailing copy
    cannot be trusted (Wireshark: 'total block lengths don't match').  The reader must
    report it at its offset and read the next block, not start parsing inside it."""
    raw, offs, pk = pcapng_sample()
    k = 9
    struct.pack_into("<I", raw, offs[k] + 4, offs[k + 1] - offs[k] + delta)
    path = tmp_path / "n.pcapng"
    path.write_bytes(raw)
    recs, report, _ = read_records(path)
    assert report.errors and report.errors[0].startswith(f"offset {offs[k]}: ")
    assert datas(recs)[7:] == pk[8:]               # every block after the damaged one is read
    assert report.skipped_blocks == {}


@pytest.mark.parametrize("block", [5, 9], ids=["name-resolution", "enhanced-packet"])
def test_pcapng_block_length_running_past_end_of_file(tmp_path, block):
    """A plausible block length (< 16 MiB) larger than the rest of the file, intact blocks after
    it: damage at that offset, not 'last block truncated' swallowing the rest of the file."""
    raw, offs, pk = pcapng_sample()
    raw[offs[5]:offs[5]] = nrb()                    # a non-packet block among the packets
    offs = offs[:6] + [o + len(nrb()) for o in offs[5:]]
    struct.pack_into("<I", raw, offs[block] + 4, 1 << 20)
    path = tmp_path / "n.pcapng"
    path.write_bytes(raw)
    recs, report, _ = read_records(path)
    assert report.truncated_bytes == 0, report.errors
    assert report.errors and report.errors[0].startswith(f"offset {offs[block]}: ")
    assert datas(recs)[-10:] == pk[-10:]


@pytest.mark.parametrize("field,offset,value,words", [
    ("interface", 8, 3, ("interface",)),
    ("caplen", 20, 5000, ("captured", "caplen", "packet length")),
])
def test_pcapng_bad_packet_block_reason_names_the_field(tmp_path, field, offset, value, words):
    """An EPB naming an undefined interface, or claiming more captured bytes than it holds,
    is skipped and the rest read; the reported reason says what is wrong with it (its
    length field is fine)."""
    raw, offs, pk = pcapng_sample()
    k = 9
    struct.pack_into("<I", raw, offs[k] + offset, value)
    path = tmp_path / "n.pcapng"
    path.write_bytes(raw)
    recs, report, _ = read_records(path)
    assert datas(recs) == pk[:7] + pk[8:]
    assert report.damaged_bytes == offs[k + 1] - offs[k]
    assert len(report.errors) == 1 and report.errors[0].startswith(f"offset {offs[k]}: ")
    assert any(w in report.errors[0] for w in words), report.errors[0]


@pytest.mark.parametrize("buffer_size", BUFFERS, indirect=True)
def test_pcapng_truncated_last_block(tmp_path, buffer_size):
    raw, offs, pk = pcapng_sample()
    path = tmp_path / "n.pcapng"
    path.write_bytes(raw[:-10])
    recs, report, _ = read_records(path)
    assert datas(recs) == pk[:-1]
    assert report.truncated_bytes == offs[-1] - offs[-2] - 10
    assert len(report.errors) == 1 and report.errors[0].startswith(f"offset {offs[-2]}: ")


# ---------------------------------------------------------------------------------------------- compressed damage
_DECOMPRESSORS = {"gzip": lambda: zlib.decompressobj(31), "bzip2": bz2.BZ2Decompressor,
                  "xz": lzma.LZMADecompressor}


def recoverable_prefix(kind: str, data: bytes) -> bytes:
    """Everything a decompressor can produce from damaged compressed data before the damage."""
    d = _DECOMPRESSORS[kind]()
    out = []
    for i in range(0, len(data), 512):
        try:
            out.append(d.decompress(data[i:i + 512]))
        except (OSError, EOFError, zlib.error, lzma.LZMAError):
            break
    return b"".join(out)


def complete_records(prefix: bytes) -> int:
    pos, n = 24, 0
    while pos + 16 <= len(prefix):
        caplen = struct.unpack_from("<I", prefix, pos + 8)[0]
        if pos + 16 + caplen > len(prefix):
            break
        pos += 16 + caplen
        n += 1
    return n


@pytest.mark.parametrize("buffer_size", BUFFERS, indirect=True)
@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_damaged_compressed_stream_delivers_records_before_the_damage(tmp_path, buffer_size, kind, damage):
    """A compressed capture cut short (or corrupted) two thirds in: every record that can be
    decompressed from the bytes before the damage is delivered, then the damage is reported;
    the file is not 'unreadable'."""
    frames = incompressible_frames()
    plain = bytes(pcap_sample(frames))
    packed = bz2.compress(plain, 1) if kind == "bzip2" else COMPRESSORS[kind](plain)
    at = len(packed) * 2 // 3
    # Records wholly decodable from the compressed bytes before the damage are intact.  A cut
    # stream yields all of them; for corrupted bytes a decompressor fed in chunks may lose what
    # the chunk holding the damage would have produced: allow 16 KiB of compressed input.
    expected = complete_records(recoverable_prefix(kind, packed[:at if damage == "truncated" else at - 16384]))
    assert 50 < expected < 400
    if damage == "truncated":
        packed = packed[:at]
    else:
        packed = packed[:at] + bytes(b ^ 0x5A for b in packed[at:at + 64]) + packed[at + 64:]
    path = tmp_path / f"damaged.pcap.{kind}"
    path.write_bytes(packed)
    recs, report, _ = read_records(path)             # must not raise
    assert report.compression == kind
    assert datas(recs)[:expected] == [f.data for f in frames[:expected]]
    if damage == "truncated":
        assert len(recs) == expected
    assert any(kind in e for e in report.errors), report.errors


@pytest.mark.parametrize("kind", ["gzip", "xz"])
def test_small_truncated_compressed_file_is_readable(tmp_path, kind):
    """The cut comes within the reader's first read (a small file): still not 'unreadable'."""
    frames = sample_frames(60)
    packed = COMPRESSORS[kind](bytes(pcap_sample(frames)))
    packed = packed[:len(packed) * 3 // 4]
    expected = complete_records(recoverable_prefix(kind, packed))
    assert expected > 10
    path = tmp_path / f"small.pcap.{kind}"
    path.write_bytes(packed)
    recs, report, _ = read_records(path)             # raises CaptureError today
    assert datas(recs) == [f.data for f in frames[:expected]]
    assert report.readable and any(kind in e for e in report.errors)


# ---------------------------------------------------------------------------------------------- through analyze()
def conversation_file(path: Path, start_ns: int, cport: int) -> tuple[Path, int]:
    packets = tcp_conversation(cport=cport)
    write_pcap(path, timed([ethernet(p) for p in packets], start_ns=start_ns))
    return path, len(packets)


def test_analyze_good_and_bad_files(tmp_path):
    """[good, not a capture, damaged, good, missing]: the good files and the readable part of the
    damaged one are analysed, each bad file's reason is in its FileReport, nothing raises."""
    good1, n1 = conversation_file(tmp_path / "a-good.pcap", BASE_TS_NS, 50001)
    junk = tmp_path / "b-junk.pcap"
    junk.write_bytes(b"this is not a capture file at all\n" * 3)
    frames = sample_frames()
    raw = bytearray(pcap_bytes([Frame(f.ts_ns + 10**9, f.data) for f in frames]))
    bad_at = record_offsets(frames)[5]
    struct.pack_into("<I", raw, bad_at + 8, 0xFFFFFF00)
    damaged = tmp_path / "c-damaged.pcap"
    damaged.write_bytes(raw)
    good2, n2 = conversation_file(tmp_path / "d-good.pcap", BASE_TS_NS + 2 * 10**9, 50002)
    missing = tmp_path / "e-missing.pcap"
    result, acc, warns = run_analysis([good1, junk, damaged, good2, missing],
                                      expected_frames=n1 + n2 + len(frames) - 1)
    reports = {Path(r.path).name: r for r in result.reports}
    assert [Path(f.path).name for f in result.inputs.files] == \
        ["a-good.pcap", "c-damaged.pcap", "d-good.pcap", "b-junk.pcap", "e-missing.pcap"]
    assert reports["a-good.pcap"].frames == n1 and reports["d-good.pcap"].frames == n2
    assert not reports["b-junk.pcap"].readable and "not a pcap or pcapng" in reports["b-junk.pcap"].errors[0]
    assert not reports["e-missing.pcap"].readable and "no such file" in reports["e-missing.pcap"].errors[0]
    d = reports["c-damaged.pcap"]
    assert d.readable and d.frames == len(frames) - 1 and d.errors[0].startswith(f"offset {bad_at}: ")
    assert sorted(r.src_port for r in result.records) == [50001, 50002]
    assert all(r.category == "bittorrent" for r in result.records)
    assert acc["capture_damage"]["unreadable_files"] == 2
    assert acc["capture_damage"]["damaged_bytes"] == d.damaged_bytes > 0
    assert acc["categories"]["udp"]["frames"] == len(frames) - 1
    for name in ("b-junk.pcap", "c-damaged.pcap", "e-missing.pcap"):
        assert any(name in w for w in warns)
    entries = {Path(e["path"]).name: e for e in summarize(result)["inputs"]}
    assert entries["b-junk.pcap"]["readable"] is False and entries["b-junk.pcap"]["errors"]
    assert entries["e-missing.pcap"]["sha256"] is None


def test_analyze_truncated_gzip_among_good_files(tmp_path):
    """A gzip capture cut short is partly readable: its records before the cut are analysed."""
    good, n = conversation_file(tmp_path / "a.pcap", BASE_TS_NS, 50001)
    frames = sample_frames(200)
    packed = COMPRESSORS["gzip"](pcap_bytes([Frame(f.ts_ns + 10**9, f.data) for f in frames]))
    cut = tmp_path / "b.pcap.gz"
    cut.write_bytes(packed[:len(packed) // 2])
    expected = complete_records(recoverable_prefix("gzip", cut.read_bytes()))
    assert expected > 10
    result, acc, warns = run_analysis([good, cut], expected_frames=n + expected)
    r = {Path(r.path).name: r for r in result.reports}["b.pcap.gz"]
    assert r.readable and r.frames == expected and r.errors
