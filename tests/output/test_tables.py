"""The CSV writers: connections.csv's fast line equals the csv module's, byte for byte."""
from __future__ import annotations

import csv
import io

from hypothesis import given, settings, strategies as st

from analyzer.output.tables import plain_line

cells = st.one_of(st.integers(-2**70, 2**70), st.booleans(), st.none(),
                  st.text(alphabet=st.sampled_from('ab ,"\r\n\t%N:one;é'), max_size=8),
                  st.floats(allow_nan=False), st.just(""), st.just("None"))


@settings(max_examples=500, deadline=None)
@given(st.lists(cells, min_size=2, max_size=12))
def test_plain_line_is_the_csv_modules_line_or_none(row):
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(row)
    line = plain_line(row)
    assert line is None or line == buf.getvalue()
    if all(isinstance(c, int) for c in row):
        assert line == buf.getvalue()          # the usual row takes the fast path
