"""Byte quantities for people: decimal and binary prefixes side by side."""
from __future__ import annotations

_DEC = ("B", "kB", "MB", "GB", "TB", "PB", "EB")
_BIN = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def _scaled(n: int, base: int, names) -> str:
    if n < base:
        return f"{n} B"
    value, i = float(n), 0
    while value >= base and i < len(names) - 1:
        value /= base
        i += 1
    return f"{value:.1f} {names[i]}"


def format_bytes(n: int) -> str:
    """'81.7 TB (74.3 TiB)'; small values exactly: '512 B'."""
    if n < 1000:
        return f"{n} B"
    return f"{_scaled(n, 1000, _DEC)} ({_scaled(n, 1024, _BIN)})"
