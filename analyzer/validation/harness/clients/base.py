"""What every client driver shares: a daemon process inside a harness namespace.

A driver subclasses ``ClientDaemon`` and fills in the client's config file,
command line and RPC calls.  The base class owns the process: it is started
with ``Namespace.popen`` (``ip netns exec`` execs the daemon itself, so the
Popen pid is the daemon's), its stdout/stderr go to ``<state>/daemon.log``
beside whatever log file the client writes itself, ``HOME``/``XDG_*`` point
into the private state directory so nothing is read from or written to the
real user's profile, and every failure raises ``RuntimeError`` carrying the
tail of those logs.  ``kill()`` is idempotent and safe after any failure;
the namespace kills whatever is left anyway.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..netns import Namespace, require_tools
from ..tracker import bdecode, bencode

LOG_TAIL_BYTES = 6000
CONTROL_IP = "127.0.0.254"      # the namespace address the clients' RPC servers listen on


def torrent_info_hash(torrent_file: Path) -> str:
    """The v1 info hash (hex) of a .torrent file."""
    from hashlib import sha1
    return sha1(bencode(bdecode(torrent_file.read_bytes())[b"info"])).hexdigest()


def local_endpoints(ss_output: str) -> set[str]:
    """Local addresses of ``ss -H`` lines, normalised: a socket bound to a device
    too shows as 127.0.0.4%lo:6881 / [fd00::4%lo]:6881, an IPv6 socket bound to
    a v4-mapped address as [::ffff:127.0.0.4]:6881."""
    return {re.sub(r"^\[::ffff:([0-9.]+)\]", r"\1", re.sub(r"%[^:\]]+", "", f[3]))
            for f in map(str.split, ss_output.splitlines()) if len(f) > 4}


@dataclass
class ClientConfig:
    """Where and how a client runs.  ``ip``/``port``: its peer-wire endpoint
    (IPv4 127.0.0.x or an IPv6 fd00:: address); ``control_ip``: the IPv4
    namespace address its RPC server listens on (left out of the capture);
    ``transports``: "tcp", "utp" or "both" where the client lets us choose;
    ``encryption``: False = plaintext peer wire (refuse or avoid MSE where the
    client can), True = the client's "prefer encryption" setting."""
    ip: str
    state_dir: Path
    download_dir: Path
    port: int = 6881
    control_ip: str = CONTROL_IP
    transports: str = "both"
    encryption: bool = False
    extra: dict = field(default_factory=dict)   # client-specific overrides

    @property
    def ipv6(self) -> bool:
        return ":" in self.ip


@dataclass
class TorrentState:
    checking: bool          # hashing its data (not ready to serve yet)
    complete: bool          # every wanted byte present and verified
    raw: dict


class ClientDaemon:
    """One BitTorrent client daemon in a namespace (subclass per client)."""

    name = ""                 # "transmission", ...
    program = ""              # executable that must be on PATH
    tools: tuple[str, ...] = ()
    rpc_port = 0              # TCP port of its RPC on control_ip (0: no TCP RPC)
    utp = False               # speaks uTP (BEP 29)
    ipv6 = False              # peer wire over IPv6 supported by the driver
    can_dial = False          # add_peer(): the client itself connects to a peer
    counter_settle_s = 0.3    # counters are final when unchanged this long
    ready_delay_s = 0.0       # after its torrents look ready, until they surely accept peers
    state_files: dict = {}    # what its clean stop leaves in the state dir: {kind: glob}

    def __init__(self, ns: Namespace, cfg: ClientConfig) -> None:
        if cfg.ipv6 and not self.ipv6:
            raise RuntimeError(f"{self.name}: IPv6 peer wire not supported by this driver")
        if cfg.transports not in ("tcp", "utp", "both"):
            raise ValueError(f"transports must be tcp, utp or both, not {cfg.transports!r}")
        if cfg.transports == "utp" and not self.utp:
            raise RuntimeError(f"{self.name} does not speak uTP")
        self.ns = ns
        self.cfg = cfg
        self.proc: subprocess.Popen | None = None
        self.version = ""
        self.log_path = cfg.state_dir / "daemon.log"
        self._log = None

    @property
    def rpc_address(self) -> str:
        """Address of its RPC server in the namespace (``rpc_port`` there)."""
        return self.cfg.control_ip

    # -- to be provided by each client ---------------------------------------
    def write_config(self) -> None:
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def ping(self) -> str:
        """The client's version string once its RPC answers (raise while not)."""
        raise NotImplementedError

    def add_torrent(self, torrent_file: Path, content_dir: Path) -> str:
        """Add the torrent with its data in ``content_dir``; return the client's key."""
        raise NotImplementedError

    def torrent_state(self, key: str) -> TorrentState:
        raise NotImplementedError

    def counters(self, key: str) -> dict:
        """The client's own per-torrent counters, raw, under the client's names."""
        raise NotImplementedError

    def session_counters(self) -> dict:
        """Client-wide counters (session/transfer statistics), raw."""
        return {}

    def add_peer(self, key: str, ip: str, port: int) -> None:
        raise RuntimeError(f"{self.name}: the client cannot be told to connect to a peer")

    def shutdown(self) -> None:
        """Ask for a clean exit (the client writes its state)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def log_files(self) -> list[Path]:
        """The client's own log files besides daemon.log."""
        return []

    # -- process ------------------------------------------------------------------
    def env(self) -> dict:
        home = str(self.cfg.state_dir)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "http_", "https_",
                                                                          "HTTP_", "HTTPS_"))}
        env.update(HOME=home, XDG_CONFIG_HOME=f"{home}/.config", XDG_DATA_HOME=f"{home}/.local/share",
                   XDG_CACHE_HOME=f"{home}/.cache", LANG="C.UTF-8", LC_ALL="C.UTF-8")
        env.pop("DISPLAY", None)
        return env

    def start(self, timeout: float = 30.0) -> None:
        require_tools(self.program, "ss", *self.tools)
        self.cfg.state_dir.mkdir(parents=True, exist_ok=True)
        self.cfg.download_dir.mkdir(parents=True, exist_ok=True)
        self.write_config()
        self._log = open(self.log_path, "ab")
        self.proc = self.ns.popen(self.command(), stdin=subprocess.DEVNULL, stdout=self._log,
                                  stderr=subprocess.STDOUT, env=self.env(), cwd=str(self.cfg.state_dir))
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while True:
            self.check_alive()
            try:
                self.version = self.ping()
                break
            except Exception as e:          # not up yet: connection refused, 409, ...
                last = e
            if time.monotonic() > deadline:
                self.fail(f"RPC did not answer within {timeout:.0f} s (last error: {last!r})")
            time.sleep(0.1)

    def check_alive(self) -> None:
        if self.proc is None:
            self.fail("not started")
        rc = self.proc.poll()
        if rc is not None:
            self.fail(f"exited with status {rc}")

    def wait_for(self, cond: Callable[[], bool], timeout: float, what: str, every: float = 0.1) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            self.check_alive()
            if time.monotonic() > deadline:
                self.fail(f"not {what} after {timeout:.0f} s")
            time.sleep(every)

    def listening(self) -> bool:
        """Its peer port is bound (TCP listen; UDP too when it speaks uTP): read from
        the kernel's socket tables (``ss``), which puts nothing on the wire."""
        host = f"[{self.cfg.ip}]" if self.cfg.ipv6 else self.cfg.ip
        want = f"{host}:{self.cfg.port}"
        kinds = ["-Hltn"] + (["-Hlun"] if self.utp and self.cfg.transports != "tcp" else [])
        for flags in kinds:
            out = self.ns.run(["ss", flags], capture_output=True, text=True).stdout
            if want not in local_endpoints(out):
                return False
        return True

    def stable_counters(self, key: str, timeout: float = 15.0) -> dict:
        """Counters read until two reads ``counter_settle_s`` apart agree."""
        deadline = time.monotonic() + timeout
        prev = self.counters(key)
        while True:
            time.sleep(self.counter_settle_s)
            cur = self.counters(key)
            if cur == prev:
                return cur
            if time.monotonic() > deadline:
                self.fail(f"counters still changing after {timeout:.0f} s: {prev} -> {cur}")
            prev = cur

    def stop(self, timeout: float = 30.0) -> None:
        """Clean shutdown; RuntimeError (after a kill) if the client does not exit."""
        if self.proc is None or self.proc.poll() is not None:
            self._close_log()
            return
        try:
            self.shutdown()
        except Exception as e:   # RPC gone: fall back to SIGTERM
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            note = f" (shutdown request failed: {e!r})"
        else:
            note = ""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.fail(f"did not exit within {timeout:.0f} s of its shutdown request{note}")
        self._close_log()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    # -- diagnostics ------------------------------------------------------------------
    def log_tail(self) -> str:
        parts = []
        for p in [self.log_path, *self.log_files()]:
            try:
                data = p.read_bytes()
            except OSError:
                continue
            parts.append(f"--- {p} (last {LOG_TAIL_BYTES} bytes) ---\n"
                         + data[-LOG_TAIL_BYTES:].decode("utf-8", "replace"))
        return "\n".join(parts) or "(no log written)"

    def fail(self, msg: str):
        raise RuntimeError(f"{self.name} ({self.cfg.ip}): {msg}\n{self.log_tail()}")

    def written_files(self) -> list[Path]:
        """Every file in the state directory (after ``stop()``: what the client left)."""
        return sorted(p for p in self.cfg.state_dir.rglob("*") if p.is_file())
