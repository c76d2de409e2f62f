"""The report's "The client's own records": a table and a chart, read from the output folder.

* ``client_state_table_rows(summary["client_state"])``: one row per
  reconciled record and direction (uploaded, downloaded) and one for its
  pieces, keyed as ``CLIENT_STATE_TABLE_COLUMNS`` (``*_bytes`` values are
  integers, for the document's formatter);
* ``client_state_chart(client_state.csv rows)``: lifetime counters against
  wire figures per torrent, in the style of ``charts``: greyscale, every
  series told apart by hatch pattern and fill as well as grey level, and no
  number the table does not show.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SERIES = (  # (direction, source, face, hatch, label)
    ("uploaded", "client", "1.0", "//", "uploaded: client's lifetime counter"),
    ("uploaded", "wire", "0.55", "", "uploaded: capture"),
    ("downloaded", "client", "1.0", "\\\\", "downloaded: client's lifetime counter"),
    ("downloaded", "wire", "0.2", "", "downloaded: capture"),
)
MARKS = {"consistent": "=", "contradiction": "✗", "possible_transfers_outside_capture": "+",
         "not_comparable": "?", "not_recorded": "–"}


def _num(v) -> int | None:
    if v is None or v == "" or (isinstance(v, float) and v != v):
        return None
    return int(float(v))


def client_state_chart(rows, title: str = "Lifetime counters against wire figures per torrent",
                       max_records: int = 20) -> Figure:
    """``rows``: client_state.csv rows (dicts).  Per reconciled record (torrent in a state file): the client's uploaded and downloaded counters (outlined,
    hatched bars) beside the capture's figures for the same torrent (solid bars; a thin vertical line marks
    a range from the least the client must have counted to the most the capture accounts for), and the
    verdict of each direction above its pair.  At most ``max_records`` records: those with the largest
    counters, the rest named in the caption."""
    # matplotlib here only: the document's process builds the table without it (see drawing.py)
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    from analyzer.report.charts import _caption, _decimal, _short
    from analyzer.report.chartplan import client_state_caption, client_state_records, client_state_size
    records, total = client_state_records(rows, max_records)
    fig = Figure(figsize=client_state_size(len(records)), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    w = 0.2
    top = 1
    for i, r in enumerate(records):
        for k, (direction, source, face, hatch, _) in enumerate(SERIES):
            x = i + (k - 1.5) * w
            if source == "client":
                v = _num(r[f"{direction}_compared_bytes"])
                if v is not None:
                    ax.bar(x, v, w, color=face, edgecolor="0.0", hatch=hatch)
                    top = max(top, v)
                continue
            lo, hi = _num(r[f"wire_{direction}_min_bytes"]), _num(r[f"wire_{direction}_max_bytes"])
            if hi is None and lo is None:
                continue
            if hi is None:          # a minimum alone (Transmission's uploaded without the piece message count)
                ax.bar(x, lo, w, color=face, edgecolor="0.0")
                top = max(top, lo)
                continue
            ax.bar(x, hi if lo is None else lo, w, color=face, edgecolor="0.0")
            if lo is None or lo != hi:
                ax.vlines(x, 0 if lo is None else lo, hi, colors="0.0", linewidth=1)
            top = max(top, hi)
        for k, direction in enumerate(("uploaded", "downloaded")):
            verdict = str(r[f"{direction}_verdict"])
            y = max(_num(r[f"{direction}_compared_bytes"]) or 0, _num(r[f"wire_{direction}_max_bytes"]) or 0,
                    _num(r[f"wire_{direction}_min_bytes"]) or 0)
            ax.text(i + (2 * k - 1) * w, y, MARKS.get(verdict, "?"), ha="center", va="bottom", fontsize=9)
    labels = []
    for r in records:
        name = r.get("name")
        name = name if isinstance(name, str) and name else _short(str(r.get("info_hash") or "?"))
        labels.append(f"{name}\n{Path(str(r['path'])).name[:24]}")
    ax.set_xticks(range(len(records)), labels, fontsize=7)
    ax.set_xlim(-0.6, max(len(records), 1) - 0.4)
    ax.set_axisbelow(True)
    ax.set_ylim(0, top * 1.15)
    ax.yaxis.set_major_formatter(FuncFormatter(_decimal))
    ax.set_ylabel("Piece (payload) bytes")
    ax.set_title(title)
    if not len(records):
        ax.text(0.5, 0.5, "no state file record was reconciled with the capture", transform=ax.transAxes,
                ha="center")
    handles = [Patch(facecolor=face, edgecolor="0", hatch=hatch, label=label) for *_, face, hatch, label in SERIES]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=7)
    return _caption(fig, client_state_caption(total, max_records))


CLIENT_STATE_TABLE_COLUMNS = [("torrent", "Torrent"), ("state_file", "State file"), ("direction", "Direction"),
                              ("client_key", "Client's counter"), ("client_bytes", "Client (lifetime)"),
                              ("wire", "Capture"), ("difference_bytes", "Difference"), ("verdict", "Verdict")]
VERDICT_TEXT = {"consistent": "consistent", "contradiction": "CONTRADICTION",
                "possible_transfers_outside_capture": "possible transfers outside the capture window",
                "not_comparable": "not comparable", "not_recorded": "not recorded", "pieces_missing":
                "pieces missing"}


def client_state_table_rows(items: list[dict]) -> list[dict]:
    """Rows for "The client's own records" (keys of CLIENT_STATE_TABLE_COLUMNS; *_bytes keys are integers),
    one per reconciled record and direction, then one for its pieces."""
    rows = []
    for f in items:
        for t in f["torrents"]:
            rec = t["reconciliation"]
            if not rec or "periods" not in rec:
                continue
            torrent = t["name"] or t["info_hash"] or "?"
            where = f"{Path(f['path']).name} ({f['client']})"
            for d in ("uploaded", "downloaded"):
                c = rec[d]
                lo, hi = c["wire_min_bytes"], c["wire_max_bytes"]
                wire = ("—" if lo is None else f"at least {lo:,} B") if hi is None else \
                    (f"{hi:,} B" if lo == hi else f"{'?' if lo is None else f'{lo:,}'} to {hi:,} B")
                rows.append({"torrent": torrent, "state_file": where, "direction": d, "client_key": c["client_key"],
                             "client_bytes": c["client_bytes"], "wire": wire,
                             "difference_bytes": c["difference_bytes"],
                             "verdict": VERDICT_TEXT.get(c["verdict"], c["verdict"])})
            p = rec["pieces"]
            rows.append({"torrent": torrent, "state_file": where, "direction": "pieces held",
                         "client_key": t["have"]["source_key"] if t["have"] else None,
                         "client_bytes": None,
                         "wire": None if p["received_verified"] is None else
                         f"{p['received_verified']:,} received verified",
                         "difference_bytes": None,
                         "verdict": VERDICT_TEXT.get(p["verdict"], p["verdict"])
                         + (f" ({p['client_held']:,} held)" if p["client_held"] is not None else "")})
    return rows
