"""The shape of the code: layers import only downwards, no import circles, and every
module imports on its own.

Layers, lowest first (a module may import its own layer and those below):

    timefmt, units, digest, case,   leaf helpers (case: the case file; bytestore: bytes gathered
    bytestore, worker               from overlapping copies, first copy wins; worker: helper
                                    processes that import a library while the capture is read)
    capture, decode, flows,         bytes -> frames -> streams -> protocol events
    protocols
    evidence                        metadata, piece verification, carving, provenance checks
    sessions                        the engine, connection records, datagrams, BEP 10 handlers
    pipeline                        the stages of a run (map, flows) and the engines that run them
    analysis                        one run: inputs -> raw results (the reduce stage)
    findings                        the subject-relative view of a run
    output                          writers of the output folder
    report                          the document, read from the output folder only
    extract                         the disclosure excerpt: an output folder and its inputs -> pcapng
    validation                      bt-analyzer validate: real-traffic scenarios analysed and compared
    cli                             thin commands

``analyzer.validation.harness`` (the real-traffic harness: network namespaces, libtorrent swarms,
other clients) is the ground truth the analyzer is checked against: it imports nothing of the
analyzer, so it sits in the lowest layer and a test keeps it apart.

The graph is read from the source (``import`` statements, including those
inside functions and ``cimport`` in Cython files), so the test is fast and
does not depend on import order.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "analyzer"
LAYERS = [
    {"analyzer", "analyzer.timefmt", "analyzer.units", "analyzer.digest", "analyzer.case", "analyzer.bytestore",
     "analyzer.worker", "analyzer.validation.harness"},
    {"analyzer.capture", "analyzer.decode", "analyzer.flows", "analyzer.protocols"},
    {"analyzer.evidence"},
    {"analyzer.sessions"},
    {"analyzer.pipeline"},
    {"analyzer.analysis"},
    {"analyzer.findings"},
    {"analyzer.output"},
    {"analyzer.report"},
    {"analyzer.extract"},
    {"analyzer.validation"},
    {"analyzer.cli"},
]
# within the low layer, the order bytes travel in (a layer may use those before it)
LOW_ORDER = ["analyzer.decode", "analyzer.capture", "analyzer.flows", "analyzer.protocols"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*")) if p.suffix in (".py", ".pyx", ".pxd")
            and "__pycache__" not in p.parts}


def imports_of(path: Path, name: str) -> set[str]:
    """analyzer modules imported by a module (absolute, and relative resolved)."""
    text = path.read_text(encoding="utf-8")
    out = set()
    if path.suffix == ".py":
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = name.split(".")[: -node.level] if not path.name == "__init__.py" else \
                        name.split(".")[: len(name.split(".")) - node.level + 1]
                    base = ".".join(pkg + ([base] if base else []))
                out.add(base)
                out.update(f"{base}.{a.name}" for a in node.names)
    else:   # Cython: (c)import statements
        for m in re.finditer(r"^\s*(?:from\s+([\w.]+)\s+c?import|c?import\s+([\w.]+))", text, re.M):
            out.add(m.group(1) or m.group(2))
    known = modules()
    return {m for m in out if m in known and m != name}


def layer_of(name: str) -> int:
    best = None
    for i, layer in enumerate(LAYERS):
        for prefix in layer:
            if name == prefix or name.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (i, len(prefix))
    assert best is not None, f"{name} is in no layer: add it to LAYERS"
    return best[0]


def package_of(name: str) -> str:
    return ".".join(name.split(".")[:2])


def graph() -> dict[str, set[str]]:
    return {name: imports_of(path, name) for name, path in modules().items()}


def test_every_module_has_a_layer():
    for name in modules():
        layer_of(name)


def test_imports_go_downwards():
    bad = []
    for name, deps in graph().items():
        for d in deps:
            if layer_of(d) > layer_of(name):
                bad.append(f"{name} -> {d}")
            elif layer_of(d) == layer_of(name) == 1 and package_of(d) != package_of(name):
                if LOW_ORDER.index(package_of(d)) > LOW_ORDER.index(package_of(name)):
                    bad.append(f"{name} -> {d} (against the data's direction)")
    assert not bad, "imports against the layering:\n" + "\n".join(sorted(bad))


def test_no_import_circle():
    g = graph()
    # a package's __init__ importing its own submodules is the usual registry pattern, not a circle
    edges = {n: {d for d in deps if not (n == package_of_init(d) and d.startswith(n + "."))} for n, deps in g.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for d in sorted(edges.get(n, ())):
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[n] = 2

    for n in sorted(edges):
        if n not in state:
            visit(n)
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def package_of_init(name: str) -> str:
    return name.rsplit(".", 1)[0]


def test_sessions_never_import_the_writers():
    for name, deps in graph().items():
        if name.startswith(("analyzer.sessions", "analyzer.findings")):
            assert not any(d.startswith(("analyzer.output", "analyzer.report")) for d in deps), name


def test_the_harness_imports_nothing_of_the_analyzer():
    """The real-traffic harness is the independent ground truth: no analyzer module outside it."""
    harness = "analyzer.validation.harness"
    bad = [f"{name} -> {d}" for name, deps in graph().items() if name == harness or name.startswith(harness + ".")
           for d in deps if not (d == harness or d.startswith(harness + "."))]
    assert not bad, "\n".join(sorted(bad))
    # nor does the script it runs in the namespaces (executed as a file, its imports are its own)
    text = (PKG / "validation" / "harness" / "swarm.py").read_text(encoding="utf-8")
    assert not re.search(r"^\s*(from|import)\s+analyzer", text, re.M)


def _import_alone(name: str) -> tuple[str, str]:
    r = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, cwd=ROOT)
    return name, r.stderr.strip().splitlines()[-1] if r.returncode else ""


def test_every_module_imports_on_its_own():
    names = [n for n, p in modules().items() if p.suffix != ".pxd"]
    with ThreadPoolExecutor(4) as pool:
        failed = [f"{n}: {err}" for n, err in pool.map(_import_alone, names) if err]
    assert not failed, "\n".join(failed)


@pytest.mark.parametrize("layer", range(len(LAYERS)))
def test_layers_are_not_empty(layer):
    assert any(layer_of(n) == layer for n in modules())
