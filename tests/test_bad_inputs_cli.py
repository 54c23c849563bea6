"""Every `squash-sim` command: bad input → exit 2 with ONE line naming the option, before any work
and without writing anything; borderline-valid input → exit 0 with finite, correct files.

Commands run in-process through `squash_sim.cli.main` (fast); two end-to-end checks use a
subprocess (a real SIGINT, a real console). `python tests/test_bad_inputs_cli.py` prints the
tally recorded in docs/bad_inputs.md.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from squash_sim.cli import build_parser, main

LEAKS = ("Traceback", "Tracer", "XLA", "jaxpr", "Errno", "invalid <lambda>", "OverflowError")

# (command line, what the one-line message must name). {out}: a fresh folder that must stay
# absent; {file}: an existing file; {dir}: an existing folder.
BAD = [
    ("collapse --out {file}", "--out"),
    ("collapse --out {file}/sub", "--out"),
    ("collapse --out /proc/squash/out", "--out"),
    ("collapse --out ''", "--out"),
    ("collapse --max-len 1e20 --out {out}", "--max-len"),
    ("collapse --max-len 100000000000000000000 --out {out}", "--max-len"),
    ("collapse --max-len 0 --out {out}", "--max-len"),
    ("collapse --max-len -5 --out {out}", "--max-len"),
    ("collapse --max-len 2.5 --out {out}", "--max-len"),
    ("collapse --seed -1 --max-len 4 --out {out}", "--seed"),
    ("collapse --seed 1180591620717411303424 --max-len 4 --out {out}", "--seed"),
    ("collapse --seed x --max-len 4 --out {out}", "--seed"),
    ("collapse --prompt-len -3 --max-len 4 --out {out}", "--prompt-len"),
    ("collapse --prompt-len 1e9 --max-len 4 --out {out}", "--prompt-len"),
    ("collapse --formats '' --max-len 4 --out {out}", "--formats"),
    ("collapse --formats gif --max-len 4 --out {out}", "--formats"),
    ("collapse --positional '' --max-len 4 --out {out}", "--positional"),
    ("collapse --positional spiral --max-len 4 --out {out}", "--positional"),
    ("collapse --precision bf17 --max-len 4 --out {out}", "--precision"),
    ("collapse --precision '' --max-len 4 --out {out}", "--precision"),
    ("collapse --preset nope --max-len 4 --out {out}", "--preset"),
    ("collapse --protocol fig11 --out {out}", "--protocol"),
    ("collapse --protocol figure10 --seeds 0 --out {out}", "--seeds"),
    ("collapse --protocol figure10 --seeds 99999999 --out {out}", "--seeds"),
    ("collapse --protocol figure10 --positional learned --max-len 4 --out {out}", "positional"),
    ("collapse --variance 2 --out {out}", "--variance"),
    ("precision --mantissa-bits '' --max-len 4 --out {out}", "--mantissa-bits"),
    ("precision --mantissa-bits 0,40 --max-len 4 --out {out}", "--mantissa-bits"),
    ("precision --mantissa-bits a --max-len 4 --out {out}", "--mantissa-bits"),
    ("sensitivity --depths 1,,2 --max-len 4 --out {out}", "--depths"),
    ("sensitivity --depths abc --max-len 4 --out {out}", "--depths"),
    ("sensitivity --depths 0 --max-len 4 --out {out}", "--depths"),
    ("sensitivity --max-len 0 --out {out}", "--max-len"),
    ("counting --seeds -1 --out {out}", "--seeds"),
    ("counting --out {file}", "--out"),
    ("remedies --max-len 1e20 --out {out}", "--max-len"),
    ("remedies --seed -1 --max-len 4 --out {out}", "--seed"),
    ("report --size huge --out {out}", "--size"),
    ("report --examples 0 --out {out}", "--examples"),
    ("report --out {file}", "--out"),
    ("report --formats svg,jpeg --out {out}", "--formats"),
    ("intervene --kind angle --theta nan --seeds 1 --out {out}", "--theta"),
    ("intervene --kind angle --theta inf --seeds 1 --out {out}", "--theta"),
    ("intervene --kind angle --theta x --seeds 1 --out {out}", "--theta"),
    ("intervene --kind bogus --out {out}", "--kind"),
    ("intervene --out {out}", "--kind"),
    ("intervene --kind random --window 0 --seeds 1 --out {out}", "--window"),
    ("intervene --kind angle --window 2 --seeds 1 --out {out}", "--window"),
    ("intervene --kind inject --seeds 1 --out {out}", "--kind inject"),
    ("intervene --kind random --seed -5 --seeds 1 --out {out}", "--seed"),
    ("intervene --kind random --seeds 0 --out {out}", "--seeds"),
    ("intervene --kind random --model gpt5 --out {out}", "--model"),
    ("intervene --kind random --seeds 1 --out {file}", "--out"),
    ("real collapse --precision bf17 --out {out}", "--precision"),
    ("real collapse --precision fp32,, --out {out}", "--precision"),
    ("real collapse --max-len 0 --out {out}", "--max-len"),
    ("real collapse --seed -1 --out {out}", "--seed"),
    ("real collapse --prompt poem --out {out}", "--prompt"),
    ("real collapse --out {file}", "--out"),
    ("real tasks --seeds 0 --out {out}", "--seeds"),
    ("real capitals --limit -1 --out {out}", "--limit"),
    ("real capitals --window 0 --out {out}", "--window"),
    ("real", "EXPERIMENT"),
    ("real bogus", "EXPERIMENT"),
    ("", "COMMAND"),
    ("bogus", "COMMAND"),
    ("collapse --bogus", "--bogus"),
    ("check --replay {out}/missing.json", "--replay"),
    ("check --replay {dir}", "--replay"),
]


def _argv(line: str, tmp: Path) -> list[str]:
    import shlex

    folder = tmp / "dir"
    folder.mkdir(exist_ok=True)
    (tmp / "file").write_text("x")
    return shlex.split(line.format(out=tmp / "out", file=tmp / "file", dir=folder))


def run_main(argv: list[str]) -> tuple[object, str, str]:
    """main(argv) in-process → (exit code, or 'raised X' when an exception escaped; stdout; stderr)"""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code
        except BaseException as escaped:  # noqa: BLE001
            code = f"raised {type(escaped).__name__}: {escaped}"
    return code, out.getvalue(), err.getvalue()


def classify(line: str, name: str, tmp: Path) -> tuple[str, str]:
    code, _, err = run_main(_argv(line, tmp))
    lines = err.strip().splitlines()
    if code == 0:
        return "silent", "exit 0"
    clear = (code == 2 and len(lines) == 1 and name in lines[0]
             and not any(w in err for w in LEAKS) and not (tmp / "out").exists())
    return ("clear" if clear else "unclear"), f"exit {code}: {err.strip()[-300:]}"


@pytest.mark.parametrize("line, name", BAD, ids=[line or "(nothing)" for line, _ in BAD])
def test_bad_option_exits_2_with_one_line_naming_it(line, name, tmp_path):
    verdict, message = classify(line, name, tmp_path)
    assert verdict == "clear", f"squash-sim {line}: {verdict}: {message}"


# -- Hypothesis: any text for an option either parses to an allowed value or gets one line ------

OPTIONS = {  # option → (command prefix, the attribute, a predicate every accepted value meets)
    "--seed": (["collapse"], "seed", lambda v: isinstance(v, int) and 0 <= v < 2**63),
    "--max-len": (["collapse"], "max_len", lambda v: isinstance(v, int) and 1 <= v <= 2**20),
    "--prompt-len": (["collapse"], "prompt_len", lambda v: isinstance(v, int) and v >= 0),
    "--seeds": (["collapse"], "seeds", lambda v: isinstance(v, int) and v >= 1),
    "--theta": (["intervene", "--kind", "angle"], "theta",
                lambda v: isinstance(v, float) and math.isfinite(v)),
    "--window": (["intervene", "--kind", "random"], "window", lambda v: v >= 1),
    "--depths": (["sensitivity"], "depths", lambda v: v and all(d >= 1 for d in v)),
    "--mantissa-bits": (["precision"], "mantissa_bits", lambda v: all(1 <= b <= 23 for b in v)),
    "--formats": (["collapse"], "formats", lambda v: v and set(v) <= {"png", "svg", "pdf"}),
}
TEXT = st.one_of(st.text(max_size=8), st.integers(-2**70, 2**70).map(str),
                 st.floats().map(str), st.sampled_from(["1e20", "nan", "-inf", "0x10", "1,,2",
                                                        "", " ", "-1", "1_000"]))


@settings(max_examples=150)
@given(option=st.sampled_from(sorted(OPTIONS)), text=TEXT)
def test_any_option_text_parses_to_an_allowed_value_or_one_line(option, text):
    prefix, attribute, allowed = OPTIONS[option]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            args = build_parser().parse_args([*prefix, f"{option}={text}",
                                              "--out", tempfile.gettempdir()])
        except SystemExit as exit_:
            lines = err.getvalue().strip().splitlines()
            assert exit_.code == 2 and len(lines) == 1 and option in lines[0], err.getvalue()
            assert not any(w in lines[0] for w in LEAKS), lines[0]
            return
    assert allowed(getattr(args, attribute)), (option, text, getattr(args, attribute))


# -- borderline-valid input: finite, correct results ---------------------------------------------

def test_smallest_collapse_with_the_largest_seed(tmp_path):
    code, out, err = run_main(["collapse", "--preset", "paper-fig10", "--max-len", "1",
                               "--prompt-len", "0", "--seed", str(2**63 - 1),
                               "--out", str(tmp_path)])
    assert code == 0, err
    rows = list(csv.DictReader(open(tmp_path / "collapse.csv")))
    assert [r["n"] for r in rows] == ["1"] and math.isfinite(float(rows[0]["l1"]))


def test_check_passes_every_argument_to_proofs_check(tmp_path):
    replay = tmp_path / "case.json"
    replay.write_text(json.dumps({"claim": "lemma_b2", "instance": {"n": 10, "k": 2, "seed": 0}}))
    code, out, _ = run_main(["check", "--replay", str(replay)])
    assert code == 0 and json.loads(out)["holds"] is True
    code, out, _ = run_main(["check", "--examples", "5", "lemma_b2", "--counterexamples",
                             str(tmp_path / "ce"), "--json", str(tmp_path / "r.json")])
    assert code == 0 and json.load(open(tmp_path / "r.json"))
    code, out, _ = run_main(["check", "--", "--help"])
    assert code == 0 and "proofs_check" in out and "--replay" in out


# -- end to end: a real console ------------------------------------------------------------------

def _console(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "squash_sim.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _console_at_a_terminal(*args):
    """The console with Ctrl-C as a user's terminal delivers it. A pytest started as a background
    job (`pytest &` from a script) runs with SIGINT ignored, its children inherit that, and the CLI
    then rightly leaves it ignored, as for any `cmd &` job: the test would see a report that cannot
    stop. So the child restores Python's handler before the CLI starts (no preexec_fn: forking a
    threaded JAX process to run Python is unsafe)."""
    start = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
             "sys.argv = ['squash-sim', *sys.argv[1:]]; "
             "runpy.run_module('squash_sim.cli', run_name='__main__')")
    return subprocess.Popen([sys.executable, "-c", start, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_console_rejects_nan_theta_in_one_line(tmp_path):
    done = _console("intervene", "--kind", "angle", "--theta", "nan", "--out", str(tmp_path))
    _, err = done.communicate(timeout=120)
    assert done.returncode == 2 and len(err.strip().splitlines()) == 1 and "--theta" in err


def test_sigint_keeps_whole_files_and_says_so(tmp_path):
    """Ctrl-C during the report: exit 130, one line naming what was kept, no traceback; every
    file left behind is whole (CSV and JSON parse) and no temporary file remains."""
    out = tmp_path / "report"
    run = _console_at_a_terminal("report", "--size", "smoke", "--no-claims", "--out", str(out))
    deadline = time.monotonic() + 240
    while not (out / "figure10.json").exists() and run.poll() is None:
        assert time.monotonic() < deadline, "the report wrote nothing in 240 s"
        time.sleep(0.1)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    last = err.strip().splitlines()[-1]
    assert "interrupted" in last and "figure10.json" in last, last
    # The resumable report's own bookkeeping (squash_sim/resume.py) is the only hidden state: the
    # section records (whole JSON) and the staging area of the section that was cut, which the
    # next run discards; no temporary file beside the results.
    kept = [p for p in out.iterdir() if p.name not in (".sections", ".staging")]
    assert kept and not [p for p in kept if p.name.startswith(".")]
    for record in (out / ".sections").glob("*.json"):
        json.loads(record.read_text())
    for path in kept:
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".csv":
            assert list(csv.DictReader(open(path)))


def tally() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        counts = {"tried": 0, "clear": 0, "unclear": 0, "silent": 0, "not clear": []}
        for i, (line, name) in enumerate(BAD):
            case = Path(tmp) / str(i)
            case.mkdir()
            verdict, message = classify(line, name, case)
            counts["tried"] += 1
            counts[verdict] += 1
            if verdict != "clear":
                counts["not clear"].append(f"{line} → {verdict}: {message[-160:]}")
    return counts


if __name__ == "__main__":
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    result = tally()
    print(f"cli            tried {result['tried']:3}  clear {result['clear']:3}  unclear "
          f"{result['unclear']:3}  silent {result['silent']:3}")
    for line in result["not clear"] if "-v" in sys.argv else ():
        print("    " + line)


def test_a_dropped_ctrl_c_still_stops_the_run():
    """A KeyboardInterrupt that a library swallowed (e.g. inside JAX's garbage-collection
    callback) leaves only the CLI's flag: the report's next progress line raises it again, and a
    command that finishes anyway still ends as interrupted."""
    from squash_sim import cli
    from squash_sim.resume import _Progress

    bar = _Progress([("figure10", 1.0)], interrupted=lambda: True)
    try:
        with pytest.raises(KeyboardInterrupt):
            bar.note("report: step 2/9 figure8")
    finally:
        bar.close()
    # As at a terminal (a background pytest runs with SIGINT ignored; the CLI then installs none).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt), cli._catch_interrupts():
            cli._INTERRUPTED.append(True)  # what the SIGINT handler leaves behind
    finally:
        signal.signal(signal.SIGINT, previous)
    assert not cli._INTERRUPTED  # cleared for the next command in the same process
