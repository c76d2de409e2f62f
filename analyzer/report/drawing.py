"""The report's charts, drawn in a process of their own (matplotlib: every chart as SVG and PNG).

Theory of operation.  The report has two long jobs after the analysis: drawing the charts
(matplotlib) and laying out and writing the PDF (WeasyPrint, pdf.py), and the PDF waits for
the charts only at the very end: layout needs each chart's size and caption, not its
drawing (figures.py).  So :class:`ChartWorker` forks a process when the report is started
(``analyze --report``: before the capture is read) that imports matplotlib and draws a tiny
figure (fonts loaded) while the analysis runs, at a lower priority than the PDF process's imports
(the PDF's layout is the longer job and starts first).  The document does not wait for this
process: it plans the charts itself (chartplan.py: keys, captions, sizes, without matplotlib),
renders its skeleton and the PDF process lays it out, while this process, given the document's
``ReportData`` (pickled, ``for_charts``: what the charts draw, a few kB; so this process needs no
pyarrow), creates the same plan's figures, lays out and draws the SVGs, writes them when the
document says the report folder is ready, sends them, and then draws the PNGs (200 dpi) from the
same layout.

Each chart is laid out once (constrained layout, then fixed), so the SVG and the PNG show
the same thing.  Where fork is unavailable (or ``parallel=False``) the same steps run in
the calling process, in the same order.  A failure is sent to the parent as text and raised
there as :class:`ChartError`.
"""
from __future__ import annotations

import io
import traceback
from pathlib import Path

from analyzer import worker
from analyzer.report.figures import Chart

DPI = 200
NICE = 15          # while importing: below the PDF process (worker.NICE), whose layout cannot wait


class ChartError(RuntimeError):
    pass


# ---------------------------------------------------------------------- the steps
def make_charts(data) -> list[Chart]:
    """The report's charts for ``data`` (a ReportData), in document order, created but not laid out: the plan's
    (chartplan.py), each with its figure."""
    from analyzer.report import charts
    from analyzer.report.chartplan import plan
    from analyzer.report.client_state import client_state_chart
    draw = {"client_state_chart": client_state_chart}
    out = []
    for p in plan(data):
        c = p.chart()
        c.fig = (draw.get(p.kind) or getattr(charts, p.kind))(*p.args)
        out.append(c)
    return out


def lay_out(charts_: list[Chart]) -> None:
    """Lay each figure out once (its constrained layout, as a draw runs it first, without the draw); the SVG
    and the PNG are drawn from this layout."""
    for c in charts_:
        engine = c.fig.get_layout_engine()
        if engine is not None:
            try:
                engine.execute(c.fig)
            except ValueError:      # as Figure.draw treats it: the figure keeps the positions it has
                pass
        c.fig.set_layout_engine("none")


def draw_svgs(charts_: list[Chart]) -> None:
    for c in charts_:
        buf = io.StringIO()
        c.fig.savefig(buf, format="svg", metadata={"Date": None})
        c.svg_text = buf.getvalue()


def write_svgs(charts_: list[Chart], out: Path) -> None:
    for c in charts_:
        (out / f"{c.key}.svg").write_text(c.svg_text, encoding="utf-8")


def write_pngs(charts_: list[Chart], out: Path) -> None:
    """The PNGs, the last use of the figures: each is let go once written, and with it its 200 dpi raster
    (~6 MB a chart, which its texts refer to: freed by a collection, run here where the worker turned
    them off; cheap after worker.settle's freeze, which leaves only the report's own objects to walk)."""
    import gc
    for c in charts_:
        c.fig.savefig(out / f"{c.key}.png", format="png", dpi=DPI, metadata={"Software": None})
        c.fig = None
        if not gc.isenabled():
            gc.collect()


def _warm_up() -> None:
    """Import what drawing needs and draw a tiny figure as SVG and PNG (fonts, backends)."""
    from matplotlib.figure import Figure

    import analyzer.report.charts  # noqa: F401
    import analyzer.report.client_state  # noqa: F401
    import analyzer.report.data  # noqa: F401 -- (unpickles the document's ReportData; no pyarrow)
    fig = Figure(figsize=(1, 1), dpi=100)
    ax = fig.add_subplot()
    ax.bar([0], [1], hatch="//")
    ax.set_title("a")
    fig.savefig(io.StringIO(), format="svg", metadata={"Date": None})
    fig.savefig(io.BytesIO(), format="png", metadata={"Software": None})


# ---------------------------------------------------------------------- the job
class _Job:
    """The steps for one report, in order; each returns what the parent is sent."""

    def __init__(self, data):
        self.data, self.folder = data, Path(data.folder)
        self.charts: list[Chart] = []

    def draw(self) -> None:
        self.charts = make_charts(self.data)
        lay_out(self.charts)
        draw_svgs(self.charts)

    def write(self) -> dict[str, str]:
        write_svgs(self.charts, self.folder / "report")
        return {c.key: c.svg_text for c in self.charts}

    def finish(self) -> None:
        write_pngs(self.charts, self.folder / "report")


def _failure(e: BaseException) -> tuple:
    return "error", f"{type(e).__name__}: {e}", traceback.format_exc()


def _serve(conn, others) -> None:
    """The worker: warm up, then run one job, sending each step's result; stop at EOF or None."""
    worker.start_child(others, NICE)
    try:
        _warm_up()
    except Exception:  # noqa: BLE001 -- reported when the parent asks for its charts
        warm_error = traceback.format_exc()
    else:
        warm_error = None
    worker.settle()
    try:
        data = conn.recv()
        if data is None:
            return
        try:
            if warm_error:
                raise RuntimeError(warm_error)
            job = _Job(data)
            job.draw()
            if conn.recv() is None:         # the document failed: nothing is written
                return
            conn.send(("svgs", job.write()))
            job.finish()
            conn.send(("done", None))
        except Exception as e:  # noqa: BLE001 -- the parent raises it
            conn.send(_failure(e))
            conn.recv()         # ... when it next asks: a worker gone by then would break its pipe first
    except (EOFError, OSError):                 # the parent is gone
        return


class ChartWorker(worker.Handle):
    """The process that draws one report's charts (see the module docstring).

    ``start(data)`` (a ReportData: the charts of ``chartplan.plan(data)`` are drawn from now on),
    ``write()`` once the report folder is ready (the SVGs are written: key -> SVG text), ``finish()``
    (the PNGs are written); ``close()`` at the end in any case."""

    def __init__(self, parallel: bool = True, others=()):
        super().__init__(_serve, "bt-analyzer-charts", parallel, others)
        self._job = None

    def start(self, data) -> None:
        if self._proc is None:
            self._job = _Job(data)
        else:
            self._send(data)

    def write(self) -> dict[str, str]:
        if self._proc is None:
            self._local(self._job.draw)
            return self._local(self._job.write)
        self._send("write")
        return self._receive("svgs")

    def finish(self) -> None:
        if self._proc is None:
            self._local(self._job.finish)
            return
        self._receive("done")
        self._proc.join()
        self._proc = None

    def close(self) -> None:
        super().close()
        self._job = None

    # ------------------------------------------------------------------ internals
    def _send(self, message) -> None:
        try:
            self._conn.send(message)
        except OSError:     # (a worker that failed waits for the next word: it never ends before it)
            self._proc.join(timeout=1)
            raise ChartError(f"drawing the charts failed: the chart process ended (exit status "
                             f"{self._proc.exitcode})") from None

    def _receive(self, step: str):
        """The worker's result of ``step``."""
        try:
            message = self._conn.recv()
        except (EOFError, OSError):
            self._proc.join(timeout=1)
            message = ("error", f"the chart process ended (exit status {self._proc.exitcode})")
        if message[0] == "error":
            _raise(message)
        if message[0] != step:
            raise ChartError(f"drawing the charts failed: expected {step!r} from the chart process, got "
                             f"{message[0]!r}")
        return message[1]

    @staticmethod
    def _local(step):
        try:
            return step()
        except Exception as e:  # noqa: BLE001 -- raised as the worker's would be
            _raise(_failure(e))


def _raise(message: tuple):
    error = ChartError(f"drawing the charts failed: {message[1]}")
    if len(message) > 2:
        error.add_note(f"in the chart process:\n{message[2]}")     # printed with --debug
    raise error
