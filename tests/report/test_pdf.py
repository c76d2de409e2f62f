"""The PDF from laid-out skeleton pages: the bytes of the filled document laid out at once, in the
calling process and in the worker; a chart of another size than its placeholder, a missing chart and
a worker that died."""
from __future__ import annotations

import io
import os
import signal

import pytest
from matplotlib.figure import Figure

from analyzer.report.figures import Chart, fill_charts
from analyzer.report.pdf import PdfError, PdfWorker, lay_out, render_pdf, write_laid_out

pytestmark = pytest.mark.xdist_group("report")


def drawn(key: str, height_in: float = 4.5) -> Chart:
    fig = Figure(figsize=(8, height_in), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.bar([0, 1], [3, 5], hatch="//", color="0.8", edgecolor="0.1", label="bars")
    ax.plot([0, 1], [1, 4], linestyle="--", marker="o", label="line")
    ax.set_title(f"chart {key}")
    ax.legend()
    fig.bt_caption = f"caption of {key}"
    chart = Chart.of(key, fig)
    fig.draw_without_rendering()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    chart.svg_text = buf.getvalue()
    return chart


def skeleton(charts) -> str:
    body = "".join(f"<h2>{c.key}</h2><p>{'Some words. ' * 40}</p><figure>\n{c.placeholder()}\n"
                   f"<figcaption>{c.caption}</figcaption></figure>"
                   f"<table><tr><td>1</td><td>{c.key}</td></tr></table>" for c in charts)
    return f"<!DOCTYPE html><html><head><title>t</title></head><body>{body}</body></html>"


@pytest.fixture(scope="module")
def charts():
    return [drawn("a"), drawn("tall", 11.0), drawn("b")]


def test_laid_out_pages_give_the_bytes_of_the_filled_document(charts):
    skel = skeleton(charts)
    inline = {c.key: c.inline_svg() for c in charts}
    at_once = render_pdf(fill_charts(skel, inline))
    pdf, used = write_laid_out(lay_out(skel), skel, inline)
    assert used and pdf == at_once
    assert b"/Pattern" in pdf                                  # the hatches came with the SVG (vector)


def test_a_chart_of_another_size_is_laid_out_again(charts):
    skel = skeleton(charts)
    inline = {c.key: c.inline_svg() for c in charts}
    inline["tall"] = drawn("tall", 6.0).inline_svg()           # not the placeholder's size
    pdf, used = write_laid_out(lay_out(skel), skel, inline)
    assert not used and pdf == render_pdf(fill_charts(skel, inline))


def test_the_worker_writes_the_same_bytes(charts, tmp_path):
    skel = skeleton(charts)
    inline = {c.key: c.inline_svg() for c in charts}
    for parallel in (True, False):
        w = PdfWorker(parallel)
        try:
            w.lay_out(skel)
            w.finish(inline, tmp_path / f"{parallel}.pdf")
        finally:
            w.close()
        assert w.laid_out_used is True
        assert (tmp_path / f"{parallel}.pdf").read_bytes() == render_pdf(fill_charts(skel, inline))


def test_a_missing_chart_is_a_clear_error(charts, tmp_path):
    skel = skeleton(charts)
    for parallel in (True, False):
        w = PdfWorker(parallel)
        try:
            w.lay_out(skel)
            with pytest.raises(PdfError, match="rendering the PDF failed: ValueError: no SVG for chart 'b'"):
                w.finish({c.key: c.inline_svg() for c in charts if c.key != "b"}, tmp_path / "x.pdf")
        finally:
            w.close()
        assert not (tmp_path / "x.pdf").exists()


def test_a_worker_that_died_is_a_clear_error(charts, tmp_path):
    w = PdfWorker()
    try:
        w.lay_out(skeleton(charts))
        os.kill(w._proc.pid, signal.SIGKILL)
        w._proc.join()
        with pytest.raises(PdfError, match=r"rendering the PDF failed: the PDF process ended \(exit status -9\)"):
            w.finish({c.key: c.inline_svg() for c in charts}, tmp_path / "x.pdf")
    finally:
        w.close()


_IMPORT_RUNS = """
import subprocess, sys, ctypes.util
ran = []
init = subprocess.Popen.__init__
def record(self, args, *a, **k):
    ran.append(args[0] if isinstance(args, (list, tuple)) else args)
    return init(self, args, *a, **k)
subprocess.Popen.__init__ = record
find = ctypes.util.find_library
if sys.argv[1] == "broken-cache":           # the first look-up fails: the import is tried again
    real, failed = ctypes.util._findSoname_ldconfig, []
    def broken(name):
        if not failed:
            failed.append(name)
            raise ImportError("no cache")
        return real(name)
    ctypes.util._findSoname_ldconfig = broken
from analyzer.report.pdf import _import_weasyprint, render_pdf
w = _import_weasyprint()
assert ctypes.util.find_library is find
assert render_pdf("<p>a</p>").startswith(b"%PDF")
print(w.__name__, sorted({r.rsplit('/', 1)[-1] for r in ran}))
"""


@pytest.mark.parametrize("case", ["cache", "broken-cache"])
def test_weasyprint_finds_its_libraries_without_running_a_compiler(case):
    """WeasyPrint's libraries are looked up in the linker's cache: no compiler or linker is run for the
    names it lacks (17 of them, a third of the import); if that way fails, the import is done as it comes."""
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-c", _IMPORT_RUNS, case], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    name, ran = r.stdout.split(" ", 1)
    assert name == "weasyprint"
    if case == "cache":
        assert eval(ran) == ["ldconfig"]
    else:                               # as WeasyPrint does it by itself: the compiler runs
        assert {"ldconfig"} < set(eval(ran))
