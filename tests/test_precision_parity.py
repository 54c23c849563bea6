"""The precision-parity experiment's shortcuts, on the tiny preset (random init, no download):
masked future tokens leave earlier logits' bits alone, so one teacher-forced forward gives where a
policy's greedy continuation first diverges (checked against a real greedy loop) and Jacobi
iteration gives fp32's greedy continuation; and the "+scaled:<fmt>" GEMMs: power-of-two scaling
is exact, a non-power-of-two scale (the mutant) is not, and out-of-range operands stay finite."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from squash_sim import floats, hardware, precision, presets
from squash_sim.experiments import precision_parity as pp
from squash_sim.model import forward, init_params

CONFIG = presets.get("tiny")
PARAMS = init_params(CONFIG, jax.random.key(3))
# Layers ×3: at init the tiny model repeats the last token; this one writes varied continuations.
PARAMS = {**PARAMS, "layers": jax.tree_util.tree_map(lambda a: 3 * a, PARAMS["layers"])}
MODEL = (PARAMS, CONFIG)
SCALED = dataclasses.replace(hardware.tensor_core("h100", "e4m3"), scaled=True)


def _greedy_loop(ids, steps, policy):
    """The plain greedy decode the shortcut replaces: one forward per token over the fixed-length
    buffer, the argmax after the last written position appended."""
    b, n = ids.shape
    buffer = np.concatenate([ids, np.zeros((b, steps), np.int32)], axis=1)
    for i in range(steps):
        logits = forward(PARAMS, jnp.asarray(buffer), CONFIG, policy).logits
        buffer[:, n + i] = np.asarray(jnp.argmax(logits[:, n - 1 + i], axis=-1))
    return buffer[:, n:]


def test_tokens_after_a_position_leave_its_logits_bit_for_bit():
    ids = np.random.default_rng(0).integers(0, 256, (2, 10)).astype(np.int32)
    other = ids.copy()
    other[:, 6:] = (ids[:, 6:] + 101) % 256
    a, b = (np.asarray(forward(PARAMS, jnp.asarray(x), CONFIG, "fp32").logits)
            for x in (ids, other))
    assert np.array_equal(a[:, :6].view(np.uint32), b[:, :6].view(np.uint32))
    assert not np.array_equal(a[:, 6:], b[:, 6:])


def test_masked_keys_take_no_part_in_a_tensor_core_sum():
    """weights·values on H100 bf16 tensor cores (a tc policy's attention output): a query's zero
    weights at later keys leave its bits alone whatever those keys' values are (zero products
    join no alignment), and the scaled GEMMs' scales are per token."""
    rng = np.random.default_rng(0)
    weights = np.tril(rng.random((6, 6))).astype(np.float32)  # (query, key), causal
    values, other = rng.standard_normal((2, 6, 40)).astype(np.float32)
    other = np.where(np.arange(6)[:, None] >= 3, other * 1e3, values)  # keys 3.. changed
    tc = hardware.tensor_core("h100", "bf16")
    run = jax.jit(lambda w, v, m: hardware.einsum("qk,kd->qd", w, v, m), static_argnums=2)
    a, b = np.asarray(run(weights, values, tc)), np.asarray(run(weights, other, tc))
    assert np.array_equal(a[:3].view(np.uint32), b[:3].view(np.uint32)) and not np.array_equal(a, b)
    x, y = np.asarray(run(values, values.T[:, :5], SCALED)), np.asarray(run(other, values.T[:, :5],
                                                                            SCALED))
    assert np.array_equal(x[:3].view(np.uint32), y[:3].view(np.uint32))


def test_one_forward_finds_where_a_real_greedy_loop_diverges():
    """Jacobi iteration from a guess wrong at one token reaches the fp32 greedy loop's tokens, and
    for a policy the loop's own tokens equal fp32's up to first_divergence and differ there."""
    ids = np.random.default_rng(1).integers(0, 256, (4, 4)).astype(np.int32)
    steps, policy = 6, "bf16"
    fp32 = _greedy_loop(ids, steps, "fp32")
    guess = fp32.copy()
    guess[:, 2] = (guess[:, 2] + 1) % 256
    reference = pp.greedy_reference(MODEL, ids, steps, guess=guess, rounds=steps)
    assert np.array_equal(reference["buffer"][:, 4:], fp32)
    assert reference["verified"].tolist() == [steps] * 4 and 2 <= reference["rounds"] < steps
    firsts = pp.first_divergence(MODEL, reference["buffer"], 4, reference["verified"], policy)
    loop = _greedy_loop(ids, steps, policy)
    assert any(f is not None for f in firsts) and None in firsts  # both cases tested
    for first, own, ref in zip(firsts, loop, fp32, strict=True):
        stop = steps if first is None else first
        assert np.array_equal(own[:stop], ref[:stop])
        assert first is None or own[first] != ref[first]


def test_jacobi_rounds_that_run_out_report_the_verified_prefix():
    ids = np.random.default_rng(1).integers(0, 256, (2, 4)).astype(np.int32)
    fp32 = _greedy_loop(ids, 6, "fp32")
    out = pp.greedy_reference(MODEL, ids, 6, guess=None, rounds=1)
    verified = out["verified"]
    assert np.all(verified < 6)  # a zero guess is not the decode
    for row, v in enumerate(verified):
        assert np.array_equal(out["buffer"][row, 4:4 + v], fp32[row, :v])


def test_the_table_reads_the_result():
    result = {"model": "m", "prompts": 2, "prompt_tokens": 3, "steps": 8, "greedy_prompts": 2,
              "rows": [{"policy": "fp32", "status": "ok", "seconds": 1.0, "top1": 2, "max": 0.0,
                        "median": 0.0, "first_divergence": [None, None]},
                       {"policy": "bf16", "status": "ok", "seconds": 2.0, "top1": 1,
                        "max": 3e10, "median": 2e5, "first_divergence": [5, None]},
                       {"policy": "fp8_e4m3fn", "status": "overflow", "seconds": 0.5}]}
    text = pp.table([result])
    assert "| m | `bf16` | 2 × 3 | 3e+10 | 2e+05 | 1/2 | 2 × 8 | 1/2 diverge; first at 5" in text
    assert "none in 2" in text and "| `fp8_e4m3fn` | 2 × 3 | overflow |" in text


# ---- "+scaled:<fmt>": fp8 GEMMs with power-of-two scaling -----------------------------------


def _in_range(rng, shape):
    """e4m3 values whose magnitudes (1/8 .. 15) stay normal and finite, scaled or not."""
    mantissa = rng.integers(8, 16, shape) / 8.0
    return (rng.choice([-1.0, 1.0], shape) * mantissa
            * 2.0 ** rng.integers(-3, 3, shape)).astype(np.float32)


def test_power_of_two_scaling_is_exact_and_a_plain_scale_is_not(monkeypatch):
    rng = np.random.default_rng(0)
    a, b = _in_range(rng, (2, 3, 40)), _in_range(rng, (40, 5))  # K = 40: two H100 fp8 groups
    def run(matmul):
        return np.asarray(jax.jit(lambda a, b: hardware.einsum("bnd,df->bnf", a, b, matmul))(a, b))

    plain, scaled = run(hardware.tensor_core("h100", "e4m3")), run(SCALED)
    assert np.array_equal(plain.view(np.uint32), scaled.view(np.uint32))
    k = np.asarray(hardware.scale_exponents(jnp.asarray(a), floats.FP8_E4M3FN))
    top = np.abs(a).max(-1) * 2.0 ** k
    assert np.all((top > 224) & (top <= 448)) and np.any(k != 0)  # the top binade

    def mutant(k):  # TE's exact amax/448 ratio is no power of two: ×1.1 in, ÷1.1 out
        return jnp.ldexp(jnp.float32(1), k) * jnp.where(
            k > 0, np.float32(1.1), jnp.where(k < 0, np.float32(1 / 1.1), np.float32(1)))

    monkeypatch.setattr(hardware, "_power_of_two", mutant)
    wrong = run(SCALED)
    assert not np.array_equal(plain.view(np.uint32), wrong.view(np.uint32))


def test_scaling_keeps_out_of_range_operands_finite_and_close():
    """Magnitudes up to 3e4 (e4m3's largest value is 448): unscaled the MMA sees NaN; scaled, it
    is within the e4m3 rounding of the operands (an ml_dtypes + float64 reference) plus the
    accumulator's 13-bit truncation."""
    rng = np.random.default_rng(2)
    a = (rng.standard_normal((4, 64)) * 1e4).astype(np.float32)
    b = (rng.standard_normal((64, 3)) * 0.01).astype(np.float32)
    def run(matmul):
        return np.asarray(jax.jit(lambda a, b: hardware.einsum("nd,df->nf", a, b, matmul))(a, b))

    assert np.isnan(run(hardware.tensor_core("h100", "e4m3"))).all()
    got = run(SCALED)

    def quantised(x, axis):  # x·2^k → e4m3 → ÷2^k, k from the vector's amax (math.frexp)
        amax = np.abs(x).max(axis=axis, keepdims=True)
        k = 9 - np.frexp(amax)[1]
        k = np.where(amax * 2.0 ** k > 448, k - 1, k)
        return (x * 2.0 ** k).astype(ml_dtypes.float8_e4m3fn).astype(np.float64) / 2.0 ** k

    exact = quantised(a, 1) @ quantised(b, 0)
    magnitude = np.abs(quantised(a, 1)) @ np.abs(quantised(b, 0))
    assert np.all(np.abs(got - exact) <= 2.0 ** -10 * magnitude)
    assert np.abs(got - a.astype(np.float64) @ b).max() > 0  # e4m3 rounding is there


def test_the_scaled_policy_parses_and_rejects_clearly():
    p = precision.get("bf16+tc:h100+scaled:e4m3")
    assert p.scaled_matmul.scaled and p.scaled_matmul.core is hardware.preset("h100", "e4m3")
    assert p.matmul_hardware.core is hardware.preset("h100", "bf16")  # attention stays bf16
    assert p.name == "bf16+tc:h100+scaled:e4m3" and p.params is floats.BF16
    for bad, words in [("bf16+scaled:e4m3", "needs a tensor-core modifier"),
                       ("fp16+tc:v100+scaled:e4m3", "v100 has no tensor-core model"),
                       ("bf16+tc:h100+scaled:e9m9", "bad scaled modifier")]:
        with pytest.raises(ValueError, match=words):
            precision.get(bad)
    with pytest.raises(ValueError, match="need a tensor-core model"):
        hardware.einsum("i,i->", jnp.ones(2), jnp.ones(2),
                        dataclasses.replace(hardware.Matmul(None, floats.BF16), scaled=True))


def test_the_cli_checks_its_sizes_before_loading_anything(tmp_path, capsys):
    from squash_sim.cli import main

    out = tmp_path / "no"
    assert main(["real", "parity", "--prompts", "2", "--greedy-prompts", "3", "--out",
                 str(out)]) == 2
    assert "--greedy-prompts (3) must be at most --prompts (2)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["real", "parity", "--prompt-tokens", "13", "--out", str(out)])
    assert exit_info.value.code == 2 and not out.exists()


def test_the_docs_table_is_the_one_rendered_from_the_data_beside_it():
    """docs/precision_hardware.md shows precision_parity.table of docs/precision_parity.json."""
    import json
    from pathlib import Path

    docs = Path(__file__).resolve().parents[1] / "docs"
    runs = json.loads((docs / "precision_parity.json").read_text())
    assert {r["model"] for r in runs} == {"smollm2-135m", "gemma3-270m"}
    assert pp.table(runs) in (docs / "precision_hardware.md").read_text()


def test_the_report_section_writes_and_summarises_the_result(tmp_path, monkeypatch):
    """runs.precision_parity (the CLI's and report --real's section) around a stubbed run."""
    import json
    import types

    from squash_sim import runs

    model = types.SimpleNamespace(config=types.SimpleNamespace(vocab_size=10))
    monkeypatch.setattr(runs, "_real_model", lambda name, progress: (model, name, f"_{name}"))
    result = {"model": "m", "prompts": 2, "prompt_tokens": 12, "steps": 8, "greedy_prompts": 2,
              "reference": {"guess": "none", "rounds": 9, "verified": [8, 5]},
              "rows": [{"policy": "fp32", "status": "ok", "seconds": 1.0, "top1": 2, "max": 0.0,
                        "median": 0.0, "first_divergence": [None, None]},
                       {"policy": "bf16", "status": "ok", "seconds": 2.0, "top1": 1,
                        "max": 3e10, "median": 2e5, "first_divergence": [5, None]}]}
    monkeypatch.setattr(pp, "run", lambda *a, **k: result)
    section = runs.precision_parity(tmp_path, model="m", prompts=2, steps=8)
    assert json.loads((tmp_path / "precision_parity_m.json").read_text()) == result
    assert section.table[1]["diverged"] == "1/2" and section.table[1]["first divergence"] == 5
    assert "1 continuation(s) verified only in part" in "\n".join(section.summary)
    steps = {key: kwargs for key, _, kwargs in runs.report_steps("smoke", real=True)}
    assert steps["precision_parity_smollm2-135m"]["greedy_prompts"] == 0
