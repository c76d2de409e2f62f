"""Measure the analyzer on the crafted hostile inputs of issue 12 (exit status, time, peak RSS).

    python bench/hostile.py [--timeout S] [CASE...]

Each case is written to a temporary folder and analysed by the command line
in a child process (``--out`` and ``--carve`` inside that folder); the table
gives the exit status (or TIMEOUT / the signal), wall time, the child's peak
RSS, the last line of stderr and what was written outside the folders given.
The reassembly cases (TCP, IP fragments, uTP) drive the modules directly.
"""
from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fuzz import hostile as H  # noqa: E402


def _capture_cases(tmp: Path) -> dict:
    """name -> (argv tail, setup callable or None)."""
    def file(name, data):
        p = tmp / name
        p.write_bytes(data)
        return [str(p)]

    cases = {
        "tsresol_dec19": lambda: file("a.pcapng", H.pcapng_tsresol(19)),
        "tsresol_dec73": lambda: file("a.pcapng", H.pcapng_tsresol(73)),
        "tsresol_dec127": lambda: file("a.pcapng", H.pcapng_tsresol(127)),
        "tsresol_bin64": lambda: file("a.pcapng", H.pcapng_tsresol(0x80 | 64)),
        "idb_empty": lambda: file("a.pcapng", H.pcapng_short_idb(0)),
        "idb_4bytes": lambda: file("a.pcapng", H.pcapng_short_idb(4)),
        "http_query_5000_digits": lambda: file("a.pcap", H.http_tracker_pcap("query")),
        "http_status_5000_digits": lambda: file("a.pcap", H.http_tracker_pcap("status")),
        "http_length_5000_digits": lambda: file("a.pcap", H.http_tracker_pcap("length")),
        "odd_timestamps": lambda: file("a.pcap", H.pcap_odd_timestamps()),
        "interfaces_70000": lambda: file("a.pcapng", H.pcapng_many_interfaces()),
        "bitfield_8MB": lambda: file("a.pcap", H.pcap_of(H.tcp_stream_packets(
            [H.bt_handshake(b"-XX0001-clientclient")],
            [H.bt_handshake(), *_segments(b"".join(list(H.oversized_bitfield_stream(8 << 20))[1:]))]))),
        "syn_flood_200k": lambda: file("a.pcap", H.syn_flood_pcap(200_000)) + ["--local", "10.0.0.2"],
        "payload_flood_200k": lambda: file("a.pcap", H.flood_pcap(H.payload_flood_frames(200_000)))
        + ["--local", "10.0.0.2"],
        "dev_zero": lambda: ["/dev/zero"],
        "fifo": lambda: (os.mkfifo(tmp / "fifo"), [str(tmp / "fifo")])[1],
    }

    def carve(kind):
        def setup():
            content = bytes(i % 251 for i in range(3 * 16384))
            paths = H.deep_paths() if kind == "deep" else [["dir", "f.bin"], ["g.bin"]]
            torrent, ih = H.carve_torrent(paths, content)
            (tmp / "t.torrent").write_bytes(torrent)
            args = file("a.pcap", H.carve_pcap(ih, content))
            carve_dir = tmp / "carve"
            outside = tmp / "outside"
            outside.mkdir()
            if kind == "hash_symlink":
                carve_dir.mkdir()
                os.symlink(outside, carve_dir / ih.hex())
            elif kind == "inner_symlink":
                (carve_dir / ih.hex() / "t").mkdir(parents=True)
                os.symlink(outside, carve_dir / ih.hex() / "t" / "dir")
            return args + ["--torrent", str(tmp / "t.torrent"), "--carve", str(carve_dir)]
        return setup

    cases["carve_deep_names"] = carve("deep")
    cases["carve_hash_symlink"] = carve("hash_symlink")
    cases["carve_inner_symlink"] = carve("inner_symlink")
    return cases


def _segments(data: bytes, size: int = 60000) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def run_cli(args: list[str], out: Path, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "analyzer.cli", "analyze", *args, "--out", str(out), "--quiet"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=str(ROOT),
                            start_new_session=True)
    timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
    timer.start()
    err = proc.stderr.read().decode("utf-8", "replace")
    _, status, ru = os.wait4(proc.pid, 0)
    timed_out = not timer.is_alive()
    timer.cancel()
    wall = time.monotonic() - t0
    if timed_out:
        what = "TIMEOUT"
    elif os.WIFSIGNALED(status):
        what = f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    else:
        what = f"exit {os.WEXITSTATUS(status)}"
    lines = [line for line in err.splitlines() if line.strip()]
    return {"result": what, "seconds": wall, "rss_mb": ru.ru_maxrss / 1024, "stderr": lines[-1] if lines else ""}


def _reassembly_cases() -> dict:
    def tcp_reverse(n=100_000):
        from analyzer.flows._tcp import TcpStream
        s = TcpStream()
        s.receive_segment(1000, 0x02)
        for i in range(n, 0, -1):
            s.receive_segment(1001 + 10 * i, 0x10, b"x" * 10)
        s.close()

    def frag_reverse(n=100_000):
        """Datagrams of 8,000 8-byte fragments: the first and last first, the rest in reverse."""
        from analyzer.decode.fragments import Defragmenter
        d = Defragmenter()
        order = [0, 7999, *range(7998, 0, -1)]
        for i in range(n):
            k = order[i % 8000]
            d.add(0, i, 0, 60, 4, H.ipv4(H.CLIENT, H.SERVER, 17, b"y" * 8, ident=i // 8000,
                                         frag=k | (0x2000 if k < 7999 else 0)))
        d.flush()
        print(f"reassembled {d.reassembled}, dropped frames {d.dropped_frames}")

    def frag_tiny_flood(n=300_000):
        """Distinct datagrams of one 8-byte fragment each, never completed."""
        from analyzer.decode.fragments import Defragmenter
        d = Defragmenter()
        for i in range(n):
            src = bytes([10, 1, (i >> 24) & 255, (i >> 16) & 255])
            d.add(0, i, 0, 60, 4, H.ipv4(src, H.SERVER, 17, b"z" * 8, ident=i & 0xFFFF, frag=0x2000 | 1))
        d.flush()
        print(f"dropped frames {d.dropped_frames}")

    def bitfield_100mb():
        from analyzer.protocols.peerwire import PeerWireParser
        p = PeerWireParser(True, 0)
        for chunk in H.oversized_bitfield_stream(100 << 20):
            p.receive_data(chunk)
        p.receive_eof()
        print(f"pieces {p.pieces}, state {p.state_name}, opaque {p.opaque_bytes}, unparsed {p.unparsed_bytes}")

    def utp_holes(n=30_000):
        from analyzer.flows._utp import UtpStream
        s = UtpStream()
        s.start(0)
        for i in range(n):
            s.receive_packet(0, (2 * i + 1) & 0xFFFF, b"u" * 100)
        s.close()

    return {"peerwire_bitfield_100MB": bitfield_100mb, "tcp_100k_reverse_segments": tcp_reverse, "fragments_100k_reverse": frag_reverse,
            "fragments_300k_tiny_datagrams": frag_tiny_flood, "utp_holes_at_finish": utp_holes}


def run_inline(fn, timeout: float) -> dict:
    """In a child process (fork), so a hang can be killed and RSS measured alone."""
    t0 = time.monotonic()
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        os.dup2(wfd, 1)
        try:
            fn()
            sys.stdout.flush()
            os._exit(0)
        except BaseException:
            import traceback
            traceback.print_exc()
            os._exit(1)
    os.close(wfd)
    timer = threading.Timer(timeout, lambda: os.kill(pid, signal.SIGKILL))
    timer.start()
    with os.fdopen(rfd, "rb") as r:
        printed = r.read().decode("utf-8", "replace").strip()
    _, status, ru = os.wait4(pid, 0)
    timed_out = not timer.is_alive()
    timer.cancel()
    what = "TIMEOUT" if timed_out else (f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
                                        else f"exit {os.WEXITSTATUS(status)}")
    return {"result": what, "seconds": time.monotonic() - t0, "rss_mb": ru.ru_maxrss / 1024, "stderr": printed}


def _outside_writes(tmp: Path) -> str:
    outside = tmp / "outside"
    return ", ".join(sorted(p.name for p in outside.rglob("*"))) if outside.exists() else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("cases", nargs="*")
    a = ap.parse_args()
    print(f"{'case':32} {'result':14} {'seconds':>8} {'RSS MB':>7}  notes")
    with tempfile.TemporaryDirectory() as scratch:
        cases = _capture_cases(Path(scratch))
        names = a.cases or [*cases, *_reassembly_cases()]
        for name in names:
            if name in cases:
                tmp = Path(tempfile.mkdtemp(dir=scratch))
                setup = _capture_cases(tmp)[name]
                r = run_cli(setup(), tmp / "out", a.timeout)
                escaped = _outside_writes(tmp)
                note = r["stderr"][:110] + (f" | WROTE OUTSIDE: {escaped}" if escaped else "")
            else:
                r = run_inline(_reassembly_cases()[name], a.timeout)
                note = r["stderr"]
            print(f"{name:32} {r['result']:14} {r['seconds']:8.2f} {r['rss_mb']:7.0f}  {note}", flush=True)


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
