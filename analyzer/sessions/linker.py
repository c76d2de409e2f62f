"""A connection seen mid-stream linked to the earlier connection it continues."""
from __future__ import annotations

from analyzer.sessions.records import ConnectionRecord
from analyzer.sessions.store import sort_key


class ConnectionLinker:
    """Links a connection seen mid-stream to the one it continues.

    The engine finishes a connection that has been silent for a long time
    (memory must follow live connections).  Should the same connection speak
    again, its later frames make a new connection without a handshake.  Its
    endpoints (the TCP 4-tuple; a uTP connection id pair) are those of the
    earlier one: a new TCP connection would have started with a SYN and a new
    uTP connection with new ids.  When the later one carries recognisable peer
    wire messages and nothing else attributed it, it takes the earlier one's
    info hash, with ``attribution`` "same_connection".  Only connections
    finished while still open are remembered, each for ``horizon_ns`` of
    capture time after its last frame, and at most ``cap`` of them.
    """

    def __init__(self, horizon_ns: int = 3600 * 10**9, cap: int = 1 << 20):
        self.horizon_ns = horizon_ns
        self.cap = cap
        self.open: dict = {}          # endpoint key -> (what a continuation takes, last_ts_ns), oldest first
        self.linked = 0

    @staticmethod
    def _keys(c) -> list:
        return [c.key] if c.transport == "tcp" else list(c.halves)

    def link(self, c, r: ConnectionRecord) -> ConnectionRecord:
        keys = self._keys(c)
        if r.category == "bittorrent_unattributed" and not r.initiator_known:
            for k in keys:
                found = self.open.get(k)
                if found is not None and found[1] < r.first_ts_ns:
                    e = found[0]
                    r.category, r.info_hash, r.info_hash_reply = "bittorrent", e["info_hash"], e["info_hash_reply"]
                    r.attribution, r.continues = "same_connection", e["key"]
                    r.attribution_file, r.attribution_frame, r.attribution_ts_ns = e["evidence"]
                    self.linked += 1
                    break
        for k in keys:
            self.open.pop(k, None)
        if r.state == "open" and r.category == "bittorrent":
            # only what a continuation needs (not the record, whose per-second series can be long)
            e = {"key": sort_key(r), "info_hash": r.info_hash, "info_hash_reply": r.info_hash_reply,
                 "evidence": (r.attribution_file, r.attribution_frame, r.attribution_ts_ns)}
            for k in keys:
                self.open[k] = (e, r.last_ts_ns)
        while self.open:
            k, (_, last) = next(iter(self.open.items()))
            if len(self.open) <= self.cap and last >= r.last_ts_ns - self.horizon_ns:
                break
            del self.open[k]
        return r
