"""The work folder of a staged run: every finished task's output, kept so that a run can resume.

Layout::

    WORK/run.json                        what the run is (tool version, shards, options that matter)
    WORK/map/<input sha256>-<K>/i<N>/    a finished map task of input N: its K spill files and result.pickle
    WORK/flows/<key>/                    a finished flows task: result.pickle, its record runs and (when
                                         pieces are verified) its block log and spill, verified pieces
    WORK/evidence/                       the evidence stage's tasks (split pieces replayed, pieces kept)
    WORK/errors.log                      tracebacks of internal errors confined to one input

A map task's output is keyed by the SHA-256 of its input and the number of
shards K (what it writes depends on nothing else); a flows task's by its
shard, K, the keys of the map outputs it read, in input order, and what it
verifies (the given torrents' info hashes and whether pieces are kept for
carving).  A task
writes into a folder of its own and marks it finished last
(``result.pickle``, written as a new file and renamed into place), so an
interrupted task (Ctrl-C, SIGTERM, SIGKILL, a dead worker) leaves nothing
that looks finished; ``--resume`` reuses every finished output whose key
matches and redoes the rest.  Results are plain pickles of this tool's own
types: the folder is a cache of the run, not an exchange format, and
``run.json`` records the version that wrote it (another version starts
afresh).
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from pathlib import Path

from analyzer import __version__

FORMAT = 3          # bump when the spill or result layout changes


def map_folder(root: Path, key: str, file_idx: int) -> Path:
    """Where input ``file_idx``'s map output with ``key`` is kept: a folder per input, since a case
    may hold two inputs with the same bytes (same key), each mapped by its own task."""
    return Path(root) / "map" / key / f"i{file_idx:06d}"


def install(staging: Path, final: Path, spills: list[Path]) -> list[Path]:
    """Move a task's staging folder into place as ``final`` (replacing a half-written earlier
    attempt); returns the paths of its ``spills`` there."""
    shutil.rmtree(final, ignore_errors=True)
    staging.mkdir(parents=True, exist_ok=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, final)
    return [final / p.name for p in spills]


def map_key(sha256: str, shards: int, copy: bool = False) -> str:
    """``copy``: the map output is a copy of the frames (``--spill copy``), not an index."""
    return f"{sha256}-{shards}" + ("-copy" if copy else "")


def flows_key(shard: int, shards: int, map_keys: list[str], verify) -> str:
    """``verify``: what the shard verifies (the given torrents' info hashes, sorted, and the carve flag)."""
    h = hashlib.sha256(json.dumps([FORMAT, __version__, shard, shards, map_keys, verify]).encode())
    return f"s{shard:04d}-{h.hexdigest()[:32]}"


def save_result(folder: Path, result) -> None:
    """Write ``result.pickle`` into ``folder`` as a new file renamed into place: the folder is
    finished only once this returns."""
    tmp = folder / f".result.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / "result.pickle")


def load_result(folder: Path):
    """The result of a finished task folder, or None (not finished, or unreadable)."""
    try:
        with open(folder / "result.pickle", "rb") as f:
            return pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError):
        return None


def _stamp(shards) -> dict:
    """What ``run.json`` says of a run: what its outputs can be reused by."""
    return {"tool": __version__, "format": FORMAT, "shards": shards}


def _recorded(root: Path) -> dict | None:
    """The stamp an earlier run left in ``root`` (None: none, or unreadable)."""
    try:
        old = json.loads((Path(root) / "run.json").read_text())
    except (OSError, ValueError):
        return None
    return old if isinstance(old, dict) else None


def staged_shards(root: Path) -> int | None:
    """The shard count of an earlier staged run of this version whose work folder is ``root``
    (what ``--resume`` can reuse), or None."""
    old = _recorded(root) or {}
    shards = old.get("shards")
    return shards if isinstance(shards, int) and shards >= 1 and old == _stamp(shards) else None


class WorkFolder:
    def __init__(self, root: Path, shards: int, resume: bool):
        self.root = Path(root).absolute()      # tasks may run in other processes, other folders
        stamp = _stamp(shards)
        meta = self.root / "run.json"
        if self.root.exists() and not resume:
            shutil.rmtree(self.root)
        elif resume and meta.exists() and _recorded(self.root) != stamp:
            shutil.rmtree(self.root)             # another version or shard count: nothing reusable
        (self.root / "map").mkdir(parents=True, exist_ok=True)
        (self.root / "flows").mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps(stamp))

    def map_folder(self, key: str, file_idx: int) -> Path:
        return map_folder(self.root, key, file_idx)

    def flows_folder(self, key: str) -> Path:
        return self.root / "flows" / key

    def finished_map(self, key: str):
        """A finished map output of an input with this key (any input: two inputs with the same
        bytes have the same output), or None."""
        folder = self.root / "map" / key
        for done in sorted(folder.glob("*/result.pickle")) if folder.is_dir() else ():
            found = load_result(done.parent)
            if found is not None:
                return found
        return None

    def finished_flows(self, key: str):
        return load_result(self.flows_folder(key))
