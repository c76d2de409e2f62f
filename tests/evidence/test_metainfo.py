"""--torrent metadata: v1, v2 and hybrid .torrent files read with libtorrent and the bencode decoder."""
from __future__ import annotations

import random
from pathlib import Path

import libtorrent as lt
import pytest
from click.testing import CliRunner

from analyzer.cli import main
from analyzer.evidence.metainfo import MetainfoError, load_torrent, load_torrents

REPO = Path(__file__).resolve().parent.parent.parent


def make_torrent(tmp: Path, version: str, sizes=(300_000, 70_000), piece_length=32768) -> Path:
    root = tmp / "content"
    rnd = random.Random(4)
    entries = []
    for i, size in enumerate(sizes):
        f = root / f"file{i}.bin"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(rnd.randbytes(size))
        entries.append(lt.create_file_entry(f"content/file{i}.bin", size))
    flags = {"v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only, "hybrid": 0}[version]
    ct = lt.create_torrent(entries, piece_length, flags=flags)
    lt.set_piece_hashes(ct, str(tmp))
    out = tmp / f"{version}.torrent"
    out.write_bytes(lt.bencode(ct.generate()))
    return out


@pytest.mark.parametrize("version", ["v1", "v2", "hybrid"])
def test_versions(tmp_path, version):
    path = make_torrent(tmp_path, version)
    m = load_torrent(path)
    ti = lt.torrent_info(str(path))
    assert m.name == "content" and m.total_size == 370_000 and m.piece_length == 32768
    assert (m.info_hash_v1 is not None) == (version != "v2")
    assert (m.info_hash_v2 is not None) == (version != "v1")
    if m.info_hash_v1:
        assert m.info_hash_v1 == str(ti.info_hashes().v1) and m.num_pieces == ti.num_pieces()
    if m.info_hash_v2:
        assert m.info_hash_v2 == str(ti.info_hashes().v2)
        assert all(f.pieces_root for f in m.files if not f.pad)
        assert set(m.piece_layers) <= {f.pieces_root for f in m.files}
    if version == "hybrid":
        assert any(f.pad for f in m.files) and m.v1_length > m.total_size
        assert m.handshake_hashes == [m.info_hash_v1, m.info_hash_v2[:40]]


def test_bad_torrents_are_reported_not_raised(tmp_path):
    (tmp_path / "a.torrent").write_bytes(b"not bencode")
    (tmp_path / "b.torrent").write_bytes(b"d4:infod4:name1:xee")
    make_torrent(tmp_path / "ok", "v1")
    metas, errors = load_torrents([tmp_path])
    assert len(metas) == 1 and len(errors) == 2
    assert all(".torrent:" in e for e in errors)
    with pytest.raises(MetainfoError):
        load_torrent(tmp_path / "a.torrent")


def test_cli_adds_name_and_size(tmp_path):
    r = CliRunner().invoke(main, ["analyze", str(REPO / "captures" / "sample-swarm.pcap"), "--local", "127.0.0.3",
                                  "--torrent", str(REPO / "captures" / "sample-swarm.torrent"),
                                  "--out", str(tmp_path), "--quiet"])
    assert r.exit_code == 0, r.output
    import json
    [t] = json.loads((tmp_path / "summary.json").read_text())["torrents"]
    assert (t["name"], t["total_size"], t["piece_length"], t["info_hash_v2"]) == ("sample", 1_500_000, 32768, None)
    header = (tmp_path / "torrents.csv").read_text().splitlines()[0]
    assert header.endswith("name,total_size,piece_length,info_hash_v2")
