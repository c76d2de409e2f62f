"""Run a snippet of Python on a tiny tmpfs (a real full disk: ENOSPC) in a private mount namespace.

The child process runs ``unshare --mount --propagation private``: the tmpfs it
mounts is visible to it alone and disappears with it, so a failing test never
leaves a mount behind.  Needs root and util-linux ``unshare`` (both are there
on the CI machine); tests skip otherwise.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

_PRELUDE = """
import json, os, subprocess, sys, tempfile
sys.path[:0] = {paths!r}
mnt = tempfile.mkdtemp(prefix="smalldisk-")
subprocess.run(["mount", "-t", "tmpfs", "-o", "size={size}", "tmpfs", mnt], check=True)
result = {{}}
"""


@functools.lru_cache(maxsize=None)
def available() -> bool:
    """Root, the tools, and a mount namespace with a tmpfs can really be made here."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("mount"):
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                            'd=$(mktemp -d); mount -t tmpfs -o size=64k tmpfs "$d" && umount "$d"; r=$?; rmdir "$d"; exit $r'],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


def run_on_small_tmpfs(code: str, size: str = "128k") -> dict:
    """Run ``code`` with ``mnt`` (the tmpfs mount point) defined; it fills the dict
    ``result``, which is returned (JSON)."""
    if not available():
        pytest.skip("needs root and unshare to mount a private tmpfs")
    script = _PRELUDE.format(paths=[str(REPO), str(REPO / "tests")], size=size) + textwrap.dedent(code) + \
        "\nprint('RESULT' + json.dumps(result))\n"
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, "-c", script],
                          capture_output=True, text=True, timeout=120)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    assert proc.returncode == 0 and lines, f"child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return json.loads(lines[-1][len("RESULT"):])
