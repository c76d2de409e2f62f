"""Hostile capture files (issue 12): crashes, hangs and unbounded cost in the reader.

Each case is a crafted input (``tests/fuzz/hostile.py``, also in the seed corpus): it must be
read to the end, its damage reported in one line and counted, and nothing else disturbed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analyzer.capture import reader
from analyzer.capture.reader import CaptureError, CaptureReader
from craft import read_records, run_analysis
from fuzz import hostile as H

REPO = Path(__file__).resolve().parents[2]
US = H.BASE_S * 1_000_000


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


# ---------------------------------------------------------------------- if_tsresol out of range
@pytest.mark.parametrize("raw,shown", [(19, "10^-19"), (73, "10^-73"), (127, "10^-127"),
                                       (0x80 | 64, "2^-64"), (0xFF, "2^-127")])
def test_out_of_range_tsresol_is_a_damaged_interface(tmp_path, raw, shown):
    """10^-73 made the scanner divide by zero (SIGFPE, exit 136); 2^-64 gave garbage times."""
    path = write(tmp_path, "tsresol.pcapng", H.pcapng_tsresol(raw))
    recs, report, _ = read_records(path)
    assert [r.iface for r in recs] == [0, 1, 0, 1]
    assert [r.linktype for r in recs] == [reader.LT_DAMAGED_INTERFACE, 1] * 2
    assert [r.ts_ns for r in recs if r.iface == 1] == [US * 1000, (US + 1) * 1000]
    assert report.damaged_interfaces == 1 and len(report.errors) == 1
    assert report.errors[0] == (f"offset 28: interface 0 (section 0) damaged: if_tsresol {shown} out of range "
                                f"(at most {'10^-18' if raw < 128 else '2^-63'}); its frames are counted as "
                                f"undecodable (damaged_interface)")
    assert report.first_ts_ns == US * 1000 and report.last_ts_ns == (US + 1) * 1000
    result, acc, _ = run_analysis([path], expected_frames=4)
    assert acc["categories"]["undecodable"]["reasons"] == {"damaged_interface": 2}
    assert acc["categories"]["udp"]["frames"] == 2


@pytest.mark.parametrize("raw", [18, 0x80 | 63, 0])
def test_extreme_but_valid_tsresol_saturates_instead_of_wrapping(tmp_path, raw):
    """The largest resolutions accepted; a timestamp past 64-bit nanoseconds is saturated
    (and counted as after 2100), never wrapped into a plausible time."""
    path = write(tmp_path, "edge.pcapng", H.pcapng_tsresol(raw))
    recs, report, _ = read_records(path)
    assert report.damaged_interfaces == 0
    t0 = [r.ts_ns for r in recs if r.iface == 0]
    units = [0xFFFFFFFFFFFFFFFF - k for k in range(2)]
    if raw == 18:
        assert t0 == [u // 10**9 for u in units]
    elif raw == 0x80 | 63:
        assert t0 == [(u * 10**9) >> 63 for u in units]
    else:
        assert t0 == [2**63 - 1] * 2 and report.timestamp_anomalies == {"after_2100": 2}


def test_tsoffset_out_of_range_is_a_damaged_interface(tmp_path):
    f = H.udp_frame()
    opt = H.struct.pack("<HHq", 14, 8, -(1 << 40)) + b"\0\0\0\0"
    data = H.shb() + H.block(1, H.struct.pack("<HHI", 1, 0, 0) + opt) + H.epb(0, 5, f)
    recs, report, _ = read_records(write(tmp_path, "off.pcapng", data))
    assert [r.linktype for r in recs] == [reader.LT_DAMAGED_INTERFACE]
    assert "if_tsoffset -1099511627776 s out of range" in report.errors[0]


# ---------------------------------------------------------------------- short interface description
@pytest.mark.parametrize("body_len", [0, 4])
def test_short_interface_description_is_a_damaged_interface(tmp_path, body_len):
    """An IDB body of 0 or 4 bytes raised struct.error out of the reader."""
    path = write(tmp_path, "idb.pcapng", H.pcapng_short_idb(body_len))
    recs, report, _ = read_records(path)
    assert [(r.iface, r.linktype) for r in recs] == [(0, reader.LT_DAMAGED_INTERFACE), (1, 1)]
    assert report.errors == [f"offset 28: interface 0 (section 0) damaged: description of {body_len} bytes "
                             f"(at least 8); its frames are counted as undecodable (damaged_interface)"]
    _, acc, _ = run_analysis([path], expected_frames=2)
    assert acc["categories"]["undecodable"]["reasons"] == {"damaged_interface": 1}


# ---------------------------------------------------------------------- many interfaces
def test_70000_interfaces_linear_and_capped(tmp_path):
    """1.4 MB of interface blocks ran past 2 minutes (arrays rebuilt per block) and ids above
    65,535 wrapped to 0 (uint16).  Now: linear, and interfaces from MAX_INTERFACES on are
    counted as undecodable, never confused with interface 0."""
    path = write(tmp_path, "ifaces.pcapng", H.pcapng_many_interfaces())
    t0 = time.monotonic()
    recs, report, _ = read_records(path)
    assert time.monotonic() - t0 < 10
    over = reader.MAX_INTERFACES
    assert [(r.iface, r.linktype) for r in recs] == [(0, 1), (1, 1)] + [(over, reader.LT_INTERFACE_OVER_LIMIT)] * 3
    assert report.interfaces_over_limit == 70_000 - over
    assert len(report.errors) == 1 and "more than 65,535 interfaces" in report.errors[0]
    _, acc, _ = run_analysis([path], expected_frames=5)
    assert acc["categories"]["undecodable"]["reasons"] == {"interface_over_limit": 3}


def test_interface_cap_is_per_section(tmp_path, monkeypatch):
    monkeypatch.setattr(reader, "MAX_INTERFACES", 3)
    f = H.udp_frame()
    section = H.shb() + H.idb() * 5 + H.epb(2, US, f) + H.epb(4, US + 1, f)
    recs, report, _ = read_records(write(tmp_path, "sections.pcapng", section * 2))
    assert [(r.iface, r.linktype) for r in recs] == [(2, 1), (3, reader.LT_INTERFACE_OVER_LIMIT)] * 2
    assert report.interfaces_over_limit == 4 and len(report.errors) == 2
    assert "section 1 describes more than 3" in report.errors[1]


def test_error_lines_are_bounded(tmp_path):
    """300 damaged interfaces: the first MAX_ERROR_LINES lines and a count, not 300 lines."""
    f = H.udp_frame()
    data = H.shb() + H.idb(tsresol=99) * 300 + H.idb() + H.epb(300, US, f)
    recs, report, _ = read_records(write(tmp_path, "many-errors.pcapng", data))
    assert len(recs) == 1 and recs[0].linktype == 1
    assert report.damaged_interfaces == 300
    assert len(report.errors) == reader.MAX_ERROR_LINES + 1
    assert report.errors_not_listed == 300 - reader.MAX_ERROR_LINES
    assert report.errors[-1] == f"... and {300 - reader.MAX_ERROR_LINES} more error(s) not listed (the first 100 are)"


# ---------------------------------------------------------------------- odd timestamps
def test_odd_timestamps_are_counted(tmp_path):
    path = write(tmp_path, "odd.pcap", H.pcap_odd_timestamps())
    recs, report, _ = read_records(path)
    assert len(recs) == 5
    assert recs[1].ts_ns == H.BASE_S * H.NS + 10**9                     # taken as given
    assert report.timestamp_anomalies == {"fraction_of_second_out_of_range": 2, "after_2100": 1}
    assert report.errors == [
        "offset 102: 2 record(s) with a fraction-of-second field of a second or more (taken as given: "
        "the time runs into the following second(s)) (first here)",
        "offset 258: 1 record(s) dated after 2100 (first here)"]


def test_nanosecond_pcap_fraction_limit(tmp_path):
    f = H.udp_frame()
    data = bytearray(H.pcap([(H.BASE_S, 999_999_999, f), (H.BASE_S, 1_000_000_000, f)], nano=True))
    recs, report, _ = read_records(write(tmp_path, "ns.pcap", bytes(data)))
    assert report.timestamp_anomalies == {"fraction_of_second_out_of_range": 1}


def test_pcapng_before_1970_is_counted(tmp_path):
    f = H.udp_frame()
    opt = H.struct.pack("<HHq", 14, 8, -1000) + b"\0\0\0\0"
    data = H.shb() + H.block(1, H.struct.pack("<HHI", 1, 0, 0) + opt) + H.epb(0, 5, f)
    recs, report, _ = read_records(write(tmp_path, "early.pcapng", data))
    assert recs[0].ts_ns == -1000 * H.NS + 5000 and report.timestamp_anomalies == {"before_1970": 1}


# ---------------------------------------------------------------------- inputs that are not regular files
@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "link_to_fifo"])
def test_non_regular_input_is_refused_without_blocking(tmp_path, kind):
    if kind == "dev_zero":
        path = Path("/dev/zero")
    else:
        os.mkfifo(tmp_path / "fifo")
        path = tmp_path / "fifo"
        if kind == "link_to_fifo":
            os.symlink(path, tmp_path / "link")
            path = tmp_path / "link"
    with pytest.raises(CaptureError) as e:
        CaptureReader(path)
    what = "a character device" if kind == "dev_zero" else "a FIFO"
    assert str(e.value) == f"{path}: not a regular file ({what}): refused (it could be endless or block)"


def test_batch_with_fifo_and_dev_zero_goes_on(tmp_path):
    """/dev/zero and a FIFO hung the run forever (hashed whole before reading)."""
    good = write(tmp_path, "good.pcap", H.pcap_odd_timestamps())
    os.mkfifo(tmp_path / "fifo")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "analyzer.cli", "analyze", str(tmp_path / "fifo"), "/dev/zero",
                           str(good), "--out", str(out), "--quiet"], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 5, proc.stderr        # some inputs could not be read; the others analysed
    inputs = {Path(i["path"]).name: i for i in json.loads((out / "summary.json").read_text())["inputs"]}
    for name in ("fifo", "zero"):
        assert inputs[name]["readable"] is False and inputs[name]["sha256"] is None
        assert "not a regular file" in inputs[name]["errors"][0]
    assert inputs["good.pcap"]["frames"] == 5 and inputs["good.pcap"]["sha256"]
    assert "not a regular file" in proc.stderr


# ---------------------------------------------------------------------- exact conversion at every resolution
def _scan_one(units: int, kind: int, exp: int, offset_s: int) -> tuple[int, list]:
    import numpy as np
    from analyzer.capture import _scan
    buf = bytearray(H.epb(0, units, b"x" * 4))
    out = [np.zeros(1, np.int64), np.zeros(1, np.uint32), np.zeros(1, np.uint32), np.zeros(1, np.int64),
           np.zeros(1, np.uint16)]
    odd = np.array([0, -1] * 3, np.int64)
    n, _, _ = _scan.scan_pcapng(buf, 0, len(buf), False, np.array([kind], np.int32), np.array([exp], np.int32),
                                np.array([offset_s], np.int64), np.zeros(1, np.uint32), 1, 1 << 20, 0, *out, odd)
    assert n == 1
    return int(out[3][0]), odd.tolist()


def test_pcapng_conversion_exact_or_saturated_at_every_resolution():
    from hypothesis import given, settings, strategies as st

    @settings(max_examples=400, derandomize=True, deadline=None, database=None)
    @given(units=st.one_of(st.integers(0, 2**64 - 1), st.integers(0, 2**40)),
           res=st.one_of(st.tuples(st.just(0), st.integers(0, 18)), st.tuples(st.just(1), st.integers(0, 63))),
           offset_s=st.integers(-(1 << 33), 1 << 33))
    def check(units, res, offset_s):
        kind, exp = res
        ns = units * 10**9 // 10**exp if kind == 0 else (units * 10**9) >> exp
        want = ns + offset_s * 10**9
        got, odd = _scan_one(units, kind, exp, offset_s)
        if ns > 2**63 - 1 or want > 2**63 - 1:
            assert got == 2**63 - 1 and odd[2] == 1            # saturated, counted after 2100
        else:
            assert got == want
            assert odd[2] == (want >= 4102444800 * 10**9) and odd[4] == (want < 0)
    check()


def test_odd_timestamp_summary_survives_full_error_lines(tmp_path):
    f = H.udp_frame()
    bad = H.shb() + H.idb(tsresol=99) * 150
    data = bad + H.idb() + H.epb(150, 2**63, f)          # after 2100 (microseconds)
    recs, report, _ = read_records(write(tmp_path, "both.pcapng", data))
    assert report.timestamp_anomalies == {"after_2100": 1}
    assert report.errors[-2].endswith("1 record(s) dated after 2100 (first here)")
    assert report.errors[-1] == "... and 50 more error(s) not listed (the first 100 are)"


def test_reader_counters_are_written_out(tmp_path):
    """What the reader counted reaches summary.json: per input, and summed in the accounting."""
    from summaries import summarize
    f = H.udp_frame()
    damaged = write(tmp_path, "a-many-errors.pcapng",
                    H.shb() + H.idb(tsresol=99) * 150 + H.idb() + H.epb(150, US, f))
    odd = write(tmp_path, "b-odd.pcap", H.pcap_odd_timestamps())
    result, acc, _ = run_analysis([damaged, odd], local=["10.0.0.1"])
    inputs = {Path(i["path"]).name: i for i in summarize(result)["inputs"]}
    a, b = inputs["a-many-errors.pcapng"], inputs["b-odd.pcap"]
    assert (a["damaged_interfaces"], a["errors_not_listed"], a["interfaces_over_limit"]) == (150, 50, 0)
    assert b["timestamp_anomalies"] == {"after_2100": 1, "fraction_of_second_out_of_range": 2}
    assert a["timestamp_anomalies"] == {} and b["damaged_interfaces"] == 0
    assert acc["capture_damage"] == {"unreadable_files": 0, "damaged_bytes": 0, "truncated_bytes": 0,
                                     "errors_not_listed": 50,
                                     "timestamp_anomalies": {"after_2100": 1, "fraction_of_second_out_of_range": 2},
                                     "damaged_interfaces": 150, "interfaces_over_limit": 0}
