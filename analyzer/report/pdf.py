"""The PDF: the report's HTML paginated by WeasyPrint, offline.

Nothing is fetched while rendering: the HTML carries its styles and charts inline, fonts
come from the system (fontconfig), and :class:`OfflineFetcher` stops the rendering if
anything asks for a URL other than ``data:`` (a template that grew an external reference
fails loudly instead of reaching the network).  The PDF's dates are those of the HTML's
``dcterms.created``/``dcterms.modified`` (the report date), its /ID is left out, so the
same HTML gives the same bytes.

Importing WeasyPrint costs ~0.5 s.  :class:`PdfWorker` forks a process at the start of a
report (``analyze --report``: before the capture is read) that imports it (and lays out a
small page, to load fonts) while the parent reads the folder.  The document then arrives in
two parts (figures.py): the skeleton, whose pages this process lays out while the charts are
still being drawn (drawing.py), and the charts' inline SVGs, which replace the placeholders'
empty images on the laid-out pages before the PDF is written.  That gives the bytes of the
filled document laid out at once (tests compare them); a chart whose size differs from its
placeholder's makes the filled document be laid out again instead.  Where fork is
unavailable the same is done in the calling process.
"""
from __future__ import annotations

import traceback
from pathlib import Path

from analyzer import worker

# Loads the report's fonts (serif, sans, bold, mono, SVG text) before the real document arrives.
_WARM_UP = ("<html><body><p style=\"font-family:'DejaVu Serif'\">a <b>b</b></p><p style=\"font-family:'DejaVu Sans'\">"
            "a <b>b</b></p><code style=\"font-family:'DejaVu Sans Mono'\">0</code><svg width=\"10\" height=\"10\">"
            "<text style=\"font: 9px 'DejaVu Sans'\">a</text></svg></body></html>")


def _import_weasyprint():
    """Import WeasyPrint, its libraries looked up in the linker's cache only.  It tries each of its
    libraries under several names with ``ctypes.util.find_library``, which for a name the linker's
    cache (``ldconfig -p``) lacks runs a compiler and a linker to look further: 17 such names, ~10 ms
    each, a third of the import (and while the capture is analysed).  The names it finds are the
    same (the cache holds the installed libraries; a name with a dot is opened directly anyway).
    Where the import fails that way, it is tried again as it comes."""
    import sys
    if "weasyprint" in sys.modules:
        return sys.modules["weasyprint"]
    import ctypes.util
    find = ctypes.util.find_library
    cached = getattr(ctypes.util, "_findSoname_ldconfig", None)
    if cached is not None:
        ctypes.util.find_library = cached
    try:
        import weasyprint
        return weasyprint
    except (OSError, ImportError):
        if cached is None:
            raise
        for name in [m for m in sys.modules if m == "weasyprint" or m.startswith("weasyprint.")]:
            del sys.modules[name]
    finally:
        ctypes.util.find_library = find
    import weasyprint
    return weasyprint


def _fetcher():
    from weasyprint.urls import FatalURLFetchingError, URLFetcher

    class OfflineFetcher(URLFetcher):
        """Only ``data:`` URLs; anything else stops the rendering."""

        def fetch(self, url, headers=None):
            if url.startswith("data:"):
                return super().fetch(url, headers)
            raise FatalURLFetchingError(f"the report must not load {url!r} (rendering is offline)")
    return OfflineFetcher(allowed_protocols=("data",), fail_on_errors=True)


def _html(html: str):
    import logging

    HTML = _import_weasyprint().HTML
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    return HTML(string=html, url_fetcher=_fetcher(), base_url=None)


def render_pdf(html: str, target: Path | None = None) -> bytes | None:
    """Write the PDF of ``html`` (a complete, self-contained document) to ``target`` (or return it)."""
    return _html(html).write_pdf(target)


def lay_out(skeleton: str):
    """The laid-out pages (a WeasyPrint Document) of a skeleton: charts as empty placeholders."""
    return _html(skeleton).render()


def _placeholders(document) -> dict | None:
    """{chart key: the SVGImage of its placeholder} on the laid-out pages (None if a key has several)."""
    from weasyprint.formatting_structure.boxes import ReplacedBox
    from weasyprint.images import SVGImage
    found: dict[str, dict[int, object]] = {}
    for page in document.pages:
        for box in page._page_box.descendants():
            if isinstance(box, ReplacedBox) and isinstance(box.replacement, SVGImage) and box.element is not None:
                key = box.element.get("data-chart")
                if key is not None:         # (a box split or repeated shares its replacement)
                    found.setdefault(key, {})[id(box.replacement)] = box.replacement
    if any(len(images) != 1 for images in found.values()):
        return None
    return {key: next(iter(images.values())) for key, images in found.items()}


def _parse_svg(inline: str):
    """An inline SVG parsed as the report's HTML parser parses it in the filled document."""
    import tinyhtml5
    root = tinyhtml5.parse(f"<!DOCTYPE html><html><body><figure>\n{inline}\n</figure></body></html>",
                           namespace_html_elements=False)
    return next(root.iter("{http://www.w3.org/2000/svg}svg"))


def _same_size(a, b) -> bool:
    return a.get_intrinsic_size(16) == b.get_intrinsic_size(16) and a.get_viewbox() == b.get_viewbox()


def write_laid_out(document, skeleton: str, inline: dict[str, str], target: Path | None = None):
    """Write the PDF of the filled document from the skeleton's laid-out pages: each placeholder's
    image becomes its chart's SVG (``inline``: key -> inline SVG).  (the PDF bytes if no target, whether
    the laid-out pages were used: False when a chart's size differed from its placeholder's or a placeholder
    was not found once, and the filled document was laid out anew)."""
    from analyzer.report.figures import fill_charts
    try:
        images = _swap(document, inline)
    except AttributeError:              # WeasyPrint's internals are not those of the pinned version
        images = None
    if images is None:
        return render_pdf(fill_charts(skeleton, inline), target), False
    return document.write_pdf(target), True


def _swap(document, inline: dict[str, str]) -> dict | None:
    """Give each placeholder's image its chart's SVG; None (nothing changed) where that cannot be done."""
    from weasyprint.svg import SVG
    images = _placeholders(document) if document is not None else None
    if images is None or not set(images) <= set(inline):
        return None
    svgs = {}
    for key, image in images.items():
        context = image._context
        svgs[key] = SVG(_parse_svg(inline[key]), image._base_url, context.font_config if context else None,
                        image._url_fetcher)
        if not _same_size(svgs[key], image._svg):
            return None
    for key, svg in svgs.items():
        images[key]._svg = svg
    return images


def _serve(conn, others) -> None:
    """The worker: import WeasyPrint and warm up, then lay out the skeleton the parent sends
    (``("layout", skeleton)``) and write its PDF when the charts come (``("finish", inline SVGs, target)``),
    answering ``("ok", whether the laid-out pages were used)`` or ``("error", text)``; None or EOF: stop."""
    worker.start_child(others)
    try:
        _import_weasyprint()
        render_pdf(_WARM_UP)
    except Exception:  # noqa: BLE001 -- reported when the parent asks for its PDF
        warm_error = traceback.format_exc()
    else:
        warm_error = None
    worker.settle()
    document = error = None
    try:
        job = conn.recv()
        if job is None:
            return
        skeleton = job[1]
        try:
            if warm_error:
                raise RuntimeError(warm_error)
            document = lay_out(skeleton)
        except Exception as e:  # noqa: BLE001 -- said when the parent asks for its PDF
            error = e
        job = conn.recv()
        if job is None:
            return
    except (EOFError, OSError):                 # the parent is gone
        return
    try:
        if error is not None:
            raise error
        _, used = write_laid_out(document, skeleton, job[1], Path(job[2]))
        conn.send(("ok", used))
    except BaseException as e:  # noqa: BLE001 -- the parent raises it
        conn.send(("error", f"{type(e).__name__}: {e}", traceback.format_exc()))


class PdfError(RuntimeError):
    pass


class PdfWorker(worker.Handle):
    """The process that writes one report's PDF (see the module docstring): ``lay_out(skeleton)``, then
    ``finish(inline SVGs, target)``; ``close()`` at the end in any case."""

    def __init__(self, parallel: bool = True, others=()):
        super().__init__(_serve, "bt-analyzer-pdf", parallel, others)
        self._skeleton = None
        self.laid_out_used = None           # after finish(): whether the skeleton's pages were used (tests)

    def lay_out(self, skeleton: str) -> None:
        """Start laying out the skeleton's pages (returns at once when the worker runs)."""
        self._skeleton = skeleton
        if self._proc is not None:
            try:
                self._conn.send(("layout", skeleton))
            except OSError:
                pass                        # said by finish()

    def finish(self, inline: dict[str, str], target: Path) -> None:
        """Write the PDF of the skeleton filled with ``inline`` (key -> inline SVG) to ``target``."""
        if self._proc is None:
            try:
                _, self.laid_out_used = write_laid_out(lay_out(self._skeleton), self._skeleton, inline, target)
            except Exception as e:  # noqa: BLE001 -- as the worker says it
                raise PdfError(f"rendering the PDF failed: {type(e).__name__}: {e}") from e
            return
        try:
            self._conn.send(("finish", inline, str(target)))
            status, message, *where = self._conn.recv()
        except (EOFError, OSError):
            self._proc.join(timeout=1)
            status, message, where = "error", f"the PDF process ended (exit status {self._proc.exitcode})", []
        if status != "ok":
            error = PdfError(f"rendering the PDF failed: {message}")
            for text in where:
                error.add_note(f"in the PDF process:\n{text}")     # printed with --debug
            raise error
        self.laid_out_used = message
        self._proc.join()
        self._proc = None
