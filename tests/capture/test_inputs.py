"""InputSet: directory expansion, ordering by first packet time, hashing of the stored bytes."""
from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from analyzer.capture.inputs import InputSet, expand_paths
from summaries import summarize
from craft import (
    BASE_TS_NS, NS, Frame, compress_file, epb, ethernet, idb, pcap_header, run_analysis, shb, tcp_conversation,
    timed, udp_packet, write_pcap,
)


def one_packet_file(path: Path, ts_ns: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_pcap(path, [Frame(ts_ns, ethernet(udp_packet(payload=path.name.encode())))])


def ordered_names(paths, root: Path) -> list[str]:
    s = InputSet(paths)
    return [str(f.path.relative_to(root)) if f.path.is_relative_to(root) else str(f.path) for f in s.files]


ROTATED = ["cap"] + [f"cap{i}" for i in range(1, 11)]            # tcpdump -C: cap, cap1, ..., cap10
STRFTIME = [f"bt-2023-11-14_22-{m:02d}-00.pcap" for m in (5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55)]  # -G


@pytest.mark.parametrize("names", [ROTATED, STRFTIME], ids=["dash-C", "dash-G"])
@pytest.mark.parametrize("given", ["files-shuffled", "directory"])
def test_rotated_set_in_time_order(tmp_path, names, given):
    for i, name in enumerate(names):
        one_packet_file(tmp_path / name, BASE_TS_NS + i * 60 * NS)
    if given == "directory":
        args = [tmp_path]
    else:
        args = [tmp_path / n for n in names]
        random.Random(4).shuffle(args)
    assert ordered_names(args, tmp_path) == names


def test_first_packet_time_wins_over_names(tmp_path):
    """Names say nothing about time: cap2 started before cap1 here."""
    times = {"cap": 0, "cap1": 30, "cap2": 10, "cap10": 20}
    for name, t in times.items():
        one_packet_file(tmp_path / name, BASE_TS_NS + t * NS)
    assert ordered_names([tmp_path], tmp_path) == ["cap", "cap2", "cap10", "cap1"]


def test_equal_first_times_in_natural_order(tmp_path):
    for name in ["cap10", "cap9", "cap1", "cap"]:
        one_packet_file(tmp_path / name, BASE_TS_NS)
    assert ordered_names([tmp_path / n for n in ["cap10", "cap9", "cap1", "cap"]], tmp_path) == \
        ["cap", "cap1", "cap9", "cap10"]


def test_first_time_from_pcapng_and_compressed_files(tmp_path):
    ng = tmp_path / "b.pcapng"
    ng.write_bytes(shb() + idb(1, tsresol=9) + epb(0, BASE_TS_NS + 2 * NS, ethernet(udp_packet())))
    gz = compress_file(one_packet_file(tmp_path / "c.pcap", BASE_TS_NS + NS), "gzip")
    (tmp_path / "c.pcap").unlink()
    one_packet_file(tmp_path / "a.pcap", BASE_TS_NS + 3 * NS)
    s = InputSet([tmp_path])
    assert [(f.path.name, f.first_ts_ns) for f in s.files] == [
        ("c.pcap.gz", (BASE_TS_NS + NS) // 1000 * 1000), ("b.pcapng", BASE_TS_NS + 2 * NS),
        ("a.pcap", (BASE_TS_NS + 3 * NS) // 1000 * 1000)]


def test_files_without_packets_last(tmp_path):
    one_packet_file(tmp_path / "z-late.pcap", BASE_TS_NS + 100 * NS)
    one_packet_file(tmp_path / "y-early.pcap", BASE_TS_NS)
    (tmp_path / "a-header-only.pcap").write_bytes(pcap_header())
    (tmp_path / "b-interfaces-only.pcapng").write_bytes(shb() + idb(1))
    (tmp_path / "c-text.pcap").write_text("not a capture")
    paths = sorted(tmp_path.iterdir()) + [tmp_path / "d-missing.pcap"]
    s = InputSet(paths)
    assert [f.path.name for f in s.files] == ["y-early.pcap", "z-late.pcap", "a-header-only.pcap",
                                              "b-interfaces-only.pcapng", "c-text.pcap", "d-missing.pcap"]
    assert [f.first_ts_ns is None for f in s.files] == [False, False, True, True, True, True]


def test_directory_expanded_recursively(tmp_path):
    one_packet_file(tmp_path / "d" / "cap2", BASE_TS_NS + 2 * NS)
    one_packet_file(tmp_path / "d" / "sub" / "deeper" / "cap1", BASE_TS_NS + NS)
    one_packet_file(tmp_path / "d" / ".hidden.pcap", BASE_TS_NS)
    one_packet_file(tmp_path / "loose.pcap", BASE_TS_NS + 3 * NS)
    (tmp_path / "d" / "empty-dir").mkdir()
    files, skipped = expand_paths([tmp_path / "d", tmp_path / "loose.pcap"])
    assert [str(p.relative_to(tmp_path)) for p in files] == ["d/cap2", "d/sub/deeper/cap1", "loose.pcap"]
    assert skipped == 0
    # a file named twice (directly and through its directory) is read once
    assert ordered_names([tmp_path / "d", tmp_path / "d" / "cap2", tmp_path / "loose.pcap"], tmp_path) == \
        ["d/sub/deeper/cap1", "d/cap2", "loose.pcap"]


def test_sha256_of_stored_bytes(tmp_path):
    """The reader hashes the bytes it reads (read once): the file as stored, compressed bytes for
    a compressed file, the whole file even when reading stops early, and a file that is not a
    capture is hashed on its own."""
    from analyzer.capture.reader import FileReport
    from analyzer.pipeline.stages import open_reader
    plain = write_pcap(tmp_path / "p.pcap", timed([ethernet(udp_packet())] * 5))
    packed = [compress_file(plain, kind) for kind in ("gzip", "bzip2", "xz")]
    broken = tmp_path / "broken.pcap.gz"
    broken.write_bytes(packed[0].read_bytes()[:40] + b"\xff" * 3000)     # the stream fails part way
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 3)
    missing = tmp_path / "missing.pcap"
    digests = {}
    for p in (plain, *packed, broken, junk, missing):
        report = FileReport(str(p))
        reader = open_reader(p, report)
        for _ in reader.batches() if reader is not None else ():
            pass
        digests[p.name] = report.sha256
    for p in (plain, *packed, broken, junk):
        assert digests[p.name] == hashlib.sha256(p.read_bytes()).hexdigest(), p.name
    assert len({digests[p.name] for p in (plain, *packed)}) == 4          # compressed bytes, not content
    assert digests["missing.pcap"] is None


def test_big_file_hashed_while_read(tmp_path, monkeypatch):
    """Many buffer refills (small buffers): the hash of the regions read equals the file's."""
    from analyzer.capture import reader as reader_mod
    from analyzer.capture.reader import FileReport
    from analyzer.pipeline.stages import open_reader
    monkeypatch.setattr(reader_mod, "BUFFER_SIZE", 4096)
    monkeypatch.setattr(reader_mod, "FIRST_READ", 1024)
    p = write_pcap(tmp_path / "p.pcap", timed([ethernet(udp_packet(payload=bytes([i % 251]) * 700))
                                               for i in range(500)]))
    report = FileReport(str(p))
    reader = open_reader(p, report)
    frames = sum(b.n for b in reader.batches())
    assert frames == 500 and report.sha256 == hashlib.sha256(p.read_bytes()).hexdigest()


def test_connection_across_rotated_files(tmp_path):
    """One TCP connection split over a -C set is reassembled as one connection; the summary lists
    the files in time order with their hashes and frame counts."""
    packets = [ethernet(p) for p in tcp_conversation()]
    frames = timed(packets)
    chunks = [frames[0:4], frames[4:5], frames[5:9], frames[9:]]
    names = ["cap", "cap1", "cap2", "cap10"]
    for name, chunk in zip(names, chunks):
        write_pcap(tmp_path / name, chunk)
    result, acc, _ = run_analysis([tmp_path / n for n in reversed(names)], expected_frames=len(frames))
    [rec] = result.records
    assert rec.category == "bittorrent" and rec.state == "fin"
    assert (rec.first_file, rec.first_frame, rec.last_file, rec.last_frame) == (0, 1, 3, len(chunks[-1]))
    assert rec.frames == len(frames)
    inputs = summarize(result)["inputs"]
    assert [Path(e["path"]).name for e in inputs] == names
    assert [e["frames"] for e in inputs] == [len(c) for c in chunks]
    assert [e["sha256"] for e in inputs] == [hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in names]
    assert not any("overlap" in n for n in result.notes)


def test_overlapping_time_ranges_noted(tmp_path):
    a = write_pcap(tmp_path / "a.pcap", [Frame(BASE_TS_NS + t * NS, ethernet(udp_packet())) for t in (0, 10)])
    b = write_pcap(tmp_path / "b.pcap", [Frame(BASE_TS_NS + t * NS, ethernet(udp_packet())) for t in (5, 15)])
    result, _, _ = run_analysis([b, a], expected_frames=4)
    assert [Path(f.path).name for f in result.inputs.files] == ["a.pcap", "b.pcap"]
    from summaries import summarize
    summary = summarize(result)
    assert summary["input_overlaps"] == [{"earlier": str(a), "later": str(b)}]
    assert [n for n in summary["notes"] if "overlap" in n] == [
        "time ranges overlap: 1 pair(s) of consecutive input files (listed in input_overlaps; reassembly orders "
        "by sequence number, not time)"]


def test_folders_give_only_captures(tmp_path):
    """Inside folders, files that do not start like a capture (also compressed) are skipped and
    counted; --include takes a glob instead; files named on the command line are always read."""
    d = tmp_path / "case"
    plain = one_packet_file(d / "a.pcap", BASE_TS_NS)
    compress_file(plain, "gzip")
    (d / "notes.json").write_text("{}")
    (d / "x.torrent").write_bytes(b"d4:infode")
    (d / "fake.gz").write_bytes(b"\x1f\x8b" + b"garbage")
    files, skipped = expand_paths([d])
    assert sorted(p.name for p in files) == ["a.pcap", "a.pcap.gz"] and skipped == 3
    files, skipped = expand_paths([d], include="*.json")
    assert [p.name for p in files] == ["notes.json"] and skipped == 4
    files, _ = expand_paths([d / "notes.json"])
    assert [p.name for p in files] == ["notes.json"]
