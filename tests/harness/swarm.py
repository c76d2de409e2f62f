"""Run a small BitTorrent swarm of libtorrent sessions and record ground truth.

Usage (always inside a harness network namespace, see netns.py)::

    ip netns exec NS python tests/harness/swarm.py spec.json result.json

Theory of operation
-------------------
One process hosts one ``libtorrent.session`` per peer of the spec.  Each
session listens only on its own loopback address and binds its outgoing
sockets to that address too (``outgoing_interfaces``), so in a capture every
peer is identified by its IP.  DHT, LSD, UPnP and NAT-PMP are off and there
are no trackers: peers meet only through explicit ``connect_peer`` calls
listed in each peer's ``connect_to``.

Torrent content is deterministic pseudo-random data derived from the spec's
seed.  Each torrent is created once (v1, v2 or hybrid) from the data written
under ``workdir/<first seeding peer>/``, saved as ``workdir/<name>.torrent``
and added to every peer that seeds or leeches it; other seeders get a copy of
the data, leechers start empty.

The run proceeds in phases: add torrents → wait until nothing is checking →
connect peers → wait until every leecher is seeding (or time out with exit
status 2) → let traffic settle until the payload counters stop changing →
snapshot the counters (per torrent and per live connection) → pause and
remove torrents → write result.json.  Counters in the result come from
libtorrent's torrent_status / peer_info and are what the analyzer's numbers
are compared against.  This module deliberately does not import ``analyzer``.

Spec (JSON)::

    {"workdir": "...", "timeout": 120, "pin_cpu": null,
     "torrents": [{"name": "t1", "size": 3000000, "piece_length": 65536,
                   "version": "v1"|"v2"|"hybrid", "files": [sizes...],
                   "seed": 1}],
     "peers": [{"name": "seed", "ip": "127.0.0.2", "port": 6881,
                "seeds": ["t1"], "leeches": [], "connect_to": [],
                "connect_delay": 0.0,      # seconds before dialling connect_to
                "upload_rate_limit": 0, "download_rate_limit": 0,
                "transports": "tcp"|"utp"|"both",
                "encryption": "disabled"|"enabled"|"forced",
                "enc_level": "rc4"|"plaintext"|"both",   # optional
                "pex": false,                              # optional, ut_pex
                "settings": {...}}]}                       # optional overrides
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import NoReturn

import libtorrent as lt

# peer_info flag bit not exported by the Python binding.
UTP_SOCKET = 0x20000

COUNTERS = ("total_payload_upload", "total_payload_download", "total_upload",
            "total_download", "total_redundant_bytes", "total_failed_bytes")


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


def make_torrent(t: dict, root: Path, out: Path) -> lt.torrent_info:
    version = t.get("version", "hybrid")
    flags = {"v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only,
             "hybrid": 0}[version]
    entries = [lt.create_file_entry(rel, size) for rel, size in content_files(t)]
    ct = lt.create_torrent(entries, int(t.get("piece_length", 65536)), flags)
    ct.set_creator("bt-analyzer test harness")
    lt.set_piece_hashes(ct, str(root))
    data = lt.bencode(ct.generate())
    out.write_bytes(data)
    return lt.torrent_info(data)


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


# --------------------------------------------------------------------------
# sessions
def endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ipaddress.ip_address(ip).version == 6 else f"{ip}:{port}"


def session_settings(p: dict) -> dict:
    tr = p.get("transports", "tcp")
    if tr not in ("tcp", "utp", "both"):
        fail(f"peer {p['name']}: bad transports {tr!r}")
    enc = p.get("encryption", "disabled")
    policy = {"disabled": lt.enc_policy.pe_disabled, "enabled": lt.enc_policy.pe_enabled,
              "forced": lt.enc_policy.pe_forced}[enc]
    level = p.get("enc_level", "rc4" if enc == "forced" else "both")
    level = {"rc4": lt.enc_level.pe_rc4, "plaintext": lt.enc_level.pe_plaintext,
             "both": lt.enc_level.pe_both}[level]
    up = int(p.get("upload_rate_limit", 0))
    down = int(p.get("download_rate_limit", 0))
    s = {
        # isolation: no discovery of any kind, no trackers
        "enable_dht": False, "enable_lsd": False, "enable_upnp": False,
        "enable_natpmp": False, "dht_bootstrap_nodes": "",
        "listen_interfaces": endpoint(p["ip"], int(p["port"])),
        "outgoing_interfaces": p["ip"],
        "listen_system_port_fallback": False,
        "alert_mask": int(lt.alert.category_t.error_notification
                          | lt.alert.category_t.status_notification
                          | lt.alert.category_t.connect_notification),
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
        "peer_connect_timeout": 5,
        "request_timeout": 10,
        "piece_timeout": 5,
        "connection_speed": 50,
    }
    s.update(p.get("settings", {}))
    return s


def make_session(p: dict) -> lt.session:
    return lt.session(session_settings(p))


def wait_listening(ses: lt.session, name: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        for a in ses.pop_alerts():
            if isinstance(a, lt.listen_failed_alert):
                fail(f"peer {name}: listen failed: {a.message()}")
            if isinstance(a, lt.listen_succeeded_alert):
                return
        ses.wait_for_alert(100)
    fail(f"peer {name}: no listen_succeeded_alert")


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
    before it closed (a lower bound).
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
                c.update({
                    "transport": "utp" if flags & UTP_SOCKET else "tcp",
                    "rc4_encrypted": bool(flags & int(lt.peer_info.rc4_encrypted)),
                    "plaintext_encrypted": bool(flags & int(lt.peer_info.plaintext_encrypted)),
                    "payload_download": int(pi.total_download),
                    "payload_upload": int(pi.total_upload),
                    "client": pi.client if isinstance(pi.client, str) else "",
                })
        if final:
            for key, c in self.conns.items():
                c["open_at_end"] = key in seen

    def for_torrent(self, peer: str, tname: str) -> list[dict]:
        return [c for (p, t, _, _), c in self.conns.items() if (p, t) == (peer, tname)]


def log_alerts(sessions: dict, events: list, t0: float) -> None:
    for name, ses in sessions.items():
        for a in ses.pop_alerts():
            if isinstance(a, (lt.peer_disconnected_alert, lt.peer_error_alert,
                              lt.hash_failed_alert, lt.torrent_error_alert,
                              lt.listen_failed_alert, lt.file_error_alert,
                              lt.peer_connect_alert, lt.incoming_connection_alert)):
                events.append({"t": round(time.monotonic() - t0, 3), "peer": name,
                               "type": type(a).__name__, "msg": a.message()})


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
    t0 = time.monotonic()
    deadline = t0 + timeout
    by_name = {p["name"]: p for p in peers}

    # ---- torrents -------------------------------------------------------
    tinfos: dict[str, lt.torrent_info] = {}
    result: dict = {"torrents": {}, "peers": {}, "events": []}
    for t in spec["torrents"]:
        seeders = [p["name"] for p in peers if t["name"] in p.get("seeds", [])]
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
        ti = make_torrent(t, first, tfile)
        tinfos[t["name"]] = ti
        result["torrents"][t["name"]] = {
            **hashes(ti, t.get("version", "hybrid")),
            "piece_length": ti.piece_length(), "num_pieces": ti.num_pieces(),
            # content bytes; libtorrent's total_size() also counts the pad
            # files it adds (v2 torrents get tail padding internally)
            "total_size": ti.size_on_disk(), "lt_total_size": ti.total_size(),
            "torrent_file": str(tfile),
            "files": [{"path": rel, "size": sz} for rel, sz in content_files(t)],
        }

    # ---- sessions -------------------------------------------------------
    sessions: dict[str, lt.session] = {}
    for p in peers:
        sessions[p["name"]] = make_session(p)
    for name, ses in sessions.items():
        wait_listening(ses, name, deadline)

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
    log_alerts(sessions, result["events"], t0)

    # ---- connect ----------------------------------------------------------
    t_connect = time.monotonic()
    dials = []   # (when, handle, endpoint), started by the transfer loop
    for p in peers:
        for target in p.get("connect_to", []):
            if target not in by_name:
                fail(f"peer {p['name']} connect_to unknown peer {target!r}")
            tp = by_name[target]
            shared = [tn for (pn, tn) in handles if pn == p["name"]
                      and (target, tn) in handles]
            if not shared:
                fail(f"peer {p['name']} connect_to {target}: no torrent in common")
            for tn in shared:
                dials.append((t_connect + float(p.get("connect_delay", 0)),
                              handles[(p["name"], tn)], (tp["ip"], int(tp["port"]))))

    # ---- transfer ---------------------------------------------------------
    leeching = [(p["name"], tn) for p in peers for tn in p.get("leeches", [])]
    conns = ConnectionLog(peers)
    while True:
        now = time.monotonic()
        for d in [d for d in dials if d[0] <= now]:
            d[1].connect_peer(d[2])
            dials.remove(d)
        log_alerts(sessions, result["events"], t0)
        conns.poll(handles)
        if not dials and all(handles[k].status().is_seeding for k in leeching):
            break
        if time.monotonic() > deadline:
            snap = snapshot(handles)
            fail(f"timeout after {timeout}s: leechers not complete: "
                 + json.dumps({f"{p}/{t}": snap[p][t] for p, t in leeching
                               if not snap[p][t]["is_seeding"]}))
        time.sleep(0.05)
    result["setup_seconds"] = round(t_connect - t0, 3)
    result["transfer_seconds"] = round(time.monotonic() - t_connect, 3)

    # ---- settle -------------------------------------------------------------
    time.sleep(1.0)
    prev = snapshot(handles)
    settle_end = time.monotonic() + 10
    while time.monotonic() < settle_end:
        time.sleep(0.5)
        conns.poll(handles)
        cur = snapshot(handles)
        if payload(cur) == payload(prev):
            break
        prev = cur
    log_alerts(sessions, result["events"], t0)

    snap = snapshot(handles)
    conns.poll(handles, final=True)
    for p in peers:
        entry = {"ip": p["ip"], "port": int(p["port"]), "torrents": {}}
        for tname in list(p.get("seeds", [])) + list(p.get("leeches", [])):
            c = dict(snap[p["name"]][tname])
            c["role"] = "seed" if tname in p.get("seeds", []) else "leech"
            c["connections"] = conns.for_torrent(p["name"], tname)
            entry["torrents"][tname] = c
        result["peers"][p["name"]] = entry

    # ---- shut down cleanly -----------------------------------------------
    for ses in sessions.values():
        ses.pause()
    for (peer, _), h in handles.items():
        sessions[peer].remove_torrent(h)
    time.sleep(0.5)
    log_alerts(sessions, result["events"], t0)
    result["elapsed_seconds"] = round(time.monotonic() - t0, 3)
    Path(result_path).write_text(json.dumps(result, indent=1, sort_keys=True))
    del handles
    sessions.clear()   # destroys sessions (closes sockets) before exit
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        fail("usage: swarm.py spec.json result.json", 64)
    sys.exit(main(sys.argv[1], sys.argv[2]))
