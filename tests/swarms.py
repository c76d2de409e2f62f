"""Shared pieces of the real-traffic tests: swarm specs and exact checks
against libtorrent's counters."""
from __future__ import annotations

from analyzer.analysis import analyze
from analyzer.sessions.subject import given_subject
from analyzer.validation.harness.specs import three_peers, two_peers  # noqa: F401 -- the tests' specs
from summaries import summarize, torrents_of


def handshake_hashes(truth: dict, name: str) -> set[str]:
    h = truth["torrents"][name]["handshake_info_hash"]
    return set(h) if isinstance(h, list) else {h}


def assert_exact(result, truth: dict) -> None:
    """Each peer as the subject: its torrent figures equal its counters."""
    for peer_name, peer in truth["peers"].items():
        torrents = torrents_of(result, given_subject([peer["ip"]]))
        for tname, counters in peer["torrents"].items():
            names = handshake_hashes(truth, tname)
            entries = [t for t in torrents if names & {t["info_hash"], *t["info_hash_aliases"]}]
            assert len(entries) == 1, (peer_name, tname, [t["info_hash"] for t in torrents])
            t = entries[0]
            where = f"{peer_name}/{tname}"
            assert t["uploaded_bytes"] == counters["total_payload_upload"], where
            assert t["downloaded_acked_bytes"] == counters["total_payload_download"], where
            assert t["uploaded_acked_bytes"] == t["uploaded_bytes"], where
            assert t["downloaded_bytes"] == t["downloaded_acked_bytes"], where
            assert t["downloaded_gap_bytes"] == t["uploaded_gap_bytes"] == 0, where
            assert t["downloaded_unknown_piece_bytes"] == t["uploaded_unknown_piece_bytes"] == 0, where


def assert_accounting(result, summary: dict) -> None:
    acc = summary["accounting"]
    frames_in_files = sum(i["frames"] for i in summary["inputs"])
    assert acc["frames"] == acc["frames_read"] == frames_in_files
    assert sum(c["frames"] for c in acc["categories"].values()) == frames_in_files
    cats = acc["categories"]
    assert cats["bittorrent"]["frames"] > 0
    assert cats["undecodable"]["frames"] == 0
    assert cats["bittorrent_unattributed"]["frames"] == 0
    assert acc["gap_bytes"] == {"to_subject": 0, "from_subject": 0, "not_involving_subject": 0}
    assert acc["gap_packets"] == {"to_subject": 0, "from_subject": 0, "not_involving_subject": 0}
    # every stream byte is accounted by the peer wire parser
    for r in result.records:
        for d in (r.fwd, r.rev):
            assert d.handshake_bytes + d.message_bytes + d.block_bytes + d.unparsed_bytes \
                + d.opaque_bytes == d.payload_bytes
            assert d.unparsed_bytes == d.opaque_bytes == d.protocol_errors == 0


def analyze_swarm(res, subject_ip: str, files=None):
    result = analyze(files or res.capture_files, local=[subject_ip], warn=lambda m: None)
    summary = summarize(result)
    for i in summary["inputs"]:
        assert i["readable"] and not i["errors"], i
    return result, summary


def transport_figures(summary: dict) -> dict:
    """{transport: torrent figures} of the single torrent of a summary."""
    [t] = summary["torrents"]
    return t["transports"]
