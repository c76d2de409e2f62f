"""rtorrent session files: ``<INFO HASH>.torrent.rtorrent`` and
``<INFO HASH>.torrent.libtorrent_resume`` (rtorrent 0.9 and later), or one
``<INFO HASH>.torrent`` holding both as the keys ``rtorrent`` and
``libtorrent_resume`` (older versions).  The info hash comes from the name.

``.rtorrent`` (rtorrent src/session/download_storer.cc,
core/download_factory.cc): ``total_uploaded`` / ``total_downloaded`` are
libtorrent-rakshasa's ``up_rate()->total()`` / ``down_rate()->total()``
(bytes; ``d.up.total``, ``d.down.total``): piece data sent, and piece data
received including data read and discarded as a duplicate of a block another
peer was already sending (``d.skip.total``) and chunks that later failed the
hash check; protocol overhead excluded.  Times (unix seconds):
``timestamp.started`` (first start), ``timestamp.finished``,
``state_changed`` (last start or stop).  Also ``chunks_done``,
``chunks_wanted``, ``complete``, ``directory``, ``custom`` (front ends keep
values there, e.g. ruTorrent's ``addtime``).

``.libtorrent_resume`` (libtorrent-rakshasa src/torrent/utils/resume.cc):
``bitfield`` is the have-bitfield in BitTorrent bit order, or an integer
(the number of pieces done) when every piece or none is done; ``peers`` is a
list of {``inet``: 4-byte address and 2-byte port in network order,
``failed``, ``last``}.
"""
from __future__ import annotations

import ipaddress
import re

from analyzer.evidence.clientstate.model import (MAX_PEERS_LISTED, PAYLOAD_ALL, Have, TorrentState, read_values,
                                                 text)

NAME = re.compile(r"^([0-9a-fA-F]{40})\.torrent(\.rtorrent|\.libtorrent_resume)?$")

COUNTERS = (("uploaded", "total_uploaded", "bytes",
             "piece data bytes sent over the torrent's life (d.up.total); protocol overhead excluded"),
            ("downloaded", "total_downloaded", "bytes",
             "piece data bytes received over the torrent's life (d.down.total), including duplicate data "
             "discarded (d.skip.total) and chunks that failed the hash check; protocol overhead excluded"))
TIMES = (("started", "timestamp.started", "when the download was first started"),
         ("completed", "timestamp.finished", "when the download finished"),
         ("state_changed", "state_changed", "when the download was last started or stopped"))
SCALARS = (b"chunks_done", b"chunks_wanted", b"complete", b"state", b"priority")


def hash_from_name(name: str) -> str | None:
    m = NAME.match(name)
    return m.group(1).lower() if m else None


def looks_like_session(top: dict) -> bool:
    return b"total_uploaded" in top and (b"timestamp.started" in top or b"state" in top or b"chunks_done" in top)


def looks_like_resume(top: dict) -> bool:
    return (b"bitfield" in top or b"uncertain_pieces.timestamp" in top) and b"files" in top


def _new(fmt: str, name: str) -> TorrentState:
    t = TorrentState(format=fmt, client="rtorrent", download_counts=PAYLOAD_ALL)
    t.info_hash_v1 = hash_from_name(name)
    if t.info_hash_v1:
        t.hash_source = "file name"
    else:
        t.notes.append("the file name carries no info hash (expected <INFO HASH>.torrent.rtorrent)")
    return t


def read_session(name: str, top: dict, t: TorrentState | None = None) -> TorrentState:
    """The ``.rtorrent`` dictionary."""
    t = t or _new("rtorrent_session", name)
    read_values(t, top, COUNTERS, TIMES)
    t.save_path = text(top.get(b"directory"))
    for k in SCALARS:
        if isinstance(top.get(k), int):
            t.client_fields[k.decode()] = top[k]
    custom = top.get(b"custom")
    if isinstance(custom, dict):
        for k, v in list(custom.items())[:64]:
            if isinstance(v, bytes) and v:
                t.client_fields[f"custom/{text(k, 64)}"] = text(v, 256)
    return t


def read_resume(name: str, top: dict, t: TorrentState | None = None) -> tuple[TorrentState, list[str]]:
    """The ``.libtorrent_resume`` dictionary."""
    t = t or _new("rtorrent_libtorrent_resume", name)
    errors = []
    bf = top.get(b"bitfield")
    if isinstance(bf, bytes):
        t.have = Have("piece", "bitfield", "bitfield", bits=bf)
    elif isinstance(bf, int) and bf >= 0:
        t.have = Have("piece", "count", "bitfield", count=bf)
    elif bf is not None:
        errors.append("'bitfield' is neither a string nor an integer")
    peers = top.get(b"peers")
    if isinstance(peers, list):
        found = []
        for p in peers:
            inet = p.get(b"inet") if isinstance(p, dict) else None
            if isinstance(inet, bytes) and len(inet) == 6:
                found.append(f"{ipaddress.IPv4Address(inet[:4])}:{int.from_bytes(inet[4:], 'big')}")
        t.peers, t.peers_total = found[:MAX_PEERS_LISTED], len(found)
    files = top.get(b"files")
    if isinstance(files, list):
        t.client_fields["files"] = len(files)
    return t, errors


def read_embedded(name: str, top: dict) -> tuple[TorrentState, list[str]]:
    """An older session ``<INFO HASH>.torrent`` carrying ``rtorrent`` and ``libtorrent_resume``."""
    t = _new("rtorrent_session", name)
    info = top.get(b"info")
    if isinstance(info, dict):
        t.name = text(info.get(b"name"))
        plen, pieces = info.get(b"piece length"), info.get(b"pieces")
        if isinstance(plen, int) and plen > 0 and isinstance(pieces, bytes):
            t.num_pieces, t.piece_length = len(pieces) // 20, plen
    errors = []
    if isinstance(top.get(b"rtorrent"), dict):
        read_session(name, top[b"rtorrent"], t)
    if isinstance(top.get(b"libtorrent_resume"), dict):
        _, errors = read_resume(name, top[b"libtorrent_resume"], t)
    return t, errors
