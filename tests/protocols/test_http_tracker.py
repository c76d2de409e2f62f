"""HTTP tracker messages with hostile numbers (issue 12): 5,000-digit values raised ValueError
(Python's int() digit limit) and lost the whole run.  Numbers are capped by length first."""
from __future__ import annotations

import gzip

import pytest

from analyzer.protocols.http_tracker import MAX_NUMBER_DIGITS, parse_requests, parse_responses
from craft import run_analysis
from fuzz import hostile as H


@pytest.mark.parametrize("field", ["uploaded", "downloaded", "left", "port"])
def test_query_number_of_5000_digits(field):
    [req] = parse_requests(H.http_request(field, H.HUGE))
    assert req.number(field) is None and req.anomalies == (f"number_too_long:{field}",)
    assert req.info_hashes == (H.INFO_HASH.hex(),)
    others = {"uploaded", "downloaded", "left"} - {field}
    assert all(req.number(k) == 0 for k in others)


def test_longest_plausible_number_is_kept():
    top = b"18446744073709551615"                      # 2^64 - 1: 20 digits
    assert len(top) == MAX_NUMBER_DIGITS
    [req] = parse_requests(H.http_request("uploaded", top))
    assert req.number("uploaded") == 2**64 - 1 and req.anomalies == ()
    [req] = parse_requests(H.http_request("uploaded", top + b"0"))
    assert req.number("uploaded") is None and req.anomalies == ("number_too_long:uploaded",)


def test_status_code_of_5000_digits():
    [r] = parse_responses(H.http_response(status=H.HUGE))
    assert r.status == 0 and r.anomalies == ("status_code_malformed",)
    assert r.interval == 1800 and r.peers == (("10.0.0.3", 6881),)


@pytest.mark.parametrize("code", [b"20", b"2000", b"", b"2x0"])
def test_status_code_not_three_digits(code):
    [r] = parse_responses(H.http_response(status=code))
    assert r.status == 0 and "status_code_malformed" in r.anomalies


def test_content_length_of_5000_digits_reads_to_the_end():
    [r] = parse_responses(H.http_response(length=H.HUGE))
    assert r.status == 200 and r.anomalies == ("content_length_too_long",)
    assert r.interval == 1800


def test_chunk_size_of_5000_hex_digits():
    body = b"d8:intervali60ee"
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"f" * 5000 + b"\r\n" + body
    [r] = parse_responses(head)
    assert r.anomalies == ("chunk_size_too_long",) and r.interval is None


@pytest.mark.parametrize("case", ["query", "status", "length"])
def test_tracker_exchange_with_5000_digit_number_through_analyze(tmp_path, case):
    path = tmp_path / "tracker.pcap"
    path.write_bytes(H.http_tracker_pcap(case))
    result, acc, _ = run_analysis([path], local=["10.0.0.1"])
    [a] = result.announces
    assert a.info_hash == H.INFO_HASH.hex() and a.transport == "http"
    assert a.uploaded == (None if case == "query" else 0)
    assert a.interval == 1800
    assert acc["categories"]["tracker"]["frames"] == len(H.tcp_stream_packets([b""], [b""]))


DAMAGED_GZIP = gzip.compress(b"d8:intervali1800ee", mtime=0)[:10] + b"\xff" * 12


def _response(body: bytes, headers: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\n" + headers + b"Content-Length: %d\r\n\r\n" % len(body) + body


@pytest.mark.parametrize("message, anomaly", ids=["html", "list", "gzip-damaged", "gzip-cut", "chunk-size", "short"],
                         argvalues=[
    (_response(b"<html>not found</html>"), "body_not_bencoded"),
    (_response(b"li1ee"), "body_not_a_dictionary"),
    (_response(DAMAGED_GZIP, b"Content-Encoding: gzip\r\n"), "content_encoding_damaged"),
    (_response(gzip.compress(b"d8:intervali1800ee", mtime=0)[:12], b"Content-Encoding: gzip\r\n"), "content_encoding_damaged"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nd8:intervali1ee\r\n0\r\n\r\n",
     "chunk_size_malformed"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nd8:intervali1800e5:peers", "body_incomplete"),
])
def test_response_decode_errors_are_named(message, anomaly):
    """Every part of a response that does not decode is named on it (and counted by the caller),
    never silently dropped."""
    [r] = parse_responses(message)
    assert r.anomalies == (anomaly,) and r.interval is None and r.peers == ()


def test_compact_peers_of_a_wrong_length_are_refused_whole():
    [r] = parse_responses(_response(b"d8:intervali60e5:peers7:\x0a\x00\x00\x03\x1a\xe1\x00e"))
    assert r.interval == 60 and r.peers == ()


def test_malformed_info_hash_is_named_and_keeps_requests_paired_with_responses():
    bad = H.http_request("port", b"6881").replace(b"info_hash=", b"info_hash=%41%41&x=", 1)
    bad = bad.replace(b"info_hash=%41%41&x=" + b"".join(b"%%%02X" % c for c in H.INFO_HASH), b"info_hash=%41%41")
    good = H.http_request("port", b"6881")
    [r0, r1] = parse_requests(bad + good)
    assert r0.info_hashes == () and r0.anomalies == ("info_hash_malformed",)
    assert r1.info_hashes == (H.INFO_HASH.hex(),) and r1.anomalies == ()
    # a GET that names no info hash at all is not a tracker request
    assert parse_requests(b"GET /index.html?id=1 HTTP/1.1\r\n\r\n") == []


def test_peer_id_of_the_wrong_length_is_named():
    [req] = parse_requests(H.http_request("peer_id", b"-XX0001-short"))
    assert req.anomalies == ("peer_id_malformed",) and req.info_hashes == (H.INFO_HASH.hex(),)
    [req] = parse_requests(H.http_request("peer_id", b"%FF" * 20))
    assert req.anomalies == ()
