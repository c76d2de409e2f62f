"""Client identification from a BitTorrent peer_id (BEP 20 conventions).

Azureus style ``-XXvvvv-`` (most clients), Shadow style ``Xvvv--``,
Mainline style ``M4-3-6--`` and aria2's ``A2-1-36-0-`` (decimal fields; it
must be recognised before Shadow style, whose "A" is ABC).  Version digits
of Azureus-style ids are per client:

* libtorrent-based clients (libtorrent, qBittorrent, Deluge, ...): one
  base-36 digit per field (``-LT2110-`` 2.1.1, ``-DE13F0-`` 1.3.15);
  Deluge 2 puts its release type in the 4th place (``-DE203s-`` 2.0.3:
  s stable, D dev, a/b alpha/beta, r release candidate);
* Transmission: up to 3.00 ``-TR`` major, two-digit minor, status
  (``-TR3000-`` 3.00, ``-TR294Z-`` 2.94 dev); from 4.0 major, minor,
  patch, status (``-TR4050-`` 4.0.5, ``-TR400B-`` 4.0.0 beta); pre-1.0
  ``-TR0072-`` 0.72 and ``-TR0006-`` 0.6;
* µTorrent: hex digits and a status letter.

Unknown ids decode to ``None``: the raw peer_id is always reported beside
the decoded name.
"""
from __future__ import annotations

import re

AZUREUS_CLIENTS = {
    "7T": "aTorrent", "AB": "AnyEvent::BitTorrent", "AG": "Ares", "AR": "Arctic", "AT": "Artemis",
    "AV": "Avicora", "AX": "BitPump", "AZ": "Vuze", "BB": "BitBuddy", "BC": "BitComet",
    "BE": "Baretorrent", "BF": "Bitflu", "BG": "BTG", "BI": "BiglyBT", "BL": "BitCometLite",
    "BP": "BitTorrent Pro", "BR": "BitRocket", "BS": "BTSlave", "BT": "BitTorrent",
    "BW": "BitWombat", "BX": "Bittorrent X", "CD": "Enhanced CTorrent", "CT": "CTorrent",
    "DE": "Deluge", "DP": "Propagate Data Client", "EB": "EBit", "ES": "electric sheep",
    "FC": "FileCroc", "FD": "Free Download Manager", "FT": "FoxTorrent", "FX": "Freebox BitTorrent",
    "GS": "GSTorrent", "HK": "Hekate", "HL": "Halite", "HM": "hMule", "HN": "Hydranode",
    "IL": "iLivid", "JS": "Justseed.it", "JT": "JavaTorrent", "KG": "KGet", "KT": "KTorrent",
    "LC": "LeechCraft", "LH": "LH-ABC", "LP": "Lphant", "LT": "libtorrent", "lt": "libTorrent (rakshasa)",
    "LW": "LimeWire", "MK": "Meerkat", "MO": "MonoTorrent", "MP": "MooPolice", "MR": "Miro",
    "MT": "MoonlightTorrent", "NB": "Net::BitTorrent", "NX": "Net Transport", "OS": "OneSwarm",
    "OT": "OmegaTorrent", "PB": "Protocol::BitTorrent", "PD": "Pando", "PI": "PicoTorrent",
    "PT": "PHPTracker", "qB": "qBittorrent", "QD": "QQDownload", "QT": "Qt 4 Torrent example",
    "RT": "Retriever", "RZ": "RezTorrent", "S~": "Shareaza alpha/beta", "SB": "~Swiftbit",
    "SD": "Thunder (XunLei)", "SM": "SoMud", "SP": "BitSpirit", "SS": "SwarmScope",
    "ST": "SymTorrent", "st": "sharktorrent", "SZ": "Shareaza", "TB": "Torch", "TE": "terasaur Seed Bank",
    "TL": "Tribler", "TN": "TorrentDotNET", "TR": "Transmission", "TS": "Torrentstorm",
    "TT": "TuoTu", "UL": "uLeecher!", "UM": "µTorrent for Mac", "UT": "µTorrent",
    "UW": "µTorrent Web", "VG": "Vagaa", "WD": "WebTorrent Desktop", "WT": "BitLet",
    "WW": "WebTorrent", "WY": "FireTorrent", "XF": "Xfplay", "XL": "Xunlei", "XS": "XSwifter",
    "XT": "XanTorrent", "XX": "Xtorrent", "ZT": "ZipTorrent", "A2": "aria2", "AN": "Ares",
}
SHADOW_CLIENTS = {
    "A": "ABC", "O": "Osprey Permaseed", "Q": "BTQueue", "R": "Tribler", "S": "Shadow",
    "T": "BitTornado", "U": "UPnP NAT Bit Torrent",
}
_AZ = re.compile(rb"^-([A-Za-z0-9~]{2})([A-Za-z0-9]{4})-")
_MAINLINE = re.compile(rb"^M(\d+)-(\d+)-(\d+)-")
_ARIA2 = re.compile(rb"^A2-(\d{1,3})-(\d{1,3})-(\d{1,3})-")
_SHADOW = re.compile(rb"^([A-Z])([0-9A-Za-z.\-]{3,5})-{1,3}")


_TR_STATUS = {"B": " beta", "b": " beta", "X": " dev", "x": " dev", "Z": " dev"}
_DE_RELEASE = {"s": "", "D": " dev", "a": "a", "b": "b", "r": "rc"}


def _b62(c: str) -> int:
    """Transmission's version digits: 0-9, A-Z = 10-35, a-z = 36-61."""
    if c.isdigit():
        return int(c)
    if "A" <= c <= "Z":
        return ord(c) - ord("A") + 10
    if "a" <= c <= "z":
        return ord(c) - ord("a") + 36
    raise ValueError(c)


def _transmission_version(s: str) -> str:
    status = _TR_STATUS.get(s[3], "")
    if s[:3] == "000":                       # -TR0006-: 0.6
        return f"0.{s[3]}"
    if s[:2] == "00":                        # -TR0072-: 0.72
        return f"0.{s[2:4]}"
    if s[0] <= "3":                          # up to 3.00: major, two-digit minor
        int(s[1:3])
        return f"{s[0]}.{s[1:3]}{status}"
    return f"{_b62(s[0])}.{_b62(s[1])}.{_b62(s[2])}{status}"


def _az_version(client: str, v: bytes) -> str:
    s = v.decode("ascii", "replace")
    if client == "TR":
        return _transmission_version(s)
    if client == "DE" and s[3] in _DE_RELEASE:
        return ".".join(str(int(c, 36)) for c in s[:3]) + _DE_RELEASE[s[3]]
    if client in ("UT", "UM", "UW"):
        return ".".join(str(int(c, 16)) for c in s[:3]) + ({"B": " beta"}.get(s[3], ""))
    if client == "qB":
        return ".".join(str(int(c, 36)) for c in s[:3])
    parts = [str(int(c, 36)) if c.isalnum() else c for c in s]
    while len(parts) > 2 and parts[-1] == "0":
        parts.pop()
    return ".".join(parts)


def decode_peer_id(peer_id: bytes | None) -> str | None:
    """'libtorrent 2.1.1' etc., or None when the style is not recognised."""
    if not peer_id or len(peer_id) != 20:
        return None
    m = _AZ.match(peer_id)
    if m:
        code = m.group(1).decode()
        name = AZUREUS_CLIENTS.get(code)
        if name:
            try:
                return f"{name} {_az_version(code, m.group(2))}"
            except ValueError:
                return name
        return f"unknown Azureus-style client {code!r} {m.group(2).decode()}"
    m = _MAINLINE.match(peer_id)
    if m:
        return "BitTorrent (Mainline) " + ".".join(x.decode() for x in m.groups())
    m = _ARIA2.match(peer_id)
    if m:
        return "aria2 " + ".".join(x.decode() for x in m.groups())
    if peer_id.startswith(b"aria2-"):        # aria2's default prefix without a version
        return "aria2"
    m = _SHADOW.match(peer_id)
    if m and m.group(1).decode() in SHADOW_CLIENTS:
        ver = ".".join(str(int(c, 36)) for c in m.group(2).decode() if c.isalnum())
        return f"{SHADOW_CLIENTS[m.group(1).decode()]} {ver}"
    return None


def peer_id_text(peer_id: bytes | None) -> str:
    """Printable form: ASCII kept, other bytes as %XX (as trackers see them)."""
    if peer_id is None:
        return ""
    return "".join(chr(b) if 0x21 <= b < 0x7F and b != 0x25 else f"%{b:02X}" for b in peer_id)
