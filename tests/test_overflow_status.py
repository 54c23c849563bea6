"""Overflow and non-finite values are never reported as collapse (issue 12, part 1)."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_numpy import reference_forward

from squash_sim import ModelConfig, Precision, floats, init_params, presets
from squash_sim.analysis import collapse
from squash_sim.experiments import attention_collapse
from squash_sim.precision import get as get_precision


@pytest.mark.parametrize("scale, precision", [(1e20, "fp32"), (300.0, "fp16-pure")])
def test_the_issue_cases_are_overflow_not_collapse(scale, precision):
    """tiny with embed_scale 1e20 (fp32) or 300 (fp16-pure): RMSNorm's x² overflows, rsqrt(inf)
    = 0, and both outputs are exactly 0 — once reported as collapse at n = 1."""
    config = presets.get("tiny").replace(embed_scale=scale)
    result = collapse.run(config, precision, max_len=16)
    assert result.bit_identical.any()  # the raw bits do agree: the trap the status avoids
    assert result.collapse_length is None
    assert set(result.status) <= {"overflow", "non-finite"}
    assert "not collapse" in result.verdict
    assert {row["status"] for row in result.table()} == set(result.status)


def test_a_sound_run_still_reports_its_collapse():
    """The mutant check of the status: a run that truly collapses (a sliding window of 1 makes
    both prefixes end in the same token, seen alone) keeps its verdict."""
    config = presets.get("tiny").replace(sliding_window=1)
    result = collapse.run(config, "fp32", max_len=8)
    assert result.sound.all() and result.collapse_length == 1


def test_attention_collapse_flags_a_format_too_narrow():
    """Values N(0, 1) stored in a format whose largest value is 0.375 saturate: those pairs are
    "overflow", never bit-identical."""
    narrow = floats.FloatFormat(2, 1, bias=5, inf=False, nan="none", saturate=True)
    result = attention_collapse.run("none", (5, 10), seeds=2, d=8, variance="1",
                                    precision=Precision(activations=narrow, name="narrow"))
    assert (result.status == "overflow").any()
    assert not result.bit_identical[result.status == "overflow"].any()
    assert {row["status"] for row in result.rows()} == set(result.status.ravel())


def _oracle_overflows(params, tokens, config, precision, upto: int) -> bool:
    """Independent float64 reference: does the true computation leave the format on positions
    0..upto? (a value beyond the activation format, or x² beyond float32 in a norm)"""
    fmt = get_precision(precision).activations
    limit = fmt.max if fmt is not None else floats.FP32.max
    hidden = reference_forward(params, tokens[: upto + 1], config)["hidden"]
    biggest = float(np.abs(hidden).max())
    return biggest >= 2 * limit or biggest ** 2 >= 2 * floats.FP32.max


@settings(max_examples=10)
@given(scale=st.sampled_from([1.0, 300.0, 1e4, 1e19, 1e20, 1e30]),
       precision=st.sampled_from(["fp32", "fp16-pure", "bf16", "fp16", "fp8_e4m3fn"]),
       positional=st.sampled_from(["none", "rope", "alibi"]),
       norm=st.sampled_from(["rmsnorm", "layernorm"]))
def test_no_overflowed_run_is_ever_labelled_collapse(scale, precision, positional, norm):
    config = ModelConfig(vocab_size=8, d_model=8, n_layers=1, n_heads=2, d_head=4, d_ff=8,
                         positional=positional, norm=norm, mlp="gelu", embed_scale=scale)
    params = init_params(config, jax.random.key(0))
    result = collapse.run(config, precision, max_len=6, prompt_len=2, params=params)
    tokens, rows = collapse.make_sequence(config, 6, 2, 0)
    assert set(result.status) <= set(collapse.STATUSES)
    for i, status in enumerate(result.status):
        if status in ("bit-identical", "distinct"):
            assert not _oracle_overflows(params, tokens, config, precision, int(rows[i + 1])), (
                f"n = {i + 1} labelled {status} although the float64 reference overflows")
    if result.collapse_length is not None:
        assert result.sound[result.n >= result.collapse_length].all()
