"""How values read in the report (Jinja2 filters): bytes exact with decimal and binary units,
counts with thousands separators, times as the output files write them (ISO 8601 UTC,
nanoseconds) and, with ``--tz``, the same instant in that zone beneath, hashes in a font and
wrapping that keep them whole, frame references as "<evidence ref> frame <n>"."""
from __future__ import annotations

import contextlib
import contextvars
import datetime as _dt

from markupsafe import Markup, escape

from analyzer.units import format_bytes

DASH = "—"
_zone: contextvars.ContextVar = contextvars.ContextVar("zone", default=None)


@contextlib.contextmanager
def zone(z):
    token = _zone.set(z)
    try:
        yield
    finally:
        _zone.reset(token)


def _missing(v) -> bool:
    return v is None or v == "" or (isinstance(v, float) and v != v)


def num(v) -> str:
    if _missing(v):
        return DASH
    return f"{int(v):,}"


def nbytes(v):
    """'1,500,000 B' and, from 1000 B, the same in decimal and binary units beneath."""
    if _missing(v):
        return DASH
    v = int(v)
    if abs(v) < 1000:
        return Markup('<span class="v">{} B</span>').format(f"{v:,}")
    return Markup('<span class="v">{} B</span><span class="alt">{}</span>').format(f"{v:,}", format_bytes(v))


def ratio(v) -> str:
    return DASH if _missing(v) else f"{v:.3f}"


def in_zone(iso: str, z) -> str:
    """'2026-11-28T17:52:48.903610000Z' in zone ``z``, keeping every fractional digit."""
    head, frac = iso[:19], iso[19:].rstrip("Zz")
    t = _dt.datetime.fromisoformat(head).replace(tzinfo=_dt.timezone.utc).astimezone(z)
    off = t.strftime("%z")
    return t.strftime("%Y-%m-%dT%H:%M:%S") + frac + f"{off[:3]}:{off[3:]}"


def when(iso):
    """A time from the output files (ISO 8601 UTC), and with --tz the same instant in that zone."""
    if _missing(iso):
        return DASH
    iso = str(iso)
    z = _zone.get()
    if z is None or not iso.endswith("Z") or len(iso) < 20:
        return _t(iso, "t")
    return _t(iso, "t") + _t(in_zone(iso, z), "t local")


def _t(iso: str, cls: str) -> Markup:
    """A time that may break after the date's 'T' and nowhere else."""
    day, _, clock = iso.partition("T")
    if not clock:
        return Markup('<span class="{}">{}</span>').format(cls, iso)
    return Markup('<span class="{}"><span class="nw">{}T</span><wbr><span class="nw">{}</span></span>').format(
        cls, day, clock)


def code(v):
    """Hashes, peer_ids, paths: monospace, breakable anywhere (a 64-digit hash must not widen a table)."""
    if _missing(v):
        return DASH
    return Markup('<code>{}</code>').format(v)


def peer_id(v):
    """A peer_id: kept on one line when it is printable (20 characters), broken anywhere when escaped."""
    if _missing(v):
        return DASH
    return Markup('<code class="{}">{}</code>').format("nw" if len(v) <= 24 else "", v)


def dash(v):
    return DASH if _missing(v) else v


def frame(block, refs: dict):
    """The frame that carried a block: '<ref> frame <n>' and its time; or why there is none."""
    if block == "not recorded":
        return Markup('<span class="nr">not recorded</span>')
    if block is None:
        return "none"
    ref = refs.get(block["file"], block["file"])
    return Markup('{} frame {:,}<br>').format(ref, block["frame"]) + when(block["ts"])


def lines(items) -> Markup:
    return Markup("<br>").join(escape(i) for i in items)


FILTERS = {"peer_id": peer_id, "num": num, "bytes": nbytes, "ratio": ratio, "when": when, "code": code, "dash": dash,
           "frame": frame, "lines": lines}
