"""The accounting's decode errors and counters: every message that was recognised but did not
decode is counted (summary.json ``accounting.decode_errors``), never swallowed."""
from __future__ import annotations

import struct

from analyzer.protocols.bencode import encode
from craft import INFO_HASH, V4_CLIENT, V4_SERVER, analyze_frames, bt_handshake, ethernet, tcp_conversation, udp_packet
from fuzz import hostile as H

TRACKER = "10.0.0.9"


def ext(ext_id: int, payload: bytes) -> bytes:
    body = bytes([20, ext_id]) + payload
    return struct.pack(">I", len(body)) + body


def peer_wire_with_bad_extension_messages() -> list[bytes]:
    """The client announces ut_pex as 3 and ut_metadata as 4; the server's extended handshake is
    not bencoded, and it sends a ut_pex and a ut_metadata message that do not decode."""
    client = bt_handshake(INFO_HASH, b"-CL0001-clientclient") + ext(0, encode({b"m": {b"ut_pex": 3,
                                                                                      b"ut_metadata": 4}}))
    server = (bt_handshake(INFO_HASH, b"-SV0001-serverserver") + ext(0, b"d1:m" + b"\xff" * 8)
              + ext(3, b"not bencoded") + ext(4, b"d8:msg_typei1e5:piecei0e10:total_sizei5eexx"))
    return tcp_conversation(payloads=[(0, client), (1, server)])


def datagrams() -> list[bytes]:
    udp_connect = struct.pack(">QII", 0x41727101980, 0, 0x1234)
    wrong_answer = struct.pack(">II", 2, 0x1234) + bytes(8)          # a scrape answer to a connect
    return [
        udp_packet(V4_CLIENT, V4_SERVER, 6881, 6881, b"d1:ad2:id20:" + b"\x01" * 5),       # KRPC, cut
        udp_packet(V4_CLIENT, "239.192.152.143", 6881, 6771, b"BT-SEARCH * HTTP/1.1\r\nPort: 6881\r\n"
                   b"Infohash: not-a-hash\r\n\r\n\r\n"),
        udp_packet(V4_CLIENT, TRACKER, 40000, 6969, udp_connect),
        udp_packet(TRACKER, V4_CLIENT, 6969, 40000, wrong_answer),
    ]


def http_tracker_exchange() -> list[bytes]:
    request = H.http_request("uploaded", H.HUGE)
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n<html/>\r\n"
    return tcp_conversation(V4_CLIENT, TRACKER, 50001, 80, payloads=[(0, request), (1, response)])


def test_every_decode_error_is_counted(tmp_path):
    frames = [ethernet(p) for p in peer_wire_with_bad_extension_messages() + datagrams() + http_tracker_exchange()]
    result, acc, _ = analyze_frames(tmp_path, frames, local=[V4_CLIENT])
    assert acc["decode_errors"] == {
        "krpc": 1, "lsd": 1, "udp_tracker": 1,
        "http_tracker_requests": 1, "http_tracker_responses": 1,
        "http_tracker_anomalies": {"body_not_bencoded": 1, "number_too_long": 1},
        "extended_handshakes": 1, "ut_metadata": 1, "ut_pex": 1,
    }
    cats = acc["categories"]
    assert cats["dht"]["frames"] == 1 and cats["lsd"]["frames"] == 1 and cats["tracker"]["connections"] == 1
    assert acc["extension_messages"] == {"unnamed": 0, "over_cap": 0, "ut_metadata_not_kept": 0}
    assert acc["pending_dropped"] == 0 and acc["connections_finished_at_cap"] == 0


def test_nothing_counted_for_well_formed_traffic(tmp_path):
    frames = [ethernet(p) for p in tcp_conversation()]
    _, acc, _ = analyze_frames(tmp_path, frames, local=[V4_CLIENT])
    errors = acc["decode_errors"]
    assert errors.pop("http_tracker_anomalies") == {} and set(errors.values()) == {0}
    assert acc["capture_damage"] == {"unreadable_files": 0, "damaged_bytes": 0, "truncated_bytes": 0,
                                     "errors_not_listed": 0, "timestamp_anomalies": {}, "damaged_interfaces": 0,
                                     "interfaces_over_limit": 0}
