"""Accumulation models (squash_sim.accumulate) against independent exact references.

The references below are plain Python: Fractions for exact sums and products, tests/exact_rounder
for rounding, and the XLA:CPU float32 rules written out (subnormal operands read as zero, subnormal
results flushed to a signed zero). Each mode's order is re-implemented from its definition in the
accumulate docstring (pairwise recursively, not by padding), never by calling squash_sim.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import types
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from exact_rounder import exact_round
from hypothesis import given, settings
from hypothesis import strategies as st

from squash_sim import accumulate, floats, presets
from squash_sim.accumulate import Accumulation, accumulated_einsum, accumulated_sum
from squash_sim.model import forward, init_params, traceable_forward
from squash_sim.precision import Precision
from squash_sim.precision import get as get_precision

FORMATS = {"fp32": floats.FP32, "bf16": floats.BF16, "fp16": floats.FP16,
           "fp8_e4m3fn": floats.FP8_E4M3FN, "fp8_e5m2": floats.FP8_E5M2}
K = 23  # terms per test vector: not a power of two, and 23 = 5 blocks of 4 + 3
BLOCK = 4
MODES = {"sequential": Accumulation(), "pairwise": Accumulation("pairwise"),
         "kahan": Accumulation("kahan"), "blocked": Accumulation("blocked", block=BLOCK)}
F32_TINY = Fraction(2) ** -126


# ---- the reference arithmetic -------------------------------------------------------------------


def spec(fmt: floats.FloatFormat) -> dict:
    return dict(e=fmt.exponent_bits, m=fmt.mantissa_bits, bias=fmt.bias, nan=fmt.nan,
                subnormals=fmt.subnormals, saturate=fmt.saturate)


def to_fmt(x: float, fmt) -> float:
    return exact_round(x, **spec(fmt))


def flush(x: float) -> float:
    """XLA:CPU reads float32 subnormals as zero and writes zero for them (signed)."""
    if math.isfinite(x) and x != 0 and abs(Fraction(x)) < F32_TINY:
        return math.copysign(0.0, x)
    return x


def f32(exact: Fraction, sign_of_zero: float) -> float:
    """The float32 result of an operation with this exact value, tininess after rounding."""
    if exact == 0:
        return sign_of_zero
    wide = exact_round(exact, e=11, m=23, bias=1023, nan="ieee", subnormals=True,
                       saturate=False)  # 24 significant bits, exponent unbounded for our range
    if abs(Fraction(wide)) < F32_TINY:
        return math.copysign(0.0, wide)
    return exact_round(wide, e=8, m=23, bias=127, nan="ieee", subnormals=True, saturate=False)


def add(a: float, b: float, fmt) -> float:
    """fmt(a + b) as squash_sim defines it: a float32 addition, then round_to."""
    a, b = flush(a), flush(b)
    if math.isnan(a) or math.isnan(b):
        return math.nan
    if math.isinf(a) or math.isinf(b):
        value = a + b  # inf + −inf is NaN; inf + finite is inf
    else:
        both_negative_zero = a == 0 and b == 0 and math.copysign(1, a) < 0 and math.copysign(1, b) < 0
        value = f32(Fraction(a) + Fraction(b), -0.0 if both_negative_zero else 0.0)
    return to_fmt(value, fmt)


def sub(a: float, b: float, fmt) -> float:
    return add(a, -b, fmt)


def mul(a: float, b: float, fmt) -> float:
    a, b = flush(a), flush(b)
    if math.isnan(a) or math.isnan(b) or math.isinf(a) or math.isinf(b):
        value = a * b
    else:
        negative = (math.copysign(1, a) < 0) != (math.copysign(1, b) < 0)
        value = f32(Fraction(a) * Fraction(b), -0.0 if negative else 0.0)
    return to_fmt(value, fmt)


def ref_sequential(xs, fmt):
    total = 0.0
    for x in xs:
        total = add(total, x, fmt)
    return total


def ref_pairwise(xs, fmt):
    if len(xs) == 1:
        return xs[0]
    h = 1 << (len(xs) - 1).bit_length() - 1  # the largest power of two below len(xs)
    return add(ref_pairwise(xs[:h], fmt), ref_pairwise(xs[h:], fmt), fmt)


def ref_blocked(xs, fmt, block, promote):
    total = 0.0
    for start in range(0, len(xs), block):
        partial = ref_sequential(xs[start:start + block], fmt)
        total = add(total, to_fmt(partial, promote), promote)
    return total


def ref_kahan(xs, fmt):
    total, compensation = 0.0, 0.0
    for x in xs:
        if x == 0:
            continue
        y = sub(x, compensation, fmt)
        t = add(total, y, fmt)
        compensation = sub(sub(t, total, fmt), y, fmt)
        total = t
    return total


def reference(xs, fmt, how: Accumulation):
    fmt = how.format or fmt
    if how.mode == "sequential":
        return ref_sequential(xs, fmt)
    if how.mode == "pairwise":
        return ref_pairwise(xs, fmt)
    if how.mode == "kahan":
        return ref_kahan(xs, fmt)
    return ref_blocked(xs, fmt, how.block, how.promote)


def same_bits(got, want) -> bool:
    got = np.float32(got)
    if math.isnan(want):
        return bool(np.isnan(got))
    return got.view(np.uint32) == np.float32(want).view(np.uint32)


# ---- Hypothesis vectors ---------------------------------------------------------------------


def values_of(fmt):
    """Values of fmt from every binade, subnormals and the largest finite values included."""
    p = fmt.mantissa_bits + 1
    low = fmt.emin - fmt.mantissa_bits - 1
    raw = st.builds(lambda s, m, e: s * m * 2.0 ** e, st.sampled_from([1, -1]),
                    st.integers(0, 2 ** p), st.integers(low, fmt.emax - p + 1))
    special = st.sampled_from([0.0, -0.0, fmt.smallest_subnormal, -fmt.smallest_subnormal,
                               fmt.smallest_normal, fmt.max, -fmt.max, 1.0])

    def representable(x):
        r = to_fmt(x, fmt)
        return r if math.isfinite(r) else math.copysign(fmt.max, x)

    return st.one_of(raw, special).map(representable)


def vectors(fmt, k=K):
    """k values; sometimes the second half negates the first (cancellation), sometimes all are
    near the top of the range (overflow), sometimes all tiny (subnormal partial sums)."""
    plain = st.lists(values_of(fmt), min_size=k, max_size=k)
    cancel = st.lists(values_of(fmt), min_size=k - k // 2, max_size=k - k // 2).map(
        lambda xs: xs + [-x for x in xs[: k // 2]])
    big = st.lists(st.sampled_from([fmt.max, fmt.max / 2, -fmt.max / 4, fmt.max / 8]),
                   min_size=k, max_size=k)
    tiny = st.lists(st.integers(-2 ** fmt.mantissa_bits, 2 ** fmt.mantissa_bits), min_size=k,
                    max_size=k).map(lambda ms: [m * fmt.smallest_subnormal for m in ms])
    return st.one_of(plain, cancel, big, tiny)


_sum = jax.jit(accumulated_sum, static_argnames=("axis", "fmt", "how", "keepdims"))
_einsum = jax.jit(accumulated_einsum, static_argnames=("spec", "fmt", "how"))


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", list(FORMATS))
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_sum_matches_exact_reference(name, mode, data):
    fmt, how = FORMATS[name], MODES[mode]
    xs = data.draw(vectors(fmt))
    got = _sum(jnp.asarray(xs, jnp.float32), axis=0, fmt=fmt, how=how)
    want = reference(xs, fmt, how)
    assert same_bits(got, want), (xs, float(got), want)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", ["bf16", "fp8_e4m3fn"])
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_dot_product_matches_exact_reference(name, mode, data):
    """Term k is fmt(a_k · b_k): products rounded to the accumulator format, then the reduction."""
    fmt, how = FORMATS[name], MODES[mode]
    a = data.draw(vectors(fmt))
    b = data.draw(vectors(fmt))
    got = _einsum("k,k->", jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32), fmt=fmt,
                  how=how)
    terms = [mul(x, y, how.format or fmt) for x, y in zip(a, b, strict=True)]
    want = reference(terms, fmt, how)
    assert same_bits(got, want), (a, b, float(got), want)


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_fp8_products_in_a_14_bit_accumulator_promoted_to_fp32(data):
    """fp8 e4m3fn inputs, e8m13 partial sums of 4, fp32 outer sum (the DeepSeek-V3 picture)."""
    how = Accumulation("blocked", floats.FloatFormat(8, 13), block=BLOCK)
    a = data.draw(vectors(floats.FP8_E4M3FN))
    b = data.draw(vectors(floats.FP8_E4M3FN))
    got = _einsum("k,k->", jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32),
                  fmt=floats.FP8_E4M3FN, how=how)
    terms = [mul(x, y, how.format) for x, y in zip(a, b, strict=True)]
    assert same_bits(got, reference(terms, floats.FP8_E4M3FN, how))


def test_pairwise_in_chunks_is_the_same_tree(monkeypatch):
    """A contraction too big for one chunk is summed as subtrees, then a tree of their sums: the
    same tree. Checked per output element against the recursive reference."""
    monkeypatch.setattr(accumulate, "CHUNK_ELEMENTS", 8)  # 2 outputs → chunks of 4 terms
    rng = np.random.default_rng(1)
    a = np.asarray([to_fmt(x, floats.BF16) for x in rng.standard_normal(2 * K) * 100],
                   np.float32).reshape(K, 2)
    b = np.asarray([to_fmt(x, floats.BF16) for x in rng.standard_normal(K)], np.float32)
    how = MODES["pairwise"]
    got = np.asarray(accumulated_einsum("ko,k->o", jnp.asarray(a), jnp.asarray(b), floats.BF16,
                                        how))
    for o in range(2):
        terms = [mul(float(x), float(y), floats.BF16) for x, y in zip(a[:, o], b, strict=True)]
        assert same_bits(got[o], ref_pairwise(terms, floats.BF16))


def test_a_mutated_order_is_caught():
    """The references can fail: sequential and pairwise differ on this vector, and each
    reference matches only its own mode."""
    xs = [256.0] + [1.0] * 22
    seq = np.float32(_sum(jnp.asarray(xs, jnp.float32), axis=0, fmt=floats.BF16,
                          how=MODES["sequential"]))
    tree = np.float32(_sum(jnp.asarray(xs, jnp.float32), axis=0, fmt=floats.BF16,
                           how=MODES["pairwise"]))
    assert seq == 256.0 and tree == ref_pairwise(xs, floats.BF16) == 276.0  # exact: 278
    assert not same_bits(seq, ref_pairwise(xs, floats.BF16))


@pytest.mark.parametrize("mode", list(MODES))
def test_jit_equals_eager(mode):
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.standard_normal((K, 3)) * np.exp(rng.uniform(-30, 3, (K, 3))),
                    jnp.float32)
    w = jnp.asarray(rng.standard_normal((K, 5)), jnp.float32)
    how = MODES[mode]
    for fmt in (floats.BF16, floats.FP16):
        eager = np.asarray(accumulated_einsum("kc,kd->cd", x, w, fmt, how))
        jitted = np.asarray(_einsum("kc,kd->cd", x, w, fmt=fmt, how=how))
        assert np.array_equal(eager.view(np.uint32), jitted.view(np.uint32))
        eager = np.asarray(accumulated_sum(x, 0, fmt, how))
        jitted = np.asarray(_sum(x, axis=0, fmt=fmt, how=how))
        assert np.array_equal(eager.view(np.uint32), jitted.view(np.uint32))


# ---- the policy: grammar, unchanged bits, the model -------------------------------------------


def test_grammar():
    p = get_precision("bf16-pure+pairwise")
    assert p.accumulation == floats.BF16 and p.softmax == floats.BF16
    assert p.matmul_sum == p.norm_sum == p.softmax_sum == Accumulation("pairwise")
    assert get_precision("bf16-pure+softmax:kahan").matmul_sum == Accumulation()
    assert get_precision("bf16-pure+softmax:kahan").softmax_sum == Accumulation("kahan")
    assert get_precision("bf16-pure+block32").matmul_sum == Accumulation("blocked", block=32,
                                                                         promote=floats.FP32)
    fp8 = get_precision("fp8_e4m3fn+block128")
    assert fp8.activations == floats.FP8_E4M3FN and fp8.accumulation is None
    assert fp8.matmul_sum == Accumulation("blocked", floats.FloatFormat(8, 13), block=128)
    assert fp8.sum_format("matmul") == floats.FloatFormat(8, 13)
    assert get_precision("fp8_e4m3fn+matmul:block128/bf16/fp32").matmul_sum == Accumulation(
        "blocked", floats.BF16, block=128, promote=floats.FP32)
    with pytest.raises(ValueError, match="wider than the float32 container"):  # issue 23: it
        get_precision("fp8_e4m3fn+matmul:block128/fp32/fp64")  # was added in float32
    assert get_precision("bf16+kahan").sum_format("softmax") == floats.FP32
    assert str(get_precision("bf16-pure+pairwise")) == "bf16-pure+pairwise"
    assert get_precision("bf16-pure+sequential").matmul_sum == Accumulation()


@pytest.mark.parametrize("text", ["bf16-pure+tree", "bf16-pure+block", "bf16-pure+block0",
                                  "bf16-pure+attn:kahan", "bf16-pure+kahan/e99m1",
                                  "bf16-pure+block8/bf16/fp32/fp16", "bf16-pure+pairwise/bf16/fp32"])
def test_grammar_rejects_bad_modifiers(text):
    with pytest.raises(ValueError, match="accumulation modifier"):
        get_precision(text)


def test_a_mode_needs_a_format():
    with pytest.raises(ValueError, match="needs an accumulator format"):
        Precision(matmul_sum=Accumulation("pairwise"))


def test_bf16_pure_bits_unchanged_from_main():
    """tests/fixtures/bf16_pure_main.json was computed on main before accumulation models existed
    (its make_ script says how); the sequential default must reproduce it bit for bit."""
    fixture = json.loads((pathlib.Path(__file__).parent / "fixtures" /
                          "bf16_pure_main.json").read_text())
    config = presets.get(fixture["config"])
    params = init_params(config, jax.random.PRNGKey(0))
    trace = forward(params, np.asarray([fixture["tokens"]]), config, "bf16-pure", logits="last")
    final = np.asarray(trace.final, np.float32).view(np.uint32).ravel()
    logits = np.asarray(trace.logits, np.float32).view(np.uint32).ravel()
    assert np.array_equal(final, np.asarray(fixture["final_bits"], np.uint32))
    assert np.array_equal(logits, np.asarray(fixture["logits_bits"], np.uint32))


def test_op_by_op_reductions_compile_once_per_shape(caplog, monkeypatch):
    """Run op by op (outside jit), a second sequential or Kahan reduction of the same shapes finds
    its scan's program in JAX's caches: the scan bodies are cached per (terms, format), so the
    unrolled reference of the real models' parity tests (tests/scan_parity.py) compiles its
    bf16-pure reductions once, not once per layer (14 a Gemma layer). The mutant, a body built
    afresh at every call as before, compiles again here."""
    import logging

    x, w = (jnp.asarray(np.random.default_rng(i).standard_normal((K, 3)), jnp.float32)
            for i in (0, 1))
    kahan = MODES["kahan"]

    def reductions(x, w):
        return (accumulated_einsum("kc,kd->cd", x, w, floats.BF16),
                accumulated_sum(x, 0, floats.BF16), accumulated_sum(w, 0, floats.BF16, kahan))

    jax.block_until_ready(reductions(x, w))  # compiles each scan once
    with jax.log_compiles(), caplog.at_level(logging.DEBUG):
        jax.block_until_ready(reductions(w, x))
    assert not [r for r in caplog.records if "Compiling" in r.getMessage()]

    # the mutant: a new body at every call
    monkeypatch.setattr(accumulate, "_sequential_step", accumulate._sequential_step.__wrapped__)
    with jax.log_compiles(), caplog.at_level(logging.DEBUG):
        jax.block_until_ready(reductions(x, w))
    assert [r for r in caplog.records if "Compiling" in r.getMessage()]


@pytest.mark.parametrize("policy", ["bf16-pure+pairwise", "bf16-pure+kahan", "fp8_e4m3fn+block4"])
def test_model_prefix_property_and_jit_equals_eager(policy):
    """Row j of one forward equals the last row of a forward over the first j + 1 tokens (bit for
    bit: masked keys add exact zeros, which no mode lets change a sum); jit == eager (Kahan)."""
    config = presets.get("paper-fig10")
    params = init_params(config, jax.random.PRNGKey(0))
    x = jnp.asarray(np.random.default_rng(3).standard_normal((1, 9, config.d_model)), jnp.float32)
    precision = get_precision(policy)
    assert precision.prefix_bit_exact
    full = np.asarray(forward(params, x, config, precision, logits="none").final)
    short = np.asarray(forward(params, x[:, :6], config, precision, logits="none").final)
    assert np.array_equal(full[0, 5].view(np.uint32), short[0, 5].view(np.uint32))
    if policy == "bf16-pure+kahan":  # eager model runs are slow; every mode is checked eagerly above
        eager = np.asarray(traceable_forward(config, precision, logits="none")(params, x).final)
        assert np.array_equal(full.view(np.uint32), eager.view(np.uint32))


# ---- the finding: collapse length per accumulation model, and its mechanism -------------------


def test_mechanism_is_a_counterfactual(monkeypatch):
    """The rule (analysis.mechanism.classify): a collapse that vanishes or comes later when only
    the accumulators become fp32 is the accumulator's; one that is still there by n* is the
    representations'. Checked on stubbed sweeps, both ways."""
    from squash_sim.analysis import mechanism
    from squash_sim.experiments import accumulation_collapse as ac

    for counterfactual, expected in ((None, mechanism.STALLED), (41, mechanism.STALLED),
                                     (40, mechanism.REPRESENTATION),
                                     (12, mechanism.REPRESENTATION)):
        def fake(config, precision, max_len, seed, llm=None, counterfactual=counterfactual):
            n_star = counterfactual if "with fp32" in precision.name else 40
            return types.SimpleNamespace(collapse=types.SimpleNamespace(
                n_star=n_star, status="sound", run_from=n_star, first_identical=n_star,
                share=0.5))

        monkeypatch.setattr(ac, "_sweep", fake)
        monkeypatch.setattr(ac, "sum_of_ones", lambda precision, count: 0.0)
        (row,) = ac.run(formats=("bf16",), models=("sequential",), max_len=64, sites=())
        assert (row.n_star, row.mechanism, row.n_star_fp32_sums) == (40, expected, counterfactual)


def test_fp8_sequential_collapse_is_the_stalled_accumulator(monkeypatch):
    """Measured on the Figure 10 model: fp8 e5m2 with sequential sums collapses early because a
    sum over keys stalls (Σ 1 stops at 8); every sum in fp32 (the counterfactual) and blocks of 32
    promoted to fp32 both remove it (a mutant rule calling it "spacing" fails here).

    Per sum: the collapse needs the weights·values stall (restoring that sum alone removes it),
    never the scores q·k sum (a sum over the head dimension, the same 64 terms for every n:
    it cannot stall with n). The mutant counterfactual that restores the wrong sum under the
    weights·values name must fail these expectations."""
    from squash_sim.analysis import collapse as collapse_lib
    from squash_sim.analysis import mechanism
    from squash_sim.experiments import accumulation_collapse as ac

    rows = ac.run(formats=("fp8_e5m2",), models=("sequential", "blocked K=32 → fp32"), max_len=64,
                  sites=("weights·values", "scores q·k"))
    sequential, blocked = rows
    assert sequential.status == "ok" and sequential.n_star is not None and sequential.n_star < 32
    assert sequential.mechanism == "accumulator stalled" and sequential.n_star_fp32_sums is None
    assert "weights·values" in sequential.necessary.split("; ")
    assert "scores q·k" not in sequential.necessary.split("; ")
    assert sequential.row()["restore weights·values"].startswith("alone: removed")
    # Blocks still stall at 8 inside, but 8 blocks of 32 give 64: the sum keeps growing with n.
    assert sequential.sum_of_ones == 8.0 and blocked.sum_of_ones == 64.0
    assert blocked.n_star is None

    config = presets.get("paper-fig10")
    run = lambda p: collapse_lib.run(config, p, max_len=64)  # noqa: E731
    wrong = dict(mechanism.SITES, **{"weights·values": mechanism.SITES["scores q·k"]})
    monkeypatch.setattr(mechanism, "SITES", wrong)  # the mutant: restores q·k under that name
    [effect] = mechanism.attribute(run, "fp8_e5m2-pure", sequential.n_star, ["weights·values"])
    assert not effect.alone.startswith("removed")  # the expectation above would fail


def test_a_restored_site_sums_in_fp32_and_the_others_keep_their_format():
    """restore("weights·values") changes that dot product alone: checked against NumPy float32
    sequential sums (and ml_dtypes bf16 rounding of each partial sum for the sites left alone)."""
    import ml_dtypes

    from squash_sim.analysis import mechanism
    from squash_sim.precision import Numerics

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 300)).astype(np.float32), rng.standard_normal(300).astype(
        np.float32)
    a, b = (x.astype(ml_dtypes.bfloat16).astype(np.float32) for x in (a, b))

    def sequential(dtype):
        total = np.zeros(3, np.float32)
        for k in range(300):
            term = (a[:, k] * b[k]).astype(dtype).astype(np.float32)
            total = (total + term).astype(dtype).astype(np.float32)
        return total

    restored = Numerics(mechanism.restore("bf16-pure", ["weights·values"]))
    got = {site: np.asarray(restored.einsum("nk,k->n", a, b, site=site))
           for site in ("values", "scores", "matmul")}
    assert np.array_equal(got["values"], sequential(np.float32))
    assert np.array_equal(got["scores"], sequential(ml_dtypes.bfloat16))
    assert np.array_equal(got["matmul"], got["scores"])
    assert not np.array_equal(got["values"], got["scores"])
    assert mechanism.restore("bf16", ["weights·values"]) is None  # storage only: nothing to restore


def _char_llm(config):
    """A LoadedModel with one token per character of the count-ones prompt (random weights)."""
    from squash_sim.models import LoadedModel
    from squash_sim.tokenizer import Tokenizer

    prompt = "How many ones are in the following sequence? "
    chars = sorted(set(prompt.replace(" ", "▁") + "1"))
    tokenizer = Tokenizer.from_vocabulary(["<unk>", "<bos>", "<eos>"] + chars,
                                          [2, 3, 3] + [1] * len(chars), bos_id=1, eos_id=2,
                                          unk_id=0)
    return LoadedModel(config, init_params(config, jax.random.key(0)), tokenizer), prompt


def test_the_table_runs_on_a_loaded_llm_with_the_count_ones_prompt():
    """The Gemma row's code path (llm=): n* is checked against the outputs of one forward pass
    over "prompt + 1…1" compared here pair by pair (y_n against y_{n+1}, written out below), on a
    NoPE one-layer token model where fp8 e5m2 with sequential sums stalls (Σ 1 stops at 8) and a
    pairwise tree does not."""
    from squash_sim.config import ModelConfig
    from squash_sim.experiments import accumulation_collapse as ac

    config = ModelConfig(vocab_size=32, d_model=64, n_layers=1, n_heads=1, positional="none",
                         norm="none", mlp="none", name="nope-llm")
    llm, prompt = _char_llm(config)
    max_len = 64
    rows = ac.run(llm=llm, max_len=max_len, formats=("fp8_e5m2",),
                  models=("sequential", "pairwise"), sites=())
    ids = llm.encode(prompt + "1" * (max_len + 1))  # BOS, the prompt, then one token per "1"
    first_one = len(llm.encode(prompt))
    for row in rows:
        final = np.asarray(llm.forward(ids, row.policy, logits="none").final)
        ones = final[first_one:]  # (max_len + 1, d): y_1, y_2, …
        same = [bool(np.array_equal(ones[i], ones[i + 1])) for i in range(max_len)]
        expected = next((n for n in range(1, max_len + 1) if all(same[n - 1:])), None)
        if expected is not None and 2 * expected > max_len:  # the rule of docs/theory.md
            expected = None
        assert row.status == "ok" and row.n_star == expected, row
    sequential, pairwise = rows
    assert sequential.n_star is not None and sequential.mechanism == "accumulator stalled"
    assert pairwise.n_star is None and pairwise.sum_of_ones == 4 * max_len
    with pytest.raises(ValueError, match="config or llm"):
        ac.run(presets.get("tiny"), llm=llm)


def test_kahan_compensates_where_sequential_loses_everything():
    """1 + 64 terms of 2⁻²⁵ in fp32: each term is below half an ulp of 1, so the sequential sum
    stays 1; Kahan carries them in c and returns 1 + 2⁻¹⁹ exactly (no XLA simplification of
    (t − s) − y can hide here)."""
    xs = jnp.asarray([1.0] + [2.0 ** -25] * 64, jnp.float32)
    assert float(_sum(xs, axis=0, fmt=floats.FP32, how=MODES["sequential"])) == 1.0
    assert float(_sum(xs, axis=0, fmt=floats.FP32, how=MODES["kahan"])) == 1.0 + 2.0 ** -19


def test_report_section_on_a_real_model_names_its_files_and_prompt(monkeypatch, tmp_path):
    """runs.accumulation(model=...) — the report's Gemma row — writes accumulation_<model>.* and
    says which model and prompt; report --real schedules it (a stand-in LLM replaces the
    checkpoint here)."""
    from squash_sim import runs
    from squash_sim.config import ModelConfig

    config = ModelConfig(vocab_size=32, d_model=64, n_layers=1, n_heads=1, positional="none",
                         norm="none", mlp="none", name="nope-llm")
    llm, _ = _char_llm(config)
    monkeypatch.setattr(runs, "_real_model", lambda name, progress: (llm, llm.name, "_nope-llm"))
    section = runs.accumulation(tmp_path, model="nope-llm", max_len=32,
                                float_formats=("fp8_e5m2",), models=("sequential",))
    assert section.key == "accumulation_nope-llm"
    assert {p.name for p in tmp_path.iterdir()} >= {"accumulation_nope-llm.csv",
                                                     "accumulation_nope-llm.json",
                                                     "accumulation_nope-llm.png"}
    data = json.loads((tmp_path / "accumulation_nope-llm.json").read_text())
    assert data["model"] == "nope-llm" and data["prompt"] == "count-ones"
    assert "count-ones prompt" in section.summary[0] and "(nope-llm)" in section.verdicts[0].paper
    steps = {key: kwargs for key, _, kwargs in runs.report_steps("smoke", real=True)}
    assert steps["accumulation_gemma3-270m"]["model"] == "gemma3-270m"
    assert "accumulation_gemma3-270m" not in {k for k, _, _ in runs.report_steps("smoke")}


def test_a_pairwise_reduction_too_large_to_hold_is_split_or_refused_before_any_work():
    """Outputs of more than accumulate.CHUNK_ELEMENTS elements make the pairwise tree hold all K
    chunk sums: 2048×4096 @ 4096×2048 at once would need 64 GiB. Its output is sliced along a
    free axis instead (traced through eval_shape: no array is allocated). A reduction with no free
    output axis ("bk,bk->b": b is in both operands) is refused at trace time, sizes named."""
    a = jax.ShapeDtypeStruct((2048, 4096), jnp.float32)
    b = jax.ShapeDtypeStruct((4096, 2048), jnp.float32)
    pairwise = Accumulation("pairwise")
    assert accumulate._pairwise_chunks(4096, 2048 * 2048, 4)[2] == 64 << 30
    out = jax.eval_shape(lambda a, b: accumulated_einsum("mk,kn->mn", a, b, floats.BF16,
                                                         pairwise), a, b)
    assert out.shape == (2048, 2048)
    rows = jax.ShapeDtypeStruct((1 << 23, 4096), jnp.float32)
    with pytest.raises(accumulate.TooLarge, match=r"4096 terms .* 128\.0 GiB .* no output axis"):
        jax.eval_shape(lambda a, b: accumulated_einsum("bk,bk->b", a, b, floats.BF16, pairwise),
                       rows, rows)


@pytest.mark.parametrize("spec, shape_a, shape_b", [("ko,k->o", (K, 7), (K,)),
                                                    ("hk,kq->hq", (3, K), (K, 5))])
def test_pairwise_split_along_an_output_axis_is_the_same_tree(monkeypatch, spec, shape_a, shape_b):
    """With the partial-sum limit forcing a split (and a length the pieces do not divide), every
    output element is still the recursive reference's tree ("hk,kq->hq" splits q into single
    columns and then h); so is a split accumulated_sum. A limit below one output element is
    refused, so the split really was needed."""
    monkeypatch.setattr(accumulate, "CHUNK_ELEMENTS", 2)  # one term per chunk
    monkeypatch.setattr(accumulate, "PAIRWISE_LIMIT_BYTES", 32 * 2 * 4)  # 32 terms × 2 outputs
    rng = np.random.default_rng(7)

    def draw(shape):
        return np.asarray([to_fmt(x, floats.BF16) for x in rng.standard_normal(
            int(np.prod(shape))) * 100], np.float32).reshape(shape)

    a, b = draw(shape_a), draw(shape_b)
    how = MODES["pairwise"]
    got = np.asarray(accumulated_einsum(spec, jnp.asarray(a), jnp.asarray(b), floats.BF16, how))
    assert got.shape == np.einsum(spec, a, b).shape
    for index in np.ndindex(got.shape):
        if spec == "ko,k->o":
            column, weights = a[:, index[0]], b
        else:
            column, weights = a[index[0], :], b[:, index[1]]
        terms = [mul(float(x), float(y), floats.BF16) for x, y in zip(column, weights,
                                                                       strict=True)]
        assert same_bits(got[index], ref_pairwise(terms, floats.BF16)), index
    summed = np.asarray(accumulate.accumulated_sum(jnp.asarray(a), 0, floats.BF16, how))
    if spec == "ko,k->o":
        for o in range(a.shape[1]):
            assert same_bits(summed[o], ref_pairwise([float(x) for x in a[:, o]], floats.BF16))
    monkeypatch.setattr(accumulate, "PAIRWISE_LIMIT_BYTES", 16 * 4 - 1)  # 16 chunk sums of 1
    with pytest.raises(accumulate.TooLarge):
        accumulated_einsum(spec, jnp.asarray(a), jnp.asarray(b), floats.BF16, how)


@pytest.mark.parametrize("spec, shape_a, shape_b", [("md,dn->mn", (1, K), (K, 3)),
                                                    ("md,dn->mn", (0, K), (K, 5))])
def test_pairwise_split_edge_cases(monkeypatch, spec, shape_a, shape_b):
    """A reviewer's finds: a free axis of length 1 left after the others were cut must end in
    TooLarge (not an UnboundLocalError), and an empty output is empty (no division by zero)."""
    monkeypatch.setattr(accumulate, "CHUNK_ELEMENTS", 1)
    monkeypatch.setattr(accumulate, "PAIRWISE_LIMIT_BYTES", 64)
    a, b = jnp.ones(shape_a), jnp.ones(shape_b)
    if 0 in shape_a:
        assert accumulated_einsum(spec, a, b, floats.BF16, MODES["pairwise"]).shape == (0, 5)
    else:
        with pytest.raises(accumulate.TooLarge):
            accumulated_einsum(spec, a, b, floats.BF16, MODES["pairwise"])


def test_a_real_model_sweep_that_saturates_reports_overflow_not_collapse():
    """A saturating fp8 (e5m2, ±inf → ±max) on a model whose embeddings exceed its max (57,344):
    every stored stream value pins at ±max, so y_n and y*_{n+1} become bit-identical — a collapse
    made of saturated values. The sweep must say "overflow" with no n*; the same model with
    embeddings in range still sweeps ("ok")."""
    from squash_sim.config import ModelConfig
    from squash_sim.experiments import accumulation_collapse as ac
    from squash_sim.floats import FloatFormat

    config = ModelConfig(vocab_size=32, d_model=64, n_layers=1, n_heads=1, positional="none",
                         norm="none", mlp="none", name="nope-llm")
    llm, _ = _char_llm(config)
    saturating = Precision.pure(FloatFormat(5, 2, saturate=True))
    big = dataclasses.replace(llm, params={**llm.params,
                                           "embedding": llm.params["embedding"] * 1e6})
    status, found = ac.judged(None, saturating, 24, 0, big)
    assert status == "overflow" and found.n_star is None and found.status == "overflow"
    assert ac.judged(None, saturating, 24, 0, llm)[0] == "ok"


def test_the_docs_table_and_mechanism_sentences_are_the_committed_data():
    """docs/precision_hardware.md shows the tables (accumulation models; hardware columns) that
    experiments.accumulation_collapse.tables makes from docs/accumulation_collapse.json (and the
    fp8 hardware cells swept to 4096 from accumulation_collapse_fp8_4096.json), and its
    per-collapse mechanism sentences are the JSON's (so the page cannot drift from the data it
    cites)."""
    from squash_sim.experiments import accumulation_collapse as ac

    docs = pathlib.Path(__file__).parent.parent / "docs"
    page = (docs / "precision_hardware.md").read_text()
    for name, panels in (("accumulation_collapse.json", 2), ("accumulation_collapse_fp8_4096.json",
                                                             1)):
        rows = []
        for row in json.loads((docs / name).read_text()):
            sites = {k.removeprefix("restore "): row.pop(k) for k in list(row)
                     if k.startswith("restore ")}
            rows.append(ac.AccumulationCollapse(**row, sites=sites))
        assert all(table in page for table in ac.tables(rows)), name
        assert len(ac.tables(rows)) == panels
        for r in rows:
            if r.mechanism_text:
                assert f"{r.policy}: {r.mechanism_text}" in page, r.policy
