"""make bench: throughput and memory of bt-analyzer against tshark and plain reading.

1. Makes (or reuses, in --out) a real-traffic capture of at least --size bytes
   of BitTorrent payload with the real-traffic harness (analyzer.validation.harness): two libtorrent peers in a
   private namespace, tcpdump on its loopback (1500-byte MTU, offloads off).
2. Measures, in this run and on the same (page-cached) file:
   - the plain read rate (readinto of 32 MiB chunks, as the analyzer reads);
   - bt-analyzer end to end (CLI process: start-up, SHA-256 of the input,
     analysis, outputs), with --jobs 1 and --jobs 2;
   - the analysis engine alone (reading, decoding, reassembly, parsing; no
     hashing, no start-up), in this process;
   - bt-analyzer with the .torrent (every piece verified);
   - tshark with its BitTorrent dissector (`-Y bittorrent.piece.data`).
   Wall-clock times; peak RSS of each child process from wait4().
3. Checks the analyzer's figures against libtorrent's counters (0 bytes).
Results are printed and written to --out/results.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MB = 1_000_000


def make_capture(out: Path, size: int) -> tuple[Path, dict]:
    cap = out / "capture.pcap"
    truth_file = out / "truth.json"
    if cap.exists() and truth_file.exists():
        truth = json.loads(truth_file.read_text())
        if truth.get("size") == size:
            return cap, truth
    from analyzer.validation.harness import run_swarm
    spec = {
        "timeout": 600,
        "torrents": [{"name": "big", "size": size, "piece_length": 1 << 20, "version": "v1", "seed": 1}],
        "peers": [
            # a rate limit keeps tcpdump from dropping packets on loopback
            {"name": "seed", "ip": "127.0.0.2", "port": 6881, "seeds": ["big"], "upload_rate_limit": 150 * MB,
             "settings": {"ignore_limits_on_local_network": False}},
            {"name": "leech", "ip": "127.0.0.3", "port": 6881, "leeches": ["big"], "connect_to": ["seed"]},
        ],
    }
    work = out / "swarm"
    shutil.rmtree(work, ignore_errors=True)
    res = run_swarm(spec, work, capture_buffer_kib=1 << 19, packet_buffered=False)
    if res.kernel_dropped:
        print(f"warning: tcpdump dropped {res.kernel_dropped} packets", file=sys.stderr)
    shutil.move(str(res.capture_files[0]), cap)
    shutil.copy(res.torrent_files["big"], out / "capture.torrent")
    truth = {"size": size, "kernel_dropped": res.kernel_dropped, "ground_truth": res.ground_truth}
    truth_file.write_text(json.dumps(truth, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    return cap, truth


def run_child(argv: list[str]) -> tuple[float, int, subprocess.CompletedProcess]:
    """Wall seconds and peak RSS (bytes) of one child process (output to temporary files)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return wall, usage.ru_maxrss * 1024, subprocess.CompletedProcess(argv, proc.returncode, out.read(),
                                                                         err.read())


def plain_read(path: Path) -> float:
    buf = bytearray(32 << 20)
    view = memoryview(buf)
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.readinto(view):
            pass
    return time.perf_counter() - t0


def engine_only(path: Path) -> float:
    from analyzer.capture.reader import CaptureReader
    from analyzer.sessions._engine import Engine
    t0 = time.perf_counter()
    engine = Engine()
    for b in CaptureReader(path).batches():
        engine.process_batch(b, 0)
        engine.drain_finished()
    engine.finish()
    return time.perf_counter() - t0


def best_of(n: int, fn):
    return min(fn() for _ in range(n))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / ".bench")
    ap.add_argument("--size", type=int, default=1_000_000_000, help="torrent payload bytes (default 1 GB)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-tshark", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cap, truth = make_capture(args.out, args.size)
    size = cap.stat().st_size
    print(f"capture: {cap} ({size / MB:.0f} MB, {truth['ground_truth']['torrents']['big']['total_size']} "
          f"payload bytes, kernel drops {truth['kernel_dropped']})")
    plain_read(cap)  # warm the page cache: every contender reads from memory
    results: dict = {"capture_bytes": size, "cpus": os.cpu_count()}

    t = best_of(args.repeat, lambda: plain_read(cap))
    results["plain_read"] = {"seconds": t, "mb_per_s": size / MB / t}

    t = best_of(args.repeat, lambda: engine_only(cap))
    results["engine_only"] = {"seconds": t, "mb_per_s": size / MB / t}

    exe = str(Path(sys.executable).with_name("bt-analyzer"))
    for jobs in (1, 2):
        runs = []
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(args.repeat):
                wall, rss, proc = run_child([exe, "analyze", str(cap), "--local", "127.0.0.3", "--out", tmp,
                                             "--quiet", "--jobs", str(jobs)])
                if proc.returncode:
                    print(proc.stderr.decode(), file=sys.stderr)
                    return 1
                runs.append((wall, rss))
            summary = json.loads((Path(tmp) / "summary.json").read_text())
        wall = min(w for w, _ in runs)
        results[f"bt_analyzer_jobs{jobs}"] = {"seconds": wall, "mb_per_s": size / MB / wall,
                                              "peak_rss_mb": max(r for _, r in runs) / MB}
    torrent = args.out / "capture.torrent"
    if torrent.exists():
        with tempfile.TemporaryDirectory() as tmp:
            wall, rss, proc = run_child([exe, "analyze", str(cap), "--local", "127.0.0.3", "--torrent", str(torrent),
                                         "--out", tmp, "--quiet"])
            verified = json.loads((Path(tmp) / "summary.json").read_text())["torrents"][0]["verified_downloaded_bytes"]
        results["bt_analyzer_verify"] = {"seconds": wall, "mb_per_s": size / MB / wall, "peak_rss_mb": rss / MB,
                                         "verified_bytes": verified}
    leech = truth["ground_truth"]["peers"]["leech"]["torrents"]["big"]
    [t] = summary["torrents"]
    results["exact"] = (t["downloaded_acked_bytes"] == leech["total_payload_download"]
                        and t["downloaded_bytes"] == leech["total_payload_download"])

    if not args.no_tshark and shutil.which("tshark"):
        wall, rss, proc = run_child(["tshark", "-n", "-r", str(cap), "-Y", "bittorrent.piece.data",
                                     "-T", "fields", "-e", "frame.number"])
        results["tshark"] = {"seconds": wall, "mb_per_s": size / MB / wall, "peak_rss_mb": rss / MB,
                             "exit": proc.returncode}
        results["ratio_vs_tshark"] = results["tshark"]["seconds"] / results["bt_analyzer_jobs1"]["seconds"]
    results["ratio_vs_plain_read"] = results["plain_read"]["seconds"] / results["bt_analyzer_jobs1"]["seconds"]

    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"{'':28}{'seconds':>9}{'MB/s':>9}{'peak RSS MB':>13}")
    for key in ("plain_read", "engine_only", "bt_analyzer_jobs1", "bt_analyzer_jobs2", "bt_analyzer_verify",
                "tshark"):
        r = results.get(key)
        if r:
            rss = f"{r['peak_rss_mb']:13.0f}" if "peak_rss_mb" in r else f"{'':13}"
            print(f"{key:28}{r['seconds']:9.2f}{r['mb_per_s']:9.0f}{rss}")
    if "ratio_vs_tshark" in results:
        print(f"bt-analyzer is {results['ratio_vs_tshark']:.1f}x faster than tshark")
    print(f"bt-analyzer runs at {results['ratio_vs_plain_read']:.2f}x the plain read rate")
    print(f"figures exact against libtorrent's counters: {results['exact']}")
    return 0 if results["exact"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
