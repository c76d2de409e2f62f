"""Run validation scenarios, analyse each capture, compare with the clients' own counters.

Theory of operation
-------------------
``run_scenario`` runs one scenario (``scenarios.py``) with the real-traffic
harness in a work folder: a private network namespace, tcpdump on its
loopback, libtorrent sessions and, for the client scenarios, the other
client's daemon, whose counters are read over its own interface (the
harness imports nothing of the analyzer: the counters are independent of
it).  The capture is then analysed with the library, exactly as
``bt-analyzer analyze`` would (``analysis.analyze`` with the client under
test as ``--local`` and the scenario's .torrent files, then the findings),
and every counter is put beside the analyzer's figure through the relation
the client's source code defines (``relations.py``), with the tests'
tolerance: 0 bytes.  The client's state files (resume data written at its
clean stop) are read and reconciled with the capture as
``analyze --client-state`` would.

A scenario *passes* when every check is within tolerance, *fails* when one
is not, and is an *error* when it could not be run or compared (the harness
failed, tcpdump dropped packets); the reason is recorded.  ``validate`` runs
a list of scenarios and returns the validation document (``document.py``
writes it).  Work folders are removed unless kept (``keep``): then each
scenario's folder holds its capture, .torrent files, the client's state
folder and ``harness.json`` (the harness result, ``harness.results``).
"""
from __future__ import annotations

import datetime as _dt
import platform
import shutil
import time
import traceback
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from analyzer import __version__
from analyzer.digest import sha256_file
from analyzer.report.validation import SCHEMA
from analyzer.validation import relations
from analyzer.validation.scenarios import CLIENT_NAMES, Scenario

TOOL_FIGURES = ("downloaded_bytes", "downloaded_acked_bytes", "uploaded_bytes", "uploaded_acked_bytes",
                "downloaded_gap_bytes", "uploaded_gap_bytes", "verified_downloaded_bytes",
                "failed_downloaded_bytes", "redundant_downloaded_bytes", "verified_uploaded_bytes")
MAX_ERROR_CHARS = 4000


@dataclass
class ScenarioRun:
    """One scenario's run: its validation.json entry and, when it ran, the harness result behind it."""
    scenario: Scenario
    entry: dict
    harness: object = None            # SwarmResult | ClientSwarmResult


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _entry(s: Scenario) -> dict:
    return {"name": s.name, "description": s.description, "client": CLIENT_NAMES[s.client], "client_version": None,
            "transport": s.transport, "ip_version": s.ip_version, "drop_probability": s.drop_probability,
            "subject": None, "status": "error", "reason": None, "started_utc": _now(), "duration_seconds": None,
            "capture": None, "analysis_notes": [], "torrents": [], "checks": [], "state_files": [], "kept": None}


def run_scenario(s: Scenario, work: Path, *, keep: bool = False) -> ScenarioRun:
    """Run ``s`` in the folder ``work`` (created; removed at the end unless ``keep``)."""
    t0 = time.monotonic()
    run = ScenarioRun(s, _entry(s))
    work.mkdir(parents=True, exist_ok=True)
    try:
        run.harness = _harness(s, work)
        _analyse(run, work)
    except KeyboardInterrupt:
        raise
    except Exception as e:          # the scenario could not be run or compared: recorded, the others go on
        detail = str(e).strip() or type(e).__name__
        if not isinstance(e, RuntimeError):
            detail = f"{type(e).__name__}: {detail}\n{traceback.format_exc()}"
        run.entry.update(status="error", reason=detail[-MAX_ERROR_CHARS:])
    finally:
        run.entry["duration_seconds"] = round(time.monotonic() - t0, 1)
        if keep:
            run.entry["kept"] = str(work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return run


def _harness(s: Scenario, work: Path):
    from analyzer.validation.harness import run_swarm
    from analyzer.validation.harness.clients import run_client_swarm
    from analyzer.validation.harness.results import save_result
    if s.harness_client:
        res = run_client_swarm(s.spec(), work)
    else:
        res = run_swarm(s.spec(), work, drop_probability=s.drop_probability)
    save_result(res, work / "harness.json")
    return res


def _analyse(run: ScenarioRun, work: Path) -> None:
    from analyzer.analysis import analyze
    from analyzer.evidence.clientstate import read_client_state
    from analyzer.findings import build_findings
    from analyzer.findings.client_state_wire import client_state_finding, uploaded_piece_messages
    from analyzer.output.client_state import client_state_json
    from analyzer.output.summary import summary_json

    s, res, e = run.scenario, run.harness, run.entry
    truth = res.ground_truth
    if s.harness_client:
        subject, names = res.client_ip, list(res.client_torrents)
        e["client_version"] = res.client_version
        [ext] = truth["external"]
        leeched = ext.get("leeches", [])
        state_files = sorted({p for g in relations.STATE_GLOBS.get(s.client, ()) for p in res.state_dir.glob(g)})
        at_stop = res.client_counters_at_stop
    else:
        peer = truth["peers"][s.subject_peer]
        subject, names = peer["ip"], list(peer["torrents"])
        e["client_version"] = f"libtorrent {_version('libtorrent')}"
        leeched = [n for n, c in peer["torrents"].items() if c.get("role") != "seed"]
        resumes = {n: c.get("resume") for n, c in peer["torrents"].items()}
        state_files = sorted({Path(r["path"]) for r in resumes.values() if r and r.get("path")})
        at_stop = {n: r["after"] for n, r in resumes.items() if r and r.get("after")}
    e["subject"] = subject
    files = [Path(p) for p in res.capture_files]
    e["capture"] = {"files": [{"name": p.name, "size_bytes": p.stat().st_size, "sha256": sha256_file(p)}
                              for p in files],
                    "kernel_dropped": res.kernel_dropped, "frames": None}
    if res.kernel_dropped:
        raise RuntimeError(f"tcpdump dropped {res.kernel_dropped} packets: the capture is incomplete, so the "
                           "scenario cannot be compared")
    warnings: list[str] = []
    result = analyze(files, local=[subject], torrents=[str(p) for p in res.torrent_files.values()],
                     warn=warnings.append)
    try:
        findings = build_findings(result)
        summary = summary_json(findings)
        messages = uploaded_piece_messages(findings)
        items = client_state_json(client_state_finding(read_client_state(state_files), findings)) \
            if state_files else []
    finally:
        result.close()
    e["capture"]["frames"] = summary["accounting"]["frames"]
    e["analysis_notes"] = warnings + [err for i in summary["inputs"] for err in i["errors"]]
    by_hash = {}
    for t in summary["torrents"]:
        for k in (t["info_hash"], *t["info_hash_aliases"]):
            by_hash[k] = t
    hash_of = {n: truth["torrents"][n]["info_hash_v1"] for n in names}
    source = f"subject ({e['client_version']})"
    checks = []
    for name in names:
        t = by_hash.get(hash_of[name])
        if t is None:
            raise RuntimeError(f"the analysis shows no traffic of torrent {name} ({hash_of[name]})")
        sent = messages.get(t["info_hash"], 0)
        e["torrents"].append({"name": name, "info_hash": hash_of[name], "size_bytes": truth["torrents"][name]["total_size"],
                              "subject_downloads": name in leeched, "uploaded_piece_messages": sent,
                              **{k: t.get(k) for k in TOOL_FIGURES}})
        counters = res.client_counters[name] if s.harness_client else truth["peers"][s.subject_peer]["torrents"][name]
        checks += relations.client_checks(s.client, source, name, counters, t, sent)
        if s.harness_client:
            checks += relations.remote_checks(truth, name, t)
        if name in leeched:
            checks.append(relations.verified_check(name, truth["torrents"][name]["total_size"], t))
    if items:
        e["state_files"] = [{"name": Path(f["path"]).name, "format": f["format"], "sha256": f["sha256"],
                             "errors": f["errors"]} for f in items]
    if s.client in relations.STATE_COUNTERS and at_stop:
        interface = (f"{CLIENT_NAMES[s.client]} RPC, before its clean stop" if s.harness_client
                     else "libtorrent status, when the resume data was written")
        checks += relations.state_checks(s.client, items, at_stop, {h: n for n, h in hash_of.items()}, interface)
    e["checks"] = [c.as_json() for c in checks]
    failed = [c for c in checks if not c.passed]
    if not checks:
        e.update(status="error", reason="no counter could be compared")
    elif failed:
        e.update(status="failed", reason="; ".join(f"{c.torrent} {c.counter}: {c.difference_bytes:+,} bytes"
                                                  for c in failed))
    else:
        e.update(status="passed", reason=None)


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def skipped(s: Scenario, reason: str) -> ScenarioRun:
    entry = _entry(s)
    entry.update(status="skipped", reason=reason, started_utc=None)
    return ScenarioRun(s, entry)


def validate(scenarios: list[Scenario], work: Path, *, keep: bool = False, skip: dict | None = None,
             progress=None) -> tuple[dict, list[ScenarioRun]]:
    """Run ``scenarios`` (those named in ``skip`` {name: reason} are recorded as skipped) in folders
    under ``work``; the validation document and the runs."""
    started, t0 = _now(), time.monotonic()
    runs = []
    for i, s in enumerate(scenarios, 1):
        if skip and s.name in skip:
            runs.append(skipped(s, skip[s.name]))
        else:
            if progress:
                progress(f"[{i}/{len(scenarios)}] {s.name}: {s.description}")
            runs.append(run_scenario(s, work / s.name, keep=keep))
        if progress:
            e = runs[-1].entry
            progress(f"[{i}/{len(scenarios)}] {s.name}: {e['status']}"
                     + (f" ({e['duration_seconds']} s)" if e["duration_seconds"] is not None else "")
                     + (f": {e['reason'].splitlines()[0]}" if e["reason"] else ""))
    from analyzer.analysis import usable_cores
    doc = {
        "schema": SCHEMA,
        "tool": {"name": "bt-analyzer", "version": __version__},
        "started_utc": started, "finished_utc": _now(), "duration_seconds": round(time.monotonic() - t0, 1),
        "machine": {"system": platform.system(), "release": platform.release(), "machine": platform.machine(),
                    "python": platform.python_version(), "cpus": usable_cores()},
        "software": {"libtorrent": _version("libtorrent"),
                     **{CLIENT_NAMES[r.scenario.client]: r.entry["client_version"] for r in runs
                        if r.scenario.harness_client and r.entry["client_version"]}},
        "tolerance": "0 bytes for every counter, through the relation the client's source defines "
                     "(analyzer/validation/relations.py)",
        "scenarios": [r.entry for r in runs],
    }
    return doc, runs
