"""The validation scenarios: real transfers whose ground truth is the clients' own counters.

Each scenario is a harness run (``analyzer.validation.harness``) with one
*subject*, the client under test, whose traffic the analyzer measures:

* ``libtorrent-*``: three libtorrent 2.1.1 sessions (``three_peers``: S seeds
  at 150 kB/s, X downloads from S and uploads to L, who joins 2 s later), X
  the subject, over TCP, uTP, or both (S TCP only, L uTP only); and a seed
  and a leech over TCP with 2% of packets dropped after the capture point
  (the capture holds retransmissions), the leech the subject.  The
  libtorrent sessions write resume data (``write_resume_data``) at the end;
* ``<client>-tcp`` / ``<client>-utp``: another implementation, as Debian
  packages it, downloads one torrent from a libtorrent seeder while it seeds
  another to a libtorrent leecher (``clients.scenarios.exchange``): mixed
  clients in one capture, the other client the subject.  It is stopped
  cleanly at the end, so that it writes its state files.

The names are a contract (``bt-analyzer validate --scenario NAME``).  The
same scenarios are run by the test suite.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from analyzer.validation.harness.clients.scenarios import exchange
from analyzer.validation.harness.specs import three_peers, two_peers

# the Debian package of each program a scenario runs
PACKAGES = {"ip": "iproute2", "ss": "iproute2", "ethtool": "ethtool", "tcpdump": "tcpdump",
            "iptables": "iptables", "ip6tables": "iptables", "transmission-daemon": "transmission-daemon",
            "qbittorrent-nox": "qbittorrent-nox", "deluged": "deluged", "aria2c": "aria2", "rtorrent": "rtorrent"}
CLIENT_PROGRAMS = {"transmission": "transmission-daemon", "qbittorrent": "qbittorrent-nox", "deluge": "deluged",
                   "aria2": "aria2c", "rtorrent": "rtorrent"}
CLIENT_NAMES = {"libtorrent": "libtorrent", "transmission": "Transmission", "qbittorrent": "qBittorrent",
                "deluge": "Deluge", "aria2": "aria2", "rtorrent": "rTorrent"}
# run by default when installed; the others are required (issue 13: Transmission, aria2, rtorrent)
OPTIONAL_CLIENTS = ("qbittorrent", "deluge")
SWARMS = {"two_peers": two_peers, "three_peers": three_peers}


@dataclass(frozen=True)
class Scenario:
    name: str
    client: str                       # "libtorrent" or a harness client driver name
    transport: str                    # tcp, utp, or "tcp+utp"
    description: str
    ip_version: int = 4
    drop_probability: float = 0.0
    subject_peer: str = ""            # libtorrent scenarios: the spec's peer that is the subject
    options: dict = field(default_factory=dict)

    @property
    def harness_client(self) -> bool:
        return self.client != "libtorrent"

    def spec(self) -> dict:
        """The harness spec: ``options["swarm"]`` (``two_peers``, ``three_peers``) with the other options
        as its arguments, or the client exchange."""
        if not self.harness_client:
            options = dict(self.options)
            spec = SWARMS[options.pop("swarm")](**options)
            spec["save_resume"] = True
            return spec
        return exchange(self.client, transports=self.transport, ipv6=self.ip_version == 6)

    def programs(self) -> list[str]:
        """The programs the scenario runs (besides Python and libtorrent)."""
        tools = ["ip", "ethtool", "tcpdump"]
        if self.drop_probability or self.harness_client:
            tools += ["iptables", "ip6tables"]
        if self.harness_client:
            tools += ["ss", CLIENT_PROGRAMS[self.client]]
        return tools

    def python_modules(self) -> list[str]:
        return ["libtorrent"] + (["deluge_client"] if self.client == "deluge" else [])


def _client(client: str, transport: str) -> Scenario:
    name = CLIENT_NAMES[client]
    return Scenario(f"{client}-{transport}", client, transport,
                    f"{name} downloads a 2 MB torrent from a libtorrent seeder and seeds another to a libtorrent "
                    f"leecher over {transport.upper() if transport == 'tcp' else 'uTP'}; {name} is the subject")


SCENARIOS: dict[str, Scenario] = {s.name: s for s in [
    Scenario("libtorrent-tcp", "libtorrent", "tcp",
             "three libtorrent peers over TCP: X downloads a 1.5 MB torrent from a rate-limited seeder and uploads "
             "parts of it to a third peer; X is the subject", subject_peer="X",
             options={"swarm": "three_peers", "transports": ("tcp", "tcp", "tcp")}),
    Scenario("libtorrent-utp", "libtorrent", "utp",
             "the same three libtorrent peers over uTP (BEP 29); X is the subject", subject_peer="X",
             options={"swarm": "three_peers", "transports": ("utp", "utp", "utp")}),
    Scenario("libtorrent-mixed", "libtorrent", "tcp+utp",
             "the same three peers, the seeder speaking TCP only and the third peer uTP only: X, the subject, "
             "uses both transports", subject_peer="X", options={"swarm": "three_peers", "transports": ("tcp", "both", "utp")}),
    Scenario("libtorrent-tcp-loss", "libtorrent", "tcp",
             "a libtorrent seed and leech over TCP, 2% of packets dropped after the capture point (the capture "
             "holds retransmissions); the leech is the subject", drop_probability=0.02, subject_peer="leech",
             options={"swarm": "two_peers", "size": 2_000_000}),
    _client("transmission", "tcp"),
    _client("transmission", "utp"),
    _client("qbittorrent", "tcp"),
    _client("qbittorrent", "utp"),
    _client("deluge", "tcp"),
    _client("deluge", "utp"),
    _client("aria2", "tcp"),
    _client("rtorrent", "tcp"),
]}
