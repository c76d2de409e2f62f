"""Have-bitfields to pieces, and hostile state files: any bytes give records or error lines, never an exception."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.evidence.clientstate import reader
from analyzer.evidence.clientstate.model import Have
from analyzer.protocols.bencode import encode

from test_clientstate_formats import TRANSMISSION_4, resume_blob, utorrent_entry


def held(h: Have, *args) -> list[int]:
    return np.flatnonzero(h.pieces(*args)).tolist()


def test_bit_orders():
    assert held(Have("piece", "bitfield", "k", bits=bytes([0b10000001])), 8) == [0, 7]
    assert held(Have("piece", "bitfield", "k", bits=bytes([0b00000110]), order="lsb"), 8) == [1, 2]


def test_short_bitfield_means_not_held_and_long_one_is_cut_to_the_piece_count():
    assert held(Have("piece", "bitfield", "k", bits=b"\xff"), 10) == list(range(8))
    assert held(Have("piece", "bitfield", "k", bits=b"\xff\xff"), 3) == [0, 1, 2]
    assert len(Have("piece", "bitfield", "k", bits=b"\xff\xff").pieces(None)) == 16


def test_blocks_to_pieces_with_a_short_last_piece():
    # 5 blocks (70,000 bytes): 32 KiB pieces = blocks {0,1}, {2,3}, {4}; blocks 0, 1, 4 held
    h = Have("block", "bitfield", "progress/blocks", bits=bytes([0b11001000]))
    assert held(h, 3, 32768, 70_000) == [0, 2]


def test_blocks_of_pieces_smaller_than_16k_follow_the_piece_size():
    # Transmission 3.x: 8 KiB pieces -> 8 KiB blocks, one block a piece
    h = Have("block", "bitfield", "progress/blocks", bits=bytes([0b01100000]))
    assert held(h, 4, 8192, 30_000) == [1, 2]


def test_uniform_forms():
    assert held(Have("block", "all", "b"), 3, 32768, 70_000) == [0, 1, 2]
    assert held(Have("block", "none", "b"), 3, None, None) == []
    assert Have("piece", "all", "p").pieces(None) is None and Have("piece", "all", "p").stored_count() is None
    assert Have("piece", "none", "p").stored_count() == 0


VALID = [encode(TRANSMISSION_4), resume_blob(), encode({"resume.dat.torrent": utorrent_entry(b"\x11" * 20)}),
         encode({"total_uploaded": 1, "state": 1, "timestamp.started": 5}),
         encode({"bitfield": b"\xf0", "files": [], "peers": [{"inet": b"123456", "failed": 0, "last": 1}]})]
NAMES = ["x.resume", "y.fastresume", "resume.dat", f"{'AB' * 20}.torrent.rtorrent",
         f"{'AB' * 20}.torrent.libtorrent_resume", "torrents.fastresume"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.integers(0, len(VALID) - 1), name=st.sampled_from(NAMES),
       cut=st.integers(0, 4000), flips=st.lists(st.tuples(st.integers(0, 4000), st.integers(1, 255)), max_size=4))
def test_damaged_files_never_raise(tmp_path, which, name, cut, flips):
    data = bytearray(VALID[which])
    for pos, x in flips:
        if data:
            data[pos % len(data)] ^= x
    data = bytes(data[:cut]) if cut < len(data) else bytes(data)
    path = tmp_path / name
    path.write_bytes(data)
    f = reader.read_file(path)
    assert f.sha256 and (f.errors or f.torrents or f.format == "deluge_fastresume")
    for t in f.torrents:
        if t.have is not None:
            t.have.pieces(t.num_pieces or 8, 32768, 8 * 32768)


def test_a_path_or_name_that_is_not_utf8(tmp_path):
    """libtorrent's binding decodes string fields as UTF-8 and raises on other bytes (a damaged file,
    or a client that stored another encoding: found by the test above): the stored bytes are shown
    as every stored string is (UTF-8, else latin-1), and the rest of the record is read."""
    from analyzer.protocols.bencode import decode
    top = decode(resume_blob())
    top[b"save_path"] = b"/data/\xafbooks"
    top[b"name"] = b"caf\xe9"
    path = tmp_path / "x.resume"
    path.write_bytes(encode(top))
    f = reader.read_file(path)
    [t] = f.torrents
    assert t.save_path == "/data/\xafbooks" and t.name == "caf\xe9"
    assert {c.field: c.value for c in t.counters}["uploaded"] == 12_345
