"""The summary printed on the terminal (``render_summary``), from golden summary.json files."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

from analyzer.cli import render_summary

GOLDEN = Path(__file__).with_name("golden")


def summary(case: str) -> dict:
    return json.loads((GOLDEN / case / "summary.json").read_text())


def test_redundant_and_failed_bytes_explain_downloaded_beyond_the_size():
    # L (127.0.0.4) received 163,840 bytes it already had: its download exceeds the torrent's size
    out = render_summary(summary("sample-rotated"), Path("out"))
    assert "downloaded       1,663,840 B" in out
    assert ("downloaded beyond the verified pieces: 163,840 B redundant, 0 B in pieces that failed the hash "
            "check (downloaded exceeds the torrent's size by 163,840 B)") in out
    s = summary("sample-rotated")
    v = s["torrents"][0]["verification"]
    v["failed_uploaded_bytes"] = 32768
    assert "uploaded beyond the verified pieces: 0 B redundant, 32,768 B in pieces that failed" \
        in render_summary(s, Path("out"))
    assert "beyond the verified pieces" not in render_summary(summary("sample-verified"), Path("out"))


def test_totals_across_torrents():
    s = summary("public-all")
    out = render_summary(s, Path("out"))
    n = len(s["torrents"])
    assert n > 1 and f"all {n} torrents" in out
    down = sum(t["downloaded_bytes"] for t in s["torrents"])
    assert re.search(rf"all {n} torrents\n  downloaded +{down:,} B", out)
    assert "None to None" not in out and "no connection of the subject" in out
    one = render_summary(summary("sample-verified"), Path("out"))
    assert "all 1 torrents" not in one and "torrents\n" not in one


def test_thousands_separators_everywhere():
    s = copy.deepcopy(summary("public-all"))
    s["accounting"]["frames"] = 1234567
    s["accounting"]["gap_bytes"] = {"to_subject": 5128890, "from_subject": 1464, "not_involving_subject": 0}
    s["torrents"][-1]["peers"] = 1500
    s["unattributed"]["connections"] = 2048
    out = render_summary(s, Path("out"))
    assert "1,234,567 frames" in out and "1,500 peer(s)" in out and "2,048 connection(s)" in out
    assert "capture gaps: 5,128,890 B to the subject, 1,464 B from it, 0 B elsewhere" in out
    # no number of four digits or more without separators (times, hashes and paths aside)
    for line in out.splitlines():
        if line.startswith(("torrent ", "  ok ", "written")):
            continue
        bare = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+Z", "", line)
        assert not re.search(r"(?<![\d,.])\d{4,}(?![\d,])", bare), line
