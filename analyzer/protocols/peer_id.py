"""Client identification from a BitTorrent peer_id (BEP 20 conventions).

Azureus style ``-XXvvvv-`` (most clients), Shadow style ``Xvvv--`` and
Mainline style ``M4-3-6--``.  Unknown ids decode to ``None``: the raw
peer_id is always reported beside the decoded name.
"""
from __future__ import annotations

import re

AZUREUS_CLIENTS = {
    "7T": "aTorrent", "AB": "AnyEvent::BitTorrent", "AG": "Ares", "AR": "Arctic", "AT": "Artemis",
    "AV": "Avicora", "AX": "BitPump", "AZ": "Vuze", "BB": "BitBuddy", "BC": "BitComet",
    "BE": "Baretorrent", "BF": "Bitflu", "BG": "BTG", "BI": "BiglyBT", "BL": "BitCometLite",
    "BP": "BitTorrent Pro", "BR": "BitRocket", "BS": "BTSlave", "BT": "BitTorrent",
    "BW": "BitWombat", "BX": "Bittorrent X", "CD": "Enhanced CTorrent", "CT": "CTorrent",
    "DE": "DelugeTorrent", "DP": "Propagate Data Client", "EB": "EBit", "ES": "electric sheep",
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
_SHADOW = re.compile(rb"^([A-Z])([0-9A-Za-z.\-]{3,5})-{1,3}")


def _az_version(client: str, v: bytes) -> str:
    s = v.decode("ascii", "replace")
    if client in ("TR",):  # Transmission: 3 digits + letter (Z dev, X beta)
        major = s[0]
        minor = s[1:3].lstrip("0") or "0"
        return f"{major}.{minor}" if s[3] in "0Z" else f"{major}.{minor}{s[3]}"
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
