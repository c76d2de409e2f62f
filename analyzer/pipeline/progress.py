"""What a run tells while it runs: a progress bar on a terminal, JSON lines for batch systems.

``Progress`` is what the stages report to: the bytes of input to read, then
bytes read as they are read, and every task that ends.  ``TerminalProgress``
draws a bar (rich) with bytes done and total, the rate, files done and the
time left; ``JsonLinesProgress`` writes one JSON object per finished task and
one every few seconds (``{"event": "progress", ...}``), for schedulers that
collect a job's output.  ``Progress`` itself says nothing (``--quiet``).
"""
from __future__ import annotations

import json
import sys
import threading
import time


class Progress:
    """Silent base: the interface the stages call."""

    def begin(self, total_bytes: int, files: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def task_done(self, kind: str, name: str, status: str = "ok", **facts) -> None:
        pass

    def end(self) -> None:
        pass


class _Counting(Progress):
    def __init__(self):
        self.total = 0
        self.done = 0
        self.files = 0
        self.files_done = 0
        self.started = time.monotonic()
        self.lock = threading.Lock()

    def begin(self, total_bytes: int, files: int) -> None:
        self.total, self.files, self.started = total_bytes, files, time.monotonic()

    def advance(self, nbytes: int) -> None:
        with self.lock:
            self.done += nbytes

    def task_done(self, kind: str, name: str, status: str = "ok", **facts) -> None:
        if kind in ("read", "map"):
            with self.lock:
                self.files_done += 1

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0


class TerminalProgress(_Counting):
    """A progress bar on stderr (rich): bytes done / total, MB/s, files done, time left."""

    def __init__(self):
        super().__init__()
        from rich.console import Console
        from rich.progress import (BarColumn, DownloadColumn, Progress as Bar, TextColumn, TimeRemainingColumn,
                                   TransferSpeedColumn)
        self.bar = Bar(TextColumn("[bold]analysing"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                       TextColumn("{task.fields[files]}"), TimeRemainingColumn(),
                       console=Console(stderr=True), transient=True)
        self.task = None

    def begin(self, total_bytes: int, files: int) -> None:
        super().begin(total_bytes, files)
        self.bar.start()
        self.task = self.bar.add_task("read", total=total_bytes or None, files=f"0/{files} files")

    def advance(self, nbytes: int) -> None:
        super().advance(nbytes)
        if self.task is not None:
            self.bar.update(self.task, advance=nbytes)

    def task_done(self, kind: str, name: str, status: str = "ok", **facts) -> None:
        super().task_done(kind, name, status, **facts)
        if self.task is not None:
            self.bar.update(self.task, files=f"{self.files_done}/{self.files} files")

    def end(self) -> None:
        if self.task is not None:
            self.bar.stop()
            self.task = None


class JsonLinesProgress(_Counting):
    """One JSON line per finished task and one every ``every`` seconds, on ``stream``."""

    def __init__(self, stream=None, every: float = 5.0):
        super().__init__()
        self.stream = stream or sys.stderr
        self.every = every
        self.last = 0.0

    def _write(self, obj: dict) -> None:
        obj = {"time": round(time.time(), 3), **obj}
        with self.lock:
            self.stream.write(json.dumps(obj, sort_keys=True) + "\n")
            self.stream.flush()

    def _status(self) -> dict:
        rate = self.rate()
        left = (self.total - self.done) / rate if rate > 0 and self.total else None
        return {"bytes_done": self.done, "bytes_total": self.total, "files_done": self.files_done,
                "files_total": self.files, "mb_per_s": round(rate / 1e6, 1),
                "eta_s": None if left is None else round(left, 1)}

    def begin(self, total_bytes: int, files: int) -> None:
        super().begin(total_bytes, files)
        self._write({"event": "begin", **self._status()})

    def advance(self, nbytes: int) -> None:
        super().advance(nbytes)
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self._write({"event": "progress", **self._status()})

    def task_done(self, kind: str, name: str, status: str = "ok", **facts) -> None:
        super().task_done(kind, name, status, **facts)
        self._write({"event": "task", "kind": kind, "name": name, "status": status, **facts, **self._status()})

    def end(self) -> None:
        self._write({"event": "end", **self._status()})


def progress_for(mode: str | None, quiet: bool) -> Progress:
    """``--progress`` (auto, bar, jsonl, none) and ``--quiet`` -> a Progress."""
    if mode == "jsonl":                 # asked for explicitly: also with --quiet (batch systems)
        return JsonLinesProgress()
    if quiet or mode == "none":
        return Progress()
    if mode == "bar" or (mode in (None, "auto") and sys.stderr.isatty()):
        return TerminalProgress()
    return Progress()
