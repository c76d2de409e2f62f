"""libtorrent resume data: ``write_resume_data`` files, qBittorrent ``*.fastresume``,
Deluge ``torrents.fastresume``.

The torrent's figures are read by libtorrent itself (``read_resume_data``,
with caps on buffer size, pieces, depth and tokens), so they mean exactly
what libtorrent means by them.  The same bytes decoded by the project's
bencode decoder give what libtorrent's reader drops: the file's
``libtorrent-version`` and qBittorrent's own ``qBt-*`` keys.

* qBittorrent (4.x/5.x) writes one ``BT_backup/<info hash>.fastresume`` per
  torrent: libtorrent's resume data without the info dictionary (kept in
  ``<info hash>.torrent`` beside it) plus ``qBt-*`` keys.
* Deluge (1.3/2.x) writes one ``torrents.fastresume``: a bencoded dictionary
  from the info hash (40 hex) to a bencoded resume blob (a string; older
  versions may store the dictionary itself).

libtorrent counts in ``total_uploaded``/``total_downloaded`` the payload
(piece data) bytes sent/received over the torrent's life in that client,
redundant and hash-failed bytes included, protocol overhead excluded; it adds
the bytes of the last second at its one-second tick (torrent.cpp
``second_tick``), and a torrent paused within a second of a transfer does not
add them (the paused branch of ``second_tick`` skips the addition).
"""
from __future__ import annotations

import libtorrent as lt
import numpy as np

from analyzer.evidence.clientstate.model import (MAX_PEERS_LISTED, MAX_RECORDS, PAYLOAD_ALL, Have, TorrentState,
                                                 Value, text, time_value)
from analyzer.protocols.bencode import BencodeError, decode, encode
from analyzer.protocols.compact import endpoint_text as endpoint

LIMITS = {"max_buffer_size": 128 << 20, "max_pieces": 1 << 22, "max_decode_depth": 100,
          "max_decode_tokens": 3_000_000}
MAX_CLIENT_FIELDS = 64

UPLOADED = ("payload (piece data) bytes sent to peers over the torrent's life in this client; protocol "
            "overhead excluded (libtorrent all_time_upload)")
DOWNLOADED = ("payload (piece data) bytes received over the torrent's life in this client, redundant and "
              "hash-failed bytes included; protocol overhead excluded (libtorrent all_time_download)")
DURATIONS = (("active", "active_time", "seconds the torrent was started (not paused) in this client"),
             ("finished", "finished_time", "seconds it was finished (every wanted piece held), started"),
             ("seeding", "seeding_time", "seconds it was seeding (every piece held), started"))
TIMES = (("added", "added_time", "when the torrent was added to the client"),
         ("completed", "completed_time", "when it completed (every wanted piece held)"),
         ("last_upload", "last_upload", "when a block was last sent to a peer"),
         ("last_download", "last_download", "when a downloaded piece last passed its hash check"),
         ("last_seen_complete", "last_seen_complete", "when a complete copy was last seen in the swarm"))


def read_resume(data: bytes, top: dict, fmt: str, client: str) -> tuple[TorrentState | None, list[str]]:
    """One libtorrent resume blob (``data``; ``top``: the same bytes decoded by the project's decoder)."""
    try:
        p = lt.read_resume_data(data, LIMITS)
    except RuntimeError as e:
        return None, [f"libtorrent could not read the resume data: {e}"]
    t = TorrentState(format=fmt, client=client, download_counts=PAYLOAD_ALL)
    ih, t.hash_source = p.info_hashes, "info-hash / info-hash2"
    if not ih.has_v1() and not ih.has_v2() and p.ti is not None:
        ih, t.hash_source = p.ti.info_hashes(), "info (the metadata in the file)"
    if ih.has_v1():
        t.info_hash_v1 = str(ih.v1)
    if ih.has_v2():
        t.info_hash_v2 = str(ih.v2)
    info = top.get(b"info") if isinstance(top.get(b"info"), dict) else {}
    t.save_path = _string(lambda: p.save_path, top.get(b"save_path"))
    t.name = _string(lambda: p.name, top.get(b"name")) or (
        _string(lambda: p.ti.name(), info.get(b"name")) if p.ti is not None else None)
    if p.ti is not None:
        t.num_pieces, t.piece_length, t.length_bytes = p.ti.num_pieces(), p.ti.piece_length(), p.ti.total_size()
    t.counters = [Value("uploaded", "total_uploaded", int(p.total_uploaded), "bytes", UPLOADED),
                  Value("downloaded", "total_downloaded", int(p.total_downloaded), "bytes", DOWNLOADED)]
    t.counters += [Value(f, k, int(getattr(p, k)), "seconds", m) for f, k, m in DURATIONS]
    t.times = [v for v in (time_value(f, k, int(getattr(p, k)), m) for f, k, m in TIMES) if v]
    if isinstance(top.get(b"pieces"), bytes):
        # as libtorrent read it (file-version 1: a byte a piece; 2: a bitfield)
        t.have = Have("piece", "bitfield", "pieces", bits=_pack(p.have_pieces))
    peers = [endpoint(str(ip), int(port)) for ip, port in p.peers]
    t.peers, t.peers_total = peers[:MAX_PEERS_LISTED], len(peers)
    if p.banned_peers:
        t.client_fields["banned_peers"] = len(p.banned_peers)
    if p.unfinished_pieces:
        t.client_fields["unfinished_pieces"] = len(p.unfinished_pieces)
    t.client_fields.update(qbt_fields(top))
    if fmt == "qbittorrent_fastresume" and not t.name and t.client_fields.get("qBt-name"):
        t.name = t.client_fields["qBt-name"]
    return t, []


def _string(get, raw) -> str | None:
    """A string field as libtorrent's binding gives it, which decodes the stored bytes as UTF-8 and
    raises on anything else (a damaged or foreign-encoded file): then the stored bytes as the
    project shows any stored string (``model.text``: UTF-8, else latin-1)."""
    try:
        return get() or None
    except UnicodeDecodeError:
        return text(raw) or None


def _pack(bools) -> bytes:
    return np.packbits(np.asarray(bools, dtype=bool), bitorder="big").tobytes()


def qbt_fields(top: dict) -> dict:
    """qBittorrent's own keys (``qBt-*``): strings, integers and lists of strings."""
    out = {}
    for k, v in top.items():
        if not k.startswith(b"qBt-") or len(out) >= MAX_CLIENT_FIELDS:
            continue
        name = text(k, 64)
        if isinstance(v, int):
            out[name] = v
        elif isinstance(v, bytes):
            out[name] = text(v)
        elif isinstance(v, list):
            out[name] = [text(x) for x in v[:MAX_CLIENT_FIELDS] if isinstance(x, bytes)]
    return dict(sorted(out.items()))


def version_of(top: dict) -> str | None:
    v = top.get(b"libtorrent-version")
    return text(v, 64) if isinstance(v, bytes) else None


def read_deluge(top: dict) -> tuple[list[TorrentState], list[str], str | None]:
    """Deluge ``torrents.fastresume``: {info hash: resume blob}, one record per entry (sorted by key)."""
    out, errors, versions = [], [], set()
    keys = sorted(top)
    if len(keys) > MAX_RECORDS:
        errors.append(f"{len(keys) - MAX_RECORDS} entries beyond the cap of {MAX_RECORDS} not read")
    for key in keys[:MAX_RECORDS]:
        blob = top[key]
        name = text(key, 80)
        if isinstance(blob, dict):            # stored as a dictionary, not as its encoding
            try:
                blob = encode(blob)
            except (TypeError, ValueError) as e:
                errors.append(f"entry {name}: cannot re-encode the resume dictionary: {e}")
                continue
        if not isinstance(blob, bytes):
            errors.append(f"entry {name}: not a resume blob ({type(blob).__name__})")
            continue
        try:
            inner = decode(blob)
        except BencodeError as e:
            errors.append(f"entry {name}: resume blob not bencoded: {e}")
            continue
        if not isinstance(inner, dict):
            errors.append(f"entry {name}: resume blob is not a dictionary")
            continue
        t, errs = read_resume(blob, inner, "deluge_fastresume", "Deluge")
        errors += [f"entry {name}: {e}" for e in errs]
        if t is None:
            continue
        t.entry_key = name
        if t.info_hash and name and name.lower() not in (t.info_hash_v1, t.info_hash_v2):
            t.notes.append(f"the entry's key {name} differs from the info hash in its resume data")
        if (v := version_of(inner)):
            versions.add(v)
        out.append(t)
    version = ", ".join(sorted(versions)) if versions else None
    return out, errors, version


