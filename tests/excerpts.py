"""Helpers of the disclosure-excerpt tests: run analyze/extract through the CLI in-process, and
compare what two analyses say about one torrent (per peer, per connection, trackers, DHT, LSD)."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from analyzer.capture.reader import CaptureReader
from analyzer.cli import main

# connections.csv columns that name places in the inputs (they differ between a capture and its excerpt)
PLACES = ("conn_id", "attribution_conn_id", "first_file", "first_frame", "last_file", "last_frame",
          "attribution_file", "attribution_frame", "first_block_file", "first_block_frame", "last_block_file",
          "last_block_frame")


def cli(*args: str, code: int = 0) -> str:
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exit_code == code, r.output
    return r.output


def analyze(inputs, out: Path, *options: str) -> Path:
    r = CliRunner().invoke(main, ["analyze", *map(str, inputs), "--out", str(out), "--quiet", *options])
    # 3: the subject is not in this excerpt (datagrams of others); 4: several public captures have no one subject
    assert r.exit_code in (0, 3, 4), r.output
    return out


def extract(folder: Path, info_hash: str, out: Path, *options: str) -> Path:
    cli("extract", folder, "--info-hash", info_hash, "-o", out, *options)
    return out


def torrent_hashes(folder: Path, info_hash: str) -> set[str]:
    for t in json.loads((folder / "summary.json").read_text())["torrents"]:
        if info_hash in (t["info_hash"], *t["info_hash_aliases"]):
            return {t["info_hash"], *t["info_hash_aliases"]}
    return {info_hash}


def peers(folder: Path, hashes: set[str]) -> pd.DataFrame:
    """peers.parquet rows of the torrent (named by one of its hashes: which one names a hybrid torrent
    depends on the hashes its connections used, so the name is left out)."""
    p = pd.read_parquet(folder / "peers.parquet")
    p = p[p["info_hash"].isin(hashes)].drop(columns="info_hash")
    return p.sort_values(["remote_ip", "transport"]).reset_index(drop=True)


def connections(folder: Path, hashes: set[str], remote: str | None = None) -> pd.DataFrame:
    c = pd.read_csv(folder / "connections.csv", dtype=str, keep_default_na=False)
    c = c[c["info_hash"].isin(hashes) | c["info_hash_reply"].isin(hashes)]
    if remote is not None:
        c = c[c["remote_ip"] == remote]
    c = c[[k for k in c.columns if k not in PLACES]]
    return c.sort_values(["first_ts", "src_ip", "src_port"]).reset_index(drop=True)


def torrent_rows(folder: Path, hashes: set[str]) -> list[dict]:
    """summary.json torrents[] rows of the torrent, without its name (see ``peers``)."""
    return [{k: v for k, v in t.items() if k not in ("info_hash", "info_hash_aliases")}
            for t in json.loads((folder / "summary.json").read_text())["torrents"] if t["info_hash"] in hashes]


def table_rows(folder: Path, name: str, hashes: set[str], drop=("file", "frame")) -> pd.DataFrame:
    t = pd.read_csv(folder / name, dtype=str, keep_default_na=False)
    t = t[t["info_hash"].isin(hashes)]
    return t[[k for k in t.columns if k not in drop]].reset_index(drop=True)


def lsd_rows(folder: Path, hashes: set[str]) -> list[dict]:
    return [e for e in json.loads((folder / "summary.json").read_text())["lsd"] if e["info_hash"] in hashes]


def assert_same_evidence(a: Path, b: Path, hashes: set[str], *, remote: str | None = None,
                         whole_torrent: bool = True) -> None:
    """Analyses ``a`` and ``b`` say the same about the torrent: per peer (peers.parquet), per connection
    (connections.csv, places in the inputs aside) and, when ``whole_torrent``, the torrent's totals and
    its tracker, DHT and LSD rows."""
    pa, pb = peers(a, hashes), peers(b, hashes)
    if remote is not None:
        pa, pb = (p[p["remote_ip"] == remote].reset_index(drop=True) for p in (pa, pb))
    pd.testing.assert_frame_equal(pa, pb)
    pd.testing.assert_frame_equal(connections(a, hashes, remote), connections(b, hashes, remote))
    if whole_torrent:
        assert torrent_rows(a, hashes) == torrent_rows(b, hashes)
        for name in ("tracker.csv", "dht.csv"):
            pd.testing.assert_frame_equal(table_rows(a, name, hashes), table_rows(b, name, hashes))
        assert lsd_rows(a, hashes) == lsd_rows(b, hashes)


def frames_csv(excerpt: Path) -> pd.DataFrame:
    return pd.read_csv(excerpt.with_suffix(".frames.csv"), dtype={"original_file": str})


def records(path: Path) -> dict[int, tuple]:
    """frame number -> (ts_ns, link type, bytes, original length) of every frame of a capture."""
    out = {}
    reader = CaptureReader(path)
    for b in reader.batches():
        for i in range(b.n):
            off, cap = int(b.rec_off[i]), int(b.caplen[i])
            out[b.first_frame_no + i] = (int(b.ts_ns[i]), int(b.if_linktype[b.iface[i]]),
                                         bytes(b.buf[off:off + cap]), int(b.origlen[i]))
    return out


def assert_frames_map(excerpt: Path, folder: Path, every: int = 1) -> None:
    """Each frames.csv row (every ``every``-th) names an original frame with the same time, link type,
    bytes and length as the excerpt's frame."""
    manifest = json.loads((folder / "manifest.json").read_text())
    where = {i["path"]: Path(i["resolved_path"]) for i in manifest["inputs"]}
    rows = frames_csv(excerpt)
    mine = records(excerpt)
    assert list(rows["frame"]) == list(range(1, len(mine) + 1))
    originals: dict = {}
    for r in rows.iloc[::every].itertuples():
        if r.original_file not in originals:
            originals[r.original_file] = records(where[r.original_file])
        assert mine[r.frame] == originals[r.original_file][r.original_frame], r


def cut_pcap(src: Path, dst: Path, t_from: int, t_to: int) -> Path:
    """A little-endian classic pcap keeping only the records with t_from <= time <= t_to (ns)."""
    b = Path(src).read_bytes()
    magic = struct.unpack_from("<I", b, 0)[0]
    frac_ns = 1 if magic == 0xA1B23C4D else 1000
    out, off = [b[:24]], 24
    while off + 16 <= len(b):
        sec, frac, cap, _ = struct.unpack_from("<IIII", b, off)
        if t_from <= sec * 1_000_000_000 + frac * frac_ns <= t_to:
            out.append(b[off:off + 16 + cap])
        off += 16 + cap
    Path(dst).write_bytes(b"".join(out))
    return Path(dst)
