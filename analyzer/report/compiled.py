"""The report's Jinja2 environment, its templates compiled once, ahead, as Python's modules are.

Compiling report.html.j2 and what it includes costs ~0.1 CPU-s, paid by the document's process
after the analysis, while the PDF process waits for the HTML.  So the templates' bytecode is
kept beside them, in ``templates/__pycache__`` (what Python does for the package's modules; the
same trust: whoever may write there may write the code): ``make install`` compiles them
(``python -m analyzer.report.compiled``), and a run that finds a template's bytecode missing or
stale compiles it and writes it there if it may (atomically: concurrent runs are safe), else
compiles it each time.  Jinja2 checksums each entry against the template's source and its own
version and Python's, so bytecode of another source is not used; either way the template is
the same.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

TEMPLATES = Path(__file__).parent / "templates"
CACHE = TEMPLATES / "__pycache__"


@lru_cache(maxsize=1)
def environment():
    """The templates' environment (one per process: each template loaded or compiled once)."""
    import jinja2

    from analyzer.report import formatting

    class Beside(jinja2.FileSystemBytecodeCache):
        def load_bytecode(self, bucket):
            try:
                super().load_bytecode(bucket)
            except Exception:  # noqa: BLE001 -- a damaged entry: compiled again (and rewritten)
                bucket.reset()

        def dump_bytecode(self, bucket):
            try:
                os.makedirs(self.directory, exist_ok=True)
                super().dump_bytecode(bucket)
                os.chmod(self._get_cache_filename(bucket), 0o644)    # readable as the modules are
            except OSError:             # a read-only installation: compiled again next time
                pass

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True,
                             bytecode_cache=Beside(str(CACHE), "%s.jinja2"))
    env.filters.update(formatting.FILTERS)
    return env


def compile_all() -> list[str]:
    """Load every template (compiling and caching what is not cached yet); their names."""
    env = environment()
    names = env.list_templates(filter_func=lambda n: not n.startswith("__pycache__/"))
    for name in names:          # (report.css too: the report includes it)
        env.get_template(name)
    return names


if __name__ == "__main__":      # make install
    compile_all()
