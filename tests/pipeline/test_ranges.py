"""One input mapped by byte ranges (pipeline.ranges): the ranges' records are exactly the one pass's,
seam to seam, whatever the cuts and byte order; a run whose inputs are cut into ranges writes the
same files as one process (hashed or not, index or copy, --torrent, on a local cluster); a file the
ranges cannot settle (damage, a plausible chain of record headers inside a frame) is mapped again in
one pass, and says so in the manifest."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from analyzer.capture.reader import CaptureReader, RangeError
from analyzer.pipeline import ranges
from analyzer.pipeline.ranges import assemble, map_range_task, plan_ranges
from craft import public_captures_dir
from pipeline.test_cluster import inputs, run, run_verified, same, verified_reference  # noqa: F401 (fixtures)

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "captures" / "sample-swarm.pcap"
FORCE = "BT_ANALYZER_RANGE_BYTES"


def frames(reader: CaptureReader) -> list[tuple[int, bytes]]:
    out = []
    for b in reader.batches():
        for i in range(b.n):
            off = int(b.rec_off[i])
            out.append((int(b.ts_ns[i]), bytes(b.buf[off:off + int(b.caplen[i])])))
    return out


def by_ranges(path: Path, cuts: list[int]) -> tuple[list, list]:
    """Frames of every range [cuts[k], cuts[k+1]) in order, and (first, exit) of each."""
    got, seams = [], []
    for a, b in zip(cuts, cuts[1:]):
        r = CaptureReader(path, byte_range=(a, b))
        got += frames(r)
        seams.append((r.range_first, r.range_exit))
        assert r.report.frames == len(frames(CaptureReader(path, byte_range=(a, b))))
    return got, seams


def big_endian_ns(src: Path, dst: Path) -> Path:
    """The same capture as a big-endian, nanosecond-resolution classic pcap."""
    b = src.read_bytes()
    magic, major, minor, zone, sigfigs, snaplen, network = struct.unpack_from("<IHHiIII", b, 0)
    out = [struct.pack(">IHHiIII", 0xA1B23C4D, major, minor, zone, sigfigs, snaplen, network)]
    off = 24
    while off + 16 <= len(b):
        sec, usec, caplen, origlen = struct.unpack_from("<IIII", b, off)
        out.append(struct.pack(">IIII", sec, usec * 1000, caplen, origlen) + b[off + 16:off + 16 + caplen])
        off += 16 + caplen
    dst.write_bytes(b"".join(out))
    return dst


def classic(tmp_path: Path, name: str) -> Path:
    if name == "sample":
        return SAMPLE
    if name == "big-endian-ns":
        return big_endian_ns(SAMPLE, tmp_path / "be.pcap")
    return public_captures_dir() / name


@pytest.mark.parametrize("name", ["sample", "big-endian-ns", "ndpi_bittorrent.pcap", "ppa1e_torrential-slowness.pcap"])
@pytest.mark.parametrize("count", [2, 7, 40])
def test_ranges_partition_the_records_as_one_pass(tmp_path, name, count):
    path = classic(tmp_path, name)
    size = path.stat().st_size
    cuts = [24 + (size - 24) * k // count for k in range(count + 1)]
    got, seams = by_ranges(path, cuts)
    assert seams[0][0] == 24 and seams[-1][1] == size
    for (_, exit_), (first, _) in zip(seams, seams[1:]):
        assert first == exit_                     # each range begins where the one before ended
    assert got == frames(CaptureReader(path))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(25, SAMPLE.stat().st_size - 1), min_size=1, max_size=12, unique=True))
def test_any_cuts_partition_the_sample(cuts):
    """Cuts anywhere (inside headers, inside frames), each range long enough that a record begins in
    it (the largest is 1,530 bytes; planned ranges are at least 256 MiB): the seams hold on real traffic."""
    kept = [24]
    for c in sorted(cuts):
        if c - kept[-1] >= 1600 and SAMPLE.stat().st_size - c >= 1600:
            kept.append(c)
    got, seams = by_ranges(SAMPLE, [*kept, SAMPLE.stat().st_size])
    for (_, exit_), (first, _) in zip(seams, seams[1:]):
        assert first == exit_
    assert got == frames(CaptureReader(SAMPLE))


def test_a_range_with_no_record_cannot_be_read_alone():
    """One frame's bytes only (no record header begins there): an error the caller falls back on."""
    r = CaptureReader(SAMPLE, byte_range=(40, 60))
    with pytest.raises(RangeError, match="no record begins"):
        frames(r)


def test_ranges_are_planned_for_large_classic_pcap_files_only(tmp_path, monkeypatch):
    pcapng = public_captures_dir() / "ndpi_bittorrent_tcp_miss.pcapng"
    paths = [SAMPLE, pcapng, public_captures_dir() / "ndpi_bittorrent.pcap"]
    assert plan_ranges(paths, 1) == {}                           # no workers to share them
    assert plan_ranges(paths, 64) == {}                          # nothing near RANGE_MIN
    monkeypatch.setattr(ranges, "RANGE_MIN", 1_000_000)
    assert sorted(plan_ranges(paths, 64)) == [0]                 # the sample, past its share now
    assert plan_ranges(paths, 64, hash_inputs=True) == {}        # hashed: one core hashes it anyway
    monkeypatch.setenv(FORCE, "1000000")
    plan = plan_ranges(paths, 1)
    assert sorted(plan) == [0]                                   # the pcapng and the small pcap are not cut
    [(a, _), *_, (_, z)] = plan[0]
    assert len(plan[0]) == 4 and a == 24 and z == SAMPLE.stat().st_size
    assert all(b == c for (_, b), (c, _) in zip(plan[0], plan[0][1:]))


def test_files_that_share_out_evenly_are_not_cut(monkeypatch):
    """Ranges only when whole files would leave the busiest worker more than a range's worth over an
    even share: four files of about half a GB on 2 workers stay whole (measured: faster whole)."""
    mb = 1 << 20
    assert ranges.idle_if_whole([448 * mb, 494 * mb, 514 * mb, 524 * mb], 2) == 18 * mb
    assert ranges.idle_if_whole([448 * mb, 494 * mb], 2) == 23 * mb
    assert ranges.idle_if_whole([4250 * mb], 2) == 2125 * mb
    assert ranges.idle_if_whole([10, 10, 10], 4) == 10 - 30 // 4
    sizes = {}
    monkeypatch.setattr(ranges, "_classic_pcap", lambda p: True)
    monkeypatch.setattr(Path, "stat", lambda p: type("S", (), {"st_size": sizes[p.name]})())
    sizes.update(a=448 * mb, b=494 * mb, c=514 * mb, d=524 * mb)
    assert plan_ranges([Path(n) for n in "abcd"], 2) == {}
    sizes.update(d=2000 * mb)                  # one file of 2 GB among them: it is cut, the others not
    plan = plan_ranges([Path(n) for n in "abcd"], 2)
    assert sorted(plan) == [3] and len(plan[3]) == 3


def adversarial(path: Path) -> tuple[Path, int, int]:
    """The sample with one more frame near its middle: 4,000 zero bytes, then nine plausible, chained
    pcap record headers (a capture of someone sending a capture).  A range that begins in those zeros
    finds that chain first; the file's own middle falls in them.  Returns the file and where the
    zeros begin and end."""
    b = SAMPLE.read_bytes()
    fake = b"".join(struct.pack("<IIII", 1_700_000_000 + i, 5, 20, 20) + bytes(20) for i in range(9))
    frame = bytes(range(14)) + bytes(4000) + fake
    extra = 16 + len(frame)
    mid = 24 + (len(b) - 24 + extra) // 2
    off = 24
    while True:                          # the last record boundary that puts the middle in the zeros
        nxt = off + 16 + struct.unpack_from("<I", b, off + 8)[0]
        if nxt + 30 + 500 > mid:
            break
        off = nxt
    sec, usec = struct.unpack_from("<II", b, off)          # the time of the record it goes before
    path.write_bytes(b[:off] + struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame + b[off:])
    return path, off + 30, off + 30 + 4000


def test_a_false_chain_inside_a_frame_breaks_the_seam(tmp_path):
    path, zeros, fake = adversarial(tmp_path / "adv.pcap")
    inside = zeros + 1000
    size = path.stat().st_size
    root = tmp_path / "work"
    (root / "map").mkdir(parents=True)
    parts = [map_range_task(path, 0, k, r, 2, root) for k, r in enumerate([(24, inside), (inside, size)])]
    assert parts[1].range_first == fake < parts[0].range_exit     # it began at the fake chain, inside the frame
    m, why = assemble(path, 0, parts, None, False)
    assert m is None and "begins at" in why


@pytest.fixture
def forced(monkeypatch):
    """Byte ranges of 150 kB for every classic pcap input larger than that."""
    monkeypatch.setenv(FORCE, "150000")


@pytest.mark.parametrize("args", [["--shards", "3"], ["--shards", "2", "--spill", "copy"],
                                  ["--shards", "2", "--no-input-hash"]], ids=["index", "copy", "unhashed"])
def test_a_ranged_run_writes_what_one_process_writes(inputs, tmp_path, forced, args):  # noqa: F811
    reference = run(tmp_path / "ref", inputs, "--workers", "1", *[a for a in args if a == "--no-input-hash"])
    files = run(tmp_path / "out", inputs, *args)
    facts = json.loads((tmp_path / "out" / "manifest.json").read_text())["run"]
    assert facts["ranged_inputs"] >= 3 and facts["range_tasks"] >= 10 and "ranges_mapped_again" not in facts
    same(reference, files)


def test_ranges_on_a_local_cluster_with_torrent(inputs, verified_reference, tmp_path, forced):  # noqa: F811
    files, facts = run_verified(tmp_path, inputs, "--workers", "2")
    assert facts["engine"] == "dask" and facts["ranged_inputs"] >= 3 and "ranges_mapped_again" not in facts
    same(verified_reference, files)


def damaged(tmp_path: Path) -> Path:
    """The sample with one record header's captured length destroyed in its middle, and its last record cut."""
    b = bytearray(SAMPLE.read_bytes())
    off, n = 24, 0
    while n < 1800:
        off += 16 + struct.unpack_from("<I", b, off + 8)[0]
        n += 1
    struct.pack_into("<I", b, off + 8, 0x7FFFFFFF)
    d = tmp_path / "in"
    d.mkdir()
    (d / "damaged.pcap").write_bytes(bytes(b))
    (d / "truncated.pcap").write_bytes(SAMPLE.read_bytes()[:-100])
    return d


def test_damage_sends_the_file_back_to_one_pass_a_cut_end_does_not(tmp_path, forced):
    d = damaged(tmp_path)
    reference = run(tmp_path / "ref", d, "--workers", "1")
    files = run(tmp_path / "out", d, "--shards", "2")
    same(reference, files)
    facts = json.loads((tmp_path / "out" / "manifest.json").read_text())["run"]
    again = facts["ranges_mapped_again"]
    assert len(again) == 1 and again[0].startswith(str(d / "damaged.pcap"))
    assert facts["ranged_inputs"] == 1                           # the truncated file, by its ranges
    inputs_ = {Path(i["path"]).name: i for i in json.loads(files["summary.json"])["inputs"]}
    assert inputs_["truncated.pcap"]["truncated_bytes"] > 0 and inputs_["damaged.pcap"]["damaged_bytes"] > 0


def test_a_false_chain_sends_the_file_back_through_the_cli(tmp_path, monkeypatch):
    d = tmp_path / "in"
    d.mkdir()
    path, zeros, zeros_end = adversarial(d / "adv.pcap")
    size = path.stat().st_size
    assert zeros < 24 + (size - 24) // 2 < zeros_end             # two ranges: the cut falls in the zeros
    monkeypatch.setenv(FORCE, str((size - 24) // 2 + 1))
    reference = run(tmp_path / "ref", d, "--workers", "1")
    files = run(tmp_path / "out", d, "--shards", "2")
    same(reference, files)
    facts = json.loads((tmp_path / "out" / "manifest.json").read_text())["run"]
    assert facts["range_tasks"] == 2 and "begins at" in facts["ranges_mapped_again"][0]
