"""What an analysis output folder says about one torrent's evidence: the plan of an excerpt.

Read from the folder alone (nothing is re-analysed):

* ``manifest.json`` ``inputs[]``: the captures, in the order the analysis read
  them (a frame's position is its file's index there and its frame number),
  where they are (``resolved_path``), their size and SHA-256;
* ``summary.json`` ``torrents[]``: the torrent's info hash, its aliases and,
  with metadata, its v1 and (truncated) v2 hashes (a hybrid torrent is
  announced under both); an info hash seen only in DHT, tracker or
  LSD messages is also accepted (tracker.csv, dht.csv, summary.json ``lsd``);
* ``connections.csv``: the torrent's connections (``info_hash`` or
  ``info_hash_reply`` one of its hashes), each with its endpoints, transport
  and the range of frames it occupied (``first_file``/``first_frame`` to
  ``last_file``/``last_frame``), and the HTTP tracker connections that
  announced the torrent (tracker.csv ``file``/``frame`` inside the range of a
  TCP connection of the announcing socket).

``--peer`` keeps the subject's connections whose remote end matches (and
tracker connections and datagrams exchanged with that address);
``--from``/``--to`` keep connections overlapping the window (the frames are
then narrowed to it while scanning).
"""
from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from analyzer.extract._select import POS_SHIFT, PROTO_TCP, PROTO_UTP
from analyzer.sessions.subject import EndpointSpec
from analyzer.timefmt import parse_iso_ns

CONNECTION_COLUMNS = ("conn_id", "transport", "ip_version", "src_ip", "src_port", "dst_ip", "dst_port", "category",
                      "info_hash", "info_hash_reply", "subject_side", "remote_ip", "remote_port", "first_file",
                      "first_frame", "first_ts", "last_file", "last_frame", "last_ts")
_HEX = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
END = (1 << 63) - 1             # an open end (time or position)


class ExtractError(ValueError):
    """An excerpt that cannot be made from this folder and its inputs (exit status 1)."""


class ExtractUsageError(ExtractError):
    """An option that cannot be used (exit status 2)."""


@dataclass(frozen=True)
class InputRef:
    index: int
    path: str              # as the analysis named it (connections.csv, tracker.csv use this)
    resolved_path: str
    sha256: str | None
    size_bytes: int | None


@dataclass(frozen=True)
class Flow:
    """A connection to extract, with its evidence tag (an index into Plan.evidence)."""

    ipver: int
    src: bytes
    sport: int
    dst: bytes
    dport: int
    proto: int
    first_pos: int
    last_pos: int
    tag: int

    def entry(self) -> tuple:
        return (self.ipver, self.src, self.sport, self.dst, self.dport, self.proto, self.first_pos,
                self.last_pos, self.tag)


@dataclass
class Plan:
    folder: Path
    info_hash: str                 # as the torrent is known in the folder
    hashes: list[str]              # every hash of the torrent (40 hex)
    inputs: list[InputRef]
    flows: list[Flow] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    connections: int = 0
    tracker_connections: int = 0


def normalise_hash(text: str) -> str:
    h = text.strip().lower()
    if not _HEX.match(h):
        raise ExtractUsageError(f"--info-hash {text!r}: give 40 hex digits (a v1 or truncated v2 info hash) "
                           "or 64 (a v2 info hash)")
    return h


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExtractError(f"{path.parent}: not an analysis output folder ({path.name} missing)") from None
    except (OSError, ValueError) as e:
        raise ExtractError(f"{path}: unreadable: {e}") from None


def torrent_hashes(folder: Path, summary: dict, wanted: str) -> tuple[str, list[str]]:
    """(the torrent's info hash, all its hashes) for the hash asked for; ExtractError if the
    folder does not know it."""
    short = wanted[:40]
    for t in summary.get("torrents", []):
        names = {t["info_hash"], *t.get("info_hash_aliases", [])}
        if t.get("info_hash_v1"):
            names.add(t["info_hash_v1"])
        if t.get("info_hash_v2"):
            names.add(t["info_hash_v2"][:40])          # v2 hashes travel truncated to 20 bytes (BEP 52)
        if short in names:
            return t["info_hash"], sorted(names)
    seen = {e.get("info_hash") for e in summary.get("lsd") or [] if isinstance(e, dict)}
    for name in ("tracker.csv", "dht.csv"):
        path = folder / name
        if path.exists():
            import pandas as pd
            seen |= set(pd.read_csv(path, usecols=["info_hash"], dtype=str)["info_hash"])
    if short in seen:
        return short, [short]
    raise ExtractError(f"info hash {wanted} does not occur in {folder} (not a torrent of summary.json, nor in "
                       "tracker.csv, dht.csv or the LSD announces)")


def load_inputs(folder: Path, manifest: dict) -> list[InputRef]:
    inputs = manifest.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ExtractError(f"{folder / 'manifest.json'}: lists no inputs")
    return [InputRef(i, e["path"], e.get("resolved_path") or e["path"], e.get("sha256"), e.get("size_bytes"))
            for i, e in enumerate(inputs)]


def _packed(ip: str) -> tuple[int, bytes]:
    a = ipaddress.ip_address(ip)
    return a.version, a.packed


def plan_excerpt(folder: Path, info_hash: str, peer: EndpointSpec | None = None,
                 t_from: int | None = None, t_to: int | None = None) -> Plan:
    """The connections and hashes an excerpt of ``info_hash`` takes from ``folder``."""
    import pandas as pd
    folder = Path(folder)
    manifest = _json(folder / "manifest.json")
    summary = _json(folder / "summary.json")
    wanted = normalise_hash(info_hash)
    name, hashes = torrent_hashes(folder, summary, wanted)
    plan = Plan(folder, name, hashes, load_inputs(folder, manifest))
    file_index = {i.path: i.index for i in plan.inputs}
    lo, hi = (t_from if t_from is not None else -END), (t_to if t_to is not None else END)

    def pos(file: str, frame: str) -> int:
        if file not in file_index:
            raise ExtractError(f"{folder}: connections.csv names {file!r}, which manifest.json does not list")
        return file_index[file] << POS_SHIFT | int(frame)

    announcing = []                 # HTTP announces of the torrent: (position, client ip, client port)
    tracker = folder / "tracker.csv"
    if tracker.exists():
        rows = pd.read_csv(tracker, dtype=str, keep_default_na=False)
        rows = rows[(rows["transport"] == "http") & rows["info_hash"].isin(hashes)]
        announcing = [(pos(r.file, r.frame), r.client_ip, int(r.client_port)) for r in rows.itertuples()]
    wanted_set = set(hashes)
    path = folder / "connections.csv"
    if not path.exists():
        raise ExtractError(f"{folder}: not an analysis output folder (connections.csv missing)")
    chosen = []                     # (CSV row, evidence)
    for chunk in _chunks(path):
        torrent = chunk[(chunk["category"] == "bittorrent")
                        & (chunk["info_hash"].isin(wanted_set) | chunk["info_hash_reply"].isin(wanted_set))]
        for r in torrent.itertuples():
            if peer is None or (r.subject_side in ("src", "dst") and peer.matches(r.remote_ip, int(r.remote_port))):
                chosen.append((r, f"connection:{r.conn_id}"))
        if not announcing:
            continue
        for r in chunk[chunk["transport"] == "tcp"].itertuples():
            first, last = pos(r.first_file, r.first_frame), pos(r.last_file, r.last_frame)
            ends = {(r.src_ip, int(r.src_port)), (r.dst_ip, int(r.dst_port))}
            if not any(first <= p <= last and (ip, port) in ends for p, ip, port in announcing):
                continue
            if peer is not None and not any(peer_has(peer, ip) for ip in (r.src_ip, r.dst_ip)):
                continue
            if r.category != "bittorrent" or not ({r.info_hash, r.info_hash_reply} & wanted_set):
                chosen.append((r, f"tracker_connection:{r.conn_id}"))
    # connections overlapping the window
    chosen = [(r, e) for r, e in chosen if parse_iso_ns(r.first_ts) <= hi and parse_iso_ns(r.last_ts) >= lo]
    # every connection of the same sockets: where each chosen one ends (see _select.pyx)
    keys = {_key(r) for r, _ in chosen}
    same: dict = {}
    for chunk in _chunks(path) if keys else ():
        for r in chunk.itertuples():
            k = _key(r)
            if k in keys:
                same.setdefault(k, []).append((pos(r.first_file, r.first_frame), r.conn_id, r))
    chosen_ids = {r.conn_id for r, _ in chosen}
    for r, evidence in chosen:
        first = pos(r.first_file, r.first_frame)
        if r.transport == "utp":
            last = END                                  # learned while scanning
        else:
            last = min((p for p, _, _ in same[_key(r)] if p > first), default=END + 1) - 1
        plan.flows.append(_flow(r, first, last, len(plan.evidence)))
        plan.evidence.append(evidence)
        if evidence.startswith("connection"):
            plan.connections += 1
        else:
            plan.tracker_connections += 1
    for k in sorted(k for k in keys if k[0] == "utp"):
        plan.flows += [_flow(r, p, END, -1) for p, conn_id, r in same[k] if conn_id not in chosen_ids]
    return plan


def _chunks(path: Path):
    import pandas as pd
    return pd.read_csv(path, dtype=str, keep_default_na=False, usecols=list(CONNECTION_COLUMNS), chunksize=200_000)


def _key(r) -> tuple:
    """The sockets of a connections.csv row, either way round, and its transport."""
    a, b = (r.src_ip, int(r.src_port)), (r.dst_ip, int(r.dst_port))
    return (r.transport, r.ip_version, min(a, b), max(a, b))


def peer_has(peer: EndpointSpec, ip: str | bytes) -> bool:
    """The --peer network holds this address (text or packed; the port is not looked at)."""
    a = ipaddress.ip_address(ip)
    return a.version == peer.network.version and a in peer.network


def _flow(r, first: int, last: int, tag: int) -> Flow:
    v, src = _packed(r.src_ip)
    _, dst = _packed(r.dst_ip)
    return Flow(v, src, int(r.src_port), dst, int(r.dst_port), PROTO_UTP if r.transport == "utp" else PROTO_TCP,
                first, last, tag)
