"""Sensitivity of the last output to every input position (theory.md, Theorem B.5, Prop B.8).

`jacobian_program` builds a pure function (params, v0 (n, d)) → (∂y_n/∂v⁽⁰⁾ (d, n, d), Λ (L, n, n))
for use under jit/vmap. The Jacobian is jax.jacrev: d vector-Jacobian products (one per output
coordinate) vmapped into one backward program — d backward passes for all n positions, not n·d.
With frozen=True the attention weights are taken from a real forward pass and held constant and the
model is the theorem's: z = Λ(v/β₁) + v, v' = ψ(z/β₂) + z, y = v_n/β₃ (config must use the theory
norm, a ReLU MLP and W_V = W_O = I). With frozen=False the derivative runs through the real model:
softmax attention, real norms, whatever the config says.

`matrix_bound` is the proof-consistent right-hand side C·[Ā⁽ᴸ⁻¹⁾ ⋯ Ā⁽⁰⁾]_{n,·}.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from squash_sim.config import ModelConfig
from squash_sim.model import traceable_forward


@functools.cache
def jacobian_program(config: ModelConfig, precision: str = "fp64", frozen: bool = True):
    """→ fn(params, v0) = (jacobian (d, n, d) of y_n w.r.t. v0, attention Λ (L, n, n) of head 0)."""
    run = traceable_forward(config, precision, return_attention=True, logits="none")

    def one(params, v0):
        lambdas = jax.lax.stop_gradient(run(params, v0[None]).attention[0, :, 0])  # (L, n, n)
        if not frozen:
            return jax.jacrev(lambda v: run(params, v[None]).final[0, -1])(v0), lambdas
        b1, b2, b3 = config.theory_beta1, config.theory_beta2, config.theory_beta3  # per layer

        def theorem_model(v):  # attention held at the real forward's weights
            for layer, (lam, p) in enumerate(zip(lambdas, params["layers"], strict=True)):
                z = lam @ (v / b1[layer]) + v
                v = jax.nn.relu((z / b2[layer]) @ p["w_in"]) @ p["w_out"] + z
            return v[-1] / b3

        return jax.jacrev(theorem_model)(v0), lambdas

    return one


def block_norms(jacobian) -> np.ndarray:
    """Spectral norm of each (d, d) block ∂y_n/∂v_i. jacobian: (d, n, d) → (n,)"""
    blocks = np.moveaxis(np.asarray(jacobian, np.float64), 1, 0)  # (n, d, d)
    return np.linalg.norm(blocks, ord=2, axis=(1, 2))


def lipschitz(params) -> list[float]:
    """σ_ψ per layer for ψ(x) = relu(x W_in) W_out: ‖W_in‖₂‖W_out‖₂."""
    return [float(np.linalg.norm(p["w_in"], 2) * np.linalg.norm(p["w_out"], 2))
            for p in params["layers"]]


def matrix_bound(lambdas, sigmas, beta1, beta2, beta3: float, residual: bool = True) -> np.ndarray:
    """C·[Ā⁽ᴸ⁻¹⁾ ⋯ Ā⁽⁰⁾]_{n,·}, Ā⁽ℓ⁾ = Λ⁽ℓ⁾/β₁⁽ℓ⁾ + I, C = Π(σ_ψ⁽ℓ⁾/β₂⁽ℓ⁾ + 1)/β₃. → (n,)
    beta1, beta2: per layer. residual=False drops the identity (a deliberately wrong bound)."""
    n = np.asarray(lambdas).shape[-1]
    eye = np.eye(n)
    a_bar = eye
    for layer, lam in enumerate(np.asarray(lambdas, np.float64)):
        a_bar = (lam / beta1[layer] + (eye if residual else 0)) @ a_bar
    constant = np.prod([s / b + 1 for s, b in zip(sigmas, beta2, strict=True)]) / beta3
    return constant * a_bar[-1]
