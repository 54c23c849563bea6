"""Sphinx configuration: MyST Markdown pages, the examples as executed notebooks (myst-nb reading
the jupytext percent scripts), the API from docstrings and the CLI from its argparse parser.

    pip install ".[docs]" && sphinx-build -W --keep-going -n -b html docs docs/_build/html
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # the checkout's squash_sim and proofs_check, installed or not

project = "squash_sim"
author = "the squash_sim authors"
copyright = "2026, the squash_sim authors"

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinxarg.ext"]
exclude_patterns = ["_build", "conf.py", "jupyter_execute", "Thumbs.db", ".DS_Store",
                    "**.ipynb_checkpoints"]

# Tutorials: examples/NN_*.py (jupytext percent scripts, the one source) copied into
# docs/tutorials/ at build time (generated, git-ignored) and executed by myst-nb as notebooks.
# They run at the tests' small size (SQUASH_SIM_EXAMPLE_SMALL=1, inherited by the kernel) so the
# whole build fits CI; `python examples/notebooks.py` renders them at full size. The execution
# cache (docs/_build/.jupyter_cache) makes a rebuild with unchanged examples skip execution.
TUTORIALS = DOCS / "tutorials"
TUTORIALS.mkdir(exist_ok=True)
_EXAMPLES = sorted((ROOT / "examples").glob("[0-9][0-9]_*.py"))
for _stale in set(TUTORIALS.glob("*.py")) - {TUTORIALS / e.name for e in _EXAMPLES}:
    _stale.unlink()  # an example renamed or removed since the last build
for _example in _EXAMPLES:
    _copy = TUTORIALS / _example.name
    if not _copy.exists() or _copy.read_bytes() != _example.read_bytes():
        shutil.copyfile(_example, _copy)
os.environ["SQUASH_SIM_EXAMPLE_SMALL"] = "1"
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
nb_custom_formats = {".py": ["jupytext.reads", {"fmt": "py:percent"}]}
nb_execution_mode = "cache"
nb_execution_cache_path = str(DOCS / "_build" / ".jupyter_cache")
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
html_theme = "furo"
html_title = "squash_sim"

# MyST: $math$, heading anchors for [text](page.md#a-heading), definition-list free Markdown.
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

# Autodoc: the documented API, in source order; type hints in the description, not the signature.
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": False}
autodoc_typehints = "none"


def _plain_docstring(app, what, name, obj, options, lines):
    """squash_sim's docstrings are plain text written for help() (formulas like |x|, ‖Δ‖₁,
    *args), not reStructuredText: show them verbatim, as a literal block."""
    if lines:
        lines[:] = ["::", ""] + ["    " + line for line in lines] + [""]


_ANCHOR = re.compile(r'^<a id="([^"]+)"></a>\s*$', re.MULTILINE)


def _myst_targets(text: str) -> str:
    """squash_sim/theory.md marks its sections with HTML anchors (<a id="theorem_b3"></a>) so the
    report's markdown-it page links them; MyST gets the same names as its own targets."""
    return _ANCHOR.sub(r"(\1)=", text)


def _include_read(app, relative_path, parent_docname, content):
    content[0] = _myst_targets(content[0])


def setup(app):
    app.connect("autodoc-process-docstring", _plain_docstring)
    app.connect("include-read", _include_read)
