"""The evidence stage of a staged run: pieces split across shards, rebuilt metadata, carving.

Theory of operation
-------------------
Each flows task verified the pieces of its own connections against the
given metadata and logged their blocks (``evidence.blocklog``).  This
stage, run by the driver once every flows task is done:

1. finds the *split* pieces: the (torrent, receiver, piece) keys that the
   block logs of two shards or more name (a key one shard alone touched
   keeps that shard's results: every block of it was handed to that
   shard's verifier, in the one-process order);
2. submits one evidence task per (torrent, receiving host) with split
   pieces (``replay_task``): their blocks, read from the shards' spills in
   global order, through a fresh verifier; its results replace the
   shards' for those pieces;
3. verifies metadata rebuilt from the capture (BEP 9) by re-reading the
   inputs along the connections that can carry its blocks
   (``stages.evidence_pass``, with the given metadata too, so that a
   connection without a handshake is probed as in the one-process run);
   its results for the rebuilt torrents are kept;
4. carves (``--carve``) the pieces that verified in the end, from the
   pieces the shards, the evidence tasks and the re-reading kept
   (``blocklog.PieceStore``), torrent by torrent, piece by piece, in
   order: the carved files do not depend on where a piece was verified.

Results are merged in the verifier's own order (torrent, receiver, piece,
first frame), so they are those of the one-process run whatever the
number of shards or the order tasks finished in.  The block spills are
deleted at the end (``cleanup``), with the rest of the work folder.
"""
from __future__ import annotations

import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from analyzer.evidence.blocklog import load_tables, read_piece, replay
from analyzer.evidence.carve import Carver
from analyzer.pipeline.workdir import save_result


@dataclass
class Evidence:
    pieces: list | None                 # PieceResult, in the verifier's order
    carved: list = field(default_factory=list)
    attributed: dict = field(default_factory=dict)   # sort key -> record attributed by piece hashes
    facts: dict = field(default_factory=dict)        # split pieces, block spill and shuffle bytes


def _order(r) -> tuple:
    return (r.info_hash, r.receiver, r.index, r.first)


def split_owners(parts: list) -> dict:
    """(torrent key, receiver, index) keys whose blocks were logged by more than one shard -> those shards."""
    seen: dict = {}
    owners: dict = {}
    for s, part in enumerate(parts):
        if not part.blocks:
            continue
        for k in part.blocks["keys"]:
            k = tuple(k)
            first = seen.setdefault(k, s)
            if first != s:
                owners.setdefault(k, {first}).add(s)
    return owners


def split_keys(parts: list) -> set:
    """(torrent key, receiver, index) keys whose blocks were logged by more than one shard."""
    return set(split_owners(parts))


def replay_task(metas: list, shards: list, keys: list, folder: Path | None, out: Path):
    """One evidence task: the split pieces ``keys`` of one (torrent, receiver), replayed
    (``blocklog.replay``); the result is also saved in ``out`` (the task's folder)."""
    out.mkdir(parents=True, exist_ok=True)
    result = replay(metas, [(Path(f), load_tables(f)) for f in shards], set(keys), folder)
    save_result(out, result)
    return result


def run_evidence(plan, executor, parts: list, root: Path, progress, evidence_pass_task) -> Evidence | None:
    """The evidence stage (see the module's docstring); None when nothing is verified."""
    from analyzer.sessions import extensions
    from analyzer.sessions.extensions.ut_metadata import rebuild
    rebuilt = list(rebuild(extensions.merge_results([p.extensions for p in parts])["ut_metadata"]).rebuilt.values())
    if not plan.verify and not rebuilt:
        return None
    facts = {"split_pieces": 0, "pieces_checked": 0, "block_spill_bytes": 0, "shuffled_bytes": 0,
             "shuffled_blocks": 0, "evidence_tasks": 0}
    pieces: list = []
    stores: list = []
    capped = [p.verify_caps for p in parts if p.verify_caps]
    shutil.rmtree(root / "evidence", ignore_errors=True)      # redone whole on --resume: it is quick
    if plan.verify:
        owners = split_owners(parts)
        split = owners.keys()
        facts["block_spill_bytes"] = sum(p.blocks["spill_bytes"] for p in parts if p.blocks)
        for p in parts:
            if p.pieces:
                pieces.extend(r for r in p.pieces if (r.info_hash, r.receiver, r.index) not in split)
            if p.blocks and p.blocks.get("pieces"):
                stores.append(p.blocks["pieces"])
        groups: dict = defaultdict(list)
        touched: dict = defaultdict(set)      # (torrent, receiver) -> shards that logged split pieces of it
        for k in sorted(split):
            groups[(k[0], k[1])].append(k)
            touched[(k[0], k[1])] |= owners[k]
        futures = {}
        for n, (group, keys) in enumerate(sorted(groups.items())):
            shards = [parts[s].blocks["folder"] for s in sorted(touched[group])]
            folder = root / "evidence" / f"t{n:06d}"
            store = folder / "pieces" if plan.carve is not None else None
            futures[executor.submit(replay_task, plan.metas, shards, keys, store, folder)] = group
        for fut in executor.done(list(futures)):
            results, store, blocks, read, caps = executor.result(fut)
            capped.append(caps)
            pieces.extend(results)
            if store is not None:
                stores.append(store)
            facts["shuffled_blocks"] += blocks
            facts["shuffled_bytes"] += read
            progress.task_done("evidence", f"split pieces of {futures[fut][0][:16]} -> {futures[fut][1]}",
                               blocks=blocks)
        facts["split_pieces"] = len(split)
        facts["evidence_tasks"] = len(futures)
    attributed: dict = {}
    if rebuilt:
        given = {_key(m) for m in plan.metas}
        fresh = [m for m in rebuilt if _key(m) not in given]
        if fresh:
            keys = _rebuilt_connections(parts, rebuilt)
            store = root / "evidence" / "rebuilt" / "pieces" if plan.carve is not None else None
            got, attributed, rstore = executor.result(executor.submit(
                evidence_pass_task, plan.paths, keys, plan.metas, store))
            wanted = {_key(m) for m in fresh}
            pieces.extend(r for r in got if r.info_hash in wanted)
            attributed = {k: r for k, r in attributed.items() if r.info_hash in wanted}
            if rstore is not None:
                rstore["have"] = {k: v for k, v in rstore["have"].items() if k in wanted}
                stores.append(rstore)
            progress.task_done("evidence", "rebuilt metadata", connections=len(keys))
    pieces.sort(key=_order)
    facts["pieces_checked"] = len(pieces)
    facts["caps"] = caps_facts(capped)
    carved = _carve(plan.carve, plan.metas + rebuilt, pieces, stores) if plan.carve is not None else []
    return Evidence(pieces if (plan.verify or rebuilt) else None, carved, attributed, facts)


def _key(meta) -> str:
    return meta.info_hash_v1 or meta.info_hash_v2[:40]


def _rebuilt_connections(parts: list, rebuilt: list) -> set:
    """Canonical keys of the connections that can carry blocks of the rebuilt torrents: those of
    their handshakes, and those without a handshake."""
    from analyzer.sessions.records import canonical_key
    hashes = {h for m in rebuilt for h in m.handshake_hashes}
    keys = set()
    for part in parts:
        for r in part.records:
            if r.category == "bittorrent_unattributed" or (
                    r.category == "bittorrent" and (r.info_hash in hashes or r.info_hash_reply in hashes)):
                keys.add(canonical_key(r))
    return keys


def _carve(root: Path, metas: list, pieces: list, stores: list) -> list:
    """The torrents' files cut from the pieces that verified, read from the piece stores."""
    from analyzer.evidence.piece_check import TorrentGeometry
    torrents: dict = {}
    for m in metas:
        t = TorrentGeometry(m)
        torrents.setdefault(t.key, t)
    verified = sorted({(r.info_hash, r.index) for r in pieces if r.status == "verified"})
    carver = Carver(root)
    for key, index in verified:
        t = torrents.get(key)
        if t is None:
            continue
        for store in stores:
            data = read_piece(store, t, index)
            if data is not None:
                carver.piece(t, index, data)
                break
    return carver.finish()


def caps_facts(caps: list[dict]) -> dict:
    """The verifiers' result-changing caps (``Verifier.caps``) over the shards and evidence tasks:
    how often they acted, the sum of the peaks they watch (no less than the one-process run's
    peak: the shards' pieces in progress together are the whole run's) and whether the results
    may differ from a one-process run's (a cap acted somewhere, or the summed peak exceeds it)."""
    from analyzer.evidence.pieces import HELD_FAILED_BYTES, MAX_PENDING_BYTES
    out = {k: sum(c.get(k, 0) for c in caps) for k in ("pending_given_up", "held_settled_early",
                                                         "peak_pending_bytes", "peak_held_bytes")}
    out["may_differ"] = bool(out["pending_given_up"] or out["held_settled_early"]
                             or out["peak_pending_bytes"] > MAX_PENDING_BYTES
                             or out["peak_held_bytes"] > HELD_FAILED_BYTES)
    return out


def caps_notes(caps: dict, staged: bool) -> list[str]:
    """Notes for summary.json when a verification cap acted (or, staged, might have)."""
    notes = []
    if caps.get("pending_given_up"):
        notes.append(f"verification memory cap reached: {caps['pending_given_up']} piece(s) in progress given up "
                     f"as incomplete (more than {_mib('MAX_PENDING_BYTES')} MiB of pieces in progress)")
    if caps.get("held_settled_early"):
        notes.append(f"verification memory cap reached: {caps['held_settled_early']} failed piece(s) settled "
                     f"before a later copy could be tried (more than {_mib('HELD_FAILED_BYTES')} MiB of failed "
                     "pieces kept)")
    if staged and caps.get("may_differ"):
        notes.append("verification memory caps may have acted differently than in a one-process run "
                     "(see manifest.json run.evidence.caps): piece results may differ from one")
    return notes


def _mib(name: str) -> int:
    from analyzer.evidence import pieces
    return getattr(pieces, name) >> 20
