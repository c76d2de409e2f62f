"""HTTP tracker announces on one keep-alive connection are dated by the frame that carried
each request, not by the connection's first frame."""
from __future__ import annotations

from analyzer.analysis import analyze
from flows.craft_tcp import NS, Conversation, write_pcap

CLIENT = ("10.3.0.1", 40000)
TRACKER = ("10.3.0.2", 6969)
IH = bytes(range(20))


def request(event: str, uploaded: int) -> bytes:
    q = "".join(f"%{b:02X}" for b in IH)
    return (f"GET /announce?info_hash={q}&peer_id=-qB4630-abcdefghijkl&port=6881&uploaded={uploaded}"
            f"&downloaded=0&left=0{'&event=' + event if event else ''} HTTP/1.1\r\nHost: tracker\r\n\r\n").encode()


RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 28\r\n\r\nd8:intervali1800e5:peers0:e"


def test_keep_alive_announces_have_their_own_frames(tmp_path):
    c = Conversation(CLIENT, TRACKER, 1000, 2000)
    c.open()
    c.send(0, request("started", 0))              # frames 4 (request), 5 (ack)
    c.send(1, RESPONSE)
    c.t += 1800 * NS // 60                         # 30 s later, same connection
    second = c.send(0, request("", 123456))[0]
    c.send(1, RESPONSE)
    c.close()
    path = write_pcap(tmp_path / "t.pcap", (c.ep, c.segs))
    result = analyze([path], local=[CLIENT[0]], warn=lambda m: None)
    first, later = [a for a in result.announces if a.transport == "http"]
    assert (first.event, later.uploaded) == ("started", 123456)
    assert first.frame_no == 4
    assert later.frame_no == c.segs.index(second) + 1
    assert later.ts_ns == second.ts_ns and later.ts_ns - first.ts_ns >= 30 * NS
