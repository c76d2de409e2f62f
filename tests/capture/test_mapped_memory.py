"""A mapped capture's pages stay given back behind the readers, even when a TCP stream goes quiet
with deliveries it left in place (``flows._tcp``: pending copies for its comparison ring) and speaks
again tens of MB later.  It used to copy them then, from pages already given back: they came back
and stayed for the rest of the file (peak RSS 331-697 MB on the bench's 8-connection 4.25 GB file,
against 88-122 MB now).  Checked here on the pages themselves (/proc/self/pagemap), in this process."""
from __future__ import annotations

import mmap
import socket
import struct
from pathlib import Path

import numpy as np
import pytest

from analyzer.capture import mapping, reader as reader_mod
from analyzer.capture.mapping import redrop
from analyzer.capture.reader import CaptureReader
from analyzer.pipeline.flows import Flows
from craft import ethernet
from flows.craft_tcp import seeder_stream

PAGEMAP = Path("/proc/self/pagemap")
MSS = 1448


def tcp(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes = b"") -> bytes:
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 0, 0x4000, 64, 6, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return ethernet(ip + struct.pack(">HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload)


def bulk(client: str, cport: int, data: bytes):
    """Frames of a connection whose server (10.0.0.2:6881) sends ``data``: the handshake, then
    (a generator) each segment, the client acknowledging every one."""
    c_isn, s_isn = 1000, 5000
    yield tcp(client, "10.0.0.2", cport, 6881, c_isn, 0, 0x02)
    yield tcp("10.0.0.2", client, 6881, cport, s_isn, c_isn + 1, 0x12)
    yield tcp(client, "10.0.0.2", cport, 6881, c_isn + 1, s_isn + 1, 0x10)
    for off in range(0, len(data), MSS):
        seg = data[off:off + MSS]
        yield tcp("10.0.0.2", client, 6881, cport, s_isn + 1 + off, c_isn + 1, 0x18, seg)
        yield tcp(client, "10.0.0.2", cport, 6881, c_isn + 1, s_isn + 1 + off + len(seg), 0x10)


def write(path: Path, frames) -> list[int]:
    """A classic pcap of ``frames``; returns each frame's file offset."""
    offsets = []
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        pos, t = 24, 1_700_000_000_000_000
        for fr in frames:
            t += 1000
            f.write(struct.pack("<IIII", t // 1_000_000, t % 1_000_000, len(fr), len(fr)) + fr)
            offsets.append(pos + 16)
            pos += 16 + len(fr)
    return offsets


def resident(addr: int, nbytes: int) -> int:
    """Pages of [addr, addr + nbytes) mapped in this process."""
    first = addr // mmap.PAGESIZE
    with open(PAGEMAP, "rb") as f:
        f.seek(first * 8)
        entries = np.frombuffer(f.read(-(-nbytes // mmap.PAGESIZE) * 8), np.uint64)
    return int(np.count_nonzero(entries >> np.uint64(63)))


@pytest.mark.skipif(not PAGEMAP.exists(), reason="no /proc/self/pagemap")
def test_a_quiet_stream_does_not_bring_pages_back(tmp_path, monkeypatch):
    """Connection A carries 300 kB, goes quiet while B carries 30 MB, says 1 segment more, then B
    carries 30 MB more.  A's first bytes lie where the mapping gave its pages back long before A
    speaks again: when the file ends, none of those pages is in memory."""
    monkeypatch.setattr(reader_mod, "MAP_AT", 1 << 20)          # mapped, as a large capture is
    monkeypatch.setattr(mapping, "REDROP", ())                   # the streams' own doing, not the backstop's
    a_data = bytes(seeder_stream(bytes(20), pieces=4, blocks_per_piece=5).data)[:300_000 + MSS]
    b_data = bytes(seeder_stream(bytes(range(20)), pieces=120, blocks_per_piece=32).data)
    half = len(b_data) // 2 // MSS * MSS
    a = bulk("10.0.0.1", 50000, a_data)
    b = bulk("10.0.0.3", 50001, b_data)
    frames = [next(a) for _ in range(3)] + [next(a) for _ in range(2 * (300_000 // MSS))]
    a_end = len(frames)
    while True:                              # B's first half
        fr = next(b)
        frames.append(fr)
        if len(frames) > a_end + 3 + 2 * (half // MSS):
            break
    frames += list(a)                        # A's last segment, 30 MB later
    frames += list(b)
    path = tmp_path / "quiet.pcap"
    offsets = write(path, frames)
    a_span = (offsets[3], offsets[a_end - 1])           # A's early data in the file
    assert offsets[-1] > 60 << 20 and a_span[1] < 1 << 20

    flows = Flows([], verify=False)
    checked = []
    r = CaptureReader(path)
    for batch in r.batches():
        flows.feed_batch(batch, 0)
        base = batch.buf.__array_interface__["data"][0]
        if int(batch.rec_off[0]) > offsets[a_end + 3 + 2 * (half // MSS)] + (24 << 20):
            # well past A's last word: every page of A's early bytes was given back, and stays so
            checked.append(resident(base + a_span[0], a_span[1] - a_span[0]))
    flows.end_of_file()
    part = flows.finish()
    assert checked and max(checked) == 0, checked
    assert part.frames == len(frames)


@pytest.mark.skipif(not PAGEMAP.exists(), reason="no /proc/self/pagemap")
def test_pages_read_again_behind_are_given_back_at_the_next_period(tmp_path):
    """The backstop (``mapping.redrop``): pages read after they were given back (anything reading
    late) are given back again when the give-back passes the next multiple of a period whose window
    covers them: 512 MiB behind every 64 MiB, 4 GiB behind every 512 MiB."""
    path = tmp_path / "f"
    with open(path, "wb") as f:
        f.truncate(1 << 30)
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        base = np.frombuffer(mm, np.uint8).__array_interface__["data"][0]
        try:
            def touch(at: int) -> None:
                mm[at]

            for at in (1 << 20, 100 << 20, 600 << 20):
                touch(at)
            assert resident(base + (1 << 20), 4096) == 1
            redrop(mm, 705 << 20, 710 << 20)                      # no multiple of 64 MiB passed
            assert resident(base + (600 << 20), 4096) == 1
            redrop(mm, 705 << 20, 768 << 20)                      # 768 MiB: 512 MiB behind it again
            assert resident(base + (600 << 20), 4096) == 0 and resident(base + (1 << 20), 4096) == 1
            redrop(mm, 1000 << 20, 1024 << 20)                    # 1 GiB: a multiple of 512 MiB, 4 GiB behind
            assert resident(base + (1 << 20), 4096) == 0 and resident(base + (100 << 20), 4096) == 0
        finally:
            del base
            mm.close()
