"""The SHA-1 worker thread (analyzer/evidence/_sha1.pyx) against hashlib."""
from __future__ import annotations

import hashlib
import os
import random
import time

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


@pytest.fixture(params=["sha-ni", "openssl"])
def engine(request):
    """Each engine the worker has on this machine (OpenSSL always; the SHA extensions' code,
    several pieces at once, where the processor has them)."""
    if request.param == "sha-ni" and _sha1.engine() != "sha-ni":
        pytest.skip("no SHA extensions on this processor")
    _sha1.use_openssl(request.param == "openssl")
    yield request.param
    _sha1.use_openssl(False)


def test_pieces_hashed_several_at_once_equal_hashlib_whatever_the_split(engine):
    # jobs fed interleaved in runs of any size (partial 64-byte blocks on any side of a group,
    # lengths around the padding limits), some aborted, some empty: each digest is hashlib's
    rng = random.Random(11)
    lengths = [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 16384, 16385, 65536 + 7,
               300_000] + [rng.randrange(0, 200_000) for _ in range(40)]
    for rounds in range(3):
        rng.shuffle(lengths)
        datas = [rng.randbytes(n) for n in lengths]
        jobs = [_sha1.Sha1Job() for _ in datas]
        pos = [0] * len(datas)
        aborted = set(rng.sample(range(len(datas)), 5))
        live = list(range(len(datas)))
        while live:
            k = rng.choice(live[:4])                       # a few pieces in progress at once
            n = rng.choice([1, 13, 64, 100, 1448, 16384, 50_000])
            chunk = datas[k][pos[k]:pos[k] + n]
            jobs[k].update(chunk if rng.random() < 0.7 else memoryview(chunk))
            pos[k] += len(chunk)
            if pos[k] >= len(datas[k]):
                live.remove(k)
                jobs[k].abort() if k in aborted else jobs[k].final()
        for k, (job, data) in enumerate(zip(jobs, datas)):
            if k not in aborted:
                assert job.digest() == hashlib.sha1(data).digest(), (engine, len(data))


def _in_blocks(pieces: list[bytes]) -> list:
    """One job a piece, fed in 16 KiB blocks, one piece after the other, each final as the next starts."""
    jobs = []
    for data in pieces:
        job = _sha1.Sha1Job()
        for a in range(0, len(data), 16384):
            job.update(data[a:a + 16384])
        job.final()
        jobs.append(job)
    return jobs


def test_in_order_pieces_of_one_connection_equal_hashlib(engine):
    # the usual stream: 16 KiB blocks, one piece after the other, each final as the next starts
    rng = random.Random(12)
    pieces = [rng.randbytes(rng.choice([1 << 18, 1 << 20, (1 << 20) - 3000])) for _ in range(24)]
    assert [j.digest() for j in _in_blocks(pieces)] == [hashlib.sha1(d).digest() for d in pieces]


def test_a_lone_final_piece_becomes_ready_without_a_wait(engine):
    job = _sha1.Sha1Job()
    job.update(b"x" * 1000)
    job.final()                          # one final piece: the worker is not woken for it ...
    deadline = time.monotonic() + 5
    while not job.ready() and time.monotonic() < deadline:
        pass                             # ... but asking wakes it
    assert job.ready() and job.digest() == hashlib.sha1(b"x" * 1000).digest()


def test_pieces_in_order_are_mostly_hashed_several_at_once():
    if _sha1.engine() != "sha-ni":
        pytest.skip("no SHA extensions on this processor")
    rng = random.Random(14)
    pieces = [rng.randbytes(1 << 20) for _ in range(16)]
    all0, paired0, single0 = _sha1.fed_bytes()
    assert [j.digest() for j in _in_blocks(pieces)] == [hashlib.sha1(d).digest() for d in pieces]
    three, paired, single = _sha1.fed_bytes()
    assert three - all0 + paired - paired0 + single - single0 == 16 << 20
    assert three - all0 + paired - paired0 >= 8 << 20     # the worker waited for several pieces


def test_jobs_of_both_engines_in_flight_together():
    # the engine is the job's, fixed when it is made: switching mid-way mixes them in the ring
    rng = random.Random(15)
    datas = [rng.randbytes(rng.randrange(1, 100_000)) for _ in range(12)]
    jobs = []
    try:
        for k, data in enumerate(datas):
            _sha1.use_openssl(k % 2 == 1)
            jobs.append(_sha1.Sha1Job())
        _sha1.use_openssl(False)
        for a in range(0, 100_000, 7000):
            for job, data in zip(jobs, datas):
                if a < len(data):
                    job.update(data[a:a + 7000])
        assert [j.digest() for j in jobs] == [hashlib.sha1(d).digest() for d in datas]
    finally:
        _sha1.use_openssl(False)
