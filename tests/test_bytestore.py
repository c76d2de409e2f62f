"""ByteStore: first copy of every byte wins, differing bytes of later copies counted, linear."""
from __future__ import annotations

import time

from hypothesis import given, settings, strategies as st

from analyzer.bytestore import ByteStore

copies = st.lists(st.tuples(st.integers(0, 64), st.binary(min_size=0, max_size=24)), max_size=12)


@settings(max_examples=300, deadline=None)
@given(copies)
def test_against_a_byte_by_byte_reference(chunks):
    store = ByteStore()
    ref: dict[int, int] = {}
    for off, chunk in chunks:
        store.grow(off + len(chunk))
        new, differ = store.put(off, chunk)
        exp_new = sum(1 for i in range(len(chunk)) if off + i not in ref)
        exp_differ = sum(1 for i, b in enumerate(chunk) if off + i in ref and ref[off + i] != b)
        for i, b in enumerate(chunk):
            ref.setdefault(off + i, b)
        assert (new, differ) == (exp_new, exp_differ)
    assert store.filled == len(ref)
    assert all(store.data[i] == b and store.have[i] for i, b in ref.items())
    end = max(ref, default=-1) + 1
    assert store.holds(end) == (len(ref) == end)


def test_mark_counts_bytes_present_without_data():
    s = ByteStore(10)
    assert s.put(0, b"abc") == (3, 0)
    assert s.mark(2, 6) == 3 and s.filled == 6
    assert s.put(4, b"\0xy") == (1, 1)          # bytes 4-5 were marked (zeros): "x" differs at 5
    assert s.holds(7) and not s.holds(8)


def test_many_small_overlapping_copies_stay_linear():
    """Reverse-order single bytes over a held range: each put costs its own length."""
    s = ByteStore(1 << 16)
    s.put(0, bytes(1 << 16))
    t = time.perf_counter()
    for i in range((1 << 16) - 1, -1, -1):
        s.put(i, b"\0")
    assert time.perf_counter() - t < 2.0 and s.filled == 1 << 16
