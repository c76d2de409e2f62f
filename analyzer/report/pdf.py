"""The PDF: the report's HTML paginated by WeasyPrint, offline.

Nothing is fetched while rendering: the HTML carries its styles and charts inline, fonts
come from the system (fontconfig), and :class:`OfflineFetcher` stops the rendering if
anything asks for a URL other than ``data:`` (a template that grew an external reference
fails loudly instead of reaching the network).  The PDF's dates are those of the HTML's
``dcterms.created``/``dcterms.modified`` (the report date), its /ID is left out, so the
same HTML gives the same bytes.

Importing WeasyPrint costs ~0.5 s, as much as laying out the document.  :class:`PdfWorker`
forks a process at the start of a report (``analyze --report``: before the capture is read) that imports it (and lays out a one-line page, to
load fonts) while the parent reads the folder and draws the charts; the parent then sends
the HTML and waits.  Where fork is unavailable it renders in the calling process.
"""
from __future__ import annotations

import multiprocessing
import traceback
from pathlib import Path

# Loads the report's fonts (serif, sans, bold, mono, SVG text) before the real document arrives.
_WARM_UP = ("<html><body><p style=\"font-family:'DejaVu Serif'\">a <b>b</b></p><p style=\"font-family:'DejaVu Sans'\">"
            "a <b>b</b></p><code style=\"font-family:'DejaVu Sans Mono'\">0</code><svg width=\"10\" height=\"10\">"
            "<text style=\"font: 9px 'DejaVu Sans'\">a</text></svg></body></html>")


def _fetcher():
    from weasyprint.urls import FatalURLFetchingError, URLFetcher

    class OfflineFetcher(URLFetcher):
        """Only ``data:`` URLs; anything else stops the rendering."""

        def fetch(self, url, headers=None):
            if url.startswith("data:"):
                return super().fetch(url, headers)
            raise FatalURLFetchingError(f"the report must not load {url!r} (rendering is offline)")
    return OfflineFetcher(allowed_protocols=("data",), fail_on_errors=True)


def render_pdf(html: str, target: Path | None = None) -> bytes | None:
    """Write the PDF of ``html`` (a complete, self-contained document) to ``target`` (or return it)."""
    import logging

    from weasyprint import HTML
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    return HTML(string=html, url_fetcher=_fetcher(), base_url=None).write_pdf(target)


def _serve(conn) -> None:
    """The worker: import WeasyPrint, warm up, then render what the parent sends.  Ctrl-C is the
    parent's to handle (it closes the worker); a parent that dies closes the pipe (EOF)."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        import weasyprint  # noqa: F401
        render_pdf(_WARM_UP)
    except Exception:  # noqa: BLE001 -- reported when the parent asks for its PDF
        warm_error = traceback.format_exc()
    else:
        warm_error = None
    try:
        job = conn.recv()
    except EOFError:
        return
    if job is None:
        return
    html, target = job
    try:
        if warm_error:
            raise RuntimeError(warm_error)
        render_pdf(html, Path(target))
        conn.send(("ok", None))
    except BaseException as e:  # noqa: BLE001 -- the parent raises it
        conn.send(("error", f"{type(e).__name__}: {e}"))


class PdfError(RuntimeError):
    pass


class PdfWorker:
    """A forked process that renders one PDF (see the module docstring)."""

    def __init__(self, parallel: bool = True):
        self._proc = self._conn = None
        if parallel:
            try:
                ctx = multiprocessing.get_context("fork")
            except ValueError:
                return
            self._conn, child = ctx.Pipe()
            self._proc = ctx.Process(target=_serve, args=(child,), name="bt-analyzer-pdf", daemon=True)
            self._proc.start()
            child.close()

    def render(self, html: str, target: Path) -> None:
        if self._proc is None:
            render_pdf(html, target)
            return
        try:
            self._conn.send((html, str(target)))
            status, message = self._conn.recv()
        except (EOFError, OSError):
            status, message = "error", f"the PDF process ended (exit status {self._proc.exitcode})"
        finally:
            self._proc.join()
            self._proc = None
        if status != "ok":
            raise PdfError(f"rendering the PDF failed: {message}")

    def close(self) -> None:
        """Stop the worker without a job (the report failed before its PDF)."""
        if self._proc is not None:
            try:
                self._conn.send(None)
            except OSError:
                pass
            self._proc.join(timeout=10)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join()
            self._proc = None
