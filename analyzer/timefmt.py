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
