"""Config, precision and forward-argument validation: clear errors, never anything else."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from squash_sim import ModelConfig, Precision, forward, init_params, precision, presets

BAD_CONFIGS = [
    (dict(d_model=10, n_heads=4), ValueError, "divisible"),
    (dict(d_model=0), ValueError, "d_model"),
    (dict(n_layers=-1), ValueError, "n_layers"),
    (dict(n_heads=4, n_kv_heads=3), ValueError, "n_kv_heads"),
    (dict(positional="relative"), ValueError, "positional"),
    (dict(norm="batchnorm"), ValueError, "norm"),
    (dict(norm_placement="middle"), ValueError, "norm_placement"),
    (dict(mlp="tanh"), ValueError, "mlp"),
    (dict(sliding_window=0), ValueError, "sliding_window"),
    (dict(n_layers=2, sliding_window=(4, 4, 4)), ValueError, "sliding_window"),
    (dict(positional="learned"), ValueError, "max_len"),
    (dict(d_model=64.0), TypeError, "d_model"),
    (dict(causal="yes"), TypeError, "causal"),
    (dict(n_heads=True), TypeError, "n_heads"),
    (dict(rope_base=-1.0), ValueError, "rope_base"),
    (dict(norm_eps=float("nan")), ValueError, "norm_eps"),
    (dict(alibi_slopes=(1.0,)), ValueError, "alibi_slopes"),
    (dict(identity_value_output=True, n_kv_heads=2), ValueError, "identity_value_output"),
    (dict(vocab_size=-3), ValueError, "vocab_size"),
    (dict(d_head=7, positional="rope"), ValueError, "even"),
    (dict(theory_beta1=0.0), ValueError, "theory_beta1"),
]


@pytest.mark.parametrize("kwargs, error, word", BAD_CONFIGS, ids=[str(k) for k, *_ in BAD_CONFIGS])
def test_bad_configs_raise_naming_the_field(kwargs, error, word):
    with pytest.raises(error, match=word):
        ModelConfig(**kwargs)


def test_replace_revalidates_and_rederives():
    config = presets.get("tiny")
    assert config.replace(d_model=128).d_head == 32
    assert config.replace(d_model=128).d_ff == 512
    gemma = presets.get("gemma3-270m")
    assert gemma.replace(n_heads=8).d_head == 256  # explicit d_head is kept
    with pytest.raises(ValueError, match="n_kv_heads"):
        config.replace(n_kv_heads=3)
    with pytest.raises(TypeError, match="unknown field"):
        config.replace(colour="red")


def test_gemma3_preset_has_the_architecture_facts():
    c = presets.get("gemma3-270m")
    assert (c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.d_head) == (18, 640, 4, 1, 256)
    assert [i for i, w in enumerate(c.sliding_window) if w is None] == [5, 11, 17]
    assert set(c.sliding_window) == {512, None}
    assert c.rope_base_of(0) == 10_000.0 and c.rope_base_of(5) == 1_000_000.0
    assert c.norm_placement == "sandwich" and c.qk_norm and c.mlp == "geglu"
    assert c.query_scale == 256**-0.5 and abs(c.embed_scale - 640**0.5) < 1e-12
    with pytest.raises(ValueError, match="unknown preset"):
        presets.get("gpt5")


_any_value = st.one_of(st.none(), st.booleans(), st.integers(-3, 70), st.floats(allow_nan=True),
                       st.text(max_size=6), st.sampled_from(["rope", "rmsnorm", "pre", "gelu"]),
                       st.tuples(st.integers(-1, 9)), st.lists(st.none() | st.integers(0, 5)))
_fields = ["vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "d_head", "d_ff",
           "positional", "max_len", "rope_base", "rope_base_local", "alibi_slopes", "norm",
           "norm_placement", "norm_eps", "theory_beta1", "theory_beta2", "theory_beta3", "qk_norm",
           "mlp", "causal", "sliding_window", "embed_scale", "query_scale", "tied_embedding",
           "identity_value_output", "init_std", "name"]


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(_fields), _any_value, max_size=6))
def test_fuzzed_configs_only_ever_raise_value_or_type_errors(kwargs):
    try:
        config = ModelConfig(**kwargs)
    except (ValueError, TypeError):
        return
    assert hash(config) == hash(config.replace())  # valid configs are usable static jit args
    jax.eval_shape(lambda: init_params(config, jax.random.key(0)))


def test_unknown_precision_names_are_rejected_clearly():
    with pytest.raises(ValueError, match="unknown precision"):
        precision.get("bf17")
    with pytest.raises(TypeError, match="precision"):
        precision.get(16)
    with pytest.raises(TypeError, match="accumulation"):
        Precision(accumulation=3)
    assert precision.get("bf16").softmax is None and precision.get("bf16").activations.name == "bf16"
    assert precision.get("bf16-pure").accumulation.name == "bf16"
    assert all(precision.get(name) for name in precision.names())


@pytest.fixture(scope="module")
def tiny():
    config = presets.get("tiny")
    return config, init_params(config, jax.random.key(0))


@pytest.mark.parametrize("inputs, error, word", [
    (np.array([1, 2, 256]), ValueError, "token ids"),
    (np.array([-1, 2]), ValueError, "token ids"),
    (np.array([1.0, 2.0]), TypeError, "integer"),
    (np.zeros((2, 3, 4), np.int32), ValueError, "shape"),
    (np.zeros((0,), np.int32), ValueError, "at least one"),
])
def test_bad_token_inputs(tiny, inputs, error, word):
    config, params = tiny
    with pytest.raises(error, match=word):
        forward(params, inputs, config)


def test_bad_vector_inputs_params_and_options():
    config = presets.get("paper-fig10")
    params = init_params(config, jax.random.key(0))
    with pytest.raises(ValueError, match=r"\(n, 64\)"):
        forward(params, np.zeros((5, 32), np.float32), config)
    with pytest.raises(ValueError, match="NaN"):
        forward(params, np.full((5, 64), np.nan, np.float32), config)
    with pytest.raises(TypeError, match="float vectors"):
        forward(params, np.zeros((5, 64), np.int32), config)
    with pytest.raises(ValueError, match="unknown precision"):
        forward(params, np.zeros((5, 64), np.float32), config, "fp12")
    with pytest.raises(ValueError, match="logits"):
        forward(params, np.zeros((5, 64), np.float32), config, logits="some")
    broken = {**params, "layers": [{**params["layers"][0], "wq": params["layers"][0]["wk"][:, :, :3]}]}
    with pytest.raises(ValueError, match=r"\['wq'\]"):
        forward(broken, np.zeros((5, 64), np.float32), config)
    missing = {**params, "layers": []}
    with pytest.raises(ValueError, match="missing"):
        forward(missing, np.zeros((5, 64), np.float32), config)
    learned = presets.get("tiny").replace(positional="learned", max_len=4)
    with pytest.raises(ValueError, match="max_len"):
        forward(init_params(learned, jax.random.key(0)), np.arange(6), learned)
