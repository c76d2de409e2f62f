"""Private network namespaces and packet captures for real-traffic tests.

Theory of operation
-------------------
Every real-traffic test runs inside a throw-away Linux network namespace
(``ip netns add bta-<pid>-<counter>``).  A fresh namespace contains only a
loopback device, so nothing the test does can reach (or be reached from) the
host's network.  ``Namespace`` prepares that loopback so captures look like
a real wire:

* ``lo`` is brought up with MTU 1500 (the default 65536 would give giant
  segments no real network carries);
* TSO/GSO/GRO are switched off with ethtool so that the capture sees
  MSS-sized segments, one per IP packet actually sent;
* extra addresses are put on ``lo`` (127.0.0.x/32, and IPv6 ``fdxx::/128``
  with ``nodad`` so they are usable immediately), one per simulated peer;
* optionally ``iptables``/``ip6tables`` INPUT rules drop a random fraction
  of packets.  On loopback the capture tap (``tcpdump -i lo``) sees a packet
  when it is received by ``lo``, *before* netfilter's PREROUTING/INPUT, so a
  dropped packet is still in the capture and so is its retransmission.

``Capture`` runs tcpdump or dumpcap inside the namespace, waits until the
tool reports that it is listening, and on ``stop()`` interrupts it with
SIGINT (which makes both tools flush and close their files), collects the
written files (including ``tcpdump -C`` rotation files) and parses the
"dropped by kernel" count from the tool's stderr.

``Namespace.entered()`` moves the calling *thread* into the namespace for a
block (``setns(2)``, as ``ip netns exec`` does for a process): sockets created
there belong to the namespace for good, so a test can talk to a daemon's RPC
port on the namespace loopback without a helper process.  ``Capture`` takes
an optional BPF ``capture_filter`` (e.g. to leave such control traffic out).

Everything needs root (CAP_SYS_ADMIN + CAP_NET_ADMIN).  Missing privileges
or tools raise ``RuntimeError`` naming what is missing; nothing is skipped
silently.  On exit the namespace's remaining processes are killed and the
namespace is deleted.
"""

from __future__ import annotations

import ctypes
import ipaddress
import itertools
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Sequence

__all__ = ["Namespace", "Capture", "require_tools"]

_counter = itertools.count()
_CLONE_NEWNET = 0x40000000
_libc = None


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise RuntimeError(f"setns(CLONE_NEWNET) failed: {os.strerror(err)}")


def require_tools(*tools: str) -> dict[str, str]:
    """Return {tool: path}; raise RuntimeError naming any tool that is missing."""
    found = {t: shutil.which(t) for t in tools}
    missing = [t for t, p in found.items() if p is None]
    if missing:
        raise RuntimeError(
            "real-traffic harness: required tool(s) not found in PATH: "
            + ", ".join(missing)
        )
    return found  # type: ignore[return-value]


def _require_root() -> None:
    if os.geteuid() != 0:
        raise RuntimeError(
            "real-traffic harness: must run as root (needs CAP_SYS_ADMIN and "
            "CAP_NET_ADMIN for 'ip netns', iptables and packet capture)"
        )


def _check(argv: Sequence[str], what: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(argv), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{what} failed (exit {proc.returncode}): {' '.join(argv)}\n"
            f"{proc.stderr.strip()}"
        )
    return proc


class Namespace:
    """A private network namespace with only a prepared loopback device.

    >>> with Namespace(ipv4_addrs=["127.0.0.2"], ipv6_addrs=["fd00::2"]) as ns:
    ...     ns.run(["ip", "addr"], check=True)
    """

    def __init__(
        self,
        ipv4_addrs: Iterable[str] = (),
        ipv6_addrs: Iterable[str] = (),
        drop_probability: float = 0.0,
        mtu: int = 1500,
    ) -> None:
        self.name = f"bta-{os.getpid()}-{next(_counter)}"
        self.ipv4_addrs = [str(ipaddress.IPv4Address(a)) for a in ipv4_addrs]
        self.ipv6_addrs = [str(ipaddress.IPv6Address(a)) for a in ipv6_addrs]
        for a in self.ipv4_addrs:
            if not ipaddress.IPv4Address(a).is_loopback:
                raise ValueError(f"IPv4 address {a} is not in 127.0.0.0/8")
        if not 0.0 <= drop_probability < 1.0:
            raise ValueError("drop_probability must be in [0, 1)")
        self.drop_probability = drop_probability
        self.mtu = mtu
        self._created = False

    # -- lifecycle ---------------------------------------------------------
    def __enter__(self) -> "Namespace":
        _require_root()
        tools = ["ip", "ethtool"]
        if self.drop_probability:
            tools += ["iptables", "ip6tables"]
        require_tools(*tools)
        _check(["ip", "netns", "add", self.name], "creating network namespace")
        self._created = True
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _setup(self) -> None:
        x = ["ip", "netns", "exec", self.name]
        _check(x + ["ip", "link", "set", "lo", "mtu", str(self.mtu), "up"], "bringing lo up")
        # Offloads: ethtool exits non-zero when a feature is [fixed]; what
        # matters is the resulting state, which we verify below.
        subprocess.run(
            x + ["ethtool", "-K", "lo", "tso", "off", "gso", "off", "gro", "off"],
            capture_output=True, text=True,
        )
        state = _check(x + ["ethtool", "-k", "lo"], "reading lo offloads").stdout
        for feature in ("tcp-segmentation-offload", "generic-segmentation-offload",
                        "generic-receive-offload"):
            m = re.search(rf"^{feature}: (\w+)", state, re.M)
            if m and m.group(1) != "off":
                raise RuntimeError(f"could not switch off {feature} on lo in {self.name}")
        for a in self.ipv4_addrs:
            if a != "127.0.0.1":
                _check(x + ["ip", "addr", "add", f"{a}/32", "dev", "lo"], f"adding {a}")
        for a in self.ipv6_addrs:
            if a != "::1":
                _check(x + ["ip", "addr", "add", f"{a}/128", "dev", "lo", "nodad"],
                       f"adding {a}")
        if self.drop_probability:
            rule = ["-A", "INPUT", "-m", "statistic", "--mode", "random",
                    "--probability", repr(self.drop_probability), "-j", "DROP"]
            _check(x + ["iptables"] + rule, "installing iptables drop rule")
            _check(x + ["ip6tables"] + rule, "installing ip6tables drop rule")

    def pids(self) -> list[int]:
        proc = subprocess.run(["ip", "netns", "pids", self.name],
                              capture_output=True, text=True)
        return [int(p) for p in proc.stdout.split()]

    def close(self) -> None:
        if not self._created:
            return
        for _ in range(50):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True)
        self._created = False

    # -- running things inside --------------------------------------------
    @contextmanager
    def entered(self) -> Iterator["Namespace"]:
        """The calling thread is in this namespace for the block; sockets it
        creates there stay in the namespace (other threads are unaffected)."""
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
            try:
                _setns(target)
            finally:
                os.close(target)
            try:
                yield self
            finally:
                _setns(own)
        finally:
            os.close(own)

    def argv(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *map(str, argv)]

    def run(self, argv: Sequence[str], **kwargs) -> subprocess.CompletedProcess:
        """subprocess.run() inside the namespace."""
        return subprocess.run(self.argv(argv), **kwargs)

    def popen(self, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        """subprocess.Popen() inside the namespace."""
        return subprocess.Popen(self.argv(argv), **kwargs)


class Capture:
    """A running packet capture inside a Namespace (context manager).

    ``tool='tcpdump'`` writes classic pcap (link type EN10MB on ``lo``,
    LINUX_SLL2 on ``any``); ``tool='dumpcap'`` writes pcapng.  After
    ``stop()`` (or leaving the ``with`` block) ``files`` lists the files
    written, in order, and ``kernel_dropped`` the tool's kernel-drop count.
    """

    START_TIMEOUT = 10.0

    def __init__(
        self,
        ns: Namespace,
        path: os.PathLike | str,
        tool: str = "tcpdump",
        interface: str = "lo",
        extra_args: Sequence[str] = (),
        snaplen: int = 0,
        packet_buffered: bool = True,
        buffer_kib: int = 16384,
        capture_filter: str = "",
    ) -> None:
        if tool not in ("tcpdump", "dumpcap"):
            raise ValueError(f"unsupported capture tool {tool!r}")
        self.ns = ns
        self.path = Path(path)
        self.tool = tool
        self.interface = interface
        self.extra_args = [str(a) for a in extra_args]
        self.snaplen = snaplen
        self.packet_buffered = packet_buffered   # tcpdump -U: slower, but files are complete at once
        self.buffer_kib = buffer_kib             # kernel capture buffer (-B)
        self.capture_filter = capture_filter     # BPF expression, "" for everything
        self.proc: subprocess.Popen | None = None
        self.files: list[Path] = []
        self.kernel_dropped: int = 0
        self.stderr_text = ""
        self._stderr_lines: list[str] = []
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    def _command(self) -> list[str]:
        if self.tool == "tcpdump":
            # -Z root: Debian's tcpdump otherwise drops to user 'tcpdump'
            # and could not write into root-owned test directories.
            return ["tcpdump", *(["-U"] if self.packet_buffered else []), "-n",
                    "-B", str(self.buffer_kib), "-s", str(self.snaplen),
                    "-Z", "root", "-i", self.interface, *self.extra_args,
                    "-w", str(self.path), *([self.capture_filter] if self.capture_filter else [])]
        argv = ["dumpcap", "-q", "-B", str(max(1, self.buffer_kib // 1024)), "-i", self.interface,
                *self.extra_args,
                *(["-f", self.capture_filter] if self.capture_filter else []),
                "-w", str(self.path)]
        if self.snaplen:
            argv[2:2] = ["-s", str(self.snaplen)]
        return argv

    # Lines that tell us the tool has opened the device and is capturing.
    _READY = re.compile(r"listening on|Capturing on")

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr_lines.append(line)
            if self._READY.search(line):
                self._ready.set()
        self._ready.set()  # EOF: process gone; start() reports the failure

    def start(self) -> "Capture":
        require_tools(self.tool)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = self.ns.popen(self._command(), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        if not self._ready.wait(self.START_TIMEOUT) or self.proc.poll() is not None:
            self.proc.kill()
            self.proc.wait()
            self._reader.join(2)
            raise RuntimeError(f"{self.tool} did not start capturing:\n"
                               + "".join(self._stderr_lines))
        if self.tool == "dumpcap":
            # dumpcap says "Capturing on" before it has written its file
            # header; wait for the section header block to be on disk.
            deadline = time.monotonic() + self.START_TIMEOUT
            while not (self.path.exists() and self.path.stat().st_size >= 28):
                if time.monotonic() > deadline:
                    raise RuntimeError("dumpcap did not write its pcapng header")
                time.sleep(0.02)
        # The packet socket is bound once "listening" is printed; a short
        # grace period covers the gap between bind and the first read loop.
        time.sleep(0.2)
        return self

    def stop(self) -> tuple[list[Path], int]:
        """SIGINT the tool, wait for it, return (files, kernel_dropped)."""
        if self.proc is None:
            return self.files, self.kernel_dropped
        if self.proc.poll() is None:
            # Let in-flight packets (e.g. final FIN/ACKs) reach the tap.
            time.sleep(0.3)
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError(f"{self.tool} did not exit after SIGINT")
        if self._reader is not None:
            self._reader.join(5)
        self.stderr_text = "".join(self._stderr_lines)
        rc = self.proc.returncode
        self.proc = None
        if rc not in (0, -signal.SIGINT, 128 + signal.SIGINT):
            raise RuntimeError(f"{self.tool} exited with {rc}:\n{self.stderr_text}")
        self.files = self._collect_files()
        self.kernel_dropped = self._parse_dropped(self.stderr_text)
        return self.files, self.kernel_dropped

    def _collect_files(self) -> list[Path]:
        files = [self.path] if self.path.exists() else []
        # tcpdump -C rotation: path, path1, path2, ... (no separator).
        n = 1
        while True:
            p = self.path.with_name(f"{self.path.name}{n}")
            if not p.exists():
                break
            files.append(p)
            n += 1
        if not files:
            raise RuntimeError(f"{self.tool} wrote no capture file at {self.path}:\n"
                               + self.stderr_text)
        return files

    @staticmethod
    def _parse_dropped(stderr: str) -> int:
        # tcpdump: "123 packets dropped by kernel"
        m = re.search(r"(\d+) packets? dropped by kernel", stderr)
        if m:
            return int(m.group(1))
        # dumpcap: "Packets received/dropped on interface 'lo': 10/0 (pcap:0/...)"
        m = re.search(r"received/dropped on interface[^:]*:\s*\d+/(\d+)", stderr)
        if m:
            return int(m.group(1))
        return 0

    def __enter__(self) -> "Capture":
        return self.start()

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            try:
                self.stop()
            except RuntimeError:
                if exc[0] is None:
                    raise
