"""Subject inference by evidence (sessions/inference.py) on crafted captures: who announced
the torrent, who is an end of every connection, whose listening port the swarm dialled; every
candidate listed with its evidence; an ambiguous capture exits with status 4 unless --local."""
from __future__ import annotations

import json
from urllib.parse import quote_from_bytes

from click.testing import CliRunner

from analyzer.analysis import analyze
from analyzer.cli import main
from craft import INFO_HASH, bt_handshake, ethernet, tcp_conversation, timed, udp_packet, write_pcap
from summaries import summarize

SEED, LEECH, TRACKER, NODE = "10.0.0.1", "10.0.0.2", "10.0.0.9", "10.0.0.99"


def peer_connection(client, server, cport=50000, sport=6881):
    return tcp_conversation(client, server, cport, sport, [(0, bt_handshake(INFO_HASH, b"-LT2110-clientclient")),
                                                           (1, bt_handshake(INFO_HASH, b"-LT2110-serverserver"))])


def http_announce(client, cport=40000):
    query = f"info_hash={quote_from_bytes(INFO_HASH)}&peer_id=-LT2110-clientclient&port=6881&uploaded=0" \
            f"&downloaded=0&left=1000&event=started"
    request = f"GET /announce?{query} HTTP/1.1\r\nHost: {TRACKER}\r\n\r\n".encode()
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 27\r\n\r\nd8:intervali1800e5:peers0:e"
    return tcp_conversation(client, TRACKER, cport, 80, [(0, request), (1, answer)])


def lsd_announce(client):
    body = f"BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\nInfohash: {INFO_HASH.hex()}\r\n\r\n\r\n"
    return [udp_packet(client, "239.192.152.143", 6771, 6771, body.encode())]


def dht_get_peers(querier, node, info_hash=INFO_HASH):
    q = b"d1:ad2:id20:" + bytes([7]) * 20 + b"9:info_hash20:" + info_hash + b"e1:q9:get_peers1:t2:aa1:y1:qe"
    return [udp_packet(querier, node, 6881, 6881, q)]


def capture(tmp_path, *packets, name="cap.pcap"):
    return write_pcap(tmp_path / name, timed([ethernet(p) for group in packets for p in group]))


def infer(path):
    result = analyze([path], warn=lambda m: None)
    return result, summarize(result)


def candidates(summary):
    return {c["address"]: c["evidence"] for c in summary["subject"]["candidates"]}


def test_the_host_that_announced_the_torrent_is_the_subject_not_the_lowest_address(tmp_path):
    """A lab capture: one connection seed-leech; only the leech announced to the tracker
    (before: the seed, the lower address, was chosen)."""
    path = capture(tmp_path, http_announce(LEECH), peer_connection(LEECH, SEED))
    result, summary = infer(path)
    s = summary["subject"]
    assert summary["local"] == [LEECH] and s["ambiguous"] is False
    assert s["basis"].startswith(f"{SEED}, {LEECH} are each an end of all 1 BitTorrent connections; only {LEECH} "
                                 f"announced their torrent (1 tracker announces)")
    ev = candidates(summary)
    assert ev[LEECH]["tracker_announces"] == 1 and ev[LEECH]["torrent_announces"] == 1
    assert ev[LEECH]["initiated"] == 1 and ev[SEED]["listening_port"] == 6881 and ev[SEED]["connected_from"] == 1
    assert ev[SEED]["tracker_announces"] == 0


def test_the_client_that_sent_lsd_and_dht_for_the_torrent_wins_over_the_remote_peer(tmp_path):
    """A campus capture: the client opened both connections to one remote peer (a lower
    address) and sent the LSD announce and a DHT get_peers for the torrent."""
    client, remote = "10.0.5.20", "10.0.0.7"
    path = capture(tmp_path, lsd_announce(client), dht_get_peers(client, NODE),
                   peer_connection(client, remote, 50001), peer_connection(client, remote, 50002))
    result, summary = infer(path)
    assert summary["local"] == [client] and summary["subject"]["ambiguous"] is False
    ev = candidates(summary)
    assert ev[client]["lsd_announces"] == 1 and ev[client]["dht_queries"] == 1 and ev[client]["torrent_announces"] == 2
    assert ev[remote]["torrent_announces"] == 0 and ev[client]["connections"] == ev[remote]["connections"] == 2
    [h] = summary["dht"]["info_hashes"]
    assert h["info_hash"] == INFO_HASH.hex() and h["get_peers"] == 1


def test_dht_lookups_for_other_hashes_do_not_decide(tmp_path):
    """A DHT node looks up hashes near its own id to keep its routing table: not an
    announcement of the torrent exchanged."""
    path = capture(tmp_path, dht_get_peers(SEED, LEECH, bytes([9]) * 20), peer_connection(LEECH, SEED))
    _, summary = infer(path)
    assert summary["subject"]["ambiguous"] is True
    assert candidates(summary)[SEED]["dht_queries"] == 1 and candidates(summary)[SEED]["torrent_announces"] == 0


def test_the_host_the_swarm_dials_is_the_subject_among_several_bittorrent_hosts(tmp_path):
    """Three peers connected to the subject's listening port, plus one connection between two
    other hosts seen on the same link."""
    subject = "10.0.0.50"
    path = capture(tmp_path, peer_connection("10.0.0.3", subject), peer_connection("10.0.0.4", subject),
                   peer_connection("10.0.0.5", subject), peer_connection("10.0.0.3", "10.0.0.4", 50003))
    _, summary = infer(path)
    assert summary["local"] == [subject] and summary["subject"]["ambiguous"] is False
    assert "only one whose listening port (6881) was connected to from several addresses (3)" in \
        summary["subject"]["basis"]
    assert candidates(summary)[subject]["connected_from"] == 3


def test_an_ambiguous_subject_is_said_and_exits_4_unless_local(tmp_path):
    path = capture(tmp_path, peer_connection(LEECH, SEED))
    r = CliRunner().invoke(main, ["analyze", str(path), "--out", str(tmp_path / "out")])
    assert r.exit_code == 4
    assert "AMBIGUOUS" in r.stdout and "the subject is ambiguous" in r.stderr
    s = json.loads((tmp_path / "out" / "summary.json").read_text())["subject"]
    assert s["ambiguous"] is True and {c["address"] for c in s["candidates"]} == {SEED, LEECH}
    assert s["candidates_not_listed"] == 0
    r = CliRunner().invoke(main, ["analyze", str(path), "--local", LEECH, "--out", str(tmp_path / "local")])
    assert r.exit_code == 0, r.output


def test_no_bittorrent_at_all_is_not_ambiguous(tmp_path):
    path = capture(tmp_path, [udp_packet(SEED, LEECH, 5000, 5001)])
    _, summary = infer(path)
    s = summary["subject"]
    assert s["ambiguous"] is False and summary["local"] == [] and "no subject inferred" in s["basis"]
