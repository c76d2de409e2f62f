"""Fixtures shared across test modules.

``validation_run``: one ``bt-analyzer validate`` run (``VALIDATION_SCENARIOS``, kept with
``--keep``), shared by the validate command's tests and by the real-traffic tests that check
the same scenarios further (each loads the kept harness result with ``kept_result``), so that
those transfers run once per test session: under pytest-xdist the first worker that needs it
runs it while holding a lock in the session's shared temporary folder, and the others read its
result (the xdist recipe for session fixtures; ``xdist_group`` marks alone do not keep tests on
one worker with pytest 9.2 and pytest-xdist 3.8.0, whose loadgroup no longer renames node ids).

``sample_folder``: the bundled sample analysed with its torrent, once a test worker, for the tests
that read an analysis folder (the report's).
"""
from __future__ import annotations

import fcntl
import json
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest

VALIDATION_SCENARIOS = ("libtorrent-utp", "transmission-tcp")


@dataclass
class ValidationRun:
    out: Path
    exit_code: int
    output: str

    @property
    def doc(self) -> dict:
        return json.loads((self.out / "validation.json").read_text())

    def kept_result(self, scenario: str):
        """The harness result of a scenario of the run (capture, ground truth, client state)."""
        from analyzer.validation.harness.results import load_result
        return load_result(self.out / "scenarios" / scenario / "harness.json")


@pytest.fixture(scope="session")
def validation_run(tmp_path_factory, worker_id) -> ValidationRun:
    from click.testing import CliRunner

    from analyzer.cli import main
    # shared by the xdist workers of this session (their own base folders are inside it)
    root = tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    folder = root / "validation-run"
    folder.mkdir(exist_ok=True)
    done = folder / "done.json"
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            out = folder / "out"
            args = ["validate", "--out", str(out), "--keep", "--quiet"]
            for s in VALIDATION_SCENARIOS:
                args += ["--scenario", s]
            r = CliRunner().invoke(main, args)
            done.write_text(json.dumps({"out": str(out), "exit_code": r.exit_code, "output": r.output}))
    d = json.loads(done.read_text())
    return ValidationRun(Path(d["out"]), d["exit_code"], d["output"])


@pytest.fixture(scope="session")
def sample_folder(tmp_path_factory) -> Path:
    """An analysis folder of the bundled sample, its pieces verified against its torrent (read only:
    a test that writes into it works on a copy)."""
    from click.testing import CliRunner

    from analyzer.cli import main
    captures = Path(__file__).resolve().parent.parent / "captures"
    out = tmp_path_factory.mktemp("sample") / "out"
    r = CliRunner().invoke(main, ["analyze", str(captures / "sample-swarm.pcap"), "--local", "127.0.0.3",
                                  "--torrent", str(captures / "sample-swarm.torrent"), "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    return out


def sigint_default() -> None:
    """``preexec_fn`` of a command a test interrupts with SIGINT: Ctrl-C acts in it even when the
    suite was started where SIGINT is ignored (a shell's background job without job control: the
    command would inherit the ignored signal and run to its end)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
