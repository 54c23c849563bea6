"""The model against an independent float64 NumPy reference; prefix property; paths; determinism."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from reference_numpy import reference_forward

from squash_sim import ModelConfig, forward, init_params, presets
from squash_sim import strategies as sst
from squash_sim.model import _forward, _forward_jit
from squash_sim.precision import get as get_precision

# At least NoPE, sinusoidal, RoPE, ALiBi; pre, post and sandwich norms; GQA; windows.
PARITY_CONFIGS = {
    "nope-pre-layernorm": ModelConfig(d_model=16, n_layers=2, n_heads=2, positional="none",
                                      norm="layernorm", mlp="gelu", d_ff=32),
    "sinusoidal-post-untied": ModelConfig(vocab_size=11, d_model=16, n_layers=2, n_heads=4,
                                          positional="sinusoidal", norm="rmsnorm",
                                          norm_placement="post", mlp="relu",
                                          tied_embedding=False),
    "rope-sandwich-gqa-window": ModelConfig(vocab_size=13, d_model=16, n_layers=3, n_heads=4,
                                            n_kv_heads=2, d_head=8, positional="rope",
                                            rope_base_local=100.0, norm="rmsnorm",
                                            norm_placement="sandwich", qk_norm=True, mlp="geglu",
                                            sliding_window=(3, 5, None), embed_scale=4.0),
    "alibi-mqa-bidirectional": ModelConfig(d_model=16, n_layers=2, n_heads=4, n_kv_heads=1,
                                           positional="alibi", norm="layernorm", mlp="swiglu",
                                           causal=False, d_ff=24),
    "learned-theory-identity": ModelConfig(d_model=8, n_layers=2, n_heads=2, positional="learned",
                                           max_len=32, norm="theory", theory_beta1=(2.0, 3.0),
                                           theory_beta2=1.5, theory_beta3=4.0, mlp="gelu_tanh",
                                           identity_value_output=True),
    "gemma-shaped": presets.get("gemma3-270m").replace(
        vocab_size=40, d_model=32, n_layers=6, d_head=16, d_ff=48, embed_scale=32**0.5,
        query_scale=16**-0.5, sliding_window=(4, 4, 4, 4, 4, None)),
}


def _inputs(config: ModelConfig, n: int, seed: int = 0, batch: int | None = None):
    rng = np.random.default_rng(seed)
    shape = (n,) if batch is None else (batch, n)
    if config.takes_tokens:
        return rng.integers(0, config.vocab_size, shape).astype(np.int32)
    return rng.standard_normal(shape + (config.d_model,)).astype(np.float32)


def relative_error(got, want) -> float:
    """max |got − want| / max |want|: a relative error that near-zero entries cannot inflate."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


@pytest.mark.parametrize("name", list(PARITY_CONFIGS))
def test_fp32_forward_matches_the_float64_numpy_reference(name):
    config = PARITY_CONFIGS[name]
    params = init_params(config, jax.random.key(1))
    x = _inputs(config, 12)
    trace = forward(params, x, config, return_attention=True)
    ref = reference_forward(jax.tree_util.tree_map(np.asarray, params), x, config)
    assert relative_error(trace.hidden, ref["hidden"]) < 1e-5
    assert relative_error(trace.final, ref["final"]) < 1e-5
    assert relative_error(trace.attention, ref["attention"]) < 1e-5
    if config.takes_tokens:
        assert relative_error(trace.logits, ref["logits"]) < 1e-5


@pytest.mark.parametrize("name", ["rope-sandwich-gqa-window", "alibi-mqa-bidirectional",
                                  "nope-pre-layernorm"])
def test_blocked_online_softmax_path_matches_the_reference(name):
    """Long-sequence path forced at small n: 4 blocks of 5, windows crossing block edges."""
    config = PARITY_CONFIGS[name]
    params = init_params(config, jax.random.key(2))
    x = _inputs(config, 19, seed=3)
    trace = forward(params, x, config, dense_max_len=4, attention_block=5)
    ref = reference_forward(jax.tree_util.tree_map(np.asarray, params), x, config)
    assert relative_error(trace.final, ref["final"]) < 1e-5


@pytest.mark.parametrize("precision", ["fp32", "bf16-pure"])
def test_a_block_longer_than_the_sequence_is_one_block(precision):
    """A block as wide as an unbounded window (2³¹ − 1, as `gemma3_270m(local_layers_global=True)`
    has) once padded the sequence to that size and aborted the process inside XLA."""
    config = PARITY_CONFIGS["rope-sandwich-gqa-window"]
    params = init_params(config, jax.random.key(2))
    x = _inputs(config, 19, seed=3)
    trace = forward(params, x, config, precision, dense_max_len=4, attention_block=2**31 - 1)
    one_block = forward(params, x, config, precision, dense_max_len=4, attention_block=19)
    assert np.array_equal(np.asarray(trace.final), np.asarray(one_block.final))
    if precision == "fp32":
        ref = reference_forward(jax.tree_util.tree_map(np.asarray, params), x, config)
        assert relative_error(trace.final, ref["final"]) < 1e-5


def test_the_reference_would_catch_a_wrong_model():
    """Teeth: the same comparison rejects a model whose RoPE base is off by 1 %."""
    config = PARITY_CONFIGS["rope-sandwich-gqa-window"]
    params = init_params(config, jax.random.key(1))
    x = _inputs(config, 12)
    wrong = forward(params, x, config.replace(rope_base=config.rope_base * 1.01))
    ref = reference_forward(jax.tree_util.tree_map(np.asarray, params), x, config)
    assert relative_error(wrong.final, ref["final"]) > 1e-5


@settings(max_examples=12, deadline=None)
@given(config=sst.model_configs())
def test_random_configs_match_the_reference(config):
    params = init_params(config, jax.random.key(0))
    x = _inputs(config, 7)
    trace = forward(params, x, config)
    ref = reference_forward(jax.tree_util.tree_map(np.asarray, params), x, config)
    assert np.all(np.isfinite(np.asarray(trace.final)))
    assert relative_error(trace.final, ref["final"]) < 1e-5


def test_fp64_precision_matches_the_reference_to_float64_rounding():
    config = PARITY_CONFIGS["rope-sandwich-gqa-window"]
    params = init_params(config, jax.random.key(1))
    x = _inputs(config, 12)
    trace = forward(params, x, config, "fp64")
    assert trace.final.dtype == jnp.float64
    ref = reference_forward(jax.tree_util.tree_map(np.asarray, params), x, config)
    assert relative_error(trace.final, ref["final"]) < 1e-12


# ---- the prefix property: row j of one pass = last row of the prefix of length j+1 -----------

PREFIX_CONFIGS = [PARITY_CONFIGS[name] for name in
                  ("rope-sandwich-gqa-window", "nope-pre-layernorm")] + [
    ModelConfig(vocab_size=9, d_model=16, n_layers=2, n_heads=2, positional=p, norm="rmsnorm",
                mlp="gelu", max_len=64) for p in ("sinusoidal", "learned", "alibi")]


@pytest.mark.parametrize("config", PREFIX_CONFIGS, ids=lambda c: c.positional)
def test_prefix_property_in_fp32(config):
    params = init_params(config, jax.random.key(4))
    x = _inputs(config, 20, seed=5)
    whole = forward(params, x, config)
    for length in (1, 2, 7, 13, 20):
        alone = forward(params, x[:length], config)
        assert relative_error(whole.final[length - 1], alone.final[-1]) < 1e-6
        assert relative_error(whole.hidden[:, :length], alone.hidden) < 1e-6


# Small but with every feature that touches the reductions: RoPE with two bases, a window, GQA,
# sandwich norms, qk-norm, GeGLU; and ALiBi. "-pure" graphs compile slowly, so few lengths.
PURE_CONFIG = ModelConfig(vocab_size=9, d_model=8, n_layers=2, n_heads=2, n_kv_heads=1,
                          positional="rope", rope_base_local=100.0, norm="rmsnorm",
                          norm_placement="sandwich", qk_norm=True, mlp="geglu", d_ff=8,
                          sliding_window=(3, None))


@pytest.mark.parametrize("config, precision", [
    (PURE_CONFIG, "bf16-pure"), (PURE_CONFIG, "fp8_e4m3fn-pure"), (PURE_CONFIG, "fp32-pure"),
    (PURE_CONFIG.replace(positional="alibi", norm="layernorm", norm_placement="pre"), "e5m4-pure"),
], ids=["rope-bf16", "rope-e4m3fn", "rope-fp32", "alibi-e5m4"])
def test_prefix_property_is_bit_exact_with_ordered_reductions(config, precision):
    assert get_precision(precision).prefix_bit_exact
    params = init_params(config, jax.random.key(4))
    x = _inputs(config, 11, seed=6)
    whole = forward(params, x, config, precision)
    for length in (1, 7):
        alone = forward(params, x[:length], config, precision)
        np.testing.assert_array_equal(np.asarray(whole.final[length - 1]),
                                      np.asarray(alone.final[-1]))
        np.testing.assert_array_equal(np.asarray(whole.hidden[:, :length]),
                                      np.asarray(alone.hidden))


def test_query_blocked_path_gives_the_dense_bits_with_ordered_reductions():
    config = PURE_CONFIG
    params = init_params(config, jax.random.key(4))
    x = _inputs(config, 13, seed=6)
    dense = forward(params, x, config, "bf16-pure")
    # Layer 0 (window 3) takes the banded path, layer 1 (global) the query-blocked one.
    blocked = forward(params, x, config, "bf16-pure", dense_max_len=4, attention_block=4)
    np.testing.assert_array_equal(np.asarray(dense.hidden), np.asarray(blocked.hidden))


def test_bf16_storage_prefixes_agree_to_within_one_bf16_spacing():
    """With XLA's (unordered) fp32 reductions the bits are not promised; the gap stays below the
    bf16 spacing of the values (documented in precision.py)."""
    from squash_sim import BF16, spacing

    config = PREFIX_CONFIGS[0]
    params = init_params(config, jax.random.key(4))
    x = _inputs(config, 20, seed=5)
    whole = forward(params, x, config, "bf16")
    for length in (3, 11, 20):
        alone = forward(params, x[:length], config, "bf16")
        gap = np.abs(np.asarray(whole.final[length - 1]) - np.asarray(alone.final[-1]))
        assert np.all(gap <= np.asarray(spacing(alone.final[-1], BF16)))


def test_causality_later_tokens_never_change_earlier_rows():
    config = PARITY_CONFIGS["rope-sandwich-gqa-window"]
    params = init_params(config, jax.random.key(4))
    x = _inputs(config, 16, seed=1)
    y = x.copy()
    y[-1] = (y[-1] + 1) % config.vocab_size
    a, b = forward(params, x, config), forward(params, y, config)
    np.testing.assert_array_equal(np.asarray(a.hidden[:, :-1]), np.asarray(b.hidden[:, :-1]))
    assert not np.array_equal(np.asarray(a.final[-1]), np.asarray(b.final[-1]))


# ---- jit vs eager, determinism, batching ---------------------------------------------------


@pytest.mark.parametrize("precision", ["fp32", "bf16", "bf16-pure", "fp8_e4m3fn"])
def test_jit_and_eager_give_identical_bits(precision):
    """Needs XLA's FMA contraction off (squash_sim/_xla_flags.py); fails without it. One policy
    per rounder path (identity, bf16's carry, ordered bf16 sums, fp8's float arithmetic); ordered
    fp8/fp16 sums are checked mode by mode in test_accumulation (an eager fp8-pure forward took
    21 s of compiling one primitive at a time)."""
    config = PURE_CONFIG.replace(n_layers=1, sliding_window=3)
    params = init_params(config, jax.random.key(7))
    x = jnp.asarray(_inputs(config, 6, seed=2))[None]
    p = get_precision(precision)
    jitted = _forward_jit(params, x, config, p, True, "all", 1024, 512)
    with jax.disable_jit():
        eager = _forward(params, x, config, p, True, "all", 1024, 512)
    for got, want in zip(eager, jitted, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_same_key_same_bits_different_key_different_params():
    config = presets.get("tiny")
    a, b = init_params(config, jax.random.key(3)), init_params(config, jax.random.key(3))
    c = init_params(config, jax.random.key(4))
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    assert not np.array_equal(np.asarray(a["layers"][0]["wq"]), np.asarray(c["layers"][0]["wq"]))
    x = _inputs(config, 33)
    first, second = forward(a, x, config, "bf16"), forward(a, x, config, "bf16")
    np.testing.assert_array_equal(np.asarray(first.logits), np.asarray(second.logits))


def test_batched_inputs_equal_one_at_a_time():
    config = PARITY_CONFIGS["alibi-mqa-bidirectional"]
    params = init_params(config, jax.random.key(5))
    xs = _inputs(config, 9, batch=3)
    batched = forward(params, xs, config, return_attention=True)
    assert batched.hidden.shape == (3, config.n_layers + 1, 9, config.d_model)
    assert batched.attention.shape == (3, config.n_layers, config.n_heads, 9, 9)
    for i in range(3):
        single = forward(params, xs[i], config)
        assert relative_error(batched.final[i], single.final) < 1e-6


def test_trace_shapes_and_attention_is_row_stochastic_and_causal():
    config = presets.get("tiny")
    params = init_params(config, jax.random.key(0))
    trace = forward(params, _inputs(config, 10), config, return_attention=True)
    assert trace.hidden.shape == (3, 10, 64)
    assert trace.final.shape == (10, 64) and trace.logits.shape == (10, 256)
    weights = np.asarray(trace.attention)
    assert weights.shape == (2, 4, 10, 10)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
    assert np.all(np.triu(weights, k=1) == 0)
    last = forward(params, _inputs(config, 10), config, logits="last")
    assert relative_error(last.logits[-1], trace.logits[-1]) < 1e-6


def test_bf16_pure_softmax_sum_of_ones_stalls_at_256():
    """theory.md §3: a running sum of ones in bf16 stops growing at 256 (256 + 1 rounds to 256)."""
    from squash_sim.floats import BF16
    from squash_sim.precision import ordered_sum

    total = ordered_sum(jnp.ones(1000), 0, BF16)
    assert float(total) == 256.0
    assert float(jnp.sum(jnp.ones(1000))) == 1000.0
