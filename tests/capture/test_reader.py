"""CaptureReader on intact files: pcap and pcapng variants, compression, batching, buffer refills.

Expected values come from what was written (exact integer nanoseconds) and,
where Wireshark reads the same file, from tshark/capinfos.
"""
from __future__ import annotations

import functools
import random
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from scapy.layers.l2 import Ether
from scapy.utils import PcapNgWriter, PcapWriter

from analyzer.capture import reader
from craft import (
    BASE_TS_NS, COMPRESSORS, LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_RAW, NS,
    V6_CLIENT, V6_SERVER, Frame, capinfos_count, compress_file, dsb, epb, ethernet, idb, isb, linux_sll,
    linux_sll2, nrb, obsolete_pb, pcap_header, pcap_record, pcapng_block, public_captures_dir, read_records,
    require_tool, run_analysis, shb, spb, tcp_conversation, timed, tsresol_units, tshark_frames, udp_packet,
    units_to_ns, write_pcap,
)

PUBLIC_CAPTURES = public_captures_dir()

# sub-microsecond digits everywhere, so a lost or rounded nanosecond shows
ODD_TIMES = [BASE_TS_NS, BASE_TS_NS + 1, BASE_TS_NS + 999, BASE_TS_NS + 1_000, BASE_TS_NS + 999_999_999 - 123_456_789,
             BASE_TS_NS + 3 * NS + 7, 4_102_444_800 * NS - 1, NS + 1]   # last two: 2099-12-31T23:59:59.999999999, 1970


def sample_frames(n: int = 8, seed: int = 1, times=None) -> list[Frame]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        ip = udp_packet(payload=bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 300))))
        ts = times[i] if times else BASE_TS_NS + i * 1_234_567
        out.append(Frame(ts, ethernet(ip)))
    return out


def assert_same_records(recs, frames, *, linktype=LINKTYPE_ETHERNET, nano=True):
    assert [r.frame_no for r in recs] == list(range(1, len(frames) + 1))
    assert [r.data for r in recs] == [f.data for f in frames]
    assert [r.origlen for r in recs] == [f.wire_len for f in frames]
    assert [r.linktype for r in recs] == [linktype] * len(frames)
    want_ts = [f.ts_ns if nano else f.ts_ns // 1000 * 1000 for f in frames]
    assert [r.ts_ns for r in recs] == want_ts


def assert_matches_tshark(path, recs):
    rows = tshark_frames(path)
    assert [(no, cap, orig) for no, _, cap, orig in rows] == [(r.frame_no, len(r.data), r.origlen) for r in recs]
    assert [ts for _, ts, _, _ in rows if ts is not None] == [r.ts_ns for r, row in zip(recs, rows) if row[1] is not None]


# ---------------------------------------------------------------------------------------------- pcap
@pytest.mark.parametrize("big_endian", [False, True], ids=["le", "be"])
@pytest.mark.parametrize("nano", [False, True], ids=["usec", "nsec"])
def test_pcap_byte_order_and_resolution(tmp_path, big_endian, nano):
    frames = sample_frames(len(ODD_TIMES), times=ODD_TIMES)
    frames[2].origlen = len(frames[2].data) + 1000          # snapped record: origlen kept
    path = write_pcap(tmp_path / "f.pcap", frames, big_endian=big_endian, nano=nano, snaplen=65535)
    recs, report, _ = read_records(path)
    assert_same_records(recs, frames, nano=nano)
    assert report.format == "pcap" and report.compression == "none"
    assert report.frames == len(frames) and report.link_types == {"ETHERNET"}
    assert report.size_bytes == path.stat().st_size
    assert report.first_ts_ns == min(r.ts_ns for r in recs) and report.last_ts_ns == max(r.ts_ns for r in recs)
    assert report.errors == [] and report.damaged_bytes == report.truncated_bytes == 0
    assert_matches_tshark(path, recs)


def test_pcap_written_by_scapy_nanosecond(tmp_path):
    """A file from another writer (scapy's PcapWriter, nanosecond, exact Decimal times).
    (Not times just below a whole second: scapy 2.8 rounds the seconds through a float.)"""
    frames = sample_frames(4, times=ODD_TIMES[:4])
    path = tmp_path / "scapy.pcap"
    with PcapWriter(str(path), nano=True, linktype=LINKTYPE_ETHERNET, sync=True) as w:
        for f in frames:
            p = Ether(f.data)
            p.time = Decimal(f.ts_ns) / NS
            w.write(p)
    recs, report, _ = read_records(path)
    assert_same_records(recs, frames)
    assert_matches_tshark(path, recs)


def test_pcap_link_type_field_with_fcs_bits(tmp_path):
    """The upper bits of the header's link type field (FCS length) are not part of the link type."""
    frames = sample_frames(3)
    data = pcap_header(0x14000000 | LINKTYPE_ETHERNET) + b"".join(pcap_record(f) for f in frames)
    path = tmp_path / "fcs.pcap"
    path.write_bytes(data)
    recs, report, _ = read_records(path)
    assert_same_records(recs, frames, nano=False)
    assert report.link_types == {"ETHERNET"}


@pytest.mark.parametrize("linktype,name", [(LINKTYPE_RAW, "RAW"), (LINKTYPE_LINUX_SLL2, "LINUX_SLL2"),
                                           (147, "LINKTYPE_147")])
def test_pcap_link_type_reported(tmp_path, linktype, name):
    path = write_pcap(tmp_path / "l.pcap", timed([udp_packet()]), linktype)
    recs, report, _ = read_records(path)
    assert report.link_types == {name} and recs[0].linktype == linktype


def test_pcap_header_only(tmp_path):
    path = tmp_path / "h.pcap"
    path.write_bytes(pcap_header())
    recs, report, sizes = read_records(path)
    assert recs == [] and sizes == [] and report.frames == 0 and report.errors == []
    assert report.first_ts_ns is None and report.last_ts_ns is None


# ---------------------------------------------------------------------------------------------- pcapng
# (link type, frame builder, if_tsresol byte, if_tsoffset seconds)
INTERFACES = [
    (LINKTYPE_ETHERNET, ethernet, None, None),          # default resolution 10^-6
    (LINKTYPE_RAW, lambda ip: ip, 9, None),            # 10^-9
    (LINKTYPE_LINUX_SLL, linux_sll, 0x80 | 20, None),   # 2^-20
    (LINKTYPE_LINUX_SLL2, linux_sll2, 0x80 | 32, 100),  # 2^-32, offset +100 s
    (LINKTYPE_ETHERNET, ethernet, 3, -50),              # 10^-3, offset -50 s
    (LINKTYPE_RAW, lambda ip: ip, 10, None),            # 10^-10 (finer than ns: floored)
    (LINKTYPE_ETHERNET, ethernet, 0x80 | 33, None),     # 2^-33
]


def multi_interface_file(big_endian=False, times=None):
    """One section, one interface per INTERFACES row, packets round-robin over them.
    Returns (bytes, expected [(iface, linktype, ts_ns, data)])."""
    e = dict(big_endian=big_endian)
    blocks = [shb(**e)] + [idb(lt, tsresol=res, tsoffset=off, **e) for lt, _, res, off in INTERFACES]
    expected = []
    times = times or [BASE_TS_NS + i * 1_000_003 + (i * 7919) % 1000 for i in range(3 * len(INTERFACES))]
    for i, ts in enumerate(times):
        k = i % len(INTERFACES)
        lt, wrap, res, off = INTERFACES[k]
        data = wrap(udp_packet(payload=b"%d" % i * (i + 1)))
        units = tsresol_units(ts, res, off or 0)
        blocks.append(epb(k, units, data, **e))
        expected.append((k, lt, units_to_ns(units, res, off or 0), data))
    return b"".join(blocks), expected


@pytest.mark.parametrize("big_endian", [False, True], ids=["le", "be"])
def test_pcapng_interfaces_link_types_and_resolutions(tmp_path, big_endian):
    data, expected = multi_interface_file(big_endian)
    path = tmp_path / "m.pcapng"
    path.write_bytes(data)
    recs, report, _ = read_records(path)
    assert [(r.iface, r.linktype, r.ts_ns, r.data) for r in recs] == expected
    assert [r.frame_no for r in recs] == list(range(1, len(expected) + 1))
    assert report.format == "pcapng" and report.errors == [] and report.skipped_blocks == {}
    assert report.link_types == {"ETHERNET", "RAW", "LINUX_SLL", "LINUX_SLL2"}
    assert_matches_tshark(path, recs)


@pytest.mark.parametrize("tsresol,units,want_ns", [
    (None, 1_700_000_000_123_456, 1_700_000_000_123_456_000),
    (6, 1, 1_000),
    (9, 1_700_000_000_123_456_789, 1_700_000_000_123_456_789),
    (0, 1_700_000_000, 1_700_000_000 * NS),
    (12, 123_456_789_987, 123_456_789),                                            # 10^-12 (pico) floored
    (0x80 | 1, 3, 1_500_000_000),                                                 # 2^-1
    (0x80 | 10, (1_700_000_000 << 10) + 1, 1_700_000_000 * NS + 976_562),         # 2^-10: 976562.5 ns floored
    (0x80 | 30, (1 << 30) - 1, 999_999_999),                                      # 2^-30: .99999999906 floored
    (0x80 | 33, (1_700_000_000 << 33) + (1 << 32), 1_700_000_000 * NS + 500_000_000),
])
def test_pcapng_timestamp_conversion_exact(tmp_path, tsresol, units, want_ns):
    assert units_to_ns(units, tsresol) == want_ns          # the helper agrees with the hand computation
    path = tmp_path / "t.pcapng"
    path.write_bytes(shb() + idb(LINKTYPE_RAW, tsresol=tsresol) + epb(0, units, udp_packet()))
    recs, report, _ = read_records(path)
    assert [r.ts_ns for r in recs] == [want_ns]


def test_pcapng_other_blocks_skipped_and_counted(tmp_path):
    pk = [ethernet(udp_packet(payload=bytes([i]) * (10 + i))) for i in range(6)]
    ts = [BASE_TS_NS // 1000 * 1000 + i * 1000 for i in range(6)]      # whole microseconds
    blocks = [
        shb(), nrb(), idb(LINKTYPE_ETHERNET), dsb(),
        epb(0, tsresol_units(ts[0]), pk[0]),
        isb(0, tsresol_units(ts[0])),
        pcapng_block(0x0BAD, b"\x00\x00\x7f\xfe" + b"custom data"),       # custom block (PEN + data)
        pcapng_block(0x40000BAD, b"\x00\x00\x7f\xfe" + b"do not copy"),
        epb(0, tsresol_units(ts[1]), pk[1], options=[(1, b"a comment"), (2, b"\x01\x00\x00\x00")]),  # with options
        pcapng_block(0x12345, b"unknown block type"),
        pcapng_block(0x12345, b""),
        nrb(),
        epb(0, tsresol_units(ts[2]), pk[2]),
        isb(0, tsresol_units(ts[2])),
    ]
    path = tmp_path / "b.pcapng"
    path.write_bytes(b"".join(blocks))
    recs, report, _ = read_records(path)
    assert [r.data for r in recs] == pk[:3]
    assert [r.ts_ns for r in recs] == ts[:3]
    assert report.skipped_blocks == {"name_resolution": 2, "decryption_secrets": 1, "interface_statistics": 2,
                                     "custom": 2, "0x12345": 2}
    assert report.errors == [] and report.damaged_bytes == 0


def test_pcapng_simple_and_obsolete_packet_blocks(tmp_path):
    snap = 64
    a = ethernet(udp_packet(payload=b"a" * 10))          # shorter than the snap length
    b = ethernet(udp_packet(payload=b"b" * 100))         # cut to the snap length
    c = ethernet(udp_packet(payload=b"c" * 5))
    t0, t1 = BASE_TS_NS // 1000 * 1000 + 1000, BASE_TS_NS // 1000 * 1000 + 5000   # whole microseconds
    blocks = [shb(), idb(LINKTYPE_ETHERNET, snaplen=snap), epb(0, tsresol_units(t0), a),
              spb(a, snaplen=snap), spb(b, snaplen=snap), obsolete_pb(0, tsresol_units(t1), c), spb(c, snaplen=snap)]
    path = tmp_path / "s.pcapng"
    path.write_bytes(b"".join(blocks))
    recs, report, _ = read_records(path)
    assert [(r.data, r.origlen) for r in recs] == [(a, len(a)), (a, len(a)), (b[:snap], len(b)), (c, len(c)),
                                                   (c, len(c))]
    # a Simple Packet Block has no timestamp: it gets the previous packet's
    assert [r.ts_ns for r in recs] == [t0, t0, t0, t1, t1]
    assert report.errors == []
    assert_matches_tshark(path, recs)


def test_pcapng_several_sections(tmp_path):
    """Each section has its own byte order and interface numbering."""
    s1 = [ethernet(udp_packet(payload=b"one")), ethernet(udp_packet(payload=b"two"))]
    s2 = [udp_packet(V6_CLIENT, V6_SERVER, payload=b"three"), linux_sll2(udp_packet(payload=b"four"))]
    s3 = [linux_sll(udp_packet(payload=b"five"))]
    t = [BASE_TS_NS + i * NS + i for i in range(5)]
    blocks = [shb(), idb(LINKTYPE_ETHERNET), epb(0, tsresol_units(t[0]), s1[0]), epb(0, tsresol_units(t[1]), s1[1]),
              shb(big_endian=True), idb(LINKTYPE_RAW, tsresol=9, big_endian=True),
              idb(LINKTYPE_LINUX_SLL2, tsresol=9, big_endian=True),
              epb(0, t[2], s2[0], big_endian=True), epb(1, t[3], s2[1], big_endian=True),
              shb(), idb(LINKTYPE_LINUX_SLL, tsresol=9), epb(0, t[4], s3[0])]
    path = tmp_path / "sections.pcapng"
    path.write_bytes(b"".join(blocks))
    recs, report, _ = read_records(path)
    assert [(r.iface, r.linktype, r.ts_ns, r.data) for r in recs] == [
        (0, LINKTYPE_ETHERNET, t[0] // 1000 * 1000, s1[0]), (0, LINKTYPE_ETHERNET, t[1] // 1000 * 1000, s1[1]),
        (0, LINKTYPE_RAW, t[2], s2[0]), (1, LINKTYPE_LINUX_SLL2, t[3], s2[1]),
        (0, LINKTYPE_LINUX_SLL, t[4], s3[0])]
    assert report.errors == [] and report.skipped_blocks == {}
    assert_matches_tshark(path, recs)


def test_pcapng_written_by_scapy(tmp_path):
    frames = sample_frames(4)
    path = tmp_path / "scapy.pcapng"
    with PcapNgWriter(str(path)) as w:
        for f in frames:
            p = Ether(f.data)
            p.time = Decimal(f.ts_ns) / NS
            w.write(p)
    recs, report, _ = read_records(path)
    assert [r.data for r in recs] == [f.data for f in frames]
    assert_matches_tshark(path, recs)


# ---------------------------------------------------------------------------------------------- compression
def pcapng_sample(tmp_path) -> Path:
    data, _ = multi_interface_file()
    path = tmp_path / "m.pcapng"
    path.write_bytes(data + shb(big_endian=True) + idb(LINKTYPE_RAW, big_endian=True) + isb(0, 5, big_endian=True)
                     + epb(0, 77, udp_packet(), big_endian=True))
    return path


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_compressed_copy_reads_identically(tmp_path, kind, fmt):
    plain = write_pcap(tmp_path / "p.pcap", sample_frames(30)) if fmt == "pcap" else pcapng_sample(tmp_path)
    packed = compress_file(plain, kind)
    want, want_report, want_sizes = read_records(plain)
    got, report, sizes = read_records(packed)
    assert got == want and sizes == want_sizes
    assert report.compression == kind and report.format == fmt
    assert report.size_bytes == packed.stat().st_size
    assert (report.frames, report.first_ts_ns, report.last_ts_ns, report.link_types, report.skipped_blocks) == \
        (want_report.frames, want_report.first_ts_ns, want_report.last_ts_ns, want_report.link_types,
         want_report.skipped_blocks)
    assert report.errors == []


# ---------------------------------------------------------------------------------------------- batches and buffer
@pytest.mark.parametrize("batch_records", [1, 7, 64])
def test_frame_numbers_across_batches(tmp_path, monkeypatch, batch_records):
    frames = sample_frames(100)
    path = write_pcap(tmp_path / "p.pcap", frames)
    monkeypatch.setattr(reader, "BATCH_RECORDS", batch_records)
    recs, report, sizes = read_records(path)
    assert all(0 < n <= batch_records for _, n in sizes)
    starts = [first for first, _ in sizes]
    assert starts == [1 + sum(n for _, n in sizes[:i]) for i in range(len(sizes))]
    assert_same_records(recs, frames, nano=False)
    assert report.frames == 100


def test_frame_numbers_in_connection_records_match_wireshark(tmp_path, monkeypatch):
    """Frame numbers in connection records are Wireshark's (1-based, across batches)."""
    monkeypatch.setattr(reader, "BATCH_RECORDS", 4)
    packets = [udp_packet(payload=b"x%d" % i) for i in range(10)] + tcp_conversation()
    path = write_pcap(tmp_path / "c.pcap", timed(packets), LINKTYPE_RAW)
    result, _, _ = run_analysis([path], expected_frames=len(packets))
    [rec] = result.records
    assert (rec.first_frame, rec.last_frame) == (11, len(packets))
    rows = tshark_frames(path)
    assert (rec.first_ts_ns, rec.last_ts_ns) == (rows[10][1], rows[-1][1])


@functools.lru_cache(maxsize=None)
def big_mixed_pcapng(n=300, seed=5) -> tuple[bytes, int]:
    """Sections of alternating byte order, interfaces, unknown blocks of random sizes."""
    rnd = random.Random(seed)
    blocks, be = [shb(), idb(LINKTYPE_ETHERNET)], False
    for i in range(n):
        if i % 50 == 49:
            be = not be
            blocks += [shb(big_endian=be), idb(LINKTYPE_RAW, tsresol=9, big_endian=be),
                       pcapng_block(0x99, bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 3000))),
                                    big_endian=be)]
        ip = udp_packet(payload=bytes([i % 256]) * rnd.randrange(0, 1400))
        if i < 49:
            blocks.append(epb(0, tsresol_units(BASE_TS_NS + i * 1000), ethernet(ip)))
        elif i % 3:
            blocks.append(epb(0, BASE_TS_NS + i, ip, big_endian=be))
        else:
            blocks.append(spb(ip, big_endian=be))
    return b"".join(blocks), n


@functools.lru_cache(maxsize=None)
def big_frames() -> tuple[Frame, ...]:
    rnd = random.Random(2)
    return tuple(Frame(BASE_TS_NS + i * 1001, ethernet(udp_packet(payload=bytes([i % 256]) * rnd.randrange(0, 1400))))
                 for i in range(300))


@pytest.mark.parametrize("buffer_size", [4096, 4099, 5000])
@pytest.mark.parametrize("fmt", ["pcap", "pcapng", "pcap.gz"])
def test_records_straddling_buffer_refills(tmp_path, monkeypatch, buffer_size, fmt):
    """A file many times the buffer: every record cut by a refill is completed, nothing lost or duplicated."""
    if fmt == "pcapng":
        data, n = big_mixed_pcapng()
        path = tmp_path / "big.pcapng"
        path.write_bytes(data)
    else:
        frames = big_frames()
        n = len(frames)
        path = write_pcap(tmp_path / "big.pcap", frames)
        if fmt == "pcap.gz":
            path = compress_file(path, "gzip")
    want, want_report, _ = read_records(path)           # whole file in one buffer
    assert len(want) == n and want_report.errors == []
    assert sum(16 + len(r.data) for r in want) > 20 * buffer_size
    monkeypatch.setattr(reader, "BUFFER_SIZE", buffer_size)
    monkeypatch.setattr(reader, "FIRST_READ", 512, raising=False)           # the buffer grows from 512 bytes
    for batch_records in (1, 64):
        monkeypatch.setattr(reader, "BATCH_RECORDS", batch_records)
        got, report, _ = read_records(path)
        assert got == want
        assert report.errors == [] and report.skipped_blocks == want_report.skipped_blocks
        assert report.damaged_bytes == report.truncated_bytes == 0


# ---------------------------------------------------------------------------------------------- public captures
PUBLIC_FILES = sorted(PUBLIC_CAPTURES.glob("*.pcap*")) if PUBLIC_CAPTURES.is_dir() else []
needs_public = pytest.mark.skipif(not PUBLIC_FILES, reason=f"public captures not found in {PUBLIC_CAPTURES}")


@pytest.fixture(scope="module")
def wireshark_view(tmp_path_factory):
    """{file: [(frame no, ts_ns, caplen, origlen)]} for every public capture, from one capinfos
    and one tshark run over the files concatenated by mergecap (tshark is slow to start)."""
    counts = {p: capinfos_count(p) for p in PUBLIC_FILES}
    merged = tmp_path_factory.mktemp("public") / "all.pcapng"
    subprocess.run([require_tool("mergecap"), "-a", "-w", str(merged), *map(str, PUBLIC_FILES)], check=True,
                   capture_output=True)
    rows = tshark_frames(merged)
    assert len(rows) == sum(counts.values())
    out, pos = {}, 0
    for p in PUBLIC_FILES:
        out[p] = [(i + 1, ts, cap, orig) for i, (_, ts, cap, orig) in enumerate(rows[pos:pos + counts[p]])]
        pos += counts[p]
    return out


@needs_public
@pytest.mark.parametrize("path", PUBLIC_FILES, ids=[p.name for p in PUBLIC_FILES])
def test_public_capture_read_like_wireshark(path, wireshark_view):
    recs, report, _ = read_records(path)
    assert report.errors == [] and report.damaged_bytes == report.truncated_bytes == 0
    assert [(r.frame_no, r.ts_ns, len(r.data), r.origlen) for r in recs] == wireshark_view[path]
    assert report.frames == len(recs)


@needs_public
def test_public_captures_analysed_together(wireshark_view):
    """All of them as one input set: every frame in exactly one category."""
    total = sum(map(len, wireshark_view.values()))
    result, acc, _ = run_analysis(PUBLIC_FILES, local=["0.0.0.0/0", "::/0"], expected_frames=total)
    assert all(r.readable and not r.errors for r in result.reports)
    assert sorted(r.path for r in result.reports) == sorted(map(str, PUBLIC_FILES))
