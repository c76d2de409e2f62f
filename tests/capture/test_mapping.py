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
            assert m.given_back <= pos and pos - m.given_back < mapping.DROP + 4096
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
        assert m.scanned - m.given_back <= mapping.MAX_LAG + mapping.DROP + 4096    # memory stays bounded
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
