"""µTorrent / BitTorrent (Mainline, Windows) ``resume.dat``.

One bencoded dictionary: ``.fileguard`` (an integrity string), ``rec``
(client bookkeeping) and one entry per torrent, keyed by the name of its
.torrent file, holding a dictionary.  The format is not published; the keys
read here are those documented by forensic write-ups and by BiglyBT's
µTorrent importer (which decodes real files):

* ``info``: the 20-byte v1 info hash; ``caption``: the name shown; ``path``:
  where the data is saved;
* ``uploaded``, ``downloaded`` (bytes, as in the client's columns),
  ``corrupt`` (bytes that failed the hash check), ``waste`` (bytes wasted:
  redundant and hash-failed), ``hashfails`` (pieces that failed);
* ``added_on``, ``completed_on``, ``time`` (unix seconds; ``time`` is when
  the client last wrote the entry), ``seedtime``, ``runtime`` (seconds:
  seeding, and active in all);
* ``have``: the have-bitfield, one bit a piece, bit 0 of byte 0 is piece 0
  (least significant bit first, unlike the peer wire's bitfield);
* ``peers6``: remembered peers, 18 bytes each (16-byte IPv6 address,
  IPv4-mapped for IPv4 peers, and the port, most significant byte first).

Whether ``downloaded`` includes redundant and hash-failed bytes is not
documented (closed source); the comparison with the capture treats it so.
"""
from __future__ import annotations

import ipaddress

from analyzer.evidence.clientstate.model import (MAX_PEERS_LISTED, MAX_RECORDS, PAYLOAD_UNDOCUMENTED, Have,
                                                 TorrentState, read_values, text)
from analyzer.protocols.compact import endpoint_text as endpoint

UNDOC = "; whether it includes redundant and hash-failed data is not documented (closed source)"
COUNTERS = (("uploaded", "uploaded", "bytes", "bytes uploaded, as the client's 'Uploaded' column"),
            ("downloaded", "downloaded", "bytes", "bytes downloaded, as the client's 'Downloaded' column" + UNDOC),
            ("corrupt", "corrupt", "bytes", "bytes of pieces that failed the hash check"),
            ("wasted", "waste", "bytes", "bytes wasted (redundant and hash-failed data), as 'Wasted'"),
            ("hashfails", "hashfails", "pieces", "pieces that failed the hash check"),
            ("seeding", "seedtime", "seconds", "seconds spent seeding"),
            ("active", "runtime", "seconds", "seconds active (downloading and seeding)"))
TIMES = (("added", "added_on", "when the torrent was added"),
         ("completed", "completed_on", "when the download completed"),
         ("written", "time", "when the client last wrote this entry"))
FIELDS = (b"label", b"download_url", b"created_torrent", b"started", b"order", b"last_active",
          b"last seen complete")


def looks_like(top: dict) -> bool:
    return b".fileguard" in top or any(isinstance(v, dict) and isinstance(v.get(b"info"), bytes)
                                       and (b"added_on" in v or b"have" in v) for v in top.values())


def read_resume_dat(top: dict) -> tuple[list[TorrentState], list[str]]:
    out, errors = [], []
    keys = [k for k in sorted(top) if not k.startswith(b".") and k != b"rec"]
    if len(keys) > MAX_RECORDS:
        errors.append(f"{len(keys) - MAX_RECORDS} entries beyond the cap of {MAX_RECORDS} not read")
    for key in keys[:MAX_RECORDS]:
        entry = top[key]
        if not isinstance(entry, dict):
            errors.append(f"entry {text(key, 200)!r}: not a dictionary")
            continue
        out.append(_entry(key, entry))
    return out, errors


def _entry(key: bytes, e: dict) -> TorrentState:
    t = TorrentState(format="utorrent_resume_dat", client="µTorrent/BitTorrent",
                     download_counts=PAYLOAD_UNDOCUMENTED)
    t.entry_key = text(key, 1024)
    info = e.get(b"info")
    if isinstance(info, bytes) and len(info) == 20:
        t.info_hash_v1, t.hash_source = info.hex(), "info"
    else:
        t.notes.append("no 20-byte 'info' (info hash) in the entry")
    t.name = text(e.get(b"caption")) or t.entry_key
    t.save_path = text(e.get(b"path"))
    read_values(t, e, COUNTERS, TIMES)
    if isinstance(e.get(b"have"), bytes):
        t.have = Have("piece", "bitfield", "have", bits=e[b"have"], order="lsb")
    peers6 = e.get(b"peers6")
    if isinstance(peers6, bytes):
        found = []
        for i in range(0, len(peers6) - 17, 18):
            ip = ipaddress.IPv6Address(peers6[i:i + 16])
            port = int.from_bytes(peers6[i + 16:i + 18], "big")
            found.append(endpoint(str(ip.ipv4_mapped or ip), port))
        t.peers, t.peers_total = found[:MAX_PEERS_LISTED], len(found)
    for k in FIELDS:
        v = e.get(k)
        if isinstance(v, int):
            t.client_fields[k.decode()] = v
        elif isinstance(v, bytes) and v:
            t.client_fields[k.decode()] = text(v, 1024)
    labels = e.get(b"labels")
    if isinstance(labels, list) and labels:
        t.client_fields["labels"] = [text(x, 256) for x in labels[:64] if isinstance(x, bytes)]
    return t
