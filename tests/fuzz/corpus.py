"""The committed seed corpus: ``tests/fuzz/corpus/<target>/<name>``.

Every crafted hostile input of issue 12 is here (``hostile.py``), in the form
its target takes, next to small well-formed seeds that give the fuzzer the
formats' structure.  ``python -m fuzz.corpus`` (from ``tests/``) rewrites the
folder; ``test_fuzz_corpus.py`` checks that it is up to date.
"""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

from fuzz import hostile as H

CORPUS = Path(__file__).resolve().parent / "corpus"


def _ops(*items) -> bytes:
    """The op grammar of targets._ops: bytes -> data op, int -> gap, None -> break."""
    out = b""
    for x in items:
        if x is None:
            out += b"\x02\x00\x00"
        elif isinstance(x, int):
            out += b"\x01" + struct.pack(">H", x)
        else:
            out += b"\x00" + struct.pack(">H", len(x)) + x
    return out


def _frames_pcap_records(pcap: bytes) -> list[bytes]:
    out, pos = [], 24
    while pos + 16 <= len(pcap):
        n = struct.unpack_from("<I", pcap, pos + 8)[0]
        out.append(pcap[pos + 16:pos + 16 + n])
        pos += 16 + n
    return out


def capture_seeds() -> dict:
    content = bytes(i % 251 for i in range(2 * 1024))
    torrent, ih = H.carve_torrent(H.deep_paths(), content, plen=1024)
    many = H.pcapng_many_interfaces(65_600, ids=(0, 65_534, 65_535, 65_599))
    return {
        "tsresol-dec19.pcapng": H.pcapng_tsresol(19),
        "tsresol-dec73-sigfpe.pcapng": H.pcapng_tsresol(73),
        "tsresol-dec127.pcapng": H.pcapng_tsresol(127),
        "tsresol-bin64.pcapng": H.pcapng_tsresol(0x80 | 64),
        "tsresol-dec0-overflow.pcapng": H.pcapng_tsresol(0),
        "idb-empty-body.pcapng": H.pcapng_short_idb(0),
        "idb-4-byte-body.pcapng": H.pcapng_short_idb(4),
        "interfaces-65600.pcapng.gz": gzip.compress(many, 9, mtime=0),
        "odd-timestamps.pcap": H.pcap_odd_timestamps(),
        "http-query-5000-digits.pcap": H.http_tracker_pcap("query"),
        "http-status-5000-digits.pcap": H.http_tracker_pcap("status"),
        "http-content-length-5000-digits.pcap": H.http_tracker_pcap("length"),
        "carve-deep-names-connection.pcap": H.carve_pcap(ih, content, plen=1024),
    }


def build() -> dict[str, dict[str, bytes]]:
    hs = H.bt_handshake()
    msg = H.bt_message
    piece = msg(7, struct.pack(">II", 1, 0) + b"P" * 64)
    tracker_pcap = H.http_tracker_pcap("none")
    out = {
        "capture": capture_seeds(),
        "bencode": {
            "dict.bin": H.bencode({b"a": 1, b"b": [b"x", -5, {b"c": b""}]}),
            "deep-64.bin": b"l" * 64 + b"e" * 64,
            "deep-65.bin": b"l" * 65 + b"e" * 65,
            "big-int.bin": b"i" + b"9" * 64 + b"e",
            "int-too-long.bin": b"i" + b"9" * 5000 + b"e",
            "string-length-5000-digits.bin": H.HUGE + b":x",
            "torrent-deep-names.bin": H.carve_torrent(H.deep_paths(), b"x" * 100)[0],
        },
        "krpc": {
            "ping.bin": b"d1:ad2:id20:" + bytes(20) + b"e1:q4:ping1:t2:aa1:y1:qe",
            "get_peers.bin": b"d1:ad2:id20:" + bytes(20) + b"9:info_hash20:" + H.INFO_HASH + b"e1:q9:get_peers1:t2:aa1:y1:qe",
            "response.bin": b"d1:rd2:id20:" + bytes(20) + b"5:nodes26:" + bytes(26) + b"6:valuesl6:" + bytes(6) + b"ee1:t2:aa1:y1:re",
            "error.bin": b"d1:eli201e5:Errore1:t2:aa1:y1:ee",
            "port-5000-digits.bin": b"d1:ad2:id20:" + bytes(20) + b"4:porti" + H.HUGE + b"ee1:q13:announce_peer1:t2:aa1:y1:qe",
        },
        "http_tracker": {
            "request-uploaded-5000-digits.http": H.http_request("uploaded", H.HUGE),
            "request-port-5000-digits.http": H.http_request("port", H.HUGE),
            "response-status-5000-digits.http": H.http_response(status=H.HUGE),
            "response-content-length-5000-digits.http": H.http_response(length=H.HUGE),
            "response-chunk-size-5000-digits.http":
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"f" * 5000 + b"\r\nd8:intervali60ee",
            "request.http": H.http_request("port", b"6881"),
            "response.http": H.http_response(),
        },
        "udp_tracker": {
            "connect.bin": struct.pack(">QII", 0x41727101980, 0, 7),
            "announce.bin": struct.pack(">QII", 1, 1, 7) + H.INFO_HASH + bytes(20) + struct.pack(">QQQIIIiH", 0, 0, 0, 2, 0, 1, -1, 6881),
            "scrape.bin": struct.pack(">QII", 1, 2, 7) + H.INFO_HASH * 3,
            "announce-response.bin": struct.pack(">IIIII", 1, 7, 1800, 1, 2) + bytes(6) * 3,
            "error.bin": struct.pack(">II", 3, 7) + b"\xff\xfenot utf-8",
        },
        "mse": {
            "flights.bin": struct.pack(">HH", 96, 608) + bytes(range(256)) * 2,
            "text.bin": struct.pack(">HH", 200, 200) + b"GET / HTTP/1.1\r\n" * 20,
        },
        "fragments": {
            "v4-reverse.bin": b"".join(bytes([1 if k < 63 else 0]) + struct.pack(">H", k) + b"\x08\x07" + b"f" * 8
                                       for k in [0, 63, *range(62, 0, -1)]),
            "v6-overlap.bin": b"".join(bytes([3]) + struct.pack(">H", k) + b"\x10\x05" + bytes([k]) * 16
                                       for k in (0, 1, 3, 2)) + b"\x02" + struct.pack(">H", 4) + b"\x08\x05" + b"e" * 8,
            "past-65535.bin": b"\x01\x00\x00\x08\x01" + b"a" * 8 + b"\x00\x1f\xff\x08\x01" + b"b" * 8,
        },
        "peerwire": {
            "session.bin": b"\x00" + hs + msg(20, b"\x00d1:md11:ut_metadatai3eee") + msg(5, b"\xff\xf0") +
                           msg(2) + msg(6, struct.pack(">III", 1, 0, 64)) + piece + msg(4, struct.pack(">I", 1)),
            "bitfield-claims-100MB.bin": b"\x00" + hs + struct.pack(">IB", 100 << 20, 5) + b"\xff" * 200,
            "bitfield-claims-100MB-ops.bin": b"\x08" + _ops(hs + struct.pack(">IB", 100 << 20, 5) + b"\xff" * 50,
                                                             16000, b"\xff" * 10, None, piece),
            "piece-over-max-block-16.bin": b"\x00" + hs + msg(7, bytes(8) + b"B" * 17) + msg(1),
            "midstream-gaps.bin": b"\x09" + _ops(b"B" * 40 + piece, 100, piece[:20], 30, piece),
            "mse-then-plaintext.bin": b"\x00" + bytes(range(256)) * 2 + hs + msg(1),
        },
        "tcp": {
            "reverse.bin": b"".join(b"\x10" + struct.pack(">HH", 10 * i, 0) + b"\x0a" + b"%010d" % i
                                    for i in range(40, -1, -1)),
            "overlaps-acks.bin": b"".join(bytes([0x30]) + struct.pack(">HH", o, o + 5) + bytes([n]) + bytes([o & 255]) * n
                                          for o, n in ((20, 10), (10, 30), (0, 5), (5, 50), (100, 3))),
            "peerwire.bin": b"".join(b"\x10" + struct.pack(">HH", i * 40, 0) + b"\x28" + (hs + piece)[i * 40:i * 40 + 40]
                                     for i in (2, 0, 1, 3)),
        },
        "utp": {
            "holes.bin": b"".join(b"\x00" + struct.pack(">HH", 2 * i + 1, 0) + b"\x04utp!" for i in range(30)),
            "acks-sack.bin": b"".join(bytes([0xC0]) + struct.pack(">HH", i, i - 2 & 0xFFFF) + b"\x08" + b"\xff" * 8
                                      for i in (3, 1, 2, 0, 5)),
            "wrap.bin": b"".join(b"\x00" + struct.pack(">HH", s & 0xFFFF, 0) + b"\x02ab" for s in range(65530, 65542)),
        },
        "engine": {
            "http-tracker-frames.bin": b"".join(b"\x00" + struct.pack(">H", len(f)) + f
                                                for f in _frames_pcap_records(tracker_pcap)),
            "ethernet-vlan-garbage.bin": b"\x00\x00\x40" + bytes.fromhex("0200000000020200000000018100000a0800") +
                                         bytes(46),
            "syn-flood-300.bin": b"".join(b"\x00" + struct.pack(">H", len(f)) + f for f in H.syn_flood_frames(300)),
        },
    }
    return out


def write(root: Path = CORPUS) -> None:
    built = build()
    for target, seeds in built.items():
        d = root / target
        d.mkdir(parents=True, exist_ok=True)
        for old in d.iterdir():
            if old.name not in seeds:
                old.unlink()
        for name, data in seeds.items():
            (d / name).write_bytes(data)


if __name__ == "__main__":
    write()
    print(f"wrote {sum(len(v) for v in build().values())} seeds to {CORPUS}")
