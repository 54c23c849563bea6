"""`squash-sim` commands: files, tables, errors; the report (the main job)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

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
    # the one definition's fields, against the per-n CSV read independently
    table = {r["positional"]: r for r in csv.DictReader(open(tmp_path / "collapse_summary.csv"))}
    for positional in ("none", "rope"):
        same = [r["bit_identical"] == "True" for r in rows if r["positional"] == positional]
        first = next((n for n, s in enumerate(same, 1) if s), None)
        assert summary[positional]["first_identical_n"] == first
        assert summary[positional]["identical_share"] == round(sum(same) / 300, 6)
        assert table[positional]["first_identical_n"] == str(first or "")
    assert "an 8-token" in out and "a 8-token" not in out
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
    """The README's first command, `squash-sim report`, from the installed entry point (at the
    smoke size; the claim table is exercised by test_proofs_check)."""
    script = Path(sys.executable).parent / "squash-sim"
    assert script.exists(), "install the package (pip install '.[test]') to get the squash-sim script"
    done = subprocess.run([str(script), "report", "--size", "smoke", "--no-claims", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "report.html").read_text()
    figures = sorted(p.stem for p in tmp_path.glob("*.png"))
    assert figures == ["accumulation", "collapse", "collapse_attention", "counting", "figure10",
                       "figure8", "figure9", "precision", "remedies", "sensitivity"]
    assert page.count("data:image/png;base64,") == len(figures)  # self-contained
    assert "src='http" not in page and 'src="http' not in page
    for stem in figures:  # the data behind every figure is beside it
        assert (tmp_path / f"{stem}.csv").exists() and (tmp_path / f"{stem}.json").exists()
        json.load(open(tmp_path / f"{stem}.json"))
    markdown = (tmp_path / "report.md").read_text()
    assert "Figure 9" in markdown and "](figure9.png)" in markdown
    assert "step 9/9" in done.stderr  # progress on stderr
    assert not list(tmp_path.glob(".*.tmp"))


def test_experiment_commands_and_their_errors(tmp_path, capsys):
    assert main(["collapse", "--protocol", "figure10", "--max-len", "120", "--seeds", "2",
                 "--positional", "none,alibi", "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "figure10.csv")))
    assert {r["positional"] for r in rows} == {"none", "alibi"}
    assert main(["counting", "--seeds", "1", "--out", str(tmp_path), "--formats", "svg"]) == 0
    assert (tmp_path / "counting.svg").exists() and not (tmp_path / "counting.png").exists()
    assert "ratios only" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["precision", "--mantissa-bits", "0,40", "--out", str(tmp_path)])
    assert "mantissa bits must lie in 1..23" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["remedies", "--formats", "gif", "--out", str(tmp_path)])
    assert "unknown figure format" in capsys.readouterr().err
    assert main(["collapse", "--protocol", "figure10", "--positional", "learned",
                 "--out", str(tmp_path / "no")]) == 2
    assert "positional must be among" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()  # a rejected run writes nothing


def test_accumulation_command_and_its_errors(tmp_path, capsys):
    """`squash-sim accumulation`: the format × accumulation-model table as CSV/JSON/figure; a bad
    format or model name is one line and exit 2 before any work."""
    assert main(["accumulation", "--max-len", "64", "--float-formats", "fp8_e5m2",
                 "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "accumulation.csv")))
    assert [r["model"] for r in rows][:2] == ["sequential", "pairwise"]
    assert rows[0]["mechanism"] == "accumulator stalled" and rows[1]["n_star"] == ""
    assert (tmp_path / "accumulation.png").exists()
    for bad, message in ((["--float-formats", "fp8,bf16"], "unknown float format"),
                         (["--model", "no-such-model"], "expected one of")):
        with pytest.raises(SystemExit) as exit_info:
            main(["accumulation", *bad, "--out", str(tmp_path / "no")])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "no").exists()
