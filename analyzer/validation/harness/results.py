"""A harness run's result saved beside its files, and read back.

``save_result(res, path)`` writes a ``SwarmResult`` or ``ClientSwarmResult``
as JSON; paths inside ``path``'s folder are stored relative to it, so a kept
run folder can be moved and still be read (``load_result``).  The ground
truth (swarm.py's result.json) is stored as swarm.py wrote it.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

FORMAT = "bt-analyzer-harness-result/1"


def _out(value, base: Path):
    if isinstance(value, Path):
        try:
            return {"path": str(value.resolve().relative_to(base.resolve())), "relative": True}
        except ValueError:
            return {"path": str(value), "relative": False}
    if isinstance(value, list):
        return [_out(v, base) for v in value]
    if isinstance(value, dict):
        return {k: _out(v, base) for k, v in value.items()}
    return value


def _in(value, base: Path):
    if isinstance(value, dict) and set(value) == {"path", "relative"}:
        return base / value["path"] if value["relative"] else Path(value["path"])
    if isinstance(value, list):
        return [_in(v, base) for v in value]
    if isinstance(value, dict):
        return {k: _in(v, base) for k, v in value.items()}
    return value


def save_result(res, path: Path | str) -> Path:
    path = Path(path)
    kind = type(res).__name__
    fields = {f.name: (getattr(res, f.name) if f.name == "ground_truth" else _out(getattr(res, f.name), path.parent))
              for f in dataclasses.fields(res)}
    path.write_text(json.dumps({"format": FORMAT, "kind": kind, "fields": fields}, indent=1, sort_keys=True))
    return path


def load_result(path: Path | str):
    """The ``SwarmResult`` or ``ClientSwarmResult`` saved at ``path``."""
    from . import SwarmResult
    from .clients.runner import ClientSwarmResult
    path = Path(path)
    data = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a saved harness result")
    cls = {"SwarmResult": SwarmResult, "ClientSwarmResult": ClientSwarmResult}[data["kind"]]
    fields = {k: (v if k == "ground_truth" else _in(v, path.parent)) for k, v in data["fields"].items()}
    return cls(**fields)
