"""Case data: the examiner's description of the case, read from a TOML file (``--case FILE``).

Every key is optional; a key the format does not know is refused (a typo such as
``examinor`` must not silently drop the examiner's name from an exhibit), and so is a
value of the wrong type.  Top level::

    case_number = "2026-0113"
    examiner = "A. Examiner"
    organisation = "Forensic Unit"
    examination_start = 2026-11-29T09:00:00+01:00   # a TOML date or a date-time with a zone
    examination_end = 2026-11-30
    subject_description = "Laptop seized at ..."

    [[evidence]]                  # one table per item handed over for examination
    id = "E1"                     # required: the exhibit reference
    path = "captures/day1.pcap"   # required: the file (or folder of files) as analysed
    description = "tcpdump on the uplink"
    acquired = 2026-11-28T17:50:00Z

Relative evidence paths are taken from the case file's folder.  Times need a date and
a zone (``Z`` or ``+01:00``): a local date-time is ambiguous and refused; a date alone
is a day.  :meth:`Case.as_json` is what summary.json ``case`` holds; :meth:`Case.from_json`
reads it back (the report uses it when no ``--case`` is given).
"""
from __future__ import annotations

import datetime as _dt
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

TEXT_KEYS = ("case_number", "examiner", "organisation", "subject_description")
TIME_KEYS = ("examination_start", "examination_end")
EVIDENCE_TEXT_KEYS = ("id", "path", "description")
EVIDENCE_TIME_KEYS = ("acquired",)
EVIDENCE_REQUIRED = ("id", "path")


class CaseError(ValueError):
    """A case file that cannot be used, with a message naming the file and the key."""


@dataclass(frozen=True)
class Evidence:
    id: str
    path: str                    # as written in the case file
    resolved_path: str           # absolute, from the case file's folder
    description: str | None = None
    acquired: str | None = None  # ISO 8601 date or date-time with zone

    def covers(self, resolved_input: str) -> bool:
        """Whether an analysed input (its resolved path) is this item or lies in this folder."""
        if resolved_input == self.resolved_path:
            return True
        return Path(self.resolved_path) in Path(resolved_input).parents

    def as_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Case:
    case_number: str | None = None
    examiner: str | None = None
    organisation: str | None = None
    examination_start: str | None = None
    examination_end: str | None = None
    subject_description: str | None = None
    evidence: tuple[Evidence, ...] = field(default_factory=tuple)
    source: str | None = None    # the case file, when read from one

    def as_json(self) -> dict:
        """The case as recorded in summary.json ``case`` (and, with the file's hash, the manifest)."""
        out = {k: getattr(self, k) for k in (*TEXT_KEYS, *TIME_KEYS)}
        out["evidence"] = [e.as_json() for e in self.evidence]
        return out

    @classmethod
    def from_json(cls, d: dict) -> "Case":
        """Read back :meth:`as_json` (summary.json ``case``)."""
        return cls(**{k: d.get(k) for k in (*TEXT_KEYS, *TIME_KEYS)},
                   evidence=tuple(Evidence(**{f.name: e.get(f.name) for f in fields(Evidence)})
                                  for e in d.get("evidence") or []))

    def evidence_for(self, resolved_input: str) -> Evidence | None:
        """The evidence item naming an analysed input: the item for the file itself before one
        for a folder holding it."""
        exact = [e for e in self.evidence if e.resolved_path == resolved_input]
        if exact:
            return exact[0]
        return next((e for e in self.evidence if e.covers(resolved_input)), None)

    def is_empty(self) -> bool:
        return not any(getattr(self, k) for k in (*TEXT_KEYS, *TIME_KEYS)) and not self.evidence


def _time(value, where: str) -> str:
    """A TOML date or zoned date-time (or a string holding one) as ISO 8601 text."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = _dt.date.fromisoformat(text) if len(text) == 10 else _dt.datetime.fromisoformat(text)
        except ValueError:
            raise CaseError(f"{where}: {value!r} is not a date (2026-11-28) or a date and time with a zone "
                            "(2026-11-28T17:52:48Z, 2026-11-28T18:52:48+01:00)") from None
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise CaseError(f"{where}: {value.isoformat()} has no time zone; write it with Z (UTC) or an "
                            "offset such as +01:00")
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, _dt.time):
        raise CaseError(f"{where}: a time of day without a date ({value.isoformat()}) is not enough")
    raise CaseError(f"{where}: expected a date or a date and time, not {type(value).__name__} {value!r}")


def _instant(text: str, end: bool) -> _dt.datetime:
    """For ordering: a date is the whole day (its first or, for an end, its last microsecond), in UTC."""
    if len(text) == 10:
        d = _dt.datetime.fromisoformat(text).replace(tzinfo=_dt.timezone.utc)
        return d + _dt.timedelta(days=1, microseconds=-1) if end else d
    return _dt.datetime.fromisoformat(text)


def _text(value, where: str) -> str:
    if not isinstance(value, str):
        raise CaseError(f"{where}: expected text in quotes, not {type(value).__name__} {value!r}")
    if not value.strip():
        raise CaseError(f"{where}: is empty")
    return value


def _unknown(keys, known, where: str) -> None:
    extra = sorted(set(keys) - set(known))
    if extra:
        raise CaseError(f"{where}: unknown key {extra[0]!r}"
                        + (f" (and {', '.join(map(repr, extra[1:]))})" if extra[1:] else "")
                        + f"; known keys: {', '.join(known)}")


def parse_case(doc: dict, base: Path, name: str = "case file") -> Case:
    """A Case from a parsed TOML document; relative evidence paths from ``base``."""
    _unknown(doc, (*TEXT_KEYS, *TIME_KEYS, "evidence"), name)
    fields: dict = {}
    for k in TEXT_KEYS:
        if k in doc:
            fields[k] = _text(doc[k], f"{name}: {k}")
    for k in TIME_KEYS:
        if k in doc:
            fields[k] = _time(doc[k], f"{name}: {k}")
    start, end = fields.get("examination_start"), fields.get("examination_end")
    if start and end and _instant(start, False) > _instant(end, True):
        raise CaseError(f"{name}: examination_start {start} is after examination_end {end}")
    items = doc.get("evidence", [])
    if not isinstance(items, list) or not all(isinstance(e, dict) for e in items):
        raise CaseError(f"{name}: evidence must be [[evidence]] tables")
    evidence = []
    for i, e in enumerate(items, 1):
        where = f"{name}: evidence #{i}"
        _unknown(e, (*EVIDENCE_TEXT_KEYS, *EVIDENCE_TIME_KEYS), where)
        for k in EVIDENCE_REQUIRED:
            if k not in e:
                raise CaseError(f"{where}: {k!r} is required")
        vals = {k: _text(e[k], f"{where}: {k}") for k in EVIDENCE_TEXT_KEYS if k in e}
        vals.update({k: _time(e[k], f"{where}: {k}") for k in EVIDENCE_TIME_KEYS if k in e})
        resolved = str((base / Path(vals["path"]).expanduser()).resolve())
        evidence.append(Evidence(resolved_path=resolved, **vals))
    for attr in ("id", "resolved_path"):
        seen: dict = {}
        for e in evidence:
            v = getattr(e, attr)
            if v in seen:
                raise CaseError(f"{name}: evidence {e.id!r} has the same {attr.replace('resolved_', '')} as "
                                f"evidence {seen[v]!r} ({v})")
            seen[v] = e.id
    return Case(**fields, evidence=tuple(evidence))


def load_case(path) -> Case:
    """Read and check a case file; CaseError (naming the file and the key) when it cannot be used."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise CaseError(f"{path}: cannot read the case file: {e.strerror or e}") from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise CaseError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise CaseError(f"{path}: not valid TOML: {e}") from None
    return replace(parse_case(doc, path.resolve().parent, str(path)), source=str(path))
