"""Interventions (../shared/spec/interventions.md): identities that must hold, jit/vmap, errors."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from squash_sim import forward, init_params, presets
from squash_sim import interventions as iv
from squash_sim.analysis.sweep import sweep
from squash_sim.model import traceable_forward

CONFIG = presets.get("tiny").replace(n_layers=3)
PARAMS = init_params(CONFIG, jax.random.key(0))
TOKENS = np.random.default_rng(0).integers(0, 256, 16).astype(np.int32)
CLEAN = forward(PARAMS, TOKENS, CONFIG)
L = CONFIG.n_layers
KEY = jax.random.key(7)


def run(intervention):
    return forward(PARAMS, TOKENS, CONFIG, intervention=intervention)


def test_writing_back_the_clean_state_is_the_identity():
    for k in range(L + 1):
        for position in (0, 5, 15):
            out = run(iv.inject(k, CLEAN.hidden[k, position], position))
            assert np.array_equal(out.final, CLEAN.final)
    assert np.array_equal(run(iv.angle(1, KEY, 0.0)).final, CLEAN.final)


def test_random_at_layer_L_leaves_the_last_position_unchanged():
    out = run(iv.random(L, KEY))
    assert np.array_equal(out.final[-1], CLEAN.final[-1])
    assert not np.array_equal(out.hidden[L, :-1], CLEAN.hidden[L, :-1])  # P itself did change
    # mutant: at layer L − 1 the last position must change
    assert not np.array_equal(run(iv.random(L - 1, KEY)).final[-1], CLEAN.final[-1])


def test_nothing_before_layer_k_changes():
    for k in range(1, L + 1):
        for intervention in (iv.random(k, KEY), iv.shuffle(k, KEY), iv.freeze(k),
                             iv.angle(k, KEY, 1.0)):
            out = run(intervention)
            assert np.array_equal(out.hidden[:k], CLEAN.hidden[:k]), intervention.kind


def test_freeze_at_1_equals_freezing_the_embeddings():
    """freeze(1) keeps h[0][P] at every later block: written out with inject at every layer."""
    out = run(iv.freeze(1))
    for j in range(1, L + 1):
        assert np.array_equal(out.hidden[j, :-1], CLEAN.hidden[0, :-1])
    # the same by hand: run block by block, writing h[0][P] back before each block
    manual = CLEAN.hidden[0]
    from squash_sim.model import block
    from squash_sim.precision import Numerics, get
    num = Numerics(get("fp32"))
    h = manual[None]
    for layer, p in enumerate(PARAMS["layers"]):
        h = h.at[0, :-1].set(CLEAN.hidden[0, :-1]) if layer >= 1 else h
        h, _ = block(h, p, layer, CONFIG, num, False, 1024, 1024)
    assert np.allclose(h[0, -1], out.hidden[L, -1], atol=1e-6)


def test_freeze_faithful_and_kv_forms_agree_at_the_last_position():
    for k in range(1, L + 1):
        faithful = run(iv.freeze(k)).final[-1]
        kv = run(iv.freeze(k, form="kv")).final[-1]
        assert np.array_equal(faithful, kv)


def test_skip_attention_from_0_is_an_mlp_only_model_and_changes_the_output():
    out = run(iv.skip_attention(0))
    assert not np.allclose(out.final[-1], CLEAN.final[-1])
    # without attention, each position depends on its own token only: a prefix does not matter
    short = forward(PARAMS, TOKENS[-3:], CONFIG, intervention=iv.skip_attention(0))
    assert np.allclose(short.final[-1], out.final[-1], atol=1e-6)


def test_random_is_norm_matched_and_positions_options():
    out = run(iv.random(1, KEY))
    assert np.allclose(np.linalg.norm(out.hidden[1], axis=-1),
                       np.linalg.norm(CLEAN.hidden[1], axis=-1), rtol=1e-5)
    spare_bos = run(iv.random(1, KEY, exclude_bos=True))
    assert np.array_equal(spare_bos.hidden[1, 0], CLEAN.hidden[1, 0])
    one = run(iv.random(1, KEY, position=4))
    changed = np.flatnonzero(np.any(one.hidden[1] != CLEAN.hidden[1], axis=-1))
    assert changed.tolist() == [4]


def test_windowed_random_restores_clean_states_after_the_window():
    out = run(iv.random(0, KEY, window=1, clean=CLEAN.hidden))
    assert np.array_equal(out.hidden[1, :-1], CLEAN.hidden[1, :-1])
    assert not np.array_equal(out.hidden[1, -1], CLEAN.hidden[1, -1])  # the last token saw noise


def test_jit_equals_eager_and_vmap_over_layers_equals_a_loop():
    fn = traceable_forward(CONFIG, logits="none")
    tokens = TOKENS[None]
    base = iv.random(np.array([0, 1, 2]), KEY)
    batched = jax.jit(jax.vmap(lambda layer: fn(PARAMS, tokens, intervention=dataclasses.replace(
        base, layer=layer)).final))(base.layer)
    for i, k in enumerate((0, 1, 2)):  # vmapped matmuls may reassociate: float32 rounding only
        single = run(iv.random(k, KEY)).final
        assert np.allclose(batched[i, 0], single, rtol=1e-5, atol=1e-5)
    assert not np.allclose(batched[0, 0], batched[1, 0], atol=1e-3)  # the layers did differ
    for intervention in (iv.random(1, KEY), iv.angle(1, KEY, 0.7), iv.shuffle(2, KEY),
                         iv.freeze(1, form="kv"), iv.skip_attention(1)):
        with jax.disable_jit():
            eager = fn(PARAMS, tokens, intervention=intervention).final[0]
        assert np.array_equal(eager, run(intervention).final), intervention.kind


def test_sweep_metrics():
    tokens = np.stack([TOKENS, np.roll(TOKENS, 3)])
    result = sweep((PARAMS, CONFIG), tokens, kind="random", seeds=(0, 1), answers=[3, 4],
                      last=[15, 9])
    assert result.kl.shape == (L + 1, 2, 2) and result.layers.tolist() == list(range(L + 1))
    assert np.all(result.kl[-1] < 1e-6) and np.all(result.top1_agrees[-1])  # layer L: identity
    assert np.all(result.kl >= -1e-6)
    freeze = sweep((PARAMS, CONFIG), tokens, kind="freeze")
    assert freeze.layers.tolist() == list(range(1, L + 1))


def test_the_sweep_lives_in_analysis_and_keeps_its_documented_name():
    from squash_sim.analysis import sweep as module

    assert iv.sweep is sweep is module.sweep and iv.SweepResult is module.SweepResult
    assert iv.last_logits is module.last_logits
    with pytest.raises(AttributeError, match="no attribute 'sweeep'"):
        iv.sweeep  # noqa: B018  (a typo still fails like any missing name)


def test_bad_input_is_rejected_before_tracing():
    with pytest.raises(ValueError, match="layer must lie in 0..3"):
        run(iv.random(4, KEY))
    with pytest.raises(ValueError, match="layer must lie in 1..3"):
        run(iv.freeze(0))
    with pytest.raises(ValueError, match="position must lie in 0..15"):
        run(iv.random(1, KEY, position=16))
    with pytest.raises(ValueError, match="width d_model = 64"):
        run(iv.inject(1, np.zeros(63), 2))
    with pytest.raises(TypeError, match="key is required"):
        iv.random(1, None)
    with pytest.raises(TypeError, match="layer must be an int"):
        iv.random(1.5, KEY)
    with pytest.raises(ValueError, match="clean stream"):
        run(iv.random(1, KEY, window=2))
    with pytest.raises(ValueError, match="kind must be one of"):
        sweep((PARAMS, CONFIG), TOKENS[None], kind="inject")
