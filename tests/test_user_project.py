"""A user's own project runs the "regression-test your own model" example (docs/howto/regression.md,
verbatim) under plain `pytest`, with no conftest or settings, and passes; with a broken bound it
fails with a readable message."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def readme_example() -> str:
    """The example of the how-to guide the README's "Regression-test your own model" links."""
    text = (ROOT / "docs" / "howto" / "regression.md").read_text()
    assert "(docs/howto/regression.md)" in (ROOT / "README.md").read_text()
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


def _entry_point_shim(site: Path) -> None:
    """The pytest11 entry point as pyproject.toml declares it, as an installed distribution would
    carry it (the shared dev install may predate it; pytest skips a name already registered)."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    info = site / "squash_sim_plugin_shim-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: squash_sim_plugin_shim\n"
                                   "Version: 0\n")
    lines = ["[pytest11]"] + [f"{k} = {v}" for k, v in declared["pytest11"].items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


def _plain_pytest(project: Path, site: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("HYPOTHESIS_PROFILE", "SQUASH_SIM_HYPOTHESIS_PROFILE", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(site)])
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=600)


def test_the_readme_example_passes_under_plain_pytest_and_fails_readably_when_broken(tmp_path):
    example = readme_example()
    assert "@given(st.collapse_pairs(config=my_config))" in example
    assert 'assert_no_collapse_before(my_params, my_config, n=4096, precision="bf16")' in example
    site, project = tmp_path / "site", tmp_path / "project"
    _entry_point_shim(site)
    (project / "tests").mkdir(parents=True)
    test_file = project / "tests" / "test_my_model.py"
    test_file.write_text(example)
    passed = _plain_pytest(project, site)
    assert passed.returncode == 0, passed.stdout[-4000:] + passed.stderr[-2000:]
    assert "4 passed" in passed.stdout

    # A deliberately broken bound: the encoding no longer keeps tokens apart (no positions, a
    # window of one token): the no-collapse bound must fail and say where.
    broken = example.replace('positional="sinusoidal"', 'positional="none", sliding_window=1', 1)
    assert broken != example
    test_file.write_text(broken)
    failed = _plain_pytest(project, site, "-k", "keeps_tokens_apart")
    assert failed.returncode == 1, failed.stdout[-4000:]
    assert "AssertionError: collapse at n = 1 < 4096 under bf16" in failed.stdout
    assert "bit-identical" in failed.stdout
