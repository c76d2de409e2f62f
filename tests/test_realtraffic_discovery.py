"""Real trackers, DHT, LSD and encrypted connections between libtorrent sessions.

Ground truth: what the harness's tracker servers received (``tracker_log``),
what each DHT node sent (``dht_log``), the LSD announces each peer sent, and
the peers' own payload counters.
"""
from __future__ import annotations

import csv
import io
import subprocess
from collections import Counter

import pytest

from analyzer.analysis import analyze
from summaries import connections_csv, summarize, torrents_of, tracker_csv
from analyzer.sessions.subject import given_subject
from analyzer.validation.harness import run_swarm
from analyzer.validation.harness.specs import dht_trio, encrypted_pair, lsd_pair, tracker_pair
from swarms import analyze_swarm, assert_exact

pytestmark = pytest.mark.realtraffic

SIZE = 800_000


def tracker_spec(**kw):
    return tracker_pair(size=SIZE, seed=21, scrape=True, **kw)


def _event(e) -> str:
    return e or ""


def announce_key(transport, info_hash, kind, event, uploaded, downloaded, left, port):
    return (transport, info_hash, kind, _event(event), uploaded, downloaded, left, port)


def check_trackers(res, subject_ip):
    gt = res.ground_truth
    result, summary = analyze_swarm(res, subject_ip)
    assert_exact(result, gt)
    log = gt["tracker_log"]
    # the subject's announces, as the trackers received them and as the capture shows them
    want = Counter(announce_key(e["kind"], e["info_hash"], "announce", e["event"], e["uploaded"],
                                e["downloaded"], e["left"], e["port"])
                   for e in log if e["request"] == "announce" and e["client_ip"] == subject_ip)
    got = Counter(announce_key(a["transport"], a["info_hash"], a["kind"], a["event"], a["uploaded"],
                               a["downloaded"], a["left"], a["port"])
                  for a in summary["tracker_reports"] if a["kind"] == "announce")
    assert got == want and sum(want.values()) >= 6
    # tracker.csv holds everyone's announces and scrapes
    rows = tracker_csv(result).splitlines()[1:]
    assert len(rows) == len(log)
    assert summary["accounting"]["categories"]["tracker"]["frames"] > 0
    # the tracker's answers were read too
    assert all(a["interval"] is not None for a in summary["tracker_reports"] if a["transport"] == "http"
               and a["kind"] == "announce" and a["failure"] is None)
    return result, summary


@pytest.fixture(scope="module")
def tracker_run(tmp_path_factory):
    return run_swarm(tracker_spec(), tmp_path_factory.mktemp("trackers"))


@pytest.mark.xdist_group("tracker_run")
def test_http_and_udp_trackers(tracker_run, tmp_path):
    res = tracker_run
    result, summary = check_trackers(res, "127.0.0.3")
    counters = res.ground_truth["peers"]["leech"]["torrents"]["t1"]
    [rec] = summary["tracker_reconciliation"]
    # first announce 'started' with nothing done, last 'stopped' with the session's totals
    assert rec["first"]["event"] == "started" and rec["last"]["event"] == "stopped"
    assert rec["reported_uploaded_between"] == counters["total_payload_upload"]
    assert rec["reported_downloaded_between"] == counters["total_payload_download"] \
        - counters["total_redundant_bytes"] - counters["total_failed_bytes"]
    assert rec["downloaded_consistent"] and rec["uploaded_consistent"]
    assert rec["wire_downloaded_total"] == counters["total_payload_download"]
    # the report shows the client's own counters beside the wire figures, and the announces
    from analyzer.report.document import ReportData
    data = ReportData(write_folder(result, tmp_path / "out"), None, None, None)
    [row] = data.tracker_reconciliation()
    assert f"downloaded {counters['total_payload_download']:,}" in row["last"] and "stopped" in row["last"]
    mechanisms = {(r["mechanism"], r["count"]) for r in data.participation()}
    assert ("tracker announce (http)", rec["announces"] // 2) in mechanisms
    assert ("tracker announce (udp)", rec["announces"] // 2) in mechanisms


def shifted(src, dst, seconds: int):
    """The little-endian classic pcap ``src`` with every frame ``seconds`` later."""
    import struct
    b = bytearray(src.read_bytes())
    off = 24
    while off + 16 <= len(b):
        struct.pack_into("<I", b, off, struct.unpack_from("<I", b, off)[0] + seconds)
        off += 16 + struct.unpack_from("<I", b, off + 8)[0]
    dst.write_bytes(b)
    return dst


@pytest.mark.xdist_group("tracker_run")
def test_three_client_sessions_analysed_together_are_reconciled_each(tracker_run, tmp_path):
    """The same client session captured three times, an hour apart (each starts with
    event=started to the same trackers and ends with stopped): three sessions, each
    reconciled with its own announces and wire bytes (one run mixed them: the counters of
    the last session's stopped against three sessions' bytes)."""
    [cap] = tracker_run.capture_files
    files = [shifted(cap, tmp_path / f"session{k}.pcap", 3600 * k) for k in range(3)]
    result = analyze(files, local=["127.0.0.3"], warn=lambda m: None)
    summary = summarize(result)
    counters = tracker_run.ground_truth["peers"]["leech"]["torrents"]["t1"]
    rows = summary["tracker_reconciliation"]
    assert [(r["client_ip"], r["session"], r["session_start"]) for r in rows] == \
        [("127.0.0.3", 1, "first announce in the capture"), ("127.0.0.3", 2, "event=started"),
         ("127.0.0.3", 3, "event=started")]
    for r in rows:
        assert r["first"]["event"] == "started" and r["last"]["event"] == "stopped"
        assert r["reported_downloaded_between"] == counters["total_payload_download"] \
            - counters["total_redundant_bytes"] - counters["total_failed_bytes"]
        assert r["downloaded_consistent"] and r["uploaded_consistent"], r
        assert r["wire_downloaded_total"] == 3 * counters["total_payload_download"]
    [t] = summary["torrents"]
    assert t["downloaded_acked_bytes"] == 3 * counters["total_payload_download"]


def write_folder(result, out):
    import datetime
    from analyzer.findings import build_findings
    from analyzer.output.writer import write_outputs
    write_outputs(build_findings(result), out, argv=["test"], started=datetime.datetime.now(datetime.timezone.utc))
    return out


def test_ipv6_trackers_hybrid_torrent(tmp_path):
    res = run_swarm(tracker_spec(ips=("fd00::2", "fd00::3"), tracker_ip="fd00::9", version="hybrid"), tmp_path)
    check_trackers(res, "fd00::3")


def test_dht_lookups_and_announces(tmp_path):
    spec = dht_trio("router", size=SIZE, seed=22)
    res = run_swarm(spec, tmp_path)
    gt = res.ground_truth
    ih = gt["torrents"]["t1"]["info_hash_v1"]
    result, summary = analyze_swarm(res, "127.0.0.3")
    assert_exact(result, gt)
    sent = [x for x in gt["peers"]["l1"]["dht_log"]["packets"] if x["dir"] == "out"]
    dht = summary["dht"]
    [h] = [h for h in dht["info_hashes"] if h["info_hash"] == ih]
    assert h["get_peers"] == sum(1 for x in sent if x.get("q") == "get_peers" and x.get("info_hash") == ih)
    assert h["announce_peer"] == sum(1 for x in sent if x.get("q") == "announce_peer"
                                     and x.get("info_hash") == ih) >= 1
    # libtorrent also refreshes its routing table with get_peers for random targets: every
    # get_peers the subject sent is reported, per info hash, exactly
    sent_get_peers = Counter(x["info_hash"] for x in sent if x.get("q") == "get_peers")
    assert {x["info_hash"]: x["get_peers"] for x in dht["info_hashes"] if x["get_peers"]} == dict(sent_get_peers)
    assert set(gt["peers"]["l1"]["dht_log"]["looked_up"]) <= {x["info_hash"] for x in dht["info_hashes"]}
    assert dht["subject_messages"] == len(sent)
    total_packets = sum(1 for p in gt["peers"].values() for x in p["dht_log"]["packets"] if x["dir"] == "out")
    assert summary["accounting"]["categories"]["dht"]["frames"] == total_packets
    assert summary["accounting"]["categories"]["udp"]["frames"] == 0
    from analyzer.report.document import ReportData
    data = ReportData(write_folder(result, tmp_path / "out"), None, None, None)
    part = {(r["info_hash"], r["mechanism"]): r for r in data.participation()}
    assert part[(ih, "DHT announce_peer")]["count"] == h["announce_peer"]
    assert part[(ih, "DHT announce_peer")]["in_summary"] == "yes"


def test_dht_only_capture_infers_the_node_and_its_info_hashes(tmp_path):
    """A sensor that kept only l1's UDP: its DHT traffic and nothing else (peers connect over
    TCP).  The subject is inferred from the DHT (the node common to every message, which sent
    get_peers/announce_peer) and dht.info_hashes lists what it looked up and announced."""
    spec = dht_trio("router", size=SIZE, seed=23)
    res = run_swarm(spec, tmp_path, capture_args=["udp", "and", "host", "127.0.0.3"])
    gt = res.ground_truth
    ih = gt["torrents"]["t1"]["info_hash_v1"]
    result = analyze(res.capture_files, warn=lambda m: None)
    summary = summarize(result)
    cats = summary["accounting"]["categories"]
    assert cats["dht"]["frames"] == summary["accounting"]["frames"] > 0
    s = summary["subject"]
    assert summary["local"] == ["127.0.0.3"] and s["ambiguous"] is False
    assert s["basis"].startswith("127.0.0.3 is an end of all")
    ev = {c["address"]: c["evidence"] for c in s["candidates"]}
    assert set(ev) == {"127.0.0.2", "127.0.0.3", "127.0.0.4"}
    assert ev["127.0.0.3"]["dht_messages"] == ev["127.0.0.3"]["dht_of"] > ev["127.0.0.2"]["dht_messages"]
    sent = [x for x in gt["peers"]["l1"]["dht_log"]["packets"] if x["dir"] == "out"]
    [h] = [h for h in summary["dht"]["info_hashes"] if h["info_hash"] == ih]
    assert h["get_peers"] == sum(1 for x in sent if x.get("q") == "get_peers" and x.get("info_hash") == ih) >= 1
    assert h["announce_peer"] == sum(1 for x in sent if x.get("q") == "announce_peer"
                                     and x.get("info_hash") == ih) >= 1
    assert summary["dht"]["subject_messages"] == len(sent)


def test_local_service_discovery(tmp_path):
    spec = lsd_pair(size=SIZE, seed=23)
    res = run_swarm(spec, tmp_path)
    gt = res.ground_truth
    ih = gt["torrents"]["t1"]["info_hash_v1"]
    result, summary = analyze_swarm(res, "127.0.0.3")
    assert_exact(result, gt)
    by_sender = {(a["sender"], a["info_hash"]): a for a in summary["lsd"]}
    # what the capture holds (an announce libtorrent logs after the capture stopped is not in it)
    wire = Counter(subprocess.run(["tshark", "-n", "-r", str(res.capture_files[0]), "-Y", "udp.dstport==6771",
                                   "-T", "fields", "-e", "ip.src"], capture_output=True, text=True,
                                  check=True).stdout.split())
    for name, p in gt["peers"].items():
        sent = [e for e in p["lsd_log"] if e.get("dir") == "out"]
        a = by_sender[(p["ip"], ih)]
        assert a["count"] == wire[p["ip"]] >= 1 and a["count"] <= len(sent) and a["port"] == 6881
        assert a["by_subject"] == (p["ip"] == "127.0.0.3")
    assert summary["accounting"]["categories"]["lsd"]["frames"] == sum(wire.values())


def two_peer(encryption):
    return encrypted_pair(encryption, size=SIZE, seed=24)


def test_forced_encryption_is_never_attributed(tmp_path):
    res = run_swarm(two_peer("forced"), tmp_path)
    gt = res.ground_truth
    result, summary = analyze_swarm(res, "127.0.0.3")
    assert summary["torrents"] == []
    assert summary["accounting"]["categories"]["bittorrent"]["frames"] == 0
    for name, p in gt["peers"].items():
        c = p["torrents"]["t1"]
        e = summarize(result, given_subject([p["ip"]]))["encrypted"]
        assert e["connections"] >= 1
        # every payload byte of the clients travelled inside the encrypted stream
        assert e["uploaded_bytes"] >= c["total_payload_upload"]
        assert e["downloaded_bytes"] >= c["total_payload_download"]
        assert torrents_of(result, given_subject([p["ip"]])) == []
    cats = summary["accounting"]["categories"]
    assert cats["encrypted"]["frames"] == sum(r.frames for r in result.records)


def test_encryption_settling_on_plaintext_is_parsed(tmp_path):
    # MSE key exchange, plaintext selected: the initiator's handshake goes encrypted,
    # the responder's handshake and all messages after it are plaintext
    res = run_swarm(two_peer("mse_plaintext"), tmp_path)
    result, summary = analyze_swarm(res, "127.0.0.3")
    assert_exact(result, res.ground_truth)
    [r] = [r for r in result.records if r.transport == "tcp"]
    assert r.encryption == "mse_plaintext" and r.category == "bittorrent"
    assert summary["encrypted"]["plaintext_after_key_exchange"] == 1


def test_encrypted_connections_gain_context_from_plaintext_announces(tmp_path):
    """Forced encryption, but both clients announce their listening port to HTTP and UDP
    trackers in plaintext: every encrypted connection's listening end is named as such."""
    spec = tracker_spec()
    for p in spec["peers"]:
        p["encryption"] = "forced"
    res = run_swarm(spec, tmp_path)
    result, summary = analyze_swarm(res, "127.0.0.3")
    e = summary["encrypted"]
    assert summary["torrents"] == [] and e["connections"] >= 1
    assert e["with_bittorrent_context"] == e["connections"]
    rows = [r for r in csv.DictReader(io.StringIO(connections_csv(result))) if r["encryption"] == "mse"]
    assert rows and all(":6881: " in r["encryption_context"] and "tracker announce" in r["encryption_context"]
                        for r in rows)
