"""Finding and reading client state files: paths in, a ``ClientStateSet`` out.

``read_client_state(paths)``: each path is a file (always read, whatever its
name) or a folder searched recursively (symbolic links not followed) for
files named like client state:

========================================  =========================================
name                                      read as
========================================  =========================================
``*.fastresume``, ``torrents.fastresume``  libtorrent resume data (qBittorrent),
(``.bak``)                                 Deluge's collection
``*.resume``                               libtorrent resume data, or Transmission
``*.torrent.rtorrent``,                    rtorrent session
``*.torrent.libtorrent_resume``,
``<40 hex>.torrent`` with session keys
``resume.dat``, ``resume.dat.old``         µTorrent / BitTorrent
========================================  =========================================

The format is decided by content (the name only breaks ties): every file is
decoded by the project's bencode decoder (depth and item caps) first.  Every
file read is hashed (SHA-256).  A file that cannot be read, is damaged or is
of no known format gets one error line and the others are read on; files in
a folder whose names are not of state files are counted in a note, never
silently dropped.  Deluge's ``torrents.state`` is a Python pickle: it is
named in a note and not read (unpickling untrusted data can run code);
qBittorrent's SQLite resume storage (``torrents.db``) is named, not read.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from analyzer.evidence.clientstate import libtorrent_resume, rtorrent, transmission, utorrent
from analyzer.evidence.clientstate.model import ClientStateSet, StateFile, text
from analyzer.digest import sha256_file
from analyzer.protocols.bencode import BencodeError, decode

MAX_FILE_BYTES = 128 << 20
MAX_FILES = 100_000
HEX40_TORRENT = re.compile(r"^[0-9a-fA-F]{40}\.torrent$")

CLIENTS = {"libtorrent_resume": "libtorrent", "qbittorrent_fastresume": "qBittorrent",
           "deluge_fastresume": "Deluge", "transmission_resume": "Transmission",
           "rtorrent_session": "rtorrent", "rtorrent_libtorrent_resume": "rtorrent",
           "utorrent_resume_dat": "µTorrent/BitTorrent"}


def is_candidate(name: str) -> bool:
    n = name.lower()
    return (n.endswith((".fastresume", ".resume", ".torrent.rtorrent", ".torrent.libtorrent_resume"))
            or n in ("torrents.fastresume.bak", "resume.dat", "resume.dat.old") or bool(HEX40_TORRENT.match(name)))


def read_client_state(paths) -> ClientStateSet:
    """Read every state file under ``paths`` (files and folders); files in path order."""
    out = ClientStateSet()
    files: dict[str, bool] = {}          # path -> given explicitly
    for p in paths:
        p = Path(p)
        if p.is_dir():
            _walk(p, files, out.notes)
        else:
            files.setdefault(str(p), True)
    seen, metadata_only = set(), 0
    for path in sorted(files)[:MAX_FILES]:
        key = os.path.realpath(path)
        if key in seen:                  # the same file given twice (as a file and inside a folder)
            continue
        seen.add(key)
        f = read_file(Path(path), explicit=files[path])
        if f is None:
            metadata_only += 1
        else:
            out.files.append(f)
    if metadata_only:
        out.notes.append(f"{metadata_only} <info hash>.torrent files hold torrent metadata only (no client "
                         "state): not listed")
    if len(files) > MAX_FILES:
        out.notes.append(f"{len(files) - MAX_FILES} state files beyond the cap of {MAX_FILES} not read")
    return out


def _walk(folder: Path, files: dict, notes: list) -> None:
    skipped = 0
    for root, dirs, names in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in sorted(names):
            if is_candidate(name):
                files.setdefault(str(Path(root) / name), False)
            elif name == "torrents.state":
                notes.append(f"{Path(root) / name}: Deluge torrents.state (a Python pickle) not read: "
                             "unpickling untrusted data can run code")
            elif name == "torrents.db":
                notes.append(f"{Path(root) / name}: qBittorrent's SQLite resume storage not read")
            else:
                skipped += 1
    if skipped:
        notes.append(f"{folder}: {skipped} files not named like client state files were not read")


def read_file(path: Path, explicit: bool = True) -> StateFile | None:
    """One state file; None for a folder's ``<40 hex>.torrent`` that turns out to be plain metadata."""
    f = StateFile(path=str(path), sha256=sha256_file(path), size_bytes=None)
    try:
        f.size_bytes = path.stat().st_size
        if f.size_bytes > MAX_FILE_BYTES:
            f.errors.append(f"{f.size_bytes} bytes: larger than the {MAX_FILE_BYTES >> 20} MiB cap for a state "
                            "file, not read")
            return f
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        f.errors.append(f"cannot read: {e.strerror or e}")
        return f
    try:
        top = decode(data)
    except BencodeError as e:
        f.errors.append(f"damaged or not bencoded: {e.code} at byte {e.pos}")
        return f
    if not isinstance(top, dict):
        f.errors.append(f"bencoded, but a {type(top).__name__}, not a dictionary: no known state format")
        return f
    if not explicit and HEX40_TORRENT.match(path.name) and b"rtorrent" not in top \
            and b"libtorrent_resume" not in top:
        return None
    _dispatch(f, path.name, data, top)
    if f.format and not f.client:
        f.client = CLIENTS.get(f.format)
    return f


def _dispatch(f: StateFile, name: str, data: bytes, top: dict) -> None:
    lname = name.lower()
    if top.get(b"file-format") == b"libtorrent resume file":
        qbt = any(k.startswith(b"qBt-") for k in top)
        f.format = "qbittorrent_fastresume" if qbt else "libtorrent_resume"
        f.client = "qBittorrent" if qbt else "libtorrent"
        _library_version(f, libtorrent_resume.version_of(top))
        t, errors = libtorrent_resume.read_resume(data, top, f.format, f.client)
        f.torrents += [t] if t else []
        f.errors += errors
    elif lname.startswith("torrents.fastresume") or _deluge_like(top):
        f.format = "deluge_fastresume"
        f.torrents, f.errors, version = libtorrent_resume.read_deluge(top)
        _library_version(f, version)
    elif lname.endswith(".torrent.rtorrent") or rtorrent.looks_like_session(top):
        f.format = "rtorrent_session"
        f.torrents = [rtorrent.read_session(name, top)]
    elif lname.endswith(".torrent.libtorrent_resume") or rtorrent.looks_like_resume(top):
        f.format = "rtorrent_libtorrent_resume"
        t, f.errors = rtorrent.read_resume(name, top)
        f.torrents = [t]
    elif b"rtorrent" in top or b"libtorrent_resume" in top:
        f.format = "rtorrent_session"
        t, f.errors = rtorrent.read_embedded(name, top)
        f.torrents = [t]
    elif lname.startswith("resume.dat") or utorrent.looks_like(top):
        f.format = "utorrent_resume_dat"
        f.torrents, f.errors = utorrent.read_resume_dat(top)
    elif transmission.looks_like(top):
        f.format = "transmission_resume"
        t, f.errors = transmission.read_transmission(name, top)
        f.torrents = [t]
    else:
        keys = ", ".join(text(k, 40) for k in list(top)[:8])
        f.errors.append(f"unknown format: a bencoded dictionary of no known client's state (keys: {keys}"
                        f"{', ...' if len(top) > 8 else ''})")


def _deluge_like(top: dict) -> bool:
    return bool(top) and all(re.fullmatch(rb"[0-9a-f]{40}", k) and isinstance(v, (bytes, dict))
                             for k, v in top.items())


def _library_version(f: StateFile, version: str | None) -> None:
    if version:
        f.version, f.version_of, f.version_source = version, "libtorrent", "libtorrent-version"
