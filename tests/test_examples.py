"""examples/ are a course: each runs as a notebook (jupytext + nbclient, at the small size), draws
its figures inline, and stays a valid jupytext percent script with prose first."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("[0-9][0-9]_*.py"))


def _notebooks():
    spec = importlib.util.spec_from_file_location("notebooks", ROOT / "examples" / "notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_there_are_five_examples_and_the_documentation_executes_each_as_a_tutorial():
    assert [p.name[:2] for p in EXAMPLES] == ["01", "02", "03", "04", "05"]
    toctree = (ROOT / "docs" / "tutorials.md").read_text()  # docs/conf.py copies and executes them
    assert all(f"tutorials/{path.stem}\n" in toctree for path in EXAMPLES)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_executes_as_a_notebook_and_draws_figures(path):
    pytest.importorskip("jupytext")
    pytest.importorskip("nbclient")
    assert path.read_text().startswith("# %% [markdown]")  # jupytext percent format: prose first
    notebook = _notebooks().execute(path, small=True, timeout=300)
    cells = notebook.cells
    prose = [c for c in cells if c.cell_type == "markdown"]
    code = [c for c in cells if c.cell_type == "code"]
    assert len(prose) >= 3 and len(code) >= 2  # explained next to the lines that compute it
    outputs = [o for c in code for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the example draws no figure"
    assert any(o.output_type == "stream" and o.text.strip() for o in outputs)
