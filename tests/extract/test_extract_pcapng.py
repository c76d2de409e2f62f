"""The excerpt writer: pcapng blocks and frames.csv rows, read back by the project's reader and
Wireshark (several link types and interfaces, nanosecond times, cut frames, frames put back late)."""
from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from analyzer.capture.reader import CaptureReader
from analyzer.extract import _select
from analyzer.extract.pcapng import ExcerptWriter, LateFrame, frames_csv_path
from analyzer.timefmt import iso_ns
from craft import (LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL2, LINKTYPE_RAW, capinfos_count, epb, ethernet, idb,
                   linux_sll2, shb, tcp_conversation, tshark_frames)
from excerpts import records


@pytest.mark.parametrize("ts", [0, 1, 951_782_400 * 10**9 + 5, 1_709_164_799_999_999_999,   # 2024-02-28 end
                                1_709_164_800 * 10**9, 4_107_542_400 * 10**9 + 123,         # 2100-03-01
                                946_684_799_999_999_999, 2**62])
def test_frames_csv_times_are_iso_ns(ts):
    pos = np.array([3 << _select.POS_SHIFT | 42], np.int64)
    files = np.frombuffer(b"xyzw" + b'"a,b.pcap"', np.uint8)        # file 3 is the quoted name
    row = _select.format_frames_csv(7, pos, np.array([ts], np.int64), np.zeros(1, np.int32), 1, files,
                                    np.array([0, 1, 2, 4, 14], np.int64), np.frombuffer(b"dht", np.uint8),
                                    np.array([0, 3], np.int64))
    assert row.decode() == f'7,"a,b.pcap",42,{iso_ns(ts)},dht\n'


def pcapng_input(path):
    """Three interfaces (Ethernet in microseconds, SLL2 in nanoseconds, raw IP with a 64-byte snap
    length), frames interleaved."""
    packets = tcp_conversation()
    blocks = [shb(), idb(LINKTYPE_ETHERNET), idb(LINKTYPE_LINUX_SLL2, tsresol=9), idb(LINKTYPE_RAW, snaplen=64,
                                                                                    tsresol=9)]
    t = 1_700_000_000_123_456_789
    for i, p in enumerate(packets):
        iface = i % 3
        data = [ethernet(p), linux_sll2(p), p[:64]][iface]
        units = t // 1000 if iface == 0 else t
        blocks.append(epb(iface, units, data, origlen=len(p) + [14, 20, 0][iface]))
        t += 1_234_567
    path.write_bytes(b"".join(blocks))
    return path


def test_blocks_read_back_as_the_original_frames(tmp_path):
    src = pcapng_input(tmp_path / "in.pcapng")
    out = tmp_path / "x.pcapng"
    w = ExcerptWriter(out, "test")
    rng = random.Random(5)
    late = []
    for b in CaptureReader(src).batches():
        keep = [i for i in range(b.n) if rng.random() < 0.6]
        for i in range(b.n):
            if i not in keep and rng.random() < 0.5:        # decided later, put back at its place
                off, cap = int(b.rec_off[i]), int(b.caplen[i])
                late.append(LateFrame(b.first_frame_no + i, int(b.ts_ns[i]), int(b.if_linktype[b.iface[i]]),
                                      int(b.origlen[i]), bytes(b.buf[off:off + cap]), 1))
        w.add(b, b.first_frame_no, np.array(keep, np.int32), np.zeros(len(keep), np.int32))
        taken = [b.first_frame_no + i for i in keep]
    for f in reversed(late):
        w.add_late(f)
    w.finish([str(src)], ["connection:1", "dht"])
    want = sorted(taken + [f.pos for f in late])
    original, mine = records(src), records(out)
    assert [mine[i + 1] for i in range(len(want))] == [original[n] for n in want]
    rows = pd.read_csv(frames_csv_path(out))
    assert list(rows["original_frame"]) == want
    assert list(rows["evidence"]) == ["dht" if n in {f.pos for f in late} else "connection:1" for n in want]
    assert list(rows["ts"]) == [iso_ns(original[n][0]) for n in want]
    assert len(tshark_frames(out)) == capinfos_count(out) == len(want)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.pcapng", "x.frames.csv", "x.pcapng"]


def test_empty_excerpt_is_a_valid_file(tmp_path):
    out = tmp_path / "x.pcapng"
    w = ExcerptWriter(out, "nothing")
    w.finish(["a.pcap"], ["connection:1"])
    assert capinfos_count(out) == 0 and frames_csv_path(out).read_text() == \
        "frame,original_file,original_frame,ts,evidence\n"
