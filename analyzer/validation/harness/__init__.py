"""Real-traffic harness: libtorrent swarms captured inside network namespaces.

Used by the test suite and by ``bt-analyzer validate`` (``analyzer.validation``).

Theory of operation
-------------------
``run_swarm(spec, tmp_path)`` produces a packet capture of a real BitTorrent
transfer together with libtorrent's own view of it (the ground truth):

1. a private network namespace is created (``netns.Namespace``) with one
   loopback address per peer of the spec (derived from the peers' ``ip``),
   MTU 1500, offloads off and optionally random packet loss;
2. a capture (``netns.Capture``; tcpdump or dumpcap) is started inside it;
3. ``swarm.py`` runs inside the namespace with the spec; it creates the
   torrents, runs one libtorrent session per peer until every leecher is
   complete, and writes ``result.json`` (counters, info hashes, live
   connections);
4. the capture is stopped and flushed, the namespace torn down, and a
   ``SwarmResult`` returned.

All traffic stays on the namespace's loopback.  Failures (missing root or
tools, swarm timeout, capture errors) raise ``RuntimeError`` with the
relevant output; nothing is skipped silently.  This package imports no
module of the analyzer (tests/test_architecture.py checks it): it is the
independent ground truth the tests and ``analyzer.validation`` compare the
analyzer's output with.  ``results.save_result``/``load_result`` keep a
run's result beside its files.

Other clients: ``clients/`` runs Transmission, qBittorrent, Deluge, aria2 and
rTorrent daemons in the namespace beside swarm.py's sessions (swarm.py's
``external`` peers) and reads their own counters (see clients/__init__.py).

uTP under loss: the sessions retransmit a uTP packet up to 6 times
(``utp_num_resends``, libtorrent's default 3).  With 3, a packet (or its ACK)
lost on all of its original, fast-resent and timeout-resent transmissions
makes the sender give the connection up silently; the receiver, with nothing
in flight, notices only at the next keep-alive (120 s).  Under 2% random
loss each way that stalled about 2.5% of 2 MB runs (6 of 244 measured; 0 of
96 with 6).

Discovery (see swarm.py for the spec and result fields):

* trackers (``tracker.py``, HTTP and BEP 15 UDP, IPv4 and IPv6) run inside
  swarm.py on their own namespace address; ``tracker_log`` records every
  announce/scrape received.  libtorrent needs announce_to_all_trackers/tiers
  (else only the first tracker hears from it), min_announce_interval below
  the tracker's interval, and ssrf_mitigation off for /scrape on loopback;
  it never re-announces to a UDP tracker sooner than 60 s (use the spec's
  ``reannounce_interval`` for regular announces).  libtorrent's UDP tracker
  connection ids are cached per tracker address *per process*, so sessions
  reuse each other's ids (``connection_id_issued_to``);
* DHT works between sessions on 127.0.0.x / fd00::x (bootstrap nodes are
  only the other DHT peers; nodes start after every session listens, and
  every packet is recorded, so ``dht_log`` matches the capture exactly);
* LSD works over IPv4 on the namespace loopback as is (no multicast flag or
  route needed: libtorrent sets IP_MULTICAST_IF to the listen address).
  IPv6 LSD does not: joining ff15::efc0:988f fails (ENODEV) on lo, and with
  ``ip link set lo multicast on`` plus an ff00::/8 route the join succeeds
  but Linux never puts IPv6 multicast on lo (nothing sent or captured).
"""

from __future__ import annotations

import ipaddress
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from .netns import Capture, Namespace, require_tools

__all__ = ["run_swarm", "SwarmResult", "Namespace", "Capture", "SWARM_SCRIPT"]

SWARM_SCRIPT = Path(__file__).with_name("swarm.py")


@dataclass
class SwarmResult:
    capture_files: list[Path]
    ground_truth: dict
    kernel_dropped: int
    torrent_files: dict[str, Path]
    workdir: Path = field(default=Path())
    capture_stderr: str = ""
    swarm_stderr: str = ""
    duration: float = 0.0


def _spec_addresses(spec: dict) -> tuple[list[str], list[str]]:
    """Namespace addresses the spec needs: its peers' and its trackers'."""
    v4, v6 = [], []
    for p in [*spec.get("peers", []), *spec.get("trackers", [])]:
        ip = ipaddress.ip_address(p["ip"])
        (v6 if ip.version == 6 else v4).append(str(ip))
    return list(dict.fromkeys(v4)), list(dict.fromkeys(v6))


def run_swarm(
    spec: dict,
    tmp_path: Path | str,
    *,
    capture_tool: str = "tcpdump",
    interface: str = "lo",
    capture_args: Sequence[str] = (),
    drop_probability: float = 0.0,
    ipv6_addrs: Iterable[str] = (),
    ipv4_addrs: Iterable[str] = (),
    capture_name: str | None = None,
    pin_cpu: int | None = None,
    python: str = sys.executable,
    capture_buffer_kib: int = 16384,
    packet_buffered: bool = True,
) -> SwarmResult:
    """Run ``spec`` (see swarm.py) in a fresh namespace under capture.

    ``pin_cpu`` pins all libtorrent sessions to one CPU; on a multi-CPU
    machine loopback segments sent from different CPUs can otherwise appear
    out of order in the capture (real, but it makes tests less repeatable).
    """
    t_start = time.monotonic()
    tmp_path = Path(tmp_path)
    tmp_path.mkdir(parents=True, exist_ok=True)
    spec = dict(spec)
    spec.setdefault("workdir", str(tmp_path / "swarm"))
    if pin_cpu is not None:
        spec["pin_cpu"] = pin_cpu
    workdir = Path(spec["workdir"])
    spec_file = tmp_path / "spec.json"
    result_file = tmp_path / "result.json"
    spec_file.write_text(json.dumps(spec, indent=1))
    if result_file.exists():
        result_file.unlink()

    v4, v6 = _spec_addresses(spec)
    v4 = list(dict.fromkeys([*v4, *ipv4_addrs]))
    v6 = list(dict.fromkeys([*v6, *ipv6_addrs]))
    ext = ".pcapng" if capture_tool == "dumpcap" else ".pcap"
    cap_path = tmp_path / (capture_name or f"capture{ext}")
    require_tools(capture_tool)

    timeout = float(spec.get("timeout", 120)) + 30
    with Namespace(ipv4_addrs=v4, ipv6_addrs=v6,
                   drop_probability=drop_probability) as ns:
        cap = Capture(ns, cap_path, tool=capture_tool, interface=interface,
                      extra_args=capture_args, buffer_kib=capture_buffer_kib,
                      packet_buffered=packet_buffered)
        with cap:
            proc = ns.run([python, str(SWARM_SCRIPT), str(spec_file), str(result_file)],
                          capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(
                f"swarm.py failed (exit {proc.returncode}) in {ns.name}:\n"
                f"{proc.stderr.strip()}\n{proc.stdout.strip()}")
    truth = json.loads(result_file.read_text())
    return SwarmResult(
        capture_files=cap.files,
        ground_truth=truth,
        kernel_dropped=cap.kernel_dropped,
        torrent_files={n: Path(t["torrent_file"]) for n, t in truth["torrents"].items()},
        workdir=workdir,
        capture_stderr=cap.stderr_text,
        swarm_stderr=proc.stderr,
        duration=round(time.monotonic() - t_start, 3),
    )
