"""The per-peer ranking the report prints as a table and draws as a chart (no matplotlib here: the
document's process reads it without drawing anything)."""
from __future__ import annotations

from analyzer.report.columns import Columns, as_columns


def top_peers(peers: Columns, top_n: int = 10, column: str = "uploaded_bytes") -> list[dict]:
    """Per remote address: uploaded, downloaded, connections; the `top_n` largest by `column` (ties by the
    other direction, then address) and one row "<k> other peers" summing the rest.  The per-peer chart
    draws exactly these rows and the report prints them as a table."""
    cols = ["uploaded_bytes", "downloaded_bytes", "connections"]
    peers = as_columns(peers)
    per: dict = {}
    present = [c for c in cols if c in peers]
    for i, ip in enumerate(peers["remote_ip"]):
        sums = per.setdefault(ip, dict.fromkeys(cols, 0))
        for c in present:
            sums[c] += int(peers[c][i])
    other = "downloaded_bytes" if column == "uploaded_bytes" else "uploaded_bytes"
    ranked = [{"remote_ip": ip, **sums} for ip, sums in sorted(per.items(),
                                                               key=lambda kv: (-kv[1][column], -kv[1][other], kv[0]))]
    shown, rest = ranked[:top_n], ranked[top_n:]
    if rest:
        shown.append({"remote_ip": f"{len(rest)} other peers", **{c: sum(r[c] for r in rest) for c in cols}})
    return shown
