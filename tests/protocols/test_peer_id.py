"""Client names decoded from peer_ids, including those the real-traffic harness
captures from Transmission, qBittorrent, Deluge, aria2 and rTorrent (prefixes as
they appear on the wire, see tests/test_realtraffic_clients.py)."""
import pytest

from analyzer.protocols.peer_id import decode_peer_id, peer_id_text

RANDOM = b"k3Jx0Qp9Lm2Z"


def pid(prefix: bytes) -> bytes:
    return (prefix + RANDOM)[:20].ljust(20, b"x")


@pytest.mark.parametrize("prefix, name", [
    # the clients of the real-traffic harness (Debian 12 versions) and their successors
    (b"A2-1-36-0-", "aria2 1.36.0"),            # not Shadow-style "ABC 2.1"
    (b"A2-1-37-0-", "aria2 1.37.0"),
    (b"A2-2-0-10-", "aria2 2.0.10"),
    (b"aria2-", "aria2"),
    (b"-TR3000-", "Transmission 3.00"),
    (b"-TR4050-", "Transmission 4.0.5"),        # 4.x: major, minor, patch in base 62
    (b"-TR400B-", "Transmission 4.0.0 beta"),
    (b"-TR294Z-", "Transmission 2.94 dev"),
    (b"-TR0072-", "Transmission 0.72"),
    (b"-TR0006-", "Transmission 0.6"),
    (b"-DE203s-", "Deluge 2.0.3"),              # Deluge 2: release type in the 4th place
    (b"-DE211D-", "Deluge 2.1.1 dev"),
    (b"-DE201b-", "Deluge 2.0.1b"),
    (b"-DE13F0-", "Deluge 1.3.15"),             # Deluge 1: libtorrent's base-36 digits
    (b"-qB4520-", "qBittorrent 4.5.2"),
    (b"-lt0D80-", "libTorrent (rakshasa) 0.13.8"),
    (b"-LT2110-", "libtorrent 2.1.1"),
    # other styles keep working
    (b"-UT355B-", "µTorrent 3.5.5 beta"),
    (b"M7-4-3--", "BitTorrent (Mainline) 7.4.3"),
    (b"T03I--", "BitTornado 0.3.18"),
])
def test_decoded_client(prefix, name):
    assert decode_peer_id(pid(prefix)) == name


def test_malformed_version_keeps_the_name():
    assert decode_peer_id(pid(b"-TR2Z4Z-")) == "Transmission"


def test_unknown_styles_are_none():
    assert decode_peer_id(bytes(20)) is None
    assert decode_peer_id(b"A2-1-36-0-") is None        # not 20 bytes
    assert decode_peer_id(None) is None


def test_peer_id_text_escapes_non_printable():
    assert peer_id_text(b"A2-1-36-0-" + bytes([2, 0x25]) + b"abcdefgh") == "A2-1-36-0-%02%25abcdefgh"
