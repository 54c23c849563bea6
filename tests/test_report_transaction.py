"""The report as a transaction (issue 23): one writer per folder, staging private to its run,
section records checked against a schema and the files they promise before reuse, every path in
the JSON resolving after the run, and draws that depend on the inputs alone. Stub sections keep
these tests to seconds; the machinery is the real one (runs.report, resume.SectionStore)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from squash_sim import results, runs
from squash_sim.report import Section, Verdict
from squash_sim.resume import ReportBusy, locked

ROOT = Path(__file__).resolve().parents[1]


def _stub(out, *, value: int = 1, formats=("png",), progress=None) -> Section:
    """A section with a data file, a counterexample it links, and a table: cheap and exact."""
    progress("stub: computing")
    data = results.write_csv(out / "stub.csv", [{"n": 1, "value": value}])
    example = results.write_json(out / "counterexamples" / "stub.json", {"value": value})
    return Section("stub", "A stub", "theorem_b3", [f"value {value}"],
                   [{"n": 1, "value": value / 3}], [], [data, example], 0.5,
                   [Verdict("Theorem B.3", "a statement", "holds", "1 instance",
                            counterexample=str(example))])


@pytest.fixture
def stub_report(monkeypatch):
    calls = []

    def stub(out, **kwargs):
        calls.append(kwargs.get("value", 1))
        return _stub(out, **kwargs)

    monkeypatch.setattr(runs, "stub", stub, raising=False)
    monkeypatch.setattr(runs, "report_steps", lambda *a, **k: [("stub", "stub", {"value": 1})])
    monkeypatch.setattr(runs, "machine_load_factor", lambda: 1.0)  # measured, like the stub's
    #                                     seconds: fixed, so a rewritten record is the same bytes
    return calls


def test_a_second_report_into_the_same_folder_is_refused_naming_the_holder(tmp_path,
                                                                            stub_report):
    from squash_sim import cli

    runs.report(tmp_path, size="smoke")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with locked(tmp_path):  # a run in progress (flock: a second open file conflicts in-process)
        with pytest.raises(ReportBusy, match=f"pid {os.getpid()}"):
            runs.report(tmp_path, size="smoke", fresh=True)
    assert stub_report == [1]  # the refused run computed nothing and deleted nothing
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    # Held by another process: the CLI says so in one line, exit 2.
    # Another process holding it: the same flock and holder line resume.locked writes, from a
    # bare Python (importing squash_sim would cost seconds).
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import fcntl, os, time
            fd = os.open({str(tmp_path / ".lock")!r}, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, f"pid {{os.getpid()}} on a host, started now\\n".encode())
            print("held", flush=True)
            time.sleep(60)""")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code = cli.main(["report", "--size", "smoke", "--out", str(tmp_path)])
        assert code == 2 and stub_report == [1]
        assert f"pid {holder.pid}" in (tmp_path / ".lock").read_text()
        # SIGKILL: the kernel drops the lock; the file it leaves is stale and taken over.
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        assert (tmp_path / ".lock").exists()
        runs.report(tmp_path, size="smoke", fresh=True)
        assert stub_report == [1, 1] and not (tmp_path / ".lock").exists()
    finally:
        holder.kill()
        holder.wait(timeout=30)


def _damage(record: Path, how: str) -> None:
    text = record.read_text()
    data = json.loads(text)
    if how == "nan in the table":
        record.write_text(text.replace("0.3333333333333333", "NaN"))
    elif how == "edited summary":
        record.write_text(text.replace("value 1", "value 7"))
    elif how == "a list":
        record.write_text("[]")
    elif how == "no files":
        data.pop("files")
        record.write_text(json.dumps(data))
    elif how == "empty section":
        data["section"] = {}
        record.write_text(json.dumps(data))
    elif how == "seconds text":
        record.write_text(json.dumps({"seconds": "x"}))
    elif how == "not json":
        record.write_text(text[: len(text) // 2])
    elif how == "a folder":
        record.unlink()
        record.mkdir()
    else:
        raise AssertionError(how)


DAMAGE = ["nan in the table", "edited summary", "a list", "no files", "empty section",
          "seconds text", "not json", "a folder"]


def test_damaged_records_and_files_are_recomputed_and_said_so(tmp_path, stub_report, capsys):
    runs.report(tmp_path, size="smoke")
    record = tmp_path / ".sections" / "stub.json"
    good = record.read_bytes()
    expected = {"nan in the table": "edited or damaged", "edited summary": "edited or damaged",
                "a list": "JSON list", "no files": "keys", "empty section": "edited or damaged",
                "seconds text": "keys", "not json": "not valid JSON",
                "a folder": "not a regular file"}
    for how in DAMAGE:
        _damage(record, how)
        capsys.readouterr()
        _, _, sections = runs.report(tmp_path, size="smoke")
        err = capsys.readouterr().err
        assert not sections[0].reused, how
        assert "stub: recomputed, its record" in err and expected[how] in err, (how, err)
        assert record.is_file() and json.loads(record.read_text())["section"]["summary"] == [
            "value 1"]
        assert record.read_bytes() == good  # rewritten whole: the same bytes as the first run
    for name in (".sections", ".staging"):  # the bookkeeping folders replaced by files
        path = tmp_path / name
        os.rename(path, tmp_path / "moved") if path.exists() else None
        path.write_text("damage")
        runs.report(tmp_path, size="smoke")
        assert (tmp_path / ".sections").is_dir()
    calls = len(stub_report)
    for name, change in (("stub.csv", "unlink"), ("stub.csv", "edit"),
                         ("counterexamples/stub.json", "unlink")):
        path = tmp_path / name
        path.unlink() if change == "unlink" else path.write_text("n,value\n1,2\n")
        capsys.readouterr()
        runs.report(tmp_path, size="smoke")
        err = capsys.readouterr().err
        assert f"{name} is missing" in err or f"{name} changed" in err, err
        assert path.read_text().startswith(("n,value\n1,1", "{"))
    assert len(stub_report) == calls + 3
    assert runs.report(tmp_path, size="smoke")[2][0].reused  # and whole again: reused


def test_every_path_in_the_json_resolves_after_the_run(tmp_path, monkeypatch):
    """claims.json used to name counterexamples under .staging/, deleted after the run."""
    def reports(scale, examples, folder, progress):
        file = results.write_json(Path(folder) / "lemma_b1.json", {"claim": "lemma_b1"})
        return [{"claim": "lemma_b1", "module": "lemma_b1", "printed_variant": False,
                 "instances": 4, "violations": 1, "assumption_failures": 0,
                 "max_tightness": 1.5, "median_tightness": 1.5, "worst_margin": -0.5,
                 "seconds": 0.1,
                 "counterexample": {"outcome": {"lhs": 1.5, "rhs": 1.0}, "file": str(file)},
                 "counterexample_file": file}]

    monkeypatch.setattr(runs, "claim_reports", reports)
    monkeypatch.setattr(runs, "report_steps", lambda *a, **k: [("claims", "claims", {})])
    runs.report(tmp_path, size="smoke")
    assert not (tmp_path / ".staging").exists()
    rows = json.loads((tmp_path / "claims.json").read_text())
    for path in (rows[0]["counterexample_file"], rows[0]["counterexample"]["file"]):
        assert not Path(path).is_absolute() and (tmp_path / path).is_file(), path
    for record in (tmp_path / ".sections").glob("*.json"):
        files = json.loads(record.read_text())["files"]
        assert files and all((tmp_path / name).is_file() for name in files)


def test_claim_draws_depend_on_the_inputs_alone(tmp_path, monkeypatch):
    """A resumed report imports fewer modules than an uninterrupted one; Hypothesis's local-
    constants pool (constants scraped from every loaded non-library module) made the claim
    table differ (lemma_b1 max tightness 0.9987 vs 0.9983)."""
    from proofs_check.claims import CLAIMS
    from proofs_check.runner import run_claim

    first = run_claim(CLAIMS["lemma_b1"], 100)
    (tmp_path / "fresh_constants_i23.py").write_text(
        "X = [0.123456789, 3.75, 9.5e5, 0.3333, 2.718281828, 77.7, 1e-30, 0.999, 42.42]\n"
        "N = [7, 13, 1729, 65537, 99, 31, 1000003, 4099]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import fresh_constants_i23  # noqa: F401  (a module Hypothesis has not seen yet)

    again = run_claim(CLAIMS["lemma_b1"], 100)
    for field in ("max_tightness", "median_tightness", "worst_margin", "assumption_failures"):
        a, b = getattr(first, field), getattr(again, field)
        assert a == b or (math.isnan(a) and math.isnan(b)), field


def test_a_report_killed_mid_section_resumes_to_the_same_bytes(tmp_path, monkeypatch):
    """SIGKILL while a section is staged, then resume: every data file and section text equals
    an uninterrupted run's (the preamble's timing aside), and no staging is left."""
    script = textwrap.dedent(f"""
        import time
        from squash_sim import results, runs
        from squash_sim.report import Section
        def slow(out, *, formats, progress):
            results.write_csv(out / "slow.csv", [{{"n": 1}}])
            print("staged", flush=True)
            time.sleep(60)
        runs.slow = slow
        import sys
        sys.path.insert(0, {str(ROOT / "tests")!r})
        from test_report_transaction import _stub
        runs.stub = _stub
        runs.report_steps = lambda *a, **k: [("stub", "stub", {{}}), ("slow", "slow", {{}})]
        runs.report({str(tmp_path / "killed")!r}, size="smoke")""")
    (tmp_path / "child.py").write_text(script)  # a file: the report fingerprints section sources
    run = subprocess.Popen([sys.executable, str(tmp_path / "child.py")], text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        while (line := run.stdout.readline()) and line.strip() != "staged":
            pass  # the first section's text
        assert line.strip() == "staged"
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
    finally:
        run.kill()
    killed = tmp_path / "killed"
    assert list((killed / ".staging").iterdir())  # the dead run's private staging

    def quick(out, *, formats, progress):
        path = results.write_csv(out / "slow.csv", [{"n": 1}])
        return Section("slow", "Slow", "theorem_b3", ["done"], [], [], [path], 0.0, [])

    monkeypatch.setattr(runs, "slow", quick, raising=False)
    monkeypatch.setattr(runs, "stub", _stub, raising=False)
    monkeypatch.setattr(runs, "report_steps",
                        lambda *a, **k: [("stub", "stub", {}), ("slow", "slow", {})])
    resumed = runs.report(killed, size="smoke")[2]
    assert [s.reused for s in resumed] == [True, False]
    whole = runs.report(tmp_path / "whole", size="smoke")[2]
    assert len(resumed) == len(whole)

    def text(folder):  # report.md less the preamble's timing line and the word "reused"
        return [line.replace(" (reused: same inputs as an earlier run)", "")
                for line in (folder / "report.md").read_text().splitlines()
                if "for this run" not in line]

    assert text(killed) == text(tmp_path / "whole")
    names = sorted(p.relative_to(killed) for p in killed.rglob("*") if p.is_file()
                   and ".sections" not in p.parts and p.suffix in (".csv", ".json"))
    assert names and not (killed / ".staging").exists()
    for name in names:
        assert (killed / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name


def test_a_recorded_section_is_estimated_at_todays_load(tmp_path, stub_report, monkeypatch):
    """One estimate (runs.expected_seconds): a section's last run here, taken at load factor F,
    is brought to idle and scaled by today's factor, as the table's first estimate is."""
    from squash_sim.resume import SectionStore

    monkeypatch.setattr(runs, "machine_load_factor", lambda: 4.0)
    runs.report(tmp_path, size="smoke")
    seconds, factor = SectionStore(tmp_path).recorded_seconds("stub")
    assert factor == 4.0 and seconds >= 0
    assert runs.expected_seconds("smoke", "stub", 2.0, (100.0, 4.0)) == 50.0
    assert runs.expected_seconds("smoke", "figure8", 2.0) == 2 * runs.expected_seconds(
        "smoke", "figure8", 1.0)
