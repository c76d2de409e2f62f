"""What the report shows of long lists: the peers ranked (a table and a chart), the connections the
connection chart draws.  No matplotlib here: the document's process uses these without drawing.
"""
from __future__ import annotations

from analyzer.report.columns import Columns, as_columns, as_rows
from analyzer.timefmt import parse_iso_ns

CONNECTION_CHART_ROWS = 60      # bars in the connection chart (a case can have tens of thousands of connections)


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


def _number(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return 0.0


def shown_connections(connections, max_rows: int = CONNECTION_CHART_ROWS) -> list[dict]:
    """The rows of connections.csv (text) the connection chart draws: all of them if at most ``max_rows``
    (in file order), else those with the most piece bytes (ties in file order), in order of their first
    frame.  Given its own result, it returns it unchanged."""
    connections = as_rows(connections)
    if len(connections) <= max_rows:
        return connections
    size = [_number(c["downloaded_bytes"]) + _number(c["uploaded_bytes"]) for c in connections]
    keep = sorted(range(len(connections)), key=lambda i: -size[i])[:max_rows]      # stable: ties in file order
    return sorted((connections[i] for i in keep), key=lambda c: parse_iso_ns(c["first_ts"]))
