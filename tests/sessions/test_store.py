"""RecordStore: bounded memory, same order and numbering whatever the spilling."""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from analyzer.analysis import analyze
from summaries import connections_csv, summarize
from analyzer.sessions import store as store_mod
from analyzer.sessions.store import RecordStore

SAMPLE = Path(__file__).resolve().parent.parent.parent / "captures" / "sample-swarm.pcap"


class R:
    def __init__(self, i):
        self.first_file, self.first_frame = i % 3, i
        self.src_ip, self.src_port, self.dst_ip, self.dst_port, self.last_frame = "a", 1, "b", 2, i
        self.conn_id = None


@pytest.mark.parametrize("spill_at", [1, 3, 7, 1000])
def test_order_and_numbering_do_not_depend_on_spilling(spill_at):
    items = list(range(50))
    random.Random(1).shuffle(items)
    s = RecordStore(spill_at)
    s.extend(R(i) for i in items)
    got = [(r.first_file, r.first_frame, r.conn_id) for r in s]
    want = [(f, i, n) for n, (f, i) in enumerate(sorted((i % 3, i) for i in range(50)), 1)]
    assert got == want and len(s) == 50
    assert [r.first_frame for r in s] == [r.first_frame for r in s]     # repeatable
    dirs = [s._dir] if s._dir else []
    s.close()
    assert all(not Path(d).exists() for d in dirs)


def test_merged_stores():
    a, b = RecordStore(4), RecordStore(4)
    a.extend(R(i) for i in range(0, 20, 2))
    b.extend(R(i) for i in range(1, 20, 2))
    m = RecordStore.merged([a, b])
    assert len(m) == 20
    assert [r.conn_id for r in m] == list(range(1, 21))
    m.close()


def test_outputs_identical_when_records_spill(monkeypatch):
    ref = analyze([SAMPLE], local=["127.0.0.3"], warn=lambda m: None)
    want = (summarize(ref), connections_csv(ref))
    monkeypatch.setattr(store_mod, "SPILL_AT", 1)
    monkeypatch.setattr(RecordStore.__init__, "__defaults__", (1, None))
    spilled = analyze([SAMPLE], local=["127.0.0.3"], warn=lambda m: None)
    assert spilled.records._runs, "the records should have spilled to disk"
    assert (summarize(spilled), connections_csv(spilled)) == want
    spilled.records.close()


def test_reading_a_run_keeps_one_record_at_a_time():
    """A run read back must not keep the records already yielded (a pickle memo over the whole
    run did: a spilled case cost the memory of a whole run, and garbage collections over it)."""
    import weakref
    s = RecordStore(1000)
    s.extend(R(i) for i in range(1000))
    assert s._runs and not s._mem
    refs = []
    for i, r in enumerate(s):
        refs.append(weakref.ref(r))
        del r
        if i == 500:
            assert sum(ref() is not None for ref in refs) <= 2
    assert len(refs) == 1000
    s.close()
