"""HTTP tracker announces and scrapes (BEP 3, BEP 23 compact peers, BEP 7 peers6).

Works on the first bytes of a TCP stream (``head``): ``parse_requests`` finds
every ``GET /...?info_hash=...`` request in the client's stream,
``parse_responses`` the HTTP responses in the tracker's stream, with their
bencoded bodies decoded (interval, peers in compact IPv4/IPv6 and dictionary
form, failure reason).  Query values are percent-decoded bytes; the info hash
is returned as 40 lower-case hex digits.

Numbers are converted only when they are plausible by length (a 64-bit
counter has at most 20 digits; an HTTP status code exactly 3): a longer
number is never given to ``int()`` (which refuses more than 4,300 digits),
it is named in the message's ``anomalies`` and treated as absent.  Every other
part that does not decode (a malformed info hash, a damaged compressed or
chunked body, a body that is not a bencoded dictionary) is named there too:
the caller counts them (summary.json ``accounting.decode_errors``).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from analyzer.protocols.bencode import BencodeError, decode
from analyzer.protocols.compact import compact_peers

MAX_NUMBER_DIGITS = 20       # a 64-bit counter (uploaded, downloaded, left, Content-Length, ...)
MAX_CHUNK_DIGITS = 16        # hexadecimal chunk size of a chunked body


@dataclass(frozen=True, slots=True)
class HttpAnnounce:
    path: str                 # /announce or /scrape (path only)
    host: str | None
    info_hashes: tuple
    params: dict              # other query parameters, decoded to text where printable
    user_agent: str | None
    offset: int               # stream offset of the request
    anomalies: tuple = ()     # "number_too_long:<key>", "info_hash_malformed", "peer_id_malformed"

    @property
    def is_scrape(self) -> bool:
        return "scrape" in self.path.rsplit("/", 1)[-1]

    def number(self, key: str) -> int | None:
        v = self.params.get(key)
        return int(v) if isinstance(v, str) and v.isdigit() and len(v) <= MAX_NUMBER_DIGITS else None


@dataclass(frozen=True, slots=True)
class HttpTrackerResponse:
    status: int
    interval: int | None
    peers: tuple
    failure: str | None
    complete: int | None
    incomplete: int | None
    anomalies: tuple = ()     # "status_code_malformed", "content_length_too_long", "chunk_size_too_long",
                              # "chunk_size_malformed", "content_encoding_damaged", "body_incomplete",
                              # "body_not_bencoded", "body_not_a_dictionary"


def _heads(head: bytes, start: bytes, pos: int = 0):
    """The next HTTP message head (start line and header lines) at or after ``pos`` that
    begins with ``start``: (its offset, its lines, where its body begins), or None."""
    i = head.find(start, pos)
    if i < 0:
        return None
    end = head.find(b"\r\n\r\n", i)
    if end < 0:
        return None
    return i, head[i:end].split(b"\r\n"), end + 4


def _header_fields(lines: list[bytes]) -> dict[bytes, bytes]:
    """Header name (lower case) -> value (stripped) of a message head's lines after the first."""
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return headers


def parse_requests(head: bytes) -> list[HttpAnnounce]:
    """Every announce or scrape request in the client's stream ``head``.  A request whose
    ``info_hash`` values are all malformed (not 20 bytes) is returned without info hashes,
    with the anomaly ``info_hash_malformed`` (so responses still pair with requests in order)."""
    out = []
    pos = 0
    while (found := _heads(head, b"GET ", pos)) is not None:
        i, lines, pos = found
        parts = lines[0].split(b" ")
        if len(parts) < 3 or not parts[2].startswith(b"HTTP/"):
            continue
        target = parts[1]
        path, _, query = target.partition(b"?")
        params: dict = {}
        hashes = []
        anomalies = []
        for item in query.split(b"&"):
            k, _, v = item.partition(b"=")
            key = unquote_to_bytes(k).decode("latin-1")
            raw = unquote_to_bytes(v)
            if key == "info_hash":
                if len(raw) == 20:
                    hashes.append(raw.hex())
                elif "info_hash_malformed" not in anomalies:
                    anomalies.append("info_hash_malformed")
                continue
            params[key] = raw.decode("ascii") if raw.isascii() and raw.decode("ascii").isprintable() else raw.hex()
            if key == "peer_id" and len(raw) != 20:
                anomalies.append("peer_id_malformed")
            if raw.isdigit() and len(raw) > MAX_NUMBER_DIGITS:
                anomalies.append(f"number_too_long:{key[:40]}")
        if not hashes and "info_hash_malformed" not in anomalies:
            continue                    # not a tracker request
        headers = _header_fields(lines)
        host, agent = headers.get(b"host"), headers.get(b"user-agent")
        out.append(HttpAnnounce(path.decode("latin-1"), None if host is None else host.decode("latin-1"),
                                tuple(hashes), params, None if agent is None else agent.decode("latin-1"), i,
                                tuple(anomalies)))
    return out


def _peers(value, size: int) -> tuple:
    """Compact peers (6 bytes each in ``peers``, 18 in ``peers6``; a string of another length
    is refused whole) or the dictionary model."""
    if isinstance(value, bytes):
        return () if len(value) % size else compact_peers(value, size)
    if isinstance(value, list):
        out = []
        for p in value:
            if isinstance(p, dict) and isinstance(p.get(b"ip"), bytes) and isinstance(p.get(b"port"), int):
                out.append((p[b"ip"].decode("latin-1"), p[b"port"]))
        return tuple(out)
    return ()


def parse_responses(head: bytes) -> list[HttpTrackerResponse]:
    out = []
    pos = 0
    while (found := _heads(head, b"HTTP/1.", pos)) is not None:
        _, lines, body_start = found
        status_parts = lines[0].split(b" ")
        anomalies = []
        code = status_parts[1] if len(status_parts) > 1 else b""
        status = int(code) if len(code) == 3 and code.isdigit() else 0
        if not status:
            anomalies.append("status_code_malformed")
        headers = _header_fields(lines)
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and len(length) > MAX_NUMBER_DIGITS:
            anomalies.append("content_length_too_long")
            length = None
        complete = True
        if length is not None and length.isdigit():
            body = head[body_start:body_start + int(length)]
            pos = body_start + int(length)
            if len(body) < int(length):
                anomalies.append("body_incomplete")
                complete = False
        elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            body, pos, problem = _dechunk(head, body_start)
            if problem:
                anomalies.append(problem)
        else:
            body = head[body_start:]
            pos = len(head)
        encoding = headers.get(b"content-encoding", b"").lower()
        if encoding in (b"gzip", b"deflate", b"x-gzip"):
            body, sound = _inflate(body, gzip=encoding != b"deflate")
            if not sound:
                anomalies.append("content_encoding_damaged" if complete else "body_incomplete")
                complete = False
        interval = failure = complete_peers = incomplete = None
        peers: tuple = ()
        try:
            d = decode(body) if body else None
        except BencodeError:
            if complete:        # a body cut short (by what the capture kept) was named above
                anomalies.append("body_not_bencoded")
            d = None
        if isinstance(d, dict):
            interval = d.get(b"interval") if isinstance(d.get(b"interval"), int) else None
            reason = d.get(b"failure reason")
            failure = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else None
            complete_peers = d.get(b"complete") if isinstance(d.get(b"complete"), int) else None
            incomplete = d.get(b"incomplete") if isinstance(d.get(b"incomplete"), int) else None
            peers = _peers(d.get(b"peers"), 6) + _peers(d.get(b"peers6"), 18)
        elif d is not None:
            anomalies.append("body_not_a_dictionary")
        out.append(HttpTrackerResponse(status, interval, peers, failure, complete_peers, incomplete,
                                       tuple(anomalies)))
    return out


def _inflate(body: bytes, gzip: bool) -> tuple[bytes, bool]:
    """Decompress at most 1 MiB of a compressed body (what fits in the capture's head):
    (what came out, whether the compressed data was whole and sound)."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS if gzip else zlib.MAX_WBITS)
    try:
        out = d.decompress(body, 1 << 20)
    except zlib.error:
        return b"", False
    return out, d.eof or bool(d.unconsumed_tail)


def _dechunk(data: bytes, pos: int) -> tuple[bytes, int, str]:
    """(body, position after it, the anomaly that ended it early or "")."""
    body = bytearray()
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return bytes(body), len(data), ""
        size_text = data[pos:eol].split(b";")[0].strip()
        if len(size_text) > MAX_CHUNK_DIGITS:
            return bytes(body), len(data), "chunk_size_too_long"
        try:
            size = int(size_text, 16)
        except ValueError:
            return bytes(body), len(data), "chunk_size_malformed"
        pos = eol + 2
        if size == 0:
            return bytes(body), pos + 2, ""
        body += data[pos:pos + size]
        pos += size + 2
