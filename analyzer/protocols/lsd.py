"""Local Service Discovery (BEP 14): BT-SEARCH announces on 239.192.152.143:6771
/ [ff15::efc0:988f]:6771."""
from __future__ import annotations

import re
from dataclasses import dataclass

_HASH = re.compile(rb"^[0-9a-fA-F]{40}$")


@dataclass(frozen=True, slots=True)
class LsdAnnounce:
    port: int | None
    info_hashes: tuple
    cookie: str | None


def decode_lsd(payload: bytes) -> LsdAnnounce | None:
    if not payload.startswith(b"BT-SEARCH * HTTP/1.1\r\n"):
        return None
    port = None
    hashes = []
    cookie = None
    for line in payload.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        value = value.strip()
        if name == b"port" and value.isdigit() and int(value) < 65536:
            port = int(value)
        elif name == b"infohash" and _HASH.match(value):
            hashes.append(value.decode().lower())
        elif name == b"cookie":
            cookie = value.decode("ascii", "replace")
    if not hashes:
        return None
    return LsdAnnounce(port, tuple(hashes), cookie)
