"""BEP 10 extended handshake: the fields a forensic report needs."""
from __future__ import annotations

import ipaddress

from analyzer.protocols.bencode import BencodeError, decode


def decode_ext_handshake(payload: bytes | None) -> dict:
    """``v`` (client), ``m`` (extension name -> id), ``p`` (listen port),
    ``metadata_size``, ``reqq``, ``yourip`` (as text); ``error`` when malformed.
    Missing fields are absent from the result."""
    if not payload:
        return {}
    try:
        d = decode(payload)
    except BencodeError as e:
        return {"error": f"bencode {e.code} at byte {e.pos}"}
    if not isinstance(d, dict):
        return {"error": "not a dictionary"}
    out: dict = {}
    v = d.get(b"v")
    if isinstance(v, bytes):
        out["v"] = v.decode("utf-8", "replace")
    m = d.get(b"m")
    if isinstance(m, dict):
        out["m"] = {k.decode("utf-8", "replace"): x for k, x in sorted(m.items()) if isinstance(x, int)}
    for key in ("p", "metadata_size", "reqq"):
        x = d.get(key.encode())
        if isinstance(x, int) and not isinstance(x, bool):
            out[key] = x
    ip = d.get(b"yourip")
    if isinstance(ip, bytes) and len(ip) in (4, 16):
        out["yourip"] = str(ipaddress.ip_address(ip))
    return out
