"""Timestamps: integer nanoseconds inside, ISO 8601 UTC with 9 decimals outside."""
from __future__ import annotations

import datetime as _dt
import functools

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def iso_ns(ns: int | None) -> str | None:
    """1764349200123456789 -> '2025-11-28T17:00:00.123456789Z' (None stays None)."""
    if ns is None:
        return None
    sec, frac = divmod(int(ns), 1_000_000_000)
    return f"{_second(sec)}.{frac:09d}Z"


@functools.lru_cache(maxsize=1 << 12)
def _second(sec: int) -> str:
    """The date and time of a second (remembered: a table names the same seconds many times)."""
    return (_EPOCH + _dt.timedelta(seconds=sec)).strftime("%Y-%m-%dT%H:%M:%S")


_ISO = None     # the compiled pattern of parse_iso_ns (made on first use)


def parse_iso_ns(text: str) -> int:
    """'2026-11-28T18:52:48.5+01:00' -> integer ns since the epoch (UTC); ValueError for anything but a
    date, a time (seconds and up to 9 decimals optional) and a zone (Z, +hh:mm, +hhmm; 'T' or a space
    between date and time).  The inverse of :func:`iso_ns` for its output."""
    global _ISO
    if _ISO is None:
        import re
        _ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
                          r"(Z|([+-])(\d{2}):?(\d{2}))", re.I)
    m = _ISO.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"{text!r} is not an ISO 8601 time with a zone")
    y, mo, d, h, mi, s = (int(g or 0) for g in m.groups()[:6])
    offset = 0
    if m.group(9):
        offset = (int(m.group(10)) * 3600 + int(m.group(11)) * 60) * (1 if m.group(9) == "+" else -1)
        _dt.timezone(_dt.timedelta(seconds=offset))       # refuses an offset of a day or more
    sec = int((_dt.datetime(y, mo, d, h, mi, s, tzinfo=_dt.timezone.utc) - _EPOCH).total_seconds()) - offset
    return sec * 1_000_000_000 + int((m.group(7) or "").ljust(9, "0"))
