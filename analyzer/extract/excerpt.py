"""The disclosure excerpt: the frames that carry one torrent's evidence, from the original captures.

Theory of operation
-------------------
``plan_excerpt`` (folder.py) reads from the output folder which connections
carry the torrent (and which HTTP tracker connections announced it), each as
a socket pair, transport and frame range.  The inputs listed in
manifest.json are then read again, in the analysis's order, with the
project's reader; they must be where the manifest says, with the same size,
and (checked once read: the reader hashes the bytes it reads) the same
SHA-256; otherwise nothing is written.

Per batch, the compiled selector (``_select.select``) picks the frames of
those connections (within their ranges, narrowed to ``--from``/``--to``) and
hands over the few that Python must decide: IP fragments, reassembled here
as the analysis does (``decode.fragments``) and kept with their datagram's
verdict; UDP datagrams that may be DHT, tracker or LSD messages naming the
torrent (``datagrams.DatagramJudge``).  Selected frames are written as they
come (``pcapng.ExcerptWriter``); those decided later are put back at their
original place at the end.  Both files are then hashed into the folder's
manifest (``extracts[]``).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analyzer.capture.hashing import FileHasher
from analyzer.capture.reader import CaptureError, CaptureReader
from analyzer.decode.fragments import TIMEOUT_NS, Defragmenter, fragment_key
from analyzer.digest import sha256_file
from analyzer.extract import _select
from analyzer.extract.datagrams import DHT, LSD, UDP_TRACKER, Datagram, DatagramJudge, Scope
from analyzer.extract.folder import ExtractError, ExtractUsageError, Plan, plan_excerpt
from analyzer.extract.pcapng import ExcerptWriter, LateFrame, frames_csv_path
from analyzer.sessions.subject import parse_endpoint_spec
from analyzer.timefmt import iso_ns

DATAGRAM_KINDS = (DHT, UDP_TRACKER, LSD)
T_MIN, T_MAX = -(1 << 63), (1 << 63) - 1


@dataclass
class ExtractResult:
    pcapng: Path
    frames_csv: Path
    plan: Plan
    frames: int
    by_evidence: dict                     # connection / tracker_connection / dht / udp_tracker / lsd -> frames
    record: dict                          # the manifest entry
    notes: list = field(default_factory=list)


@dataclass(frozen=True)
class Filters:
    peer: str | None = None
    start: str | None = None              # --from as given
    end: str | None = None                # --to as given

    def parsed(self):
        """(EndpointSpec or None, from ns or None, to ns or None); ExtractError on a bad value."""
        from analyzer.report.options import ReportError, parse_time
        try:
            peer = parse_endpoint_spec(self.peer) if self.peer else None
        except ValueError as e:
            raise ExtractUsageError(f"--peer: {e}") from None
        try:
            ns = [parse_time(text, opt) if text else None for text, opt in ((self.start, "--from"), (self.end, "--to"))]
        except ReportError as e:
            raise ExtractUsageError(str(e)) from None
        if ns[0] is not None and ns[1] is not None and ns[0] > ns[1]:
            raise ExtractUsageError(f"--from {self.start} is after --to {self.end}")
        return peer, ns[0], ns[1]

    def record(self, t_from, t_to) -> dict:
        return {"peer": self.peer, "from": self.start, "from_utc": iso_ns(t_from), "to": self.end,
                "to_utc": iso_ns(t_to)}


class _Fragments:
    """IP fragments reassembled as the analysis does, each frame kept until its datagram is decided."""

    def __init__(self):
        self.defrag = Defragmenter()
        self.members: dict = {}

    def add(self, frame: LateFrame, file_idx: int, frame_no: int, ipver: int, ip: bytes):
        """The whole datagram (decode.fragments.Datagram) and its frames, or (None, None)."""
        key = fragment_key(ipver, ip)
        if key is not None:
            p = self.defrag.pending.get(key)
            if p is None or frame.ts_ns - p.last_ts > TIMEOUT_NS:   # a new datagram (add gives the old up)
                self.members[key] = []
            self.members[key].append(frame)
        d = self.defrag.add(file_idx, frame_no, frame.ts_ns, frame.origlen, ipver, ip)
        if d is not None:
            return d, self.members.pop(key, [frame])
        if key is not None and key not in self.defrag.pending:
            self.members.pop(key, None)
        return None, None

    def expire(self, now: int) -> None:
        self.defrag.expire(now)
        if len(self.members) != len(self.defrag.pending):
            for key in [k for k in self.members if k not in self.defrag.pending]:
                del self.members[key]


class _Scan:
    def __init__(self, plan: Plan, scope: Scope, writer: ExcerptWriter):
        self.plan, self.scope, self.writer = plan, scope, writer
        self.table = _select.FlowTable([f.entry() for f in plan.flows])
        self.hashes20 = np.frombuffer(b"".join(bytes.fromhex(h) for h in plan.hashes), np.uint8)
        self.judge = DatagramJudge(plan.hashes, scope)
        self.fragments = _Fragments()
        self.tag_of = {kind: len(plan.evidence) + i for i, kind in enumerate(DATAGRAM_KINDS)}
        self.counts = np.zeros(len(plan.evidence) + len(DATAGRAM_KINDS), np.int64)
        n = 1 << 15
        self.sel_idx = np.empty(n, np.int32)
        self.sel_tag = np.empty(n, np.int32)
        self.cand_idx = np.empty(n, np.int32)
        self.cand_kind = np.empty(n, np.int8)

    def batch(self, b, file_idx: int) -> None:
        if len(self.sel_idx) < b.n:
            for name in ("sel_idx", "sel_tag", "cand_idx"):
                setattr(self, name, np.empty(b.n, np.int32))
            self.cand_kind = np.empty(b.n, np.int8)
        pos0 = file_idx << _select.POS_SHIFT | b.first_frame_no
        start = 0
        while start < b.n:
            ns, nc, start_next = _select.select(
                self.table, self.judge.watch, self.hashes20, b.buf, b.rec_off, b.caplen, b.ts_ns, b.iface,
                b.if_linktype, pos0, start, b.n, self.scope.t_from, self.scope.t_to,
                self.sel_idx, self.sel_tag, self.cand_idx, self.cand_kind)
            idx, tags = self.sel_idx[:ns].copy(), self.sel_tag[:ns].copy()
            more_idx, more_tags = [], []
            for j in range(nc):
                i, kind = int(self.cand_idx[j]), int(self.cand_kind[j])
                tag = self._candidate(b, file_idx, pos0, i, kind)
                if tag is not None:
                    more_idx.append(i)
                    more_tags.append(tag)
            if more_idx:
                idx = np.concatenate([idx, np.array(more_idx, np.int32)])
                tags = np.concatenate([tags, np.array(more_tags, np.int32)])
                order = np.argsort(idx, kind="stable")
                idx, tags = idx[order], tags[order]
            self.writer.add(b, pos0, idx, tags)
            self.counts += np.bincount(tags, minlength=len(self.counts))
            start = start_next
        self.fragments.expire(int(b.ts_ns[b.n - 1]))

    def _frame(self, b, pos0: int, i: int, tag: int = -1) -> LateFrame:
        off, cap = int(b.rec_off[i]), int(b.caplen[i])
        return LateFrame(pos0 + i, int(b.ts_ns[i]), int(b.if_linktype[b.iface[i]]), int(b.origlen[i]),
                         bytes(b.buf[off:off + cap]), tag)

    def _candidate(self, b, file_idx: int, pos0: int, i: int, kind: int) -> int | None:
        """The evidence tag of a candidate decided now, or None (fragments are decided later)."""
        linktype = int(b.if_linktype[b.iface[i]])
        off, cap = int(b.rec_off[i]), int(b.caplen[i])
        if kind == _select.CAND_FRAGMENT:
            got = _select.fragment_ip(b.buf, off, cap, linktype)
            if got is not None:
                frame = self._frame(b, pos0, i)
                d, members = self.fragments.add(frame, file_idx, int(b.first_frame_no) + i, *got)
                if d is not None:
                    self._datagram(d, members)
            return None
        fields = _select.datagram_fields(b.buf, off, cap, linktype)
        if fields is None:
            return None
        held = [self._frame(b, pos0, i)] if kind == _select.CAND_SAMPLE_QUERY else None
        verdict, extra = self.judge.judge(Datagram(int(b.ts_ns[i]), *fields), held)
        self._late(extra, verdict)
        return None if verdict is None else self.tag_of[verdict]

    def _datagram(self, d, members: list[LateFrame]) -> None:
        """A datagram rebuilt from fragments: the verdict goes to every fragment (in the window)."""
        pos = d.file_idx << _select.POS_SHIFT | d.frame_no
        kind, tag = _select.classify_packet(self.table, self.judge.watch, self.hashes20, d.packet, _select.RAW, pos)
        if kind == _select.SELECTED:
            self._late([members], tag=tag)          # each fragment in the window
            return
        if kind in (0, _select.CAND_FRAGMENT):
            return
        fields = _select.datagram_fields(np.frombuffer(d.packet, np.uint8), 0, len(d.packet), _select.RAW)
        if fields is None:
            return
        verdict, extra = self.judge.judge(Datagram(d.ts_ns, *fields),
                                          members if kind == _select.CAND_SAMPLE_QUERY else None)
        self._late(extra, verdict)
        if verdict is not None:
            self._late([members], verdict)

    def _late(self, groups: list, verdict: str | None = None, tag: int | None = None) -> None:
        """Frames decided now whose place is earlier (held queries, fragments)."""
        if tag is None:
            if verdict is None:
                return
            tag = self.tag_of[verdict]
        for frames in groups:
            for f in frames:
                if self.scope.has_time(f.ts_ns):
                    self.writer.add_late(dataclasses.replace(f, tag=tag))
                    self.counts[tag] += 1

    def by_evidence(self) -> dict:
        out = {"connection": 0, "tracker_connection": 0, **{k: 0 for k in DATAGRAM_KINDS}}
        names = [e.split(":")[0] for e in self.plan.evidence] + list(DATAGRAM_KINDS)
        for name, n in zip(names, self.counts):
            out[name] += int(n)
        return out


def _check_inputs(plan: Plan) -> None:
    """Every input where the manifest says, with its size (the SHA-256 is checked while reading)."""
    for i in plan.inputs:
        p = Path(i.resolved_path)
        if not p.exists():
            raise ExtractError(f"input {i.path} is missing: not found at {p} (manifest.json resolved_path)")
        if i.size_bytes is not None and p.stat().st_size != i.size_bytes:
            raise ExtractError(f"input {i.path} has changed since the analysis: {p.stat().st_size:,} bytes, "
                               f"the manifest says {i.size_bytes:,}")


def extract(folder: str | Path, info_hash: str, out: str | Path, *, peer: str | None = None,
            start: str | None = None, end: str | None = None, argv: list[str] | None = None) -> ExtractResult:
    """Write ``out`` (pcapng) and its frames.csv for ``info_hash`` from analysis folder ``folder``,
    and record both in its manifest.json (``extracts[]``)."""
    from analyzer.output.manifest import record_extract
    folder, out = Path(folder), Path(out)
    filters = Filters(peer, start, end)
    spec, t_from, t_to = filters.parsed()
    plan = plan_excerpt(folder, info_hash, spec, t_from, t_to)
    if out.suffix != ".pcapng":
        raise ExtractUsageError(f"-o {out}: the excerpt is a pcapng file: name it FILE.pcapng")
    if not out.parent.is_dir():
        raise ExtractUsageError(f"-o {out}: folder {out.parent} does not exist")
    taken = {Path(i.resolved_path).resolve() for i in plan.inputs} | \
        {(folder / name).resolve() for name in _outputs(folder)}
    for p in (out, frames_csv_path(out)):
        if p.resolve() in taken:
            raise ExtractUsageError(f"-o {out}: would overwrite {p}, an input or output of the analysis")
    _check_inputs(plan)
    scope = Scope(T_MIN if t_from is None else t_from, T_MAX if t_to is None else t_to, spec)
    comment = (f"bt-analyzer extract: frames carrying the evidence of info hash {plan.info_hash}"
               + "".join(f", {k} {v}" for k, v in (("peer", peer), ("from", start), ("to", end)) if v))
    writer = ExcerptWriter(out, comment)
    scan = _Scan(plan, scope, writer)
    notes, read = [], []
    try:
        for i in plan.inputs:
            read.append({"path": i.path, "sha256": _scan_input(i, scan, notes)})
            if i.sha256 is None:
                notes.append(f"{i.path}: the analysis did not hash it (--no-input-hash): compared by size only; "
                             f"SHA-256 as read now {read[-1]['sha256']}")
            elif read[-1]["sha256"] != i.sha256:
                raise ExtractError(f"input {i.path} has changed since the analysis: SHA-256 {read[-1]['sha256']}, "
                                   f"the manifest says {i.sha256}; no excerpt written")
        writer.finish([i.path for i in plan.inputs], plan.evidence + list(DATAGRAM_KINDS))
    except BaseException:
        writer.discard()
        raise
    if scan.judge.dropped:
        notes.append(f"{scan.judge.dropped} DHT/tracker queries forgotten before their answer (caps)")
    csv_path = frames_csv_path(out)
    record = {
        "path": _name(folder, out), "resolved_path": str(out.resolve()), "sha256": sha256_file(out),
        "frames_csv": {"path": _name(folder, csv_path), "resolved_path": str(csv_path.resolve()),
                       "sha256": sha256_file(csv_path)},
        "info_hash": plan.info_hash, "info_hashes": plan.hashes, "frames": writer.total,
        "filters": filters.record(t_from, t_to),
        "connections": plan.connections, "tracker_connections": plan.tracker_connections,
        "frames_by_evidence": scan.by_evidence(),
        "inputs": read,                  # SHA-256 of each input as read for this excerpt
        "command_line": argv or [],
        "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    record_extract(folder, record)
    return ExtractResult(out, csv_path, plan, writer.total, record["frames_by_evidence"], record, notes)


def _scan_input(i, scan: _Scan, notes: list) -> str | None:
    """Read one input through the selector; its SHA-256 as stored, from the bytes read."""
    try:
        reader = CaptureReader(i.resolved_path, hasher=FileHasher())
    except CaptureError as e:
        notes.append(f"{i.path}: not read ({e})")
        return sha256_file(i.resolved_path)
    for b in reader.batches():
        scan.batch(b, i.index)
    if reader.report.errors:
        notes.extend(f"{i.path}: {e}" for e in reader.report.errors)
    return reader.sha256


def _outputs(folder: Path) -> list[str]:
    import json
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [o["path"] for o in manifest.get("outputs", [])] + ["manifest.json"]


def _name(folder: Path, p: Path) -> str:
    """A path inside the folder relative to it, else as resolved."""
    try:
        return str(p.resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(p.resolve())
