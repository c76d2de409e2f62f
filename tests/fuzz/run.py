"""``make fuzz``: every fuzz target, coverage-guided with atheris (libFuzzer), for a fixed time.

    cd tests && python -m fuzz.run [--seconds 60] [--rss-mb 1024] [TARGET...]

Each target runs in its own process: the committed seeds (``corpus/<target>``)
are the starting corpus, new interesting inputs go to ``.fuzz/<target>/``
(scratch, not committed), a crash or a memory overrun stops that target and
leaves its input in ``.fuzz/<target>/crash-*``.  The table gives executions,
executions per second and crashes per target; the exit status is 1 if any
target crashed.

Coverage: atheris instruments the Python modules (``analyzer`` and the
targets).  The compiled kernels (peer wire parser, TCP and uTP reassembly,
the engine and the capture scanners) cannot be instrumented by atheris
(libFuzzer coverage needs clang's ``-fsanitize=fuzzer``; the project builds
with the system's gcc), so for those targets libFuzzer's mutations are
guided only by the Python around them: a fast mutational fuzzer over the
seeds.  Their properties are also checked by the hypothesis tests
(``tests/protocols/test_peerwire_properties.py``,
``tests/flows/test_tcp_properties.py``).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
REPO = TESTS.parent
SCRATCH = REPO / ".fuzz"
SLOW_SEEDS = {"interfaces-65600.pcapng.gz"}


def child(target: str, seconds: int, rss_mb: int) -> None:
    import atheris

    with atheris.instrument_imports(include=["analyzer", "fuzz"]):
        from fuzz.targets import TARGETS
    f = TARGETS[target]
    work = SCRATCH / target
    seeds = SCRATCH / "seeds" / target
    work.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(seeds, ignore_errors=True)
    seeds.mkdir(parents=True)
    for p in (HERE / "corpus" / target).iterdir():
        if p.name not in SLOW_SEEDS:             # seconds per run instrumented: tested, not mutated
            shutil.copyfile(p, seeds / p.name)
    args = [sys.argv[0], str(work), str(seeds), f"-max_total_time={seconds}",
            f"-rss_limit_mb={rss_mb}", "-timeout=20", f"-artifact_prefix={work}/", "-print_final_stats=1",
            "-max_len=65536", "-seed=1"]
    atheris.Setup(args, f)
    atheris.Fuzz()


def run_target(target: str, seconds: int, rss_mb: int) -> dict:
    work = SCRATCH / target
    for old in work.glob("crash-*") if work.exists() else ():
        old.unlink()
    for old in work.glob("oom-*") if work.exists() else ():
        old.unlink()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(TESTS)]))
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "fuzz.run", "--child", target, "--seconds", str(seconds),
                           "--rss-mb", str(rss_mb)], cwd=TESTS, env=env, capture_output=True, text=True,
                          timeout=seconds * 3 + 300)
    wall = time.monotonic() - t0
    log = proc.stdout + proc.stderr
    (SCRATCH / f"{target}.log").write_text(log)
    runs = re.findall(r"Done (\d+) runs in (\d+) second", log)
    execs = int(runs[-1][0]) if runs else max((int(x) for x in re.findall(r"^#(\d+)", log, re.M)), default=0)
    peak = max((int(x) for x in re.findall(r"rss: (\d+)Mb", log)), default=0)
    crashes = sorted(p.name for p in work.glob("crash-*")) + sorted(p.name for p in work.glob("oom-*"))
    if proc.returncode != 0 and not crashes:
        crashes = [f"exit status {proc.returncode} (see .fuzz/{target}.log)"]
    return {"target": target, "execs": execs, "seconds": wall, "rss_mb": peak, "crashes": crashes}


def main() -> None:
    ap = argparse.ArgumentParser(description="Run every fuzz target for a fixed time (atheris).")
    ap.add_argument("--seconds", type=int, default=60, help="per target (default 60)")
    ap.add_argument("--rss-mb", type=int, default=1024, help="memory cap per target process (default 1024)")
    ap.add_argument("--jobs", type=int, default=1, help="targets run at the same time (default 1)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("targets", nargs="*", help="default: all")
    a = ap.parse_args()
    if a.child:
        child(a.child, a.seconds, a.rss_mb)     # before importing the targets: atheris instruments them
        return
    from fuzz.targets import COMPILED, TARGETS
    try:
        import atheris  # noqa: F401
    except ImportError:
        sys.exit("atheris is not installed (make install installs the pinned version)")
    SCRATCH.mkdir(exist_ok=True)
    names = a.targets or list(TARGETS)
    print(f"{'target':14} {'executions':>12} {'exec/s':>9} {'peak RSS':>9}  crashes   "
          f"({a.seconds} s each, memory cap {a.rss_mb} MB)", flush=True)
    failed = 0
    with ThreadPoolExecutor(max(1, a.jobs)) as pool:
        results = pool.map(lambda n: run_target(n, a.seconds, a.rss_mb), names)
        for name, r in zip(names, results):
            failed += _print(name, r, a.seconds, name in COMPILED)
    sys.exit(1 if failed else 0)


def _print(name: str, r: dict, seconds: int, compiled: bool) -> bool:
    rate = r["execs"] / max(1, seconds)
    note = " (compiled: coverage of its Python side only)" if compiled else ""
    print(f"{name:14} {r['execs']:12,} {rate:9,.0f} {r['rss_mb']:7} MB  {len(r['crashes'])}{note}", flush=True)
    for c in r["crashes"]:
        print(f"    {c}", flush=True)
    return bool(r["crashes"])


if __name__ == "__main__":
    main()
