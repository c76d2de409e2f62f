"""Run one client scenario by hand (root):

    python -m analyzer.validation.harness.clients transmission /tmp/run1 [--transport utp] [--ipv6]
        [--scenario exchange|lifecycle] [--dial] [--bad-seeder]

prints the capture files, the client's counters, libtorrent's counters and
where the client's state files are, as JSON.
"""
from __future__ import annotations

import argparse
import json
import sys

from . import CLIENTS, run_client_swarm
from .scenarios import exchange, lifecycle


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m analyzer.validation.harness.clients")
    ap.add_argument("client", choices=sorted(CLIENTS))
    ap.add_argument("workdir")
    ap.add_argument("--scenario", choices=["exchange", "lifecycle"], default="exchange")
    ap.add_argument("--transport", choices=["tcp", "utp"], default="tcp")
    ap.add_argument("--ipv6", action="store_true")
    ap.add_argument("--dial", action="store_true", help="the client connects to the seeder (exchange)")
    ap.add_argument("--bad-seeder", action="store_true", help="a second seeder serves corrupt pieces (exchange)")
    a = ap.parse_args(argv)
    if a.scenario == "exchange":
        spec = exchange(a.client, transports=a.transport, ipv6=a.ipv6, dial=a.dial, bad_seeder=a.bad_seeder)
    else:
        spec = lifecycle(a.client, transports=a.transport, ipv6=a.ipv6)
    res = run_client_swarm(spec, a.workdir)
    json.dump({
        "client": res.client, "version": res.client_version, "client_ip": res.client_ip,
        "capture_files": [str(f) for f in res.capture_files], "kernel_dropped": res.kernel_dropped,
        "client_counters": res.client_counters, "client_session_counters": res.client_session_counters,
        "libtorrent_counters": {p: {t: {k: v for k, v in c.items() if k != "connections"}
                                    for t, c in e["torrents"].items()}
                                for p, e in res.ground_truth["peers"].items()},
        "torrent_files": {n: str(p) for n, p in res.torrent_files.items()},
        "state_dir": str(res.state_dir), "state_files": [str(f) for f in res.state_files],
        "blocked_multicast_packets": res.blocked_multicast_packets,
        "timings": res.timings, "duration": res.duration,
    }, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
