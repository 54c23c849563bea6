"""`squash-sim` commands: files, tables, errors; the report (the main job)."""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
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


def dead_links(page: Path) -> list[str]:
    """Every local href/src of an HTML page (a file beside it, or #anchor in it or in that file)
    that does not resolve; external and data: URLs are not local."""
    ids: dict[Path, set[str]] = {}

    def anchors(path: Path) -> set[str]:
        if path not in ids:
            parser = _Links()
            parser.feed(path.read_text(encoding="utf-8"))
            ids[path] = parser.ids
        return ids[path]

    links = _Links()
    links.feed(page.read_text(encoding="utf-8"))
    dead = []
    for link in links.links:
        if link.startswith(("http:", "https:", "data:", "mailto:")):
            continue
        name, _, anchor = link.partition("#")
        target = (page.parent / name) if name else page
        if not target.is_file():
            dead.append(link)
        elif anchor and target.suffix == ".html" and anchor not in anchors(target):
            dead.append(link)
    return dead


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.links.append(value)
            if name in ("id", "name") and value:
                self.ids.add(value)


def test_dead_links_finds_a_missing_file_and_a_missing_anchor(tmp_path):
    (tmp_path / "b.html").write_text('<a id="here"></a>')
    page = tmp_path / "a.html"
    page.write_text('<h2 id="top"></h2><a href="#top"></a><a href="b.html#here"></a>'
                    '<a href="b.html#gone"></a><a href="c.md"></a><img src="data:image/png;base64,x">'
                    '<a href="#nowhere"></a><a href="https://example.org/x"></a>')
    assert dead_links(page) == ["b.html#gone", "c.md", "#nowhere"]


def test_installed_console_script_runs_the_main_job(tmp_path):
    """The README's first command, `squash-sim report`, from the installed entry point (at the
    smoke size; the claim table is exercised by test_proofs_check), run from an empty folder: CI
    installs the package non-editable, so the theory the report links must come from the package
    itself, and every local link of report.html must resolve."""
    script = Path(sys.executable).parent / "squash-sim"
    assert script.exists(), "install the package (pip install '.[test]') to get the squash-sim script"
    done = subprocess.run([str(script), "report", "--size", "smoke", "--no-claims", "--out",
                           "report"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    tmp_path = tmp_path / "report"
    assert dead_links(tmp_path / "report.html") == []
    assert dead_links(tmp_path / "theory.html") == []
    assert (tmp_path / "report.html").read_text().count('href="theory.html#') >= 10
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
    # The hardware columns: e5m2 storage and H100's e5m2 MMA (no other GPU has one), judged.
    assert [(r["model"], r["policy"], r["status"]) for r in rows][-2:] == [
        ("storage, fp32 sums", "fp8_e5m2", "ok"), ("tc:h100", "fp8_e5m2+tc:h100", "ok")]
    assert "tc:h100" in capsys.readouterr().out  # the printed table has the column
    assert (tmp_path / "accumulation.png").exists()
    for bad, message in ((["--float-formats", "fp8,bf16"], "unknown float format"),
                         (["--model", "no-such-model"], "expected one of")):
        with pytest.raises(SystemExit) as exit_info:
            main(["accumulation", *bad, "--out", str(tmp_path / "no")])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "no").exists()


def _actions(parser):
    """Every (parser, action) of the CLI, subcommands included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _actions(sub)
        else:
            yield parser, action


def test_every_flag_has_help_and_no_text_cites_an_issue_or_a_missing_page():
    from squash_sim.cli import build_parser

    parser = build_parser()
    for owner, action in _actions(parser):
        assert action.help, f"{owner.prog} {action.option_strings or action.dest} has no help"
    texts = [owner.format_help() for owner, _ in _actions(parser)]
    assert not [t for t in texts if re.search(r"\bissue \d", t)]
    assert not [t for t in texts if "interventions.md" in t]  # a spec file users never get
    assert "exit status: 0" in parser.format_help()


def test_inject_needs_a_real_model_as_its_help_says(tmp_path, capsys):
    from squash_sim.cli import build_parser

    intervene = build_parser()._subparsers._group_actions[0].choices["intervene"]
    assert "a real --model only" in intervene.format_help()
    assert main(["intervene", "--kind", "inject", "--model", "tiny", "--out", str(tmp_path)]) == 2
    assert "needs a real model" in capsys.readouterr().err


def test_a_missing_optional_dependency_names_the_extra_to_install(tmp_path, capsys, monkeypatch):
    from squash_sim import runs

    def missing(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'gguf'", name="gguf")

    monkeypatch.setattr(runs, "real_collapse", missing)
    assert main(["real", "collapse", "--model", "gemma3-270m", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No module named 'gguf'" in err
    assert "pip install 'squash_sim[gemma]'" in err


def test_collapse_takes_a_comma_list_of_policies_on_one_figure(tmp_path, capsys):
    assert main(["collapse", "--preset", "paper-fig10", "--positional", "none", "--max-len", "40",
                 "--precision", "fp32,bf16", "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "collapse.csv")))
    assert {(r["positional"], r["precision"]) for r in rows} == {("none", "fp32"),
                                                                 ("none", "bf16")}
    summary = json.load(open(tmp_path / "collapse.json"))["summary"]
    assert set(summary) == {"none, fp32", "none, bf16"}  # the figure's two curves
    assert (tmp_path / "collapse.png").exists()
    assert main(["collapse", "--protocol", "figure10", "--precision", "fp32,bf16",
                 "--out", str(tmp_path / "no")]) == 2
    assert "takes one --precision policy" in capsys.readouterr().err


# A quick report measured on the shared 2-core machine at load average 9.06 (2026-12-06, empty
# compilation cache): seconds per section, in the report's order; 519 s in all.
RECORDED_QUICK = {"figure10": 59.1, "figure8": 12.8, "figure9": 1.3, "collapse": 72.6,
                  "precision": 115.1, "sensitivity": 60.6, "counting": 52.6, "remedies": 16.5,
                  "accumulation": 33.3, "claims": 94.5}


def _estimates_during(monkeypatch, estimates: dict, actual: dict) -> list[float]:
    """elapsed + remaining as the progress bar says it at the start, middle and end of every
    section of a run whose sections take `actual` seconds (a fake clock)."""
    from squash_sim import resume

    clock = [0.0]
    monkeypatch.setattr(resume.time, "perf_counter", lambda: clock[0])
    bar = resume._Progress(list(estimates.items()))
    said = [bar.remaining()]
    for key, seconds in actual.items():
        bar.start(key, key)
        begin = clock[0]
        for fraction in (0.5, 1.0):
            clock[0] = begin + fraction * seconds
            said.append(clock[0] + bar.remaining())
        bar.done(key)
    bar.close()
    return said


def test_the_report_estimate_is_within_2x_of_the_truth_from_its_first_line(monkeypatch):
    """On the recorded run (idle table × the load factor the machine showed at its start), and on
    one whose first section is 7× slower than estimated (start-up and compiles: the old estimate
    jumped from 3:51 to 27:29 there and missed the truth by 3.6×)."""
    from squash_sim.runs import expected_seconds

    truth = sum(RECORDED_QUICK.values())
    estimates = {k: expected_seconds("quick", k, load_factor=9.06 / 2) for k in RECORDED_QUICK}
    said = _estimates_during(monkeypatch, estimates, RECORDED_QUICK)
    assert all(truth / 2 <= s <= 2 * truth for s in said), [round(s) for s in said]
    slow_start = dict(estimates, figure10=7 * estimates["figure10"])
    said = _estimates_during(monkeypatch, estimates, slow_start)
    truth = sum(slow_start.values())
    assert all(truth / 2 <= s <= 2 * truth for s in said), [round(s) for s in said]


def test_the_theory_the_report_links_ships_as_package_data_with_every_claims_anchor():
    """report.html links theory.html#<claim> on every verdict row; the theory is read with
    importlib.resources (so a wheel has it) and declared as package data."""
    import tomllib

    from proofs_check.claims import CLAIMS
    from squash_sim.report import theory_source

    text = theory_source().read_text(encoding="utf-8")
    assert text.startswith("# The theory squash_sim checks")
    missing = [name for name in [*CLAIMS, "interventions", "results"]
               if f'<a id="{name}"></a>' not in text]
    assert missing == []
    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    assert "theory.md" in pyproject["tool"]["setuptools"]["package-data"]["squash_sim"]
