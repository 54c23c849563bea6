"""`squash-sim collapse`: files, table, errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from squash_sim.cli import main


def test_collapse_writes_csv_json_and_figure(tmp_path, capsys):
    code = main(["collapse", "--preset", "paper-fig10", "--positional", "none,rope",
                 "--max-len", "300", "--precision", "bf16", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "bf16 spacing" in out and "rope" in out
    rows = list(csv.DictReader(open(tmp_path / "collapse.csv")))
    assert len(rows) == 2 * 300 and {r["positional"] for r in rows} == {"none", "rope"}
    nope = np.array([float(r["l1"]) for r in rows if r["positional"] == "none"])
    assert nope[9] < nope[0]  # NoPE distances decay (Theorem B.3)
    summary = json.load(open(tmp_path / "collapse.json"))["summary"]
    assert summary["none"]["decay_exponent"] < -0.5
    assert (tmp_path / "collapse.png").stat().st_size > 10_000
    assert not list(tmp_path.glob(".*.tmp"))  # no partial files left behind


def test_collapse_cli_entry_point_and_bad_arguments(tmp_path):
    run = lambda *args: subprocess.run([sys.executable, "-m", "squash_sim.cli", *args],  # noqa: E731
                                       capture_output=True, text=True, timeout=300)
    bad = run("collapse", "--precision", "bf17", "--out", str(tmp_path))
    assert bad.returncode == 2 and "unknown precision" in bad.stderr
    bad = run("collapse", "--max-len", "0", "--out", str(tmp_path))
    assert bad.returncode == 2 and "positive integer" in bad.stderr
    bad = run("collapse", "--positional", "spiral", "--out", str(tmp_path))
    assert bad.returncode == 2 and "positional" in bad.stderr
    assert not list(tmp_path.iterdir())
    ok = run("collapse", "--max-len", "40", "--out", str(tmp_path))
    assert ok.returncode == 0, ok.stderr
    assert "one forward pass" in ok.stderr  # progress goes to stderr


def test_installed_console_script_runs_the_main_job(tmp_path):
    """The README's first command: `squash-sim collapse` from the installed entry point."""
    script = Path(sys.executable).parent / "squash-sim"
    assert script.exists(), "install the package (pip install '.[test]') to get the squash-sim script"
    done = subprocess.run([str(script), "collapse", "--max-len", "64", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "collapse.csv").exists() and "Representational collapse" in done.stdout
