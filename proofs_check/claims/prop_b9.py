"""Proposition B.9 [6.1]: without a causal mask or positions, only ratios are seen (theory.md §2).

Bidirectional NoPE attention over n₀ "zero" tokens and n₁ "one" tokens: every token's
representation depends on (n₀, n₁) only through n₁/n₀, at every layer — "01" and "0011" give the
same states. Checked in float64 through squash_sim's forward: the first zero and the first one of
(n₀, n₁) and of (k·n₀, k·n₁) agree at every layer to 1e-11. The controls are the mutants: with a
causal mask, or with RoPE, the same equality must fail.
Theory: squash_sim/theory.md#prop_b9
"""

from __future__ import annotations

import jax
import numpy as np
from hypothesis import strategies as st

from proofs_check.claims.base import Outcome, non_finite
from proofs_check.claims.domain import SEED, Int, OneOf, Record
from squash_sim import ModelConfig, forward, init_params

NAME = "prop_b9"
REFERENCE = "[G] Proposition B.9 (main text Proposition 6.1)"
ASSUMPTIONS = "bidirectional attention, no positional encoding"
STATEMENT = "the states of a (n0 zeros, n1 ones) sequence equal those of (k n0, k n1), every layer"
LATEX = r"v_i^{(\ell)}(n_0, n_1) = v_i^{(\ell)}(k n_0, k n_1)\quad \forall \ell, k"
DEFAULT_EXAMPLES = 10

DOMAIN = Record({"n0": Int(1, 8), "n1": Int(1, 8), "k": Int(2, 4), "layers": Int(1, 3),
                 "norm": OneOf(("layernorm", "rmsnorm", "none")), "mlp": OneOf(("gelu", "none")),
                 "seed": SEED})


def instances():
    return st.fixed_dictionaries({
        "n0": st.integers(1, 2), "n1": st.integers(1, 2), "k": st.sampled_from([2, 3]),
        "layers": st.integers(1, 2), "norm": st.sampled_from(["layernorm", "rmsnorm", "none"]),
        "mlp": st.sampled_from(["gelu", "none"]), "seed": st.integers(0, 2**31 - 1)})


def _check(inst, causal=False, positional="none"):
    config = ModelConfig(vocab_size=2, d_model=8, n_layers=inst["layers"], n_heads=2,
                         positional=positional, norm=inst["norm"], mlp=inst["mlp"], d_ff=16,
                         causal=causal)
    params = init_params(config, jax.random.key(inst["seed"] % 2**31))

    def states(scale):
        tokens = np.array([0] * (scale * inst["n0"]) + [1] * (scale * inst["n1"]), np.int32)
        hidden = np.asarray(forward(params, tokens, config, "fp64").hidden)  # (L+1, n, d)
        return hidden[:, [0, scale * inst["n0"]]]  # first zero, first one

    small, large = states(1), states(inst["k"])
    bad = non_finite(f"({inst['n0']},{inst['n1']}) vs ×{inst['k']}", small, large)
    if bad:
        return bad
    error = float(np.abs(small - large).max())
    tolerance = 1e-11 * max(1.0, float(np.abs(small).max()))
    return Outcome(error, tolerance, error <= tolerance,
                   note=f"({inst['n0']},{inst['n1']}) vs ×{inst['k']}")


def evaluate(inst):
    return _check(inst)


MUTANTS = {
    "also holds with a causal mask": lambda inst: _check(inst, causal=True),
    "also holds with RoPE": lambda inst: _check(inst, positional="rope"),
}
