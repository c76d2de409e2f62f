"""The short fuzz pass of the test suite: every fuzz target on every committed seed (every crafted
input of issue 12 among them) and on a fixed, seeded set of mutations of them.  ``make fuzz`` runs
the same targets coverage-guided (atheris) for a fixed time."""
from __future__ import annotations

import gzip
import random
import struct

import pytest

from fuzz import corpus
from fuzz.targets import TARGETS

MUTATIONS = 2000                # per target: with the seeds, a few seconds for all targets
SLOW_SEEDS = {"interfaces-65600.pcapng.gz"}     # 0.3 s each: run once, not mutated
INTERESTING = [0, 1, 0x7F, 0x80, 0xFF]
INTERESTING32 = [0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFF, 0x10000, 16393, 1 << 20]


def mutate(data: bytes, other: bytes, rnd: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        kind = rnd.randrange(8)
        n = len(b)
        if kind == 0 and n:
            b[rnd.randrange(n)] ^= 1 << rnd.randrange(8)
        elif kind == 1 and n:
            b[rnd.randrange(n)] = rnd.choice(INTERESTING)
        elif kind == 2 and n >= 4:
            i = rnd.randrange(n - 3)
            b[i:i + 4] = struct.pack(rnd.choice("<>") + "I", rnd.choice(INTERESTING32))
        elif kind == 3:
            i = rnd.randint(0, n)
            b[i:i] = rnd.randbytes(rnd.randint(1, 16))
        elif kind == 4 and n:
            i = rnd.randrange(n)
            del b[i:i + rnd.randint(1, 64)]
        elif kind == 5 and n:
            i = rnd.randrange(n)
            j = min(n, i + rnd.randint(1, 256))
            k = rnd.randint(0, n)
            b[k:k] = b[i:j]
        elif kind == 6 and n:
            del b[rnd.randint(0, n):]
        elif kind == 7 and other:
            i = rnd.randint(0, len(other))
            b = b[:rnd.randint(0, n)] + bytearray(other[i:])
    return bytes(b)


def seeds(target: str) -> dict[str, bytes]:
    d = corpus.CORPUS / target
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def test_committed_corpus_is_up_to_date():
    """Every crafted input is committed as built (python -m fuzz.corpus from tests/ rewrites it)."""
    built = corpus.build()
    assert sorted(built) == sorted(TARGETS)
    for target, expected in built.items():
        have = seeds(target)
        assert sorted(have) == sorted(expected), f"corpus/{target} differs from fuzz/corpus.py: regenerate it"
        for name, data in expected.items():
            same = gzip.decompress(have[name]) == gzip.decompress(data) if name.endswith(".gz") else have[name] == data
            assert same, f"corpus/{target}/{name} differs from fuzz/corpus.py: regenerate it"


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_seeds_and_seeded_mutations(target):
    f = TARGETS[target]
    given = seeds(target)
    for name, data in given.items():
        f(data)
    pool = [v for k, v in given.items() if k not in SLOW_SEEDS]
    rnd = random.Random(f"bt-analyzer fuzz {target}")
    for _ in range(MUTATIONS):
        data = mutate(rnd.choice(pool), rnd.choice(pool), rnd)
        try:
            f(data)
        except Exception as e:
            raise AssertionError(f"{target} on {data[:200]!r}... ({len(data)} bytes): {type(e).__name__}: {e}") from e
