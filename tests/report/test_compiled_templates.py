"""The report's templates compiled once, kept beside them (analyzer/report/compiled.py): a later run loads
them without compiling; a missing, stale or damaged entry, or a cache it may not write, costs a compile,
never a different template."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent

# Renders every template with compiling refused (exit 3 if it had to compile), or allowed; prints a digest
# of the code of each template (what rendering runs).
PROBE = """
import hashlib, marshal, sys
import jinja2
if len(sys.argv) > 3:
    jinja2.__version__ = sys.argv[3]            # another Jinja2 release
from analyzer.report import compiled
compiled.CACHE = __import__("pathlib").Path(sys.argv[1])
env = compiled.environment()
if sys.argv[2] == "refuse":
    def refuse(*args, **kwargs):
        sys.exit(3)
    env.compile = refuse
for name in env.list_templates(filter_func=lambda n: not n.startswith("__pycache__/")):
    t = env.get_template(name)
    print(name, hashlib.sha256(marshal.dumps(t.root_render_func.__code__)).hexdigest())
"""


def probe(cache: Path, mode: str, *release: str, umask: int = 0o022) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE, str(cache), mode, *release], capture_output=True, text=True,
                          cwd=REPO, preexec_fn=lambda: os.umask(umask))


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def test_a_second_run_loads_every_template_without_compiling(cache):
    first = probe(cache, "allow")
    assert first.returncode == 0, first.stderr[-2000:]
    names = [line.split()[0] for line in first.stdout.splitlines()]
    assert {"report.html.j2", "report.css", "_validation.html.j2"} <= set(names)
    entries = sorted(cache.iterdir())
    assert len(entries) == len(names) and all(p.suffix == ".jinja2" for p in entries)
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in entries)      # as a .pyc file under umask 022
    second = probe(cache, "refuse")
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.stdout == first.stdout


def test_a_damaged_or_stale_entry_is_compiled_again_and_rewritten(cache):
    first = probe(cache, "allow")
    entries = sorted(cache.iterdir())
    entries[0].write_bytes(b"not bytecode")
    entries[1].write_bytes(entries[1].read_bytes()[:40])          # cut short
    assert probe(cache, "refuse").returncode == 3
    again = probe(cache, "allow")
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout == first.stdout
    assert probe(cache, "refuse").returncode == 0                 # rewritten


def test_a_cache_that_cannot_be_written_compiles_every_run(cache, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = probe(blocker / "cache", "allow")                         # (its parent is a file: no directory there)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout == probe(cache, "allow").stdout
    assert probe(blocker / "cache", "refuse").returncode == 3


def test_the_installed_cache_is_made_by_make_install():
    """`make install` runs `python -m analyzer.report.compiled`: the package's own cache then serves."""
    r = subprocess.run([sys.executable, "-m", "analyzer.report.compiled"], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    from analyzer.report.compiled import CACHE
    if not os.access(CACHE, os.W_OK):
        pytest.skip("the package folder is read-only here")
    assert probe(CACHE, "refuse").returncode == 0
    assert "-m analyzer.report.compiled" in (REPO / "Makefile").read_text()


def test_bytecode_of_another_jinja2_release_or_other_options_is_not_used(cache):
    assert probe(cache, "allow").returncode == 0
    assert probe(cache, "refuse").returncode == 0
    assert probe(cache, "refuse", "0.0.1").returncode == 3       # another release: compiled, not loaded
    import jinja2

    from analyzer.report.compiled import _salt
    a = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    b = jinja2.Environment(trim_blocks=False, lstrip_blocks=True)
    assert _salt(a) != _salt(b) and _salt(a) == _salt(jinja2.Environment(trim_blocks=True, lstrip_blocks=True))


def test_a_stricter_umask_is_kept(cache):
    r = probe(cache, "allow", umask=0o077)
    assert r.returncode == 0, r.stderr[-2000:]
    assert {p.stat().st_mode & 0o777 for p in cache.iterdir()} == {0o600}
