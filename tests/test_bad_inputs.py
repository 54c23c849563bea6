"""Bad input gets a clear error before any work; borderline-valid input a finite, correct result.

A clear error is a TypeError/ValueError whose message names the argument and leaks nothing of
the machinery (no traceback, tracer, XLA or NumPy text). The tables below are the explicit cases,
one or more per public function; the Hypothesis tests fuzz the same surface. `python
tests/test_bad_inputs.py` prints the tally docs/bad_inputs.md records (clear / unclear / silent).
"""

from __future__ import annotations

import math  # noqa: F401  (the BAD table uses it)
import os
import stat
import sys

import jax
import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

# Names the BAD table's calls use (evaluated in this module's namespace).
from squash_sim import FloatFormat, Precision, floats, forward, init_params, presets, results  # noqa: F401
from squash_sim import interventions as iv
from squash_sim import precision as precision_lib  # noqa: F401
from squash_sim.experiments import (  # noqa: F401
    attention_collapse,
    capitals,
    collapse,
    counting,
    precision_collapse,
    real_collapse,
    real_tasks,
    remedies,
    sensitivity,
    softmax_tv,
)
from squash_sim.floats import round_to, spacing

# Words that mean a library's or the compiler's message reached the user instead of ours.
LEAKS = ("Traceback", "Tracer", "tracer", "jaxpr", "XLA", "HloModule", "ShapedArray",
         "inhomogeneous", "Cannot determine dtype", "not a valid JAX", "broadcast",
         "could not convert", "object is not", "__str__", "unsupported operand", "out of bounds")

# Shared with tests/test_interventions.py (same shapes: its compiled programs are reused).
CONFIG = presets.get("tiny").replace(n_layers=3)
PARAMS = init_params(CONFIG, jax.random.key(0))
TOKENS = np.random.default_rng(0).integers(0, 256, 16).astype(np.int32)
BATCH = np.stack([TOKENS, np.roll(TOKENS, 3)])  # (2, 16)
KEY = jax.random.key(7)
SRC = np.ones(CONFIG.d_model, np.float32)
MODEL = (PARAMS, CONFIG)
TINY = presets.get("tiny")


def _sweep(**kw):
    from squash_sim.interventions import sweep  # documented name (moved to analysis/sweep.py)

    return sweep(MODEL, BATCH, **{"kind": "random", **kw})


NAMESPACE = dict(globals())

# (area, call, the argument the message must name). Each call must raise TypeError/ValueError.
BAD = [
    # floats
    ("floats", 'round_to("1.0", "bf16")', "x"),
    ("floats", 'round_to(None, "bf16")', "x"),
    ("floats", 'round_to([[1.0], [2.0, 3.0]], "bf16")', "x"),
    ("floats", 'round_to(["a"], "bf16")', "x"),
    ("floats", 'round_to(object(), "bf16")', "x"),
    ("floats", 'round_to(True, "bf16")', "x"),
    ("floats", 'round_to(np.arange(3), "bf16")', "x"),
    ("floats", 'round_to(1 + 2j, "bf16")', "x"),
    ("floats", 'round_to(1.0, None)', "fmt"),
    ("floats", 'round_to(1.0, 5)', "fmt"),
    ("floats", 'round_to(1.0, "bf17")', "fmt"),
    ("floats", 'spacing("1.0", "bf16")', "x"),
    ("floats", 'spacing([1, 2], "bf16")', "x"),
    ("floats", 'spacing(1.0, "e0m3")', "exponent_bits"),
    ("floats", 'FloatFormat(4, 3, name=5)', "name"),
    ("floats", 'FloatFormat("4", 3)', "exponent_bits"),
    ("floats", 'FloatFormat(4, 0)', "mantissa_bits"),
    ("floats", 'FloatFormat(12, 3)', "exponent_bits"),
    ("floats", 'FloatFormat(4, 3, bias="x")', "bias"),
    ("floats", 'FloatFormat(4, 3, bias=10**6)', "bias"),
    ("floats", 'FloatFormat(4, 3, nan="maybe", inf=False)', "nan"),
    ("floats", 'FloatFormat(4, 3, inf="yes")', "inf"),
    ("floats", 'FloatFormat(4, 3, saturate=1)', "saturate"),
    ("floats", 'FloatFormat(4, 3, inf=True, nan="fn")', "inf"),
    ("floats", 'floats.get(None)', "float format"),
    ("floats", 'floats.get("e99m3")', "exponent_bits"),
    # precision
    ("precision", 'Precision(params="nope")', "params"),
    ("precision", 'Precision(activations=3)', "activations"),
    ("precision", 'Precision(name=5)', "name"),
    ("precision", 'Precision(compute_dtype="float16")', "compute_dtype"),
    ("precision", 'precision_lib.get(None)', "precision"),
    ("precision", 'precision_lib.get("bf17")', "precision"),
    # interventions
    ("interventions", 'iv.inject(0, SRC, None)', "position"),
    ("interventions", 'iv.inject(0, np.full(64, np.nan), 1)', "source"),
    ("interventions", 'iv.inject(0, "abc", 1)', "source"),
    ("interventions", 'iv.inject(0, np.ones((2, 2, 64)), 1)', "source"),
    ("interventions", 'forward(PARAMS, BATCH, CONFIG, intervention=iv.inject(0, '
                      'np.ones((3, 64)), 1))', "source"),
    ("interventions", 'forward(PARAMS, BATCH, CONFIG, intervention=iv.inject(0, '
                      'np.ones(63), 1))', "d_model"),
    ("interventions", 'iv.angle(0, KEY, float("nan"))', "theta"),
    ("interventions", 'iv.angle(0, KEY, math.inf)', "theta"),
    ("interventions", 'iv.angle(0, KEY, "x")', "theta"),
    ("interventions", 'iv.angle(0, KEY, None)', "theta"),
    ("interventions", 'iv.angle(0, KEY, 1e300)', "theta"),
    ("interventions", 'iv.inject(0, np.full(64, 1e39), 1)', "source"),
    ("interventions", 'forward(PARAMS, TOKENS, CONFIG, intervention=iv.angle(0, KEY, '
                      '[1.0, 2.0]))', "theta"),
    ("interventions", 'iv.random(0, KEY, window=0)', "window"),
    ("interventions", 'iv.random(0, KEY, window=-2)', "window"),
    ("interventions", 'iv.skip_attention(0, window=0)', "window"),
    ("interventions", 'iv.random(0, None)', "key"),
    ("interventions", 'iv.random(0, 5)', "key"),
    ("interventions", 'iv.random(0, "k")', "key"),
    ("interventions", 'forward(PARAMS, TOKENS, CONFIG, intervention=iv.random(0, '
                      'jax.random.split(KEY, 2)))', "key"),
    ("interventions", 'iv.random(1.0, KEY)', "layer"),
    ("interventions", 'iv.random("1", KEY)', "layer"),
    ("interventions", 'iv.random(2**40, KEY)', "layer"),
    ("interventions", 'forward(PARAMS, TOKENS, CONFIG, intervention=iv.random(4, KEY))', "layer"),
    ("interventions", 'forward(PARAMS, TOKENS, CONFIG, intervention=iv.freeze(0))', "layer"),
    ("interventions", 'forward(PARAMS, TOKENS, CONFIG, intervention=iv.skip_attention(3))',
     "layer"),
    ("interventions", 'forward(PARAMS, TOKENS, CONFIG, intervention=iv.random(0, KEY, '
                      'position=16))', "position"),
    ("interventions", 'forward(PARAMS, TOKENS, CONFIG, intervention=iv.random(0, KEY, '
                      'position=[1, 2]))', "position"),
    ("interventions", 'forward(PARAMS, BATCH, CONFIG, intervention=iv.random(0, KEY, '
                      'last=[1, 2, 3]))', "last"),
    ("interventions", 'iv.random(0, KEY, last=[0.5])', "last"),
    ("interventions", 'iv.random(0, KEY, exclude_bos="no")', "exclude_bos"),
    ("interventions", 'iv.freeze(1, form="x")', "form"),
    ("interventions", 'iv.freeze(1, form="kv", window=2)', "window"),
    ("interventions", 'forward(PARAMS, TOKENS, CONFIG, intervention=iv.freeze(1, window=1))',
     "clean"),
    ("interventions", 'forward(PARAMS, TOKENS, CONFIG, intervention=iv.freeze(1, window=1, '
                      'clean=np.zeros((2, 3))))', "clean"),
    ("interventions", 'iv.freeze(1, window=1, clean=np.full((4, 16, 64), np.nan))', "clean"),
    ("interventions", 'forward(PARAMS, TOKENS, CONFIG, intervention="random")', "intervention"),
    # the sweep (every case fails before the clean run is traced)
    ("sweep", '_sweep(seeds=())', "seeds"),
    ("sweep", '_sweep(seeds=(-1,))', "seeds"),
    ("sweep", '_sweep(seeds=(2**40,))', "seeds"),
    ("sweep", '_sweep(seeds=(0.5,))', "seeds"),
    ("sweep", '_sweep(seeds=None)', "seeds"),
    ("sweep", '_sweep(layers=())', "layers"),
    ("sweep", '_sweep(layers=[9])', "layers"),
    ("sweep", '_sweep(kind="freeze", layers=[0])', "layers"),
    ("sweep", '_sweep(kind="angle", theta=float("nan"))', "theta"),
    ("sweep", '_sweep(kind="angle", theta="x")', "theta"),
    ("sweep", '_sweep(answers=[999, 1])', "answers"),
    ("sweep", '_sweep(answers=[1])', "answers"),
    ("sweep", '_sweep(answers="ab")', "answers"),
    ("sweep", '_sweep(last=[1])', "last"),
    ("sweep", '_sweep(last=[3, 16])', "last"),
    ("sweep", '_sweep(window=0)', "window"),
    ("sweep", '_sweep(kind="angle", window=2)', "window"),
    ("sweep", '_sweep(kind="freeze", form="kv", window=2)', "window"),
    ("sweep", '_sweep(kind="freeze", form="x")', "form"),
    ("sweep", '_sweep(kind=None)', "kind"),
    ("sweep", '_sweep(kind="inject")', "kind"),
    ("sweep", '_sweep(exclude_bos="x")', "exclude_bos"),
    ("sweep", '_sweep(precision="bf17")', "precision"),
    ("sweep", 'iv.sweep(None, BATCH, kind="random")', "model"),
    ("sweep", 'iv.sweep((PARAMS, "tiny"), BATCH, kind="random")', "config"),
    ("sweep", 'iv.sweep(MODEL, [], kind="random")', "prompts"),
    ("sweep", 'iv.sweep(MODEL, ["a"], kind="random")', "prompts"),
    ("sweep", 'iv.sweep(MODEL, BATCH + 300, kind="random")', "token ids"),
    # experiments
    ("experiments", 'collapse.run(None)', "config"),
    ("experiments", 'collapse.run("tiny")', "config"),
    ("experiments", 'collapse.run(TINY, max_len=1e3)', "max_len"),
    ("experiments", 'collapse.run(TINY, max_len=0)', "max_len"),
    ("experiments", 'collapse.run(TINY, max_len=4, prompt_len=-1)', "prompt_len"),
    ("experiments", 'collapse.run(TINY, max_len=4, seed=-1)', "seed"),
    ("experiments", 'collapse.run(TINY, max_len=4, seed=2**64)', "seed"),
    ("experiments", 'collapse.run(TINY, max_len=4, pattern=5)', "pattern"),
    ("experiments", 'collapse.run(TINY, max_len=4, pattern="2")', "pattern"),
    ("experiments", 'collapse.run(TINY, "bf17", max_len=4)', "precision"),
    ("experiments", 'collapse.run(TINY, max_len=4, keep_outputs="yes")', "keep_outputs"),
    ("experiments", 'collapse.make_sequence(None, 4, 2, 0)', "config"),
    ("experiments", 'attention_collapse.run(None)', "positional_encoding"),
    ("experiments", 'attention_collapse.run("spiral")', "positional_encoding"),
    ("experiments", 'attention_collapse.run("none", "abc")', "ns"),
    ("experiments", 'attention_collapse.run("none", [])', "ns"),
    ("experiments", 'attention_collapse.run("none", [1.5])', "ns"),
    ("experiments", 'attention_collapse.run("none", [2], seeds=0)', "seeds"),
    ("experiments", 'attention_collapse.run("none", [2], d=0)', "d"),
    ("experiments", 'attention_collapse.run("none", [2], variance="2")', "variance"),
    ("experiments", 'attention_collapse.run("none", [2], window=0)', "window"),
    ("experiments", 'counting.run(None)', "n0"),
    ("experiments", 'counting.run(1, 0)', "n1"),
    ("experiments", 'counting.run(scales="ab")', "scales"),
    ("experiments", 'counting.run(seeds=1.0)', "seeds"),
    ("experiments", 'precision_collapse.run("tiny")', "config"),
    ("experiments", 'precision_collapse.run(named=["bf17"])', "named"),
    ("experiments", 'precision_collapse.run(named="bf16")', "named"),
    ("experiments", 'precision_collapse.run(mantissa_bits=[0])', "mantissa_bits"),
    ("experiments", 'precision_collapse.run(max_len=-1)', "max_len"),
    ("experiments", 'precision_collapse.sum_of_ones(0)', "count"),
    ("experiments", 'remedies.run(5)', "base"),
    ("experiments", 'remedies.run(max_len="9")', "max_len"),
    ("experiments", 'sensitivity.profile(None)', "setting"),
    ("experiments", 'sensitivity.profile("melted")', "setting"),
    ("experiments", 'sensitivity.profile(n=0)', "n"),
    ("experiments", 'sensitivity.depth_sweep(depths=[])', "depths"),
    ("experiments", 'softmax_tv.run(seeds=0)', "seeds"),
    ("experiments", 'softmax_tv.run(None)', "ns"),
    ("experiments", 'softmax_tv.run([2])', "k"),
    ("experiments", 'softmax_tv.tv(10, 0, perturbation=math.nan)', "perturbation"),
    ("experiments", 'softmax_tv.tv(0, 0)', "n"),
    ("experiments", 'real_collapse.run(None, "copy")', "model"),
    ("experiments", 'real_tasks.greedy(None, ["a"], 1)', "model"),
    ("experiments", 'real_tasks.copy_task(None)', "model"),
    ("experiments", 'real_tasks.count_task(None)', "model"),
    ("experiments", 'real_tasks.sensitivity_profile(None, "a")', "model"),
    ("experiments", 'capitals.build_set(None)', "model"),
    ("experiments", 'capitals.sweeps(PARAMS, CONFIG, None)', "capital_set"),
    ("experiments", 'capitals.switch(PARAMS, CONFIG, None)', "capital_set"),
    # results
    ("results", 'results.write_csv(None, [])', "path"),
    ("results", 'results.write_csv("/tmp", [{"a": 1}])', "path"),
    ("results", 'results.write_csv("x.csv", None)', "rows"),
    ("results", 'results.write_csv("x.csv", [1, 2])', "rows"),
    ("results", 'results.write_text("x.txt", 5)', "text"),
    ("results", 'results.write_figure("x.png", None)', "figure"),
]


def classify(call: str, name: str, namespace=None) -> tuple[str, str]:
    """('clear' | 'unclear' | 'silent', the message) for one bad input."""
    try:
        eval(call, namespace or NAMESPACE)  # noqa: S307 (our own table)
    except (TypeError, ValueError) as err:
        message = str(err)
        leaked = [w for w in LEAKS if w in message]
        if name.lower() not in message.lower() or leaked:
            return "unclear", f"{type(err).__name__}: {message}"
        return "clear", message
    except Exception as err:  # noqa: BLE001
        return "unclear", f"{type(err).__name__}: {err}"
    return "silent", "no error"


@pytest.mark.parametrize("area, call, name", BAD, ids=[c for _, c, _ in BAD])
def test_bad_input_gets_a_clear_error(area, call, name):
    verdict, message = classify(call, name)
    assert verdict == "clear", f"{call}: {verdict}: {message}"


# -- borderline-valid inputs: finite, correct results -------------------------------------------

def test_round_to_takes_lists_and_edge_values_like_ml_dtypes():
    edge = [0.0, -0.0, 1.0, 3.3895314e38, 1e-45, -1e-40, 65504.0, 65520.0, 2.0**-24]
    for fmt, dtype in (("bf16", ml_dtypes.bfloat16), ("fp16", np.float16),
                       ("fp8_e4m3fn", ml_dtypes.float8_e4m3fn)):
        with np.errstate(over="ignore"):  # fp32 max overflows fp16/fp8: expected, inf/NaN
            expected = np.asarray(edge, np.float32).astype(dtype).astype(np.float32)
        got = np.asarray(round_to(edge, fmt))  # a plain list: taken as float32
        assert got.dtype == np.float32
        assert np.array_equal(got.view(np.uint32), expected.view(np.uint32)), fmt
        assert np.array_equal(np.asarray(round_to(tuple(edge), fmt)).view(np.uint32),
                              got.view(np.uint32))
    assert float(spacing([1.0], "bf16")[0]) == 2.0**-7


def test_smallest_valid_sizes_give_finite_correct_results():
    result = collapse.run(TINY.replace(positional="none"), max_len=1, prompt_len=0)
    assert result.n.tolist() == [1] and np.isfinite(result.l1).all()
    assert precision_collapse.sum_of_ones(1) == 1.0
    assert precision_collapse.sum_of_ones(300, "bf16") == 256.0  # stalls at 2^8 (independent)
    tv = softmax_tv.run([2], seeds=1, k=1).tv  # n = k + 1: the smallest n the lemma allows
    assert tv.shape == (1, 1) and 0 < tv[0, 0] < 2  # ‖p − p*‖₁ of distinct softmaxes: (0, 2)


def test_sweep_at_theta_zero_and_the_largest_seed_changes_nothing():
    """θ = 0 rotates by nothing (cos 0 · h + sin 0 · r⊥ = h), whatever the seed, here the top of
    the uint32 range: KL 0 (to float32 rounding between two compiled programs), top-1 agrees."""
    result = _sweep(kind="angle", theta=0.0, seeds=(2**32 - 1,), layers=[0, CONFIG.n_layers])
    assert result.kl.shape == (2, 1, 2)
    assert np.all(np.abs(result.kl) < 1e-6) and np.all(result.top1_agrees)


def test_inject_of_a_batch_of_clean_states_is_the_identity():
    clean = forward(PARAMS, BATCH, CONFIG)
    out = forward(PARAMS, BATCH, CONFIG, intervention=iv.inject(1, clean.hidden[:, 1, 0], 0))
    assert np.array_equal(out.final, clean.final)


def test_written_files_respect_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        path = results.write_csv(tmp_path / "a.csv", [{"x": 1}])
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # 0666 & ~027; mkstemp alone gives 0600
    assert path.read_text() == "x\n1\n"


# -- Hypothesis ----------------------------------------------------------------------------------

NOT_FLOATS = st.one_of(st.text(max_size=5), st.none(), st.booleans(), st.integers(),
                       st.lists(st.text(max_size=2), min_size=1, max_size=3),
                       st.lists(st.integers(), min_size=1, max_size=3),
                       st.dictionaries(st.text(max_size=2), st.integers(), max_size=2))


@settings(max_examples=60)
@given(NOT_FLOATS)
def test_round_to_rejects_anything_but_floats_naming_x(x):
    with pytest.raises(TypeError, match=r"round_to: x must be"):
        round_to(x, "bf16")


@settings(max_examples=40)
@given(st.lists(st.floats(width=32), min_size=1, max_size=8))
def test_round_to_on_any_float_list_matches_ml_dtypes(values):
    expected = np.asarray(values, np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)
    got = np.asarray(round_to(values, "bf16"))
    same = (got.view(np.uint32) == expected.view(np.uint32)) | (np.isnan(got) & np.isnan(expected))
    assert same.all()


FIELD_VALUES = st.one_of(st.integers(-3, 60), st.text(max_size=2), st.none(), st.booleans(),
                         st.floats(allow_nan=False, width=16))


@settings(max_examples=80)
@given(e=FIELD_VALUES, m=FIELD_VALUES, bias=st.one_of(st.none(), st.integers(-300, 300),
                                                      st.text(max_size=2)),
       nan=st.sampled_from([None, "ieee", "fn", "fnuz", "none", "x", 3]), inf=st.booleans(),
       name=st.one_of(st.none(), st.text(max_size=4), st.integers()))
def test_float_format_is_valid_or_names_the_field(e, m, bias, nan, inf, name):
    fields = ("exponent_bits", "mantissa_bits", "bias", "nan", "inf", "name")
    try:
        fmt = FloatFormat(e, m, bias=bias, inf=inf, nan=nan, name=name)
    except (TypeError, ValueError) as err:
        assert str(err).startswith("FloatFormat:") and any(f in str(err) for f in fields), err
        return
    assert isinstance(str(fmt), str) and isinstance(repr(fmt), str) and fmt.max > 0
    assert float(round_to(0.0, fmt)) == 0.0  # zero is in every format
    if fmt.emin <= 0 <= fmt.emax:
        assert float(round_to(1.0, fmt)) == 1.0


@settings(max_examples=60)
@given(theta=st.one_of(st.floats(), st.text(max_size=3), st.none(), st.booleans()))
def test_angle_theta_is_finite_or_named(theta):
    if isinstance(theta, float) and abs(theta) <= float(np.finfo(np.float32).max):  # as stored
        assert np.isfinite(iv.angle(1, KEY, theta).theta)
        return
    with pytest.raises((TypeError, ValueError), match="theta"):
        iv.angle(1, KEY, theta)


@settings(max_examples=60)
@given(layer=st.integers(-2**45, 2**45), window=st.one_of(st.none(), st.integers(-3, 3)))
def test_layer_and_window_are_in_range_or_named(layer, window):
    try:
        intervention = iv.random(layer, KEY, window=window, clean=None if window is None else
                                 np.zeros((1, CONFIG.n_layers + 1, 16, CONFIG.d_model)))
        intervention.check(CONFIG, batch=1, n=16)
    except ValueError as err:
        named = {"layer"} if not 0 <= layer <= CONFIG.n_layers else set()
        named |= {"window"} if window is not None and window < 1 else set()
        assert any(name in str(err) for name in named), err
        return
    assert 0 <= layer <= CONFIG.n_layers and (window is None or window >= 1)


@settings(max_examples=40)
@given(seeds=st.lists(st.one_of(st.integers(-2**40, -1), st.integers(2**32, 2**70),
                                st.floats(), st.text(max_size=2)), max_size=3))
def test_sweep_rejects_bad_seeds_before_any_work(seeds):
    with pytest.raises((TypeError, ValueError), match="seeds"):
        _sweep(seeds=seeds)


@settings(max_examples=40)
@given(max_len=st.one_of(st.integers(-10, 0), st.floats(), st.text(max_size=2), st.none()),
       seed=st.one_of(st.integers(0, 3), st.integers(2**63, 2**80), st.integers(-50, -1)))
def test_collapse_run_names_max_len_or_seed(max_len, seed):
    with pytest.raises((TypeError, ValueError), match="max_len|seed"):
        collapse.run(TINY, max_len=max_len, seed=seed)


def tally(cases=BAD, namespace=None) -> dict:
    """area → {'tried', 'clear', 'unclear', 'silent', 'examples'} (docs/bad_inputs.md)."""
    out: dict = {}
    for area, call, name in cases:
        verdict, message = classify(call, name, namespace)
        row = out.setdefault(area, {"tried": 0, "clear": 0, "unclear": 0, "silent": 0,
                                    "not clear": []})
        row["tried"] += 1
        row[verdict] += 1
        if verdict != "clear":
            row["not clear"].append(f"{call} → {verdict}: {message[:100]}")
    return out


if __name__ == "__main__":
    for area, row in tally().items():
        print(f"{area:14} tried {row['tried']:3}  clear {row['clear']:3}  unclear "
              f"{row['unclear']:3}  silent {row['silent']:3}")
        for line in row["not clear"] if "-v" in sys.argv else ():
            print("    " + line)
