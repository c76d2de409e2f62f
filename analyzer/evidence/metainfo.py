"""Torrent metadata given by the examiner (``--torrent``): v1, v2 and hybrid.

Each .torrent is checked and described by libtorrent (name, size, piece
length, info hashes); the info dictionary itself is also decoded with the
project's bencode decoder, which keeps what libtorrent's bindings do not
expose (v2 ``piece layers``) for piece verification.  A torrent is known
under every hash that can appear in a handshake: its v1 info hash and its
v2 info hash truncated to 20 bytes.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from analyzer.protocols.bencode import BencodeError, decode, encode


class MetainfoError(Exception):
    pass


@dataclass
class FileEntry:
    path: tuple[str, ...]       # components as in the metadata (untrusted)
    size: int
    offset: int                 # in the torrent's v1 byte space (pad files included)
    pad: bool = False
    pieces_root: bytes | None = None   # v2


@dataclass
class TorrentMeta:
    source: str
    name: str
    total_size: int             # content bytes (pad files excluded)
    piece_length: int
    info_hash_v1: str | None
    info_hash_v2: str | None    # 64 hex
    files: list[FileEntry] = field(default_factory=list)
    piece_hashes: bytes = b""   # v1: 20 bytes per piece
    piece_layers: dict = field(default_factory=dict)   # v2: pieces_root -> concatenated SHA-256 hashes
    info: dict = field(default_factory=dict, repr=False)

    @property
    def handshake_hashes(self) -> list[str]:
        return [h for h in (self.info_hash_v1, self.info_hash_v2[:40] if self.info_hash_v2 else None) if h]

    @property
    def num_pieces(self) -> int:
        return len(self.piece_hashes) // 20

    @property
    def v1_length(self) -> int:
        """Bytes of the v1 piece space (content plus pad files)."""
        return sum(f.size for f in self.files)


def _files(info: dict) -> list[FileEntry]:
    name = info.get(b"name", b"").decode("utf-8", "replace")
    out: list[FileEntry] = []
    offset = 0
    if b"files" in info:
        for f in info[b"files"]:
            path = tuple(p.decode("utf-8", "replace") for p in f.get(b"path", []))
            size = int(f.get(b"length", 0))
            pad = b"p" in f.get(b"attr", b"")
            out.append(FileEntry((name, *path), size, offset, pad))
            offset += size
    elif b"length" in info:
        out.append(FileEntry((name,), int(info[b"length"]), 0))
    elif b"file tree" in info:   # v2 only: walk the tree in order
        plen = int(info.get(b"piece length", 1)) or 1

        def walk(tree: dict, prefix: tuple):
            nonlocal offset
            for key in sorted(tree):
                node = tree[key]
                if b"" in node and isinstance(node[b""], dict):
                    leaf = node[b""]
                    size = int(leaf.get(b"length", 0))
                    out.append(FileEntry((*prefix, key.decode("utf-8", "replace")), size, offset,
                                         pieces_root=leaf.get(b"pieces root")))
                    offset += size
                    # v2: every file starts at a piece boundary (an implicit pad)
                    gap = -offset % plen
                    if gap and size:
                        out.append(FileEntry((".pad", str(gap)), gap, offset, pad=True))
                        offset += gap
                else:
                    walk(node, (*prefix, key.decode("utf-8", "replace")))
        walk(info[b"file tree"], (name,))
    return out


def _v2_roots(info: dict) -> dict:
    roots = {}

    def walk(tree: dict, prefix: tuple):
        for key in sorted(tree):
            node = tree[key]
            if b"" in node and isinstance(node[b""], dict):
                roots[(*prefix, key.decode("utf-8", "replace"))] = node[b""].get(b"pieces root")
            else:
                walk(node, (*prefix, key.decode("utf-8", "replace")))
    if isinstance(info.get(b"file tree"), dict):
        walk(info[b"file tree"], (info.get(b"name", b"").decode("utf-8", "replace"),))
    return roots


def meta_from_info(info_bytes: bytes, source: str, piece_layers: dict | None = None) -> TorrentMeta:
    """Metadata from a bencoded info dictionary (as in a .torrent or rebuilt from BEP 9)."""
    try:
        info = decode(info_bytes)
    except BencodeError as e:
        raise MetainfoError(f"{source}: info dictionary: bencode {e.code} at byte {e.pos}") from None
    if not isinstance(info, dict) or b"piece length" not in info:
        raise MetainfoError(f"{source}: not an info dictionary")
    v1 = hashlib.sha1(info_bytes).hexdigest() if b"pieces" in info else None
    v2 = hashlib.sha256(info_bytes).hexdigest() if info.get(b"meta version") == 2 else None
    files = _files(info)
    # hybrid: the v1 file list (with pad files) and the v2 file tree hold the
    # same files in the same order
    roots = list(_v2_roots(info).values())
    content = [f for f in files if not f.pad]
    if len(roots) == len(content):
        for f, root in zip(content, roots):
            if f.pieces_root is None:
                f.pieces_root = root
    return TorrentMeta(
        source=source, name=info.get(b"name", b"").decode("utf-8", "replace"),
        total_size=sum(f.size for f in files if not f.pad), piece_length=int(info[b"piece length"]),
        info_hash_v1=v1, info_hash_v2=v2, files=files, piece_hashes=info.get(b"pieces", b""),
        piece_layers=dict(piece_layers or {}), info=info)


def load_torrent(path: Path) -> TorrentMeta:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise MetainfoError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        import libtorrent as lt
        ti = lt.torrent_info(lt.bdecode(data)) if data[:1] == b"d" else None
    except RuntimeError as e:
        raise MetainfoError(f"{path}: libtorrent rejects it: {e}") from None
    if ti is None:
        raise MetainfoError(f"{path}: not a .torrent file")
    try:
        top = decode(data)
    except BencodeError as e:
        raise MetainfoError(f"{path}: bencode {e.code} at byte {e.pos}") from None
    info_bytes = _raw_info(data)
    meta = meta_from_info(info_bytes, str(path), top.get(b"piece layers") if isinstance(top, dict) else None)
    # libtorrent is the reference for the hashes; the two decoders must agree
    ih = ti.info_hashes()
    lt_v1 = str(ih.v1) if ih.has_v1() else None
    lt_v2 = str(ih.v2) if ih.has_v2() else None
    if (lt_v1, lt_v2) != (meta.info_hash_v1, meta.info_hash_v2):
        raise MetainfoError(f"{path}: info hashes disagree between libtorrent and the bencode decoder")
    return meta


def _raw_info(data: bytes) -> bytes:
    """The exact bytes of the ``info`` value (hashes are over the bytes as stored)."""
    pos = 1
    # walk the top-level dict's keys to find where info's value starts and ends
    while pos < len(data) and data[pos:pos + 1] != b"e":
        colon = data.index(b":", pos)
        klen = int(data[pos:colon])
        k = data[colon + 1:colon + 1 + klen]
        vstart = colon + 1 + klen
        _, vend = decode(data[vstart:], allow_trailing=True)
        if k == b"info":
            return data[vstart:vstart + vend]
        pos = vstart + vend
    raise MetainfoError("no info dictionary")


def torrent_paths(paths: list[Path]) -> list[Path]:
    """The .torrent files named: files as given, folders searched (``*.torrent``)."""
    return [f for p in paths for f in (sorted(p.rglob("*.torrent")) if p.is_dir() else [p])]


def load_torrents(paths: list[Path]) -> tuple[list[TorrentMeta], list[str]]:
    """Files and folders (*.torrent inside); returns (metadata, error messages)."""
    metas, errors = [], []
    for f in torrent_paths(paths):
        try:
            metas.append(load_torrent(f))
        except MetainfoError as e:
            errors.append(str(e))
    return metas, errors


def encode_torrent(meta: TorrentMeta) -> bytes:
    """A .torrent holding exactly this info dictionary (for metadata rebuilt from a capture)."""
    top = {b"info": meta.info}
    if meta.piece_layers:
        top[b"piece layers"] = meta.piece_layers
    return encode(top)
