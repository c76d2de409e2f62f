"""The report's tables in memory, without pandas: what it needs of them, no more.

A report reads a few columns of small tables, filters them and sums them.  pandas would do
that in one line but costs ~100 MB and ~0.35 s to import (it loads pyarrow's dataset layer
and its own extensions), most of the report's memory.  So:

* Parquet (timeline.parquet, peers.parquet): :func:`read_parquet` reads the named columns
  with ``pyarrow.parquet.ParquetFile`` (``read_table`` and ``to_numpy`` would import pandas)
  into a :class:`Columns`: numpy int64 for integers and timestamps (UTC ns), bool for
  booleans, object arrays of ``str`` for text.  A column with missing values is refused
  (the analysis writes none).
* CSV (connections.csv, pieces.csv, client_state.csv): :func:`read_csv` streams the file
  with the ``csv`` module, keeps the named columns of the rows a predicate accepts, and
  returns them as dicts of text (:class:`CsvRows`, which remembers the file's header).
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from analyzer.report.options import ReportError


def _array(values) -> np.ndarray:
    a = values if isinstance(values, np.ndarray) else np.asarray(list(values))
    return a.astype(object) if a.dtype.kind in "US" else a


class Columns:
    """A table as numpy arrays of one length, by column name."""

    def __init__(self, data: dict):
        self.data = {k: _array(v) for k, v in data.items()}
        lengths = {len(v) for v in self.data.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns of different lengths: {sorted(lengths)}")
        self._len = lengths.pop() if lengths else 0

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, name: str) -> np.ndarray:
        return self.data[name]

    def __contains__(self, name: str) -> bool:
        return name in self.data

    def where(self, mask) -> Columns:
        """The rows where ``mask`` (a bool array) is true, in order."""
        mask = np.asarray(mask, dtype=bool)
        return Columns({k: v[mask] for k, v in self.data.items()})

    def isin(self, name: str, values) -> np.ndarray:
        """A bool array: the rows whose ``name`` is one of ``values``."""
        values = set(values)
        return np.fromiter((v in values for v in self.data[name]), dtype=bool, count=self._len)


def _numpy(chunks, typ, path: Path, name: str) -> np.ndarray:
    """One column of an Arrow table as numpy, from its buffers (Array.to_numpy imports pandas)."""
    import pyarrow as pa
    if any(c.null_count for c in chunks):
        raise ReportError(f"{path}: column {name!r} has missing values (the analysis writes none)")
    if pa.types.is_integer(typ) or pa.types.is_timestamp(typ):
        width = typ.bit_width // 8
        parts = [np.frombuffer(c.buffers()[1], dtype=f"<i{width}", count=len(c), offset=c.offset * width)
                 for c in chunks if len(c)]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
    if pa.types.is_boolean(typ):
        return np.array([v for c in chunks for v in c.to_pylist()], dtype=bool)
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return np.array([v for c in chunks for v in c.to_pylist()] or [], dtype=object)
    raise ReportError(f"{path}: column {name!r} is of type {typ}, not one the analysis writes")


def read_parquet(path: Path, columns: Iterable[str], optional: Iterable[str] = ()) -> Columns:
    """The ``columns`` (all required) and ``optional`` columns (those present) of a Parquet file."""
    import pyarrow.parquet as pq
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    try:
        f = pq.ParquetFile(path)
        present = set(f.schema_arrow.names)
        missing = [c for c in columns if c not in present]
        if missing:
            raise ReportError(f"{path}: no column {', '.join(missing)} (not written by bt-analyzer analyze?)")
        names = [*columns, *(c for c in optional if c in present)]
        table = f.read(columns=names)
    except ReportError:
        raise
    except Exception as e:  # noqa: BLE001 -- pyarrow's errors for a damaged or foreign file
        raise ReportError(f"{path}: not a readable Parquet file ({type(e).__name__}: {e})") from None
    return Columns({n: _numpy(table.column(n).chunks, table.schema.field(n).type, path, n) for n in names})


class CsvRows(list):
    """Rows of a CSV file as dicts of text (the kept columns), with ``columns``: the file's header."""

    def __init__(self, rows=(), columns: Iterable[str] = ()):
        super().__init__(rows)
        self.columns = tuple(columns)


def read_csv(path: Path, columns: Iterable[str] | None = None,
             keep: Callable[[dict], bool] | None = None) -> CsvRows:
    """The rows of a CSV file with a header, as text ('' for an empty field), reduced to ``columns``
    (None: all; those the file lacks are left out) and to the rows ``keep`` accepts (called with the
    reduced row)."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        wanted = [(i, n) for i, n in enumerate(header) if columns is None or n in columns]
        rows = CsvRows(columns=header)
        width = len(header)
        for line, values in enumerate(reader, 2):
            if not values:
                continue
            if len(values) != width:
                raise ReportError(f"{path}: line {line} has {len(values)} fields, the header {width}")
            row = {n: values[i] for i, n in wanted}
            if keep is None or keep(row):
                rows.append(row)
    return rows


def ns_of(texts: list[str], what: str) -> np.ndarray:
    """ISO 8601 times of the output files (canonical: '2026-11-28T17:52:48.903610000Z') as int64 ns;
    ReportError naming ``what`` for a text that is not a time."""
    from analyzer.timefmt import parse_iso_ns
    if not texts:
        return np.zeros(0, np.int64)
    if all(len(t) == 30 and t[19] == "." and t[29] == "Z" for t in texts):
        try:
            return np.array([t[:29] for t in texts], dtype="datetime64[ns]").view(np.int64)
        except ValueError:
            pass
    out = np.empty(len(texts), np.int64)
    for i, t in enumerate(texts):
        try:
            out[i] = parse_iso_ns(t)
        except ValueError:
            raise ReportError(f"{what}: {t!r} is not a time") from None
    return out


def _is_frame(x) -> bool:
    """A pandas DataFrame (told by its shape, so that pandas is not imported to ask)."""
    return type(x).__name__ == "DataFrame" and hasattr(x, "columns") and hasattr(x, "to_dict")


def _frame_column(series) -> np.ndarray:
    if str(series.dtype).startswith("datetime64"):
        naive = series.dt.tz_convert("UTC").dt.tz_localize(None) if series.dt.tz is not None else series
        return naive.to_numpy().astype("datetime64[ns]").view(np.int64)
    return np.asarray(series.to_numpy())


def as_columns(x) -> Columns:
    """``x`` as Columns: Columns as they are; a pandas DataFrame (a notebook's, as read by pandas from
    the output folder) column by column, its times as ns."""
    if isinstance(x, Columns):
        return x
    if _is_frame(x):
        return Columns({str(c): _frame_column(x[c]) for c in x.columns})
    return Columns(x)


def as_rows(x) -> list[dict]:
    """``x`` as a list of dicts: a pandas DataFrame's rows, its times as ISO 8601 text."""
    if not _is_frame(x):
        return x
    from analyzer.timefmt import iso_ns
    cols = as_columns(x)
    times = {str(c) for c in x.columns if str(x[c].dtype).startswith("datetime64")}
    def value(c, v):
        if c in times:
            return iso_ns(int(v))
        v = v.item() if isinstance(v, np.generic) else v
        return None if isinstance(v, float) and v != v else v         # NaN: pandas' missing value
    return [{c: value(c, cols[c][i]) for c in cols.data} for i in range(len(cols))]
