"""Header decoding through analyze(): link types, IP options and extension headers, padding,
fragments, non-TCP kinds and undecodable reasons.

Every capture is checked for the accounting identity: the frames in the categories add up to
the frames read, which is the number of packets written (and the same for wire bytes).
"""
from __future__ import annotations

import csv
import io
import struct

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP, IPOption_RR, IPOption_Timestamp
from scapy.layers.inet6 import (
    ICMPv6EchoRequest, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting,
)
from scapy.layers.l2 import ARP, Ether

from summaries import connections_csv
from craft import (
    BASE_TS_NS, BT_MESSAGES, INFO_HASH, LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2, LINKTYPE_LOOP, LINKTYPE_NULL, LINKTYPE_RAW, LINKTYPE_RAW_12, LINKTYPE_RAW_14, V4_CLIENT,
    V4_SERVER, V6_CLIENT, V6_SERVER, Frame, analyze_frames, bt_handshake, category_frames, epb, ethernet,
    fragment_packet, idb, linux_sll, linux_sll2, loop_link, null_link, run_analysis, shb, tcp_conversation,
    tsresol_units, udp_packet, v4_fragment, v6_fragment,
)

ADDRS = {4: (V4_CLIENT, V4_SERVER), 6: (V6_CLIENT, V6_SERVER)}
HS_LEN = len(bt_handshake())


def same(ip: bytes) -> bytes:
    return ip


def vlan(*tags):
    return lambda ip: ethernet(ip, vlans=tags)


# (id, link type, wrapper, IP versions)
LINKS = [
    ("ethernet", LINKTYPE_ETHERNET, ethernet, (4, 6)),
    ("ethernet-8021Q", LINKTYPE_ETHERNET, vlan((0x8100, 100)), (4, 6)),
    ("ethernet-QinQ-88a8", LINKTYPE_ETHERNET, vlan((0x88A8, 200), (0x8100, 100)), (4, 6)),
    ("ethernet-QinQ-9100", LINKTYPE_ETHERNET, vlan((0x9100, 300), (0x8100, 100)), (4, 6)),
    ("linux-sll", LINKTYPE_LINUX_SLL, linux_sll, (4, 6)),
    ("linux-sll2", LINKTYPE_LINUX_SLL2, linux_sll2, (4, 6)),
    ("raw-101", LINKTYPE_RAW, same, (4, 6)),
    ("raw-12", LINKTYPE_RAW_12, same, (4, 6)),
    ("raw-14", LINKTYPE_RAW_14, same, (4, 6)),
    ("ipv4-228", LINKTYPE_IPV4, same, (4,)),
    ("ipv6-229", LINKTYPE_IPV6, same, (6,)),
    ("null-little-endian", LINKTYPE_NULL, null_link, (4, 6)),
    ("null-big-endian", LINKTYPE_NULL, lambda ip: null_link(ip, big_endian=True), (4, 6)),
    *[(f"null-af{af}-{order}", LINKTYPE_NULL, (lambda af, be: lambda ip: null_link(ip, family=af, big_endian=be))(af, be),
       (6,)) for af in (24, 28, 30) for order, be in (("le", False), ("be", True))],
    ("loop", LINKTYPE_LOOP, loop_link, (4, 6)),
    *[(f"loop-af{af}", LINKTYPE_LOOP, (lambda af: lambda ip: loop_link(ip, family=af))(af), (6,)) for af in (24, 28, 30)],
]
LINK_CASES = [pytest.param(lt, wrap, v, id=f"{name}-ipv{v}") for name, lt, wrap, vs in LINKS for v in vs]


def assert_bittorrent_record(rec, version: int, client: str, server: str, *, cport=50000, sport=6881,
                             fwd_payload=HS_LEN + len(BT_MESSAGES), rev_payload=HS_LEN):
    assert rec.category == "bittorrent" and rec.info_hash == INFO_HASH.hex()
    assert (rec.ip_version, rec.src_ip, rec.src_port, rec.dst_ip, rec.dst_port) == \
        (version, client, cport, server, sport)
    assert rec.initiator_known and rec.state == "fin"
    assert (rec.fwd.payload_bytes, rec.rev.payload_bytes) == (fwd_payload, rev_payload)
    assert rec.fwd.gap_bytes == rec.rev.gap_bytes == rec.fwd.truncated_bytes == 0


@pytest.mark.parametrize("linktype,wrap,version", LINK_CASES)
def test_tcp_and_udp_through_link_type(tmp_path, linktype, wrap, version):
    client, server = ADDRS[version]
    tcp = tcp_conversation(client, server)
    frames = [wrap(p) for p in tcp + [udp_packet(client, server)]]
    result, acc, _ = analyze_frames(tmp_path, frames, linktype, local=[client])
    assert category_frames(acc) == {"bittorrent": len(tcp), "udp": 1}
    [rec] = result.records
    assert_bittorrent_record(rec, version, client, server)


@pytest.mark.parametrize("linktype,wrap,version", [
    pytest.param(LINKTYPE_IPV4, same, 6, id="ipv6-in-LINKTYPE_IPV4"),
    pytest.param(LINKTYPE_IPV6, same, 4, id="ipv4-in-LINKTYPE_IPV6"),
    pytest.param(LINKTYPE_ETHERNET, lambda ip: ethernet(ip, ethertype=0x0800), 6, id="ipv6-with-ethertype-ipv4"),
    pytest.param(LINKTYPE_ETHERNET, lambda ip: ethernet(ip, ethertype=0x86DD), 4, id="ipv4-with-ethertype-ipv6"),
    pytest.param(LINKTYPE_LINUX_SLL, lambda ip: linux_sll(ip, protocol=0x86DD), 4, id="ipv4-in-sll-as-ipv6"),
    pytest.param(LINKTYPE_NULL, lambda ip: null_link(ip, family=2), 6, id="ipv6-in-null-as-af-inet"),
])
def test_ip_version_contradicting_link_header(tmp_path, linktype, wrap, version):
    client, server = ADDRS[version]
    frames = [wrap(p) for p in tcp_conversation(client, server)]
    result, acc, _ = analyze_frames(tmp_path, frames, linktype, local=[client])
    assert category_frames(acc) == {"undecodable": len(frames)}
    assert acc["categories"]["undecodable"]["reasons"] == {"bad_ip_header": len(frames)}


def test_link_type_per_pcapng_interface(tmp_path):
    """One connection captured on two interfaces of different link types (Ethernet for the
    client's packets, SLL2 for the server's), plus UDP on a third (raw IPv6)."""
    tcp = tcp_conversation()
    blocks = [shb(), idb(LINKTYPE_ETHERNET), idb(LINKTYPE_LINUX_SLL2, tsresol=9), idb(LINKTYPE_RAW)]
    for i, p in enumerate(tcp):
        ts = BASE_TS_NS + i * 1_000_000
        if IP(p).src == V4_CLIENT:
            blocks.append(epb(0, tsresol_units(ts), ethernet(p)))
        else:
            blocks.append(epb(1, ts, linux_sll2(p)))
    blocks.append(epb(2, tsresol_units(BASE_TS_NS + 10**9), udp_packet(V6_CLIENT, V6_SERVER)))
    path = tmp_path / "two.pcapng"
    path.write_bytes(b"".join(blocks))
    result, acc, _ = run_analysis([path], expected_frames=len(tcp) + 1)
    assert category_frames(acc) == {"bittorrent": len(tcp), "udp": 1}
    [rec] = result.records
    assert_bittorrent_record(rec, 4, V4_CLIENT, V4_SERVER)


# ---------------------------------------------------------------------------------------------- IP headers
def with_ip_options(options):
    def build(ip: bytes) -> bytes:
        p = IP(ip)
        del p.ihl, p.len, p.chksum
        p.options = options
        return bytes(p)
    return build


def with_v6_extensions(*headers):
    def build(ip: bytes) -> bytes:
        p = IPv6(ip)
        out = IPv6(src=p.src, dst=p.dst)
        for h in headers:
            out = out / h.copy()
        return bytes(out / p[TCP])
    return build


@pytest.mark.parametrize("version,rewrite", [
    pytest.param(4, with_ip_options([IPOption_NOP(), IPOption_RR(routers=["192.0.2.1", "192.0.2.2"])]),
                 id="ipv4-options-rr"),
    pytest.param(4, with_ip_options([IPOption_Timestamp(flg=0, timestamp=1, length=36, oflw=0, pointer=9)]),
                 id="ipv4-options-40-bytes"),
    pytest.param(6, with_v6_extensions(IPv6ExtHdrHopByHop(), IPv6ExtHdrDestOpt(),
                                       IPv6ExtHdrRouting(addresses=["fd00::9"], segleft=0), IPv6ExtHdrDestOpt()),
                 id="ipv6-hbh-dst-routing-dst"),
    pytest.param(6, with_v6_extensions(IPv6ExtHdrHopByHop(), IPv6ExtHdrFragment(offset=0, m=0, id=9)),
                 id="ipv6-atomic-fragment"),
])
def test_headers_before_tcp(tmp_path, version, rewrite):
    client, server = ADDRS[version]
    tcp = [rewrite(p) for p in tcp_conversation(client, server)]
    assert len(tcp[0]) > len(tcp_conversation(client, server)[0])        # the headers are there
    result, acc, _ = analyze_frames(tmp_path, [ethernet(p) for p in tcp], local=[client])
    assert category_frames(acc) == {"bittorrent": len(tcp)}
    [rec] = result.records
    assert_bittorrent_record(rec, version, client, server)


def test_ethernet_padding_is_not_payload(tmp_path):
    """Frames padded to 60 bytes (non-zero padding): the TCP payload is what the IP length says."""
    tcp = tcp_conversation(payloads=[(0, b"ab"), (1, b"c"), (0, b"")])
    frames = [ethernet(p, pad_to=60) for p in tcp]
    assert all(len(f) == 60 for f in frames[:4])
    result, acc, _ = analyze_frames(tmp_path, frames)
    [rec] = result.records
    assert (rec.fwd.payload_bytes, rec.rev.payload_bytes) == (2, 1)
    assert rec.fwd.gap_bytes == rec.rev.gap_bytes == rec.fwd.duplicate_bytes == 0
    assert acc["tcp_streams"]["other_tcp"]["payload_bytes"] == 3
    assert acc["categories"]["other_tcp"]["bytes"] == sum(len(f) for f in frames)
    [row] = list(csv.DictReader(io.StringIO(connections_csv(result))))
    assert (row["payload_bytes_src_to_dst"], row["payload_bytes_dst_to_src"]) == ("2", "1")


def test_ethernet_fcs_is_not_payload(tmp_path):
    """A capture with the 4-byte FCS kept (link type field with FCS bits set)."""
    tcp = tcp_conversation()
    frames = [ethernet(p) + b"\xde\xad\xbe\xef" for p in tcp]
    result, acc, _ = analyze_frames(tmp_path, frames, 0x14000000 | LINKTYPE_ETHERNET)
    [rec] = result.records
    assert_bittorrent_record(rec, 4, V4_CLIENT, V4_SERVER)


# ---------------------------------------------------------------------------------------------- fragments
def big_udp(version: int, n: int = 100) -> bytes:
    client, server = ADDRS[version]
    return udp_packet(client, server, payload=bytes(range(n)))


@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize("order", ["in-order", "reversed", "shuffled", "interleaved"])
def test_udp_datagram_fragments(tmp_path, version, order):
    """Frames of a fragmented datagram are counted once each, in the datagram's category."""
    frags = fragment_packet(big_udp(version), 24)
    assert len(frags) == 5
    if order == "reversed":
        frags = frags[::-1]
    elif order == "shuffled":
        frags = [frags[i] for i in (2, 0, 4, 1, 3)]
    elif order == "interleaved":          # with fragments of a second datagram and other traffic
        other = fragment_packet(big_udp(version, 60), 24, ident=0x4343)
        client, server = ADDRS[version]
        frags = [frags[0], other[0], udp_packet(client, server), frags[1], other[1], frags[2], frags[3],
                 other[2], frags[4]]
    result, acc, _ = analyze_frames(tmp_path, [ethernet(f) for f in frags], local=[ADDRS[version][0]])
    assert category_frames(acc) == {"udp": len(frags)}
    assert acc["ip_fragments"]["datagrams_reassembled"] == (2 if order == "interleaved" else 1)
    assert acc["ip_fragments"]["incomplete_frames"] == 0


@pytest.mark.parametrize("version", [4, 6])
def test_tcp_segment_in_fragments(tmp_path, version):
    """A TCP segment carrying a handshake and piece data, fragmented, with a small padded last fragment."""
    client, server = ADDRS[version]
    data = bt_handshake(INFO_HASH, b"-CL0001-clientclient") + b"\x00\x00\x00\x01\x02" * 40
    tcp = tcp_conversation(client, server, payloads=[(0, data), (1, bt_handshake())])
    frames = []
    for p in tcp:
        if len(p) > 200:
            frames += [ethernet(f, pad_to=60) for f in fragment_packet(p, 96)]
        else:
            frames.append(ethernet(p))
    assert len(frames) > len(tcp) + 1
    result, acc, _ = analyze_frames(tmp_path, frames, local=[client])
    assert category_frames(acc) == {"bittorrent": len(frames)}
    [rec] = result.records
    assert_bittorrent_record(rec, version, client, server, fwd_payload=len(data), rev_payload=HS_LEN)
    assert rec.frames == len(frames)
    assert acc["ip_fragments"]["datagrams_reassembled"] == 1


def overlapping(version: int, second: bytes) -> list[bytes]:
    """A UDP datagram (8-byte header + 40 bytes) in three fragments; the middle one overlaps the
    first by 8 bytes, with ``second`` as its content."""
    client, server = ADDRS[version]
    whole = udp_packet(client, server, payload=b"A" * 40)
    payload = whole[20:] if version == 4 else whole[40:]
    frag = v4_fragment if version == 4 else v6_fragment
    return [frag(0, payload[:24], True, src=client, dst=server),
            frag(16, second, True, src=client, dst=server),
            frag(40, payload[40:], False, src=client, dst=server)]


@pytest.mark.parametrize("version", [4, 6])
def test_overlapping_fragments_same_bytes(tmp_path, version):
    client, server = ADDRS[version]
    payload = (udp_packet(client, server, payload=b"A" * 40))[20 if version == 4 else 40:]
    frags = overlapping(version, payload[16:40])
    result, acc, _ = analyze_frames(tmp_path, [ethernet(f) for f in frags], local=[client])
    assert category_frames(acc) == {"udp": 3}
    assert acc["ip_fragments"] == {"datagrams_reassembled": 1, "overlap_conflicts": 0, "incomplete_frames": 0,
                                 "evicted_datagrams": 0}


@pytest.mark.parametrize("version", [4, 6])
def test_overlapping_fragments_different_bytes_counted(tmp_path, version):
    frags = overlapping(version, b"B" * 24)
    result, acc, _ = analyze_frames(tmp_path, [ethernet(f) for f in frags], local=[ADDRS[version][0]])
    assert category_frames(acc) == {"udp": 3}
    assert acc["ip_fragments"] == {"datagrams_reassembled": 1, "overlap_conflicts": 1, "incomplete_frames": 0,
                                 "evicted_datagrams": 0}


@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize("missing", ["first", "middle", "last"])
def test_incomplete_fragments_undecodable(tmp_path, version, missing):
    frags = fragment_packet(big_udp(version), 24)
    del frags[{"first": 0, "middle": 2, "last": -1}[missing]]
    client, server = ADDRS[version]
    frames = [ethernet(f) for f in frags] + [ethernet(udp_packet(client, server))]
    result, acc, _ = analyze_frames(tmp_path, frames, local=[client])
    assert category_frames(acc) == {"undecodable": len(frags), "udp": 1}
    assert acc["categories"]["undecodable"]["reasons"] == {"incomplete_ip_fragments": len(frags)}
    assert acc["ip_fragments"]["incomplete_frames"] == len(frags)
    assert acc["categories"]["undecodable"]["bytes"] == sum(len(f) for f in frames[:-1])


@pytest.mark.parametrize("version", [4, 6])
def test_oversized_reassembled_datagram_does_not_crash(tmp_path, version):
    """'Ping of death': fragments adding up to more than 65535 bytes.  analyze() must finish and
    count every frame (as undecodable: the datagram cannot exist)."""
    client, server = ADDRS[version]
    frag = v4_fragment if version == 4 else v6_fragment
    step = 1480 if version == 4 else 1440
    frags = [frag(off, b"p" * min(step, 65528 - off), True, src=client, dst=server) for off in range(0, 65528, step)]
    frags.append(frag(65528, b"q" * 16, False, src=client, dst=server))
    result, acc, _ = analyze_frames(tmp_path, [ethernet(f) for f in frags], local=[client])
    assert category_frames(acc) == {"undecodable": len(frags)}
    assert acc["ip_fragments"]["datagrams_reassembled"] == 0


# ---------------------------------------------------------------------------------------------- other kinds
def raw_v4(proto_payload: bytes, proto: int, total: int | None = None) -> bytes:
    hdr = IP(src=V4_CLIENT, dst=V4_SERVER, proto=proto)
    b = bytearray(bytes(hdr / proto_payload))
    if total is not None:
        struct.pack_into(">H", b, 2, total)
    return bytes(b)


KINDS = [
    # id, link type, frame, category, undecodable reason
    ("arp", LINKTYPE_ETHERNET, bytes(Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff") / ARP()), "non_ip", None),
    ("arp-in-vlan", LINKTYPE_ETHERNET, ethernet(bytes(ARP()), vlans=[(0x8100, 5)], ethertype=0x0806), "non_ip", None),
    ("lldp", LINKTYPE_ETHERNET, ethernet(b"\x02\x07\x04" + bytes(30), ethertype=0x88CC), "non_ip", None),
    ("arp-sll", LINKTYPE_LINUX_SLL, linux_sll(bytes(ARP()), protocol=0x0806), "non_ip", None),
    ("arp-sll2", LINKTYPE_LINUX_SLL2, linux_sll2(bytes(ARP()), protocol=0x0806), "non_ip", None),
    ("null-unknown-family", LINKTYPE_NULL, null_link(udp_packet(), family=7), "non_ip", None),
    ("icmp", LINKTYPE_ETHERNET, ethernet(bytes(IP(src=V4_CLIENT, dst=V4_SERVER) / ICMP())), "other_ip", None),
    ("icmpv6", LINKTYPE_ETHERNET, ethernet(bytes(IPv6(src=V6_CLIENT, dst=V6_SERVER) / ICMPv6EchoRequest())),
     "other_ip", None),
    ("ipv6-no-next-header", LINKTYPE_RAW, bytes(IPv6(src=V6_CLIENT, dst=V6_SERVER, nh=59)), "other_ip", None),
    ("gre", LINKTYPE_RAW, raw_v4(b"\x00\x00\x08\x00" + bytes(20), 47), "other_ip", None),
    ("udp-snapped-header", LINKTYPE_RAW, udp_packet(payload=bytes(100))[:24], "udp", None),
    ("ethernet-cut", LINKTYPE_ETHERNET, ethernet(udp_packet())[:10], "undecodable", "truncated_link_header"),
    ("vlan-tag-cut", LINKTYPE_ETHERNET, ethernet(udp_packet(), vlans=[(0x8100, 5)])[:16], "undecodable",
     "truncated_link_header"),
    ("sll-cut", LINKTYPE_LINUX_SLL, linux_sll(udp_packet())[:12], "undecodable", "truncated_link_header"),
    ("sll2-cut", LINKTYPE_LINUX_SLL2, linux_sll2(udp_packet())[:19], "undecodable", "truncated_link_header"),
    ("null-cut", LINKTYPE_NULL, b"\x02\x00", "undecodable", "truncated_link_header"),
    ("ipv4-header-cut", LINKTYPE_ETHERNET, ethernet(udp_packet()[:12]), "undecodable", "bad_ip_header"),
    ("ipv6-header-cut", LINKTYPE_ETHERNET, ethernet(udp_packet(V6_CLIENT, V6_SERVER)[:30]), "undecodable",
     "bad_ip_header"),
    ("ipv4-ihl-4", LINKTYPE_RAW, b"\x44" + udp_packet()[1:], "undecodable", "bad_ip_header"),
    ("ipv4-total-below-header", LINKTYPE_RAW, raw_v4(bytes(8), 17, total=16), "undecodable", "bad_ip_header"),
    ("ipv4-options-cut", LINKTYPE_RAW, bytes(IP(src=V4_CLIENT, dst=V4_SERVER, options=[IPOption_NOP()] * 8))[:24],
     "undecodable", "bad_ip_header"),
    ("ip-version-5", LINKTYPE_RAW, b"\x55" + udp_packet()[1:], "undecodable", "bad_ip_header"),
    ("raw-empty", LINKTYPE_RAW, b"", "undecodable", "bad_ip_header"),
    ("tcp-header-cut", LINKTYPE_RAW, raw_v4(bytes(TCP())[:12], 6), "undecodable", "bad_tcp_header"),
    ("tcp-data-offset-3", LINKTYPE_RAW, raw_v4(bytes(TCP(dataofs=3)), 6), "undecodable", "bad_tcp_header"),
    ("udp-length-4", LINKTYPE_RAW, raw_v4(bytes(UDP())[:4], 17), "undecodable", "bad_udp_header"),
    ("unknown-link-type", 147, udp_packet(), "undecodable", "unsupported_link_type"),
]


@pytest.mark.parametrize("linktype,frame,category,reason", [pytest.param(*k[1:], id=k[0]) for k in KINDS])
def test_frame_kind(tmp_path, linktype, frame, category, reason):
    frames = [frame, frame]
    result, acc, _ = analyze_frames(tmp_path, frames, linktype)
    assert category_frames(acc) == {category: 2}
    assert acc["categories"]["undecodable"]["reasons"] == ({reason: 2} if reason else {})
    if reason == "unsupported_link_type":
        assert acc["categories"]["undecodable"]["unknown_link_types"] == {str(linktype): 2}
    assert list(result.records) == []


def test_all_kinds_in_one_capture(tmp_path):
    """The whole table at once: one pcapng, one interface per link type, plus a BitTorrent connection."""
    by_lt: dict = {}
    for name, lt, frame, category, reason in KINDS:
        by_lt.setdefault(lt, []).append((frame, category, reason))
    blocks, expected, reasons = [shb()], {}, {}
    blocks += [idb(lt) for lt in by_lt]
    for i, (lt, items) in enumerate(by_lt.items()):
        for j, (frame, category, reason) in enumerate(items):
            blocks.append(epb(i, tsresol_units(BASE_TS_NS) + i * 100 + j, frame))
            expected[category] = expected.get(category, 0) + 1
            if reason:
                reasons[reason] = reasons.get(reason, 0) + 1
    tcp = tcp_conversation()
    blocks += [epb(0, tsresol_units(BASE_TS_NS) + 10_000 + k, ethernet(p)) for k, p in enumerate(tcp)]
    expected["bittorrent"] = len(tcp)
    path = tmp_path / "kinds.pcapng"
    path.write_bytes(b"".join(blocks))
    result, acc, _ = run_analysis([path], expected_frames=len(KINDS) + len(tcp))
    assert category_frames(acc) == expected
    assert acc["categories"]["undecodable"]["reasons"] == dict(sorted(reasons.items()))


# ---------------------------------------------------------------------------------------------- snap length
@pytest.mark.parametrize("version", [4, 6])
def test_snaplen_truncated_segments_are_truncated_and_gap_never_payload(tmp_path, version):
    client, server = ADDRS[version]
    pieces = b"\x00\x00\x00\x05\x04\x00\x00\x00\x01" * 100                # 100 'have' messages
    tcp = tcp_conversation(client, server, payloads=[(0, bt_handshake(INFO_HASH, b"-CL0001-clientclient")),
                                                     (1, bt_handshake()), (0, pieces), (0, BT_MESSAGES)])
    snap = 160                     # below the 900-byte segment only
    frames = []
    cut = 0
    for i, p in enumerate(tcp):
        f = Frame(BASE_TS_NS + i * 1000, ethernet(p))
        if len(f.data) > snap:
            f.origlen, f.data = len(f.data), f.data[:snap]
            cut += f.origlen - snap
        frames.append(f)
    assert cut > 0
    result, acc, _ = analyze_frames(tmp_path, frames, local=[client], snaplen=snap)
    assert category_frames(acc) == {"bittorrent": len(frames)}
    [rec] = result.records
    hdr = 14 + (20 if version == 4 else 40) + 20
    assert rec.fwd.truncated_bytes == cut
    assert rec.fwd.gap_bytes == cut
    assert rec.fwd.payload_bytes == HS_LEN + (snap - hdr) + len(BT_MESSAGES)
    assert rec.rev.payload_bytes == HS_LEN and rec.rev.truncated_bytes == 0
    assert acc["tcp_streams"]["bittorrent"]["truncated_bytes"] == cut
    assert acc["tcp_streams"]["bittorrent"]["payload_bytes"] == rec.fwd.payload_bytes + rec.rev.payload_bytes
    assert acc["categories"]["bittorrent"]["bytes"] == sum(f.wire_len for f in frames)
