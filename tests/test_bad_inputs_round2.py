"""The second round of hostile inputs (issue 23): the testing helpers, the strategies, the precision
grammar, the loaders' fields and caches. Each BAD row must raise TypeError/ValueError naming the
argument (the same `classify` as tests/test_bad_inputs.py); each case is refused before any work,
so the table costs milliseconds."""

from __future__ import annotations

import numpy as np
import pytest
from test_bad_inputs import CONFIG, PARAMS, TOKENS, classify  # noqa: F401  (BAD uses them)

from squash_sim import models  # noqa: F401
from squash_sim import precision as precision_lib
from squash_sim import strategies as sst
from squash_sim import testing as helpers  # noqa: F401
from squash_sim.accumulate import Accumulation
from squash_sim.checkpoints import gguf as gguf_loader  # noqa: F401
from squash_sim.checkpoints import safetensors_dir  # noqa: F401

NAN = float("nan")
LONG = "bf16-pure+block" + "9" * 5000
NAMESPACE = dict(globals())

BAD = [
    # squash_sim.testing: NaN tolerances would make every comparison pass; max_len=0 was read
    # as "the default"
    ("testing", 'helpers.assert_prefix_property(PARAMS, CONFIG, TOKENS, rtol=NAN)', "rtol"),
    ("testing", 'helpers.assert_prefix_property(PARAMS, CONFIG, TOKENS, rtol=-1.0)', "rtol"),
    ("testing", 'helpers.assert_prefix_property(PARAMS, CONFIG, TOKENS, rtol="1e-5")', "rtol"),
    ("testing", 'helpers.assert_prefix_property(PARAMS, CONFIG, TOKENS, rtol=True)', "rtol"),
    ("testing", 'helpers.assert_sensitivity_bound(PARAMS, CONFIG, None, rtol=NAN)', "rtol"),
    ("testing", 'helpers.assert_sensitivity_bound(PARAMS, CONFIG, None, rtol=float("inf"))',
     "rtol"),
    ("testing", 'helpers.assert_collapse_length_within(PARAMS, CONFIG, 1, 2, max_len=0)',
     "max_len"),
    ("testing", 'helpers.assert_collapse_length_within(PARAMS, CONFIG, 1, 2, max_len=2.5)',
     "max_len"),
    ("testing", 'helpers.assert_collapse_length_within(PARAMS, CONFIG, 1.5, 2)', "low"),
    ("testing", 'helpers.assert_collapse_length_within(PARAMS, CONFIG, True, 2)', "low"),
    ("testing", 'helpers.assert_no_collapse_before(PARAMS, CONFIG, 4, prompt_len=-1)',
     "prompt_len"),
    ("testing", 'helpers.assert_no_collapse_before(PARAMS, CONFIG, 4, seed=-1)', "seed"),
    ("testing", 'helpers.assert_no_collapse_before(PARAMS, CONFIG, 4, pattern="")', "pattern"),
    ("testing", 'helpers.assert_no_collapse_before(PARAMS, CONFIG, np.float64(4))', "n"),
    # strategies: flags must be bools ("no" is truthy), numbers finite
    ("strategies", 'sst.float_formats(named="no")', "named"),
    ("strategies", 'sst.float_formats(named=None)', "named"),
    ("strategies", 'sst.causal_attention_matrices(sparse="no")', "sparse"),
    ("strategies", 'sst.causal_attention_matrices(sparse=1)', "sparse"),
    ("strategies", 'sst.bounded_vectors(low=NAN)', "low"),
    ("strategies", 'sst.bounded_vectors(high=np.float32("inf"))', "high"),
    ("strategies", 'sst.bounded_vectors(low=True)', "low"),
    ("strategies", 'sst.bounded_vectors(low=10**5000)', "low"),
    ("strategies", 'sst.float32_arrays(size=2.0)', "size"),
    ("strategies", 'sst.collapse_pairs(lengths=(np.float64(2),))', "lengths"),
    # the precision grammar: the policy string and the allowed forms, never Python's text
    ("precision", 'precision_lib.get("bf16-pure+block²")', "bf16-pure+block²"),
    ("precision", 'precision_lib.get("bf16-pure+block٣")', "block<K>"),
    ("precision", 'precision_lib.get(LONG)', "block<K>"),
    ("precision", 'precision_lib.get("bf16-pure+block0")', "block<K>"),
    ("precision", 'precision_lib.get("fp64-pure")', "fp64-pure"),
    ("precision", 'precision_lib.get("e11m10")', "float32 container"),
    ("precision", 'precision_lib.get("bf16-pure+kahan/fp64")', "bf16-pure+kahan/fp64"),
    ("precision", 'precision_lib.Precision.pure("fp64")', "fp64"),
    ("precision", 'Accumulation("blocked", block=np.float64(4))', "block"),
    # checkpoint paths: named shortened, before anything is opened
    ("loaders", 'models.load("a" * 5000)', "model"),
    ("loaders", 'models.load("x" + chr(0) + "y")', "NUL"),
    ("loaders", 'gguf_loader.load("/tmp/" + "b" * 300, cache=False)', "path"),
    ("loaders", 'gguf_loader.load("/dev/zero", cache=False)', "regular file"),
    ("loaders", 'gguf_loader.load("x.gguf", cache="no")', "cache"),
    ("loaders", 'safetensors_dir.load("x" + chr(0) + "y")', "folder"),
]


@pytest.mark.parametrize("area, call, name", BAD, ids=[c[:70] for _, c, _ in BAD])
def test_bad_input_gets_a_clear_error(area, call, name):
    verdict, message = classify(call, name, NAMESPACE)
    assert verdict == "clear", f"{call}: {verdict}: {message}"
    assert len(message) < 700 and "Exceeds the limit" not in message, message


def test_borderline_valid_helper_and_grammar_arguments_are_accepted():
    assert Accumulation("blocked", block=np.int64(4)).block == 4
    assert type(Accumulation("blocked", block=np.int64(4)).block) is int
    assert str(precision_lib.get("bf16-pure+block1048576")) == "bf16-pure+block1048576"
    assert precision_lib.get("fp64").compute_dtype == "float64"
    sst.bounded_vectors(low=np.float32(-1), high=np.int64(2))  # NumPy scalars are numbers
    sst.collapse_pairs(lengths=(np.int64(2),), widths=(np.int32(4),))
    sst.float_formats(named=np.bool_(False))


# -- the command line: absurd paths and unusable checkpoints, one line before any work ------------

A = "a" * 5000
B = "b" * 300
CLI_BAD = [
    (f"collapse --out {A}", "--out"),
    (f"collapse --out {{dir}}/{B}/x", "--out"),
    (f"report --size smoke --out {{dir}}/{B}", "--out"),
    (f"real collapse --model {A} --out {{out}}", "--model"),
    (f"real tasks --model {{dir}}/{B} --out {{out}}", "--model"),
    ("real tasks --model {dir} --out {out}", "tokenizer.json"),  # no checkpoint files at all
    (f"check --replay {A}", "--replay"),
    ("collapse --precision fp64-pure --out {out}", "--precision"),
    ("collapse --precision bf16-pure+block² --out {out}", "--precision"),
]


@pytest.mark.parametrize("line, name", CLI_BAD, ids=[line[:60] for line, _ in CLI_BAD])
def test_absurd_paths_and_unusable_models_exit_2_in_one_line(line, name, tmp_path):
    from test_bad_inputs_cli import classify as classify_cli

    verdict, message = classify_cli(line, name, tmp_path)
    assert verdict == "clear", f"squash-sim {line[:80]}: {verdict}: {message}"
    assert len(message) < 600, message


def test_a_fifo_or_a_folder_without_a_tokenizer_is_refused_before_work(tmp_path):
    import os

    from test_bad_inputs_cli import run_main

    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    code, _, err = run_main(["real", "tasks", "--model", str(fifo), "--out", str(tmp_path / "o")])
    assert code == 2 and "not a regular file" in err and len(err.strip().splitlines()) == 1
    folder = tmp_path / "hf"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        (folder / name).write_text("{}")
    code, _, err = run_main(["real", "tasks", "--model", str(folder), "--out", str(tmp_path / "o")])
    assert code == 2 and "tokenizer.json" in err and not (tmp_path / "o").exists()
