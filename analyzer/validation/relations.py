"""How each client's own counters relate to the analyzer's figures, as checks with a tolerance.

A ``Check`` puts one counter of a client beside the analyzer's figure turned
into that counter's unit (the *relation*, from the client's source code; see
the harness drivers' module docs), with the tolerance the tests use: 0 bytes
for every payload counter.  The figures are summary.json ``torrents[]``
entries (``downloaded_bytes``, ``uploaded_bytes``, ``verified_downloaded_bytes``,
``redundant_downloaded_bytes``, ``failed_downloaded_bytes``, ...), from the
subject's side.

=============  ==========================================================
client         relations
=============  ==========================================================
libtorrent     ``total_payload_download`` = downloaded, ``total_payload_upload``
               = uploaded
Transmission   ``uploadedEver`` = uploaded + 13 x piece messages sent (the
               message header is counted); ``downloadedEver`` = downloaded -
               redundant - failed; ``corruptEver`` = failed
qBittorrent    ``uploaded``, ``uploaded_session`` = uploaded; ``downloaded``,
               ``downloaded_session`` = downloaded; ``total_wasted`` =
               redundant + failed (libtorrent adds a piece's size at each
               failed check: beyond the wire's failed bytes where a piece
               fails twice with a block kept from the first failure)
Deluge         ``total_uploaded``, ``total_payload_upload`` = uploaded;
               ``all_time_download``, ``total_payload_download`` = downloaded
aria2          ``uploadLength`` = uploaded; ``completedLength`` = verified
               (aria2 counts no received payload)
rTorrent       ``d.up.total`` = uploaded; ``d.down.total`` = downloaded
=============  ==========================================================

In the client scenarios every libtorrent peer talks to the subject alone, so
their counters are a second ground truth: the seeders' ``total_payload_upload``
= downloaded, the leechers' ``total_payload_download`` = uploaded.  A torrent
the subject downloaded whole must verify whole: verified = its size.

State files (``state_checks``): the counters read from the state file the
client wrote at its clean stop equal its counters read over its own interface
just before (exact), and the reconciliation of that file with the capture is
"consistent" (the file's counter inside the capture's range, see
``analyzer.findings.client_state``).
"""
from __future__ import annotations

from dataclasses import dataclass

from analyzer.evidence.clientstate.model import PIECE_HEADER_BYTES
from analyzer.validation.harness.clients.registry import STATE_FILES


@dataclass(frozen=True)
class Check:
    figure: str                 # a key of analyzer.report.validation.FIGURES
    torrent: str                # the torrent's name in the scenario
    source: str                 # whose counter: "subject (Transmission 3.00)", "libtorrent peer seed", ...
    counter: str                # the counter's name in that source
    client_bytes: int           # the counter's value
    tool_figure: str            # the analyzer's figure in the counter's unit, as a formula
    tool_bytes: int             # ... its value (the lower end when a range)
    tool_max_bytes: int | None = None    # the upper end of a range (state-file reconciliation)
    tolerance_bytes: int = 0

    @property
    def difference_bytes(self) -> int:
        """Client minus tool; 0 inside a range, else the distance to its nearer end."""
        high = self.tool_bytes if self.tool_max_bytes is None else self.tool_max_bytes
        if self.client_bytes < self.tool_bytes:
            return self.client_bytes - self.tool_bytes
        return max(0, self.client_bytes - high)

    @property
    def passed(self) -> bool:
        return abs(self.difference_bytes) <= self.tolerance_bytes

    def as_json(self) -> dict:
        return {"figure": self.figure, "torrent": self.torrent, "source": self.source, "counter": self.counter,
                "client_bytes": self.client_bytes, "tool_figure": self.tool_figure, "tool_bytes": self.tool_bytes,
                "tool_max_bytes": self.tool_max_bytes, "difference_bytes": self.difference_bytes,
                "tolerance_bytes": self.tolerance_bytes, "passed": self.passed}


def _net(t: dict) -> int:
    return t["downloaded_bytes"] - (t.get("redundant_downloaded_bytes") or 0) - (t.get("failed_downloaded_bytes") or 0)


def transmission(c: dict, t: dict, sent: int) -> list[tuple]:
    return [("uploaded", "uploadedEver", c["uploadedEver"], "uploaded_bytes + 13 x piece messages sent",
             t["uploaded_bytes"] + PIECE_HEADER_BYTES * sent),
            ("downloaded", "downloadedEver", c["downloadedEver"],
             "downloaded_bytes - redundant_downloaded_bytes - failed_downloaded_bytes", _net(t)),
            ("failed", "corruptEver", c["corruptEver"], "failed_downloaded_bytes", t.get("failed_downloaded_bytes") or 0)]


def qbittorrent(c: dict, t: dict, _sent: int) -> list[tuple]:
    return [("uploaded", "uploaded", c["uploaded"], "uploaded_bytes", t["uploaded_bytes"]),
            ("uploaded", "uploaded_session", c["uploaded_session"], "uploaded_bytes", t["uploaded_bytes"]),
            ("downloaded", "downloaded", c["downloaded"], "downloaded_bytes", t["downloaded_bytes"]),
            ("downloaded", "downloaded_session", c["downloaded_session"], "downloaded_bytes", t["downloaded_bytes"]),
            ("wasted", "total_wasted", c["total_wasted"], "redundant_downloaded_bytes + failed_downloaded_bytes",
             (t.get("redundant_downloaded_bytes") or 0) + (t.get("failed_downloaded_bytes") or 0))]


def deluge(c: dict, t: dict, _sent: int) -> list[tuple]:
    return [("uploaded", "total_uploaded", c["total_uploaded"], "uploaded_bytes", t["uploaded_bytes"]),
            ("uploaded", "total_payload_upload", c["total_payload_upload"], "uploaded_bytes", t["uploaded_bytes"]),
            ("downloaded", "all_time_download", c["all_time_download"], "downloaded_bytes", t["downloaded_bytes"]),
            ("downloaded", "total_payload_download", c["total_payload_download"], "downloaded_bytes",
             t["downloaded_bytes"])]


def aria2(c: dict, t: dict, _sent: int) -> list[tuple]:
    out = [("uploaded", "uploadLength", c["uploadLength"], "uploaded_bytes", t["uploaded_bytes"])]
    if t["downloaded_bytes"]:
        out.append(("verified", "completedLength", c["completedLength"], "verified_downloaded_bytes",
                    t.get("verified_downloaded_bytes") or 0))
    return out


def rtorrent(c: dict, t: dict, _sent: int) -> list[tuple]:
    return [("uploaded", "d.up.total", c["d.up.total"], "uploaded_bytes", t["uploaded_bytes"]),
            ("downloaded", "d.down.total", c["d.down.total"], "downloaded_bytes", t["downloaded_bytes"])]


def libtorrent(c: dict, t: dict, _sent: int) -> list[tuple]:
    return [("uploaded", "total_payload_upload", c["total_payload_upload"], "uploaded_bytes", t["uploaded_bytes"]),
            ("downloaded", "total_payload_download", c["total_payload_download"], "downloaded_bytes",
             t["downloaded_bytes"])]


RELATIONS = {"libtorrent": libtorrent, "transmission": transmission, "qbittorrent": qbittorrent, "deluge": deluge,
             "aria2": aria2, "rtorrent": rtorrent}


def client_checks(client: str, source: str, torrent: str, counters: dict, figures: dict,
                  sent_piece_messages: int) -> list[Check]:
    """The subject's own counters of one torrent against the analyzer's ``figures`` of it."""
    return [Check(fig, torrent, source, name, int(value), formula, int(tool))
            for fig, name, value, formula, tool in RELATIONS[client](counters, figures, sent_piece_messages)]


def remote_checks(truth: dict, torrent: str, figures: dict) -> list[Check]:
    """The libtorrent peers' counters on the other side (each talks to the subject alone): what they
    sent is what the subject downloaded, what they received what it uploaded."""
    peers = sorted((name, p["torrents"][torrent]) for name, p in truth["peers"].items() if torrent in p["torrents"])
    source = "libtorrent peer" + ("s " if len(peers) > 1 else " ") + ", ".join(n for n, _ in peers)
    sent = sum(c["total_payload_upload"] for _, c in peers)
    received = sum(c["total_payload_download"] for _, c in peers)
    out = []
    if sent or figures["downloaded_bytes"]:
        out.append(Check("downloaded", torrent, source, "total_payload_upload" + (" (sum)" if len(peers) > 1 else ""),
                         sent, "downloaded_bytes", figures["downloaded_bytes"]))
    if received or figures["uploaded_bytes"]:
        out.append(Check("uploaded", torrent, source, "total_payload_download" + (" (sum)" if len(peers) > 1 else ""),
                         received, "uploaded_bytes", figures["uploaded_bytes"]))
    return out


def verified_check(torrent: str, size: int, figures: dict) -> Check:
    """A torrent the subject downloaded whole verifies whole."""
    return Check("verified", torrent, "the torrent's size (downloaded whole)", "size", size,
                 "verified_downloaded_bytes", figures.get("verified_downloaded_bytes") or 0)


# ---------------------------------------------------------------------------- state files
# {client: {state-file counter field: counter read over the client's interface}}
STATE_COUNTERS = {
    "transmission": {"uploaded": "uploadedEver", "downloaded": "downloadedEver", "corrupt": "corruptEver"},
    "qbittorrent": {"uploaded": "uploaded", "downloaded": "downloaded"},
    "deluge": {"uploaded": "total_uploaded", "downloaded": "all_time_download"},
    "rtorrent": {"uploaded": "d.up.total", "downloaded": "d.down.total"},
    "libtorrent": {"uploaded": "all_time_upload", "downloaded": "all_time_download"},
}
# the state files read, under the client's state folder: one kind of its driver's STATE_FILES
STATE_GLOBS = {client: [STATE_FILES[client][kind]] for client, kind in
               {"transmission": "resume", "qbittorrent": "resume", "deluge": "resume", "rtorrent": "state"}.items()}


def state_checks(client: str, items: list[dict], counters_at_stop: dict, names: dict,
                 interface: str = "") -> list[Check]:
    """Checks of the state files read (summary.json ``client_state[]`` items, reconciled with the
    capture): ``counters_at_stop`` {torrent name: counters over the client's interface at the stop},
    ``names`` {info hash: torrent name}, ``interface`` where those counters come from (for the
    outputs).  Every torrent of ``counters_at_stop`` must be found."""
    interface = interface or f"{client} interface at the stop"
    out, seen = [], set()
    api = STATE_COUNTERS[client]
    for f in items:
        for t in f["torrents"]:
            name = names.get(t.get("info_hash") or "")
            if name is None or name not in counters_at_stop:
                continue
            values = {c["field"]: c for c in t["counters"]}
            if not any(k in values for k in api):
                continue            # a record without counters (rtorrent's .libtorrent_resume)
            seen.add(name)
            source = f"state file {f['path'].rsplit('/', 1)[-1]}"
            for field_, key in api.items():
                if field_ in values:
                    v = values[field_]
                    out.append(Check("state_read", name, interface, key,
                                     int(counters_at_stop[name][key]), f"{v['source_key']} read from the file",
                                     int(v["value"])))
            rec = t.get("reconciliation") or {}
            for d in ("uploaded", "downloaded"):
                r = rec.get(d)
                if not r or r.get("client_bytes") is None:
                    continue
                low = r["wire_min_bytes"] if r["wire_min_bytes"] is not None else r["wire_max_bytes"]
                out.append(Check("state_reconciled", name, source, f"{r['client_key']} ({r['verdict']})",
                                 int(r["client_bytes"]), f"capture: {r['wire_min_figure'] or r['wire_max_figure']}",
                                 int(low if low is not None else 0), tool_max_bytes=r["wire_max_bytes"]))
    for name in sorted(set(counters_at_stop) - seen):
        out.append(Check("state_read", name, interface, "(no state file records the torrent)",
                         1, "a state file naming it", 0))
    return out
