"""Engine-level TCP behaviour through crafted captures: ``analyze()`` +
``summarize()`` must give exact downloaded / uploaded figures for the
subject (the leecher, 10.1.0.1) whatever the capture did to the segments."""
from __future__ import annotations

import csv
import io
import random

import pytest

from analyzer.analysis import analyze
from analyzer.capture import reader as reader_mod
from summaries import connections_csv, summarize
from analyzer.sessions.store import sort_key
from analyzer.sessions.subject import given_subject
from analyzer.findings.transfers import transfer
from craft_tcp import (BLOCK, NS, SYN, BtStream, Conversation, copy_seg, leecher_stream, seeder_stream,
                       write_pcap)

A = ("10.1.0.1", 51413)        # leecher: the subject
B = ("10.1.0.2", 6881)         # seeder
IH = bytes.fromhex("c0ffee00" * 5)
IH2 = bytes.fromhex("0badf00d" * 5)


def conversation(info_hash=IH, isn_a=1_000_000, isn_b=3_000_000_000, t0=None, close=True, **kw):
    """A full BitTorrent connection: A downloads 2 pieces of 4 blocks and uploads 2 small blocks."""
    c = Conversation(A, B, isn_a, isn_b, mss=1400, **({"t0": t0} if t0 else {}))
    up = leecher_stream(info_hash, upload_blocks=2, **kw)
    down = seeder_stream(info_hash, pieces=2, blocks_per_piece=4, last_block=5000)
    c.open()
    c.send(0, bytes(up.data[:68]))                     # A's handshake
    c.send(1, bytes(down.data[:68 + 6 + 5]))           # B's handshake, bitfield, unchoke
    c.send(0, bytes(up.data[68:]))                     # interested, requests, A's blocks
    c.send(1, bytes(down.data[68 + 6 + 5:]))           # B's blocks
    if close:
        c.close()
    return c, up, down


def run(tmp_path, *parts, name="t.pcap"):
    path = write_pcap(tmp_path / name, *parts)
    result = analyze([path], local=[A[0]], warn=lambda m: None)
    summary = summarize(result)
    frames = sum(len(segs) for _, segs in parts)
    assert summary["accounting"]["frames"] == frames == summary["accounting"]["frames_read"]
    return result, summary


def torrent(summary, info_hash=IH):
    (t,) = [t for t in summary["torrents"] if t["info_hash"] == info_hash.hex()]
    return t


def assert_exact(t, up, down, *, down_missing=0, down_unacked=0):
    assert t["downloaded_bytes"] == down.block_bytes - down_missing
    assert t["downloaded_acked_bytes"] == down.block_bytes - down_missing - down_unacked
    assert t["downloaded_gap_bytes"] == down_missing
    assert t["uploaded_bytes"] == t["uploaded_acked_bytes"] == up.block_bytes
    assert t["uploaded_gap_bytes"] == 0


def data_segs(c, side):
    return [s for s in c.segs if s.side == side and s.payload]


# ---------------------------------------------------------------------- baseline
def test_clean_connection(tmp_path):
    c, up, down = conversation()
    result, summary = run(tmp_path, (c.ep, c.segs))
    t = torrent(summary)
    assert_exact(t, up, down)
    assert t["connections"] == 1 and t["peers"] == 1
    assert t["downloaded_unknown_piece_bytes"] == t["uploaded_unknown_piece_bytes"] == 0
    (r,) = result.records
    assert r.category == "bittorrent" and r.state == "fin" and r.initiator_known
    assert (r.src_ip, r.src_port, r.dst_ip, r.dst_port) == (A[0], A[1], B[0], B[1])
    acc = summary["accounting"]
    assert acc["gap_bytes"] == {"to_subject": 0, "from_subject": 0, "not_involving_subject": 0}
    assert acc["tcp_streams"]["bittorrent"]["payload_bytes"] == len(up) + len(down)
    assert acc["tcp_streams"]["bittorrent"]["duplicate_bytes"] == 0


# ---------------------------------------------------------------------- reordering, retransmission
@pytest.mark.parametrize("window", [2, 5, 9])
def test_reordering(tmp_path, window):
    c, up, down = conversation()
    rnd = random.Random(window)
    idx = [i for i, s in enumerate(c.segs) if s.payload]
    for k in range(0, len(idx), window):          # shuffle the data segments inside each window
        group = idx[k:k + window]
        segs = [c.segs[i] for i in group]
        rnd.shuffle(segs)
        for i, s in zip(group, segs):
            c.segs[i] = s
    result, summary = run(tmp_path, (c.ep, c.segs))
    assert_exact(torrent(summary), up, down)
    assert summary["accounting"]["tcp_streams"]["bittorrent"]["gap_bytes"] == 0


def test_retransmissions(tmp_path):
    c, up, down = conversation()
    segs = list(c.segs)
    extra = 0
    out = []
    for i, s in enumerate(segs):
        out.append(s)
        if s.payload and i % 4 == 0:                        # spurious retransmission later on
            out.append(copy_seg(s, ts_ns=s.ts_ns + 500))
            extra += len(s.payload)
    for s in data_segs(c, 1)[10:13]:                        # very late retransmissions
        out.insert(len(out) - 4, copy_seg(s))
        extra += len(s.payload)
    result, summary = run(tmp_path, (c.ep, out))
    assert_exact(torrent(summary), up, down)
    assert summary["accounting"]["tcp_streams"]["bittorrent"]["duplicate_bytes"] == extra
    assert summary["accounting"]["tcp_streams"]["bittorrent"]["conflict_bytes"] == 0


def test_resegmented_retransmission(tmp_path):
    c, up, down = conversation()
    d = data_segs(c, 1)
    s1, s2 = d[20], d[21]
    merged = copy_seg(s1, payload=s1.payload[700:] + s2.payload[:500],
                      seq=(s1.seq + 700) % 2**32, ts_ns=s2.ts_ns + 1)
    i = c.segs.index(s2)
    c.segs.insert(i + 1, merged)
    result, summary = run(tmp_path, (c.ep, c.segs))
    assert_exact(torrent(summary), up, down)
    assert summary["accounting"]["tcp_streams"]["bittorrent"]["duplicate_bytes"] == len(merged.payload)


# ---------------------------------------------------------------------- missing segments, truncation
def inside_block(down, seg):
    return any(a <= seg.off and seg.off + len(seg.payload) <= b for a, b in down.blocks)


def test_missing_segment_is_a_gap(tmp_path):
    c, up, down = conversation()
    lost = [s for s in data_segs(c, 1) if inside_block(down, s)][15]
    c.segs.remove(lost)                        # the receiver got it (its ACKs say so), the capture did not
    result, summary = run(tmp_path, (c.ep, c.segs))
    n = len(lost.payload)
    assert_exact(torrent(summary), up, down, down_missing=n)
    assert summary["accounting"]["gap_bytes"] == {"to_subject": n, "from_subject": 0, "not_involving_subject": 0}
    (r,) = result.records
    assert r.rev.gap_bytes == r.rev.block_gap_bytes == n and r.rev.resyncs == 0


def test_missing_segment_across_piece_header(tmp_path):
    c, up, down = conversation()
    # a segment that holds the end of one block and the header of the next
    lost = next(s for s in data_segs(c, 1)[6:] if not inside_block(down, s))
    c.segs.remove(lost)
    result, summary = run(tmp_path, (c.ep, c.segs))
    t = torrent(summary)
    assert summary["accounting"]["gap_bytes"]["to_subject"] == len(lost.payload)
    lost_blocks = down.block_bytes_in(lost.off, lost.off + len(lost.payload))
    # at most the lost block bytes, and the following block is recovered as a tail
    assert down.block_bytes - lost_blocks - BLOCK <= t["downloaded_bytes"] <= down.block_bytes - lost_blocks
    assert t["downloaded_acked_bytes"] == t["downloaded_bytes"]
    assert result.records[0].rev.resyncs == 1


def test_snaplen_truncated_frame(tmp_path):
    c, up, down = conversation()
    seg = [s for s in data_segs(c, 1) if inside_block(down, s)][10]
    seg.caplen_cut = 300
    result, summary = run(tmp_path, (c.ep, c.segs))
    assert_exact(torrent(summary), up, down, down_missing=300)
    assert summary["accounting"]["tcp_streams"]["bittorrent"]["truncated_bytes"] == 300


def test_capture_ends_before_the_last_acks(tmp_path):
    c, up, down = conversation(close=False)
    last = data_segs(c, 1)[-3]
    cut_at = c.segs.index(last)
    segs = [s for i, s in enumerate(c.segs) if i <= cut_at or s.payload]   # the last ACKs are not captured
    result, summary = run(tmp_path, (c.ep, segs))
    unacked = down.block_bytes_in(last.off, len(down))
    assert_exact(torrent(summary), up, down, down_unacked=unacked)
    assert result.records[0].state == "open"


# ---------------------------------------------------------------------- 4-tuple reuse
@pytest.mark.parametrize("closed", [True, False])
def test_four_tuple_reuse(tmp_path, closed):
    c1, up1, down1 = conversation(close=closed)
    c2, up2, down2 = conversation(info_hash=IH2, isn_a=7_000_000, isn_b=9_000, t0=c1.t + 10**9)
    result, summary = run(tmp_path, (c1.ep, c1.segs), (c2.ep, c2.segs))
    assert len(result.records) == 2
    assert [r.category for r in result.records] == ["bittorrent", "bittorrent"]
    assert [r.info_hash for r in result.records] == [IH.hex(), IH2.hex()]
    assert summary["accounting"]["reused_tuples"] == 1 == result.reused_tuples
    assert_exact(torrent(summary, IH), up1, down1)
    assert_exact(torrent(summary, IH2), up2, down2)


def test_four_tuple_reuse_same_torrent(tmp_path):
    c1, up1, down1 = conversation()
    c2, up2, down2 = conversation(isn_a=123, isn_b=2**32 - 500, t0=c1.t + 10**9)
    result, summary = run(tmp_path, (c1.ep, c1.segs), (c2.ep, c2.segs))
    t = torrent(summary)
    assert t["connections"] == 2
    assert t["downloaded_bytes"] == t["downloaded_acked_bytes"] == down1.block_bytes + down2.block_bytes
    assert t["uploaded_bytes"] == t["uploaded_acked_bytes"] == up1.block_bytes + up2.block_bytes


# ---------------------------------------------------------------------- capture starts mid-connection
def test_capture_starts_mid_connection(tmp_path):
    c, up, down = conversation()
    d = data_segs(c, 1)
    first = next(s for s in d if s.off > down.blocks[0][0] + 2000 and inside_block(down, s))
    start = c.segs.index(first)
    segs = c.segs[start:]
    result, summary = run(tmp_path, (c.ep, segs))
    (r,) = result.records
    assert r.category == "bittorrent_unattributed" and not r.initiator_known
    assert summary["torrents"] == []
    f = transfer(r, given_subject([A[0]])).sums
    block = next((a, b) for a, b in down.blocks if a <= first.off < b)
    tail = block[1] - first.off
    expected = down.block_bytes_in(first.off, len(down))
    assert f.downloaded_unknown_piece_bytes == tail
    assert f.downloaded_bytes == f.downloaded_acked_bytes == expected
    assert summary["accounting"]["peer_wire"]["block_bytes"] == expected
    assert summary["accounting"]["categories"]["bittorrent_unattributed"]["connections"] == 1
    u = summary["unattributed"]
    assert u["connections"] == 1
    assert u["downloaded_bytes"] == u["downloaded_acked_bytes"] == expected
    assert u["downloaded_unknown_piece_bytes"] == tail


# ---------------------------------------------------------------------- timestamps
@pytest.mark.parametrize("how", ["reversed", "shuffled", "step_back"])
def test_timestamps_going_backwards(tmp_path, how):
    c, up, down = conversation()
    ts = [s.ts_ns for s in c.segs]
    if how == "reversed":
        ts = ts[::-1]
    elif how == "shuffled":
        random.Random(3).shuffle(ts)
    else:                                        # the clock steps back an hour mid-connection
        half = len(ts) // 2
        ts = ts[:half] + [t - 3600 * 10**9 for t in ts[half:]]
    for s, t in zip(c.segs, ts):
        s.ts_ns = t
    result, summary = run(tmp_path, (c.ep, c.segs))
    t = torrent(summary)
    assert_exact(t, up, down)
    assert t["first_seen"] <= t["last_seen"]
    assert len(result.records) == 1


def test_acks_captured_before_the_data_they_acknowledge(tmp_path):
    """BUG (see test_tcp.py::test_patience_counts_frames_per_hole): a full-duplex
    tap whose data direction lags shows every ACK a couple of frames before the
    data it acknowledges.  No byte is missing, yet the hole-patience counter is
    never reset between holes, so segments get declared gaps one frame before
    they arrive: downloaded bytes are short and gap bytes are invented."""
    c, up, down = conversation()
    lag = 4.5                                     # B's data frames show up 4.5 frame slots late
    order = sorted(range(len(c.segs)), key=lambda i: i + (lag if c.segs[i].side == 1 and c.segs[i].payload else 0))
    out = [c.segs[i] for i in order]
    result, summary = run(tmp_path, (c.ep, out))
    assert summary["accounting"]["gap_bytes"]["to_subject"] == 0
    assert_exact(torrent(summary), up, down)


def test_syn_ack_missing_from_capture(tmp_path):
    """The responder's direction starts without a SYN: its handshake is still found."""
    c, up, down = conversation()
    segs = [s for s in c.segs if not (s.side == 1 and s.flags & SYN)]
    result, summary = run(tmp_path, (c.ep, segs))
    assert_exact(torrent(summary), up, down)
    (r,) = result.records
    assert r.rev.peer_id == b"-TR3000-seederseeder" and r.rev.handshake_bytes == 68


# ---------------------------------------------------------------------- long silences
def test_connection_silent_for_long_is_split_and_linked(tmp_path):
    """A connection silent for longer than the engine keeps one (10 min) is finished; when
    it speaks again its frames form a connection without handshake, attributed to the same
    torrent as "same_connection", and every block byte is still counted exactly once."""
    c, up, down = conversation(close=False)
    more = BtStream()
    for j in range(3):
        more.piece(7, j * BLOCK, seed=1000 + j)
    c.t += 11 * 60 * NS                                  # 11 minutes of silence
    c.send(1, bytes(more.data))
    c.close()
    result, summary = run(tmp_path, (c.ep, c.segs))
    t = torrent(summary)
    assert t["downloaded_bytes"] == t["downloaded_acked_bytes"] == down.block_bytes + more.block_bytes
    assert t["uploaded_bytes"] == up.block_bytes
    assert t["connections"] == 2
    first, second = list(result.records)
    assert (first.attribution, second.attribution) == ("handshake", "same_connection")
    assert second.continues == sort_key(first) and second.info_hash == IH.hex()
    assert (first.attribution_file, first.attribution_frame) == (0, 4)   # A's handshake, after SYN/SYN-ACK/ACK
    assert summary["accounting"]["connections_finished_after_silence"] == 1
    assert summary["accounting"]["connections_continued_after_silence"] == 1
    rows = list(csv.DictReader(io.StringIO(connections_csv(result))))
    assert rows[1]["attribution"] == "same_connection" and rows[1]["attribution_conn_id"] == rows[0]["conn_id"]
    assert rows[1]["attribution_frame"] == "4"


def test_split_does_not_depend_on_batches(tmp_path, monkeypatch):
    """The split is decided per frame, not by the periodic sweep: whether another connection's
    frames make a batch end (and a sweep run) inside the silence must not change the records."""
    c, up, down = conversation(close=False)
    before = len(c.segs)
    c.t += 11 * 60 * NS
    other = Conversation(("10.1.0.1", 40000), ("10.1.0.9", 80), 5, 7, mss=1400, t0=c.t)
    other.open().send(0, b"x" * 3000)
    c.t = other.t + NS
    c.send(1, bytes(BtStream().piece(7, 0, seed=5).data))
    path = write_pcap(tmp_path / "t.pcap", (c.ep, c.segs[:before]), (other.ep, other.segs),
                      (c.ep, c.segs[before:]))
    a = summarize(analyze([path], local=[A[0]], warn=lambda m: None))
    monkeypatch.setattr(reader_mod, "BATCH_RECORDS", 3)
    b = summarize(analyze([path], local=[A[0]], warn=lambda m: None))
    assert a["torrents"] == b["torrents"] and a["accounting"] == b["accounting"]
    assert a["accounting"]["connections_finished_after_silence"] == 1
    assert torrent(a)["downloaded_bytes"] == down.block_bytes + BLOCK


def test_a_new_connection_without_syn_on_another_tuple_is_not_linked(tmp_path):
    c, up, down = conversation(close=False)
    other = Conversation(A, ("10.1.0.3", 6881), 5, 7, mss=1400, t0=c.t + 11 * 60 * NS)
    other.send(1, bytes(BtStream().piece(7, 0, seed=5).data))
    result, summary = run(tmp_path, (c.ep, c.segs), (other.ep, other.segs))
    assert [r.attribution for r in result.records] == ["handshake", ""]
    assert [r.category for r in result.records] == ["bittorrent", "bittorrent_unattributed"]
