"""Public Hypothesis strategies: bad arguments get clear errors naming the parameter, at call time."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from squash_sim import ModelConfig
from squash_sim import strategies as sst


@pytest.mark.parametrize("call, error, match", [
    (lambda: sst.collapse_pairs(positionals=("bogus",)), ValueError, r"positionals: 'bogus'"),
    (lambda: sst.collapse_pairs(positionals="rope"), TypeError, "positionals must be a tuple"),
    (lambda: sst.collapse_pairs(lengths=()), ValueError, "lengths must not be empty"),
    (lambda: sst.collapse_pairs(lengths=(0, 3)), ValueError, "lengths must be positive"),
    (lambda: sst.collapse_pairs(widths=(2.5,)), TypeError, "widths must hold int"),
    (lambda: sst.collapse_pairs(config="tiny"), TypeError, "config must be a ModelConfig"),
    (lambda: sst.collapse_pairs(config=ModelConfig(d_model=8, n_layers=1, n_heads=1)),
     ValueError, "norm 'none' or 'theory'"),
    (lambda: sst.float_formats(max_exponent_bits=0), ValueError, "max_exponent_bits must be in"),
    (lambda: sst.float_formats(max_mantissa_bits="7"), TypeError, "max_mantissa_bits must be an int"),
    (lambda: sst.float32_arrays(size=-1), ValueError, "size must be >= 0"),
    (lambda: sst.model_configs(max_d_model=4), ValueError, "max_d_model must be >= 8"),
    (lambda: sst.model_configs(max_layers=0), ValueError, "max_layers must be >= 1"),
    (lambda: sst.model_configs(tokens="yes"), TypeError, "tokens must be True, False or None"),
    (lambda: sst.causal_attention_matrices(min_n=5, max_n=2), ValueError, "max_n must be >= 5"),
    (lambda: sst.bounded_vectors(low=3, high=1), ValueError, "low must be <= high"),
    (lambda: sst.bounded_vectors(low=float("nan")), ValueError, "low must be finite"),
])
def test_bad_strategy_arguments_name_the_parameter(call, error, match):
    with pytest.raises(error, match=match):
        call()


CONFIG = ModelConfig(d_model=8, n_layers=1, n_heads=1, positional="alibi", norm="theory",
                     theory_beta1=2.0, mlp="none", identity_value_output=True)


@settings(max_examples=20)
@given(sst.collapse_pairs(config=CONFIG))
def test_collapse_pairs_follow_the_users_config(instance):
    assert (instance["positional"], instance["d"], instance["norm"], instance["beta"]) == (
        "alibi", 8, "theory", 2.0)
