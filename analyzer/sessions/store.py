"""Finished connection records with bounded memory, read back in first-frame order.

Records are kept pickled (a few hundred bytes each, not the objects' kilobyte
and more): up to ``SPILL_AT`` of them in memory; beyond that each batch is
sorted and written to a temporary file, a *run*, one pickle per record after
its length.  Iterating merges the
runs and the in-memory records by ``sort_key`` and numbers them (``conn_id``
1, 2, ...), so the order, and therefore every output, is the same whatever
the spill threshold or the number of processes that produced the records.
Iteration can be repeated (each pass re-reads the runs).
"""
from __future__ import annotations

import heapq
import operator
import os
import pickle
import struct
import tempfile
from pathlib import Path

from analyzer.sessions.records import ConnectionRecord, record_from_state, record_state

SPILL_AT = 50_000
_LENGTH = struct.Struct("<I")
_KEY = operator.itemgetter(0)
_OBJECT = None       # first item of the state of an object that is not a ConnectionRecord


def _state(r):
    """What is pickled of a record: connection records as flat tuples (records.record_state),
    other objects (tests) as they are."""
    return record_state(r) if isinstance(r, ConnectionRecord) else (_OBJECT, r)


def _from_state(state):
    return state[1] if state[0] is _OBJECT else record_from_state(state)


def sort_key(r) -> tuple:
    return (r.first_file, r.first_frame, r.src_ip, r.src_port, r.dst_ip, r.dst_port, r.last_frame)


class RecordStore:
    def __init__(self, spill_at: int = SPILL_AT, folder: str | Path | None = None):
        """``folder``: where runs are written (a staged run's work folder, which other
        processes read); a private temporary folder when None."""
        self.spill_at = spill_at
        self.folder = str(folder) if folder is not None else None
        self._mem: list = []
        self._runs: list[str] = []
        self._count = 0
        self._dir: str | None = None
        self._owned_dirs: list[str] = []
        self._overrides: dict = {}          # sort key -> record read in place of the stored one

    def add(self, record) -> None:
        self._add(sort_key(record), pickle.dumps(_state(record), protocol=pickle.HIGHEST_PROTOCOL))

    def _add(self, key: tuple, blob: bytes) -> None:
        self._mem.append((key, blob))
        self._count += 1
        if len(self._mem) >= self.spill_at:
            self._spill()

    def extend(self, records) -> None:
        for r in records:
            self.add(r)

    def _spill(self) -> None:
        if self._dir is None:
            if self.folder is not None:
                os.makedirs(self.folder, exist_ok=True)
            self._dir = tempfile.mkdtemp(prefix="bt-analyzer-records-", dir=self.folder)
        self._mem.sort(key=_KEY)
        path = os.path.join(self._dir, f"run{len(self._runs):06d}-{os.getpid()}.pickle")
        with open(path, "wb") as f:
            for _, blob in self._mem:
                # each record a pickle of its own: reading a run back keeps one record at a
                # time (a pickler memo over the whole run would keep all of them alive)
                f.write(_LENGTH.pack(len(blob)))
                f.write(blob)
        self._runs.append(path)
        self._mem = []

    @staticmethod
    def _read_run(path: str):
        with open(path, "rb") as f:
            while head := f.read(_LENGTH.size):
                yield _from_state(pickle.loads(f.read(_LENGTH.unpack(head)[0])))

    def _read_mem(self):
        for _, blob in self._mem:
            yield _from_state(pickle.loads(blob))

    def override(self, records: dict) -> None:
        """Read ``records`` (sort key -> record) in place of the stored records with those keys."""
        self._overrides.update(records)

    def __iter__(self):
        self._mem.sort(key=_KEY)
        streams = [self._read_run(p) for p in self._runs] + [self._read_mem()]
        for i, r in enumerate(heapq.merge(*streams, key=sort_key), 1):
            if self._overrides:
                r = self._overrides.get(sort_key(r), r)
            r.conn_id = i
            yield r

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, i: int):
        if not self._runs and not self._overrides:
            self._mem.sort(key=_KEY)
            r = _from_state(pickle.loads(self._mem[i][1]))
            r.conn_id = (i if i >= 0 else self._count + i) + 1
            return r
        return list(self)[i]

    @classmethod
    def merged(cls, stores: list["RecordStore"]) -> "RecordStore":
        """One store over the records of several (e.g. one per partition process)."""
        out = cls(stores[0].spill_at if stores else SPILL_AT)
        for s in stores:
            if s._dir:
                out._owned_dirs.append(s._dir)
            out._runs.extend(s._runs)
            out._count += s._count - len(s._mem)
            for key, blob in s._mem:
                out._add(key, blob)
            out._overrides.update(s._overrides)
        return out

    def close(self) -> None:
        """Delete the temporary runs."""
        for p in self._runs:
            Path(p).unlink(missing_ok=True)
        for d in [self._dir, *self._owned_dirs]:
            if d:
                try:
                    os.rmdir(d)
                except OSError:
                    pass
        self._runs = []
