"""DHT messages (BEP 5 KRPC over UDP; BEP 51 sample_infohashes): decoding only.

``decode_krpc(payload)`` returns a ``Krpc`` or raises ``KrpcError`` (malformed
messages are counted by the caller, never fatal).  Info hashes are returned
as 40 lower-case hex digits.
"""
from __future__ import annotations

from dataclasses import dataclass

from analyzer.protocols.bencode import BencodeError, decode

INFO_HASH_QUERIES = ("get_peers", "announce_peer")


class KrpcError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Krpc:
    kind: str                 # "query", "response", "error"
    transaction: bytes
    method: str | None = None           # queries: ping, find_node, get_peers, announce_peer, ...
    node_id: bytes | None = None
    info_hash: str | None = None        # get_peers / announce_peer
    target: str | None = None           # find_node / sample_infohashes / get
    port: int | None = None             # announce_peer
    implied_port: bool = False
    values: int = 0                     # peers returned (get_peers response)
    nodes: int = 0                      # compact nodes returned
    samples: tuple = ()                 # BEP 51 info hashes
    error: tuple | None = None          # (code, message)
    client: str | None = None           # the "v" key: 2-letter client code + version


def _hex20(b) -> str | None:
    return b.hex() if isinstance(b, bytes) and len(b) == 20 else None


def decode_krpc(payload: bytes) -> Krpc:
    try:
        d = decode(payload)
    except BencodeError as e:
        raise KrpcError(f"bencode {e.code} at byte {e.pos}") from None
    if not isinstance(d, dict):
        raise KrpcError("not a dictionary")
    y = d.get(b"y")
    t = d.get(b"t")
    if not isinstance(t, bytes):
        raise KrpcError("no transaction id")
    v = d.get(b"v")
    client = v.hex() if isinstance(v, bytes) else None
    if y == b"q":
        q = d.get(b"q")
        a = d.get(b"a")
        if not isinstance(q, bytes) or not isinstance(a, dict):
            raise KrpcError("query without method or arguments")
        method = q.decode("ascii", "replace")
        port = a.get(b"port")
        return Krpc("query", t, method=method, node_id=a.get(b"id") if isinstance(a.get(b"id"), bytes) else None,
                    info_hash=_hex20(a.get(b"info_hash")), target=_hex20(a.get(b"target")),
                    port=port if isinstance(port, int) and 0 <= port < 65536 else None,
                    implied_port=a.get(b"implied_port") == 1, client=client)
    if y == b"r":
        r = d.get(b"r")
        if not isinstance(r, dict):
            raise KrpcError("response without r")
        values = r.get(b"values")
        nodes = r.get(b"nodes")
        nodes6 = r.get(b"nodes6")
        samples = r.get(b"samples")
        n_nodes = (len(nodes) // 26 if isinstance(nodes, bytes) else 0) + \
                  (len(nodes6) // 38 if isinstance(nodes6, bytes) else 0)
        sample_list = tuple(samples[i:i + 20].hex() for i in range(0, len(samples) - 19, 20)) \
            if isinstance(samples, bytes) else ()
        return Krpc("response", t, node_id=r.get(b"id") if isinstance(r.get(b"id"), bytes) else None,
                    values=len(values) if isinstance(values, list) else 0, nodes=n_nodes,
                    samples=sample_list, client=client)
    if y == b"e":
        e = d.get(b"e")
        if isinstance(e, list) and len(e) >= 2 and isinstance(e[0], int):
            msg = e[1].decode("utf-8", "replace") if isinstance(e[1], bytes) else str(e[1])
            return Krpc("error", t, error=(e[0], msg), client=client)
        raise KrpcError("malformed error")
    raise KrpcError("unknown message type")
