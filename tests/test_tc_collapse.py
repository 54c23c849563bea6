"""The science under tensor cores: per-sum counterfactuals of "+tc:<gpu>" policies (a contraction
site taken off the MMA chain alone), the accumulation table's hardware columns, and
proofs_check's corollary_b10 judging a tensor-core policy."""

from __future__ import annotations

import types

import numpy as np
import pytest

from squash_sim import hardware
from squash_sim.analysis import mechanism
from squash_sim.precision import Numerics
from squash_sim.precision import get as get_precision


def test_a_restored_tensor_core_site_sums_its_mma_operands_in_fp32_and_the_others_stay_on_the_mma():
    """restore(fp16+tc:v100/fp16, [site]) takes that contraction alone off the MMA chain: its
    operands rounded to fp16 as the MMA would (they come in as float32 here), the exact products
    added sequentially in float32, the result rounded to the MMA's fp16 output — checked against
    NumPy's float16. The other sites keep the V100 chain's bits (which differ from the
    fp32 sum on these data, so a restore that leaves the site on the MMA fails)."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((4, 256)).astype(np.float32)
    b = (rng.standard_normal(256) * 3).astype(np.float32)
    half = lambda x: x.astype(np.float16).astype(np.float32)  # noqa: E731

    total = np.zeros(4, np.float32)
    for k in range(256):  # fp16 × fp16 products are exact in float32
        total = (total + half(a[:, k]) * half(b[k])).astype(np.float32)
    expected = half(total)

    policy = "fp16+tc:v100/fp16"
    on_mma = np.asarray(Numerics(get_precision(policy)).einsum("nk,k->n", a, b, site="values"))
    for site, scope in (("weights·values", "values"), ("scores q·k", "scores"),
                        ("projections & MLP", "matmul")):
        restored = mechanism.restore(policy, [site])
        assert restored.off_hardware == {scope} and not restored.on_tensor_cores(scope)
        got = {s: np.asarray(Numerics(restored).einsum("nk,k->n", a, b, site=s))
               for s in ("values", "scores", "matmul")}
        assert np.array_equal(got[scope].view(np.uint32), expected.view(np.uint32)), site
        for other in {"values", "scores", "matmul"} - {scope}:
            assert np.array_equal(got[other].view(np.uint32), on_mma.view(np.uint32)), other
    assert not np.array_equal(on_mma, expected)  # the data tell the two sums apart
    # Sums that do not run on tensor cores: the storage policy's softmax is already XLA's fp32,
    # and tpu-default's contractions are XLA's fp32 sums of bf16 operands: nothing to restore.
    assert mechanism.restore(policy, ["softmax sum"]) is None
    assert mechanism.restore("tpu-default") is None
    with pytest.raises(ValueError, match="off_hardware"):
        get_precision("bf16+tc:h100").__class__(off_hardware=frozenset({"softmax"}))


def test_the_per_sum_mechanism_of_a_tensor_core_collapse():
    """On a stand-in sweep whose collapse needs the H100 weights·values MMA chain (it is gone
    whenever that site is off the tensor cores), explain() names that sum, and only that sum,
    as necessary; a mutant restore that leaves the MMA in place would see the collapse stay."""

    def run(precision):  # n* 300 unless the weights·values contraction left the MMA chain
        precision = get_precision(precision)
        n_star = 300 if precision.on_tensor_cores("values") else None
        return types.SimpleNamespace(collapse=types.SimpleNamespace(
            n_star=n_star, status="sound", run_from=n_star))

    why = mechanism.explain(run, "fp8_e4m3fn+tc:h100", sites=("weights·values", "scores q·k",
                                                              "projections & MLP"))
    assert why.mechanism == mechanism.STALLED and why.stalled == ("weights·values",)
    assert why.sufficient == ("weights·values",)  # left alone on the MMA, it still collapses
    assert why.counterfactual.startswith("fp8_e4m3fn+tc:h100 with fp32")


def test_the_hardware_columns_name_the_policies_that_exist():
    """One policy per format × column; "—" where the GPU has no such MMA (V100 has fp16 only,
    A100 no fp8) or the column is another row's (tpu-default is fp32)."""
    from squash_sim.experiments import accumulation_collapse as ac

    expected = {("bf16", "tc:h100"): "bf16+tc:h100", ("fp8_e5m2", "tc:h100"): "fp8_e5m2+tc:h100",
                ("fp16", "tc:v100/fp16"): "fp16+tc:v100/fp16", ("bf16", "tc:v100"): None,
                ("fp8_e4m3fn", "tc:a100"): None, ("fp32", "tc:h100"): None,
                ("fp32", "tpu-default"): "tpu-default", ("bf16", "tpu-default"): None,
                ("fp8_e4m3fn", "storage, fp32 sums"): "fp8_e4m3fn",
                ("bf16", "sequential"): "bf16-pure+sequential"}
    assert {cell: ac.policy(*cell) for cell in expected} == expected
    for name in filter(None, expected.values()):
        get_precision(name)  # every named policy parses
    assert sum(ac.policy(f, c) is not None for f in ac.FORMATS for c in ac.TENSOR_CORES) == 8
    with pytest.raises(ValueError, match="unknown column"):
        ac.policy("bf16", "tc:h800")
    row = ac.AccumulationCollapse("bf16", "tc:v100", "", "ok", None, None, None, 0, 0.0, 64)
    assert ac.cell(None, "bf16", "tc:v100") == "—" and ac.cell(None, "bf16", "tc:h100") == (
        "not run") and ac.cell(row) == "> 32"
    assert hardware.preset("h100", "bf16").group == 16  # the column is the validated model


def test_corollary_b10_judges_a_tensor_core_policy(monkeypatch):
    """proofs_check's corollary_b10 takes a "+tc:<gpu>" policy (they are in its domain): a sweep
    of fp8_e4m3fn+tc:h100 that ends with the outputs still apart is "not reached", its distance
    in fp8 e4m3 spacings (the format its outputs are stored in: ‖Δ‖∞ = 0.25 is 2 spacings of
    0.125), never a crash or a collapse. (The sweep is a stand-in: the forward under tensor cores
    is tested in test_hardware; a full one here costs a 4096-token MMA forward.)"""
    from proofs_check.claims import corollary_b10

    assert "fp8_e4m3fn+tc:h100" in corollary_b10.DOMAIN.fields["precision"].values
    seen = []

    def run(policy, seed, max_len):
        seen.append(str(policy))
        verdict = types.SimpleNamespace(n_star=None, status="sound", first_identical=None,
                                        share=0.0, reason="the outputs still differ",
                                        text=lambda: "no collapse")
        return types.SimpleNamespace(collapse=verdict, n=np.array([max_len]),
                                     linf=np.array([0.25]))

    monkeypatch.setattr(corollary_b10, "_run", run)
    corollary_b10.measure.cache_clear()
    try:
        outcome = corollary_b10.evaluate({"precision": "fp8_e4m3fn+tc:h100", "seed": 0})
    finally:
        corollary_b10.measure.cache_clear()
    assert seen == ["fp8_e4m3fn+tc:h100"] and outcome.verdict == "not reached"
    assert "is 2 spacings" in outcome.note and "fp8_e4m3fn+tc:h100" in outcome.note
