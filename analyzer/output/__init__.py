"""Writers: the findings serialised into the output folder, and nothing else.

``write_outputs(findings, DIR, ...)`` writes summary.json, the CSV tables,
the Parquet tables, rebuilt metadata and manifest.json.  Everything here
formats what ``analyzer.findings`` computed; the report (``analyzer.report``)
then reads only these files.
"""
from __future__ import annotations

import datetime as _dt
from pathlib import Path

from analyzer.evidence.metainfo import encode_torrent
from analyzer.output.client_state import client_state_csv
from analyzer.output.manifest import manifest_json
from analyzer.output.parquet import peers_table, timeline_table, write_parquet
from analyzer.output.summary import dumps, summary_json
from analyzer.output.tables import dht_csv, pex_csv, pieces_csv, torrents_csv, tracker_csv, write_connections_csv


def write_outputs(f, out_dir: Path, *, argv: list[str], started: _dt.datetime) -> dict:
    """Write every output file of findings ``f``; return the summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summary_json(f)
    files = {
        "summary.json": dumps(summary),
        "torrents.csv": torrents_csv(f),
        "tracker.csv": tracker_csv(f),
        "dht.csv": dht_csv(f),
        "pex.csv": pex_csv(f),
    }
    if f.pieces is not None:
        files["pieces.csv"] = pieces_csv(f)
    if f.client_state is not None:
        files["client_state.csv"] = client_state_csv(summary["client_state"])
    for meta in f.rebuilt:
        files[f"metadata/{meta.info_hash_v1 or meta.info_hash_v2}.torrent"] = encode_torrent(meta)
    for name, content in files.items():
        target = out_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    with open(out_dir / "connections.csv", "w", encoding="utf-8", newline="") as out:
        write_connections_csv(f, out)
    write_parquet(timeline_table(f.timeline), out_dir / "timeline.parquet")
    write_parquet(peers_table(f.peers), out_dir / "peers.parquet")
    names = [*files, "connections.csv", "timeline.parquet", "peers.parquet"]
    (out_dir / "manifest.json").write_text(dumps(manifest_json(f, out_dir, names, argv=argv, started=started)),
                                           encoding="utf-8")
    return summary
