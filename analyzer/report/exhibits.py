"""The evidence table: every analysed input with its SHA-256 at intake (manifest.json, computed
while the analysis read it) and at the end (the file re-hashed when the report is made, if it is
still at its recorded path), its frames, time span and link types (summary.json ``inputs``), and
the case file's ``[[evidence]]`` item naming it (by resolved path: the file itself or a folder
holding it).  Items of the case file that name no analysed input are listed too.

Each input gets a short reference for frame citations elsewhere in the report: the evidence ID
when the case file names that file, ``<ID>/<n>`` for the n-th input inside an evidence folder,
``F<n>`` (the n-th input) when the case file does not name it.

Re-hashing runs in a background thread (hashlib releases the interpreter lock), started before
the report is built, so it overlaps with rendering.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from analyzer.case import Case
from analyzer.digest import sha256_file


class Rehash:
    """SHA-256 of the inputs' files now, computed in a background thread."""

    def __init__(self, manifest: dict, enabled: bool = True):
        self.enabled = enabled
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rehash") if enabled else None
        self._futures: dict[str, Future] = {}
        for entry in manifest.get("inputs", []):
            p = entry.get("resolved_path")
            if enabled and p and p not in self._futures:
                self._futures[p] = self._pool.submit(_hash_if_file, p)

    def result(self, resolved_path: str | None) -> tuple[str, str | None]:
        """(status, sha256): status 'computed', 'missing' (not at its recorded path) or 'skipped'."""
        if not self.enabled:
            return "skipped", None
        f = self._futures.get(resolved_path) if resolved_path else None
        sha = f.result() if f is not None else None
        return ("computed", sha) if sha else ("missing", None)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _hash_if_file(path: str) -> str | None:
    return sha256_file(path) if Path(path).is_file() else None


def evidence_rows(summary: dict, manifest: dict, case: Case | None, rehash: Rehash) -> tuple[list[dict], list[dict]]:
    """(one row per analysed input, case evidence items naming no input)."""
    by_path = {i["path"]: i for i in summary.get("inputs", [])}
    entries = manifest.get("inputs") or [{"path": i["path"], "resolved_path": None, "sha256": i.get("sha256"),
                                          "size_bytes": i.get("size_bytes")} for i in summary.get("inputs", [])]
    rows = []
    used: dict[str, int] = {}
    for n, m in enumerate(entries, 1):
        s = by_path.get(m["path"], {})
        resolved = m.get("resolved_path")
        item = case.evidence_for(resolved) if case is not None and resolved else None
        if item is None:
            ref = f"F{n}"
        elif item.resolved_path == resolved:
            ref = item.id
        else:
            used[item.id] = used.get(item.id, 0) + 1
            ref = f"{item.id}/{used[item.id]}"
        intake = m.get("sha256") or s.get("sha256")
        status, now = rehash.result(resolved)
        if status == "computed":
            end = "same" if intake and now == intake else "different" if intake else "no intake hash"
        else:
            end = status
        rows.append({
            "ref": ref, "path": m["path"], "resolved_path": resolved,
            "evidence_id": item.id if item else None,
            "description": item.description if item else None,
            "acquired": item.acquired if item else None,
            "sha256_intake": intake, "sha256_end": now, "end_status": end,
            "size_bytes": m.get("size_bytes", s.get("size_bytes")),
            "frames": s.get("frames"), "first_ts": s.get("first_ts"), "last_ts": s.get("last_ts"),
            "link_types": ", ".join(s.get("link_types") or []) or None,
            "format": s.get("format"), "compression": s.get("compression"),
            "errors": "; ".join(s.get("errors") or []) or None,
        })
    unmatched = []
    if case is not None:
        named = {r["evidence_id"] for r in rows if r["evidence_id"]}
        unmatched = [{"evidence_id": e.id, "path": e.path, "resolved_path": e.resolved_path,
                      "description": e.description, "acquired": e.acquired}
                     for e in case.evidence if e.id not in named]
    return rows, unmatched


def file_refs(rows: list[dict]) -> dict[str, str]:
    """{input path as in the CSVs: its short reference}."""
    return {r["path"]: r["ref"] for r in rows}
