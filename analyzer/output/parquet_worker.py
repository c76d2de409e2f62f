"""The Parquet process: ``analyze`` forks it first thing, before it imports the analysis, so that
importing pyarrow (~60 ms of CPU) and numpy there runs on the other core while this process
imports the analysis and reads the capture; it then makes the two files' bytes while this process
writes the CSV tables.  On a small capture the imports are most of the run (~0.15 s of ~0.2 s).

This module imports nothing heavy (the child imports ``parquet``); the bytes are the same either
way (``parquet.parquet_files`` runs in the worker, or here where there is no worker or it failed).
"""
from __future__ import annotations

import traceback

from analyzer import worker


def _serve(conn, others) -> None:
    """The worker: import pyarrow, then make the files of one request; stop at EOF or None."""
    worker.start_child(others)
    try:
        import pyarrow  # noqa: F401 -- the import is the point
        from pyarrow import _parquet  # noqa: F401
        import analyzer.output.parquet  # noqa: F401
    except Exception:  # noqa: BLE001 -- the parent makes the files itself, and reports what fails
        pass
    worker.settle()
    try:
        request = conn.recv()
        if request is None:
            return
        try:
            from analyzer.output.parquet import parquet_files
            conn.send(("files", parquet_files(*request)))
        except Exception:  # noqa: BLE001 -- the parent makes the files itself, and reports what fails
            conn.send(("error", traceback.format_exc()))
    except (EOFError, OSError):                 # the parent is gone
        return


class ParquetWorker(worker.Handle):
    """The process that makes the Parquet files (see the module docstring): ``submit(timeline,
    peers)``, then ``files()`` (the bytes of timeline.parquet and peers.parquet); ``close()`` at
    the end in any case.  Without a process (``parallel`` False, no fork), or where the process
    fails, the files are made in this process."""

    def __init__(self, parallel: bool = True, others=()):
        super().__init__(_serve, "bt-analyzer-parquet", parallel, others)
        self._request = None
        self.fallback: str | None = None    # why the files were made here although a worker was forked

    def submit(self, timeline, peers: list) -> None:
        from analyzer.output.parquet import peer_columns
        self._request = (timeline, peer_columns(peers))
        if self._proc is not None:
            try:
                self._conn.send(self._request)
            except OSError:
                self.fallback = f"the Parquet process ended (exit status {self._proc.exitcode})"
                self.close()

    def files(self) -> tuple[bytes, bytes]:
        if self._proc is not None:
            proc = self._proc
            try:
                kind, value = self._conn.recv()
            except (EOFError, OSError):
                kind, value = "error", None
            self.close()                    # it ends once it answered
            if kind == "files":
                return value
            self.fallback = value or f"the Parquet process ended (exit status {proc.exitcode})"
        from analyzer.output.parquet import parquet_files
        return parquet_files(*self._request)

    def close(self) -> None:
        """Stop the worker: at once if it was given nothing to do (an error or Ctrl-C before the
        outputs; it holds nothing), else as any worker."""
        if self._proc is not None and self._request is None:
            self._proc.kill()
            self._proc.join()
            self._proc = None
        super().close()
