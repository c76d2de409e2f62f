"""The SHA-1 worker thread (analyzer/evidence/_sha1.pyx) against hashlib."""
from __future__ import annotations

import hashlib
import os
import random

import pytest

from analyzer.evidence import _sha1

pytestmark = pytest.mark.skipif(not _sha1.available(), reason="no libcrypto to load")


def test_digest_equals_hashlib_whatever_the_chunking():
    rng = random.Random(7)
    data = rng.randbytes(300_000)
    for _ in range(20):
        job, pos = _sha1.Sha1Job(), 0
        while pos < len(data):
            n = rng.choice([1, 13, 16384, 50_000])
            job.update(data[pos:pos + n] if rng.random() < 0.5 else memoryview(data)[pos:pos + n])
            pos += n
        assert job.digest() == hashlib.sha1(data).digest()
    empty = _sha1.Sha1Job()
    assert empty.digest() == hashlib.sha1().digest()


def test_many_pieces_in_flight_keep_their_own_digests():
    # more blocks than the ring holds: the analysis waits for room, digests stay per piece
    pieces = [[os.urandom(16384) for _ in range(8)] for _ in range(1200)]
    jobs = []
    for blocks in pieces:
        job = _sha1.Sha1Job()
        for b in blocks:
            job.update(b)
        job.final()
        jobs.append(job)
    assert [j.digest() for j in jobs] == [hashlib.sha1(b"".join(p)).digest() for p in pieces]
    assert all(j.ready() for j in jobs)


def test_abandoned_and_aborted_jobs_are_released():
    block = os.urandom(16384)
    for i in range(2000):
        job = _sha1.Sha1Job()
        job.update(block)
        if i % 2:
            job.abort()
        del job                        # waits for the worker to be past its blocks
    job = _sha1.Sha1Job()
    job.update(block)
    assert job.digest() == hashlib.sha1(block).digest()
    with pytest.raises(ValueError):
        job.update(block)


def test_a_forked_child_has_its_own_worker():
    block = os.urandom(65536)
    parent = _sha1.Sha1Job()
    parent.update(block)
    pid = os.fork()
    if pid == 0:                       # the child: the parent's job is never waited for
        try:
            child = _sha1.Sha1Job()
            child.update(block)
            os._exit(0 if child.digest() == hashlib.sha1(block).digest() else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert parent.digest() == hashlib.sha1(block).digest()


def test_several_threads_feed_jobs_at_once():
    # more blocks in flight than the ring holds, from 4 threads: no deadlock, right digests
    import threading
    blocks = [os.urandom(16384) for _ in range(16)]
    want = hashlib.sha1(b"".join(blocks)).digest()
    bad = []

    def run():
        jobs = []
        for _ in range(300):
            job = _sha1.Sha1Job()
            for b in blocks:
                job.update(b)
            job.final()
            jobs.append(job)
        bad.extend(1 for j in jobs if j.digest() != want)
    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads) and not bad
