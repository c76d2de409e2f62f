"""What the examiner asked of a report, checked before anything is read, and recorded.

``--from``/``--to`` need a date, a time and an explicit zone (``2026-11-28T17:52:48Z``,
``2026-11-28T18:52:48+01:00``): a bare clock time or a local time would silently mean
different instants on different machines.  ``--tz`` is an IANA zone name (zoneinfo).
``--date`` fixes the report's date; without it the date is the analysis run's start
(manifest.json ``started_utc``), so rebuilding a report from the same folder gives the
same bytes.  :func:`record_in_manifest` adds the report's files and these settings to
manifest.json ``report``.
"""
from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import dataclass
from pathlib import Path

from analyzer.timefmt import iso_ns

_ZONED = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$", re.I)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class ReportError(ValueError):
    """A report that cannot be made as asked (bad option, filter matching nothing)."""


def parse_time(text: str, option: str) -> int:
    """Integer ns since the epoch (UTC) of a zoned ISO 8601 time (nanoseconds kept); ReportError otherwise."""
    from analyzer.timefmt import parse_iso_ns
    t = text.strip()
    if not _ZONED.match(t):
        hint = ("it has no time zone" if re.match(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", t)
                else "it has no date" if re.match(r"^\d{2}:\d{2}", t) else "it is not an ISO 8601 time")
        raise ReportError(f"{option} {text!r}: {hint}; give a date, a time and a zone, e.g. "
                          "2026-11-28T17:52:48Z or 2026-11-28T18:52:48+01:00")
    try:
        return parse_iso_ns(t)
    except ValueError as e:
        raise ReportError(f"{option} {text!r}: not a valid time ({e})") from None


def parse_zone(name: str):
    """A zoneinfo.ZoneInfo for an IANA name; ReportError for anything else."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReportError(f"--tz {name!r}: not a known IANA time zone name (e.g. Europe/Berlin, "
                          "America/New_York, UTC)") from None


def parse_date(text: str) -> str:
    """The report date given with --date: YYYY-MM-DD or a zoned time (kept as its UTC date)."""
    t = text.strip()
    if _DATE.match(t):
        try:
            _dt.date.fromisoformat(t)
        except ValueError:
            raise ReportError(f"--date {text!r}: not a valid date") from None
        return t
    return iso_ns(parse_time(t, "--date"))[:10]


@dataclass(frozen=True)
class ReportOptions:
    """The report's settings as given (texts kept for the record) and parsed."""
    torrent_filter: str | None = None
    start: str | None = None          # --from as given
    end: str | None = None            # --to as given
    tz: str | None = None
    date: str | None = None           # --date as given
    case_file: str | None = None      # --case as given
    rehash: bool = True               # re-hash the inputs for the evidence table's "SHA-256 at the end"
    rehash_note: str = "--no-rehash"  # why not, when not
    validation_file: str | None = None  # --validation as given: a validation.json for the appendix

    def __post_init__(self):
        if self.torrent_filter is not None and not self.torrent_filter.strip():
            raise ReportError("--torrent-filter: empty")
        if self.start_ts is not None and self.end_ts is not None and self.start_ts > self.end_ts:
            raise ReportError(f"--from {self.start} is after --to {self.end}")
        self.zone  # noqa: B018 -- refuse an unknown zone now
        if self.date is not None:
            parse_date(self.date)

    @property
    def start_ts(self):
        return parse_time(self.start, "--from") if self.start else None

    @property
    def end_ts(self):
        return parse_time(self.end, "--to") if self.end else None

    @property
    def zone(self):
        return parse_zone(self.tz) if self.tz else None

    def record(self) -> dict:
        """The settings as recorded in manifest.json ``report`` (times also in UTC)."""
        s, e = self.start_ts, self.end_ts
        return {
            "torrent_filter": self.torrent_filter,
            "from": self.start, "from_utc": iso_ns(s),
            "to": self.end, "to_utc": iso_ns(e),
            "tz": self.tz, "date": self.date, "validation_file": self.validation_file,
        }


def report_date(options: ReportOptions, manifest: dict) -> tuple[str, str]:
    """(YYYY-MM-DD, where it comes from) for the report's date."""
    if options.date:
        return parse_date(options.date), "given with --date"
    started = manifest.get("started_utc")
    if started:
        return started[:10], "the analysis run's start (manifest.json started_utc)"
    raise ReportError("the folder's manifest.json has no started_utc: give the report's date with --date")


def record_in_manifest(folder: Path, files: list[Path], record: dict, finished: bool = False) -> None:
    """Add the report's files to manifest.json (output.manifest.add_to_manifest) and its settings as
    ``report``."""
    from analyzer.output.manifest import add_to_manifest
    from analyzer.output.summary import dumps
    folder = Path(folder)
    add_to_manifest(folder, files, finished=finished)
    path = folder / "manifest.json"
    if not path.exists():
        return
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["report"] = record
    from analyzer.safeio import SafeDir
    with SafeDir.open(folder) as d:
        d.write_text("manifest.json", dumps(manifest))
