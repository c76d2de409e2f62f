"""manifest.json: the one file about the run itself (times, command line, options,
platform, library versions) and the SHA-256 of every input and output file."""
from __future__ import annotations

import datetime as _dt
import json
import os
import sys
from pathlib import Path

from analyzer.digest import sha256_file
from analyzer.safeio import SafeDir
from analyzer.output.summary import TOOL, dumps

MANIFEST_SCHEMA = "bt-analyzer/manifest/1"
LIBRARIES = ("libtorrent", "matplotlib", "numpy", "pandas", "pyarrow")
SELF_VERSIONED = ("numpy", "pyarrow")       # their __version__ is their distribution's version


def _version(module: str) -> str | None:
    """A distribution's installed version: the module's own when it is imported already, else the
    version in the name of its installed metadata folder (``<name>-<version>.dist-info``, as
    importlib.metadata finds it, without importing that machinery), else importlib.metadata's."""
    loaded = sys.modules.get(module) if module in SELF_VERSIONED else None
    if isinstance(getattr(loaded, "__version__", None), str):
        return loaded.__version__
    found = _dist_info_versions().get(module)
    if found is not None:
        return found
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(module)
    except PackageNotFoundError:
        return None


_DIST_INFO: dict[str, str] | None = None


def _dist_info_versions() -> dict[str, str]:
    """name -> version of the ``*.dist-info`` folders on sys.path (the first of a name wins, as
    for imports)."""
    global _DIST_INFO
    if _DIST_INFO is None:
        _DIST_INFO = {}
        for entry in sys.path:
            try:
                names = os.listdir(entry or ".")
            except OSError:
                continue
            for n in names:
                stem = n[:-len(".dist-info")]
                if n.endswith(".dist-info") and stem.count("-") == 1:
                    name, version = stem.split("-")
                    _DIST_INFO.setdefault(name.lower().replace("_", "-"), version)
    return _DIST_INFO


def _platform() -> str:
    """platform.platform()'s text (system-release-machine-with-libc) without its cost: it reads the
    interpreter's binary to find the C library's version."""
    u = os.uname()
    libc = os.confstr("CS_GNU_LIBC_VERSION") if "CS_GNU_LIBC_VERSION" in os.confstr_names else None
    if libc:
        name, _, ver = libc.partition(" ")
        return f"{u.sysname}-{u.release}-{u.machine}-with-{name}{ver}"
    import platform
    return platform.platform()


def utc(t: _dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_utc() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def manifest_json(f, outputs: dict[str, str], *, argv: list[str], started: _dt.datetime) -> dict:
    """``outputs``: name -> SHA-256 of every file written."""
    return {
        "schema": MANIFEST_SCHEMA,
        "tool": TOOL,
        "command_line": argv,
        "options": f.options,
        "started_utc": utc(started),
        "finished_utc": utc(now_utc()),
        "run": f.run,
        "platform": {"python": sys.version.split()[0], "system": _platform(), "machine": os.uname().machine},
        "libraries": {name: _version(name) for name in LIBRARIES},
        "inputs": [{"path": i.path, "resolved_path": str(Path(i.path).resolve()), "sha256": i.sha256,
                    "size_bytes": i.size_bytes} for i in f.inputs],
        "torrent_files": [{"path": p, "resolved_path": str(Path(p).resolve()), "sha256": sha256_file(p)}
                          for p in f.torrent_files],
        **({"client_state_files": f.client_state.state.manifest_entries()} if f.client_state is not None else {}),
        **({"case_file": {"path": f.case.source, "resolved_path": str(Path(f.case.source).resolve()),
                          "sha256": sha256_file(f.case.source)}} if f.case is not None and f.case.source else {}),
        "outputs": [{"path": name, "sha256": outputs[name]} for name in sorted(outputs)],
    }


def add_to_manifest(out_dir: Path, files: list[Path], finished: bool = False) -> None:
    """Record files written later (the report) in the folder's manifest.json; `finished` moves the
    run's end time to now (the report was part of the same `analyze` run)."""
    path = out_dir / "manifest.json"
    if not path.exists():
        return
    manifest = json.loads(path.read_text(encoding="utf-8"))
    outputs = {o["path"]: o for o in manifest.get("outputs", [])
               if not o["path"].startswith("report/") or (out_dir / o["path"]).exists()}
    for f in files:
        name = str(Path(f).relative_to(out_dir))
        outputs[name] = {"path": name, "sha256": sha256_file(f)}
    manifest["outputs"] = [outputs[k] for k in sorted(outputs)]
    if finished:
        manifest["finished_utc"] = utc(now_utc())
    with SafeDir.open(out_dir) as d:
        d.write_text("manifest.json", dumps(manifest))


def record_extract(out_dir: Path, entry: dict) -> None:
    """Add a disclosure excerpt (``bt-analyzer extract``) to manifest.json ``extracts[]``; an earlier
    excerpt written to the same file is replaced."""
    path = Path(out_dir) / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    extracts = [e for e in manifest.get("extracts", []) if e.get("resolved_path") != entry["resolved_path"]]
    manifest["extracts"] = sorted([*extracts, entry], key=lambda e: e["path"])
    with SafeDir.open(out_dir, create=False) as d:
        d.write_text("manifest.json", dumps(manifest))
