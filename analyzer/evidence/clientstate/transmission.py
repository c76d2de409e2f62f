"""Transmission ``resume/*.resume`` files (bencoded, one torrent each).

Names: ``<name>.<first 16 hex digits of the info hash>.resume`` (2.x) or
``<info hash>.resume`` (3.00 and later, which rename older files; checked
with Debian's transmission-daemon 3.00).  The file itself does not hold the
info hash: it comes from the name (a 16-digit prefix for 2.x files).

Keys (libtransmission/resume.cc; 4.1 and later may write snake_case
``added_date`` instead of kebab-case ``added-date``; both are read):
``uploaded``, ``downloaded``, ``corrupt`` (bytes); ``added-date``,
``done-date``, ``activity-date`` (unix seconds); ``seeding-time-seconds``,
``downloading-time-seconds``; ``destination``, ``name``; ``progress``:
``blocks`` is the have-bitfield, one bit per 16 KiB block of the torrent's
byte space in BitTorrent bit order, or the strings "all"/"none"
(``have`` = "all" in 3.x files of complete torrents, ``bitfield`` in files
before 2.20); ``pieces`` is the "checked pieces" bitfield (pieces whose hash
was checked since their file last changed), not the have-bitfield.

What the counters count (peer-mgr.cc, peer-msgs.cc, torrent.cc): ``uploaded``
is every byte of the piece messages sent, the 13-byte message header
(length, id, index, begin) included: peer-msgs.cc marks the whole message as
piece data when it writes it (checked with transmission-daemon 3.00 after a
real transfer: 2,000,000 bytes of blocks in 123 messages gave ``uploaded`` =
2,001,599); ``downloaded`` is piece data received, less a block's
size when the block was already held (redundant), less a piece's size when it
fails its hash check, which goes to ``corrupt`` instead.  Protocol overhead
is in none of them otherwise.  Remembered peers (``peers2``, ``peers2-6``) are raw
in-memory structures (tr_pex) whose layout depends on the build; only their
presence is reported.
"""
from __future__ import annotations

import re

from analyzer.evidence.clientstate.model import (PAYLOAD_NET, UPLOAD_PAYLOAD_AND_HEADERS, Have, TorrentState,
                                                 read_values, text)

NAME_V4 = re.compile(r"^([0-9a-fA-F]{40})\.resume$")
NAME_V3 = re.compile(r"^(.*)\.([0-9a-fA-F]{16})\.resume$", re.S)

COUNTERS = (("uploaded", "uploaded", "bytes",
             "bytes of piece messages sent to peers over the torrent's life: the piece data and the 13-byte "
             "header of each message (uploadedEver)"),
            ("downloaded", "downloaded", "bytes",
             "piece data bytes received over the torrent's life, less blocks already held (redundant) and less "
             "pieces that failed the hash check (those are in corrupt) (downloadedEver)"),
            ("corrupt", "corrupt", "bytes", "bytes of downloaded pieces that failed the hash check (corruptEver)"),
            ("seeding", "seeding-time-seconds", "seconds", "seconds spent seeding"),
            ("downloading", "downloading-time-seconds", "seconds", "seconds spent downloading"))
TIMES = (("added", "added-date", "when the torrent was added"),
         ("completed", "done-date", "when the download completed"),
         ("last_activity", "activity-date", "when piece data was last sent or received"))
MARKERS = (b"added-date", b"added_date", b"progress", b"activity-date", b"activity_date", b"done-date",
           b"downloading-time-seconds", b"downloading_time_seconds")


def looks_like(top: dict) -> bool:
    return sum(1 for k in MARKERS if k in top) >= 2 and b"uploaded" in top


def _get(d: dict, key: str):
    """The value under the kebab-case key or its snake_case form; (key found, value)."""
    for k in (key, key.replace("-", "_")):
        if k.encode() in d:
            return k, d[k.encode()]
    return key, None


def read_transmission(name: str, top: dict) -> tuple[TorrentState, list[str]]:
    t = TorrentState(format="transmission_resume", client="Transmission", download_counts=PAYLOAD_NET,
                     upload_counts=UPLOAD_PAYLOAD_AND_HEADERS)
    if (m := NAME_V4.match(name)):
        t.info_hash_v1, t.hash_source = m.group(1).lower(), "file name (Transmission 3.00 and later)"
    elif (m := NAME_V3.match(name)):
        t.info_hash_prefix, t.hash_source = m.group(2).lower(), "file name (Transmission 2.x: first 16 hex digits)"
    else:
        t.notes.append("the file name carries no info hash (expected <info hash>.resume or <name>.<16 hex>.resume)")
    read_values(t, top, COUNTERS, TIMES, _get)
    t.name = text(top.get(b"name"))
    t.save_path = text(_get(top, "destination")[1])
    progress = top.get(b"progress")
    errors = []
    if isinstance(progress, dict):
        t.have, err = _have(progress)
        if err:
            errors.append(err)
    elif progress is not None:
        errors.append("'progress' is not a dictionary")
    for key in ("peers2", "peers2-6"):
        k, v = _get(top, key)
        if isinstance(v, (bytes, list)) and v:
            t.client_fields[k] = f"present ({len(v)} {'bytes' if isinstance(v, bytes) else 'entries'}, not decoded)"
    labels = top.get(b"labels")
    if isinstance(labels, list) and labels:
        t.client_fields["labels"] = [text(x) for x in labels[:64] if isinstance(x, bytes)]
    k, incomplete = _get(top, "incomplete-dir")
    if isinstance(incomplete, bytes):
        t.client_fields[k] = text(incomplete)
    k, paused = _get(top, "paused")
    if isinstance(paused, int):
        t.client_fields[k] = paused
    return t, errors


def _have(progress: dict) -> tuple[Have | None, str | None]:
    blocks = progress.get(b"blocks")
    if blocks is not None:
        if not isinstance(blocks, bytes):
            return None, "'progress'/'blocks' is not a string"
        if blocks in (b"all", b"none"):
            return Have("block", blocks.decode(), "progress/blocks"), None
        return Have("block", "bitfield", "progress/blocks", bits=blocks), None
    if progress.get(b"have") == b"all":
        return Have("block", "all", "progress/have"), None
    if isinstance(progress.get(b"bitfield"), bytes):
        return Have("block", "bitfield", "progress/bitfield", bits=progress[b"bitfield"]), None
    return None, "'progress' holds no have-bitfield ('blocks', 'have' or 'bitfield')"
