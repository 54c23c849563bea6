"""Theorem B.3 [4.2]: representational collapse, the exact layer-0 inequality (theory.md §2).

v⁽⁰⁾ = [v, v_a] (n tokens) and v*⁽⁰⁾ = [v, v_a, v_a] (n + 1 tokens). With u_i = norm₁(v_i) and
z = Σ_j α_ij u_j + v_i (one head, W_V = W_O = I):
    ‖z_n − z*_{n+1}‖₁ ≤ max_i ‖u_i‖₁ · [Σ_{i<n} |α_{n,i} − α*_{n+1,i}| + |α_{n,n} − α*_{n+1,n} − α*_{n+1,n+1}|]
and for NoPE, exactly: z_n − z*_{n+1} = α*_{n+1,n+1} · (m_n − u_a), m_n = Σ_{i≤n} α_{n,i} u_i.
Both are evaluated through squash_sim's own forward in float64. Additive positions (sinusoidal,
learned) put PE(n) − PE(n+1) into the residual stream, so v_n ≠ v*_{n+1}: assumption not met,
reported, never passed.
"""

from __future__ import annotations

import jax
import numpy as np

from proofs_check.claims.base import Outcome
from squash_sim import ModelConfig, forward, init_params
from squash_sim import strategies as sst

NAME = "theorem_b3"
REFERENCE = "[G] Theorem B.3 (main text Theorem 4.2), layer-0 inequality and NoPE identity"
ASSUMPTIONS = "one head, W_V = W_O = I, no positional term added to the residual stream"
STATEMENT = ("||z_n - z*_{n+1}||_1 <= max_i ||u_i||_1 [sum_{i<n}|a_ni - a*_{n+1,i}| + "
             "|a_nn - a*_{n+1,n} - a*_{n+1,n+1}|]; NoPE: z_n - z*_{n+1} = a*_{n+1,n+1}(m_n - u_a)")
LATEX = (r"\|z_n-z^*_{n+1}\|_1 \le \max_i\|u_i\|_1\Big[\sum_{i<n}|\alpha_{n,i}-\alpha^*_{n+1,i}|"
         r"+|\alpha_{n,n}-\alpha^*_{n+1,n}-\alpha^*_{n+1,n+1}|\Big]")


DEFAULT_EXAMPLES = 32


def instances():
    return sst.collapse_pairs()


def _config(inst) -> ModelConfig:
    return ModelConfig(d_model=inst["d"], n_layers=1, n_heads=1, positional=inst["positional"],
                       max_len=64, norm=inst["norm"], theory_beta1=inst["beta"], mlp="none",
                       identity_value_output=True)


def pair(inst):
    """(trace of [v, v_a], trace of [v, v_a, v_a]) in float64."""
    config = _config(inst)
    params = init_params(config, jax.random.key(inst["seed"] % 2**31))
    v = inst["scale"] * np.random.default_rng(inst["seed"]).standard_normal((inst["n"], inst["d"]))
    v_star = np.concatenate([v, v[-1:]])
    run = lambda x: forward(params, x, config, "fp64", return_attention=True)  # noqa: E731
    return run(v), run(v_star)


def _check(inst, include_last_term=True, vector_norm=1):
    short, long = pair(inst)
    n = inst["n"]
    met = inst["positional"] in ("none", "rope", "alibi")
    u = np.asarray(long.hidden[0]) / (inst["beta"] if inst["norm"] == "theory" else 1.0)  # (n+1, d)
    z, z_star = np.asarray(short.hidden[1][n - 1]), np.asarray(long.hidden[1][n])
    a, a_star = np.asarray(short.attention[0, 0, n - 1]), np.asarray(long.attention[0, 0, n])
    lhs = np.abs(z - z_star).sum()
    rows = np.abs(a[: n - 1] - a_star[: n - 1]).sum()
    last = abs(a[n - 1] - a_star[n - 1] - a_star[n]) if include_last_term else 0.0
    rhs = np.linalg.norm(u, ord=vector_norm, axis=1).max() * (rows + last)
    holds = lhs <= rhs * (1 + 1e-12) + 1e-13
    note = f"{inst['positional']}, n {n}"
    if inst["positional"] == "none" and include_last_term:
        m_n = a @ u[:n]
        identity_error = np.abs((z - z_star) - a_star[n] * (m_n - u[n])).max()
        holds = holds and identity_error <= 1e-12 * max(1.0, np.abs(u).max())
        note += f", NoPE identity error {identity_error:.2e}"
    if not met:
        note += ": assumption not met (additive positions enter the residual stream)"
    return Outcome(float(lhs), float(rhs), bool(holds), assumptions_met=met, note=note)


def evaluate(inst):
    return _check(inst)


MUTANTS = {
    "last-token term dropped": lambda inst: _check(inst, include_last_term=False),
    "L2 norm of u instead of L1": lambda inst: _check(inst, vector_norm=2),
}
