"""The client's own records against the wire, per torrent: a pure function.

Theory of operation
-------------------
A state file's counters cover the torrent's whole life in that client (from
when it was added until the file was written); the capture covers a window.
So the wire figures of the window must fit inside the lifetime counter, and
only the direction of a difference says something:

* wire > counter: **contradiction**.  A lifetime counter cannot be smaller
  than what one window of that life proves;
* counter > wire: **possible transfers outside the capture window** (or
  traffic the capture could not attribute to the torrent), with the size of
  the difference;
* otherwise **consistent**.

"What the wire proves" must be measured in the client's unit.  Every client
here counts piece data (payload), never protocol overhead; they differ in
redundant and hash-failed bytes (see model.PAYLOAD_*).  So each direction is
compared with a range [``wire_min``, ``wire_max``] of wire figures from the
subject's side (the torrent findings; summary.json torrents[] in the README):

* uploaded (every client): the client counts a block when it writes it to
  its socket, so at least ``uploaded_bytes`` (each byte once, however often
  retransmitted) and at most that plus ``uploaded_gap_bytes`` (bytes the
  capture missed but the sequence numbers prove were sent).  Transmission
  counts the 13-byte header of each piece message too
  (``upload_counts`` "payload_and_piece_headers"): both ends of its range
  add 13 bytes per piece message the subject sent
  (``uploaded_piece_messages``, counted from the connections; messages whose
  header fell in a capture gap are not known, like the blocks themselves);
  without that count only a contradiction can be told;
* downloaded, "payload_all" (libtorrent, rtorrent): at least
  ``downloaded_acked_bytes`` (the subject's TCP stack acknowledged them, so
  the client read them), at most ``downloaded_bytes + downloaded_gap_bytes``;
* downloaded, "payload_net" (Transmission, compared as ``downloaded +
  corrupt``): the minimum drops the redundant bytes, known only when the
  pieces were verified (``redundant_downloaded_bytes``);
* downloaded, "payload_undocumented" (µTorrent): the minimum drops redundant
  and hash-failed bytes (``verified`` bytes), again only with verification.

Without a minimum a direction is "not_comparable" unless the counter exceeds
the maximum.  The periods are stated beside the verdicts: the capture's time
span, the torrent's traffic in it, and the client's added-to-last-activity.

The have-bitfield is compared with the pieces verified on the wire: pieces
the subject received (verified) or sent whole (verified at the receiver) and
the client no longer holds, and pieces the client holds that the capture
never shows it receiving.

``reconcile_state`` does it for every record of a ``ClientStateSet`` and
gives the ``ClientStateFinding`` the writers serialise; its inputs come from
the findings or from a summary.json (``client_state_wire``).
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

import numpy as np

from analyzer.evidence.clientstate.model import (PAYLOAD_ALL, PAYLOAD_NET, PIECE_HEADER_BYTES,
                                                 UPLOAD_PAYLOAD_AND_HEADERS, ClientStateSet, TorrentState)
from analyzer.timefmt import iso_ns
from analyzer.units import format_bytes

MAX_RANGES = 200

LIBTORRENT_TICK = ("libtorrent adds each second's payload to its lifetime counters at its next one-second tick; "
                   "a torrent paused or removed less than a second after a transfer does not add that last "
                   "second's bytes (libtorrent torrent.cpp, second_tick).")


@dataclass(frozen=True)
class CaptureSpan:
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None


@dataclass
class WireTorrent:
    """One torrent's figures from the subject's side (a summary.json torrents[] entry) and its pieces."""

    info_hash: str
    aliases: tuple = ()
    name: str | None = None
    downloaded_bytes: int = 0
    downloaded_acked_bytes: int = 0
    uploaded_bytes: int = 0
    uploaded_acked_bytes: int = 0
    downloaded_gap_bytes: int = 0
    uploaded_gap_bytes: int = 0
    uploaded_piece_messages: int | None = None       # piece messages the subject sent (header captured)
    redundant_downloaded_bytes: int | None = None    # known when the pieces were verified
    failed_downloaded_bytes: int | None = None
    first_seen_ns: int | None = None
    last_seen_ns: int | None = None
    num_pieces: int | None = None
    piece_length: int | None = None
    length_bytes: int | None = None                  # v1 byte space (pad files included)
    pieces_known: bool = False                       # the torrent's pieces were verified
    received: dict = field(default_factory=dict)     # piece -> verified | failed | incomplete (subject received)
    sent_verified: frozenset = frozenset()           # pieces the subject sent whole, verified at the receiver

    def keys(self) -> set[str]:
        return {self.info_hash, *self.aliases}


@dataclass(frozen=True)
class CaptureContext:
    """Piece bytes the capture could not give to any torrent (summary "encrypted", "unattributed")."""

    encrypted_uploaded_bytes: int = 0
    encrypted_downloaded_bytes: int = 0
    unattributed_uploaded_bytes: int = 0
    unattributed_downloaded_bytes: int = 0


@dataclass
class ClientStateFinding:
    """The state files read, and per record its reconciliation (None when no capture was reconciled)."""

    state: ClientStateSet
    reconciliations: list = field(default_factory=list)   # per file: [dict | None per record]
    notes: list = field(default_factory=list)              # the reader's notes, torrents no file records

    def records(self):
        """(file, record, reconciliation) in output order."""
        for f, recs in zip(self.state.files, self.reconciliations):
            for t, rec in zip(f.torrents, recs):
                yield f, t, rec


def reconcile_state(state: ClientStateSet, wires: list | None = None, capture: CaptureSpan = None,
                    context: CaptureContext = None) -> ClientStateFinding:
    """Every record of ``state`` reconciled with ``wires`` (None: no capture, nothing reconciled)."""
    capture, context = capture or CaptureSpan(), context or CaptureContext()
    out = ClientStateFinding(state=state, notes=list(state.notes))
    matched = set()
    for f in state.files:
        recs = []
        for t in f.torrents:
            if wires is None:
                recs.append(None)
                continue
            rec = reconcile_torrent(t, wires, capture, context)
            if rec.get("wire_torrent"):
                matched.add(rec["wire_torrent"])
            recs.append(rec)
        out.reconciliations.append(recs)
    for w in wires or ():
        if w.info_hash not in matched:
            out.notes.append(f"client state: no state file read records torrent {w.info_hash} of the capture")
    return out


def match(state: TorrentState, wires: list[WireTorrent]) -> tuple[WireTorrent | None, str | None]:
    """The wire torrent of a record (by v1 or truncated v2 hash, or a Transmission 2.x prefix)."""
    keys = state.match_keys()
    if keys:
        found = [w for w in wires if keys & w.keys()]
    elif state.info_hash_prefix:
        found = [w for w in wires if any(k.startswith(state.info_hash_prefix) for k in w.keys())]
    else:
        return None, "the record names no info hash"
    if len(found) > 1:
        return None, "the record's info hash matches several torrents of the capture: " + \
            ", ".join(w.info_hash for w in found)
    return (found[0], None) if found else (None, None)


def reconcile(states, wires: list[WireTorrent], capture: CaptureSpan,
              context: CaptureContext = CaptureContext()) -> list[dict]:
    """One reconciliation (see ``reconcile_torrent``) per record, in the order given."""
    return [reconcile_torrent(s, wires, capture, context) for s in states]


def reconcile_torrent(state: TorrentState, wires: list[WireTorrent], capture: CaptureSpan,
                      context: CaptureContext = CaptureContext()) -> dict:
    wire, problem = match(state, wires)
    if problem:
        return {"wire_torrent": None, "matched": False, "statement": problem}
    w = wire or WireTorrent(info_hash=state.info_hash or "")
    periods, period_notes = _periods(state, wire, capture)
    out = {
        "wire_torrent": wire.info_hash if wire else None,
        "matched": wire is not None,
        "statement": None if wire else "the capture shows no traffic of this torrent from the subject's side",
        "periods": periods,
        "period_notes": period_notes,
        "uploaded": _compare(state, "uploaded", w, context, capture),
        "downloaded": _compare(state, "downloaded", w, context, capture),
        "pieces": compare_pieces(state, wire),
    }
    return out


# ----------------------------------------------------------------------------- periods
def _client_period(state: TorrentState) -> tuple[int | None, str | None, int | None, str | None]:
    """(start ts_ns, its key, last activity ts_ns, its key(s))."""
    start, start_key = None, None
    for f in ("added", "started"):
        if (ts := state.time(f)) is not None:
            start, start_key = ts, next(v.source_key for v in state.times if v.field == f)
            break
    last, last_keys = None, []
    for f in ("last_activity", "last_upload", "last_download"):
        ts = state.time(f)
        if ts is not None and (last is None or ts >= last):
            if last is not None and ts > last:
                last_keys = []
            last = ts
            last_keys.append(next(v.source_key for v in state.times if v.field == f))
    return start, start_key, last, " / ".join(last_keys) or None


def _periods(state, wire, capture) -> tuple[dict, list[str]]:
    start, start_key, last, last_key = _client_period(state)
    written = state.time("written")
    periods = {
        "capture": {"first_ts": iso_ns(capture.first_ts_ns), "last_ts": iso_ns(capture.last_ts_ns)},
        "torrent_on_wire": {"first_seen": iso_ns(wire.first_seen_ns) if wire else None,
                            "last_seen": iso_ns(wire.last_seen_ns) if wire else None},
        "client": {"added": iso_ns(start), "added_key": start_key, "last_activity": iso_ns(last),
                   "last_activity_key": last_key, "written": iso_ns(written)},
    }
    notes = []
    c0, c1 = capture.first_ts_ns, capture.last_ts_ns
    if start is None:
        notes.append("the record gives no time the torrent was added, so its counters' period is not known")
    elif c0 is not None and c1 is not None:
        if start <= c0:
            notes.append(f"the torrent was added ({iso_ns(start)}) before the capture began: its lifetime counters "
                         "include whatever was transferred before the capture")
        elif start <= c1:
            notes.append(f"the torrent was added ({iso_ns(start)}) during the capture")
        else:
            notes.append(f"the torrent was added ({iso_ns(start)}) after the capture ended")
    if last is not None and c1 is not None and last > c1:
        notes.append(f"the client records activity ({iso_ns(last)}) after the capture ended: transfers after "
                     "it are in the counters, not in the capture")
    if wire is not None and start is not None and wire.first_seen_ns is not None \
            and wire.first_seen_ns < start - 1_000_000_000:
        notes.append(f"the capture shows this torrent's traffic from {iso_ns(wire.first_seen_ns)}, before the "
                     f"client's recorded addition ({iso_ns(start)}): the record belongs to a later addition "
                     "of the torrent (removing and re-adding a torrent starts a new record) or the clocks differ")
    if written is not None and wire is not None and wire.first_seen_ns is not None \
            and written < wire.first_seen_ns:
        notes.append(f"the client wrote this entry ({iso_ns(written)}) before this torrent's traffic in the "
                     "capture began: its counters cannot include that traffic")
    return periods, notes


def _inside_capture(state: TorrentState, capture: CaptureSpan) -> bool:
    start, _, last, _ = _client_period(state)
    c0, c1 = capture.first_ts_ns, capture.last_ts_ns
    return None not in (start, last, c0, c1) and start >= c0 and last <= c1


# ----------------------------------------------------------------------------- counters
def _client_figure(state: TorrentState, direction: str) -> tuple[int | None, str]:
    v = state.counter(direction)
    if v is None:
        return None, ""
    if direction == "downloaded" and state.download_counts == PAYLOAD_NET and (c := state.counter("corrupt")):
        return v.value + c.value, f"{v.source_key} + {c.source_key}"
    return v.value, v.source_key


def _wire_range(state: TorrentState, direction: str,
                w: WireTorrent) -> tuple[int | None, int | None, str, str, str | None]:
    """(minimum, maximum, what the minimum is, what the maximum is, why one of them is not known)."""
    if direction == "uploaded":
        high, high_figure = w.uploaded_bytes + w.uploaded_gap_bytes, "uploaded_bytes + uploaded_gap_bytes"
        if state.upload_counts != UPLOAD_PAYLOAD_AND_HEADERS:
            return w.uploaded_bytes, high, "uploaded_bytes", high_figure, None
        if w.uploaded_piece_messages is None:
            return (w.uploaded_bytes, None, "uploaded_bytes", "",
                    f"the client counts {PIECE_HEADER_BYTES} header bytes per piece message sent with the piece "
                    "data, and the number of piece messages was not given")
        headers = PIECE_HEADER_BYTES * w.uploaded_piece_messages
        extra = f" + {PIECE_HEADER_BYTES} x uploaded_piece_messages"
        return (w.uploaded_bytes + headers, high + headers, "uploaded_bytes" + extra, high_figure + extra, None)
    high = w.downloaded_bytes + w.downloaded_gap_bytes
    max_figure = "downloaded_bytes + downloaded_gap_bytes"
    if state.download_counts == PAYLOAD_ALL or (w.downloaded_bytes == 0 and w.downloaded_gap_bytes == 0):
        return w.downloaded_acked_bytes, high, "downloaded_acked_bytes", max_figure, None
    if state.download_counts == PAYLOAD_NET:
        if w.redundant_downloaded_bytes is None:
            return None, high, "", max_figure, (
                "the client does not count redundant bytes, which the capture can tell apart only when it "
                "verified the torrent's pieces (its metadata was not available)")
        return (w.downloaded_acked_bytes - w.redundant_downloaded_bytes, high,
                "downloaded_acked_bytes - redundant_downloaded_bytes", max_figure, None)
    if w.redundant_downloaded_bytes is None or w.failed_downloaded_bytes is None:
        return None, high, "", max_figure, ("the client may not count redundant and hash-failed bytes, which the "
                                            "capture can tell apart only when it verified the torrent's pieces")
    return (w.downloaded_acked_bytes - w.redundant_downloaded_bytes - w.failed_downloaded_bytes, high,
            "downloaded_acked_bytes - redundant_downloaded_bytes - failed_downloaded_bytes", max_figure, None)


def _bytes(n: int) -> str:
    return f"{n:,} bytes" + (f" ({format_bytes(n)})" if n >= 1000 else "")


def _compare(state: TorrentState, direction: str, w: WireTorrent, context: CaptureContext,
             capture: CaptureSpan) -> dict:
    client, key = _client_figure(state, direction)
    out = {"client_bytes": client, "client_key": key or None,
           "client_counts": state.download_counts if direction == "downloaded" else state.upload_counts,
           "wire_min_bytes": None, "wire_max_bytes": None, "wire_min_figure": None, "wire_max_figure": None,
           "wire_piece_messages": None,
           "difference_bytes": None, "verdict": "not_recorded", "statement": None}
    if client is None:
        out["statement"] = f"the file records no {direction} counter for this torrent"
        return out
    low, high, figure, max_figure, why = _wire_range(state, direction, w)
    out.update({"wire_min_bytes": low, "wire_max_bytes": high, "wire_min_figure": figure or None,
                "wire_max_figure": max_figure or None})
    if direction == "uploaded" and state.upload_counts == UPLOAD_PAYLOAD_AND_HEADERS:
        out["wire_piece_messages"] = w.uploaded_piece_messages
    lifetime = f"the client's lifetime counter {key} = {_bytes(client)}"
    if low is not None and client < low:
        diff = low - client
        out.update({"verdict": "contradiction", "difference_bytes": client - low})
        text = (f"contradiction: the capture shows {_bytes(diff)} more {direction} than "
                f"{lifetime}; {figure} = {low:,} bytes. A lifetime counter cannot be smaller than what one "
                "window of that life shows: the record does not account for transfers the capture proves "
                "(it may have been written before them, reset by removing and re-adding the torrent, or edited).")
        if state.format in ("libtorrent_resume", "qbittorrent_fastresume", "deluge_fastresume"):
            text += " " + LIBTORRENT_TICK
        out["statement"] = text
    elif high is not None and client > high:
        diff = client - high
        out.update({"verdict": "possible_transfers_outside_capture", "difference_bytes": diff})
        wire_text = f"{high:,} bytes: {max_figure}"
        text = (f"possible transfers outside the capture window: {lifetime}, {_bytes(diff)} more than the "
                f"capture shows for this torrent ({wire_text}).")
        if _inside_capture(state, capture):
            text += (" The client's recorded period lies inside the capture's time span, so time outside the "
                     "capture does not explain the difference.")
        enc = getattr(context, f"encrypted_{direction}_bytes")
        unattributed = getattr(context, f"unattributed_{direction}_bytes")
        if enc or unattributed:
            text += (f" The capture also holds {enc:,} bytes {direction} on encrypted connections and "
                     f"{unattributed:,} piece bytes {direction} on connections without a handshake, which "
                     "cannot be given to any torrent.")
        out["statement"] = text
    elif low is None:
        out.update({"verdict": "not_comparable",
                    "statement": f"not comparable: {lifetime} is at most the {high:,} bytes the capture shows, "
                                 f"but {why}."})
    elif high is None:
        out.update({"verdict": "not_comparable",
                    "statement": f"not comparable: {lifetime} is at least the {low:,} bytes the capture shows "
                                 f"({figure}), but {why}."})
    else:
        out.update({"verdict": "consistent", "difference_bytes": 0})
        span = (f"{low:,} bytes ({figure})" if low == high else
                f"between {low:,} bytes ({figure}) and {high:,} bytes (with the bytes lost in capture gaps)")
        out["statement"] = f"consistent: {lifetime}; the capture shows {span}."
    return out


# ----------------------------------------------------------------------------- pieces
def ranges(indices) -> str:
    """[0, 1, 2, 5] -> "0-2,5" (at most MAX_RANGES ranges, then "... (n more pieces)")."""
    idx = np.asarray(sorted(indices), dtype=np.int64)
    if not len(idx):
        return ""
    breaks = np.flatnonzero(np.diff(idx) != 1)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [len(idx) - 1]])
    parts = [f"{idx[a]}" if a == b else f"{idx[a]}-{idx[b]}" for a, b in zip(starts[:MAX_RANGES], ends[:MAX_RANGES])]
    if len(starts) > MAX_RANGES:
        parts.append(f"... ({len(idx) - int(ends[MAX_RANGES - 1]) - 1} more pieces)")
    return ",".join(parts)


def compare_pieces(state: TorrentState, wire: WireTorrent | None) -> dict:
    out = {"basis": state.have.describe() if state.have else None, "num_pieces": None, "client_held": None,
           "received_verified": None, "received_failed": None, "received_incomplete": None, "sent_verified": None,
           "held_and_received_verified": None, "received_verified_not_held": None,
           "received_verified_not_held_pieces": None, "sent_verified_not_held": None,
           "sent_verified_not_held_pieces": None, "held_not_received": None, "verdict": "not_recorded",
           "statement": None}
    if state.have is None:
        out["statement"] = "the file records no have-bitfield for this torrent"
        return out
    geo = wire if wire is not None and wire.num_pieces else state
    num = geo.num_pieces
    held = state.have.pieces(num, geo.piece_length, geo.length_bytes)
    out["num_pieces"] = num
    if held is None:
        out.update({"client_held": state.have.stored_count() if state.have.unit == "piece" else None,
                    "verdict": "not_comparable",
                    "statement": "not comparable: " + ("a block bitfield maps to pieces only with the torrent's "
                                                       "metadata (piece length and size)"
                                                       if state.have.unit == "block"
                                                       else "the torrent's piece count is not known, or the "
                                                       "stored count is neither 0 nor the piece count")})
        return out
    out["client_held"] = int(held.sum())
    if wire is not None and not wire.pieces_known:
        out.update({"verdict": "not_comparable",
                    "statement": "not comparable: the capture's pieces of this torrent were not verified (its "
                                 "metadata was not available: give the .torrent with --torrent)"})
        return out
    received = wire.received if wire else {}
    sent = wire.sent_verified if wire else frozenset()

    def holds(p: int) -> bool:
        return 0 <= p < len(held) and bool(held[p])

    verified = sorted(p for p, s in received.items() if s == "verified")
    not_held = [p for p in verified if not holds(p)]
    sent_not_held = sorted(p for p in sent if not holds(p))
    got = set(verified)
    held_not_received = int(sum(1 for p in np.flatnonzero(held).tolist() if p not in got))
    out.update({
        "received_verified": len(verified),
        "received_failed": sum(1 for s in received.values() if s == "failed"),
        "received_incomplete": sum(1 for s in received.values() if s == "incomplete"),
        "sent_verified": len(sent),
        "held_and_received_verified": len(verified) - len(not_held),
        "received_verified_not_held": len(not_held), "received_verified_not_held_pieces": ranges(not_held),
        "sent_verified_not_held": len(sent_not_held), "sent_verified_not_held_pieces": ranges(sent_not_held),
        "held_not_received": held_not_received,
    })
    parts = [f"the client holds {out['client_held']:,} of {len(held):,} pieces; the capture shows the subject "
             f"receiving {len(verified):,} pieces that verified ({len(verified) - len(not_held):,} of them held)"
             + (f" and sending {len(sent):,} pieces whole that verified at the receiver "
                f"({len(sent) - len(sent_not_held):,} of them held)" if sent else "")]
    if not_held or sent_not_held:
        out["verdict"] = "pieces_missing"
        if not_held:
            parts.append(f"{len(not_held):,} pieces received and verified on the wire are not held by the client "
                         f"(pieces {ranges(not_held)})")
        if sent_not_held:
            parts.append(f"{len(sent_not_held):,} pieces the subject sent whole (verified at the receiver) are not "
                         f"held (pieces {ranges(sent_not_held)})")
        parts.append("the data was deleted or moved since, the record was reset, or it is another copy's record")
    else:
        out["verdict"] = "consistent"
    if held_not_received:
        parts.append(f"{held_not_received:,} held pieces were not received in the capture (obtained outside it, "
                     "or held from the start)")
    out["statement"] = "; ".join(parts) + "."
    return out


# ----------------------------------------------------------------------------- inputs
def ns_from_iso(value) -> int | None:
    """'2025-11-28T17:00:00.123456789Z' (timefmt.iso_ns) -> ns; ints pass; None/"" -> None."""
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    s = str(value).rstrip("Z")
    base, _, frac = s.partition(".")
    t = _dt.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=_dt.timezone.utc)
    return int(t.timestamp()) * 1_000_000_000 + int((frac + "000000000")[:9] or 0)
