"""The report's Jinja2 environment, its templates compiled once, ahead, as Python's modules are.

Compiling report.html.j2 and what it includes costs ~0.1 CPU-s, paid by the document's process
after the analysis, while the PDF process waits for the HTML.  So the templates' bytecode is
kept beside them, in ``templates/__pycache__`` (what Python does for the package's modules; the
same trust: whoever may write there may write the code): ``make install`` compiles them
(``python -m analyzer.report.compiled``), and a run that finds a template's bytecode missing or
stale compiles it and writes it there if it may (atomically: concurrent runs are safe), else
compiles it each time.  Jinja2 checksums each entry against the template's source and
Python's version; the entry's key also holds Jinja2's release and the environment's options
(``_salt``), so bytecode of another source, release or set of options is not used; either way
the template is the same.
"""
from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

TEMPLATES = Path(__file__).parent / "templates"
CACHE = TEMPLATES / "__pycache__"


def _umask() -> int:
    """This process's umask, read without changing it (os.umask sets it: a race with other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _salt(env) -> str:
    """What the generated code depends on beside the template's source: Jinja2's release and the
    environment's options (a change of either must not reuse bytecode made before it)."""
    import jinja2
    options = ("block_start_string", "block_end_string", "variable_start_string", "variable_end_string",
               "comment_start_string", "comment_end_string", "line_statement_prefix", "line_comment_prefix",
               "trim_blocks", "lstrip_blocks", "newline_sequence", "keep_trailing_newline", "autoescape",
               "optimized", "is_async")
    return repr((jinja2.__version__, [(o, getattr(env, o, None)) for o in options], sorted(env.extensions)))


@lru_cache(maxsize=1)
def environment():
    """The templates' environment (one per process: each template loaded or compiled once)."""
    import jinja2

    from analyzer.report import formatting

    class Beside(jinja2.FileSystemBytecodeCache):
        def get_cache_key(self, name, filename=None):
            # Jinja2 keys an entry by the template's name and checks its source and Python's version,
            # not Jinja2's release or the options the code was generated with: those go in the key
            return hashlib.sha1(f"{super().get_cache_key(name, filename)}|{_salt(env)}".encode()).hexdigest()

        def load_bytecode(self, bucket):
            try:
                super().load_bytecode(bucket)
            except Exception:  # noqa: BLE001 -- a damaged entry: compiled again (and rewritten)
                bucket.reset()

        def dump_bytecode(self, bucket):
            try:
                os.makedirs(self.directory, exist_ok=True)
                super().dump_bytecode(bucket)
                os.chmod(self._get_cache_filename(bucket), 0o666 & ~_umask())    # as a module's .pyc
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
