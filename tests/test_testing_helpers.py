"""squash_sim.testing: every assertion passes where the property holds and fails — readably —
on a mutant where it does not."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from squash_sim import ModelConfig, init_params
from squash_sim import testing as sst

APART = ModelConfig(vocab_size=8, d_model=8, n_layers=1, n_heads=2, d_head=4, d_ff=8,
                    positional="sinusoidal", norm="rmsnorm", mlp="gelu")
WINDOW_1 = APART.replace(positional="none", sliding_window=1)  # sees the last token alone
B5 = ModelConfig(d_model=4, n_layers=2, n_heads=1, positional="none", norm="theory",
                 theory_beta1=2.0, theory_beta2=2.0, theory_beta3=1.0, mlp="relu", d_ff=8,
                 identity_value_output=True)


def test_no_collapse_before_passes_and_its_mutant_fails():
    sst.assert_no_collapse_before(init_params(APART, jax.random.key(0)), APART, n=32)
    with pytest.raises(AssertionError, match=r"collapse at n = 1 < 32 .* bit-identical"):
        sst.assert_no_collapse_before(init_params(WINDOW_1, jax.random.key(0)), WINDOW_1, n=32)


def test_overflow_is_never_a_verdict():
    config = APART.replace(embed_scale=1e20)
    with pytest.raises(AssertionError, match="overflow at n = 1"):
        sst.assert_no_collapse_before(init_params(config, jax.random.key(0)), config, n=4)


def test_collapse_length_within_passes_and_its_mutant_fails():
    params = init_params(WINDOW_1, jax.random.key(0))
    result = sst.assert_collapse_length_within(params, WINDOW_1, 1, 4, "fp32")
    assert result.collapse_length == 1
    with pytest.raises(AssertionError, match=r"outside \[2, 4\].*n\* = 1"):
        sst.assert_collapse_length_within(params, WINDOW_1, 2, 4, "fp32")


def test_sensitivity_bound_passes_and_its_mutant_fails(monkeypatch):
    params = init_params(B5, jax.random.key(1))
    vectors = np.random.default_rng(0).standard_normal((6, 4))
    measured, bound = sst.assert_sensitivity_bound(params, B5, vectors)
    assert np.all(measured <= bound) and measured.max() > 0
    from squash_sim.analysis import sensitivity

    real = sensitivity.matrix_bound
    monkeypatch.setattr(sensitivity, "matrix_bound", lambda *a, **k: real(*a, **k) / 100)
    with pytest.raises(AssertionError, match=r"Theorem B.5 violated at position i = \d+ of n = 6"):
        sst.assert_sensitivity_bound(params, B5, vectors)
    with pytest.raises(ValueError, match="hypotheses"):
        sst.assert_sensitivity_bound(init_params(APART, jax.random.key(0)), APART, vectors)


def test_prefix_property_passes_and_its_mutant_fails(monkeypatch):
    params = init_params(APART, jax.random.key(0))
    tokens = np.array([3, 1, 4, 1, 5], np.int32)
    sst.assert_prefix_property(params, APART, tokens, "fp32-pure")  # bit for bit
    real = sst.forward

    def leaky(params, inputs, config, *args, **kwargs):  # row j sees the length: not causal
        trace = real(params, inputs, config, *args, **kwargs)
        return trace._replace(final=trace.final + 1e-3 * np.shape(inputs)[-1])

    monkeypatch.setattr(sst, "forward", leaky)
    with pytest.raises(AssertionError, match="prefix property fails at j = 0"):
        sst.assert_prefix_property(params, APART, tokens)


def test_jit_equals_eager_passes_and_its_mutant_fails():
    params = init_params(APART, jax.random.key(0))
    tokens = np.array([3, 1, 4, 1, 5], np.int32)
    sst.assert_jit_equals_eager(params, APART, tokens, "fp32")

    def traced_differently(p, x):  # a different result under jit than eagerly
        out = jnp.sum(p["embedding"][x], axis=-1)
        return out + (1e-3 if isinstance(out, jax.core.Tracer) else 0.0)

    with pytest.raises(AssertionError, match=r"jit and eager differ .* first at \(0, 0\)"):
        sst.assert_jit_equals_eager(params, APART, tokens, fn=traced_differently)
