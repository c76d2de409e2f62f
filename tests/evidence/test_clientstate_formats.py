"""Reading state files of every format: libtorrent's own writer for the libtorrent family, files built to
the clients' sources (Transmission, rtorrent) and to the documented format (µTorrent resume.dat, which
cannot be produced here); damaged, unknown and oversized files each give one error line."""
from __future__ import annotations

import hashlib

import libtorrent as lt
import numpy as np
import pytest

from analyzer.evidence.clientstate import read_client_state, reader
from analyzer.evidence.clientstate.model import PAYLOAD_ALL, PAYLOAD_NET, PAYLOAD_UNDOCUMENTED
from analyzer.protocols.bencode import decode, encode

HAVE = [True, False, True, True, False, False, True]


def torrent_file(size=100_000, piece_length=16384) -> bytes:
    ct = lt.create_torrent([lt.create_file_entry("a.bin", size)], piece_length, lt.create_torrent.v1_only)
    for i in range(ct.num_pieces()):
        ct.set_hash(i, bytes([i + 1]) * 20)
    return lt.bencode(ct.generate())


def torrent_info(size=100_000, piece_length=16384) -> lt.torrent_info:
    return lt.torrent_info(torrent_file(size, piece_length))


def resume_blob(ti=None, **fields) -> bytes:
    """Resume data as libtorrent's own writer (write_resume_data_buf) makes it."""
    ti = ti or torrent_info()
    atp = lt.add_torrent_params()
    atp.ti, atp.info_hashes, atp.save_path = ti, ti.info_hashes(), "/data"
    atp.total_uploaded, atp.total_downloaded = 12_345, 99_999
    atp.active_time, atp.seeding_time, atp.finished_time = 77, 5, 6
    atp.added_time, atp.completed_time, atp.last_upload = 1_700_000_000, 1_700_000_100, 1_700_000_200
    atp.have_pieces = HAVE
    atp.peers = [("10.0.0.1", 6881), ("fd00::1", 51413)]
    for k, v in fields.items():
        setattr(atp, k, v)
    return lt.write_resume_data_buf(atp)


def one(path):
    s = read_client_state([path])
    [f] = s.files
    return f


def counters(t) -> dict:
    return {c.field: (c.source_key, c.value, c.unit) for c in t.counters}


def times(t) -> dict:
    return {c.field: (c.source_key, c.value) for c in t.times}


def test_libtorrent_resume_read_with_libtorrent(tmp_path):
    ti = torrent_info()
    path = tmp_path / f"{ti.info_hashes().v1}.resume"
    path.write_bytes(resume_blob(ti))
    f = one(path)
    assert (f.format, f.client, f.errors) == ("libtorrent_resume", "libtorrent", [])
    assert f.version == lt.__version__ and f.version_source == "libtorrent-version"
    assert f.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() and f.size_bytes == path.stat().st_size
    [t] = f.torrents
    assert t.info_hash == str(ti.info_hashes().v1) and t.info_hash_v2 is None
    assert counters(t) == {"uploaded": ("total_uploaded", 12_345, "bytes"),
                           "downloaded": ("total_downloaded", 99_999, "bytes"),
                           "active": ("active_time", 77, "seconds"), "finished": ("finished_time", 6, "seconds"),
                           "seeding": ("seeding_time", 5, "seconds")}
    assert times(t) == {"added": ("added_time", 1_700_000_000), "completed": ("completed_time", 1_700_000_100),
                        "last_upload": ("last_upload", 1_700_000_200)}
    assert (t.name, t.save_path, t.num_pieces, t.piece_length) == ("a.bin", "/data", 7, 16384)
    assert t.have.pieces(t.num_pieces).tolist() == HAVE
    assert t.peers == ["10.0.0.1:6881", "[fd00::1]:51413"] and t.peers_total == 2
    assert t.download_counts == PAYLOAD_ALL


def test_qbittorrent_fastresume_without_info_and_with_qbt_keys(tmp_path):
    ti = torrent_info()
    metadata = torrent_file()
    d = decode(resume_blob(ti))
    del d[b"info"]                        # qBittorrent keeps the metadata in <hash>.torrent beside it
    d.update({b"qBt-category": b"films", b"qBt-tags": [b"a", b"b"], b"qBt-name": b"",
              b"qBt-savePath": b"/home/x/Downloads", b"qBt-seedStatus": 1})
    path = tmp_path / "BT_backup" / f"{ti.info_hashes().v1}.fastresume"
    path.parent.mkdir()
    path.write_bytes(encode(d))
    (path.parent / f"{ti.info_hashes().v1}.torrent").write_bytes(metadata)
    s = read_client_state([tmp_path])
    [f] = s.files                         # the plain .torrent beside it is metadata, not state
    assert (f.format, f.client) == ("qbittorrent_fastresume", "qBittorrent")
    [t] = f.torrents
    assert t.client_fields == {"qBt-category": "films", "qBt-name": "", "qBt-savePath": "/home/x/Downloads",
                               "qBt-seedStatus": 1, "qBt-tags": ["a", "b"]}
    assert t.num_pieces is None and t.have.pieces(7).tolist() == HAVE
    assert counters(t)["uploaded"] == ("total_uploaded", 12_345, "bytes")


def test_deluge_fastresume_holds_one_blob_per_torrent(tmp_path):
    a, b = torrent_info(100_000), torrent_info(50_000, 32768)
    blobs = {str(a.info_hashes().v1): resume_blob(a, total_uploaded=1),
             str(b.info_hashes().v1): resume_blob(b, total_uploaded=2)}
    path = tmp_path / "torrents.fastresume"
    path.write_bytes(encode(blobs))
    f = one(path)
    assert (f.format, f.client, f.errors) == ("deluge_fastresume", "Deluge", [])
    got = {t.info_hash: counters(t)["uploaded"][1] for t in f.torrents}
    assert got == {str(a.info_hashes().v1): 1, str(b.info_hashes().v1): 2}
    assert [t.entry_key for t in f.torrents] == sorted(blobs)
    assert f.version == lt.__version__


def test_deluge_entry_that_is_not_resume_data_is_one_error(tmp_path):
    a = torrent_info()
    path = tmp_path / "torrents.fastresume"
    path.write_bytes(encode({str(a.info_hashes().v1): resume_blob(a), "0" * 40: b"i1e", "1" * 40: b"not bencode"}))
    f = one(path)
    assert len(f.torrents) == 1
    assert len(f.errors) == 2 and all(e.startswith("entry ") for e in f.errors)


TRANSMISSION_4 = {
    "activity-date": 1_700_000_900, "added-date": 1_700_000_000, "corrupt": 32768, "done-date": 1_700_000_500,
    "destination": b"/srv/dl", "downloaded": 1_000_000, "downloading-time-seconds": 500, "name": b"debian.iso",
    "seeding-time-seconds": 400, "uploaded": 2_000_000, "paused": 0, "peers2": b"\x00" * 48, "labels": [b"linux"],
    "progress": {"blocks": bytes([0b11110000, 0b00001111]), "mtimes": [0], "pieces": b"none"},
}


def test_transmission_4_resume(tmp_path):
    ih = "ab" * 20
    path = tmp_path / "resume" / f"{ih}.resume"
    path.parent.mkdir()
    path.write_bytes(encode(TRANSMISSION_4))
    f = one(path)
    assert (f.format, f.client, f.errors) == ("transmission_resume", "Transmission", [])
    [t] = f.torrents
    assert (t.info_hash, t.hash_source) == (ih, "file name (Transmission 3.00 and later)")
    assert counters(t) == {"uploaded": ("uploaded", 2_000_000, "bytes"),
                           "downloaded": ("downloaded", 1_000_000, "bytes"),
                           "corrupt": ("corrupt", 32768, "bytes"),
                           "seeding": ("seeding-time-seconds", 400, "seconds"),
                           "downloading": ("downloading-time-seconds", 500, "seconds")}
    assert times(t) == {"added": ("added-date", 1_700_000_000), "completed": ("done-date", 1_700_000_500),
                        "last_activity": ("activity-date", 1_700_000_900)}
    assert (t.name, t.save_path, t.download_counts) == ("debian.iso", "/srv/dl", PAYLOAD_NET)
    assert t.client_fields["labels"] == ["linux"] and "not decoded" in t.client_fields["peers2"]
    # 16 blocks of 16 KiB: blocks 0-3 and 12-15 held; 32 KiB pieces -> pieces 0, 1, 6, 7 of 8
    assert t.have.unit == "block" and t.have.pieces(None) is None
    assert np.flatnonzero(t.have.pieces(8, 32768, 16 * 16384)).tolist() == [0, 1, 6, 7]


def test_transmission_2_name_gives_a_prefix_and_snake_case_keys_are_read(tmp_path):
    d = {k.replace("-", "_") if k not in ("seeding-time-seconds",) else k: v for k, v in TRANSMISSION_4.items()}
    d["progress"] = {"blocks": b"all", "have": b"all", "time-checked": [1]}
    path = tmp_path / "debian.iso.0123456789abcdef.resume"
    path.write_bytes(encode(d))
    [t] = one(path).torrents
    assert t.info_hash_prefix == "0123456789abcdef" and t.info_hash == "0123456789abcdef"
    assert times(t)["added"] == ("added_date", 1_700_000_000)
    assert counters(t)["downloading"] == ("downloading_time_seconds", 500, "seconds")
    assert t.have.form == "all" and t.have.pieces(5, 32768, 150_000).all()


@pytest.mark.parametrize("progress, held", [({"blocks": b"none"}, []), ({"have": b"all"}, [0, 1]),
                                            ({"bitfield": bytes([0xC0])}, [0])])
def test_transmission_have_forms(tmp_path, progress, held):
    d = dict(TRANSMISSION_4, progress=progress)
    path = tmp_path / f"{'cd' * 20}.resume"
    path.write_bytes(encode(d))
    [t] = one(path).torrents
    assert np.flatnonzero(t.have.pieces(2, 32768, 40_000)).tolist() == held


def test_rtorrent_session_and_resume_files(tmp_path):
    ih = "AB" * 20
    (tmp_path / f"{ih}.torrent.rtorrent").write_bytes(encode({
        "total_uploaded": 5_000_000, "total_downloaded": 1_000_000, "timestamp.started": 1_700_000_000,
        "timestamp.finished": 1_700_000_300, "state_changed": 1_700_000_800, "state": 1, "complete": 1,
        "chunks_done": 8, "chunks_wanted": 0, "directory": b"/srv/rt", "custom": {"addtime": b"1699999999"}}))
    (tmp_path / f"{ih}.torrent.libtorrent_resume").write_bytes(encode({
        "bitfield": bytes([0b10100000]), "files": [{"mtime": 1, "completed": 2, "priority": 1}],
        "peers": [{"inet": bytes([10, 0, 0, 7, 0x1A, 0xE1]), "failed": 0, "last": 1_700_000_000}]}))
    s = read_client_state([tmp_path])
    session, resume = sorted(s.files, key=lambda f: f.format)[::-1]
    assert (session.format, resume.format) == ("rtorrent_session", "rtorrent_libtorrent_resume")
    [t] = session.torrents
    assert t.info_hash == ih.lower() and t.client == "rtorrent"
    assert counters(t) == {"uploaded": ("total_uploaded", 5_000_000, "bytes"),
                           "downloaded": ("total_downloaded", 1_000_000, "bytes")}
    assert times(t) == {"started": ("timestamp.started", 1_700_000_000),
                        "completed": ("timestamp.finished", 1_700_000_300),
                        "state_changed": ("state_changed", 1_700_000_800)}
    assert t.client_fields["custom/addtime"] == "1699999999" and t.save_path == "/srv/rt"
    [r] = resume.torrents
    assert r.counters == [] and np.flatnonzero(r.have.pieces(3)).tolist() == [0, 2]
    assert r.peers == ["10.0.0.7:6881"]


def test_rtorrent_uniform_bitfield_is_a_count(tmp_path):
    path = tmp_path / f"{'CD' * 20}.torrent.libtorrent_resume"
    path.write_bytes(encode({"bitfield": 12, "files": []}))
    [t] = one(path).torrents
    assert t.have.form == "count" and t.have.pieces(None).sum() == 12 and t.have.pieces(12).all()
    assert t.have.pieces(13) is None


def test_rtorrent_older_session_torrent_with_embedded_sections(tmp_path):
    info = {"name": b"x", "piece length": 16384, "pieces": b"\x01" * 60, "length": 40_000}
    path = tmp_path / f"{'EF' * 20}.torrent"
    path.write_bytes(encode({"info": info, "rtorrent": {"total_uploaded": 7, "total_downloaded": 9,
                                                        "timestamp.started": 1_700_000_000, "state": 0},
                             "libtorrent_resume": {"bitfield": 3, "files": []}}))
    s = read_client_state([tmp_path])
    [f] = s.files
    [t] = f.torrents
    assert f.format == "rtorrent_session" and t.name == "x" and t.num_pieces == 3
    assert counters(t)["uploaded"][1] == 7 and t.have.pieces(t.num_pieces).all()


def utorrent_entry(info: bytes, **kw) -> dict:
    e = {"info": info, "caption": b"Some.Film", "path": b"C:\\Users\\x\\Downloads\\Some.Film",
         "uploaded": 3_000_000, "downloaded": 1_500_000, "corrupt": 0, "waste": 16384, "hashfails": 0,
         "added_on": 1_600_000_000, "completed_on": 1_600_000_600, "time": 1_600_009_000, "seedtime": 3600,
         "runtime": 4000, "have": bytes([0b00000101]),            # pieces 0 and 2 (least significant bit first)
         "peers6": bytes(10) + b"\xff\xff" + bytes([192, 168, 1, 5]) + (51413).to_bytes(2, "big"),
         "label": b"films", "started": 2, "order": -1}
    e.update(kw)
    return e


def test_utorrent_resume_dat_built_to_the_documented_format(tmp_path):
    path = tmp_path / "resume.dat"
    path.write_bytes(encode({".fileguard": b"0123456789ABCDEF0123456789ABCDEF01234567",
                             "rec": {"x": 1},
                             "Some.Film.torrent": utorrent_entry(b"\x11" * 20),
                             "Other.torrent": utorrent_entry(b"\x22" * 20, caption=b"", have=b"\x00"),
                             "Broken.torrent": b"not a dictionary"}))
    f = one(path)
    assert (f.format, f.client) == ("utorrent_resume_dat", "µTorrent/BitTorrent")
    assert f.errors == ["entry 'Broken.torrent': not a dictionary"]
    other, film = f.torrents
    assert (film.info_hash, film.name, film.entry_key) == ("11" * 20, "Some.Film", "Some.Film.torrent")
    assert other.name == "Other.torrent"
    assert counters(film) == {"uploaded": ("uploaded", 3_000_000, "bytes"),
                              "downloaded": ("downloaded", 1_500_000, "bytes"),
                              "corrupt": ("corrupt", 0, "bytes"), "wasted": ("waste", 16384, "bytes"),
                              "hashfails": ("hashfails", 0, "pieces"), "seeding": ("seedtime", 3600, "seconds"),
                              "active": ("runtime", 4000, "seconds")}
    assert times(film) == {"added": ("added_on", 1_600_000_000), "completed": ("completed_on", 1_600_000_600),
                           "written": ("time", 1_600_009_000)}
    assert np.flatnonzero(film.have.pieces(4)).tolist() == [0, 2]
    assert film.peers == ["192.168.1.5:51413"] and film.download_counts == PAYLOAD_UNDOCUMENTED
    assert film.client_fields["label"] == "films"


def test_damaged_unknown_and_unreadable_files_each_get_one_line_and_reading_goes_on(tmp_path):
    good = tmp_path / f"{'ab' * 20}.resume"
    good.write_bytes(encode(TRANSMISSION_4))
    (tmp_path / "truncated.resume").write_bytes(encode(TRANSMISSION_4)[:-7])
    (tmp_path / "list.resume").write_bytes(b"li1ei2ee")
    (tmp_path / "other.resume").write_bytes(encode({"hello": 1, "world": b"x"}))
    (tmp_path / "deep.fastresume").write_bytes(b"l" * 100_000 + b"e" * 100_000)
    (tmp_path / "notes.txt").write_text("not a state file")
    s = read_client_state([tmp_path, tmp_path / "missing.resume"])
    by_name = {f.path.rsplit("/", 1)[-1]: f for f in s.files}
    assert set(by_name) == {good.name, "truncated.resume", "list.resume", "other.resume", "deep.fastresume",
                            "missing.resume"}
    assert by_name[good.name].errors == [] and by_name[good.name].torrents
    n = len(encode(TRANSMISSION_4)) - 7
    assert by_name["truncated.resume"].errors == [f"damaged or not bencoded: truncated at byte {n - 2}"]
    assert by_name["list.resume"].errors[0].startswith("bencoded, but a list")
    assert by_name["other.resume"].errors[0].startswith("unknown format") and "hello" in \
        by_name["other.resume"].errors[0]
    assert by_name["deep.fastresume"].errors == ["damaged or not bencoded: depth_exceeded at byte 64"]
    assert by_name["missing.resume"].errors[0].startswith("cannot read") and by_name["missing.resume"].sha256 is None
    for f in s.files:
        assert len(f.errors) <= 1
    assert any("1 files not named like client state files" in n for n in s.notes)


def test_size_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(reader, "MAX_FILE_BYTES", 100)
    path = tmp_path / f"{'ab' * 20}.resume"
    path.write_bytes(encode(TRANSMISSION_4))
    f = one(path)
    assert f.torrents == [] and "cap" in f.errors[0] and f.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_deluge_pickle_and_qbittorrent_database_are_named_not_read(tmp_path):
    (tmp_path / "torrents.state").write_bytes(b"\x80\x04 pickle")
    (tmp_path / "torrents.db").write_bytes(b"SQLite format 3\x00")
    s = read_client_state([tmp_path])
    assert s.files == [] and any("torrents.state" in n and "pickle" in n for n in s.notes)
    assert any("torrents.db" in n and "SQLite" in n for n in s.notes)


def test_files_are_in_path_order_whatever_the_order_given(tmp_path):
    for name in ("b.resume", "a.resume"):
        (tmp_path / name).write_bytes(encode(TRANSMISSION_4))
    a = read_client_state([tmp_path / "b.resume", tmp_path / "a.resume"])
    b = read_client_state([tmp_path])
    assert [f.path for f in a.files] == [f.path for f in b.files] == sorted(f.path for f in b.files)
    assert [e["sha256"] for e in a.manifest_entries()] == [f.sha256 for f in a.files]


def test_a_file_given_twice_is_read_once_and_plain_torrents_in_a_folder_are_counted(tmp_path):
    path = tmp_path / f"{'ab' * 20}.resume"
    path.write_bytes(encode(TRANSMISSION_4))
    (tmp_path / f"{'cd' * 20}.torrent").write_bytes(torrent_file())
    s = read_client_state([path, tmp_path])
    assert [f.path for f in s.files] == [str(path)]
    assert any(n.startswith("1 <info hash>.torrent files hold torrent metadata only") for n in s.notes)


def test_multi_torrent_files_are_capped(tmp_path, monkeypatch):
    from analyzer.evidence.clientstate import utorrent
    monkeypatch.setattr(utorrent, "MAX_RECORDS", 2)
    path = tmp_path / "resume.dat"
    path.write_bytes(encode({f"{i}.torrent": utorrent_entry(bytes([i]) * 20) for i in range(5)}))
    f = one(path)
    assert len(f.torrents) == 2 and f.errors == ["3 entries beyond the cap of 2 not read"]


def test_stored_text_is_capped_and_decoded():
    from analyzer.evidence.clientstate.model import text
    assert text("é".encode() * 10, 5) == "ééééé"
    assert text(b"\xe9t\xe9") == "été"                     # not UTF-8: latin-1, never an error
    assert text(b"a" * 10 + "é".encode(), 11) == "a" * 10 + "é"
    assert text(b"a" * 43 + "é".encode(), 11) == "a" * 11   # cut inside a character at the cap


def test_resume_data_libtorrent_rejects_is_one_error(tmp_path):
    d = decode(resume_blob())
    d[b"info-hash"] = b"\x01" * 20                          # does not match the info dictionary it carries
    path = tmp_path / "x.resume"
    path.write_bytes(encode(d))
    f = one(path)
    assert f.format == "libtorrent_resume" and f.torrents == []
    assert f.errors == ["libtorrent could not read the resume data: mismatching info-hash [libtorrent:30]"]


def test_resume_data_with_zero_hash_fields_takes_them_from_its_metadata(tmp_path):
    ti = torrent_info()
    d = decode(resume_blob(ti))
    d[b"info-hash"] = b"\x00" * 20                          # libtorrent: no hash given (it needs the key)
    path = tmp_path / "x.resume"
    path.write_bytes(encode(d))
    [t] = one(path).torrents
    assert t.info_hash == str(ti.info_hashes().v1) and t.hash_source == "info (the metadata in the file)"
    del d[b"info-hash"], d[b"info-hash2"]
    path.write_bytes(encode(d))
    assert one(path).errors == ["libtorrent could not read the resume data: missing info-hash [libtorrent:29]"]
