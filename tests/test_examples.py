"""examples/ run as plain Python (at the small size) and stay valid jupytext percent scripts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("[0-9][0-9]_*.py"))


def test_there_are_five_examples():
    assert [p.name[:2] for p in EXAMPLES] == ["01", "02", "03", "04", "05"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(path):
    text = path.read_text()
    assert text.startswith("# %% [markdown]")  # jupytext percent format: prose first
    env = dict(os.environ, SQUASH_SIM_EXAMPLE_SMALL="1")
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip()
