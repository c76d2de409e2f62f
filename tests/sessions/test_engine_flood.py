"""SYN floods and scans (issue 12): 200,000 half-open TCP connections took 872 MB and 105 s.
Connections that never carry payload now cost a few hundred bytes while live, live connections
are capped (the oldest idle finished and counted), and what follows the engine (records, the
record store, findings, connections.csv) costs little per connection."""
from __future__ import annotations

import csv
import io
import json
import struct
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path


from analyzer.analysis import analyze
from analyzer.capture.reader import CaptureReader
from analyzer.findings import build_findings
from analyzer.protocols.peerwire import PeerWireParser
from analyzer.output.tables import connections_csv
from analyzer.sessions import _engine
from analyzer.sessions._engine import Engine
from fuzz import hostile as H
from summaries import summarize

REPO = Path(__file__).resolve().parents[2]
LISTENER = "10.0.0.2"


def flood_with_a_busy_connection(tmp_path: Path, n: int) -> Path:
    """``n`` SYNs, one a millisecond, with a real connection that carries a message every 10
    frames among them."""
    frames = list(H.syn_flood_frames(n))
    busy = H.tcp_stream_packets([H.bt_handshake(b"-XX0001-clientclient")] + [H.bt_message(2)] * (n // 20),
                                [H.bt_handshake()])
    merged = []
    for i, f in enumerate(frames):
        if i % 10 == 0 and busy:
            merged.append(busy.pop(0))
        merged.append(f)
    merged += busy
    path = tmp_path / "flood.pcap"
    path.write_bytes(H.pcap([(H.BASE_S + i // 1000, (i % 1000) * 1000, f) for i, f in enumerate(merged)]))
    return path


def test_cap_finishes_the_oldest_idle_and_counts_them(tmp_path):
    path = flood_with_a_busy_connection(tmp_path, 3000)
    e = Engine()
    e.max_live = 64
    early = []
    created = 0
    for batch in CaptureReader(path).batches():
        e.process_batch(batch, 0)
        early += e.drain_finished()
    while e.finish(100):
        pass
    late = e.drain_finished()
    assert e.finished_at_cap == len(early) >= 3000 - 64
    assert len(early) + len(late) == 3001
    assert len(late) <= 64                              # never more than the cap were live
    # the busy connection was never idle for long: it is finished at the end, whole
    [busy] = [c for c in early + late if c.port1 == 6881 and c.port0 == 50000]
    assert busy in late and busy.parser0.messages == 150 and busy.parser1.messages == 0
    assert (busy.frames0, busy.frames1) == (2 + 151 + 1 + 2, 1 + 151 + 1 + 1)    # SYN, data, ACKs, FIN
    # the oldest went first (by last frame, then creation)
    assert [c.conn_id for c in early] == sorted(c.conn_id for c in early)


def test_outputs_do_not_change_when_the_cap_is_reached(tmp_path, monkeypatch):
    """Half-open connections finished at the cap give the same records as at the end of the
    capture: only the counter says that the cap was reached."""
    path = tmp_path / "syn.pcap"
    path.write_bytes(H.syn_flood_pcap(3000))
    outputs = []
    for cap in (0, 256):
        monkeypatch.setattr(_engine, "MAX_LIVE_CONNECTIONS", cap)
        result = analyze([path], local=[LISTENER], warn=lambda m: None)
        s = summarize(result)
        outputs.append((s, connections_csv(build_findings(result))))
        result.close()
    (s0, csv0), (s1, csv1) = outputs
    assert csv0 == csv1 and len(list(csv.DictReader(io.StringIO(csv1)))) == 3000
    assert s0["accounting"].pop("connections_finished_at_cap") == 0
    assert s1["accounting"].pop("connections_finished_at_cap") >= 3000 - 256
    assert s0 == s1


def live_cost(path: Path, n: int, warm: int) -> float:
    """Bytes of RSS a live connection costs, measured in a fresh process: the engine reads the
    capture (no cap on live connections), the first batch (``warm`` connections) before the
    baseline."""
    code = textwrap.dedent(f"""
        import os
        from analyzer.capture.reader import CaptureReader
        from analyzer.sessions._engine import Engine
        def rss():
            return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        batches = CaptureReader({str(path)!r}).batches()
        e = Engine()
        e.max_live = 0
        e.process_batch(next(batches), 0)
        before = rss()
        for b in batches:
            e.process_batch(b, 0)
        print((rss() - before) / ({n} - {warm}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    return float(out.stdout.split()[-1])


def test_connections_without_payload_are_cheap(tmp_path):
    """Live cost of a half-open connection: it was 4.4 KB."""
    n = 100_000
    path = tmp_path / "syn.pcap"
    path.write_bytes(H.syn_flood_pcap(n))
    per_connection = live_cost(path, n, 2048)
    assert per_connection < 900, f"{per_connection:.0f} bytes per half-open connection"


def test_connections_with_a_little_payload_are_cheap_too(tmp_path):
    """Connections seen mid-stream that each carry a few bytes: a payload state, a comparison
    ring and a resynchronising parser each.  The ring (64 KiB) and the resync buffer (256 KiB)
    were allocated whole and a page of each touched: 11.5 KB a connection, 2.0 GB for 200,000.
    Both now start small and double as bytes come (the same bytes kept as before)."""
    n = 50_000
    path = tmp_path / "flood.pcap"
    path.write_bytes(H.flood_pcap(H.payload_flood_frames(n)))
    per_connection = live_cost(path, n, 1024)
    assert per_connection < 4000, f"{per_connection:.0f} bytes per connection with 20 bytes of payload"


def test_syn_flood_of_200000_end_to_end(tmp_path):
    """The issue's case through the command line: memory under 256 MB (was 872 MB); time
    checked loosely here (was 105 s; about 9 s on the 2-core reference machine, README)."""
    path = tmp_path / "syn.pcap"
    path.write_bytes(H.syn_flood_pcap(200_000))
    # the child reports its own peak: VmHWM of its address space (ru_maxrss would count the pages
    # of this test process, which the child shares between fork and exec)
    code = textwrap.dedent(f"""
        import re, runpy, sys
        sys.argv = ["bt-analyzer", "analyze", {str(path)!r}, "--local", {LISTENER!r},
                    "--out", {str(tmp_path / "out")!r}, "--quiet"]
        try:
            runpy.run_module("analyzer.cli", run_name="__main__")
        finally:
            status = open("/proc/self/status").read()
            print("peak", re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1), file=sys.stderr)
    """)
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    seconds = time.monotonic() - t0
    assert p.returncode == 0, p.stderr
    rss_mb = int(p.stderr.split("peak")[-1].split()[0]) / 1024
    print(f"SYN flood: {seconds:.1f} s, peak RSS {rss_mb:.0f} MB")
    acc = json.loads((tmp_path / "out" / "summary.json").read_text())["accounting"]
    assert acc["categories"]["other_tcp"]["connections"] == 200_000
    assert acc["connections_finished_at_cap"] > 0
    assert rss_mb < 256, f"peak RSS {rss_mb:.0f} MB"
    assert seconds < 60, f"{seconds:.1f} s"


# ---------------------------------------------------------------------- uTP
def utp(ptype: int, cid: int, seq: int, ack: int, payload: bytes = b"") -> bytes:
    return struct.pack(">BBHIIIHH", (ptype << 4) | 1, 0, cid, 0, 0, 1 << 20, seq, ack) + payload


def utp_frame(src: bytes, dst: bytes, sport: int, dport: int, data: bytes) -> bytes:
    return H.ether(H.ipv4(src, dst, 17, struct.pack(">HHHH", sport, dport, 8 + len(data), 0) + data))


def test_utp_parsers_are_made_at_the_first_data_packet(tmp_path):
    """A uTP connection gets a peer wire parser per direction only when that direction carries
    data (a flood of uTP SYNs gets none); packets declared lost before it are fed to it first,
    so it parses exactly as a parser that had been there from the start."""
    A, B = H.CLIENT, H.SERVER
    data = H.bt_message(2) + H.bt_message(3) + H.bt_message(2) + H.bt_message(3) + H.bt_message(1)
    frames = [utp_frame(A, B, 5000, 6881, utp(4, 100, 1, 0)),                 # SYN, id 100
              utp_frame(B, A, 6881, 5000, utp(2, 100, 7000, 1))]              # STATE
    # A's DATA 2 and 3 are not captured; B acknowledges them (70 times: past the patience)
    frames += [utp_frame(B, A, 6881, 5000, utp(2, 100, 7000, 3))] * 70
    frames += [utp_frame(A, B, 5000, 6881, utp(0, 101, 4, 7000, data)),
               utp_frame(A, B, 5000, 6881, utp(4, 900, 1, 0))]                # another SYN, nothing more
    path = tmp_path / "utp.pcap"
    path.write_bytes(H.pcap_of(frames))
    e = Engine()
    for batch in CaptureReader(path).batches():
        e.process_batch(batch, 0)
    e.finish()
    first, lone = e.drain_finished()
    assert first.parser1 is None and lone.parser0 is None and lone.parser1 is None
    p = first.parser0
    ref = PeerWireParser(True)
    ref.receive_break()
    ref.receive_data(data)
    ref.receive_eof()
    assert first.s0.gap_packets == 2 and p.breaks == ref.breaks == 1
    fields = ("messages", "unparsed_bytes", "opaque_bytes", "resyncs", "handshake_bytes", "message_bytes",
              "best_run", "stream_off")
    assert [getattr(p, f) for f in fields] == [getattr(ref, f) for f in fields]
    assert p.messages == 5 and p.resyncs == 1       # framing found again after the break
