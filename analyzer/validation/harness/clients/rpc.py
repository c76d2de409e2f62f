"""Small RPC transports the drivers share: HTTP into a namespace, multipart
form bodies, and XML-RPC over SCGI (rtorrent).

HTTP requests are made from the calling thread switched into the client's
namespace (``Namespace.entered``) for the duration of one request: a fresh
connection each time, so nothing ever reconnects from the host's namespace.
No proxy settings are consulted (``http.client`` directly).

SCGI (https://python.ca/scgi/protocol.txt) frames a request as a netstring of
NUL-separated header pairs, ``CONTENT_LENGTH`` first and ``SCGI 1`` among
them, followed by the body; the answer is a CGI response (``Status:`` and
other headers, a blank line, the body).  rtorrent's XML-RPC speaks it on a
Unix socket, which is not bound to any network namespace.
"""
from __future__ import annotations

import http.client
import json
import socket
import uuid
import xmlrpc.client

from ..netns import Namespace

MAX_RESPONSE_BYTES = 64 << 20


class HTTPError(RuntimeError):
    def __init__(self, status: int, body: bytes, headers: dict) -> None:
        super().__init__(f"HTTP {status}: {body[:500]!r}")
        self.status, self.body, self.headers = status, body, headers


def http_request(ns: Namespace, host: str, port: int, method: str, path: str, body: bytes = b"",
                 headers: dict | None = None, timeout: float = 10.0) -> tuple[int, dict, bytes]:
    """One HTTP request to host:port inside ``ns``; (status, lower-case headers, body)."""
    with ns.entered():
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            conn.connect()
        except BaseException:
            conn.close()
            raise
    try:
        conn.request(method, path, body=body or None, headers=dict(headers or {}))
        resp = conn.getresponse()
        data = resp.read(MAX_RESPONSE_BYTES)
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def json_post(ns: Namespace, host: str, port: int, path: str, payload, headers: dict | None = None,
              timeout: float = 10.0) -> tuple[int, dict, object]:
    """POST ``payload`` as JSON; the decoded answer on 200, else the raw body."""
    h = {"Content-Type": "application/json", **(headers or {})}
    status, rh, body = http_request(ns, host, port, "POST", path, json.dumps(payload).encode(), h, timeout)
    if status != 200:
        return status, rh, body
    return status, rh, json.loads(body)


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """multipart/form-data body and its Content-Type for ``fields`` and
    ``files`` ({field: (filename, data)})."""
    boundary = f"----bta{uuid.uuid4().hex}"
    out = bytearray()
    for k, v in fields.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").encode()
    for k, (fname, data) in files.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"{fname}\"\r\n"
                "Content-Type: application/x-bittorrent\r\n\r\n").encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


# ------------------------------------------------------------------------------
def scgi_request(body: bytes, uri: str = "/RPC2") -> bytes:
    """The SCGI frame of a POST of ``body``."""
    pairs = [("CONTENT_LENGTH", str(len(body))), ("SCGI", "1"), ("REQUEST_METHOD", "POST"),
             ("REQUEST_URI", uri)]
    head = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in pairs)
    return str(len(head)).encode() + b":" + head + b"," + body


def scgi_response_body(raw: bytes) -> bytes:
    """Body of a CGI-style response; RuntimeError on a non-200 status or no header end."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = raw.find(sep)
        if i >= 0:
            head, body = raw[:i].decode("latin-1"), raw[i + len(sep):]
            break
    else:
        raise RuntimeError(f"SCGI response without a header block: {raw[:200]!r}")
    for line in head.splitlines():
        k, _, v = line.partition(":")
        if k.strip().lower() == "status" and not v.strip().startswith("200"):
            raise RuntimeError(f"SCGI status {v.strip()}: {body[:300]!r}")
    return body


class ScgiTransport(xmlrpc.client.Transport):
    """xmlrpc.client transport to an SCGI server on a Unix socket."""

    def __init__(self, socket_path: str, timeout: float = 10.0) -> None:
        super().__init__()
        self.socket_path = socket_path
        self.timeout = timeout

    def request(self, host, handler, request_body, verbose=False):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(self.timeout)
            s.connect(self.socket_path)
            s.sendall(scgi_request(request_body, handler or "/RPC2"))
            chunks, size = [], 0
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
                size += len(b)
                if size > MAX_RESPONSE_BYTES:
                    raise RuntimeError("SCGI response too large")
        parser, unmarshaller = self.getparser()
        parser.feed(scgi_response_body(b"".join(chunks)))
        parser.close()
        return unmarshaller.close()


def scgi_proxy(socket_path: str, timeout: float = 10.0) -> xmlrpc.client.ServerProxy:
    return xmlrpc.client.ServerProxy("http://rtorrent/RPC2", transport=ScgiTransport(socket_path, timeout),
                                     allow_none=True, use_builtin_types=True)
