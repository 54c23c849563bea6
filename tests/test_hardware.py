"""Tensor-core models against real hardware: Khattak & Mikaitis's measured MMA outputs.

The reference is the hardware itself (../shared/hardware/tensor_cores, BSD-2; a 250-row subsample
of every file ships in tests/fixtures/tensor_cores). Every GPU × input × output format must match
bit for bit on every row, except the combinations listed in GAPS, which no model tried so far
reproduces (docs/precision_hardware.md): their exact counts are pinned so that any change shows.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from squash_sim import floats, hardware

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "tensor_cores"
# CI checks out the project beside ../shared; TENSOR_CORE_DATA points elsewhere (a worktree).
FULL = Path(os.environ.get("TENSOR_CORE_DATA", REPO / ".." / "shared" / "hardware" / "tensor_cores"))

# (gpu, input, output) → rows matching, of 5,000 (full data) and of 250 (the subsample).
GAPS = {
    ("h100", "fp8_e4m3fn", "fp16"): (3121, 157), ("h100", "fp8_e5m2", "fp16"): (3343, 170),
    ("b200", "fp8_e4m3fn", "fp16"): (3108, 157), ("b200", "fp8_e5m2", "fp16"): (3403, 180),
    ("b200", "fp8_e5m2", "fp32"): (4999, 250),
}
COMBINATIONS = 22  # every file of the data: 14 GPU × input formats, 8 of them with fp16 output too


def check(results, column):
    assert len(results) == COMBINATIONS, [(r["gpu"], r["input"], r["output"]) for r in results]
    for r in results:
        key = (r["gpu"], r["input"], r["output"])
        want = GAPS[key][column] if key in GAPS else r["rows"]
        assert r["matching"] == want, (key, r)


def test_every_gpu_and_format_reproduces_the_subsample_bit_for_bit():
    results = hardware.validate(FIXTURE)
    assert {r["rows"] for r in results} == {250}
    check(results, 1)


def test_every_gpu_and_format_reproduces_all_5000_rows_bit_for_bit():
    if not FULL.is_dir():
        why = f"the full hardware data are not at {FULL}"
        if os.environ.get("CI"):  # CI runs with ../shared beside the clone: it must check them
            pytest.fail(f"the full hardware check must run in CI: {why}")
        pytest.skip(f"{why} (the subsample test above checks every GPU x format)")
    results = hardware.validate(FULL)
    assert {r["rows"] for r in results} == {5000}
    check(results, 0)


@pytest.mark.parametrize("gpu, fmt, change", [
    ("b200", "fp8_e4m3fn", dict(extra_bits=2, fp32_rounding="toward_zero")),  # as published
    ("h100", "fp8_e4m3fn", dict(accumulator=floats.FP32)),  # published: −10 bits, fp32 sum
    ("h100", "bf16", dict(fp32_rounding="nearest")),
    ("h100", "bf16", dict(extra_bits=1)),
    ("a100", "fp16", dict(group=4)),
    ("b200", "fp16", dict(fp16_exact=False, extra_bits=-3)),
    ("v100", "fp16", dict(extra_bits=1)),
])
def test_mutant_models_are_caught(gpu, fmt, change):
    """One parameter off (or the published one where the data disagree) fails the subsample."""
    a, b, c, d = hardware.read_measurements(FIXTURE, gpu, fmt, "fp32")
    if hardware.c_is_zero(gpu, fmt, "fp32"):
        c = np.zeros_like(c)
    core = dataclasses.replace(hardware.preset(gpu, fmt), **change)
    got = np.asarray(hardware._run(a, b, c, core, floats.FP32))
    assert np.mean(got.view(np.uint32) == d.view(np.uint32)) < 0.9


def test_correctly_rounded_sums_do_not_match_the_hardware():
    """The sanity figure of the data's README: exact dot + c rounded to nearest fp32 misses."""
    a, b, c, d = hardware.read_measurements(FIXTURE, "h100", "bf16", "fp32")
    exact = (a.astype(np.float64) * b.astype(np.float64)).sum(axis=1) + c  # exact for bf16
    assert np.mean(exact.astype(np.float32).view(np.uint32) == d.view(np.uint32)) < 0.8


def test_mma_entry_point_and_long_dot_products():
    """(jit = eager: test_tc_einsum_..., on the same integer core.)"""
    a, b, c, d = hardware.read_measurements(FIXTURE, "h100", "bf16", "fp32")
    a, b, c, d = a[:8], b[:8], c[:8], d[:8]
    mma = jax.jit(hardware.mma, static_argnames=("gpu", "input_format", "output_format"))
    got = mma(a, b, c, gpu="h100", input_format="bf16", output_format="fp32")
    assert np.array_equal(np.asarray(got).view(np.uint32), d.view(np.uint32))
    # K = 32 on a 16-product group: two MMAs, d carried in fp32 between them.
    long_a, long_b = np.concatenate([a, b], axis=1), np.concatenate([b, a[:, ::-1]], axis=1)
    first = mma(long_a[:, :16], long_b[:, :16], c)
    chained = mma(long_a[:, 16:], long_b[:, 16:], first)
    whole = mma(long_a, long_b, c)
    assert np.array_equal(np.asarray(whole), np.asarray(chained))
    assert not np.array_equal(np.asarray(whole), np.asarray(first))


def test_fp16_output_and_specials():
    a = np.array([[1.0, 2.0, 3.0, 4.0], [np.inf, 1.0, 0.0, 0.0], [np.nan, 0, 0, 0]], np.float32)
    b = np.ones_like(a)
    d = np.asarray(hardware.mma(a, b, None, gpu="v100", input_format="fp16", output_format="fp16"))
    assert d[0] == 10.0 and d[1] == np.inf and np.isnan(d[2])


def test_bad_arguments_are_rejected_clearly():
    x = jnp.ones((2, 4))
    with pytest.raises(ValueError, match="gpu must be one of"):
        hardware.mma(x, x, gpu="h800")
    with pytest.raises(ValueError, match="no tensor-core model for input format"):
        hardware.mma(x, x, gpu="v100", input_format="bf16")
    with pytest.raises(ValueError, match="output_format"):
        hardware.mma(x, x, output_format="bf16")
    with pytest.raises(ValueError, match="same shape"):
        hardware.mma(x, jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="c must have shape"):
        hardware.mma(x, x, jnp.ones(3))


# ---- the policies: every matmul of a forward on the tensor-core model ------------------------


def test_tc_policies_parse_and_name_the_model():
    from squash_sim import precision

    p = precision.get("fp8_e4m3fn+tc:h100")
    assert p.matmul_hardware.core is hardware.preset("h100", "fp8_e4m3fn")
    assert p.matmul_hardware.output_format is floats.FP32 and p.name == "fp8_e4m3fn+tc:h100"
    assert precision.get("fp16+tc:v100/fp16").matmul_hardware.output_format is floats.FP16
    assert precision.get("bf16-pure+tc:h100").prefix_bit_exact
    tpu = precision.get("tpu-default")
    assert tpu.matmul_hardware.core is None and tpu.matmul_hardware.input_format is floats.BF16
    assert tpu.params is None and tpu.activations is None
    for bad, word in [("fp32+tc:h100", "needs a base with a format"), ("bf16+tc:v100", "no tensor"),
                      ("bf16+tc:h800", "gpu must be one of"), ("bf16+tc:h100/bf16", "output")]:
        with pytest.raises(ValueError, match=word):
            precision.get(bad)


def test_tc_einsum_is_the_mma_of_every_output_element_jit_and_eager():
    """hardware.einsum (what a tc forward calls for every contraction) equals mma() on each output
    element's vector, K = 40 spanning three H100 groups with a zero-padded tail; jit = eager."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2, 3, 40)).astype(np.float32)
    b = rng.standard_normal((40, 2)).astype(np.float32)
    matmul = hardware.tensor_core("h100", "fp8_e4m3fn")
    got = np.asarray(jax.jit(lambda a, b: hardware.einsum("bnd,df->bnf", a, b, matmul))(a, b))
    rows_a = np.broadcast_to(a[:, :, None, :], (2, 3, 2, 40))
    rows_b = np.broadcast_to(b.T[None, None], (2, 3, 2, 40))
    want = np.asarray(hardware.mma(rows_a, rows_b, None, gpu="h100", input_format="fp8_e4m3fn"))
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    one_group = jax.jit(lambda a, b: hardware.einsum("nd,df->nf", a, b, matmul))
    with jax.disable_jit():  # one MMA (K = 16 < G): eager costs a compile per primitive
        eager = np.asarray(hardware.einsum("nd,df->nf", a[0, :1, :16], b[:16, :1], matmul))
    jitted = np.asarray(one_group(a[0, :1, :16], b[:16, :1]))
    assert np.array_equal(eager.view(np.uint32), jitted.view(np.uint32))


def test_a_tc_forward_runs_and_changes_the_logits():
    """One tiny forward (8 tokens) with every contraction on H100 fp8 tensor cores."""
    from squash_sim.config import ModelConfig
    from squash_sim.model import forward, init_params

    config = ModelConfig(vocab_size=32, d_model=16, n_layers=1, n_heads=1, positional="none",
                         norm="none", mlp="none")  # few contractions: compiling is the cost
    params = init_params(config, jax.random.key(0))
    ids = jnp.arange(8) % config.vocab_size
    tc = np.asarray(forward(params, ids, config, "fp8_e4m3fn+tc:h100").logits)
    fp32 = np.asarray(forward(params, ids, config, "fp32").logits)
    assert np.all(np.isfinite(tc)) and not np.array_equal(tc, fp32)
    assert np.abs(tc - fp32).max() < 0.5 * np.abs(fp32).max()  # fp8 storage: coarse, not broken


@pytest.mark.parametrize("gpu, fmt, output", [("h100", "fp16", "fp16"), ("h100", "fp8_e5m2", "fp32"),
                                              ("a100", "tf32", "fp32")])
def test_the_32_bit_path_equals_the_int64_path(gpu, fmt, output):
    """Models whose terms fit 32 bits run on uint32 (faster); the int64 path gives the same bits."""
    core, out = hardware.preset(gpu, fmt), hardware.OUTPUTS[output]
    assert hardware._narrow(core, out)
    a, b, c, _ = hardware.read_measurements(FIXTURE, gpu, fmt, output)
    c = np.asarray(floats.round_to(c, out))
    narrow = np.asarray(hardware._run(a, b, c, core, out))
    wide = np.asarray(hardware._run(a, b, c, core, out, narrow=False))
    assert np.array_equal(narrow.view(np.uint32), wide.view(np.uint32))
