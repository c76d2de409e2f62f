"""Report options: times need a date and a zone, --from not after --to, IANA zones, the record."""
from __future__ import annotations

import pytest

from analyzer.report.options import ReportError, ReportOptions, parse_date, parse_time, report_date
from analyzer.timefmt import iso_ns


@pytest.mark.parametrize("text, utc", [
    ("2026-11-28T17:52:48Z", "2026-11-28T17:52:48.000000000Z"),
    ("2026-11-28T18:52:48+01:00", "2026-11-28T17:52:48.000000000Z"),
    ("2026-11-28 12:52:48-0500", "2026-11-28T17:52:48.000000000Z"),
    ("2026-11-28T17:52Z", "2026-11-28T17:52:00.000000000Z"),
    ("2026-11-28T17:52:48.903610123Z", "2026-11-28T17:52:48.903610123Z"),   # nanoseconds kept
    ("2026-11-29t01:22:48.5+07:30", "2026-11-28T17:52:48.500000000Z"),
])
def test_zoned_times(text, utc):
    assert iso_ns(parse_time(text, "--from")) == utc


@pytest.mark.parametrize("text, hint", [
    ("2026-11-28T17:52:48", "no time zone"),
    ("2026-11-28 17:52", "no time zone"),
    ("17:52:48Z", "no date"),
    ("17:52:48", "no date"),
    ("2026-11-28", "not an ISO 8601 time"),
    ("yesterday", "not an ISO 8601 time"),
    ("2026-13-40T17:52:48Z", "not a valid time"),
])
def test_times_without_date_or_zone_are_refused(text, hint):
    with pytest.raises(ReportError) as e:
        parse_time(text, "--to")
    assert hint in str(e.value) and "--to" in str(e.value)


def test_options_checked_at_once():
    with pytest.raises(ReportError, match="is after --to"):
        ReportOptions(start="2026-11-28T18:00:00+01:00", end="2026-11-28T16:59:59Z")
    ReportOptions(start="2026-11-28T18:00:00+01:00", end="2026-11-28T17:00:00Z")     # the same instant
    with pytest.raises(ReportError, match="not a known IANA time zone"):
        ReportOptions(tz="Mars/Olympus_Mons")
    with pytest.raises(ReportError, match="not a known IANA time zone"):
        ReportOptions(tz="../../etc/passwd")
    with pytest.raises(ReportError, match="--torrent-filter: empty"):
        ReportOptions(torrent_filter="  ")
    with pytest.raises(ReportError, match="--date"):
        ReportOptions(date="2026-02-30")


def test_record_and_date():
    o = ReportOptions(torrent_filter="b98e", start="2026-11-28T18:52:48+01:00", tz="Europe/Berlin")
    r = o.record()
    assert r == {"torrent_filter": "b98e", "from": "2026-11-28T18:52:48+01:00",
                 "from_utc": "2026-11-28T17:52:48.000000000Z", "to": None, "to_utc": None,
                 "tz": "Europe/Berlin", "date": None, "validation_file": None}
    assert report_date(o, {"started_utc": "2026-11-29T14:17:26.762254Z"})[0] == "2026-11-29"
    assert report_date(ReportOptions(date="2027-01-05"), {"started_utc": "2026-11-29T14:17:26Z"}) == \
        ("2027-01-05", "given with --date")
    assert parse_date("2026-11-29T00:30:00+01:00") == "2026-11-28"
    with pytest.raises(ReportError, match="started_utc"):
        report_date(ReportOptions(), {})
