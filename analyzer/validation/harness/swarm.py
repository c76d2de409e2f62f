"""Run a small BitTorrent swarm of libtorrent sessions and record ground truth.

Usage (always inside a harness network namespace, see netns.py)::

    ip netns exec NS python analyzer/validation/harness/swarm.py spec.json result.json

Theory of operation
-------------------
One process hosts one ``libtorrent.session`` per peer of the spec.  Each
session listens only on its own loopback address and binds its outgoing
sockets to that address too (``outgoing_interfaces``), so in a capture every
peer is identified by its IP.  By default DHT, LSD, UPnP and NAT-PMP are off
and there are no trackers: peers meet only through explicit
``connect_peer`` calls listed in each peer's ``connect_to``.  Discovery can
be switched on per spec (everything stays inside the namespace):

* trackers: the spec's ``trackers`` are served by ``tracker.py`` from this
  same process (threads) on their own namespace address; torrents listing
  them get their URLs in the .torrent file.  Every announce/scrape the
  servers received is written to ``tracker_log``;
* DHT: peers with ``"dht": true`` run a DHT node on their listen socket whose
  only bootstrap nodes are the other DHT peers of the spec (as routers via
  ``dht_bootstrap_nodes``, or as plain nodes via ``add_dht_node``); every DHT
  packet a node sent or received is recorded (``dht_pkt_alert``);
* LSD: peers with ``"lsd": true`` multicast BEP 14 announces on the
  namespace loopback (IPv4 only, see the notes in __init__.py).

A peer without ``connect_to`` relies on whatever discovery is enabled.

Torrent content is deterministic pseudo-random data derived from the spec's
seed.  Each torrent is created once (v1, v2 or hybrid) from the data written
under ``workdir/<first seeding peer>/``, saved as ``workdir/<name>.torrent``
and added to every peer that seeds or leeches it; other seeders get a copy of
the data, leechers start empty.

The run proceeds in phases: start trackers → add torrents → wait until
nothing is checking → force a DHT announce (DHT peers) and connect peers →
wait until every leecher is seeding (or time out with exit status 2) → let
traffic settle until the payload counters stop changing → (optionally
scrape) → snapshot the counters (per torrent and per live connection) →
(optionally write every torrent's resume data) → pause the sessions and
wait until the trackers have received the ``stopped`` announces → remove
torrents → stop trackers → write result.json.  Counters in the result come from libtorrent's torrent_status
/ peer_info and are what the analyzer's numbers are compared against.  This
module deliberately does not import ``analyzer``.

Spec (JSON)::

    {"workdir": "...", "timeout": 120, "pin_cpu": null,
     "trackers": [{"name": "h", "kind": "http"|"udp", "ip": "127.0.0.9",
                   "port": 6969,
                   "interval": 5,            # announce interval answered
                   "min_interval": interval, # HTTP "min interval"
                   "path": "/announce",      # URL path (udp: "" by default)
                   "torrents": [...],        # served torrents (default: those
                                             # listing this tracker)
                   "open": false,            # serve any info hash
                   "tracker_id": null,       # HTTP "tracker id" to hand out
                   "failure": null}],        # answer every request with this
     "scrape": false,                        # scrape every tracker at the end
     "save_resume": false,                   # write every torrent's resume data at the end
                                             # (see save_resume_files)
     "reannounce_interval": null,            # seconds: force_reannounce (all
                                             # trackers, ignoring min interval)
     "dht_bootstrap": "router"|"nodes",      # how DHT peers learn each other
     "dht_announce_interval": 10,            # libtorrent dht_announce_interval
     "lsd_interval": 5,                      # local_service_announce_interval
     "torrents": [{"name": "t1", "size": 3000000, "piece_length": 65536,
                   "version": "v1"|"v2"|"hybrid", "files": [sizes...],
                   "seed": 1, "trackers": ["h", "u"],   # optional
                   "private": false}],
     "peers": [{"name": "seed", "ip": "127.0.0.2", "port": 6881,
                "seeds": ["t1"], "leeches": [], "connect_to": [],
                "connect_delay": 0.0,      # seconds before dialling connect_to
                "upload_rate_limit": 0, "download_rate_limit": 0,
                "transports": "tcp"|"utp"|"both",
                "encryption": "disabled"|"enabled"|"forced"|"mse_plaintext",
                "enc_level": "rc4"|"plaintext"|"both",   # optional
                "pex": false,                              # optional, ut_pex
                "magnet": false,                           # optional: leech from the info hash only
                "disconnect": [{"peer": "S2", "after_download": 500000}],
                                           # optional: once this peer's torrents together
                                           # downloaded that many payload bytes, drop its
                                           # connections to that peer mid-transfer (an IP
                                           # filter: libtorrent closes them at once, blocks
                                           # in flight, and refuses the peer afterwards)
                "corrupt": {"t1": [[offset, length]]},     # optional: a seeder whose data is
                                                           # altered after its hash check
                "dht": false, "lsd": false,                # optional discovery
                "trackers": ["h"],         # optional: replaces the torrents'
                                           # tracker list for this peer
                "connect_after": null,     # optional: dial only once this
                                           # control file exists (see below)
                "settings": {...}}],                       # optional overrides
     "external": [{"name": "client", "ip": "127.0.0.4", "port": 6881,
                   "seeds": [], "leeches": ["t1"]}],       # optional, see below
     "control_dir": "<workdir>/control",
     "wait_for": []}                 # control files that must exist before
                                     # the run may end (besides leechers done)

External peers are BitTorrent clients that are not libtorrent sessions of
this process (Transmission, qBittorrent, ... driven by ``clients/``).  They
run in the same namespace; swarm.py only knows their address, so its peers
can ``connect_to`` them, and it coordinates with their driver through files
in ``control_dir``:

* swarm.py writes ``ready`` (JSON: per torrent its .torrent file and the
  directory holding its content) once its torrents are created and checked;
  content for an external seeder is written to ``workdir/<its name>/``;
* dials wait until ``connect_after`` (if given) exists there, e.g. the
  driver's ``go`` once its client listens with the torrents added;
* the transfer phase ends when every libtorrent leecher is complete *and*
  every ``wait_for`` file exists (the driver's word that its client is done);
* after the final counter snapshot swarm.py writes ``snapshot`` and waits
  for ``release`` before it pauses and removes its torrents, so the driver
  reads its client's counters while every connection is still up and idle.

``encryption`` "mse_plaintext" is out/in policy forced with allowed level
plaintext: every connection does the MSE key exchange and then selects
plaintext (the initiator's BitTorrent handshake travels RC4-encrypted as
MSE's initial payload, everything after it is in the clear).  With
"enabled", libtorrent's *first* outgoing attempt is MSE only for peers it
believes support it (``connect_peer`` marks them so; tracker/DHT/LSD peers
are dialled with a plain handshake first) and MSE then selects plaintext
unless ``prefer_rc4``; "forced" always selects RC4.

Result (JSON), besides ``torrents`` and ``peers`` (counters, connections)::

    "t0_time": epoch of the run's start ("t" fields are relative to it),
    "events": [{"t", "time", "peer", "type", "msg"[, "url", "event"]}],
              # connection, tracker (announce/reply/error/scrape) and DHT
              # alerts as libtorrent saw them
    "torrents": {name: {..., "trackers": [announce URLs in the .torrent],
                        "private": bool}},
    "peers": {name: {..., "dht": bool, "lsd": bool, "encryption": str,
              "torrents": {t: {..., "trackers": [URLs this peer announces to],
                               "connections": [{..., "source": ["tracker",
                                   "dht", "lsd", "pex", "incoming", ...]}]}},
              "dht_log": {               # DHT peers only
                  "node_ids": [hex], "announced": [info hash hex],
                  "looked_up": [info hash hex of the spec's torrents],
                  "torrent_hashes": {hex: torrent name},
                  "packets": [{"time", "dir": "in"|"out", "remote": "ip:port",
                               "size", "raw" (hex of the UDP payload), "y",
                               "t", "q", "v", "id", "info_hash", "target",
                               "token", "port", "implied_port", "values",
                               "nodes", "nodes6", "ip", "e", ...}],
                  "incoming_get_peers", "incoming_announces",
                  "outgoing_get_peers", "replies", "bootstrapped",
                  "num_packets": {"in", "out"}},
              "lsd_log": [{"time", "dir": "out", "info_hash", "port", "iface"}
                          | {"time", "dir": "in", "from", "port", "info_hash"}
                          | {"time", "msg"}]}},          # LSD peers only
    "trackers": {name: {"kind", "ip", "port", "url", "interval",
                        "served_torrents", "open"}},
    "tracker_log": [...],      # every announce/scrape received, see tracker.py
    "tracker_connects": [...], # BEP 15 connect requests received
    "stopped_announces_complete": bool,   # every started peer sent stopped
    "stop_seconds", "alerts_dropped" (only if libtorrent dropped alerts)
    "peers": {name: {"torrents": {t: {"resume": {   # spec "save_resume" only
        "path", "settled", "before", "after"}}}}}   # see save_resume_files

``tracker_log`` entries: tracker, kind (http|udp), transport (tcp|udp),
request (announce|scrape|other|invalid), time (epoch, when received), t,
server_ip/port, client_ip/port, peer (spec name of client_ip), info_hash
(40 hex, as received), torrent + ih_version (v1|v2, the truncated v2 hash),
peer_id (hex) + peer_id_text, port, uploaded, downloaded, left, event
(started|completed|stopped|paused|null), numwant, key (HTTP: as sent; UDP:
%08X), compact, response {failure, interval, complete, incomplete, peers
["ip:port" in the order answered]}; HTTP adds path, query (raw), corrupt,
redundant, no_peer_id, supportcrypto, trackerid, ip, ipv4, ipv6, params,
user_agent, http_version; UDP adds connection_id, connection_id_issued_to,
transaction_id, event_code, ip, options, url_data (BEP 41).  Scrapes carry
info_hashes/torrents and response.files instead.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import re
import shutil
import sys
import time
from pathlib import Path
from typing import NoReturn

import libtorrent as lt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tracker import bdecode, bencode, make_tracker, tracker_url  # noqa: E402

# peer_info flag bit not exported by the Python binding.
UTP_SOCKET = 0x20000

COUNTERS = ("total_payload_upload", "total_payload_download", "total_upload",
            "total_download", "total_redundant_bytes", "total_failed_bytes")

SOURCES = (("tracker", 1), ("dht", 2), ("pex", 4), ("lsd", 8), ("resume_data", 16),
           ("incoming", 32))


def fail(msg: str, code: int = 2) -> NoReturn:
    print(f"swarm.py: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


# --------------------------------------------------------------------------
# torrents
def content_files(t: dict) -> list[tuple[str, int]]:
    """(relative path, size) of the torrent's files."""
    if t.get("files"):
        return [(f"{t['name']}/file{i:02d}.bin", int(sz))
                for i, sz in enumerate(t["files"])]
    return [(t["name"], int(t["size"]))]


def write_content(t: dict, root: Path) -> None:
    rng = random.Random(int(t.get("seed", 0)))
    for rel, size in content_files(t):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "wb") as f:
            left = size
            while left:
                n = min(left, 1 << 20)
                f.write(rng.randbytes(n))
                left -= n


def corrupt_content(t: dict, root: Path, ranges: list) -> None:
    """XOR 0xFF into [offset, offset+length) of the torrent's byte space (content files in order)."""
    files = content_files(t)
    for offset, length in ranges:
        pos = 0
        for rel, size in files:
            lo, hi = max(offset, pos), min(offset + length, pos + size)
            if lo < hi:
                with open(root / rel, "r+b") as f:
                    f.seek(lo - pos)
                    data = f.read(hi - lo)
                    f.seek(lo - pos)
                    f.write(bytes(b ^ 0xFF for b in data))
            pos += size


def make_torrent(t: dict, root: Path, out: Path, trackers: list[str] = ()) -> lt.torrent_info:
    version = t.get("version", "hybrid")
    flags = {"v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only,
             "hybrid": 0}[version]
    entries = [lt.create_file_entry(rel, size) for rel, size in content_files(t)]
    ct = lt.create_torrent(entries, int(t.get("piece_length", 65536)), flags)
    ct.set_creator("bt-analyzer test harness")
    for tier, url in enumerate(trackers):
        ct.add_tracker(url, tier)
    if t.get("private"):
        ct.set_priv(True)
    lt.set_piece_hashes(ct, str(root))
    data = lt.bencode(ct.generate())
    out.write_bytes(data)
    return lt.torrent_info(data)


def without_trackers(torrent_file: Path) -> lt.torrent_info:
    """The torrent of ``torrent_file`` with its announce URLs removed."""
    d = bdecode(torrent_file.read_bytes())
    d.pop(b"announce", None)
    d.pop(b"announce-list", None)
    return lt.torrent_info(bencode(d))


def hashes(ti: lt.torrent_info, version: str) -> dict:
    ih = ti.info_hashes()
    d: dict = {"version": version}
    if ih.has_v1():
        d["info_hash_v1"] = str(ih.v1)
    if ih.has_v2():
        d["info_hash_v2"] = str(ih.v2)
    # The 20 bytes a BitTorrent handshake carries.
    if ih.has_v1() and ih.has_v2():
        d["handshake_info_hash"] = [str(ih.v1), str(ih.v2)[:40]]
    elif ih.has_v1():
        d["handshake_info_hash"] = str(ih.v1)
    else:
        d["handshake_info_hash"] = str(ih.v2)[:40]
    return d


def announce_hashes(entry: dict) -> dict[str, str]:
    """{20-byte info hash (hex) a tracker/DHT/LSD announce carries: "v1"|"v2"}."""
    out = {}
    if "info_hash_v1" in entry:
        out[entry["info_hash_v1"]] = "v1"
    if "info_hash_v2" in entry:
        out[entry["info_hash_v2"][:40]] = "v2"
    return out


# --------------------------------------------------------------------------
# sessions
def endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ipaddress.ip_address(ip).version == 6 else f"{ip}:{port}"


def family(ip: str) -> int:
    return ipaddress.ip_address(ip).version


def dht_neighbours(p: dict, peers: list[dict]) -> list[dict]:
    """The other DHT peers of ``p``'s address family (its only DHT contacts)."""
    return [q for q in peers if q is not p and q.get("dht")
            and family(q["ip"]) == family(p["ip"])]


def session_settings(p: dict, spec: dict | None = None) -> dict:
    spec = spec or {}
    peers = spec.get("peers", [p])
    tr = p.get("transports", "tcp")
    if tr not in ("tcp", "utp", "both"):
        fail(f"peer {p['name']}: bad transports {tr!r}")
    enc = p.get("encryption", "disabled")
    if enc not in ("disabled", "enabled", "forced", "mse_plaintext"):
        fail(f"peer {p['name']}: bad encryption {enc!r}")
    policy = {"disabled": lt.enc_policy.pe_disabled, "enabled": lt.enc_policy.pe_enabled,
              "forced": lt.enc_policy.pe_forced,
              "mse_plaintext": lt.enc_policy.pe_forced}[enc]
    level = p.get("enc_level", {"forced": "rc4", "mse_plaintext": "plaintext"}.get(enc, "both"))
    level = {"rc4": lt.enc_level.pe_rc4, "plaintext": lt.enc_level.pe_plaintext,
             "both": lt.enc_level.pe_both}[level]
    up = int(p.get("upload_rate_limit", 0))
    down = int(p.get("download_rate_limit", 0))
    dht = bool(p.get("dht", False))
    lsd = bool(p.get("lsd", False))
    mask = (lt.alert_category.error | lt.alert_category.status | lt.alert_category.connect
            | lt.alert_category.tracker)
    if dht:
        # dht_log is needed for dht_pkt_alert (every DHT packet, both ways)
        mask |= lt.alert_category.dht | lt.alert_category.dht_operation | lt.alert_category.dht_log
    if lsd:
        # LSD traffic is only visible in the session log ("==> LSD: ...")
        mask |= lt.alert_category.session_log
    bootstrap = ""
    if dht and spec.get("dht_bootstrap", "router") == "router":
        bootstrap = ",".join(endpoint(q["ip"], int(q["port"])) for q in dht_neighbours(p, peers))
    s = {
        # isolation: discovery only where the spec asks for it, and then
        # only towards addresses inside the namespace (never libtorrent's
        # default DHT routers)
        "enable_dht": dht, "enable_lsd": lsd, "enable_upnp": False,
        "enable_natpmp": False, "dht_bootstrap_nodes": bootstrap,
        "listen_interfaces": endpoint(p["ip"], int(p["port"])),
        "outgoing_interfaces": p["ip"],
        "listen_system_port_fallback": False,
        "alert_mask": int(mask),
        "alert_queue_size": 20000,
        "peer_fingerprint": "-LT2110-",
        # transports
        "enable_outgoing_tcp": tr in ("tcp", "both"),
        "enable_incoming_tcp": tr in ("tcp", "both"),
        "enable_outgoing_utp": tr in ("utp", "both"),
        "enable_incoming_utp": tr in ("utp", "both"),
        # encryption
        "out_enc_policy": int(policy), "in_enc_policy": int(policy),
        "allowed_enc_level": int(level), "prefer_rc4": enc == "forced",
        # many sessions share 127.0.0.0/8; be fast on a local swarm
        "allow_multiple_connections_per_ip": True,
        "upload_rate_limit": up, "download_rate_limit": down,
        # 127/8 counts as a local network, which is unlimited by default
        "ignore_limits_on_local_network": not (up or down),
        "unchoke_slots_limit": -1,
        # keep finished peers connected so per-connection counters can be
        # read at the end (libtorrent would close seed<->seed connections)
        "close_redundant_connections": False,
        "min_reconnect_time": 1,
        # uTP gives a connection up when one packet is lost (or its ACK is) on
        # utp_num_resends (3) transmissions: under 2% random loss each way that
        # is 1-3% of 2 MB runs.  The giving-up side closes silently and the
        # other, with nothing in flight, would only notice at the next
        # keep-alive (peer_timeout 120 s): the run times out.  6 transmissions
        # make that about 1e-7 per run; what is sent and counted is unchanged.
        "utp_num_resends": 6,
        "peer_connect_timeout": 5,
        "request_timeout": 10,
        "piece_timeout": 5,
        "connection_speed": 50,
        # trackers: announce to every tracker (not just the first working
        # one of the first tier), honour short intervals (libtorrent clamps
        # the tracker's interval to min_announce_interval, default 300 s),
        # and allow /scrape on loopback (ssrf_mitigation only lets loopback
        # requests through whose path starts with /announce)
        "announce_to_all_trackers": True, "announce_to_all_tiers": True,
        "min_announce_interval": 1,
        "ssrf_mitigation": False,
        # DHT: all nodes share 127.0.0.0/24 (or one /64), which the default
        # one-node-per-subnet restrictions would reduce to a single node
        "dht_restrict_routing_ips": False, "dht_restrict_search_ips": False,
        "dht_announce_interval": int(spec.get("dht_announce_interval", 10)),
        "local_service_announce_interval": int(spec.get("lsd_interval", 5)),
    }
    s.update(p.get("settings", {}))
    if s.get("enable_dht"):
        for n in filter(None, str(s.get("dht_bootstrap_nodes", "")).split(",")):
            host = n.rsplit(":", 1)[0].strip("[] ")
            try:
                ok = ipaddress.ip_address(host).is_loopback or ipaddress.ip_address(host) in \
                    ipaddress.ip_network("fd00::/8")
            except ValueError:
                ok = False
            if not ok:
                fail(f"peer {p['name']}: DHT bootstrap node {n!r} is outside the namespace")
    return s


def make_session(p: dict, spec: dict | None = None) -> lt.session:
    """A session for peer ``p`` with its DHT still off (see main())."""
    s = session_settings(p, spec)
    return lt.session({**s, "enable_dht": False})


def payload(snap: dict) -> dict:
    return {(p, t): (c["total_payload_upload"], c["total_payload_download"])
            for p, ts in snap.items() for t, c in ts.items()}


def snapshot(handles: dict) -> dict:
    out: dict = {}
    for (peer, tname), h in handles.items():
        st = h.status()
        d = {c: int(getattr(st, c)) for c in COUNTERS}
        d["is_seeding"] = bool(st.is_seeding)
        d["num_pieces"] = int(st.num_pieces)
        out.setdefault(peer, {})[tname] = d
    return out


class ConnectionLog:
    """Per-connection payload counters, polled while the swarm runs.

    libtorrent forgets a connection's counters when it closes, so the log
    keeps the last values seen for every connection (keyed by its local and
    remote endpoints).  ``open_at_end`` tells whether the final numbers were
    read while the connection was still open (exact) or are the last poll
    before it closed (a lower bound).  ``source`` lists how libtorrent
    learned the peer (tracker, dht, lsd, pex, incoming, ...).  A connection
    to a peer libtorrent was connected to before starts from the earlier
    connections' totals rounded down to KiB (its peer-list entry's
    ``prev_amount_*``): only a peer's first connection counts from zero.
    """

    def __init__(self, peers: list[dict]) -> None:
        self.by_ip = {str(ipaddress.ip_address(p["ip"])): p["name"] for p in peers}
        self.conns: dict[tuple, dict] = {}

    def poll(self, handles: dict, final: bool = False) -> None:
        seen = set()
        for (peer, tname), h in handles.items():
            for pi in h.get_peer_info():
                flags = int(pi.flags)
                if flags & int(lt.peer_info.connecting):
                    continue
                remote, local = tuple(pi.ip), tuple(pi.local_endpoint())
                key = (peer, tname, remote, local)
                seen.add(key)
                c = self.conns.setdefault(key, {
                    "remote_peer": self.by_ip.get(str(ipaddress.ip_address(remote[0]))),
                    "remote": list(remote), "local": list(local),
                    "outgoing": bool(flags & int(lt.peer_info.outgoing_connection)),
                })
                src = int(pi.source)
                c.update({
                    "transport": "utp" if flags & UTP_SOCKET else "tcp",
                    "rc4_encrypted": bool(flags & int(lt.peer_info.rc4_encrypted)),
                    "plaintext_encrypted": bool(flags & int(lt.peer_info.plaintext_encrypted)),
                    "payload_download": int(pi.total_download),
                    "payload_upload": int(pi.total_upload),
                    "client": pi.client if isinstance(pi.client, str) else "",
                    "source": [n for n, bit in SOURCES if src & bit],
                })
        if final:
            for key, c in self.conns.items():
                c["open_at_end"] = key in seen

    def for_torrent(self, peer: str, tname: str) -> list[dict]:
        return [c for (p, t, _, _), c in self.conns.items() if (p, t) == (peer, tname)]


# --------------------------------------------------------------------------
# alerts
def _alert_types(*names: str) -> tuple:
    return tuple(getattr(lt, n) for n in names if hasattr(lt, n))


EVENT_ALERTS = _alert_types(
    "peer_disconnected_alert", "peer_error_alert", "hash_failed_alert", "torrent_error_alert",
    "listen_failed_alert", "file_error_alert", "peer_connect_alert", "incoming_connection_alert",
    "tracker_announce_alert", "tracker_reply_alert", "tracker_error_alert",
    "tracker_warning_alert", "scrape_reply_alert", "scrape_failed_alert",
    "dht_reply_alert", "dht_bootstrap_alert", "dht_error_alert",
    "lsd_peer_alert", "lsd_error_alert", "udp_error_alert")
TRACKER_EVENTS = {0: None, 1: "completed", 2: "started", 3: "stopped", 4: "paused"}
_PKT = re.compile(r"^(<==|==>) \[(.*?)\] ")
_LSD_OUT = re.compile(r"==> LSD: ih: ([0-9a-f]{40}) port: (\d+) \[iface: (.*)\]")
_LSD_IN = re.compile(r"<== LSD: (\S+):(\d+) ih: ([0-9a-f]{40})")


def _alert_time(a) -> float:
    try:
        return round(a.timestamp().timestamp(), 6)
    except Exception:  # pragma: no cover - binding without timestamp()
        return round(time.time(), 6)


def _ep_text(ip: bytes, port: int) -> str:
    return endpoint(str(ipaddress.ip_address(ip)), port)


def decode_krpc(buf: bytes) -> dict:
    """A DHT (KRPC, BEP 5) packet as JSON-able fields; ``raw`` is the hex."""
    d: dict = {"size": len(buf), "raw": buf.hex()}
    try:
        m = bdecode(buf)
    except ValueError:
        d["undecodable"] = True
        return d
    if not isinstance(m, dict):
        d["undecodable"] = True
        return d

    def txt(v):
        return v.decode("latin-1") if isinstance(v, bytes) else v

    d["y"] = txt(m.get(b"y"))
    d["t"] = m.get(b"t", b"").hex()
    if b"v" in m:
        d["v"] = m[b"v"].hex()
    if isinstance(m.get(b"ip"), bytes) and len(m[b"ip"]) in (6, 18):
        d["ip"] = _ep_text(m[b"ip"][:-2], int.from_bytes(m[b"ip"][-2:], "big"))
    body: dict = {}
    if d["y"] == "q":
        d["q"] = txt(m.get(b"q"))
        body = m.get(b"a", {})
    elif d["y"] == "r":
        body = m.get(b"r", {})
    elif d["y"] == "e":
        e = m.get(b"e", [])
        d["e"] = [txt(x) for x in e] if isinstance(e, list) else txt(e)
    if not isinstance(body, dict):
        return d
    for k in (b"id", b"info_hash", b"target", b"token"):
        if isinstance(body.get(k), bytes):
            d[k.decode()] = body[k].hex()
    for k in (b"port", b"implied_port", b"seed", b"noseed", b"bs", b"p", b"scrape"):
        if isinstance(body.get(k), int):
            d[k.decode()] = body[k]
    if isinstance(body.get(b"values"), list):
        d["values"] = [_ep_text(v[:-2], int.from_bytes(v[-2:], "big"))
                       for v in body[b"values"] if isinstance(v, bytes) and len(v) in (6, 18)]
    for k, size in ((b"nodes", 26), (b"nodes6", 38)):
        v = body.get(k)
        if isinstance(v, bytes):
            d[k.decode()] = [
                {"id": v[i:i + 20].hex(),
                 "endpoint": _ep_text(v[i + 20:i + size - 2],
                                      int.from_bytes(v[i + size - 2:i + size], "big"))}
                for i in range(0, len(v) - size + 1, size)]
    return d


class Recorder:
    """Pops every session's alerts and keeps what the result needs.

    ``events`` is a readable log (connections, tracker and DHT alerts);
    ``dht[peer]`` holds that peer's DHT ground truth: every packet its node
    sent or received (``dht_pkt_alert``; time is libtorrent's alert time),
    its node ids, and the info hashes it announced / looked up.
    """

    def __init__(self, peers: list[dict], ih_names: dict[str, tuple[str, str]], t0: float) -> None:
        self.t0 = t0
        self.ih_names = ih_names
        self.events: list[dict] = []
        self.dht: dict[str, dict] = {
            p["name"]: {"packets": [], "incoming_get_peers": [], "incoming_announces": [],
                        "outgoing_get_peers": [], "replies": [], "bootstrapped": None}
            for p in peers if p.get("dht")}
        self.dropped: dict[str, int] = {}
        self.lsd: dict[str, list] = {p["name"]: [] for p in peers if p.get("lsd")}

    def pump(self, sessions: dict) -> None:
        for name, ses in sessions.items():
            for a in ses.pop_alerts():
                self.handle(name, a)

    def handle(self, name: str, a) -> None:
        if isinstance(a, lt.dht_log_alert):
            return
        if isinstance(a, lt.log_alert):
            if name in self.lsd and "LSD" in (msg := a.message()):
                if (m := _LSD_OUT.search(msg)):
                    self.lsd[name].append({"time": _alert_time(a), "dir": "out",
                                           "info_hash": m.group(1), "port": int(m.group(2)),
                                           "iface": m.group(3)})
                elif (m := _LSD_IN.search(msg)):
                    self.lsd[name].append({"time": _alert_time(a), "dir": "in",
                                           "from": m.group(1), "port": int(m.group(2)),
                                           "info_hash": m.group(3)})
                else:
                    self.lsd[name].append({"time": _alert_time(a), "msg": msg})
            return
        if isinstance(a, lt.alerts_dropped_alert):
            self.dropped[name] = self.dropped.get(name, 0) + 1
        d = self.dht.get(name)
        if d is not None:
            if isinstance(a, lt.dht_pkt_alert):
                m = _PKT.match(a.message())
                pkt = {"time": _alert_time(a),
                       "dir": ("in" if m.group(1) == "<==" else "out") if m else None,
                       "remote": m.group(2) if m else None}
                pkt.update(decode_krpc(bytes(a.pkt_buf)))
                d["packets"].append(pkt)
                return
            if isinstance(a, lt.dht_get_peers_alert):
                d["incoming_get_peers"].append({"time": _alert_time(a),
                                                "info_hash": str(a.info_hash)})
                return
            if isinstance(a, lt.dht_announce_alert):
                d["incoming_announces"].append({"time": _alert_time(a),
                                                "info_hash": str(a.info_hash),
                                                "ip": str(a.ip), "port": int(a.port)})
                return
            if isinstance(a, lt.dht_outgoing_get_peers_alert):
                ep = a.endpoint
                d["outgoing_get_peers"].append({
                    "time": _alert_time(a), "info_hash": str(a.info_hash),
                    "obfuscated_info_hash": str(a.obfuscated_info_hash),
                    "endpoint": endpoint(str(ep[0]), int(ep[1]))})
                return
            if isinstance(a, lt.dht_reply_alert):
                d["replies"].append({"time": _alert_time(a), "num_peers": int(a.num_peers)})
            if isinstance(a, lt.dht_bootstrap_alert) and d["bootstrapped"] is None:
                d["bootstrapped"] = round(time.monotonic() - self.t0, 3)
        if isinstance(a, EVENT_ALERTS):
            ev = {"t": round(time.monotonic() - self.t0, 3), "time": _alert_time(a),
                  "peer": name, "type": type(a).__name__, "msg": a.message()}
            if isinstance(a, lt.tracker_alert):
                ev["url"] = a.tracker_url()
            if isinstance(a, lt.tracker_announce_alert):
                ev["event"] = TRACKER_EVENTS.get(int(a.event), int(a.event))
            self.events.append(ev)

    def dht_result(self, name: str) -> dict:
        d = dict(self.dht[name])
        out = [p for p in d["packets"] if p.get("dir") == "out"]
        d["node_ids"] = sorted({p["id"] for p in out if "id" in p})
        d["announced"] = sorted({p["info_hash"] for p in out
                                 if p.get("q") == "announce_peer" and "info_hash" in p})
        d["looked_up"] = sorted({p["info_hash"] for p in out
                                 if p.get("q") == "get_peers" and "info_hash" in p
                                 and p["info_hash"] in self.ih_names})
        d["torrent_hashes"] = {ih: self.ih_names[ih][0]
                               for ih in set(d["announced"]) | set(d["looked_up"])}
        d["num_packets"] = {"in": sum(1 for p in d["packets"] if p.get("dir") == "in"),
                            "out": len(out)}
        return d


def wait_listening(ses: lt.session, name: str, deadline: float, rec: Recorder) -> None:
    while time.monotonic() < deadline:
        for a in ses.pop_alerts():
            if isinstance(a, lt.listen_failed_alert):
                fail(f"peer {name}: listen failed: {a.message()}")
            if isinstance(a, lt.listen_succeeded_alert):
                return
            rec.handle(name, a)
        ses.wait_for_alert(100)
    fail(f"peer {name}: no listen_succeeded_alert")


# --------------------------------------------------------------------------
# trackers
def start_trackers(spec: dict, result: dict, t0: float) -> tuple[list, list, list]:
    """Start the spec's trackers; return (trackers, log, connects)."""
    log: list = []
    connects: list = []
    trackers = []
    peer_names = {str(ipaddress.ip_address(p["ip"])): p["name"] for p in spec["peers"]}
    for t in spec.get("trackers", []):
        if not ipaddress.ip_address(t["ip"]).is_loopback and \
                ipaddress.ip_address(t["ip"]) not in ipaddress.ip_network("fd00::/8"):
            fail(f"tracker {t['name']}: {t['ip']} is not a namespace loopback address")
        served = t.get("torrents")
        if served is None:
            served = [x["name"] for x in spec["torrents"] if t["name"] in x.get("trackers", [])]
        known = None
        if not t.get("open"):
            known = {}
            for tname in served:
                if tname not in result["torrents"]:
                    fail(f"tracker {t['name']}: unknown torrent {tname!r}")
                for ih, ver in announce_hashes(result["torrents"][tname]).items():
                    known[bytes.fromhex(ih)] = (tname, ver)
        tr = make_tracker(t, log=log, connects=connects, known=known, t0=t0,
                          peer_names=peer_names)
        try:
            tr.start()
        except OSError as e:
            fail(f"tracker {t['name']}: cannot bind {t['ip']}:{t['port']}: {e}")
        trackers.append(tr)
        result["trackers"][t["name"]] = {
            "kind": t["kind"], "ip": t["ip"], "port": int(t["port"]), "url": tracker_url(t),
            "interval": tr.interval, "served_torrents": served, "open": bool(t.get("open"))}
    return trackers, log, connects


class Reannouncer:
    """Periodic ``force_reannounce`` (spec ``reannounce_interval``).

    libtorrent never re-announces sooner than the tracker's min interval:
    HTTP "min interval" (30 s if absent) and, for UDP, a fixed 60 s.  To get
    regular (event-less) announces into short captures the harness forces
    them, ignoring the min interval.
    """

    def __init__(self, spec: dict, handles: dict) -> None:
        self.every = spec.get("reannounce_interval")
        self.handles = handles
        self.next = time.monotonic() + (self.every or 0)

    def tick(self) -> None:
        if not self.every or time.monotonic() < self.next:
            return
        self.next = time.monotonic() + float(self.every)
        for h in self.handles.values():
            if h.trackers():
                h.force_reannounce(0, -1, lt.reannounce_flags_t.ignore_min_interval)


class Disconnects:
    """The spec's ``disconnect`` entries: once a peer's torrents have downloaded
    ``after_download`` payload bytes, its session gets an IP filter blocking the
    other peer's address, so libtorrent closes those connections at once (data
    in flight arrives after the close) and refuses the peer from then on."""

    def __init__(self, peers: list, by_name: dict, sessions: dict, handles: dict) -> None:
        self.pending = []
        for p in peers:
            for d in p.get("disconnect", []):
                if d["peer"] not in by_name:
                    fail(f"peer {p['name']}: disconnect from unknown peer {d['peer']!r}")
                self.pending.append((p["name"], d["peer"], by_name[d["peer"]]["ip"], int(d["after_download"])))
        self.sessions = sessions
        self.handles = handles
        self.blocked: dict = {}
        self.done: list = []

    def tick(self, rec) -> None:
        for entry in list(self.pending):
            name, other, ip, after = entry
            got = sum(int(h.status().total_payload_download) for (pn, _), h in self.handles.items() if pn == name)
            if got < after:
                continue
            f = lt.ip_filter()
            blocked = self.blocked.setdefault(name, [])
            blocked.append(ip)
            for b in blocked:
                f.add_rule(b, b, 1)
            self.sessions[name].set_ip_filter(f)
            self.pending.remove(entry)
            self.done.append({"peer": name, "from": other, "ip": ip, "after_download": after,
                              "downloaded": got, "t": round(time.monotonic() - rec.t0, 3)})


def missing_stopped(log: list) -> list:
    """(tracker, client ip, info hash) that announced ``started`` successfully
    but whose ``stopped`` the tracker has not received (yet)."""
    started, stopped = set(), set()
    for e in list(log):
        if e.get("request") != "announce":
            continue
        key = (e["tracker"], e["client_ip"], e.get("info_hash"))
        if e.get("event") == "started" and (e.get("response") or {}).get("failure") is None:
            started.add(key)
        elif e.get("event") == "stopped":
            stopped.add(key)
    return sorted(started - stopped)


def diagnostics(sessions: dict, handles: dict, rec: "Recorder") -> dict:
    """What a stalled run looks like from inside: every live connection's state,
    each session's uTP/UDP counters and the last events (for timeout reports)."""
    out: dict = {"events": rec.events[-30:], "sessions": {}, "connections": {}}
    names = [m.name for m in lt.session_stats_metrics()
             if m.name.startswith("utp.") or m.name in ("net.on_udp_counter", "peer.num_peers_connected")]
    index = {m.name: m.value_index for m in lt.session_stats_metrics()}
    for name, ses in sessions.items():
        ses.post_session_stats()
        end = time.monotonic() + 2
        while time.monotonic() < end:
            found = [a for a in ses.pop_alerts() if isinstance(a, lt.session_stats_alert)]
            if found:
                vals = found[-1].values
                out["sessions"][name] = {n: int(vals[n]) if isinstance(vals, dict) else int(vals[index[n]])
                                         for n in names}
                break
            ses.wait_for_alert(100)
    # the namespace's view: sockets' queues (ss) and UDP/TCP error counters
    try:
        import subprocess
        out["sockets"] = subprocess.run(["ss", "-tuanmi"], capture_output=True, text=True,
                                        timeout=5).stdout.splitlines()
        out["snmp"] = [line for line in Path("/proc/net/snmp").read_text().splitlines()
                       if line.startswith(("Udp:", "Tcp:"))]
    except (OSError, subprocess.SubprocessError) as e:
        out["sockets"] = [f"ss failed: {e}"]
    for (peer, tname), h in handles.items():
        out["connections"][f"{peer}/{tname}"] = [{
            "remote": f"{pi.ip[0]}:{pi.ip[1]}", "flags": hex(int(pi.flags)),
            "utp": bool(int(pi.flags) & UTP_SOCKET),
            "download_queue": pi.download_queue_length, "upload_queue": pi.upload_queue_length,
            "requests_in_flight": pi.num_pieces and pi.download_queue_length,
            "send_buffer": pi.used_send_buffer, "receive_buffer": pi.used_receive_buffer,
            "last_request_ms": int(pi.last_request.total_seconds() * 1000)
            if hasattr(pi.last_request, "total_seconds") else str(pi.last_request),
            "last_active_ms": int(pi.last_active.total_seconds() * 1000)
            if hasattr(pi.last_active, "total_seconds") else str(pi.last_active),
            "payload_down": int(pi.total_download), "payload_up": int(pi.total_upload),
        } for pi in h.get_peer_info()]
    return out


class Control:
    """Files in ``control_dir`` shared with the driver of external peers."""

    def __init__(self, spec: dict, workdir: Path, deadline: float) -> None:
        self.dir = Path(spec.get("control_dir") or workdir / "control")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.wait_for = list(spec.get("wait_for", []))
        self.deadline = deadline

    def exists(self, name: str) -> bool:
        return (self.dir / name).exists()

    def missing(self) -> list[str]:
        return [n for n in self.wait_for if not self.exists(n)]

    def write(self, name: str, data: dict) -> None:
        tmp = self.dir / f".{name}.tmp"
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.rename(self.dir / name)     # atomic: the reader never sees half a file

    def wait(self, name: str, until: float, tick) -> None:
        while not self.exists(name):
            if time.monotonic() > until:
                fail(f"control file {name!r} did not appear in {self.dir}")
            tick()
            time.sleep(0.05)


# --------------------------------------------------------------------------
# resume data (spec "save_resume")
def _status_fields(st) -> dict:
    def posix(v) -> int:       # the binding gives datetimes (None: never) for last_upload/last_download
        return int(v.timestamp()) if hasattr(v, "timestamp") else int(v or 0)

    return {"all_time_upload": int(st.all_time_upload), "all_time_download": int(st.all_time_download),
            "total_payload_upload": int(st.total_payload_upload),
            "total_payload_download": int(st.total_payload_download),
            "active_seconds": int(st.active_duration.total_seconds()),
            "finished_seconds": int(st.finished_duration.total_seconds()),
            "seeding_seconds": int(st.seeding_duration.total_seconds()),
            "added_time": int(st.added_time), "completed_time": int(st.completed_time),
            "last_upload": posix(st.last_upload), "last_download": posix(st.last_download),
            "num_pieces": int(st.num_pieces), "pieces": "".join("1" if b else "0" for b in st.pieces),
            "name": st.name, "save_path": st.save_path}


def save_resume_files(sessions: dict, handles: dict, workdir: Path, rec: "Recorder") -> dict:
    """Every torrent's resume data, as a libtorrent client writes it when it stops: ``save_resume_data``,
    then ``write_resume_data_buf`` of the alert's parameters into
    ``<workdir>/<peer>/resume/<info hash>.resume`` (v1 hash, else v2).

    libtorrent adds the payload of each second to its lifetime counters (all_time_*) at its one-second
    tick, so first wait (3 s at most) until they equal this session's payload totals; ``settled`` says
    whether they did.  The torrent's status is read just before the request and just after the alert:
    the file's counters are those of that moment.  Returns {(peer, torrent): {"path", "settled",
    "before", "after"}}."""
    end = time.monotonic() + 3
    settled = False
    while not settled and time.monotonic() < end:
        rec.pump(sessions)
        settled = all(st.all_time_upload == st.total_payload_upload
                      and st.all_time_download == st.total_payload_download
                      for st in (h.status() for h in handles.values()))
        if not settled:
            time.sleep(0.1)
    out = {}
    for (peer, tname), h in handles.items():
        ses = sessions[peer]
        before = _status_fields(h.status())
        h.save_resume_data(lt.torrent_handle.save_info_dict)
        params, deadline = None, time.monotonic() + 10
        while params is None and time.monotonic() < deadline:
            ses.wait_for_alert(100)
            for a in ses.pop_alerts():
                if isinstance(a, lt.save_resume_data_alert) and a.handle == h:
                    params = a.params
                elif isinstance(a, lt.save_resume_data_failed_alert) and a.handle == h:
                    fail(f"peer {peer} torrent {tname}: save_resume_data failed: {a.message()}")
                else:
                    rec.handle(peer, a)
        if params is None:
            fail(f"peer {peer} torrent {tname}: no save_resume_data_alert within 10 s")
        after = _status_fields(h.status())
        ih = params.info_hashes
        path = workdir / peer / "resume" / f"{ih.v1 if ih.has_v1() else ih.v2}.resume"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(lt.write_resume_data_buf(params))
        out[(peer, tname)] = {"path": str(path), "settled": settled, "before": before, "after": after}
    return out


def main(spec_path: str, result_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    if spec.get("pin_cpu") is not None:
        # One CPU => one loopback backlog queue => no reordering between
        # segments sent from different CPUs (e.g. data vs. softirq ACKs).
        os.sched_setaffinity(0, {int(spec["pin_cpu"])})
    workdir = Path(spec["workdir"])
    workdir.mkdir(parents=True, exist_ok=True)
    timeout = float(spec.get("timeout", 120))
    peers = spec["peers"]
    external = list(spec.get("external", []))
    t0 = time.monotonic()
    deadline = t0 + timeout
    by_name = {p["name"]: p for p in [*peers, *external]}
    control = Control(spec, workdir, deadline) if external or spec.get("wait_for") else None
    tracker_specs = {t["name"]: t for t in spec.get("trackers", [])}
    for t in spec.get("trackers", []):
        if t.get("kind") not in ("http", "udp"):
            fail(f"tracker {t.get('name')}: kind must be 'http' or 'udp'")

    def urls(names: list[str], who: str) -> list[str]:
        for n in names:
            if n not in tracker_specs:
                fail(f"{who}: unknown tracker {n!r}")
        return [tracker_url(tracker_specs[n]) for n in names]

    # ---- torrents -------------------------------------------------------
    tinfos: dict[str, lt.torrent_info] = {}
    result: dict = {"torrents": {}, "peers": {}, "events": [], "trackers": {},
                    "t0_time": round(time.time() - (time.monotonic() - t0), 6)}
    for t in spec["torrents"]:
        seeders = [p["name"] for p in [*peers, *external] if t["name"] in p.get("seeds", [])]
        if not seeders:
            fail(f"torrent {t['name']} has no seeding peer")
        first = workdir / seeders[0]
        write_content(t, first)
        for other in seeders[1:]:
            for rel, _ in content_files(t):
                dst = workdir / other / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(first / rel, dst)
        tfile = workdir / f"{t['name']}.torrent"
        turls = urls(t.get("trackers", []), f"torrent {t['name']}")
        ti = make_torrent(t, first, tfile, turls)
        tinfos[t["name"]] = ti
        result["torrents"][t["name"]] = {
            **hashes(ti, t.get("version", "hybrid")),
            "piece_length": ti.piece_length(), "num_pieces": ti.num_pieces(),
            # content bytes; libtorrent's total_size() also counts the pad
            # files it adds (v2 torrents get tail padding internally)
            "total_size": ti.size_on_disk(), "lt_total_size": ti.total_size(),
            "torrent_file": str(tfile),
            "files": [{"path": rel, "size": sz} for rel, sz in content_files(t)],
            "trackers": turls, "private": bool(t.get("private")),
            "content_dir": str(first),
        }
    ih_names = {ih: (tn, ver) for tn, e in result["torrents"].items()
                for ih, ver in announce_hashes(e).items()}

    # ---- trackers ---------------------------------------------------------
    trackers, tracker_log, tracker_connects = start_trackers(spec, result, t0)

    # ---- sessions -------------------------------------------------------
    rec = Recorder(peers, ih_names, t0)
    sessions: dict[str, lt.session] = {}
    for p in peers:
        sessions[p["name"]] = make_session(p, spec)
    for name, ses in sessions.items():
        wait_listening(ses, name, deadline, rec)
    # DHT nodes start only now that every peer's UDP socket exists; started
    # with its session, a node's first bootstrap queries would hit ports not
    # yet open (ICMP port unreachable in the capture).
    for p in peers:
        if session_settings(p, spec)["enable_dht"]:
            sessions[p["name"]].apply_settings({"enable_dht": True})
    if spec.get("dht_bootstrap", "router") == "nodes":
        for p in peers:
            if p.get("dht"):
                for q in dht_neighbours(p, peers):
                    sessions[p["name"]].add_dht_node((q["ip"], int(q["port"])))
    elif spec.get("dht_bootstrap", "router") != "router":
        fail("dht_bootstrap must be 'router' or 'nodes'")

    handles: dict[tuple[str, str], lt.torrent_handle] = {}
    specs = {t["name"]: t for t in spec["torrents"]}
    for p in peers:
        (workdir / p["name"]).mkdir(exist_ok=True)
        for tname in p.get("leeches", []):
            # leechers start empty, even in a reused workdir
            if tname in specs:
                for rel, _ in content_files(specs[tname]):
                    (workdir / p["name"] / rel).unlink(missing_ok=True)
        for tname in list(p.get("seeds", [])) + list(p.get("leeches", [])):
            if tname not in tinfos:
                fail(f"peer {p['name']}: unknown torrent {tname!r}")
            atp = lt.add_torrent_params()
            if p.get("magnet") and tname in p.get("leeches", []):
                # a magnet link: only the info hashes; the metadata comes from peers (BEP 9)
                atp.info_hashes = lt.torrent_info(tinfos[tname]).info_hashes()
            elif "trackers" in p:
                atp.ti = without_trackers(workdir / f"{tname}.torrent")
                atp.trackers = urls(p["trackers"], f"peer {p['name']}")
                atp.tracker_tiers = list(range(len(p["trackers"])))
            else:
                atp.ti = lt.torrent_info(tinfos[tname])
            atp.save_path = str(workdir / p["name"])
            atp.flags &= ~lt.torrent_flags.auto_managed
            atp.flags &= ~lt.torrent_flags.paused
            if not p.get("pex", False):
                # PEX would make peers learn (and dial) their own address.
                atp.flags |= lt.torrent_flags.disable_pex
            handles[(p["name"], tname)] = sessions[p["name"]].add_torrent(atp)

    # wait until no torrent is checking, so connections are not refused
    checking = (lt.torrent_status.checking_files, lt.torrent_status.checking_resume_data)
    while any(h.status().state in checking for h in handles.values()):
        if time.monotonic() > deadline:
            fail("timeout while checking files")
        time.sleep(0.05)
    for (peer, tname), h in handles.items():
        if tname in by_name[peer].get("seeds", []) and not h.status().is_seeding:
            fail(f"seed {peer} is not seeding {tname} after checking")
    # "corrupt": alter a seeder's data after libtorrent checked it, so it serves
    # pieces that fail verification at the receiver (libtorrent reads the
    # files through the page cache, so the altered bytes are what it sends)
    for p in peers:
        for tname, ranges in p.get("corrupt", {}).items():
            corrupt_content(specs[tname], workdir / p["name"], ranges)
    rec.pump(sessions)
    if control:
        for p in external:
            (workdir / p["name"]).mkdir(exist_ok=True)
        control.write("ready", {"torrents": result["torrents"],
                                "workdir": str(workdir)})

    # ---- connect ----------------------------------------------------------
    t_connect = time.monotonic()
    # Every DHT node exists and every torrent was announced once when it was
    # added (possibly before the other nodes had it): look up again now, so
    # peers find each other without waiting for dht_announce_interval.
    for (peer, _), h in handles.items():
        if by_name[peer].get("dht"):
            h.force_dht_announce()
    dials = []   # (when, after, handle, endpoint), started by the transfer loop
    ext_torrents = {p["name"]: {*p.get("seeds", []), *p.get("leeches", [])} for p in external}
    for p in peers:
        for target in p.get("connect_to", []):
            if target not in by_name:
                fail(f"peer {p['name']} connect_to unknown peer {target!r}")
            tp = by_name[target]
            shared = [tn for (pn, tn) in handles if pn == p["name"]
                      and ((target, tn) in handles or tn in ext_torrents.get(target, ()))]
            if not shared:
                fail(f"peer {p['name']} connect_to {target}: no torrent in common")
            after = p.get("connect_after")
            if after and not control:
                fail(f"peer {p['name']}: connect_after needs external peers or wait_for")
            for tn in shared:
                dials.append((t_connect + float(p.get("connect_delay", 0)), after,
                              handles[(p["name"], tn)], (tp["ip"], int(tp["port"]))))

    # ---- transfer ---------------------------------------------------------
    leeching = [(p["name"], tn) for p in peers for tn in p.get("leeches", [])]
    conns = ConnectionLog([*peers, *external])
    reannounce = Reannouncer(spec, handles)
    cuts = Disconnects(peers, by_name, sessions, handles)
    while True:
        now = time.monotonic()
        for d in [d for d in dials if d[0] <= now and (d[1] is None or control.exists(d[1]))]:
            d[2].connect_peer(d[3])
            dials.remove(d)
        cuts.tick(rec)
        reannounce.tick()
        rec.pump(sessions)
        conns.poll(handles)
        if not dials and all(handles[k].status().is_seeding for k in leeching) \
                and (control is None or not control.missing()):
            break
        if time.monotonic() > deadline:
            snap = snapshot(handles)
            print("swarm.py: state at the timeout: " + json.dumps(diagnostics(sessions, handles, rec)),
                  file=sys.stderr, flush=True)
            fail(f"timeout after {timeout}s: leechers not complete: "
                 + json.dumps({f"{p}/{t}": snap[p][t] for p, t in leeching
                               if not snap[p][t]["is_seeding"]})
                 + (f"; control files missing: {control.missing()}" if control else "")
                 + (f"; dials pending: {[d[1] for d in dials]}" if dials else ""))
        time.sleep(0.005 if cuts.pending else 0.05)     # a disconnect is due mid-transfer
    result["setup_seconds"] = round(t_connect - t0, 3)
    if cuts.done:
        result["disconnects"] = cuts.done
    result["transfer_seconds"] = round(time.monotonic() - t_connect, 3)

    # ---- settle -------------------------------------------------------------
    time.sleep(1.0)
    prev = snapshot(handles)
    settle_end = time.monotonic() + 10
    while time.monotonic() < settle_end:
        time.sleep(0.5)
        reannounce.tick()
        conns.poll(handles)
        rec.pump(sessions)
        cur = snapshot(handles)
        if payload(cur) == payload(prev):
            break
        prev = cur
    rec.pump(sessions)

    # ---- scrape (optional) -----------------------------------------------
    if spec.get("scrape") and trackers:
        def scrape_outcomes() -> int:
            return sum(1 for e in rec.events
                       if e["type"] in ("scrape_reply_alert", "scrape_failed_alert"))
        n_before = scrape_outcomes()
        expected = 0
        for h in handles.values():
            for i, _ in enumerate(h.trackers()):
                h.scrape_tracker(i)
                expected += 1
        # one outcome per (handle, tracker) and announced info hash version
        # at least; a little slack lets the second version's reply arrive
        scrape_end = time.monotonic() + 5
        while time.monotonic() < scrape_end:
            rec.pump(sessions)
            if scrape_outcomes() - n_before >= expected:
                break
            time.sleep(0.05)
        time.sleep(0.2)
        rec.pump(sessions)

    snap = snapshot(handles)
    conns.poll(handles, final=True)
    resume = save_resume_files(sessions, handles, workdir, rec) if spec.get("save_resume") else {}
    for p in peers:
        entry = {"ip": p["ip"], "port": int(p["port"]), "torrents": {},
                 "dht": bool(p.get("dht")), "lsd": bool(p.get("lsd")),
                 "encryption": p.get("encryption", "disabled")}
        for tname in list(p.get("seeds", [])) + list(p.get("leeches", [])):
            c = dict(snap[p["name"]][tname])
            c["role"] = "seed" if tname in p.get("seeds", []) else "leech"
            c["connections"] = conns.for_torrent(p["name"], tname)
            c["trackers"] = [ae["url"] for ae in handles[(p["name"], tname)].trackers()]
            if (p["name"], tname) in resume:
                c["resume"] = resume[(p["name"], tname)]
            entry["torrents"][tname] = c
        result["peers"][p["name"]] = entry
    if external:
        result["external"] = external
    if control:
        # the driver reads its client's counters now, every connection still up
        control.write("snapshot", {"peers": result["peers"]})
        control.wait("release", time.monotonic() + float(spec.get("release_timeout", 60)),
                     lambda: rec.pump(sessions))

    # ---- shut down cleanly -----------------------------------------------
    # Pausing makes every torrent send event=stopped to its trackers; wait
    # for the trackers to have received them (libtorrent gives up after
    # stop_tracker_timeout, 5 s by default).
    t_stop = time.monotonic()
    for ses in sessions.values():
        ses.pause()
    if trackers:
        stop_wait = 2.0 + max(int(session_settings(p, spec).get("stop_tracker_timeout", 5))
                              for p in peers)
        end = time.monotonic() + stop_wait
        while missing_stopped(tracker_log) and time.monotonic() < end:
            rec.pump(sessions)
            time.sleep(0.05)
        missing = missing_stopped(tracker_log)
        result["stopped_announces_complete"] = not missing
        if missing:
            result["stopped_announces_missing"] = [list(m) for m in missing]
    result["stop_seconds"] = round(time.monotonic() - t_stop, 3)
    # stop the DHT nodes while their alerts are still collected, so that no
    # DHT packet reaches the capture without being in the result
    for p in peers:
        if p.get("dht"):
            sessions[p["name"]].apply_settings({"enable_dht": False})
    for (peer, _), h in handles.items():
        sessions[peer].remove_torrent(h)
    time.sleep(0.5)
    rec.pump(sessions)
    for tr in trackers:
        tr.stop()
    for name in rec.dht:
        result["peers"][name]["dht_log"] = rec.dht_result(name)
    for name, entries in rec.lsd.items():
        result["peers"][name]["lsd_log"] = entries
    result["events"] = rec.events
    if rec.dropped:
        result["alerts_dropped"] = rec.dropped
    if trackers:
        result["tracker_log"] = sorted(tracker_log, key=lambda e: e["time"])
        result["tracker_connects"] = sorted(tracker_connects, key=lambda e: e["time"])
    result["elapsed_seconds"] = round(time.monotonic() - t0, 3)
    Path(result_path).write_text(json.dumps(result, indent=1, sort_keys=True))
    del handles
    sessions.clear()   # destroys sessions (closes sockets) before exit
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        fail("usage: swarm.py spec.json result.json", 64)
    sys.exit(main(sys.argv[1], sys.argv[2]))
