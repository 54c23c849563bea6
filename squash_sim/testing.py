"""Assertions for your own tests: the paper's properties on YOUR (params, config, precision).

    from squash_sim.testing import assert_no_collapse_before, assert_sensitivity_bound

    def test_my_encoding_keeps_tokens_apart():
        assert_no_collapse_before(my_params, my_config, n=4096, precision="bf16")

Each raises AssertionError with a readable counterexample (the n, the distance in units of the
format's spacing, the pair of sequences) and never passes on numbers that overflowed: a pair whose
forward pass overflowed or went non-finite fails with that status instead of being judged.

    assert_no_collapse_before(params, config, n)          no bit-identical pair y_m, y*_{m+1}, m ≤ n
    assert_collapse_length_within(params, config, lo, hi) the collapse length n* lies in [lo, hi]
    assert_sensitivity_bound(params, config, vectors)     Theorem B.5 on the frozen model
    assert_prefix_property(params, config, inputs)        row j = the last row of the prefix j + 1
    assert_jit_equals_eager(params, config, inputs)       jax.jit gives the eager bits

The pairs are those of squash_sim.analysis.collapse: prompt + 1^m against prompt + 1^(m+1) (token
id 1, or a fixed random vector for models without a vocabulary), the prompt drawn from `seed`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from squash_sim import checks, floats
from squash_sim.analysis import collapse
from squash_sim.config import ModelConfig
from squash_sim.model import check_inputs, check_params, forward, traceable_forward
from squash_sim.precision import Precision
from squash_sim.precision import get as get_precision


def _positive_int(name: str, value, caller: str = "squash_sim.testing") -> int:
    return checks.integer(caller, name, value, 1)


def _sweep_options(caller: str, prompt_len, seed, pattern) -> None:
    """The sweep's own arguments, checked before anything is traced."""
    checks.integer(caller, "prompt_len", prompt_len, 0)
    checks.seed(caller, seed)
    if not isinstance(pattern, str) or not pattern:
        raise TypeError(f"{caller}: pattern must be a non-empty str such as '1' or '1,', got "
                        f"{pattern!r:.60}")


def _rtol(caller: str, rtol) -> float:
    """A relative tolerance: a finite number >= 0 (NaN would make every comparison pass)."""
    return checks.number(caller, "rtol", rtol, nonnegative=True)


def _spacing_units(result: collapse.CollapseResult, index: int) -> float:
    """‖Δ‖∞ of pair `index` in units of the format's spacing at the output's magnitude."""
    fmt = result.precision.activations or floats.FP32
    y = result.outputs[index]
    spacing = np.asarray(floats.spacing(jnp.asarray(y, jnp.float32), fmt)).max()
    return float(result.linf[index] / spacing) if spacing > 0 else float("inf")


def _pair_text(result: collapse.CollapseResult, m: int) -> str:
    body = result.pattern * 3 if result.pattern != "1" else "1"
    return (f"prompt ({result.prompt_len} tokens, seed {result.seed}) + {body!r}… up to the "
            f"{m}-th '1' against the same up to the {m + 1}-th")


def _sweep(params, config, n, precision, prompt_len, seed, pattern) -> collapse.CollapseResult:
    if not isinstance(config, ModelConfig):
        raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
    _sweep_options("squash_sim.testing", prompt_len, seed, pattern)
    check_params(params, config)
    return collapse.run(config, precision, max_len=_positive_int("n", n), prompt_len=prompt_len,
                        seed=seed, params=params, pattern=pattern, keep_outputs=True)


def _unsound(result: collapse.CollapseResult) -> str | None:
    failure = collapse.failure(result)  # the one classification (judge's numerical status)
    if failure is None:
        return None
    m = int(result.n[np.argmax(result.status == failure)])
    return (f"the forward pass {failure} at n = {m} under {result.precision} "
            f"({_pair_text(result, m)}): no verdict can be read from it")


def assert_no_collapse_before(params, config: ModelConfig, n: int,
                              precision: Precision | str = "fp32", *, prompt_len: int = 8,
                              seed: int = 0, pattern: str = "1") -> collapse.CollapseResult:
    """Assert that y_m and y*_{m+1} differ in at least one bit for every m = 1..n (one forward
    pass over prompt + 1^(n+1)). Returns the measurement."""
    result = _sweep(params, config, n, precision, prompt_len, seed, pattern)
    problem = _unsound(result)
    if problem:
        raise AssertionError(problem)
    verdict = result.collapse  # the one definition (analysis.collapse.judge)
    if verdict.first_identical is not None:
        m = verdict.first_identical
        i = int(np.flatnonzero(result.n == m)[0])
        raise AssertionError(
            f"collapse at n = {m} < {n} under {result.precision}: the last-token outputs of "
            f"{_pair_text(result, m)} are bit-identical (‖Δ‖₁ = 0; at n = {max(m - 1, 1)} "
            f"‖Δ‖₁ = {result.l1[max(i - 1, 0)]:.3g} = "
            f"{_spacing_units(result, max(i - 1, 0)):.3g} spacings of "
            f"{result.precision.activations or 'float32'}); {verdict.identical} of "
            f"{verdict.pairs} lengths bit-identical; {verdict.text()}")
    return result


def assert_collapse_length_within(params, config: ModelConfig, low: int, high: int | None,
                                  precision: Precision | str = "bf16", *, max_len: int | None = None,
                                  prompt_len: int = 8, seed: int = 0,
                                  pattern: str = "1") -> collapse.CollapseResult:
    """Assert that the collapse length n* lies in [low, high]; high=None means "not within the
    sweep" is also accepted. n* is the project's one definition (analysis.collapse.judge: every
    pair bit-identical from n* through the end of a sweep that reaches 2·n*). The sweep runs to
    max_len (default 2·high, or 2·low when high is None)."""
    caller = "assert_collapse_length_within"
    low = _positive_int("low", low, caller)
    if high is not None and _positive_int("high", high, caller) < low:
        raise ValueError(f"{caller}: high must be >= low, got low={low}, high={high}")
    high = None if high is None else int(high)
    # max_len=0 is refused, not read as "the default" (it used to be, silently)
    max_len = 2 * (high or low) if max_len is None else _positive_int("max_len", max_len, caller)
    result = _sweep(params, config, max_len, precision, prompt_len, seed, pattern)
    problem = _unsound(result)
    if problem:
        raise AssertionError(problem)
    verdict = result.collapse
    n_star = verdict.n_star
    inside = (n_star is None and high is None) or (
        n_star is not None and low <= n_star <= (high if high is not None else max_len))
    if not inside:
        where = verdict.text()
        i = (n_star or max_len) - 1
        raise AssertionError(
            f"collapse length outside [{low}, {high if high is not None else 'beyond the sweep'}] "
            f"under {result.precision}: {where} ({_pair_text(result, i + 1)}: ‖Δ‖₁ = "
            f"{result.l1[i]:.3g} = {_spacing_units(result, i):.3g} spacings)")
    return result


def assert_sensitivity_bound(params, config: ModelConfig, vectors, *, rtol: float = 1e-9):
    """Theorem B.5 on the frozen model (attention weights held at the forward pass's, float64):
    ‖∂y_n/∂v_i‖₂ ≤ C·[Ā⁽ᴸ⁻¹⁾ ⋯ Ā⁽⁰⁾]_{n,i} for every position i, with Ā = Λ/β₁ + I and
    C = Π(σ_ψ/β₂ + 1)/β₃. The theorem's hypotheses: norm "theory", a ReLU MLP, W_V = W_O = I,
    one head, vector inputs (n, d). Returns (measured (n,), bound (n,))."""
    from squash_sim.analysis import sensitivity

    rtol = _rtol("assert_sensitivity_bound", rtol)
    if not isinstance(config, ModelConfig):
        raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
    if (config.norm != "theory" or config.mlp != "relu" or not config.identity_value_output
            or config.n_heads != 1 or config.takes_tokens):
        raise ValueError("assert_sensitivity_bound: config must meet Theorem B.5's hypotheses: "
                         "norm='theory', mlp='relu', identity_value_output=True, n_heads=1, no "
                         f"vocabulary; got norm={config.norm!r}, mlp={config.mlp!r}, "
                         f"identity_value_output={config.identity_value_output}, "
                         f"n_heads={config.n_heads}")
    check_params(params, config)
    batched, was_batched = check_inputs(vectors, config)
    if was_batched:
        raise ValueError(f"vectors must be one sequence (n, {config.d_model}), got "
                         f"{np.shape(vectors)}")
    with jax.enable_x64(True):
        params64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        jacobian, lambdas = jax.jit(sensitivity.jacobian_program(config, "fp64", True))(
            params64, jnp.asarray(np.asarray(vectors, np.float64)))
        measured = sensitivity.block_norms(jacobian)
        bound = sensitivity.matrix_bound(np.asarray(lambdas), sensitivity.lipschitz(params64),
                                         config.theory_beta1, config.theory_beta2,
                                         config.theory_beta3)
    if not (np.all(np.isfinite(measured)) and np.all(np.isfinite(bound))):
        raise AssertionError("sensitivity bound: the Jacobian or the bound is not finite "
                             "(overflow in float64): no verdict")
    over = np.flatnonzero(measured > bound * (1 + rtol))
    if over.size:
        i = int(over[0])
        raise AssertionError(
            f"Theorem B.5 violated at position i = {i} of n = {len(measured)}: ‖∂y_n/∂v_i‖₂ = "
            f"{measured[i]:.6g} > bound {bound[i]:.6g} (ratio {measured[i] / bound[i]:.4g}); "
            f"{over.size} positions over")
    return measured, bound


def assert_prefix_property(params, config: ModelConfig, inputs,
                           precision: Precision | str = "fp32", *, rtol: float | None = None):
    """Row j of one forward pass equals the last row of the forward pass on the prefix of length
    j + 1 (causal models). Bit for bit when the precision orders its reductions
    (Precision.prefix_bit_exact, e.g. "-pure" policies); otherwise within rtol (default 1e-5 for
    float32 containers: XLA's matmul order may change with the length)."""
    if rtol is not None:
        rtol = _rtol("assert_prefix_property", rtol)
    if not isinstance(config, ModelConfig):
        raise TypeError(f"assert_prefix_property: config must be a ModelConfig, got "
                        f"{type(config).__name__}")
    if not config.causal:
        raise ValueError("assert_prefix_property: the prefix property needs a causal model "
                         "(config.causal=True)")
    precision = get_precision(precision)
    full = np.asarray(forward(params, inputs, config, precision, logits="none").final)
    n = full.shape[-2]
    exact = precision.prefix_bit_exact if rtol is None else False
    rtol = 1e-5 if rtol is None else rtol
    sequence = np.asarray(inputs)
    for j in range(n):
        prefix = sequence[..., : j + 1] if config.takes_tokens else sequence[..., : j + 1, :]
        last = np.asarray(forward(params, prefix, config, precision, logits="none").final)[..., -1, :]
        row = full[..., j, :]
        if exact:
            differs = np.asarray(row).view(np.uint32) != np.asarray(last).view(np.uint32)
        else:
            differs = np.abs(row - last) > rtol * np.maximum(np.abs(last), 1e-30)
        if differs.any():
            raise AssertionError(
                f"prefix property fails at j = {j} under {precision}: row {j} of the length-{n} "
                f"pass differs from the last row of the length-{j + 1} pass in "
                f"{int(differs.sum())} coordinates (max |Δ| = {np.abs(row - last).max():.3g}, "
                f"{'bit for bit' if exact else f'rtol {rtol:g}'})")


def assert_jit_equals_eager(params, config: ModelConfig, inputs,
                            precision: Precision | str = "fp32", *, fn=None):
    """jax.jit of the forward pass gives the eager bits (every output: stream, final, logits).
    fn: the function compared (default the model's forward on batched inputs (b, n[, d]))."""
    precision = get_precision(precision)
    batched, _ = check_inputs(inputs, config)
    check_params(params, config)
    fn = fn or traceable_forward(config, precision)
    with jax.enable_x64(precision.compute_dtype == "float64"):
        jitted = jax.jit(fn)(params, batched)
        with jax.disable_jit():
            eager = fn(params, batched)
    pairs = jax.tree_util.tree_leaves_with_path(jitted)
    for (path, got), want in zip(pairs, jax.tree_util.tree_leaves(eager), strict=True):
        got, want = np.asarray(got), np.asarray(want)
        differs = got.view(np.uint8).reshape(got.shape + (-1,)) != want.view(
            np.uint8).reshape(want.shape + (-1,))
        differs = differs.any(axis=-1)
        if differs.any():
            index = tuple(int(i) for i in np.argwhere(differs)[0])
            raise AssertionError(
                f"jit and eager differ under {precision} in {jax.tree_util.keystr(path)}: "
                f"{int(differs.sum())} of {differs.size} elements, first at {index}: jit "
                f"{got[index]!r} vs eager {want[index]!r}")
