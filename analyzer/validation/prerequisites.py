"""What ``bt-analyzer validate`` needs on the examiner's machine, checked before anything runs.

Every scenario runs in private network namespaces (``ip netns``: root) and
captures with tcpdump; the libtorrent sessions need the ``libtorrent`` Python
module (a dependency of the package); the client scenarios need the client's
Debian package (and Deluge's the ``deluge-client`` module).  ``missing()``
returns one line per missing thing, naming what needs it and the Debian
package that provides it; nothing is run when a line is returned.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess

from analyzer.validation.scenarios import OPTIONAL_CLIENTS, PACKAGES, Scenario

PYTHON_PACKAGES = {"libtorrent": "libtorrent (pip)", "deluge_client": "deluge-client (pip)"}


def installed(program: str) -> bool:
    return shutil.which(program) is not None


def optional_missing(scenario: Scenario) -> str | None:
    """Why an optional scenario (qBittorrent, Deluge) is left out of the default run, or None."""
    if scenario.client not in OPTIONAL_CLIENTS:
        return None
    lacking = [p for p in scenario.programs() if not installed(p)]
    lacking += [m for m in scenario.python_modules() if importlib.util.find_spec(m) is None]
    return f"not installed: {', '.join(lacking)}" if lacking else None


def missing(scenarios: list[Scenario], *, probe: bool = True) -> list[str]:
    """One line per missing prerequisite of ``scenarios`` (empty: everything is there)."""
    lines = []
    if os.geteuid() != 0:
        lines.append("root privileges: network namespaces (ip netns), iptables and packet capture need root "
                     "(run bt-analyzer validate as root)")
    needed: dict[str, list[str]] = {}
    for s in scenarios:
        for p in s.programs():
            needed.setdefault(p, []).append(s.name)
    for program, users in needed.items():
        if not installed(program):
            lines.append(f"{program} (Debian package {PACKAGES[program]}): not found in PATH; needed by "
                         f"{_names(users, len(scenarios))}")
    modules: dict[str, list[str]] = {}
    for s in scenarios:
        for m in s.python_modules():
            modules.setdefault(m, []).append(s.name)
    for module, users in modules.items():
        if importlib.util.find_spec(module) is None:
            lines.append(f"Python module {module} ({PYTHON_PACKAGES[module]}): not importable; needed by "
                         f"{_names(users, len(scenarios))}")
    if probe and not lines:
        problem = namespace_problem()
        if problem:
            lines.append(problem)
    return lines


def _names(users: list[str], total: int) -> str:
    return "every scenario" if len(users) == total and total > 1 else ", ".join(users)


def namespace_problem() -> str | None:
    """None when a network namespace can be created here (one is made and deleted), else why not."""
    name = f"bta-probe-{os.getpid()}"
    try:
        proc = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"network namespaces: 'ip netns add' could not run ({e})"
    if proc.returncode != 0:
        return f"network namespaces: 'ip netns add' failed: {proc.stderr.strip() or proc.returncode}"
    subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=30)
    return None
