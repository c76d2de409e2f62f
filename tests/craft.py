"""Crafting helpers for capture-layer and decoding tests.

* pcap / pcapng writers by hand (``struct``), so every variant the readers
  must accept can be produced exactly: either byte order, micro- or
  nanosecond pcap, pcapng sections with several interfaces of different link
  types and ``if_tsresol`` / ``if_tsoffset``, Simple and obsolete Packet
  Blocks, unknown block types;
* link-layer wrappers (Ethernet with VLAN tags, Linux SLL/SLL2, NULL, LOOP)
  around raw IP packets;
* IP/TCP/UDP packets built with scapy (only here, never in the analyzer), a
  TCP conversation generator that keeps sequence numbers right, a plaintext
  BitTorrent handshake, IPv4/IPv6 fragments (including hand-made overlaps);
* ``read_records``: every record of a file through ``CaptureReader``, copied
  out of the batches; ``tshark_frames`` / ``capinfos_count``: Wireshark's view;
* ``run_analysis`` / ``analyze_frames``: ``analyze()`` and check the accounting
  identity (every frame read in exactly one category; as many as written).

Timestamps are integer nanoseconds (``ts_ns``) everywhere.
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import shutil
import struct
import subprocess
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Iterable, Sequence

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6

NS = 1_000_000_000
BASE_TS_NS = 1_700_000_000 * NS + 123_456_789     # 2023-11-14T22:13:20.123456789Z

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW_12 = 12
LINKTYPE_RAW_14 = 14
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276


@dataclass
class Frame:
    """One record to write: capture time, captured bytes, original length."""

    ts_ns: int
    data: bytes
    origlen: int | None = None

    @property
    def wire_len(self) -> int:
        return len(self.data) if self.origlen is None else self.origlen


def as_frames(frames: Iterable) -> list[Frame]:
    """Accept Frame objects, (ts_ns, data[, origlen]) tuples or bare bytes (1 ms apart)."""
    out = []
    for i, f in enumerate(frames):
        if isinstance(f, Frame):
            out.append(f)
        elif isinstance(f, (bytes, bytearray)):
            out.append(Frame(BASE_TS_NS + i * 1_000_000, bytes(f)))
        else:
            out.append(Frame(*f))
    return out


# ---------------------------------------------------------------------- pcap
PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D


def pcap_header(linktype: int = LINKTYPE_ETHERNET, *, big_endian: bool = False, nano: bool = False,
                snaplen: int = 262144) -> bytes:
    e = ">" if big_endian else "<"
    return struct.pack(e + "IHHiIII", PCAP_MAGIC_NS if nano else PCAP_MAGIC_US, 2, 4, 0, 0, snaplen, linktype)


def pcap_record(frame: Frame, *, big_endian: bool = False, nano: bool = False,
                caplen: int | None = None) -> bytes:
    """A record header (sec, frac, caplen, origlen) and the data; ``caplen`` overrides
    the header field only (to forge damage)."""
    e = ">" if big_endian else "<"
    sec, rest = divmod(frame.ts_ns, NS)
    frac = rest if nano else rest // 1000
    cap = len(frame.data) if caplen is None else caplen
    return struct.pack(e + "IIII", sec, frac, cap, frame.wire_len) + frame.data


def pcap_bytes(frames: Iterable, linktype: int = LINKTYPE_ETHERNET, *, big_endian: bool = False,
               nano: bool = False, snaplen: int = 262144) -> bytes:
    parts = [pcap_header(linktype, big_endian=big_endian, nano=nano, snaplen=snaplen)]
    parts += [pcap_record(f, big_endian=big_endian, nano=nano) for f in as_frames(frames)]
    return b"".join(parts)


def write_pcap(path: Path, frames: Iterable, linktype: int = LINKTYPE_ETHERNET, **kw) -> Path:
    path = Path(path)
    path.write_bytes(pcap_bytes(frames, linktype, **kw))
    return path


def record_offsets(frames: Iterable) -> list[int]:
    """File offsets of the record headers of ``pcap_bytes(frames)``."""
    offsets, pos = [], 24
    for f in as_frames(frames):
        offsets.append(pos)
        pos += 16 + len(f.data)
    return offsets


# ---------------------------------------------------------------------- pcapng
BT_SHB = 0x0A0D0D0A
BT_IDB = 1
BT_PB = 2
BT_SPB = 3
BT_NRB = 4
BT_ISB = 5
BT_EPB = 6


def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def pcapng_option(code: int, value: bytes, *, big_endian: bool = False) -> bytes:
    e = ">" if big_endian else "<"
    return struct.pack(e + "HH", code, len(value)) + _pad4(value)


def pcapng_options(opts: Sequence[tuple[int, bytes]], *, big_endian: bool = False) -> bytes:
    if not opts:
        return b""
    return b"".join(pcapng_option(c, v, big_endian=big_endian) for c, v in opts) + b"\0\0\0\0"


def pcapng_block(btype: int, body: bytes, *, big_endian: bool = False) -> bytes:
    e = ">" if big_endian else "<"
    body = _pad4(body)
    n = 12 + len(body)
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def shb(*, big_endian: bool = False, options: Sequence[tuple[int, bytes]] = ()) -> bytes:
    e = ">" if big_endian else "<"
    body = struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1) + pcapng_options(options, big_endian=big_endian)
    return pcapng_block(BT_SHB, body, big_endian=big_endian)


def idb(linktype: int, *, snaplen: int = 0, tsresol: int | None = None, tsoffset: int | None = None,
        big_endian: bool = False) -> bytes:
    """Interface Description Block; ``tsresol`` is the raw if_tsresol byte
    (k for 10^-k, 0x80 | k for 2^-k), ``tsoffset`` in seconds."""
    e = ">" if big_endian else "<"
    opts = [(2, b"if%d" % linktype)]          # if_name, to have an option before the others
    if tsresol is not None:
        opts.append((9, bytes([tsresol])))
    if tsoffset is not None:
        opts.append((14, struct.pack(e + "q", tsoffset)))
    body = struct.pack(e + "HHI", linktype, 0, snaplen) + pcapng_options(opts, big_endian=big_endian)
    return pcapng_block(BT_IDB, body, big_endian=big_endian)


def epb(iface: int, ts_units: int, data: bytes, *, origlen: int | None = None, big_endian: bool = False,
        options: Sequence[tuple[int, bytes]] = ()) -> bytes:
    e = ">" if big_endian else "<"
    body = struct.pack(e + "IIIII", iface, ts_units >> 32, ts_units & 0xFFFFFFFF, len(data),
                       len(data) if origlen is None else origlen)
    body += _pad4(data) + pcapng_options(options, big_endian=big_endian)
    return pcapng_block(BT_EPB, body, big_endian=big_endian)


def obsolete_pb(iface: int, ts_units: int, data: bytes, *, big_endian: bool = False) -> bytes:
    e = ">" if big_endian else "<"
    body = struct.pack(e + "HHIIII", iface, 0, ts_units >> 32, ts_units & 0xFFFFFFFF, len(data), len(data))
    return pcapng_block(BT_PB, body + _pad4(data), big_endian=big_endian)


def spb(data: bytes, *, snaplen: int = 0, big_endian: bool = False) -> bytes:
    """Simple Packet Block: the packet cut to the interface's ``snaplen`` (as the
    format requires; the original length is the packet's)."""
    e = ">" if big_endian else "<"
    body = struct.pack(e + "I", len(data)) + _pad4(data[:snaplen] if snaplen else data)
    return pcapng_block(BT_SPB, body, big_endian=big_endian)


def isb(iface: int, ts_units: int, *, big_endian: bool = False) -> bytes:
    e = ">" if big_endian else "<"
    return pcapng_block(BT_ISB, struct.pack(e + "III", iface, ts_units >> 32, ts_units & 0xFFFFFFFF),
                        big_endian=big_endian)


def nrb(*, big_endian: bool = False) -> bytes:
    e = ">" if big_endian else "<"
    rec = struct.pack(e + "HH", 1, 13) + _pad4(b"\x0a\0\0\x01host.lan\0")   # nrb_record_ipv4
    return pcapng_block(BT_NRB, rec + struct.pack(e + "HH", 0, 0), big_endian=big_endian)


def dsb(*, big_endian: bool = False) -> bytes:
    """Decryption Secrets Block (a TLS key log line)."""
    e = ">" if big_endian else "<"
    secret = b"CLIENT_RANDOM 00 11\n"
    return pcapng_block(0x0A, struct.pack(e + "II", 0x544C534B, len(secret)) + _pad4(secret),
                        big_endian=big_endian)


def tsresol_units(ts_ns: int, tsresol: int | None = None, tsoffset: int = 0) -> int:
    """The pcapng timestamp (in if_tsresol units) of ``ts_ns``; exact when representable."""
    t = ts_ns - tsoffset * NS
    if tsresol is None:
        tsresol = 6
    k = tsresol & 0x7F
    if tsresol & 0x80:
        return (t << k) // NS
    return t * 10 ** k // NS


def units_to_ns(units: int, tsresol: int | None = None, tsoffset: int = 0) -> int:
    """Exact (floored) nanoseconds of a pcapng timestamp: what a reader must return."""
    if tsresol is None:
        tsresol = 6
    k = tsresol & 0x7F
    if tsresol & 0x80:
        ns = (units * NS) >> k
    else:
        ns = units * NS // 10 ** k
    return ns + tsoffset * NS


# ---------------------------------------------------------------------- compression
COMPRESSORS = {
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
}


def compress_file(src: Path, kind: str, dst: Path | None = None) -> Path:
    suffix = {"gzip": ".gz", "bzip2": ".bz2", "xz": ".xz"}[kind]
    dst = Path(dst or str(src) + suffix)
    dst.write_bytes(COMPRESSORS[kind](Path(src).read_bytes()))
    return dst


# ---------------------------------------------------------------------- link layers
MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def ethertype_of(ip: bytes) -> int:
    return 0x86DD if ip[0] >> 4 == 6 else 0x0800


def ethernet(ip: bytes, *, vlans: Sequence[tuple[int, int]] = (), ethertype: int | None = None,
             pad_to: int = 0) -> bytes:
    """Ethernet II; ``vlans`` = [(tpid, vid), ...] outermost first; ``pad_to`` pads the frame
    (without FCS) to that many bytes, as a NIC does up to 60."""
    hdr = MAC_B + MAC_A
    for tpid, vid in vlans:
        hdr += struct.pack(">H", tpid)
        hdr += struct.pack(">H", vid)
    et = ethertype_of(ip) if ethertype is None else ethertype
    frame = hdr + struct.pack(">H", et) + ip
    if len(frame) < pad_to:
        frame += b"\xee" * (pad_to - len(frame))   # non-zero padding: visible if miscounted
    return frame


def linux_sll(ip: bytes, *, protocol: int | None = None) -> bytes:
    proto = ethertype_of(ip) if protocol is None else protocol
    return struct.pack(">HHH8sH", 0, 1, 6, MAC_A + b"\0\0", proto) + ip


def linux_sll2(ip: bytes, *, protocol: int | None = None) -> bytes:
    proto = ethertype_of(ip) if protocol is None else protocol
    return struct.pack(">HHIHBB8s", proto, 0, 2, 1, 0, 6, MAC_A + b"\0\0") + ip


def null_link(ip: bytes, *, family: int | None = None, big_endian: bool = False) -> bytes:
    """DLT_NULL: the address family in the capturing host's byte order."""
    fam = (10 if ip[0] >> 4 == 6 else 2) if family is None else family
    return struct.pack(">I" if big_endian else "<I", fam) + ip


def loop_link(ip: bytes, *, family: int | None = None) -> bytes:
    """DLT_LOOP: the address family in network byte order."""
    fam = (24 if ip[0] >> 4 == 6 else 2) if family is None else family
    return struct.pack(">I", fam) + ip


# ---------------------------------------------------------------------- IP / TCP / UDP
V4_CLIENT, V4_SERVER = "10.0.0.1", "10.0.0.2"
V6_CLIENT, V6_SERVER = "fd00::1", "fd00::2"


def ip_layer(src: str, dst: str, **kw):
    return IPv6(src=src, dst=dst, **kw) if ":" in src else IP(src=src, dst=dst, **kw)


def udp_packet(src: str = V4_CLIENT, dst: str = V4_SERVER, sport: int = 6881, dport: int = 6881,
               payload: bytes = b"\x7fnot BitTorrent, not DHT") -> bytes:
    return bytes(ip_layer(src, dst) / UDP(sport=sport, dport=dport) / payload)


def bt_handshake(info_hash: bytes = bytes(range(20)), peer_id: bytes = b"-TT0001-abcdefghijkl") -> bytes:
    return b"\x13BitTorrent protocol" + bytes(8) + info_hash + peer_id


INFO_HASH = bytes(range(20))
BT_MESSAGES = bytes.fromhex("00000001" "02")   # interested


def tcp_conversation(client: str = V4_CLIENT, server: str = V4_SERVER, cport: int = 50000,
                     sport: int = 6881, payloads: Sequence[tuple[int, bytes]] | None = None,
                     handshake: bool = True, close: bool = True, ip_kw: dict | None = None) -> list[bytes]:
    """Raw IP packets of one TCP connection: SYN, SYN-ACK, ACK, then each
    (direction, payload) -- direction 0 client->server, 1 server->client --
    each acknowledged by the other side, then FIN/ACK both ways.  The
    default payloads are BitTorrent handshakes both ways and one message."""
    if payloads is None:
        payloads = [(0, bt_handshake(INFO_HASH, b"-CL0001-clientclient")),
                    (1, bt_handshake(INFO_HASH, b"-SV0001-serverserver")), (0, BT_MESSAGES)]
    ip_kw = ip_kw or {}
    ends = [(client, cport), (server, sport)]
    seq = [1000, 500000]

    def seg(d: int, flags: str, payload: bytes = b"") -> bytes:
        (sa, sp), (da, dp) = ends[d], ends[1 - d]
        ack = seq[1 - d] if "A" in flags else 0
        p = ip_layer(sa, da, **ip_kw) / TCP(sport=sp, dport=dp, seq=seq[d], ack=ack, flags=flags, window=65535)
        if payload:
            p = p / payload
        seq[d] = (seq[d] + len(payload) + ("S" in flags) + ("F" in flags)) & 0xFFFFFFFF
        return bytes(p)

    out = []
    if handshake:
        out += [seg(0, "S"), seg(1, "SA"), seg(0, "A")]
    for d, payload in payloads:
        out.append(seg(d, "PA", payload))
        out.append(seg(1 - d, "A"))
    if close:
        out += [seg(0, "FA"), seg(1, "FA"), seg(0, "A")]
    return out


def v4_fragment(offset: int, data: bytes, more: bool, *, ident: int = 0x1234, proto: int = 17,
                src: str = V4_CLIENT, dst: str = V4_SERVER) -> bytes:
    """One IPv4 fragment carrying ``data`` at byte ``offset`` (a multiple of 8) of the datagram's payload."""
    return bytes(IP(src=src, dst=dst, id=ident, proto=proto, frag=offset // 8, flags="MF" if more else 0) / data)


def v6_fragment(offset: int, data: bytes, more: bool, *, ident: int = 0x1234, nh: int = 17,
                src: str = V6_CLIENT, dst: str = V6_SERVER) -> bytes:
    """One IPv6 fragment (fragment header right after the fixed header)."""
    fh = struct.pack(">BBHI", nh, 0, offset | int(more), ident)
    return bytes(IPv6(src=src, dst=dst, nh=44, plen=8 + len(data))) + fh + data


def fragment_packet(ip: bytes, size: int, ident: int = 0x4242) -> list[bytes]:
    """Split a whole IPv4/IPv6 packet into fragments of ``size`` payload bytes (a multiple of 8)."""
    if ip[0] >> 4 == 4:
        hl = (ip[0] & 15) * 4
        proto, payload = ip[9], ip[hl:]
        src, dst = IP(ip).src, IP(ip).dst
        return [v4_fragment(o, payload[o:o + size], o + size < len(payload), ident=ident, proto=proto,
                            src=src, dst=dst) for o in range(0, len(payload), size)]
    p = IPv6(ip)
    payload, nh = ip[40:], ip[6]
    return [v6_fragment(o, payload[o:o + size], o + size < len(payload), ident=ident, nh=nh, src=p.src, dst=p.dst)
            for o in range(0, len(payload), size)]


def timed(packets: Iterable[bytes], start_ns: int = BASE_TS_NS, step_ns: int = 1_000_000) -> list[Frame]:
    return [Frame(start_ns + i * step_ns, p) for i, p in enumerate(packets)]


# ---------------------------------------------------------------------- reading
@dataclass(frozen=True)
class Rec:
    """One record as the reader delivered it (copied out of the batch)."""

    frame_no: int
    ts_ns: int
    iface: int
    linktype: int
    data: bytes
    origlen: int


def read_records(path: Path):
    """Every record of a file through ``CaptureReader``; returns (records, report, batch sizes)."""
    from analyzer.capture.reader import CaptureReader

    reader = CaptureReader(path)
    recs, sizes = [], []
    for b in reader.batches():
        sizes.append((b.first_frame_no, b.n))
        for i in range(b.n):
            off, cap = int(b.rec_off[i]), int(b.caplen[i])
            iface = int(b.iface[i])
            recs.append(Rec(b.first_frame_no + i, int(b.ts_ns[i]), iface, int(b.if_linktype[iface]),
                            bytes(b.buf[off:off + cap]), int(b.origlen[i])))
    return recs, reader.report, sizes


def require_tool(name: str) -> str:
    exe = shutil.which(name)
    assert exe, f"{name} not found: it is a system dependency of the tests (make system-deps)"
    return exe


def tshark(capture: Path, display_filter: str, *fields: str) -> list[list[str]]:
    """The ``fields`` of every frame of ``capture`` matching ``display_filter``, as Wireshark decodes them."""
    argv = [require_tool("tshark"), "-r", str(capture), "-Y", display_filter, "-T", "fields"]
    for f in fields:
        argv += ["-e", f]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def tshark_frames(path: Path) -> list[tuple[int, int | None, int, int]]:
    """(frame number, ts_ns or None, caplen, origlen) of every frame, as Wireshark reads the file."""
    out = subprocess.run([require_tool("tshark"), "-n", "-r", str(path), "-T", "fields", "-E", "separator=/t",
                          "-e", "frame.number", "-e", "frame.time_epoch", "-e", "frame.cap_len",
                          "-e", "frame.len"], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        no, ts, cap, orig = line.split("\t")
        rows.append((int(no), int(Decimal(ts) * NS) if ts else None, int(cap), int(orig)))
    return rows


def capinfos_count(path: Path) -> int:
    out = subprocess.run([require_tool("capinfos"), "-M", "-c", str(path)], capture_output=True, text=True,
                         check=True).stdout
    return int(out.strip().splitlines()[-1].split(":")[-1])


# ---------------------------------------------------------------------- analysis
def run_analysis(paths: Sequence[Path], *, local: Sequence[str] = (V4_CLIENT,), expected_frames: int | None = None,
                 expected_bytes: int | None = None):
    """analyze() the files; check the accounting identity; return (result, accounting, warnings)."""
    from analyzer.analysis import analyze
    from summaries import summarize

    warnings: list[str] = []
    result = analyze([str(p) for p in paths], local=list(local), warn=warnings.append)
    acc = summarize(result)["accounting"]
    assert_accounting(result, acc, expected_frames, expected_bytes)
    return result, acc, warnings


def assert_accounting(result, acc: dict, expected_frames: int | None = None,
                      expected_bytes: int | None = None) -> None:
    """Every frame read is in exactly one category (and, if given, as many as were written)."""
    cats = acc["categories"]
    in_categories = sum(c["frames"] for c in cats.values())
    in_files = sum(r.frames for r in result.reports)
    detail = {k: v["frames"] for k, v in cats.items()}
    assert in_categories == acc["frames"] == acc["frames_read"] == in_files, \
        f"categories {detail} (sum {in_categories}), frames_read {acc['frames_read']}, frames in files {in_files}"
    if expected_frames is not None:
        assert in_files == expected_frames, f"categories {detail}: {in_files} frames read, {expected_frames} written"
    if expected_bytes is not None:
        assert acc["bytes"] == sum(c["bytes"] for c in cats.values()) == expected_bytes, \
            f"{acc['bytes']} bytes in categories, {expected_bytes} on the wire"


def analyze_frames(tmp_path: Path, frames: Iterable, linktype: int = LINKTYPE_ETHERNET, *,
                   local: Sequence[str] = (V4_CLIENT,), name: str = "capture.pcap", **pcap_kw):
    """Write ``frames`` as one pcap and analyze it, checking frames and bytes against what was written."""
    frames = as_frames(frames)
    path = write_pcap(tmp_path / name, frames, linktype, **pcap_kw)
    return run_analysis([path], local=local, expected_frames=len(frames),
                        expected_bytes=sum(f.wire_len for f in frames))


def category_frames(acc: dict) -> dict:
    """Non-zero frame counts per category."""
    return {k: v["frames"] for k, v in acc["categories"].items() if v["frames"]}


def insert_silence(src: Path, dst: Path, at_frame: int, seconds: int) -> Path:
    """A classic pcap (either timestamp resolution, little-endian) with every frame from
    ``at_frame`` (1-based) on moved ``seconds`` later: a long silence inside real traffic."""
    b = bytearray(Path(src).read_bytes())
    assert struct.unpack_from("<I", b, 0)[0] in (0xA1B2C3D4, 0xA1B23C4D), "little-endian classic pcap only"
    off, i = 24, 0
    while off + 16 <= len(b):
        sec, _, cap, _ = struct.unpack_from("<IIII", b, off)
        i += 1
        if i >= at_frame:
            struct.pack_into("<I", b, off, sec + seconds)
        off += 16 + cap
    Path(dst).write_bytes(b)
    return Path(dst)


def pcap_frames(path: Path) -> int:
    """Number of records in a little-endian classic pcap."""
    b = Path(path).read_bytes()
    off, n = 24, 0
    while off + 16 <= len(b):
        off += 16 + struct.unpack_from("<I", b, off + 8)[0]
        n += 1
    return n


def public_captures_dir() -> Path:
    """../shared/captures/public beside the repository; a clean clone elsewhere (CI) finds it
    through BT_ANALYZER_PUBLIC_CAPTURES or the workspace's shared folder."""
    import os
    beside = Path(__file__).resolve().parents[2] / "shared" / "captures" / "public"
    for c in (os.environ.get("BT_ANALYZER_PUBLIC_CAPTURES"), beside, "/work/shared/captures/public"):
        if c and Path(c).is_dir():
            return Path(c)
    return beside
