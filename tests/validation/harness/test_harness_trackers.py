"""Smoke tests of the harness's discovery and encryption support (no analyzer).

* HTTP + UDP trackers served by swarm.py: every announce/scrape the servers
  received is in ``tracker_log`` and matches what the capture holds;
* the tracker servers themselves (dictionary model, peers6, failures, BEP 15
  errors) queried directly inside a namespace;
* a DHT-only swarm (no connect_to, no trackers): peers find each other, and
  the recorded DHT packets are exactly the DHT datagrams in the capture;
* LSD on the namespace loopback (IPv4);
* MSE: forced RC4, and MSE negotiating plaintext (``mse_plaintext``).
"""

from __future__ import annotations

import json
import struct
import sys
from collections import Counter
from pathlib import Path

import pytest

from analyzer.validation import harness
from analyzer.validation.harness import run_swarm
from analyzer.validation.harness.netns import Namespace, require_tools
from analyzer.validation.harness.specs import dht_trio, encrypted_pair, lsd_pair, tracker_pair
from craft import tshark

SIZE = 600_000
HERE = Path(harness.__file__).resolve().parent     # the harness package (tracker.py is run from there)


def run_captured(spec: dict, tmp_path: Path):
    """Run ``spec``; the result and its ground truth (the tests read the capture with tshark)."""
    require_tools("tshark")
    res = run_swarm(spec, tmp_path)
    return res, res.ground_truth


def udp_tracker_requests(capture: Path, port: int) -> list[dict]:
    """BEP 15 announces/scrapes sent to ``port``, decoded from the capture."""
    out = []
    for src, payload in tshark(capture, f"udp.dstport=={port}", "ip.src", "udp.payload"):
        data = bytes.fromhex(payload)
        cid, action, tid = struct.unpack(">QII", data[:16])
        if action == 1:
            downloaded, left, uploaded, ev = struct.unpack(">qqqI", data[56:84])
            out.append({"request": "announce", "client_ip": src, "info_hash": data[16:36].hex(),
                        "peer_id": data[36:56].hex(), "downloaded": downloaded,
                        "left": left, "uploaded": uploaded, "event_code": ev})
        elif action == 2:
            out.append({"request": "scrape", "client_ip": src,
                        "info_hashes": [data[i:i + 20].hex() for i in range(16, len(data), 20)]})
    return out


# --------------------------------------------------------------------------
@pytest.mark.realtraffic
def test_http_and_udp_tracker_announces(tmp_path):
    # no connect_to: the peers only meet through the trackers
    res, gt = run_captured(tracker_pair(size=SIZE, seed=11, timeout=15, scrape=True), tmp_path)
    ih = gt["torrents"]["t1"]["info_hash_v1"]
    assert gt["torrents"]["t1"]["trackers"] == ["http://127.0.0.9:6969/announce",
                                                "udp://127.0.0.9:6970"]
    assert gt["stopped_announces_complete"]
    counters = {n: p["torrents"]["t1"] for n, p in gt["peers"].items()}
    assert counters["leech"]["is_seeding"]
    conns = counters["leech"]["connections"] + counters["seed"]["connections"]
    assert any("tracker" in c["source"] for c in conns)

    log = gt["tracker_log"]
    announces = [e for e in log if e["request"] == "announce"]
    for kind in ("http", "udp"):
        mine = [e for e in announces if e["kind"] == kind]
        assert {e["info_hash"] for e in mine} == {ih}
        assert all(e["torrent"] == "t1" and e["ih_version"] == "v1" for e in mine)
        assert all(e["port"] == 6881 for e in mine)
        assert all(bytes.fromhex(e["peer_id"]).startswith(b"-LT2110-") for e in mine)
        events = Counter((e["peer"], e["event"]) for e in mine)
        assert events[("seed", "started")] == events[("leech", "started")] == 1
        assert events[("seed", "stopped")] == events[("leech", "stopped")] == 1
        assert events[("leech", "completed")] == 1
        assert events[("seed", "completed")] == 0     # added as a seed
        first = {e["peer"]: e for e in mine if e["event"] == "started"}
        assert first["seed"]["left"] == 0 and first["leech"]["left"] == SIZE
        last = {e["peer"]: e for e in mine if e["event"] == "stopped"}
        for name, c in counters.items():
            # libtorrent reports payload bytes; downloaded excludes redundant
            # and failed bytes (report_true_downloaded is off)
            assert last[name]["uploaded"] == c["total_payload_upload"]
            assert last[name]["downloaded"] == (c["total_payload_download"]
                                                - c["total_redundant_bytes"]
                                                - c["total_failed_bytes"])
            assert last[name]["left"] == 0 and last[name]["numwant"] == 0
        # the seed's started announce is answered with nobody or the leech;
        # every answer only ever lists the *other* peer
        for e in mine:
            assert f"{e['client_ip']}:6881" not in e["response"]["peers"]
    scrapes = [e for e in log if e["request"] == "scrape"]
    assert {(e["kind"], e["peer"]) for e in scrapes} == {
        (k, p) for k in ("http", "udp") for p in ("seed", "leech")}
    assert all(e["info_hashes"] == [ih] for e in scrapes)

    # the capture holds exactly the requests the trackers logged
    cap = res.capture_files[0]
    uris = sorted(u for (u,) in tshark(cap, "http.request", "http.request.uri"))
    assert uris == sorted(f"{e['path']}?{e['query']}" for e in log if e["kind"] == "http")
    wire = udp_tracker_requests(cap, 6970)
    logged = [e for e in log if e["kind"] == "udp"]
    key = ("request", "client_ip", "info_hash", "peer_id", "downloaded", "left", "uploaded",
           "event_code", "info_hashes")
    assert sorted(json.dumps([w.get(k) for k in key]) for w in wire) == \
        sorted(json.dumps([e.get(k) for k in key]) for e in logged)
    # UDP requests come from the listen socket, HTTP from ephemeral ports
    assert {e["client_port"] for e in logged} == {6881}
    assert all(e["client_port"] != 6881 for e in log if e["kind"] == "http")


@pytest.mark.realtraffic
def test_ipv6_trackers_hybrid_torrent(tmp_path):
    spec = tracker_pair(ips=("fd00::2", "fd00::3"), tracker_ip="fd00::9", version="hybrid", size=SIZE, seed=12,
                        timeout=15)
    gt = run_swarm(spec, tmp_path).ground_truth
    t = gt["torrents"]["t1"]
    assert gt["peers"]["leech"]["torrents"]["t1"]["is_seeding"]
    log = [e for e in gt["tracker_log"] if e["request"] == "announce"]
    # a hybrid torrent is announced once per info hash: v1 and truncated v2
    assert {e["info_hash"] for e in log} == {t["info_hash_v1"], t["info_hash_v2"][:40]}
    for kind in ("http", "udp"):
        for ver in ("v1", "v2"):
            ev = Counter((e["peer"], e["event"]) for e in log
                         if e["kind"] == kind and e["ih_version"] == ver)
            assert ev[("seed", "started")] == ev[("leech", "started")] == 1
            assert ev[("leech", "completed")] == 1
            assert ev[("seed", "stopped")] == ev[("leech", "stopped")] == 1
    assert {e["client_ip"] for e in log} == {"fd00::2", "fd00::3"}
    assert any(e["response"]["peers"] == ["[fd00::2]:6881"] for e in log if e["kind"] == "udp")


_SELFTEST = r"""
import json, socket, struct, sys, urllib.request
sys.path.insert(0, sys.argv[1])
from tracker import bdecode, make_tracker
IH, OTHER = bytes(range(20)), bytes(range(1, 21))
log, connects = [], []
known = {IH: ("t", "v1")}
trs = [make_tracker(t, log=log, connects=connects, known=known).start() for t in [
    {"name": "h", "kind": "http", "ip": "127.0.0.9", "port": 6969},
    {"name": "h6", "kind": "http", "ip": "fd00::9", "port": 6969},
    {"name": "u", "kind": "udp", "ip": "127.0.0.9", "port": 6970},
    {"name": "u6", "kind": "udp", "ip": "fd00::9", "port": 6970}]]
q = lambda **kw: "&".join(f"{k}={v}" for k, v in kw.items())
esc = lambda b: "".join(f"%{x:02x}" for x in b)
def http(host, path, src):
    fam = socket.AF_INET6 if ":" in src else socket.AF_INET
    s = socket.socket(fam); s.bind((src, 0)); s.connect((host, 6969))
    s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
    data = b""
    while (chunk := s.recv(65536)):
        data += chunk
    return bdecode(data.split(b"\r\n\r\n", 1)[1])
out = {}
ann = lambda pid, port, **kw: "/announce?" + q(info_hash=esc(IH), peer_id=esc(pid), port=port,
                                               uploaded=0, downloaded=0, left=5, **kw)
http("127.0.0.9", ann(b"A" * 20, 1001, event="started"), "127.0.0.2")
http("fd00::9", ann(b"B" * 20, 1002, event="started"), "fd00::3")
r = http("127.0.0.9", ann(b"C" * 20, 1003, compact=1), "127.0.0.4")
out["compact"] = {k.decode(): v.hex() if isinstance(v, bytes) else v for k, v in r.items()}
r = http("127.0.0.9", ann(b"C" * 20, 1003, compact=0), "127.0.0.4")
out["dict"] = [{k.decode(): v.decode() if isinstance(v, bytes) else v for k, v in p.items()}
               for p in r[b"peers"]]
r = http("127.0.0.9", ann(b"C" * 20, 1003, compact=0, no_peer_id=1), "127.0.0.4")
out["dict_no_peer_id"] = [sorted(k.decode() for k in p) for p in r[b"peers"]]
r = http("127.0.0.9", "/announce?" + q(info_hash=esc(OTHER), peer_id=esc(b"D" * 20), port=1,
                                     uploaded=0, downloaded=0, left=0), "127.0.0.4")
out["unknown"] = r[b"failure reason"].decode()
r = http("127.0.0.9", "/scrape?info_hash=" + esc(IH) + "&info_hash=" + esc(OTHER), "127.0.0.4")
out["scrape"] = {k.hex(): {a.decode(): b for a, b in v.items()} for k, v in r[b"files"].items()}
def udp(host, src, pkt):
    fam = socket.AF_INET6 if ":" in src else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM); s.bind((src, 0)); s.settimeout(2)
    s.sendto(pkt, (host, 6970))
    return s.recvfrom(2048)[0]
for host, srcs in (("127.0.0.9", ("127.0.0.2", "127.0.0.5")), ("fd00::9", ("fd00::3", "fd00::5"))):
  for i, src in enumerate(srcs):
    r = udp(host, src, struct.pack(">QII", 0x41727101980, 0, 7))
    action, tid, cid = struct.unpack(">IIQ", r)
    pkt = struct.pack(">QII", cid, 1, 8) + IH + bytes([65 + i]) * 20 + struct.pack(
        ">qqqIIIiH", 0, 10, 0, 2, 0, 0xABCD, -1, 1005) + bytes([2, 9]) + b"/announce"
    r = udp(host, src, pkt)
    action, tid, interval, leechers, seeders = struct.unpack(">IIIII", r[:20])
    out[f"udp_{host}"] = {"action": action, "tid": tid, "interval": interval,
                          "leechers": leechers, "peers_len": len(r) - 20}
    r = udp(host, src, struct.pack(">QII", 12345, 1, 9) + pkt[16:])
    out[f"udp_bad_cid_{host}"] = [struct.unpack(">II", r[:8])[0], r[8:].decode()]
    r = udp(host, src, struct.pack(">QII", cid, 2, 10) + IH)
    out[f"udp_scrape_{host}"] = list(struct.unpack(">IIIII", r))
for t in trs:
    t.stop()
out["log"] = log
out["connects"] = connects
print(json.dumps(out))
"""


@pytest.mark.realtraffic
def test_tracker_servers_directly():
    """Dictionary model, peers6, failures and BEP 15 errors (no libtorrent)."""
    with Namespace(ipv4_addrs=["127.0.0.9", "127.0.0.2", "127.0.0.4", "127.0.0.5"],
                   ipv6_addrs=["fd00::9", "fd00::3", "fd00::5"]) as ns:
        proc = ns.run([sys.executable, "-c", _SELFTEST, str(HERE)], capture_output=True,
                      text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    # the v4 and v6 HTTP trackers are separate servers, separate swarms
    c = out["compact"]
    assert c["peers"] == bytes([127, 0, 0, 2]).hex() + (1001).to_bytes(2, "big").hex()
    assert "peers6" not in c and c["interval"] == 5 and c["min interval"] == 5
    assert c["complete"] == 0 and c["incomplete"] == 2
    assert out["dict"] == [{"ip": "127.0.0.2", "port": 1001, "peer id": "A" * 20}]
    assert out["dict_no_peer_id"] == [["ip", "port"]]
    assert out["unknown"] == "unregistered torrent"
    assert out["scrape"] == {bytes(range(20)).hex(): {"complete": 0, "downloaded": 0,
                                                      "incomplete": 2}}
    # each tracker has its own swarms: the second UDP client gets the first
    assert out["udp_127.0.0.9"] == {"action": 1, "tid": 8, "interval": 5, "leechers": 2,
                                    "peers_len": 6}
    assert out["udp_fd00::9"] == {"action": 1, "tid": 8, "interval": 5, "leechers": 2,
                                  "peers_len": 18}
    for host in ("127.0.0.9", "fd00::9"):
        assert out[f"udp_bad_cid_{host}"] == [3, "invalid connection id"]
        assert out[f"udp_scrape_{host}"] == [2, 10, 0, 0, 2]
    log = out["log"]
    udp_ann = [e for e in log if e["kind"] == "udp" and e["request"] == "announce"]
    assert [e["url_data"] for e in udp_ann] == ["/announce"] * 8   # 2 good + 2 bad per family
    assert {e["key"] for e in udp_ann} == {"0000ABCD"} and {e["event"] for e in udp_ann} == \
        {"started"}
    assert sum(1 for e in udp_ann if e["response"]["failure"]) == 4
    assert {e["client_ip"] for e in out["connects"]} == {"127.0.0.2", "127.0.0.5",
                                                          "fd00::3", "fd00::5"}
    http_ann = [e for e in log if e["kind"] == "http" and e["request"] == "announce"]
    assert [e["compact"] for e in http_ann] == [None, None, 1, 0, 0, None]
    assert http_ann[-1]["response"]["failure"] == "unregistered torrent"


# --------------------------------------------------------------------------
@pytest.mark.realtraffic
@pytest.mark.parametrize("bootstrap", ["router", "nodes"])
def test_dht_swarm_finds_peers(tmp_path, bootstrap):
    res, gt = run_captured(dht_trio(bootstrap, size=SIZE, seed=13, timeout=15), tmp_path)
    ih = gt["torrents"]["t1"]["info_hash_v1"]
    ids = set()
    for name, p in gt["peers"].items():
        t = p["torrents"]["t1"]
        assert t["is_seeding"]
        d = p["dht_log"]
        assert d["announced"] == [ih] and d["looked_up"] == [ih]
        assert len(d["node_ids"]) == 1
        ids |= set(d["node_ids"])
        assert any(x.get("q") == "announce_peer" and x.get("info_hash") == ih
                   for x in d["packets"] if x["dir"] == "in")
    assert len(ids) == 3
    assert any("dht" in c["source"] for p in gt["peers"].values()
               for c in p["torrents"]["t1"]["connections"])
    # every UDP datagram in the capture is a DHT packet some node recorded
    # as sent (transports are TCP-only, so there is no uTP on 6881)
    wire = Counter(payload for (payload,) in tshark(res.capture_files[0], "udp && !icmp",
                                                   "udp.payload"))
    sent = Counter(x["raw"] for p in gt["peers"].values()
                   for x in p["dht_log"]["packets"] if x["dir"] == "out")
    assert wire == sent


@pytest.mark.realtraffic
def test_lsd_on_loopback(tmp_path):
    res, gt = run_captured(lsd_pair(size=SIZE, seed=14, timeout=15), tmp_path)
    ih = gt["torrents"]["t1"]["info_hash_v1"]
    assert gt["peers"]["leech"]["torrents"]["t1"]["is_seeding"]
    for p in gt["peers"].values():
        sent = [e for e in p["lsd_log"] if e.get("dir") == "out"]
        assert sent and all(e["info_hash"] == ih and e["port"] == 6881 for e in sent)
    rows = tshark(res.capture_files[0], "udp.dstport==6771", "ip.src", "ip.dst", "udp.payload")
    assert {(src, dst) for src, dst, _ in rows} == {("127.0.0.2", "239.192.152.143"),
                                                   ("127.0.0.3", "239.192.152.143")}
    assert all(f"Infohash: {ih}".encode() in bytes.fromhex(pl) for _, _, pl in rows)
    assert any("lsd" in c["source"] for p in gt["peers"].values()
               for c in p["torrents"]["t1"]["connections"])


# --------------------------------------------------------------------------
@pytest.mark.realtraffic
@pytest.mark.parametrize("mode", ["forced", "mse_plaintext"])
def test_encryption(tmp_path, mode):
    res, gt = run_captured(encrypted_pair(mode, size=SIZE, seed=15, timeout=15), tmp_path)
    conns = [c for p in gt["peers"].values() for c in p["torrents"]["t1"]["connections"]]
    assert len(conns) == 2
    cap = res.capture_files[0]
    handshakes = tshark(cap, 'tcp.payload contains "BitTorrent protocol"', "ip.src")
    if mode == "forced":
        assert all(c["rc4_encrypted"] and not c["plaintext_encrypted"] for c in conns)
        assert handshakes == []
        assert tshark(cap, "bittorrent.msg", "frame.number") == []
    else:
        # MSE key exchange, crypto_select = plaintext: the initiator's
        # handshake is MSE's RC4-encrypted initial payload, the responder's
        # handshake and every later message are in the clear
        assert all(c["plaintext_encrypted"] and not c["rc4_encrypted"] for c in conns)
        assert handshakes == [["127.0.0.2"]]
        assert tshark(cap, "bittorrent.piece.data && ip.src==127.0.0.2", "frame.number")
