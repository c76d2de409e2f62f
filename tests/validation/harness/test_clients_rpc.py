"""The client drivers' RPC framing (no daemon needed): SCGI requests and
responses, multipart bodies, and the socket-table parsing of ``listening``."""
import pytest

from analyzer.validation.harness.clients.rpc import multipart, scgi_request, scgi_response_body


def test_scgi_request_is_a_netstring_of_headers_then_the_body():
    frame = scgi_request(b"<xml/>")
    head, _, rest = frame.partition(b":")
    n = int(head)
    headers, body = rest[:n], rest[n + 1:]
    assert rest[n:n + 1] == b","
    pairs = headers.split(b"\0")[:-1]
    assert dict(zip(pairs[::2], pairs[1::2])) == {b"CONTENT_LENGTH": b"6", b"SCGI": b"1",
                                                  b"REQUEST_METHOD": b"POST", b"REQUEST_URI": b"/RPC2"}
    assert pairs[0] == b"CONTENT_LENGTH" and body == b"<xml/>"


def test_scgi_response_body_and_errors():
    assert scgi_response_body(b"Status: 200 OK\r\nContent-Type: text/xml\r\n\r\n<a/>") == b"<a/>"
    assert scgi_response_body(b"Content-Type: text/xml\n\n<a/>") == b"<a/>"
    with pytest.raises(RuntimeError, match="500"):
        scgi_response_body(b"Status: 500 Internal\r\n\r\noops")
    with pytest.raises(RuntimeError, match="header"):
        scgi_response_body(b"no header end")


def test_multipart_carries_fields_and_the_file_verbatim():
    body, ctype = multipart({"savepath": "/x"}, {"torrents": ("t.torrent", b"d4:infoe\r\n--")})
    boundary = ctype.split("boundary=")[1].encode()
    parts = body.split(b"--" + boundary)
    assert parts[-1] == b"--\r\n"
    assert b'name="savepath"\r\n\r\n/x\r\n' in parts[1]
    assert parts[2].endswith(b"\r\n\r\nd4:infoe\r\n--\r\n") and b'filename="t.torrent"' in parts[2]


def test_listening_endpoints_from_ss():
    from analyzer.validation.harness.clients.base import local_endpoints
    out = ("LISTEN 0 30 127.0.0.4%lo:6881 0.0.0.0:*\n"
           "LISTEN 0 4096 [::ffff:127.0.0.5]:6881 *:*\n"
           "LISTEN 0 30 [fd00::4]%lo:6881 [::]:*\n"
           "UNCONN 0 0 [fd00::6]:51413 [::]:*\n")
    assert local_endpoints(out) == {"127.0.0.4:6881", "127.0.0.5:6881", "[fd00::4]:6881", "[fd00::6]:51413"}
