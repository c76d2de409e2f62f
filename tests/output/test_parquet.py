"""output.parquet writes through pyarrow's compiled writer directly: the same bytes as
pyarrow.parquet.write_table, without importing pyarrow's filesystem layer at start-up."""
import io
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from analyzer.output.parquet import write_parquet

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


@pytest.mark.parametrize("name", sorted(str(p.relative_to(GOLDEN)) for p in GOLDEN.rglob("*.parquet")))
def test_same_bytes_as_pyarrow_parquet(name):
    table = pq.read_table(GOLDEN / name)
    ours, theirs = io.BytesIO(), io.BytesIO()
    write_parquet(table, ours)
    pq.write_table(table.replace_schema_metadata(None), theirs, compression="zstd")
    assert ours.getvalue() == theirs.getvalue()


def test_writing_does_not_import_pyarrow_filesystems(tmp_path):
    code = ("import sys, pyarrow as pa\n"
            "from analyzer.output.parquet import write_parquet\n"
            f"write_parquet(pa.table({{'a': [1, 2]}}), {str(tmp_path / 'x.parquet')!r})\n"
            "print(sorted(m for m in sys.modules if m in ('pyarrow.parquet', 'pyarrow.fs', 'ssl')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert pq.read_table(tmp_path / "x.parquet").column("a").to_pylist() == [1, 2]
