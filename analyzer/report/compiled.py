"""The report's Jinja2 environment, with its templates compiled where there is time for it.

Compiling report.html.j2 and the partials it imports costs ~0.08 s, and the document's process
would pay it after the analysis, while the PDF worker waits for the HTML.  The chart worker
compiles them instead while the capture is still being analysed (``compile_all``, part of its
warm-up, drawing.py) and sends the bytecode: marshalled code objects, as Jinja2's own bytecode
caches keep them.  The document's process takes them (``accept``) and loads the templates from
them.  Jinja2 keys each entry by the template's name and checksums it against the template's
source, so bytecode of another source (or of nothing: the worker was not ready) is not used and
the template is compiled here as before; either way the template is the same.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

TEMPLATES = Path(__file__).parent / "templates"
_bytecode: dict[str, bytes] = {}        # Jinja2 bucket key -> bytecode, compiled here or received


@lru_cache(maxsize=1)
def environment():
    """The templates' environment (one per process: each template compiled or loaded once)."""
    import jinja2

    from analyzer.report import formatting

    class Shipped(jinja2.BytecodeCache):
        def load_bytecode(self, bucket):
            if bucket.key in _bytecode:
                bucket.bytecode_from_string(_bytecode[bucket.key])

        def dump_bytecode(self, bucket):
            _bytecode[bucket.key] = bucket.bytecode_to_string()

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True, bytecode_cache=Shipped())
    env.filters.update(formatting.FILTERS)
    return env


def compile_all() -> dict[str, bytes]:
    """Compile every template; their bytecode, for ``accept`` in another process."""
    env = environment()
    for name in env.list_templates():          # (report.css too: the report includes it)
        env.get_template(name)
    return dict(_bytecode)


def accept(bytecode: dict[str, bytes]) -> None:
    """Load templates from ``bytecode`` (compile_all's, made in a worker) from now on."""
    for key, blob in bytecode.items():
        _bytecode.setdefault(key, blob)
