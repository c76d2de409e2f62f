"""One capture of libtorrent sessions (swarm.py) and one other real client.

``run_client_swarm(spec, tmp_path)`` runs a swarm.py spec with exactly one
``external`` peer, ``{"name", "client": "transmission"|..., "ip", "port",
"seeds", "leeches", "transports", "encryption", "dial": [peer names],
"settings": {...}}``, in a fresh namespace under capture:

1. namespace with every peer's address plus ``control_ip`` (the clients'
   RPC servers listen there; that RPC traffic is left out of the capture by
   a BPF filter on its address *and* port, so BitTorrent traffic can never
   be filtered by accident).  Multicast is dropped on output (iptables,
   ip6tables) so that no packet of a client's discovery (Deluge's libtorrent
   sends an SSDP M-SEARCH and IGMP reports at start-up, before Deluge turns
   UPnP off) goes to any address but the namespace's own; the number of
   packets dropped is in the result (so LSD, which is multicast, cannot be
   used in a client swarm);
2. capture started; swarm.py started (creates the torrents, their content
   and the libtorrent sessions, then writes ``control/ready``); the client
   daemon started alongside with its private state directory
   ``<tmp>/<name>-state`` and its downloads in swarm.py's
   ``workdir/<name>`` (where swarm.py wrote the content of torrents the
   client seeds);
3. the client gets its torrents (and is told to dial ``dial`` peers, where
   it can); once nothing is checking and its seeds are complete, the runner
   writes ``control/go``, on which libtorrent peers dial it (``connect_to``
   with ``connect_after: "go"``, the default for dials to the client);
4. when every torrent the client leeches is complete the runner writes
   ``control/client_done`` (peers may wait for that to dial, e.g. a
   libtorrent leecher that must get everything from the client); swarm.py
   waits for it and for its own leechers, settles and snapshots, then writes
   ``control/snapshot``;
5. the runner reads the client's counters until they are stable (every
   connection still up and idle), writes ``control/release``, waits for
   swarm.py to finish, reads the counters once more (``client_counters_at_stop``:
   the moment the client is asked to stop, no peer connected any more, so
   what its state files must hold), stops the client cleanly (so it writes
   its state/resume files) and stops the capture.

Any failure kills the client and swarm.py (the namespace kills whatever is
left) and raises RuntimeError with swarm.py's stderr and the client's logs.
"""
from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from .. import SWARM_SCRIPT, _spec_addresses
from ..netns import Capture, Namespace, require_tools
from . import registry
from .base import CONTROL_IP, ClientConfig, ClientDaemon


@dataclass
class ClientSwarmResult:
    client: str                       # driver name ("transmission", ...)
    client_version: str               # as the client reports itself
    client_ip: str
    capture_files: list[Path]
    kernel_dropped: int
    ground_truth: dict                # swarm.py's result.json (libtorrent's counters)
    client_counters: dict             # {torrent name: the client's own counters (raw)}
    client_counters_at_stop: dict     # the same, read right before the clean stop (what it writes to its state)
    client_session_counters: dict     # client-wide statistics (raw)
    client_torrents: dict             # {torrent name: client key (usually the info hash)}
    state_dir: Path                   # the client's private config/state directory
    state_files: list[Path]           # what is in it after the clean stop
    download_dir: Path
    torrent_files: dict[str, Path]
    workdir: Path
    blocked_multicast_packets: int = 0  # multicast the clients tried to send (dropped)
    timings: dict = field(default_factory=dict)
    duration: float = 0.0


MULTICAST_RULES = (("iptables", "224.0.0.0/4"), ("ip6tables", "ff00::/8"))


def _block_multicast(ns: Namespace) -> None:
    for tool, net in MULTICAST_RULES:
        proc = ns.run([tool, "-A", "OUTPUT", "-d", net, "-j", "DROP"], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{tool}: cannot install the multicast drop rule: {proc.stderr.strip()}")


def _blocked_multicast(ns: Namespace) -> int:
    total = 0
    for tool, net in MULTICAST_RULES:
        out = ns.run([tool, "-L", "OUTPUT", "-v", "-n", "-x"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            f = line.split()
            if len(f) > 2 and f[2] == "DROP" and net in f:
                total += int(f[0])
    return total


class _Run:
    """The moving parts of one run, so that failures can clean up all of them."""

    def __init__(self, ns: Namespace, client: ClientDaemon, control: Path, deadline: float) -> None:
        self.ns, self.client, self.control, self.deadline = ns, client, control, deadline
        self.swarm: subprocess.Popen | None = None
        self.swarm_err: Path | None = None
        self.t0 = time.monotonic()
        self.timings: dict = {}

    def mark(self, what: str) -> None:
        self.timings[what] = round(time.monotonic() - self.t0, 3)

    def swarm_stderr(self) -> str:
        try:
            return self.swarm_err.read_text(errors="replace")[-6000:] if self.swarm_err else ""
        except OSError:
            return ""

    def check(self) -> None:
        if self.swarm is not None and self.swarm.poll() is not None and self.swarm.returncode != 0:
            raise RuntimeError(f"swarm.py failed (exit {self.swarm.returncode}):\n{self.swarm_stderr()}")
        self.client.check_alive()
        if time.monotonic() > self.deadline:
            raise RuntimeError("client swarm timed out")

    def wait_until(self, cond, what: str) -> None:
        while not cond():
            try:
                self.check()
            except RuntimeError as e:
                raise RuntimeError(f"waiting for {what}: {e}") from None
            time.sleep(0.05)

    def control_file(self, name: str) -> dict:
        p = self.control / name
        self.wait_until(p.exists, f"swarm.py's control file {name!r}")
        return json.loads(p.read_text())

    def signal(self, name: str) -> None:
        (self.control / name).write_text("{}")
        self.mark(name)

    def kill(self) -> None:
        self.client.kill()
        if self.swarm is not None and self.swarm.poll() is None:
            self.swarm.kill()
            self.swarm.wait(10)


def _checked(client: ClientDaemon, key: str, seeding: bool) -> bool:
    """The torrent is past its hash check (and complete, if the client seeds it)."""
    st = client.torrent_state(key)
    return not st.checking and (st.complete or not seeding)


def _prepare(spec: dict, tmp_path: Path, control_ip: str) -> tuple[dict, dict]:
    spec = json.loads(json.dumps(spec))
    ext = spec.get("external") or []
    if len(ext) != 1:
        raise ValueError("a client swarm spec needs exactly one 'external' peer")
    [c] = ext
    if c.get("client") not in registry.CLIENTS:
        raise ValueError(f"unknown client {c.get('client')!r}; known: {sorted(registry.CLIENTS)}")
    for addr in (c["ip"], control_ip):
        ip = ipaddress.ip_address(addr)
        if not (ip.is_loopback or ip in ipaddress.ip_network("fd00::/8")):
            raise ValueError(f"{addr} is not a namespace loopback address")
    spec.setdefault("workdir", str(tmp_path / "swarm"))
    spec["control_dir"] = str(tmp_path / "control")
    spec.setdefault("wait_for", ["client_done"])
    for p in spec["peers"]:
        if c["name"] in p.get("connect_to", []):
            p.setdefault("connect_after", "go")
    return spec, c


def run_client_swarm(spec: dict, tmp_path: Path | str, *, capture_tool: str = "tcpdump",
                     drop_probability: float = 0.0, control_ip: str = CONTROL_IP,
                     python: str = sys.executable, capture_name: str | None = None) -> ClientSwarmResult:
    """Run ``spec`` with its external client under capture (see the module doc)."""
    t_start = time.monotonic()
    tmp_path = Path(tmp_path)
    tmp_path.mkdir(parents=True, exist_ok=True)
    spec, c = _prepare(spec, tmp_path, control_ip)
    workdir, control = Path(spec["workdir"]), Path(spec["control_dir"])
    # a reused directory: control files and client state of an earlier run would
    # confuse this one (swarm.py itself empties its leechers' directories)
    for old in (control, tmp_path / f"{c['name']}-state"):
        shutil.rmtree(old, ignore_errors=True)
    control.mkdir(parents=True)
    spec_file, result_file = tmp_path / "spec.json", tmp_path / "result.json"
    spec_file.write_text(json.dumps(spec, indent=1))
    result_file.unlink(missing_ok=True)
    v4, v6 = _spec_addresses({"peers": [*spec["peers"], c], "trackers": spec.get("trackers", [])})
    v4.append(control_ip)
    ext = ".pcapng" if capture_tool == "dumpcap" else ".pcap"
    cap_path = tmp_path / (capture_name or f"capture{ext}")
    require_tools(capture_tool, "iptables", "ip6tables")
    driver = registry.CLIENTS[c["client"]]
    cfg = ClientConfig(ip=c["ip"], port=int(c["port"]), state_dir=tmp_path / f"{c['name']}-state",
                       download_dir=workdir / c["name"], control_ip=control_ip,
                       transports=c.get("transports", "both"), encryption=bool(c.get("encryption", False)),
                       extra=c.get("settings", {}))
    timeout = float(spec.get("timeout", 60))

    with Namespace(ipv4_addrs=v4, ipv6_addrs=v6, drop_probability=drop_probability) as ns:
        _block_multicast(ns)
        client = driver(ns, cfg)
        rpc_filter = f"not (host {client.rpc_address} and tcp port {client.rpc_port})" if client.rpc_port else ""
        run = _Run(ns, client, control, time.monotonic() + timeout + 30)
        cap = Capture(ns, cap_path, tool=capture_tool, capture_filter=rpc_filter)
        try:
            with cap:
                out = run.swarm_err = tmp_path / "swarm.stderr"
                with open(out, "wb") as err, open(tmp_path / "swarm.stdout", "wb") as so:
                    run.swarm = ns.popen([python, str(SWARM_SCRIPT), str(spec_file), str(result_file)],
                                         stdout=so, stderr=err)
                client.start()
                run.mark("client_started")
                ready = run.control_file("ready")
                run.mark("swarm_ready")
                keys = {}
                for tname in [*c.get("seeds", []), *c.get("leeches", [])]:
                    tfile = Path(ready["torrents"][tname]["torrent_file"])
                    keys[tname] = client.add_torrent(tfile, cfg.download_dir)
                for tname, key in keys.items():
                    seeding = tname in c.get("seeds", [])
                    run.wait_until(partial(_checked, client, key, seeding), f"{client.name} to check {tname}")
                time.sleep(client.ready_delay_s)
                # (aria2 opens its peer port only once it has a torrent)
                client.wait_for(client.listening, 15, "listening on its peer port")
                by_name = {p["name"]: p for p in spec["peers"]}
                for target in c.get("dial", []):
                    tp = by_name[target]
                    shared = [t for t in keys if t in {*tp.get("seeds", []), *tp.get("leeches", [])}]
                    for tname in shared:
                        client.add_peer(keys[tname], tp["ip"], int(tp["port"]))
                run.signal("go")
                leeched = [keys[t] for t in c.get("leeches", [])]
                run.wait_until(lambda: all(client.torrent_state(k).complete for k in leeched),
                               f"{client.name} to complete its downloads")
                run.signal("client_done")
                run.control_file("snapshot")
                run.mark("snapshot")
                counters = {t: client.stable_counters(k) for t, k in keys.items()}
                session = client.session_counters()
                run.mark("client_counters")
                run.signal("release")
                run.wait_until(lambda: run.swarm.poll() is not None, "swarm.py to finish")
                run.check()
                run.mark("swarm_finished")
                at_stop = {t: client.counters(k) for t, k in keys.items()}
                client.stop()
                run.mark("client_stopped")
            blocked = _blocked_multicast(ns)
        except BaseException as e:
            run.kill()
            if isinstance(e, RuntimeError):
                logs = "" if f"--- {client.log_path} " in str(e) else "\n" + client.log_tail()
                raise RuntimeError(f"{e}\n--- swarm.py stderr ---\n{run.swarm_stderr()}{logs}") from None
            raise
    truth = json.loads(result_file.read_text())
    return ClientSwarmResult(
        client=client.name, client_version=client.version, client_ip=cfg.ip,
        capture_files=cap.files, kernel_dropped=cap.kernel_dropped, ground_truth=truth,
        client_counters=counters, client_counters_at_stop=at_stop, client_session_counters=session,
        client_torrents=keys,
        state_dir=cfg.state_dir, state_files=client.written_files(), download_dir=cfg.download_dir,
        torrent_files={n: Path(t["torrent_file"]) for n, t in truth["torrents"].items()},
        workdir=workdir, blocked_multicast_packets=blocked, timings=run.timings, duration=round(time.monotonic() - t_start, 3))
