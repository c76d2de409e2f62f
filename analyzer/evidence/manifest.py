"""Provenance: re-checking an output folder against its manifest.json.

The manifest (written by ``analyzer.output``) records the SHA-256
of every input (as stored) and every output file.  ``verify_folder`` re-hashes
them and lists every difference: a modified, missing or unreadable file, and
any file in the folder that the manifest does not list.  The .torrent files
and the case file given to the analysis are inputs too.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from analyzer.digest import sha256_file


@dataclass(frozen=True)
class Check:
    kind: str        # "input", "output", or "extra" (a file in the folder the manifest does not list)
    path: str
    expected: str | None
    actual: str | None

    @property
    def unhashed(self) -> bool:
        """An input of a run that did not hash its inputs (--no-input-hash): nothing to compare."""
        return self.kind == "input" and self.expected is None

    @property
    def ok(self) -> bool:
        return self.unhashed or (self.expected is not None and self.expected == self.actual)

    def describe(self) -> str:
        if self.kind == "extra":
            return f"UNLISTED  file   {self.path} (in the folder, not in the manifest; sha256 {self.actual})"
        if self.unhashed:
            return f"UNHASHED  {self.kind:6} {self.path} (the run did not hash its inputs: --no-input-hash)"
        if self.ok:
            return f"ok        {self.kind:6} {self.path}"
        if self.actual is None:
            return f"MISSING   {self.kind:6} {self.path} (expected sha256 {self.expected})"
        return f"MODIFIED  {self.kind:6} {self.path} (expected sha256 {self.expected}, found {self.actual})"


class ManifestError(Exception):
    pass


def verify_folder(folder: Path) -> list[Check]:
    manifest_path = folder / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{manifest_path}: no manifest") from None
    except (OSError, ValueError) as e:
        raise ManifestError(f"{manifest_path}: unreadable manifest: {e}") from None
    if not isinstance(manifest, dict) or not str(manifest.get("schema", "")).startswith("bt-analyzer/manifest/"):
        raise ManifestError(f"{manifest_path}: not a bt-analyzer manifest")
    checks = []
    inputs = [*manifest.get("inputs", []), *manifest.get("torrent_files", []),
              *manifest.get("client_state_files", [])]
    if manifest.get("case_file"):
        inputs.append(manifest["case_file"])
    for entry in inputs:
        path = Path(entry.get("resolved_path") or entry["path"])
        checks.append(Check("input", entry["path"], entry.get("sha256"), sha256_file(path)))
    listed = set()
    for entry in manifest.get("outputs", []):
        listed.add(entry["path"])
        checks.append(Check("output", entry["path"], entry.get("sha256"), sha256_file(folder / entry["path"])))
    for p in sorted(folder.rglob("*")):
        name = str(p.relative_to(folder))
        if p.is_file() and name != "manifest.json" and name not in listed:
            checks.append(Check("extra", name, None, sha256_file(p)))
    return checks
