"""In-process BitTorrent trackers (HTTP and UDP) for the real-traffic harness.

Theory of operation
-------------------
``swarm.py`` starts one ``HttpTracker`` or ``UdpTracker`` per entry of the
spec's ``trackers`` list, inside the swarm's network namespace and in the
swarm's own process (one or two daemon threads each).  They only ever bind
to the address given in the spec (127.0.0.x or fd00::x on the namespace's
loopback).

Both kinds share the same model (``Tracker``): a swarm per info hash (the 20
bytes as received, so a hybrid torrent has two swarms, one for its v1 hash
and one for its truncated v2 hash) mapping ``(ip, port)`` to the peer's
last announce.  The IP is the source address of the request (the ``ip``
parameter is recorded but not trusted).  An announce updates the swarm and
answers with the *other* peers of that swarm (never the requester), so
sessions can find each other through the tracker alone; ``event=stopped``
removes the peer.  A tracker only serves the info hashes it was configured
with (``known``; ``None`` = any) and answers others with a failure
(HTTP ``failure reason`` / UDP error action).

HTTP (BEP 3, BEP 23 compact, BEP 7 ``peers6``, BEP 48 scrape)::

    GET /announce?info_hash=..&peer_id=..&port=..&uploaded=..&downloaded=..
        &left=..[&event=..]&numwant=..&key=..&compact=1[&no_peer_id=1]...
    GET /scrape?info_hash=..[&info_hash=..]

``compact=1`` answers IPv4 peers in ``peers`` (6 bytes each) and IPv6 peers
in ``peers6`` (18 bytes each); ``compact=0`` answers the dictionary model
(``peers`` is a list of {``peer id``, ``ip``, ``port``}, ``peer id`` left
out when ``no_peer_id=1``) with IPv4 and IPv6 peers in the same list.

UDP (BEP 15, BEP 41 options): connect / announce / scrape / error.  Over IPv4
the announce answer carries 6-byte peers, over IPv6 18-byte peers (only
peers of the request's address family, since the format cannot mix them).
Connection ids are random 64-bit numbers valid for 120 s; a request with an
unknown connection id gets an error ("invalid connection id").

Every announce and scrape the server *received* is appended to the shared
``log`` list (see ``Tracker._entry`` for the fields); UDP connect requests go
to ``connects``.  This is the ground truth the analyzer's decoded tracker
traffic is compared with.  This module has no libtorrent dependency.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import select
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import unquote_to_bytes

__all__ = ["bencode", "bdecode", "Tracker", "HttpTracker", "UdpTracker",
           "make_tracker", "tracker_url", "EVENTS_UDP"]

UDP_PROTOCOL_ID = 0x41727101980
EVENTS_UDP = {0: None, 1: "completed", 2: "started", 3: "stopped", 4: "paused"}
CONNECTION_ID_LIFETIME = 120.0


# --------------------------------------------------------------------------
# bencoding
def bencode(obj) -> bytes:
    if isinstance(obj, bool):
        obj = int(obj)
    if isinstance(obj, int):
        return b"i%de" % obj
    if isinstance(obj, str):
        obj = obj.encode()
    if isinstance(obj, (bytes, bytearray)):
        return b"%d:%s" % (len(obj), bytes(obj))
    if isinstance(obj, (list, tuple)):
        return b"l" + b"".join(bencode(x) for x in obj) + b"e"
    if isinstance(obj, dict):
        items = sorted(((k.encode() if isinstance(k, str) else bytes(k)), v)
                       for k, v in obj.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(f"cannot bencode {type(obj).__name__}")


def bdecode(data: bytes):
    """Decode one bencoded value (strings stay bytes); raises ValueError."""
    def dec(i: int):
        c = data[i:i + 1]
        if c == b"i":
            j = data.index(b"e", i)
            return int(data[i + 1:j]), j + 1
        if c == b"l":
            out, i = [], i + 1
            while data[i:i + 1] != b"e":
                v, i = dec(i)
                out.append(v)
            return out, i + 1
        if c == b"d":
            d, i = {}, i + 1
            while data[i:i + 1] != b"e":
                k, i = dec(i)
                v, i = dec(i)
                d[k] = v
            return d, i + 1
        if c.isdigit():
            j = data.index(b":", i)
            n = int(data[i:j])
            if j + 1 + n > len(data):
                raise ValueError("truncated string")
            return data[j + 1:j + 1 + n], j + 1 + n
        raise ValueError(f"bad bencoding at offset {i}")
    try:
        v, end = dec(0)
    except (IndexError, ValueError) as e:
        raise ValueError(str(e)) from None
    if end != len(data):
        raise ValueError("trailing data after bencoded value")
    return v


# --------------------------------------------------------------------------
def _host(ip: str) -> str:
    return f"[{ip}]" if ipaddress.ip_address(ip).version == 6 else ip


def tracker_url(t: dict) -> str:
    """The announce URL for tracker spec ``t`` ({kind, ip, port[, path]})."""
    if t["kind"] == "http":
        return f"http://{_host(t['ip'])}:{int(t['port'])}{t.get('path', '/announce')}"
    if t["kind"] == "udp":
        return f"udp://{_host(t['ip'])}:{int(t['port'])}{t.get('path', '')}"
    raise ValueError(f"tracker {t.get('name')}: unknown kind {t['kind']!r}")


def _compact(ip: str, port: int) -> bytes:
    return ipaddress.ip_address(ip).packed + struct.pack(">H", port)


class Tracker:
    """Swarm bookkeeping and logging shared by the HTTP and UDP servers."""

    kind = "?"
    transport = "?"

    def __init__(self, name: str, ip: str, port: int, *, log: list, connects: list | None = None,
                 known: dict[bytes, tuple[str, str]] | None = None, interval: int = 5,
                 min_interval: int | None = None, default_numwant: int = 50,
                 tracker_id: str | None = None, failure: str | None = None,
                 t0: float | None = None, peer_names: dict[str, str] | None = None) -> None:
        self.name = name
        self.ip = str(ipaddress.ip_address(ip))
        self.port = int(port)
        self.family = socket.AF_INET6 if ipaddress.ip_address(ip).version == 6 else socket.AF_INET
        self.log = log
        self.connects = connects if connects is not None else []
        # info hash (20 bytes) -> (torrent name, "v1"|"v2"); None = serve anything
        self.known = known
        self.interval = int(interval)
        self.min_interval = min_interval
        self.default_numwant = default_numwant
        self.tracker_id = tracker_id
        self.failure = failure
        self.t0 = time.monotonic() if t0 is None else t0
        self.peer_names = peer_names or {}
        self.swarms: dict[bytes, dict[tuple[str, int], dict]] = {}
        self.downloaded: dict[bytes, int] = {}
        self.lock = threading.Lock()

    # -- model -------------------------------------------------------------
    def _entry(self, request: str, client: tuple) -> dict:
        ip = str(ipaddress.ip_address(client[0].split("%")[0]))
        if ip.startswith("::ffff:"):
            ip = ip[7:]
        return {"tracker": self.name, "kind": self.kind, "transport": self.transport,
                "request": request, "time": time.time(),
                "t": round(time.monotonic() - self.t0, 6),
                "server_ip": self.ip, "server_port": self.port,
                "client_ip": ip, "client_port": int(client[1]),
                "peer": self.peer_names.get(ip)}

    def _name_hash(self, ih: bytes) -> dict:
        torrent, version = (self.known or {}).get(ih, (None, None))
        return {"torrent": torrent, "ih_version": version}

    def refuse(self, ih: bytes) -> str | None:
        """Failure reason for an announce/scrape of ``ih``, or None."""
        if self.failure:
            return self.failure
        if self.known is not None and ih not in self.known:
            return "unregistered torrent"
        return None

    def announce(self, ih: bytes, peer_id: bytes, ip: str, port: int, left: int,
                 event: str | None, numwant: int) -> dict:
        """Update the swarm; return {"peers": [(ip, port, peer_id)], complete, incomplete}."""
        with self.lock:
            swarm = self.swarms.setdefault(ih, {})
            key = (ip, port)
            if event == "stopped":
                swarm.pop(key, None)
            else:
                swarm[key] = {"peer_id": peer_id, "left": left, "last": time.monotonic()}
            if event == "completed":
                self.downloaded[ih] = self.downloaded.get(ih, 0) + 1
            if numwant < 0:
                numwant = self.default_numwant
            others = [(k[0], k[1], v["peer_id"]) for k, v in swarm.items()
                      if k != key and v["peer_id"] != peer_id]
            complete = sum(1 for v in swarm.values() if v["left"] == 0)
            return {"peers": others[:numwant] if event != "stopped" else [],
                    "complete": complete, "incomplete": len(swarm) - complete}

    def scrape_one(self, ih: bytes) -> dict:
        with self.lock:
            swarm = self.swarms.get(ih, {})
            complete = sum(1 for v in swarm.values() if v["left"] == 0)
            return {"complete": complete, "downloaded": self.downloaded.get(ih, 0),
                    "incomplete": len(swarm) - complete}

    def record(self, entry: dict) -> None:
        with self.lock:
            self.log.append(entry)

    # -- lifecycle (implemented by subclasses) ---------------------------
    def start(self) -> "Tracker":
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


# --------------------------------------------------------------------------
# HTTP
def parse_query(query: str) -> list[tuple[str, bytes]]:
    """Split a query string into (name, raw value bytes); '+' is kept as is."""
    out = []
    for part in query.split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        out.append((unquote_to_bytes(k).decode("latin-1"), unquote_to_bytes(v)))
    return out


def _int(v: bytes | None) -> int | None:
    if v is None:
        return None
    try:
        return int(v)
    except ValueError:
        return None


def _text(v: bytes | None) -> str | None:
    return None if v is None else v.decode("latin-1")


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    tracker: "HttpTracker"


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer
    server_version = "bt-analyzer-test-tracker/1.0"
    sys_version = ""

    def log_message(self, format, *args) -> None:  # noqa: A002 - keep stderr clean
        pass

    def do_GET(self) -> None:  # noqa: N802
        tr = self.server.tracker
        path, _, query = self.path.partition("?")
        last = path.rstrip("/").rsplit("/", 1)[-1]
        entry = tr._entry("announce" if last.startswith("announce") else
                          "scrape" if last.startswith("scrape") else "other",
                          self.client_address)
        entry.update({"path": path, "query": query, "http_version": self.request_version,
                      "user_agent": self.headers.get("User-Agent"),
                      "host": self.headers.get("Host")})
        try:
            params = parse_query(query)
        except Exception as e:  # pragma: no cover - malformed escapes
            params = []
            entry["parse_error"] = str(e)
        if entry["request"] == "announce":
            body = tr.http_announce(entry, params)
        elif entry["request"] == "scrape":
            body = tr.http_scrape(entry, params)
        else:
            tr.record(entry)
            self.send_error(404)
            return
        entry["response_bytes"] = len(body)
        tr.record(entry)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class HttpTracker(Tracker):
    kind = "http"
    transport = "tcp"

    def http_announce(self, entry: dict, params: list[tuple[str, bytes]]) -> bytes:
        p: dict[str, bytes] = {}
        multi: dict[str, list[str]] = {}
        for k, v in params:
            p.setdefault(k, v)
            if k in ("ipv4", "ipv6"):
                multi.setdefault(k, []).append(v.decode("latin-1"))
        ih = p.get("info_hash", b"")
        pid = p.get("peer_id", b"")
        event = _text(p.get("event")) or None
        entry.update({
            "info_hash": ih.hex(), "peer_id": pid.hex(),
            "peer_id_text": pid.decode("latin-1"),
            "port": _int(p.get("port")), "uploaded": _int(p.get("uploaded")),
            "downloaded": _int(p.get("downloaded")), "left": _int(p.get("left")),
            "corrupt": _int(p.get("corrupt")), "redundant": _int(p.get("redundant")),
            "event": event, "numwant": _int(p.get("numwant")), "key": _text(p.get("key")),
            "compact": _int(p.get("compact")), "no_peer_id": _int(p.get("no_peer_id")),
            "supportcrypto": _int(p.get("supportcrypto")), "trackerid": _text(p.get("trackerid")),
            "ip": _text(p.get("ip")), "ipv4": multi.get("ipv4", []), "ipv6": multi.get("ipv6", []),
            "params": sorted({k for k, _ in params}),
            **self._name_hash(ih),
        })
        reason = self.refuse(ih)
        if not reason and (len(ih) != 20 or entry["port"] is None):
            reason = "invalid announce: need info_hash (20 bytes) and port"
        if reason:
            entry["response"] = {"failure": reason}
            return bencode({"failure reason": reason, "interval": self.interval})
        numwant = entry["numwant"] if entry["numwant"] is not None else -1
        res = self.announce(ih, pid, entry["client_ip"], entry["port"], entry["left"] or 0,
                            event, numwant)
        resp: dict = {"interval": self.interval, "complete": res["complete"],
                      "incomplete": res["incomplete"]}
        if self.min_interval is not None:
            resp["min interval"] = int(self.min_interval)
        if self.tracker_id:
            resp["tracker id"] = self.tracker_id
        compact = entry["compact"] != 0   # default: compact (as most trackers do)
        if compact:
            v4 = [x for x in res["peers"] if ipaddress.ip_address(x[0]).version == 4]
            v6 = [x for x in res["peers"] if ipaddress.ip_address(x[0]).version == 6]
            resp["peers"] = b"".join(_compact(ip, port) for ip, port, _ in v4)
            if v6:
                resp["peers6"] = b"".join(_compact(ip, port) for ip, port, _ in v6)
            order = v4 + v6
        else:
            plist = []
            for ip, port, pid_ in res["peers"]:
                d: dict = {"ip": ip, "port": port}
                if not entry["no_peer_id"]:
                    d["peer id"] = pid_
                plist.append(d)
            resp["peers"] = plist
            order = res["peers"]
        entry["response"] = {
            "failure": None, "interval": self.interval, "min_interval": self.min_interval,
            "complete": res["complete"], "incomplete": res["incomplete"],
            "compact": compact,
            "peers": [f"{_host(ip)}:{port}" for ip, port, _ in order]}
        return bencode(resp)

    def http_scrape(self, entry: dict, params: list[tuple[str, bytes]]) -> bytes:
        ihs = [v for k, v in params if k == "info_hash"]
        entry["info_hashes"] = [ih.hex() for ih in ihs]
        entry["torrents"] = [self._name_hash(ih)["torrent"] for ih in ihs]
        if self.failure:
            entry["response"] = {"failure": self.failure}
            return bencode({"failure reason": self.failure})
        files = {ih: self.scrape_one(ih) for ih in ihs if self.refuse(ih) is None}
        entry["response"] = {"failure": None, "files": {ih.hex(): v for ih, v in files.items()}}
        return bencode({"files": files})

    def start(self) -> "HttpTracker":
        cls = type("_S", (_HttpServer,), {"address_family": self.family})
        self.httpd = cls((self.ip, self.port), _Handler)
        self.httpd.tracker = self
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.1},
                                       name=f"tracker-{self.name}", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


# --------------------------------------------------------------------------
# UDP
class UdpTracker(Tracker):
    kind = "udp"
    transport = "udp"

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.conn_ids: dict[int, tuple[float, str]] = {}   # id -> (issued, client)
        self._stop = threading.Event()

    def start(self) -> "UdpTracker":
        self.sock = socket.socket(self.family, socket.SOCK_DGRAM)
        self.sock.bind((self.ip, self.port))
        self.thread = threading.Thread(target=self._serve, name=f"tracker-{self.name}",
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            r, _, _ = select.select([self.sock], [], [], 0.1)
            if not r:
                continue
            try:
                data, addr = self.sock.recvfrom(65535)
            except OSError:
                continue
            try:
                reply = self.handle(data, addr)
            except Exception as e:  # never let a bad packet kill the tracker
                self.record({**self._entry("invalid", addr), "error": repr(e),
                             "raw": data.hex()})
                continue
            if reply is not None:
                self.sock.sendto(reply, addr)

    def _error(self, entry: dict, tid: int, msg: str) -> bytes:
        entry["response"] = {"failure": msg}
        return struct.pack(">II", 3, tid) + msg.encode()

    def _valid_conn(self, cid: int) -> bool:
        now = time.monotonic()
        with self.lock:
            for c in [c for c, v in self.conn_ids.items() if now - v[0] > CONNECTION_ID_LIFETIME]:
                del self.conn_ids[c]
            return cid in self.conn_ids

    def _issued_to(self, cid: int) -> str | None:
        with self.lock:
            v = self.conn_ids.get(cid)
        return v[1] if v else None

    def handle(self, data: bytes, addr: tuple) -> bytes | None:
        if len(data) < 16:
            self.record({**self._entry("invalid", addr), "raw": data.hex(),
                         "error": "short packet"})
            return None
        cid, action, tid = struct.unpack(">QII", data[:16])
        if action == 0:
            entry = self._entry("connect", addr)
            entry.update({"transaction_id": tid, "protocol_id": hex(cid)})
            if cid != UDP_PROTOCOL_ID:
                entry["error"] = "bad protocol id"
                with self.lock:
                    self.connects.append(entry)
                return None
            new = struct.unpack(">Q", secrets.token_bytes(8))[0]
            with self.lock:
                self.conn_ids[new] = (time.monotonic(),
                                      f"{_host(entry['client_ip'])}:{entry['client_port']}")
                entry["connection_id"] = f"{new:016x}"
                self.connects.append(entry)
            return struct.pack(">IIQ", 0, tid, new)
        if action == 1:
            return self._announce(data, addr, cid, tid)
        if action == 2:
            return self._scrape(data, addr, cid, tid)
        entry = self._entry("invalid", addr)
        entry.update({"action": action, "transaction_id": tid, "raw": data.hex()})
        reply = self._error(entry, tid, "unknown action")
        self.record(entry)
        return reply

    def _request_entry(self, kind: str, addr: tuple, cid: int, tid: int) -> dict:
        """The log entry of an announce or scrape, with the connection id it presented."""
        entry = self._entry(kind, addr)
        entry.update({"connection_id": f"{cid:016x}", "transaction_id": tid,
                      "connection_id_issued_to": self._issued_to(cid)})
        return entry

    def _announce(self, data: bytes, addr: tuple, cid: int, tid: int) -> bytes:
        entry = self._request_entry("announce", addr, cid, tid)
        if len(data) < 98:
            entry["raw"] = data.hex()
            reply = self._error(entry, tid, "short announce")
            self.record(entry)
            return reply
        ih, pid = data[16:36], data[36:56]
        downloaded, left, uploaded, ev, ip, key, numwant, port = struct.unpack(
            ">qqqIIIiH", data[56:98])
        options, url_data = self._options(data[98:])
        entry.update({
            "info_hash": ih.hex(), "peer_id": pid.hex(), "peer_id_text": pid.decode("latin-1"),
            "port": port, "uploaded": uploaded, "downloaded": downloaded, "left": left,
            "event": EVENTS_UDP.get(ev, f"unknown({ev})"), "event_code": ev,
            "numwant": numwant, "key": f"{key:08X}", "compact": None,
            "ip": str(ipaddress.IPv4Address(ip)), "options": options, "url_data": url_data,
            **self._name_hash(ih),
        })
        if not self._valid_conn(cid):
            reply = self._error(entry, tid, "invalid connection id")
        elif (reason := self.refuse(ih)):
            reply = self._error(entry, tid, reason)
        else:
            res = self.announce(ih, pid, entry["client_ip"], port, left, entry["event"], numwant)
            fam = ipaddress.ip_address(entry["client_ip"]).version
            peers = [x for x in res["peers"] if ipaddress.ip_address(x[0]).version == fam]
            entry["response"] = {
                "failure": None, "interval": self.interval, "complete": res["complete"],
                "incomplete": res["incomplete"],
                "peers": [f"{_host(ip)}:{port}" for ip, port, _ in peers]}
            reply = struct.pack(">IIIII", 1, tid, self.interval, res["incomplete"],
                                res["complete"])
            reply += b"".join(_compact(ip, port) for ip, port, _ in peers)
        self.record(entry)
        return reply

    def _scrape(self, data: bytes, addr: tuple, cid: int, tid: int) -> bytes:
        entry = self._request_entry("scrape", addr, cid, tid)
        body = data[16:]
        ihs = [body[i:i + 20] for i in range(0, len(body) - len(body) % 20, 20)]
        entry["info_hashes"] = [ih.hex() for ih in ihs]
        entry["torrents"] = [self._name_hash(ih)["torrent"] for ih in ihs]
        if not self._valid_conn(cid):
            reply = self._error(entry, tid, "invalid connection id")
        elif self.failure:
            reply = self._error(entry, tid, self.failure)
        else:
            # BEP 15 has no per-hash failure; unknown hashes scrape as zeros
            files = {ih: (self.scrape_one(ih) if self.refuse(ih) is None
                          else {"complete": 0, "downloaded": 0, "incomplete": 0}) for ih in ihs}
            entry["response"] = {"failure": None,
                                 "files": {ih.hex(): v for ih, v in files.items()}}
            reply = struct.pack(">II", 2, tid) + b"".join(
                struct.pack(">III", f["complete"], f["downloaded"], f["incomplete"])
                for f in files.values())
        self.record(entry)
        return reply

    @staticmethod
    def _options(buf: bytes) -> tuple[list, str | None]:
        """BEP 41 options: [(type, hex data)], concatenated URL data."""
        opts, url, i = [], None, 0
        while i < len(buf):
            t = buf[i]
            if t == 0:
                opts.append([0, ""])
                break
            if t == 1:
                opts.append([1, ""])
                i += 1
                continue
            if i + 1 >= len(buf):
                break
            n = buf[i + 1]
            val = buf[i + 2:i + 2 + n]
            opts.append([t, val.hex()])
            if t == 2:
                url = (url or "") + val.decode("latin-1")
            i += 2 + n
        return opts, url


def make_tracker(t: dict, **kw) -> Tracker:
    """Build (not start) the tracker for spec entry ``t``."""
    cls: Callable[..., Tracker] = {"http": HttpTracker, "udp": UdpTracker}[t["kind"]]
    interval = int(t.get("interval", 5))
    # HTTP: libtorrent assumes "min interval" 30 s when it is missing and
    # never re-announces sooner, so hand it out explicitly (UDP has no such
    # field; libtorrent fixes it at 60 s there).
    min_interval = t.get("min_interval", interval if t["kind"] == "http" else None)
    return cls(t["name"], t["ip"], int(t["port"]),
               interval=interval, min_interval=min_interval,
               default_numwant=int(t.get("default_numwant", 50)),
               tracker_id=t.get("tracker_id"), failure=t.get("failure"), **kw)


if __name__ == "__main__":  # pragma: no cover - manual use inside a namespace
    import json
    import sys
    spec = json.loads(sys.argv[1])
    log: list = []
    trackers = [make_tracker(t, log=log).start() for t in spec]
    print("ready", flush=True)
    try:
        time.sleep(float(os.environ.get("TRACKER_SECONDS", "3600")))
    finally:
        for tr in trackers:
            tr.stop()
        print(json.dumps(log, indent=1))
