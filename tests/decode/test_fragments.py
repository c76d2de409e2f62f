"""Defragmenter alone: the datagrams it rebuilds, overlap rules, incomplete datagrams.

Contract (analyzer/decode/fragments.py): a datagram is returned once every byte from 0 to the
last fragment's end is present; the first copy of any byte wins; overlapping fragments with
different bytes are counted; datagrams still incomplete after TIMEOUT_NS or at the end are
dropped (counted), never guessed.
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6

from analyzer.decode.fragments import TIMEOUT_NS, Defragmenter
from craft import V4_CLIENT, V4_SERVER, V6_CLIENT, V6_SERVER, fragment_packet, udp_packet, v4_fragment, v6_fragment

FRAG = {4: v4_fragment, 6: v6_fragment}
ADDRS = {4: (V4_CLIENT, V4_SERVER), 6: (V6_CLIENT, V6_SERVER)}


def feed(version: int, frags: list[bytes], *, wire: int = 100, d: Defragmenter | None = None):
    d = d or Defragmenter()
    out = []
    for i, f in enumerate(frags):
        got = d.add(0, i + 1, 1000 + i, wire, version, f)
        if got is not None:
            out.append(got)
    return d, out


def ip_payload(version: int, packet: bytes) -> bytes:
    return packet[(packet[0] & 15) * 4:] if version == 4 else packet[40:]


@pytest.mark.parametrize("version", [4, 6])
def test_rebuilt_datagram_is_the_original_packet(version):
    client, server = ADDRS[version]
    original = udp_packet(client, server, payload=bytes(range(200)))
    frags = fragment_packet(original, 64, ident=0x1234)
    d, out = feed(version, frags[::-1])
    [dg] = out
    assert (dg.frames, dg.wire_bytes, dg.frame_no, dg.ts_ns) == (len(frags), 100 * len(frags), 1, 1000)
    assert ip_payload(version, dg.packet) == ip_payload(version, original)
    if version == 4:
        p = IP(dg.packet)
        assert (p.flags, p.frag) == (0, 0), "the rebuilt datagram must not look like a fragment"
        assert p.id == 0x1234 and p.len == len(dg.packet) and p.proto == 17
    else:
        p = IPv6(dg.packet)
        assert p.nh == 17 and p.plen == len(dg.packet) - 40
    assert bytes(p[UDP].payload) == bytes(range(200))
    assert d.pending == {} and d.pending_bytes == 0 and d.reassembled == 1


def reference(frags: list[tuple[int, bytes]]) -> tuple[bytes, int]:
    """First copy of every byte wins; a fragment overlapping different bytes is one conflict."""
    have: dict[int, int] = {}
    conflicts = 0
    for off, data in frags:
        differs = False
        for i, b in enumerate(data):
            if off + i in have:
                differs |= have[off + i] != b
            else:
                have[off + i] = b
        conflicts += differs
    return bytes(have[i] for i in range(len(have))), conflicts


A, B, C = (0, b"A" * 24), (16, b"B" * 24), (40, b"C" * 8)
OVERLAPS = {
    "tail-overlap-in-order": [A, B, C],
    "tail-overlap-later-first": [B, A, C],
    "reverse": [C, B, A],
    "same-offset-longer-later": [(0, b"A" * 16), (0, b"B" * 24), (24, b"C" * 24)],
    "same-offset-shorter-later": [(0, b"A" * 24), (0, b"B" * 16), (24, b"C" * 24)],
    "contained": [(0, b"A" * 48), (8, b"B" * 8), (48, b"C" * 8)],
    "identical-retransmission": [A, A, (24, b"C" * 24)],
    "same-bytes-overlap": [(0, b"X" * 32), (16, b"X" * 32)],
}


@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize("name", list(OVERLAPS))
def test_overlapping_fragments_first_copy_wins(version, name):
    parts = OVERLAPS[name]
    end = max(off + len(data) for off, data in parts)
    frags = [FRAG[version](off, data, off + len(data) < end) for off, data in parts]
    want, conflicts = reference(parts)
    d, out = feed(version, frags)
    assert len(out) == 1
    assert ip_payload(version, out[0].packet) == want
    assert d.conflicts == conflicts
    assert out[0].frames == len(parts)


@pytest.mark.parametrize("version", [4, 6])
def test_incomplete_datagram_dropped_at_flush(version):
    frags = [FRAG[version](0, b"a" * 16, True), FRAG[version](32, b"c" * 8, False)]
    d, out = feed(version, frags, wire=70)
    assert out == []
    d.flush()
    assert (d.dropped_frames, d.dropped_bytes, d.pending, d.pending_bytes) == (2, 140, {}, 0)


@pytest.mark.parametrize("version", [4, 6])
def test_incomplete_datagram_expires(version):
    d = Defragmenter()
    d.add(0, 1, 0, 60, version, FRAG[version](0, b"a" * 16, True))
    d.expire(TIMEOUT_NS)                      # not yet: exactly the timeout
    assert d.dropped_frames == 0 and len(d.pending) == 1
    d.expire(TIMEOUT_NS + 1)
    assert d.dropped_frames == 1 and d.pending == {}
    # the missing fragment arriving later starts a new, incomplete datagram: nothing is guessed
    assert d.add(0, 2, TIMEOUT_NS + 2, 60, version, FRAG[version](16, b"b" * 8, False)) is None


@pytest.mark.parametrize("version", [4, 6])
def test_datagrams_kept_apart_by_identification(version):
    x = fragment_packet(udp_packet(*ADDRS[version], payload=b"x" * 40), 24, ident=1)
    y = fragment_packet(udp_packet(*ADDRS[version], payload=b"y" * 40), 24, ident=2)
    d, out = feed(version, [x[0], y[0], y[1], x[1]])
    assert [bytes(ip_payload(version, g.packet))[8:] for g in out] == [b"y" * 40, b"x" * 40]
    assert d.conflicts == 0


def oversized(version: int) -> list[bytes]:
    """Fragments of a datagram larger than an IP length field allows ('ping of death'):
    offsets up to 65528 and a last fragment ending at 65544."""
    step = 1480 if version == 4 else 1440
    frags = [FRAG[version](off, b"p" * min(step, 65528 - off), True) for off in range(0, 65528, step)]
    return frags + [FRAG[version](65528, b"q" * 16, False)]


@pytest.mark.parametrize("version", [4, 6])
def test_oversized_datagram_dropped_not_raised(version):
    """A crafted capture must not crash the analysis: the datagram cannot be represented, so
    its fragments are dropped (counted), not rebuilt."""
    frags = oversized(version)
    d, out = feed(version, frags)              # must not raise
    d.flush()
    assert out == [] and d.reassembled == 0
    assert d.dropped_frames == len(frags) and d.pending == {}


@pytest.mark.parametrize("packet", [b"\x45\x00\x00", bytes(IPv6())[:30]], ids=["ipv4-cut", "ipv6-cut"])
def test_unparsable_fragment_counted_as_dropped(packet):
    d = Defragmenter()
    assert d.add(0, 1, 0, 40, 4 if packet[0] >> 4 == 4 else 6, packet) is None
    assert d.dropped_frames == 1 and d.dropped_bytes == 40


@pytest.mark.parametrize("chain", [[], [0], [60, 43], [51], [0, 51, 60]],
                         ids=["none", "hop-by-hop", "dest-opts+routing", "ah", "hbh+ah+dest-opts"])
def test_v6_extension_headers_before_the_fragment_header(chain):
    """The defragmenter walks the extension headers with the decoder's own walk (one
    implementation): whatever headers precede the fragment header, the datagram is rebuilt
    and the next-header byte that named the fragment header names the payload again."""
    from scapy.layers.inet6 import IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting
    from scapy.layers.ipsec import AH
    from analyzer.decode._ipv6 import fragment_header
    layers = {0: IPv6ExtHdrHopByHop, 60: IPv6ExtHdrDestOpt, 43: IPv6ExtHdrRouting,
              51: lambda nh: AH(nh=nh, payloadlen=4, spi=1, seq=1, icv=b"\0" * 12)}   # 24 bytes
    payload = bytes(UDP(sport=1, dport=2) / (b"x" * 100))
    frags = []
    for off, more, part in ((0, 1, payload[:56]), (56, 0, payload[56:])):
        p = IPv6(src=V6_CLIENT, dst=V6_SERVER)
        for i, nh in enumerate(chain):
            after = chain[i + 1] if i + 1 < len(chain) else 44
            p = p / (layers[nh](after) if nh == 51 else layers[nh]())
        raw = bytes(p / IPv6ExtHdrFragment(nh=17, offset=off // 8, m=more, id=7) / part)
        assert fragment_header(raw) is not None
        frags.append(raw)
    d, [dg] = feed(6, frags)
    unfragmentable = len(frags[0]) - 8 - 56
    assert dg.packet[unfragmentable:] == payload and IPv6(dg.packet).plen == len(dg.packet) - 40
    named = fragment_header(frags[0])[1]
    assert dg.packet[named] == 17                 # the byte that named the fragment header
    # not a fragment: the walk ends at the upper-layer header
    assert fragment_header(bytes(IPv6(src=V6_CLIENT, dst=V6_SERVER) / UDP() / b"x")) is None


@pytest.mark.parametrize("version", [4, 6])
def test_late_fragment_starts_a_new_datagram_without_expire(version):
    """add alone gives up a datagram silent for longer than TIMEOUT_NS (whether or not the caller
    called expire): what is rebuilt depends only on the sequence of fragments."""
    d = Defragmenter()
    d.add(0, 1, 0, 60, version, FRAG[version](0, b"a" * 16, True))
    assert d.add(0, 2, TIMEOUT_NS + 1, 60, version, FRAG[version](16, b"b" * 8, False)) is None
    assert d.dropped_frames == 1 and len(d.pending) == 1
    # within the timeout the datagram completes
    d2 = Defragmenter()
    d2.add(0, 1, 0, 60, version, FRAG[version](0, b"a" * 16, True))
    got = d2.add(0, 2, TIMEOUT_NS, 60, version, FRAG[version](16, b"b" * 8, False))
    assert got is not None and got.frames == 2 and d2.dropped_frames == 0


@pytest.mark.parametrize("batch_records", [1, 2, 3, 1 << 16])
def test_fragmented_segment_handled_at_its_place_whatever_the_batches(tmp_path, monkeypatch, batch_records):
    """The engine hands a rebuilt datagram on at the fragment that completes it: a retransmission
    of the same TCP bytes with other content, read right after in the same batch, is the later
    copy (peer_id from the fragmented first copy; the conflict counted), whatever the batch size."""
    from analyzer.analysis import analyze
    from analyzer.capture import reader
    from craft import INFO_HASH, LINKTYPE_RAW, bt_handshake, tcp_conversation, timed, write_pcap
    pkts = tcp_conversation(payloads=[(0, bt_handshake(INFO_HASH, b"-CL0001-clientclient")),
                                      (1, bt_handshake(INFO_HASH, b"-SV0001-serverserver"))])
    first = pkts[3]                                   # the client's handshake segment
    again = first[:-4] + b"XXXX"                      # retransmitted, other bytes (an IPv4 packet)
    again = again[:10] + b"\0\0" + again[12:]         # header checksum is not checked
    frags = fragment_packet(first, 48, ident=7)
    path = write_pcap(tmp_path / "f.pcap", timed(pkts[:3] + frags + [again] + pkts[4:]), LINKTYPE_RAW)
    monkeypatch.setattr(reader, "BATCH_RECORDS", batch_records)
    result = analyze([path], local=["10.0.0.1"], warn=lambda m: None)
    [r] = [r for r in result.records if r.category == "bittorrent"]
    assert (r.fwd.peer_id, r.rev.peer_id) == (b"-CL0001-clientclient", b"-SV0001-serverserver")
    assert result.fragments["datagrams_reassembled"] == 1
