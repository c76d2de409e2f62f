"""A chart as the document holds it, and its placeholder in the HTML until it is drawn.

The report's HTML is rendered first as a *skeleton* in which each chart is an empty ``<svg>``
of the chart's final size (its placeholder): the PDF process lays the pages out from the
skeleton while the chart process still draws (see drawing.py and pdf.py).  ``fill_charts``
then puts each chart's inline SVG where its placeholder stands: that is report.html, and the
PDF process does the same on its laid-out pages.

Layout reads nothing of an inline SVG but its root's ``width``, ``height`` and ``viewBox``,
and those follow from the figure's size before anything is drawn: matplotlib's SVG writer
gives a figure of w x h inches ``width="{72w}pt" height="{72h}pt" viewBox="0 0 {72w} {72h}"``
(numbers as ``%f`` without trailing zeros).  The PDF process checks that each drawn chart has
its placeholder's size and lays the filled document out again if one has not.
"""
from __future__ import annotations

import re

MAX_FIGURE_HEIGHT_MM = 215      # taller charts (the connection chart of a busy case) are narrowed to fit a page
TEXT_WIDTH_MM = 178             # A4 portrait minus the margins of report.css
PLACEHOLDER = re.compile(r'<svg data-chart="([^"<>]+)" [^<>]*></svg>')


def _points(inches: float) -> str:
    """A length in inches as matplotlib's SVG writer gives it in points."""
    return f"{inches * 72:f}".rstrip("0").rstrip(".")


class Chart:
    """A chart: file stem (``key``), caption, size in inches, the SVG once drawn (``svg_text``, as
    written to KEY.svg) and, in the process that draws it, the matplotlib figure."""

    def __init__(self, key: str, caption: str, width_in: float, height_in: float, fig=None):
        self.key, self.caption, self.width_in, self.height_in, self.fig = key, caption, width_in, height_in, fig
        self.svg_text = ""

    @classmethod
    def of(cls, key: str, fig) -> Chart:
        w, h = fig.get_size_inches()
        return cls(key, fig.bt_caption, float(w), float(h), fig)

    def spec(self) -> tuple:
        """What the document needs of a chart before it is drawn (chartplan.py plans it)."""
        return self.key, self.caption, self.width_in, self.height_in

    @property
    def style(self) -> str:
        """Width that keeps a tall chart within one page."""
        pct = min(100.0, 100.0 * MAX_FIGURE_HEIGHT_MM * self.width_in / self.height_in / TEXT_WIDTH_MM)
        return "" if pct >= 100 else f"width:{pct:.0f}%"

    def placeholder(self) -> str:
        """The empty ``<svg>`` the skeleton holds for this chart (its size as drawn; see the module docstring)."""
        w, h = _points(self.width_in), _points(self.height_in)
        return (f'<svg data-chart="{self.key}" role="img" width="{w}pt" height="{h}pt" viewBox="0 0 {w} {h}" '
                'xmlns="http://www.w3.org/2000/svg"></svg>')

    def inline_svg(self) -> str:
        """The SVG for embedding in HTML: no prolog or metadata, ids unique to this chart."""
        if not self.svg_text:
            raise ValueError(f"chart {self.key!r} has not been drawn")
        text = self.svg_text[self.svg_text.index("<svg"):]
        text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
        p = self.key
        text = re.sub(r'\bid="([^"]+)"', rf'id="{p}-\1"', text)
        text = re.sub(r'href="#([^"]+)"', rf'href="#{p}-\1"', text)
        text = re.sub(r"url\(#([^)]+)\)", rf"url(#{p}-\1)", text)
        return text.replace("<svg ", '<svg role="img" ', 1)


def fill_charts(skeleton: str, inline: dict[str, str]) -> str:
    """The skeleton with each placeholder replaced by its chart's inline SVG (``inline``: key -> SVG).
    A placeholder without its SVG, or a chart placed twice, is an error (never a document with a hole)."""
    placed: list[str] = []

    def put(m: re.Match) -> str:
        key = m.group(1)
        if key not in inline:
            raise ValueError(f"no SVG for chart {key!r}")
        placed.append(key)
        return inline[key]
    html = PLACEHOLDER.sub(put, skeleton)
    if len(placed) != len(set(placed)):
        raise ValueError(f"a chart placed twice: {sorted(placed)}")
    return html
