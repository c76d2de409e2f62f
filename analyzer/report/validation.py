"""The validation of the tool on the examiner's machine (``bt-analyzer validate``), as the report shows it.

``load_validation(path)`` reads a validation.json (schema ``SCHEMA``, written
by ``analyzer.validation``) and refuses anything else with one line;
``figure_statements(doc)`` says, per figure type, what error was measured
("0 bytes difference in 12 of 12 scenarios"), computed from the comparisons
the file holds (never from a summary the file might carry);
``validation_context`` is what the templates need: the appendix of the
analysis report (``report --validation FILE``) and the standalone
validation.html (``templates/validation.html.j2``, written by
``analyzer.validation.document``) include the same template,
``templates/_validation.html.j2``.
"""
from __future__ import annotations

import json
from pathlib import Path

SCHEMA = "bt-analyzer/validation/1"
MAX_BYTES = 64 << 20
FIGURES = {             # figure type -> label (the keys of relations.Check.figure, in this order)
    "downloaded": "Downloaded piece bytes",
    "uploaded": "Uploaded piece bytes",
    "verified": "Verified downloaded bytes",
    "failed": "Hash-failed bytes",
    "wasted": "Redundant and hash-failed bytes",
    "state_read": "Counters read from the clients' state files",
    "state_reconciled": "State-file counters reconciled with the capture",
}
MEANING = {
    "downloaded": "the piece bytes the subject received, against its own download counter and the counters of "
                  "the peers that sent them",
    "uploaded": "the piece bytes the subject sent, against its own upload counter and the counters of the peers "
                "that received them",
    "verified": "the bytes of pieces the subject received that hash to the torrent's metadata, against the "
                "torrent's size (the subject downloaded it whole) or the client's verified-data counter",
    "failed": "the bytes of received pieces that failed the hash check, against the client's counter of them",
    "wasted": "redundant and hash-failed received bytes, against the client's counter of them",
    "state_read": "the lifetime counters the tool read from the state files the client wrote at its clean stop, "
                  "against the same counters read over the client's own interface just before",
    "state_reconciled": "the state files' lifetime counters against the capture (analyze --client-state): a "
                        "difference of 0 means the counter lies within the range the capture shows",
}
STATUS = {"passed": "passed", "failed": "FAILED", "error": "could not be run", "skipped": "skipped"}


class ValidationFileError(ValueError):
    """A --validation file that cannot be used (one line)."""


def load_validation(path) -> dict:
    path = Path(path)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise ValidationFileError(f"{path}: not a regular file")
        if size > MAX_BYTES:
            raise ValidationFileError(f"{path}: {size:,} bytes, larger than a validation.json can be")
        doc = json.loads(path.read_bytes())
    except OSError as e:
        raise ValidationFileError(f"{path}: cannot be read ({e.strerror or e})") from None
    except (ValueError, UnicodeDecodeError) as e:
        if isinstance(e, ValidationFileError):
            raise
        raise ValidationFileError(f"{path}: not JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise ValidationFileError(f"{path}: not a validation.json written by bt-analyzer validate "
                                  f"(schema {SCHEMA!r} expected)")
    scenarios = doc.get("scenarios")
    if not isinstance(scenarios, list) or not all(isinstance(s, dict) and isinstance(s.get("checks"), list)
                                                  for s in scenarios):
        raise ValidationFileError(f"{path}: its 'scenarios' are not a list of scenarios with their checks")
    for s in scenarios:
        for c in s["checks"]:
            if not isinstance(c, dict) or c.get("figure") not in FIGURES or not isinstance(c.get("passed"), bool) \
                    or not isinstance(c.get("difference_bytes"), int):
                raise ValidationFileError(f"{path}: scenario {s.get('name')!r} holds a comparison that is not "
                                          "one bt-analyzer validate writes")
    return doc


def figure_statements(doc: dict) -> list[dict]:
    """Per figure type present: the measured error, as numbers and as one sentence."""
    out = []
    ran = [s for s in doc["scenarios"] if s.get("status") in ("passed", "failed")]
    for fig, label in FIGURES.items():
        per = [(s, [c for c in s["checks"] if c["figure"] == fig]) for s in ran]
        per = [(s, cs) for s, cs in per if cs]
        if not per:
            continue
        checks = [c for _, cs in per for c in cs]
        exact = sum(1 for _, cs in per if all(c["difference_bytes"] == 0 for c in cs))
        within = sum(1 for c in checks if c["passed"])
        worst_s, worst = max(((s, c) for s, cs in per for c in cs), key=lambda sc: abs(sc[1]["difference_bytes"]))
        n = len(per)
        sentence = (f"{label}: {_diff(0)} difference in {exact} of {n} scenario{'s' if n != 1 else ''} "
                    f"({len(checks)} comparison{'s' if len(checks) != 1 else ''}")
        if within == len(checks):
            sentence += f", {'all ' if len(checks) > 1 else ''}within the tolerance of 0 bytes)."
        else:
            sentence += (f", {len(checks) - within} outside the tolerance of 0 bytes); the largest difference was "
                         f"{_diff(worst['difference_bytes'])} ({worst_s['name']}, {worst['counter']}).")
        out.append({"figure": fig, "label": label, "meaning": MEANING[fig], "sentence": sentence,
                    "scenarios": n, "scenarios_exact": exact, "comparisons": len(checks),
                    "comparisons_within_tolerance": within,
                    "max_abs_difference_bytes": abs(worst["difference_bytes"])})
    return out


def _diff(n: int) -> str:
    return f"{n:+,} bytes" if n else "0 bytes"


def headline(doc: dict) -> str:
    counts = {k: sum(1 for s in doc["scenarios"] if s.get("status") == k) for k in STATUS}
    m = doc.get("machine") or {}
    where = ", ".join(x for x in (f"{m.get('system', '')} {m.get('release', '')}".strip(),
                                  f"{m['cpus']} CPUs" if m.get("cpus") else "") if x)
    parts = [f"{counts['passed']} passed", f"{counts['failed']} failed"]
    if counts["error"]:
        parts.append(f"{counts['error']} could not be run")
    if counts["skipped"]:
        parts.append(f"{counts['skipped']} skipped")
    return (f"{len(doc['scenarios'])} scenarios were run by {doc['tool']['name']} {doc['tool']['version']} "
            f"from {doc.get('started_utc')} to {doc.get('finished_utc')} ({doc.get('duration_seconds')} s)"
            + (f" on {where}" if where else "") + ": " + ", ".join(parts) + ".")


def validation_context(doc: dict, path: str | None = None, sha256: str | None = None) -> dict:
    rows = []
    for s in doc["scenarios"]:
        for c in s["checks"]:
            rows.append({"scenario": s["name"], **c})
    return {"doc": doc, "path": path, "sha256": sha256, "headline": headline(doc),
            "statements": figure_statements(doc), "checks": rows, "status": STATUS,
            "all_passed": all(s.get("status") in ("passed", "skipped") for s in doc["scenarios"])
            and any(s.get("status") == "passed" for s in doc["scenarios"])}
