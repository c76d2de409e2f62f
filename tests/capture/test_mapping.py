"""capture.mapping: the scan and the hash of a mapped file in step, pages faulted ahead and given back."""
from __future__ import annotations

import hashlib
import os
import threading
import time

import numpy as np
import pytest

from analyzer.capture import hashing, mapping, reader
from analyzer.capture.hashing import FileHasher
from analyzer.capture.mapping import MappedFile

SAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "captures", "sample-swarm.pcap")


@pytest.fixture
def small(monkeypatch):
    monkeypatch.setattr(mapping, "DROP", 4096)
    monkeypatch.setattr(mapping, "KEEP_BEHIND", 8192)
    monkeypatch.setattr(mapping, "MAX_LAG", 64 << 10)
    monkeypatch.setattr(mapping, "AHEAD", 16 << 10)
    monkeypatch.setattr(hashing, "MAPPED_CHUNK", 20 << 10)


@pytest.fixture
def blob(tmp_path):
    p = tmp_path / "blob"
    p.write_bytes(np.random.default_rng(7).integers(0, 256, 3 << 20, np.uint8).tobytes())
    return p


def pagers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "bt-analyzer-pager"]


def test_scan_alone_gives_pages_back_and_the_pager_goes_ahead(small, blob):
    with open(blob, "rb") as f:
        m = MappedFile(f.fileno(), None)
        for pos in range(0, m.size, 100_000):
            m.scan_to(pos)
            assert m.given_back <= pos and pos - m.given_back < mapping.KEEP_BEHIND + mapping.DROP + 4096
            assert m._state[2] <= pos + mapping.AHEAD + mapping.PAGE      # never further ahead than that
        m.scan_done()
        deadline = time.monotonic() + 5
        while m._state[2] < m.size and time.monotonic() < deadline:
            time.sleep(0.01)
        assert m._state[2] == m.size              # then to the end
        assert m.given_back == m.size & ~(mapping.PAGE - 1)
        m.close()
    assert not pagers()


def test_scan_and_hash_stay_within_the_lag_and_the_digest_is_the_files(small, blob):
    h = FileHasher()
    lags = []
    with open(blob, "rb") as f:
        m = MappedFile(f.fileno(), 0)
        h.submit_mapped(m, 0)
        for pos in range(0, m.size, 7_000):
            m.scan_to(pos)
            lags.append(m.scanned - m.hashed)
        m.scan_done()
        h.wait()
        m.close()
    assert h.h.hexdigest() == hashlib.sha256(blob.read_bytes()).hexdigest()
    assert max(lags) <= mapping.MAX_LAG
    assert m.given_back == m.size & ~(mapping.PAGE - 1)


def test_a_hash_ahead_waits_for_the_scan_and_is_released_when_it_ends(small, blob):
    h = FileHasher()
    with open(blob, "rb") as f:
        m = MappedFile(f.fileno(), 0)
        h.submit_mapped(m, 0)
        time.sleep(0.3)
        assert m.hashed <= mapping.MAX_LAG + hashing.MAPPED_CHUNK     # held back: the scan has not moved
        m.scan_done()                                                   # e.g. the scan stopped at damage
        h.wait()
        m.close()
    assert m.hashed == m.size
    assert h.h.hexdigest() == hashlib.sha256(blob.read_bytes()).hexdigest()


def test_a_stalled_hash_stops_holding_the_scan_back(small, blob, monkeypatch):
    monkeypatch.setattr(mapping, "STALL_S", 0.2)
    with open(blob, "rb") as f:
        m = MappedFile(f.fileno(), 0)            # a hash that never comes
        t0 = time.monotonic()
        for pos in range(0, m.size, 50_000):
            m.scan_to(pos)
        assert m.unthrottled and time.monotonic() - t0 < 3
        assert m.scanned - m.given_back <= mapping.MAX_LAG + mapping.KEEP_BEHIND + mapping.DROP + 4096  # bounded
        m.close()


def test_a_failing_hash_releases_the_scan(small, blob):
    class Boom:
        def update(self, data):
            raise RuntimeError("disk gone")

    with open(blob, "rb") as f:
        m = MappedFile(f.fileno(), 0)
        worker = FileHasher.pool()
        task = worker.submit(lambda: (m.hash_chunk(Boom(), 0, 4096)))
        with pytest.raises(RuntimeError):
            task.result()
        m.hash_failed()
        for pos in range(0, m.size, 100_000):
            m.scan_to(pos)                      # returns: nothing to wait for
        m.close()


def test_reader_abandoned_mid_file_stops_its_pager(small, monkeypatch):
    monkeypatch.setattr(reader, "MAP_AT", 0)
    monkeypatch.setattr(reader, "MAPPED_WINDOW", 16 << 10)
    r = reader.CaptureReader(SAMPLE, hasher=FileHasher())
    it = r.batches()
    next(it)
    assert pagers()
    it.close()                                   # as a consumer that stops early does
    assert not pagers()
    assert r.sha256 == hashlib.sha256(open(SAMPLE, "rb").read()).hexdigest()


def _wait(cond, state=None, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert cond(), state


def test_the_pager_stays_ahead_of_its_readers_and_ends_at_the_end():
    from analyzer.capture import _scan
    buf = np.zeros(64 << 10, np.uint8)
    state = np.zeros(3, np.int64)
    t = threading.Thread(target=_scan.run_pager, args=(buf, state, 8192, 4096))
    t.start()
    _wait(lambda: state[_scan.PAGER_DONE] == 8192, state)           # as far ahead as it was asked
    time.sleep(0.01)
    assert state[_scan.PAGER_DONE] == 8192 and t.is_alive()         # ... and no further, waiting
    state[_scan.PAGER_LEAD] = 40 << 10                              # a reader moved on
    _wait(lambda: state[_scan.PAGER_DONE] == 48 << 10, state)
    state[_scan.PAGER_LEAD] = len(buf)
    t.join(5)                                                       # the whole file done: it ends itself
    assert not t.is_alive() and state[_scan.PAGER_DONE] == len(buf)
    state[:] = 0
    t = threading.Thread(target=_scan.run_pager, args=(buf, state, 8192, 4096))
    t.start()
    _wait(lambda: state[_scan.PAGER_DONE] == 8192, state)
    state[_scan.PAGER_STOP] = 1                                     # a reader that stops early stops it
    t.join(5)
    assert not t.is_alive()


def test_a_damaged_pcap_read_mapped_gives_the_batches_of_one_read_into_buffers(small, monkeypatch, tmp_path):
    """The mapped scan (its pager, its prefetch ahead of the records) gives the batches of the
    same file read into buffers, damage included."""
    data = bytearray(open(SAMPLE, "rb").read())
    at = 24
    while at < 200_000:                                             # the first record header past 200 kB
        at += 16 + int.from_bytes(data[at + 8:at + 12], "little")
    data[at + 8:at + 12] = b"\xff" * 4                              # its length destroyed
    p = tmp_path / "damaged.pcap"
    p.write_bytes(bytes(data))
    monkeypatch.setattr(reader, "MAPPED_WINDOW", 16 << 10)

    def read(map_at: int):
        monkeypatch.setattr(reader, "MAP_AT", map_at)
        r = reader.CaptureReader(str(p))
        out = [b"", b"", b"", b""]                 # the records' file offsets, lengths and times
        for b in r.batches():
            assert (r._mm is not None) == (map_at == 0)
            for k, a in enumerate((b.rec_off[:b.n] + b.base, b.caplen[:b.n], b.origlen[:b.n], b.ts_ns[:b.n])):
                out[k] += a.tobytes()
        return out, r.report.errors, r.report.damaged_bytes

    mapped, buffered = read(0), read(1 << 62)
    assert mapped == buffered and buffered[1] and buffered[2] > 0
    assert not pagers()


@pytest.mark.parametrize("name", ["sample-swarm.pcap", "ppa1e_torrential-slowness.pcap", "ndpi_bittorrent.pcap",
                                  "arkime_bt-tcp.pcap", "ndpi_bittorrent_tcp_miss.pcapng"])
def test_a_mapped_capture_gives_the_figures_of_a_read_one(name, monkeypatch):
    """Read mapped (its frames left in place: TCP streams note where delivered bytes lie instead
    of copying them, flows._tcp) or read into buffers (every delivery copied): the same summary
    and connections table."""
    import sys
    from pathlib import Path
    from analyzer.analysis import analyze
    from analyzer.findings import build_findings
    from analyzer.output.tables import connections_csv
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from craft import public_captures_dir
    from summaries import summarize
    path = Path(SAMPLE) if name == "sample-swarm.pcap" else public_captures_dir() / name
    out = []
    for map_at in (1 << 62, 0):
        monkeypatch.setattr(reader, "MAP_AT", map_at)
        result = analyze([path], warn=lambda m: None)
        out.append((summarize(result), connections_csv(build_findings(result))))
        result.close()
    assert out[0] == out[1]


def test_no_stream_keeps_a_mapped_file_once_it_is_read(monkeypatch):
    """TCP streams leave delivered bytes in the mapped file until needed (flows._tcp): the end
    of the file copies them into the rings, so the mapping (and its file descriptor) goes."""
    import gc
    import weakref
    from analyzer.pipeline.flows import Flows
    monkeypatch.setattr(reader, "MAP_AT", 0)
    flows = Flows([], None, verify=True)
    r = reader.CaptureReader(SAMPLE)
    refs = []
    for b in r.batches():
        assert b.stable
        refs.append(weakref.ref(b.buf))
        flows.feed_batch(b, 0)
    del b
    gc.collect()
    held = {id(x()) for x in refs if x() is not None}
    assert held                                           # streams hold the mapping (bytes left there)
    flows.end_of_file()
    gc.collect()
    assert all(x() is None for x in refs)
    flows.finish()
