"""Client sessions of the subject's tracker announces (findings/trackers.py)."""
from __future__ import annotations

from analyzer.findings.trackers import client_sessions
from analyzer.sessions.announces import TrackerAnnounce

H = "ab" * 20


def announce(t, tracker="http://t/announce", event="", peer_id=b"-LT2110-aaaaaaaaaaaa", key="1A2B3C4D", up=0,
             down=0):
    return TrackerAnnounce(ts_ns=t * 10**9, transport=tracker[:4].rstrip(":"), tracker=tracker, client_ip="10.0.0.1",
                           client_port=5000, tracker_ip="10.0.0.9", tracker_port=80, info_hash=H, event=event,
                           uploaded=up, downloaded=down, left=0, peer_id=peer_id, key=key)


def starts(sessions):
    return [(why, len(s)) for why, s in sessions]


def test_started_to_each_tracker_is_one_session():
    seq = [announce(0, event="started"), announce(0, "udp://t:6969", event="started", key="1a2b3c4d"),
           announce(60), announce(61, "udp://t:6969"), announce(90, event="stopped")]
    assert starts(client_sessions(seq)) == [("first announce in the capture", 5)]


def test_started_again_a_new_peer_id_or_key_start_a_session():
    seq = [announce(0, event="started"), announce(50, event="stopped", down=100),
           announce(100, event="started"),                                  # restarted, same peer_id
           announce(200, peer_id=b"-LT2110-bbbbbbbbbbbb", down=5),           # a new client session
           announce(300, peer_id=b"-LT2110-bbbbbbbbbbbb", key="FFFF0000"),    # a new key
           announce(400, peer_id=None, key=None)]                           # nothing says otherwise
    assert starts(client_sessions(seq)) == [("first announce in the capture", 2), ("event=started", 1),
                                            ("new peer_id", 1), ("new key", 2)]
