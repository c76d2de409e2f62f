"""The subject host: given with ``--local`` or inferred (``sessions.inference``).

``--local`` takes an IP address, a CIDR network or ``IP:port`` (``[v6]:port``)
and may be repeated.  Without it, the subject is inferred from the evidence
of the capture; the inference, its basis and every candidate with its
evidence are stated in the output.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field


@dataclass(frozen=True)
class EndpointSpec:
    text: str
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    port: int | None = None

    def matches(self, ip: str, port: int) -> bool:
        addr = ipaddress.ip_address(ip)
        return addr.version == self.network.version and addr in self.network and \
            (self.port is None or self.port == port)


def parse_endpoint_spec(text: str) -> EndpointSpec:
    """'10.0.0.5', '10.0.0.0/24', '10.0.0.5:6881', '::1', 'fd00::/8', '[::1]:6881'."""
    s = text.strip()
    port = None
    try:
        if s.startswith("["):
            host, _, rest = s[1:].partition("]")
            if rest:
                if not rest.startswith(":"):
                    raise ValueError
                port = int(rest[1:])
            s = host
        elif s.count(":") == 1:
            s, p = s.split(":")
            port = int(p)
        if port is not None and not 0 < port < 65536:
            raise ValueError
        network = ipaddress.ip_network(s, strict=False)
    except ValueError:
        raise ValueError(f"not an IP address, CIDR network or IP:port: {text!r}") from None
    return EndpointSpec(text, network, port)


@dataclass
class Subject:
    specs: list[EndpointSpec]
    inferred: bool
    basis: str
    ambiguous: bool = False
    candidates: list[dict] = field(default_factory=list)    # {"address", "evidence"}, best first
    candidates_not_listed: int = 0
    # (version, network as an integer, netmask, port) per spec: every connection asks, twice
    _nets: list = field(default_factory=list, init=False, repr=False, compare=False)
    _values: dict = field(default_factory=dict, init=False, repr=False, compare=False)   # recent addresses

    def __post_init__(self):
        self._nets = [(s.network.version, int(s.network.network_address), int(s.network.netmask), s.port)
                      for s in self.specs]

    def _holds(self, ip: str, port: int | None) -> bool:
        """Is ``ip`` (and ``port``, unless None) the subject's?"""
        found = self._values.get(ip)
        if found is None:
            if len(self._values) >= 1 << 16:
                self._values.clear()
            found = self._values[ip] = _address_int(ip)
        version, value = found
        for net_version, net, mask, spec_port in self._nets:
            if net_version == version and value & mask == net and \
                    (port is None or spec_port is None or spec_port == port):
                return True
        return False

    def has_address(self, ip: str) -> bool:
        """Is this address the subject's (whatever the port)?"""
        return self._holds(ip, None)

    def directions(self, r) -> tuple:
        """(side, direction towards the subject, direction from the subject) of a connection
        record (``fwd``: src -> dst, ``rev``: dst -> src); the directions are None when the
        subject is neither end, or both."""
        side = self.side(r.src_ip, r.src_port, r.dst_ip, r.dst_port)
        if side == "src":
            return side, r.rev, r.fwd
        if side == "dst":
            return side, r.fwd, r.rev
        return side, None, None

    def side(self, src_ip: str, src_port: int, dst_ip: str, dst_port: int) -> str:
        """'src', 'dst', 'both' or 'none': which endpoint of a connection is the subject."""
        a = self._holds(src_ip, src_port)
        b = self._holds(dst_ip, dst_port)
        return "both" if a and b else "src" if a else "dst" if b else "none"

    def as_json(self) -> dict:
        return {
            "specs": [s.text for s in self.specs],
            "inferred": self.inferred,
            "basis": self.basis,
            "ambiguous": self.ambiguous,
            **({"candidates": self.candidates, "candidates_not_listed": self.candidates_not_listed}
               if self.inferred else {}),
        }


def _address_int(ip: str) -> tuple[int, int]:
    """(IP version, the address as an integer) of an address in text form (fast: no
    ``ipaddress`` object for the addresses written by the analyzer itself)."""
    try:
        if ":" in ip:
            return 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, ip), "big")
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, ip), "big")
    except OSError:
        a = ipaddress.ip_address(ip)         # other spellings; ValueError for what is no address
        return a.version, int(a)


def given_subject(specs: list[str]) -> Subject:
    parsed = [parse_endpoint_spec(s) for s in specs]
    return Subject(parsed, False, "given with --local")
