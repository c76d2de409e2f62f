"""validation.json and validation.html: what ``bt-analyzer validate`` leaves in its output folder.

validation.json (``schema`` = ``bt-analyzer/validation/1``; README "Validation
on the examiner's machine" lists its fields) holds per scenario the tool's
figures, every comparison with the clients' counters and the result;
``statements`` (one sentence per figure type) is derived from the
comparisons by ``analyzer.report.validation.figure_statements``, which the
report's appendix computes again from the comparisons it reads.
validation.html is the same content as the appendix, on its own.
"""
from __future__ import annotations

from pathlib import Path

from analyzer.output.summary import dumps
from analyzer.report.document import render_numbered
from analyzer.report.validation import figure_statements, validation_context
from analyzer.safeio import SafeDir

FILES = ("validation.json", "validation.html")


def render_validation_html(doc: dict) -> str:
    """validation.html: the appendix's content as its own document."""
    return render_numbered("validation.html.j2", {"validation": validation_context(doc),
                                                  "title": "bt-analyzer validation"})


def write_validation(doc: dict, out: Path) -> list[Path]:
    doc = dict(doc)
    doc["statements"] = figure_statements(doc)
    html = render_validation_html(doc)
    with SafeDir.open(out) as d:
        d.write_text("validation.json", dumps(doc))
        d.write_text("validation.html", html)
    return [Path(out) / f for f in FILES]
