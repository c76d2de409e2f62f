"""Make the committed sample capture: ``python -m analyzer.validation.harness.sample captures/``.

A three-peer libtorrent swarm in a private namespace, captured with tcpdump
on the namespace's loopback (Ethernet link type, 1500-byte MTU, offloads
off), with 2% of packets dropped after the capture point so the capture
holds retransmissions:

* S 127.0.0.2 seeds a 1.5 MB v1 torrent, upload limited to 150 kB/s;
* X 127.0.0.3 (the subject of the demo) downloads from S;
* L 127.0.0.4 joins 2 s later and downloads from S and from X, so X both
  downloads and uploads.

Writes ``sample-swarm.pcap``, ``sample-swarm.torrent`` and
``sample-swarm.truth.json`` (each peer's libtorrent payload counters: the
ground truth the analyzer must match to the byte).
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
import tempfile

from analyzer.validation.harness import run_swarm

SPEC = {
    "timeout": 90,
    "torrents": [{"name": "sample", "size": 1_500_000, "piece_length": 32768, "version": "v1", "seed": 2026}],
    "peers": [
        {"name": "S", "ip": "127.0.0.2", "port": 6881, "seeds": ["sample"], "upload_rate_limit": 150_000},
        {"name": "X", "ip": "127.0.0.3", "port": 6881, "leeches": ["sample"], "connect_to": ["S"]},
        {"name": "L", "ip": "127.0.0.4", "port": 6881, "leeches": ["sample"], "connect_to": ["S", "X"],
         "connect_delay": 2.0},
    ],
}


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        res = run_swarm(SPEC, Path(tmp), drop_probability=0.02)
        shutil.copy(res.capture_files[0], out / "sample-swarm.pcap")
        shutil.copy(res.torrent_files["sample"], out / "sample-swarm.torrent")
        truth = {
            "made_with": "analyzer/validation/harness/sample.py",
            "spec": SPEC,
            "drop_probability": 0.02,
            "kernel_dropped": res.kernel_dropped,
            "torrents": res.ground_truth["torrents"],
            "peers": {name: {"ip": p["ip"], "port": p["port"],
                             "torrents": {t: {k: v for k, v in c.items() if k != "connections"}
                                          for t, c in p["torrents"].items()}}
                      for name, p in res.ground_truth["peers"].items()},
        }
        for t in truth["torrents"].values():
            t.pop("torrent_file", None)
        (out / "sample-swarm.truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "captures"))
