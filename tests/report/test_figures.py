"""A chart's placeholder in the skeleton and the filling of the skeleton with the drawn charts."""
from __future__ import annotations

import io
import re

import pytest
from matplotlib.figure import Figure

from analyzer.report.figures import Chart, fill_charts


def drawn(width_in: float, height_in: float, key: str = "c") -> Chart:
    fig = Figure(figsize=(width_in, height_in), dpi=100, layout="constrained")
    fig.add_subplot().plot([0, 1], [0, 1])
    fig.bt_caption = "a caption"
    chart = Chart.of(key, fig)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    chart.svg_text = buf.getvalue()
    return chart


def root_size(svg: str) -> tuple:
    root = re.search(r"<svg [^>]*>", svg).group(0)
    return tuple(re.search(rf'\b{a}="([^"]*)"', root).group(1) for a in ("width", "height", "viewBox"))


@pytest.mark.parametrize("size", [(8.0, 4.5), (8.0, 5.1), (8.0, 12.34), (7.3, 3.14159), (8.0, 1.2 + 0.18 * 61)])
def test_placeholder_has_the_size_matplotlib_draws(size):
    """Layout reads only the root's width, height and viewBox: the placeholder's are the drawn SVG's,
    computed before anything is drawn (the connection chart's height depends on its rows)."""
    chart = drawn(*size)
    assert root_size(chart.placeholder()) == root_size(chart.svg_text)
    assert chart.placeholder().endswith("></svg>")          # empty: nothing to parse or draw


def test_spec_makes_the_same_chart_without_its_figure():
    chart = drawn(8.0, 20.0, "connections")
    again = Chart(*chart.spec())
    assert (again.key, again.caption, again.style, again.placeholder()) == \
        (chart.key, chart.caption, chart.style, chart.placeholder())
    assert again.fig is None and chart.style == "width:48%"   # 215 mm of 178 mm at 8 x 20 in: narrowed to fit a page


def test_fill_puts_each_inline_svg_in_place_of_its_placeholder():
    a, b = drawn(8, 4.5, "a"), drawn(8, 6, "b")
    skeleton = f"<p>x</p>\n{a.placeholder()}\n<p>y</p>\n{b.placeholder()}\n"
    html = fill_charts(skeleton, {"a": a.inline_svg(), "b": b.inline_svg(), "unused": "<svg/>"})
    assert html == f"<p>x</p>\n{a.inline_svg()}\n<p>y</p>\n{b.inline_svg()}\n"
    assert 'id="a-' in html and 'id="b-' in html and "data-chart" not in html


def test_fill_refuses_a_hole_or_a_chart_placed_twice():
    a = drawn(8, 4.5, "a")
    with pytest.raises(ValueError, match="no SVG for chart 'a'"):
        fill_charts(a.placeholder(), {})
    with pytest.raises(ValueError, match="placed twice"):
        fill_charts(a.placeholder() * 2, {"a": a.inline_svg()})
    with pytest.raises(ValueError, match="has not been drawn"):
        Chart(*a.spec()).inline_svg()
